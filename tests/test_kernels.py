"""The numeric kernel tests, written once and run over kernel x dtype x language (tests/runners.py).

Every call is data: a kernel, a dtype, its inputs in NumPy's layout and PyTorch's keyword
options; the runners convert them for C and MATLAB.  The checks:

* every registry kernel against the mpmath references (``symce.reference``: ``form="raw"``, the
  model's definitions and ``sp.diff`` of them, and ``form="closed"``, the registry's slots), for K
  in {1, 2, 3, 7, 16, 17} (up to 16 classes C works the rows in blocks, 17 takes its per-row
  path), float32 and float64, in the union of the per-language files' option sets
  (``ref_cases``);
* the fused kernels return the loss and gradient kernels' numbers, bit for bit;
* gradients against central finite differences of the loss kernels (cross-entropy with every
  option, binary cross-entropy in every reduction), and the row kernels' derivatives (sigmoid',
  the Jacobian, the VJP, d logsumexp = softmax, d log-softmax) (``FD_CASES``);
* ``SPECIAL``: the published seed values and the sign of dL/dz, and the edges (huge logits, a
  dominant logit's log p, equal logits, masked classes, probabilities 0 and 1, NaN in -> NaN out,
  rows of -inf and +inf, one class, N = 0, every sample ignored), each a row (id, kernel, inputs,
  options, expected properties), run in every C build (``c_build.MATRIX``) as well.

Accuracy (TOL: 1e-12 in float64, 1e-5 in float32) is relative to the reference, elementwise,
floored at the dtype's smallest normal number (below it only absolute accuracy exists).  The
outputs that subtract nearly equal terms (``DIFFERENCES``: p - y, the Jacobian's
p_i (delta_ij - p_j), the VJP) are measured against what they subtract: the larger of |ref| and
the smaller of the terms' magnitude (``octave_runner.term_scale``, the NumPy and MATLAB files'
criterion) and the output's largest |ref| (normwise, the C file's), so every file's criterion
holds; logsumexp is elementwise (MATLAB's, the strictest).  The finite differences meet the three
files' criteria at once.  Each reference is computed once per input set (mpmath is slow) and
shared by the languages, and by the loss, the gradient and the fused kernel of one input set
(``symce.reference`` evaluates them together).

The calls of the module run in one batch per language (``call_many``): MATLAB in one octave-cli.
A call a language does not have (MATLAB reads a 1-by-K row as one sample, so N > 1 samples of one
class are not a MATLAB call) is skipped with that reason.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from symce import kernels as kr
from symce import reference as R

import c_build
from octave_runner import term_scale
from runners import LANGUAGES, Raised, for_language, runner
from support import random_distribution, random_logits

REGISTRY = kr.registry()
DTYPES = ("float32", "float64")
TOL = {"float32": 1e-5, "float64": 1e-12}
EPS = {d: float(np.finfo(d).eps) for d in DTYPES}
KS = (1, 2, 3, 7, 16, 17)
N = 4
INF, NAN = np.inf, np.nan

# the special values run in every C build too ("c" is the default one; the environment's library
# alone when it names one)
EXTRA_C = (
    ()
    if c_build.environment_library()
    else tuple(f"c-{b}" for b in c_build.MATRIX if b != c_build.DEFAULT)
)
TARGETS = ("numpy", "c", *EXTRA_C, "matlab")


def per(f32, f64):
    """A value per dtype (a tolerance)."""
    return {"float32": f32, "float64": f64}


def _of(value, dtype):
    if isinstance(value, dict):
        return value[dtype]
    return TOL[dtype] if value == "tol" else value


def _cast(a, dtype):
    """A float input (or option) in ``dtype``; labels and other values as they are."""
    if isinstance(a, (list, tuple)) or (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
        a = np.asarray(a)
        return a.astype(dtype) if a.dtype.kind == "f" else a
    return a


def _inputs(kernel, args, opts, dtype):
    """(args, options) of ``kernel``: its own inputs and options, in ``dtype``."""
    kern = REGISTRY[kernel]
    args = tuple(_cast(a, dtype) for a in args[: len(kern.inputs)])
    opts = {k: _cast(v, dtype) for k, v in opts.items() if k in kern.options}
    return args, opts


# ----------------------------------------------------------------------------------------------
# References: mpmath, once per input set, rounded once to float64
# ----------------------------------------------------------------------------------------------
_REFS: dict = {}


def _key(a):
    a = np.asarray(a)
    return (a.dtype.str, a.shape, a.tobytes())


def _fused(name):
    """(the kernel whose reference gives ``name``'s, the index of its output, or None): the loss
    and gradient kernels that have a fused kernel share its reference (one evaluation)."""
    fused = name.removesuffix("_grad") + "_with_grad"
    if name != fused and fused in REGISTRY:
        return fused, int(name.endswith("_grad"))
    return name, None


def _float(v):
    return np.asarray(np.vectorize(float, otypes=[np.float64])(np.asarray(v, dtype=object)))


def reference(name, args, opts, form):
    """The reference outputs (a tuple of float64 arrays) of kernel ``name`` at these inputs."""
    fused, pick = _fused(name)
    key = (fused, form, tuple(map(_key, args)), tuple((k, _key(v)) for k, v in opts.items()))
    if key not in _REFS:
        with np.errstate(all="ignore"):  # the references' 0/0 and inf - inf are NaN, as IEEE's
            value = R.evaluate(fused, *args, form=form, **opts)
            value = value if isinstance(value, tuple) else (value,)
            _REFS[key] = tuple(_float(v) for v in value)
    return _REFS[key] if pick is None else (_REFS[key][pick],)


# outputs that subtract nearly equal terms: (kernel, output)
DIFFERENCES = {
    ("softmax_jacobian", "out"),
    ("softmax_vjp", "out"),
    ("softmax_cross_entropy_grad", "grad"),
    ("softmax_cross_entropy_with_grad", "grad"),
    ("sigmoid_binary_cross_entropy_grad", "grad"),
    ("sigmoid_binary_cross_entropy_with_grad", "grad"),
}


_TERMS: dict = {}


def _terms(name, args, opts):
    """The magnitude of the terms an output subtracts (``octave_runner.term_scale``), once."""
    key = (name, tuple(map(_key, args)), tuple((k, _key(v)) for k, v in opts.items()))
    if key not in _TERMS:
        with np.errstate(all="ignore"):
            _TERMS[key] = term_scale(name, args, opts)
    return _TERMS[key]


def scale(name, output, args, opts, ref, dtype):
    """What the error of an output is relative to (see the module's docstring)."""
    floor = np.maximum(np.abs(ref), np.finfo(dtype).tiny)
    if (name, output) not in DIFFERENCES:
        return floor
    finite = np.abs(ref[np.isfinite(ref)])
    norm = finite.max() if finite.size else 0.0
    terms = _terms(name, args, opts)
    terms = np.broadcast_to(norm if terms is None else np.fmin(terms, norm), ref.shape)
    return np.maximum(floor, np.nan_to_num(terms, nan=0.0, posinf=0.0))


def rel_error(got, ref, den) -> float:
    """max |got - ref| / den over the finite entries; inf unless the non-finite entries match
    exactly (NaN for NaN, infinities with their sign)."""
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape, f"shape {got.shape}, reference {ref.shape}"
    finite = np.isfinite(got) & np.isfinite(ref)
    same = (np.isnan(got) & np.isnan(ref)) | (got == ref)
    if np.any(~finite & ~same):
        return math.inf
    if not finite.any():
        return 0.0
    diff = np.abs(got[finite] - ref[finite])
    return float(np.max(diff / np.broadcast_to(den, ref.shape)[finite]))


def accuracy(name, args, opts, outs, form, dtype):
    """[(output, error)] of a kernel's outputs against its reference."""
    kern = REGISTRY[name]
    refs = reference(name, args, opts, form)
    assert len(outs) == len(refs) == len(kern.outputs)
    result = []
    for spec, got, ref in zip(kern.outputs, outs, refs):
        den = scale(name, spec.name, args, opts, ref, dtype)
        result.append((spec.name, rel_error(got, ref, den)))
    return result


# ----------------------------------------------------------------------------------------------
# The reference cases: one input set per (family, first input), K and dtype, shared by its kernels
# ----------------------------------------------------------------------------------------------
def _group(name):
    kern = REGISTRY[name]
    return kern.family, kern.inputs[0].name


GROUPS = sorted({_group(n) for n in REGISTRY})


def ref_cases(group, K, dtype):
    """[(case id, inputs, options)] of a kernel group with K classes in ``dtype`` (N = 4; K = 1
    adds one sample, the K = 1 call MATLAB has)."""
    fam, first = group
    rng = np.random.default_rng([K, np.dtype(dtype).itemsize, GROUPS.index(group)])
    f = functools.partial(np.asarray, dtype=dtype)
    if fam == "elementwise":
        noisy = np.linspace(-30, 30, 3 * K + 1) + rng.uniform(-0.5, 0.5, 3 * K + 1)
        return [("randn", (f(random_logits(rng, N, K, 4.0)),), {}), ("-30..30", (f(noisy),), {})]
    if fam == "rowwise":
        z, g = f(random_logits(rng, N, K)), f(rng.standard_normal((N, K)))
        return [("randn", (z, g), {})] + ([("one sample", (z[:1], g[:1]), {})] if K == 1 else [])
    if fam in ("ce_probs", "ce_logits"):
        x = f(random_distribution(rng, N, K) if first == "probs" else random_logits(rng, N, K))
        labels = rng.integers(0, K, N)
        ignored = labels.copy()
        ignored[1] = -100
        soft = f(random_distribution(rng, N, K))
        w = f(rng.uniform(0.2, 2.0, K))
        cases = [
            ("labels", (x, labels), {}),
            (
                "ignored w ls0.1 sum",
                (x, ignored),
                dict(weight=w, label_smoothing=0.1, reduction="sum"),
            ),
            (
                "ignored w ls0.25 none",
                (x, ignored),
                dict(weight=w, label_smoothing=0.25, reduction="none"),
            ),
            ("ignore_index 0 none", (x, labels), dict(ignore_index=0, reduction="none")),
            ("soft", (x, soft), {}),
            ("soft w ls0.2 none", (x, soft), dict(weight=w, label_smoothing=0.2, reduction="none")),
            ("soft w ls0.15 sum", (x, soft), dict(weight=w, label_smoothing=0.15, reduction="sum")),
        ]
        return cases + ([("one sample", (x[:1], labels[:1]), {})] if K == 1 else [])
    x = f(rng.uniform(0.02, 0.98, (N, K)) if first == "probs" else random_logits(rng, N, K))
    binary = f(rng.integers(0, 2, (N, K)))
    soft = f(rng.random((N, K)))
    w, pw = f(rng.uniform(0.2, 2.0, (N, K))), f(rng.uniform(0.5, 3.0, K))
    return [
        ("binary", (x, binary), {}),
        ("soft", (x, soft), {}),
        ("soft w pw sum", (x, soft), dict(weight=w, pos_weight=pw, reduction="sum")),
        ("soft w pw none", (x, soft), dict(weight=w, pos_weight=pw, reduction="none")),
        ("soft pw none", (x, soft), dict(pos_weight=pw, reduction="none")),
        ("soft sum", (x, soft), dict(reduction="sum")),
    ]


def _ref_calls():
    calls, cases = {}, {}
    for group in GROUPS:
        for K in KS:
            for dtype in DTYPES:
                for case_id, args, opts in ref_cases(group, K, dtype):
                    for name in REGISTRY:
                        if _group(name) == group:
                            key = ("ref", name, K, dtype, case_id)
                            calls[key] = (name, dtype, *_inputs(name, args, opts, dtype))
                            cases.setdefault((name, K, dtype), []).append(key)
    return calls, cases


REF_CALLS, REF_KEYS = _ref_calls()

# the fused kernels' extra inputs: huge logits, +inf, 0 and 1 targets (with the reference cases)
_BIG = np.array([[1e4, -1e4, 0.0, 88.0, -104.0], [-745.0, 40.0, -1e-8, 3.0, INF]])


def _with_grad_calls():
    rng = np.random.default_rng(6)
    x = np.concatenate([random_logits(rng, 3, 5), _BIG])
    y = rng.uniform(0, 1, x.shape)
    y[3:] = np.round(y[3:])
    w, pw = rng.uniform(0.5, 2, x.shape), rng.uniform(0, 3, 5)
    cases = [
        ("softmax_cross_entropy", "huge, labels", (_BIG[:, :4], np.array([0, 3])), {}),
        ("softmax_cross_entropy", "huge and inf, 0/1 targets", (_BIG, np.eye(2, 5)), {}),
    ]
    for red in ("none", "mean", "sum"):
        base = "sigmoid_binary_cross_entropy"
        cases += [
            (
                base,
                f"huge {red}",
                (_BIG, np.eye(2, 5)),
                dict(reduction=red, pos_weight=np.arange(5.0)),
            ),
            (base, f"huge among random {red}", (x, y), dict(reduction=red)),
            (
                base,
                f"huge among random w pw {red}",
                (x, y),
                dict(reduction=red, weight=w, pos_weight=pw),
            ),
        ]
    calls = {}
    for base, case_id, args, opts in cases:
        for dtype in DTYPES:
            for name in (base, base + "_grad", base + "_with_grad"):
                calls[("with_grad", name, dtype, case_id)] = (
                    name,
                    dtype,
                    *_inputs(name, args, opts, dtype),
                )
    return calls


WITH_GRAD_CALLS = _with_grad_calls()
FUSED = [n for n in REGISTRY if n.endswith("_with_grad")]


# ----------------------------------------------------------------------------------------------
# Finite differences (float64): a kernel F differentiated by its first input, against kernels G
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Against:
    """Kernel G's output ``out`` at ``args``, ``got(value)``, must equal ``want(D)``, D the
    finite-difference derivative of F."""

    kernel: str
    args: tuple
    out: int = 0
    got: Callable = lambda v: v
    want: Callable = lambda d: d


@dataclass(frozen=True)
class FD:
    """F = ``of`` at ``args`` with ``opts``.  ``independent``: "" perturbs one entry per call (the
    derivative of F's outputs summed, e.g. a reduced loss); "rows" perturbs one class of every row
    at once (rows that do not interact: D[n, ..., j] = d F[n, ...] / d x[n, j]); "elements" every
    element at once (D = d F / d x elementwise).  Probabilities take steps relative to |x|."""

    id: str
    of: str
    args: tuple
    opts: dict
    against: tuple
    independent: str = ""

    @property
    def relative(self):
        return REGISTRY[self.of].inputs[0].name == "probs"


H = 1e-6


def _steps(fd):
    x = np.asarray(fd.args[0], dtype=np.float64)
    return H * (np.abs(x) if fd.relative else np.maximum(1.0, np.abs(x)))


def _one_sided(fd):
    """Entries a step from 1 (probabilities): a one-sided second-order difference from below."""
    x = np.asarray(fd.args[0], dtype=np.float64)
    return (x + _steps(fd) > 1) if fd.relative else np.zeros(x.shape, bool)


def _perturbations(fd):
    """{label: perturbed first input} of an FD case."""
    x = np.asarray(fd.args[0], dtype=np.float64)
    step, below = _steps(fd), _one_sided(fd)
    out = {}
    if fd.independent == "elements":
        assert not below.any(), fd.id
        out[("all", 1)], out[("all", -1)] = x + step, x - step
    elif fd.independent == "rows":
        assert not below.any(), fd.id
        for j in range(x.shape[-1]):
            for s in (1, -1):
                v = x.copy()
                v[..., j] += s * step[..., j]
                out[(j, s)] = v
    else:
        for idx in np.ndindex(x.shape):
            for s in (0, -1, -2) if below[idx] else (1, -1):
                if s:
                    v = x.copy()
                    v[idx] += s * step[idx]
                    out[(idx, s)] = v
    return out


def derivative(fd, value):
    """D from ``value(label)``, the F outputs (a tuple) at each perturbation (label None: x)."""
    x = np.asarray(fd.args[0], dtype=np.float64)
    step, below = _steps(fd), _one_sided(fd)
    if fd.independent == "elements":
        return (value(("all", 1))[0] - value(("all", -1))[0]) / (2 * step)
    if fd.independent == "rows":
        cols = []
        for j in range(x.shape[-1]):
            d = value((j, 1))[0] - value((j, -1))[0]
            cols.append(d / (2 * step[..., j]).reshape((-1,) + (1,) * (d.ndim - 1)))
        return np.stack(cols, axis=-1)
    D = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        f = lambda s: float(np.sum(value((idx, s) if s else None)[0]))
        if below[idx]:
            D[idx] = (3 * f(0) - 4 * f(-1) + f(-2)) / (2 * step[idx])
        else:
            D[idx] = (f(1) - f(-1)) / (2 * step[idx])
    return D


def _loss_fds():
    """The loss kernels' gradients in the union of the per-language files' (option set,
    reduction) pairs; every set in 'none' too (each sample's or element's own gradient)."""
    rng = np.random.default_rng(3)
    table = []
    all_ = ("mean", "sum")
    for K in (3, 1):
        z, probs = random_logits(rng, 2, K), random_distribution(rng, 2, K)
        labels, soft = np.array([K - 1, 0]), random_distribution(rng, 2, K)
        w = rng.uniform(0.5, 2.0, K)
        sets = [("labels", labels, {}, all_), ("soft", soft, {}, all_ if K == 1 else ("mean",))]
        if K > 1:
            sets += [
                ("labels ls0.2", labels, dict(label_smoothing=0.2), ("sum",)),
                ("soft ls0.2", soft, dict(label_smoothing=0.2), ("sum",)),
                ("labels w ignore_index 0", labels, dict(weight=w, ignore_index=0), ("mean",)),
                (
                    "labels w ignore_index 0 ls0.1",
                    labels,
                    dict(weight=w, ignore_index=0, label_smoothing=0.1),
                    ("mean",),
                ),
                ("soft w", soft, dict(weight=w), ()),
                ("labels w ls0.3", labels, dict(weight=w, label_smoothing=0.3), ("mean",)),
                ("soft w ls0.3", soft, dict(weight=w, label_smoothing=0.3), ("mean",)),
                ("ignored w ls0.1", np.array([-100, 1]), dict(weight=w, label_smoothing=0.1), all_),
                ("soft w ls0.2", soft, dict(weight=w, label_smoothing=0.2), all_),
            ]
        for loss, x in (("softmax_cross_entropy", z), ("cross_entropy", probs)):
            for set_id, target, opts, reductions in sets:
                for red in (*reductions, "none"):
                    o = dict(opts, reduction=red)
                    table.append(_loss_fd(f"{loss} K={K} {set_id} {red}", loss, (x, target), o))
    x, p = random_logits(rng, 2, 3), rng.uniform(0.1, 0.9, (2, 3))
    soft, binary = rng.uniform(0, 1, (2, 3)), rng.integers(0, 2, (2, 3)).astype(float)
    w, pw = rng.uniform(0.5, 2.0, (2, 3)), rng.uniform(0.5, 3.0, 3)
    for loss, first in (("binary_cross_entropy", p), ("sigmoid_binary_cross_entropy", x)):
        sets = [("binary", binary, {}, all_), ("soft", soft, {}, ("mean",))]
        sets += [("soft w", soft, dict(weight=w), all_)]
        if loss.startswith("sigmoid"):
            sets += [
                ("soft pw", soft, dict(pos_weight=pw), ("mean",)),
                ("soft w pw", soft, dict(weight=w, pos_weight=pw), all_),
            ]
        for set_id, target, opts, reductions in sets:
            for red in (*reductions, "none"):
                o = dict(opts, reduction=red)
                table.append(_loss_fd(f"{loss} {set_id} {red}", loss, (first, target), o))
    return table


def _loss_fd(fd_id, loss, args, opts):
    against = [Against(loss + "_grad", args)]
    if loss + "_with_grad" in REGISTRY:
        against.append(Against(loss + "_with_grad", args, out=1))
    independent = ""
    if opts["reduction"] == "none":
        independent = "elements" if REGISTRY[loss].family == "bce" else "rows"
        probe = FD(fd_id, loss, args, opts, (), independent)
        if _one_sided(probe).any():
            independent = ""
    return FD(fd_id, loss, args, opts, tuple(against), independent)


def _row_fds():
    rng = np.random.default_rng(12)
    x = np.concatenate([np.linspace(-8, 8, 9), rng.standard_normal(7) * 3])
    table = [FD("sigmoid", "sigmoid", (x,), {}, (Against("sigmoid_grad", (x,)),), "elements")]
    for z in (
        random_logits(rng, 3, 4),
        random_logits(rng, 2, 5),
        random_logits(rng, 1, 1, 2.0),
        random_logits(rng, 1, 3, 2.0),
        random_logits(rng, 1, 7, 2.0),
    ):
        g = rng.standard_normal(z.shape)
        K = z.shape[1]
        tag = f"{z.shape[0]}x{K}"
        table += [
            FD(
                f"softmax {tag}",
                "softmax",
                (z,),
                {},
                (
                    Against("softmax_jacobian", (z,)),  # J[n, i, j] = d p_i / d z_j
                    Against(
                        "softmax_vjp", (z, g), want=lambda d, g=g: np.einsum("ni,nij->nj", g, d)
                    ),
                ),
                "rows",
            ),
            FD(f"logsumexp {tag}", "logsumexp", (z,), {}, (Against("softmax", (z,)),), "rows"),
            FD(
                f"log_softmax {tag}",
                "log_softmax",
                (z,),
                {},
                (Against("softmax", (z,), got=lambda p: np.eye(p.shape[-1]) - p[:, None, :]),),
                "rows",
            ),
        ]
    return table


FD_CASES = _loss_fds() + _row_fds()


def _fd_calls():
    calls = {}
    for fd in FD_CASES:
        kern = REGISTRY[fd.of]
        opts = {k: v for k, v in fd.opts.items() if k in kern.options}
        if _one_sided(fd).any():  # the one-sided differences need F at x itself
            calls[("fd", fd.id, None)] = (fd.of, "float64", fd.args, opts)
        for label, x in _perturbations(fd).items():
            calls[("fd", fd.id, label)] = (fd.of, "float64", (x, *fd.args[1:]), opts)
        for i, a in enumerate(fd.against):
            gopts = {k: v for k, v in fd.opts.items() if k in REGISTRY[a.kernel].options}
            calls[("fd", fd.id, "G", i)] = (a.kernel, "float64", a.args, gopts)
    return calls


FD_CALLS = _fd_calls()


# ----------------------------------------------------------------------------------------------
# Special values: (id, kernel, inputs, options, expected properties)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One call per dtype: ``kernel`` on its share of ``args`` (NumPy layout, the floats cast to
    each dtype of ``dtypes``) with ``opts``, and what its outputs must show (``expect``)."""

    id: str
    kernel: str
    args: tuple
    opts: dict = field(default_factory=dict)
    expect: tuple = ()
    dtypes: tuple = DTYPES
    fast_math: bool = True  # False: not a documented value under -ffast-math (those C builds skip)


@dataclass
class Ctx:
    """What a check sees: the case, the dtype, the inputs and options as called, and the outputs
    of another case in the same language and dtype, ``other(case id)``."""

    case: Case
    dtype: str
    args: tuple
    opts: dict
    other: Callable


OUTPUT_NAMES = {o.name for kern in REGISTRY.values() for o in kern.outputs}


def _named(ctx, outs, names):
    """[(output name, value)] of the outputs named (every output when ``names`` is empty); a
    kernel without such an output has nothing to check."""
    assert set(names) <= OUTPUT_NAMES, f"no output is named {set(names) - OUTPUT_NAMES}"
    kern = REGISTRY[ctx.case.kernel]
    return [(o.name, v) for o, v in zip(kern.outputs, outs) if not names or o.name in names]


@dataclass(frozen=True)
class Finite:
    outs: tuple = ()

    def __call__(self, ctx, outs):
        for name, v in _named(ctx, outs, self.outs):
            assert np.all(np.isfinite(v)), f"{name} is not finite: {v}"


@dataclass(frozen=True)
class Ref:
    """Against the reference, within ``tol`` (per dtype; TOL by default), or ``exact``: equal to
    it, NaN and infinities included."""

    form: str = "closed"
    tol: object = "tol"
    exact: bool = False

    def __call__(self, ctx, outs):
        tol = 0.0 if self.exact else _of(self.tol, ctx.dtype)
        for name, err in accuracy(ctx.case.kernel, ctx.args, ctx.opts, outs, self.form, ctx.dtype):
            assert err <= tol, f"{name} vs the {self.form} reference: error {err:.3g} > {tol:.3g}"


@dataclass(frozen=True)
class Values:
    """Output ``out`` (every output when None) at index ``at`` equals ``want`` (a value, or a
    function of the inputs), within ``rtol`` and ``atol`` (per dtype), NaN for NaN."""

    want: object
    out: str | None = None
    at: object = ()
    rtol: object = 0.0
    atol: object = 0.0

    def __call__(self, ctx, outs):
        want = self.want(*ctx.args) if callable(self.want) else self.want
        for name, v in _named(ctx, outs, (self.out,) if self.out else ()):
            np.testing.assert_allclose(
                np.asarray(v, dtype=np.float64)[self.at],
                want,
                rtol=_of(self.rtol, ctx.dtype),
                atol=_of(self.atol, ctx.dtype),
                err_msg=f"{name}",
            )


@dataclass(frozen=True)
class NanRows:
    """The rows (samples) listed hold a NaN (``every``: only NaN), the other rows none."""

    rows: tuple
    every: bool = False
    outs: tuple = ()

    def __call__(self, ctx, outs):
        for name, v in _named(ctx, outs, self.outs):
            nan = np.isnan(v).reshape(len(v), -1)
            for r in range(len(v)):
                if r not in self.rows:
                    assert not nan[r].any(), f"{name} row {r} holds NaN: {v[r]}"
                else:
                    assert nan[r].all() if self.every else nan[r].any(), f"{name} row {r}: {v[r]}"


@dataclass(frozen=True)
class NanWhere:
    """NaN exactly where ``mask(*inputs)`` is true."""

    mask: Callable
    outs: tuple = ()

    def __call__(self, ctx, outs):
        for name, v in _named(ctx, outs, self.outs):
            np.testing.assert_array_equal(np.isnan(v), self.mask(*ctx.args), err_msg=name)


@dataclass(frozen=True)
class Shapes:
    """The shape of each output named."""

    shapes: dict

    def __call__(self, ctx, outs):
        for name, v in _named(ctx, outs, tuple(self.shapes)):
            assert np.shape(v) == self.shapes[name], f"{name}: shape {np.shape(v)}"


@dataclass(frozen=True)
class Holds:
    """``test(value)`` of output ``out`` (of every output when None), said in words."""

    what: str
    test: Callable
    out: str | None = None

    def __call__(self, ctx, outs):
        for name, v in _named(ctx, outs, (self.out,) if self.out else ()):
            assert self.test(np.asarray(v)), f"{self.what}: {name} = {v}"


@dataclass(frozen=True)
class Same:
    """Output ``out`` at ``at`` equals case ``case``'s output ``out`` at ``other_at``, bit for bit
    (or within ``rtol`` per dtype)."""

    case: str
    out: int = 0
    at: object = ()
    other_at: object = ()
    rtol: object = 0.0

    def __call__(self, ctx, outs):
        mine = np.asarray(outs[self.out])[self.at]
        theirs = np.asarray(ctx.other(self.case)[self.out])[self.other_at]
        np.testing.assert_allclose(mine, theirs, rtol=_of(self.rtol, ctx.dtype), atol=0)


SPECIAL: dict[str, list[Case]] = {}  # group -> its cases (one per kernel)
ROWS = ("softmax", "log_softmax", "logsumexp", "softmax_jacobian")
CE_LOGITS = (
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_grad",
)
CE_PROBS = ("cross_entropy", "cross_entropy_grad")
BCE = ("binary_cross_entropy", "binary_cross_entropy_grad")
SBCE = (
    "sigmoid_binary_cross_entropy",
    "sigmoid_binary_cross_entropy_grad",
    "sigmoid_binary_cross_entropy_with_grad",
)
EPS2 = {d: 2 * e for d, e in EPS.items()}
EPS4 = {d: 4 * e for d, e in EPS.items()}


def _a(rows):
    return np.array(rows, dtype=np.float64)


def _l(labels):
    return np.array(labels, dtype=np.int64)


def _names(check):
    """The outputs a check names (none: it checks every output)."""
    if isinstance(check, Shapes):
        return set(check.shapes)
    named = getattr(check, "out", None)
    return {named} if isinstance(named, str) else set(getattr(check, "outs", ()))


def only(kernel, *checks):
    """The checks that name an output ``kernel`` has (or none: every output)."""
    outputs = {o.name for o in REGISTRY[kernel].outputs}
    return tuple(c for c in checks if not _names(c) or _names(c) & outputs)


def add(group, kernels, args, opts=None, expect=(), per_kernel=None, **kw):
    """The cases of ``group``: one per kernel (id ``group kernel``), each on its share of the
    inputs and options; ``per_kernel`` adds expectations by kernel name."""
    kernels = (kernels,) if isinstance(kernels, str) else tuple(kernels)
    for name in kernels:
        extra = tuple((per_kernel or {}).get(name, ()))
        for check, ks in [(c, kernels) for c in expect] + [(c, (name,)) for c in extra]:
            names, outputs = _names(check), {o.name for k in ks for o in REGISTRY[k].outputs}
            assert not names or names & outputs, f"{group}: {check} names no output of {ks}"
        case = Case(f"{group} {name}", name, args, dict(opts or {}), (*expect, *extra), **kw)
        assert all(c.id != case.id for cases in SPECIAL.values() for c in cases), case.id
        SPECIAL.setdefault(group, []).append(case)


def stable(group, z, labels, soft=None, opts=None, nonfinite=(), per_kernel=None, **kw):
    """The row kernels and the cross-entropy from logits on ``z`` (labels: 'none' and 'mean'; a
    soft target: 'none'): finite (but the kernels in ``nonfinite``), and the closed form."""
    pk = {
        n: (*((Finite(),) if n not in nonfinite else ()), *(per_kernel or {}).get(n, ()))
        for n in ROWS + CE_LOGITS
    }
    add(group, ROWS, (z,), opts, (Ref(),), pk, **kw)
    for red in ("none", "mean"):
        add(
            f"{group} {red}",
            CE_LOGITS,
            (z, labels),
            dict(opts or {}, reduction=red),
            (Ref(),),
            pk,
            **kw,
        )
    if soft is not None:
        add(
            f"{group} soft",
            CE_LOGITS,
            (z, soft),
            dict(opts or {}, reduction="none"),
            (Ref(),),
            pk,
            **kw,
        )


# -- the published seed values, and the sign of dL/dz ---------------------------------------------
SEED_Z = _a([[-2.85, 0.86, 0.28]])
SEED_P = _a([[0.0154493156760736, 0.631163353604709, 0.353387330719218]])
SEED_P_PUBLISHED = _a([[0.0154493156751271, 0.631163353697413, 0.353387330637003]])  # Maple, ~1e-9
SEED_CE = 1.0401905694301  # class 3 (1-based): index 2
DOG_Z = _a([[1.0, 2.0, 0.5]])
DOG_P = _float(R.evaluate("softmax", DOG_Z, form="closed"))
DOG_CE = 0.464368784107945  # class index 1 ("dog"), not the seed's 0.462

add(
    "seed",
    "softmax",
    (SEED_Z,),
    expect=(
        Values(SEED_P, rtol=per(1e-5, 1e-13)),
        Values(SEED_P_PUBLISHED, rtol=per(1e-5, 1e-9)),
    ),
)
add(
    "seed class 3",
    CE_LOGITS,
    (SEED_Z, _l([2])),
    expect=(
        Values(SEED_CE, out="loss", rtol=per(1e-5, 0), atol=per(0, 1e-13)),
        Values(1.040190570, out="loss", rtol=per(1e-5, 0), atol=per(0, 1e-9)),
        Values(SEED_P - [0, 0, 1], out="grad", rtol=per(1e-5, 1e-11), atol=per(1e-5, 1e-11)),
        Holds(
            "dL/dz = p - y: negative at the true class only",
            lambda g: g[0, 2] < 0 < g[0, :2].min(),
            "grad",
        ),
    ),
)
add(
    "seed p",
    "cross_entropy",
    (SEED_P, _l([2])),
    expect=(Values(SEED_CE, rtol=per(1e-5, 0), atol=per(0, 1e-13)),),
)
add(
    "seed dog",
    CE_LOGITS,
    (DOG_Z, _l([1])),
    expect=(
        Values(DOG_CE, out="loss", atol=per(1e-6, 1e-14)),
        Holds("not the seed's rounded 0.462", lambda v: abs(float(v) - 0.462) > 1e-3, "loss"),
        Values(DOG_P - [0, 1, 0], out="grad", rtol=per(1e-5, 1e-15), atol=per(1e-5, 1e-16)),
        Holds(
            "dL/dz = p - y: negative at the true class only",
            lambda g: g[0, 1] < 0 < g[0, [0, 2]].min(),
            "grad",
        ),
    ),
)

# -- special values of docs/semantics.md -----------------------------------------------------------
_X = _a([INF, -INF, NAN, 0.0, 1e4, -1e4])
add("special", "sigmoid", (_X,), expect=(Values([1, 0, NAN, 0.5, 1, 0]), Ref()))
add("special", "sigmoid_grad", (_X,), expect=(Values([0, 0, NAN, 0.25, 0, 0]), Ref()))
_LSE = [-INF, 1 + math.log1p(math.exp(-1)), 4 + math.log1p(sum(math.exp(-k) for k in (1, 2, 3)))]
add(
    "special",
    "logsumexp",
    (_a([[-INF] * 4, [-INF, 0, -INF, 1], [1, 2, 3, 4]]),),
    expect=(
        Values(_LSE, rtol="tol"),
        Ref(),
    ),
)
# a NaN probability gives NaN, not the clamp's 100; p = 0 at y = 1 gives the clamp's 100
_P, _Y = _a([[NAN, 0.5, 0.0, 1.0]]), _a([[1.0, 1.0, 1.0, 0.0]])
add(
    "nan and clamp none",
    BCE,
    (_P, _Y),
    {"reduction": "none"},
    expect=(
        NanWhere(lambda p, y: np.isnan(p)),
        Ref(),
    ),
    per_kernel={"binary_cross_entropy": (Values(100, at=np.s_[0, 2:]),)},
)
add(
    "nan and clamp sum",
    "binary_cross_entropy",
    (_P, _Y),
    {"reduction": "sum"},
    expect=(Values(NAN),),
)
_P = _a([[NAN, 0.5, 0.5], [0.0, 0.5, 0.5]])
add(
    "nan and clamp none",
    "cross_entropy",
    (_P, _l([0, 0])),
    {"reduction": "none"},
    expect=(
        Values([NAN, 100]),
        Ref(),
    ),
)
add(
    "nan and clamp mean",
    "cross_entropy_grad",
    (_P, _l([0, 0])),
    expect=(
        NanWhere(lambda p, t: np.isnan(p)),
        Ref(),
    ),
)
# a subnormal float probability is not flushed (-ffast-math builds keep subnormals): 96.7, not 100
add(
    "subnormal probability",
    "binary_cross_entropy",
    (_a([[1e-42, 1e-40]]), _a([[1, 1]])),
    {"reduction": "none"},
    dtypes=("float32",),
    expect=(
        Values(lambda p, y: -np.log(p.astype(np.float64)), rtol="tol"),
        Ref("raw"),
    ),
)


# -- huge logits: finite, and accurate --------------------------------------------------------------
def _huge(b, label):
    return [[b, -b, 0], [-b, -b, -b], [b, b, 0.5 * b], [0.5, b, -b]], [label, 1, 2, 1]


def _rows_of(*blocks):
    rows, labels = [], []
    for r, t in blocks:
        rows += r
        labels += t
    return _a(rows), _l(labels)


_HUGE = {  # float64 only; float32's range (both dtypes): up to 1e30 and beyond exp's range
    "float64": _rows_of(
        _huge(1e4, 0),
        _huge(1e300, 0),
        ([[1e4, -1e4, 0], [-1e4] * 3, [1e4] * 3, [0, 1e4, 1e4 - 1]], [1, 0, 2, 2]),
        ([[1e4, -1e4, 0], [-1e4, -1e4 + 1, -1e4 + 2], [1e4] * 3, [0.5, 1e4, -3]], [1] * 4),
    ),
    "float32": _rows_of(
        _huge(100.0, 0),
        _huge(1e4, 0),
        _huge(1e30, 0),
        ([[100, -100, 0], [-100, 100, 99], [100, 100, 100]], [1, 2, 0]),
        ([[1e3, -1e3, 0], [1e30, 0, -1e30], [-1e30, -1e30, 5]], [1, 0, 0]),
        ([[100, -100, 0], [-100, -99, -98], [100] * 3, [0.5, 100, -3]], [1] * 4),
        ([[200, -200, 0], [1e30, -1e30, 3e29], [-1e30] * 3], [1] * 3),
    ),
}
for _dt, (_z, _t) in _HUGE.items():
    _dts = ("float64",) if _dt == "float64" else DTYPES
    _soft = random_distribution(np.random.default_rng(0), len(_z), 3)
    _bin = (np.indices(_z.shape).sum(axis=0) % 2).astype(np.float64)
    stable(f"huge {_dt}-range", _z, _t, _soft, dtypes=_dts)
    add(
        f"huge {_dt}-range",
        ("sigmoid", "sigmoid_grad"),
        (_z,),
        expect=(Finite(), Ref()),
        dtypes=_dts,
    )
    for _red in ("none", "mean"):
        add(
            f"huge {_dt}-range {_red}",
            SBCE,
            (_z, _bin),
            {"reduction": _red},
            (Finite(), Ref()),
            dtypes=_dts,
        )
add(
    "sigmoid extremes",
    ("sigmoid", "sigmoid_grad", *SBCE),
    (_a([[1e4, -1e4, 800, -800, 90, -90]]), _a([[0, 1, 0.3, 1, 0, 0.5]])),
    {"reduction": "none"},
    expect=(Finite(), Ref()),
)

# -- a dominant logit: log p is -log1p(Srest), not 0 ----------------------------------------------
_Z = _a([[50.0, 0.0, 0.0], [20.0, -1.0, 3.0]])
add(
    "dominant",
    "log_softmax",
    (_Z,),
    expect=(
        Ref("raw", EPS4),
        Holds("log p of the dominant class < 0", lambda v: v[0, 0] < 0),
    ),
)
add(
    "dominant",
    "softmax_cross_entropy",
    (_Z, _l([0, 0])),
    {"reduction": "none"},
    expect=(Ref("raw", EPS4),),
)
stable(
    "dominant 4 classes",
    _a([[50, 0, 0, 0], [0, 0, 0, 38]]),
    _l([0, 3]),
    per_kernel={
        "log_softmax": (Values(-math.log1p(3 * math.exp(-50)), at=(0, 0), rtol=per(1e-6, 1e-14)),),
    },
)
stable(
    "dominant 3 classes",
    _a([[30, 0, 0], [0, 0, 17]]),
    _l([0, 2]),
    per_kernel={
        "log_softmax": (Values(-math.log1p(2 * math.exp(-30)), at=(0, 0), rtol=per(1e-6, 1e-14)),),
    },
)
_D40, _D60 = math.log1p(4 * math.exp(-40)), math.log1p(4 * math.exp(-60))
_Z = _a([[2] * 5, [-7] * 5, [40, 0, 0, 0, 0], [0, 0, 0, 0, 60], [0, 0, 60, 0, 0]])
stable(
    "equal and dominant",
    _Z,
    _l([0, 3, 0, 4, 2]),
    per_kernel={
        "softmax": (Values(0.2, at=np.s_[:2], rtol="tol"),),
        "log_softmax": (
            Values(-_D40, at=(2, 0), rtol="tol"),
            Values(-_D60, at=([3, 4], [4, 2]), rtol="tol"),
            Holds("log p of the dominant class < 0", lambda v: v[2, 0] < 0),
        ),
    },
)
add(
    "dominant by 40",
    "softmax_cross_entropy",
    (_Z[2:3], _l([0])),
    expect=(Values(_D40, rtol="tol"),),
)

# -- equal logits: uniform rows -------------------------------------------------------------------
for _k in (1, 2, 3, 7, 16):
    _Z = np.full((2 if _k > 1 else 1, _k), 3.25)
    add(f"equal K={_k}", "softmax", (_Z,), expect=(Values(1 / _k, rtol=EPS2),))
    add(f"equal K={_k}", "log_softmax", (_Z,), expect=(Values(-math.log(_k), rtol=EPS2),))
    add(f"equal K={_k}", "logsumexp", (_Z,), expect=(Values(3.25 + math.log(_k), rtol=EPS2),))

# -- masked classes (-inf) with a zero target contribute nothing ------------------------------------
_Z = _a([[1, -INF, 2, 0.5], [-INF, 0.3, -INF, -1], [0, -INF, 1, -INF], [-INF, 3, -INF, -INF]])
_S = _a([[0.2, 0, 0.8, 0], [0, 0.5, 0, 0.5], [0.3, 0, 0.7, 0], [0, 1, 0, 0]])
_M = np.isinf(_Z)
_masked = {
    "softmax": (Values(0, at=_M),),
    **{n: (Values(0, out="grad", at=_M),) for n in CE_LOGITS[1:]},
}
stable("masked", _Z, _l([2, 3, 2, 1]), _S, nonfinite=("log_softmax",), per_kernel=_masked)
stable(
    "masked 3 classes",
    _a([[-INF, 1, 2], [0.5, -INF, -INF]]),
    _l([2, 0]),
    opts={"label_smoothing": 0.0},
    nonfinite=("log_softmax",),
    per_kernel={
        "softmax": (Values(0, at=np.isinf(_a([[-INF, 1, 2], [0.5, -INF, -INF]]))),),
    },
)
_Z3 = _a([[-INF, 1, 2], [0.5, -INF, 3]])
add(
    "masked 3 classes soft",
    CE_LOGITS,
    (_Z3, _a([[0, 0.25, 0.75], [1, 0, 0]])),
    {"reduction": "none"},
    expect=(Finite(), Ref(), Values(0, out="grad", at=np.isinf(_Z3))),
)
_Z3 = _a([[0, -INF, 1, -INF], [-INF, 3, -INF, -INF], [-INF] * 4])
add(
    "masked and ignored",
    "softmax_cross_entropy_grad",
    (_Z3, _l([2, 1, -100])),
    {"reduction": "sum"},
    expect=(Values(0, at=np.isinf(_Z3)), Values(0, at=2), Ref()),
)
# the same loss as the unmasked classes alone
add("unmasked classes", "softmax_cross_entropy", (_Z[:1, [0, 2, 3]], _l([1])))
add(
    "masked row",
    "softmax_cross_entropy",
    (_Z[:1], _l([2])),
    expect=(Same("unmasked classes softmax_cross_entropy", rtol=EPS4),),
)

# -- probabilities 0 and 1: finite (the clamps), and the references ---------------------------------
_PA, _YA = _a([[0, 1], [1, 0], [0.5, 0.5]]), _a([[1, 0], [1, 0], [1, 0]])
_PB, _YB = _a([[0, 1, 0, 1, 0.5]]), _a([[0, 1, 1, 0, 0.5]])
_PC = _a([[0, 1, 0], [0.5, 0.5, 0]])
_CHECKS = (Finite(), Ref("raw"), Ref())
for _red in ("none", "sum", "mean"):
    _pk = {"binary_cross_entropy": (Values(100, at=(0, 0)),)} if _red == "none" else {}
    add(f"probs 0 1 {_red}", BCE, (_PA, _YA), {"reduction": _red}, _CHECKS, _pk)
    _pk = {"binary_cross_entropy": (Values(100, at=np.s_[0, 2:4]),)} if _red == "none" else {}
    add(f"probs 0 1 row {_red}", BCE, (_PB, _YB), {"reduction": _red}, _CHECKS, _pk)
    _pk = {"cross_entropy": (Values(100, at=0),)} if _red == "none" else {}
    add(
        f"probs 0 1 labels {_red}",
        CE_PROBS,
        (_PA, _l([0, 1, 0])),
        {"reduction": _red},
        _CHECKS,
        _pk,
    )
    add(f"probs 0 1 soft {_red}", CE_PROBS, (_PA, _YA), {"reduction": _red}, _CHECKS)
    add(f"probs 0 1 3 classes {_red}", CE_PROBS, (_PC, _l([0, 2])), {"reduction": _red}, _CHECKS)
    add(
        f"probs 0 1 3 classes smoothed {_red}",
        CE_PROBS,
        (_PC, _l([1, 0])),
        {"reduction": _red, "label_smoothing": 0.1},
        _CHECKS,
    )
    add(
        f"probs 0 1 3 classes soft {_red}",
        CE_PROBS,
        (_PC, _a([[0.5, 0.5, 0], [0, 0.5, 0.5]])),
        {"reduction": _red},
        _CHECKS,
    )
add(
    "probs 0 1 clamp",
    "cross_entropy_grad",
    (_a([[0, 1]]), _l([0])),
    {"reduction": "sum"},
    expect=(Values([[-1e12, 0.0]], rtol=1e-6),),
)


# -- NaN in -> NaN out: where it depends on the NaN, and nowhere else -----------------------------
def _nan_cases():
    rng = np.random.default_rng(9)
    z, g = random_logits(rng, 3, 4), rng.standard_normal((3, 4))
    probs, soft = random_distribution(rng, 3, 4), random_distribution(rng, 3, 4)
    u, y = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4))

    def nan(a):
        a = a.copy()
        a[1, 2] = NAN
        return a

    def where(*a):
        return np.any([np.isnan(v) for v in a if v.dtype.kind == "f" and v.ndim == 2], axis=0)

    def _target_nan(x, t):
        return where(t) if t.ndim == 2 else np.zeros(x.shape, bool)

    clean = ([0, 2],)
    for name, kern in REGISTRY.items():
        fam = kern.family
        if fam == "elementwise":
            add("nan", name, (_a([0.5, NAN, -2.0]),), expect=(NanWhere(np.isnan), Ref()))
            add("nan 2-D", name, (nan(z),), expect=(NanWhere(np.isnan), Ref()))
        elif fam == "rowwise":
            add("nan clean rows", name, (z[[0, 2]], g[[0, 2]]))
            add(
                "nan",
                name,
                (nan(z), g),
                expect=(
                    NanRows((1,), every=True),
                    Ref(),
                    Same(f"nan clean rows {name}", at=clean),
                ),
            )
            if name == "softmax_vjp":
                add("nan in g", name, (z, nan(g)), expect=(NanRows((1,), every=True), Ref()))
        elif fam == "bce":
            x = u if kern.inputs[0].name == "probs" else z
            # a gradient that does not read its input (kl_div's -y) has no NaN from it
            reads = "grad" not in kern.slots or bool(
                {kr.x, kr.prob} & kern.slots["grad"].free_symbols
            )
            mask = where if reads else (lambda _x, t: where(t))
            for tag, args in (("nan", (nan(x), y)), ("nan target", (x, nan(y)))):
                add(f"{tag} none", name, args, {"reduction": "none"}, (NanWhere(mask), Ref()))
                mean = only(name, Values(NAN, out="loss"), NanWhere(mask, outs=("grad",)), Ref())
                add(f"{tag} mean", name, args, expect=mean)
        else:
            x = probs if kern.checks_domain else z  # probabilities, logits or log-probabilities
            # a gradient that does not read its input (nll_loss's -y~) has no NaN from it
            reads = "grad" not in kern.slots or bool({kr.p, kr.v} & kern.slots["grad"].free_symbols)
            grad = (
                NanRows((1,), every=True, outs=("grad",))
                if fam == "ce_logits"
                else NanWhere(where if reads else _target_nan, outs=("grad",))
            )
            labels = _l([0, 2, 3])  # row 1's label is the NaN's class
            for tag, args in (
                ("nan", (nan(x), labels)),
                ("nan soft", (nan(x), soft)),
                ("nan target", (x, nan(soft))),
            ):
                add(
                    f"{tag} clean rows", name, tuple(a[[0, 2]] for a in args), {"reduction": "none"}
                )
                same = tuple(
                    Same(f"{tag} clean rows {name}", out=i, at=clean)
                    for i in range(len(kern.outputs))
                )
                none = only(name, NanRows((1,), outs=("loss",)), grad, Ref(), *same)
                add(f"{tag} none", name, args, {"reduction": "none"}, expect=none)
                mean = only(name, Values(NAN, out="loss"), grad, Ref())
                add(f"{tag} mean", name, args, expect=mean)


_nan_cases()

# -- rows of -inf, and rows holding +inf (docs/semantics.md) ----------------------------------------
_Z = _a([[-INF] * 4, [0.5, -INF, 2, -1]])
add("-inf row", "softmax", (_Z,), expect=(NanRows((0,), every=True), Ref()))
add(
    "-inf row",
    "log_softmax",
    (_Z,),
    expect=(NanRows((0,), every=True), Values(-INF, at=(1, 1)), Ref()),
)
add(
    "-inf row",
    "logsumexp",
    (_Z,),
    expect=(
        Values(-INF, at=0),
        Holds("a finite lse beside it", lambda v: np.isfinite(v[1])),
        Ref(),
    ),
)
add("-inf row", "softmax_jacobian", (_Z,), expect=(NanRows((0,), every=True), Ref()))
add(
    "-inf row",
    "softmax_cross_entropy_with_grad",
    (_Z, _l([1, 0])),
    expect=(Values(NAN, out="loss"), Ref()),
)
add(
    "-inf row none",
    "softmax_cross_entropy_with_grad",
    (_Z, _l([1, 0])),
    {"reduction": "none"},
    expect=(
        NanRows((0,), every=True),
        Ref(),
    ),
)
_Z = _a(
    [
        [-INF, -INF, -INF],
        [0, INF, 1],
        [2, INF, -INF],
        [INF, 0, -1],
        [INF, -INF, INF],
        [1000, INF, 0],
    ]
)
_NAN_AT = np.isposinf(_Z) | np.isneginf(_Z).all(axis=1, keepdims=True)
add("inf rows", "softmax", (_Z,), expect=(Values(np.where(_NAN_AT, NAN, 0.0)), Ref(exact=True)))
add(
    "inf rows", "log_softmax", (_Z,), expect=(Values(np.where(_NAN_AT, NAN, -INF)), Ref(exact=True))
)
add("inf rows", "logsumexp", (_Z,), expect=(Values([-INF] + [INF] * 5), Ref(exact=True)))
# the Jacobian of such a row is NaN only through 0 * NaN off the diagonal (p_i (0 pc_i - p_j)),
# which -ffast-math may fold to 0: not a documented value there
add("inf rows", "softmax_jacobian", (_Z,), expect=(Ref(exact=True),), fast_math=False)
for _t in (0, 1):  # a row holding +inf (or only -inf) is NaN throughout in the cross-entropy
    add(
        f"inf rows label {_t}",
        CE_LOGITS,
        (_Z, _l([_t] * 6)),
        {"reduction": "none"},
        expect=(
            NanRows(tuple(range(6)), every=True),
            Ref(exact=True),
        ),
    )
for _dt in DTYPES:  # the largest finite logits beside +inf (issue 8: 1000 beside +inf gave NaN)
    _big = float(np.finfo(_dt).max)
    _Z = _a([[-_big, INF, 700.0], [_big, INF, -_big]])
    add(
        f"inf rows largest {_dt}",
        "softmax",
        (_Z,),
        dtypes=(_dt,),
        expect=(
            Values(np.where(np.isposinf(_Z), NAN, 0.0)),
            Ref(exact=True),
        ),
    )
    add(
        f"inf rows largest {_dt}",
        "log_softmax",
        (_Z,),
        dtypes=(_dt,),
        expect=(
            Values(np.where(np.isposinf(_Z), NAN, -INF)),
            Ref(exact=True),
        ),
    )
    add(
        f"inf rows largest {_dt}",
        "logsumexp",
        (_Z,),
        dtypes=(_dt,),
        expect=(Values(INF), Ref(exact=True)),
    )

# -- one class: p = 1, log p = 0, no loss, no gradient ----------------------------------------------
for _z in (_a([[3.0], [-1e4], [-1e3], [0.0]]), _a([[-1e4]])):
    _n = len(_z)
    _g = f"one class N={_n}"
    add(_g, "softmax", (_z,), expect=(Values(1),))
    add(_g, "log_softmax", (_z,), expect=(Values(0),))
    add(_g, "logsumexp", (_z,), expect=(Values(lambda z: z[:, 0]),))
    add(_g, "softmax_jacobian", (_z,), expect=(Values(0), Shapes({"out": (_n, 1, 1)})))
    add(_g, CE_LOGITS, (_z, np.zeros(_n, np.int64)), expect=(Values(0),))
    add(_g, "cross_entropy", (np.ones((_n, 1)), np.zeros(_n, np.int64)), expect=(Values(0),))


# -- an empty batch (N = 0) -------------------------------------------------------------------------
def _empty_cases():
    z0, l0 = np.zeros((0, 3)), np.zeros(0, np.int64)
    for name, kern in REGISTRY.items():
        fam = kern.family
        if fam == "elementwise":
            add("empty", name, (z0,), expect=(Shapes({"out": (0, 3)}),))
            add("empty 1-D", name, (np.zeros(0),), expect=(Shapes({"out": (0,)}),))
        elif fam == "rowwise":
            shape = {"logsumexp": (0,), "softmax_jacobian": (0, 3, 3)}.get(name, (0, 3))
            add("empty", name, (z0, z0), expect=(Shapes({"out": shape}),))
        else:
            targets = (("soft", z0),) if fam == "bce" else (("labels", l0), ("soft", z0))
            none = (0, 3) if fam == "bce" else (0,)
            for tag, t in targets:
                add(
                    f"empty {tag} mean",
                    name,
                    (z0, t),
                    expect=only(
                        name, Values(NAN, out="loss"), Shapes({"loss": (), "grad": (0, 3)})
                    ),
                )
                add(
                    f"empty {tag} sum",
                    name,
                    (z0, t),
                    {"reduction": "sum"},
                    expect=only(name, Values(0, out="loss"), Shapes({"loss": (), "grad": (0, 3)})),
                )
                add(
                    f"empty {tag} none",
                    name,
                    (z0, t),
                    {"reduction": "none"},
                    expect=(Shapes({"loss": none, "grad": (0, 3)}),),
                )


_empty_cases()

# -- every sample ignored: the mean is NaN (0/0), the sum 0, the gradient 0 -------------------------
_rng = np.random.default_rng(2)
_X = {"ce_logits": random_logits(_rng, 3, 4), "ce_probs": random_distribution(_rng, 3, 4)}
_W = _rng.uniform(0.5, 2.0, 4)
for _name in (*CE_PROBS, *CE_LOGITS):
    for _tag, _o in (("", {}), (" w ls0.1", {"weight": _W, "label_smoothing": 0.1})):
        _args = (_X[REGISTRY[_name].family], np.full(3, -100))
        for _red, _loss in (("mean", NAN), ("sum", 0), ("none", 0)):
            _checks = only(_name, Values(_loss, out="loss"), Values(0, out="grad"))
            add(f"all ignored{_tag} {_red}", _name, _args, dict(_o, reduction=_red), _checks)


def _special_calls():
    calls = {}
    for cases in SPECIAL.values():
        for case in cases:
            for dtype in case.dtypes:
                args, opts = _inputs(case.kernel, case.args, case.opts, dtype)
                calls[("special", case.id, dtype)] = (case.kernel, dtype, args, opts)
    return calls


SPECIAL_CALLS = _special_calls()
ALL_CALLS = {**REF_CALLS, **WITH_GRAD_CALLS, **FD_CALLS, **SPECIAL_CALLS}


# ----------------------------------------------------------------------------------------------
# The batches: every call of the module, once per language (the special values in every C build)
# ----------------------------------------------------------------------------------------------
def _runner(target):
    if target.startswith("c-"):
        return runner("c", clib=c_build.library(target[2:]))
    return for_language(target)


@functools.cache
def _run(target):
    """({call key: outcome}, {keys of calls that modified an input}) of ``target``."""
    if EXTRA_C:
        c_build.prefetch()  # the other C builds compile meanwhile
    calls = ALL_CALLS if target in LANGUAGES else SPECIAL_CALLS
    before = {k: [np.copy(a) for a in c[2]] for k, c in calls.items()}
    got = _runner(target).call_many(list(calls.values()))
    modified = {
        k
        for k, c in calls.items()
        if not all(
            np.array_equal(a, b, equal_nan=b.dtype.kind == "f") for a, b in zip(c[2], before[k])
        )
    }
    return dict(zip(calls, got)), modified


@pytest.fixture(scope="module")
def outcomes(request):
    """(target, {call key: outcome}, modified keys): every call of the module in one language
    (or C build), one batch."""
    return (request.param, *_run(request.param))


@pytest.fixture(scope="module", autouse=True)
def _forget():
    yield
    _run.cache_clear()
    _REFS.clear()


def _outcome(outcomes, key, skip=True):
    """The outputs of call ``key``; None (or a skip, with ``skip``) for a call the language does
    not have; a failure for a refusal or a modified input."""
    target, got, modified = outcomes
    out = got[key]
    if out is None:
        if skip:
            pytest.skip(f"{target} has no such call (MATLAB reads a 1-by-K row as one sample)")
        return None
    assert not isinstance(out, Raised), f"{target} refused {key}: {out}"
    assert key not in modified, f"{target} {key}: an input was modified"
    return out


def _skip_if_none(ran, target):
    if not ran:
        pytest.skip(f"{target} has none of these calls (MATLAB reads a 1-by-K row as one sample)")


# ----------------------------------------------------------------------------------------------
# The tests
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("outcomes", LANGUAGES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("name", list(REGISTRY))
def test_against_references(outcomes, name, K, dtype):
    ran = 0
    for key in REF_KEYS[(name, K, dtype)]:
        out = _outcome(outcomes, key, skip=False)
        if out is None:
            continue
        ran += 1
        _, _, args, opts = REF_CALLS[key]
        for o, v in zip(REGISTRY[name].outputs, out):
            assert v.dtype == np.dtype(dtype), f"{key} {o.name}: {v.dtype}"
        for form in ("raw", "closed"):
            for output, err in accuracy(name, args, opts, out, form, dtype):
                assert err <= TOL[dtype], (
                    f"{outcomes[0]} {name}.{output} K={K} {dtype} {key[-1]} ({opts}) vs the {form} "
                    f"reference: error {err:.3g}"
                )
    _skip_if_none(ran, outcomes[0])


@pytest.mark.parametrize("outcomes", LANGUAGES, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fused", FUSED)
def test_with_grad_is_loss_and_grad(outcomes, fused, dtype):
    """The fused kernel returns the loss and the gradient kernels' numbers, bit for bit, on every
    reference input and on huge logits, +inf and 0/1 targets."""
    base = fused.removesuffix("_with_grad")
    keys = [k for k in REF_CALLS if k[1] == fused and k[3] == dtype]
    keys += [k for k in WITH_GRAD_CALLS if k[1] == fused and k[2] == dtype]
    ran = 0
    for key in keys:
        both = _outcome(outcomes, key, skip=False)
        if both is None:
            continue
        ran += 1
        loss = _outcome(outcomes, key[:1] + (base,) + key[2:])
        grad = _outcome(outcomes, key[:1] + (base + "_grad",) + key[2:])
        np.testing.assert_array_equal(both[0], loss[0], err_msg=f"{outcomes[0]} loss {key}")
        np.testing.assert_array_equal(both[1], grad[0], err_msg=f"{outcomes[0]} grad {key}")
    _skip_if_none(ran, outcomes[0])


@pytest.mark.parametrize("outcomes", LANGUAGES, indirect=True)
@pytest.mark.parametrize("fd", FD_CASES, ids=[fd.id for fd in FD_CASES])
def test_gradients_match_finite_differences(outcomes, fd):
    D = derivative(fd, lambda label: _outcome(outcomes, ("fd", fd.id, label)))
    for i, a in enumerate(fd.against):
        value = np.asarray(_outcome(outcomes, ("fd", fd.id, "G", i))[a.out], dtype=np.float64)
        got, want = a.got(value), a.want(D)
        assert got.shape == want.shape, (a.kernel, got.shape, want.shape)
        where = f"{outcomes[0]} {a.kernel} vs finite differences of {fd.of}"
        assert np.all(np.isfinite(got)), f"{where}: {got}"
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=where)
        top = float(np.max(np.abs(want))) if want.size else 0.0
        err = float(np.max(np.abs(got - want))) if want.size else 0.0
        assert err <= 1e-6 * top, f"{where}: {err:.3g} > 1e-6 x {top:.3g} (normwise)"
        assert err <= 1e-7 * max(1.0, top), f"{where}: {err:.3g} (relative to max(1, {top:.3g}))"


@pytest.mark.parametrize("outcomes", TARGETS, indirect=True)
@pytest.mark.parametrize("group", list(SPECIAL))
def test_special_values(outcomes, group):
    target = outcomes[0]
    ran = 0
    for case in SPECIAL[group]:
        if not case.fast_math and "fast-math" in target:
            continue
        for dtype in case.dtypes:
            out = _outcome(outcomes, ("special", case.id, dtype), skip=False)
            if out is None:
                continue
            ran += 1
            _, _, args, opts = SPECIAL_CALLS[("special", case.id, dtype)]
            for o, v in zip(REGISTRY[case.kernel].outputs, out):
                assert v.dtype == np.dtype(dtype), f"{target} {case.id} {dtype} {o.name}: {v.dtype}"
            other = lambda cid, dtype=dtype: _outcome(outcomes, ("special", cid, dtype))
            ctx = Ctx(case, dtype, args, opts, other)
            for check in case.expect:
                try:
                    check(ctx, out)
                except AssertionError as exc:
                    raise AssertionError(
                        f"{target} {case.id} {dtype}: {type(check).__name__}: {exc}"
                    ) from None
    if not ran and any(not c.fast_math for c in SPECIAL[group]):
        pytest.skip(f"{target}: not a documented value under -ffast-math")
    _skip_if_none(ran, target)
