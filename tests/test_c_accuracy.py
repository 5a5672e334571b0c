"""Accuracy of the generated C kernels in ULPs, against the *raw* mpmath reference.

The reference is ``symce.reference`` with ``form="raw"`` (the model's definitions and sp.diff of
them, no closed form, no stable rewrite), evaluated row by row at ``50 + spread/2.3 + 10``
digits, where the spread is the row's logit range: a class that dominates by a gap g makes the
raw definition cancel by about g/2.3 digits.  The error is in units of the last place of the
reference rounded to the output dtype (``support.ulp_error``).  Inputs are drawn in the kernel's
dtype, so the float32 reference sees exactly the float32 logits.

Bounds (both dtypes; float32 rows are computed in double and rounded once):

* softmax, log_softmax, logsumexp, softmax_cross_entropy (loss, and the gradient p - y except at
  the target class where p_t > 1/2, where p - 1 is a cancellation): 4 ULP, |logits| <= 30,
  K in {2, 3, 10};
* sigmoid and sigmoid_grad: 2 ULP for |x| <= 700 (float64) / 85 (float32), where both are normal;
* the softmax Jacobian of rows with a dominant class (1 - p_a from 1e-6 to 1e-12), every entry,
  the diagonal p_a (1 - p_a) included: 4 ULP.

``python tests/test_c_accuracy.py [libsymce.so]`` prints the worst ULPs per kernel and dtype (of
the current generated/c, or of a prebuilt library).
"""

from __future__ import annotations

import sys

import mpmath
import numpy as np
import pytest

from symce import reference as R

from c_build import clib, clib_fast_math  # noqa: F401  (fixtures)
from support import ulp_error as _ulp_error

DTYPES = (np.float32, np.float64)
ROW_KS = (2, 3, 10)
ROWS = 6  # rows per K
LOGIT_RANGE = 30.0
SIGMOID_RANGE = {np.float32: 85.0, np.float64: 700.0}
BOUND = {
    "softmax": 4,
    "log_softmax": 4,
    "logsumexp": 4,
    "softmax_cross_entropy": 4,
    "softmax_cross_entropy_grad": 4,
    "sigmoid": 2,
    "sigmoid_grad": 2,
    "softmax_jacobian (dominant class)": 4,
}


def ulp_error(actual, reference) -> float:
    """support.ulp_error at the reference's precision (at mpmath's default 15 digits the
    difference would itself be rounded to a double)."""
    with mpmath.workdps(R.DPS):
        return _ulp_error(actual, reference)


