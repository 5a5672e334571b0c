"""The accuracy harness (bench/accuracy.py) on its quick grid: ULP targets, and symce against
PyTorch on every input class.

Targets: every kernel within 1 ULP of the mpmath reference in float32 and 4 ULP in float64, on
every input class (random, adversarial, K = 128000, a dominated loss of 1e-8), for the NumPy
module and the C library built -O2 and -O3 -march=native; and no kernel worse than PyTorch
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

# ULP bounds per dtype on every row (issue 7's guard rail): 1 ULP in float32, 4 in float64
BOUND = {"float32": 1.0, "float64": 4.0}
CANCELLING = {"softmax_vjp", "softmax_cross_entropy_grad"}
SYMCE = ("symce-numpy", "symce-c", "symce-c-native")


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
    bad = [(key, name, row[name]) for key, row in table.items()
           for name in SYMCE if row[name] > BOUND[key[1]]]
    assert not bad, "\n".join(map(str, bad))


def test_rows_for_large_k_and_dominated_losses(table):
    """The rows the speed work must not lose: K = 128000 (sums over a vocabulary) and a label
    class that dominates (loss ~ 1e-8, where 1 - p must not be formed)."""
    klasses = {key[2] for key in table}
    assert f"K={accuracy.LARGE_K}" in klasses and accuracy.DOMINATED in klasses
    for dtype in ("float32", "float64"):
        for kernel in ("softmax", "log_softmax", "logsumexp", "softmax_cross_entropy",
                       "softmax_cross_entropy_grad"):
            for klass in (f"K={accuracy.LARGE_K}", accuracy.DOMINATED):
                row = table[(kernel, dtype, klass)]
                assert all(row[name] is not None for name in SYMCE), (kernel, dtype, klass)


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
    text = accuracy.format_table(table, [*SYMCE, "torch", "scipy"])
    assert text.count("\n") == len(table) + 1 and "| softmax | float32 |" in text
