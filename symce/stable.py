"""Stage 4 — numerics: numerically stable rewrites, as symbolic passes over closed forms.

Lower first, print last: every pass here takes a SymPy expression and returns an expression
that is mathematically equal (or equal outside a documented clamp region), so the printers only
have to map names.  The tests check each rewritten form against the closed form it came from.

Passes
------
* :func:`shift_logits` — softmax shift invariance: e^{z_a} -> e^{z_a - shift}, the partition sum
  -> ``S`` = sum_k e^{z_k - shift} and log sum_k e^{z_k} -> shift + log S (shift = the row max).
* :func:`log1p_form` — log(1 + a) -> log1p(a); with S = 1 + Srest this is log S for a row whose
  max term is exactly 1.
* :func:`sigmoid_complement` — 1 - sigma(x) -> sigma(-x), so no difference of two numbers near 1
  is ever formed (sigma(x) sigma(-x) for sigma', (1-y) sigma(x) - w y sigma(-x) for BCE o sigma).
* :func:`sigmoid_function` — sigma(t) -> sigmoid(t), printed in an accurate branch-free form;
  :func:`log_sigmoid_rules` — log sigma(t) -> -softplus(-t): no overflow for any t, NaN stays NaN.
* :func:`compensate` (with :func:`two_sum_error`, :func:`compensated_exp`) — carry z - shift as
  zs + zlo, so exp(z - shift) is accurate even though zs is rounded; :func:`complement` and
  :func:`diagonal_complement`, :func:`split_unit` — 1 - p without cancellation.
* :func:`clamp_logs` / :func:`clamp_denominator` — the PyTorch policy for losses of
  probabilities: each log is clamped below at -100 and a gradient's denominator at 1e-12.
* :func:`zero_times_anything` — y * log(...) -> mul0(y, log(...)): a zero target contributes
  exactly 0 even where the log is -inf (masked classes).
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.codegen.cfunctions import log1p

from . import model as m
from .functions import clamp_min, expm1, mul0, sigmoid, softplus, two_sum_err
from .rewrite import CANON_INDEX, canonical_sums, collapse_sums

LOG_CLAMP = -100  # PyTorch's BCE clamps log() at -100
DENOM_EPS = sp.Float("1e-12")  # PyTorch's BCE backward clamps x(1 - x) at 1e-12


def shift_logits(
    expr: sp.Expr,
    logit: Callable[[sp.Indexed], sp.Expr],
    shift: sp.Expr,
    S_shift: sp.Expr,
    shifted: tuple[sp.Symbol, sp.Symbol] | None = None,
) -> sp.Expr:
    """Rewrite in terms of shifted exponentials (and, with ``shifted=(zs, z)``, of zs = z - shift).

    ``logit`` maps an Indexed logit (z[a]) to the local symbol naming it (or None to keep it).
    Each Sum of e^{z_k} becomes ``S_shift`` (its value times e^{-shift}); each e^{z_a}
    becomes e^{logit - shift}; log(S) becomes shift + log(S_shift).  The result equals the input
    whenever every exponential sits in a ratio with the partition sum (softmax, log-softmax,
    logsumexp), which the tests check.
    """
    expr, sums = canonical_sums(collapse_sums(expr))
    part = [sym for sym, total in sums.items() if total.function == sp.exp(m.z[CANON_INDEX])]
    expr = sp.expand_log(expr, force=True)
    for sym in part:
        expr = expr.replace(
            lambda e, sym=sym: isinstance(e, sp.log) and e.args[0] == sym,
            lambda e: shift + sp.log(S_shift),
        )
        expr = expr.xreplace({sym: S_shift * sp.exp(shift)})
    expr = expr.replace(
        lambda e: (
            isinstance(e, sp.exp) and isinstance(e.args[0], sp.Indexed) and e.args[0].base == m.z
        ),
        lambda e: sp.exp(logit(e.args[0]) - shift) * sp.exp(shift),
    )
    expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == m.z, logit)
    expr = sp.powsimp(sp.expand_power_exp(sp.cancel(expr)), combine="exp")
    if shifted is not None:
        # name the shifted logit z - shift once, so it is rounded once (accuracy, not algebra)
        zs, z_local = shifted
        expr = sp.expand(expr.xreplace({z_local: zs + shift}), power_exp=False, log=False)
        expr = expr.replace(lambda e: isinstance(e, sp.exp), lambda e: sp.exp(sp.expand(e.args[0])))
    return expr


def log1p_form(expr: sp.Expr) -> sp.Expr:
    """log(1 + a) -> log1p(a): exact for small a (e.g. log S when one class dominates)."""
    return expr.replace(
        lambda e: isinstance(e, sp.log) and e.args[0].is_Add and 1 in e.args[0].args,
        lambda e: log1p(e.args[0] - 1),
    )


def sigmoid_complement(
    expr: sp.Expr, s: sp.Symbol, x: sp.Expr, collect_on: tuple = ()
) -> tuple[sp.Expr, sp.Symbol]:
    """Collect on ``collect_on`` and replace every factor (1 - s) by sigma(-x), (s - 1) by -sigma(-x)."""
    expr = sp.collect(sp.expand(expr), list(collect_on)) if collect_on else expr
    neg = sp.Symbol("_sigma_neg")

    def fix(term):
        f = sp.factor(term)
        return f.xreplace({1 - s: neg}).subs(s - 1, -neg)

    whole = fix(expr)  # 1 - s itself is a sum: replaced whole when that removes every s
    if s not in whole.free_symbols:
        return whole, neg
    expr = sp.Add(*[fix(t) for t in sp.Add.make_args(expr)])
    return expr, neg


def sigmoid_function(expr: sp.Expr, s: sp.Symbol, neg: sp.Symbol, x: sp.Expr) -> sp.Expr:
    """sigma -> sigmoid(x), sigma(-x) -> sigmoid(-x): the printers' accurate branch-free sigmoid."""
    pos_f, neg_f = sigmoid(x), sigmoid(-x)
    return sp.collect(sp.expand(expr.xreplace({s: pos_f, neg: neg_f})), [pos_f, neg_f])


