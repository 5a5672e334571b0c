"""Bad input to the MATLAB kernels, run in GNU Octave (all calls in one octave-cli process).

Every row of the "Bad input" table of docs/semantics.md, for every kernel it applies to, raises
``error('symce:<id>', ...)`` with a message that starts with the function's name and names the
argument, the expectation and the offending value:

symce:emptyClasses (K = 0), symce:shape (N-D logits, target/g/weight/PosWeight of the wrong size),
symce:label (non-integer, out of 1..K, NaN, bad IgnoreIndex), symce:weight (negative or NaN
Weight / PosWeight), symce:smoothing (outside [0, 1], NaN, not a scalar), symce:reduction,
symce:type (integer, logical, char or complex input; single mixed with double), symce:domain (a
probability outside [0, 1] in the kernels that take probabilities, checked after every other
argument: a bad label wins), symce:badOption (unknown name, odd count, a name that is not text,
an option of another kernel).  NaN probabilities are not an error (they propagate: see
test_matlab_kernels).
"""

from __future__ import annotations

import numpy as np
import pytest

from symce import kernels

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
    """symce:domain for probabilities below 0, above 1 or infinite, in double and single: the
    message names the argument, the interval, the value and its (linear, 1-based) index."""
    for i, bad, shown in (
        (1, -0.25, "-0.25"),
        (4, 1.5, "1.5"),
        (6, np.inf, "Inf"),
        (2, -np.inf, "-Inf"),
        (3, -1e-300, "-1e-300"),
    ):
        a = np.array(good, dtype=float)
        flat = a.T.ravel()  # MATLAB's linear order is column-major
        flat[i - 1] = bad
        call = f"symce_{name}({_mat(flat.reshape(a.T.shape).T)}, {target})"
        case(
            name,
            call,
            "symce:domain",
            arg,
            "probabilities in [0, 1]",
            f"got {shown} at element {i}",
        )
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
            f"symce_{_name}(zeros(0, 3){', zeros(0, 3)' if g else ''})",
            "symce:emptyClasses",
            "z",
            "0x3",
            "at least one class",
        )
        case(
            _name,
            f"symce_{_name}(ones(2, 2, 2){', ones(2, 2, 2)' if g else ''})",
            "symce:shape",
            "z",
            "2x2x2",
            "K-by-N",
        )
        if g:
            case(_name, f"symce_{_name}({Z}, [1 2 3])", "symce:shape", "g", "1x3", "3x3")
            case(_name, f"symce_{_name}({Z}, single({Z}))", "symce:type", "g", "single", "double")
            case(_name, f"symce_{_name}(single({Z}), {Z})", "symce:type", "g", "double", "single")
    elif fam in ("ce_probs", "ce_logits"):
        P = "[0.2 0.3 0.1; 0.5 0.3 0.6; 0.3 0.4 0.3]"
        X = Z if fam == "ce_logits" else P
        f = f"symce_{_name}"
        _types(_name, first, ", [1 2 3]")
        case(_name, f"{f}(zeros(0, 3), [1 2 3])", "symce:emptyClasses", first, "0x3")
        case(_name, f"{f}(ones(3, 2, 2), [1 2 3 1])", "symce:shape", first, "3x2x2")
        # targets of the wrong size, class, or value
        case(_name, f"{f}({X}, [1 2])", "symce:shape", "target", "N = 3", "1x2")
        case(_name, f"{f}({X}, ones(2, 3) / 2)", "symce:shape", "target", "3-by-3", "2x3")
        case(_name, f"{f}({X}, single({X}))", "symce:type", "target", "double", "single")
        case(_name, f"{f}(single({X}), {X})", "symce:type", "target", "single", "double")
        case(_name, f"{f}({X}, [true false true])", "symce:type", "target", "logical")
        case(_name, f"{f}({X}, 'abc')", "symce:type", "target", "char")
        for bad, shown, n in (
            ("[1 0 2]", "0", 2),
            ("[1 2 4]", "4", 3),
            ("[1.5 2 3]", "1.5", 1),
            ("[1 2 NaN]", "NaN", 3),
            ("[Inf 1 1]", "Inf", 1),
            ("[1 -1 1]", "-1", 2),
            ("int32([1 2 7])", "7", 3),
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
        case(_name, f"{f}({X}, [1 2 3], 'Weight', [1 1])", "symce:shape", "Weight", "K = 3", "1x2")
        case(_name, f"{f}({X}, [1 2 3], 'Weight', ones(3, 3))", "symce:shape", "Weight", "3x3")
        case(
            _name,
            f"{f}({X}, [1 2 3], 'Weight', [1 -1 1])",
            "symce:weight",
            "Weight",
            "non-negative",
            "[1 -1 1]",
        )
        case(
            _name,
            f"{f}({X}, [1 2 3], 'Weight', [1 NaN 1])",
            "symce:weight",
            "Weight",
            "NaN",
            "[1 NaN 1]",
        )
        for bad, shown in (
            ("-0.1", "-0.1"),
            ("1.5", "1.5"),
            ("NaN", "NaN"),
            ("[0.1 0.2]", "[0.1 0.2]"),
            ("'a'", "'a'"),
        ):
            case(
                _name,
                f"{f}({X}, [1 2 3], 'LabelSmoothing', {bad})",
                "symce:smoothing",
                "LabelSmoothing",
                "[0, 1]",
                shown,
            )
        for bad, shown in (("'avg'", "'avg'"), ("5", "5"), ("''", "''"), ("{'sum'}", "cell")):
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
        if fam == "ce_probs":
            _domain(
                _name,
                first,
                [[0.2, 0.3, 0.1], [0.5, 0.3, 0.6], [0.3, 0.4, 0.3]],
                "[1 2 3]",
                "int32([1 2 3])",
            )
            # the domain is checked last: a bad label (or option) is reported first
            case(
                _name,
                f"{f}([0.2 1.5 0.1; 0.5 0.3 0.6; 0.3 0.4 0.3], [1 2 4])",
                "symce:label",
                "got 4 for sample 3",
            )
            case(
                _name,
                f"{f}([0.2 1.5 0.1; 0.5 0.3 0.6; 0.3 0.4 0.3], [1 2 3], 'Reduction', 'avg')",
                "symce:reduction",
                "'avg'",
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
        case(_name, f"{f}({X}, [1 0 1])", "symce:shape", "target", "3x2", "1x3")
        case(_name, f"{f}({X}, single({Y}))", "symce:type", "target", "double", "single")
        case(_name, f"{f}({X}, 'ab')", "symce:type", "target", "char")
        case(_name, f"{f}({X}, {Y}, 'Weight', [1 2 3])", "symce:shape", "Weight", "3x2", "1x3")
        case(_name, f"{f}({X}, {Y}, 'Weight', ones(3, 2, 2))", "symce:shape", "Weight", "3x2x2")
        case(_name, f"{f}({X}, {Y}, 'Weight', 'a')", "symce:type", "Weight", "char")
        case(_name, f"{f}({X}, {Y}, 'Weight', [1; -2; 1])", "symce:weight", "Weight", "[1;-2;1]")
        case(_name, f"{f}({X}, {Y}, 'Weight', NaN)", "symce:weight", "Weight", "NaN")
        case(_name, f"{f}({X}, {Y}, 'Reduction', 'mean ')", "symce:reduction", "'mean '")
        case(_name, f"{f}({X}, {Y}, 'IgnoreIndex', 1)", "symce:badOption", "'IgnoreIndex'")
        case(_name, f"{f}({X}, {Y}, 'LabelSmoothing', 0.1)", "symce:badOption", "'LabelSmoothing'")
        case(_name, f"{f}({X}, {Y}, 'Weight')", "symce:badOption", "name-value")
        if _name.startswith("binary"):
            _domain(_name, first, [[0.2, 0.9], [0.6, 0.1], [0.5, 0.5]], Y, f"single({Y})")
            case(
                _name,
                f"{f}([0.2 1.5; 0.6 0.1; 0.5 0.5], {Y}, 'Weight', [1 -2])",
                "symce:weight",
                "Weight",
            )
            case(_name, f"{f}([0.2 1.5; 0.6 0.1; 0.5 0.5], [1 0 1])", "symce:shape", "target")
        if "pos_weight" in _kern.options:
            case(
                _name,
                f"{f}({X}, {Y}, 'PosWeight', [1 2])",
                "symce:shape",
                "PosWeight",
                "K = 3",
                "1x2",
            )
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
            case(
                _name, f"{f}({X}, {Y}, 'PosWeight', [1 NaN 1])", "symce:weight", "PosWeight", "NaN"
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
    # a few valid calls next to the bad ones: the same checks let good input through
    KEYS["ok ce"] = batch.call(
        f"symce_softmax_cross_entropy({Z}, [1 2 3], 'IgnoreIndex', 2, "
        "'Weight', [1 0 2], 'LabelSmoothing', 1, 'Reduction', 'none')"
    )
    KEYS["ok ignore"] = batch.call(f"symce_cross_entropy(symce_softmax({Z}), [1 -100 3])")
    KEYS["ok bce"] = batch.call("symce_binary_cross_entropy([0 1], [0 1], 'Weight', 0)")
    # probabilities exactly 0 and 1, and NaN, are in the domain
    KEYS["ok domain ce"] = batch.call("symce_cross_entropy_grad([0 NaN; 1 0.5; 0 0.5], [2 1])")
    KEYS["ok domain bce"] = batch.call(
        "symce_binary_cross_entropy_grad(single([0 1 NaN]), single([1 0 1]))"
    )
    return batch.run(octave)


def test_every_error_id_is_covered():
    ids = {c[3] for c in CASES}
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
        mine = {c[3] for c in CASES if c[1] == name}
        assert "symce:type" in mine, name
        if kern.family in ("rowwise", "ce_probs", "ce_logits"):
            assert {"symce:emptyClasses", "symce:shape"} <= mine, name
        if kern.options:
            assert {"symce:weight", "symce:reduction", "symce:badOption"} <= mine, name
        if "label_smoothing" in kern.options:
            assert {"symce:label", "symce:smoothing"} <= mine, name
        assert ("symce:domain" in mine) == (kern.inputs[0].name == "probs"), name


@pytest.mark.parametrize("cid", [c[0] for c in CASES])
def test_bad_input(results, cid):
    _, name, call, err, words = next(c for c in CASES if c[0] == cid)
    res = results[KEYS[cid]]
    assert res.error_id == err, f"{call}: expected {err}, got {res.error_id}: {res.error_message}"
    msg = res.error_message
    assert msg.startswith(f"symce_{name}: "), msg
    for word in words:
        assert word in msg, f"{call}: {word!r} not in the message {msg!r}"


def test_valid_input_passes_the_checks(results):
    for key in ("ok ce", "ok ignore", "ok bce", "ok domain ce", "ok domain bce"):
        results[KEYS[key]].check()
