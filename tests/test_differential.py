"""Cross-language differential test: NumPy, C and MATLAB on the same seeded cases (issue 8).

Every kernel runs on the same inputs in the three languages with every option: random rows and
adversarial ones (+-inf, NaN, logits near 1e4 and near the dtype's largest value, tiny and
subnormal logits, a dominated row, all-equal rows, N = 0, K = 1, K = 2, K = 17 (the C kernels' one
row at a time path), an ignore_index that is a class, weights with zeros, label_smoothing 0 / 0.1
/ 1, ignored samples, every reduction, probabilities 0, 1 and NaN), float32 and float64.  The
inputs come from one seeded generator, so the cases are the same on every run and machine.

For every case:

* **Errors**: where one language raises, the other two raise the same kind of error: a Python
  exception class and the argument it is about.  C codes and MATLAB identifiers are mapped to
  those kinds through symce.errors, the one catalogue (:func:`c_kind`, :func:`matlab_kind`).
* **Special values** agree exactly with the closed-form reference (``symce.reference``, which
  writes out the kernels' policies: docs/semantics.md), so across the languages: NaN where NaN,
  +-inf where +-inf with its sign.
* **Finite values** are within the documented bound of the reference (``BOUND``: 1 ULP in float32,
  4 in float64, the targets of ``make accuracy``), so any two languages agree within twice that.
  Where a result is a difference of terms that may cancel (the Jacobian, the VJP, the gradients
  p sum(y~) - y~ and w((1 - y) sigma(x) - w+ y sigma(-x)), and logsumexp = shift + log1p(Srest)),
  the error is relative to the size of the terms (``octave_runner.term_scale``, and the row's
  largest |logit| for logsumexp).  An absolute error below the dtype's smallest normal number is
  underflow, not an error.

The C side runs on each build users make (gcc and clang at -O2, -O3 -march=native and
-O3 -march=native -ffast-math, built once each by tests/c_build.py); the MATLAB calls run in
one octave-cli (tests/octave_runner.py).  No divergence is excused.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import mpmath
import numpy as np
import pytest

from symce import kernels as kr
from symce import reference as R
from symce.lang import numpy_backend

import support
from c_build import clib_each  # noqa: F401  (fixture)
from octave_runner import errors, term_scale
from runners import (
    BAD_REDUCTION,
    LANGUAGES,
    CRunner,
    MatlabRunner,
    NumpyRunner,
    Raised,
    outputs,
)

SEED = 20260808
DTYPES = (np.float32, np.float64)
BOUND = {np.dtype(np.float32): 1.0, np.dtype(np.float64): 4.0}  # ULPs, as tests/test_accuracy.py
INF, NAN = np.inf, np.nan
LANGS = LANGUAGES
CE_LOGITS = (
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_grad",
)
ROWWISE = ("softmax", "log_softmax", "logsumexp", "softmax_jacobian", "softmax_vjp")
BCE_LOGITS = (
    "sigmoid_binary_cross_entropy",
    "sigmoid_binary_cross_entropy_grad",
    "sigmoid_binary_cross_entropy_with_grad",
)


@dataclass
class Case:
    """One call: kernel, inputs in NumPy's layout, PyTorch keyword options."""

    id: str
    kernel: str
    args: tuple
    opts: dict = field(default_factory=dict)

    @property
    def dtype(self):
        return np.asarray(self.args[0]).dtype


# ----------------------------------------------------------------------------------------------
# The cases.
# ----------------------------------------------------------------------------------------------
def _logit_matrices(rng, dtype):
    """name -> (N, K) logits: random and adversarial rows."""
    f = np.finfo(dtype)
    big = float(f.max) / 2
    tiny = 1e-300 if dtype == np.float64 else 1e-40  # float32: subnormal
    mats = {
        "random": rng.standard_normal((4, 5)) * 3,
        "K1": np.array([[3.0], [-1e4], [0.0]]),
        "K2": rng.standard_normal((4, 2)) * 5,
        "huge": np.array(
            [
                [1e4, 1e4 - 1, 1e4 - 30, 1e4 + 0.5],
                [-1e4, -1e4 + 2, -1e4 - 5, -1e4],
                [big, -big, 0.0, big / 2],
                [88.0, -104.0, 745.0, 0.0],
            ]
        ),
        "tiny": rng.standard_normal((3, 4)) * tiny,
        "dominated": np.column_stack([np.full(3, 40.0), rng.standard_normal((3, 3))]),
        "equal": np.full((2, 6), 3.5),
        "special": np.array(
            [
                [1000.0, INF, 0.0],
                [-INF, -INF, -INF],
                [-INF, 0.0, 1.0],
                [NAN, 1.0, 2.0],
                [INF, INF, 0.0],
                [1.0, 2.0, 3.0],
            ]
        ),
        "empty": np.zeros((0, 3)),
        "K17": np.vstack(
            [
                rng.standard_normal(17) * 4,
                np.r_[INF, rng.standard_normal(16) * 2 + 800.0],
                np.r_[-INF, -INF, rng.standard_normal(15)],
            ]
        ),
    }
    return {name: m.astype(dtype) for name, m in mats.items()}