def two_sum_error(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """The exact rounding error of fl(a + b) (mathematically 0)."""
    return two_sum_err(a, b)


def compensated_exp(hi: sp.Expr, lo: sp.Expr) -> sp.Expr:
    """exp(hi + lo) for |lo| <= ulp(hi)/2, to first order: exp(hi) (1 + lo)."""
    return sp.exp(hi) * (1 + lo)


def compensated_expm1(hi: sp.Expr, lo: sp.Expr) -> sp.Expr:
    """exp(hi + lo) - 1 without cancellation: expm1(hi) + lo exp(hi) (that term exactly 0 when
    lo is, so a +inf logit gives +inf, not 0 * inf)."""
    return expm1(hi) + mul0(lo, sp.exp(hi))


def compensate(expr: sp.Expr, hi: sp.Symbol, lo: sp.Expr, e_sym: sp.Symbol) -> sp.Expr:
    """Carry a shifted logit as hi + lo: exp(hi) -> e (the compensated exponential) and every other
    occurrence of hi -> hi + lo.  The identity exactly when e = exp(hi + lo)."""
    out = expr.replace(lambda t: isinstance(t, sp.exp) and t.args[0] == hi, lambda t: e_sym)
    return out.xreplace({hi: hi + lo})


def complement(prob: sp.Expr, e_sym: sp.Symbol, em1_sym: sp.Symbol) -> sp.Expr:
    """1 - p for p = e / (1 + Srest), written (Srest - (e - 1)) / (1 + Srest) with e - 1 = em1:
    no cancellation when p is close to 1 (for the argmax, em1 = 0 exactly)."""
    num, den = sp.fraction(sp.together(1 - prob))
    num = sp.expand(num).xreplace({e_sym: 1 + em1_sym})
    return sp.expand(num) / den


def split_unit(expr: sp.Expr, target: sp.Expr, prob: sp.Expr, prob_c: sp.Expr) -> sp.Expr:
    """p*ysum - yt -> p*(ysum - yt) - pc*yt, using 1 = p + pc: at the target class of a confident
    prediction (p -> 1) the result -pc*yt is computed without subtracting p from 1."""
    return sp.collect(sp.expand(expr.subs(target, target * (prob + prob_c))), [prob, prob_c])


def diagonal_complement(
    expr: sp.Expr, delta: sp.Expr, p_other: sp.Expr, pc_self: sp.Expr
) -> sp.Expr:
    """delta - p_j -> delta pc_i - (1 - delta) p_j: equal for delta in {0, 1} (on the diagonal
    p_j = p_i and 1 - p_i = pc_i), and the diagonal no longer subtracts p_i from 1."""
    return expr.xreplace({delta - p_other: delta * pc_self - (1 - delta) * p_other})


def collect_softplus(expr: sp.Expr, x: sp.Expr) -> sp.Expr:
    """Group a loss by softplus(x) and softplus(-x): each group is then a sum of non-negatives."""
    return sp.collect(sp.expand(expr), [softplus(x), softplus(-x)])


def log_sigmoid_rules(expr: sp.Expr, x: sp.Expr) -> sp.Expr:
    """log sigma(x) -> -softplus(-x), log(1 - sigma(x)) -> -softplus(x) (sigma written out)."""
    sig = 1 / (1 + sp.exp(-x))
    expr = expr.xreplace({sp.log(sig): -softplus(-x)})
    expr = expr.replace(
        lambda e: isinstance(e, sp.log) and sp.simplify(e.args[0] - (1 - sig)) == 0,
        lambda e: -softplus(x),
    )
    return expr


def clamp_logs(expr: sp.Expr, lo: sp.Expr | float = LOG_CLAMP) -> sp.Expr:
    """log(a) -> clamp_min(log(a), lo); log(1 - a) is first written log1p(-a) (exact near a = 0)."""

    def one(e):
        arg = e.args[0]
        inner = (
            log1p(arg - 1) if (arg - 1).could_extract_minus_sign() and arg.is_Add else sp.log(arg)
        )
        return clamp_min(inner, lo)

    return expr.replace(lambda e: isinstance(e, sp.log), one)


def clamp_denominator(
    expr: sp.Expr, eps: sp.Expr | float = DENOM_EPS, probe: dict | None = None
) -> sp.Expr:
    """n/d -> n / clamp_min(d, eps), with the sign of d made positive at ``probe``."""
    num, den = sp.fraction(sp.cancel(sp.together(expr)))
    if probe is not None and den.subs(probe) < 0:
        num, den = -num, -den
    return sp.factor(num) / clamp_min(sp.factor(den), eps)


def zero_times_anything(expr: sp.Expr, target: sp.Expr) -> sp.Expr:
    """target * f + r -> mul0(target, f) + r (``f`` collected over every term with the target)."""
    parts = sp.collect(sp.expand(expr), target, evaluate=False)
    coeff = parts.pop(target, sp.S.Zero)
    rest = sp.Add(*[k * v for k, v in parts.items()])
    if any(v.has(target) for v in parts.values()):
        raise ValueError(f"zero_times_anything: {expr} is not linear in {target}")
    return mul0(target, sp.factor_terms(coeff)) + rest
