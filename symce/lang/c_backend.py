"""Stage 6 (C) — the C99 emitter: a printer per dtype and the template contexts of symce.h / symce.c.

What comes out is one header and one source file (``generated/c/symce.h``, ``generated/c/symce.c``)
that a user pastes into a project: C99, libm only, no allocation (every buffer is the caller's),
``const`` and ``restrict`` on every pointer, one function per kernel and dtype,
``symce_<kernel>[_soft]_<f32|f64>``, returning ``SYMCE_OK`` (0) or a negative error code.

Flow: the registry's slots (SymPy, :mod:`symce.kernels`) -> :class:`CPrinter` (a
``C99CodePrinter`` configured per dtype with ``type_aliases``, so float32 prints ``expf``,
``log1pf`` and ``1.0F``) -> strings in the template context -> ``templates/c/``.  The templates lay
out the loops of each family (validation first, then row max, sums, effective targets,
reductions); every formula inside a loop is a printed slot.  The helpers the printed code calls
(``symce_clamp_min_*``, ``symce_mul0_*``, ``symce_softplus_*``) are printed from SymPy too.

:func:`functions` describes every emitted C function (name, parameters and their roles); the
tests use it to call the compiled library through ctypes.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.codegen.cfunctions import expm1
from sympy.printing.c import C99CodePrinter

from .. import kernels as kr
from ..functions import clamp_min, softplus
from ..generate import Output

# ----------------------------------------------------------------------------------------------
# Dtypes.  T is the storage type of a kernel's buffers; the printed math runs in a compute type
# and every sum accumulates in ``acc``.  The float kernels of the softmax families (rowwise,
# ce_logits) compute in double and round once: in float, zs = z - shift alone is rounded to
# 2^-24 relative, which exp(zs) turns into |zs| * 2^-24 relative error (about 30 ULP at
# |zs| = 60); the elementwise, BCE and probability-CE kernels compute in float (expf, logf).
# ----------------------------------------------------------------------------------------------
DTYPES = {
    "f32": {"T": "float", "acc": "double", "alias": float32, "row_compute": "f64"},
    "f64": {"T": "double", "acc": "double", "alias": float64, "row_compute": "f64"},
}
ROW_FAMILIES = ("rowwise", "ce_logits")  # families that compute in DTYPES[..]["row_compute"]


def compute_dtype(dtype: str, family: str) -> str:
    """The dtype the printed math of ``family`` runs in, for buffers of ``dtype``."""
    return DTYPES[dtype]["row_compute"] if family in ROW_FAMILIES else dtype


# kernel-local symbol -> C variable name; anything else in a slot is an error
LOCAL_NAMES = {name: name for name in kr.LOCALS}
LOCAL_NAMES.update({
    "K": "k_real",       # the class count as a T (the size parameter k is a size_t)
    "Srest": "srest",
    "x": "xv",           # x and g are also the names of input arrays
    "g": "gv",
})

# symce's functions -> the static helpers in symce.c (suffixed per dtype)
HELPERS = ("clamp_min", "mul0", "softplus")

ERRORS = (  # (name, value, message): symce_strerror's table and the header's documentation
    ("SYMCE_OK", 0, "success"),
    ("SYMCE_ERR_NULL", -1, "a required pointer is NULL"),
    ("SYMCE_ERR_SIZE", -2, "k is 0, or the buffer size n*k (n*k*k for the Jacobian) overflows size_t"),
    ("SYMCE_ERR_LABEL", -3, "a label is outside [0, k) and is not ignore_index"),
    ("SYMCE_ERR_WEIGHT", -4, "a weight or pos_weight entry is negative or NaN"),
    ("SYMCE_ERR_ARG", -5, "label_smoothing is outside [0, 1] or NaN, or the reduction is unknown"),
)
UNKNOWN_ERROR = "unknown symce error code"


class CPrinter(C99CodePrinter):
    """C99 printer for one dtype: math functions and literals typed by ``type_aliases``, symce's
    functions mapped to the dtype's helpers, symbols renamed through a table (strict)."""

    def __init__(self, dtype: str, names=None):
        self.dtype = dtype
        self.names = LOCAL_NAMES if names is None else names
        super().__init__({
            "type_aliases": {real: DTYPES[dtype]["alias"]},
            "strict": True,
            "user_functions": {name: helper_name(name, dtype) for name in HELPERS},
        })

    def _print_Symbol(self, expr):
        if expr.name not in self.names:
            raise ValueError(f"symbol {expr.name!r} has no C name: add it to the C backend's table")
        return self.names[expr.name]

    def _print_Piecewise(self, expr):
        # one line, for the two-branch helpers: (cond) ? (a) : (b)
        if len(expr.args) != 2 or expr.args[1].cond is not sp.true:
            raise ValueError("only two-branch Piecewise with a default branch prints to C")
        (val, cond), (other, _) = expr.args
        return f"({self._print(cond)}) ? ({self._print(val)}) : ({self._print(other)})"

    def _print_Max(self, expr):
        raise ValueError("Max would print as fmax, which drops NaN: use clamp_min")

    _print_Min = _print_Max


