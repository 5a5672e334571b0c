"""The names symce writes into generated code (symce.names): hostile and invalid names are refused
with an error that says which rule they break; every built-in name passes."""

from __future__ import annotations

import dataclasses
import io
import keyword
import pathlib
import re
import tokenize

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


# ---- the generated code's own identifiers (names.GENERATED) --------------------------------------
def _c_identifiers(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r'"(\\.|[^"\\])*"', " ", text)
    text = re.sub(r"'(\\.|[^'\\])*'", " ", text)
    text = re.sub(r"^\s*#\s*(include|error|warning)[^\n]*", " ", text, flags=re.M)
    text = re.sub(r"\b0[xX][0-9a-fA-F.]+[pP][+-]?\d+[fFlL]?\b|\b\d[\w.]*", " ", text)
    return set(re.findall(r"\b[A-Za-z_]\w*\b", text))


def _python_identifiers(text):
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return {tok.string for tok in tokens if tok.type == tokenize.NAME}


def _matlab_identifiers(text):
    out = set()
    for line in text.splitlines():
        line = re.sub(r"(?<![\w)\]}'.])'[^'\n]*'", " ", line)  # a string, not a transpose
        line = re.sub(r'"[^"\n]*"', " ", line)
        line = re.sub(r"\b\d[\w.]*", " ", line.split("%", 1)[0])
        out |= set(re.findall(r"\b[A-Za-z_]\w*\b", line))
    return out


def test_every_identifier_of_the_generated_code_is_known():
    """Each identifier in generated/ (outside comments and strings) is a kernel's name, one of its
    parameters, a reserved word, symce_-prefixed, or in names.GENERATED: a user's argument or
    option can shadow nothing (names.check_argument)."""
    root = pathlib.Path(__file__).resolve().parents[1] / "generated"
    found = set()
    for path in (root / "c").glob("*"):
        found |= _c_identifiers(path.read_text())
    for path in (root / "numpy").glob("*.py"):
        found |= _python_identifiers(path.read_text())
    for path in (root / "matlab").glob("*.m"):
        found |= _matlab_identifiers(path.read_text())
    known = set(names.GENERATED).union(*names.RESERVED.values())
    for kern in kr.registry().values():
        known |= {kern.name, kern.name + "_soft", *kern.options}
        known |= {a.name for a in kern.inputs + kern.outputs}
    lower = {i for i in found if re.fullmatch(r"[a-z][a-z0-9_]*", i) and not i.startswith("symce_")}
    assert not lower - known, f"add these to symce.names._GENERATED: {sorted(lower - known)}"


@pytest.mark.parametrize("name", ["total", "np", "row", "scale", "labels", "exp", "v", "divisor"])
def test_an_argument_may_not_shadow_the_generated_code(name):
    with pytest.raises(ValueError, match="generated code"):
        names.check_argument(name)
    assert names.check_argument("input") == "input"
