"""Several bad arguments at once: every language reports the same one, the first in the order
the kernel's description checks them (symce.describe: the options, then the labels, then the
values' domains; docs/semantics.md).  Built from the registry: every pair of the single faults a
kernel's inputs and options allow, in every dtype and language (tests/runners.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from symce import describe, errors
from symce import kernels as kr

from runners import BAD_REDUCTION, LANGUAGES, Raised, about, for_language

N, K = 3, 4
DTYPES = (np.float32, np.float64)


def _faults(kern, dtype, rng):
    """The kernel's valid arguments, and its single faults as {catalogue key: change}, where a
    change is (argument index, value) or (option, value)."""
    desc = describe.describe(kern)
    first = (
        rng.dirichlet(np.ones(K), N).astype(dtype)
        if desc.checks_domain
        else rng.standard_normal((N, K)).astype(dtype)
    )
    bce = kern.family == "bce"
    target = rng.uniform(0, 1, (N, K)).astype(dtype) if bce else rng.integers(0, K, N)
    faults = {}
    if "weight" in kern.options:
        w = np.ones((N, K) if bce else K, dtype)
        w.flat[1] = -1.0
        faults["weight"] = ("weight", w)
    if "pos_weight" in kern.options:
        faults["pos_weight"] = ("pos_weight", np.array([1, np.nan, 1, 1], dtype))
    if "label_smoothing" in kern.options:
        faults["smoothing"] = ("label_smoothing", 1.5)
    if "reduction" in kern.options:
        faults["reduction"] = ("reduction", BAD_REDUCTION)
    if not bce:
        labels = target.copy()
        labels[1] = K
        faults["label"] = (1, labels)
    if desc.checks_domain:
        bad = first.copy()
        bad[0, 0] = 1.5
        faults["domain"] = (0, bad)
    return (first, target), faults


def _cases():
    rng = np.random.default_rng(5)
    cases = {}
    for kern in kr.registry().values():
        if not kern.is_loss:
            continue
        (variant,) = [v for v in describe.describe(kern).variants if v.target != "soft"]
        for dtype in DTYPES:
            args, faults = _faults(kern, dtype, rng)
            for a, b in itertools.combinations(sorted(faults), 2):
                call_args, opts = list(args), {}
                for where, value in (faults[a], faults[b]):
                    if isinstance(where, int):
                        call_args[where] = value
                    else:
                        opts[where] = value
                first = min((a, b), key=variant.checks.index)
                key = (kern.name, np.dtype(dtype).name, a, b)
                cases[key] = ((kern.name, dtype, tuple(call_args), opts), first)
    return cases


CASES = _cases()
KEYS = list(CASES)


@pytest.fixture(scope="module", params=LANGUAGES)
def outcomes(request):
    got = for_language(request.param).call_many([call for call, _ in CASES.values()])
    return request.param, dict(zip(KEYS, got))


def test_every_loss_kernel_has_pairs_of_faults():
    assert {k[0] for k in KEYS} == {n for n, k in kr.registry().items() if k.is_loss}


@pytest.mark.parametrize("key", KEYS, ids=["-".join(k) for k in KEYS])
def test_the_first_fault_in_the_described_order_is_reported(outcomes, key):
    lang, got = outcomes
    out = got[key]
    if out is None:
        pytest.skip(f"{lang} has no such call")
    (name, _, _, _), first = CASES[key]
    entry = errors.BY_KEY[first]
    expected = Raised(entry.python, frozenset().union(*(about(name, r) for r in entry.about)))
    assert isinstance(out, Raised), f"{lang} {key}: accepted"
    assert out.same_kind(expected), f"{lang} {key}: {out}, expected {expected} ({first})"
