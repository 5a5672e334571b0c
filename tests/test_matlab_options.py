"""MATLAB options (name-value pairs) and PyTorch parity, run in GNU Octave (one octave-cli).

* every option combination of the loss kernels against PyTorch 2.x (CPU), in double and single,
  loss and gradient (torch autograd): cross-entropy from logits (labels and soft targets, weight,
  ignore_index, label_smoothing, reduction), cross-entropy from probabilities (against
  ``nll_loss(log p)`` and, through the softmax chain rule, ``cross_entropy(log p)``), binary
  cross-entropy (element and per-class weights) and BCE with logits (pos_weight);
* MATLAB conventions: names and values case-insensitive, the last pair wins, [] is the default,
  labels as rows or columns and of any numeric class, single in -> single out (weights given in
  double are converted), 'none' shapes, PosWeight along dimension 1 of an N-D array.

Criteria: |MATLAB - torch| <= rtol * max(|torch|, scale), rtol = 1e-12 (double) / 1e-5 (single),
scale = the magnitude of the subtracted terms for gradients (``octave_runner.term_scale``).
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import support
from octave_runner import Batch, matlab_args, term_scale, to_numpy_layout

DTYPES = (np.float64, np.float32)
RTOL = {np.float64: 1e-12, np.float32: 1e-5}
K, N = 5, 6
REDUCTIONS = ("none", "mean", "sum")
CE_LOGITS = (
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_grad",
)
CE_PROBS = ("cross_entropy", "cross_entropy_grad")


def _torch():
    try:
        import torch
    except ImportError:
        if os.environ.get("SYMCE_REQUIRE_TORCH") == "1":
            pytest.fail("torch is not installed, and SYMCE_REQUIRE_TORCH=1 requires it")
        pytest.skip("torch is not installed (pip install torch, or SYMCE_REQUIRE_TORCH=1)")
    return torch


# ----------------------------------------------------------------------------------------------
# Cases: (family, dtype, args in NumPy layout, PyTorch keyword options); built once, seeded.
# ----------------------------------------------------------------------------------------------
def _cases():
    rng = np.random.default_rng(7)
    cases = []
    for dtype in DTYPES:
        z = support.random_logits(rng, N, K, 2.5, dtype)
        labels = np.array([0, 1, 4, 1, 3, 2])
        soft = support.random_distribution(rng, N, K, dtype)
        weight = rng.uniform(0.3, 2.0, K).astype(dtype)
        for tkind, w, eps, ignore, red in itertools.product(
            ("labels", "soft"), (None, weight), (0.0, 0.2), (None, 1), REDUCTIONS
        ):
            if tkind == "soft" and ignore is not None:
                continue
            opts = {"reduction": red}
            if w is not None:
                opts["weight"] = w
            if eps:
                opts["label_smoothing"] = eps
            if ignore is not None:
                opts["ignore_index"] = ignore
            target = labels if tkind == "labels" else soft
            cases.append(("ce", dtype, (z, target), opts))
        x = support.random_logits(rng, N, K, 3.0, dtype)
        p = rng.uniform(0.01, 0.99, (N, K)).astype(dtype)
        y = rng.uniform(0, 1, (N, K)).astype(dtype)
        y[0, :2] = (0, 1)
        for w, red in itertools.product(
            (None, rng.uniform(0.2, 2, (N, K)).astype(dtype), weight), REDUCTIONS
        ):
            opts = {"reduction": red} | ({} if w is None else {"weight": w})
            cases.append(("bce", dtype, (p, y), opts))
            for pw in (None, rng.uniform(0.5, 3, K).astype(dtype)):
                o = opts | ({} if pw is None else {"pos_weight": pw})
                cases.append(("sbce", dtype, (x, y), o))
    return cases


CASES = _cases()
KEYS = {}  # (case index, kernel) -> batch key
SEMANTICS = {}  # name -> batch key


def _build(batch):
    for i, (fam, _dtype, args, opts) in enumerate(CASES):
        if fam == "ce":
            for name in CE_LOGITS:
                KEYS[i, name] = _call(batch, name, args, opts)
            probs = _softmax(args[0])
            for name in CE_PROBS:
                KEYS[i, name] = _call(batch, name, (probs, args[1]), opts)
        elif fam == "bce":
            for name in ("binary_cross_entropy", "binary_cross_entropy_grad"):
                KEYS[i, name] = _call(batch, name, args, opts)
        else:
            for name in (
                "sigmoid_binary_cross_entropy",
                "sigmoid_binary_cross_entropy_grad",
                "sigmoid_binary_cross_entropy_with_grad",
            ):
                KEYS[i, name] = _call(batch, name, args, opts)
    _build_semantics(batch)


def _call(batch, name, args, opts):
    from symce import kernels

    nout = len(kernels.kernel(name).outputs)
    return batch.call(f"symce_{name}({matlab_args(batch, name, args, opts)})", nout=nout)


def _softmax(z):
    """Probabilities for the CE-from-probabilities kernels, in z's dtype (normalised in double)."""
    e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(z.dtype)


