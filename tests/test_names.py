"""The names symce writes into generated code (symce.names): hostile and invalid names are refused
with an error that says which rule they break; every built-in name passes."""

from __future__ import annotations

import dataclasses
import keyword

import pytest

from symce import kernels as kr
from symce import names

HOSTILE = [
    "",  # empty
    "1abc",  # starts with a digit
    "_private",  # starts with an underscore (MATLAB refuses it; C reserves _X)
    "Softmax",  # upper case
    "soft-max",
    "soft max",
    "a\nb",  # a newline into a template line
    "x;system('rm -rf /')",  # MATLAB / C statement injection
    "x); exit(1); (",
    '"quoted"',
    "{{ x }}",  # Jinja syntax
    "{% if 1 %}",
    "a/*b*/",
    "σ",  # Unicode letters are identifiers in Python, not in C89 or MATLAB
    "sigma\u200b",  # a zero-width space
    "tanh\x00",
    "a" * (names.MAX_LENGTH + 1),
    "a__b",  # reserved in C and C++
]


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_names_are_refused(bad):
    with pytest.raises(ValueError, match="kernel name"):
        names.check_name(bad, "kernel name")


@pytest.mark.parametrize(
    "word, language",
    [
        ("int", "C"),
        ("restrict", "C"),
        ("static_assert", "C"),
        ("template", "C++"),
        ("nullptr", "C++"),
        ("lambda", "Python"),
        ("match", "Python"),
        ("end", "MATLAB"),
        ("function", "MATLAB"),
        ("classdef", "MATLAB"),
    ],
)
def test_reserved_words_name_their_language(word, language):
    with pytest.raises(ValueError, match=f"reserved word in .*{language}"):
        names.check_name(word, "option name")


def test_every_python_keyword_that_fits_the_pattern_is_refused():
    for word in keyword.kwlist + keyword.softkwlist:
        if word.islower() and word.isidentifier() and not word.startswith("_"):
            with pytest.raises(ValueError, match="reserved word"):
                names.check_name(word)


@pytest.mark.parametrize("bad", [None, 3, b"tanh", ["tanh"]])
def test_a_name_that_is_not_a_string_is_a_type_error(bad):
    with pytest.raises(TypeError, match="expected a string"):
        names.check_name(bad, "kernel name")


def test_good_names_pass():
    for good in ("tanh", "softplus", "log_sigmoid", "focal_loss", "gamma", "alpha", "k2"):
        assert names.check_name(good) == good
    assert names.check_name("a" * names.MAX_LENGTH) == "a" * names.MAX_LENGTH


def test_every_built_in_name_passes_and_none_is_taken_twice():
    table = kr.registry()
    assert len(table) == len(set(table))
    for kern in table.values():
        names.check_name(kern.name)
        for arg in kern.inputs + kern.outputs:
            names.check_name(arg.name)
        for option in kern.options:
            names.check_name(option)


def test_the_registry_refuses_a_taken_or_hostile_name():
    table = list(kr.registry().values())
    sigmoid = table[0]
    with pytest.raises(ValueError, match="already taken by the kernel sigmoid"):
        kr._named([*table, dataclasses.replace(sigmoid, summary="another")])
    # a kernel whose C functions would be another kernel's probability-target functions
    ce = kr.kernel("cross_entropy")
    with pytest.raises(ValueError, match="probability-target functions of cross_entropy"):
        kr._named([*table, dataclasses.replace(sigmoid, name="cross_entropy_soft")])
    with pytest.raises(ValueError, match="kernel name"):
        kr._named([dataclasses.replace(sigmoid, name="x); system(1); (")])
    # an option named like an argument, and an argument named by a reserved word
    with pytest.raises(ValueError, match="already taken by an argument of cross_entropy"):
        kr._named([dataclasses.replace(ce, options=(*ce.options, "probs"))])
    bad_arg = dataclasses.replace(ce.inputs[0], name="end")
    with pytest.raises(ValueError, match="reserved word in MATLAB"):
        kr._named([dataclasses.replace(ce, inputs=(bad_arg, *ce.inputs[1:]))])
