"""The printer tier: each language's SymPy printer on small expressions, as exact strings.

One table, one row per expression, one column per language (C per compute type: ``f32c`` is
double math for the float kernels, ``f64`` the double kernels, ``f80`` long double).  A printer
change shows here as a one-line diff before it shows as a regenerated kernel.  Every printer is
strict: a symbol it has no name for, or a function it cannot print, is an error, never a guess.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError

from symce import options, reductions
from symce.functions import clamp_min, log1p, mul0, sigmoid, softplus, two_sum_err
from symce.lang import c_backend, matlab_backend, numpy_backend
from symce.lang.base import GENERATED

x, y = sp.Symbol("x", real=True), sp.Symbol("y", real=True)
NAMES = {"x": "x", "y": "y"}

PRINTERS = {
    "c-f32c": lambda: c_backend.CPrinter("f32c", NAMES),
    "c-f64": lambda: c_backend.CPrinter("f64", NAMES),
    "c-f80": lambda: c_backend.CPrinter("f80", NAMES),
    "numpy": lambda: numpy_backend.printer("elementwise"),  # binds x
    "matlab": lambda: matlab_backend.MatlabPrinter(NAMES),
}

# expression -> {language: printed}; a language missing from a row does not print it here (the
# NumPy elementwise printer binds x only)
TABLE = [
    (
        sp.exp(x),
        {
            "c-f32c": "symce_exp_for_f32(x)",
            "c-f64": "symce_exp_for_f64(x)",
            "c-f80": "expl(x)",
            "numpy": "np.exp(x)",
            "matlab": "exp(x)",
        },
    ),
    (  # SymPy proves the argument <= 0: the exponential without an overflow test
        sp.exp(-sp.Abs(x)),
        {
            "c-f32c": "symce_exp_neg_for_f32(-fabs(x))",
            "c-f64": "symce_exp_neg_for_f64(-fabs(x))",
            "c-f80": "expl(-fabsl(x))",
            "numpy": "np.exp(-np.abs(x))",
            "matlab": "exp(-abs(x))",
        },
    ),
    (
        log1p(x),
        {
            "c-f32c": "log1p(x)",
            "c-f64": "log1p(x)",
            "c-f80": "log1pl(x)",
            "numpy": "np.log1p(x)",
            "matlab": "log1p(x)",
        },
    ),
    (
        sigmoid(x),
        {
            "c-f32c": "symce_sigmoid_for_f32(x)",
            "c-f64": "symce_sigmoid_for_f64(x)",
            "c-f80": "symce_sigmoid_ld(x)",
            "numpy": "_sigmoid(x)",
            "matlab": "sigmoid(x)",
        },
    ),
    (
        softplus(x),
        {
            "c-f32c": "symce_softplus_for_f32(x)",
            "c-f64": "symce_softplus_for_f64(x)",
            "c-f80": "symce_softplus_ld(x)",
            "numpy": "_softplus(x)",
            "matlab": "softplus(x)",
        },
    ),
    (  # max(x, 0) that keeps NaN: never C's fmax, which drops it
        clamp_min(x, 0),
        {
            "c-f32c": "symce_clamp_min_for_f32(x, 0)",
            "c-f64": "symce_clamp_min_for_f64(x, 0)",
            "c-f80": "symce_clamp_min_ld(x, 0)",
            "numpy": "np.maximum(x, 0)",
            "matlab": "clamp_min(x, 0)",
        },
    ),
    (
        mul0(y, sp.log(x)),
        {
            "c-f32c": "symce_mul0_for_f32(y, log(x))",
            "c-f64": "symce_mul0_for_f64(y, log(x))",
            "c-f80": "symce_mul0_ld(y, logl(x))",
            "matlab": "mul0(y, log(x))",
        },
    ),
    (
        two_sum_err(x, y),
        {
            "c-f32c": "symce_two_sum_err_for_f32(x, y)",
            "c-f64": "symce_two_sum_err_for_f64(x, y)",
            "c-f80": "symce_two_sum_err_ld(x, y)",
            "matlab": "two_sum_err(x, y)",
        },
    ),
    (  # the divisor of 'mean' (NaN where it is 0): C writes its stable form inline
        reductions.mean_divisor(x),
        {
            "numpy": "_mean_divisor(x)",
            "matlab": "mean_divisor(x)",
        },
    ),
    (  # a test, not a branch, where the compute type vectorises (from the bits, in symce.c)
        sp.Piecewise((0, sp.Eq(x, 0)), (y, True)),
        {
            "c-f32c": "symce_select(x == 0, 0, y)",
            "c-f64": "symce_select(x == 0, 0, y)",
            "c-f80": "(x == 0) ? (0) : (y)",
        },
    ),
    (
        x / 3,
        {
            "c-f32c": "(1.0/3.0)*x",
            "c-f64": "(1.0/3.0)*x",
            "c-f80": "(1.0L/3.0L)*x",
            "numpy": "(1/3)*x",
            "matlab": "x/3",
        },
    ),
]

CASES = [
    pytest.param(lang, expr, printed, id=f"{lang}-{sp.srepr(expr)[:40]}")
    for expr, row in TABLE
    for lang, printed in row.items()
]


@pytest.mark.parametrize("lang, expr, printed", CASES)
def test_printed(lang, expr, printed):
    assert PRINTERS[lang]().doprint(expr) == printed


@pytest.mark.parametrize("lang", list(PRINTERS))
def test_unknown_symbol_is_an_error(lang):
    with pytest.raises(ValueError, match="'q'"):
        PRINTERS[lang]().doprint(sp.Symbol("q") + 1)


@pytest.mark.parametrize("lang", list(PRINTERS))
def test_unknown_function_is_an_error(lang):
    with pytest.raises(PrintMethodNotImplementedError):
        PRINTERS[lang]().doprint(sp.Function("frob")(x))


def test_every_language_is_in_the_table():
    langs = {lang for _, row in TABLE for lang in row}
    assert langs == set(PRINTERS)


# ----------------------------------------------------------------------------------------------
# The reductions (symce.reductions): each language's helpers are printed from the one table
# ----------------------------------------------------------------------------------------------
def _c_scale():
    return c_backend.reduction_lines(reductions.SCALE, "f64")


def _numpy_helpers():
    return {h["name"]: h["body"] for h in numpy_backend.reduction_helpers()}


def _matlab_bodies():
    return matlab_backend.helper_bodies()[0]


def test_c_scale_divides_by_the_divisor_only_for_mean():
    assert _c_scale() == [
        "if (reduction == SYMCE_REDUCTION_MEAN) return ((divisor == 0) ? (double)NAN : 1.0/divisor);",
        "return 1;",
    ]


def test_c_reduce_is_the_total_or_the_mean_rounded_once():
    narrow = lambda code: f"(float){code}"
    assert c_backend.reduction_lines(reductions.from_total(), "f32c", narrow) == [
        "if (reduction == SYMCE_REDUCTION_SUM) return (float)total;",
        "return (float)((divisor == 0) ? (double)NAN : total/divisor);",
    ]


def test_numpy_reduction_helpers():
    helpers = _numpy_helpers()
    # the NaN has the divisor's dtype: a float32 loss stays float32
    assert helpers["_mean_divisor"] == [
        "return divisor.dtype.type(np.nan) if divisor == 0 else divisor"
    ]
    assert helpers["_reduce"] == [
        'if reduction == "none":',
        "    return losses[()]",
        "total = np.sum(losses)",
        'if reduction == "sum":',
        "    return total",
        "return total/_mean_divisor(divisor)",
    ]
    assert helpers["_scale"] == [
        'if reduction == "mean":',
        "    return grad/_mean_divisor(divisor)",
        "return grad",
    ]
    assert helpers["_grad_divisor"][-1] == "return np.float64(1)"


def test_matlab_reduction_helpers():
    bodies = _matlab_bodies()
    assert bodies["apply_scale"] == [
        "if strcmp(reduction, 'mean')",
        "    grad = grad./mean_divisor(divisor);",
        "end",
    ]
    assert bodies["apply_reduction"][-5:] == [
        "if strcmp(reduction, 'sum')",
        "    out = total;",
        "else",
        "    out = total./mean_divisor(divisor);",
        "end",
    ]
    assert bodies["mean_divisor"] == [
        "out = divisor;",
        "out(divisor == 0 & true(size(out))) = NaN;",
    ]


def test_every_language_prints_the_one_table(monkeypatch):
    """Change the definition (scale 'sum' as 'mean', halve the mean): every language's helpers
    follow, so none keeps a reduction of its own."""
    halved = reductions.TOTAL / (2 * reductions.mean_divisor(reductions.DIVISOR))
    monkeypatch.setitem(reductions.SCALE, "sum", reductions.SCALE["mean"])
    monkeypatch.setitem(reductions.REDUCED, "mean", halved)
    # two values now share the scale 1/divisor: it is the default, 'none' is tested
    assert _c_scale() == [
        "if (reduction == SYMCE_REDUCTION_NONE) return 1;",
        "return ((divisor == 0) ? (double)NAN : 1.0/divisor);",
    ]
    assert _numpy_helpers()["_scale"] == [
        'if reduction == "none":',
        "    return grad",
        "return grad/_mean_divisor(divisor)",
    ]
    assert _numpy_helpers()["_grad_divisor"] == [
        'if reduction == "none":',
        "    return np.float64(1)",
        "return _mean_divisor(divisor)",
    ]
    assert _matlab_bodies()["apply_scale"] == [
        "if any(strcmp(reduction, {'mean', 'sum'}))",
        "    grad = grad./mean_divisor(divisor);",
        "end",
    ]
    c_mean = c_backend.reduction_lines(reductions.from_total(), "f64")[-1]
    assert "2" in c_mean and "total" in c_mean, c_mean
    assert _numpy_helpers()["_reduce"][-1] == "return (1/2)*total/_mean_divisor(divisor)"
    assert _matlab_bodies()["apply_reduction"][-2] == "    out = total./(2*mean_divisor(divisor));"


def test_the_generated_numpy_helpers_evaluate_the_definition():
    """The generated module's reductions agree with the SymPy table evaluated exactly, the
    mean over a divisor of 0 is NaN, and a float32 result stays float32."""
    mod = numpy_backend.load_generated()
    losses = np.array([0.5, 1.25, 2.0], np.float32)
    total = float(np.sum(losses))
    for divisor in (np.float32(4), np.float32(0)):
        for value in reductions.REDUCTIONS:
            got = mod._reduce(losses, value, divisor)
            want = reductions.REDUCED[value].subs({reductions.TOTAL: total})
            want = reductions.expand(want.subs(reductions.DIVISOR, float(divisor)))
            if value == "none":
                assert got is not losses and np.array_equal(got, losses)
                continue
            assert got.dtype == np.float32
            if want is sp.nan:
                assert np.isnan(got)
            else:
                assert got == np.float32(float(want))
            scale = reductions.expand(reductions.SCALE[value].subs(reductions.DIVISOR, divisor))
            grad = mod._scale(losses, value, divisor)
            assert grad.dtype == np.float32
            if scale is sp.nan:
                assert np.isnan(grad).all()
            else:
                assert np.array_equal(grad, losses / np.float32(1 / float(scale)))


def test_the_reduction_values_are_the_options():
    """symce.reductions' values and default are the reduction option's (symce.options), in the
    order of C's symce_reduction constants."""
    assert options.OPTIONS["reduction"].python_default == f'"{reductions.DEFAULT}"'
    assert tuple(reductions.REDUCED) == tuple(reductions.SCALE) == reductions.REDUCTIONS
    header = (GENERATED / "c" / "symce.h").read_text(encoding="utf-8")
    for number, value in enumerate(reductions.REDUCTIONS):
        assert f"{c_backend.reduction_enum(value)} = {number}" in header
