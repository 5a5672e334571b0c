"""Bad input that is MATLAB's own, run in GNU Octave (all calls in one octave-cli process).

The refusals every language shares (weights, label_smoothing, reduction, labels out of range,
the domains, K = 0, shapes, the other precision, two faults at once) and the edges every
language lets through are tests/test_bad_input.py, in MATLAB too.  Here: MATLAB's classes
(symce:type for integer, logical, char or complex input, a cell or char option), labels that are
not whole numbers (1.5, NaN, Inf), IgnoreIndex, LabelSmoothing and Reduction values of the wrong
kind, name-value errors (symce:badOption: an unknown name, an odd count, a name that is not
text, an option of another kernel), the orientations MATLAB refuses (an N-D z, a row of BCE
weights, a matrix of weights or PosWeight), and MATLAB's wording: each message starts with the
function's name and names the argument, the expectation and the offending value, 1-based
(samples, column-major elements) and in MATLAB's syntax.  Together with the shared table every
identifier is raised for every kernel that can raise it (test_every_error_id_is_covered).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_bad_input import CASES as SHARED

from symce import errors, kernels

import support
from octave_runner import Batch

REGISTRY = kernels.registry()
Z = "[1 2 0.5; 0 1 3; -1 0 2]"  # K = 3 classes, N = 3 samples
CASES = []  # (id, kernel, call, error id, substrings of the message)


def case(name, call, err, *words):
    CASES.append((f"{name}: {err} {call}", name, call, err, words))


def _types(name, head, rest=""):
    """symce:type for a non-floating or complex first input."""
    for bad, word in (
        ("int32([1 2; 3 4])", "int32"),
        ("true(2, 2)", "logical"),
        ("'ab'", "char"),
        ("[1+2i 3; 1 2]", "complex double"),
    ):
        case(name, f"symce_{name}({bad}{rest})", "symce:type", head, word, "single or double")


def _mat(a):
    """A MATLAB literal of a 2-D array (repr of each value: exact)."""
    return (
        "["
        + "; ".join(
            " ".join(repr(float(v)).replace("inf", "Inf") for v in row) for row in np.atleast_2d(a)
        )
        + "]"
    )


def _domain(name, arg, good, target, single_target):
    """symce:domain in MATLAB's wording: the argument, the interval, the value and its (linear,
    column-major, 1-based) index, in double and single."""
    a = np.array(good, dtype=float)
    flat = a.T.ravel()  # MATLAB's linear order is column-major
    flat[3] = 1.5
    call = f"symce_{name}({_mat(flat.reshape(a.T.shape).T)}, {target})"
    case(name, call, "symce:domain", arg, "probabilities in [0, 1]", "got 1.5 at element 4")
    a = np.array(good, dtype=float)
    a[1, 0] = 1.0001  # linear index 2
    case(
        name,
        f"symce_{name}(single({_mat(a)}), {single_target})",
        "symce:domain",
        arg,
        "got 1.0001 at element 2",
    )


for _name, _kern in REGISTRY.items():
    fam = _kern.family
    first = _kern.inputs[0].name
    if fam == "elementwise":
        _types(_name, "x")
    elif fam == "rowwise":
        g = ", [1 2 3]'" if _name == "softmax_vjp" else ""
        _types(_name, "z", ", int32([1 2])" if g else "")
        case(
            _name,
            f"symce_{_name}(ones(2, 2, 2){', ones(2, 2, 2)' if g else ''})",
            "symce:shape",
            "z",
            "2x2x2",
            "K-by-N",
        )
    elif fam in ("ce_probs", "ce_logits"):
        P = "[0.2 0.3 0.1; 0.5 0.3 0.6; 0.3 0.4 0.3]"
        X = Z if fam == "ce_logits" else P
        f = f"symce_{_name}"
        _types(_name, first, ", [1 2 3]")
        # targets of a class MATLAB has, or labels that are not whole numbers; a label out of
        # range in MATLAB's wording (1-based, the IgnoreIndex to use)
        case(_name, f"{f}({X}, [true false true])", "symce:type", "target", "logical")
        case(_name, f"{f}({X}, 'abc')", "symce:type", "target", "char")
        for bad, shown, n in (
            ("[1 2 4]", "4", 3),
            ("[1.5 2 3]", "1.5", 1),
            ("[1 2 NaN]", "NaN", 3),
            ("[Inf 1 1]", "Inf", 1),
        ):
            case(
                _name,
                f"{f}({X}, {bad})",
                "symce:label",
                "target",
                "1..K (K = 3)",
                f"got {shown} for sample {n}",
                "IgnoreIndex (-100)",
            )
        case(
            _name, f"{f}({X}, [1 2 5], 'IgnoreIndex', 4)", "symce:label", "got 5", "IgnoreIndex (4)"
        )
        for bad, shown in (("1.5", "1.5"), ("[1 2]", "[1 2]"), ("'a'", "'a'"), ("NaN", "NaN")):
            case(
                _name,
                f"{f}({X}, [1 2 3], 'IgnoreIndex', {bad})",
                "symce:label",
                "IgnoreIndex",
                "integer scalar",
                shown,
            )
        # options
        # (an integer or logical Weight is converted: test_matlab_policies)
        case(_name, f"{f}({X}, [1 2 3], 'Weight', {{1 1 1}})", "symce:type", "Weight", "cell")
        case(_name, f"{f}({X}, [1 2 3], 'Weight', ones(3, 3))", "symce:shape", "Weight", "3x3")
        case(
            _name,
            f"{f}({X}, [1 2 3], 'Weight', [1 -1 1])",
            "symce:weight",
            "Weight",
            "non-negative",
            "[1 -1 1]",
        )
        for bad, shown in (("[0.1 0.2]", "[0.1 0.2]"), ("'a'", "'a'")):
            case(
                _name,
                f"{f}({X}, [1 2 3], 'LabelSmoothing', {bad})",
                "symce:smoothing",
                "LabelSmoothing",
                "[0, 1]",
                shown,
            )
        for bad, shown in (("5", "5"), ("''", "''"), ("{'sum'}", "cell")):
            case(
                _name,
                f"{f}({X}, [1 2 3], 'Reduction', {bad})",
                "symce:reduction",
                "Reduction",
                "'mean', 'sum' or 'none'",
                shown,
            )
        case(
            _name,
            f"{f}({X}, [1 2 3], 'Foo', 1)",
            "symce:badOption",
            "'Foo'",
            "Weight",
            "IgnoreIndex",
            "LabelSmoothing",
            "Reduction",
        )
        case(_name, f"{f}({X}, [1 2 3], 'PosWeight', 1)", "symce:badOption", "'PosWeight'")
        case(_name, f"{f}({X}, [1 2 3], 'Reduction')", "symce:badOption", "name-value", "(1)")
        case(_name, f"{f}({X}, [1 2 3], 5, 1)", "symce:badOption", "unknown option 5")
        if _kern.checks_domain:
            _domain(
                _name,
                first,
                [[0.2, 0.3, 0.1], [0.5, 0.3, 0.6], [0.3, 0.4, 0.3]],
                "[1 2 3]",
                "int32([1 2 3])",
            )
    else:  # bce
        X = (
            "[0.2 0.9; 0.6 0.1; 0.5 0.5]"
            if not _name.startswith("sigmoid")
            else "[1 -2; 0.5 3; -1 0]"
        )
        Y = "[1 0; 0 1; 0.5 0]"
        f = f"symce_{_name}"
        _types(_name, first, f", {Y}")
        case(_name, f"{f}({X}, 'ab')", "symce:type", "target", "char")
        case(_name, f"{f}({X}, {Y}, 'Weight', [1 2 3])", "symce:shape", "Weight", "3x2", "1x3")
        case(_name, f"{f}({X}, {Y}, 'Weight', 'a')", "symce:type", "Weight", "char")
        case(_name, f"{f}({X}, {Y}, 'Weight', [1; -2; 1])", "symce:weight", "Weight", "[1;-2;1]")
        case(_name, f"{f}({X}, {Y}, 'Reduction', 'mean ')", "symce:reduction", "'mean '")
        case(_name, f"{f}({X}, {Y}, 'IgnoreIndex', 1)", "symce:badOption", "'IgnoreIndex'")
        case(_name, f"{f}({X}, {Y}, 'LabelSmoothing', 0.1)", "symce:badOption", "'LabelSmoothing'")
        case(_name, f"{f}({X}, {Y}, 'Weight')", "symce:badOption", "name-value")
        if _name.startswith("binary"):
            _domain(_name, first, [[0.2, 0.9], [0.6, 0.1], [0.5, 0.5]], Y, f"single({Y})")
        if "pos_weight" in _kern.options:
            case(
                _name, f"{f}({X}, {Y}, 'PosWeight', ones(3, 2))", "symce:shape", "PosWeight", "3x2"
            )
            case(
                _name,
                f"{f}({X}, {Y}, 'PosWeight', [1 -1 1])",
                "symce:weight",
                "PosWeight",
                "[1 -1 1]",
            )
            case(_name, f"{f}({X}, {Y}, 'PosWeight', 'a')", "symce:type", "PosWeight", "char")
        else:
            case(_name, f"{f}({X}, {Y}, 'PosWeight', 2)", "symce:badOption", "'PosWeight'")


KEYS = {}


@pytest.fixture(scope="module")
def results():
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    batch = Batch()
    KEYS.clear()
    for cid, _, call, _, _ in CASES:
        KEYS[cid] = batch.call(call, nout=0)
    return batch.run(octave)


def _shared_ids(name):
    """The MATLAB identifiers the shared table (tests/test_bad_input.py) raises for ``name``."""
    return {errors.BY_KEY[c.key].matlab for c in SHARED if c.kernel == name} - {None}


def test_every_error_id_is_covered():
    """By this table and the shared one together."""
    ids = {c[3] for c in CASES} | {i for name in REGISTRY for i in _shared_ids(name)}
    assert ids == {
        "symce:type",
        "symce:shape",
        "symce:emptyClasses",
        "symce:label",
        "symce:weight",
        "symce:smoothing",
        "symce:reduction",
        "symce:badOption",
        "symce:domain",
    }
    for name, kern in REGISTRY.items():
        mine = {c[3] for c in CASES if c[1] == name} | _shared_ids(name)
        assert "symce:type" in mine, name
        if kern.family in ("rowwise", "ce_probs", "ce_logits"):
            assert {"symce:emptyClasses", "symce:shape"} <= mine, name
        if kern.options:
            assert {"symce:weight", "symce:reduction", "symce:badOption"} <= mine, name
        if "label_smoothing" in kern.options:
            assert {"symce:label", "symce:smoothing"} <= mine, name
        # probabilities outside [0, 1], and probability targets (the cross-entropies)
        domain = kern.checks_domain or kern.family in ("ce_probs", "ce_logits")
        assert ("symce:domain" in mine) == domain, name


@pytest.mark.parametrize("cid", [c[0] for c in CASES])
def test_bad_input(results, cid):
    _, name, call, err, words = next(c for c in CASES if c[0] == cid)
    res = results[KEYS[cid]]
    assert res.error_id == err, f"{call}: expected {err}, got {res.error_id}: {res.error_message}"
    msg = res.error_message
    assert msg.startswith(f"symce_{name}: "), msg
    for word in words:
        assert word in msg, f"{call}: {word!r} not in the message {msg!r}"