def _ce_targets(rng, z, name):
    """name -> target for the CE kernels: labels, labels with ignored samples, probabilities."""
    n, k = z.shape
    labels = rng.integers(0, k, n)
    if name == "dominated":
        labels[:] = 0  # loss ~ 4e-18: the label's class dominates
    if name == "special":
        # on a finite class beside +inf, on +inf, on a finite class beside -inf, weight 0 (when
        # weighted) at the NaN row, on a finite class beside two +inf, a clean row
        labels = np.array([0, 1, 2, 0, 2, 0])
    ignored = labels.copy()
    ignored[::2] = -100
    soft = rng.random((n, k)) + 0.05
    soft = (soft / soft.sum(axis=1, keepdims=True)).astype(z.dtype)
    return {"labels": labels, "ignored": ignored, "soft": soft}


def _weights(rng, k, dtype):
    w = rng.uniform(0.2, 3.0, k)
    w[::3] = 0.0  # zeros, including at labels
    return w.astype(dtype)


OPTION_GRID = list(
    itertools.product(
        ("labels", "ignored", "soft"), (False, True), (0.0, 0.1, 1.0), ("none", "mean", "sum")
    )
)


def _ce_cases(rng, dtype, out):
    dt = np.dtype(dtype).name
    for mname, z in _logit_matrices(rng, dtype).items():
        targets = _ce_targets(rng, z, mname)
        w = _weights(rng, z.shape[1], dtype)
        g = (rng.standard_normal(z.shape) * 2).astype(dtype)
        for kern in ROWWISE:
            args = (z, g) if kern == "softmax_vjp" else (z,)
            out.append(Case(f"{dt} {mname} {kern}", kern, args))
        # the whole option grid on two matrices (with_grad: loss and gradient), a rotating
        # slice of it, through the three kernels, on the others
        full = mname in ("random", "special")
        grid = (
            OPTION_GRID
            if full
            else [OPTION_GRID[(i * 7 + len(out)) % len(OPTION_GRID)] for i in range(6)]
        )
        for i, (tname, weighted, eps, red) in enumerate(grid):
            kern = CE_LOGITS[2] if full else CE_LOGITS[i % 3]
            opts = {"reduction": red, "label_smoothing": eps}
            if weighted:
                opts["weight"] = w
            out.append(
                Case(
                    f"{dt} {mname} {kern} {tname} w={int(weighted)} eps={eps} {red}",
                    kern,
                    (z, targets[tname]),
                    opts,
                )
            )
        if mname == "random":  # an ignore_index that is a class (0-based 2, 1-based 3)
            for kern in CE_LOGITS:
                out.append(
                    Case(
                        f"{dt} {mname} {kern} ignore_index=2",
                        kern,
                        (z, np.array([2, 0, 2, 4])),
                        {"ignore_index": 2, "weight": w, "label_smoothing": 0.1},
                    )
                )