def helper_name(fn: str, dtype: str) -> str:
    return f"symce_{fn}_{dtype}"


def _nan_keeping_max(*args):
    """Max(t, c) with one numeric argument -> clamp_min(t, c), which keeps a NaN t."""
    nums = [a for a in args if a.is_number]
    rest = [a for a in args if not a.is_number]
    if len(nums) != 1 or len(rest) != 1:
        raise ValueError(f"cannot print Max{args} as a NaN-keeping clamp")
    return clamp_min(rest[0], nums[0])


def _helpers(dtype):
    """The static inline helpers (name, parameter names, printed body), from SymPy."""
    a, b, t, lo, xs = sp.symbols("a b t lo x", real=True)
    names = {s.name: s.name for s in (a, b, t, lo, xs)}
    pr = CPrinter(dtype, names)
    defs = [
        # max(x, lo) that keeps a NaN x: (x < lo) is false for NaN
        ("clamp_min", ("x", "lo"), sp.Piecewise((lo, sp.StrictLessThan(xs, lo)), (xs, True)),
         "max(x, lo), propagating NaN in x (fmax would drop it)"),
        ("mul0", ("a", "b"), sp.Piecewise((0, sp.Eq(a, 0)), (a * b, True)),
         "a * b, exactly 0 when a == 0 (even if b is infinite)"),
        ("softplus", ("t",), softplus(t).stable().replace(sp.Max, _nan_keeping_max),
         "log(1 + exp(t)) without overflow"),
    ]
    return [{"name": helper_name(fn, dtype), "args": list(args), "body": pr.doprint(expr),
             "doc": doc} for fn, args, expr, doc in defs]


# ----------------------------------------------------------------------------------------------
# Function descriptions: parameters (name, role) per family.  Roles: size, in, labels, target,
# weight, pos_weight, ignore_index, label_smoothing, reduction, out.
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    role: str
    doc: str


@dataclass(frozen=True)
class CFunction:
    """One emitted C function."""

    cname: str
    kernel: str
    dtype: str
    soft: bool            # CE family: probability targets (the _soft variant)
    params: tuple


_N = Param("n", "size", "number of rows (samples); may be 0")
_K = Param("k", "size", "number of classes per row; must be >= 1")


def _loss_doc(fam):
    per, what = ("n*k", "element") if fam == "bce" else ("n", "sample")
    return f"[{per}] for SYMCE_REDUCTION_NONE (one loss per {what}), else [1]"


def _params(kern, soft):
    fam = kern.family
    if fam == "elementwise":
        return (Param("count", "size", "number of elements; may be 0"),
                Param("x", "in", "[count] input"),
                Param("out", "out", f"[count] {kern.outputs[0].doc}"))
    if fam == "rowwise":
        ps = [_N, _K, Param("z", "in", "[n*k] logits, row-major (one row per sample)")]
        if kern.name == "softmax_vjp":
            ps.append(Param("g", "in", "[n*k] upstream gradient dL/dp"))
        shape = {"logsumexp": "[n]", "softmax_jacobian": "[n*k*k]"}.get(kern.name, "[n*k]")
        ps.append(Param("out", "out", f"{shape} {kern.outputs[0].doc}"))
        return tuple(ps)
    if fam in ("ce_probs", "ce_logits"):
        x = "probs" if fam == "ce_probs" else "logits"
        xdoc = ("[n*k] class probabilities, row-major" if fam == "ce_probs"
                else "[n*k] logits (unnormalised scores), row-major")
        ps = [_N, _K, Param(x, "in", xdoc)]
        if soft:
            ps.append(Param("target", "target", "[n*k] probability target per row" + (
                " (need not sum to 1: the gradient is p sum(y~) - y~)" if fam == "ce_logits" else "")))
        else:
            ps.append(Param("labels", "labels", "[n] class index per sample, 0-based"))
        ps.append(Param("weight", "weight", "[k] class weights, or NULL for all ones"))
        if not soft:
            ps.append(Param("ignore_index", "ignore_index",
                            "label that marks an ignored sample (PyTorch: -100): loss 0, gradient "
                            "row 0, not in the mean divisor"))
        ps.append(Param("label_smoothing", "label_smoothing", "epsilon in [0, 1]; 0 for none"))
        ps.append(Param("reduction", "reduction", "SYMCE_REDUCTION_NONE, _MEAN or _SUM"))
        outs = [o.name for o in kern.outputs]
        if "loss" in outs:
            ps.append(Param("loss", "out", _loss_doc(fam)))
        if "grad" in outs:
            ps.append(Param("grad", "out", "[n*k] gradient of the reduced loss w.r.t. " + x))
        return tuple(ps)
    if fam == "bce":
        x = "logits" if kern.name.startswith("sigmoid") else "probs"
        ps = [_N, _K,
              Param(x, "in", "[n*k] " + ("logits" if x == "logits" else "probabilities in [0, 1]")),
              Param("target", "target", "[n*k] targets in [0, 1]"),
              Param("weight", "weight", "[n*k] element weights, or NULL for all ones")]
        if "pos_weight" in kern.options:
            ps.append(Param("pos_weight", "pos_weight",
                            "[k] weight of the positive term per column, or NULL for all ones"))
        ps.append(Param("reduction", "reduction", "SYMCE_REDUCTION_NONE, _MEAN or _SUM"))
        out = kern.outputs[0].name
        ps.append(Param(out, "out", _loss_doc(fam) if out == "loss"
                        else "[n*k] gradient of the reduced loss w.r.t. " + x))
        return tuple(ps)
    raise ValueError(f"unknown family {fam!r}")


