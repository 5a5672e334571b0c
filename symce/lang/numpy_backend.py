"""Stage 6 — emission: the NumPy emitter, a printer and the template context of
symce_kernels.py.

What comes out is one standalone module, ``generated/numpy/symce_kernels.py``, that imports only
NumPy (a user copies the file).  Every kernel is vectorised over the batch (no Python loop over
samples or classes) and keeps the dtype it is given (float32 or float64, never mixed).

Flow: the registry's slots (SymPy, :mod:`symce.kernels`) -> :class:`NumPyKernelPrinter` (a
``NumPyPrinter`` subclass: symce's functions mapped, kernel-local symbols renamed per family,
strict, so anything unmapped is an error) -> strings in the template context ->
``templates/numpy/``.  The templates lay out each family's array code (validation, row shift and
Srest, effective targets, reductions); every formula in it is a printed slot.  The private helpers
the printed code calls are printed from the stable forms too: ``_softplus`` from
``softplus(t).stable()``, ``_sigmoid`` from ``sigmoid(t).stable()`` and ``_two_sum_err`` from the
TwoSum assignments of ``two_sum_err(a, b).stable()``; the reductions (``_reduce``,
``_reduce_rows``, ``_scale``, ``_grad_divisor``, ``_mean_divisor``) from :mod:`symce.reductions`.

Every kernel works in float64 also for float32 input and rounds once at the end
(docs/semantics.md); the template widens and narrows, the slots are the same.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import log1p
from sympy.printing.numpy import NumPyPrinter

from .. import describe, errors, examples, options, program, reductions
from .. import kernels as kr
from ..functions import clamp_min, mul0, sigmoid, softplus, two_sum_err
from .base import GENERATED, Output, Part

# the families whose per-row program (symce.program) this language prints whole
PROGRAM_FAMILIES = ("ce_probs",)

OUTPUT = "numpy/symce_kernels.py"
TEMPLATE = "numpy/symce_kernels.py.jinja"

MODULE_ALIASES = {"numpy": "np"}  # as the generated module imports them

# Per family, the kernel-local symbols its template binds -> their Python names.  A slot using
# any other symbol is an error when it is printed.  ROW_AT renames the per-class row slots to their
# values at the row's argmax (the em1 term of Srest is only needed there).
_TARGETS = {
    "yt": "yt",
    "hot": "hot",
    "w_t": "w_t",
    "w_k": "w_k",
    "y": "y",
    "label_smoothing": "label_smoothing",
    "K": "n_classes",
}
_ROW = {
    "z": "z",
    "shift": "shift",
    "zs": "zs",
    "zlo": "zlo",
    "e": "e",
    "em1": "em1",
    "Srest": "srest",
    "pc": "pc",
}
BOUND = {
    "elementwise": {"x": "x"},
    "rowwise": {
        **_ROW,
        "p": "p",
        "p_i": "p_i",
        "p_j": "p_j",
        "pc_i": "pc_i",
        "delta": "delta",
        "g": "g",
        "dot": "dot",
        "gesum": "gesum",
    },
    "ce_probs": {**_TARGETS, "p": "probs"},
    "ce_logits": {**_TARGETS, **_ROW, "p": "p", "ysum": "ysum"},
    "bce": {"x": "logits", "prob": "probs", "y": "target", "w": "w", "pw": "pw"},
}
ROW_AT = {"zs": "zs_a", "zlo": "zlo_a"}
# the template of the row statistics, laid out where a row program computes them
ROW_STATS = "numpy/_rows.py.jinja"
# the printed slots (k.code.<slot>) each family's templates read; the cross-entropy from logits
# and the BCE family run block programs (numpy_blocks.py) for the rest
TEMPLATE_SLOTS = {
    "elementwise": ("out",),
    "rowwise": ("zs", "zlo", "e", "em1_a"),  # the row statistics (ROW_STATS; then row_after)
    "ce_probs": (),  # its program (symce.program) is printed whole
    "ce_logits": (),  # its program (_ce_logits_code) prints the class part of y~
    "bce": (),
}
ROW_SLOTS = ("zs", "zlo", "e", "em1", "p", "pc")  # the per-class slots of the row families


class NumPyKernelPrinter(NumPyPrinter):
    """NumPy code for slot expressions, as the generated module spells it.

    * ``numpy`` is imported as ``np`` (``_module_format``);
    * symce's functions: ``softplus``, ``sigmoid``, ``two_sum_err`` and ``mul0`` -> the module
      helpers ``_softplus``, ``_sigmoid``, ``_two_sum_err`` and ``_mul0``; ``clamp_min`` ->
      ``np.maximum`` (it propagates NaN); ``log1p``, ``expm1`` -> ``np.log1p``, ``np.expm1``;
      two-argument ``Max`` -> ``np.maximum`` (SymPy prints a ``functools.reduce``);
    * symbols are renamed through ``names`` (symbol name -> Python name); a symbol missing from
      the table is an error, as is any function without a mapping (``strict``).
    """

    def __init__(self, names: dict):
        super().__init__({"strict": True, "fully_qualified_modules": True})
        self._names = dict(names)

    def _module_format(self, fqn, register=True):
        module, _, attr = fqn.rpartition(".")
        if module in MODULE_ALIASES:
            self.module_imports[module].add(attr)
            return MODULE_ALIASES[module] + "." + attr
        return super()._module_format(fqn, register)

    def _print_Symbol(self, expr):
        if expr.name not in self._names:
            raise ValueError(
                f"symbol {expr.name!r} is not bound here; bound: {sorted(self._names)}"
            )
        return self._names[expr.name]

    def _call(self, fname, *args):
        return fname + "(" + ", ".join(self._print(a) for a in args) + ")"

    def _print_softplus(self, expr):
        return self._call("_softplus", *expr.args)

    def _print_clamp_min(self, expr):
        return self._call(self._module_format("numpy.maximum"), *expr.args)

    def _print_mul0(self, expr):
        return self._call("_mul0", *expr.args)

    def _print_sigmoid(self, expr):
        return self._call("_sigmoid", *expr.args)

    def _print_two_sum_err(self, expr):
        return self._call("_two_sum_err", *expr.args)

    def _print_mean_divisor(self, expr):
        return self._call("_mean_divisor", *expr.args)

    def _print_log1p(self, expr):
        return self._call(self._module_format("numpy.log1p"), *expr.args)

    def _print_expm1(self, expr):
        return self._call(self._module_format("numpy.expm1"), *expr.args)

    def _print_Abs(self, expr):
        return self._call(self._module_format("numpy.abs"), *expr.args)

    def _print_Max(self, expr):
        if len(expr.args) != 2:
            raise ValueError(f"Max of {len(expr.args)} arguments has no NumPy mapping here")
        return self._call(self._module_format("numpy.maximum"), *expr.args)

    def _print_isnan(self, expr):
        return self._call(self._module_format("numpy.isnan"), *expr.args)

    def _print_iszero(self, expr):
        return f"({self._print(expr.args[0])} == 0)"

    def _operand(self, expr) -> str:
        """``expr`` printed as an operand of & or ~, which bind tighter than comparisons: in
        parentheses unless it is one call or one parenthesised group already."""
        text = self._print(expr)
        head = re.match(r"~?[\w.]*\(", text)
        if head and text.endswith(")"):
            depth = 0
            for pos in range(head.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[pos], 0)
                if depth == 0:
                    break
            if pos == len(text) - 1:
                return text
        return f"({text})"

    def _print_And(self, expr):
        return " & ".join(self._operand(a) for a in expr.args)

    def _print_Not(self, expr):
        return "~" + self._operand(expr.args[0])

    def _print_select(self, expr):
        """A switch's two forms as Python's conditional: the switch is one bool, so only the form
        it picks is computed."""
        s, on, off = expr.args
        return f"({self._print(on)} if {self.condition(s)} else {self._print(off)})"

    def condition(self, s: sp.Basic) -> str:
        """A select's condition, one Python bool: the switch, or options compared (alpha >= 0)."""
        if isinstance(s, sp.core.relational.Relational):
            return f"{self._print(s.lhs)} {s.rel_op} {self._print(s.rhs)}"
        return self._print(s)

    def _print_Piecewise(self, expr):
        """A value and a default, (v, cond), (d, True), as np.where(cond, v, d): both are computed
        and one is chosen per element (a NaN in the unchosen one does not leak)."""
        if len(expr.args) != 2 or expr.args[1].cond != sp.true:
            raise ValueError(f"{expr}: only a value and a default print as np.where")
        (value, cond), (default, _) = expr.args
        where = self._module_format("numpy.where")
        return f"{where}({self._print(cond)}, {self._print(value)}, {self._print(default)})"


