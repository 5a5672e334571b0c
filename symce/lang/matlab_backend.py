"""Stage 6 — emission: the MATLAB emitter, a printer and the template contexts of
``generated/matlab/``.

One function per file, ``symce_<kernel>.m``, for MATLAB and GNU Octave >= 7.  The MATLAB
layout puts classes along dimension 1 (``K x N``, one column per sample, like MATLAB's own
``softmax``); labels are 1-based; options are name-value pairs.  The code is vectorised over the
samples: every kernel-local symbol of :mod:`symce.kernels` names a whole array (``zs`` is K x N,
``Srest`` is 1 x N, ...) and the slot expressions are printed with element-wise operators, so
MATLAB's implicit expansion does the broadcasting.

Flow: registry slot (SymPy) -> :class:`MatlabPrinter` (symbol-name -> variable-name table, the
custom functions of :mod:`symce.functions`, strict) -> strings in a context -> ``templates/matlab``.
The printer records the local helper functions a kernel calls (``softplus``, ``sigmoid``,
``two_sum_err``, ``clamp_min``, ``mul0``); the template appends exactly those at the end of the
file.  The bodies of ``softplus``, ``sigmoid`` and ``two_sum_err`` are printed from their
``.stable()`` forms (TwoSum as its ordered assignments), ``clamp_min`` and ``mul0`` as masks
(restore NaN after ``max``; zero where the factor is zero); the reductions (``apply_reduction``,
``apply_scale``, ``mean_divisor``) from :mod:`symce.reductions`.

Precision: every kernel computes in double also for single input and rounds once at the end
(docs/semantics.md); the sums of the losses accumulate in double.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable

import numpy as np
import sympy as sp
from sympy.printing.octave import OctaveCodePrinter

from .. import describe, errors, examples, options, program, reductions
from .. import kernels as kr
from ..functions import clamp_min, mul0, select, sigmoid, softplus, two_sum_err
from .base import Output, Part

TEMPLATE = "matlab/function.m.jinja"
PREFIX = "symce_"

# MATLAB's reserved words (``iskeyword``); none may name a variable or a function.
MATLAB_KEYWORDS = frozenset(
    """
