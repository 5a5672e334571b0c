"""Verification (the tests' and benchmarks' oracle, outside the pipeline): high-precision
references for every kernel, evaluated with mpmath from the symbolic model.

Two forms per kernel, both at ``DPS`` decimal digits:

* ``form="raw"`` — the *definitions* of :mod:`symce.model` (and ``sp.diff`` of them for the
  gradients), instantiated at the concrete K of the input and lambdified to mpmath.  No closed form
  and no stable rewrite is involved: this is the independent check.
* ``form="closed"`` — the registry's slot expressions (closed forms after the stable rewrites),
  evaluated with mpmath, with the loop semantics of the kernels (shift, effective target,
  reduction) written out here once.

Inputs use NumPy's layout (rows are samples, classes on the last axis); results are NumPy object
arrays of ``mpmath.mpf``.  The options follow PyTorch: ``weight`` (K class weights for the CE
family, elementwise for BCE), ``ignore_index``, ``label_smoothing``, ``pos_weight`` and
``reduction``.  The loss policies are the kernels': logs of probabilities are clamped at -100,
gradient denominators of probabilities at 1e-12, and a zero target times an infinite log is 0
(times NaN, NaN).  The row policy too (closed form): the shift of a row whose max is not finite is
its largest finite logit (or 0), and the kernels that combine the classes give NaN for such a
row (``Kernel.nan_row_at_inf``).
"""

from __future__ import annotations

from functools import cache

import mpmath
import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from . import definitions
from . import kernels as kr
from . import model as m

DPS = 50


def _digits_for(v):
    """Working digits for a raw scalar definition at v: 1 + e^-|v| must not round to 1."""
    extra = int(min(abs(v), mpmath.mpf(10) ** 5) / 2.3) if mpmath.isfinite(v) else 0
    return mpmath.mp.dps + extra + 10


def _mp(a):
    # converting a NaN raises the FPU's invalid flag, which NumPy would report as a warning
    with np.errstate(invalid="ignore"):
        return np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])(
            np.asarray(a, dtype=float)
        )


@cache
def _raw_row_functions(K: int):
    """Lambdified raw definitions for K classes: softmax, log-softmax, lse and their derivatives."""
    zs = m.concrete_logits(K)
    ys = sp.symbols(f"y1:{K + 1}", real=True)
    total = sum(sp.exp(v) for v in zs)
    soft = [sp.exp(v) / total for v in zs]
    ce = -sum(yk * sp.log(pk) for yk, pk in zip(ys, soft))
    return {
        "softmax": sp.lambdify([zs], soft, "mpmath"),
        "log_softmax": sp.lambdify([zs], [sp.log(pk) for pk in soft], "mpmath"),
        "logsumexp": sp.lambdify([zs], sp.log(total), "mpmath"),
        "jacobian": sp.lambdify([zs], [[sp.diff(pi, zj) for zj in zs] for pi in soft], "mpmath"),
        "ce": sp.lambdify([zs, ys], ce, "mpmath"),
        "ce_grad": sp.lambdify([zs, ys], [sp.diff(ce, zj) for zj in zs], "mpmath"),
    }


@cache
def _scalar(name):
    """Lambdified scalar definitions and raw derivatives of the BCE family (an elementwise
    kernel's are its ``Kernel.raw``)."""
    th, yv, ph, wp = m.theta, m.y_bin, m.yhat, m.pos_weight
    exprs = {
        "bce": ([ph, yv], m.binary_cross_entropy()),
        "bce_grad": ([ph, yv], sp.diff(m.binary_cross_entropy(), ph)),
        "sbce": ([th, yv, wp], m.sigmoid_weighted_binary_cross_entropy()),
        "sbce_grad": ([th, yv, wp], sp.diff(m.sigmoid_weighted_binary_cross_entropy(), th)),
    }
    args, expr = exprs[name]
    return sp.lambdify(args, expr, "mpmath")


@cache
def _raw(name):
    """An elementwise kernel's exact value (``Kernel.raw``: its definition or raw derivative),
    lambdified to mpmath."""
    expr = kr.kernel(name).raw
    (var,) = expr.free_symbols
    return sp.lambdify([var], expr, "mpmath")


