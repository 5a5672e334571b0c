"""Tests written once and run in every language (tests/runners.py), over kernel x dtype x language.

The calls come from the kernel registry alone (inputs by role and shape, options by name), so a
new kernel, or a new language with a runner, is covered without a new test:

* the dtype is kept: float32 in, float32 out, in every output;
* the reductions agree: ``sum`` is the sum of ``none`` (the per-sample losses, or the same
  gradient), and ``mean`` is ``sum`` over the divisor (the samples, or the elements for the BCE
  family), in every output;
* a kernel returns its outputs in the shapes the registry gives, in every language.

The MATLAB calls of the whole module run in one octave-cli.
"""

from __future__ import annotations

import numpy as np
import pytest

from symce import kernels as kr

from runners import LANGUAGES, Raised, for_language

DTYPES = (np.float32, np.float64)
REDUCTIONS = ("none", "sum", "mean")
N, K = 5, 4


def _inputs(kern, dtype, rng):
    """Inputs for ``kern`` by role: logits or probabilities (N, K), labels (N,), targets."""
    fam = kern.family
    shape = (N, K) if fam != "elementwise" else (3, 7)
    args = []
    for spec in kern.inputs:
        if spec.kind == "target":
            if fam == "bce":
                args.append(rng.uniform(0.0, 1.0, shape).astype(dtype))
            else:
                args.append(rng.integers(0, K, N))
        elif spec.domain == "[0, 1]":  # probabilities: per element, or rows that sum to 1
            if fam == "bce":
                args.append(rng.uniform(0.05, 0.95, shape).astype(dtype))
            else:
                p = rng.uniform(0.1, 1.0, shape)
                args.append((p / p.sum(axis=-1, keepdims=True)).astype(dtype))
        elif spec.kind == "real" and not spec.domain:  # logits, x, g, a defined loss's input
            args.append((rng.standard_normal(shape) * 2).astype(dtype))
        else:
            raise AssertionError(f"{kern.name}: no input builder for {spec}; add one here")
    return tuple(args)


def _divisor(kern, args):
    """What `mean` divides by, with no weight and nothing ignored."""
    return args[0].size if kern.family == "bce" else int(np.prod(np.shape(args[0])[:-1]))


def _calls():
    rng = np.random.default_rng(11)
    calls = {}
    for kern in kr.registry().values():
        for dtype in DTYPES:
            args = _inputs(kern, dtype, rng)
            reductions = REDUCTIONS if "reduction" in kern.options else (None,)
            for red in reductions:
                opts = {} if red is None else {"reduction": red}
                calls[(kern.name, np.dtype(dtype).name, red)] = (kern.name, dtype, args, opts)
    return calls


CALLS = _calls()
KEYS = list(CALLS)


@pytest.fixture(scope="module", params=LANGUAGES)
def outcomes(request):
    """{call key: outcome} of every call in one language."""
    lang = request.param
    got = for_language(lang).call_many(list(CALLS.values()))
    return lang, dict(zip(KEYS, got))


def _outcome(outcomes, key):
    lang, got = outcomes
    out = got[key]
    if out is None:
        pytest.skip(f"{lang} has no such call")
    assert not isinstance(out, Raised), f"{lang} refused {key}: {out}"
    return lang, out


@pytest.mark.parametrize("key", KEYS, ids=["-".join(map(str, k)) for k in KEYS])
def test_dtype_is_kept_and_shapes_are_the_registrys(outcomes, key):
    lang, out = _outcome(outcomes, key)
    name, dtype, args, opts = CALLS[key]
    kern = kr.kernel(name)
    assert len(out) == len(kern.outputs)
    for o, v in zip(kern.outputs, out):
        assert v.dtype == np.dtype(dtype), f"{lang} {name} {o.name}: {v.dtype}"
        reduced = opts.get("reduction", "mean") != "none" and o.name == "loss"
        if reduced:
            assert v.size == 1, f"{lang} {name} {o.name}: shape {v.shape}"
        elif kern.name == "softmax_jacobian":
            assert v.shape == (N, K, K)
        elif kern.name == "logsumexp" or (o.name == "loss" and kern.family != "bce"):
            assert v.shape == np.shape(args[0])[:-1], f"{lang} {name} {o.name}: {v.shape}"
        else:
            assert v.shape == np.shape(args[0]), f"{lang} {name} {o.name}: {v.shape}"


LOSS_KEYS = sorted({(k[0], k[1]) for k in KEYS if k[2] is not None})


@pytest.mark.parametrize("name, dtype", LOSS_KEYS, ids=["-".join(k) for k in LOSS_KEYS])
def test_reductions_agree(outcomes, name, dtype):
    _, none = _outcome(outcomes, (name, dtype, "none"))
    lang, total = _outcome(outcomes, (name, dtype, "sum"))
    _, mean = _outcome(outcomes, (name, dtype, "mean"))
    kern = kr.kernel(name)
    divisor = _divisor(kern, CALLS[(name, dtype, "none")][2])
    rtol = 2e-6 if dtype == "float32" else 1e-13
    for o, a, s, m in zip(kern.outputs, none, total, mean):
        a, s, m = (np.asarray(v, dtype=np.float64) for v in (a, s, m))
        if o.name == "loss":
            np.testing.assert_allclose(s, a.sum(), rtol=rtol, err_msg=f"{lang} {name} sum")
        else:  # the gradient of the sum is the gradient of every sample's loss
            np.testing.assert_allclose(s, a, rtol=rtol, atol=0, err_msg=f"{lang} {name} grad")
        np.testing.assert_allclose(m, s / divisor, rtol=rtol, err_msg=f"{lang} {name} mean")
