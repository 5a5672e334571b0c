"""The language-neutral kernel descriptions (symce.describe) against the registry they come from,
and the emitted C header against them (the other languages' use of them is covered by the
numeric, option and bad-input tests)."""

from __future__ import annotations

import re

import pytest

from symce import describe, errors, options
from symce import kernels as kr
from symce.lang import c_backend
from symce.lang.base import GENERATED

NAMES = list(kr.registry())
LAYOUTS = {"elementwise", "vector", "scalar", "jacobian", "vjp", "ce_probs", "ce_logits", "bce"}
DIMS = {"(N,)": ("n",), "(N, K)": ("n", "k"), "(N, K, K)": ("n", "k", "k")}


def test_every_kernel_is_described_in_registry_order():
    assert list(describe.descriptions()) == NAMES
    with pytest.raises(KeyError):
        describe.describe("no_such_kernel")


@pytest.mark.parametrize("name", NAMES)
def test_layout_follows_the_outputs(name):
    desc = describe.describe(name)
    kern = kr.kernel(name)
    assert desc.layout in LAYOUTS
    if kern.family != "rowwise":
        assert desc.layout == kern.family
        return
    out = kern.outputs[0].shape
    expected = {"(N,)": "scalar", "(N, K, K)": "jacobian"}.get(out)
    expected = expected or ("vjp" if len(kern.inputs) == 2 else "vector")
    assert desc.layout == expected
    assert desc.movable_axis == (expected in ("vector", "scalar"))


@pytest.mark.parametrize("name", NAMES)
def test_variants_take_the_registrys_inputs_options_and_outputs(name):
    desc = describe.describe(name)
    kern = kr.kernel(name)
    expected = ("labels", "soft") if kern.family in describe.CE_FAMILIES else ("",)
    assert tuple(v.target for v in desc.variants) == expected
    for v in desc.variants:
        names = [p.name for p in v.params]
        assert len(set(names)) == len(names), names
        ins = [p for p in v.params if p.role == "in"]
        assert [p.name for p in ins] == [a.name for a in kern.inputs if a.name != "target"]
        outs = [p for p in v.params if p.role == "out"]
        assert tuple(p.name for p in outs) == desc.stores == tuple(o.name for o in kern.outputs)
        for p in ins:
            shape = next(a.shape for a in kern.inputs if a.name == p.name)
            # an input of any shape: elements, or BCE's rows of k columns (pos_weight per column)
            anyshape = ("count",) if kern.family == "elementwise" else ("n", "k")
            assert p.dims == DIMS.get(shape, anyshape)
        # every option is a parameter, except ignore_index of probability targets (PyTorch)
        opts = set(kern.options) - ({"ignore_index"} if v.soft else set())
        # a defined loss's options: role "option" (a number) or "switch"
        declared = {o.name for o in kern.scalars}
        assert opts - declared == {p.role for p in v.params} & set(options.OPTIONS)
        assert declared == {p.name for p in v.params if p.role in ("option", "switch")}
        assert {o.name for o in kern.switches} == {p.name for p in v.params if p.role == "switch"}
        assert v.has("labels") == (v.target == "labels")
        assert v.has("target") == (v.target == "soft" or kern.family == "bce")


@pytest.mark.parametrize("name", NAMES)
def test_checks_are_catalogued_and_in_order(name):
    desc = describe.describe(name)
    for v in desc.variants:
        assert all(k in errors.BY_KEY for k in v.checks)
        assert v.checks[0] == "null" and "size" in v.checks
        assert ("no_classes" in v.checks) == (desc.family not in ("elementwise", "bce"))
        option_errors = [
            options.OPTIONS[p.role].error for p in v.params if p.role in options.OPTIONS
        ]
        for key in option_errors:
            if key != "label":  # ignore_index is checked with the labels
                assert key in v.checks
        assert ("domain" in v.checks) == desc.checks_domain
        assert ("target" in v.checks) == v.soft
        assert ("label" in v.checks) == v.has("labels")
        # the values are checked after the sizes and the options
        order = [v.checks.index(k) for k in ("size", "label", "domain", "target") if k in v.checks]
        assert order == sorted(order)


@pytest.mark.parametrize("name", NAMES)
def test_divisor_is_pytorchs_rule(name):
    desc = describe.describe(name)
    kern = kr.kernel(name)
    for v in desc.variants:
        if "reduction" not in kern.options:
            assert v.divisor == ""
        elif kern.family == "bce":
            assert v.divisor == "elements"
        else:
            assert v.divisor == ("rows" if v.soft else "weight_of_kept")
        assert v.divisor == "" or v.divisor in describe.DIVISORS


def test_needs_follow_the_slots():
    d = describe.descriptions()
    assert d["softmax_vjp"].needs_dot and not d["softmax"].needs_dot
    assert d["softmax_jacobian"].needs_complement
    assert d["softmax_cross_entropy_grad"].needs_ysum
    assert not d["softmax_cross_entropy"].needs_ysum
    assert d["softmax"].needs_p and not d["logsumexp"].needs_p
    assert d["softmax_cross_entropy_with_grad"].fused and not d["softmax_cross_entropy"].fused


def test_c_header_states_each_variants_parameters_and_checks():
    text = (GENERATED / "c" / "symce.h").read_text()
    for fn in c_backend.functions():
        proto = re.search(rf"int {fn.cname}\((.*?)\);", text, re.S)
        assert proto, fn.cname
        params = [a.split()[-1].lstrip("*") for a in proto.group(1).split(",")]
        assert params == [p.name for p in fn.params], fn.cname
        comment = text[: proto.start()].rsplit("/*", 1)[1]
        words = " ".join(line.strip(" *") for line in comment.splitlines())
        codes = ", ".join(errors.BY_KEY[k].c for k in fn.variant.checks)
        assert f"Returns SYMCE_OK, or {codes} (checked in that order" in words, fn.cname