def _probability_cases(rng, dtype, out):
    dt = np.dtype(dtype).name
    tiny = 1e-300 if dtype == np.float64 else 1e-40
    p = rng.random((4, 4)) + 0.01
    p = p / p.sum(axis=1, keepdims=True)
    p = np.vstack([p, [0.0, 1.0, 0.0, 0.0], [NAN, 0.5, 0.25, 0.25], [tiny, 0.5, 0.5 - tiny, 0.0]])
    p = p.astype(dtype)
    labels = np.array([0, 1, 2, 3, 0, 1, 2])
    soft = rng.random(p.shape).astype(dtype)  # probability targets: each in [0, 1]
    w = _weights(rng, p.shape[1], dtype)
    for i, (tname, weighted, eps, red) in enumerate(OPTION_GRID[::4]):
        target = {"labels": labels, "ignored": np.where(labels % 2, -100, labels), "soft": soft}[
            tname
        ]
        opts = {"reduction": red, "label_smoothing": eps, **({"weight": w} if weighted else {})}
        kern = ("cross_entropy", "cross_entropy_grad")[i % 2]
        out.append(
            Case(
                f"{dt} probs {kern} {tname} w={int(weighted)} eps={eps} {red}",
                kern,
                (p, target),
                opts,
            )
        )
    # binary cross-entropy from probabilities: 0, 1, NaN and tiny probabilities, soft targets
    q = np.array([[0.0, 1.0, 0.5, 1e-7], [0.3, NAN, tiny, 1 - 1e-7], [0.9, 0.1, 0.99, 0.01]])
    y = np.array([[0.0, 1.0, 0.25, 1.0], [1.0, 0.5, 0.0, 0.0], [0.7, 0.2, 1.0, 0.0]])
    bw = rng.uniform(0.0, 2.0, q.shape)
    bw[0, ::2] = 0.0
    for i, red in enumerate(("none", "mean", "sum")):
        for kern in ("binary_cross_entropy", "binary_cross_entropy_grad"):
            opts = {"reduction": red, **({"weight": bw.astype(dtype)} if i != 1 else {})}
            out.append(
                Case(f"{dt} bce {kern} {red}", kern, (q.astype(dtype), y.astype(dtype)), opts)
            )


# the defined losses over classes (symce.define_loss, symce.library): log-probabilities in
DEFINED_LOSSES = [n for n, k in kr.registry().items() if k.defined_in and k.family == "ce_probs"]
# and over elements (focal_loss): their own options
DEFINED_ELEMENT_LOSSES = [n for n, k in kr.registry().items() if k.defined_in and k.family == "bce"]


def _defined_element_cases(rng, dtype, out):
    """Every defined loss over elements at logits from 0 to the float's max, +-inf and NaN, with
    targets 0, 1 and between, each option at the ends of its interval, weights and reductions."""
    dt = np.dtype(dtype).name
    big = float(np.finfo(dtype).max)
    x = np.array(
        [
            [0.0, 1e-30, -2.5, 2.5, 40.0, -40.0],
            [700.0, -700.0, 800.0, -800.0, big, -big],
            [INF, -INF, NAN, 17.0, -17.0, 0.5],
        ]
    ).astype(dtype)
    y = np.array(
        [
            [1.0, 0.0, 0.3, 1.0, 1.0, 0.0],
            [1.0, 0.0, 0.0, 1.0, 0.7, 1.0],
            [1.0, 0.0, 1.0, 0.0, 1.0, 0.5],
        ]
    ).astype(dtype)
    w = rng.uniform(0.0, 2.0, x.shape).astype(dtype)
    for name in DEFINED_ELEMENT_LOSSES:
        scalars = kr.kernel(name).scalars
        settings = [{}] + [
            {o.name: v}
            for o in scalars
            for v in ((False, True) if o.switch else (o.low, o.high))  # a switch: each form
            if v is not None
        ]
        reductions = kr.kernel(name).reductions  # none, mean, sum, and the loss's own
        for i, (setting, red) in enumerate(itertools.product(settings, reductions)):
            opts = setting | {"reduction": red} | ({"weight": w} if i % 2 else {})
            tag = " ".join(f"{k}={v:g}" for k, v in setting.items()) or "defaults"
            out.append(Case(f"{dt} {name} {tag} w={i % 2} {red}", name, (x, y), opts))


