"""The accuracy harness (bench/accuracy.py) on its quick grid: ULP targets, and symce against
PyTorch on every input class.

Targets: every kernel within 1 ULP of the mpmath reference in float32 and 4 ULP in float64, on
every input class (random, adversarial, K = 3000 and 128000 with and without label smoothing
and class weights, a dominated loss of 1e-8), for the NumPy module, the C library built -O2 and -O3 -march=native and
the MATLAB files in Octave (issue 8: the float64 error must not grow with K in any language; the
MATLAB float32 binary cross-entropy, computed in single, is held to its own bound until it is
computed in double); and no kernel worse than PyTorch
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

import support

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("symce_accuracy", ROOT / "bench" / "accuracy.py")
accuracy = importlib.util.module_from_spec(spec)
sys.modules["symce_accuracy"] = accuracy  # dataclasses look their module up while it loads
spec.loader.exec_module(accuracy)

# ULP bounds per dtype on every row (issue 7's guard rail): 1 ULP in float32, 4 in float64
BOUND = {"float32": 1.0, "float64": 4.0}
CANCELLING = {"softmax_vjp", "softmax_cross_entropy_grad"}
SYMCE = ("symce-numpy", "symce-c", "symce-c-native", "symce-matlab")
# held to PyTorch's error too (MATLAB has no type wider than double: its sigmoid' is documented
# within 3.5 ULP, where PyTorch's is 1.5 on tiny x)
COMPILED = ("symce-numpy", "symce-c", "symce-c-native")
LARGE_K = tuple(
    f"K={k}{tag}"
    for k in (accuracy.MID_K, accuracy.LARGE_K)
    for tag in ("", " eps=1/3", " eps=1/3 weighted")
)
# issue 8, item 3 (another branch): MATLAB computes the binary cross-entropy of single input in
# single; measured up to 1.6 ULP on this grid
KNOWN = {
    ("symce-matlab", "float32", k): 2.0
    for k in (
        "binary_cross_entropy",
        "binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy",
        "sigmoid_binary_cross_entropy_grad",
    )
}


@pytest.fixture(scope="module")
def table():
    impls = accuracy.implementations()
    if impls["symce-c"] is None:
        pytest.skip("gcc not available for the C column")
    if impls["symce-matlab"] is None:
        support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")  # skips, or fails in CI
    if impls["torch"] is None and os.environ.get("SYMCE_REQUIRE_TORCH") == "1":
        pytest.fail("torch is required (SYMCE_REQUIRE_TORCH=1)")
    with mpmath.workdps(accuracy.reference.DPS):
        return accuracy.measure(impls, quick=True)


def _bound(name, key):
    return KNOWN.get((name, key[1], key[0]), BOUND[key[1]])


def test_ulp_targets(table):
    bad = [
        (key, name, row[name])
        for key, row in table.items()
        for name in SYMCE
        if row[name] > _bound(name, key)
    ]
    assert not bad, "\n".join(map(str, bad))


def test_large_k_in_every_language(table):
    """Issue 8: float64 within 4 ULP at K = 3000 and K = 128000 in NumPy, C and MATLAB (the
    MATLAB sums were sequential: softmax 4.0 / 30 ULP, the cross-entropy gradient with label
    smoothing 1/3 138 / 15708 ULPs of its terms at K = 3000 / 128000)."""
    rows = [(key, row) for key, row in table.items() if key[2] in LARGE_K]
    assert len(rows) == 2 * 2 * 9
    bad = [
        (key, name, row[name])
        for key, row in rows
        for name in SYMCE
        if not row[name] <= BOUND[key[1]]
    ]
    assert not bad, "\n".join(map(str, bad))


def test_rows_for_large_k_and_dominated_losses(table):
    """The rows the speed work must not lose: K = 128000 (sums over a vocabulary) and a label
    class that dominates (loss ~ 1e-8, where 1 - p must not be formed)."""
    klasses = {key[2] for key in table}
    assert set(LARGE_K) <= klasses and accuracy.DOMINATED in klasses
    for dtype in ("float32", "float64"):
        for kernel in (
            "softmax",
            "log_softmax",
            "logsumexp",
            "softmax_cross_entropy",
            "softmax_cross_entropy_grad",
        ):
            for klass in (*LARGE_K, accuracy.DOMINATED):
                if "eps" in klass and not kernel.startswith("softmax_cross"):
                    continue
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
        bad += [(key, name, row[name], ref) for name in COMPILED if row[name] > limit]
    assert not bad, "\n".join(map(str, bad))


def test_table_prints(table):
    text = accuracy.format_table(table, [*SYMCE, "torch", "scipy"])
    assert text.count("\n") == len(table) + 1 and "| softmax | float32 |" in text
