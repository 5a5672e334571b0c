"""The generated MATLAB kernels, run in GNU Octave (all calls of this module in one octave-cli).

* every kernel, double and single, K in {1, 2, 3, 7, 16}, against the mpmath references
  (``raw`` = definitions and sp.diff, ``closed`` = the registry slots);
* gradients, the Jacobian and the VJP against central finite differences of the Octave kernels;
* the published seed values, the sign of dL/dz;
* stability: huge logits, -Inf (masked) classes, probabilities 0 and 1, NaN, K = 1, N = 0;
  rows of all -Inf and rows with +Inf as docs/semantics.md specifies them;
* single input: the sigmoid and the row kernels compute in double and round once (bit for bit);
* ``help`` output, and the examples in it (run, and compared with the values the help shows);
* the printer (string asserts) and the sync of generated/matlab with the templates.

Accuracy criteria: elementwise relative error <= 1e-12 (double) / 1e-5 (single).  For the
formulas that subtract (Jacobian p_i(delta_ij - p_j), VJP p_j(g_j - <g, p>), gradients
p*sum(y~) - y~ and (1-y)sigma(x) - w+ y sigma(-x)) the error is relative to the magnitude of the
terms they subtract (``octave_runner.term_scale``): a result much smaller than its terms keeps
only the digits the terms leave, in any implementation of that formula.  The ULP bounds of the
numerics pass are in test_matlab_accuracy.py; the bad-input table in test_matlab_badinput.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

from symce import generate, kernels, reference
from symce.functions import clamp_min, expm1, log1p, mul0, sigmoid, softplus, two_sum_err
from symce.lang import matlab_backend as mb

import support
from octave_runner import MATLAB_DIR, Batch, errors, matlab_args, term_scale, to_numpy_layout

REGISTRY = kernels.registry()
KS = (1, 2, 3, 7, 16)
N = 4
DTYPES = (np.float64, np.float32)
RTOL = {np.float64: 1e-12, np.float32: 1e-5}
# option sets checked against the references (the PyTorch parity module covers every combination)
REF_OPTIONS = (
    {},
    {"weight": "w", "label_smoothing": 0.15, "reduction": "sum"},
    {"ignore_index": 0, "reduction": "none"},
)


def _inputs(name, K, dtype, rng, soft=False):
    """NumPy-layout inputs of kernel ``name`` with K classes and N samples (one sample for K = 1
    in the row families: MATLAB reads a 1-by-N row as one sample of N classes)."""
    fam = REGISTRY[name].family
    if fam == "elementwise":
        return (support.random_logits(rng, N, K, 4.0, dtype),)
    n = 1 if K == 1 else N
    if fam == "rowwise":
        z = support.random_logits(rng, n, K, 3.0, dtype)
        return (z, support.random_logits(rng, n, K, 1.0, dtype)) if name == "softmax_vjp" else (z,)
    if fam in ("ce_probs", "ce_logits"):
        first = (
            support.random_distribution(rng, n, K, dtype)
            if fam == "ce_probs"
            else support.random_logits(rng, n, K, 3.0, dtype)
        )
        target = support.random_distribution(rng, n, K, dtype) if soft else rng.integers(0, K, n)
        return first, target
    first = (
        support.random_logits(rng, N, K, 3.0, dtype)
        if name.startswith("sigmoid")
        else rng.uniform(0.02, 0.98, (N, K)).astype(dtype)
    )
    return first, rng.random((N, K)).astype(dtype)


def _options(name, K, dtype, rng, template):
    kern = REGISTRY[name]
    opts = {k: v for k, v in template.items() if k in kern.options}
    if opts.get("weight") == "w":
        shape = (K,) if kern.family != "bce" else (N, K)
        opts["weight"] = rng.uniform(0.2, 2.0, shape).astype(dtype)
    if kern.family == "bce" and "pos_weight" in kern.options and template:
        opts["pos_weight"] = rng.uniform(0.5, 3.0, K).astype(dtype)
    return opts


# ----------------------------------------------------------------------------------------------
# The batch: every Octave call of this module, made once.
# ----------------------------------------------------------------------------------------------
ACCURACY = []  # (kernel, dtype, K, args, opts, key)
FD = []  # (label, kind, key_analytic, key_fd, extra)
SPECIAL = {}  # name -> key (seeds, stability, empty batches, help)
ROUND_ONCE = []  # (call, key with single input, key with the same input in double)


def _call(batch, name, args, opts=None, **kw):
    nout = len(REGISTRY[name].outputs)
    args = args[: len(REGISTRY[name].inputs)]
    return batch.call(f"symce_{name}({matlab_args(batch, name, args, opts, **kw)})", nout=nout)


def _build(batch: Batch):
    rng = np.random.default_rng(20240611)
    for name, kern in REGISTRY.items():
        for dtype in DTYPES:
            for K in KS:
                variants = [({}, False)]
                if kern.options:
                    variants = [(_options(name, K, dtype, rng, t), False) for t in REF_OPTIONS]
                    # (K = 1: the one probability target is 1, refused as a possible label;
                    # test_matlab_policies checks that)
                    if kern.family.startswith("ce") and K > 1:
                        variants.append((_options(name, K, dtype, rng, REF_OPTIONS[1]), True))
                for opts, soft in variants:
                    if opts.get("ignore_index") == 0 and soft:
                        continue
                    args = _inputs(name, K, dtype, rng, soft=soft)
                    label_class = np.int32 if K in (1, 7) else np.float64
                    key = _call(
                        batch, name, args, opts, label_class=label_class, labels_as_column=(K == 3)
                    )
                    ACCURACY.append((name, dtype, K, args, opts, key))
    _build_fd(batch, rng)
    _build_special(batch)


def _fd(batch, loss_expr, x):
    return batch.call(f"symce_test_fd(@(v) {loss_expr}, %s, 1e-6)", batch.arg(x))


def _build_fd(batch, rng):
    """Analytic derivative kernels next to central differences of the Octave value kernels."""
    # sigmoid' and logsumexp' = softmax, elementwise / per column
    x = rng.normal(0, 3, (1, 6))
    FD.append(
        (
            "sigmoid_grad",
            "diag",
            batch.call("symce_sigmoid_grad(%s)", batch.arg(x)),
            _fd(batch, "symce_sigmoid(v)", x),
            None,
        )
    )
    for K in (1, 3, 7):
        z = rng.normal(0, 2, (K, 1))
        FD.append(
            (
                f"logsumexp' K={K}",
                "row",
                batch.call("symce_softmax(%s)", batch.arg(z)),
                _fd(batch, "symce_logsumexp(v)", z),
                None,
            )
        )
        FD.append(
            (
                f"softmax_jacobian K={K}",
                "matrix",
                batch.call("symce_softmax_jacobian(%s)", batch.arg(z)),
                _fd(batch, "symce_softmax(v)", z),
                None,
            )
        )
        g = rng.normal(0, 1, (K, 1))
        FD.append(
            (
                f"softmax_vjp K={K}",
                "vjp",
                batch.call("symce_softmax_vjp(%s, %s)", batch.arg(z), batch.arg(g)),
                _fd(batch, "symce_softmax(v)", z),
                g,
            )
        )
    # loss gradients, with options; FD of the loss kernel with the same options
    K, n = 4, 3
    option_sets = [
        "'Reduction', 'mean'",
        "'Reduction', 'sum', 'LabelSmoothing', 0.2",
        "'Reduction', 'none', 'Weight', [0.5 2 1 1.5]",
        "'Reduction', 'mean', 'Weight', [0.5; 2; 1; 1.5], 'IgnoreIndex', 2, 'LabelSmoothing', 0.1",
    ]
    z = rng.normal(0, 2, (K, n))
    probs = rng.uniform(0.05, 1, (K, n))
    probs /= probs.sum(0)
    labels = np.array([[2.0, 1.0, 4.0]])
    soft = rng.uniform(0.05, 1, (K, n))
    soft /= soft.sum(0)
    for opts in option_sets:
        for tname, target in (("labels", labels), ("soft", soft)):
            if "IgnoreIndex" in opts and tname == "soft":
                continue
            t = batch.arg(target)
            red_none = "'none'" in opts
            wrap = (lambda e: f"sum({e})") if red_none else (lambda e: e)
            for loss, grad, first in (
                ("softmax_cross_entropy", "softmax_cross_entropy_grad", z),
                ("cross_entropy", "cross_entropy_grad", probs),
                ("softmax_cross_entropy_with_grad", "softmax_cross_entropy_with_grad", z),
            ):
                a = batch.arg(first)
                if grad.endswith("with_grad"):
                    key = batch.call(f"symce_{grad}({a}, {t}, {opts})", nout=2)
                else:
                    key = batch.call(f"symce_{grad}({a}, {t}, {opts})")
                FD.append(
                    (
                        f"{grad} {tname} {opts}",
                        "grad",
                        key,
                        _fd(batch, wrap(f"symce_{loss}(v, {t}, {opts})"), first),
                        1 if grad.endswith("with_grad") else 0,
                    )
                )
    x = rng.normal(0, 2, (K, n))
    p = rng.uniform(0.05, 0.95, (K, n))
    y = rng.uniform(0, 1, (K, n))
    for opts in (
        "'Reduction', 'mean'",
        "'Reduction', 'sum', 'Weight', [0.5; 2; 1; 1.5]",
        "'Reduction', 'none', 'Weight', %s",
    ):
        if "%s" in opts:
            opts = opts % batch.arg(rng.uniform(0.2, 2, (K, n)))
        wrap = (lambda e: f"sum({e}(:))") if "'none'" in opts else (lambda e: e)
        ya = batch.arg(y)
        for loss, first, extra in (
            ("binary_cross_entropy", p, ""),
            ("sigmoid_binary_cross_entropy", x, ""),
            ("sigmoid_binary_cross_entropy", x, ", 'PosWeight', [3; 0.5; 1; 2]"),
        ):
            a = batch.arg(first)
            fd = _fd(batch, wrap(f"symce_{loss}(v, {ya}, {opts}{extra})"), first)
            key = batch.call(f"symce_{loss}_grad({a}, {ya}, {opts}{extra})")
            FD.append((f"{loss}_grad {opts}{extra}", "grad", key, fd, 0))
            if loss.startswith("sigmoid"):
                key = batch.call(f"symce_{loss}_with_grad({a}, {ya}, {opts}{extra})", nout=2)
                FD.append((f"{loss}_with_grad {opts}{extra}", "grad", key, fd, 1))


def _build_special(batch):
    S = SPECIAL
    seed = np.array([[-2.85], [0.86], [0.28]])
    S["seed_softmax"] = batch.call("symce_softmax(%s)", batch.arg(seed))
    S["seed_ce"] = batch.call("symce_softmax_cross_entropy(%s, 3)", batch.arg(seed))
    S["seed_ce_probs"] = batch.call("symce_cross_entropy(symce_softmax(%s), 3)", batch.arg(seed))
    dog = np.array([[1.0], [2.0], [0.5]])
    S["seed_dog"] = batch.call("symce_softmax_cross_entropy(%s, 2)", batch.arg(dog))
    S["seed_dog_grad"] = batch.call("symce_softmax_cross_entropy_grad(%s, 2)", batch.arg(dog))
    S["seed_dog_p"] = batch.call("symce_softmax(%s)", batch.arg(dog))
    S["seed_dog_single"] = batch.call(
        "symce_softmax_cross_entropy(single(%s), int32(2))", batch.arg(dog)
    )
    for name in REGISTRY:
        S[f"help_{name}"] = batch.call(f"help('symce_{name}')")
        ex = mb.context(REGISTRY[name])["example"]
        call = ex["call"].split(" = ", 1)[1]
        S[f"example_{name}"] = batch.call(call, nout=len(ex["results"]))
    _build_stability(batch)


# stability inputs, NumPy layout: (id, kernel list, args, opts)
STABILITY = []


def _stab(case_id, names, args, opts=None, dtype=np.float64):
    args = tuple(a.astype(dtype) if np.asarray(a).dtype.kind == "f" else a for a in args)
    STABILITY.append((case_id, tuple(names), args, opts or {}))


ROWWISE = ("softmax", "log_softmax", "logsumexp", "softmax_jacobian")
CE_LOGITS = (
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_grad",
)
_stab(
    "f64 huge logits",
    ROWWISE + CE_LOGITS,
    (
        np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4], [0.0, 1e4, 1e4 - 1]]),
        np.array([1, 0, 2, 2]),
    ),
)
_stab(
    "f32 logits +-100",
    ROWWISE + CE_LOGITS,
    (np.array([[100.0, -100, 0], [-100, 100, 99], [100, 100, 100]]), np.array([1, 2, 0])),
    dtype=np.float32,
)
_stab(
    "f32 beyond exp range",
    ROWWISE + CE_LOGITS,
    (np.array([[1e3, -1e3, 0.0], [1e30, 0, -1e30], [-1e30, -1e30, 5]]), np.array([1, 0, 0])),
    dtype=np.float32,
)
_stab(
    "f64 one dominant",
    ROWWISE + CE_LOGITS,
    (np.array([[50.0, 0, 0, 0], [0, 0, 0, 38.0]]), np.array([0, 3])),
)
_stab(
    "f32 one dominant",
    ROWWISE + CE_LOGITS,
    (np.array([[30.0, 0, 0], [0, 0, 17.0]]), np.array([0, 2])),
    dtype=np.float32,
)
for _dt in DTYPES:
    _stab(
        f"{np.dtype(_dt).name} -inf masked",
        ROWWISE + CE_LOGITS,
        (np.array([[-np.inf, 1.0, 2.0], [0.5, -np.inf, -np.inf]]), np.array([2, 0])),
        {"label_smoothing": 0.0},
        dtype=_dt,
    )
    _stab(
        f"{np.dtype(_dt).name} -inf masked soft",
        CE_LOGITS,
        (
            np.array([[-np.inf, 1.0, 2.0], [0.5, -np.inf, 3.0]]),
            np.array([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]),
        ),
        dtype=_dt,
    )
    _stab(
        f"{np.dtype(_dt).name} probs 0 and 1",
        ("cross_entropy", "cross_entropy_grad"),
        (np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]), np.array([0, 2])),
        dtype=_dt,
    )
    _stab(
        f"{np.dtype(_dt).name} probs 0 and 1 smoothed",
        ("cross_entropy", "cross_entropy_grad"),
        (np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]), np.array([1, 0])),
        {"label_smoothing": 0.1},
        dtype=_dt,
    )
    _stab(
        f"{np.dtype(_dt).name} bce probs 0 and 1",
        ("binary_cross_entropy", "binary_cross_entropy_grad"),
        (np.array([[0.0, 1.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0, 1.0]])),
        dtype=_dt,
    )
    _stab(
        f"{np.dtype(_dt).name} sigmoid extremes",
        (
            "sigmoid",
            "sigmoid_grad",
            "sigmoid_binary_cross_entropy",
            "sigmoid_binary_cross_entropy_grad",
            "sigmoid_binary_cross_entropy_with_grad",
        ),
        (
            np.array([[1e4, -1e4, 800.0, -800.0, 90.0, -90.0]]),
            np.array([[0.0, 1.0, 0.3, 1.0, 0.0, 0.5]]),
        ),
        {"reduction": "none"},
        dtype=_dt,
    )


def _build_stability(batch):
    for case_id, names, args, opts in STABILITY:
        for name in names:
            kopts = {k: v for k, v in opts.items() if k in REGISTRY[name].options}
            SPECIAL[f"stab {case_id} {name}"] = _call(batch, name, args, kopts)
    # NaN in -> NaN out; a column with NaN next to a clean one (MATLAB layout here)
    z = np.array([[1.0, np.nan], [2.0, 0.0], [0.5, 1.0]])
    for name in ("softmax", "log_softmax", "logsumexp", "softmax_jacobian"):
        SPECIAL[f"nan {name}"] = batch.call(f"symce_{name}(%s)", batch.arg(z))
        SPECIAL[f"clean {name}"] = batch.call(f"symce_{name}(%s)", batch.arg(z[:, :1].copy()))
    SPECIAL["nan softmax_vjp"] = batch.call(
        "symce_softmax_vjp(%s, %s)", batch.arg(z), batch.arg(np.ones((3, 2)))
    )
    SPECIAL["nan vjp g"] = batch.call(
        "symce_softmax_vjp(%s, %s)", batch.arg(np.ones((3, 2))), batch.arg(z)
    )
    for name in ("sigmoid", "sigmoid_grad"):
        SPECIAL[f"nan {name}"] = batch.call(f"symce_{name}(%s)", batch.arg(z))
    labels = "[1 2]"
    for name in CE_LOGITS:
        for red in ("none", "mean"):
            SPECIAL[f"nan {name} {red}"] = batch.call(
                f"symce_{name}(%s, {labels}, 'Reduction', '{red}')", batch.arg(z), nout=1
            )
    p = np.array([[0.2, 0.5], [0.5, np.nan], [0.3, 0.5]])  # NaN at sample 2's label
    for name in ("cross_entropy", "cross_entropy_grad"):
        SPECIAL[f"nan {name}"] = batch.call(
            f"symce_{name}(%s, {labels}, 'Reduction', 'none')", batch.arg(p)
        )
    soft_nan = np.array([[0.2, np.nan], [0.5, 0.5], [0.3, 0.5]])
    SPECIAL["nan soft target"] = batch.call(
        "symce_softmax_cross_entropy_with_grad(%s, %s, 'Reduction', 'none')",
        batch.arg(np.ones((3, 2))),
        batch.arg(soft_nan),
        nout=2,
    )
    for name in (
        "binary_cross_entropy",
        "binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy",
        "sigmoid_binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy_with_grad",
    ):
        SPECIAL[f"nan {name}"] = batch.call(
            f"symce_{name}(%s, %s, 'Reduction', 'none')",
            batch.arg(np.array([[0.5, np.nan, 0.2]])),
            batch.arg(np.array([[1.0, 0.0, np.nan]])),
            nout=len(REGISTRY[name].outputs),
        )
    SPECIAL["nan bce mean"] = batch.call(
        "symce_binary_cross_entropy(%s, %s)",
        batch.arg(np.array([[0.5, np.nan]])),
        batch.arg(np.array([[1.0, 0.0]])),
    )
    # rows of all -Inf, or with +Inf (docs/semantics.md, "Numerical policy"), double and single
    bad = np.array([[-np.inf, 0.0, 2.0], [-np.inf, np.inf, np.inf], [-np.inf, 1.0, -np.inf]])
    for dt in DTYPES:
        a = batch.arg(bad.astype(dt))
        for name in ("softmax", "log_softmax", "logsumexp", "softmax_jacobian"):
            SPECIAL[f"inf {np.dtype(dt).name} {name}"] = batch.call(f"symce_{name}({a})")
        SPECIAL[f"inf {np.dtype(dt).name} ce"] = batch.call(
            f"symce_softmax_cross_entropy_with_grad({a}, [1 1 1], 'Reduction', 'none')", nout=2
        )
    # single in: the row computed in double and rounded once, bit for bit
    rng = np.random.default_rng(3)
    z32 = batch.arg(rng.normal(0, 8, (5, 4)).astype(np.float32))
    w32 = batch.arg(rng.uniform(0.2, 2, (5, 1)).astype(np.float32))
    soft32 = rng.random((5, 4)).astype(np.float32)
    t32 = batch.arg(soft32 / soft32.sum(0))
    ROUND_ONCE.clear()
    for call, nout in (
        ("symce_sigmoid(%s)", 1),
        ("symce_sigmoid_grad(%s)", 1),
        ("symce_softmax(%s)", 1),
        ("symce_log_softmax(%s)", 1),
        ("symce_logsumexp(%s)", 1),
        ("symce_softmax_jacobian(%s)", 1),
        ("symce_softmax_vjp(%s, %s)", 1),
        (
            "symce_softmax_cross_entropy_with_grad(%s, [1 2 5 3], 'Weight', %s, "
            "'LabelSmoothing', 0.1)",
            2,
        ),
        ("symce_softmax_cross_entropy_with_grad(%s, %s, 'Reduction', 'none')", 2),
        ("symce_softmax_cross_entropy(%s, [1 2 5 3], 'Reduction', 'sum')", 1),
        ("symce_softmax_cross_entropy_grad(%s, [1 2 5 3])", 1),
    ):
        args = (
            [z32]
            + ([t32] if "'none'" in call or "vjp" in call else [])
            + ([w32] if "Weight" in call else [])
        )
        single = batch.call(call % tuple(args), nout=nout)
        double = batch.call(call % tuple(f"double({a})" for a in args), nout=nout)
        ROUND_ONCE.append((call, single, double))
    # empty batches (N = 0), double and single
    for cls in ("double", "single"):
        z0 = f"zeros(3, 0, '{cls}')"
        for name, _ in ((n, k) for n, k in REGISTRY.items() if k.family == "rowwise"):
            extra = f", {z0}" if name == "softmax_vjp" else ""
            SPECIAL[f"empty {cls} {name}"] = batch.call(f"symce_{name}({z0}{extra})")
        for name, kern in REGISTRY.items():
            if kern.family in ("ce_probs", "ce_logits"):
                for tgt in ("zeros(1, 0)", z0):
                    for red in ("mean", "sum", "none"):
                        SPECIAL[f"empty {cls} {name} {tgt} {red}"] = batch.call(
                            f"symce_{name}({z0}, {tgt}, 'Reduction', '{red}')",
                            nout=len(kern.outputs),
                        )
            if kern.family in ("bce", "elementwise"):
                args = z0 if kern.family == "elementwise" else f"{z0}, {z0}"
                for red in ("mean", "sum", "none") if kern.family == "bce" else ("",):
                    opt = f", 'Reduction', '{red}'" if red else ""
                    SPECIAL[f"empty {cls} {name} {red}"] = batch.call(
                        f"symce_{name}({args}{opt})", nout=len(kern.outputs)
                    )
    # every sample ignored: mean is NaN, the gradient all zeros
    SPECIAL["all ignored"] = batch.call(
        "symce_softmax_cross_entropy_with_grad(%s, [-100 -100])", batch.arg(np.ones((3, 2))), nout=2
    )


@pytest.fixture(scope="module")
def results():
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    ACCURACY.clear()
    FD.clear()
    SPECIAL.clear()
    batch = Batch()
    _build(batch)
    return batch.run(octave)


# ----------------------------------------------------------------------------------------------
# Accuracy against the references.
# ----------------------------------------------------------------------------------------------
def _check_outputs(name, res, args, opts, dtype, forms=("raw", "closed"), label=""):
    kern = REGISTRY[name]
    red = opts.get("reduction", "mean")
    worst = []
    for form in forms:
        ref = reference.evaluate(name, *args, form=form, **opts)
        refs = ref if isinstance(ref, tuple) else (ref,)
        assert len(res.values) == len(refs)
        for out, value, cls, rv in zip(kern.outputs, res.values, res.classes, refs):
            assert cls == {np.float64: "double", np.float32: "single"}[dtype], (
                f"{name}: {cls} out for {np.dtype(dtype).name} in"
            )
            got = to_numpy_layout(name, value, out.name, red, np.shape(args[0]))
            scale = term_scale(name, args, opts) if out.name != "loss" else None
            rel, ulps = errors(got, rv, scale)
            assert rel <= RTOL[dtype], (
                f"{name}.{out.name} {label} vs {form}: relative error "
                f"{rel:.3g} ({ulps:.3g} ulp), options {opts}"
            )
            worst.append((rel, ulps))
    return worst


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(REGISTRY))
def test_against_reference(results, name, dtype):
    cases = [c for c in ACCURACY if c[0] == name and c[1] == dtype]
    assert {c[2] for c in cases} == set(KS)
    for _, _, K, args, opts, key in cases:
        _check_outputs(name, results[key].check(), args, opts, dtype, label=f"K={K}")


# ----------------------------------------------------------------------------------------------
# Finite differences.
# ----------------------------------------------------------------------------------------------
def test_finite_differences(results):
    assert len(FD) >= 40
    for label, kind, key, fd_key, extra in FD:
        res, fd = results[key].check(), results[fd_key].value
        if kind == "diag":
            got, want = res.value.ravel(), np.diag(fd)
        elif kind == "row":
            got, want = res.value.ravel(), fd.ravel()
        elif kind == "matrix":
            got, want = res.value, fd
        elif kind == "vjp":
            got, want = res.value.ravel(), fd.T @ extra.ravel()
        else:
            got = res.values[extra]
            want = fd.reshape(got.shape, order="F")
        scale = max(1.0, float(np.max(np.abs(want))))
        err = float(np.max(np.abs(got - want))) / scale if got.size else 0.0
        assert err < 1e-7, f"{label}: finite differences differ by {err:.3g} (relative to {scale})"
        assert np.all(np.isfinite(got))


# ----------------------------------------------------------------------------------------------
# Seed values (published numbers) and the sign of the gradient.
# ----------------------------------------------------------------------------------------------
def test_seed_softmax(results):
    p = results[SPECIAL["seed_softmax"]].value.ravel()
    exact = np.array([0.0154493156760736, 0.631163353604709, 0.353387330719218])
    maple = np.array([0.0154493156751271, 0.631163353697413, 0.353387330637003])
    np.testing.assert_allclose(p, exact, rtol=1e-13)
    np.testing.assert_allclose(p, maple, rtol=1e-9)


def test_seed_cross_entropy(results):
    for key in ("seed_ce", "seed_ce_probs"):
        loss = results[SPECIAL[key]].value.item()
        assert abs(loss - 1.0401905694301) <= 1e-12 * 1.04
        assert abs(loss - 1.040190570) <= 1e-9
    dog = results[SPECIAL["seed_dog"]].value.item()
    assert abs(dog - 0.464368784107945) <= 1e-14
    assert abs(dog - 0.462) > 1e-3  # the seed's rounded value is wrong
    single = results[SPECIAL["seed_dog_single"]].check()
    assert single.classes == ["single"]
    assert abs(single.value.item() - 0.464368784107945) <= 1e-6


def test_gradient_sign_is_p_minus_y(results):
    grad = results[SPECIAL["seed_dog_grad"]].value.ravel()
    p = results[SPECIAL["seed_dog_p"]].value.ravel()
    np.testing.assert_allclose(grad, p - np.array([0.0, 1.0, 0.0]), rtol=0, atol=1e-16)
    assert grad[1] < 0 < grad[0] and grad[2] > 0


# ----------------------------------------------------------------------------------------------
# Stability.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", STABILITY, ids=[c[0] for c in STABILITY])
def test_stability(results, case):
    case_id, names, args, opts = case
    dtype = np.asarray(args[0]).dtype.type
    for name in names:
        kopts = {k: v for k, v in opts.items() if k in REGISTRY[name].options}
        res = results[SPECIAL[f"stab {case_id} {name}"]].check()
        for v in res.values:  # no overflow: finite unless the math is infinite (log 0 = -Inf)
            if name != "log_softmax":
                assert np.all(np.isfinite(v)), f"{name} {case_id}: {v}"
        _check_outputs(
            name,
            res,
            args[: len(REGISTRY[name].inputs)],
            kopts,
            dtype,
            forms=("closed",),
            label=case_id,
        )


def test_dominant_logit_log_prob_is_exact(results):
    """log p of a dominant class is -sum_k exp(z_k - z_max) (tiny), not 0: log1p(Srest) at work."""
    res = results[SPECIAL["stab f64 one dominant log_softmax"]].value
    assert res[0, 0] == pytest.approx(-3 * np.exp(-50.0), rel=1e-14)
    res32 = results[SPECIAL["stab f32 one dominant log_softmax"]].value
    assert res32[0, 0] == pytest.approx(-2 * np.exp(-30.0), rel=1e-6)


def test_masked_classes(results):
    for dt in ("float64", "float32"):
        p = results[SPECIAL[f"stab {dt} -inf masked softmax"]].value
        assert p[0, 0] == 0 and p[1, 1] == 0 and p[2, 1] == 0
        grad = results[SPECIAL[f"stab {dt} -inf masked softmax_cross_entropy_grad"]].value
        assert grad[0, 0] == 0 and grad[1, 1] == 0 and grad[2, 1] == 0
        loss = results[SPECIAL[f"stab {dt} -inf masked soft softmax_cross_entropy"]].value
        assert np.isfinite(loss)


def test_nan_propagates(results):
    for name in (
        "softmax",
        "log_softmax",
        "softmax_jacobian",
        "softmax_vjp",
        "sigmoid",
        "sigmoid_grad",
    ):
        v = results[SPECIAL[f"nan {name}"]].value
        if name == "softmax_jacobian":
            assert np.all(np.isnan(v[:, :, 1])) and not np.any(np.isnan(v[:, :, 0]))
            clean = results[SPECIAL["clean softmax_jacobian"]].value
            np.testing.assert_array_equal(v[:, :, 0], clean)
        elif name.startswith("sigmoid"):
            assert np.isnan(v[0, 1]) and np.sum(np.isnan(v)) == 1
        else:
            assert np.all(np.isnan(v[:, 1])) and not np.any(np.isnan(v[:, 0]))
            if name != "softmax_vjp":
                np.testing.assert_array_equal(v[:, :1], results[SPECIAL[f"clean {name}"]].value)
    lse = results[SPECIAL["nan logsumexp"]].value
    assert np.isnan(lse[0, 1]) and lse[0, 0] == results[SPECIAL["clean logsumexp"]].value[0, 0]
    assert np.all(np.isnan(results[SPECIAL["nan vjp g"]].value[:, 1]))
    for name in CE_LOGITS:
        none = results[SPECIAL[f"nan {name} none"]].value
        assert np.isnan(none).any() and not np.isnan(none[..., 0]).any()
        assert np.isnan(results[SPECIAL[f"nan {name} mean"]].value).any()
    ce = results[SPECIAL["nan cross_entropy"]].value
    assert np.isfinite(ce[0, 0]) and np.isnan(ce[0, 1])  # NaN at the labelled class
    ceg = results[SPECIAL["nan cross_entropy_grad"]].value
    assert np.isnan(ceg[1, 1]) and np.sum(np.isnan(ceg)) == 1
    loss, grad = results[SPECIAL["nan soft target"]].values
    assert np.isnan(loss[0, 1]) and np.isfinite(loss[0, 0]) and np.all(np.isnan(grad[:, 1]))
    for name in (
        "binary_cross_entropy",
        "binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy",
        "sigmoid_binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy_with_grad",
    ):
        for v in results[SPECIAL[f"nan {name}"]].values:
            assert np.isfinite(v[0, 0]) and np.isnan(v[0, 1]) and np.isnan(v[0, 2]), (name, v)
    assert np.isnan(results[SPECIAL["nan bce mean"]].value)


def test_rows_of_minus_inf_and_plus_inf(results):
    """The semantics' non-finite rows (one column each, MATLAB layout): all -Inf gives NaN for
    softmax and log-softmax and -Inf for logsumexp; a column with +Inf gives NaN at each +Inf
    entry, p = 0 and log p = -Inf elsewhere, logsumexp +Inf (also next to a -Inf entry); the
    Jacobian and the cross-entropy are NaN for such a column (the closed form).  Double and
    single, against the closed reference."""
    bad = np.array([[-np.inf, 0.0, 2.0], [-np.inf, np.inf, np.inf], [-np.inf, 1.0, -np.inf]])
    for dt in DTYPES:
        tag = f"inf {np.dtype(dt).name}"
        p = results[SPECIAL[f"{tag} softmax"]].value
        logp = results[SPECIAL[f"{tag} log_softmax"]].value
        lse = results[SPECIAL[f"{tag} logsumexp"]].value
        assert np.all(np.isnan(p[:, 0])) and np.all(np.isnan(logp[:, 0])), (p, logp)
        assert lse[0, 0] == -np.inf and lse[0, 1] == np.inf and lse[0, 2] == np.inf
        for col in (1, 2):
            inf = np.isposinf(bad[:, col])
            assert np.all(np.isnan(p[inf, col])) and np.all(p[~inf, col] == 0), p
            assert np.all(np.isnan(logp[inf, col])) and np.all(logp[~inf, col] == -np.inf)
        for name, v in (("softmax", p), ("log_softmax", logp), ("logsumexp", lse)):
            ref = reference.evaluate(name, bad.T, form="closed")
            assert errors(to_numpy_layout(name, v), ref)[0] == 0, name
        J = results[SPECIAL[f"{tag} softmax_jacobian"]].value
        ref = reference.evaluate("softmax_jacobian", bad.T, form="closed")
        assert errors(to_numpy_layout("softmax_jacobian", J), ref)[0] == 0
        loss, grad = results[SPECIAL[f"{tag} ce"]].values
        # a column holding +Inf (or only -Inf) is NaN throughout in the cross-entropy, as PyTorch
        assert np.all(np.isnan(loss)) and np.all(np.isnan(grad))
        ref_loss, ref_grad = reference.evaluate(
            "softmax_cross_entropy_with_grad",
            bad.T,
            np.array([0, 0, 0]),
            form="closed",
            reduction="none",
        )
        assert errors(loss.ravel(), ref_loss)[0] == 0
        assert errors(grad.T, ref_grad)[0] == 0


def test_single_is_double_rounded_once(results):
    """Single in: the sigmoid and every row kernel compute in double and round once, so the result
    is single(the kernel on the same values in double), bit for bit."""
    assert len(ROUND_ONCE) == 11
    for call, k_single, k_double in ROUND_ONCE:
        single, double = results[k_single].check(), results[k_double].check()
        assert set(single.classes) == {"single"} and set(double.classes) == {"double"}, call
        for a, b in zip(single.values, double.values):
            np.testing.assert_array_equal(a, b.astype(np.float32), err_msg=call)


def test_empty_batch(results):
    for cls in ("double", "single"):
        for name, kern in REGISTRY.items():
            if kern.family == "rowwise":
                r = results[SPECIAL[f"empty {cls} {name}"]].check()
                want = {"logsumexp": (1, 0), "softmax_jacobian": (3, 3, 0)}.get(name, (3, 0))
                assert r.value.shape == want and r.classes == [cls], (name, r.value.shape)
            elif kern.family in ("ce_probs", "ce_logits"):
                for tgt in ("zeros(1, 0)", f"zeros(3, 0, '{cls}')"):
                    for red in ("mean", "sum", "none"):
                        r = results[SPECIAL[f"empty {cls} {name} {tgt} {red}"]].check()
                        assert r.classes == [cls] * len(kern.outputs)
                        vals = dict(zip([o.name for o in kern.outputs], r.values))
                        if "loss" in vals:
                            loss = vals["loss"]
                            if red == "none":
                                assert loss.shape == (1, 0)
                            else:
                                assert loss.shape == (1, 1)
                                assert np.isnan(loss[0, 0]) if red == "mean" else loss[0, 0] == 0
                        if "grad" in vals:
                            assert vals["grad"].shape == (3, 0)
            else:
                reds = ("mean", "sum", "none") if kern.family == "bce" else ("",)
                for red in reds:
                    r = results[SPECIAL[f"empty {cls} {name} {red}"]].check()
                    assert r.classes == [cls] * len(kern.outputs)
                    for out, v in zip(kern.outputs, r.values):
                        if red in ("mean", "sum") and out.name == "loss":
                            assert v.shape == (1, 1)
                            assert np.isnan(v[0, 0]) if red == "mean" else v[0, 0] == 0
                        else:
                            assert v.shape == (3, 0)


def test_every_sample_ignored(results):
    loss, grad = results[SPECIAL["all ignored"]].values
    assert np.isnan(loss[0, 0])
    assert np.all(grad == 0)


# ----------------------------------------------------------------------------------------------
# help text and its examples.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REGISTRY))
def test_help(results, name):
    kern = REGISTRY[name]
    text = results[SPECIAL[f"help_{name}"]].value
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    h1 = next(ln for ln in lines if ln.startswith("SYMCE_"))
    assert h1 == f"SYMCE_{name.upper()}  {mb.context(kern)['h1']}"
    assert h1.split("  ", 1)[1].rstrip(".").lower().startswith(kern.summary.split()[0].lower())
    assert any(
        ln.startswith(f"{kern.outputs[0].name.upper()}") or ln.startswith("[") for ln in lines
    ), "no usage line"
    assert f"Formula: {kern.formula}" in text
    assert "Example:" in text and f"symce_{name}(" in text
    assert "See also" in text
    for opt in kern.options:
        assert f"'{mb.OPTIONS[opt]}'" in text
    assert "Generated by symce" not in text and "Do not edit" not in text


@pytest.mark.parametrize("name", list(REGISTRY))
def test_help_example_runs_and_shows_its_result(results, name):
    ex = mb.context(REGISTRY[name])["example"]
    text = results[SPECIAL[f"help_{name}"]].value
    assert ex["call"] in text
    res = results[SPECIAL[f"example_{name}"]].check()
    for shown, got in zip(ex["results"], res.values):
        assert f"% {shown['name']} = {shown['value']}" in text
        numbers = [float(t) for t in re.findall(r"-?[0-9.]+(?:e[-+]?\d+)?", shown["value"])]
        # the help shows MATLAB rows in reading order: NumPy's C order of the same 2-D array
        np.testing.assert_allclose(np.asarray(got).ravel(), numbers, rtol=6e-4, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# The printer, and the generated files being in sync (no Octave needed).
# ----------------------------------------------------------------------------------------------
def test_printer_maps_symce_functions():
    x, lo = sp.Symbol("x"), sp.Symbol("lo")
    pr = mb.MatlabPrinter({"x": "xx", "lo": "lo"})
    assert pr.doprint(log1p(x)) == "log1p(xx)"
    assert pr.doprint(sp.exp(-x) * x) == "xx.*exp(-xx)"
    assert pr.doprint(clamp_min(x, -100)) == "clamp_min(xx, -100)"
    assert pr.doprint(mul0(x, sp.log(x))) == "mul0(xx, log(xx))"
    assert pr.doprint(softplus(-x)) == "softplus(-xx)"
    assert pr.doprint(sp.Max(x, 0)) == "clamp_min(xx, 0)"  # NaN-aware, never MATLAB's max
    assert pr.doprint(expm1(-x)) == "expm1(-xx)"
    assert pr.doprint(sigmoid(-x) * sigmoid(x)) == "sigmoid(-xx).*sigmoid(xx)"
    assert pr.doprint(two_sum_err(x, -lo)) == "two_sum_err(xx, -lo)"
    assert pr.helpers == {"clamp_min", "mul0", "softplus", "sigmoid", "two_sum_err"}
    bodies, calls = mb.helper_bodies()
    assert bodies["softplus"] == "log1p(exp(-abs(t))) + clamp_min(t, 0)"
    assert calls["softplus"] == ("clamp_min",)
    assert bodies["sigmoid"] == "exp(-clamp_min(-t, 0))./(1 + exp(-abs(t)))"
    assert calls["sigmoid"] == ("clamp_min",)
    # TwoSum keeps its grouping (SymPy would otherwise collapse err to a + b - s, i.e. 0)
    assert bodies["two_sum_err"] == ["s = a + b;", "t = -a + s;", "err = (a - (s - t)) + (b - t);"]
    assert calls["two_sum_err"] == ()


def test_printer_is_strict():
    x = sp.Symbol("x")
    pr = mb.MatlabPrinter({"x": "x"})
    with pytest.raises(Exception, match="erf"):
        pr.doprint(sp.erf(x))  # Octave has erf, but it is not on symce's list
    with pytest.raises(ValueError, match="no MATLAB name"):
        pr.doprint(sp.Symbol("q") + x)
    with pytest.raises(ValueError):
        pr.doprint(sp.Max(x, sp.Symbol("x2")))
    with pytest.raises(ValueError):
        mb.MatlabPrinter({"x": "end"})


def test_names_are_valid_identifiers():
    for fam, table in mb.NAMES.items():
        assert len(set(table.values())) == len(table), fam
        for code in table.values():
            assert mb.check_identifier(code) == code


def test_generated_matlab_in_sync():
    files = generate.render_all(("matlab",))
    fresh = {k.split("/", 1)[1]: v for k, v in files.items()}
    assert sorted(fresh) == [f"symce_{n}.m" for n in sorted(REGISTRY)]
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in MATLAB_DIR.glob("*.m")}
    stale = [n for n in fresh if on_disk.get(n) != fresh[n]] + sorted(set(on_disk) - set(fresh))
    assert not stale, f"generated/matlab out of date ({stale}): run `make derive` and commit"


def test_generated_files_are_vectorised_and_portable():
    for path in MATLAB_DIR.glob("*.m"):
        text = path.read_text(encoding="utf-8")
        body = text.split("\nend\n", 1)[0]
        assert not re.search(r"^\s*(for|while|parfor)\b", body, re.M), f"{path.name}: a loop"
        assert text.splitlines()[1].startswith(f"% {path.stem.upper()}  ")
        # every local function is called, every called helper is defined
        defined = re.findall(r"^function .*?(\w+)\(", text, re.M)
        assert defined[0] == path.stem
        for fn in defined[1:]:
            assert len(re.findall(rf"\b{fn}\(", text)) >= 2, f"{path.name}: {fn} is never called"
        for fn in ("softplus", "sigmoid", "two_sum_err", "clamp_min", "mul0") + tuple(
            mb.HELPER_CALLS
        ):
            if re.search(rf"\b{fn}\(", text):
                assert fn in defined, f"{path.name}: {fn} is called but not defined"
        # Octave-only syntax, or MATLAB features Octave 7 lacks
        for banned in (
            r"\bbsxfun\b",
            r"\binputParser\b",
            r"^\s*arguments\b",
            r"\bend(function|if)\b",
            r"(?<!s)printf\(",
            r"#",
            r"!=",
            r"\+\+|\+=",
            r'"',
        ):
            assert not re.search(banned, text, re.M), f"{path.name}: {banned!r} is not portable"
