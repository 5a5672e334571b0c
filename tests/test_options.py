"""The options of the loss kernels, written once and run in every language (tests/runners.py).

A case (CASES) is a kernel group, inputs in NumPy's layout and PyTorch's keyword options; it calls
every kernel of the registry in its group (the cross-entropy from logits or from probabilities,
the BCE from probabilities or from logits, and each option-free kernel alone), so a new kernel or
language is covered without a new test.  The table crosses label targets (none ignored, the
default ignore_index -100, a class as ignore_index), probability targets (soft and one-hot),
weight (per class; for the BCE also per element), label_smoothing, pos_weight and every
reduction, in float32 and float64, with edges (every sample ignored, an empty batch, huge and
masked logits, weights that sum to 0, logits beyond float32's exp range).  Each case is held to

* PyTorch: the loss and the autograd gradient (the cross-entropy of probabilities p as
  ``F.cross_entropy(log p)``, its gradient through the softmax's chain rule and, for labels
  without smoothing, ``F.nll_loss(log p)`` directly); torch is optional: skipped without it
  unless SYMCE_REQUIRE_TORCH=1;
* symce.reference's closed forms in mpmath (float64, reduction 'none': sum and mean are held to
  it by the relations below);

and the outputs of a case relate: the reductions (``sum`` is the sum of ``none``, ``mean`` is
``sum`` over PyTorch's divisor), the fused kernel gives the separate kernels' numbers bit for bit,
and one-hot targets give the labels' numbers.  Then properties of the options, each over every
kernel of its family: ignored samples are as if removed, label smoothing mixes in the uniform
target, class weights scale, BCE weights broadcast and a pos_weight of ones is none, and the BCE
of sigmoid(x) is the BCE from logits x; the BCE at probabilities 0 and 1 (PyTorch's clamps), and
of an empty last axis (NumPy's kernels fail there: a known bug, a strict xfail).

Criterion against PyTorch: |ours - torch| <= rtol * max(|torch|, scale) + 16 eps max |torch|,
rtol 1e-12 (float64) or 1e-5 (float32), scale the magnitude of the terms a gradient subtracts
(``octave_runner.term_scale``).  The MATLAB calls of the whole module run in one octave-cli.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import numpy as np
import pytest

from symce import kernels as kr
from symce import reference as R

from octave_runner import term_scale
from runners import LANGUAGES, Raised, for_language
from support import random_distribution, random_logits

F64, F32 = np.float64, np.float32
DTYPES = (F64, F32)
REDUCTIONS = ("none", "mean", "sum")
N, K = 6, 5
EPS = 0.2  # the label smoothing of the grid
RTOL = {F64: 1e-12, F32: 1e-5}  # against PyTorch
REF_TOL = 1e-12  # against the mpmath reference (float64)
REL = {F64: 1e-14, F32: 2e-6}  # relations between a language's own outputs


def group(kern) -> str:
    """The kernels one case calls: a cross-entropy family, a defined loss (its loss and its
    gradient, by the loss's name), the BCE by its first input (bce_probs, bce_logits), or an
    option-free kernel by itself."""
    if kern.defined_in and kern.is_loss:
        return kern.name.removesuffix("_grad")
    if kern.family in ("ce_logits", "ce_probs"):
        return kern.family
    if kern.family == "bce":
        return f"bce_{kern.inputs[0].name}"
    return kern.name


GROUPS: dict = {}
for _kern in kr.registry().values():
    GROUPS.setdefault(group(_kern), []).append(_kern.name)
# the defined losses over classes (symce.define_loss): cross-entropy options, log-probabilities in
_DEFINED = [g for g, ks in GROUPS.items() if kr.kernel(ks[0]).is_loss and ks[0] == g]
LOSS_GROUPS = tuple(g for g in _DEFINED if kr.kernel(g).family == "ce_probs")
# the defined losses over elements (symce.define_loss, over="elements"): their own options
ELEMENT_GROUPS = tuple(g for g in _DEFINED if kr.kernel(g).family == "bce")
CE_GROUPS = ("ce_logits", "ce_probs", *LOSS_GROUPS)
BCE_GROUPS = ("bce_probs", "bce_logits", *ELEMENT_GROUPS)


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    dtype: type
    args: tuple
    opts: dict
    reference: bool = False  # also held to symce.reference (float64 grid)
    base: str = ""  # the id without the reduction: the cases that differ only in it


def _softmax64(z):
    """Rows of probabilities computed in float64 (then given in z's dtype)."""
    e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(z.dtype)


def _first(grp, z):
    """A cross-entropy group's first input from logits z: z, their probabilities, or (a defined
    loss) their log-probabilities, computed in float64."""
    if grp == "ce_logits":
        return z
    if grp == "ce_probs":
        return _softmax64(z)
    zz = z.astype(np.float64)
    top = zz.max(axis=1, keepdims=True)
    return (zz - top - np.log(np.exp(zz - top).sum(axis=1, keepdims=True))).astype(z.dtype)


def _ce_targets(rng, dtype):
    """{kind: (target, options)}: labels of every class, two samples at the default
    ignore_index, a class ignored, probability targets and the labels one-hot."""
    labels = np.array([0, 1, 4, 1, 3, 2])
    ignored = labels.copy()
    ignored[[1, 4]] = -100
    return {
        "labels": (labels, {}),
        "ignored": (ignored, {}),
        "ignore_class": (labels, {"ignore_index": 1}),
        "soft": (random_distribution(rng, N, K, dtype), {}),
        "one_hot": (np.eye(K, dtype=dtype)[labels], {}),
    }


def _grid():
    cases = []

    def add(name, grp, dtype, args, opts, reference=False):
        red = opts.get("reduction", "mean")
        base = f"{name}-{np.dtype(dtype).name}"
        cases.append(Case(f"{base}-{red}", grp, dtype, tuple(args), opts, reference, base))

    for dtype in DTYPES:
        rng = np.random.default_rng([7, DTYPES.index(dtype)])
        z = random_logits(rng, N, K, 2.5, dtype)
        weight = rng.uniform(0.3, 2.0, K).astype(dtype)
        for (kind, (target, topts)), weighted, eps in itertools.product(
            _ce_targets(rng, dtype).items(), (False, True), (0.0, EPS)
        ):
            opts = dict(topts)
            if weighted:
                opts["weight"] = weight
            if eps:
                opts["label_smoothing"] = eps
            tag = f"{kind}{'-weight' if weighted else ''}{f'-eps{eps}' if eps else ''}"
            for red, grp in itertools.product(REDUCTIONS, CE_GROUPS):
                first = _first(grp, z)
                add(f"{grp}-{tag}", grp, dtype, (first, target), opts | {"reduction": red}, True)

        x = random_logits(rng, N, K, 3.0, dtype)
        x[0] = [-40, 40, 0, 95, -95]  # beyond float32's exp range for the sigmoid's complement
        p = rng.uniform(0.01, 0.99, (N, K)).astype(dtype)
        y = rng.uniform(0, 1, (N, K)).astype(dtype)  # probabilities, and two rows of 0 and 1
        y[:2] = rng.integers(0, 2, (2, K))
        weights = {
            "": None,
            "-weight": rng.uniform(0.2, 2.0, (N, K)).astype(dtype),
            "-class_weight": rng.uniform(0.2, 2.0, K).astype(dtype),
        }
        pos_weight = rng.uniform(0.5, 3.0, K).astype(dtype)
        for (wtag, w), pw, red in itertools.product(weights.items(), (False, True), REDUCTIONS):
            opts = {"reduction": red} | ({} if w is None else {"weight": w})
            if pw:
                opts["pos_weight"] = pos_weight
                add(f"bce_logits{wtag}-pos_weight", "bce_logits", dtype, (x, y), opts, True)
            else:
                add(f"bce_logits{wtag}", "bce_logits", dtype, (x, y), opts, True)
                add(f"bce_probs{wtag}", "bce_probs", dtype, (p, y), opts, True)

        # the defined losses over elements: logits to +-40 (p_t -> 1), targets 0/1 and between,
        # element weights, each option at its default, at its ends and between (beyond the
        # default by 1 + |default| where unbounded: focal's alpha = -1, torchvision's no weighting)
        for grp in ELEMENT_GROUPS:
            scalars = kr.kernel(grp).scalars
            settings = [{}] + [
                {o.name: value}
                for o in scalars
                for value in (
                    (False, True)  # a switch: each form
                    if o.switch
                    else sorted(
                        {
                            o.default - 1 - abs(o.default) if o.low is None else o.low,
                            o.default + 1 + abs(o.default) if o.high is None else o.high,
                            (o.default + (o.low or 0)) / 2,
                        }
                    )
                )
            ]
            # and the loss's own reductions (kl_div's batchmean)
            reductions = REDUCTIONS + tuple(
                r for r in kr.kernel(grp).reductions if r not in REDUCTIONS
            )
            for setting, (wtag, w), red in itertools.product(
                settings, list(weights.items())[:2], reductions
            ):
                opts = setting | {"reduction": red} | ({} if w is None else {"weight": w})
                tag = "-".join(f"{k}{v:g}" for k, v in setting.items()) or "defaults"
                add(f"{grp}-{tag}{wtag}", grp, dtype, (x, y), opts, True)

        # edges: every sample ignored (mean NaN, zero gradient), an empty batch (mean NaN, sum
        # 0), huge and masked (-inf) logits with a zero target, class weights that sum to 0
        huge = 1e4 if dtype is F64 else 80.0
        masked = np.array([[huge, 0.0, -np.inf], [-30.0, 30.0, -np.inf]], dtype=dtype)
        z4 = random_logits(rng, 3, 4, 3.0, dtype)
        for red in REDUCTIONS:
            r = {"reduction": red}
            add("ce_logits-all_ignored", "ce_logits", dtype, (z4, np.full(3, -100)), r)
            add("ce_logits-empty", "ce_logits", dtype, (z4[:0], np.zeros(0, np.int64)), r)
            add("ce_logits-huge_masked", "ce_logits", dtype, (masked, np.array([1, 0])), r)
            zero_w = r | {"weight": np.zeros(4, dtype), "label_smoothing": 0.1}
            for grp in CE_GROUPS:
                first = _first(grp, z4)
                add(f"{grp}-zero_weight", grp, dtype, (first, np.array([0, 3, 1])), zero_w)
            add("bce_probs-empty", "bce_probs", dtype, (p[:0], y[:0]), r)
            add("bce_logits-empty", "bce_logits", dtype, (x[:0], y[:0]), r)

        # the option-free kernels
        g = rng.standard_normal((N, K)).astype(dtype)
        for name in GROUPS:
            kern = kr.kernel(GROUPS[name][0])
            if kern.options:
                continue
            add(name, name, dtype, (z, g)[: len(kern.inputs)], {})
    return cases


CASES = _grid()
BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "two cases with one id"

# ----------------------------------------------------------------------------------------------
# Every call of the module, by key: each case's kernels, then the properties' calls
# ----------------------------------------------------------------------------------------------
CALLS = {}  # key -> (kernel, dtype, args, options)
for _case in CASES:
    for _name in GROUPS[_case.group]:
        CALLS[_case.id, _name] = (_name, _case.dtype, _case.args, _case.opts)

CE_KERNELS = [n for g in CE_GROUPS for n in GROUPS[g]]
BCE_KERNELS = [n for g in BCE_GROUPS for n in GROUPS[g]]


def _prop_inputs(name, seed):
    """float64 inputs of a CE kernel: (first input, labels, class weights)."""
    rng = np.random.default_rng(seed)
    z = random_logits(rng, N, K)
    first = _first(group(kr.kernel(name)), z)
    return first, rng.integers(0, K, N), rng.random(K) * 2 + 0.1


def _props():
    calls = {}
    for name in CE_KERNELS:
        # ignored samples: the batch with them, and without
        first, labels, w = _prop_inputs(name, 2)
        for ignore, red in itertools.product((-100, 2), REDUCTIONS):
            t = labels.copy()
            t[[0, 5]] = ignore
            kept = t != ignore
            opts = {"ignore_index": ignore, "label_smoothing": EPS, "weight": w, "reduction": red}
            calls["ignored", name, ignore, red, "all"] = (name, F64, (first, t), opts)
            calls["ignored", name, ignore, red, "kept"] = (name, F64, (first[kept], t[kept]), opts)
        # label smoothing: labels smoothed, the uniform target, and the smoothed target as one
        first, labels, _ = _prop_inputs(name, 3)
        uniform = np.full((N, K), 1.0 / K)
        calls["smoothing", name, "uniform"] = (name, F64, (first, uniform), {"reduction": "none"})
        for eps in (0.0, 0.1, 0.7, 1.0):
            calls["smoothing", name, eps] = (
                name,
                F64,
                (first, labels),
                {"label_smoothing": eps, "reduction": "none"},
            )
            smoothed = np.eye(K)[labels] * (1 - eps) + eps / K
            calls["smoothing", name, eps, "mean"] = (
                name,
                F64,
                (first, labels),
                {"label_smoothing": eps},
            )
            calls["smoothing", name, eps, "target"] = (name, F64, (first, smoothed), {})
        # class weights: scaled, and per sample
        first, labels, w = _prop_inputs(name, 5)
        for tag, weight, red in (
            ("w", w, "mean"),
            ("3w", 3 * w, "mean"),
            ("w", w, "none"),
            ("3w", 3 * w, "none"),
            ("1", None, "none"),
        ):
            opts = {"reduction": red} | ({} if weight is None else {"weight": weight})
            calls["weights", name, tag, red] = (name, F64, (first, labels), opts)
    rng = np.random.default_rng(6)
    x = random_logits(rng, N, K)
    y = rng.random((N, K))
    w = rng.random(K) + 0.2
    for name in BCE_KERNELS:
        first = x if kr.kernel(name).inputs[0].name == "logits" else 1 / (1 + np.exp(-x))
        variants = {
            "none": {},
            "class weight": {"weight": w},
            "weight": {"weight": np.broadcast_to(w, (N, K)).copy()},
            "2 per class": {"weight": [2.0] * K},
            "2": {"weight": np.full((N, K), 2.0)},
        }
        if "pos_weight" in kr.kernel(name).options:
            variants |= {
                "pos_weight ones": {"pos_weight": np.ones(K)},
                "pos_weight 1, 2 per class": {"pos_weight": 1.0, "weight": [2.0] * K},
            }
        for tag, opts in variants.items():
            for red in REDUCTIONS:
                calls["bce", name, tag, red] = (name, F64, (first, y), opts | {"reduction": red})
    # the BCE of an empty last axis: (0,) is an empty batch, (N, 0) rows of no element
    for name, shape, red in itertools.product(BCE_KERNELS, ((0,), (N, 0)), REDUCTIONS):
        x = np.zeros(shape)
        calls["empty last axis", name, shape, red] = (name, F64, (x, x), {"reduction": red})
    # the BCE at exactly 0 and 1: logs clamped at -100, denominators at 1e-12
    for dtype, name in itertools.product(DTYPES, GROUPS["bce_probs"]):
        p = np.array([0.0, 1.0, 0.0, 1.0, 0.3], dtype=dtype)
        t = np.array([0.0, 0.0, 1.0, 1.0, 0.5], dtype=dtype)
        calls["clamp", name, dtype] = (name, dtype, (p, t), {"reduction": "none"})
    return calls


CALLS |= _props()
KEYS = list(CALLS)


# ----------------------------------------------------------------------------------------------
# Fixtures: every call in one language; PyTorch's and the reference's numbers, once
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=LANGUAGES)
def outcomes(request):
    """(language, {call key: outcome}) of every call of the module, the MATLAB ones in one
    octave-cli."""
    lang = request.param
    got = for_language(lang).call_many(list(CALLS.values()))
    return lang, dict(zip(KEYS, got))


def _get(outcomes, key):
    """The outputs of one call: skipped where the language has no such call, failed where it
    refused."""
    lang, got = outcomes
    out = got[key]
    if out is None:
        pytest.skip(f"{lang} has no such call")
    assert not isinstance(out, Raised), f"{lang} refused {key}: {out}"
    return dict(zip((o.name for o in kr.kernel(CALLS[key][0]).outputs), out))


@pytest.fixture(scope="module")
def torch():
    """torch, in one thread for this module (on its small tensors the thread pool costs 50
    times the arithmetic); skipped without it unless SYMCE_REQUIRE_TORCH=1."""
    try:
        import torch
    except ImportError:
        if os.environ.get("SYMCE_REQUIRE_TORCH") == "1":
            pytest.fail("torch is not installed, and SYMCE_REQUIRE_TORCH=1 requires it")
        pytest.skip(
            "torch is not installed (pip install -e '.[parity]'; SYMCE_REQUIRE_TORCH=1 "
            "makes this a failure)"
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


# PyTorch's counterpart of each option-free kernel: f(torch, *tensors) -> tensor
def _grad_of(torch, f, x, g=None):
    leaf = x.clone().requires_grad_()
    out = f(leaf)
    out.backward(torch.ones_like(out) if g is None else g)
    return leaf.grad


TORCH_KERNELS = {
    "sigmoid": lambda torch, x: torch.sigmoid(x),
    "sigmoid_grad": lambda torch, x: _grad_of(torch, torch.sigmoid, x),
    "softmax": lambda torch, z: torch.softmax(z, -1),
    "log_softmax": lambda torch, z: torch.log_softmax(z, -1),
    "logsumexp": lambda torch, z: torch.logsumexp(z, -1),
    "softmax_vjp": lambda torch, z, g: _grad_of(torch, lambda t: torch.softmax(t, -1), z, g),
    "softmax_jacobian": lambda torch, z: torch.func.vmap(
        torch.func.jacrev(lambda r: torch.softmax(r, 0))
    )(z),
    # symce.library's functions (declared through the public API)
    "tanh": lambda torch, x: torch.tanh(x),
    "tanh_grad": lambda torch, x: _grad_of(torch, torch.tanh, x),
    "softplus": lambda torch, x: torch.nn.functional.softplus(x),
    "softplus_grad": lambda torch, x: _grad_of(torch, torch.nn.functional.softplus, x),
    "log_sigmoid": lambda torch, x: torch.nn.functional.logsigmoid(x),
    "log_sigmoid_grad": lambda torch, x: _grad_of(torch, torch.nn.functional.logsigmoid, x),
}


def _nll_loss(torch, logp, target, kw):
    """F.nll_loss where PyTorch has it (labels, no smoothing; its gradient is ours), else the loss
    of F.cross_entropy(log p), which for normalised log-probabilities is nll_loss with the
    smoothed or probability target (its gradient is not: None)."""
    F = torch.nn.functional
    if target.dtype.is_floating_point or kw.get("label_smoothing"):
        return F.cross_entropy(logp, target, **kw), False
    return F.nll_loss(logp, target, **kw), True


# PyTorch's counterpart of each defined loss over classes: f(torch, input, target, options) ->
# (loss, whether the gradient with respect to the input is comparable)
TORCH_LOSSES = {"nll_loss": _nll_loss}


def _focal_loss(torch, x, y, kw):
    """torchvision.ops.sigmoid_focal_loss (its formula, written in torch: torchvision is not a
    dependency), times symce's element weight, reduced."""
    F = torch.nn.functional
    alpha, gamma = kw.get("alpha", 0.25), kw.get("gamma", 2.0)
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    if "weight" in kw:
        loss = loss * kw["weight"]
    red = kw.get("reduction", "mean")
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[red]


def _kl_div(torch, x, y, kw):
    """F.kl_div, times symce's element weight (PyTorch has none), reduced as PyTorch reduces."""
    loss = torch.nn.functional.kl_div(
        x, y, reduction="none", log_target=kw.get("log_target", False)
    )
    if "weight" in kw:
        loss = loss * kw["weight"]
    red = kw.get("reduction", "mean")
    if red == "batchmean":
        return loss.sum() / x.shape[0]
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[red]


# the counterpart of each defined loss over elements: f(torch, input, target, options) -> loss
TORCH_ELEMENT_LOSSES = {"focal_loss": _focal_loss, "kl_div": _kl_div}


def _torch_case(torch, case):
    """{output name: PyTorch's value}; for the cross-entropy of probabilities p, the loss of
    F.cross_entropy(log p), its gradient with respect to log p ("grad_logp") and, for labels
    without smoothing, the gradient of F.nll_loss(log p) with respect to p ("grad")."""
    F = torch.nn.functional
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    if case.group not in CE_GROUPS + BCE_GROUPS:
        return {"out": TORCH_KERNELS[case.group](torch, *map(T, case.args)).numpy()}
    first, target = case.args
    kw = {k: T(v) if k in ("weight", "pos_weight") else v for k, v in case.opts.items()}
    if case.group in ELEMENT_GROUPS:
        leaf = T(first).clone().requires_grad_()
        if "weight" in kw:
            kw["weight"] = kw["weight"].expand(first.shape)
        loss = TORCH_ELEMENT_LOSSES[case.group](torch, leaf, T(target), kw)
        loss.sum().backward()
        return {"loss": loss.detach().numpy(), "grad": leaf.grad.numpy()}
    if case.group in LOSS_GROUPS:
        leaf = T(first).clone().requires_grad_()
        loss, comparable = TORCH_LOSSES[case.group](torch, leaf, T(target), kw)
        loss.sum().backward()
        out = {"loss": loss.detach().numpy()}
        return out | ({"grad": leaf.grad.numpy()} if comparable else {})
    if case.group == "ce_probs":
        logp = torch.log(T(first)).requires_grad_()
        loss = F.cross_entropy(logp, T(target), **kw)
        loss.sum().backward()  # 'none': the gradient of each sample's own loss
        out = {"loss": loss.detach().numpy(), "grad_logp": logp.grad.numpy()}
        if target.dtype.kind in "iu" and not case.opts.get("label_smoothing"):
            leaf = T(first).clone().requires_grad_()
            nll = {k: v for k, v in kw.items() if k != "label_smoothing"}
            F.nll_loss(torch.clamp(torch.log(leaf), min=-100), T(target), **nll).sum().backward()
            out["grad"] = leaf.grad.numpy()
        return out
    leaf = T(first).clone().requires_grad_()
    if case.group == "ce_logits":
        loss = F.cross_entropy(leaf, T(target), **kw)
    elif case.group == "bce_probs":
        if "weight" in kw:
            kw["weight"] = kw["weight"].expand(first.shape)
        loss = F.binary_cross_entropy(leaf, T(target), **kw)
    else:
        loss = F.binary_cross_entropy_with_logits(leaf, T(target), **kw)
    loss.sum().backward()
    return {"loss": loss.detach().numpy(), "grad": leaf.grad.numpy()}


@pytest.fixture(scope="module")
def expected(torch):
    """{case id: PyTorch's numbers}, computed once for every language."""
    return {case.id: _torch_case(torch, case) for case in CASES}


@pytest.fixture(scope="module")
def reference():
    """{case id: {output name: float64}} from symce.reference's closed forms, for the float64
    grid's reduction 'none' (REFERENCE_BASES): each output from the first single-output kernel
    of the group that has it."""
    out = {}
    for case in (c for cases in REFERENCE_BASES.values() for c in cases):
        want = {}
        for name in GROUPS[case.group]:
            outs = kr.kernel(name).outputs
            if len(outs) == 1 and outs[0].name not in want:
                value = R.evaluate(name, *case.args, form="closed", **case.opts)
                want[outs[0].name] = np.asarray(value, dtype=np.float64)
        out[case.id] = want
    return out


# ----------------------------------------------------------------------------------------------
# Comparisons
# ----------------------------------------------------------------------------------------------
def _agree(got, want, dtype, what, scale=None, rtol=None):
    """Elementwise within rtol of max(|want|, scale), plus 16 eps of the largest |want|; NaN and
    infinities where PyTorch has them.  ``scale`` is a function, called only where the error is
    beyond rtol of |want| (it costs mpmath)."""
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype}, expected {np.dtype(dtype)}"
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    got = got.astype(np.float64)
    fin = np.isfinite(want)
    same = (np.isnan(got) == np.isnan(want)) & (fin | np.isnan(want) | (got == want))
    assert same.all(), f"{what}: non-finite values differ\n got {got}\nwant {want}"
    rtol = RTOL[dtype] if rtol is None else rtol
    den = np.abs(want)
    atol = 16 * np.finfo(dtype).eps * np.max(np.abs(want[fin]), initial=0.0)
    err = np.abs(got - want)[fin] - rtol * den[fin] - atol
    if np.any(err > 0) and scale is not None and scale() is not None:
        den = np.maximum(den, np.nan_to_num(np.broadcast_to(scale(), want.shape)))
        err = np.abs(got - want)[fin] - rtol * den[fin] - atol
    assert np.all(err <= 0), (
        f"{what}: |ours - expected| beyond {rtol:g} relative (worst excess {np.max(err):.3g})"
        f"\n got {got}\nwant {want}"
    )


_SCALES: dict = {}


def _scale(case):
    """The magnitude of the terms the case's gradient subtracts (None where it subtracts none),
    computed once per case."""
    if case.id not in _SCALES:
        _SCALES[case.id] = _term_scale(case)
    return _SCALES[case.id]


def _term_scale(case):
    first, *rest = case.args
    if np.size(first) == 0:
        return None
    if case.group == "ce_logits":
        return term_scale("softmax_cross_entropy_grad", case.args, case.opts)
    if case.group == "ce_probs":
        logp = np.log(np.asarray(first, dtype=np.float64))
        return term_scale("softmax_cross_entropy_grad", (logp, *rest), case.opts)
    if case.group in LOSS_GROUPS + ELEMENT_GROUPS:  # a defined loss's: compared elementwise
        return None
    if case.group == "bce_logits":
        return term_scale("sigmoid_binary_cross_entropy_grad", case.args, case.opts)
    return term_scale(case.group, case.args, case.opts)


def _bases(cases):
    """{base: [the cases of one base: the same inputs and options, each reduction]}."""
    out: dict = {}
    for c in cases:
        out.setdefault(c.base, []).append(c)
    return out


def _ids(cases):
    return [c.id for c in cases]


# ----------------------------------------------------------------------------------------------
# The table against PyTorch and against the reference
# ----------------------------------------------------------------------------------------------
BY_BASE = _bases(CASES)


@pytest.mark.parametrize("base", list(BY_BASE))
def test_matches_pytorch(outcomes, expected, base):
    for case in BY_BASE[base]:
        _matches_pytorch(outcomes, expected, case)


def _matches_pytorch(outcomes, expected, case):
    lang = outcomes[0]
    want = expected[case.id]
    scale = lambda: _scale(case)
    for name in GROUPS[case.group]:
        for out, value in _get(outcomes, (case.id, name)).items():
            what = f"{lang} {name} {out} ({case.id})"
            if out not in want:  # no PyTorch counterpart of this output (TORCH_LOSSES)
                continue
            if out == "grad" and case.group == "ce_probs":
                # F.cross_entropy(log p) differentiates with respect to log p: the softmax's
                # chain rule J^T (dL/dp) = p (g - <g, p>) of our gradient g is its gradient
                p = np.asarray(case.args[0], dtype=np.float64)
                g = np.asarray(value, dtype=np.float64)
                chain = p * (g - np.sum(g * p, axis=1, keepdims=True))
                chain = chain.astype(value.dtype)  # (in the kernel's dtype, which _agree checks)
                _agree(chain, want["grad_logp"], case.dtype, what + " (chain rule)", scale)
                if "grad" not in want:
                    continue
                scale_p = None
            else:
                scale_p = scale if out in ("grad", "out") else None
            _agree(value, want[out], case.dtype, what, scale_p)


# reduction 'none' (sum and mean relate to it: test_reductions_relate; PyTorch checks all)
REFERENCE_BASES = _bases(
    c for c in CASES if c.reference and c.dtype is F64 and c.opts["reduction"] == "none"
)


@pytest.mark.parametrize("base", list(REFERENCE_BASES))
def test_matches_the_reference(outcomes, reference, base):
    lang = outcomes[0]
    for case in REFERENCE_BASES[base]:
        want = reference[case.id]
        for name in GROUPS[case.group]:
            for out, value in _get(outcomes, (case.id, name)).items():
                ref = want[out]
                np.testing.assert_allclose(
                    value,
                    ref,
                    rtol=REF_TOL,
                    atol=REF_TOL * np.max(np.abs(ref), initial=1e-300),
                    err_msg=f"{lang} {name} {out} ({case.id})",
                )


# ----------------------------------------------------------------------------------------------
# Relations between a language's own outputs over the table
# ----------------------------------------------------------------------------------------------
def _divisor(case):
    """PyTorch's `mean` divisor: the elements for the BCE; the samples for probability
    targets; the weights of the kept samples' labels for labels."""
    first, target = case.args
    if case.group in BCE_GROUPS:
        return first.size
    if target.dtype.kind == "f":
        return first.shape[0]
    kept = target != case.opts.get("ignore_index", -100)
    w = case.opts.get("weight")
    return float(np.sum(w[target[kept]], dtype=np.float64)) if w is not None else int(kept.sum())


BASES = sorted({c.base for c in CASES if c.group in CE_GROUPS + BCE_GROUPS})


@pytest.mark.parametrize("base", BASES)
def test_reductions_relate(outcomes, base):
    """sum is the sum of none (ignored samples 0), mean is sum over the divisor; a gradient is
    the same for none and sum."""
    lang = outcomes[0]
    none, total, mean = (BY_ID[f"{base}-{r}"] for r in ("none", "sum", "mean"))
    rel = REL[none.dtype]
    divisor = _divisor(none)
    first, target = none.args
    ignored = np.zeros(len(target), bool)
    if none.group in CE_GROUPS and target.dtype.kind in "iu":
        ignored = target == none.opts.get("ignore_index", -100)
    for name in GROUPS[none.group]:
        a, s, m = (_get(outcomes, (c.id, name)) for c in (none, total, mean))
        for out in a:
            what = f"{lang} {name} {out} ({base})"
            av, sv, mv = (np.asarray(v[out], dtype=np.float64) for v in (a, s, m))
            if out == "loss":
                assert np.all(av[ignored] == 0), what
                np.testing.assert_allclose(sv, av.sum(), rtol=rel, err_msg=what)
            else:
                assert np.all(av[ignored] == 0), what
                np.testing.assert_array_equal(a[out], s[out], err_msg=what)
            if divisor == 0:  # mean is NaN (test_matches_pytorch)
                continue
            # a gradient subtracts terms: within rel of its largest element; a subnormal float32
            # has fewer digits
            atol = max(rel * np.max(np.abs(sv)) / divisor, np.finfo(none.dtype).tiny)
            np.testing.assert_allclose(mv, sv / divisor, rtol=rel, atol=atol, err_msg=what)
    if f"{base}-batchmean" in BY_ID:  # the sum over the samples (the first extent)
        batch = BY_ID[f"{base}-batchmean"]
        samples = batch.args[0].shape[0]
        for name in GROUPS[none.group]:
            s, b = (_get(outcomes, (c.id, name)) for c in (total, batch))
            for out in b:
                what = f"{lang} {name} {out} ({base}, batchmean)"
                sv, bv = (np.asarray(v[out], dtype=np.float64) for v in (s, b))
                atol = rel * np.max(np.abs(sv), initial=0.0) / samples
                np.testing.assert_allclose(bv, sv / samples, rtol=rel, atol=atol, err_msg=what)


FUSED = [c for c in CASES if any(len(kr.kernel(n).outputs) > 1 for n in GROUPS[c.group])]


def test_the_fused_kernel_is_the_separate_ones(outcomes):
    """The kernels computing loss and gradient together give the separate kernels' numbers, bit
    for bit, on every case."""
    lang = outcomes[0]
    for case in FUSED:
        single = {}
        for name in GROUPS[case.group]:
            outs = _get(outcomes, (case.id, name))
            if len(outs) == 1:
                single.update(outs)
        for name in GROUPS[case.group]:
            outs = _get(outcomes, (case.id, name))
            for out, value in outs.items():
                np.testing.assert_array_equal(
                    value, single[out], err_msg=f"{lang} {name} {out} ({case.id})"
                )


ONE_HOT = [c for c in CASES if "-one_hot" in c.id and c.opts.get("reduction") != "mean"]


@pytest.mark.parametrize("case", ONE_HOT, ids=_ids(ONE_HOT))
def test_one_hot_targets_equal_labels(outcomes, case):
    """One-hot probability targets are the labels (with weights and smoothing; not for mean,
    whose divisor is N for probability targets and the weights of the labels else)."""
    lang = outcomes[0]
    labels = BY_ID[case.id.replace("-one_hot", "-labels")]
    for name in GROUPS[case.group]:
        a, b = _get(outcomes, (case.id, name)), _get(outcomes, (labels.id, name))
        for out in a:
            np.testing.assert_allclose(
                a[out], b[out], rtol=REL[case.dtype], atol=0, err_msg=f"{lang} {name} {out}"
            )


# ----------------------------------------------------------------------------------------------
# Properties of the options
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CE_KERNELS)
def test_ignored_samples_are_as_if_removed(outcomes, name):
    lang = outcomes[0]
    for ignore, red in itertools.product((-100, 2), REDUCTIONS):
        full = _get(outcomes, ("ignored", name, ignore, red, "all"))
        part = _get(outcomes, ("ignored", name, ignore, red, "kept"))
        t = CALLS["ignored", name, ignore, red, "all"][2][1]
        kept = t != ignore
        for out in full:
            what = f"{lang} {name} {out} ignore_index={ignore} {red}"
            f, p = full[out], part[out]
            if out == "grad" or red == "none":
                assert np.all(f[~kept] == 0), what
                f = f[kept]
            np.testing.assert_allclose(f, p, rtol=1e-14, err_msg=what)


