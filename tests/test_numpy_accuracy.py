"""Accuracy of the generated NumPy kernels in ULPs, against the raw mpmath definitions at enough
digits (docs/semantics.md, numerical policy): the row kernels carry z - shift as zs + zlo
(TwoSum) and S as 1 + Srest, and work in float64 also for float32 input, rounding once; the
sigmoid is branch-free.  Also: the TwoSum helper is exact, the +inf row semantics, and the
"round once" rule itself (a float32 result is the float64 computation rounded).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from symce import reference as R
from symce.lang import numpy_backend

from support import ulp_error

F64, F32 = np.float64, np.float32
DTYPES = pytest.mark.parametrize("dt", [F64, F32], ids=["f64", "f32"])
ROW_ULP = 4  # softmax, log_softmax, logsumexp, softmax cross-entropy (and its gradient)
SIGMOID_ULP = 2  # sigmoid, and sigmoid_grad in float32 (computed in float64, rounded once)
# sigmoid_grad in float64 is the product sigmoid(-x) * sigmoid(x) of two values good to ~1 ulp
# each (NumPy's exp, the rounding of 1 + exp(-|x|), the division), so ~2 ulp relative, up to
# ~3.3 ulp where the product lies just below a power of two (measured worst 3.27 over 6000 x)
SIGMOID_GRAD_F64_ULP = 3.5
JACOBIAN_ULP = 4


@pytest.fixture(scope="module")
def sk():
    return numpy_backend.load_generated()


def dps_for(z) -> int:
    """Working digits for the raw reference of a batch: the largest logit gap cancels ~gap/2.3."""
    z = np.asarray(z, dtype=float)
    finite = z[np.isfinite(z)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    return 50 + int(spread / 2.3) + 10


def row_logits(rng, K, dt, n=6):
    """|z| <= 30: uniform rows, a dominant class, near-equal logits and wide-range rows."""
    z = rng.uniform(-30, 30, (n, K))
    z[1] = rng.uniform(-1, 1, K)
    z[1, rng.integers(K)] = 29.5  # one class dominates
    z[2] = 7.25 + rng.uniform(-1e-6, 1e-6, K)  # nearly equal
    z[3] = rng.choice([-30.0, 30.0], K) * rng.random(K)
    return z.astype(dt)


# ----------------------------------------------------------------------------------------------
# Row kernels: within 4 ULP of the raw definitions, K in {2, 3, 10}, |z| <= 30
# ----------------------------------------------------------------------------------------------
@DTYPES
@pytest.mark.parametrize("K", [2, 3, 10])
def test_row_kernels_within_4_ulp(sk, K, dt):
    rng = np.random.default_rng([K, np.dtype(dt).itemsize])
    z = row_logits(rng, K, dt)
    dps = dps_for(z)
    for name in ("softmax", "log_softmax", "logsumexp"):
        got = getattr(sk, name)(z)
        err = ulp_error(got, R.evaluate(name, z, form="raw", dps=dps))
        assert err <= ROW_ULP, f"{name}: {err:.3g} ulp"


@DTYPES
@pytest.mark.parametrize("K", [2, 3, 10])
def test_softmax_cross_entropy_within_4_ulp(sk, K, dt):
    rng = np.random.default_rng([K, np.dtype(dt).itemsize, 1])
    z = row_logits(rng, K, dt)
    dps = dps_for(z)
    labels = rng.integers(0, K, len(z))
    soft = rng.random(z.shape).astype(dt)
    for target, reductions in ((labels, ("none", "mean")), (soft, ("none", "sum"))):
        for reduction in reductions:
            loss, grad = sk.softmax_cross_entropy_with_grad(z, target, reduction=reduction)
            ref_loss = R.evaluate(
                "softmax_cross_entropy", z, target, form="raw", reduction=reduction, dps=dps
            )
            err = ulp_error(loss, ref_loss)
            assert err <= ROW_ULP, f"loss {reduction}: {err:.3g} ulp"
            if target is labels:  # p_k (scaled) off the label; p_t - 1 on it cancels by nature
                ref = R.evaluate(
                    "softmax_cross_entropy_grad",
                    z,
                    target,
                    form="raw",
                    reduction=reduction,
                    dps=dps,
                )
                off = np.arange(K) != labels[:, None]
                err = ulp_error(grad[off], ref[off])
                assert err <= ROW_ULP, f"grad {reduction}: {err:.3g} ulp"


def _mp_softmax_ce(row, label):
    """The loss log sum_k e^{z_k} - z_t and p (the gradient off the label), exactly enough."""
    import mpmath

    with mpmath.workdps(40):
        z = [mpmath.mpf(float(v)) for v in row]
        top = max(z)
        terms = [mpmath.exp(v - top) for v in z]
        total = mpmath.fsum(terms)
        lse = top + mpmath.log(total)
        return lse - z[label], [t / total for t in terms]


@DTYPES
def test_softmax_cross_entropy_at_k_128000(sk, dt):
    """One row of 128000 classes (several blocks' worth of columns in one row)."""
    rng = np.random.default_rng([128, np.dtype(dt).itemsize])
    z = rng.uniform(-30, 30, (1, 128000)).astype(dt)
    label = 77
    loss, grad = sk.softmax_cross_entropy_with_grad(z, np.array([label]), reduction="sum")
    ref_loss, ref_p = _mp_softmax_ce(z[0], label)
    assert ulp_error(loss, ref_loss) <= ROW_ULP
    some = np.r_[0:label, label + 1 : z.shape[1]][::37]  # a sample of the classes, off the label
    ref_p = np.array(ref_p, dtype=object)
    assert ulp_error(grad[0][some], ref_p[some]) <= ROW_ULP
    assert ulp_error(sk.softmax(z)[0][some], ref_p[some]) <= ROW_ULP


@DTYPES
@pytest.mark.parametrize("K", [2, 10, 1000])
def test_dominated_rows(sk, K, dt):
    """The label is the argmax and dominates: the loss log1p(Srest) is about 1e-8 (and 1e-5,
    1e-12), kept to the last bits (1 - p at the label likewise)."""
    losses = np.array([1e-5, 1e-8, 1e-12]) if dt is F64 else np.array([1e-5, 1e-8])
    z = np.zeros((len(losses), K))
    z[:, 0] = np.log((K - 1) / losses)  # the others at 0: Srest = (K - 1) e^{-z_0}
    z = z.astype(dt)
    loss, grad = sk.softmax_cross_entropy_with_grad(
        z, np.zeros(len(z), dtype=int), reduction="none"
    )
    for r in range(len(z)):
        ref_loss, ref_p = _mp_softmax_ce(z[r], 0)
        assert ulp_error(loss[r], ref_loss) <= ROW_ULP, (r, loss[r], ref_loss)
        assert ulp_error(-grad[r, 0], 1 - ref_p[0]) <= ROW_ULP
    np.testing.assert_allclose(loss.astype(float), losses, rtol=1e-3)


# ----------------------------------------------------------------------------------------------
# Sigmoid: within 2 ULP (sigmoid_grad in float64: see SIGMOID_GRAD_F64_ULP)
# ----------------------------------------------------------------------------------------------
@DTYPES
def test_sigmoid_within_2_ulp(sk, dt):
    rng = np.random.default_rng(np.dtype(dt).itemsize)
    big = 700.0 if dt is F64 else 85.0
    x = np.concatenate(
        [
            rng.uniform(-big, big, 150),
            rng.uniform(-4, 4, 150),
            [0.0, -0.0, 1e-300, -1e-30, big, -big],
        ]
    ).astype(dt)
    bound = {
        "sigmoid": SIGMOID_ULP,
        "sigmoid_grad": SIGMOID_GRAD_F64_ULP if dt is F64 else SIGMOID_ULP,
    }
    for name, limit in bound.items():
        err = ulp_error(getattr(sk, name)(x), R.evaluate(name, x, form="raw"))
        assert err <= limit, f"{name}: {err:.3g} ulp"


# ----------------------------------------------------------------------------------------------
# The Jacobian's diagonal for a dominant class: p_a (1 - p_a), with 1 - p_a = pc_a, no cancellation
# ----------------------------------------------------------------------------------------------
@DTYPES
@pytest.mark.parametrize("K", [2, 3, 10])
def test_jacobian_diagonal_of_a_dominant_class(sk, K, dt):
    gaps = 10.0 ** -np.arange(6, 13)  # 1 - p_a = 1e-6 .. 1e-12
    z = np.zeros((len(gaps), K))
    z[:, K - 1] = np.log((K - 1) / gaps)  # the others at 0: 1 - p_a ~ gap
    z = z.astype(dt)
    J = sk.softmax_jacobian(z)
    ref = R.evaluate("softmax_jacobian", z, form="raw", dps=60)
    got, want = J[:, K - 1, K - 1], ref[:, K - 1, K - 1]
    assert np.all(got > 0)
    err = ulp_error(got, want)
    assert err <= JACOBIAN_ULP, f"{err:.3g} ulp"
    np.testing.assert_allclose(got.astype(float), gaps, rtol=1e-5)  # ~ 1 - p_a


# ----------------------------------------------------------------------------------------------
# Round once: float32 results are the float64 computation, rounded
# ----------------------------------------------------------------------------------------------
def _widened(a):
    return a.astype(F64) if isinstance(a, np.ndarray) and a.dtype == F32 else a


def test_float32_is_the_float64_computation_rounded_once(sk):
    rng = np.random.default_rng(8)
    z = (rng.standard_normal((5, 6)) * 20).astype(F32)
    z[0, 2] = -np.inf
    g = rng.standard_normal((5, 6)).astype(F32)
    labels = rng.integers(0, 6, 5)
    w = (rng.random(6) + 0.5).astype(F32)
    calls = [
        ("softmax", (z,), {}),
        ("log_softmax", (z,), {}),
        ("logsumexp", (z,), {}),
        ("softmax_jacobian", (z,), {}),
        ("softmax_vjp", (z, g), {}),
        ("sigmoid", (z,), {}),
        ("sigmoid_grad", (z,), {}),
        ("softmax_cross_entropy_with_grad", (z, labels), dict(weight=w, label_smoothing=0.1)),
        ("softmax_cross_entropy", (z, rng.random((5, 6)).astype(F32)), dict(reduction="none")),
    ]
    for name, args, opts in calls:
        f = getattr(sk, name)
        got = f(*args, **opts)
        wide = f(*map(_widened, args), **{k: _widened(v) for k, v in opts.items()})
        for a, b in zip(got, wide) if name.endswith("_with_grad") else [(got, wide)]:
            assert np.asarray(a).dtype == F32
            np.testing.assert_array_equal(a, np.asarray(b).astype(F32), err_msg=name)


# ----------------------------------------------------------------------------------------------
# TwoSum: the printed helper gives the exact rounding error
# ----------------------------------------------------------------------------------------------
@DTYPES
def test_two_sum_err_is_exact(sk, dt):
    rng = np.random.default_rng(2)
    a = (rng.standard_normal(200) * 10.0 ** rng.integers(-8, 8, 200)).astype(dt)
    b = (rng.standard_normal(200) * 10.0 ** rng.integers(-8, 8, 200)).astype(dt)
    err = sk._two_sum_err(a, b)
    assert err.dtype == dt
    s = a + b
    for ai, bi, si, ei in zip(a, b, s, err):
        exact = Fraction(float(ai)) + Fraction(float(bi))
        assert exact == Fraction(float(si)) + Fraction(float(ei))
    assert np.any(err != 0)  # the cases above do round
    # 0 (not NaN) where the sum is not finite
    big = np.finfo(dt).max
    inf = np.array([np.inf, -np.inf, np.inf, big, np.nan], dtype=dt)
    other = np.array([-np.inf, 1.0, np.inf, big, 1.0], dtype=dt)
    with np.errstate(all="ignore"):  # the kernels call it so; inf - inf is NaN on the way
        np.testing.assert_array_equal(sk._two_sum_err(inf, other), np.zeros(5, dtype=dt))


# ----------------------------------------------------------------------------------------------
# Rows holding +inf (docs/semantics.md): that entry's p is NaN, the others' 0, lse +inf
# ----------------------------------------------------------------------------------------------
@DTYPES
def test_rows_holding_plus_inf(sk, dt):
    z = np.array([[np.inf, 0.0, -1.0], [2.0, np.inf, -np.inf], [np.inf, 5.0, np.inf]], dtype=dt)
    inf_at = np.isposinf(z)
    p = sk.softmax(z)
    assert np.all(np.isnan(p[inf_at])) and np.all(p[~inf_at] == 0)
    lp = sk.log_softmax(z)
    assert np.all(np.isnan(lp[inf_at])) and np.all(lp[~inf_at] == -np.inf)
    lse = sk.logsumexp(z)
    assert lse.dtype == dt and np.all(lse == np.inf)
    # along another axis too
    np.testing.assert_array_equal(sk.softmax(z.T, axis=0), p.T)
    # a row of -inf is still NaN / -inf, and a finite row next to them is untouched
    z2 = np.array([[-np.inf, -np.inf], [1.0, 2.0]], dtype=dt)
    assert np.all(np.isnan(sk.softmax(z2)[0])) and sk.logsumexp(z2)[0] == -np.inf
    np.testing.assert_array_equal(sk.softmax(z2)[1], sk.softmax(z2[1:])[0])
