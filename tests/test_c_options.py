"""Options of the C cross-entropy and BCE kernels: PyTorch parity for every combination.

weight x ignore_index x label_smoothing x reduction, integer labels and probability targets,
float32 and float64, loss and the autograd gradient, against torch.nn.functional.  torch is
optional: these tests skip without it unless SYMCE_REQUIRE_TORCH=1.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from c_build import clib  # noqa: F401  (fixture)
from support import random_distribution, random_logits

if os.environ.get("SYMCE_REQUIRE_TORCH") == "1":
    import torch
    import torch.nn.functional as F
else:
    torch = pytest.importorskip(
        "torch", reason="PyTorch parity (set SYMCE_REQUIRE_TORCH=1 to require)"
    )
    import torch.nn.functional as F

DTYPES = (np.float32, np.float64)
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
TOL = {np.float32: 1e-5, np.float64: 1e-12}
REDUCTIONS = ("none", "mean", "sum")
N, K = 6, 5


def close(ours, theirs, dtype, what):
    """Normwise relative agreement: |a - b| <= tol * max(|b|, max |b|)."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    if ours.size == 0:
        return
    nan = np.isnan(theirs)
    assert np.array_equal(np.isnan(ours), nan), (what, ours, theirs)
    scale = max(float(np.max(np.abs(theirs[~nan]), initial=0.0)), 1e-30)
    err = float(np.max(np.abs(ours[~nan] - theirs[~nan]), initial=0.0)) / scale
    assert err <= TOL[dtype], f"{what}: normwise error {err:.3g}\nours={ours}\ntorch={theirs}"


def _tensor(a, dtype, grad=False):
    return torch.tensor(np.asarray(a, dtype=dtype), dtype=TORCH_DTYPE[dtype], requires_grad=grad)


def _torch_loss_and_grad(fn, x, dtype, reduction):
    """fn(x_tensor) -> loss; returns (loss, d loss / dx) with ones as the upstream gradient."""
    xt = _tensor(x, dtype, grad=True)
    loss = fn(xt)
    loss.backward(torch.ones_like(loss))
    return loss.detach().numpy(), xt.grad.numpy()


# ----------------------------------------------------------------------------------------------
# targets: labels (with ignore_index variants) and probability targets
# ----------------------------------------------------------------------------------------------
def _label_cases(rng):
    labels = rng.integers(0, K, N)
    labels[0], labels[1] = 2, 3  # class 2 present, for the "ignore a real class" case
    with_default = labels.copy()
    with_default[[1, 4]] = -100
    # (labels, ignore_index): none ignored; PyTorch's -100 on two rows; a real class ignored
    return [(labels, -100), (with_default, -100), (labels, 2)]


WEIGHTS = (None, "w")
SMOOTHING = (0.0, 0.2)