def functions() -> list:
    """Every emitted C function, in header order (dtype-major, then registry order)."""
    out = []
    for dtype in DTYPES:
        for kern in kr.registry().values():
            variants = (False, True) if kern.family in ("ce_probs", "ce_logits") else (False,)
            for soft in variants:
                cname = f"symce_{kern.name}{'_soft' if soft else ''}_{dtype}"
                out.append(CFunction(cname, kern.name, dtype, soft, _params(kern, soft)))
    return out


# ----------------------------------------------------------------------------------------------
# Template contexts
# ----------------------------------------------------------------------------------------------
def _decl(p: Param, T: str) -> str:
    if p.role == "size":
        return f"size_t {p.name}"
    if p.role == "labels":
        return f"const int64_t *restrict {p.name}"
    if p.role in ("in", "target", "weight", "pos_weight"):
        return f"const {T} *restrict {p.name}"
    if p.role == "out":
        return f"{T} *restrict {p.name}"
    if p.role == "ignore_index":
        return f"int64_t {p.name}"
    if p.role == "label_smoothing":
        return f"{T} {p.name}"
    if p.role == "reduction":
        return f"symce_reduction {p.name}"
    raise ValueError(p.role)


def _errors_for(fn: CFunction, fam: str):
    codes = ["SYMCE_ERR_NULL", "SYMCE_ERR_SIZE"]
    roles = {p.role for p in fn.params}
    if "label_smoothing" in roles or "reduction" in roles:
        codes.append("SYMCE_ERR_ARG")
    if "weight" in roles:
        codes.append("SYMCE_ERR_WEIGHT")
    if "labels" in roles:
        codes.append("SYMCE_ERR_LABEL")
    return codes


_DOC_WIDTH = 96  # characters of comment text per header line

# what the slot symbols stand for in the loops, for the "computed as" lines (family overrides)
_SYMBOL_DOC = {
    "x": "x = the element", "zs": "zs = z - shift",
    "shift": "shift = the row max (0 if not finite)",
    "Srest": "Srest = S - 1 = sum_j exp(zs_j) - 1, summed with the max term's 1 left out",
    "p_i": "p_i, p_j = entries of p", "p_j": "", "delta": "delta = Kronecker delta_ij",
    "g": "g = the upstream gradient", "dot": "dot = <g, p>", "yt": "yt = y~_c",
    "ysum": "ysum = sum_c y~_c", "p": "p = probs[i*k + c]", "prob": "prob = the probability",
    "y": "y = the target", "pw": "pw = pos_weight[column]",
}
_FUNCTION_DOC = {
    "softplus": "softplus(t) = log(1 + exp(t)), evaluated as max(t, 0) + log1p(exp(-|t|)).",
    "clamp_min": "clamp_min(v, lo) = max(v, lo), keeping a NaN v (PyTorch's clamps: logs at -100, "
                 "gradient denominators at 1e-12).",
    "mul0": "mul0(a, b) = a*b, and exactly 0 when a = 0 (so a zero target times log 0 is 0).",
}
_FAMILY_SYMBOL_DOC = {"bce": {"x": "x = the logit"}}


