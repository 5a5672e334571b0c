"""Properties of the generated NumPy kernels, over inputs hypothesis chooses: softmax rows sum
to 1, gradient rows sum to 0 for proper targets (the target sums to 1, no weights), losses are
non-negative, and gradients agree with finite differences of the losses (float64).
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from symce.lang import numpy_backend

sk = numpy_backend.load_generated()
# CI runs a fixed set of examples (a red CI run must be reproducible); developers' runs explore
SETTINGS = settings(max_examples=60, deadline=None, derandomize=os.environ.get("CI") == "true")
DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def logits(draw, max_abs=None, min_k=1):
    """(dtype, an (N, K) batch of finite logits); by default anywhere in the dtype's range."""
    dt = draw(DTYPES)
    n = draw(st.integers(1, 5))
    k = draw(st.integers(min_k, 9))
    bound = max_abs if max_abs is not None else float(np.finfo(dt).max) / 4
    elements = st.floats(
        -bound, bound, allow_nan=False, allow_infinity=False, width=np.finfo(dt).bits
    )
    return dt, draw(hnp.arrays(dt, (n, k), elements=elements))


@st.composite
def proper_target(draw, shape, dt):
    """Integer labels, or a probability target whose rows sum to 1 (up to rounding)."""
    n, k = shape
    if draw(st.booleans()):
        return draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    raw = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(0, 1)))
    raw[:, 0] += 1e-3  # no all-zero row
    return (raw / raw.sum(axis=1, keepdims=True)).astype(dt)


def eps_of(dt):
    return float(np.finfo(dt).eps)


@SETTINGS
@given(logits())
def test_softmax_rows_sum_to_one(case):
    dt, z = case
    p = sk.softmax(z)
    assert p.dtype == dt and np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(
        p.sum(axis=-1, dtype=np.float64), 1, rtol=0, atol=2 * z.shape[1] * eps_of(dt)
    )
    lp = sk.log_softmax(z)
    assert np.all(lp <= 0) and np.all(np.isfinite(sk.logsumexp(z)))
    assert np.all(sk.logsumexp(z) >= z.max(axis=-1))


@SETTINGS
@given(logits(max_abs=50.0), st.floats(-40, 40))
def test_softmax_is_shift_invariant(case, c):
    dt, z = case
    shifted = (z.astype(np.float64) + c).astype(dt)
    np.testing.assert_allclose(sk.softmax(shifted), sk.softmax(z), rtol=0, atol=400 * eps_of(dt))


@SETTINGS
@given(st.data(), logits(max_abs=1e4), st.floats(0, 1))
def test_gradient_rows_sum_to_zero_for_proper_targets(data, case, eps):
    dt, z = case
    target = data.draw(proper_target(z.shape, dt))
    grad = sk.softmax_cross_entropy_grad(z, target, label_smoothing=eps, reduction="sum")
    assert grad.dtype == dt
    # p sum(y~) - y~ sums to (sum p - 1) sum(y~): a few ulps per entry
    np.testing.assert_allclose(
        grad.sum(axis=-1, dtype=np.float64), 0, rtol=0, atol=4 * z.shape[1] * eps_of(dt)
    )
    jac = sk.softmax_jacobian(z)
    np.testing.assert_allclose(
        jac.sum(axis=1, dtype=np.float64), 0, rtol=0, atol=4 * z.shape[1] * eps_of(dt)
    )


@SETTINGS
@given(st.data(), logits(), st.floats(0, 1))
def test_losses_are_non_negative(data, case, eps):
    dt, z = case
    target = data.draw(proper_target(z.shape, dt))
    weight = data.draw(hnp.arrays(dt, (z.shape[1],), elements=st.floats(0, 10, width=32)))
    loss = sk.softmax_cross_entropy(z, target, reduction="none", weight=weight, label_smoothing=eps)
    assert np.all(loss >= 0), loss
    p = sk.softmax(z)
    assert np.all(sk.cross_entropy(p, target, reduction="none", label_smoothing=eps) >= 0)
    y = data.draw(hnp.arrays(dt, z.shape, elements=st.floats(0, 1, width=32)))
    pw = data.draw(hnp.arrays(dt, (z.shape[1],), elements=st.floats(0, 10, width=32)))
    assert np.all(sk.sigmoid_binary_cross_entropy(z, y, reduction="none", pos_weight=pw) >= 0)
    assert np.all(sk.binary_cross_entropy(sk.sigmoid(z), y, reduction="none") >= 0)


def _central(f, x, h):
    """Gradient of the scalar f at x by central differences."""
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        out[idx] = (f(up) - f(down)) / (2 * h)
    return out


moderate = st.floats(-8, 8, allow_nan=False)


@SETTINGS
@given(
    st.data(),
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5),
        elements=moderate,
    ),
    st.floats(0, 1),
    st.sampled_from(["mean", "sum", "none"]),
)
def test_gradients_match_finite_differences(data, z, eps, reduction):
    target = data.draw(proper_target(z.shape, np.float64))
    weight = data.draw(hnp.arrays(np.float64, (z.shape[1],), elements=st.floats(0.1, 3)))
    opts = dict(label_smoothing=eps, reduction=reduction, weight=weight)

    def total(f, x, *args, **kw):
        return lambda v: float(np.sum(f(v, *args, **kw)))

    got = sk.softmax_cross_entropy_grad(z, target, **opts)
    fd = _central(total(sk.softmax_cross_entropy, z, target, **opts), z, 1e-6)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7)
    y = data.draw(hnp.arrays(np.float64, z.shape, elements=st.floats(0, 1)))
    pw = data.draw(hnp.arrays(np.float64, z.shape[1:], elements=st.floats(0, 3)))
    got = sk.sigmoid_binary_cross_entropy_grad(z, y, reduction=reduction, pos_weight=pw)
    fd = _central(
        total(sk.sigmoid_binary_cross_entropy, z, y, reduction=reduction, pos_weight=pw), z, 1e-6
    )
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7)
    p = np.clip(sk.sigmoid(z), 0.05, 0.95)
    got = sk.binary_cross_entropy_grad(p, y, reduction=reduction)
    fd = _central(total(sk.binary_cross_entropy, p, y, reduction=reduction), p, 1e-7)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(max_dims=3),
        elements=st.floats(allow_nan=False, allow_infinity=False),
    )
)
def test_sigmoid_is_a_probability_and_symmetric(x):
    s = sk.sigmoid(x)
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(s + sk.sigmoid(-x), 1, rtol=0, atol=2 * eps_of(np.float64))
    np.testing.assert_allclose(sk.sigmoid_grad(x), s * sk.sigmoid(-x), rtol=1e-13, atol=1e-300)
