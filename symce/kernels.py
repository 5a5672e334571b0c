"""Stage 5 — kernels: the kernel registry, every emitted kernel as data.

A :class:`Kernel` names its family (which loop structure the templates lay out), its inputs and
outputs with their shapes, and **slots**: named SymPy expressions over the kernel-local scalar
symbols below.  Each slot comes from the derivation engine (:mod:`symce.derive`) or from a model
definition (:mod:`symce.model`), passed through the stable rewrites of :mod:`symce.stable`;
nothing is retyped.  The printers turn slots into code; the templates lay the code out.

Families and the local symbols their loops bind
-----------------------------------------------
``elementwise``  x (input), out
``rowwise``      per row of K logits: z (z_k), shift (row max; if that is not finite, the
                 largest finite logit, or 0), a = the argmax;
                 per class the slots zs = fl(z - shift), zlo = its exact rounding error (TwoSum;
                 zs + zlo = z - shift exactly), e = exp(zs)(1 + zlo) = exp(z - shift) to first
                 order in zlo (|zlo| <= ulp(zs)/2, so the neglected term is below 2^-100
                 relative), em1 = e - 1 computed without cancellation; then
                 Srest = S - 1 = sum_{k != a} e_k + em1_a (em1_a is exactly 0 for a finite max,
                 -1 for a row of -inf, +inf for +inf).  Writing S = 1 + Srest and
                 log S = log1p(Srest) keeps log p_a accurate when p_a is close to 1, and
                 pc = 1 - p = (Srest - em1) / (1 + Srest) keeps 1 - p_a accurate too.
                 g (upstream g_k), gesum = sum_k g_k e_k (the row sum of the slot dot_term),
                 dot = <g, p> (slot), pc_i (pc of class i),
                 p_i, p_j, delta (Kronecker delta of i and j) for the Jacobian
``ce_probs``     per row: p (p_k; a defined loss's input is v, any real), yt (effective target
                 y~_k), ysum = sum_k y~_k
``ce_logits``    per row: z, shift, zs, zlo, e, em1, Srest, p, yt, ysum (rowwise slots zs, zlo, e,
                 em1 and p are repeated in the kernel's slots)
``bce``          per element: x (logit) or prob, y (target), w (weight), pw (pos_weight)
Effective targets (both CE families): with integer label t, hot = [k == t], w_t = weight[t],
w_k = weight[k], smoothing eps and K classes: y~_k = (1 - eps) w_t hot + eps w_k / K; with a
probability target y_k: y~_k = w_k ((1 - eps) y_k + eps / K).  Reductions scale the summed row
losses (and the gradients) by 1/divisor for ``mean``: the summed weight w_t of the kept samples
for labels, N for probability targets (PyTorch's rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import sympy as sp

from . import definitions, derive, names, stable
from . import model as m
from .functions import select as fn_select
from .rewrite import CANON_INDEX

# ----------------------------------------------------------------------------------------------
# Kernel-local scalar symbols.  Names are valid identifiers in Python, C and MATLAB.
# ----------------------------------------------------------------------------------------------
x = sp.Symbol("x", real=True)
y = sp.Symbol("y", real=True)
w = sp.Symbol("w", nonnegative=True)
pw = sp.Symbol("pw", nonnegative=True)
prob = sp.Symbol("prob", positive=True)
z = sp.Symbol("z", real=True)
zs = sp.Symbol("zs", real=True)
zlo = sp.Symbol("zlo", real=True)
e = sp.Symbol("e", nonnegative=True)
em1 = sp.Symbol("em1", real=True)
pc = sp.Symbol("pc", nonnegative=True)
pc_i = sp.Symbol("pc_i", nonnegative=True)
gesum = sp.Symbol("gesum", real=True)
shift = sp.Symbol("shift", real=True)
Srest = sp.Symbol("Srest", real=True)
g = sp.Symbol("g", real=True)
dot = sp.Symbol("dot", real=True)
p = sp.Symbol("p", nonnegative=True)
v = sp.Symbol("v", real=True)  # a defined loss's input at the class (any real: log-probabilities)
p_i = sp.Symbol("p_i", nonnegative=True)
p_j = sp.Symbol("p_j", nonnegative=True)
delta = sp.Symbol("delta", nonnegative=True)
yt = sp.Symbol("yt", real=True)
ysum = sp.Symbol("ysum", real=True)
hot = sp.Symbol("hot", nonnegative=True)
w_t = sp.Symbol("w_t", nonnegative=True)
w_k = sp.Symbol("w_k", nonnegative=True)
eps = sp.Symbol("label_smoothing", nonnegative=True)
K = sp.Symbol("K", integer=True, positive=True)

LOCALS = {
    s.name: s
    for s in (
        x,
        y,
        w,
        pw,
        prob,
        z,
        zs,
        zlo,
        e,
        em1,
        pc,
        pc_i,
        gesum,
        shift,
        Srest,
        g,
        dot,
        p,
        v,
        p_i,
        p_j,
        delta,
        yt,
        ysum,
        hot,
        w_t,
        w_k,
        eps,
        K,
    )
}


@dataclass(frozen=True)
class Arg:
    """An input or output: its name, role and shape (in NumPy's row-major convention)."""

    name: str
    kind: str  # "real" | "labels" | "target" (labels or probabilities) | "option"
    shape: str  # e.g. "(N, K)", "(N,)", "(K,)", "any", "scalar"
    doc: str
    # the values every language checks an input against (errors "domain"): "[0, 1]" for the
    # probabilities the loss kernels take; "" for none
    domain: str = ""


@dataclass(frozen=True)
class Kernel:
    """One kernel: what it computes, from which derivation, with which stable slot expressions."""

    name: str
    family: str
    summary: str  # one line (the H1 line in MATLAB, the docstring's first)
    formula: str  # plain-text formula, for docs and comments
    latex: str  # the same in LaTeX, for the README table
    inputs: tuple
    outputs: tuple
    slots: dict = field(hash=False)  # slot name -> SymPy expression over LOCALS
    derivation: str | None = None  # name of the derive.Result it evaluates
    options: tuple = ()  # option names this kernel accepts (PyTorch keywords)
    # an elementwise kernel's exact value over x (the model's or a declaration's definition, or
    # its raw derivative): what the references evaluate at high precision, not the slots
    raw: sp.Expr | None = field(default=None, hash=False)
    example: tuple | None = None  # a defined function's worked example's inputs (else examples.py)
    defined_in: str = ""  # the module that declared it (symce.definitions), "" for symce's own
    # a defined loss's scalar options (symce.definitions.Option), also named in ``options``
    scalars: tuple = ()
    reductions: tuple = ("none", "mean", "sum")  # the values of its reduction option

    @property
    def switches(self) -> tuple:
        """Its switches (the scalar options that pick a form: symce.definitions.switch)."""
        return tuple(o for o in self.scalars if o.switch)

    @property
    def checks_domain(self) -> bool:
        """Whether an input is checked against a domain (probabilities in [0, 1]): every language
        refuses a value outside it (symce.errors "domain")."""
        return any(a.domain for a in self.inputs)

    @property
    def is_loss(self) -> bool:
        """Whether the kernel is a loss or its gradient (families ce_probs, ce_logits, bce)."""
        return self.family in ("ce_probs", "ce_logits", "bce")

    @property
    def nan_row_at_inf(self) -> bool:
        """A row whose max is not finite (it holds +inf, or no finite logit) is NaN throughout in
        this kernel: the kernels that combine the classes' probabilities (the Jacobian, the VJP,
        softmax cross-entropy and its gradient), as PyTorch.  softmax, log_softmax and logsumexp
        keep the limits of the finite classes there (docs/semantics.md)."""
        return self.family == "ce_logits" or self.name in ("softmax_jacobian", "softmax_vjp")

    @property
    def closed_form(self) -> str | None:
        """The derivation's closed form as every document displays it (derive.DISPLAY), or None."""
        shown = derive.display(self.derivation) if self.derivation else None
        return shown.text if shown is not None else None

    @property
    def doc_formula(self) -> str:
        """The formula for the kernels' documentation, with the proved closed form where there is
        one, in the one display form the proofs, README and `symce show` use."""
        closed = self.closed_form
        if closed is None:
            return self.formula
        return f"{self.formula}  [proof {self.derivation}: {closed}]"


# ----------------------------------------------------------------------------------------------
# Slots, each built from the engine or the model.
# ----------------------------------------------------------------------------------------------
def _sigmoid_value():
    # sigma(x): the model's definition, printed through the accurate branch-free sigmoid
    expr, neg = stable.sigmoid_complement(m.s, m.s, x)
    return stable.sigmoid_function(expr, m.s, neg, x)


def _sigmoid_grad():
    closed = derive.result("sigmoid_grad").closed  # sigma (1 - sigma)
    expr, neg = stable.sigmoid_complement(closed, m.s, x)
    return stable.sigmoid_function(expr, m.s, neg, x)  # sigmoid(x) sigmoid(-x)


def _shifted(expr):
    """Shift by the row max, name S = 1 + Srest, then carry z - shift as zs + zlo."""
    total = sp.Dummy("S", positive=True)
    out = stable.shift_logits(expr, lambda _logit: z, shift, total, shifted=(zs, z))  # z_a -> z
    out = stable.log1p_form(out.xreplace({total: 1 + Srest}))
    return stable.compensate(out, zs, zlo, e)


def _row_slots():
    """The per-class quantities every row kernel computes before its outputs."""
    return {
        "zs": z - shift,
        "zlo": stable.two_sum_error(z, -shift),
        "e": stable.compensated_exp(zs, zlo),
        "em1": stable.compensated_expm1(zs, zlo),
        "p": _softmax_p(),
        "pc": stable.complement(_softmax_p(), e, em1),
    }


def _softmax_p():
    return _shifted(m.softmax(m.i))


def _log_softmax():
    return _shifted(sp.expand_log(m.log_softmax(m.i), force=True))


def _logsumexp():
    return _shifted(m.logsumexp())


def _jacobian():
    closed = derive.result("softmax_jacobian").closed  # p_i (delta_ij - p_j)
    local = closed.xreplace({m.p[m.i]: p_i, m.p[m.j]: p_j, sp.KroneckerDelta(m.i, m.j): delta})
    # on the diagonal delta - p_j = 1 - p_i: use the accurate complement pc_i there
    return stable.diagonal_complement(local, delta, p_j, pc_i)


def _vjp_dot():
    """<g, p> = sum_k g_k e_k / (1 + Srest): p's common denominator taken out of the sum, so the
    row's K products are not each rounded by a division (the VJP subtracts dot from g_j)."""
    num, den = sp.fraction(_softmax_p())
    return {"dot_term": g * num, "dot": gesum / den}


def _vjp():
    # (J^T g)_j = sum_i g_i dp_i/dz_j, collapsed by the engine's sum rules: p_j (g_j - <g, p>)
    closed = derive.result("softmax_jacobian").closed
    gb = sp.IndexedBase("g", real=True)
    total = derive.collapse_sums(sp.Sum(gb[m.i] * closed, (m.i, 1, m.K)))
    total, sums = derive.canonical_sums(total)
    (dot_sym,) = sums  # the one remaining sum is <g, p>
    return sp.factor(total.xreplace({dot_sym: dot, gb[m.j]: g, m.p[m.j]: p}))


def _effective_target_label():
    return (1 - eps) * w_t * hot + eps * w_k / K


def _effective_target_soft():
    return w_k * ((1 - eps) * y + eps / K)


def _ce_probs_loss_term():
    # the summand of L = -sum_i y_i log p_i, with the log clamp and 0 * log 0 = 0
    summand = -m.y[m.i] * sp.log(m.p[m.i])
    local = summand.xreplace({m.y[m.i]: yt, m.p[m.i]: p})
    return stable.zero_times_anything(stable.clamp_logs(local), yt)


def _ce_probs_grad():
    closed = derive.result("cross_entropy_grad").closed  # -y_j / p_j
    local = closed.xreplace({m.y[m.j]: yt, m.p[m.j]: p})
    return stable.clamp_denominator(local, probe={p: sp.Rational(1, 2)})


def _ce_logits_loss_term():
    # the summand -y_i log softmax(z)_i with log softmax in its shifted form
    summand = -m.y[m.i] * sp.expand_log(m.log_softmax(m.i), force=True)
    local = _shifted(summand).xreplace({m.y[m.i]: yt})
    return stable.zero_times_anything(local, yt)


def _ce_logits_grad():
    general = derive.result("softmax_cross_entropy_grad").general  # p_j sum_k y_k - y_j
    _, sums = derive.canonical_sums(general)
    ((sym, total),) = sums.items()
    local = general.xreplace({total.xreplace({CANON_INDEX: m.k}): ysum}).xreplace(
        {m.p[m.j]: p, m.y[m.j]: yt}
    )
    return stable.split_unit(local, yt, p, pc)  # p (ysum - yt) - pc yt


def _bce_loss():
    # -(y log prob + (1 - y) log(1 - prob)), each log clamped at -100
    return stable.clamp_logs(m.binary_cross_entropy(prob, y))


def _bce_grad():
    closed = derive.result("binary_cross_entropy_grad").closed.xreplace({m.yhat: prob, m.y_bin: y})
    return stable.clamp_denominator(closed, probe={prob: sp.Rational(1, 2)})


def _sigmoid_bce_loss():
    # -(w+ y log sigma(x) + (1 - y) log(1 - sigma(x))) with log sigma -> -softplus(-x)
    loss = m.sigmoid_weighted_binary_cross_entropy(x, y, pw)
    return stable.collect_softplus(stable.log_sigmoid_rules(loss, x), x)


def _sigmoid_bce_grad():
    closed = derive.result("sigmoid_weighted_binary_cross_entropy_grad").closed.xreplace(
        {m.y_bin: y, m.pos_weight: pw}
    )
    expr, neg = stable.sigmoid_complement(closed, m.s, x, collect_on=(pw,))
    return stable.sigmoid_function(expr, m.s, neg, x)  # (1 - y) sigmoid(x) - w+ y sigmoid(-x)


def _activation_kernels(act) -> list:
    """The kernels of a defined activation (symce.definitions): f from its stable form, and f'
    from the closed form the engine found (its outputs evaluated in their stable forms, 1 - sigma
    as sigma(-x)), unless the declaration gives a stable form of f'."""
    res = derive.result(act.grad_name)
    at = {act.var: x}
    value = act.stable.xreplace(at)
    if act.grad_stable is not None:
        grad = act.grad_stable.xreplace(at)
    else:
        grad = res.closed
        if m.s in grad.free_symbols:
            # by powers of x, so each coefficient's factor 1 - sigma shows (swish':
            # sigma + x sigma (1 - sigma)), then 1 - sigma -> sigma(-x)
            grad = sp.collect(sp.expand(grad), act.var)
            expr, neg = stable.sigmoid_complement(grad, m.s, act.var)
            grad = stable.sigmoid_function(expr, m.s, neg, act.var)
        named = {sym for sym, _ in res.named}  # its own output, or an earlier function's
        for other in (a for a in definitions.activations() if a.output in named):
            grad = grad.xreplace({other.output: other.stable.xreplace({other.var: act.var})})
        grad = grad.xreplace(at)
    # the formulas in plain ASCII (every language's comments): outputs as functions of x
    calls = {sym: sp.Symbol(f"{'sigma' if sym == m.s else sym.name}(x)") for sym, _ in res.named}
    f_text = sp.sstr(act.definition.xreplace(at)).replace("**", "^")
    if f_text == f"{act.name}(x)":  # tanh(x) = tanh(x) says nothing: show it in exponentials
        f_text = sp.sstr(act.plain.xreplace(at)).replace("**", "^")
    g_text = sp.sstr(res.closed.xreplace(calls).xreplace(at)).replace("**", "^")
    arg = (Arg("x", "real", "any", "input"),)
    return [
        Kernel(
            act.name,
            "elementwise",
            act.summary,
            f"{act.name}(x) = {f_text}",
            rf"{derive.latex_name(act.name)}(x) = {sp.latex(act.definition.xreplace(at))}",
            arg,
            (Arg("out", "real", "like x", f"{act.name}(x)"),),
            {"out": value},
            None,
            raw=act.definition.xreplace(at),
            example=act.example,
            defined_in=act.module,
        ),
        Kernel(
            act.grad_name,
            "elementwise",
            f"Derivative of {act.name}, elementwise.",
            f"{act.name}'(x) = {g_text}",
            rf"{derive.latex_name(act.name)}'(x) = {sp.latex(res.closed)}",
            arg,
            (Arg("out", "real", "like x", f"{act.name}'(x)"),),
            {"out": grad},
            act.grad_name,
            raw=sp.diff(act.definition, act.var).xreplace(at),
            example=act.example,
            defined_in=act.module,
        ),
    ]


def _plain(expr: sp.Expr) -> str:
    """An expression in plain ASCII, for every language's comments; a switch's forms as
    "(a if s, else b)"."""
    sel = next((e for e in sp.preorder_traversal(expr) if isinstance(e, fn_select)), None)
    if sel is not None:
        s = sel.args[0]
        on, off = (_plain(expr.xreplace({s: v})) for v in (1, 0))
        return f"{on} if {s}, else {off}"
    return sp.sstr(expr).replace("**", "^")


def _zero_without(expr: sp.Expr) -> sp.Expr:
    """``expr`` as mul0(y~, f): 0 where the target is 0 whatever the input, unless NaN (as it is
    where not linear in the target)."""
    try:
        return stable.zero_times_anything(expr, yt)
    except ValueError:
        return expr


def _loss_kernels(loss) -> list:
    """The kernels of a defined loss over classes (symce.definitions): the loss and its gradient
    with respect to the input, in the cross-entropy-from-probabilities family (its effective
    targets, options and reductions).  A term that is 0 without target adds nothing for a class
    whose target is 0 whatever its input (0 * -inf = 0, as 0 log 0 = 0)."""
    at = {loss.input: v, loss.target: yt}
    term = loss.term.xreplace(at)
    grad = derive.result(loss.grad_name).closed.xreplace(at)
    slot_term, slot_grad = term, grad
    if loss.zero_without_target:  # exactly +0 without target (a -y~ alone would give -0)
        slot_term = _zero_without(term)
        if sp.simplify(grad.xreplace({yt: 0})) == 0:
            slot_grad = _zero_without(grad)
    y_ = loss.target
    inputs = (Arg(loss.input_name, "real", "(N, K)", loss.input_doc), _TARGET)
    ce_targets = {"yt_label": _effective_target_label(), "yt_soft": _effective_target_soft()}
    named = f"{loss.name}({loss.input}, {y_})"
    common = {"inputs": inputs, "options": _CE_OPTIONS, "defined_in": loss.module}
    return [
        Kernel(
            loss.name,
            "ce_probs",
            loss.summary,
            f"L = sum_k {named}, {named} = {_plain(loss.term)}",
            rf"L = \sum_k {sp.latex(loss.term)}",
            outputs=(_LOSS,),
            slots={**ce_targets, "loss_term": slot_term},
            derivation=None,
            raw=term,
            example=loss.example,
            **common,
        ),
        Kernel(
            loss.grad_name,
            "ce_probs",
            f"Gradient of {loss.name} w.r.t. {loss.input_name}.",
            f"dL/d{loss.input}_k = {_plain(derive.result(loss.grad_name).closed)}",
            rf"\frac{{\partial L}}{{\partial {sp.latex(loss.input)}_k}} = "
            + sp.latex(derive.result(loss.grad_name).closed),
            outputs=(_GRAD_NK,),
            slots={**ce_targets, "grad": slot_grad},
            derivation=loss.grad_name,
            raw=sp.diff(term, v),
            example=loss.example,
            **common,
        ),
    ]


def _element_loss_kernels(loss) -> list:
    """The kernels of a defined loss over elements (symce.definitions): the loss and its gradient
    with respect to the input, in the BCE family (element weights, the reduction over every
    element), with the declaration's scalar options as parameters of their own name."""
    at = {loss.input: x, loss.target: y}
    res = derive.result(loss.grad_name)
    term = loss.term.xreplace(at)
    value = (loss.stable if loss.stable is not None else loss.term).xreplace(at)
    closed = res.closed.xreplace(dict(res.named))  # the quantities it names, written out
    # a switch picks a form: each form printed on its own, the switch tested once (select)
    closed = definitions.switched(closed, loss.options)
    grad = (loss.grad_stable if loss.grad_stable is not None else closed).xreplace(at)
    opts = ("weight", *(o.name for o in loss.options), "reduction")
    first = Arg(loss.input_name, "real", "any", loss.input_doc)
    target = Arg("target", "target", f"like {loss.input_name}", "targets")
    common = {
        "inputs": (first, target),
        "options": opts,
        "defined_in": loss.module,
        "scalars": loss.options,
        "example": loss.example,
        "reductions": loss.reductions,
    }
    grad_out = Arg("grad", "real", f"like {loss.input_name}", "gradient of the (reduced) loss")
    return [
        Kernel(
            loss.name,
            "bce",
            loss.summary,
            f"L = {_plain(loss.term)} per element",
            sp.latex(loss.term),
            outputs=(_LOSS,),
            slots={"loss": value},
            derivation=None,
            raw=term,
            **common,
        ),
        Kernel(
            loss.grad_name,
            "bce",
            f"Gradient of {loss.name} w.r.t. {loss.input_name}.",
            f"dL/d{loss.input} = {_plain(definitions.switched(res.closed, loss.options))}"
            + "".join(f"; {s} = {_plain(definitions.switched(e, ()))}" for s, e in res.named),
            rf"\frac{{\partial L}}{{\partial {sp.latex(loss.input)}}} = "
            + sp.latex(definitions.switched(res.closed, loss.options)),
            outputs=(grad_out,),
            slots={"grad": grad},
            derivation=loss.grad_name,
            raw=sp.diff(term, x),
            **common,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# The registry.
# ----------------------------------------------------------------------------------------------
_LOGITS = Arg("logits", "real", "(N, K)", "unnormalised scores, one row per sample")
_PROBS = Arg("probs", "real", "(N, K)", "class probabilities, one row per sample", "[0, 1]")
_TARGET = Arg(
    "target",
    "target",
    "(N,) int or (N, K) real",
    "class indices in [0, K), or a probability target per row",
)
_LOSS = Arg("loss", "real", "() or (N,)", "the reduced loss, or one per sample for 'none'")
_GRAD_NK = Arg("grad", "real", "(N, K)", "gradient of the (reduced) loss")
_CE_OPTIONS = ("weight", "ignore_index", "label_smoothing", "reduction")
_BCE_OPTIONS = ("weight", "reduction")
_SBCE_OPTIONS = ("weight", "pos_weight", "reduction")


def _build():
    ce_targets = {"yt_label": _effective_target_label(), "yt_soft": _effective_target_soft()}
    ks = [
        Kernel(
            "sigmoid",
            "elementwise",
            "Logistic sigmoid, elementwise.",
            "sigma(x) = 1 / (1 + exp(-x))",
            r"\sigma(x) = \frac{1}{1 + e^{-x}}",
            (Arg("x", "real", "any", "input"),),
            (Arg("out", "real", "like x", "sigma(x)"),),
            {"out": _sigmoid_value()},
            None,
            raw=m.sigmoid(x),
        ),
        Kernel(
            "sigmoid_grad",
            "elementwise",
            "Derivative of the sigmoid, elementwise.",
            "sigma'(x) = sigma(x) (1 - sigma(x))",
            r"\sigma'(x) = \sigma(x)(1 - \sigma(x))",
            (Arg("x", "real", "any", "input"),),
            (Arg("out", "real", "like x", "sigma'(x)"),),
            {"out": _sigmoid_grad()},
            "sigmoid_grad",
            raw=sp.diff(m.sigmoid(x), x),
        ),
        Kernel(
            "softmax",
            "rowwise",
            "Softmax along the class axis.",
            "p_k = exp(z_k) / sum_j exp(z_j)",
            r"p_k = \frac{e^{z_k}}{\sum_j e^{z_j}}",
            (Arg("z", "real", "(N, K)", "logits"),),
            (Arg("out", "real", "(N, K)", "p"),),
            _row_slots(),
            None,
        ),
        Kernel(
            "log_softmax",
            "rowwise",
            "Log of the softmax along the class axis.",
            "log p_k = z_k - log sum_j exp(z_j)",
            r"\log p_k = z_k - \log \sum_j e^{z_j}",
            (Arg("z", "real", "(N, K)", "logits"),),
            (Arg("out", "real", "(N, K)", "log p"),),
            {**_row_slots(), "out": _log_softmax()},
            None,
        ),
        Kernel(
            "logsumexp",
            "rowwise",
            "Log of the sum of exponentials along the class axis.",
            "lse = log sum_j exp(z_j)",
            r"\operatorname{lse}(z) = \log \sum_j e^{z_j}",
            (Arg("z", "real", "(N, K)", "logits"),),
            (Arg("out", "real", "(N,)", "lse"),),
            {**_row_slots(), "out": _logsumexp()},
            "logsumexp_grad",
        ),
        Kernel(
            "softmax_jacobian",
            "rowwise",
            "Jacobian of the softmax, one K x K matrix per row.",
            "J_ij = p_i (delta_ij - p_j)",
            r"J_{ij} = p_i(\delta_{ij} - p_j)",
            (Arg("z", "real", "(N, K)", "logits"),),
            (Arg("out", "real", "(N, K, K)", "J[n, i, j] = dp_i/dz_j"),),
            {**_row_slots(), "out": _jacobian()},
            "softmax_jacobian",
        ),
        Kernel(
            "softmax_vjp",
            "rowwise",
            "Vector-Jacobian product of the softmax, without J.",
            "(J^T g)_j = p_j (g_j - <g, p>)",
            r"(J^\top g)_j = p_j (g_j - \langle g, p\rangle)",
            (Arg("z", "real", "(N, K)", "logits"), Arg("g", "real", "(N, K)", "upstream gradient")),
            (Arg("out", "real", "(N, K)", "J^T g"),),
            {**_row_slots(), **_vjp_dot(), "out": _vjp()},
            "softmax_jacobian",
        ),
        Kernel(
            "cross_entropy",
            "ce_probs",
            "Cross-entropy of probabilities against a target.",
            "L = -sum_k y_k log p_k",
            r"L = -\sum_k y_k \log p_k",
            (_PROBS, _TARGET),
            (_LOSS,),
            {**ce_targets, "loss_term": _ce_probs_loss_term()},
            None,
            _CE_OPTIONS,
        ),
        Kernel(
            "cross_entropy_grad",
            "ce_probs",
            "Gradient of the cross-entropy w.r.t. the probabilities.",
            "dL/dp_k = -y_k / p_k",
            r"\frac{\partial L}{\partial p_k} = -\frac{y_k}{p_k}",
            (_PROBS, _TARGET),
            (_GRAD_NK,),
            {**ce_targets, "grad": _ce_probs_grad()},
            "cross_entropy_grad",
            _CE_OPTIONS,
        ),
        Kernel(
            "softmax_cross_entropy",
            "ce_logits",
            "Cross-entropy of the softmax of logits (log-sum-exp form).",
            "L = log sum_j exp(z_j) - sum_k y_k z_k",
            r"L = \log\sum_j e^{z_j} - \sum_k y_k z_k",
            (_LOGITS, _TARGET),
            (_LOSS,),
            {**ce_targets, **_row_slots(), "loss_term": _ce_logits_loss_term()},
            None,
            _CE_OPTIONS,
        ),
        Kernel(
            "softmax_cross_entropy_grad",
            "ce_logits",
            "Gradient of softmax cross-entropy w.r.t. the logits.",
            "dL/dz_k = p_k sum_j y_j - y_k  (= p_k - y_k when sum_j y_j = 1)",
            r"\frac{\partial L}{\partial z_k} = p_k - y_k",
            (_LOGITS, _TARGET),
            (_GRAD_NK,),
            {**ce_targets, **_row_slots(), "grad": _ce_logits_grad()},
            "softmax_cross_entropy_grad",
            _CE_OPTIONS,
        ),
        Kernel(
            "softmax_cross_entropy_with_grad",
            "ce_logits",
            "Softmax cross-entropy and its gradient in one pass.",
            "L as softmax_cross_entropy, dL/dz = p - y",
            r"(L,\ p - y)",
            (_LOGITS, _TARGET),
            (_LOSS, _GRAD_NK),
            {
                **ce_targets,
                **_row_slots(),
                "loss_term": _ce_logits_loss_term(),
                "grad": _ce_logits_grad(),
            },
            "softmax_cross_entropy_grad",
            _CE_OPTIONS,
        ),
        Kernel(
            "binary_cross_entropy",
            "bce",
            "Binary cross-entropy of probabilities.",
            "L = -(y log p + (1 - y) log(1 - p))",
            r"L = -(y \log \hat{y} + (1 - y)\log(1 - \hat{y}))",
            (
                Arg("probs", "real", "any", "predicted probabilities", "[0, 1]"),
                Arg("target", "target", "like probs", "targets in [0, 1]"),
            ),
            (_LOSS,),
            {"loss": _bce_loss()},
            None,
            _BCE_OPTIONS,
        ),
        Kernel(
            "binary_cross_entropy_grad",
            "bce",
            "Gradient of the binary cross-entropy w.r.t. the probabilities.",
            "dL/dp = (p - y) / (p (1 - p))",
            r"\frac{\partial L}{\partial \hat{y}} = \frac{\hat{y} - y}{\hat{y}(1 - \hat{y})}",
            (
                Arg("probs", "real", "any", "predicted probabilities", "[0, 1]"),
                Arg("target", "target", "like probs", "targets in [0, 1]"),
            ),
            (Arg("grad", "real", "like probs", "gradient of the (reduced) loss"),),
            {"grad": _bce_grad()},
            "binary_cross_entropy_grad",
            _BCE_OPTIONS,
        ),
        Kernel(
            "sigmoid_binary_cross_entropy",
            "bce",
            "Binary cross-entropy of the sigmoid of logits (softplus form).",
            "L = (1 - y) softplus(x) + w+ y softplus(-x)",
            r"L = (1 - y)\operatorname{softplus}(x) + w_+ y \operatorname{softplus}(-x)",
            (
                Arg("logits", "real", "any", "logits"),
                Arg("target", "target", "like logits", "targets in [0, 1]"),
            ),
            (_LOSS,),
            {"loss": _sigmoid_bce_loss()},
            None,
            _SBCE_OPTIONS,
        ),
        Kernel(
            "sigmoid_binary_cross_entropy_grad",
            "bce",
            "Gradient of sigmoid binary cross-entropy w.r.t. the logits.",
            "dL/dx = sigma(x) - y  (with pos_weight: (1 - y) sigma(x) - w+ y sigma(-x))",
            r"\frac{\partial L}{\partial x} = \sigma(x) - y",
            (
                Arg("logits", "real", "any", "logits"),
                Arg("target", "target", "like logits", "targets in [0, 1]"),
            ),
            (Arg("grad", "real", "like logits", "gradient of the (reduced) loss"),),
            {"grad": _sigmoid_bce_grad()},
            "sigmoid_weighted_binary_cross_entropy_grad",
            _SBCE_OPTIONS,
        ),
        Kernel(
            "sigmoid_binary_cross_entropy_with_grad",
            "bce",
            "Sigmoid binary cross-entropy and its gradient in one pass.",
            "L = (1 - y) softplus(x) + w+ y softplus(-x); dL/dx = (1 - y) sigma(x) - w+ y sigma(-x)",
            r"(L,\ \sigma(x) - y)",
            (
                Arg("logits", "real", "any", "logits"),
                Arg("target", "target", "like logits", "targets in [0, 1]"),
            ),
            (_LOSS, Arg("grad", "real", "like logits", "gradient of the (reduced) loss")),
            {"loss": _sigmoid_bce_loss(), "grad": _sigmoid_bce_grad()},
            "sigmoid_weighted_binary_cross_entropy_grad",
            _SBCE_OPTIONS,
        ),
    ]
    return _named(ks)


def _named(ks: list, taken: dict | None = None) -> dict:
    """{name: kernel}, each kernel's name and the names of its arguments and options checked
    (symce.names): identifiers in every language, reserved in none, and no name taken twice (a
    kernel's C functions are also named with its probability-target suffix, _soft)."""
    taken = {n: f"the kernel {n}" for n in taken or ()}
    for kern in ks:
        names.check_name(kern.name, "kernel name", taken)
        taken[kern.name] = f"the kernel {kern.name}"
        taken[kern.name + "_soft"] = f"the probability-target functions of {kern.name}"
        params = {}
        for arg in kern.inputs + kern.outputs:
            names.check_name(arg.name, f"{kern.name}: argument name", params)
            params[arg.name] = f"an argument of {kern.name}"
        for option in kern.options:
            names.check_name(option, f"{kern.name}: option name", params)
            params[option] = f"an option of {kern.name}"
    return {kern.name: kern for kern in ks}


@cache
def _builtins() -> dict:
    return _build()


def builtin_names() -> tuple:
    """The names of symce's own kernels (and of their C functions' _soft variants): a defined
    function may take none of them."""
    return tuple(n for kern in _builtins() for n in (kern, kern + "_soft"))


@cache
def registry() -> dict:
    """name -> Kernel, in emission order: symce's own, then each defined activation and its
    derivative (symce.definitions)."""
    defined = [kern for act in definitions.activations() for kern in _activation_kernels(act)]
    for loss in definitions.losses():
        build = _loss_kernels if loss.over == "classes" else _element_loss_kernels
        defined += build(loss)
    return {**_builtins(), **_named(defined, taken=_builtins())}


definitions.on_change(registry.cache_clear)
definitions.reserve(builtin_names)


def kernel(name: str) -> Kernel:
    """The registry's kernel ``name``; KeyError naming the known ones if there is none."""
    table = registry()
    if name not in table:
        raise KeyError(f"no kernel named {name!r}; known: {', '.join(table)}")
    return table[name]