def _settled(f):
    """``f`` evaluated at the working precision once its value no longer changes when the digits
    double (from :func:`_digits_for`'s count, up to 20000): 1 + e^-x cancels like e^-|x|, a
    declared definition may cancel faster (1 - tanh^2 loses e^-2|x|), so no fixed count is
    enough for all."""

    def value(v):
        digits = _digits_for(v)
        with mpmath.workdps(digits):
            a = +f(v)
        while digits < 20000:
            digits *= 2
            with mpmath.workdps(digits):
                b = +f(v)
            same = a == b or (mpmath.isnan(a) and mpmath.isnan(b))
            if same or abs(a - b) <= mpmath.mpf(10) ** -(mpmath.mp.dps + 5) * abs(b):
                return +b
            a = b
        raise ArithmeticError(f"the definition does not settle at x = {v} with 20000 digits")

    return value


# symce's functions with their exact meaning (functions.py), for mpmath
_SLOT_FUNCTIONS = {
    "mul0": lambda a, b: mpmath.mpf(0) if a == 0 and not mpmath.isnan(b) else a * b,
    "clamp_min": lambda v, lo: v if mpmath.isnan(v) else max(v, lo),
    "softplus": lambda t: mpmath.log1p(mpmath.exp(t)),
    "sigmoid": lambda t: 1 / (1 + mpmath.exp(-t)),
    "two_sum_err": lambda a, b: mpmath.mpf(0),  # exact arithmetic: no rounding error
    "log1p": mpmath.log1p,
    "expm1": mpmath.expm1,
}


def _forget() -> None:
    for cached in (_raw, _slot, _declared):
        cached.cache_clear()


definitions.on_change(_forget)


@cache
def _slot(kernel_name, slot):
    expr = kr.kernel(kernel_name).slots[slot]
    syms = sorted(expr.free_symbols, key=lambda s_: s_.name)
    f = sp.lambdify(syms, expr, [_SLOT_FUNCTIONS, "mpmath"])
    names = [s_.name for s_ in syms]

    def call(**kw):
        try:
            return f(*[kw[n_] for n_ in names])
        except ZeroDivisionError:  # 0/0 (a row of -inf): IEEE gives NaN
            return mpmath.mpf("nan")

    return call


def _row_env(kernel_name, row):
    """The registry's per-class row slots (zs, zlo, e, em1, Srest, p, pc) for one row, at the
    working precision, where zs = z - shift is exact and so zlo = 0."""
    top = max(row)
    a = row.index(top)
    if not mpmath.isfinite(top):  # +inf, NaN or only -inf: the largest finite logit, or 0
        top = max((v for v in row if mpmath.isfinite(v)), default=mpmath.mpf(0))
    shift = top
    cls = []
    for v in row:
        env = {"z": v, "shift": shift}
        for name in ("zs", "zlo", "e", "em1"):
            env[name] = _slot(kernel_name, name)(**env)
        cls.append(env)
    srest = mpmath.fsum(c["em1"] if k == a else c["e"] for k, c in enumerate(cls))
    if srest == mpmath.inf and kr.kernel(kernel_name).nan_row_at_inf:
        srest = mpmath.mpf("nan")  # a row holding +inf: NaN throughout
    for c in cls:
        c["Srest"] = srest
        c["p"] = _slot(kernel_name, "p")(**c)
        c["pc"] = _slot(kernel_name, "pc")(**c)
    return cls


# ----------------------------------------------------------------------------------------------
def _effective_targets(kernel_name, target, K, weight, ignore_index, label_smoothing):
    """y~ (N, K) of mpf, the kept mask and the mean divisor, as the kernels define them."""
    target = np.asarray(target)
    w = [mpmath.mpf(1)] * K if weight is None else [mpmath.mpf(float(v)) for v in weight]
    eps = mpmath.mpf(float(label_smoothing))
    rows, kept, divisor = [], [], mpmath.mpf(0)
    if target.dtype.kind in "iu":
        f = _slot(kernel_name, "yt_label")
        for t in target.tolist():
            if t == ignore_index:
                rows.append([mpmath.mpf(0)] * K)
                kept.append(False)
                continue
            rows.append(
                [f(hot=int(c == t), w_t=w[t], w_k=w[c], label_smoothing=eps, K=K) for c in range(K)]
            )
            kept.append(True)
            divisor += w[t]
    else:
        f = _slot(kernel_name, "yt_soft")
        for row in target:
            rows.append(
                [
                    f(y=mpmath.mpf(float(v)), w_k=w[c], label_smoothing=eps, K=K)
                    for c, v in enumerate(row)
                ]
            )
            kept.append(True)
        divisor = mpmath.mpf(len(rows))
    return rows, kept, divisor


def _reduce(per_row, reduction, divisor):
    if reduction == "none":
        return np.array(per_row, dtype=object)
    total = mpmath.fsum(per_row)
    if reduction == "sum":
        return total
    return total / divisor if divisor != 0 else mpmath.mpf("nan")


