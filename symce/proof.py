"""Stage 3 — proofs: ordered derivation steps, each checked by SymPy before export.

A :class:`Proof` is a list of :class:`Step` records ``(expr, rules, note)``.  Step k claims
``expr_k = expr_ref`` where ``ref`` is the previous step unless the step names another (a case
split restarts from the step before the split), or ``lhs = expr`` for a step that opens a chain of
its own.  :func:`verify` checks every claim three ways:

1. **numerically** — several (N, K) pairs with N != K (:data:`NUMERIC_NK`), the free indices at the
   low end, the high end and inside their ranges (:data:`symce.rewrite.INDEX_RANGES`), every input
   drawn at random, both sides evaluated with mpmath at ``DPS`` digits (sums over their concrete
   ranges, deltas as 0/1, derivatives by SymPy); a difference means the step is **false**;
2. **symbolically** for general K and N — both sides unfolded to the inputs, derivatives
   evaluated, sums collapsed with the rules of :mod:`symce.rewrite` (a delta is sifted only over an
   index known to lie in the sum's range), then the difference simplified to 0; failing that, the
   step is **not proved** (true at every sampled point, but beyond the checker);
3. **as an application of its rules** (:mod:`symce.rules`) — the rules applied to both sides,
   every derivative and sum they did not touch kept opaque, and the rest equal by algebra alone.

A step may carry conditions (:class:`Condition`): a case (i = j, i != j) or an assumption
(sum_k y_k = 1).  A condition holds from the step that introduces it to the end of its block, must
be named by the step's rules and must be needed there.  A step that prints like the line it follows
is rejected.  Side claims that are not equalities (an inequality, an exactness property) are
:class:`Fact` records, computed when the proof is verified.  A failure raises :class:`ProofError`
naming the proof, the step number (from 1, as the documents number the lines), the rules and both
expressions.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from . import model as m
from . import rewrite
from . import rules as R
from .functions import iverson

DPS = 40


class ProofError(AssertionError):
    """A derivation step that SymPy could not confirm."""


@dataclass(frozen=True)
class Condition:
    """A case or an assumption a step relies on.

    ``bind`` fixes index symbols (``{j: i}`` for the case i = j); ``zero`` lists expressions that
    vanish under it (``KroneckerDelta(i, j)`` for i ≠ j); ``sums_to_one`` lists IndexedBase
    targets whose sum over the class index is 1 (for the numeric check such targets are drawn
    normalised); ``distinct`` lists index pairs that must differ numerically.
    """

    latex: str
    words: str = ""  # plain text, for `symce show`
    bind: dict = field(default_factory=dict)
    zero: tuple = ()
    sums_to_one: tuple = ()  # (IndexedBase, index position of the class, other fixed indices)
    distinct: tuple = ()
    define: dict = field(default_factory=dict)  # IndexedBase -> (lambda *indices: definition)


def _apply_defines(expr, conds):
    for c in conds:
        for base, fn in c.define.items():
            expr = expr.replace(
                lambda e, b=base: isinstance(e, sp.Indexed) and e.base == b,
                lambda e, f=fn: sp.sympify(f(*e.indices)),
            )
    return expr


@dataclass(frozen=True)
class Step:
    expr: sp.Expr
    reason: str  # LaTeX text (inside \text{} unless it starts with '$')
    ref: int | None = None  # index of the step this one equals (default: previous)
    given: tuple = ()  # Conditions introduced at this step (they stay in its block)
    block: str = ""  # a heading that starts a new block (e.g. "Case i = j")
    lhs: object = None  # starts a new chain: claims ``lhs = expr`` (lhs a SymPy expr)
    rules: tuple = ()  # rules.Rule justifications; the checker confirms each one


@dataclass(frozen=True)
class Proof:
    name: str
    title: str
    lhs: str  # LaTeX of what is being derived, e.g. \frac{\partial p_i}{\partial z_j}
    steps: tuple
    result: str | None = None  # name of the derive.Result the last step must equal
    defs: tuple = ()  # output symbols in force (p, S, s, P, S_n)
    intro: str = ""  # a short paragraph (LaTeX) before the steps
    outro: str = ""  # after the steps
    sources: str = ""  # which seed articles it follows
    where: tuple = ()  # glossary lines (LaTeX)
    let: tuple = ()  # ((symbol, definition), ...): names local to this proof
    # the documents show the lets by name in the steps before the last (a declared loss's named
    # quantities: written out, its steps run far past the line)
    abbreviate: bool = False
    facts: tuple = ()  # Fact records: side claims checked by exact arithmetic
    claim: object = None  # the derivative proved, in output symbols (what others cite)


@dataclass(frozen=True)
class Fact:
    """A side claim that is not an equality of steps (an inequality, an exactness property).

    ``check()`` returns ``(ok, detail)``; it must compute the claim, not restate it.
    """

    latex: str  # the claim as the document states it (text, $math$ inside)
    check: object  # () -> (bool, str)
    name: str = ""


# ----------------------------------------------------------------------------------------------
def conditions_at(proof: Proof, index: int) -> tuple:
    """The conditions in force at step ``index``: those of the steps in its chain of refs."""
    conds, seen, k = [], set(), index
    while k is not None and k >= 0 and k not in seen:
        seen.add(k)
        step = proof.steps[k]
        conds.extend(step.given)
        if step.lhs is not None:  # a chain starts here: nothing before it is in force
            break
        k = step.ref if step.ref is not None else k - 1
        if k is not None and k < 0:
            break
    return tuple(conds)


def _ref(step: Step, index: int) -> int:
    return step.ref if step.ref is not None else index - 1


def _apply_lets(expr, lets):
    return R.apply_lets(expr, lets)


def _symbolic_equal(a, b, conds, defs, lets=(), quick=False) -> bool:
    a, b = _apply_lets(sp.sympify(a), lets), _apply_lets(sp.sympify(b), lets)
    bind = {}
    for c in conds:
        bind.update(c.bind)
    a, b = sp.sympify(a).xreplace(bind), sp.sympify(b).xreplace(bind)
    a, b = _apply_defines(a, conds), _apply_defines(b, conds)
    subs = {}
    for c in conds:
        for e in c.zero:
            subs[e] = 0
        for base, pos, fixed in c.sums_to_one:
            idx = [*fixed]
            idx.insert(pos, m.k)
            subs[sp.Sum(base[tuple(idx)] if len(idx) > 1 else base[idx[0]], (m.k, 1, m.K))] = 1
    return rewrite.equal(a, b, subs or None, defs, quick)


# ---- numeric ---------------------------------------------------------------------------------
# (N, K) pairs with N != K both ways, so a sum over samples that should run to N and one that runs
# to K give different numbers.
NUMERIC_NK = ((2, 4), (5, 3))  # (N, K)
NUMERIC_D = 3  # features of a linear layer (different from every N)
_STRATEGIES = ("low", "high", "random")


def _free_indices(exprs) -> list:
    out = set()
    for e in exprs:
        out |= {s_ for s_ in e.free_symbols if s_ in rewrite.INDEX_RANGES}
    return sorted(out, key=sp.default_sort_key)


def _index_choices(free, Kv, Nv, conds, rng: random.Random):
    """Assignments of the free indices: each at the low end, the high end and inside its range,
    respecting the case conditions (i = j binds, i != j keeps apart)."""
    bound = {}
    for c in conds:
        bound.update(c.bind)
    distinct = [pair for c in conds for pair in c.distinct]
    sizes = {m.K: Kv, m.N: Nv, rewrite.D: NUMERIC_D}
    out = []
    for strategy in _STRATEGIES:
        for attempt in range(50):
            vals = {}
            for pos, s_ in enumerate(free):
                lo, hi = rewrite.INDEX_RANGES[s_]
                lo, hi = int(lo.xreplace(sizes)), int(hi.xreplace(sizes))
                if attempt or strategy == "random":
                    vals[s_] = rng.randint(lo, hi)
                elif (
                    strategy == "low"
                    or (strategy == "low-high" and pos % 2 == 0)
                    or (strategy == "high-low" and pos % 2 == 1)
                ):
                    vals[s_] = lo
                else:
                    vals[s_] = hi
            for s_, target in bound.items():
                vals[s_] = vals.get(target, target)
            if all(vals.get(a_, a_) != vals.get(b_, b_) for a_, b_ in distinct):
                out.append(vals)
                break
    if not out:
        raise ProofError(
            f"cannot choose indices for conditions {[c.latex for c in conds]} at K={Kv}, N={Nv}"
        )
    return out


class _Draw:
    """Random inputs, drawn lazily and shared by both sides of a claim."""

    def __init__(self, seed, Kv, conds):
        # every value depends only on (seed, the quantity): the same point for every step of a
        # proof, so an expression shared by two consecutive steps is evaluated once
        self.seed, self.Kv, self.vals = seed, Kv, {}
        self.normalised = {base: (pos, fixed) for c in conds for base, pos, fixed in c.sums_to_one}

    def rng(self, *key):
        return random.Random(zlib.crc32(f"{self.seed}|{key}".encode()))

    def indexed(self, base, idx):
        key = (base, idx)
        if key not in self.vals:
            if base in self.normalised:  # the whole vector over the class index, normalised
                pos, _ = self.normalised[base]
                vec = {}
                for c in range(1, self.Kv + 1):
                    other = list(idx)
                    other[pos] = c
                    vec[(base, tuple(other))] = mpmath.mpf(
                        self.rng("n", base.name, tuple(other)).uniform(0.05, 1.0)
                    )
                total = mpmath.fsum(vec.values())
                for kk, v in vec.items():
                    self.vals.setdefault(kk, v / total)
            else:
                name = base.name
                lo, hi = (
                    (0.05, 0.95)
                    if name in ("p", "P")
                    else (0.05, 1.0)
                    if name in ("y", "Y", "w", "ytilde")
                    else (-3.0, 3.0)
                )
                self.vals[key] = mpmath.mpf(self.rng(base.name, idx).uniform(lo, hi))
        return self.vals[key]

    def symbol(self, sym):
        if sym not in self.vals:
            name = sym.name
            rng = self.rng("s", name)
            if sym.is_integer:  # an integer other than an index (the exponent n of 2^n)
                v = mpmath.mpf(rng.randint(-40, 40))
            elif name in ("yhat", "sigma"):
                v = mpmath.mpf(rng.uniform(0.05, 0.95))
            elif name == "y":
                v = mpmath.mpf(rng.uniform(0.0, 1.0))
            elif name in ("w_+", "epsilon"):
                v = mpmath.mpf(rng.uniform(0.05, 1.0))
            else:
                v = mpmath.mpf(rng.uniform(-3.0, 3.0))
            self.vals[sym] = v
        return self.vals[sym]


def _ev(e, env, draw):
    """Evaluate ``e`` with mpmath: sums over their concrete ranges, deltas as 0/1."""
    if e.is_Number:
        return mpmath.mpf(e.p) / e.q if e.is_Rational else mpmath.mpf(str(e))
    if e.is_NumberSymbol:
        return mpmath.mpf(e.evalf(DPS + 10))
    if isinstance(e, sp.Symbol):
        return mpmath.mpf(env[e]) if e in env else draw.symbol(e)
    if isinstance(e, sp.Indexed):
        return draw.indexed(e.base, tuple(int(_ev(a_, env, draw)) for a_ in e.indices))
    if isinstance(e, sp.Add):
        return mpmath.fsum(_ev(a_, env, draw) for a_ in e.args)
    if isinstance(e, sp.Mul):
        return mpmath.fprod(_ev(a_, env, draw) for a_ in e.args)
    if isinstance(e, sp.Pow):
        base, ex = _ev(e.base, env, draw), _ev(e.exp, env, draw)
        return base ** (int(ex) if ex == int(ex) else ex)
    if isinstance(e, sp.exp):
        return mpmath.exp(_ev(e.args[0], env, draw))
    if isinstance(e, sp.log):
        return mpmath.log(_ev(e.args[0], env, draw))
    if isinstance(e, sp.KroneckerDelta):
        a_, b_ = (_ev(x, env, draw) for x in e.args)
        return mpmath.mpf(1 if a_ == b_ else 0)
    if isinstance(e, sp.factorial):
        return mpmath.factorial(_ev(e.args[0], env, draw))
    if isinstance(e, iverson):  # a constant of the derivation, as a switch: any value
        return draw.symbol(sp.Symbol(sp.srepr(e)))
    if hasattr(e, "definition") and callable(e.definition):  # a named function (LinearScore)
        return _ev(e.definition(), env, draw)
    if isinstance(e, sp.Sum):
        ((v, lo, hi),) = e.limits
        lo, hi = int(_ev(lo, env, draw)), int(_ev(hi, env, draw))
        total = []
        for val in range(lo, hi + 1):
            inner = dict(env)
            inner[v] = val
            total.append(_ev(e.function, inner, draw))
        return mpmath.fsum(total)
    raise ProofError(f"the numeric check cannot evaluate {sp.sstr(e)}")


def _prepare(expr, defs, conds, lets):
    """Unfold names, apply the conditions' definitions, evaluate derivatives (general K)."""
    key = (expr, tuple(defs or ()), tuple(id(c) for c in conds), tuple(id(v) for _, v in lets))
    if key not in _PREPARED:
        _KEEP.append((conds, lets))  # keeps the ids in the key from being reused
        e = _apply_lets(sp.sympify(expr), lets)
        bind = {}
        for c in conds:
            bind.update(c.bind)
        e = m.unfold(_apply_defines(e.xreplace(bind), conds), defs)
        _PREPARED[key] = rewrite.derivatives_first(rewrite.series_first(e))
    return _PREPARED[key]


