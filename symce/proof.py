"""Stage 3a — proofs: ordered derivation steps, each equality checked by SymPy before export.

A :class:`Proof` is a list of :class:`Step` records ``(expr, reason)``.  Step k claims
``expr_k = expr_ref`` where ``ref`` is the previous step unless the step names another (a case
split restarts from the step before the split).  :func:`verify` checks every claim twice:

1. **symbolically** for general K — both sides unfolded to the inputs (output symbols replaced by
   their definitions), derivatives evaluated, sums collapsed with the rules of
   :mod:`symce.rewrite`, then the difference simplified to 0;
2. **numerically** — K, the free indices and the case conditions instantiated (K = 3 and K = 5,
   several index choices), every input drawn at random, both sides evaluated with mpmath at
   ``DPS`` digits; they must agree to 10^-(DPS-10).

A step may carry conditions (:class:`Condition`): a case (i = j, i ≠ j) or an assumption
(sum_k y_k = 1).  A condition holds from the step that introduces it to the end of its block; the
checker applies it to both sides.  A failed check raises :class:`ProofError` naming the proof, the
step number, the reason given and both expressions.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from . import model as m
from . import rewrite

DPS = 40
NUMERIC_K = (3, 5)


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
    bind: dict = field(default_factory=dict)
    zero: tuple = ()
    sums_to_one: tuple = ()         # (IndexedBase, index position of the class, other fixed indices)
    distinct: tuple = ()
    define: dict = field(default_factory=dict)   # IndexedBase -> (lambda *indices: definition)


def _apply_defines(expr, conds):
    for c in conds:
        for base, fn in c.define.items():
            expr = expr.replace(lambda e, b=base: isinstance(e, sp.Indexed) and e.base == b,
                                lambda e, f=fn: sp.sympify(f(*e.indices)))
    return expr


@dataclass(frozen=True)
class Step:
    expr: sp.Expr
    reason: str                     # LaTeX text (inside \text{} unless it starts with '$')
    ref: int | None = None          # index of the step this one equals (default: previous)
    given: tuple = ()               # Conditions introduced at this step (they stay in its block)
    block: str = ""                 # a heading that starts a new block (e.g. "Case i = j")


@dataclass(frozen=True)
class Proof:
    name: str
    title: str
    lhs: str                        # LaTeX of what is being derived, e.g. \frac{\partial p_i}{\partial z_j}
    steps: tuple
    result: str | None = None       # name of the derive.Result the last step must equal
    defs: tuple = ()                # output symbols in force (p, S, s, P, S_n)
    intro: str = ""                 # a short paragraph (LaTeX) before the steps
    outro: str = ""                 # after the steps
    sources: str = ""               # which seed articles it follows
    where: tuple = ()               # glossary lines (LaTeX)


# ----------------------------------------------------------------------------------------------
def conditions_at(proof: Proof, index: int) -> tuple:
    """The conditions in force at step ``index``: those of the steps in its chain of refs."""
    conds, seen, k = [], set(), index
    while k is not None and k >= 0 and k not in seen:
        seen.add(k)
        step = proof.steps[k]
        conds.extend(step.given)
        k = step.ref if step.ref is not None else k - 1
        if k is not None and k < 0:
            break
    return tuple(conds)


def _ref(step: Step, index: int) -> int:
    return step.ref if step.ref is not None else index - 1


def _symbolic_equal(a, b, conds, defs) -> bool:
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
    return rewrite.equal(a, b, subs or None, defs)


# ---- numeric ---------------------------------------------------------------------------------
_INDEX_SYMBOLS = (m.i, m.j, m.t, m.m)


def _index_choices(Kv: int, conds, rng: random.Random, count: int = 3):
    """Assignments of the free class/sample indices respecting the conditions."""
    bound = {}
    for c in conds:
        bound.update(c.bind)
    distinct = [pair for c in conds for pair in c.distinct]
    out = []
    for _ in range(count * 20):
        vals = {s_: rng.randint(1, Kv) for s_ in _INDEX_SYMBOLS}
        for s_, target in bound.items():
            vals[s_] = vals[target] if target in vals else target
        if all(vals[a] != vals[b] for a, b in distinct):
            out.append(vals)
        if len(out) == count:
            break
    if len(out) < count:
        raise ProofError(f"cannot choose indices for conditions {[c.latex for c in conds]} at K={Kv}")
    return out


def _numeric_values(expr, Kv, Nv, conds, rng: random.Random):
    """Random values (40-digit Floats) for every input symbol / Indexed in ``expr``."""
    vals = {}
    normalised = {base: (pos, fixed) for c in conds for base, pos, fixed in c.sums_to_one}
    for atom in sorted(expr.atoms(sp.Indexed), key=sp.default_sort_key):
        if atom in vals:
            continue
        base = atom.base
        if base in normalised:
            pos, _ = normalised[base]
            # draw a whole normalised vector over the class index, the other indices fixed
            others = list(atom.indices)
            total, vec = 0, {}
            for c in range(1, Kv + 1):
                idx = list(others)
                idx[pos] = c
                key = base[tuple(idx)] if len(idx) > 1 else base[idx[0]]
                vec[key] = sp.Float(rng.uniform(0.05, 1.0), DPS)
                total += vec[key]
            for key, v in vec.items():
                vals[key] = v / total  # at DPS digits, so the sum is 1 to DPS digits
            continue
        lo, hi = (0.05, 0.95) if base.name in ("p", "P") else (-3.0, 3.0)
        if base.name in ("y", "Y", "w", "ytilde"):
            lo, hi = 0.05, 1.0
        vals[atom] = sp.Float(rng.uniform(lo, hi), DPS)
    for sym in sorted(expr.free_symbols - set(vals), key=sp.default_sort_key):
        if isinstance(sym, sp.Indexed) or sym in (m.K, m.N) or sym.is_integer:
            continue
        if sym.name in ("yhat", "sigma"):
            vals[sym] = sp.Float(rng.uniform(0.05, 0.95), DPS)
        elif sym.name in ("y",):
            vals[sym] = sp.Float(rng.uniform(0.0, 1.0), DPS)
        elif sym.name in ("w_+", "epsilon"):
            vals[sym] = sp.Float(rng.uniform(0.05, 1.0), DPS)
        else:
            vals[sym] = sp.Float(rng.uniform(-3, 3), DPS)
    return vals


def _instantiate(expr, Kv, Nv, idx, defs, conds):
    expr = m.unfold(_apply_defines(sp.sympify(expr), conds), defs)
    # summation dummies that reuse an index name (i, k, n) are renamed before the free indices
    # are replaced; xreplace (unlike subs) also reaches the variables of a Derivative
    def fresh(total):
        (v, lo, hi), = total.limits
        d = sp.Dummy(v.name, integer=True, positive=True)
        return sp.Sum(total.function.xreplace({v: d}), (d, lo, hi))

    expr = expr.replace(lambda e: isinstance(e, sp.Sum) and len(e.limits) == 1, fresh)
    expr = expr.xreplace({m.K: sp.Integer(Kv), m.N: sp.Integer(Nv),
                          **{s_: sp.Integer(v) for s_, v in idx.items()}})
    return expr.doit()


def _numeric_equal(a, b, conds, defs, seed) -> tuple:
    rng = random.Random(seed)
    for Kv in NUMERIC_K:
        Nv = Kv  # sample indices are drawn from the same range as class indices
        for idx in _index_choices(Kv, conds, rng):
            ea = _instantiate(a, Kv, Nv, idx, defs, conds)
            eb = _instantiate(b, Kv, Nv, idx, defs, conds)
            zero = [sp.Integer(0)]
            for c in conds:
                zero.extend(c.zero)
            vals = _numeric_values(ea + eb, Kv, Nv, conds, rng)
            with mpmath.workdps(DPS + 10):
                va = sp.N(ea.xreplace(vals), DPS + 5)
                vb = sp.N(eb.xreplace(vals), DPS + 5)
                if not (va.is_number and vb.is_number):
                    return False, f"not numeric after instantiation at K={Kv}: {va} vs {vb}"
                scale = max(1, abs(va), abs(vb))
                if abs(va - vb) > sp.Float(10) ** (-(DPS - 10)) * scale:
                    return False, f"K={Kv}, indices {idx}: {va} != {vb}"
    return True, ""


def verify(proof: Proof) -> None:
    """Check every step of ``proof``; raise ProofError on the first that does not hold."""
    from . import derive  # late import: derive does not depend on proofs

    for index in range(1, len(proof.steps)):
        step = proof.steps[index]
        ref = _ref(step, index)
        before = proof.steps[ref]
        conds = conditions_at(proof, index)
        where = (f"proof {proof.name!r}, step {index} ({step.reason}): "
                 f"{sp.sstr(before.expr)}  =  {sp.sstr(step.expr)}")
        if not _symbolic_equal(before.expr, step.expr, conds, proof.defs):
            raise ProofError(f"{where}: SymPy cannot show the two sides equal (general K)")
        ok, why = _numeric_equal(before.expr, step.expr, conds, proof.defs,
                                 seed=zlib.crc32(f"{proof.name}:{index}".encode()))
        if not ok:
            raise ProofError(f"{where}: numeric check failed: {why}")
    if proof.result is not None:
        res = derive.result(proof.result)
        last = len(proof.steps) - 1
        conds = conditions_at(proof, last)
        if not _symbolic_equal(proof.steps[-1].expr, res.closed, conds, proof.defs):
            raise ProofError(f"proof {proof.name!r}: its last step {sp.sstr(proof.steps[-1].expr)} "
                             f"is not the engine's closed form {sp.sstr(res.closed)}")
