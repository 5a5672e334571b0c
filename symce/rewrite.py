"""Stage 2 — derivation: explicit rewriting for general K.

SymPy 1.14 cannot finish the general-K calculus on its own: ``simplify()`` raises StopIteration on
the derivative of the softmax quotient, and ``Sum(...).doit()`` turns
``sum_k delta_{jk} e^{z_k}`` into ``Piecewise((exp(z[j]), K >= j), (0, True))``.  This module does
the few rewrites those results need, each one small and named:

* :func:`collapse_sums` — linearity of ``Sum``, constants out of the sum, and the sifting rule
  ``sum_{k=lo}^{hi} delta_{ak} f(k) = f(a)``, applied only when ``a`` provably lies in lo..hi:
  its range (:data:`INDEX_RANGES`: classes 1..K, samples 1..N, features 1..D) lies inside.
* :func:`canonical_sums` — replace each remaining sum by one symbol per distinct summand, so
  two sums that differ only in the name of the dummy compare equal.
* :func:`normal_form` / :func:`is_zero` — derivatives evaluated, output symbols unfolded, sums
  collapsed and canonicalised, logs of products split (all quantities are real, the arguments of
  the logs positive), then rational simplification.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache

import sympy as sp

from . import model

# The range of every index symbol the model uses: classes 1..K, samples 1..N.  Sifting a sum over
# a range applies only to an index whose range is known to lie inside it.
# D and d, e: the features of a linear layer (the batch logistic regression).
D = sp.Symbol("D", integer=True, positive=True)
d, e = sp.symbols("d e", integer=True, positive=True)
INDEX_RANGES = {
    model.i: (sp.Integer(1), model.K),
    model.j: (sp.Integer(1), model.K),
    model.k: (sp.Integer(1), model.K),
    model.t: (sp.Integer(1), model.K),
    model.m: (sp.Integer(1), model.N),
    model.n: (sp.Integer(1), model.N),
    d: (sp.Integer(1), D),
    e: (sp.Integer(1), D),
}


def delta_idempotent(expr: sp.Expr) -> sp.Expr:
    """delta_ab^k = delta_ab for k >= 1 (a Kronecker delta is 0 or 1)."""
    return expr.replace(
        lambda x: (
            x.is_Pow
            and isinstance(x.base, sp.KroneckerDelta)
            and x.exp.is_integer
            and x.exp.is_positive
        ),
        lambda x: x.base,
    )


def _def_nonneg(expr) -> bool:
    """True when ``expr`` is provably >= 0 (an integer difference of the range bounds)."""
    expr = sp.expand(expr)
    return bool(expr.is_nonnegative) or (expr.is_Integer and expr >= 0)


def index_in_range(index: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> bool:
    """Whether ``index`` provably lies in lo..hi: its own range (from INDEX_RANGES) is inside."""
    if index.is_Integer:
        return _def_nonneg(index - lo) and _def_nonneg(hi - index)
    if index not in INDEX_RANGES:
        return False
    ilo, ihi = INDEX_RANGES[index]
    return _def_nonneg(ilo - lo) and _def_nonneg(hi - ihi)


def _collapse_one(total: sp.Sum):
    if len(total.limits) != 1:
        return total
    idx, lo, hi = total.limits[0]
    result = sp.S.Zero
    for term in sp.Add.make_args(sp.expand(total.function)):
        const, dep = term.as_independent(idx, as_Add=False)
        if dep == 1:
            result += const * (hi - lo + 1)
            continue
        deltas = [
            f
            for f in sp.Mul.make_args(dep)
            if isinstance(f, sp.KroneckerDelta) and idx in f.free_symbols
        ]
        if deltas:
            delta = deltas[0]
            other = delta.args[1] if delta.args[0] == idx else delta.args[0]
            if idx not in other.free_symbols and index_in_range(other, lo, hi):
                # sifting: sum_{k=lo}^{hi} delta_{ak} f(k) = f(a), as a lies in lo..hi
                result += const * (dep / delta).xreplace({idx: other})
                continue
        result += const * sp.Sum(dep, (idx, lo, hi))
    return result


def collapse_sums(expr: sp.Expr) -> sp.Expr:
    """Linearity and the KroneckerDelta sifting rule, applied bottom-up until nothing changes."""
    for _ in range(8):
        new = expr.replace(lambda e: isinstance(e, sp.Sum), _collapse_one)
        if new == expr:
            return new
        expr = new
    return expr


CANON_INDEX = sp.Dummy("c")  # the summation index every canonical sum is written in


def canonical_sums(expr: sp.Expr) -> tuple[sp.Expr, dict]:
    """Replace each Sum by a symbol named after its canonical summand.

    Returns (expr_without_sums, {symbol: sum}).
    """
    table: dict = {}

    def canon(total):
        idx, lo, hi = total.limits[0]
        key = sp.Sum(total.function.xreplace({idx: CANON_INDEX}), (CANON_INDEX, lo, hi))
        # named by content, so the same sum gets the same symbol in every call
        return table.setdefault(key, sp.Symbol(f"Sum[{sp.sstr(key)}]"))

    out = expr.replace(lambda e: isinstance(e, sp.Sum) and len(e.limits) == 1, canon)
    return out, {v: k for k, v in table.items()}


def split_logs(expr: sp.Expr) -> sp.Expr:
    """log(e^a / S) -> a - log(S): all logits are real and every log argument is positive."""
    expr = sp.powsimp(expr)
    return sp.expand_log(expr, force=True) if expr.has(sp.log) else expr


def series_first(expr: sp.Expr) -> sp.Expr:
    """Evaluate sums to infinity (power series SymPy knows in closed form, e.g. e^r)."""
    return expr.replace(lambda e: isinstance(e, sp.Sum) and e.limits[0][2] == sp.oo, _series_doit)


@lru_cache(maxsize=64)
def _series_doit(total):
    ((v, lo, hi),) = total.limits
    if lo == 0:  # sum_k a^k / k! = e^a, the series that defines exp (SymPy's doit is slow)
        base = sp.powsimp(total.function * sp.factorial(v))
        if isinstance(base, sp.Pow) and base.exp == v and v not in base.base.free_symbols:
            return sp.exp(base.base)
    return total.doit()


def derivatives_first(expr: sp.Expr) -> sp.Expr:
    """Evaluate Derivative nodes without letting Sum.doit produce Piecewise."""
    return expr.replace(
        lambda e: isinstance(e, sp.Derivative), lambda e: sp.diff(e.expr, *e.variables)
    )


def normal_form(
    expr: sp.Expr, substitutions: dict | None = None, defs: Collection[sp.Basic] | None = None
) -> sp.Expr:
    """A canonical rational expression for `expr` (general K), or for concrete K if K is a number.

    ``substitutions`` maps expressions to values and is applied after unfolding and after sums are
    canonicalised, so it can name a sum (e.g. sum_k y_k -> 1) or a delta (delta_ij -> 0).
    """
    expr = model.unfold(sp.sympify(expr), defs)
    expr = series_first(expr)
    expr = derivatives_first(expr)
    expr = collapse_sums(delta_idempotent(sp.expand(split_logs(expr), power_exp=False)))
    expr = _summands_canonical(merge_sums(expr))
    expr, _ = canonical_sums(expr)
    if substitutions:
        subs = {}
        for key, val in substitutions.items():
            key_c, _ = canonical_sums(
                collapse_sums(split_logs(model.unfold(sp.sympify(key), defs)))
            )
            subs[key_c] = val
        expr = expr.xreplace(subs)
    return expr


_MERGE = sp.Dummy("m", integer=True)


def merge_sums(expr: sp.Expr) -> sp.Expr:
    """c1 sum_v f(v) + c2 sum_u g(u) over the same range -> one sum of c1 f + c2 g (linearity,
    backwards), so summands that only add up to a simple form get the chance to."""

    def merge(add):
        groups, rest = {}, []
        for term in add.args:
            coeff, sums = term.as_coeff_mul()
            found = [
                f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum) and len(f.limits) == 1
            ]
            if len(found) != 1:
                rest.append(term)
                continue
            total = found[0]
            v, lo, hi = total.limits[0]
            c = term / total
            if v in c.free_symbols or _MERGE in c.free_symbols:
                rest.append(term)
                continue
            groups.setdefault((lo, hi), []).append(c * total.function.xreplace({v: _MERGE}))
        if not any(len(fs) > 1 for fs in groups.values()):
            return add
        merged = []
        for (lo, hi), fs in groups.items():
            if len(fs) > 1:
                merged.append(sp.Sum(sp.Add(*fs), (_MERGE, lo, hi)))
            else:  # a lone sum keeps its coefficient outside (an assumption may name it)
                c, f = fs[0].as_independent(_MERGE, as_Add=False)
                merged.append(c * sp.Sum(f, (_MERGE, lo, hi)))
        return sp.Add(*rest, *merged)

    return expr.replace(lambda e: isinstance(e, sp.Add), merge)


def _summands_canonical(expr):
    """Each remaining sum with its summand in a canonical rational form (innermost first), so
    two sums whose summands differ only by algebra get the same symbol."""

    def canon(total):
        if len(total.limits) != 1:
            return total
        f = delta_idempotent(sp.expand(total.function, power_exp=False))
        # inner sums stay whole (cancel would turn exp(-sum) into 1/product)
        inner = {s_: sp.Dummy() for s_ in f.atoms(sp.Sum)}
        f = sp.cancel(sp.together(f.xreplace(inner)))
        return sp.Sum(f.xreplace({v: k_ for k_, v in inner.items()}), *total.limits)

    return expr.replace(lambda e: isinstance(e, sp.Sum), canon)


def is_zero(expr: sp.Expr, quick: bool = False) -> bool:
    """Decide expr == 0 for the expressions the derivations produce (no Sum/Derivative left);
    ``quick`` skips the slow ``simplify`` (for checks expected to fail)."""
    if expr == 0:
        return True
    e = delta_idempotent(sp.expand(split_logs(expr)))
    if e == 0:
        return True
    e = sp.cancel(sp.together(e))
    if e == 0:
        return True
    # powers with a symbolic exponent (a focal loss's q^gamma): b^(g + c), c an integer, as
    # T c(b)^c with one symbol T per canonical base c(b) = cancel(together(b)) and symbolic part
    # g, so b^(g - 1) and b^g / b, or a base written two ways, are the same polynomial's terms
    if any(not p.exp.is_Integer and p.exp.free_symbols for p in e.atoms(sp.Pow)):
        if sp.cancel(sp.together(sp.expand(_symbolic_powers(e)))) == 0:
            return True
    return False if quick else sp.simplify(e) == 0


def _symbolic_powers(e: sp.Expr) -> sp.Expr:
    """``e`` with each b^(g + c) (g symbolic, c an integer) written T_{b, g} b^c: one symbol T
    per canonical base and symbolic exponent (see :func:`is_zero`)."""
    table, reps = {}, {}
    for pw in e.atoms(sp.Pow):
        if pw.exp.is_Integer or not pw.exp.free_symbols:
            continue
        c, g = pw.exp.as_coeff_Add()
        if not c.is_Integer:
            c, g = sp.S.Zero, pw.exp
        base = sp.cancel(sp.together(pw.base))
        symbol = table.setdefault((base, g), sp.Dummy("T"))
        reps[pw] = symbol * base**c
    return e.xreplace(reps)


def equal(
    a: sp.Expr,
    b: sp.Expr,
    substitutions: dict | None = None,
    defs: Collection[sp.Basic] | None = None,
    quick: bool = False,
) -> bool:
    """Symbolic equality of two derivation steps under `substitutions`; sums collapse only over
    indices known to lie in their range."""
    subs = tuple(sorted((substitutions or {}).items(), key=lambda kv: sp.default_sort_key(kv[0])))
    defs = tuple(defs) if defs is not None else None
    return is_zero(
        _normal_form_cached(sp.sympify(a), subs, defs)
        - _normal_form_cached(sp.sympify(b), subs, defs),
        quick,
    )


@lru_cache(maxsize=2048)
def _normal_form_cached(expr, subs, defs):
    """normal_form, remembered: consecutive steps share a side."""
    return normal_form(expr, dict(subs) or None, defs)


def in_output_symbols(expr: sp.Expr) -> sp.Expr:
    """Rewrite an expression of the logits into the output symbols (p, S; P, S_n; sigma).

    The substitution e^{z_a} = p_a S is the whole trick behind every softmax closed form: it is
    applied to each exponential of a logit, after which S cancels.  For the batch, e^{Z_{n,a}} =
    P_{n,a} S_n.  For the sigmoid, e^{-theta} = (1 - sigma)/sigma.
    """
    expr, sums = canonical_sums(collapse_sums(expr))
    named = {}
    for sym, total in sums.items():
        f = total.function
        if f == sp.exp(model.z[CANON_INDEX]):
            named[sym] = model.S
        elif (
            isinstance(f, sp.exp)
            and isinstance(f.args[0], sp.Indexed)
            and f.args[0].base == model.Z
            and f.args[0].indices[1] == CANON_INDEX
        ):
            named[sym] = model.S_n[f.args[0].indices[0]]
    expr = expr.xreplace(named)

    def exp_to_output(e):
        sign, arg = (-1, -e.args[0]) if e.args[0].could_extract_minus_sign() else (1, e.args[0])
        if isinstance(arg, sp.Indexed) and arg.base == model.z:
            return (model.p[arg.indices[0]] * model.S) ** sign
        if isinstance(arg, sp.Indexed) and arg.base == model.Z:
            a, b = arg.indices
            return (model.P[a, b] * model.S_n[a]) ** sign
        if arg == model.theta:
            return (model.s / (1 - model.s)) ** sign
        return e

    expr = expr.replace(lambda e: isinstance(e, sp.exp), exp_to_output)
    rest = {sym: total for sym, total in sums.items() if sym not in named}
    return restore_sums(sp.factor(sp.cancel(sp.together(expr))), rest)


def restore_sums(expr: sp.Expr, sums: dict) -> sp.Expr:
    """Undo :func:`canonical_sums`, naming each dummy index ``k``."""
    return expr.xreplace(
        {sym: total.xreplace({CANON_INDEX: model.k}) for sym, total in sums.items()}
    )


def excluded_sum(total: sp.Sum) -> tuple[sp.Expr | None, sp.Expr | None]:
    """Sum_v (1 - delta_{v,o}) f(v) -> (f, o): the sum over v != o, as the printers show it;
    (None, None) for any other sum."""
    ((v, _lo, _hi),) = total.limits
    if not isinstance(total.function, sp.Mul):
        return None, None
    for k_, a in enumerate(total.function.args):
        if isinstance(a, sp.Add) and len(a.args) == 2 and 1 in a.args:
            other = [x for x in a.args if x != 1][0]
            if (
                other.could_extract_minus_sign()
                and isinstance(-other, sp.KroneckerDelta)
                and v in (-other).args
            ):
                o = [x for x in (-other).args if x != v][0]
                rest = total.function.args[:k_] + total.function.args[k_ + 1 :]
                return sp.Mul(*rest, evaluate=False) if len(rest) > 1 else rest[0], o
    return None, None