def row_digits(row) -> int:
    """Working digits for the raw definition of one row: 50 + spread/2.3 + 10."""
    finite = np.asarray(row, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    return R.DPS + int(spread / 2.3) + 10


def raw_by_row(name, z, *rest, **opts):
    """form="raw" reference of a row kernel, each row at the digits its own spread needs."""
    parts = []
    for r in range(z.shape[0]):
        args = (z[r : r + 1],) + tuple(np.asarray(a)[r : r + 1] for a in rest)
        parts.append(
            np.atleast_1d(R.evaluate(name, *args, form="raw", dps=row_digits(z[r]), **opts))
        )
    return np.concatenate(parts, axis=0)


def _logits(rng, dtype, n, k):
    return rng.uniform(-LOGIT_RANGE, LOGIT_RANGE, (n, k)).astype(dtype)


# ----------------------------------------------------------------------------------------------
# Measurements: worst ULP of one kernel in one dtype (the tests and __main__ share them)
# ----------------------------------------------------------------------------------------------
def row_kernel_ulps(lib, dtype, seed=20):
    """{kernel: worst ULP} for the softmax family and softmax cross-entropy, |z| <= 30."""
    rng = np.random.default_rng(seed + (dtype == np.float32))
    worst = {}

    def note(name, err):
        worst[name] = max(worst.get(name, 0.0), err)

    for K in ROW_KS:
        z = _logits(rng, dtype, ROWS, K)
        zf = z.astype(np.float64)
        for name in ("softmax", "log_softmax", "logsumexp"):
            note(name, ulp_error(lib.call(name, dtype, z), raw_by_row(name, zf)))
        labels = rng.integers(0, K, ROWS)
        loss = lib.call("softmax_cross_entropy", dtype, z, labels, reduction="none")
        note(
            "softmax_cross_entropy",
            ulp_error(loss, raw_by_row("softmax_cross_entropy", zf, labels, reduction="none")),
        )
        grad = lib.call("softmax_cross_entropy_grad", dtype, z, labels, reduction="sum")
        ref = raw_by_row("softmax_cross_entropy_grad", zf, labels, reduction="sum")
        # p_t - 1 with p_t > 1/2 is a cancellation (the slot is p ysum - y~): left out
        keep = np.array(
            [
                [not (c == labels[r] and ref[r, c] + 1 > mpmath.mpf(0.5)) for c in range(K)]
                for r in range(ROWS)
            ]
        )
        note("softmax_cross_entropy_grad", ulp_error(grad[keep], ref[keep]))
    return worst


def sigmoid_inputs(dtype, seed=21):
    big = SIGMOID_RANGE[dtype]
    rng = np.random.default_rng(seed)
    x = np.concatenate(
        [
            np.linspace(-big, big, 241),
            rng.uniform(-big, big, 160),
            rng.uniform(-30, 30, 120),
            rng.uniform(-1, 1, 40),
            rng.standard_normal(20) * 1e-6,
        ]
    )
    return x.astype(dtype)


def sigmoid_ulps(lib, dtype):
    x = sigmoid_inputs(dtype)
    xf = x.astype(np.float64)
    return {
        name: ulp_error(lib.call(name, dtype, x), R.evaluate(name, xf, form="raw"))
        for name in ("sigmoid", "sigmoid_grad")
    }


def dominant_rows(dtype, K, seed=22):
    """Rows where class 0 dominates: 1 - p_0 = 10^-6 ... 10^-12 (others in [-1, 1])."""
    rng = np.random.default_rng(seed + K)
    rows = []
    for m in range(6, 13):
        rest = rng.uniform(-1, 1, K - 1)
        gap = np.log(np.sum(np.exp(rest)) * (10.0**m - 1))  # p_0 = 1 - 10^-m
        rows.append(np.concatenate([[gap], rest]))
    return np.array(rows).astype(dtype)


def jacobian_dominant_ulps(lib, dtype):
    """Worst ULP over every entry of J (diagonal p_a (1 - p_a) included) on dominant rows."""
    worst = 0.0
    for K in ROW_KS:
        z = dominant_rows(dtype, K)
        J = lib.call("softmax_jacobian", dtype, z)
        worst = max(worst, ulp_error(J, raw_by_row("softmax_jacobian", z.astype(np.float64))))
    return {"softmax_jacobian (dominant class)": worst}


def measure(lib):
    """{(kernel, dtype name): worst ULP} for every bounded kernel."""
    table = {}
    for dtype in DTYPES:
        for part in (row_kernel_ulps, sigmoid_ulps, jacobian_dominant_ulps):
            for name, err in part(lib, dtype).items():
                table[(name, np.dtype(dtype).name)] = err
    return table


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------
def _check(table):
    bad = {k: v for k, v in table.items() if not v <= BOUND[k]}
    assert not bad, f"over the ULP bounds {BOUND}: {bad}"


# each bound in the default build and in both -ffast-math builds (symce.h: the bounds hold there)
@pytest.mark.parametrize("dtype", DTYPES)
def test_row_kernels_within_4_ulp(clib_fast_math, dtype):
    _check(row_kernel_ulps(clib_fast_math, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_within_2_ulp(clib_fast_math, dtype):
    _check(sigmoid_ulps(clib_fast_math, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_jacobian_of_a_dominant_class(clib_fast_math, dtype):
    clib = clib_fast_math
    _check(jacobian_dominant_ulps(clib, dtype))
    # and the diagonal entry itself is p_a (1 - p_a) ~ 10^-m, not the 0 of a cancelled 1 - p_a
    z = dominant_rows(dtype, 3)
    diag = clib.call("softmax_jacobian", dtype, z)[:, 0, 0].astype(np.float64)
    np.testing.assert_allclose(diag, 10.0 ** -np.arange(6, 13), rtol=1e-3)


def test_measures_can_fail(clib):
    """The ULP measure sees one ULP: a result nudged by 5 ULP is over the bound."""
    z = _logits(np.random.default_rng(0), np.float64, 2, 3)
    p = clib.call("softmax", np.float64, z)
    ref = raw_by_row("softmax", z)
    assert ulp_error(p, ref) <= BOUND["softmax"]
    nudged = p + 5 * np.spacing(p)
    assert ulp_error(nudged, ref) > BOUND["softmax"]


if __name__ == "__main__":  # python tests/test_c_accuracy.py [prebuilt libsymce.so]
    import c_build

    lib = c_build.CLib(c_build.Path(sys.argv[1])) if len(sys.argv) > 1 else c_build.library()
    for (name, dt), err in measure(lib).items():
        print(f"{name:36s} {dt:8s} {err:8.3f} ULP  (bound {BOUND[name]})")
