"""Stage 1 — model: the functions the stable forms use beyond SymPy's own, and what each means exactly.

Each is a SymPy ``Function`` with an exact mathematical meaning (``rewrite(sp.log)`` /
:func:`to_plain` gives it in elementary functions, for the symbolic and mpmath checks) and a
printer mapping in every language (:mod:`symce.printers`).  The printers never guess: a function
with no mapping is an error (``strict`` printing).

* ``softplus(t) = log(1 + e^t)``, printed in its overflow-free form ``max(t, 0) + log1p(e^{-|t|})``.
* ``clamp_min(x, lo) = max(x, lo)`` that **propagates NaN** (C's ``fmax`` and MATLAB's ``max``
  drop it); the BCE log clamp of PyTorch uses it, so NaN in gives NaN out.
* ``mul0(a, b) = a * b`` except that it is exactly 0 when ``a == 0`` and ``b`` is not NaN: a
  target entry of 0 times a masked class's log-probability of ``-inf`` contributes nothing,
  instead of NaN, and a NaN is never dropped.
* ``select(s, a, b)`` — ``a`` where the switch ``s`` (a scalar option: 1 on, 0 off) is on, else
  ``b``; each language tests the switch once per call and evaluates only the branch it takes
  (the other may be NaN or infinite there: log of a negative target, exp overflowing).
  Mathematically, over s in {0, 1}, it is ``s a + (1 - s) b``: what the proofs differentiate.
  The condition may also be a comparison of options with numbers (``alpha >= 0``: torchvision's
  focal loss weights by alpha unless it is negative); its 0/1 value is the Iverson bracket
  ``iverson(alpha >= 0)``, a constant of the derivation like a switch.
* ``sigmoid(t) = 1 / (1 + e^{-t})``, printed in the branch-free form
  ``exp(min(t, 0)) / (1 + exp(-|t|))``: no overflow, and accurate to about an ULP for every t (the
  form ``exp(-softplus(-t))`` loses ~|t| ULP to the rounding of softplus).
* ``two_sum_err(a, b)`` — the rounding error of the floating-point sum ``fl(a + b)``, exactly
  (Knuth's TwoSum: ``s = a + b; t = s - a; (a - (s - t)) + (b - t)``), and 0 when the sum is not
  finite.  Mathematically it is 0; it lets a kernel carry ``z - shift`` to twice the working
  precision, so ``exp(z - shift)`` is accurate to an ULP even when ``z - shift`` is rounded.

Each function's ``stable()`` is the one definition every language's runtime helper is printed
from (a C compute type may override it for speed, e.g. a vectorisable sigmoid).  The predicates
``isnan(v)`` and ``iszero(v)`` (either sign of 0, never NaN) are what those definitions test; C
evaluates them from the bit pattern, so -ffast-math cannot assume them away.
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.logic.boolalg import BooleanFunction

__all__ = [
    "softplus",
    "clamp_min",
    "mul0",
    "sigmoid",
    "select",
    "iverson",
    "two_sum_err",
    "isnan",
    "iszero",
    "log1p",
    "expm1",
    "to_plain",
]


class isnan(BooleanFunction):
    """v is NaN."""

    nargs = 1


class iszero(BooleanFunction):
    """v == 0, either sign; never true for NaN."""

    nargs = 1


class softplus(sp.Function):
    """softplus(t) = log(1 + exp(t))."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        """d softplus(t)/dt = 1 / (1 + exp(-t))."""
        t = self.args[0]
        return 1 / (1 + sp.exp(-t))

    def _eval_rewrite_as_log(self, t, **kwargs):
        return sp.log(1 + sp.exp(t))

    def stable(self) -> sp.Expr:
        """The overflow-free form that is printed: max(t, 0) + log1p(exp(-|t|))."""
        t = self.args[0]
        return sp.Max(t, 0) + log1p(sp.exp(-sp.Abs(t)))


class clamp_min(sp.Function):
    """max(x, lo), propagating NaN in x."""

    nargs = 2

    def _eval_rewrite_as_Max(self, x, lo, **kwargs):
        return sp.Max(x, lo)

    def stable(self) -> sp.Expr:
        """The printed form: lo where x < lo and x is not NaN, else x."""
        x, lo = self.args
        return sp.Piecewise((lo, sp.And(sp.StrictLessThan(x, lo), sp.Not(isnan(x)))), (x, True))


class mul0(sp.Function):
    """a * b, and exactly 0 where a == 0 and b is not NaN (even if b is infinite)."""

    nargs = 2

    def _eval_rewrite_as_Mul(self, a, b, **kwargs):
        return a * b

    def stable(self) -> sp.Expr:
        """The printed form: 0 where a is 0 and b is not NaN, else a * b."""
        a, b = self.args
        return sp.Piecewise((0, sp.And(iszero(a), sp.Not(isnan(b)))), (a * b, True))


class select(sp.Function):
    """a where the switch s is on (1), else b (s is 0): a scalar option picks one form.  s may
    also be a comparison of options (``alpha >= 0``): a where it holds."""

    nargs = 3

    @classmethod
    def eval(cls, s: sp.Basic, a: sp.Expr, b: sp.Expr) -> sp.Expr | None:
        """The form a number or a decided comparison picks (1 or true: a, 0 or false: b), or a
        where both forms are one; else None."""
        if s in (sp.true, sp.false):
            return a if s == sp.true else b
        if s.is_number:
            if s not in (0, 1):
                raise ValueError(f"select: the switch is 0 or 1, got {s}")
            return a if s == 1 else b
        if a == b:
            return a
        return None

    def _eval_derivative(self, x):
        s, a, b = self.args
        return select(s, a.diff(x), b.diff(x))

    def _latex(self, printer) -> str:
        s, a, b = (printer._print(arg) for arg in self.args)
        return rf"\begin{{cases}} {a} & \text{{if }} {s} \\ {b} & \text{{otherwise}} \end{{cases}}"

    def _eval_rewrite_as_Add(self, s, a, b, **kwargs):
        return iverson(s) * a + (1 - iverson(s)) * b

    def stable(self) -> sp.Expr:
        """The printed form: a where s is not 0, else b (each language tests s once per call)."""
        s, a, b = self.args
        return sp.Piecewise((a, sp.Ne(s, 0)), (b, True))


class iverson(sp.Function):
    """[c]: 1 where the comparison c of options holds, else 0 (a switch s is its own bracket).  A
    constant of the derivation: its derivative with respect to an input is 0."""

    nargs = 1

    @classmethod
    def eval(cls, c: sp.Basic) -> sp.Expr | None:
        """1 or 0 for a decided condition; a switch's symbol (already 0 or 1) as itself."""
        if c in (sp.true, sp.false):
            return sp.S.One if c == sp.true else sp.S.Zero
        if isinstance(c, sp.Symbol) or c.is_number:  # a switch: 0 or 1 already
            return c
        return None

    def _eval_derivative(self, x):
        return sp.S.Zero

    def _eval_is_real(self):
        return True

    def _latex(self, printer) -> str:
        return r"\left[" + printer._print(self.args[0]) + r"\right]"


