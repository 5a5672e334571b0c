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

import mpmath
import sympy as sp

from . import definitions
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
    named: tuple = ()  # ((output symbol, its definition), ...) a defined function's form uses

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
def _builtin_results() -> dict:
    return {spec.name: _derive(spec) for spec in SPECS}


@cache
def results() -> dict:
    """Every derived closed form, by name (computed once per process, and again after a new
    definition): symce's own, then each defined activation's derivative."""
    out = dict(_builtin_results())
    for act in definitions.activations():
        out[act.grad_name] = _derive_activation(act)
    for loss in definitions.losses():
        out[loss.grad_name] = _derive_loss(loss)
    return out


definitions.on_change(results.cache_clear)


# ----------------------------------------------------------------------------------------------
# A defined activation: its derivative, and a closed form in its own output (or the sigmoid's)
# found by fitting, then proved.
# ----------------------------------------------------------------------------------------------
_FIT_POINTS = tuple(sp.Rational(v, 7) for v in (-17, -11, -6, -2, 1, 4, 9, 13, 19, 23, 5, -4))


def output_candidates(act: definitions.Activation) -> tuple:
    """The outputs a closed form of ``act``'s derivative may be written in, in order of
    preference: its own output u = f(x), the sigmoid's, then each activation defined before it."""
    x = act.var
    out = [(act.output, act.plain), (m.s, m.sigmoid(x))]
    for other in definitions.activations():
        if other.name == act.name:
            break
        out.append((other.output, other.plain.xreplace({other.var: x})))
    return tuple(out)


def _basis(u, x, mixed: bool) -> list:
    """Monomials in u of degree <= 3, or in (x, u) of total degree <= 3."""
    if not mixed:
        return [u**b for b in range(4)]
    return [x**a * u**b for a in range(4) for b in range(4) if a + b <= 3]


def _rational(c) -> sp.Rational | None:
    """A coefficient fitted at 60 digits as a small rational, or None."""
    r = sp.nsimplify(sp.Float(mpmath.nstr(c, 45), 45), rational=True, tolerance=1e-30)
    if r.q > 1000 or abs(r.p) > 10**6:
        return None
    return r


def _fit(raw, u, h, x, basis):
    """sum_j c_j b_j(u, x) with small rational c_j equal to ``raw`` once u = h(x), or None."""
    n = len(basis)
    rows, rhs = [], []
    f_raw = sp.lambdify(x, raw, "mpmath")
    f_b = sp.lambdify((u, x), basis, "mpmath")
    f_h = sp.lambdify(x, h, "mpmath")
    with mpmath.workdps(60):
        for v in _FIT_POINTS:
            xv = mpmath.mpf(v.p) / v.q
            rows.append(f_b(f_h(xv), xv))
            rhs.append(f_raw(xv))
        try:
            coef = mpmath.lu_solve(mpmath.matrix(rows[:n]), mpmath.matrix(rhs[:n]))
        except ZeroDivisionError:
            return None
        for row, want in zip(rows, rhs):
            got = mpmath.fsum(c * b for c, b in zip(coef, row))
            if abs(got - want) > mpmath.mpf(10) ** -40 * max(1, abs(want)):
                return None
    cs = [_rational(c) for c in coef]
    if any(c is None for c in cs):
        return None
    g = sp.Add(*[c * b for c, b in zip(cs, basis)])
    if g == 0 or sp.simplify(g.subs(u, h) - raw) != 0:
        return None
    return min((g, sp.factor(g)), key=sp.count_ops)


def closed_in_outputs(raw: sp.Expr, x: sp.Symbol, candidates: tuple) -> tuple:
    """(closed form, ((symbol, definition), ...) it uses): the simplest polynomial in one
    candidate output (then in x and one output) equal to ``raw``; (raw simplified, ()) if none."""
    for mixed in (False, True):
        found = []
        for rank, (u, h) in enumerate(candidates):
            g = _fit(raw, u, h, x, _basis(u, x, mixed))
            if g is not None:
                found.append((sp.count_ops(g), rank, g, ((u, h),)))
        if found:
            _, _, g, named = min(found, key=lambda t: t[:2])
            return g, named
    return sp.factor(sp.cancel(raw)), ()