_PREPARED: dict = {}
_VALUES: dict = {}
_KEEP: list = []


def _value(expr, env, seed, Kv, conds):
    key = (
        expr,
        seed,
        tuple(sorted((str(k_), v) for k_, v in env.items())),
        tuple(id(c) for c in conds),
    )
    if key not in _VALUES:
        _KEEP.append(conds)
        _VALUES[key] = _ev(expr, env, _Draw(seed, Kv, conds))
    return _VALUES[key]


def _numeric_equal(a, b, conds, defs, seed, lets=()) -> tuple:
    """Both sides at the same random points: (N, K) pairs with N != K, indices at the low end,
    the high end and inside their ranges. ``seed`` is the proof's, so consecutive steps share
    their points (and an expression shared by two steps is evaluated once)."""
    rng = random.Random(seed)
    ea, eb = _prepare(a, defs, conds, lets), _prepare(b, defs, conds, lets)
    free = _free_indices((ea, eb))
    with mpmath.workdps(DPS + 10):
        tol = mpmath.mpf(10) ** (-(DPS - 10))
        for Nv, Kv in NUMERIC_NK:
            for idx in _index_choices(free, Kv, Nv, conds, rng):
                env = {m.K: Kv, m.N: Nv, rewrite.D: NUMERIC_D, **idx}
                va, vb = _value(ea, env, seed, Kv, conds), _value(eb, env, seed, Kv, conds)
                if abs(va - vb) > tol * max(1, abs(va), abs(vb)):
                    return False, (
                        f"K={Kv}, N={Nv}, indices {idx}: "
                        f"{mpmath.nstr(va, 15)} != {mpmath.nstr(vb, 15)}"
                    )
    return True, ""


