"""Bad input, written once from the catalogue and the registry, refused alike in every language.

For every kernel, dtype and language (tests/runners.py), each refusal the kernel's inputs and
options allow is raised as its entry of symce.errors says: the NumPy exception class, the C code
and the MATLAB identifier, all naming the argument, in the language's wording (NumPy
"argument: expected ..., got ...", MATLAB "symce_<kernel>: <Argument> ...", C the code's
``symce_strerror``).  The refusals (CASES):

* a negative or NaN weight or pos_weight, also a tiny negative one, the bad entry last (the whole
  array is checked), a BCE weight per class or a scalar;
* label_smoothing outside [0, 1], NaN or infinite, or just above 1 (1 + 1e-8: a double in every
  dtype);
* an unknown reduction;
* a label outside [0, K), far outside, last, or -100 where ignore_index is another value;
* a probability outside [0, 1] where the kernel checks its domain, and a probability target
  outside it: far outside, infinite, a tiny negative, the next value above 1 in the dtype;
* K = 0 (also with N = 0);
* wrong shapes, in the languages that have them (NumPy and MATLAB; in C sizes are the caller's):
  targets, weights, pos_weight and g of the wrong size, a first input of three dimensions;
* a target or g in the other precision (NumPy and MATLAB; C has one function per dtype);
* a BCE probability outside [0, 1] in an input of any shape;
* two faults at once: the probabilities' domain is checked after every other argument, the
  probability targets after it.

And the edges each check must let through (ACCEPTED), in every language: probabilities 0, 1, -0.0
and NaN (NaN gives NaN), probability targets 0, 1 and NaN, BCE targets outside [0, 1] (not
checked, as in PyTorch), BCE inputs of any shape, zero and -0.0 weights, label_smoothing 0 and 1, labels equal to an
ignore_index outside [0, K), a class as ignore_index.  A new kernel or option is covered by its
registry entry and its record in symce.options.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from symce import errors
from symce import kernels as kr
from symce import reference as R

from runners import BAD_REDUCTION, LANGUAGES, Raised, about, for_language, reports

DTYPES = (np.float32, np.float64)
N, K = 3, 4
NAN, INF = np.nan, np.inf
CE = ("ce_probs", "ce_logits")


@dataclass(frozen=True)
class Bad:
    id: str
    kernel: str
    dtype: type
    args: tuple
    opts: dict
    key: str  # its entry of symce.errors
    names: frozenset  # the arguments the error may name

    @property
    def group(self) -> str:
        """kernel-what: the case in both dtypes (one test)."""
        return self.id.replace(f"-{np.dtype(self.dtype).name}-", "-", 1)


def _good(kern, dtype, rng):
    """Valid inputs for ``kern``: (N, K) rows, or a (N, K) array elementwise; labels for the
    cross-entropies (their soft targets are built where a case needs them)."""
    args = []
    for spec in kern.inputs:
        if spec.name == "target":
            if kern.family == "bce":
                args.append(rng.uniform(0, 1, (N, K)).astype(dtype))
            else:
                args.append(rng.integers(0, K, N))
        elif spec.domain:
            p = rng.uniform(0.1, 1.0, (N, K))
            args.append((p / p.sum(axis=-1, keepdims=True)).astype(dtype))
        else:
            args.append(rng.standard_normal((N, K)).astype(dtype))
    return args


def _set(a, index, value):
    a = np.array(a, copy=True)
    a[index] = value
    return a


def _cases():
    rng = np.random.default_rng(7)
    out = []
    for kern in kr.registry().values():
        for dtype in DTYPES:
            dt = np.dtype(dtype).name
            good = _good(kern, dtype, rng)

            def add(what, args, opts, key, names=None, kern=kern, dt=dt, dtype=dtype):
                if names is None:
                    names = frozenset().union(
                        *(about(kern.name, r) for r in errors.BY_KEY[key].about)
                    )
                out.append(
                    Bad(f"{kern.name}-{dt}-{what}", kern.name, dtype, tuple(args), opts, key, names)
                )

            bce = kern.family == "bce"
            wshape = (N, K) if bce else (K,)
            outside = {-0.25: "-0.25", 1.5: "1.5", INF: "inf", -INF: "-inf", -1e-30: "-1e-30"}
            above_1 = float(np.nextafter(dtype(1), dtype(2)))  # the next value above 1 in the dtype
            outside[above_1] = "just above 1"
            if "weight" in kern.options:
                for bad, at, tag in ((-1.0, 1, ""), (NAN, 1, ""), (-1e-30, -1, " last")):
                    w = _set(np.ones(wshape, dtype=dtype).ravel(), at, bad).reshape(wshape)
                    add(f"weight {bad}{tag}", good, {"weight": w}, "weight")
                if bce:  # PyTorch broadcasts a BCE weight to the input
                    w = _set(np.ones(K, dtype=dtype), 1, -1.0)
                    add("weight per class -1.0", good, {"weight": w}, "weight")
                    add("weight scalar -1.0", good, {"weight": -1.0}, "weight")
            if "pos_weight" in kern.options:
                for bad, at, tag in ((-1.0, 2, ""), (NAN, 2, ""), (-1e-30, -1, " last")):
                    pw = _set(np.ones(K, dtype=dtype), at, bad)
                    add(f"pos_weight {bad}{tag}", good, {"pos_weight": pw}, "pos_weight")
                add("pos_weight scalar -1.0", good, {"pos_weight": -1.0}, "pos_weight")
            if "label_smoothing" in kern.options:
                for bad in (1.5, -0.1, NAN, INF, -INF, 1 + 1e-8):
                    add(f"smoothing {bad}", good, {"label_smoothing": bad}, "smoothing")
            if "reduction" in kern.options:
                add("reduction", good, {"reduction": BAD_REDUCTION}, "reduction")
            if kern.family in CE:
                x, labels = good
                for bad in (K, -1, -2, 10**6):
                    add(f"label {bad}", (x, _set(labels, 1, bad)), {}, "label")
                add(f"label {K} last", (x, _set(labels, -1, K)), {}, "label")
                # -100 is no label where ignore_index is another value
                add(
                    "label -100, ignore_index 7",
                    (x, _set(labels, 1, -100)),
                    {"ignore_index": 7},
                    "label",
                )
                soft = rng.uniform(0, 1, (N, K)).astype(dtype)
                add("target 1.5", (x, _set(soft, (2, 1), 1.5)), {}, "target")
                for bad, tag in outside.items():
                    add(f"target {tag} last", (x, _set(soft, (-1, -1), bad)), {}, "target")
            if kern.checks_domain:
                bad = good[0].copy()
                bad[0, 2] = 1.25 if bad[0, 2] < 0.5 else -0.25
                add("probs outside", (bad, *good[1:]), {}, "domain")
                for v, tag in outside.items():
                    add(f"probs {tag} last", (_set(good[0], (-1, -1), v), *good[1:]), {}, "domain")
            if kern.inputs[0].shape == "(N, K)":
                for n, tag in ((N, ""), (0, ", N = 0")):
                    empty = [np.zeros((n, 0), dtype=dtype) if a.ndim == 2 else a[:n] for a in good]
                    if kern.family in CE:
                        empty[1] = np.zeros(n, dtype=np.int64)
                    add(f"K = 0{tag}", empty, {}, "no_classes")
            for what, args, opts, arg in _shapes(kern, good, dtype):
                add(f"shape: {what}", args, opts, "shape", frozenset({arg}))
            # the other precision: never mixed (C has one function per dtype)
            other = np.float64 if dtype is np.float32 else np.float32
            for i, spec in enumerate(kern.inputs[1:], 1):
                if good[i].dtype.kind == "f":
                    args = [*good[:i], good[i].astype(other), *good[i + 1 :]]
                    add(
                        f"{spec.name} in the other precision",
                        args,
                        {},
                        "type",
                        frozenset({spec.name}),
                    )
            if kern.family in CE:
                soft = np.full((N, K), 1 / K, dtype=other)
                add(
                    "target in the other precision",
                    (good[0], soft),
                    {},
                    "type",
                    frozenset({"target"}),
                )
            if kern.checks_domain and kern.family == "bce":  # probabilities of any shape
                for shape in ((), (5,), (2, N, K)):
                    p = np.full(shape, 0.5, dtype=dtype)
                    add(f"probs {shape} outside", (p + 1, p), {}, "domain")
            for what, args, opts, key in _two_faults(kern, good, dtype):
                names = frozenset({"target"}) if key == "shape" else None
                add(what, args, opts, key, names)
    return out


def _shapes(kern, good, dtype):
    """(what, args, options, the argument named) of a wrong shape: NumPy and MATLAB refuse
    them alike (MATLAB takes a weight of either orientation and drops trailing singleton
    dimensions, NumPy softmax an axis: those differ, and are their own tests)."""
    first = kern.inputs[0].name
    if kern.family in CE:
        x, labels = good
        soft = np.full((N, K + 1), 1 / (K + 1), dtype=dtype)
        yield "N + 1 labels", (x, np.arange(N + 1) % K), {}, "target"
        yield "a target of K + 1 classes", (x, soft), {}, "target"
        yield "a target of 3 dimensions", (x, soft[:, :K, None]), {}, "target"
        yield "one sample and N labels", (x[0], labels), {}, "target"
        yield f"{first} of 3 dimensions", (np.stack([x, x]), labels), {}, first
        for w, tag in ((np.ones(K - 1), "K - 1"), (np.ones(K + 1), "K + 1"), (1.0, "scalar")):
            yield f"weight {tag}", good, {"weight": np.asarray(w, dtype=dtype)}, "weight"
    elif kern.name == "softmax_vjp":
        z, g = good
        yield "g of K - 1 classes", (z, g[:, :-1]), {}, "g"
        yield "g of N - 1 samples", (z, g[:-1]), {}, "g"
        yield "g one sample", (z, g[0]), {}, "g"
    elif kern.family == "bce":
        x, y = good
        yield "a target of K - 1 columns", (x, y[:, :-1]), {}, "target"
        yield "a target of one row", (x, y[0]), {}, "target"
        yield "weight K - 1", good, {"weight": np.ones(K - 1, dtype=dtype)}, "weight"
        yield "weight of 3 dimensions", good, {"weight": np.ones((2, N, K), dtype=dtype)}, "weight"
        if "pos_weight" in kern.options:
            yield (
                "pos_weight K + 1",
                good,
                {"pos_weight": np.ones(K + 1, dtype=dtype)},
                "pos_weight",
            )


def _two_faults(kern, good, dtype):
    """(what, args, options, the fault reported): a probability outside [0, 1] is reported after
    every other fault, a probability target outside it after that (docs/semantics.md)."""
    others = {
        "smoothing": {"label_smoothing": 2.0},
        "reduction": {"reduction": BAD_REDUCTION},
        "weight": {"weight": -np.ones((N, K) if kern.family == "bce" else K, dtype=dtype)},
    }
    others = {k: v for k, v in others.items() if next(iter(v)) in kern.options}
    first, *rest = good
    if kern.checks_domain:
        probs = _set(first, (0, 0), 1.5)
        for key, opts in others.items():
            yield f"{key} before probs", (probs, *rest), opts, key
        if kern.family == "bce":
            yield "shape before probs", (probs, rest[0][:, :-1]), {}, "shape"
        if kern.family in CE:
            yield "label before probs", (probs, _set(rest[0], 1, 9)), {}, "label"
            soft = np.full((N, K), 1.5, dtype=dtype)
            yield "probs before target", (probs, soft), {}, "domain"
    if kern.family in CE:
        soft = np.full((N, K), 1.5, dtype=dtype)
        for key, opts in others.items():
            yield f"{key} before target", (first, soft), opts, key


CASES = _cases()


def _groups(cases, key):
    out: dict = {}
    for c in cases:
        out.setdefault(key(c), []).append(c)
    return out


GROUPS = _groups(CASES, lambda c: c.group)


@pytest.fixture(scope="module", params=LANGUAGES)
def outcomes(request):
    """(language, {case id: outcome}) for every refusal the language has (symce.errors) and
    every edge, the MATLAB ones in one octave-cli."""
    lang = request.param
    calls = {c.id: (c.kernel, c.dtype, c.args, c.opts) for c in CASES if reports(lang, c.key)}
    calls |= {c[0]: c[1:5] for c in ACCEPTED}
    got = for_language(lang).call_many(list(calls.values()))
    return lang, dict(zip(calls, got))


def test_every_error_with_a_trigger_is_covered():
    keys = {c.key for c in CASES}
    assert keys == {
        "weight",
        "pos_weight",
        "smoothing",
        "reduction",
        "label",
        "target",
        "domain",
        "no_classes",
        "shape",
        "type",
    }
    assert keys <= set(errors.BY_KEY)


def _wording(lang, case, outcome):
    """Each language's wording of an error: NumPy "argument: expected ..., got ...", MATLAB
    "symce_<kernel>: ...", C the catalogue's text of the code."""
    msg = outcome.message
    if lang == "numpy":
        return "expected" in msg and ("got" in msg or "given" in msg)
    if lang == "matlab":
        return msg.startswith(f"symce_{case.kernel}: ")
    return msg == errors.BY_KEY[case.key].c_message