@pytest.mark.parametrize("name", CE_KERNELS)
def test_label_smoothing_mixes_in_the_uniform_target(outcomes, name):
    """The smoothed target is linear in eps: out(eps) = (1 - eps) out(labels) + eps
    out(uniform), per sample; and it is the target (1 - eps) one_hot + eps / K."""
    lang = outcomes[0]
    base = _get(outcomes, ("smoothing", name, 0.0))
    uniform = _get(outcomes, ("smoothing", name, "uniform"))
    for eps in (0.1, 0.7, 1.0):
        got = _get(outcomes, ("smoothing", name, eps))
        for out in got:
            want = (1 - eps) * base[out] + eps * uniform[out]
            np.testing.assert_allclose(
                got[out], want, rtol=1e-13, atol=1e-15, err_msg=f"{lang} {name} {out} eps={eps}"
            )
        labels = _get(outcomes, ("smoothing", name, eps, "mean"))
        target = _get(outcomes, ("smoothing", name, eps, "target"))
        for out in labels:
            np.testing.assert_allclose(
                labels[out],
                target[out],
                rtol=1e-14,
                atol=1e-16,
                err_msg=f"{lang} {name} {out} eps={eps}: labels smoothed vs the smoothed target",
            )


@pytest.mark.parametrize("name", CE_KERNELS)
def test_class_weights_scale(outcomes, name):
    """mean does not change when the weights scale; none scales with them, and is the
    unweighted value times the weight of each sample's label."""
    lang = outcomes[0]
    labels = CALLS["weights", name, "w", "none"][2][1]
    w = CALLS["weights", name, "w", "none"][3]["weight"]
    get = lambda tag, red: _get(outcomes, ("weights", name, tag, red))
    for out in get("w", "mean"):
        what = f"{lang} {name} {out}"
        np.testing.assert_allclose(
            get("3w", "mean")[out], get("w", "mean")[out], rtol=1e-14, err_msg=what
        )
        np.testing.assert_allclose(
            get("3w", "none")[out], 3 * get("w", "none")[out], rtol=1e-14, err_msg=what
        )
        per_sample = w[labels] if out == "loss" else w[labels][:, None]
        np.testing.assert_allclose(
            get("w", "none")[out], per_sample * get("1", "none")[out], rtol=1e-14, err_msg=what
        )