def _conditioned(expr, conds, lets=()):
    """Apply the case bindings and definitions in force; return (expr, substitutions)."""
    bind = {}
    for c in conds:
        bind.update(c.bind)
    expr = _apply_defines(sp.sympify(expr).xreplace(bind), conds)
    subs = {}
    for c in conds:
        for e in c.zero:
            subs[e] = 0
            if isinstance(e, sp.KroneckerDelta):
                subs[sp.KroneckerDelta(*reversed(e.args), evaluate=False)] = 0
        for base, pos, fixed in c.sums_to_one:
            idx = [*fixed]
            idx.insert(pos, m.k)
            subs[sp.Sum(base[tuple(idx)] if len(idx) > 1 else base[idx[0]], (m.k, 1, m.K))] = 1
    expr = expr.xreplace({k_: v for k_, v in subs.items() if not isinstance(k_, sp.Sum)})
    return expr, {k_: v for k_, v in subs.items() if isinstance(k_, sp.Sum)}


def _apply_rules(rules, expr, lets):
    """The rules applied in turn until nothing changes: (result, the rules that changed it)."""
    key = (tuple(rules), expr, tuple(id(v) for _, v in lets))
    if key not in _RULED:
        _KEEP.append(lets)
        out, used = expr, set()
        for _ in range(6):
            new = out
            for rule in rules:
                applied = R.apply(rule, new, lets)
                if applied != new:
                    used.add(rule)
                new = applied
            if new == out:
                break
            out = new
        _RULED[key] = (out, frozenset(used))
    return _RULED[key]


