"""Stage 2 — derivation: differentiate a definition, then simplify to a closed form.

Each :class:`Result` is *found*, not typed in: the engine takes the raw SymPy derivative of a
definition from :mod:`symce.model`, collapses the general-K sums (:mod:`symce.rewrite`), rewrites
the exponentials into the function's own output symbols (e^{z_a} = p_a S, e^{-theta} =
(1 - sigma)/sigma) and factors.  Where a result needs an assumption (sum_k y_k = 1), the engine
records the form before and after it and the assumption's wording.

The kernel registry (:mod:`symce.kernels`) and the proofs (:mod:`symce.proofs`) take their closed
forms from :func:`results`; the tests compare each one with the raw derivative, symbolically and at
high precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import sympy as sp

from . import model as m
from .rewrite import canonical_sums, collapse_sums, in_output_symbols, restore_sums, split_logs

SUM_Y = sp.Sum(m.y[m.k], (m.k, 1, m.K))
SUM_Y_BATCH = sp.Sum(m.Y[m.m, m.k], (m.k, 1, m.K))


@dataclass(frozen=True)
class Assumption:
    """A substitution the engine may apply, with the words the proofs use for it."""

    name: str
    replace: tuple  # ((expression, value), ...)
    text: str  # LaTeX, e.g. r"\sum_k y_k = 1"
    words: str = ""  # plain text, for `symce show`


TARGET_IS_DISTRIBUTION = Assumption(
    "target_sums_to_one",
    ((SUM_Y, 1),),
    r"\sum_{k=1}^{K} y_k = 1 \text{ (} y \text{ is a one-hot or probability vector)}",
    "Σ_k y_k = 1 (y is a one-hot or probability vector)",
)
BATCH_TARGET_IS_DISTRIBUTION = Assumption(
    "batch_target_sums_to_one",
    ((SUM_Y_BATCH, 1),),
    r"\sum_{k=1}^{K} Y_{m,k} = 1 \text{ for every sample } m",
    "Σ_k Y_mk = 1 for every sample m",
)


@dataclass(frozen=True)
class Spec:
    """What to derive: d(definition)/d(wrt), and which assumption the simple form may use."""

    name: str
    title: str
    definition: sp.Expr
    wrt: sp.Expr
    symbol: str  # LaTeX of the derivative, e.g. \partial p_i / \partial z_j
    assumption: Assumption | None = None


@dataclass(frozen=True)
class Result:
    """A derived closed form."""

    spec: Spec
    raw: sp.Expr  # sp.diff(definition, wrt), untouched
    general: sp.Expr  # closed form without the assumption
    closed: sp.Expr  # closed form (with the assumption when there is one)
    assumptions: tuple = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """The spec's name (the derivation's)."""
        return self.spec.name


def _apply(expr, assumption: Assumption | None):
    if assumption is None:
        return expr
    out, sums = canonical_sums(collapse_sums(expr))
    for target, value in assumption.replace:
        t_c, t_sums = canonical_sums(target)
        # find the canonical symbol of `target` in this expression's table
        key = next(iter(t_sums.values()))
        hit = [sym for sym, total in sums.items() if total == key]
        for sym in hit:
            out = out.xreplace({sym: value})
            del sums[sym]
    return sp.factor(sp.expand(restore_sums(out, sums)))


def closed_form(expr: sp.Expr) -> sp.Expr:
    """Raw derivative -> closed form in output symbols."""
    expr = collapse_sums(split_logs(expr))
    return in_output_symbols(expr)


SPECS = (
    Spec(
        "sigmoid_grad",
        "Derivative of the sigmoid",
        m.sigmoid(),
        m.theta,
        r"\frac{d\sigma}{d\theta}",
    ),
    Spec(
        "softmax_jacobian",
        "Jacobian of the softmax",
        m.softmax(m.i),
        m.z[m.j],
        r"\frac{\partial p_i}{\partial z_j}",
    ),
    Spec(
        "log_softmax_jacobian",
        "Jacobian of the log-softmax",
        m.log_softmax(m.i),
        m.z[m.j],
        r"\frac{\partial \log p_i}{\partial z_j}",
    ),
    Spec(
        "logsumexp_grad",
        "Gradient of log-sum-exp",
        m.logsumexp(),
        m.z[m.j],
        r"\frac{\partial}{\partial z_j} \log \sum_k e^{z_k}",
    ),
    Spec(
        "cross_entropy_grad",
        "Cross-entropy with respect to the probabilities",
        m.cross_entropy(),
        m.p[m.j],
        r"\frac{\partial L}{\partial p_j}",
    ),
    Spec(
        "cross_entropy_label_grad",
        "Integer-label cross-entropy with respect to the logits",
        m.cross_entropy_label(m.t),
        m.z[m.j],
        r"\frac{\partial (-\log p_t)}{\partial z_j}",
    ),
    Spec(
        "softmax_cross_entropy_grad",
        "Cross-entropy of the softmax with respect to the logits",
        m.softmax_cross_entropy(),
        m.z[m.j],
        r"\frac{\partial L}{\partial z_j}",
        TARGET_IS_DISTRIBUTION,
    ),
    Spec(
        "binary_cross_entropy_grad",
        "Binary cross-entropy with respect to the probability",
        m.binary_cross_entropy(),
        m.yhat,
        r"\frac{\partial L}{\partial \hat{y}}",
    ),
    Spec(
        "weighted_binary_cross_entropy_grad",
        "pos_weight binary cross-entropy, probability",
        m.weighted_binary_cross_entropy(),
        m.yhat,
        r"\frac{\partial L}{\partial \hat{y}}",
    ),
    Spec(
        "sigmoid_binary_cross_entropy_grad",
        "Binary cross-entropy of the sigmoid, logit",
        m.sigmoid_binary_cross_entropy(),
        m.theta,
        r"\frac{\partial L}{\partial \theta}",
    ),
    Spec(
        "sigmoid_weighted_binary_cross_entropy_grad",
        "pos_weight binary cross-entropy of the sigmoid, logit",
        m.sigmoid_weighted_binary_cross_entropy(),
        m.theta,
        r"\frac{\partial L}{\partial \theta}",
    ),
    Spec(
        "batch_softmax_cross_entropy_grad",
        "Batch-mean softmax cross-entropy, logits",
        m.batch_softmax_cross_entropy(),
        m.Z[m.m, m.j],
        r"\frac{\partial L}{\partial Z_{m,j}}",
        BATCH_TARGET_IS_DISTRIBUTION,
    ),
)


def _derive(spec: Spec) -> Result:
    raw = sp.diff(spec.definition, spec.wrt)
    general = closed_form(raw)
    if spec.assumption is None:
        return Result(spec, raw, general, general)
    closed = _apply(general, spec.assumption)
    if closed == general:
        raise AssertionError(f"{spec.name}: assumption {spec.assumption.name} did not apply")
    return Result(spec, raw, general, closed, (spec.assumption,))


@cache
def results() -> dict:
    """Every derived closed form, by name (computed once per process)."""
    return {spec.name: _derive(spec) for spec in SPECS}


def result(name: str) -> Result:
    """One derived result; KeyError lists the known names."""
    table = results()
    if name not in table:
        raise KeyError(f"no derivation named {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


# ----------------------------------------------------------------------------------------------
# One display form per closed form: the one people write.  The documents, `symce show` and the
# README table all use these; tests check each equals the engine's closed form and that the README
# table shows the same text.
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Display:
    expr: sp.Expr  # kept as written (unevaluated), for the LaTeX printer
    text: str  # plain text, as the README and `symce show` print it


def _M(*a):
    return sp.Mul(*a, evaluate=False)


def _A(*a):
    return sp.Add(*a, evaluate=False)


def _over(num, den):
    return _M(num, sp.Pow(den, -1, evaluate=False))


_d_ij, _d_tj = sp.KroneckerDelta(m.i, m.j), sp.KroneckerDelta(m.t, m.j)
DISPLAY = {
    "sigmoid_grad": Display(_M(m.s, _A(1, -m.s)), "σ(1 − σ)"),
    "softmax_jacobian": Display(_M(m.p[m.i], _A(_d_ij, -m.p[m.j])), "p_i(δ_ij − p_j)"),
    "log_softmax_jacobian": Display(_A(_d_ij, -m.p[m.j]), "δ_ij − p_j"),
    "logsumexp_grad": Display(m.p[m.j], "p_j"),
    "cross_entropy_grad": Display(_M(-1, _over(m.y[m.j], m.p[m.j])), "−y_j / p_j"),
    "cross_entropy_label_grad": Display(_A(m.p[m.j], -_d_tj), "p_j − δ_tj"),
    "softmax_cross_entropy_grad": Display(_A(m.p[m.j], -m.y[m.j]), "p_j − y_j"),
    "binary_cross_entropy_grad": Display(
        _over(_A(m.yhat, -m.y_bin), _M(m.yhat, _A(1, -m.yhat))), "(ŷ − y) / (ŷ(1 − ŷ))"
    ),
    "weighted_binary_cross_entropy_grad": Display(
        _over(
            _A(_M(_A(1, -m.y_bin), m.yhat), -_M(m.pos_weight, m.y_bin, _A(1, -m.yhat))),
            _M(m.yhat, _A(1, -m.yhat)),
        ),
        "((1 − y)ŷ − w₊ y(1 − ŷ)) / (ŷ(1 − ŷ))",
    ),
    "sigmoid_binary_cross_entropy_grad": Display(_A(m.s, -m.y_bin), "σ − y"),
    "sigmoid_weighted_binary_cross_entropy_grad": Display(
        _A(_M(_A(1, -m.y_bin), m.s), -_M(m.pos_weight, m.y_bin, _A(1, -m.s))),
        "(1 − y)σ − w₊ y(1 − σ)",
    ),
    "batch_softmax_cross_entropy_grad": Display(
        _over(_A(m.P[m.m, m.j], -m.Y[m.m, m.j]), m.N), "(P_mj − Y_mj) / N"
    ),
}