def _scale(reduction, divisor):
    if reduction == "mean":
        return 1 / divisor if divisor != 0 else mpmath.mpf("nan")
    return mpmath.mpf(1)


def evaluate(
    name: str,
    *args: ArrayLike,
    form: str = "raw",
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    pos_weight: ArrayLike | None = None,
    reduction: str = "mean",
    dps: int | None = None,
    **declared: float,
) -> np.ndarray | mpmath.mpf | tuple:
    """Reference value of kernel ``name`` (NumPy layout), as mpf arrays.

    ``dps`` digits (default ``DPS``); raise it for inputs whose raw definition cancels, e.g. the
    log-probability of a class that dominates the others by more than ~100 in logit.
    ``declared``: a defined loss's options (symce.define_loss), by name; their defaults otherwise.
    """
    if form not in ("raw", "closed"):
        raise ValueError(f"form: expected 'raw' or 'closed', got {form!r}")
    with mpmath.workdps(dps or DPS):
        kern = kr.kernel(name)
        fam = kern.family
        if fam == "elementwise":
            (x,) = args
            if form == "raw":  # the definition (Kernel.raw), to as many digits as it needs
                return np.vectorize(_settled(_raw(name)), otypes=[object])(_mp(x))
            f = _slot(name, "out")
            return np.vectorize(lambda v: f(x=v), otypes=[object])(_mp(x))
        if fam == "rowwise":
            return _rowwise(name, form, *args)
        if fam in ("ce_probs", "ce_logits"):
            return _ce(
                name,
                form,
                *args,
                weight=weight,
                ignore_index=ignore_index,
                label_smoothing=label_smoothing,
                reduction=reduction,
            )
        if kern.scalars or (kern.defined_in and kern.raw is not None):
            return _element_loss(name, form, *args, weight=weight, reduction=reduction, **declared)
        return _bce(name, form, *args, weight=weight, pos_weight=pos_weight, reduction=reduction)


def _rowwise(name, form, z, g=None):
    z = np.atleast_2d(_mp(z))
    K = z.shape[-1]
    out = []
    for r, row in enumerate(z):
        row = list(row)
        if form == "raw":
            fns = _raw_row_functions(K)
            if name == "softmax_vjp":
                J = fns["jacobian"](row)
                gr = [mpmath.mpf(float(v)) for v in np.atleast_2d(g)[r]]
                out.append([mpmath.fsum(gr[i] * J[i][j] for i in range(K)) for j in range(K)])
            else:
                try:
                    out.append(fns[{"softmax_jacobian": "jacobian"}.get(name, name)](row))
                except ZeroDivisionError:  # a row of -inf: 0/0, NaN in IEEE arithmetic
                    shape = (K, K) if name == "softmax_jacobian" else (K,)
                    out.append(
                        np.full(shape, mpmath.mpf("nan"), dtype=object).tolist()
                        if name != "logsumexp"
                        else -mpmath.inf
                    )
            continue
        cls = _row_env(name, row)
        if name == "logsumexp":
            out.append(_slot(name, "out")(**cls[0]))
            continue
        p = [c["p"] for c in cls]
        if name == "softmax":
            out.append(p)
        elif name == "log_softmax":
            out.append([_slot(name, "out")(**c) for c in cls])
        elif name == "softmax_jacobian":
            f = _slot(name, "out")
            out.append(
                [
                    [f(p_i=p[i], pc_i=cls[i]["pc"], p_j=p[j], delta=int(i == j)) for j in range(K)]
                    for i in range(K)
                ]
            )
        elif name == "softmax_vjp":
            gr = [mpmath.mpf(float(v)) for v in np.atleast_2d(g)[r]]
            dot = mpmath.fsum(a * b for a, b in zip(gr, p))
            f = _slot(name, "out")
            out.append([f(p=p[j], g=gr[j], dot=dot) for j in range(K)])
    return np.array(out, dtype=object)


def _mul0(a, b):
    """a * b, 0 where a == 0 and b is not NaN (functions.mul0)."""
    return _SLOT_FUNCTIONS["mul0"](a, b)


def _clamped_log(b):
    """max(log b, -100), NaN for NaN (PyTorch's clamp of the BCE logs)."""
    if mpmath.isnan(b):
        return b
    return max(mpmath.log(b) if b > 0 else -mpmath.inf, mpmath.mpf(-100))


