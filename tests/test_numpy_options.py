"""Options of the generated NumPy kernels: PyTorch's weight, ignore_index, label_smoothing,
pos_weight and reduction.  Three views: the mpmath reference over the whole option grid, the
relations the options must satisfy, and parity with PyTorch (loss and autograd gradient, float32
and float64) for every combination.  The PyTorch tests skip when torch is missing, unless
SYMCE_REQUIRE_TORCH=1.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from symce import reference as R
from symce.lang import numpy_backend

from support import random_distribution, random_logits

F64, F32 = np.float64, np.float32
N, K = 6, 5
REDUCTIONS = ("none", "mean", "sum")
# integer labels; labels with ignored samples (default ignore_index, and a class index as
# ignore_index); probability targets
TARGETS = ("labels", "ignored", "ignore_class", "soft")


@pytest.fixture(scope="module")
def sk():
    return numpy_backend.load_generated()


def ce_inputs(target_kind, weighted, dt, seed=0):
    """logits, target and the target-related options for one grid point."""
    rng = np.random.default_rng([seed, TARGETS.index(target_kind), weighted])
    logits = random_logits(rng, N, K, dtype=dt)
    opts = {}
    if target_kind == "soft":
        target = random_distribution(rng, N, K, dt)
    else:
        target = rng.integers(0, K, N)
        if target_kind == "ignored":
            target[[1, 4]] = -100
        elif target_kind == "ignore_class":
            target[[0, 3]] = 1
            opts["ignore_index"] = 1
    if weighted:
        opts["weight"] = (rng.random(K) * 2 + 0.1).astype(dt)
    return logits, target, opts


def bce_inputs(logits, soft, weight, pos_weight, dt, seed=0):
    rng = np.random.default_rng([seed, logits, soft, len(weight or ""), pos_weight])
    x = (
        random_logits(rng, N, K, dtype=dt)
        if logits
        else (rng.random((N, K)) * 0.98 + 0.01).astype(dt)
    )
    y = rng.random((N, K)).astype(dt) if soft else rng.integers(0, 2, (N, K)).astype(dt)
    opts = {}
    if weight == "full":
        opts["weight"] = (rng.random((N, K)) + 0.2).astype(dt)
    elif weight == "per_class":
        opts["weight"] = (rng.random(K) + 0.2).astype(dt)
    if pos_weight:
        opts["pos_weight"] = (rng.random(K) * 3).astype(dt)
    return x, y, opts


# ----------------------------------------------------------------------------------------------
# The whole grid against the mpmath reference (float64, closed forms)
# ----------------------------------------------------------------------------------------------
def _close(got, ref, tol=1e-12):
    ref = np.asarray(ref, dtype=float)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.max(np.abs(ref), initial=1e-300))


@pytest.mark.parametrize("target_kind", TARGETS)
def test_cross_entropy_options_against_reference(sk, target_kind):
    for weighted, eps, reduction in itertools.product((False, True), (0.0, 0.3), REDUCTIONS):
        logits, target, opts = ce_inputs(target_kind, weighted, F64)
        opts.update(label_smoothing=eps, reduction=reduction)
        probs = sk.softmax(logits)
        for name, x in (
            ("softmax_cross_entropy", logits),
            ("softmax_cross_entropy_grad", logits),
            ("cross_entropy", probs),
            ("cross_entropy_grad", probs),
        ):
            _close(
                getattr(sk, name)(x, target, **opts),
                R.evaluate(name, x, target, form="closed", **opts),
            )


def test_bce_options_against_reference(sk):
    for logits, soft, weight, pos_weight, reduction in itertools.product(
        (False, True), (False, True), (None, "full", "per_class"), (False, True), REDUCTIONS
    ):
        if pos_weight and not logits:
            continue
        x, y, opts = bce_inputs(logits, soft, weight, pos_weight, F64)
        base = "sigmoid_binary_cross_entropy" if logits else "binary_cross_entropy"
        for name in (base, base + "_grad"):
            _close(
                getattr(sk, name)(x, y, reduction=reduction, **opts),
                R.evaluate(name, x, y, form="closed", reduction=reduction, **opts),
            )
        if logits:
            both = sk.sigmoid_binary_cross_entropy_with_grad(x, y, reduction=reduction, **opts)
            ref = R.evaluate(base + "_with_grad", x, y, form="closed", reduction=reduction, **opts)
            for got, want in zip(both, ref):
                _close(got, want)


# ----------------------------------------------------------------------------------------------
# Relations between the options
# ----------------------------------------------------------------------------------------------
def test_reductions_relate(sk):
    for kind, weighted in itertools.product(TARGETS, (False, True)):
        logits, target, opts = ce_inputs(kind, weighted, F64, seed=1)
        per_sample = sk.softmax_cross_entropy(logits, target, reduction="none", **opts)
        total = sk.softmax_cross_entropy(logits, target, reduction="sum", **opts)
        mean = sk.softmax_cross_entropy(logits, target, reduction="mean", **opts)
        np.testing.assert_allclose(per_sample.sum(), total, rtol=1e-14)
        if kind == "soft":
            divisor = N
        else:
            kept = target != opts.get("ignore_index", -100)
            w = opts.get("weight", np.ones(K))
            divisor = w[target[kept]].sum()
            assert np.all(per_sample[~kept] == 0)
        np.testing.assert_allclose(mean, total / divisor, rtol=1e-14)
        grads = {
            r: sk.softmax_cross_entropy_grad(logits, target, reduction=r, **opts)
            for r in REDUCTIONS
        }
        np.testing.assert_array_equal(grads["none"], grads["sum"])
        np.testing.assert_allclose(grads["mean"], grads["sum"] / divisor, rtol=1e-14)


def test_ignored_samples_are_as_if_removed(sk):
    for ignore_index in (-100, 2):
        logits, target, opts = ce_inputs("labels", True, F64, seed=2)
        target[[0, 5]] = ignore_index
        kept = target != ignore_index
        for name, x in (("softmax_cross_entropy", logits), ("cross_entropy", sk.softmax(logits))):
            full = getattr(sk, name)(
                x, target, ignore_index=ignore_index, label_smoothing=0.2, **opts
            )
            part = getattr(sk, name)(
                x[kept], target[kept], ignore_index=ignore_index, label_smoothing=0.2, **opts
            )
            np.testing.assert_allclose(full, part, rtol=1e-14)
            grad = getattr(sk, name + "_grad")(x, target, ignore_index=ignore_index, **opts)
            assert np.all(grad[~kept] == 0)
            np.testing.assert_allclose(
                grad[kept],
                getattr(sk, name + "_grad")(
                    x[kept], target[kept], ignore_index=ignore_index, **opts
                ),
                rtol=1e-14,
            )


def test_label_smoothing_mixes_in_the_uniform_target(sk):
    # y~ is linear in eps: L(eps) = (1 - eps) L(y) + eps L(uniform)
    logits, target, _ = ce_inputs("labels", False, F64, seed=3)
    uniform = np.full((N, K), 1.0 / K)
    for eps in (0.0, 0.1, 0.7, 1.0):
        got = sk.softmax_cross_entropy(logits, target, label_smoothing=eps, reduction="none")
        want = (1 - eps) * sk.softmax_cross_entropy(
            logits, target, reduction="none"
        ) + eps * sk.softmax_cross_entropy(logits, uniform, reduction="none")
        np.testing.assert_allclose(got, want, rtol=1e-13)
        soft = np.eye(K)[target] * (1 - eps) + eps / K
        np.testing.assert_allclose(
            sk.softmax_cross_entropy_grad(logits, soft),
            sk.softmax_cross_entropy_grad(logits, target, label_smoothing=eps),
            atol=1e-16,
        )


def test_one_hot_targets_equal_labels(sk):
    logits, target, opts = ce_inputs("labels", True, F64, seed=4)
    one_hot = np.eye(K)[target]
    for reduction in ("none", "sum"):  # 'mean' divides by N for probabilities, by sum w_t else
        for name in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
            np.testing.assert_allclose(
                getattr(sk, name)(logits, one_hot, reduction=reduction, **opts),
                getattr(sk, name)(logits, target, reduction=reduction, **opts),
                rtol=1e-14,
            )


def test_class_weights_scale(sk):
    logits, target, opts = ce_inputs("labels", True, F64, seed=5)
    w = opts["weight"]
    np.testing.assert_allclose(
        sk.softmax_cross_entropy(logits, target, weight=3 * w),
        sk.softmax_cross_entropy(logits, target, weight=w),
        rtol=1e-14,
    )
    np.testing.assert_allclose(
        sk.softmax_cross_entropy(logits, target, weight=3 * w, reduction="none"),
        3 * sk.softmax_cross_entropy(logits, target, weight=w, reduction="none"),
        rtol=1e-14,
    )
    np.testing.assert_allclose(
        sk.softmax_cross_entropy(logits, target, weight=w, reduction="none"),
        w[target] * sk.softmax_cross_entropy(logits, target, reduction="none"),
        rtol=1e-14,
    )


def test_bce_weights_broadcast_and_pos_weight_one_is_none(sk):
    x, y, opts = bce_inputs(True, True, "per_class", True, F64, seed=6)
    for name in ("sigmoid_binary_cross_entropy", "sigmoid_binary_cross_entropy_grad"):
        f = getattr(sk, name)
        full = np.broadcast_to(opts["weight"], (N, K))
        np.testing.assert_array_equal(f(x, y, weight=opts["weight"]), f(x, y, weight=full))
        np.testing.assert_array_equal(f(x, y, pos_weight=np.ones(K)), f(x, y))
        np.testing.assert_array_equal(
            f(x, y, pos_weight=1.0, weight=[2.0] * K), f(x, y, weight=np.full((N, K), 2.0))
        )
    p = sk.sigmoid(x)
    for r in REDUCTIONS:
        w = opts["weight"]
        np.testing.assert_allclose(
            sk.binary_cross_entropy(p, y, reduction=r, weight=w),
            sk.sigmoid_binary_cross_entropy(x, y, reduction=r, weight=w),
            rtol=1e-12,
        )


# ----------------------------------------------------------------------------------------------
# Parity with PyTorch
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    try:
        import torch
    except ImportError:
        if os.environ.get("SYMCE_REQUIRE_TORCH") == "1":
            pytest.fail("torch is not installed, and SYMCE_REQUIRE_TORCH=1 requires it")
        pytest.skip(
            "torch is not installed (pip install -e '.[parity]'; SYMCE_REQUIRE_TORCH=1 "
            "makes this a failure)"
        )
    return torch


RTOL = {F64: 1e-12, F32: 1e-5}


def _agree(ours, theirs, dt, what):
    """Elementwise within RTOL, and within a few ulps of the largest entry (p - y cancels)."""
    theirs = np.asarray(theirs)
    assert np.asarray(ours).dtype == dt and np.shape(ours) == theirs.shape, what
    np.testing.assert_allclose(
        ours,
        theirs,
        rtol=RTOL[dt],
        equal_nan=True,
        err_msg=what,
        atol=16 * np.finfo(dt).eps * np.max(np.abs(theirs), initial=0),
    )


def _t(torch, a):
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("dt", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("family", ["logits", "probs"])
def test_cross_entropy_matches_pytorch(
    sk, torch, family, target_kind, weighted, eps, reduction, dt
):
    F = torch.nn.functional
    logits, target, opts = ce_inputs(target_kind, weighted, dt, seed=7)
    opts.update(label_smoothing=eps, reduction=reduction)
    topts = dict(opts, weight=_t(torch, opts.get("weight")))
    if family == "logits":
        loss = sk.softmax_cross_entropy(logits, target, **opts)
        grad = sk.softmax_cross_entropy_grad(logits, target, **opts)
        both = sk.softmax_cross_entropy_with_grad(logits, target, **opts)
        np.testing.assert_array_equal(both[0], loss)
        np.testing.assert_array_equal(both[1], grad)
        z = _t(torch, logits).requires_grad_()
        their = F.cross_entropy(z, _t(torch, target), **topts)
        their.sum().backward()  # 'none': the gradient of each sample's own loss
        _agree(loss, their.detach().numpy(), dt, "loss")
        _agree(grad, z.grad.numpy(), dt, "grad")
    else:
        # F.cross_entropy(log p) is our cross_entropy(p) for rows of p that sum to 1, and by the
        # chain rule its gradient w.r.t. log p is J^T (dL/dp): softmax_vjp(log p, our gradient)
        probs = sk.softmax(logits)
        loss = sk.cross_entropy(probs, target, **opts)
        grad = sk.cross_entropy_grad(probs, target, **opts)
        z = _t(torch, np.log(probs)).requires_grad_()
        their = F.cross_entropy(z, _t(torch, target), **topts)
        their.sum().backward()
        _agree(loss, their.detach().numpy(), dt, "loss")
        _agree(sk.softmax_vjp(np.log(probs), grad), z.grad.numpy(), dt, "grad")


@pytest.mark.parametrize("dt", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, "full", "per_class"])
@pytest.mark.parametrize("soft", [False, True], ids=["binary", "soft"])
@pytest.mark.parametrize(
    "logits,pos_weight",
    [(False, False), (True, False), (True, True)],
    ids=["probs", "logits", "logits-pos_weight"],
)  # as PyTorch's options
def test_binary_cross_entropy_matches_pytorch(
    sk, torch, logits, soft, weight, pos_weight, reduction, dt
):
    F = torch.nn.functional
    x, y, opts = bce_inputs(logits, soft, weight, pos_weight, dt, seed=8)
    name = "sigmoid_binary_cross_entropy" if logits else "binary_cross_entropy"
    loss = getattr(sk, name)(x, y, reduction=reduction, **opts)
    grad = getattr(sk, name + "_grad")(x, y, reduction=reduction, **opts)
    if logits:  # the fused kernel: the same numbers
        both = sk.sigmoid_binary_cross_entropy_with_grad(x, y, reduction=reduction, **opts)
        np.testing.assert_array_equal(both[0], loss)
        np.testing.assert_array_equal(both[1], grad)
    xt = _t(torch, x).requires_grad_()
    topts = {k: _t(torch, v) for k, v in opts.items()}
    if logits:
        their = F.binary_cross_entropy_with_logits(xt, _t(torch, y), reduction=reduction, **topts)
    else:
        if "weight" in topts:
            topts["weight"] = topts["weight"].expand(N, K)
        their = F.binary_cross_entropy(xt, _t(torch, y), reduction=reduction, **topts)
    their.sum().backward()
    _agree(loss, their.detach().numpy(), dt, "loss")
    _agree(grad, xt.grad.numpy(), dt, "grad")


@pytest.mark.parametrize("dt", [F64, F32], ids=["f64", "f32"])
def test_edges_match_pytorch(sk, torch, dt):
    F = torch.nn.functional
    # probabilities exactly 0 and 1: logs clamped at -100, denominators at 1e-12
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.3], dtype=dt)
    y = np.array([0.0, 0.0, 1.0, 1.0, 0.5], dtype=dt)
    pt = _t(torch, p).requires_grad_()
    their = F.binary_cross_entropy(pt, _t(torch, y), reduction="none")
    their.sum().backward()
    _agree(sk.binary_cross_entropy(p, y, reduction="none"), their.detach().numpy(), dt, "loss")
    grad = sk.binary_cross_entropy_grad(p, y, reduction="none")
    _agree(grad[[0, 3, 4]], pt.grad.numpy()[[0, 3, 4]], dt, "grad")
    # at the clamp, PyTorch divides by its EPSILON, a C float: float32(1e-12) = 9.99999996e-13,
    # also in float64; symce clamps at 1e-12 of the dtype: 4e-9 apart, relative
    np.testing.assert_allclose(grad[[1, 2]], pt.grad.numpy()[[1, 2]], rtol=5e-9)
    np.testing.assert_allclose(grad[[1, 2]], [1e12, -1e12], rtol=np.finfo(dt).eps)
    # every sample ignored: mean is NaN, the gradient zero; empty batch: mean NaN, sum 0
    z = random_logits(np.random.default_rng(9), 3, 4, dtype=dt)
    for logits, target in ((z, np.full(3, -100)), (z[:0], np.zeros(0, dtype=np.int64))):
        for reduction in REDUCTIONS:
            zt = _t(torch, logits).requires_grad_()
            their = F.cross_entropy(zt, _t(torch, target), reduction=reduction)
            their.sum().backward()
            loss, grad = sk.softmax_cross_entropy_with_grad(logits, target, reduction=reduction)
            _agree(loss, their.detach().numpy(), dt, f"loss {reduction}")
            _agree(grad, zt.grad.numpy(), dt, f"grad {reduction}")
    # huge logits and masked (-inf) classes with a zero target
    z = np.array([[1e4 if dt is F64 else 80.0, 0.0, -np.inf], [-30.0, 30.0, -np.inf]], dtype=dt)
    zt = _t(torch, z).requires_grad_()
    their = F.cross_entropy(zt, torch.tensor([1, 0]), reduction="sum")
    their.backward()
    loss, grad = sk.softmax_cross_entropy_with_grad(z, np.array([1, 0]), reduction="sum")
    _agree(loss, their.detach().numpy(), dt, "loss")
    _agree(grad, zt.grad.numpy(), dt, "grad")
