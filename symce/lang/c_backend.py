"""Stage 6 (C) — the C99 emitter: a printer per compute type, the contexts of symce.h / symce.c.

What comes out is one header and one source file (``generated/c/symce.h``, ``generated/c/symce.c``)
that a user pastes into a project: C99, libm only, no allocation (every buffer is the caller's),
``const`` and ``restrict`` on every pointer, one function per kernel and dtype,
``symce_<kernel>[_soft]_<f32|f64>``, returning ``SYMCE_OK`` (0) or a negative error code.

Flow: the registry's slots (SymPy, :mod:`symce.kernels`) -> :class:`CPrinter` (a
``C99CodePrinter`` configured per compute type with ``type_aliases``: ``f32`` prints ``expf`` and
``1.0F``, ``f80`` prints ``expl``) -> strings in the template context -> ``templates/c/``.  The
templates lay out the loops of each family (validation first, then the row statistics, sums,
effective targets, reductions); every formula inside a loop is a printed slot.  The row families
declare their per-class slots (zs, zlo, e, em1, p, pc) in dependency order, only those an output
needs, and compute row values such as log1p(Srest) once per row.  The helpers the printed code
calls (``symce_<fn>_double``, ``symce_<fn>_long_double``) are printed from the ``.stable()``
forms of symce's functions, only those some kernel uses.

:func:`functions` describes every emitted C function (name, parameters and their roles); the
tests use it to call the compiled library through ctypes.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import sympy as sp
from sympy.codegen.ast import float32, float64, float80, real
from sympy.logic.boolalg import BooleanFunction
from sympy.printing.c import C99CodePrinter

from .. import kernels as kr
from ..functions import clamp_min, mul0, sigmoid, softplus, two_sum_err
from ..generate import Output

# ----------------------------------------------------------------------------------------------
# Types.  DTYPES are the storage dtypes (one C function per kernel and dtype): T is the buffer
# type, ``compute`` the type the printed math runs in, ``compute_by_family`` the exceptions, and
# every sum (row sums, <g, p>, row losses, reductions, the mean divisor) accumulates in ``acc``.
# The float kernels compute in double and round once: in float, zs = z - shift alone is rounded to
# 2^-24 relative, which exp(zs) turns into |zs| 2^-24 relative error.  The double elementwise
# kernels (sigmoid, sigmoid') compute in long double and round once.  CTYPES are the compute
# types a CPrinter is made for.
# ----------------------------------------------------------------------------------------------
DTYPES = {
    "f32": {"T": "float", "acc": "double", "compute": "f64", "compute_by_family": {}},
    "f64": {"T": "double", "acc": "double", "compute": "f64",
            "compute_by_family": {"elementwise": "f80"}},
}
CTYPES = {
    "f32": {"T": "float", "alias": float32},
    "f64": {"T": "double", "alias": float64},
    "f80": {"T": "long double", "alias": float80},
}
ROW_FAMILIES = ("rowwise", "ce_logits")  # families with the per-row statistics (shift, Srest)


def compute_dtype(dtype: str, family: str) -> str:
    """The compute type (a CTYPES key) the printed math of ``family`` runs in, for ``dtype``."""
    spec = DTYPES[dtype]
    return spec["compute_by_family"].get(family, spec["compute"])


# kernel-local symbol -> C variable name; anything else in a slot is an error
LOCAL_NAMES = {name: name for name in kr.LOCALS}
LOCAL_NAMES.update({
    "K": "k_real",       # the class count as a real (the size parameter k is a size_t)
    "Srest": "srest",
    "x": "xv",           # x, g and z are also the names of input arrays
    "g": "gv",
    "z": "zv",
})

# the per-class slots of the row families, in dependency order
CLASS_SLOTS = ("zs", "zlo", "e", "em1", "p", "pc")
JACOBIAN_BLOCK = 64  # columns of the Jacobian whose p_j are kept on the stack

# symce's functions -> static helpers in symce.c, suffixed per compute type; callees first
HELPERS = ("clamp_min", "mul0", "softplus", "sigmoid", "two_sum_err")
_HELPER_CLASSES = {"clamp_min": clamp_min, "mul0": mul0, "softplus": softplus,
                   "sigmoid": sigmoid, "two_sum_err": two_sum_err}

ERRORS = (  # (name, value, message): symce_strerror's table and the header's documentation
    ("SYMCE_OK", 0, "success"),
    ("SYMCE_ERR_NULL", -1, "a required pointer is NULL"),
    ("SYMCE_ERR_SIZE", -2, "k is 0, or the buffer size n*k (n*k*k for the Jacobian) overflows size_t"),
    ("SYMCE_ERR_LABEL", -3, "a label is outside [0, k) and is not ignore_index"),
    ("SYMCE_ERR_WEIGHT", -4, "a weight or pos_weight entry is negative or NaN"),
    ("SYMCE_ERR_ARG", -5, "label_smoothing is outside [0, 1] or NaN, or the reduction is unknown"),
    ("SYMCE_ERR_DOMAIN", -6, "a probability is outside [0, 1] (NaN passes through)"),
)
UNKNOWN_ERROR = "unknown symce error code"


def helper_name(fn: str, cdtype: str) -> str:
    """``symce_<fn>_<C type>``: symce_sigmoid_double, symce_sigmoid_long_double."""
    return f"symce_{fn}_{CTYPES[cdtype]['T'].replace(' ', '_')}"


class _isfinite(BooleanFunction):  # noqa: N801 - printed as C's isfinite
    """isfinite(v): the condition of the TwoSum helper."""

    nargs = 1


class CPrinter(C99CodePrinter):
    """C99 printer for one compute type (a CTYPES key): math functions and literals typed by
    ``type_aliases``, symce's functions mapped to that type's helpers, symbols renamed through a
    table (strict: an unknown symbol or function is an error)."""

    def __init__(self, cdtype: str, names=None):
        self.cdtype = cdtype
        self.names = LOCAL_NAMES if names is None else names
        super().__init__({
            "type_aliases": {real: CTYPES[cdtype]["alias"]},
            "strict": True,
            "user_functions": {name: helper_name(name, cdtype) for name in HELPERS},
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

    def _print__isfinite(self, expr):
        return f"isfinite({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        raise ValueError("Max would print as fmax, which drops NaN: use clamp_min")

    _print_Min = _print_Max


def _nan_keeping_max(*args):
    """Max(t, c) with one numeric argument -> clamp_min(t, c), which keeps a NaN t."""
    nums = [a for a in args if a.is_number]
    rest = [a for a in args if not a.is_number]
    if len(nums) != 1 or len(rest) != 1:
        raise ValueError(f"cannot print Max{args} as a NaN-keeping clamp")
    return clamp_min(rest[0], nums[0])


def two_sum_steps(a, b):
    """The TwoSum assignments ``(symbol, expression)`` of ``two_sum_err(a, b).stable()``: s = a + b,
    t = s - a, err = (a - (s - t)) + (b - t) (built unevaluated, so the grouping survives)."""
    return list(two_sum_err(a, b).stable())


def _helper_defs():
    """{fn: (parameter names, [(symbol, expr) statements], return expr, doc)} from SymPy."""
    a, b, t, lo, xs = sp.symbols("a b t lo x", real=True)
    steps = two_sum_steps(a, b)
    s_sym = steps[0][0]
    err_sym = steps[-1][0]
    return {
        # max(x, lo) that keeps a NaN x: (x < lo) is false for NaN
        "clamp_min": (("x", "lo"), [], sp.Piecewise((lo, sp.StrictLessThan(xs, lo)), (xs, True)),
                      "max(x, lo), propagating NaN in x (fmax would drop it)"),
        "mul0": (("a", "b"), [], sp.Piecewise((0, sp.Eq(a, 0)), (a * b, True)),
                 "a * b, exactly 0 when a == 0 (even if b is infinite)"),
        "softplus": (("t",), [], softplus(t).stable().replace(sp.Max, _nan_keeping_max),
                     "log(1 + exp(t)) without overflow"),
        "sigmoid": (("t",), [], sigmoid(t).stable(),
                    "1 / (1 + exp(-t)): branch-free, no overflow, about an ULP for every t"),
        "two_sum_err": (("a", "b"), steps,
                        sp.Piecewise((err_sym, _isfinite(s_sym)), (0, True)),
                        "the exact rounding error of a + b (Knuth's TwoSum), 0 when a + b is not "
                        "finite"),
    }


def _callees(defs, fn):
    """The helpers helper ``fn`` calls (directly)."""
    _, steps, body, _ = defs[fn]
    exprs = [body] + [expr for _, expr in steps]
    return {name for name, cls in _HELPER_CLASSES.items() if name != fn
            and any(e.atoms(cls) for e in exprs)}


def _helpers(cdtype: str, used=None):
    """The static inline helpers in compute type ``cdtype`` (all, or those ``used`` and what they
    call), callees first: name, parameter names, statements, printed body, doc."""
    defs = _helper_defs()
    wanted = set(HELPERS if used is None else used)
    todo = list(wanted)
    while todo:
        for callee in _callees(defs, todo.pop()):
            if callee not in wanted:
                wanted.add(callee)
                todo.append(callee)
    out = []
    for fn in HELPERS:
        if fn not in wanted:
            continue
        args, steps, body, doc = defs[fn]
        names = {n: n for n in args}
        names.update({sym.name: sym.name for sym, _ in steps})
        pr = CPrinter(cdtype, names)
        out.append({"name": helper_name(fn, cdtype), "args": list(args),
                    "statements": [{"name": sym.name, "expr": pr.doprint(expr)}
                                   for sym, expr in steps],
                    "body": pr.doprint(body), "doc": doc})
    return out


def used_helpers() -> dict:
    """{compute type: [helpers the printed slots call directly]} over every emitted function."""
    used = {}
    for dtype in DTYPES:
        for kern in kr.registry().values():
            cdt = compute_dtype(dtype, kern.family)
            names = used.setdefault(cdt, set())
            for expr in kern.slots.values():
                names |= {n for n, cls in _HELPER_CLASSES.items() if expr.atoms(cls)}
    return {cdt: [fn for fn in HELPERS if fn in names]
            for cdt, names in sorted(used.items(), key=lambda kv: list(CTYPES).index(kv[0]))
            if names}


def checks_domain(kern) -> bool:
    """Whether the kernel's input is probabilities (checked to lie in [0, 1]: SYMCE_ERR_DOMAIN)."""
    return kern.inputs[0].name == "probs"


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
        for out in (o.name for o in kern.outputs):  # loss, then grad
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