class _ScalarPrinter(NumPyKernelPrinter):
    """NumPy code on scalars (the reduction helpers): a value and a default as Python's
    conditional expression, a comparison as Python's operator (a NumPy scalar keeps its dtype),
    and NaN as ``nan``: the code of a NaN of the right dtype."""

    def __init__(self, names: dict, nan: str = "np.nan"):
        super().__init__(names)
        self._nan = nan

    def _print_Piecewise(self, expr):
        if len(expr.args) != 2 or expr.args[1].cond != sp.true:
            raise ValueError(f"{expr}: only a value and a default print as a conditional")
        (value, cond), (default, _) = expr.args
        return f"{self._print(value)} if {self._print(cond)} else {self._print(default)}"

    def _print_Relational(self, expr):
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    def _print_NaN(self, expr):
        return self._nan


def bound(kern: kr.Kernel) -> dict:
    """The names :data:`BOUND` gives the kernel's family, and the symbols that stand for a whole
    argument under its name (symce.describe.arguments)."""
    return {**BOUND[kern.family], **describe.arguments(kern)}


def printer(family: str) -> NumPyKernelPrinter:
    """A printer with the kernel-local names the templates of ``family`` bind."""
    return NumPyKernelPrinter(BOUND[family])


# ----------------------------------------------------------------------------------------------
# Signatures and docs: PyTorch's keyword names; options keyword-only after ``reduction``.
# ----------------------------------------------------------------------------------------------
PARTIALS = {
    "elementwise": "elementwise",
    "rowwise": "rowwise",
    "ce_probs": "ce",
    "ce_logits": "ce",
    "bce": "bce",
}
TEMPLATES = {**PARTIALS, "ce_logits": "ce_logits"}  # family -> templates/numpy/_<name>.py.jinja

DEFAULTS = {name: o.python_default for name, o in options.OPTIONS.items()}  # symce.options
AXIS_DOC = "int, default -1: the class axis."


RETURN_DOCS = {  # (family partial, output) -> its entry where the registry's Arg is too generic
    ("bce", "loss"): "loss (), or the input's shape for 'none': the reduced loss, or one per "
    "element for 'none'",
}
DOC_WIDTH = 100

TARGET_DOC = {
    "ce": "(N,) integer class indices in [0, K), or (N, K) floating probability targets in "
    "[0, 1]; for 1-D input (K,): an integer or a (K,) target",
    "bce": "targets in [0, 1], the input's shape (an integer or bool array is converted)",
}


def _nested(a) -> str:
    """An example value as Python source of numbers and nested lists: ``[[1.0, 2.0], [0.5, 3.0]]``,
    each number as short as its dtype reads."""
    a = np.asarray(a)
    if a.ndim:
        return "[" + ", ".join(_nested(v) for v in a) + "]"
    if np.issubdtype(a.dtype, np.integer):
        return str(int(a))
    return np.format_float_positional(a[()], trim="0")


def _py_literal(a) -> str:
    """An example value as Python source: a number, or ``np.array([...])`` (a float32 array says
    its dtype)."""
    a = np.asarray(a)
    if not a.ndim:
        return _nested(a)
    dtype = ", dtype=np.float32" if a.dtype == np.float32 else ""
    return f"np.array({_nested(a)}{dtype})"


# how a doctest shows a result: a reduced loss (a number), an array; rounded as symce.examples has it
ROUNDED = ("round(float({}), 4)", "{}.round(4)")


def _doctest_call(name: str, args: list, around: str = "{}") -> list:
    """The doctest line ``>>> name(args)`` inside ``around`` (``{}`` marks the call), wrapped at the
    docstring's width: ``...`` lines with the arguments under the opening parenthesis."""
    head, tail = around.split("{}")
    first = f">>> {head}{name}("
    lines, line = [], first
    for i, arg in enumerate(args):
        piece = arg + (", " if i + 1 < len(args) else ")" + tail)
        if line != first and len(line) + len(piece) > DOC_WIDTH - 8:
            lines.append(line.rstrip())
            line = "..." + " " * (len(first) - 3)
        line += piece
    return lines + [line]


def _example(kern: kr.Kernel) -> list:
    """The docstring's doctest, from the shared table (symce.examples): each input bound to its
    argument's name, the call, and each result as ROUNDED shows it, in the first input's dtype."""
    ex = examples.of(kern)
    lines = [f">>> {a.name} = {_py_literal(v)}" for a, v in zip(kern.inputs, ex.inputs)]
    args = [a.name for a in kern.inputs] + [
        f"{key}={val!r}" if isinstance(val, str) else f"{key}={_py_literal(val)}"
        for key, val in ex.options.items()
    ]
    dtype = np.asarray(ex.inputs[0]).dtype
    names = [o.name for o in kern.outputs]
    if len(names) > 1:
        lines += _doctest_call(kern.name, args, ", ".join(names) + " = {}")
    for name, result in zip(names, ex.results):
        shown = ROUNDED[np.ndim(result) > 0]
        if len(names) == 1:  # the call itself, rounded
            lines += _doctest_call(kern.name, args, shown)
        else:
            lines.append(">>> " + shown.format(name))
        value = repr(np.asarray(result, dtype=dtype)) if np.ndim(result) else repr(float(result))
        lines += value.splitlines()
    return lines


def rowwise_layout(kern: kr.Kernel) -> str:
    """How a rowwise kernel's output is laid out (symce.describe), with the softmax itself ("p":
    no ``out`` slot, the row's p is the output) told apart from the other vectors; "" for the
    other families."""
    if kern.family != "rowwise":
        return ""
    layout = describe.describe(kern).layout
    return "p" if layout == "vector" and "out" not in kern.slots else layout


