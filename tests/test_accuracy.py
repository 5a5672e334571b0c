"""The accuracy harness (bench/accuracy.py) on its quick grid: ULP targets, and symce against
PyTorch on every input class.

Targets: softmax, log_softmax, logsumexp and softmax cross-entropy within 4 ULP of the mpmath
reference on logits of magnitude <= 30 (and on the adversarial classes), in float32 and float64,
for the NumPy and C kernels; the sigmoid within 2 ULP (sigma' 3); and no kernel worse than PyTorch
on any input class beyond rounding noise: 1 ULP, or, for the VJP and the CE gradient (counted in
ULPs of their terms, see bench/accuracy.py), 2 ULP or 2x, since both compute p_j (g_j - <g, p>)
with about five roundings and which of two such implementations wins on a given row is chance.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import mpmath
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("symce_accuracy", ROOT / "bench" / "accuracy.py")
accuracy = importlib.util.module_from_spec(spec)
sys.modules["symce_accuracy"] = accuracy  # dataclasses look their module up while it loads
spec.loader.exec_module(accuracy)

TIGHT = {"softmax": 4, "log_softmax": 4, "logsumexp": 4, "softmax_cross_entropy": 4,
         "sigmoid": 2, "sigmoid_grad": 3}
CANCELLING = {"softmax_vjp", "softmax_cross_entropy_grad"}
SYMCE = ("symce-numpy", "symce-c")


@pytest.fixture(scope="module")
def table():
    impls = accuracy.implementations()
    if impls["symce-c"] is None:
        pytest.skip("gcc not available for the C column")
    if impls["torch"] is None and os.environ.get("SYMCE_REQUIRE_TORCH") == "1":
        pytest.fail("torch is required (SYMCE_REQUIRE_TORCH=1)")
    with mpmath.workdps(accuracy.reference.DPS):
        return accuracy.measure(impls, quick=True)


def test_ulp_targets(table):
    bad = [(key, name, row[name]) for key, row in table.items() if key[0] in TIGHT
           for name in SYMCE if row[name] > TIGHT[key[0]]]
    assert not bad, "\n".join(map(str, bad))


def test_not_worse_than_pytorch(table):
    if all(row.get("torch") is None for row in table.values()):
        pytest.skip("torch not installed")
    bad = []
    for key, row in table.items():
        ref = row.get("torch")
        if ref is None:
            continue
        limit = max(ref * 2, ref + 2) if key[0] in CANCELLING else ref + 1
        bad += [(key, name, row[name], ref) for name in SYMCE if row[name] > limit]
    assert not bad, "\n".join(map(str, bad))


def test_table_prints(table):
    text = accuracy.format_table(table, ["symce-numpy", "symce-c", "torch", "scipy"])
    assert text.count("\n") == len(table) + 1 and "| softmax | float32 |" in text
