"""`symce check`: each kernel against mpmath in every language present, as a user runs it."""

from __future__ import annotations

import sympy as sp

import symce
from symce import check, definitions

import support


def test_every_family_in_every_language():
    names = [
        "logsumexp",
        "softmax_jacobian",
        "softmax_vjp",
        "cross_entropy_grad",
        "softmax_cross_entropy_with_grad",
        "sigmoid_binary_cross_entropy_with_grad",
        "tanh_grad",
    ]
    rows = check.check(names)
    assert not [r for r in rows if not r[6]], check.table(rows)
    langs = {r[1] for r in rows}
    assert "numpy" in langs
    assert len(rows) == len(names) * len(check.DTYPES) * len(langs)


def test_a_cancelling_closed_form_fails_the_check():
    """swish' = -x sigma^2 + (x + 1) sigma, evaluated as written in double (MATLAB computes in
    double), cancels for large x: the check must say so (README: grad_stable= is the fix)."""
    support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    x = sp.Symbol("x", real=True)
    symce.define_activation("check_swish", x / (1 + sp.exp(-x)))
    try:
        rows = check.check(["check_swish_grad"], ("matlab",))
    finally:
        definitions.forget("check_swish")
    (bad,) = [r for r in rows if r[2] == "float64"]
    assert bad[6] is False and bad[3] > check.MAX_ULP, check.table(rows)
    assert "FAIL" in check.table(rows)
