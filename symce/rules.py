"""Stage 3 — proofs: the catalogue of justifications a proof step may give, each one checkable.

A step names one or more :class:`Rule` s.  Besides checking that the step *equals* the expression it
follows (:mod:`symce.proof`), the checker confirms that it is **an application of those rules**: it
applies the rules to both expressions, keeps every derivative and every sum the rules did not touch
as an opaque symbol, and asks whether what is left agrees by algebra alone.  So a quotient-rule step
must be the quotient rule applied to a marked, unevaluated derivative; calling it the product rule
leaves ``d(1/v)`` where the step has ``dv`` and is rejected.

"algebra" steps (rearranging, cancelling, log and exp laws) are checked as algebra alone: the same
comparison with no rule applied, so an algebra step may not evaluate a derivative, collapse a sum or
unfold a name.  Every rule a step names must change something there (no padding), except
"derivative of a variable" (d z_a / d z_b = delta_ab), a closure every derivative rule uses.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp

from . import model as m
from . import rewrite


@dataclass(frozen=True)
class Rule:
    """One justification: ``kind`` from :data:`KINDS`, and its parameter where it takes one."""

    kind: str
    names: tuple = ()  # substitute: the named quantities unfolded (symbols / IndexedBase)
    cite: str = ""  # cite: the proof whose result is used
    lemma: tuple = ()  # cite: or a lemma (lhs derivative, rhs), checked where it is used
    rename: tuple = ()  # cite: ((base in the cited claim, base here), ...)
    latex: str = ""  # what the document shows after the rule's name
    # cite: statement(name) -> (claim, closed form) of the cited proof; symce.proofs passes its
    # own, so this module never imports the proofs (they import it)
    statement: Callable | None = field(default=None, compare=False, repr=False)

    @property
    def words(self) -> str:
        """The rule in words (plain text, for ``symce show`` and the documents)."""
        base = KINDS[self.kind]
        if self.kind == "cite":
            return f"{base} {self.cite}" if self.cite else "lemma"
        return base

    @property
    def checked(self) -> bool:
        """Whether the checker applies the rule (every kind but plain algebra)."""
        return self.kind != "algebra"


KINDS = {
    "definition": "definition",
    "substitute": "substitution",
    "linearity": "linearity",  # of derivatives and of sums
    "product": "product rule",
    "quotient": "quotient rule",
    "chain": "chain rule",
    "d_exp": "derivative of exp",
    "d_log": "derivative of log",
    "d_var": "derivative of a variable",
    "sifting": "sifting property of the Kronecker delta",  # sum_k delta_ak f(k) = f(a), a in range
    "case": "case",
    "assumption": "assumption",
    "cite": "result of",
    "series": "power series",
    "algebra": "algebra",
}

# constructors, so proofs read `rules=(LIN, CHAIN)`
DEFINITION = Rule("definition")
LIN = Rule("linearity")
PRODUCT = Rule("product")
QUOTIENT = Rule("quotient")
CHAIN = Rule("chain")
D_EXP = Rule("d_exp")
D_LOG = Rule("d_log")
D_VAR = Rule("d_var")
SIFT = Rule("sifting")
CASE = Rule("case")
ASSUME = Rule("assumption")
SERIES = Rule("series")
ALGEBRA = Rule("algebra")


def subst(*names: sp.Basic, latex: str = "") -> Rule:
    """Substitute named quantities (output symbols such as p, S, sigma, or a proof's own names)."""
    return Rule("substitute", names=tuple(names), latex=latex)


def cite(proof_name: str, statement: Callable, rename: tuple = ()) -> Rule:
    """Use the result of an earlier proof (its closed form replaces its derivative):
    ``statement(proof_name)`` gives that proof's (claim, closed form)."""
    return Rule("cite", cite=proof_name, rename=tuple(rename), statement=statement)


def lemma(lhs: sp.Expr, rhs: sp.Expr, latex: str = "") -> Rule:
    """Use a lemma ``lhs = rhs`` (lhs a derivative); the checker verifies the lemma itself."""
    return Rule("cite", lemma=(lhs, rhs), latex=latex)


# ---- a proof's own names ---------------------------------------------------------------------
def apply_lets(expr: sp.Expr, lets: tuple, only: Collection[sp.Basic] | None = None) -> sp.Expr:
    """Replace a proof's own names by their definitions (repeatedly: names may use names).

    ``lets`` holds (Symbol, expression) and (IndexedBase, function of the indices) pairs;
    ``only`` restricts the replacement to some of the names."""
    expr = sp.sympify(expr)
    pairs = [(k_, v) for k_, v in lets if only is None or k_ in only]
    if not pairs:
        return expr
    for _ in range(6):
        new = expr
        for k_, v in pairs:
            if isinstance(k_, sp.IndexedBase):
                new = new.replace(
                    lambda e, b=k_: isinstance(e, sp.Indexed) and e.base == b,
                    lambda e, f=v: sp.sympify(f(*e.indices)),
                )
            else:
                new = new.xreplace({k_: v})
        if new == expr:
            return new
        expr = new
    return expr


# ---- dependency ------------------------------------------------------------------------------
_DEPENDS_ON = {  # output symbol (or base) -> the variable bases it is a function of
    m.p: (m.z,),
    m.S: (m.z,),
    m.P: (m.Z,),
    m.S_n: (m.Z,),
    m.s: (m.theta,),
}


def depends(expr: sp.Expr, x: sp.Expr, lets: tuple = ()) -> bool:
    """Conservatively: may ``expr`` change with the variable ``x``? (z_i counts as depending on
    z_j: i and j may be equal.)"""
    expr = apply_lets(expr, lets)
    xbase = x.base if isinstance(x, sp.Indexed) else x
    for a in expr.atoms(sp.Indexed):
        if a.base == xbase or xbase in _DEPENDS_ON.get(a.base, ()):
            return True
    for a in expr.free_symbols:
        if a == xbase or xbase in _DEPENDS_ON.get(a, ()):
            return True
    return any(xbase in f.args for f in expr.atoms(sp.Function))


def _affine(g, x) -> bool:
    """g is a sum of constants and constant multiples of the variable's own family (z_a for
    x = z_j, theta for x = theta): its derivative is the plain one, delta_ab or 1."""
    xbase = x.base if isinstance(x, sp.Indexed) else x
    if any(
        isinstance(a, (sp.Sum, sp.Derivative, sp.Function, sp.Pow))
        for a in sp.preorder_traversal(g)
    ):
        return False
    for term in sp.Add.make_args(sp.expand(g)):
        dep = [f for f in sp.Mul.make_args(term) if depends(f, x)]
        if len(dep) > 1:
            return False
        if dep and not (
            dep[0] == xbase or (isinstance(dep[0], sp.Indexed) and dep[0].base == xbase)
        ):
            return False
    return True


# ---- the transforms --------------------------------------------------------------------------
def _derivative_nodes(expr):
    return [d for d in sp.preorder_traversal(expr) if isinstance(d, sp.Derivative)]


def _one_var(d):
    if len(d.variable_count) != 1 or d.variable_count[0][1] != 1:
        return None
    return d.variable_count[0][0]


def _elementary(d, x, lets):
    """Closures every derivative rule may use: a constant has derivative 0, an affine term in
    the variables its plain derivative (d z_t / d z_j = delta_tj, d theta / d theta = 1)."""
    g = d.expr
    if not depends(g, x, lets):
        return sp.S.Zero
    if _affine(g, x):
        return sp.diff(g, x)
    return None


def _rewrite_derivatives(expr, fn):
    """Replace derivative nodes bottom-up by fn(node) (None: leave the node)."""

    def visit(e):
        if not e.args or not e.has(sp.Derivative):
            return e
        if isinstance(e, sp.Derivative):
            new = e
        else:
            args = [visit(a) for a in e.args]
            new = e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e
        if isinstance(new, sp.Derivative):
            x = _one_var(new)
            if x is not None:
                out = fn(new, x)
                if out is not None:
                    return out
        return new

    return visit(expr)


def _lin(d, x, lets):
    f = d.expr
    if isinstance(f, sp.Add):
        return sp.Add(*[sp.Derivative(a, x) for a in f.args])
    if isinstance(f, sp.Mul):
        const = [a for a in f.args if not depends(a, x, lets)]
        dep = [a for a in f.args if depends(a, x, lets)]
        if const and dep:
            return sp.Mul(*const) * sp.Derivative(sp.Mul(*dep), x)
    if isinstance(f, sp.Sum):
        return sp.Sum(sp.Derivative(f.function, x), *f.limits)
    return None


def _sum_linearity(expr):
    """Sum of a sum is a sum of sums; factors free of the dummy come out."""

    def split(total):
        if len(total.limits) != 1:
            return total
        v, lo, hi = total.limits[0]
        f = total.function
        if v not in f.free_symbols:
            return f * (hi - lo + 1)
        if isinstance(sp.expand(f), sp.Add):  # algebra inside the sum, then linearity
            return sp.Add(*[sp.Sum(a, (v, lo, hi)) for a in sp.expand(f).args])
        const, dep = f.as_independent(v, as_Add=False)
        if const != 1:
            return const * (sp.Sum(dep, (v, lo, hi)) if dep != 1 else (hi - lo + 1))
        return total

    return expr.replace(lambda e: isinstance(e, sp.Sum), split)


def _product(d, x, lets):
    f = d.expr
    if not isinstance(f, sp.Mul):
        return None
    dep = [a for a in f.args if depends(a, x, lets)]
    const = [a for a in f.args if not depends(a, x, lets)]
    if len(dep) < 2:
        return None
    terms = []
    for k_, a in enumerate(dep):
        others = dep[:k_] + dep[k_ + 1 :]
        terms.append(sp.Mul(*others) * sp.Derivative(a, x))
    return sp.Mul(*const) * sp.Add(*terms)


def _quotient(d, x, lets):
    u, v = sp.fraction(d.expr)
    if v == 1 or not depends(v, x, lets):
        return None
    return (sp.Derivative(u, x) * v - u * sp.Derivative(v, x)) / v**2


def _outer(d, x, lets, kinds):
    f = d.expr
    if isinstance(f, sp.exp) and "exp" in kinds:
        g = f.args[0]
        return f * sp.Derivative(g, x)
    if isinstance(f, sp.log) and "log" in kinds:
        g = f.args[0]
        return sp.Derivative(g, x) / g
    if isinstance(f, sp.Pow) and "pow" in kinds and not depends(f.exp, x, lets):
        g, c = f.base, f.exp
        return c * g ** (c - 1) * sp.Derivative(g, x)
    return None


def _cite_table(rule):
    if rule.lemma:
        return rule.lemma
    lhs, rhs = rule.statement(rule.cite)
    ren = dict(rule.rename)
    return lhs.xreplace(ren), rhs.xreplace(ren)


def _index_maps(pattern_free, candidates):
    """Every map sending the cited claim's free indices to indices of the node."""
    import itertools

    for combo in itertools.product(candidates, repeat=len(pattern_free)):
        yield dict(zip(pattern_free, combo))


def _cite(d, x, lets, rule):
    lhs, rhs = _cite_table(rule)
    free = sorted(
        {s for s in lhs.free_symbols if s in rewrite.INDEX_RANGES}, key=sp.default_sort_key
    )
    cands = sorted({s for s in d.free_symbols if s.is_integer}, key=sp.default_sort_key)
    target = None
    for mp in _index_maps(free, cands):
        cand = lhs.xreplace(mp)
        if _one_var(cand) != x:  # cheap test first: the variable must match
            continue
        if target is None:
            target = key(d.expr)
        if key(cand.expr) == target:
            return rhs.xreplace(mp)
    return None


# each derivative rule as a transform of one derivative node (None where it does not apply):
# apply() uses them everywhere, apply_at() at one node
_ONCE = {
    "linearity": _lin,
    "product": _product,
    "quotient": _quotient,
    "chain": lambda d, x, lets: _outer(d, x, lets, ("exp", "log", "pow")),
    "d_exp": lambda d, x, lets: _outer(d, x, lets, ("exp",)),
    "d_log": lambda d, x, lets: _outer(d, x, lets, ("log",)),
}


def apply(rule: Rule, expr: sp.Expr, lets: tuple = ()) -> sp.Expr:
    """Apply ``rule`` everywhere it applies in ``expr`` (until nothing changes)."""
    kind = rule.kind
    for _ in range(12):
        if kind in _ONCE:
            new = _rewrite_derivatives(expr, lambda d, x: _ONCE[kind](d, x, lets))
            if kind == "linearity":  # of sums too
                new = _sum_linearity(new)
        elif kind == "d_var":
            new = expr
        elif kind == "sifting":
            new = rewrite.collapse_sums(expr)
        elif kind == "substitute":
            new = m.unfold(expr, [n for n in rule.names if not _is_let(n, lets)])
            new = apply_lets(new, lets, only=rule.names)
        elif kind == "cite":
            new = _rewrite_derivatives(expr, lambda d, x: _cite(d, x, lets, rule))
        elif kind == "series":
            new = rewrite.series_first(expr)
        else:  # definition, case, assumption, algebra: nothing to apply here
            return expr
        # every derivative rule may also use: d(constant) = 0, d z_a / d z_b = delta_ab
        if kind in ("linearity", "product", "quotient", "chain", "d_exp", "d_log", "d_var", "cite"):
            new = _rewrite_derivatives(new, lambda d, x: _elementary(d, x, lets))
        if new == expr:
            return new
        expr = new
    return expr


def apply_at(rule: Rule, expr: sp.Expr, node: sp.Derivative, lets: tuple = ()) -> sp.Expr:
    """Apply the derivative ``rule`` once, to the derivative ``node`` of ``expr`` alone (and
    the closures every derivative rule may use, everywhere); ``expr`` unchanged if it does not
    apply there.  A proof written one rule application at a time uses this."""
    x = _one_var(node)
    once = _ONCE.get(rule.kind)
    out = once(node, x, lets) if once is not None and x is not None else None
    if out is None:
        return expr
    new = expr.xreplace({node: out})
    return _rewrite_derivatives(new, lambda d, x: _elementary(d, x, lets))


def _is_let(name, lets) -> bool:
    return any(k_ == name for k_, _ in lets)


# ---- algebra with opaque derivatives and sums ------------------------------------------------
def key(expr: sp.Expr) -> sp.Expr:
    """A canonical form of ``expr`` in which every derivative and every sum is one opaque symbol
    (named by the canonical form of its contents, so two copies of the same sum, written with
    different dummies or arranged differently, get the same symbol)."""
    return _nf(rewrite.merge_sums(sp.expand(sp.sympify(expr), power_exp=False)), 0)


def _canon(e):
    e = sp.expand_log(sp.powsimp(e), force=True)
    return sp.cancel(sp.together(rewrite.delta_idempotent(sp.expand(e))))


@lru_cache(maxsize=4096)
def _nf(e, depth):
    if isinstance(e, sp.Derivative):
        inner = _canon(_nf(e.expr, depth))
        return sp.Symbol("D[" + sp.srepr(inner) + "|" + sp.srepr(e.variables) + "]")
    if isinstance(e, sp.Sum) and len(e.limits) == 1:
        v, lo, hi = e.limits[0]
        d = sp.Symbol(f"_k{depth}", integer=True)
        inner = _canon(_nf(e.function.xreplace({v: d}), depth + 1))
        return sp.Symbol("Sum[" + sp.srepr(inner) + "|" + sp.srepr((lo, hi)) + "]")
    if not e.args or isinstance(e, (sp.Indexed, sp.KroneckerDelta, sp.Tuple)):
        return e
    if not any(isinstance(a, (sp.Derivative, sp.Sum)) for a in sp.preorder_traversal(e)):
        return e
    return e.func(*[_nf(a, depth) for a in e.args])


def algebra_equal(a: sp.Expr, b: sp.Expr, substitutions: dict | None = None) -> bool:
    """a = b by algebra alone, derivatives and sums opaque; ``substitutions`` (e.g. a sum -> 1)
    are applied to the opaque forms."""
    ka, kb = key(a), key(b)
    if substitutions:
        subs = {key(k_): v for k_, v in substitutions.items()}
        ka, kb = ka.xreplace(subs), kb.xreplace(subs)
    return rewrite.is_zero(ka - kb)