def _build_semantics(batch):
    S = SEMANTICS
    rng = np.random.default_rng(11)
    z = batch.arg(rng.normal(0, 2, (4, 5)))
    zs = batch.arg(rng.normal(0, 2, (4, 5)).astype(np.float32))
    lab_row = "[1 2 4 3 2]"
    sum01 = "'Reduction', 'sum', 'LabelSmoothing', 0.1"

    def with_grad(tag, args):
        S[tag] = batch.call(f"symce_softmax_cross_entropy_with_grad({args})", nout=2)

    with_grad("base", f"{z}, {lab_row}, {sum01}")
    with_grad("case", f"{z}, {lab_row}, 'reduction', 'SUM', 'labelsmoothing', 0.1")
    with_grad(
        "last wins",
        f"{z}, {lab_row}, 'Reduction', 'none', 'LabelSmoothing', 0.1, 'Reduction', 'sum'",
    )
    with_grad("column", f"{z}, {lab_row}', {sum01}")
    with_grad("int32", f"{z}, int32({lab_row}), {sum01}")
    with_grad("uint8", f"{z}, uint8({lab_row}), {sum01}")
    with_grad("weight []", f"{z}, {lab_row}, {sum01}, 'Weight', []")
    with_grad("weight ones", f"{z}, {lab_row}, {sum01}, 'Weight', ones(4, 1)")
    with_grad("mean", f"{z}, {lab_row}")
    with_grad("mean explicit", f"{z}, {lab_row}, 'Reduction', 'mean', 'IgnoreIndex', -100")
    with_grad("ignore default", f"{z}, [1 -100 4 3 2], 'Reduction', 'none'")
    with_grad("ignore 3", f"{z}, [1 2 4 3 2], 'Reduction', 'none', 'IgnoreIndex', 3")
    with_grad("none", f"{z}, {lab_row}, 'Reduction', 'none'")
    with_grad("single", f"{zs}, {lab_row}, 'Weight', [1 2 1 0.5], 'LabelSmoothing', 0.1")
    with_grad(
        "single weight", f"{zs}, {lab_row}, 'Weight', single([1 2 1 0.5]), 'LabelSmoothing', 0.1"
    )
    with_grad(
        "single labels", f"{zs}, single({lab_row}), 'Weight', [1 2 1 0.5], 'LabelSmoothing', 0.1"
    )
    # BCE on an N-D array: PosWeight along dimension 1, Weight expanding, 'none' keeps the size
    x3 = batch.arg(rng.normal(0, 2, (3, 2, 4)))
    y3 = batch.arg(rng.uniform(0, 1, (3, 2, 4)))
    pw = "[2; 0.5; 1]"
    S["nd"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', {pw}, "
        "'Weight', [1; 2; 3], 'Reduction', 'none')"
    )
    S["nd full"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', "
        f"{pw}, 'Weight', repmat([1; 2; 3], [1 2 4]), 'Reduction', 'none')"
    )
    S["nd row pw"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', "
        f"{pw}', 'Weight', [1; 2; 3], 'Reduction', 'none')"
    )
    S["nd mean"] = batch.call(f"symce_sigmoid_binary_cross_entropy_grad({x3}, {y3})")
    S["nd none"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy_grad({x3}, {y3}, 'Reduction', 'none')"
    )
    S["pw scalar"] = batch.call(f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', 2)")
    S["pw vector"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', [2 2 2])"
    )
    S["bce single"] = batch.call(
        "symce_binary_cross_entropy(single([0.2 0.7]), single([0 1]), 'Weight', [2 3])"
    )


@pytest.fixture(scope="module")
def results():
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    KEYS.clear()
    SEMANTICS.clear()
    batch = Batch()
    _build(batch)
    return batch.run(octave)


# ----------------------------------------------------------------------------------------------
# PyTorch references (autograd for the gradients).
# ----------------------------------------------------------------------------------------------
def _t(torch, a, dtype=None, grad=False):
    t = torch.tensor(np.asarray(a))
    if dtype is not None:
        t = t.to(dtype)
    return t.requires_grad_(grad)


def _torch_ce(torch, first, target, opts, log_input=False):
    """F.cross_entropy loss and d/d(first) — first = logits, or probabilities fed as log p."""
    F = torch.nn.functional
    leaf = _t(torch, first, grad=True)
    logits = torch.log(leaf) if log_input else leaf
    tgt = (
        _t(torch, target)
        if np.asarray(target).dtype.kind == "f"
        else torch.tensor(np.asarray(target), dtype=torch.long)
    )
    kw = {"reduction": opts["reduction"], "label_smoothing": opts.get("label_smoothing", 0.0)}
    if "weight" in opts:
        kw["weight"] = _t(torch, opts["weight"])
    if "ignore_index" in opts:
        kw["ignore_index"] = opts["ignore_index"]
    loss = F.cross_entropy(logits, tgt, **kw)
    (loss.sum() if opts["reduction"] == "none" else loss).backward()
    return loss.detach().numpy(), leaf.grad.numpy(), logits


def _torch_nll(torch, probs, labels, opts):
    """F.nll_loss of clamp(log p, -100): PyTorch's cross-entropy of probabilities, with d/dp."""
    F = torch.nn.functional
    leaf = _t(torch, probs, grad=True)
    kw = {"reduction": opts["reduction"]}
    if "weight" in opts:
        kw["weight"] = _t(torch, opts["weight"])
    if "ignore_index" in opts:
        kw["ignore_index"] = opts["ignore_index"]
    loss = F.nll_loss(torch.clamp(torch.log(leaf), min=-100), torch.tensor(labels), **kw)
    (loss.sum() if opts["reduction"] == "none" else loss).backward()
    return loss.detach().numpy(), leaf.grad.numpy()


def _torch_bce(torch, first, target, opts, logits):
    F = torch.nn.functional
    leaf = _t(torch, first, grad=True)
    kw = {"reduction": opts["reduction"]}
    if "weight" in opts:
        kw["weight"] = _t(torch, opts["weight"])
    if logits:
        if "pos_weight" in opts:
            kw["pos_weight"] = _t(torch, opts["pos_weight"])
        loss = F.binary_cross_entropy_with_logits(leaf, _t(torch, target), **kw)
    else:
        loss = F.binary_cross_entropy(leaf, _t(torch, target), **kw)
    (loss.sum() if opts["reduction"] == "none" else loss).backward()
    return loss.detach().numpy(), leaf.grad.numpy()


def _close(got, want, dtype, what, scale=None):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch {want.shape}"
    same_nan = np.isnan(got) == np.isnan(want)
    assert same_nan.all(), f"{what}: NaN pattern differs: {got} vs {want}"
    ok = ~np.isnan(want)
    den = np.abs(want)
    if scale is not None:
        den = np.maximum(den, np.broadcast_to(np.nan_to_num(scale), want.shape))
    den = np.maximum(den, np.finfo(dtype).tiny)
    err = np.max(np.abs(got - want)[ok] / den[ok], initial=0.0)
    assert err <= RTOL[dtype], f"{what}: |MATLAB - torch| / scale = {err:.3g}"
    return err


def _outputs(results, name, i, opts, shape):
    from symce import kernels

    res = results[KEYS[i, name]].check()
    outs = [o.name for o in kernels.kernel(name).outputs]
    return {
        o: to_numpy_layout(name, v, o, opts["reduction"], shape) for o, v in zip(outs, res.values)
    }, res.classes


def _case_id(i):
    fam, dtype, args, opts = CASES[i]
    parts = [fam, np.dtype(dtype).name, opts["reduction"]]
    parts += [k for k in ("weight", "label_smoothing", "ignore_index", "pos_weight") if k in opts]
    if fam == "ce":
        parts.append("soft" if np.asarray(args[1]).dtype.kind == "f" else "labels")
    if fam != "ce" and "weight" in opts:
        parts.append("per-class" if np.ndim(opts["weight"]) == 1 else "elementwise")
    return "-".join(parts)


def _indices(*fams):
    return [i for i, c in enumerate(CASES) if c[0] in fams]


@pytest.mark.parametrize("i", _indices("ce"), ids=_case_id)
def test_cross_entropy_from_logits_matches_torch(results, i):
    torch = _torch()
    _, dtype, (z, target), opts = CASES[i]
    cls = {np.float64: "double", np.float32: "single"}[dtype]
    loss_t, grad_t, _ = _torch_ce(torch, z, target, opts)
    scale = term_scale("softmax_cross_entropy_grad", (z, target), opts)
    for name in CE_LOGITS:
        outs, classes = _outputs(results, name, i, opts, z.shape)
        assert set(classes) == {cls}
        if "loss" in outs:
            _close(outs["loss"], loss_t, dtype, f"{name} loss {opts}")
        if "grad" in outs:
            _close(outs["grad"], grad_t, dtype, f"{name} grad {opts}", scale)


@pytest.mark.parametrize("i", _indices("ce"), ids=_case_id)
def test_cross_entropy_from_probabilities_matches_torch(results, i):
    torch = _torch()
    _, dtype, (z, target), opts = CASES[i]
    probs = _softmax(z)
    loss_m, _ = _outputs(results, "cross_entropy", i, opts, probs.shape)
    grad_m, _ = _outputs(results, "cross_entropy_grad", i, opts, probs.shape)
    loss_m, grad_m = loss_m["loss"], grad_m["grad"].astype(np.float64)
    # cross_entropy(log p) is the same loss (softmax(log p) = p), for every option
    loss_t, _, logp = _torch_ce(torch, probs, target, opts, log_input=True)
    _close(loss_m, loss_t, dtype, f"cross_entropy loss {opts}")
    # ... and its gradient w.r.t. the logits log p is J_softmax^T (dL/dp) = p (g - <g, p>)
    u = logp.detach()
    u_leaf = u.clone().requires_grad_(True)
    _, grad_u, _ = _torch_ce(torch, u_leaf.detach().numpy(), target, opts)
    p64 = probs.astype(np.float64)
    chain = p64 * (grad_m - np.sum(grad_m * p64, axis=1, keepdims=True))
    scale = term_scale("softmax_cross_entropy_grad", (u.numpy(), target), opts)
    _close(chain, grad_u, dtype, f"cross_entropy_grad through softmax {opts}", scale)
    if np.asarray(target).dtype.kind in "iu" and "label_smoothing" not in opts:
        nll_loss, nll_grad = _torch_nll(torch, probs, target, opts)
        _close(loss_m, nll_loss, dtype, f"cross_entropy vs nll_loss {opts}")
        _close(grad_m, nll_grad, dtype, f"cross_entropy_grad vs nll_loss {opts}")


@pytest.mark.parametrize("i", _indices("bce", "sbce"), ids=_case_id)
def test_binary_cross_entropy_matches_torch(results, i):
    torch = _torch()
    fam, dtype, (first, target), opts = CASES[i]
    base = "binary_cross_entropy" if fam == "bce" else "sigmoid_binary_cross_entropy"
    loss_t, grad_t = _torch_bce(torch, first, target, opts, logits=fam == "sbce")
    loss_m, _ = _outputs(results, base, i, opts, first.shape)
    grad_m, classes = _outputs(results, base + "_grad", i, opts, first.shape)
    assert classes == [{np.float64: "double", np.float32: "single"}[dtype]]
    _close(loss_m["loss"], loss_t, dtype, f"{base} loss {opts}")
    scale = term_scale(base + "_grad", (first, target), opts)
    _close(grad_m["grad"], grad_t, dtype, f"{base}_grad {opts}", scale)
    if fam == "sbce":  # the fused kernel: torch's numbers, and the separate kernels' bit for bit
        both, classes = _outputs(results, base + "_with_grad", i, opts, first.shape)
        assert classes == [{np.float64: "double", np.float32: "single"}[dtype]] * 2
        _close(both["loss"], loss_t, dtype, f"{base}_with_grad loss {opts}")
        _close(both["grad"], grad_t, dtype, f"{base}_with_grad grad {opts}", scale)
        np.testing.assert_array_equal(both["loss"], loss_m["loss"])
        np.testing.assert_array_equal(both["grad"], grad_m["grad"])


# ----------------------------------------------------------------------------------------------
# MATLAB conventions of the options.
# ----------------------------------------------------------------------------------------------
def _vals(results, key):
    return results[SEMANTICS[key]].check().values


def test_names_and_values_are_case_insensitive_and_last_wins(results):
    base = _vals(results, "base")
    for key in ("case", "last wins", "weight []", "weight ones"):
        for a, b in zip(base, _vals(results, key)):
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_label_orientation_and_class_do_not_matter(results):
    base = _vals(results, "base")
    for key in ("column", "int32", "uint8"):
        for a, b in zip(base, _vals(results, key)):
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_defaults(results):
    for a, b in zip(_vals(results, "mean"), _vals(results, "mean explicit")):
        np.testing.assert_array_equal(a, b)
    loss, grad = _vals(results, "ignore default")
    assert loss.shape == (1, 5) and loss[0, 1] == 0 and np.all(grad[:, 1] == 0)
    assert np.all(loss[0, [0, 2, 3, 4]] > 0)
    loss3, grad3 = _vals(results, "ignore 3")  # IgnoreIndex is a 1-based label here
    assert loss3[0, 3] == 0 and np.all(grad3[:, 3] == 0) and np.all(loss3[0, [0, 1, 2, 4]] > 0)
    none_loss, none_grad = _vals(results, "none")
    mean_loss, mean_grad = _vals(results, "mean")
    assert none_loss.shape == (1, 5) and mean_loss.shape == (1, 1)
    np.testing.assert_allclose(mean_loss[0, 0], none_loss.sum() / 5, rtol=1e-15)
    np.testing.assert_allclose(mean_grad, none_grad / 5, rtol=1e-15)


def test_single_in_single_out(results):
    for key in ("single", "single weight", "single labels"):
        res = results[SEMANTICS[key]].check()
        assert res.classes == ["single", "single"], key
    a = _vals(results, "single")
    for key in ("single weight", "single labels"):
        for x, y in zip(a, _vals(results, key)):
            np.testing.assert_array_equal(x, y, err_msg=key)
    assert results[SEMANTICS["bce single"]].check().classes == ["single"]


def test_bce_on_nd_arrays(results):
    nd = results[SEMANTICS["nd"]].value
    assert nd.shape == (3, 2, 4)
    np.testing.assert_array_equal(nd, results[SEMANTICS["nd full"]].value)
    np.testing.assert_array_equal(nd, results[SEMANTICS["nd row pw"]].value)
    mean, none = results[SEMANTICS["nd mean"]].value, results[SEMANTICS["nd none"]].value
    assert none.shape == (3, 2, 4)
    np.testing.assert_allclose(mean, none / 24, rtol=1e-15)
    np.testing.assert_array_equal(
        results[SEMANTICS["pw scalar"]].value, results[SEMANTICS["pw vector"]].value
    )
