"""Bad input, written once from the catalogue and the registry, refused alike in every language.

For every kernel, dtype and language (tests/runners.py), each refusal the kernel's inputs and
options allow — a negative or NaN weight or pos_weight, label_smoothing outside [0, 1] or NaN, an
unknown reduction, a label outside [0, K), a probability outside [0, 1] where the kernel checks
its domain, a probability target outside [0, 1], K = 0 — is raised as its entry of symce.errors
says: the NumPy exception class, the C code and the MATLAB identifier, all naming the argument.
A new kernel or option is covered by its registry entry and its record in symce.options.
"""

from __future__ import annotations

import numpy as np
import pytest

from symce import errors
from symce import kernels as kr

from runners import BAD_REDUCTION, LANGUAGES, Raised, about, for_language

DTYPES = (np.float32, np.float64)
N, K = 3, 4
NAN = np.nan


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


def _cases():
    """[(id, kernel, dtype, args, options, catalogue key)]."""
    rng = np.random.default_rng(7)
    out = []
    for kern in kr.registry().values():
        for dtype in DTYPES:
            dt = np.dtype(dtype).name
            good = _good(kern, dtype, rng)

            def add(what, args, opts, key, kern=kern, dt=dt, dtype=dtype):
                out.append((f"{kern.name}-{dt}-{what}", kern.name, dtype, tuple(args), opts, key))

            bce = kern.family == "bce"
            wshape = (N, K) if bce else (K,)
            if "weight" in kern.options:
                for bad in (-1.0, NAN):
                    w = np.ones(wshape, dtype=dtype)
                    w.flat[1] = bad
                    add(f"weight {bad}", good, {"weight": w}, "weight")
            if "pos_weight" in kern.options:
                for bad in (-1.0, NAN):
                    pw = np.ones(K, dtype=dtype)
                    pw[2] = bad
                    add(f"pos_weight {bad}", good, {"pos_weight": pw}, "pos_weight")
            if "label_smoothing" in kern.options:
                for bad in (1.5, -0.1, NAN):
                    add(f"smoothing {bad}", good, {"label_smoothing": bad}, "smoothing")
            if "reduction" in kern.options:
                add("reduction", good, {"reduction": BAD_REDUCTION}, "reduction")
            if kern.family in ("ce_probs", "ce_logits"):
                for bad in (K, -1):
                    labels = good[1].copy()
                    labels[1] = bad
                    add(f"label {bad}", (good[0], labels), {}, "label")
                soft = rng.uniform(0, 1, (N, K)).astype(dtype)
                soft[2, 1] = 1.5
                add("target 1.5", (good[0], soft), {}, "target")
            if kern.checks_domain:
                bad = good[0].copy()
                bad[0, 2] = 1.25 if bad[0, 2] < 0.5 else -0.25
                add("probs outside", (bad, *good[1:]), {}, "domain")
            if kern.inputs[0].shape == "(N, K)":
                empty = [np.zeros((N, 0), dtype=dtype) if a.ndim == 2 else a for a in good]
                if kern.family in ("ce_probs", "ce_logits"):
                    empty[1] = np.zeros(N, dtype=np.int64)
                add("K = 0", empty, {}, "no_classes")
    return out


CASES = _cases()
IDS = [c[0] for c in CASES]


@pytest.fixture(scope="module", params=LANGUAGES)
def refusals(request):
    """(language, {case id: outcome}) for every case, the MATLAB ones in one octave-cli."""
    lang = request.param
    got = for_language(lang).call_many([(k, d, a, o) for _, k, d, a, o, _ in CASES])
    return lang, dict(zip(IDS, got))


def test_every_error_with_a_trigger_is_covered():
    keys = {c[-1] for c in CASES}
    assert keys == {
        "weight",
        "pos_weight",
        "smoothing",
        "reduction",
        "label",
        "target",
        "domain",
        "no_classes",
    }
    assert keys <= set(errors.BY_KEY)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_refused_as_the_catalogue_says(refusals, case):
    lang, got = refusals
    case_id, kernel, _dtype, _args, _opts, key = case
    outcome = got[case_id]
    if outcome is None:
        pytest.skip(f"{lang} has no such call")
    entry = errors.BY_KEY[key]
    expected = Raised(entry.python, frozenset().union(*(about(kernel, r) for r in entry.about)))
    assert isinstance(outcome, Raised), f"{lang} {case_id}: returned instead of raising {expected}"
    assert outcome.same_kind(expected), f"{lang} {case_id}: raised {outcome}, expected {expected}"