def conditions(expr: sp.Basic) -> list:
    """The conditions of ``expr``'s selects that are comparisons (not a switch's symbol), and its
    Iverson brackets' comparisons, in a fixed order."""
    found = {e.args[0] for e in sp.preorder_traversal(expr) if isinstance(e, (select, iverson))}
    return sorted((c for c in found if isinstance(c, sp.core.relational.Relational)), key=sp.srepr)


class sigmoid(sp.Function):
    """sigma(t) = 1 / (1 + exp(-t))."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        """d sigma(t)/dt = sigma(t) sigma(-t)."""
        t = self.args[0]
        return sigmoid(t) * sigmoid(-t)

    def _eval_rewrite_as_exp(self, t, **kwargs):
        return 1 / (1 + sp.exp(-t))

    def stable(self) -> sp.Expr:
        """The printed form: exp(min(t, 0)) / (1 + exp(-|t|)), min written NaN-propagating."""
        t = self.args[0]
        return sp.exp(-clamp_min(-t, 0)) / (1 + sp.exp(-sp.Abs(t)))


class two_sum_err(sp.Function):
    """The exact rounding error of fl(a + b) (0 if the sum is not finite); mathematically 0."""

    nargs = 2

    def stable(self) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
        """TwoSum as assignments, in order: s = a + b, t = s - a, err = (a - (s - t)) + (b - t).

        Printers emit these in a helper (returning 0 when s is not finite: inf - inf is NaN).
        """
        a, b = self.args
        s, t = sp.symbols("s t", real=True)
        with sp.evaluate(False):  # SymPy would simplify the error term to a + b - s, i.e. 0
            err = sp.Add(sp.Add(a, -sp.Add(s, -t)), sp.Add(b, -t))
            steps = ((s, sp.Add(a, b)), (t, sp.Add(s, -a)), (sp.Symbol("err", real=True), err))
        # every addition has two operands, so a printer's term order (it may sort them) cannot
        # change the rounding: only the grouping matters, and it is printed
        for _, rhs in steps:
            for node in sp.preorder_traversal(rhs):
                if isinstance(node, sp.Add) and len(node.args) != 2:
                    raise ValueError(f"two_sum_err: {rhs} adds {len(node.args)} terms at once")
        return steps


def to_plain(expr: sp.Expr) -> sp.Expr:
    """Replace symce's functions by elementary SymPy (for symbolic and mpmath evaluation)."""
    return (
        expr.replace(lambda e: isinstance(e, softplus), lambda e: sp.log(1 + sp.exp(e.args[0])))
        .replace(lambda e: isinstance(e, clamp_min), lambda e: sp.Max(*e.args))
        .replace(lambda e: isinstance(e, mul0), lambda e: e.args[0] * e.args[1])
        .replace(lambda e: isinstance(e, log1p), lambda e: sp.log(1 + e.args[0]))
        .replace(lambda e: isinstance(e, expm1), lambda e: sp.exp(e.args[0]) - 1)
        .replace(lambda e: isinstance(e, sigmoid), lambda e: 1 / (1 + sp.exp(-e.args[0])))
        .replace(lambda e: isinstance(e, two_sum_err), lambda e: sp.S.Zero)
        .replace(
            lambda e: isinstance(e, select),
            lambda e: iverson(e.args[0]) * e.args[1] + (1 - iverson(e.args[0])) * e.args[2],
        )
    )
