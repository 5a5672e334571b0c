"""Stage 6 — emission: plain text for the terminal (``symce show``), expressions as people
type them, steps numbered.

A :class:`sympy.printing.str.StrPrinter` subclass: indexed quantities as ``p_j``, deltas as
``δ_ij`` (t first, then i, j, k, m, n, as in the documents), derivatives as ``∂/∂z_j (…)``, sums as
``Σ_{k=1}^{K} (…)``, and the model's Greek names.  Terms stay in the order a step wrote them.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.str import StrPrinter

from ..rewrite import excluded_sum

_NAMES = {
    "epsilon": "ε",
    "w_+": "w₊",
    "ytilde": "ỹ",
    "yhat": "ŷ",
    "theta": "θ",
    "sigma": "σ",
    "Srow": "S",
    "C_hi": "C_hi",
    "C_lo": "C_lo",
    "sigma_z12": "σ(z_1 − z_2)",
}
_DELTA_ORDER = ("t", "i", "j", "k", "m", "n")


class PlainPrinter(StrPrinter):
    """Plain-text steps."""

    printmethod = "_symce_plain"  # not "_sympystr": Indexed would print itself as z[j]

    def __init__(self):
        super().__init__({"order": "none"})

    def _print_Symbol(self, expr):
        return _NAMES.get(expr.name, expr.name)

    def _print_IndexedBase(self, expr):
        return _NAMES.get(expr.name, expr.name)

    def _print_Indexed(self, expr):
        base = self._print(expr.base)
        idx = [self._print(a) for a in expr.indices]
        return (
            base
            + "_"
            + ("".join(idx) if all(len(s) == 1 for s in idx) else "{" + ",".join(idx) + "}")
        )

    def _print_KroneckerDelta(self, expr):
        args = sorted(
            expr.args,
            key=lambda a: (_DELTA_ORDER.index(str(a)) if str(a) in _DELTA_ORDER else 99, str(a)),
        )
        return "δ_" + "".join(self._print(a) for a in args)

    def _print_Derivative(self, expr):
        ((var, count),) = expr.variable_count
        d = "d" if isinstance(var, sp.Symbol) else "∂"
        return f"{d}/{d}{self._print(var)}[{self._print(expr.expr)}]"

    def _print_Sum(self, expr):
        ((v, lo, hi),) = expr.limits
        rest, other = excluded_sum(expr)
        if rest is not None:
            return (
                f"Σ_{{{self._print(v)}={self._print(lo)}..{self._print(hi)}, "
                f"{self._print(v)}≠{self._print(other)}}}[{self._print(rest)}]"
            )
        bounds = f"{self._print(v)}={self._print(lo)}..{self._print(hi)}"
        return f"Σ_{{{bounds}}}[{self._print(expr.function)}]"

    def _print_Pow(self, expr, rational=False):
        if isinstance(expr.base, (sp.Sum, sp.Derivative)):
            if expr.exp == -1:
                return "1/" + self._print(expr.base)
            ex = self._print(expr.exp)
            return self._print(expr.base) + "^" + (ex if expr.exp.is_Integer else f"({ex})")
        return super()._print_Pow(expr, rational)

    def _print_log(self, expr):
        return "log(" + self._print(expr.args[0]) + ")"

    def _print_ImaginaryUnit(self, expr):  # pragma: no cover - never in a proof
        return "i"


_PRINTER = PlainPrinter()


def text(expr: sp.Basic) -> str:
    """One expression as plain text, with '−' for minus."""
    return _PRINTER.doprint(expr).replace("-", "−").replace("**", "^")