break case catch classdef continue else elseif end for function global if otherwise parfor
persistent return spmd switch try while
""".split()
)

# Functions the generated code may call: each exists in MATLAB and in Octave >= 7.
KNOWN_FUNCTIONS = {
    "exp": "exp",
    "log": "log",
    "Abs": "abs",
    "log1p": "log1p",
    "expm1": "expm1",
    "tanh": "tanh",
    "sinh": "sinh",
    "cosh": "cosh",
}

# Kernel-local symbol -> MATLAB variable, per family (inputs keep their argument names).
# (``e`` is MATLAB's Euler number function: the slot e is the variable ``ez``.)
_COMMON = {
    "z": "z",
    "zs": "zs",
    "zlo": "zlo",
    "e": "ez",
    "em1": "em1",
    "p": "p",
    "pc": "pc",
    "shift": "shift",
    "Srest": "Srest",
    "K": "K",
}
NAMES = {
    "elementwise": {"x": "x"},
    "rowwise": {
        **_COMMON,
        "p_i": "p_i",
        "p_j": "p_j",
        "pc_i": "pc_i",
        "delta": "delta",
        "g": "g",
        "dot": "g_dot_p",
        "gesum": "g_dot_e",
    },
    "ce_probs": {
        "K": "K",
        "p": "probs",
        "y": "target",
        "yt": "yt",
        "ysum": "ysum",
        "hot": "hot",
        "w_t": "w_t",
        "w_k": "w_k",
        "label_smoothing": "smoothing",
    },
    "ce_logits": {
        **_COMMON,
        "y": "target",
        "yt": "yt",
        "ysum": "ysum",
        "hot": "hot",
        "w_t": "w_t",
        "w_k": "w_k",
        "label_smoothing": "smoothing",
    },
    "bce": {"prob": "probs", "x": "logits", "y": "target", "w": "weight", "pw": "pos_weight"},
}

# PyTorch keyword -> MATLAB name-value option (the records: symce.options)
OPTIONS = {name: o.matlab for name, o in options.OPTIONS.items()}

# The end of the error for a probability target outside [0, 1]: it may be labels given as doubles.
TARGET_HINT = (
    "; a floating-point target the size of {first} is read as probability targets: "
    "pass class labels one per sample or as an integer class, e.g. int32(target)"
)

# MATLAB-layout description of the inputs whose layout is the same in every family.
SHAPES = {
    "x": "an array of any size",
    "z": "K-by-N, one column of logits per sample (a 1-by-K row is one sample)",
    "g": "K-by-N, the upstream gradient (the size of Z)",
}


# ----------------------------------------------------------------------------------------------
# The printer.
# ----------------------------------------------------------------------------------------------
class MatlabPrinter(OctaveCodePrinter):
    """Octave/MATLAB printer for symce slots: element-wise operators, strict, name-mapped.

    ``names`` maps each kernel-local symbol name to its MATLAB variable; a symbol without an entry
    is an error, as is any function outside :data:`KNOWN_FUNCTIONS` and symce's own.
    ``helpers`` collects the local functions the printed code calls.
    """

    language = "MATLAB"

    def __init__(self, names: dict, settings=None, real_log: bool = False):
        super().__init__({"strict": True, **(settings or {})})
        self.known_functions = dict(KNOWN_FUNCTIONS)
        self.names = dict(names)
        self.helpers = set()
        # a user's definition may take the log of a negative number: NaN, as C and NumPy give,
        # not MATLAB's complex log (real_log)
        self.real_log = real_log
        for code_name in self.names.values():
            check_identifier(code_name)

    def _print_Symbol(self, expr):
        if expr.name not in self.names:
            raise ValueError(
                f"MatlabPrinter: no MATLAB name for the symbol {expr.name!r} "
                f"(known: {', '.join(sorted(self.names))})"
            )
        return self.names[expr.name]

    def _print_Dummy(self, expr):
        raise ValueError(f"MatlabPrinter: unexpected dummy symbol {expr}")

    def _helper_call(self, name, args):
        self.helpers.add(name)
        return f"{name}({', '.join(self._print(a) for a in args)})"

    def _print_Max(self, expr):
        # MATLAB's max drops NaN; only max(value, constant) is needed, and it is a clamp
        consts = [a for a in expr.args if a.is_number]
        rest = [a for a in expr.args if not a.is_number]
        if len(expr.args) != 2 or len(consts) != 1:
            raise ValueError(f"MatlabPrinter: only max(expr, constant) is printable, got {expr}")
        return self._helper_call("clamp_min", (rest[0], consts[0]))

    def _print_isnan(self, expr):
        return f"isnan({self._print(expr.args[0])})"

    def _print_iszero(self, expr):
        return f"({self._print(expr.args[0])} == 0)"

    def masked_lines(self, out: str, expr: sp.Piecewise) -> list:
        """A value and a default, (v, cond), (d, True), as MATLAB statements into ``out``: the
        default everywhere, then v where cond holds (expanded to out's size).  MATLAB has no
        elementwise choice, and cond.*v + ~cond.*d would turn a NaN or Inf in the branch not
        taken into NaN.  v must be one value (a number or a scalar argument)."""
        if len(expr.args) != 2 or expr.args[1].cond != sp.true:
            raise ValueError(f"MatlabPrinter: only a value and a default print as a mask: {expr}")
        (value, cond), (default, _) = expr.args
        if not (value.is_number or value.is_Symbol):
            raise ValueError(f"MatlabPrinter: the masked value must be one value, got {value}")
        return [
            f"{out} = {self._print(default)};",
            f"{out}({self._print(cond)} & true(size({out}))) = {self._print(value)};",
        ]

    def _print_select(self, expr):
        raise ValueError(
            f"MatlabPrinter: a switch's forms print as an if (assign_lines), not inline: {expr}"
        )

    def assign_lines(
        self, out: str, expr: sp.Expr, wrap: Callable[[str], str] = lambda code: code
    ) -> list:
        """``out = expr;`` as MATLAB statements: where a switch picks a form (select), an if on
        the switch with each form assigned in its branch (only the form picked is evaluated: the
        other may be complex or NaN there, log of a negative target).  ``wrap``: the code
        around each form's (a weight's product)."""
        sel = next((e for e in sp.preorder_traversal(expr) if isinstance(e, select)), None)
        if sel is None:
            return [f"{out} = {wrap(self.doprint(expr))};"]
        s = sel.args[0]
        on, off = (self.assign_lines(out, expr.xreplace({s: v}), wrap) for v in (1, 0))
        return [
            f"if {self.doprint(s)}",
            *("    " + ln for ln in on),
            "else",
            *("    " + ln for ln in off),
            "end",
        ]

    def _print_log(self, expr):
        if self.real_log:
            return self._helper_call("real_log", expr.args)
        return f"log({self._print(expr.args[0])})"

    def _print_log1p(self, expr):
        return f"log1p({self._print(expr.args[0])})"

    def _print_expm1(self, expr):
        return f"expm1({self._print(expr.args[0])})"


# symce's functions (symce.functions, symce.reductions) that MATLAB calls as local functions of the
# file, each printed once per file from its definition (helper_bodies)
LOCAL_FUNCTIONS = ("softplus", "clamp_min", "mul0", "sigmoid", "two_sum_err", "mean_divisor")


def _local_call(name: str):
    def _print(self, expr):
        return self._helper_call(name, expr.args)

    return _print


for _name in LOCAL_FUNCTIONS:
    setattr(MatlabPrinter, f"_print_{_name}", _local_call(_name))


def check_identifier(name: str) -> str:
    """``name`` if it is a valid MATLAB identifier (and a Python one), else ValueError."""
    if (
        not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}", name)
        or name in MATLAB_KEYWORDS
        or keyword.iskeyword(name)
    ):
        raise ValueError(f"{name!r} is not a valid MATLAB identifier")
    return name


def helper_bodies() -> tuple[dict, dict]:
    """Code of the helpers whose body is a formula, over their arguments (t; a and b), and the
    helpers each body calls.  ``two_sum_err`` is a list of assignment lines."""
    t = sp.Symbol("t", real=True)
    bodies, calls = {}, {}
    for name, fn in (("softplus", softplus), ("sigmoid", sigmoid)):
        pr = MatlabPrinter({"t": "t"})
        bodies[name] = pr.doprint(fn(t).stable())
        calls[name] = tuple(sorted(pr.helpers))
    a, b = sp.symbols("a b", real=True)
    steps = two_sum_err(a, b).stable()
    pr = MatlabPrinter({"a": "a", "b": "b", **{lhs.name: lhs.name for lhs, _ in steps}})
    bodies["two_sum_err"] = [f"{pr.doprint(lhs)} = {pr.doprint(rhs)};" for lhs, rhs in steps]
    bodies["two_sum_err_out"] = steps[-1][0].name
    bodies["two_sum_err_sum"] = steps[0][0].name
    calls["two_sum_err"] = tuple(sorted(pr.helpers))
    x, lo = sp.symbols("x lo", real=True)
    for name, expr, names in (
        ("clamp_min", clamp_min(x, lo).stable(), ("x", "lo")),
        ("mul0", mul0(a, b).stable(), ("a", "b")),
    ):
        pr = MatlabPrinter({n: n for n in (*names, "out")})
        bodies[name] = pr.masked_lines("out", expr)
        calls[name] = tuple(sorted(pr.helpers))
    for name, (lines, called) in _reduction_bodies().items():
        bodies[name], calls[name] = lines, called
    return bodies, calls


def _reduction_test(values: tuple) -> str:
    """The test of ``reduction`` against the values of one branch."""
    if len(values) == 1:
        return f"strcmp(reduction, '{values[0]}')"
    return "any(strcmp(reduction, {" + ", ".join(f"'{v}'" for v in values) + "}))"


def _reduction_branches(table: dict, out: str, pr: MatlabPrinter) -> list:
    """A table of symce.reductions as ``if``/``elseif``/``else`` assigning ``out``.  Where some
    values keep ``out`` as it is (the gradient's scale 1), only the others are tested, and there
    is no ``else``."""
    grouped = reductions.groups(table)
    changing = [(v, e) for v, e in grouped if pr.doprint(e) != out]
    if len(changing) < len(grouped):  # some values keep out: test the others explicitly
        branches, default = changing, None
    else:
        branches, default = reductions.cases(table)
    lines = []
    for i, (values, expr) in enumerate(branches):
        lines += [f"{'elseif' if i else 'if'} {_reduction_test(values)}"]
        lines += [f"    {out} = {pr.doprint(expr)};"]
    if default is not None:
        assign = f"{out} = {pr.doprint(default)};"
        lines += ["else", "    " + assign] if branches else [assign]
    return lines + ["end"] if branches else lines


def _reduction_bodies() -> dict:
    """The bodies of apply_reduction, apply_scale and mean_divisor, printed from
    symce.reductions: {name: (lines, the helpers they call)}.  apply_reduction returns the
    per-sample losses first (``none``), then reduces their double total."""
    R = reductions
    red = MatlabPrinter({"losses": "loss", "total": "total", "divisor": "divisor", "out": "out"})
    lines = []
    for value, expr in R.REDUCED.items():
        if expr.has(R.LOSSES):
            lines += [f"if {_reduction_test((value,))}", f"    out = {red.doprint(expr)};"]
            lines += ["    return;", "end"]
    lines += ["total = sum(loss(:));", *_reduction_branches(R.from_total(), "out", red)]
    scale = MatlabPrinter({"grad": "grad", "divisor": "divisor"})
    scaled = _reduction_branches(R.scaled(), "grad", scale)
    div = MatlabPrinter({"divisor": "divisor", "out": "out"})
    divisor = div.masked_lines("out", R.mean_divisor(R.DIVISOR).stable())
    return {
        "apply_reduction": (lines, tuple(sorted(red.helpers))),
        "apply_scale": (scaled, tuple(sorted(scale.helpers))),
        "mean_divisor": (divisor, tuple(sorted(div.helpers))),
    }


# ----------------------------------------------------------------------------------------------
# Contexts.
# ----------------------------------------------------------------------------------------------
# the per-class row slots, in the order the template computes them: before Srest (its terms),
# and after it (each only when an output needs it)
ROW_BEFORE = ("zs", "zlo", "e", "em1")


def names_of(kern: kr.Kernel) -> dict:
    """The names :data:`NAMES` gives the kernel's family, and the symbols that stand for a whole
    argument under its name (symce.describe.arguments)."""
    return {**NAMES[kern.family], **describe.arguments(kern)}


def _print_slots(kern) -> tuple[dict, set]:
    """Printed code of each slot the template needs, and the helpers they call."""
    names = names_of(kern)
    pr = MatlabPrinter(names, real_log=bool(kern.defined_in))
    slots = dict(kern.slots)
    if kern.family == "rowwise" and "out" not in slots:  # softmax: the output is p itself
        slots["out"] = kr.p
    code = {
        slot: "\n".join(pr.assign_lines(slot, expr)) if expr.has(select) else pr.doprint(expr)
        for slot, expr in slots.items()
    }
    return code, pr.helpers


def _row_after_lines(kern, code: dict) -> list:
    """The row statistics' lines after Srest: a column holding +Inf made NaN where the kernel
    combines its classes (Kernel.nan_row_at_inf), then p and pc where its slots read them
    (symce.describe)."""
    names = names_of(kern)
    lines = []
    if kern.nan_row_at_inf:
        srest = names["Srest"]
        lines += [
            "% a column holding +Inf (Srest = Inf) is NaN throughout, as PyTorch (docs/semantics.md)",
            f"{srest}({srest} == Inf) = NaN;",
        ]
    desc = describe.describe(kern)
    after = [n for n, used in (("p", desc.needs_p), ("pc", desc.needs_complement)) if used]
    return lines + [f"{names[n]} = {code[n]};" for n in after]


def _element_lines(prog: program.Program, pr: MatlabPrinter) -> list:
    """An elementwise program (the BCE family) as MATLAB over the whole array: the inputs in
    double, then each output weighted, reduced (the loss) or scaled (the gradient) over the
    count of elements, and rounded once to the input's class."""
    lines = []
    kern = kr.kernel(prog.kernel)
    x = describe.describe(kern).input
    for value, (same, divisor) in reductions.ALIASES.items():
        if value in kern.reductions:  # a mean over the samples: the last dimension's extent
            lines += [
                f"if strcmp(reduction, '{value}')  % {reductions.DIVISOR_WORDS[divisor]}",
                f"    reduction = '{same}';",
                f"    count = size({x}, ndims({x}));",
                "end",
            ]
    for st in prog.steps:
        if isinstance(st, program.Load):
            var = pr.doprint(sp.Symbol(st.name))
            lines.append(f"{var} = double({var});")
        elif isinstance(st, program.Store):
            weight = pr.doprint(st.weight) if st.weight is not None else None
            lines += pr.assign_lines(
                st.output, st.expr, lambda v, w=weight: f"{w}.*({v})" if w else v
            )
            if st.output == "loss":
                lines.append(
                    f"{st.output} = cast(apply_reduction({st.output}, reduction, count), cls);"
                )
            else:
                lines.append(
                    f"{st.output} = cast(apply_scale({st.output}, reduction, count), cls);"
                )
    return lines


def _validation(kern: kr.Kernel) -> list:
    """A kernel's argument checks as lines: first the types and shapes (C has none: its sizes
    are the caller's), then the values, in the order every language checks them (the variants'
    catalogue checks, symce.describe; one MATLAB function takes both kinds of target)."""
    desc = describe.describe(kern)
    x = desc.input
    ids = errors.matlab_ids()
    if desc.family == "rowwise":  # the upstream gradient of the VJP is the size of the logits
        lines = [f"check_float({x}, '{x}');", f"[K, N] = check_classes({x}, '{x}');"]
        return lines + [
            f"{a.name} = check_like({a.name}, '{a.name}', {x}, '{x}');" for a in kern.inputs[1:]
        ]
    if desc.family in describe.CE_FAMILIES:
        weights = {"weight": ("opts.Weight", "Weight")}
        lines = [
            f"check_float({x}, '{x}');",
            f"[K, N] = check_classes({x}, '{x}');",
            f"w_k = check_class_weight(opts.Weight, K, {x});",
            "ignore_index = check_ignore_index(opts.IgnoreIndex);",
            "% labels or probability targets (docs/semantics.md, Input policies)",
            f"soft = is_soft_target(target, {x}, K);",
            "if soft",
            f"    target = check_like(target, 'target', {x}, '{x}');",
            "    t = [];",
            "else",
            f"    t = check_labels(target, N, {x});",
            "end",
        ]
    else:
        weights = {
            "weight": ("opts.Weight", "Weight"),
            "pos_weight": ("opts.PosWeight", "PosWeight"),
        }
        lines = [
            f"check_float({x}, '{x}');",
            f"target = check_like(target, 'target', {x}, '{x}');",
            f"weight = check_elementwise_weight(opts.Weight, {x});",
        ]
        if desc.has_pos_weight:
            lines.append(f"pos_weight = check_pos_weight(opts.PosWeight, {x});")
    values = {
        "smoothing": ["smoothing = check_smoothing(opts.LabelSmoothing);"],
        "option_value": [  # a defined loss's options, each against its interval
            f"{o.name} = check_switch(opts.{options.matlab_name(o.name)}, "
            f"'{options.matlab_name(o.name)}');"
            if o.switch
            else f"{o.name} = check_option(opts.{options.matlab_name(o.name)}, "
            f"'{options.matlab_name(o.name)}', {_bound(o.low, '-Inf')}, {_bound(o.high, 'Inf')});"
            for o in desc.kernel.scalars
        ],
        "reduction": ["reduction = check_reduction(opts.Reduction);"]
        if kern.reductions == reductions.REDUCTIONS
        else [  # a defined loss's own reductions too
            "reduction = check_reduction_in(opts.Reduction, {"
            + ", ".join(f"'{r}'" for r in kern.reductions)
            + "});"
        ],
        "label": ["check_label_range(t, K, ignore_index);"],
        "domain": [f"check_probabilities({x}, '{x}');"],
        "target": [
            "if soft",
            f"    check_probabilities(target, 'target', '{TARGET_HINT.format(first=x.upper())}');",
            "end",
        ],
    }
    for key, (var, name) in weights.items():  # the value as given, as the message shows it
        values[key] = [f"check_nonnegative({var}, '{name}', '{ids[key]}');"]
    keys = [key for key in desc.checks if key in values]
    return lines + [line for key in keys for line in values[key]]


# the families whose per-row program (symce.program) MATLAB prints whole
PROGRAM_FAMILIES = ("rowwise", "ce_probs", "ce_logits", "bce")


def _program_code(kern: kr.Kernel, row_stats) -> dict:
    """The per-row programs of a kernel (symce.program) as MATLAB over the K-by-N columns at once:
    for the cross-entropies the lines of each target kind ("labels", "soft": the template's two
    branches), and the shared "lines".  A skipped column (a label equal to IgnoreIndex) has a
    zero target, loss and gradient.  ``row_stats``: the row statistics of logits as one item of
    the lines (a Part of _shift.m.jinja)."""
    desc = describe.describe(kern)
    progs = {v.target: program.program(kern, v) for v in desc.variants}
    bound = {st.name: st.name for p in progs.values() for st in p.all_steps if hasattr(st, "name")}
    pr = MatlabPrinter({**bound, **names_of(kern)}, real_log=bool(kern.defined_in))
    if kern.family == "bce":
        return {"lines": _element_lines(progs[""], pr)}
    out = {}
    divisor = {"weight_of_kept": "divisor = sum(w_t(kept));", "rows": "divisor = N;"}
    for target, prog in progs.items():
        if not target:
            continue
        lines = []
        for st in prog.target_steps:
            if isinstance(st, program.Load) and st.role == "target":
                lines += [
                    "% probability targets, one column per sample",
                    f"{pr.doprint(sp.Symbol(st.name))} = reshape(double(target), K, N);",
                    "kept = true(1, N);",
                ]
            elif isinstance(st, program.Skip):
                lines += [
                    "% class labels: hot = [k == t], w_t = the weight of the sample's class",
                    "kept = t ~= ignore_index;",
                    "t(~kept) = 1;  % any class; the column is zeroed below",
                ]
            elif isinstance(st, program.Load) and st.role == "onehot":
                lines.append(f"{st.name} = (1:K)' == t;")
            elif isinstance(st, program.Load) and st.at == "label":
                lines.append(f"{st.name} = reshape(w_k(t), 1, N);")
            elif isinstance(st, program.Let):
                lines += [divisor[prog.variant.divisor], f"{st.name} = {pr.doprint(st.expr)};"]
        if prog.skips:
            lines.append("yt(:, ~kept) = 0;")
        out[target] = lines
    shared = next(iter(progs.values())).steps  # the steps every target kind shares
    out["lines"] = _row_lines(shared, pr, desc, row_stats)
    return out


def _row_lines(steps, pr: MatlabPrinter, desc: describe.Description, row_stats) -> list:
    """The steps of a row program as MATLAB over the K-by-N columns."""
    first = desc.input
    loss_kernel = desc.kernel.is_loss
    lines = []
    for st in steps:
        if isinstance(st, program.Load):
            var = pr.doprint(sp.Symbol(st.name))
            source = first if st.name in (kr.z.name, kr.p.name, kr.v.name) else st.name
            lines.append(f"{var} = reshape(double({source}), K, N);")
        elif isinstance(st, program.RowStats):
            lines.append(row_stats)
        elif isinstance(st, program.Pair):
            p, pc = pr.doprint(kr.p), pr.doprint(kr.pc)
            lines += [
                f"{pr.doprint(kr.p_i)} = reshape({p}, K, 1, N);",
                f"{pr.doprint(kr.p_j)} = reshape({p}, 1, K, N);",
                f"{pr.doprint(kr.pc_i)} = reshape({pc}, K, 1, N);",
                "% the Kronecker delta (not eye: Octave's diagonal matrix type does not expand)",
                f"{pr.doprint(kr.delta)} = double((1:K)' == (1:K));",
            ]
        elif isinstance(st, program.RowSum):
            lines.append(f"{pr.doprint(sp.Symbol(st.name))} = pairwise_sum({pr.doprint(st.expr)});")
        elif isinstance(st, program.Let):
            lines.append(f"{pr.doprint(sp.Symbol(st.name))} = {pr.doprint(st.expr)};")
        elif isinstance(st, program.Store) and not loss_kernel:
            value = f"cast({pr.doprint(st.expr)}, cls)"
            lines.append(
                f"{st.output} = reshape({value}, sz);"
                if st.scope == "class"
                else f"{st.output} = {value};"
            )
        elif isinstance(st, program.Store) and st.scope == "row":
            lines += [
                f"{st.output} = {pr.doprint(st.expr)};",
                f"{st.output}(~kept) = 0;",
                f"{st.output} = cast(apply_reduction({st.output}, reduction, divisor), cls);",
            ]
        elif isinstance(st, program.Store):
            lines += [
                f"{st.output} = {pr.doprint(st.expr)};",
                f"{st.output} = apply_scale({st.output}, reduction, divisor);",
                f"{st.output}(:, ~kept) = 0;",
                f"{st.output} = reshape(cast({st.output}, cls), sz);",
            ]
    return lines


def _matlab_words(text: str) -> str:
    return text.replace("class axis", "class dimension").replace("per row", "per sample")


def _number(v) -> str:
    """A number of an example as short as it reads: 0.5, 3, -100."""
    if np.issubdtype(np.asarray(v).dtype, np.integer):
        return str(int(v))
    return np.format_float_positional(v, trim="-")


def _literal(a, sep: str = " ") -> str:
    """MATLAB literal of a number or an array of at most 2 dimensions (a 1-D array is a row):
    ``[1 0; 2 0; 0.5 3]``, numbers separated by ``sep``; a float32 array is ``single(...)``."""
    a = np.asarray(a)
    if a.ndim > 2:
        raise ValueError(f"no MATLAB literal for a {a.ndim}-D example value")
    text = "; ".join(sep.join(_number(v) for v in row) for row in np.atleast_2d(a))
    text = text if a.size == 1 else f"[{text}]"
    return f"single({text})" if a.dtype == np.float32 else text


def _layout(a) -> np.ndarray:
    """An example value (symce.examples: NumPy's layout, samples along the first axis) in MATLAB's:
    the sample axis moves last (N-by-K -> K-by-N, N-by-K-by-K -> K-by-K-by-N, one sample's
    trailing 1 dropped); a vector or a number stays as it is (a row)."""
    a = np.asarray(a)
    if a.ndim >= 2:
        a = np.moveaxis(a, 0, -1)
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a


def _labels(t, ignore_index: int) -> np.ndarray:
    """0-based class labels 1-based; a label equal to ignore_index (a value) stays as it is."""
    t = np.asarray(t)
    return np.where(t == ignore_index, t, t + 1)


# the result's name in the help examples, where the registry's generic "out" says little
EXAMPLE_NAMES = {
    "sigmoid": "s",
    "sigmoid_grad": "ds",
    "softmax": "p",
    "log_softmax": "logp",
    "logsumexp": "lse",
    "softmax_jacobian": "J",
    "softmax_vjp": "v",
}
IGNORE_INDEX = int(options.OPTIONS["ignore_index"].python_default)  # the labels' default


def _example(kern) -> dict:
    """The help example from the shared table (symce.examples) in MATLAB's layout: the call, and
    each result as the table has it (4 decimals)."""
    ex = examples.of(kern)
    ignore_index = ex.options.get("ignore_index", IGNORE_INDEX)
    call_args = [
        _literal(_labels(a, ignore_index) if np.issubdtype(a.dtype, np.integer) else _layout(a))
        for a in ex.inputs
    ]
    for key, val in ex.options.items():
        value = f"'{val}'" if isinstance(val, str) else _literal(_layout(val))
        call_args.append(f"'{options.record(kern, key).matlab}', {value}")
    shown = [
        (EXAMPLE_NAMES.get(kern.name, out.name), _literal(_layout(v), "  "))
        for out, v in zip(kern.outputs, ex.results)
    ]
    lhs = shown[0][0] if len(shown) == 1 else "[" + ", ".join(n for n, _ in shown) + "]"
    call = f"{lhs} = {PREFIX}{kern.name}({', '.join(call_args)})"
    return {"call": call, "results": [{"name": n, "value": v} for n, v in shown]}


def _arg_docs(kern) -> list:
    fam = kern.family
    docs = []
    for a in kern.inputs:
        if a.name in ("x", "z", "g"):
            text = SHAPES[a.name]
        elif fam == "bce":
            text = (
                ("an array of any size, " + a.doc)
                if a.name != "target"
                else (
                    f"targets{'' if kern.defined_in else ' in [0, 1]'}, the size of the first "
                    "argument (an integer or logical array is converted)"
                )
            )
        elif a.name == "target":
            text = (
                "1-by-N (or N-by-1) class labels in 1..K, of any numeric class (one "
                "label for one sample), or floating-point probability targets in [0, 1] "
                "of the size of the first argument (with one class, K = 1, pass labels "
                "as an integer class such as int32)"
            )
        else:
            text = (
                f"K-by-N, {a.doc.replace('one row per sample', 'one column per sample')} "
                "(a 1-by-K row is one sample)"
            )
        docs.append({"name": a.name.upper(), "text": text})
    return docs


def _out_doc(kern) -> list:
    fam, layout, docs = kern.family, describe.describe(kern).layout, []
    for o in kern.outputs:
        if fam == "elementwise":
            text = f"{o.doc}, the size of X"
        elif layout == "scalar":
            text = "1-by-N, one value per sample"
        elif layout == "jacobian":
            text = "K-by-K-by-N, J(i, j, n) = dp_i/dz_j of sample n"
        elif fam == "rowwise":
            text = "K-by-N, the size of Z"
        elif o.name == "loss":
            text = (
                "the reduced loss (a scalar), or 1-by-N per-sample losses for 'none'"
                if fam.startswith("ce")
                else "the reduced loss (a scalar), or one per element for 'none'"
            )
        else:
            text = "gradient of the reduced loss, the size of the first argument"
        docs.append({"name": o.name.upper(), "text": text})
    return docs


def _bound(value, unbounded: str) -> str:
    """An end of an option's interval as a MATLAB literal."""
    return unbounded if value is None else repr(float(value))


def _options_doc(kern) -> list:
    fam = options.family(kern.family)
    return [{"name": f"'{o.matlab}'", "text": o.matlab_doc[fam]} for o in options.records(kern)]


def _see_also(kern) -> list:
    """The other kernels of the family, upper-case as MATLAB help writes them, wrapped."""
    fam_of = {"ce_probs": "ce", "ce_logits": "ce"}
    mine = fam_of.get(kern.family, kern.family)
    others = [
        (PREFIX + n).upper()
        for n, k in kr.registry().items()
        if fam_of.get(k.family, k.family) == mine and n != kern.name
    ]
    return _wrap(", ".join(others) + ".", 66)


def _wrap(text: str, width: int) -> list:
    """Greedy word wrap (help text lines)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


# The template body of each family, and the local helpers that body calls.
BODY = {  # family -> the template of its body (the config of this language)
    "elementwise": "matlab/_elementwise.m.jinja",
    "rowwise": "matlab/_rowwise.m.jinja",
    "ce_probs": "matlab/_ce.m.jinja",
    "ce_logits": "matlab/_ce.m.jinja",
    "bce": "matlab/_bce.m.jinja",
}
_CE_HELPERS = (
    "parse_options",
    "check_float",
    "check_classes",
    "check_like",
    "check_reduction",
    "check_smoothing",
    "check_class_weight",
    "check_ignore_index",
    "check_labels",
    "check_label_range",
    "check_nonnegative",
    "is_soft_target",
    "check_probabilities",
)
# the families with the row scheme (shift, zs, zlo, e, em1, Srest, p, pc)
FAMILY_HELPERS = {
    "elementwise": ("check_float",),
    "rowwise": ("check_float", "check_classes"),
    "ce_probs": _CE_HELPERS,
    "ce_logits": _CE_HELPERS,
    "bce": (
        "parse_options",
        "check_float",
        "check_like",
        "check_reduction",
        "check_elementwise_weight",
        "check_nonnegative",
    ),
}
# helper -> the helpers it calls (the closure is emitted; softplus's come from its printed body)
HELPER_CALLS = {
    "parse_options": ("value_str",),
    "check_float": ("class_str",),
    "check_classes": ("size_str",),
    "check_like": ("class_str", "size_str"),
    "check_reduction": ("value_str",),
    "check_reduction_in": ("value_str",),
    "check_switch": ("value_str",),
    "check_smoothing": ("value_str",),
    "check_option": ("value_str",),
    "check_class_weight": ("check_real_numbers", "size_str", "value_str"),
    "check_ignore_index": ("value_str",),
    "check_labels": ("class_str", "size_str"),
    "check_label_range": (),
    "check_nonnegative": ("value_str",),
    "check_elementwise_weight": ("check_real_numbers", "size_str", "value_str"),
    "check_pos_weight": ("check_real_numbers", "size_str", "value_str"),
    "check_real_numbers": ("class_str",),
    "check_probabilities": (),
    "is_soft_target": ("value_str",),
    "value_str": ("size_str",),
}


def _notes(kern) -> list:
    """The help's closing remarks: classes kept, NaN policy, conversion of the option arrays."""
    text = (
        "Works on double and single: the result has the class of the inputs (single in, "
        "single out), and NaN in an input gives NaN in every result that depends on it."
    )
    text += (
        f" {'Each element' if kern.family in ('elementwise', 'bce') else 'Each sample'} "
        "is computed in double precision, also for single input, and rounded once at the "
        "end."
    )
    if kern.checks_domain:
        text += (
            f" {kern.inputs[0].name.upper()} must hold probabilities in [0, 1] (NaN "
            "passes through); any other value is an error."
        )
    converted = [OPTIONS[k] for k in ("weight", "pos_weight") if k in kern.options]
    if converted:
        text += (
            f" {' and '.join(converted)} {'are' if len(converted) > 1 else 'is'} "
            "converted to the class of the first input (from any numeric class or "
            "logical)."
        )
    return _wrap(text, 72)


def _needs(kern, ins) -> str:
    """What a call needs, for the too-few-inputs error: 'the inputs LOGITS and TARGET ...'."""
    text = f"the input{'s' if len(ins) > 1 else ''} {' and '.join(a.upper() for a in ins)}"
    return text + (" (then name-value options)" if kern.options else "")


# the local functions (one macro each in templates/matlab/_helpers.m.jinja), in the order a file
# lists those it calls: the formulas' functions, the sums and reductions, the argument checks,
# then the message formatting
HELPERS = (
    "softplus",
    "sigmoid",
    "two_sum_err",
    "clamp_min",
    "mul0",
    "real_log",
    "pairwise_sum",
    "apply_reduction",
    "apply_scale",
    "mean_divisor",
    "check_nargin",
    "parse_options",
    "check_float",
    "check_classes",
    "check_like",
    "check_reduction",
    "check_reduction_in",
    "check_smoothing",
    "check_option",
    "check_switch",
    "check_class_weight",
    "check_real_numbers",
    "check_ignore_index",
    "is_soft_target",
    "check_labels",
    "check_label_range",
    "check_elementwise_weight",
    "check_pos_weight",
    "check_nonnegative",
    "check_probabilities",
    "value_str",
    "class_str",
    "size_str",
)


def _helper_closure(names, calls) -> list:
    """The helpers ``names`` and every helper they call, in HELPERS' order."""
    todo, seen = list(names), set()
    while todo:
        h = todo.pop()
        if h not in seen:
            seen.add(h)
            todo.extend(calls.get(h, ()))
    unknown = seen - set(HELPERS)
    if unknown:
        raise ValueError(f"MATLAB helpers without a macro in HELPERS: {sorted(unknown)}")
    return [h for h in HELPERS if h in seen]


def _doc_lines(items, width) -> list:
    return [{"name": it["name"], "lines": _wrap(it["text"], width)} for it in items]


def context(kern: kr.Kernel) -> dict:
    """The template context of one kernel (strings, names and flags only)."""
    name = check_identifier(PREFIX + kern.name)
    code, printed_helpers = _print_slots(kern)
    bodies, body_calls = helper_bodies()
    desc = describe.describe(kern)
    fam = kern.family
    ins = [check_identifier(a.name) for a in kern.inputs]
    outs = [check_identifier(o.name) for o in kern.outputs]
    helpers = set(FAMILY_HELPERS[fam]) | printed_helpers | {"check_nargin"}
    if desc.layout == "vjp":
        helpers.add("check_like")
    if desc.has_pos_weight:
        helpers.add("check_pos_weight")
    if desc.has_loss:
        helpers.add("apply_reduction")
    if desc.has_grad and "reduction" in kern.options:
        helpers.add("apply_scale")
    if desc.checks_domain:
        helpers.add("check_probabilities")
    if any(not o.switch for o in kern.scalars):
        helpers.add("check_option")
    if kern.switches:
        helpers.add("check_switch")
    if kern.reductions != reductions.REDUCTIONS:  # its own reductions too: the other check
        helpers.add("check_reduction_in")
        helpers.discard("check_reduction")
    if desc.rows or (fam == "ce_probs" and (desc.has_loss or desc.needs_ysum)):
        helpers.add("pairwise_sum")  # every sum over the K classes
    params = ins + (["varargin"] if kern.options else [])
    lhs = outs[0] if len(outs) == 1 else "[" + ", ".join(outs) + "]"
    usage_args = ", ".join(a.upper() for a in ins)
    usage = [f"{lhs.upper()} = {name.upper()}({usage_args})"]
    if kern.options:
        usage.append(f"{lhs.upper()} = {name.upper()}({usage_args}, Name, Value)")
    opts = [{"name": o.matlab, "default": o.matlab_default} for o in options.records(kern)]
    ctx = {
        "errors": errors.matlab_ids(),  # the error identifiers (symce.errors)
        "name": name,
        "NAME": name.upper(),
        "signature": f"{lhs} = {name}({', '.join(params)})",
        "family": fam,
        "h1": _matlab_words(kern.summary),
        "usage": usage,
        "formula": kern.doc_formula,
        "args": _doc_lines(_arg_docs(kern), 66),
        "outs": _doc_lines(_out_doc(kern), 66),
        "options_doc": _doc_lines(_options_doc(kern), 56),
        "notes": _notes(kern),
        "example": _example(kern),
        "see_also": _see_also(kern),
        "first": ins[0],
        "nargs": len(ins),
        "needs": _needs(kern, ins),
        # the printed slots a template reads (the elementwise body); the row and loss kernels'
        # bodies are their programs' lines, and the row statistics' slots row_before/row_after
        "code": {"out": code["out"]} if fam == "elementwise" else {},
        "options": opts,
        "names": names_of(kern),
        "row_before": [{"var": NAMES[fam][n], "code": code[n]} for n in ROW_BEFORE if desc.rows],
        "row_after": _row_after_lines(kern, code) if desc.rows else [],
        "helpers": _helper_closure(helpers, {**HELPER_CALLS, **body_calls}),
        "softplus_body": bodies["softplus"],
        "sigmoid_body": bodies["sigmoid"],
        "two_sum_err_body": bodies["two_sum_err"],
        "two_sum_err_out": bodies["two_sum_err_out"],
        "two_sum_err_sum": bodies["two_sum_err_sum"],
        "clamp_min_body": bodies["clamp_min"],
        "mul0_body": bodies["mul0"],
        "apply_reduction_body": bodies["apply_reduction"],
        "apply_scale_body": bodies["apply_scale"],
        "mean_divisor_body": bodies["mean_divisor"],
    }
    if kern.is_loss or desc.rows:
        ctx["validation"] = _validation(kern)
    if fam in PROGRAM_FAMILIES:
        # the row statistics of logits, laid out where the program computes them
        row_stats = Part("matlab/_shift.m.jinja", dict(ctx), line=True) if desc.rows else None
        ctx["program"] = _program_code(kern, row_stats)
    # the body: the family's template (BODY), laid out with this context
    ctx["body"] = Part(BODY[fam], dict(ctx))
    return ctx


def outputs() -> list:
    """One Output per kernel: generated/matlab/symce_<kernel>.m."""
    return [
        Output(f"matlab/{PREFIX}{name}.m", TEMPLATE, context(kern))
        for name, kern in kr.registry().items()
    ]