def _legend(kern):
    used = set()
    for name, expr in kern.slots.items():
        if not name.startswith("yt_"):
            used |= {sym.name for sym in expr.free_symbols}
    used -= set(kern.slots)  # a slot printed above its use (p) needs no legend
    docs = dict(_SYMBOL_DOC, **_FAMILY_SYMBOL_DOC.get(kern.family, {}))
    return "; ".join(docs[n] for n in sorted(used, key=lambda n: list(docs).index(n)) if docs[n])


def _wrapped(text, indent, hang=None):
    hang = indent if hang is None else hang
    return textwrap.wrap(text, _DOC_WIDTH, initial_indent=indent, subsequent_indent=hang,
                         break_long_words=False, break_on_hyphens=False)


def _doc(fn: CFunction, kern) -> list:
    """The header's comment block for one function, as lines (no comment markers)."""
    fam = kern.family
    lines = _wrapped(f"{fn.cname}: {kern.summary}", "") + [""]
    lines.append("    " + kern.formula)
    if fam in ("ce_probs", "ce_logits"):
        slot = kern.slots["yt_soft" if fn.soft else "yt_label"]
        legend = ("y = target[i*k + c]" if fn.soft
                  else "t = labels[i], hot = [c == t], w_t = weight[t]")
        lines += ["  with the effective target of class c:",
                  f"    y~_c = {sp.sstr(slot)}",
                  f"    ({legend}, w_k = weight[c], K = k)"]
    # the registry's stable forms: exactly what the code evaluates
    lines += _wrapped(f"computed as ({_legend(kern)}):", "  ", "    ")
    for name, expr in kern.slots.items():
        if not name.startswith("yt_"):
            lines.append(f"    {name} = {sp.sstr(expr)}" + ("   (times w)" if fam == "bce" else ""))
    used = set()
    for expr in kern.slots.values():
        used |= {type(f).__name__ for f in expr.atoms(sp.Function)}
    for fname, text in _FUNCTION_DOC.items():
        if fname in used:
            lines += _wrapped(text, "  ", "    ")
    lines.append("")
    width = max(len(p.name) for p in fn.params)
    for p in fn.params:
        lines += _wrapped(p.doc, f"  {p.name.ljust(width)}  ", " " * (width + 4))
    notes = []
    if fam in ("ce_probs", "ce_logits", "bce"):
        div = {"bce": "n*k"}.get(fam, "n" if fn.soft else
                                 "the summed weight[t] of the kept (not ignored) samples")
        notes.append(f"mean divides by {div}; n = 0 gives NaN for mean and 0 for sum.")
        if any(p.name == "grad" for p in fn.params):
            notes.append("The gradient is that of the reduced loss (for none, each sample's own).")
    if kern.name == "softmax_cross_entropy_with_grad":
        notes.append("One pass per row: its max, then Srest and sum y~, then loss and gradient "
                     "together; the same numbers as the separate loss and gradient kernels.")
    if fam == "rowwise" and kern.name in ("softmax_jacobian", "softmax_vjp"):
        notes.append("out also holds p while it is computed (no allocation).")
    if notes:
        lines.append("")
        for note in notes:
            lines += _wrapped(note, "  ")
    lines.append("")
    codes = _errors_for(fn, fam)
    lines += _wrapped("Returns SYMCE_OK, or " + ", ".join(codes) + " (checked in that order, "
                      "before anything is written).", "")
    return lines


def _prototype(cname, decls, indent=""):
    """``int name(args)`` wrapped at 100 columns, continuation lines aligned after the '('."""
    head = f"{indent}int {cname}("
    lines, line = [], head
    for i, d in enumerate(decls):
        piece = d + ("," if i < len(decls) - 1 else ")")
        if line != head and len(line) + 1 + len(piece) > 100:
            lines.append(line.rstrip())
            line = " " * len(head)
        line += piece + " "
    lines.append(line.rstrip())
    return "\n".join(lines)


def _printed_slots(kern, dtype):
    pr = CPrinter(compute_dtype(dtype, kern.family))
    sl = kern.slots
    fam = kern.family
    out = {}
    if fam == "elementwise":
        out["out"] = pr.doprint(sl["out"])
    elif fam == "rowwise":
        out["out"] = pr.doprint(sl["out"] if "out" in sl else sl["p"])
        if "p" in sl:
            out["p"] = pr.doprint(sl["p"])
    elif fam in ("ce_probs", "ce_logits"):
        out["yt_label"] = pr.doprint(sl["yt_label"])
        out["yt_soft"] = pr.doprint(sl["yt_soft"])
        for name in ("p", "loss_term", "grad"):
            if name in sl:
                out[name] = pr.doprint(sl[name])
    elif fam == "bce":
        # every element's loss or gradient carries its weight w
        for name in ("loss", "grad"):
            if name in sl:
                out[name] = pr.doprint(kr.w * sl[name])
    return out


