"""`symce check`: each kernel against mpmath in every language present, as a user runs it."""

from __future__ import annotations

import sympy as sp

import symce
from symce import check, definitions

import support


def test_every_family_in_every_language():
    # each output layout once: a value per row, a K x K matrix per row, a reduced loss with a
    # gradient (labels), an element-wise loss (its targets in [0, 1]), an element-wise kernel
    names = [
        "logsumexp",
        "softmax_jacobian",
        "softmax_cross_entropy_with_grad",
        "binary_cross_entropy",
        "tanh_grad",
    ]
    rows = check.check(names)
    assert not [r for r in rows if not r[6]], check.table(rows)
    langs = {r[1] for r in rows}
    assert "numpy" in langs
    assert len(rows) == len(names) * len(check.DTYPES) * len(langs)


def test_a_cancelling_closed_form_fails_the_check():
    """d/dx softplus(2x)/2 = sigma(2x); the engine writes it in tanh's output, (tanh + 1)/2, which
    cancels for x -> -inf in every precision: the check must say so (grad_stable= is the fix)."""
    x = sp.Symbol("x", real=True)
    symce.define_activation(
        "check_half", sp.log(1 + sp.exp(2 * x)) / 2, stable=symce.softplus(2 * x) / 2
    )
    try:
        rows = check.check(["check_half_grad"], ("numpy",))
        fixed = None
        definitions.forget("check_half")
        symce.define_activation(
            "check_half",
            sp.log(1 + sp.exp(2 * x)) / 2,
            stable=symce.softplus(2 * x) / 2,
            grad_stable=symce.sigmoid(2 * x),
        )
        fixed = check.check(["check_half_grad"], ("numpy",))
    finally:
        definitions.forget("check_half")
    assert all(r[6] is False and r[3] > 1e6 for r in rows), check.table(rows)
    assert "FAIL" in check.table(rows)
    assert all(r[6] for r in fixed), check.table(fixed)


def test_swish_is_evaluated_without_cancellation():
    """swish' = -x sigma^2 + (x + 1) sigma is printed as sigma(x)(1 + x sigma(-x)) (symce's
    rewrites, no grad_stable): within the bound in MATLAB's double too."""
    support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    x = sp.Symbol("x", real=True)
    symce.define_activation("check_swish", x / (1 + sp.exp(-x)))
    try:
        from symce import kernels

        slot = kernels.registry()["check_swish_grad"].slots["out"]
        rows = check.check(["check_swish_grad"], ("matlab",))  # double alone: the tight one
    finally:
        definitions.forget("check_swish")
    assert symce.sigmoid(-kernels.x) in slot.atoms(symce.sigmoid)
    assert rows and all(r[6] for r in rows), check.table(rows)