def _defined_loss_cases(rng, dtype, out):
    """Every defined loss kernel on log-probability rows with -inf (a class of probability 0, at
    a label and elsewhere), NaN, a tiny and a huge negative value, over the targets and options."""
    dt = np.dtype(dtype).name
    z = rng.standard_normal((4, 4)) * 3
    v = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    lowest = float(np.finfo(dtype).min)
    v = np.vstack(
        [v, [-INF, 0.0, -INF, -INF], [NAN, -0.5, -1.5, -2.0], [-1e-30, lowest, -3.0, -INF]]
    )
    v = v.astype(dtype)
    labels = np.array([0, 1, 2, 3, 1, 1, 0])
    soft = rng.random(v.shape).astype(dtype)
    soft[4] = [0.0, 1.0, 0.0, 0.0]  # no target mass on the -inf classes
    w = _weights(rng, v.shape[1], dtype)
    for i, (tname, weighted, eps, red) in enumerate(OPTION_GRID[::3]):
        target = {"labels": labels, "ignored": np.where(labels % 2, -100, labels), "soft": soft}[
            tname
        ]
        opts = {"reduction": red, "label_smoothing": eps, **({"weight": w} if weighted else {})}
        kern = DEFINED_LOSSES[i % len(DEFINED_LOSSES)]
        name = f"{dt} defined {kern} {tname} w={int(weighted)} eps={eps} {red}"
        out.append(Case(name, kern, (v, target), opts))


ELEMENTWISE = [n for n, k in kr.registry().items() if k.family == "elementwise"]


def _sigmoid_cases(rng, dtype, out):
    dt = np.dtype(dtype).name
    big = float(np.finfo(dtype).max)
    x = np.array(
        [
            [0.0, 1e-30, -1e-30, 2.5, -2.5],
            [40.0, -40.0, 700.0, -700.0, 88.0],
            [INF, -INF, NAN, big, -big],
            list(rng.standard_normal(5) * 10),
        ]
    ).astype(dtype)
    for kern in ELEMENTWISE:  # the sigmoid's and every defined activation's (symce.library)
        out.append(Case(f"{dt} {kern}", kern, (x,)))
    y = np.array(
        [
            [0.0, 1.0, 0.5, 1.0, 0.0],
            [1.0, 0.0, 1.0, 0.0, 0.3],
            [0.0, 1.0, 0.5, 1.0, 1.0],
            [0.2, 0.8, 0.0, 1.0, 0.5],
        ]
    ).astype(dtype)
    pw = np.array([1.0, 0.0, 2.5, 0.5, 3.0], dtype=dtype)
    w = rng.uniform(0.0, 2.0, x.shape).astype(dtype)
    w[1, ::2] = 0.0
    for i, red in enumerate(("none", "mean", "sum")):
        for j, kern in enumerate(BCE_LOGITS):
            opts = {"reduction": red}
            if (i + j) % 2 == 0:
                opts["pos_weight"] = pw
            if (i + j) % 3 != 1:
                opts["weight"] = w
            out.append(
                Case(
                    f"{dt} sbce {kern} {red} {'pw' if 'pos_weight' in opts else ''}",
                    kern,
                    (x, y),
                    opts,
                )
            )


def _error_cases(dtype, out):
    """Bad input every language can express (C has no type errors: one function per dtype)."""
    dt = np.dtype(dtype).name
    z = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -3.0]], dtype=dtype)
    p = np.array([[0.2, 0.3, 0.5], [0.1, 0.8, 0.1]], dtype=dtype)
    lab = np.array([0, 2])
    w = np.ones(3, dtype=dtype)
    bad = [
        ("label K", "softmax_cross_entropy", (z, np.array([0, 3])), {}),
        ("label -1", "softmax_cross_entropy_grad", (z, np.array([-1, 0])), {}),
        ("label probs", "cross_entropy", (p, np.array([3, 0])), {}),
        ("negative weight", "softmax_cross_entropy", (z, lab), {"weight": -w}),
        (
            "NaN weight",
            "softmax_cross_entropy_with_grad",
            (z, lab),
            {"weight": np.array([1.0, NAN, 1.0], dtype=dtype)},
        ),
        ("smoothing 1.5", "softmax_cross_entropy", (z, lab), {"label_smoothing": 1.5}),
        ("smoothing -0.1", "cross_entropy_grad", (p, lab), {"label_smoothing": -0.1}),
        ("smoothing NaN", "softmax_cross_entropy_grad", (z, lab), {"label_smoothing": NAN}),
        ("bad reduction", "softmax_cross_entropy", (z, lab), {"reduction": BAD_REDUCTION}),
        ("bad reduction bce", "sigmoid_binary_cross_entropy", (z, p), {"reduction": BAD_REDUCTION}),
        ("probs 1.5", "cross_entropy", (p + 1, lab), {}),
        ("target 1.5", "cross_entropy", (p, p + 1), {}),
        ("target -0.5 logits", "softmax_cross_entropy_with_grad", (z, p - 0.7), {}),
        ("probs -0.1 bce", "binary_cross_entropy", (p - 0.3, p), {}),
        ("probs 1.5 bce grad", "binary_cross_entropy_grad", (p + 1, p), {}),
        ("K = 0", "softmax", (np.zeros((2, 0), dtype=dtype),), {}),
        ("K = 0 ce", "softmax_cross_entropy", (np.zeros((2, 0), dtype=dtype), lab * 0), {}),
        (
            "negative pos_weight",
            "sigmoid_binary_cross_entropy_grad",
            (z, p),
            {"pos_weight": np.array([1.0, -1.0, 1.0], dtype=dtype)},
        ),
        (
            "NaN bce weight",
            "binary_cross_entropy",
            (p, p),
            {"weight": np.full(p.shape, NAN, dtype=dtype)},
        ),
    ]
    for name, kern, args, opts in bad:
        out.append(Case(f"{dt} error {name}", kern, args, opts))