def _errors_for(fn: CFunction, kern):
    """The codes fn can return, in the order it checks them."""
    codes = ["SYMCE_ERR_NULL", "SYMCE_ERR_SIZE"]
    roles = {p.role for p in fn.params}
    if "label_smoothing" in roles or "reduction" in roles:
        codes.append("SYMCE_ERR_ARG")
    if "weight" in roles:
        codes.append("SYMCE_ERR_WEIGHT")
    if "labels" in roles:
        codes.append("SYMCE_ERR_LABEL")
    if checks_domain(kern):
        codes.append("SYMCE_ERR_DOMAIN")
    return codes


_DOC_WIDTH = 96  # characters of comment text per header line

# what the slot symbols stand for in the loops, for the "computed as" lines (in this order;
# family overrides below; "" for a symbol documented with another)
_SYMBOL_DOC = {
    "x": "x = the element",
    "z": "z = the logit",
    "shift": "shift = the row max (0 if not finite), a = its index",
    "Srest": "Srest = S - 1 = sum_{j != a} e_j + em1_a",
    "p_i": "p_i, p_j, pc_i = p, p, pc of classes i, j", "p_j": "", "pc_i": "",
    "delta": "delta = Kronecker delta_ij",
    "g": "g = the upstream gradient",
    "gesum": "gesum = sum_j g_j e_j",
    "dot": "dot = <g, p> = gesum / (1 + Srest)",
    "yt": "yt = y~_c", "ysum": "ysum = sum_c y~_c", "p": "p = probs[i*k + c]",
    "prob": "prob = the probability", "y": "y = the target", "pw": "pw = pos_weight[column]",
}
_FUNCTION_DOC = {
    "softplus": "softplus(t) = log(1 + exp(t)), evaluated as max(t, 0) + log1p(exp(-|t|)).",
    "clamp_min": "clamp_min(v, lo) = max(v, lo), keeping a NaN v (PyTorch's clamps: logs at -100, "
                 "gradient denominators at 1e-12).",
    "mul0": "mul0(a, b) = a*b, and exactly 0 when a = 0 (so a zero target times log 0 is 0).",
    "sigmoid": "sigmoid(t) = 1/(1 + exp(-t)), evaluated as exp(min(t, 0))/(1 + exp(-|t|)).",
    "two_sum_err": "two_sum_err(a, b) = the exact rounding error of a + b (Knuth's TwoSum; 0 if "
                   "a + b is not finite), so zs + zlo = z - shift exactly.",
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
    if kern.name == "sigmoid_binary_cross_entropy_with_grad":
        notes.append("One pass over the elements, loss and gradient together; the same numbers "
                     "as the separate loss and gradient kernels.")
    layout = _ROWWISE_LAYOUT.get(kern.name) if fam == "rowwise" else None
    if layout == "jacobian":
        notes.append(f"No allocation: p_j of {JACOBIAN_BLOCK} columns at a time is kept on the "
                     "stack in the compute type, p_i and pc_i are computed per row of J.")
    if layout == "vjp":
        notes.append("No allocation: p is computed twice per class, for <g, p> and for the "
                     "output.")
    if notes:
        lines.append("")
        for note in notes:
            lines += _wrapped(note, "  ")
    lines.append("")
    codes = _errors_for(fn, kern)
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


# ----------------------------------------------------------------------------------------------
# Printed code of the row families
# ----------------------------------------------------------------------------------------------
def _class_code(kern, exprs, pr, rename=None):
    """The per-class slot declarations ``exprs`` need (transitively), in dependency order:
    [{name, expr}].  ``rename`` declares a slot under another name (p -> p_i)."""
    rename = rename or {}
    sl = kern.slots
    needed = set()
    todo = [s.name for e in exprs for s in e.free_symbols]
    while todo:
        name = todo.pop()
        if name in CLASS_SLOTS and name not in needed:
            needed.add(name)
            todo += [s.name for s in sl[name].free_symbols]
    if rename:
        pr = CPrinter(pr.cdtype, {**pr.names, **rename})
    return [{"name": rename.get(name, LOCAL_NAMES[name]), "expr": pr.doprint(sl[name])}
            for name in CLASS_SLOTS if name in needed]


_ROW_VALUES = {"Srest", "shift"}  # the row statistics: known before the per-class loops


def _hoist(exprs, names):
    """Function calls on row statistics only (log1p(Srest)) -> symbols computed once per row.

    Returns (the expressions with the calls replaced, [(symbol, call)]), and adds the symbols
    to ``names``."""
    calls = []
    for expr in exprs:
        for f in sorted(expr.atoms(sp.Function), key=sp.default_sort_key):
            syms = {s.name for s in f.free_symbols}
            if syms and syms <= _ROW_VALUES and f not in calls:
                calls.append(f)
    subs = {}
    for f in calls:
        cname = type(f).__name__ + "_" + "_".join(LOCAL_NAMES[s.name] for s in
                                                  sorted(f.free_symbols, key=lambda s: s.name))
        sym = sp.Symbol(cname, real=True)
        names[cname] = cname
        subs[f] = sym
    return [expr.xreplace(subs) for expr in exprs], [(sym, f) for f, sym in subs.items()]


def _row_code(kern, pr, layout):
    """Printed code of a row kernel (rowwise or ce_logits) in printer ``pr``'s compute type."""
    sl = kern.slots
    code = {
        "srest_lets": _class_code(kern, (sl["e"], sl["em1"]), pr),
        "srest_max_term": pr.doprint(sl["em1"]),
        "srest_term": pr.doprint(sl["e"]),
        "hoisted": [],
        "lets": [], "lets_i": [], "lets_j": [], "lets_dot": [],
    }
    if kern.family == "ce_logits":
        outs = {name: sl[name] for name in ("loss_term", "grad") if name in sl}
    elif layout == "vector" and "out" not in sl:
        outs = {"out": kr.p}  # the softmax itself
    else:
        outs = {"out": sl["out"]}
    if layout == "vjp":
        code["lets_dot"] = _class_code(kern, (sl["dot_term"],), pr)
        outs = {"dot_term": sl["dot_term"], "dot": sl["dot"], **outs}
    if layout != "scalar":  # per-class loops: row values computed once per row
        names = dict(pr.names)
        exprs, hoisted = _hoist(list(outs.values()), names)
        outs = dict(zip(outs, exprs))
        pr = CPrinter(pr.cdtype, names)
        code["hoisted"] = [{"name": pr.doprint(sym), "expr": pr.doprint(call)}
                           for sym, call in hoisted]
    code["out"] = {name: pr.doprint(expr) for name, expr in outs.items()}
    if layout == "jacobian":
        code["lets_j"] = _class_code(kern, (kr.p,), pr, {"p": "p_j"})
        code["lets_i"] = _class_code(kern, (kr.p, kr.pc), pr, {"p": "p_i", "pc": "pc_i"})
    elif layout == "vjp":
        code["lets"] = _class_code(kern, (outs["out"],), pr)
    else:
        code["lets"] = _class_code(kern, tuple(outs.values()), pr)
    return code


def _printed_slots(kern, pr):
    """The slots the non-row templates print: elementwise out, CE targets and terms, BCE (times
    the element weight w)."""
    sl = kern.slots
    fam = kern.family
    out = {}
    if fam == "elementwise":
        out["out"] = pr.doprint(sl["out"])
    elif fam in ("ce_probs", "ce_logits"):
        out["yt_label"] = pr.doprint(sl["yt_label"])
        out["yt_soft"] = pr.doprint(sl["yt_soft"])
        if fam == "ce_probs":
            for name in ("loss_term", "grad"):
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
    pr = CPrinter(cdt)
    names = [p.name for p in fn.params]
    slots = _printed_slots(kern, pr)
    ctx = {
        "cname": fn.cname,
        "kernel": fn.kernel,
        "sfx": fn.dtype,
        "T": T,
        "C": CTYPES[cdt]["T"],
        "narrow": "" if CTYPES[cdt]["T"] == T else f"({T})",  # the cast that rounds to T
        "acc": DTYPES[fn.dtype]["acc"],
        "family": kern.family,
        "partial": "c/_" + _PARTIAL[kern.family] + ".c.jinja",
        "summary": kern.summary,
        "prototype": _prototype(fn.cname, [_decl(p, T) for p in fn.params]),
        "required": [p.name for p in fn.params if p.role in ("in", "labels", "target", "out")],
        "doc": _doc(fn, kern),
        "slots": slots,
        "soft": fn.soft,
        "x": next(p.name for p in fn.params if p.role == "in"),
        "domain": checks_domain(kern),
        "has_loss": "loss" in names,
        "has_grad": "grad" in names,
        "has_pos_weight": "pos_weight" in names,
    }
    if kern.family == "rowwise":
        ctx["layout"] = _ROWWISE_LAYOUT[fn.kernel]
        ctx["k2"] = "k" if ctx["layout"] == "jacobian" else "1"
        ctx["block"] = JACOBIAN_BLOCK
    if kern.family in ROW_FAMILIES:
        ctx["row"] = _row_code(kern, pr, ctx.get("layout", "vector"))
    if kern.family in ("ce_probs", "ce_logits"):
        ctx["logits"] = kern.family == "ce_logits"
        ctx["yt"] = slots["yt_soft" if fn.soft else "yt_label"]
        ctx["terms"] = ctx["row"]["out"] if ctx["logits"] else {
            name: slots[name] for name in ("loss_term", "grad") if name in slots}
    return ctx


def _dtype_context(dtype):
    """Per storage dtype: the validation and reduction helpers' types."""
    spec = DTYPES[dtype]
    return {"sfx": dtype, "T": spec["T"], "acc": spec["acc"]}


def _helper_sections():
    """The helpers per compute type, only where some printed slot calls them."""
    return [{"T": CTYPES[cdt]["T"], "list": _helpers(cdt, used)}
            for cdt, used in used_helpers().items()]


def _precision_lines():
    """The header's paragraph on compute types, accumulation and accuracy (from DTYPES)."""
    accs = {spec["acc"] for spec in DTYPES.values()}
    if len(accs) == 1:
        acc = accs.pop()
    else:
        acc = " / ".join(f"{spec['acc']} ({spec['T']} kernels)" for spec in DTYPES.values())
    computes = []
    exceptions = []
    for dtype, spec in DTYPES.items():
        T = spec["T"]
        C = CTYPES[spec["compute"]]["T"]
        computes.append(f"the {T} kernels " + ("compute " if not computes else "")
                        + f"in {C}" + ("" if C == T else " and round once"))
        for fam, cdt in spec["compute_by_family"].items():
            kernels = [n for n, k in kr.registry().items() if k.family == fam]
            CF = CTYPES[cdt]["T"]
            exceptions.append(f"the {T} kernels {', '.join(kernels)} in {CF}"
                              + ("" if CF == T else ", rounded once"))
    sentence = ", ".join(computes)
    sentence = sentence[0].upper() + sentence[1:]
    if exceptions:
        sentence += " (" + "; ".join(exceptions) + ")"
    text = ("Precision: every sum (row sums, <g, p>, row losses, reductions, the mean divisor) "
            f"accumulates in {acc}.  {sentence}.  "
            "Against the mpmath definitions (|logits| <= 30, K = 2, 3, 10): softmax, log_softmax, "
            "logsumexp, the softmax cross-entropy and its gradient p - y (where p - 1 does not "
            "cancel) within 4 ULP (measured: float 0.5, double 2.0), the Jacobian of a dominant "
            "class (1 - p down to 1e-12) within 4 ULP (float 0.5, double 2.9), sigmoid and "
            "sigmoid' within 2 ULP for |x| <= 85 (float) / 700 (double) (measured 0.5: with a "
            "long double that is double, sigmoid' is about 2.6 ULP).")
    return textwrap.wrap(text, _DOC_WIDTH, initial_indent="   - ", subsequent_indent="     ",
                         break_long_words=False, break_on_hyphens=False)


def context() -> dict:
    fns = [_function_context(fn) for fn in functions()]
    return {
        "precision": _precision_lines(),
        "errors": [{"name": n, "value": v, "message": msg} for n, v, msg in ERRORS],
        "unknown_error": UNKNOWN_ERROR,
        "helpers": _helper_sections(),
        "dtypes": [_dtype_context(d) for d in DTYPES],
        "sections": [{"T": DTYPES[d]["T"], "sfx": d,
                      "functions": [f for f in fns if f["sfx"] == d]} for d in DTYPES],
    }


def outputs() -> list:
    ctx = context()
    return [Output("c/symce.h", "c/symce.h.jinja", ctx),
            Output("c/symce.c", "c/symce.c.jinja", ctx)]