_RULED: dict = {}


def rule_holds(
    before: sp.Expr, after: sp.Expr, rules: tuple, conds: tuple, lets: tuple = ()
) -> bool:
    """Is ``after`` an application of ``rules`` to ``before`` (plus algebra)?

    Both sides get the rules applied wherever they apply; what the rules did not touch
    (derivatives, sums) stays opaque, and the rest must agree by algebra.
    """
    return not rule_problems(before, after, rules, conds, lets)


def rule_problems(
    before: sp.Expr, after: sp.Expr, rules: tuple, conds: tuple, lets: tuple = ()
) -> str:
    """'' when ``after`` is ``rules`` applied to ``before``; else what is wrong."""
    a, subs = _conditioned(before, conds, lets)
    b, _ = _conditioned(after, conds, lets)
    active = [r for r in rules if r.checked and r.kind not in ("case", "assumption")]
    ra, used_a = _apply_rules(active, a, lets)
    rb, used_b = _apply_rules(active, b, lets)
    if not R.algebra_equal(ra, rb, subs):
        return "not an application"
    # every rule named must do something here (d z_a / d z_b = delta_ab is a closure every
    # derivative rule uses, so "derivative of a variable" is exempt)
    idle = [r.words for r in active if r not in used_a | used_b and r.kind != "d_var"]
    return f"names {', '.join(idle)}, which does not apply here" if idle else ""