def build_cases():
    rng = np.random.default_rng(SEED)
    out = []
    for dtype in DTYPES:
        _ce_cases(rng, dtype, out)
        _probability_cases(rng, dtype, out)
        _defined_loss_cases(rng, dtype, out)
        _defined_element_cases(rng, dtype, out)
        _sigmoid_cases(rng, dtype, out)
        _error_cases(dtype, out)
    ids = [c.id for c in out]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return out


CASES = build_cases()


# ----------------------------------------------------------------------------------------------
# Outcomes: the outputs (NumPy layout, one array per output) or the kind of error raised.
# ----------------------------------------------------------------------------------------------
def run_numpy(sk, case):
    return NumpyRunner(sk).call(case.kernel, case.dtype, *case.args, **case.opts)


def run_c(clib, case):
    return CRunner(clib).call(case.kernel, case.dtype, *case.args, **case.opts)


def run_matlab(octave):
    """Every case in one octave-cli: {case id: outcome, None where MATLAB has no such call}."""
    got = MatlabRunner(octave).call_many([(c.kernel, c.dtype, c.args, c.opts) for c in CASES])
    return {case.id: outcome for case, outcome in zip(CASES, got)}


def reference_of(case):
    """The closed-form reference (mpmath, the kernels' policies written out), one per output; a
    value beyond the dtype's range is the infinity it rounds to (the loss w softplus(1.8e308))."""
    fi = np.finfo(case.dtype)
    top = mpmath.mpf(float(fi.max))
    half_ulp = mpmath.ldexp(1, fi.maxexp - fi.nmant - 2)  # half the spacing at the max

    def rounded(v):
        if mpmath.isfinite(v) and abs(v) >= top + half_ulp:
            return mpmath.inf if v > 0 else -mpmath.inf
        return v

    return tuple(
        np.vectorize(rounded, otypes=[object])(np.asarray(r, dtype=object))
        for r in outputs(
            case.kernel, R.evaluate(case.kernel, *case.args, form="closed", **case.opts)
        )
    )


def scales_of(case):
    """Per output: the size of the terms a cancelling result is relative to, or None."""
    outs = [o.name for o in kr.kernel(case.kernel).outputs]
    if case.kernel == "logsumexp":
        z = np.asarray(case.args[0], dtype=np.float64)
        finite = np.where(np.isfinite(z), np.abs(z), 0.0)
        return (finite.max(axis=-1),)
    scale = term_scale(case.kernel, case.args, case.opts)
    return tuple(scale if o in ("grad", "out") else None for o in outs)


# ----------------------------------------------------------------------------------------------
# The comparison.
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def other_outcomes():
    """MATLAB's and NumPy's outcomes, computed once for every C build."""
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    sk = numpy_backend.load_generated()
    return {"matlab": run_matlab(octave), "numpy": {c.id: run_numpy(sk, c) for c in CASES}}


@pytest.fixture(scope="module")
def outcomes(other_outcomes, clib_each):
    """Every language's outcomes, with the C of each build users make (gcc and clang at -O2,
    -O3 -march=native and -ffast-math; tests/c_build.py)."""
    return {**other_outcomes, "c": {c.id: run_c(clib_each, c) for c in CASES}}


