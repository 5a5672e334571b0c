"""The input policies of docs/semantics.md ("Input policies") in the generated NumPy module.

* precision: float32 input to every kernel is computed in float64 and rounded once (here the
  cross-entropy from probabilities and the BCE kernels, bit for bit the float64 computation,
  cast), and the BCE gradient at subnormal probabilities, weighted, is within an ULP of mpmath;
* 'mean' over a zero total class weight is NaN (loss and gradient), also with label smoothing;
* labels or probability targets: a floating target is probability targets and must lie in
  [0, 1] (NaN passes), so labels given as floats in the input's shape are an error that says
  what to do, never a (negative) loss;
"""
from __future__ import annotations

import mpmath
import numpy as np
import pytest

from support import ulp_error
from symce import reference
from symce.lang import numpy_backend


@pytest.fixture(scope="module")
def sk():
    return numpy_backend.load_generated()


# ----------------------------------------------------------------------------------------------
# Precision
# ----------------------------------------------------------------------------------------------
def _precision_inputs():
    rng = np.random.default_rng(8)
    N, K = 400, 7
    p = rng.random((N, K)) + 1e-3
    return {"p": (p / p.sum(axis=1, keepdims=True)).astype(np.float32),
            "labels": rng.integers(0, K, N),
            "soft": rng.random((N, K)).astype(np.float32),
            "y": rng.random((N, K)).astype(np.float32),
            "w": rng.uniform(0.2, 2, K).astype(np.float32),
            "x": rng.normal(0, 4, (N, K)).astype(np.float32)}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float32_is_the_float64_computation_rounded_once(sk, reduction):
    a = _precision_inputs()
    wide = {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in a.items()}
    calls = []
    for name in ("cross_entropy", "cross_entropy_grad"):
        calls.append((name, ("p", "labels"), {"label_smoothing": 0.1, "weight": "w"}))
        calls.append((name, ("p", "soft"), {}))
    for name in ("binary_cross_entropy", "binary_cross_entropy_grad"):
        calls.append((name, ("p", "y"), {"weight": "w"}))
    for name in ("sigmoid_binary_cross_entropy", "sigmoid_binary_cross_entropy_grad",
                 "sigmoid_binary_cross_entropy_with_grad"):
        calls.append((name, ("x", "y"), {"weight": "w", "pos_weight": "w"}))
    for name, args, opts in calls:
        f = getattr(sk, name)
        single = f(*(a[k] for k in args), reduction=reduction,
                   **{k: a.get(v, v) if isinstance(v, str) else v for k, v in opts.items()})
        double = f(*(wide[k] for k in args), reduction=reduction,
                   **{k: wide.get(v, v) if isinstance(v, str) else v for k, v in opts.items()})
        single = single if isinstance(single, tuple) else (single,)
        double = double if isinstance(double, tuple) else (double,)
        for s, d in zip(single, double):
            assert np.asarray(s).dtype == np.float32, name
            np.testing.assert_array_equal(s, np.asarray(d).astype(np.float32),
                                          err_msg=f"{name} {reduction}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_grad_at_subnormal_probabilities(sk, dtype):
    """(p - y) / 1e-12 (the clamped p(1 - p)) times w: the weight must not multiply p - y before
    the division (that product is rounded in the subnormal range, up to 50% off)."""
    tiny = 2.0**-149 if dtype == np.float32 else 2.0**-1074
    p = (np.array([3, 5, 7, 1000, 2**20 + 1]) * tiny).astype(dtype)
    y = np.zeros_like(p)
    y[-1] = p[0]
    w = np.full_like(p, 0.5)
    w[1] = 0.3
    got = sk.binary_cross_entropy_grad(p, y, weight=w, reduction="sum")
    ref = reference.evaluate("binary_cross_entropy_grad", p.astype(np.float64),
                             y.astype(np.float64), form="closed", reduction="sum",
                             weight=w.astype(np.float64))
    with mpmath.workdps(40):
        err = ulp_error(got, ref)
    assert err <= 1, f"{err:.3g} ULP: {got} vs {ref}"


# ----------------------------------------------------------------------------------------------
# 'mean' over a zero total weight
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_mean_over_zero_weight_is_nan(sk, dtype, eps):
    z = np.array([[1.0, 0.0, 3.0], [2.0, 1.0, 0.0]], dtype=dtype)
    p = sk.softmax(z)
    for name in ("cross_entropy", "cross_entropy_grad", "softmax_cross_entropy",
                 "softmax_cross_entropy_grad", "softmax_cross_entropy_with_grad"):
        out = getattr(sk, name)(p if name.startswith("cross") else z, np.array([0, 0]),
                                weight=[0.0, 1.0, 1.0], label_smoothing=eps)
        for v in out if isinstance(out, tuple) else (out,):
            assert np.isnan(v).all(), f"{name}: {v}"


# ----------------------------------------------------------------------------------------------
# Labels or probability targets
# ----------------------------------------------------------------------------------------------
CE_KERNELS = ("cross_entropy", "cross_entropy_grad", "softmax_cross_entropy",
              "softmax_cross_entropy_grad", "softmax_cross_entropy_with_grad")


@pytest.mark.parametrize("name", CE_KERNELS)
def test_probability_targets_in_0_1(sk, name):
    f = getattr(sk, name)
    for first, target, shown in (
            ([.5, .5, .5], [2.0, 2.0, 2.0], "got 2.0 at index 0"),        # labels as floats
            ([0.5, 0.5], [1.0, -100.0], "got -100.0 at index 1"),
            ([[.2, .5, .3], [.5, .1, .4]], [[0, 1, 0], [0, 1.5, 0]], r"got 1.5 at index \(1, 1\)"),
            (np.float32([.2, .5, .3]), np.float32([0, -0.25, 1]), "got -0.25 at index 1")):
        first = np.asarray(first, dtype=getattr(first, "dtype", np.float64))
        target = np.asarray(target, dtype=first.dtype)
        with pytest.raises(ValueError, match=rf"^target: expected probability targets in "
                                             rf"\[0, 1\].*integers.*{shown}"):
            f(first, target)
    # in [0, 1], NaN and -0.0 pass; and a bad probs is reported before the target
    f(np.array([.2, .5, .3]), np.array([np.nan, -0.0, 1.0]))
    f(np.array([.2, .5, .3]), np.array([0.0, 1.0, 0.0]))
    if name.startswith("cross"):
        with pytest.raises(ValueError, match="^probs: .*got 1.5"):
            f(np.array([.2, 1.5, .3]), np.array([2.0, 2.0, 2.0]))