@pytest.mark.parametrize("group", list(GROUPS))
def test_refused_as_the_catalogue_says(outcomes, group):
    """Each case in float32 and float64."""
    lang, got = outcomes
    key = GROUPS[group][0].key
    if not reports(lang, key):
        pytest.skip(f"{lang} has no {key!r} refusal (symce.errors)")
    for case in GROUPS[group]:
        outcome = got[case.id]
        if outcome is None:
            pytest.skip(f"{lang} has no such call")
        expected = Raised(errors.BY_KEY[case.key].python, case.names)
        assert isinstance(outcome, Raised), f"{lang} {case.id}: returned, not raised {expected}"
        assert outcome.same_kind(expected), f"{lang} {case.id}: raised {outcome}, not {expected}"
        assert _wording(lang, case, outcome), f"{lang} {case.id}: worded {outcome.message!r}"


# ----------------------------------------------------------------------------------------------
# The edges of each check, let through in every language
# ----------------------------------------------------------------------------------------------
def _accepted():
    """[(id, kernel, dtype, args, options, the samples (or elements) whose 'none' loss is NaN,
    or None)]."""
    rng = np.random.default_rng(8)
    out = []
    for kern in kr.registry().values():
        if not kern.options:
            continue
        for dtype in DTYPES:
            dt = np.dtype(dtype).name
            good = _good(kern, dtype, rng)
            first, target = good

            def add(what, args, opts, nan=None, kern=kern, dt=dt, dtype=dtype):
                out.append((f"{kern.name}-{dt}-{what}", kern.name, dtype, tuple(args), opts, nan))

            none = {"reduction": "none"}
            if kern.checks_domain:  # 0 and 1 are in the domain, and -0.0; NaN passes through
                p = first.copy()
                p[0] = 0
                p[0, 1] = 1
                p[1, 0] = -0.0
                p[2, 2] = NAN
                t = np.array([1, 0, 2]) if kern.family in CE else target
                nan = np.zeros(p.shape if kern.family == "bce" else N, bool)
                nan[(2, 2) if kern.family == "bce" else 2] = True
                add("probs 0, 1, -0.0 and NaN", (p, t), none, nan)
            if kern.family in CE:
                soft = np.full((N, K), 1 / K, dtype=dtype)
                soft[0] = (0, 1, 0, 0)
                soft[2, 1] = NAN
                add("target 0, 1 and NaN", (first, soft), none, np.array([False, False, True]))
                add("label_smoothing 0", good, {"label_smoothing": 0.0})
                add("label_smoothing 1", good, {"label_smoothing": 1.0})
                for ignore in (99, -7):
                    labels = _set(target, 1, ignore)
                    add(f"ignore_index {ignore}", (first, labels), {"ignore_index": ignore})
                add("ignore_index a class", (first, _set(target, 1, 1)), {"ignore_index": 1})
            if kern.family == "bce":  # the BCE target is not checked, as in PyTorch
                y = (3 * target - 1).astype(dtype)
                y[1, 1] = NAN
                nan = np.zeros((N, K), bool)
                nan[1, 1] = True
                if kern.defined_in:  # and NaN where the definition has no real value there
                    ref = R.evaluate(kern.name, first, y, form="closed", reduction="none")
                    nan |= np.isnan(np.asarray(ref, dtype=np.float64))
                add("target outside [0, 1] and NaN", (first, y), none, nan)
                add("weight 0", good, {"weight": 0.0})
                for shape in ((), (5,), (2, N, K)):  # any shape
                    x = np.full(shape, 0.5, dtype=dtype)
                    add(f"shape {shape}", (x, x), none, np.zeros(shape, bool))
            if "weight" in kern.options:
                w = np.ones((N, K) if kern.family == "bce" else K, dtype=dtype)
                w.flat[:2] = (0.0, -0.0)
                add("weight 0 and -0.0", good, {"weight": w})
            if "pos_weight" in kern.options:
                add("pos_weight 0 and -0.0", good, {"pos_weight": np.array([0, -0.0, 1, 2], dtype)})
    return out


ACCEPTED = _accepted()
ACCEPTED_GROUPS = _groups(ACCEPTED, lambda c: c[0].replace(f"-{np.dtype(c[2]).name}-", "-", 1))


@pytest.mark.parametrize("group", list(ACCEPTED_GROUPS))
def test_edges_are_let_through(outcomes, group):
    """Each edge in float32 and float64."""
    lang, got = outcomes
    for case_id, kernel, _dtype, _args, _opts, nan in ACCEPTED_GROUPS[group]:
        outcome = got[case_id]
        if outcome is None:
            pytest.skip(f"{lang} has no such call")
        assert not isinstance(outcome, Raised), f"{lang} {case_id}: refused: {outcome.message}"
        outputs = [o.name for o in kr.kernel(kernel).outputs]
        if nan is not None and "loss" in outputs:
            loss = outcome[outputs.index("loss")]
            assert np.array_equal(np.isnan(loss), nan), f"{lang} {case_id}: NaN at {np.isnan(loss)}"
