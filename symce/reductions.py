"""Stage 5 — kernels (continued): the loss reductions and the gradient's scale, defined once.

A loss kernel's ``reduction`` option (:mod:`symce.options`) says what its loss output is, from
the per-row losses (``LOSSES``), their total (``TOTAL``) and the divisor of the kernel's variant
(``DIVISOR``: the summed weight of the kept labels, the number of rows or of elements, as
:data:`symce.describe.DIVISORS` says per variant):

* ``none``: the per-row losses as they are;
* ``sum``: the total;
* ``mean``: the total over ``mean_divisor(divisor)``;
* ``batchmean`` (a loss that declares it, :data:`ALIASES`): ``mean`` with the number of samples
  as the divisor (PyTorch's kl_div).

The gradient of the reduced loss is the per-row gradient (``GRAD``) times the reduction's scale
(:data:`SCALE`): ``1 / mean_divisor(divisor)`` for ``mean``, 1 for ``sum`` and ``none``.

``mean_divisor(d)`` is d, and NaN where d is 0: the mean over no weight (an empty batch, every
sample ignored, class weights that sum to 0 over the kept samples) is NaN as in PyTorch, also where
label smoothing makes the total non-zero (total / 0 would be infinite there).

Every language prints its runtime helpers from these tables with its own printer (C's
``symce_scale_<sfx>`` and ``symce_reduce_<sfx>``; NumPy's ``_reduce``, ``_reduce_rows``,
``_scale``, ``_grad_divisor`` and ``_mean_divisor``; MATLAB's ``apply_reduction``,
``apply_scale`` and ``mean_divisor``).  What a language adds is only how it computes the total
(C's float kernels and NumPy's block programs sum in double) and its types.
"""

from __future__ import annotations

import sympy as sp

__all__ = [
    "REDUCTIONS",
    "DEFAULT",
    "ALIASES",
    "DIVISOR_WORDS",
    "LOSSES",
    "TOTAL",
    "DIVISOR",
    "GRAD",
    "mean_divisor",
    "REDUCED",
    "SCALE",
    "scaled",
    "grad_divisor",
    "from_total",
    "groups",
    "cases",
    "expand",
]

REDUCTIONS = ("none", "mean", "sum")  # the values of the reduction option
DEFAULT = "mean"  # its default (symce.options)
# the reductions a defined loss may add (symce.define_loss's ``reductions``): each is another
# reduction with a divisor of its own, which the kernel sets before it reduces (so the helpers
# below, and every kernel that does not take it, know only REDUCTIONS)
ALIASES = {"batchmean": ("mean", "samples")}
# what the divisor of an alias is (NumPy's is the input's first extent, input.size(0) in
# PyTorch; C's the rows n; MATLAB's the extent of the last dimension, its samples: the arrays are
# NumPy's transposed)
DIVISOR_WORDS = {"samples": "the mean over the samples"}

LOSSES = sp.Symbol("losses", real=True)  # the per-row (per-element) losses
TOTAL = sp.Symbol("total", real=True)  # their sum
DIVISOR = sp.Symbol("divisor", nonnegative=True)  # what mean divides by (the variant's divisor)
GRAD = sp.Symbol("grad", real=True)  # the per-row gradient, before the reduction's scale


class mean_divisor(sp.Function):
    """The divisor of ``mean``: d, or NaN where d is 0 (the mean over no weight is NaN)."""

    nargs = 1

    def stable(self) -> sp.Expr:
        """The printed form: NaN where d == 0, else d (a NaN d stays NaN)."""
        d = self.args[0]
        return sp.Piecewise((sp.nan, sp.Eq(d, 0)), (d, True))


# the reduced loss, per reduction value
REDUCED = {
    "none": LOSSES,
    "mean": TOTAL / mean_divisor(DIVISOR),
    "sum": TOTAL,
}
# the gradient's scale, per reduction value: the gradient of the reduced loss is GRAD * scale
SCALE = {
    "none": sp.Integer(1),
    "mean": 1 / mean_divisor(DIVISOR),
    "sum": sp.Integer(1),
}


def scaled(grad: sp.Expr = GRAD) -> dict:
    """The gradient of the reduced loss, per reduction value: ``grad`` times the scale."""
    return {r: grad * s for r, s in SCALE.items()}


def grad_divisor() -> dict:
    """What the gradient is divided by (1 / scale), per reduction value: for the programs that
    fold the division into their own expressions."""
    return {r: 1 / s for r, s in SCALE.items()}


def from_total() -> dict:
    """The reductions whose loss is computed from the total (every one but ``none``)."""
    return {r: e for r, e in REDUCED.items() if not e.has(LOSSES)}


def groups(table: dict) -> list:
    """A table (reduction value -> expression) as ``[(values, expr)]``: the values with the same
    expression together, in the table's order."""
    out: dict = {}
    for value, expr in table.items():
        out.setdefault(sp.sympify(expr), []).append(value)
    return [(tuple(values), expr) for expr, values in out.items()]


def cases(table: dict) -> tuple[list, sp.Expr]:
    """A table (reduction value -> expression) as branches to print: ``[(values, expr)]`` to test
    in order, then the default expression for every other value.  Values with the same expression
    are one branch; the default is the expression most values share (on a tie, that of
    :data:`DEFAULT`), so ``SCALE`` tests only ``mean``."""
    grouped = groups(table)
    default = max(grouped, key=lambda g: (len(g[0]), DEFAULT in g[0]))[1]
    return [(values, expr) for values, expr in grouped if expr != default], default


def expand(expr: sp.Expr) -> sp.Expr:
    """``expr`` with ``mean_divisor`` written out (its stable form), the branches outermost: for
    a language that prints the test inline (C's ternary)."""
    expr = sp.sympify(expr).replace(
        lambda e: isinstance(e, mean_divisor), lambda e: mean_divisor(*e.args).stable()
    )
    return sp.piecewise_fold(expr)