def _rules_text(step) -> str:
    return ", ".join(r.words for r in step.rules) or "no rule given"


def verify(proof: Proof) -> dict:
    """Check every step of ``proof``; raise ProofError on the first that does not hold.

    Returns counts: steps, rule-verified steps (every step whose rule is not plain algebra),
    algebra steps, facts.  Steps are numbered from 1, as in the documents.
    """
    from . import derive  # late import: derive does not depend on proofs

    counts = {
        "steps": len(proof.steps),
        "definitions": 0,
        "definitions_checked": 0,
        "rule_verified": 0,
        "algebra": 0,
        "facts": len(proof.facts),
    }
    for index in range(len(proof.steps)):
        step = proof.steps[index]
        number = index + 1
        conds = conditions_at(proof, index)
        head = f"proof {proof.name!r}, step {number} ({_rules_text(step)})"
        if not step.rules:
            raise ProofError(f"{head}: the step names no rule")
        if step.lhs is not None:  # a chain of its own: its first line equals its lhs
            before_expr = step.lhs
        elif index == 0:
            before_expr = None
        else:
            before_expr = proof.steps[_ref(step, index)].expr
        if before_expr is None:  # the first line: the definition being differentiated
            if [r.kind for r in step.rules] != ["definition"]:
                raise ProofError(f"{head}: the first step must be the definition")
            counts["definitions"] += 1
            if proof.result is not None:
                raw = derive.result(proof.result).raw
                if not _symbolic_equal(step.expr, raw, conds, proof.defs, proof.let):
                    raise ProofError(
                        f"{head}: {sp.sstr(step.expr)} is not the derivative of the "
                        f"definition ({sp.sstr(raw)})"
                    )
                counts["definitions_checked"] += 1
            continue
        if any(r.kind == "definition" for r in step.rules):
            raise ProofError(f"{head}: only the first line of a proof is its definition")
        where = f"{head}: {sp.sstr(before_expr)}  =  {sp.sstr(step.expr)}"
        from .lang.text import text  # the line as a reader sees it

        if sp.sympify(step.expr) == sp.sympify(before_expr) or text(step.expr) == text(before_expr):
            raise ProofError(f"{where}: the step repeats the line it follows")
        ok, why = _numeric_equal(
            before_expr,
            step.expr,
            conds,
            proof.defs,
            seed=zlib.crc32(proof.name.encode()),
            lets=proof.let,
        )
        if not ok:
            raise ProofError(f"{where}: false: the two sides differ at {why}")
        if not _symbolic_equal(before_expr, step.expr, conds, proof.defs, proof.let):
            raise ProofError(
                f"{where}: not proved: the two sides agree at every sampled point, "
                f"but SymPy cannot show them equal for general K and N (a range, "
                f"a case or an assumption may be missing, or the step is beyond "
                f"the checker)"
            )
        kinds = [r.kind for r in step.rules]
        if step.given:  # a case or an assumption must be the reason, and must be needed
            if not {"case", "assumption"} & set(kinds):
                raise ProofError(
                    f"{where}: introduces {', '.join(c.latex for c in step.given)} "
                    f"but names neither a case nor an assumption"
                )
            outer = tuple(c for c in conds if c not in step.given)
            if _symbolic_equal(before_expr, step.expr, outer, proof.defs, proof.let, quick=True):
                raise ProofError(
                    f"{where}: the condition {', '.join(c.latex for c in step.given)}"
                    f" is not needed here (misplaced)"
                )
        elif {"case", "assumption"} & set(kinds):
            raise ProofError(f"{where}: names a case or an assumption but introduces none")
        if all(k_ == "algebra" for k_ in kinds):
            # algebra alone: no derivative evaluated, no name unfolded, no sum collapsed
            if not rule_holds(before_expr, step.expr, (), conds, proof.let):
                raise ProofError(
                    f"{where}: the step is not algebra alone (it evaluates a "
                    f"derivative, collapses a sum or unfolds a name: say which)"
                )
            counts["algebra"] += 1
            continue
        for rule in step.rules:  # a lemma is a claim too: checked before it is used
            if rule.lemma:
                lhs, rhs = rule.lemma
                if not _symbolic_equal(lhs, rhs, conds, proof.defs, proof.let):
                    raise ProofError(
                        f"{head}: its lemma {sp.sstr(lhs)} = {sp.sstr(rhs)} "
                        f"does not hold (symbolic check)"
                    )
                ok, why = _numeric_equal(lhs, rhs, conds, proof.defs, seed=index, lets=proof.let)
                if not ok:
                    raise ProofError(f"{head}: its lemma is false: {why}")
        problem = rule_problems(before_expr, step.expr, step.rules, conds, proof.let)
        if problem == "not an application":
            raise ProofError(
                f"{where}: the step is not an application of "
                f"{_rules_text(step)} to the line it follows"
            )
        if problem:
            raise ProofError(f"{where}: the step {problem}")
        counts["rule_verified"] += 1
    for fact in proof.facts:
        ok, why = fact.check()
        if not ok:
            raise ProofError(f"proof {proof.name!r}, fact {fact.name or fact.latex}: {why}")
    if proof.result is not None and proof.claim is not None:  # what later proofs cite
        if not _symbolic_equal(proof.claim, derive.result(proof.result).raw, (), proof.defs):
            raise ProofError(
                f"proof {proof.name!r}: its claim {sp.sstr(proof.claim)} is not "
                f"the derivative the engine differentiated"
            )
    if proof.result is not None:
        res = derive.result(proof.result)
        last = len(proof.steps) - 1
        conds = conditions_at(proof, last)
        if not _symbolic_equal(proof.steps[-1].expr, res.closed, conds, proof.defs):
            raise ProofError(
                f"proof {proof.name!r}: its last step {sp.sstr(proof.steps[-1].expr)} "
                f"is not the engine's closed form {sp.sstr(res.closed)}"
            )
    return counts
