"""The generated MATLAB kernels as MATLAB code (all calls of this module in one octave-cli).

* ``help`` output, and the examples in it (run, and compared with the values the help shows);
* single input: the sigmoid and the row kernels compute in double and round once (bit for bit);
* the printer (string asserts), valid names, and the sync of generated/matlab with the templates;
  the generated files are vectorised and portable (no Octave-only syntax).

The numeric checks (every kernel against the mpmath references, finite differences, the seed
values, the special values: huge logits, masked classes, probabilities 0 and 1, NaN, rows of -Inf
and +Inf, K = 1, N = 0, every sample ignored) are written once for every language in
tests/test_kernels.py, MATLAB's calls in one octave-cli there too.  The ULP bounds of the numerics
pass are in test_matlab_accuracy.py; the bad-input table in test_matlab_badinput.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

from symce import generate, kernels, options
from symce.functions import clamp_min, expm1, log1p, mul0, sigmoid, softplus, two_sum_err
from symce.lang import matlab_backend as mb

import support
from octave_runner import MATLAB_DIR, Batch

REGISTRY = kernels.registry()

# ----------------------------------------------------------------------------------------------
# The batch: every Octave call of this module, made once.
# ----------------------------------------------------------------------------------------------
HELP = {}  # help_<kernel> and example_<kernel> -> key
ROUND_ONCE = []  # (call, key with single input, key with the same input in double)


def _build(batch: Batch):
    for name in REGISTRY:
        HELP[f"help_{name}"] = batch.call(f"help('symce_{name}')")
        ex = mb.context(REGISTRY[name])["example"]
        call = ex["call"].split(" = ", 1)[1]
        HELP[f"example_{name}"] = batch.call(call, nout=len(ex["results"]))
    _build_round_once(batch)


def _build_round_once(batch):
    """Single in: the row computed in double and rounded once, bit for bit."""
    rng = np.random.default_rng(3)
    z32 = batch.arg(rng.normal(0, 8, (5, 4)).astype(np.float32))
    w32 = batch.arg(rng.uniform(0.2, 2, (5, 1)).astype(np.float32))
    soft32 = rng.random((5, 4)).astype(np.float32)
    t32 = batch.arg(soft32 / soft32.sum(0))
    ROUND_ONCE.clear()
    for call, nout in (
        ("symce_sigmoid(%s)", 1),
        ("symce_sigmoid_grad(%s)", 1),
        ("symce_softmax(%s)", 1),
        ("symce_log_softmax(%s)", 1),
        ("symce_logsumexp(%s)", 1),
        ("symce_softmax_jacobian(%s)", 1),
        ("symce_softmax_vjp(%s, %s)", 1),
        (
            "symce_softmax_cross_entropy_with_grad(%s, [1 2 5 3], 'Weight', %s, "
            "'LabelSmoothing', 0.1)",
            2,
        ),
        ("symce_softmax_cross_entropy_with_grad(%s, %s, 'Reduction', 'none')", 2),
        ("symce_softmax_cross_entropy(%s, [1 2 5 3], 'Reduction', 'sum')", 1),
        ("symce_softmax_cross_entropy_grad(%s, [1 2 5 3])", 1),
    ):
        args = (
            [z32]
            + ([t32] if "'none'" in call or "vjp" in call else [])
            + ([w32] if "Weight" in call else [])
        )
        single = batch.call(call % tuple(args), nout=nout)
        double = batch.call(call % tuple(f"double({a})" for a in args), nout=nout)
        ROUND_ONCE.append((call, single, double))


@pytest.fixture(scope="module")
def results():
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    HELP.clear()
    batch = Batch()
    _build(batch)
    return batch.run(octave)


def test_single_is_double_rounded_once(results):
    """Single in: the sigmoid and every row kernel compute in double and round once, so the result
    is single(the kernel on the same values in double), bit for bit."""
    assert len(ROUND_ONCE) == 11
    for call, k_single, k_double in ROUND_ONCE:
        single, double = results[k_single].check(), results[k_double].check()
        assert set(single.classes) == {"single"} and set(double.classes) == {"double"}, call
        for a, b in zip(single.values, double.values):
            np.testing.assert_array_equal(a, b.astype(np.float32), err_msg=call)


# ----------------------------------------------------------------------------------------------
# help text and its examples.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REGISTRY))
def test_help(results, name):
    kern = REGISTRY[name]
    text = results[HELP[f"help_{name}"]].value
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    h1 = next(ln for ln in lines if ln.startswith("SYMCE_"))
    assert h1 == f"SYMCE_{name.upper()}  {mb.context(kern)['h1']}"
    assert h1.split("  ", 1)[1].rstrip(".").lower().startswith(kern.summary.split()[0].lower())
    assert any(
        ln.startswith(f"{kern.outputs[0].name.upper()}") or ln.startswith("[") for ln in lines
    ), "no usage line"
    assert f"Formula: {kern.formula}" in text
    assert "Example:" in text and f"symce_{name}(" in text
    assert "See also" in text
    for opt in options.records(kern):
        assert f"'{opt.matlab}'" in text
    assert "Generated by symce" not in text and "Do not edit" not in text


@pytest.mark.parametrize("name", list(REGISTRY))
def test_help_example_runs_and_shows_its_result(results, name):
    ex = mb.context(REGISTRY[name])["example"]
    text = results[HELP[f"help_{name}"]].value
    assert ex["call"] in text
    res = results[HELP[f"example_{name}"]].check()
    for shown, got in zip(ex["results"], res.values):
        assert f"% {shown['name']} = {shown['value']}" in text
        numbers = [float(t) for t in re.findall(r"-?[0-9.]+(?:e[-+]?\d+)?", shown["value"])]
        # the help shows MATLAB rows in reading order (NumPy's C order of the same 2-D array), each
        # value rounded to 4 decimals (symce.examples), as the NumPy doctests print them
        np.testing.assert_array_equal(np.round(np.asarray(got, dtype=float).ravel(), 4), numbers)


# ----------------------------------------------------------------------------------------------
# The printer, and the generated files being in sync (no Octave needed).
# ----------------------------------------------------------------------------------------------
def test_printer_maps_symce_functions():
    x, lo = sp.Symbol("x"), sp.Symbol("lo")
    pr = mb.MatlabPrinter({"x": "xx", "lo": "lo"})
    assert pr.doprint(log1p(x)) == "log1p(xx)"
    assert pr.doprint(sp.exp(-x) * x) == "xx.*exp(-xx)"
    assert pr.doprint(clamp_min(x, -100)) == "clamp_min(xx, -100)"
    assert pr.doprint(mul0(x, sp.log(x))) == "mul0(xx, log(xx))"
    assert pr.doprint(softplus(-x)) == "softplus(-xx)"
    assert pr.doprint(sp.Max(x, 0)) == "clamp_min(xx, 0)"  # NaN-aware, never MATLAB's max
    assert pr.doprint(expm1(-x)) == "expm1(-xx)"
    assert pr.doprint(sigmoid(-x) * sigmoid(x)) == "sigmoid(-xx).*sigmoid(xx)"
    assert pr.doprint(two_sum_err(x, -lo)) == "two_sum_err(xx, -lo)"
    assert pr.helpers == {"clamp_min", "mul0", "softplus", "sigmoid", "two_sum_err"}
    bodies, calls = mb.helper_bodies()
    assert bodies["softplus"] == "log1p(exp(-abs(t))) + clamp_min(t, 0)"
    assert calls["softplus"] == ("clamp_min",)
    assert bodies["sigmoid"] == "exp(-clamp_min(-t, 0))./(1 + exp(-abs(t)))"
    assert calls["sigmoid"] == ("clamp_min",)
    # TwoSum keeps its grouping (SymPy would otherwise collapse err to a + b - s, i.e. 0)
    assert bodies["two_sum_err"] == ["s = a + b;", "t = -a + s;", "err = (a - (s - t)) + (b - t);"]
    assert calls["two_sum_err"] == ()


def test_printer_is_strict():
    x = sp.Symbol("x")
    pr = mb.MatlabPrinter({"x": "x"})
    with pytest.raises(Exception, match="erf"):
        pr.doprint(sp.erf(x))  # Octave has erf, but it is not on symce's list
    with pytest.raises(ValueError, match="no MATLAB name"):
        pr.doprint(sp.Symbol("q") + x)
    with pytest.raises(ValueError):
        pr.doprint(sp.Max(x, sp.Symbol("x2")))
    with pytest.raises(ValueError):
        mb.MatlabPrinter({"x": "end"})


def test_names_are_valid_identifiers():
    for fam, table in mb.NAMES.items():
        assert len(set(table.values())) == len(table), fam
        for code in table.values():
            assert mb.check_identifier(code) == code


def test_generated_matlab_in_sync():
    files = generate.render_all(("matlab",))
    fresh = {k.split("/", 1)[1]: v for k, v in files.items()}
    assert sorted(fresh) == [f"symce_{n}.m" for n in sorted(REGISTRY)]
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in MATLAB_DIR.glob("*.m")}
    stale = [n for n in fresh if on_disk.get(n) != fresh[n]] + sorted(set(on_disk) - set(fresh))
    assert not stale, f"generated/matlab out of date ({stale}): run `make derive` and commit"


def test_generated_files_are_vectorised_and_portable():
    for path in MATLAB_DIR.glob("*.m"):
        text = path.read_text(encoding="utf-8")
        body = text.split("\nend\n", 1)[0]
        assert not re.search(r"^\s*(for|while|parfor)\b", body, re.M), f"{path.name}: a loop"
        assert text.splitlines()[1].startswith(f"% {path.stem.upper()}  ")
        # every local function is called, every called helper is defined
        defined = re.findall(r"^function .*?(\w+)\(", text, re.M)
        assert defined[0] == path.stem
        for fn in defined[1:]:
            assert len(re.findall(rf"\b{fn}\(", text)) >= 2, f"{path.name}: {fn} is never called"
        for fn in ("softplus", "sigmoid", "two_sum_err", "clamp_min", "mul0") + tuple(
            mb.HELPER_CALLS
        ):
            if re.search(rf"\b{fn}\(", text):
                assert fn in defined, f"{path.name}: {fn} is called but not defined"
        # Octave-only syntax, or MATLAB features Octave 7 lacks
        for banned in (
            r"\bbsxfun\b",
            r"\binputParser\b",
            r"^\s*arguments\b",
            r"\bend(function|if)\b",
            r"(?<!s)printf\(",
            r"#",
            r"!=",
            r"\+\+|\+=",
            r'"',
        ):
            assert not re.search(banned, text, re.M), f"{path.name}: {banned!r} is not portable"