def _ce(name, form, x, target, *, weight, ignore_index, label_smoothing, reduction):
    x = np.atleast_2d(_mp(x))
    N, K = x.shape
    rows, kept, divisor = _effective_targets(name, target, K, weight, ignore_index, label_smoothing)
    losses, grads = [], []
    scale = _scale(reduction, divisor)
    kern = kr.kernel(name)
    fam = kern.family
    for row, yt, keep in zip(x, rows, kept):
        row = list(row)
        ysum = mpmath.fsum(yt)
        if fam == "ce_probs" and kern.raw is not None:  # a defined loss: its term, per class
            loss, grad = _declared_row(name, form, yt, row)
        elif fam == "ce_probs":
            if form == "raw":
                # -sum y log p and its derivative -y/p, with the documented clamps
                loss = -mpmath.fsum(_mul0(a, _clamped_log(b)) for a, b in zip(yt, row))
                grad = [-a / max(b, mpmath.mpf("1e-12")) for a, b in zip(yt, row)]
            else:
                lt, gf = _slot("cross_entropy", "loss_term"), _slot("cross_entropy_grad", "grad")
                loss = mpmath.fsum(lt(yt=a, p=b) for a, b in zip(yt, row))
                grad = [gf(yt=a, p=b) for a, b in zip(yt, row)]
        else:
            if form == "raw":
                fns = _raw_row_functions(K)
                logp = fns["log_softmax"](row)
                loss = -mpmath.fsum(_mul0(a, b) for a, b in zip(yt, logp))
                # the gradient is finite at a -inf (masked) logit, but its raw expression is
                # 0 * inf there: evaluate it at the limit, a logit so low that exp underflows
                # every float by thousands of orders of magnitude
                low = -(mpmath.mpf(10) ** 6)
                grad = fns["ce_grad"]([low if v == -mpmath.inf else v for v in row], yt)
            else:
                cls = _row_env("softmax_cross_entropy", row)
                lt = _slot("softmax_cross_entropy", "loss_term")
                loss = mpmath.fsum(lt(yt=a, **c) for a, c in zip(yt, cls))
                gf = _slot("softmax_cross_entropy_grad", "grad")
                grad = [gf(p=c["p"], pc=c["pc"], ysum=ysum, yt=a) for a, c in zip(yt, cls)]
        losses.append(loss if keep else mpmath.mpf(0))
        grads.append([v * scale if keep else mpmath.mpf(0) for v in grad])
    loss = _reduce(losses, reduction, divisor)
    grad = np.array(grads, dtype=object)
    if name.endswith("_with_grad"):
        return loss, grad
    return grad if name.endswith("_grad") else loss


@cache
def _declared(name):
    """A defined loss kernel's value per class (its term, or the term's derivative) over the
    effective target yt and the input v: ``Kernel.raw`` lambdified, and whether a class without
    target adds nothing (the term is 0 at yt = 0, so 0 * inf is taken as 0, as the kernels do)."""
    kern = kr.kernel(name)
    f = sp.lambdify([kr.yt, kr.v], kern.raw, [_SLOT_FUNCTIONS, "mpmath"])
    return f, sp.simplify(kern.raw.xreplace({kr.yt: 0})) == 0


def _declared_row(name, form, yt, row):
    """(the row's loss, its gradient per class) of a defined loss kernel: the kernel's one output
    (the other is None), from its raw term or from its slot (form="closed")."""
    kern = kr.kernel(name)
    grad_kernel = "grad" in kern.slots
    if form == "raw":
        f, zero = _declared(name)

        def value(a, b):
            if a == 0 and zero and not mpmath.isnan(b):
                return mpmath.mpf(0)
            try:
                return f(a, b)
            except ZeroDivisionError:
                return mpmath.mpf("nan")
    else:
        slot = _slot(name, "grad" if grad_kernel else "loss_term")

        def value(a, b):
            return slot(yt=a, v=b)

    values = [value(a, b) for a, b in zip(yt, row)]
    return (
        (mpmath.mpf(0), values)
        if grad_kernel
        else (mpmath.fsum(values), [mpmath.mpf(0)] * len(row))
    )