def _signature(kern: kr.Kernel) -> str:
    """The parameter list, wrapped under the opening parenthesis of ``def name(``."""
    params = [a.name for a in kern.inputs]
    if describe.describe(kern).movable_axis:
        params.append("axis=-1")
    if kern.options:
        params.append("reduction=" + DEFAULTS["reduction"])
        rest = [o for o in kern.options if o != "reduction"]
        if rest:
            params.append("*")
            records = {r.name: r for r in options.records(kern)}
            params.extend(o + "=" + records[o].python_default for o in rest)
    indent = " " * len(f"def {kern.name}(")
    lines = textwrap.wrap(
        ", ".join(params),
        width=DOC_WIDTH - len(indent) - 2,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return ("\n" + indent).join(lines)


def _wrapped(text: str) -> list:
    """One docstring entry, wrapped; continuation lines indented by four spaces."""
    return textwrap.wrap(
        text,
        width=DOC_WIDTH - 8,
        subsequent_indent="    ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _arg_docs(kern: kr.Kernel, partial: str) -> list:
    lines = []
    for a in kern.inputs:
        if a.kind == "target" and partial != "bce":
            text = f"{a.name}: {TARGET_DOC['ce']}."
        elif partial == "bce" and a.name == "target":  # a defined loss's: not checked
            words = (
                TARGET_DOC["bce"].replace(" in [0, 1]", "")
                if kern.defined_in
                else TARGET_DOC["bce"]
            )
            text = f"{a.name}: {words}."
        elif a.shape == "any":
            text = f"{a.name} (any shape): {a.doc}."
        elif describe.describe(kern).movable_axis:
            text = f"{a.name} {a.shape}, (K,) or any shape with the classes on ``axis``: {a.doc}."
        else:
            text = f"{a.name} {a.shape} or (K,): {a.doc}."
        lines.extend(_wrapped(text))
    if describe.describe(kern).movable_axis:
        lines.extend(_wrapped("axis: " + AXIS_DOC))
    order = (["reduction"] if "reduction" in kern.options else []) + [
        o for o in kern.options if o != "reduction"
    ]
    for o in order:
        lines.extend(_wrapped(f"{o}: {options.record(kern, o).doc[partial]}"))
    return lines


def _return_docs(kern: kr.Kernel, partial: str) -> list:
    lines = []
    for o in kern.outputs:
        shape = f"(the shape of {o.shape[5:]})" if o.shape.startswith("like ") else o.shape
        text = RETURN_DOCS.get((partial, o.name), f"{o.name} {shape}: {o.doc}")
        lines.extend(_wrapped(f"{text}; the dtype of {kern.inputs[0].name}."))
    return lines


def kernel_context(kern: kr.Kernel) -> dict:
    """Strings and flags for one kernel's block in the template."""
    pr = NumPyKernelPrinter(bound(kern))
    slots = dict(kern.slots)
    if kern.family == "bce":  # the element weight multiplies the loss and its gradient
        slots = {slot: kr.w * expr for slot, expr in slots.items()}
    code = {slot: pr.doprint(expr) for slot, expr in slots.items()}
    desc = describe.describe(kern)
    rows = desc.rows
    if rows:  # em1 at the argmax only, for Srest (em1 of every class only where pc is needed)
        at = NumPyKernelPrinter({**BOUND[kern.family], **ROW_AT})
        code["em1_a"] = at.doprint(kern.slots["em1"])
        pr.module_imports.update(at.module_imports)
    if set(pr.module_imports) - {"numpy"}:
        raise ValueError(f"{kern.name}: printed code needs {dict(pr.module_imports)}")
    row_after = _row_after(kern, code) if kern.family == "rowwise" else []
    code = {slot: text for slot, text in code.items() if slot in TEMPLATE_SLOTS[kern.family]}
    partial = PARTIALS[kern.family]
    outputs = [o.name for o in kern.outputs]
    ctx = {
        "name": kern.name,
        "family": kern.family,
        "signature": _signature(kern),
        "summary": kern.summary,
        "formula": kern.doc_formula,
        "args": _arg_docs(kern, partial),
        "returns": _return_docs(kern, partial),
        "example": _example(kern),
        "code": code,
        "x": kern.inputs[0].name,
        # flags that choose blocks in the family templates
        "axis": desc.movable_axis,
        "layout": rowwise_layout(kern),
        "logits": kern.family == "ce_logits",
        "row_after": row_after,
        "domain": desc.checks_domain,  # probabilities must lie in [0, 1]
        "loss": desc.has_loss,
        "grad": desc.has_grad,
        "pos_weight": desc.has_pos_weight,
        "result": ", ".join(outputs),
        "programs": _programs(kern),
    }
    if kern.is_loss or desc.rows:
        ctx["validation"] = _validation(kern)
    if kern.family == "rowwise":
        ctx["program"] = _row_code(kern, ctx)
    if kern.family == "ce_logits":
        ctx["program"] = _ce_logits_code(kern, ctx)
    if kern.family in PROGRAM_FAMILIES:
        ctx["program"] = _program_code(kern)
    if kern.family == "bce":
        ctx["program"] = _element_setup(kern)
    # the body: the family's template (TEMPLATES), laid out with this context
    ctx["body"] = Part(f"numpy/_{TEMPLATES[kern.family]}.py.jinja", {"k": dict(ctx)})
    return ctx


def _row_after(kern: kr.Kernel, code: dict) -> list:
    """The row statistics' lines after Srest (numpy/_rows.py.jinja): a row holding +inf made NaN
    where the kernel combines its classes, then p, em1 and pc where its slots read them."""
    desc = describe.describe(kern)
    lines = ["_nan_at_inf(srest)"] if desc.nan_row_at_inf else []
    if desc.needs_p:
        lines.append(f"p = {code['p']}")
    if desc.needs_complement:
        lines += [f"em1 = {code['em1']}", f"pc = {code['pc']}"]
    return lines


def _validation(kern: kr.Kernel) -> list:
    """A row or loss kernel's argument checks as lines: first the types and shapes (C has none: its
    sizes are the caller's), then the values, in the order every language checks them (the
    variants' catalogue checks, symce.describe; one NumPy function takes both kinds of target)."""
    desc = describe.describe(kern)
    x = desc.input
    if desc.family == "rowwise":  # the class axis moved last; the VJP's g the shape of z
        lines = [
            f'{x} = _class_axis("{x}", _floating("{x}", {x}), axis)'
            if desc.movable_axis
            else f'{x} = _classes("{x}", _floating("{x}", {x}))'
        ]
        return lines + [
            f'{a.name} = _same_shape("{a.name}", _companion("{a.name}", {a.name}, {x}, "{x}"), {x}, "{x}")'
            for a in kern.inputs[1:]
        ]
    if desc.family in describe.CE_FAMILIES:
        weights = {"weight": "weight"}
        lines = [
            f'{x} = _rows("{x}", _floating("{x}", {x}))',
            'ignore_index = _integer("ignore_index", ignore_index)',
            f'labels, y = _ce_target(target, {x}, "{x}")',
            f'weight = _class_weights(weight, {x}, "{x}")',
        ]
    else:
        weights = {"weight": "w", "pos_weight": "pw"}
        lines = [
            f'{x} = _floating("{x}", {x})',
            f'target = _same_shape("target", _companion("target", target, {x}, "{x}"), {x}, "{x}")',
        ]
        lines += [
            f'{var} = _element_weights("{role}", {role}, {x}, "{x}")'
            for role, var in weights.items()
            if desc.variants[0].has(role)
        ]
    values = {
        "smoothing": "label_smoothing = _smoothing(label_smoothing)",
        "reduction": "reduction = _reduction(reduction)",
        "weight": f'_nonnegative("weight", {weights["weight"]})',
        "pos_weight": '_nonnegative("pos_weight", pw)',
        "label": f"_labels(labels, {x}.shape[-1], ignore_index)",
        "domain": f'_probabilities("{x}", {x})',
        "target": "_probability_targets(y)",
    }
    values["option_value"] = "\n".join(  # a defined loss's options, each against its interval
        f'{o.name} = _switch("{o.name}", {o.name})'
        if o.switch
        else f'{o.name} = _option("{o.name}", {o.name}, {o.low!r}, {o.high!r})'
        for o in desc.kernel.scalars
    )
    extra = [r for r in kern.reductions if r not in reductions.REDUCTIONS]
    if extra:  # a defined loss's own reductions besides none, mean and sum
        values["reduction"] = f"reduction = _reduction(reduction, _REDUCTIONS + {tuple(extra)!r})"
    keys = [key for key in desc.checks if key in values]
    return lines + [line for key in keys for line in values[key].splitlines()]


def _row_code(kern: kr.Kernel, ctx: dict) -> dict:
    """A row kernel (symce.program) as NumPy, in float64 with the classes last: the "lines" inside
    the errstate block and the "result" returned.  softmax, log_softmax and logsumexp (any axis)
    run their block programs over the flattened rows, float32 and float64 each its own; the
    Jacobian and the VJP print their program over the whole array (the row statistics are
    _rows.py.jinja, laid out in place)."""
    desc = describe.describe(kern)
    prog = program.program(kern, desc.variants[0])
    (store,) = prog.stores()
    if desc.movable_axis:
        shape = "(x.shape[0], 1)" if store.scope == "row" else "x.shape"
        programs = ctx["programs"]
        lines = [
            "x, ones_k, shape = _flat_rows(z), np.ones(z.shape[-1]), z.shape",
            f"out = np.empty({shape}, dtype)",
            "if dtype == np.float32:",
            *("    " + line for line in programs["rows_wide"]),
            "else:",
            *("    " + line for line in programs["rows"]),
            "out = out.reshape(shape[:-1] + out.shape[-1:])",
        ]
        result = "out[..., 0]" if store.scope == "row" else "np.moveaxis(out, -1, axis)"
        return {"lines": lines, "result": f"_narrow({result}, dtype)"}
    pr = NumPyKernelPrinter({**BOUND["rowwise"], "out": "out"})
    lines = []
    for st in prog.steps:
        if isinstance(st, program.Load):
            lines.append(f"{st.name} = _wide({st.name})")
        elif isinstance(st, program.RowStats):
            lines.append(Part(ROW_STATS, {"k": dict(ctx)}, line=True))
        elif isinstance(st, program.Pair):
            lines += [
                "p_i, pc_i = p[..., :, None], pc[..., :, None]",
                "p_j = p[..., None, :]",
                "delta = np.eye(z.shape[-1])",
            ]
        elif isinstance(st, program.RowSum):
            lines.append(f"{st.name} = np.sum({pr.doprint(st.expr)}, axis=-1, keepdims=True)")
        elif isinstance(st, (program.Let, program.Store)):
            name = st.name if isinstance(st, program.Let) else st.output
            lines.append(f"{name} = {pr.doprint(st.expr)}")
    return {"lines": lines, "result": "_narrow(out, dtype)"}


def _ce_logits_code(kern: kr.Kernel, ctx: dict) -> dict:
    """The cross-entropy from logits (symce.program) as NumPy: "setup" (the rows and each stored
    output allocated), the branch of each target kind ("labels", "soft": its row values, then its
    block programs for float32 and float64) and "finish" (each output zeroed at the skipped rows,
    shaped, reduced)."""
    desc = describe.describe(kern)
    x = desc.input
    progs = {v.target: program.program(kern, v) for v in desc.variants}
    stores = progs["labels"].stores()
    setup = [
        f"x, weight, ones_k = _batch({x}), _wide(weight), np.ones(n_classes)",
        "w_k = 1 if weight is None else weight",
    ]
    finish = []
    for st in stores:
        if st.scope == "row":
            setup.append("losses = np.empty(x.shape[0])")
            finish += [
                f"losses = _zero_rows(losses, kept).reshape({x}.shape[:-1])",
                f"{st.output} = _narrow(_reduce(losses, reduction, divisor), dtype)",
            ]
        else:
            setup.append(f"{st.output} = np.empty(x.shape, dtype)")
            finish.append(f"{st.output} = _zero_rows({st.output}, kept).reshape({x}.shape)")
    out = {"setup": setup, "finish": finish}
    for target, prog in progs.items():
        if prog.skips:
            lines = [
                "kept, t_all, w_t_all, wsum, divisor = _label_rows(labels, ignore_index, weight, x)",
                # the class part of y~ (at hot = 0): the label's part is added at the label
                f"c = {printer(kern.family).doprint(kern.slots['yt_label'].xreplace({kr.hot: 0}))}",
                "smooth, csum = _nonzero(c), _class_sum(c, n_classes)",
            ]
        else:
            lines = ["kept, yin, divisor = None, _batch(y), np.float64(x.shape[0])"]
        if prog.stores("class"):
            lines.append("gdiv = _grad_divisor(reduction, divisor)")
        lines += [
            "if dtype == np.float32:",
            *("    " + line for line in ctx["programs"][f"{target}_wide"]),
            "else:",
            *("    " + line for line in ctx["programs"][target]),
        ]
        out[target] = lines
    return out


def _element_setup(kern: kr.Kernel) -> dict:
    """The BCE family's program (symce.program) around its tiles (the block programs): the
    "setup" lines that flatten each loaded input to rows and allocate each stored output, and the
    "finish" lines that reduce the loss and shape the gradient."""
    x = describe.describe(kern).input
    prog = program.program(kern, describe.describe(kern).variants[0])
    setup, finish = [], []
    for value, (same, divisor) in reductions.ALIASES.items():
        if value in kern.reductions:  # a mean over another divisor (symce.reductions)
            setup += [
                f"if reduction == {value!r}:  # {reductions.DIVISOR_WORDS[divisor]}",
                f"    reduction, count = {same!r}, count.dtype.type({x}.shape[0] if {x}.ndim else 1)",
            ]
    for st in prog.steps:
        if isinstance(st, program.Load) and st.role == "in":
            setup.append(f"xin, yin = _flat_rows({x}), _flat_rows(target)")
        elif isinstance(st, program.Load) and st.role == "weight":
            setup.append(f"weighted, win = _element_rows(w, {x})")
        elif isinstance(st, program.Load) and st.role == "pos_weight":
            setup.append(f"pwin = _element_rows(pw, {x})[1]")
        elif isinstance(st, program.Store) and st.output == "loss":
            setup += [
                'keep_all, total = reduction == "none", np.float64(0)',
                "loss = np.empty(xin.shape, xin.dtype) if keep_all else None",
            ]
            finish.append(f"loss = _reduce_rows(loss, total, reduction, count, {x})")
        elif isinstance(st, program.Store):
            gdiv = NumPyKernelPrinter({"divisor": "count"}).doprint(_divided_gradient()[1])
            setup += [
                f"gdiv = {gdiv}",
                f"{st.output} = np.empty(xin.shape, xin.dtype)",
            ]
            finish.append(f"{st.output} = {st.output}.reshape({x}.shape)[()]")
    return {"setup": setup, "finish": finish}


def _program_code(kern: kr.Kernel) -> dict:
    """The per-row programs of a kernel (symce.program) as NumPy array code over all rows at once:
    the lines of each target kind ("labels", "soft": the template's two branches), then the
    shared "lines".  A label row's loads are one _label_parts call (kept rows, one-hot, weights
    at the label and the class, the divisor); a skipped row's y~, loss and gradient are 0."""
    desc = describe.describe(kern)
    progs = {v.target: program.program(kern, v) for v in desc.variants}
    steps = {st.name: st.name for p in progs.values() for st in p.all_steps if hasattr(st, "name")}
    pr = NumPyKernelPrinter({**steps, **bound(kern)})
    x = desc.input
    out = {}
    for target, prog in progs.items():
        if prog.loads("labels"):
            lines = [
                f"kept, hot, w_t, w_k, divisor = _label_parts(labels, ignore_index, weight, {x})"
            ]
        else:
            lines = ["kept = None", f"w_k, divisor = _soft_parts(weight, {x})"]
        for st in prog.target_steps:
            if isinstance(st, program.Let):
                lines.append(f"{pr.doprint(st.name)} = {pr.doprint(st.expr)}")
        if prog.skips:  # a skipped row's target is 0
            lines.append("yt = _masked(yt, kept)")
        out[target] = lines
    lines = []
    for st in progs["labels"].steps:  # the steps every target kind shares
        if isinstance(st, program.RowSum):
            lines.append(f"{st.name} = np.sum({pr.doprint(st.expr)}, axis=-1)")
        elif isinstance(st, program.Store) and st.scope == "row":
            rows, value = f"{st.output}_rows", pr.doprint(st.expr)
            lines += [
                "# a skipped row's loss is 0, NaN in it or not",
                f"{rows} = {value} if kept is None else np.where(kept, {value}, 0)",
                f"{st.output} = _narrow(_reduce({rows}, reduction, divisor), dtype)",
            ]
        elif isinstance(st, program.Store):
            lines += [
                f"{st.output} = {pr.doprint(st.expr)}",
                f"{st.output} = _narrow(_masked(_scale({st.output}, reduction, divisor), kept), dtype)",
            ]
    out["lines"] = lines
    return out


def _programs(kern: kr.Kernel) -> dict:
    """The block programs of a kernel, by variant (empty for the families without them)."""
    if kern.family == "ce_logits":
        return {
            f"{v.target}{'_wide' if wide else ''}": _ce_program(kern, v.soft, wide)
            for v in describe.describe(kern).variants
            for wide in (False, True)
        }
    if kern.family == "bce":
        return {"rows": _bce_program(kern, False), "rows_wide": _bce_program(kern, True)}
    if kern.family == "rowwise" and describe.describe(kern).movable_axis:
        return {"rows": _rowwise_program(kern, False), "rows_wide": _rowwise_program(kern, True)}
    return {}


# ----------------------------------------------------------------------------------------------
# Block programs (symce/lang/numpy_blocks.py) of the cross-entropy from logits and the BCE family
# ----------------------------------------------------------------------------------------------
_C = sp.Symbol("c", real=True)  # the per-class part of y~ for integer labels
_GDIV = sp.Symbol("gdiv", positive=True)  # the gradient's divisor (the mean's, or 1)
_WSUM = sp.Symbol("wsum", positive=True)  # sum_k w_k
_TS = sp.Symbol("ts", real=True)  # TwoSum's t = s - a
_GDIV_G = sp.Symbol("g", real=True)  # the gradient block, updated in place
_CSUM = sp.Symbol("csum", nonnegative=True)  # sum_k c_k
_E = sp.Symbol("E", nonnegative=True)  # exp(-|x|), shared by softplus and sigmoid (BCE)
_AT = {
    "zs": "zs_a",
    "zlo": "zlo_a",
    "e": "e_a",
    "em1": "em1_a",
    "p": "p_a",
    "pc": "pc_a",
    "yt": "yt_a",
    "hot": "hot_a",
    "w_k": "w_a",
}
_AT_LABEL = {
    "zs": "zs_t",
    "zlo": "zlo_t",
    "e": "e_t",
    "em1": "em1_t",
    "p": "p_t",
    "pc": "pc_t",
    "yt": "yt_t",
}
BLOCK_NAMES = {
    **BOUND["ce_logits"],
    "c": "c",
    "gdiv": "gdiv",
    "wsum": "wsum",
    "ts": "ts",
    "lt": "lt",
    "E": "E",
    "g": "g",
    "csum": "csum",
}


def _terms_over(expr, den):
    """Each term of ``expr`` divided by ``den`` (the sum is not expanded further)."""
    return sp.Add(*[t / den for t in sp.Add.make_args(expr)])


def _flattener(wide: bool):
    """For float32 input (``wide``): zlo -> 0 in a slot (and mul0(0, .) -> 0); else the slot."""

    def flat(ex):
        if not wide:
            return ex
        return ex.xreplace({kr.zlo: 0}).replace(
            lambda f: isinstance(f, mul0) and f.args[0] == 0, lambda f: sp.S.Zero
        )

    return flat


def _row_head(kern: kr.Kernel, wide: bool) -> list:
    """The steps every row program starts with: the argmax and shift, zs (and zlo by TwoSum, whose
    s is the zs slot, in float64), and em1 and e at the argmax."""
    from . import numpy_blocks as nb

    sl = kern.slots
    flat = _flattener(wide)
    at = NumPyKernelPrinter({**BLOCK_NAMES, **_AT})
    steps = [
        nb.line("at = _argmax_at(x[lo:hi])"),
        nb.line("shift = _shift_at(x[lo:hi], at)"),
        nb.Step("load" if wide else "view", name="z", code="x[lo:hi]"),
        nb.block("zs", sl["zs"]),
    ]
    if not wide:
        a, b = sl["zlo"].args
        with sp.evaluate(False):
            (s_sym, s_expr), (t_sym, t_expr), (_, err) = two_sum_err(a, b).stable()
            t_expr = t_expr.xreplace({s_sym: kr.zs})
            err = err.xreplace({s_sym: kr.zs, t_sym: _TS})
        if sp.expand(s_expr - sl["zs"]) != 0:
            raise ValueError("the zs slot is not TwoSum's s")
        steps += [
            nb.block("ts", t_expr),
            nb.block("zlo", err),
            nb.line("_zero_where_not_finite(zlo, zs)", reads=("zlo", "zs")),
        ]
    steps.append(nb.line("zs_a = _get(zs, at)", reads=("zs",)))
    if not wide:
        steps.append(nb.line("zlo_a = _get(zlo, at)", reads=("zlo",)))
    steps += [
        nb.line(f"em1_a = {at.doprint(flat(sl['em1']))}"),
        nb.line(f"e_a = {at.doprint(flat(sl['e']))}"),
    ]
    return steps


def _loop(lines: list, nbuf: int) -> list:
    """A block program's lines under its loop head (buffers allocated once, cut per block)."""
    head = [
        f"_bufs = _buffers({nbuf}, x)",
        "for lo, hi in _blocks(x):",
        f"    {', '.join(f'_b{i}' for i in range(nbuf))}, = _bufs[:, :hi - lo]",
    ]
    return head + ["    " + ln for ln in lines]


def _rowwise_program(kern: kr.Kernel, wide: bool) -> list:
    """The block program of softmax, log_softmax and logsumexp (float32 input in float64 with
    zlo = 0, as the softmax cross-entropy; float64 with TwoSum): the output slot (p for softmax)
    into ``out``, rows lo..hi."""
    from . import numpy_blocks as nb

    sl = kern.slots
    flat = _flattener(wide)
    steps = _row_head(kern, wide)
    ones = ", ones_k" if wide else ""
    steps += [
        nb.block("e", flat(sl["e"])),
        nb.line(f"srest = _srest_at(e, at, em1_a, e_a{ones})", reads=("e",)),
    ]
    layout = rowwise_layout(kern)
    if layout == "scalar":
        row = NumPyKernelPrinter(BLOCK_NAMES).doprint(flat(sl["out"]))
        steps.append(nb.line(f"out[lo:hi] = {row}"))
    else:
        out = flat(sl["p"] if layout == "p" else sl["out"])
        steps += [nb.block("o", out), nb.line("out[lo:hi] = o", reads=("o",))]
    lines, nbuf = nb.assemble(steps, NumPyKernelPrinter(BLOCK_NAMES), {"z"})
    return _loop(lines, nbuf)


def _ce_program(kern: kr.Kernel, soft: bool, wide: bool) -> list:
    """The block program of a ce_logits kernel (with its loop head), for probability targets
    (``soft``) or integer labels, for float32 input computed in float64 (``wide``) or float64.

    ``wide``: zlo = 0.  Two float32 values subtract in float64 exactly unless their exponents are
    more than 29 apart, and always within 2^-53 |z - shift|; in exp(z - shift) that is under
    2^-46 relative wherever the float32 result does not underflow (|z - shift| < 104), far below
    float32's 2^-24, so the TwoSum compensation is not needed.  float64: zlo by TwoSum, whose s is
    the zs slot.  The gradient: the slot with pc at the argmax and the label (p can be near 1
    there); elsewhere p <= 1/2, and p ysum - y~ (the slot with pc -> 1 - p) is one pass."""
    from . import numpy_blocks as nb

    sl = kern.slots
    flat = _flattener(wide)
    base = dict(BLOCK_NAMES)
    at = NumPyKernelPrinter({**base, **_AT})
    lab = NumPyKernelPrinter({**base, **_AT_LABEL})
    loss, grad = "loss_term" in sl, "grad" in sl
    yt_label = sl["yt_label"]
    steps = _row_head(kern, wide)
    if soft:
        steps += [
            nb.Step("load" if wide else "view", name="y", code="yin[lo:hi]"),
            nb.block("yt", sl["yt_soft"]),
        ]
        if grad:
            steps.append(nb.line("ysum = np.sum(yt, axis=-1, keepdims=True)", reads=("yt",)))
    else:
        steps += [
            nb.line("t = _label_at(t_all, lo, hi, at)"),
            nb.line("w_t = w_t_all[lo:hi]"),
            nb.line("zs_t = _get(zs, t)", reads=("zs",)),
        ]
        if not wide:
            steps.append(nb.line("zlo_t = _get(zlo, t)", reads=("zlo",)))
        if grad:
            ysum = yt_label.xreplace({kr.hot: 1, kr.w_k: _WSUM})  # sum_k of y~: hot sums to 1
            steps.append(nb.line(f"ysum = {lab.doprint(ysum)}"))
    if loss:
        # sum_k mul0(y~_k, log1p(Srest) - zs_k - zlo_k): the row part log1p(Srest) times sum_k y~_k
        # (y~ >= 0, so mul0 of the sum), plus sum_k mul0(y~_k, -zs_k - zlo_k), which is taken
        # before e overwrites zs; both parts are >= 0 (no cancellation)
        term = flat(sl["loss_term"])
        if not isinstance(term, mul0):
            raise ValueError(f"{kern.name}: the loss term is not mul0(y~, ...): {term}")
        target, inner = term.args
        row_part = sp.Add(
            *[t for t in sp.Add.make_args(inner) if not t.free_symbols & {kr.zs, kr.zlo}]
        )
        class_part = inner - row_part
        if soft:
            steps += [
                nb.block("lt", mul0(target, class_part)),
                nb.line("lsum = np.sum(lt, axis=-1, keepdims=True)", reads=("lt",)),
            ]
            if not grad:
                steps.append(nb.line("ysum = np.sum(yt, axis=-1, keepdims=True)", reads=("yt",)))
        else:
            steps += [
                nb.block("lt", mul0(_C, class_part), cond="smooth"),
                nb.line("lsum = np.sum(lt, axis=-1, keepdims=True)", reads=("lt",), cond="smooth"),
            ]
    ones = ", ones_k" if wide else ""  # float32 results: Srest by a BLAS dot product
    # a row holding +inf (Srest = +inf) is NaN throughout, as PyTorch (docs/semantics.md)
    steps += [
        nb.block("e", flat(sl["e"])),
        nb.line(f"srest = _srest_at(e, at, em1_a, e_a{ones})", reads=("e",)),
        nb.line("_nan_at_inf(srest)"),
    ]
    if loss:
        if soft:
            steps.append(
                nb.line(f"losses[lo:hi] = ({lab.doprint(mul0(kr.ysum, row_part))} + lsum)[:, 0]")
            )
        else:
            # y~ = c + hot h: the label's h (a row value), then the class part c
            h = yt_label.xreplace({kr.hot: 1}) - yt_label.xreplace({kr.hot: 0})
            steps += [
                nb.line(f"loss = {lab.doprint(term.xreplace({kr.yt: h}))}"),
                nb.line(
                    f"loss = loss + {lab.doprint(mul0(_CSUM, row_part))} + lsum", cond="smooth"
                ),
                nb.line("losses[lo:hi] = loss[:, 0]"),
            ]
    if grad:
        # away from the argmax p <= 1/2: pc = 1 - p is exact enough, and p ysum - y~ is the
        # gradient; the argmax (and the label) get the slot itself, with the accurate pc
        bulk = sp.expand(sl["grad"].xreplace({kr.pc: 1 - kr.p})).xreplace({kr.p: flat(sl["p"])})
        bulk = _terms_over(bulk, _GDIV)
        if soft:
            steps.append(nb.block("g", bulk))
        else:  # the class part c of y~ only with label smoothing
            steps += [
                nb.block("g", bulk.xreplace({kr.yt: 0})),
                nb.update(
                    "g",
                    _GDIV_G + bulk.xreplace({kr.yt: _C}) - bulk.xreplace({kr.yt: 0}),
                    cond="smooth",
                ),
            ]
        steps.append(nb.line("grad[lo:hi] = g", reads=("g",)))
        fix = sl["grad"] / _GDIV
        if soft:
            steps.append(nb.line("yt_a = _get(yt, at)", reads=("yt",)))
        else:
            steps += [
                nb.line(f"e_t = {lab.doprint(flat(sl['e']))}"),
                nb.line(f"em1_t = {lab.doprint(flat(sl['em1']))}"),
                nb.line(f"p_t = {lab.doprint(flat(sl['p']))}"),
                nb.line(f"pc_t = {lab.doprint(flat(sl['pc']))}"),
                nb.line("yt_t = " + lab.doprint(yt_label.xreplace({kr.hot: 1, kr.w_k: kr.w_t}))),
                nb.line(f"_put(grad[lo:hi], t, {lab.doprint(fix)})"),
                nb.line("hot_a = at[0] == t[0]"),
                nb.line("w_a = _class_at(w_k, at)"),
                nb.line(f"yt_a = {at.doprint(yt_label)}"),
            ]
        steps += [
            nb.line(f"p_a = {at.doprint(flat(sl['p']))}"),
            nb.line(f"pc_a = {at.doprint(flat(sl['pc']))}"),
            nb.line(f"_put(grad[lo:hi], at, {at.doprint(fix)})"),
        ]
    lines, nbuf = nb.assemble(steps, NumPyKernelPrinter(base), {"z", "y"})
    return _loop(lines, nbuf)


_L = sp.Symbol("L", real=True)  # log1p(exp(-|x|)), shared by softplus(x) and softplus(-x)


def shared_exp(expr: sp.Expr) -> sp.Expr:
    """softplus(+-x) and sigmoid(+-x) through their stable forms, on one E = exp(-|x|):
    softplus(t) = max(t, 0) + log1p(E) (log1p(E) named L), and sigmoid(t) = exp(min(t, 0)) / (1 + E)
    with exp(min(t, 0)) = E where t < 0, else 1: max(E, [t >= 0]) (the same bits: exp(x) is
    exp(-|x|) for x < 0; a NaN x gives NaN)."""
    x = kr.x
    expr = expr.replace(lambda f: isinstance(f, (softplus, sigmoid)), lambda f: f.stable())
    # exp(min(+-x, 0)) is E or 1, and E <= 1: max(E, [+-x >= 0]) selects it exactly (NaN too)
    expr = expr.xreplace(
        {
            sp.exp(-clamp_min(-x, 0)): sp.Max(_E, sp.Piecewise((1, x >= 0), (0, True))),
            sp.exp(-clamp_min(x, 0)): sp.Max(_E, sp.Piecewise((1, x <= 0), (0, True))),
        }
    )
    expr = expr.xreplace({sp.exp(-sp.Abs(x)): _E})
    return expr.xreplace({log1p(_E): _L})


def _bce_program(kern: kr.Kernel, wide: bool) -> list:
    """The block program of a BCE kernel over tiles of its input, in float64 (``wide``: float32
    input and target widened per tile, the results rounded once): one exp(-|x|) per element for
    the sigmoid kernels, shared by the loss and the gradient; each slot times the element weight
    (only when weights are given), the gradient over the mean's divisor."""
    from . import numpy_blocks as nb

    sl = kern.slots
    names = {
        **bound(kern),
        "x": "x",
        "prob": "x",
        "y": "y",
        "w": "w",
        "pw": "pw",
        "E": "E",
        "L": "L",
        "lb": "lb",
        "gb": "gb",
        "gdiv": "gdiv",
    }
    lb, gb = sp.Symbol("lb", real=True), sp.Symbol("gb", real=True)
    load = "load" if wide else "view"
    steps = [
        nb.Step(load, name="x", code="xin[tile]"),
        nb.Step(load, name="y", code="yin[tile]"),
        nb.Step("view", name="w", code="win[tile]"),
    ]
    if "pos_weight" in kern.options:
        steps.append(nb.Step("view", name="pw", code="pwin[tile]"))
    logits = kern.inputs[0].name == "logits"
    form = shared_exp if logits else (lambda ex: ex)
    if logits:
        steps.append(nb.block("E", sp.exp(-sp.Abs(kr.x))))
        if "loss" in sl:
            steps.append(nb.block("L", log1p(_E)))
    # a subexpression the slots use twice or more (1 - y, 1 + E) is one block value
    exprs = [form(sl[name]) for name in ("loss", "grad") if name in sl]
    common = {}
    for sub, sym in ((1 - kr.y, sp.Symbol("Y1", real=True)), (1 + _E, sp.Symbol("D", real=True))):
        if sum(sum(1 for node in sp.preorder_traversal(ex) if node == sub) for ex in exprs) > 1:
            common[sub] = sym
            steps.append(nb.block(sym.name, sub))
            names[sym.name] = sym.name
    form_shared = lambda ex: form(ex).xreplace(common)
    if "loss" in sl:
        steps += [
            nb.block("lb", form_shared(sl["loss"])),
            nb.update("lb", lb * kr.w, cond="weighted"),
            nb.line("loss[tile] = lb", reads=("lb",), cond="keep_all"),
            nb.line(
                "total = total + np.sum(lb, dtype=np.float64)", reads=("lb",), cond="not keep_all"
            ),
        ]
    if "grad" in sl:
        steps += [
            nb.block("gb", form_shared(sl["grad"])),
            nb.update("gb", gb * kr.w, cond="weighted"),
            # the gradient's scale (symce.reductions): over gdiv where it is not 1
            nb.update("gb", gb / _GDIV, cond=_test(_divided_gradient()[0], "'")),
            nb.line("grad[tile] = gb", reads=("gb",)),
        ]
    lines, nbuf = nb.assemble(steps, NumPyKernelPrinter(names), {"x", "prob", "y", "w", "pw"})
    head = [
        f"_bufs = _tile_buffers({nbuf}, xin, np.float64)",
        "for tile in _tiles(xin):",
        f"    {', '.join(f'_b{i}' for i in range(nbuf))}, = _tile_of(_bufs, tile)",
    ]
    return head + ["    " + ln for ln in lines]


def formula_helpers() -> list:
    """Every function the printed formulas may call, printed from SymPy where it has a
    definition: [{name, params, doc, body (lines)}], the stable softplus and sigmoid, TwoSum's
    error and mul0."""
    t, a, b = sp.symbols("t a b", real=True)
    pr = NumPyKernelPrinter({"t": "t"})
    steps = two_sum_err(a, b).stable()
    ts = NumPyKernelPrinter({"a": "a", "b": "b", **{sym.name: sym.name for sym, _ in steps}})
    return [
        {
            "name": "_softplus",
            "params": "t",
            "doc": "log(1 + exp(t)) without overflow.",
            "body": ["return " + pr.doprint(softplus(t).stable())],
        },
        {
            "name": "_sigmoid",
            "params": "t",
            "doc": "1 / (1 + exp(-t)), branch-free, within 2 ulp for every t (no overflow, NaN "
            "stays NaN).",
            "body": ["return " + pr.doprint(sigmoid(t).stable())],
        },
        {
            "name": "_two_sum_err",
            "params": "a, b",
            "doc": "The exact rounding error of fl(a + b) (Knuth's TwoSum), 0 where the sum is "
            "not finite.",
            "body": [f"{ts.doprint(sym)} = {ts.doprint(expr)}" for sym, expr in steps]
            + ["return np.where(np.isfinite(s), err, 0)"],
        },
        {
            "name": "_mul0",
            "params": "a, b",
            "doc": "a * b, exactly 0 where a == 0 and b is not NaN: 0 * inf = 0 (a zero target "
            "at a -inf log),\n    0 * NaN = NaN (a NaN is never dropped).",
            "body": ["return " + ts.doprint(mul0(a, b).stable())],
        },
    ]


def _test(values: tuple, quote: str = '"') -> str:
    """The test of ``reduction`` against the values of one branch."""
    if len(values) == 1:
        return f"reduction == {quote}{values[0]}{quote}"
    return "reduction in (" + ", ".join(f"{quote}{v}{quote}" for v in values) + ")"


def _divided_gradient() -> tuple:
    """(the reduction values whose gradient is divided, by what: symce.reductions.grad_divisor),
    for the programs that divide their gradient blocks by one ``gdiv`` (an error if the scale
    were not 1 for more than one expression)."""
    ((values, _),), _ = reductions.cases(reductions.SCALE)
    return values, reductions.grad_divisor()[values[0]]


def _reduction_lines(table: dict, result) -> list:
    """A table of symce.reductions (reduction value -> expression) as Python: ``if`` and
    ``return`` per branch, then the default's return; ``result(expr)`` is the returned code."""
    branches, default = reductions.cases(table)
    lines = []
    for values, expr in branches:
        lines += [f"if {_test(values)}:", f"    return {result(expr)}"]
    return lines + [f"return {result(default)}"]


def _reduce_lines(names: dict, total: str | None, wrap: str = "{}") -> list:
    """The reduced loss (symce.reductions.REDUCED): the branches of the per-row losses first
    (``none``), then ``total`` (the line that sums them, if the caller has not), then the branches
    computed from the total, each ``wrap``-ped (a cast)."""
    pr = _ScalarPrinter(names)
    lines = []
    for value, expr in reductions.REDUCED.items():
        if expr.has(reductions.LOSSES):
            lines += [f"if {_test((value,))}:", f"    return {pr.doprint(expr)}"]
    lines += [total] if total else []
    return lines + _reduction_lines(reductions.from_total(), lambda e: wrap.format(pr.doprint(e)))


def reduction_helpers() -> list:
    """The reductions and the gradient's scale, printed from symce.reductions: [{name, params,
    doc, body (lines)}].  The mean's divisor is NaN of the divisor's dtype where it is 0, so a
    float32 loss or gradient stays float32."""
    typed_nan = _ScalarPrinter({"divisor": "divisor"}, nan="divisor.dtype.type(np.nan)")
    mean_divisor = typed_nan.doprint(reductions.mean_divisor(reductions.DIVISOR).stable())
    plain = _ScalarPrinter({"divisor": "divisor", "grad": "grad"})
    return [
        {
            "name": "_mean_divisor",
            "params": "divisor",
            "doc": "What 'mean' divides by: the divisor, NaN (of its dtype) where it is 0.",
            "body": [f"return {mean_divisor}"],
        },
        {
            "name": "_reduce",
            "params": "losses, reduction, divisor",
            "doc": "The loss reduced: the losses for 'none', else their total (np.sum), over "
            "the mean's\n    divisor for 'mean'.",
            "body": _reduce_lines(
                {"losses": "losses[()]", "total": "total", "divisor": "divisor"},
                "total = np.sum(losses)",
            ),
        },
        {
            "name": "_reduce_rows",
            "params": "loss, total, reduction, count, like",
            "doc": "The BCE loss: the rows reshaped like the input for 'none', else the float64 "
            "total (of the\n    blocks' sums), or the total over the mean's divisor, rounded "
            "once to the input's dtype.",
            "body": _reduce_lines(
                {
                    "losses": "loss.reshape(like.shape)[()]",
                    "total": "total",
                    "divisor": "np.float64(count)",
                },
                None,
                "like.dtype.type({})",
            ),
        },
        {
            "name": "_scale",
            "params": "grad, reduction, divisor",
            "doc": "The gradient of the reduced loss: over the divisor for 'mean'.",
            "body": _reduction_lines(reductions.scaled(), plain.doprint),
        },
        {
            "name": "_grad_divisor",
            "params": "reduction, divisor",
            "doc": "What the gradient is divided by: the mean's divisor, or 1 (float64).",
            "body": _reduction_lines(
                reductions.grad_divisor(),
                lambda e: f"np.float64({plain.doprint(e)})" if e.is_number else plain.doprint(e),
            ),
        },
    ]


def _strings(obj) -> list:
    """Every string in a nested template context."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list | tuple):
        return [s for item in obj for s in _strings(item)]
    return []


def used_helpers(kernels: list, helpers: list | None = None) -> list:
    """The helpers (default: the formula helpers) the kernels' printed code calls (directly, or
    through another helper), in the order of ``helpers``: the module defines only those."""
    helpers = formula_helpers() if helpers is None else helpers

    def calls(text: str) -> set:
        return {h["name"] for h in helpers if re.search(rf"\b{h['name']}\(", text)}

    used = calls("\n".join(_strings(kernels)))
    while True:
        bodies = "\n".join(line for h in helpers if h["name"] in used for line in h["body"])
        more = calls(bodies) - used
        if not more:
            return [h for h in helpers if h["name"] in used]
        used |= more


def context() -> dict:
    """The template context of symce_kernels.py: every kernel, the error classes and helpers."""
    kernels = [kernel_context(k) for k in kr.registry().values()]
    from .numpy_blocks import BLOCK, TILE

    return {
        "errors": errors.python_classes(),  # the exception classes (symce.errors)
        "kernels": kernels,
        "names": [k["name"] for k in kernels],
        "block": BLOCK,
        "tile": TILE,
        "formula_helpers": used_helpers(kernels),
        "reduction_helpers": used_helpers(kernels, reduction_helpers()),
    }


def outputs() -> list:
    """The one generated module, symce_kernels.py."""
    return [Output(OUTPUT, TEMPLATE, context())]


def load_generated(
    path: Path | None = None, module_name: str = "symce_numpy_kernels"
) -> ModuleType:
    """Import the generated module from ``path`` (default: generated/numpy/symce_kernels.py)."""
    path = Path(path) if path is not None else GENERATED / OUTPUT
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