def compare(case, outcomes) -> list:
    """The disagreements of one case, per language: [(lang, message)]."""
    res = {lang: outcomes[lang][case.id] for lang in LANGS if outcomes[lang][case.id] is not None}
    raised = {lang: r for lang, r in res.items() if isinstance(r, Raised)}
    if raised:
        if len(raised) < len(res):
            ok = sorted(set(res) - set(raised))
            return [
                (lang, f"raised {raised[lang]} where {', '.join(ok)} returned") for lang in raised
            ] + [
                (lang, f"returned where {', '.join(f'{k} raised {v}' for k, v in raised.items())}")
                for lang in ok
            ]
        first = raised["numpy"]
        return [
            (lang, f"raised {r}, NumPy {first}")
            for lang, r in raised.items()
            if not r.same_kind(first)
        ]
    with np.errstate(all="ignore"):  # infinities and NaN in the scales and ULP spacings
        return _compare_values(case, res)


def _compare_values(case, res):
    problems = []
    refs = reference_of(case)
    outs = [o.name for o in kr.kernel(case.kernel).outputs]
    scales = scales_of(case) if np.size(case.args[0]) else (None,) * len(outs)
    bound = BOUND[case.dtype]
    eps = float(np.finfo(case.dtype).eps)
    for lang in res:
        for name, got, ref, scale in zip(outs, res[lang], refs, scales):
            got = np.asarray(got)
            if got.dtype != case.dtype:
                problems.append((lang, f"{name}: dtype {got.dtype}"))
                continue
            if np.asarray(ref).size == 0:  # N = 0: the shape NumPy gives, nothing else
                shape = res["numpy"][outs.index(name)].shape
                if got.shape != shape:
                    problems.append((lang, f"{name}: shape {got.shape}, NumPy {shape}"))
                continue
            rel, _ = errors(got, ref, scale)
            if not rel <= bound * eps:  # inf: a special value differs
                problems.append(
                    (lang, f"{name}: error {rel / eps:.3g} ULP > {bound}" + _special_diff(got, ref))
                )
    return problems


def _special_diff(got, ref):
    ref = np.asarray(ref, dtype=object)
    with mpmath.workdps(40):
        r = (
            np.array([float(v) for v in ref.ravel()]).reshape(ref.shape)
            if ref.size
            else np.zeros(ref.shape)
        )
    same = (np.isnan(r) == np.isnan(got)) & (np.isinf(r) == np.isinf(got))
    same &= ~np.isinf(r) | (r == got)
    if np.all(same):
        return ""
    return f"; special values differ: got {got.ravel()[:12]}, reference {r.ravel()[:12]}"


def test_cases_cover_the_options():
    """The seeded grid covers every option value, dtype, kernel and the adversarial rows."""
    kernels = {c.kernel for c in CASES}
    assert kernels == set(kr.registry())
    seen = {
        (k, repr(v) if not isinstance(v, np.ndarray) else "array")
        for c in CASES
        for k, v in c.opts.items()
    }
    for want in (
        ("label_smoothing", "0.0"),
        ("label_smoothing", "0.1"),
        ("label_smoothing", "1.0"),
        ("reduction", "'none'"),
        ("reduction", "'mean'"),
        ("reduction", "'sum'"),
        ("weight", "array"),
        ("pos_weight", "array"),
    ):
        assert want in seen, want
    assert any(
        np.any(np.asarray(c.args[1]) == -100)
        for c in CASES
        if len(c.args) > 1 and np.asarray(c.args[1]).dtype.kind == "i"
    )
    assert {c.dtype for c in CASES} == {np.dtype(d) for d in DTYPES}
    assert len(CASES) >= 300


def test_same_numbers_or_same_error(outcomes):
    bad = []
    for case in CASES:
        for lang, msg in compare(case, outcomes):
            bad.append(f"{case.id} [{lang}] {msg}")
    assert not bad, f"{len(bad)} disagreements:\n" + "\n".join(bad[:60])


def test_every_language_raises_somewhere(outcomes):
    """The error cases raise in all three languages (so the first test compared kinds)."""
    errs = [c for c in CASES if " error " in c.id]
    assert errs
    for case in errs:
        for lang in LANGS:
            if outcomes[lang][case.id] is not None:
                assert isinstance(outcomes[lang][case.id], Raised), (case.id, lang)
    # the one-class batches MATLAB cannot express are few; everything else runs in all three
    assert sum(outcomes["matlab"][c.id] is None for c in CASES) <= len(CASES) // 10
