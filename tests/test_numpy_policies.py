"""The input policies of docs/semantics.md ("Input policies") in the generated NumPy module.

* precision: float32 input to every kernel is computed in float64 and rounded once (here the
  cross-entropy from probabilities and the BCE kernels, bit for bit the float64 computation,
  cast), and the BCE gradient at subnormal probabilities, weighted, is within an ULP of mpmath;
* 'mean' over a zero total class weight is NaN (loss and gradient), also with label smoothing;
* labels or probability targets: a floating target is probability targets and must lie in
  [0, 1] (NaN passes), so labels given as floats in the input's shape are an error that says
  what to do, never a (negative) loss;
* arrays next to the first input: integer and bool arrays are converted to its dtype, as Python
  numbers and lists are (same numbers); a floating array of the other precision is a TypeError
  that says so; scalar options take 0-d arrays as the numbers they hold, and an error for any
  other array says that an array was given.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from symce import reference
from symce.lang import numpy_backend

from support import ulp_error


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
    return {
        "p": (p / p.sum(axis=1, keepdims=True)).astype(np.float32),
        "labels": rng.integers(0, K, N),
        "soft": rng.random((N, K)).astype(np.float32),
        "y": rng.random((N, K)).astype(np.float32),
        "w": rng.uniform(0.2, 2, K).astype(np.float32),
        "x": rng.normal(0, 4, (N, K)).astype(np.float32),
    }


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
    for name in (
        "sigmoid_binary_cross_entropy",
        "sigmoid_binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy_with_grad",
    ):
        calls.append((name, ("x", "y"), {"weight": "w", "pos_weight": "w"}))
    for name, args, opts in calls:
        f = getattr(sk, name)
        single = f(
            *(a[k] for k in args),
            reduction=reduction,
            **{k: a.get(v, v) if isinstance(v, str) else v for k, v in opts.items()},
        )
        double = f(
            *(wide[k] for k in args),
            reduction=reduction,
            **{k: wide.get(v, v) if isinstance(v, str) else v for k, v in opts.items()},
        )
        single = single if isinstance(single, tuple) else (single,)
        double = double if isinstance(double, tuple) else (double,)
        for s, d in zip(single, double):
            assert np.asarray(s).dtype == np.float32, name
            np.testing.assert_array_equal(
                s, np.asarray(d).astype(np.float32), err_msg=f"{name} {reduction}"
            )


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
    ref = reference.evaluate(
        "binary_cross_entropy_grad",
        p.astype(np.float64),
        y.astype(np.float64),
        form="closed",
        reduction="sum",
        weight=w.astype(np.float64),
    )
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
    for name in (
        "cross_entropy",
        "cross_entropy_grad",
        "softmax_cross_entropy",
        "softmax_cross_entropy_grad",
        "softmax_cross_entropy_with_grad",
    ):
        out = getattr(sk, name)(
            p if name.startswith("cross") else z,
            np.array([0, 0]),
            weight=[0.0, 1.0, 1.0],
            label_smoothing=eps,
        )
        for v in out if isinstance(out, tuple) else (out,):
            assert np.isnan(v).all(), f"{name}: {v}"


# ----------------------------------------------------------------------------------------------
# Labels or probability targets
# ----------------------------------------------------------------------------------------------
CE_KERNELS = (
    "cross_entropy",
    "cross_entropy_grad",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_grad",
)


@pytest.mark.parametrize("name", CE_KERNELS)
def test_probability_targets_in_0_1(sk, name):
    f = getattr(sk, name)
    for first, target, shown in (
        ([0.5, 0.5, 0.5], [2.0, 2.0, 2.0], "got 2.0 at index 0"),  # labels as floats
        ([0.5, 0.5], [1.0, -100.0], "got -100.0 at index 1"),
        (
            [[0.2, 0.5, 0.3], [0.5, 0.1, 0.4]],
            [[0, 1, 0], [0, 1.5, 0]],
            r"got 1.5 at index \(1, 1\)",
        ),
        (np.float32([0.2, 0.5, 0.3]), np.float32([0, -0.25, 1]), "got -0.25 at index 1"),
    ):
        first = np.asarray(first, dtype=getattr(first, "dtype", np.float64))
        target = np.asarray(target, dtype=first.dtype)
        with pytest.raises(
            ValueError,
            match=rf"^target: expected probability targets in "
            rf"\[0, 1\].*integers.*{shown}",
        ):
            f(first, target)
    # in [0, 1], NaN and -0.0 pass; and a bad probs is reported before the target
    f(np.array([0.2, 0.5, 0.3]), np.array([np.nan, -0.0, 1.0]))
    f(np.array([0.2, 0.5, 0.3]), np.array([0.0, 1.0, 0.0]))
    if name.startswith("cross"):
        with pytest.raises(ValueError, match="^probs: .*got 1.5"):
            f(np.array([0.2, 1.5, 0.3]), np.array([2.0, 2.0, 2.0]))


# ----------------------------------------------------------------------------------------------
# Integer and bool arrays; 0-d arrays for scalar options
# ----------------------------------------------------------------------------------------------
INT_DTYPES = [np.int64, np.int32, np.uint8, np.bool_]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("int_dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_integer_and_bool_arrays_are_converted(sk, dtype, int_dtype):
    rng = np.random.default_rng(4)
    z = rng.normal(0, 2, (3, 4)).astype(dtype)
    p = sk.softmax(z)
    labels = np.array([0, 3, 1])
    w_int = np.array([1, 0, 2, 1]).astype(int_dtype)
    w_list = np.array([1, 0, 2, 1]).astype(int_dtype).astype(float).tolist()
    y_int = (rng.random((3, 4)) > 0.5).astype(int_dtype)
    y_float = y_int.astype(dtype)
    for name in (
        "cross_entropy",
        "cross_entropy_grad",
        "softmax_cross_entropy",
        "softmax_cross_entropy_with_grad",
    ):
        first = p if name.startswith("cross") else z
        f = getattr(sk, name)
        _same(f(first, labels, weight=w_int), f(first, labels, weight=w_list), dtype, name)
    for name in (
        "binary_cross_entropy",
        "binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy_with_grad",
    ):
        first = p if name.startswith("binary") else z
        f = getattr(sk, name)
        opts = {"pos_weight": w_int} if name.startswith("sigmoid") else {}
        opts_list = {"pos_weight": w_list} if opts else {}
        _same(
            f(first, y_int, weight=w_int, **opts),
            f(first, y_float, weight=w_list, **opts_list),
            dtype,
            name,
        )
    g_int = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]]).astype(int_dtype)
    _same(sk.softmax_vjp(z, g_int), sk.softmax_vjp(z, g_int.astype(dtype)), dtype, "vjp")


def _same(a, b, dtype, what):
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        assert np.asarray(x).dtype == dtype, what
        np.testing.assert_array_equal(x, y, err_msg=what)


def test_other_float_and_non_real_arrays_are_refused(sk):
    z = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(
        TypeError,
        match=r"^weight: expected dtype float32 .*got float64: "
        r"float32 and float64 arrays are never mixed "
        r"\(integer and bool arrays.*are converted\)",
    ):
        sk.softmax_cross_entropy(z, np.array([0, 1]), weight=np.ones(3))
    for bad in (np.ones(3, dtype=np.complex64), np.array(["a", "b", "c"])):
        with pytest.raises(
            TypeError,
            match=r"^weight: expected real numbers, got an array of "
            r"dtype",
        ):
            sk.softmax_cross_entropy(z, np.array([0, 1]), weight=bad)


def test_zero_d_arrays_are_scalars(sk):
    rng = np.random.default_rng(5)
    z = rng.normal(0, 2, (3, 4))
    labels = np.array([0, 3, 1])
    f = sk.softmax_cross_entropy_with_grad
    want = f(z, labels, reduction="sum", label_smoothing=0.25, ignore_index=3)
    for eps in (np.array(0.25), np.array(0.25, dtype=np.float32), np.float32(0.25)):
        for red in ("sum", np.array("sum")):
            for ii in (3, np.array(3), np.array(3, dtype=np.uint8)):
                _same(
                    f(z, labels, reduction=red, label_smoothing=eps, ignore_index=ii),
                    want,
                    np.float64,
                    f"{eps!r} {red!r} {ii!r}",
                )
    _same(sk.softmax(z, axis=np.array(0)), sk.softmax(z, axis=0), np.float64, "axis")


def test_scalar_option_messages_say_what_was_given(sk):
    z = np.zeros((2, 3))
    labels = np.array([0, 1])
    f = sk.softmax_cross_entropy
    for kwargs, exc, pattern in (
        (
            {"label_smoothing": np.array([0.25])},
            TypeError,
            r"^label_smoothing: expected a number in \[0, 1\], got an array of shape \(1,\) "
            r"\(a scalar was expected\)$",
        ),
        (
            {"label_smoothing": np.array(True)},
            TypeError,
            r"^label_smoothing: expected a number in \[0, 1\], got True \(a 0-d bool array\)$",
        ),
        (
            {"label_smoothing": np.array(1.5)},
            ValueError,
            r"^label_smoothing: expected a number in \[0, 1\], got 1.5$",
        ),
        (
            {"ignore_index": np.array([1, 2])},
            TypeError,
            r"^ignore_index: expected an integer, got an array of shape \(2,\)",
        ),
        (
            {"ignore_index": np.array(1.0)},
            TypeError,
            r"^ignore_index: expected an integer, got 1.0 \(a 0-d float64 array\)$",
        ),
        (
            {"reduction": np.array(["sum"])},
            ValueError,
            r"^reduction: expected 'none', 'mean' or 'sum', got an array of shape \(1,\)",
        ),
    ):
        with pytest.raises(exc, match=pattern):
            f(z, labels, **kwargs)
    with pytest.raises(TypeError, match=r"^axis: expected an integer, got an array of shape"):
        sk.softmax(z, axis=np.array([1]))