def _options(rng, dtype):
    w = rng.uniform(0.3, 2.0, K).astype(dtype)
    for weight, eps in itertools.product(WEIGHTS, SMOOTHING):
        yield (None if weight is None else w), eps


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_labels(clib, dtype, reduction):
    rng = np.random.default_rng(11)
    z = random_logits(rng, N, K).astype(dtype)
    for (labels, ignore), (w, eps) in itertools.product(_label_cases(rng), _options(rng, dtype)):
        what = f"labels ignore={ignore} weight={w is not None} eps={eps} {reduction}"
        kw = dict(
            weight=None if w is None else _tensor(w, dtype),
            ignore_index=ignore,
            label_smoothing=eps,
            reduction=reduction,
        )
        tl, tg = _torch_loss_and_grad(
            lambda t: F.cross_entropy(t, torch.tensor(labels), **kw), z, dtype, reduction
        )
        opts = dict(weight=w, ignore_index=ignore, label_smoothing=eps, reduction=reduction)
        close(clib.call("softmax_cross_entropy", dtype, z, labels, **opts), tl, dtype, what)
        close(clib.call("softmax_cross_entropy_grad", dtype, z, labels, **opts), tg, dtype, what)
        lv, gv = clib.call("softmax_cross_entropy_with_grad", dtype, z, labels, **opts)
        close(lv, tl, dtype, what + " (with_grad)")
        close(gv, tg, dtype, what + " (with_grad)")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_soft(clib, dtype, reduction):
    rng = np.random.default_rng(12)
    z = random_logits(rng, N, K).astype(dtype)
    y = random_distribution(rng, N, K).astype(dtype)
    for w, eps in _options(rng, dtype):
        what = f"soft weight={w is not None} eps={eps} {reduction}"
        kw = dict(
            weight=None if w is None else _tensor(w, dtype),
            label_smoothing=eps,
            reduction=reduction,
        )
        tl, tg = _torch_loss_and_grad(
            lambda t: F.cross_entropy(t, _tensor(y, dtype), **kw), z, dtype, reduction
        )
        opts = dict(weight=w, label_smoothing=eps, reduction=reduction)
        close(clib.call("softmax_cross_entropy", dtype, z, y, **opts), tl, dtype, what)
        close(clib.call("softmax_cross_entropy_grad", dtype, z, y, **opts), tg, dtype, what)
        lv, gv = clib.call("softmax_cross_entropy_with_grad", dtype, z, y, **opts)
        close(lv, tl, dtype, what + " (with_grad)")
        close(gv, tg, dtype, what + " (with_grad)")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_from_probabilities(clib, dtype, reduction):
    """For normalised rows, F.cross_entropy(log p) is the CE of p (log_softmax(log p) = log p),
    with every option.  Its autograd gradient w.r.t. p carries the normalisation term, so the
    gradient -y~/p is compared with autograd of -(y~ log p) through F.nll_loss (no smoothing)
    and, for smoothing and soft targets, of -(y~ * log p).sum(1) with y~ built as PyTorch does."""
    rng = np.random.default_rng(13)
    p = random_distribution(rng, N, K).astype(dtype)
    y = random_distribution(rng, N, K).astype(dtype)
    targets = [(labels, ignore) for labels, ignore in _label_cases(rng)] + [(y, None)]
    for (target, ignore), (w, eps) in itertools.product(targets, _options(rng, dtype)):
        soft = ignore is None
        what = f"{'soft' if soft else 'labels'} ignore={ignore} weight={w is not None} eps={eps} {reduction}"
        wt = None if w is None else _tensor(w, dtype)
        kw = dict(weight=wt, label_smoothing=eps, reduction=reduction)
        tt = _tensor(target, dtype) if soft else torch.tensor(target)
        if not soft:
            kw["ignore_index"] = ignore
        tl = F.cross_entropy(torch.log(_tensor(p, dtype)), tt, **kw).numpy()
        opts = dict(weight=w, label_smoothing=eps, reduction=reduction)
        if not soft:
            opts["ignore_index"] = ignore
        close(clib.call("cross_entropy", dtype, p, target, **opts), tl, dtype, what)
        if soft or eps:
            tg = _torch_smoothed_ce_grad(p, target, soft, ignore, wt, eps, reduction, dtype)
        else:
            _, tg = _torch_loss_and_grad(
                lambda t: F.nll_loss(
                    torch.log(t), tt, weight=wt, ignore_index=ignore, reduction=reduction
                ),
                p,
                dtype,
                reduction,
            )
        close(clib.call("cross_entropy_grad", dtype, p, target, **opts), tg, dtype, what)