@pytest.mark.parametrize("name", BCE_KERNELS)
def test_bce_weights_broadcast_and_pos_weight_one_is_none(outcomes, name):
    """A per-class weight is the element weights it broadcasts to, a list is its array, and a
    pos_weight of ones (or the scalar 1) is no pos_weight: the same numbers, bit for bit."""
    lang = outcomes[0]
    same = [("class weight", "weight"), ("2 per class", "2")]
    if "pos_weight" in kr.kernel(name).options:
        same += [("pos_weight ones", "none"), ("pos_weight 1, 2 per class", "2")]
    for (a, b), red in itertools.product(same, REDUCTIONS):
        x, y = _get(outcomes, ("bce", name, a, red)), _get(outcomes, ("bce", name, b, red))
        for out in x:
            np.testing.assert_array_equal(x[out], y[out], err_msg=f"{lang} {name} {out} {a} {red}")


def test_bce_of_the_sigmoid_is_the_bce_from_logits(outcomes):
    """binary_cross_entropy(sigmoid(x)) = sigmoid_binary_cross_entropy(x), with weights."""
    lang = outcomes[0]
    probs = [n for n in GROUPS["bce_probs"] if kr.kernel(n).outputs[0].name == "loss"]
    logits = [n for n in GROUPS["bce_logits"] if kr.kernel(n).outputs[0].name == "loss"]
    for p, x, tag, red in itertools.product(probs, logits, ("none", "class weight"), REDUCTIONS):
        np.testing.assert_allclose(
            _get(outcomes, ("bce", p, tag, red))["loss"],
            _get(outcomes, ("bce", x, tag, red))["loss"],
            rtol=1e-12,
            err_msg=f"{lang} {p} vs {x} {tag} {red}",
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_bce_of_probabilities_0_and_1_matches_pytorch(outcomes, torch, dtype):
    """Logs clamped at -100 and denominators at 1e-12, as PyTorch.  At the clamp PyTorch divides
    by its EPSILON, a C float: float32(1e-12) = 9.99999996e-13, also in float64; symce clamps at
    1e-12 of the dtype, 4e-9 apart, relative."""
    F = torch.nn.functional
    lang = outcomes[0]
    for name in GROUPS["bce_probs"]:
        _, _, (p, y), _ = CALLS["clamp", name, dtype]
        pt = torch.from_numpy(p).requires_grad_()
        their = F.binary_cross_entropy(pt, torch.from_numpy(y), reduction="none")
        their.sum().backward()
        loss, grad = their.detach().numpy(), pt.grad.numpy()
        for out, value in _get(outcomes, ("clamp", name, dtype)).items():
            what = f"{lang} {name} {out}"
            if out == "loss":
                _agree(value, loss, dtype, what)
                continue
            _agree(value[[0, 3, 4]], grad[[0, 3, 4]], dtype, what)
            _agree(value[[1, 2]], grad[[1, 2]], dtype, what + " at the clamp", rtol=5e-9)
            np.testing.assert_allclose(value[[1, 2]], [1e12, -1e12], rtol=np.finfo(dtype).eps)


EMPTY_LAST_AXIS = sorted({(k[1], k[2]) for k in CALLS if k[0] == "empty last axis"})


@pytest.mark.parametrize(
    "name, shape", EMPTY_LAST_AXIS, ids=[f"{n}-{s}" for n, s in EMPTY_LAST_AXIS]
)
def test_bce_of_an_empty_last_axis_matches_pytorch(outcomes, torch, name, shape):
    """An empty batch of shape (0,), or (N, 0): mean NaN, sum 0, 'none' and the gradient empty,
    as PyTorch (and a (0, K) batch: test_matches_pytorch), in every language (C: k = 0)."""
    lang = outcomes[0]
    F = torch.nn.functional
    for red in REDUCTIONS:
        key = ("empty last axis", name, shape, red)
        x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        f = (
            F.binary_cross_entropy
            if name in GROUPS["bce_probs"]
            else F.binary_cross_entropy_with_logits
        )
        loss = f(x, torch.zeros(shape, dtype=torch.float64), reduction=red)
        loss.sum().backward()
        want = {"loss": loss.detach().numpy(), "grad": x.grad.numpy()}
        for out, value in _get(outcomes, key).items():
            _agree(value, want[out], F64, f"{lang} {name} {out} {shape} {red}")


def test_every_option_free_kernel_has_a_pytorch_counterpart():
    free = {g for g in GROUPS if g not in CE_GROUPS + BCE_GROUPS}
    assert free == set(TORCH_KERNELS)


def test_every_defined_loss_has_a_pytorch_counterpart():
    assert set(LOSS_GROUPS) == set(TORCH_LOSSES)
    assert set(ELEMENT_GROUPS) == set(TORCH_ELEMENT_LOSSES)