def latex_name(name: str) -> str:
    """A defined function's name in LaTeX: upright, underscores escaped."""
    return r"\operatorname{" + name.replace("_", r"\_") + "}"


def _derive_activation(act) -> Result:
    spec = Spec(
        act.grad_name,
        f"Derivative of {act.name}",
        act.plain,
        act.var,
        r"\frac{d\," + latex_name(act.name) + "}{d" + sp.latex(act.var) + "}",
    )
    raw = sp.diff(spec.definition, spec.wrt)
    closed, named = closed_in_outputs(raw, act.var, output_candidates(act))
    return Result(spec, raw, closed, closed, (), named)


def _derive_loss(loss) -> Result:
    """A defined loss's gradient with respect to its input: the derivative of its term, in its
    simplest form (the term is a function of the input and the target alone: no output to name)."""
    v = loss.input
    spec = Spec(
        loss.grad_name,
        f"Gradient of {loss.name}",
        loss.plain,
        v,
        r"\frac{\partial\, " + latex_name(loss.name) + r"}{\partial " + sp.latex(v) + "}",
    )
    raw = sp.diff(spec.definition, v)
    if loss.grad is not None:  # the declared closed form, in the quantities it names
        closed = definitions.elementary(loss.grad)
        named = tuple((s, definitions.elementary(e)) for s, e in loss.where)
        return Result(spec, raw, closed, closed, (), named)
    closed = _simplest(raw, [o.symbol for o in loss.options if o.switch])
    return Result(spec, raw, closed, closed)


def _simplest(raw: sp.Expr, switches: list) -> sp.Expr:
    """The derivative as the rules give it, unless a simpler form exists (on a tie, as it is);
    where a switch s picks a form, each form on its own, as s a + (1 - s) b."""
    if switches:
        s, rest = switches[0], switches[1:]
        on, off = (_simplest(sp.expand(raw.xreplace({s: v})), rest) for v in (1, 0))
        if on == off:
            return on
        return s * on + (1 - s) * off
    # simplify is slow on a large derivative (focal loss's)
    forms = [raw, sp.factor(sp.cancel(raw))]
    if sp.count_ops(raw) < 60:
        forms.append(sp.simplify(raw))
    return min(forms, key=sp.count_ops)


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


def _plain_text(expr) -> str:
    out = sp.sstr(expr).replace("sigmoid(", "σ(").replace("sigma", "σ")
    out = out.replace("**2", "²").replace("**3", "³").replace("**", "^")
    out = out.replace("gamma", "γ").replace("alpha", "α")
    return out.replace(" - ", " − ").replace("*", " ").replace("-", "−")


def display(name: str) -> Display | None:
    """The display form of the closed form ``name``: symce's own (:data:`DISPLAY`), or a defined
    function's closed form as the engine found it; None for a name that has none."""
    if name in DISPLAY:
        return DISPLAY[name]
    for loss in definitions.losses():  # a declared closed form, as its declaration writes it
        if loss.grad_name == name and loss.grad is not None:
            return Display(loss.grad, _plain_text(loss.grad))
    res = results().get(name)
    if res is None:
        return None
    for loss in definitions.losses():  # a switch's forms, each on its own
        if loss.grad_name == name and any(o.switch for o in loss.options):
            return Display(
                definitions.switched(res.closed, loss.options),
                _switched_text(res.closed, loss.options),
            )
    return Display(res.closed, _plain_text(res.closed))


def _switched_text(expr, opts) -> str:
    """A closed form with switches as text: "b; a with s" (the default form first)."""
    for o in opts:
        if o.switch and o.symbol in expr.free_symbols:
            on, off = (_switched_text(expr.xreplace({o.symbol: v}), opts) for v in (1, 0))
            if o.default:
                return f"{on}; {off} without {o.name}"
            return f"{off}; {on} with {o.name}"
    return _plain_text(expr)


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
