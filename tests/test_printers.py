"""The printer tier: each language's SymPy printer on small expressions, as exact strings.

One table, one row per expression, one column per language (C per compute type: ``f32c`` is
double math for the float kernels, ``f64`` the double kernels, ``f80`` long double).  A printer
change shows here as a one-line diff before it shows as a regenerated kernel.  Every printer is
strict: a symbol it has no name for, or a function it cannot print, is an error, never a guess.
"""

from __future__ import annotations

import pytest
import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError

from symce.functions import clamp_min, log1p, mul0, sigmoid, softplus, two_sum_err
from symce.lang import c_backend, matlab_backend, numpy_backend

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