_PARTIAL = {"elementwise": "elementwise", "rowwise": "rowwise", "ce_probs": "ce", "ce_logits": "ce",
            "bce": "bce"}
_ROWWISE_LAYOUT = {"softmax": "vector", "log_softmax": "vector", "logsumexp": "scalar",
                   "softmax_jacobian": "jacobian", "softmax_vjp": "vjp"}


def _function_context(fn: CFunction):
    kern = kr.kernel(fn.kernel)
    T = DTYPES[fn.dtype]["T"]
    cdt = compute_dtype(fn.dtype, kern.family)
    names = [p.name for p in fn.params]
    ctx = {
        "cname": fn.cname,
        "kernel": fn.kernel,
        "sfx": fn.dtype,
        "T": T,
        "C": DTYPES[cdt]["T"],
        "narrow": "" if cdt == fn.dtype else f"({T})",  # the cast that rounds a result to T
        "acc": DTYPES[fn.dtype]["acc"],
        "family": kern.family,
        "partial": "c/_" + _PARTIAL[kern.family] + ".c.jinja",
        "summary": kern.summary,
        "prototype": _prototype(fn.cname, [_decl(p, T) for p in fn.params]),
        "required": [p.name for p in fn.params if p.role in ("in", "labels", "target", "out")],
        "doc": _doc(fn, kern),
        "slots": _printed_slots(kern, fn.dtype),
        "soft": fn.soft,
        "x": next(p.name for p in fn.params if p.role == "in"),
        "has_loss": "loss" in names,
        "has_grad": "grad" in names,
        "has_pos_weight": "pos_weight" in names,
    }
    if kern.family == "rowwise":
        ctx["layout"] = _ROWWISE_LAYOUT[fn.kernel]
        ctx["k2"] = "k" if ctx["layout"] == "jacobian" else "1"
    if kern.family in ("ce_probs", "ce_logits"):
        ctx["logits"] = kern.family == "ce_logits"
        ctx["yt"] = ctx["slots"]["yt_soft" if fn.soft else "yt_label"]
    return ctx


def _dtype_context(dtype):
    """Per storage dtype: the helpers and the row statistics (printed in the row compute type)."""
    spec = DTYPES[dtype]
    row = spec["row_compute"]
    pr = CPrinter(row)
    return {
        "sfx": dtype,
        "T": spec["T"],
        "acc": spec["acc"],
        "R": DTYPES[row]["T"],
        "helpers": _helpers(dtype),
        "exp_zs": pr.doprint(sp.exp(kr.zs)),
        "expm1_zs": pr.doprint(expm1(kr.zs)),
    }


def _precision_lines():
    """The header's paragraph on compute types and measured accuracy (from DTYPES)."""
    row = [n for n, k in kr.registry().items() if k.family in ROW_FAMILIES]
    other = [n for n, k in kr.registry().items() if k.family not in ROW_FAMILIES]
    text = ("Precision: every sum (row sums, <g, p>, row losses, reductions, the mean divisor) "
            "accumulates in double.  The float kernels " + ", ".join(row) + " compute each row "
            "in double and round once (in float, z - max alone would cost |z - max| 2^-24 relative "
            "error in exp(z - max)); the float kernels " + ", ".join(other) + " compute in float.  "
            "Measured against 50-digit references with |logits| <= 30: float within 1 ULP for "
            "softmax, log_softmax and the cross-entropy; double within about (|z - max| + 2) 2^-53 "
            "relative there (<= 64 ULP), and within 1e-12 relative elsewhere (gradients: relative "
            "to their largest entry).")
    return textwrap.wrap(text, _DOC_WIDTH, initial_indent="   - ", subsequent_indent="     ",
                         break_long_words=False, break_on_hyphens=False)


def context() -> dict:
    fns = [_function_context(fn) for fn in functions()]
    return {
        "precision": _precision_lines(),
        "errors": [{"name": n, "value": v, "message": msg} for n, v, msg in ERRORS],
        "unknown_error": UNKNOWN_ERROR,
        "dtypes": [_dtype_context(d) for d in DTYPES],
        "sections": [{"T": DTYPES[d]["T"], "sfx": d,
                      "functions": [f for f in fns if f["sfx"] == d]} for d in DTYPES],
    }


def outputs() -> list:
    ctx = context()
    return [Output("c/symce.h", "c/symce.h.jinja", ctx),
            Output("c/symce.c", "c/symce.c.jinja", ctx)]