def _torch_smoothed_ce_grad(p, target, soft, ignore, wt, eps, reduction, dtype):
    """Autograd of PyTorch's smoothed CE written on log p (what F.cross_entropy computes after
    its log_softmax): rows -sum_k w_k ((1 - eps) y_k + eps / K) log p_k for probability targets;
    for labels (1 - eps) w_t (-log p_t) + eps sum_k w_k (-log p_k) / K, mean over sum w_t."""
    w = torch.ones(K, dtype=TORCH_DTYPE[dtype]) if wt is None else wt
    pt = _tensor(p, dtype, grad=True)
    logp = torch.log(pt)
    if soft:
        yt = _tensor(target, dtype)
        rows = -(w * ((1 - eps) * yt + eps / K) * logp).sum(1)
        div = N
    else:
        labels = torch.tensor(target)
        keep = labels != ignore
        safe = torch.where(keep, labels, torch.zeros_like(labels))
        nll = -logp.gather(1, safe[:, None])[:, 0] * w[safe]
        smooth = -(w * logp).sum(1) / K
        rows = torch.where(keep, (1 - eps) * nll + eps * smooth, torch.zeros_like(nll))
        div = w[safe][keep].sum()
    loss = rows if reduction == "none" else rows.sum() / (div if reduction == "mean" else 1)
    loss.backward(torch.ones_like(loss))
    return pt.grad.numpy()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy(clib, dtype, reduction):
    rng = np.random.default_rng(14)
    p = rng.uniform(0.02, 0.98, (N, K)).astype(dtype)
    y = rng.uniform(0, 1, (N, K)).astype(dtype)
    y[0] = [0, 1, 0, 1, 0.5]
    for w in (None, rng.uniform(0.2, 2.0, (N, K)).astype(dtype)):
        what = f"bce weight={w is not None} {reduction}"
        wt = None if w is None else _tensor(w, dtype)
        tl, tg = _torch_loss_and_grad(
            lambda t: F.binary_cross_entropy(t, _tensor(y, dtype), weight=wt, reduction=reduction),
            p,
            dtype,
            reduction,
        )
        close(
            clib.call("binary_cross_entropy", dtype, p, y, weight=w, reduction=reduction),
            tl,
            dtype,
            what,
        )
        close(
            clib.call("binary_cross_entropy_grad", dtype, p, y, weight=w, reduction=reduction),
            tg,
            dtype,
            what,
        )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_binary_cross_entropy(clib, dtype, reduction):
    rng = np.random.default_rng(15)
    x = random_logits(rng, N, K).astype(dtype)
    x[0] = [-40, 40, 0, 95, -95]  # beyond float32's exp range for the sigmoid's complement
    y = rng.uniform(0, 1, (N, K)).astype(dtype)
    for w, pw in itertools.product(
        (None, rng.uniform(0.2, 2.0, (N, K)).astype(dtype)),
        (None, rng.uniform(0.5, 3.0, K).astype(dtype)),
    ):
        what = f"sbce weight={w is not None} pos_weight={pw is not None} {reduction}"
        kw = dict(
            weight=None if w is None else _tensor(w, dtype),
            pos_weight=None if pw is None else _tensor(pw, dtype),
            reduction=reduction,
        )
        tl, tg = _torch_loss_and_grad(
            lambda t: F.binary_cross_entropy_with_logits(t, _tensor(y, dtype), **kw),
            x,
            dtype,
            reduction,
        )
        opts = dict(weight=w, pos_weight=pw, reduction=reduction)
        close(clib.call("sigmoid_binary_cross_entropy", dtype, x, y, **opts), tl, dtype, what)
        close(clib.call("sigmoid_binary_cross_entropy_grad", dtype, x, y, **opts), tg, dtype, what)
        lv, gv = clib.call("sigmoid_binary_cross_entropy_with_grad", dtype, x, y, **opts)
        close(lv, tl, dtype, what + " (with_grad)")
        close(gv, tg, dtype, what + " (with_grad)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_kernels_match_torch(clib, dtype):
    rng = np.random.default_rng(16)
    z = random_logits(rng, N, K).astype(dtype)
    g = rng.standard_normal((N, K)).astype(dtype)
    zt = _tensor(z, dtype)
    close(clib.call("softmax", dtype, z), torch.softmax(zt, 1).numpy(), dtype, "softmax")
    close(
        clib.call("log_softmax", dtype, z), torch.log_softmax(zt, 1).numpy(), dtype, "log_softmax"
    )
    close(clib.call("logsumexp", dtype, z), torch.logsumexp(zt, 1).numpy(), dtype, "logsumexp")
    close(clib.call("sigmoid", dtype, z), torch.sigmoid(zt).numpy(), dtype, "sigmoid")
    zg = _tensor(z, dtype, grad=True)
    torch.softmax(zg, 1).backward(_tensor(g, dtype))
    close(clib.call("softmax_vjp", dtype, z, g), zg.grad.numpy(), dtype, "softmax_vjp")
    jac = torch.func.vmap(torch.func.jacrev(lambda r: torch.softmax(r, 0)))(zt).numpy()
    close(clib.call("softmax_jacobian", dtype, z), jac, dtype, "softmax_jacobian")