def _element_loss(name, form, x, target, *, weight, reduction, **declared):
    """A defined loss over elements (symce.define_loss): its term (or the term's derivative) per
    element at the options' values, times the element weight, reduced as the BCE family."""
    kern = kr.kernel(name)
    unknown = set(declared) - {o.name for o in kern.scalars}
    if unknown:
        raise TypeError(f"{name}: unknown options {sorted(unknown)}")
    numbers = [o for o in kern.scalars if not o.switch]
    values = [mpmath.mpf(float(declared.get(o.name, o.default))) for o in numbers]
    syms = [kr.x, kr.y, *(o.symbol for o in numbers)]
    expr = kern.raw if form == "raw" else kern.slots["grad" if "grad" in kern.slots else "loss"]
    # a switch, or a comparison of the options, picks the form: select collapses to it
    at = {o.symbol: float(declared.get(o.name, o.default)) for o in kern.scalars}
    at = {k: sp.Rational(v) for k, v in at.items() if v == v}  # NaN decides nothing
    expr = definitions.picked(expr, at)
    f = sp.lambdify(syms, expr, [_SLOT_FUNCTIONS, "mpmath"])
    x, t = _mp(x), _mp(target)
    wts = np.ones_like(x) if weight is None else np.broadcast_to(_mp(weight), x.shape)
    flat = []
    for xv, tv, wv in zip(x.ravel(), t.ravel(), np.ravel(wts)):
        # the definition cancels like e^-|x|: its digits grow with |x|; the stable slots' do not
        digits = _digits_for(xv) if form == "raw" else mpmath.mp.dps
        try:
            with mpmath.workdps(digits):
                v = +f(xv, tv, *values)
        except (ZeroDivisionError, ValueError):
            v = mpmath.mpf("nan")
        if isinstance(v, mpmath.mpc):  # the log of a negative number: no real value (NaN)
            v = v.real if v.imag == 0 else mpmath.mpf("nan")
        if form == "raw" and mpmath.isnan(v) and not (mpmath.isnan(xv) or mpmath.isnan(tv)):
            # the definition as written is indeterminate here (0 log 0, 0 * inf at a target of
            # no mass): the stable form's value, which takes such a product as 0
            v = _element_loss(name, "closed", xv, tv, weight=None, reduction="none", **declared)[()]
        flat.append(mpmath.mpf(wv) * v)
    count = mpmath.mpf(x.size)
    if reduction == "batchmean":  # the mean over the samples, the input's first extent
        reduction, count = "mean", mpmath.mpf(x.shape[0] if x.ndim else 1)
    if "grad" in kern.slots:
        scale = _scale(reduction, count)
        return np.array([v * scale for v in flat], dtype=object).reshape(x.shape)
    if reduction == "none":
        return np.array(flat, dtype=object).reshape(x.shape)
    return _reduce(flat, reduction, count)


def _bce(name, form, x, target, *, weight, pos_weight, reduction):
    if name.endswith("_with_grad"):  # the fused kernel: the loss and the gradient kernels' values
        base = name[: -len("_with_grad")]
        return tuple(
            _bce(n, form, x, target, weight=weight, pos_weight=pos_weight, reduction=reduction)
            for n in (base, base + "_grad")
        )
    x = _mp(x)
    t = _mp(target)
    wts = np.ones_like(x) if weight is None else np.broadcast_to(_mp(weight), x.shape)
    pws = np.ones(x.shape[-1:] or (1,)) if pos_weight is None else _mp(pos_weight)
    pws = np.broadcast_to(pws, x.shape) if x.ndim else pws.reshape(())
    logits = name.startswith("sigmoid")
    grad_kernel = name.endswith("_grad")
    flat = []
    for xv, tv, wv, pv in zip(x.ravel(), t.ravel(), np.ravel(wts), np.ravel(pws)):
        wv, pv = mpmath.mpf(wv), mpmath.mpf(pv)
        if logits:
            if form == "raw":
                # the raw definition subtracts sigma from 1: carry enough digits for e^-|x|
                with mpmath.workdps(_digits_for(xv)):
                    v = _scalar("sbce_grad" if grad_kernel else "sbce")(xv, tv, pv)
            else:
                v = _slot(name, "grad" if grad_kernel else "loss")(x=xv, y=tv, pw=pv)
        else:
            if form == "raw":
                if grad_kernel:
                    v = (xv - tv) / max(xv * (1 - xv), mpmath.mpf("1e-12"))
                else:
                    lg, l1 = _clamped_log(xv), _clamped_log(1 - xv)
                    v = -(tv * lg + (1 - tv) * l1)
            else:
                v = _slot(name, "grad" if grad_kernel else "loss")(prob=xv, y=tv)
        flat.append(wv * v)
    count = mpmath.mpf(x.size)
    if grad_kernel:
        scale = _scale(reduction, count)
        return np.array([v * scale for v in flat], dtype=object).reshape(x.shape)
    if reduction == "none":
        return np.array(flat, dtype=object).reshape(x.shape)
    return _reduce(flat, reduction, count)
