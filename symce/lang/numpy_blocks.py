"""Stage 6 — emission (NumPy, continued): block programs, the loss families evaluated in
place, in blocks.

The cross-entropy from logits and the binary cross-entropy kernels run over their rows in blocks
of about ``BLOCK`` elements.  Each block value (zs, zlo, e, the gradient, ...) lives in a
preallocated float64 buffer of one block, reused once the value is dead, and every formula is
written with ``out=`` into it, so the temporaries stay in the L2 cache and the extra memory is a
few blocks, not arrays of N x K.

A program is a list of :class:`Step`: a *block* step assigns a SymPy expression (a registry slot,
or a form the backend derives from one with SymPy: ``zlo -> 0``, ``pc -> 1 - p``, the effective
target split into its per-class and per-row parts) to a block value; a *line* step is array
plumbing (a gather at the argmax or the label, a row sum, a store), its formulas printed from
slots at row values.  :class:`InplaceEmitter` prints one expression as a sequence of ufunc calls
with ``out=``: the factors and terms that do not vary over the block (row values, class
constants, scalars) are grouped and printed once as an ordinary NumPy expression, so
``e * ysum / (srest + 1)`` is one pass over the block.  :func:`assemble` allocates the buffers
(linear scan over the steps: a value's buffer is free after its last reader; a block step may
write over the one operand that dies there, read once) and returns the lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.codeprinter import CodePrinter

from ..functions import clamp_min, mul0, select, sigmoid, softplus

BLOCK = 1 << 17  # elements per block: 1 MiB per float64 buffer (measured: 2^16..2^18 fastest)
TILE = 1 << 15  # elements per tile of the BCE programs (more buffers live at once)

UFUNCS = {sp.exp: "exp", expm1: "expm1", log1p: "log1p", sp.Abs: "absolute", sp.log: "log"}
# symce's functions of one argument the module computes with its helpers (a defined loss's)
HELPERS = {sigmoid: "_sigmoid", softplus: "_softplus"}


@dataclass
class Step:
    """One statement of a block program.

    ``kind``: "block" (``name`` = ``expr``, in place, into a buffer), "update" (``name`` =
    ``expr``, which reads ``name`` once, into ``name``'s own buffer), "load" (``name`` = the rows
    ``code`` widened to float64 into a buffer), "view" (``name`` = ``code``, a view: no buffer) or
    "line" (``code``, plumbing that reads the block values ``reads``).  ``cond``: a Python
    condition the step runs under.
    """

    kind: str
    name: str = ""
    expr: object = None
    code: str = ""
    reads: tuple = ()
    cond: str = ""


def block(name: str, expr: sp.Expr, cond: str = "") -> Step:
    """A block step: ``name`` = ``expr`` into a buffer of its own."""
    return Step("block", name=name, expr=expr, cond=cond)


def update(name: str, expr: sp.Expr, cond: str = "") -> Step:
    """An update step: ``name`` = ``expr`` (which reads ``name`` once) into ``name``'s buffer."""
    return Step("update", name=name, expr=expr, cond=cond)


def line(code: str, reads: Iterable[str] = (), cond: str = "") -> Step:
    """A line of plumbing, ``code``, reading the block values ``reads``."""
    return Step("line", code=code, reads=tuple(reads), cond=cond)


def _indicator(expr) -> bool:
    """Piecewise((1, cond), (0, True))."""
    return (
        isinstance(expr, sp.Piecewise)
        and len(expr.args) == 2
        and expr.args[0].expr == 1
        and expr.args[1].expr == 0
        and expr.args[1].cond is sp.true
    )


def _count(expr, name) -> int:
    """How often the symbol ``name`` is read by the emitted code of ``expr`` (mul0 reads its first
    argument twice: the product, then the zero test)."""
    n = 0
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Symbol) and node.name == name:
            n += 1
        if isinstance(node, mul0):
            n += sum(1 for s in node.args[0].atoms(sp.Symbol) if s.name == name)
    return n


@dataclass
class InplaceEmitter:
    """Prints a block expression into a destination buffer as ufunc calls with ``out=``.

    ``small`` prints the parts that do not vary over the block (an ordinary NumPy printer);
    ``block`` holds the names of the symbols bound to blocks; ``temp`` / ``release`` lend scratch
    buffers for a second block operand.
    """

    small: object
    block: set
    temp: object
    release: object
    dying: dict = field(default_factory=dict)  # values read for the last time here, once
    lines: list = field(default_factory=list)

    def varies(self, expr: sp.Basic) -> bool:
        """Whether ``expr`` reads a block value (so varies over the block)."""
        return any(s.name in self.block for s in expr.free_symbols)

    def code(self, expr: sp.Basic) -> str:
        """``expr`` printed as an ordinary NumPy expression."""
        return self.small.doprint(expr)

    def condition(self, s: sp.Basic) -> str:
        """A select's condition as one Python bool (the printer's :meth:`condition`)."""
        return self.small.condition(s)

    def emit(self, expr: sp.Expr, dest: str, alias: str | None = None) -> str:
        """Emit ``expr`` into ``dest``; returns the code of the array holding it (``dest``, or a
        block symbol's name when ``expr`` is one).  ``alias``: the name of the value ``dest``
        holds now, still to be read (once) by ``expr``: it is computed first."""
        if not self.varies(expr):
            return self.code(expr)
        if isinstance(expr, sp.Symbol):
            return self.code(expr)
        if isinstance(expr, sp.Add):
            return self._add(expr, dest, alias)
        if isinstance(expr, sp.Mul):
            return self._mul(expr, dest, alias)
        if isinstance(expr, sp.Pow) and expr.exp == -1:
            self._op("divide", "1", self.emit(expr.base, dest, alias), dest)
            return dest
        if type(expr) in UFUNCS:
            arg = self.emit(expr.args[0], dest, alias)
            self.lines.append(f"np.{UFUNCS[type(expr)]}({arg}, out={dest})")
            return dest
        if type(expr) in HELPERS:  # symce's function of the module's helpers, into dest
            arg = self.emit(expr.args[0], dest, alias)
            self.lines.append(f"np.copyto({dest}, {HELPERS[type(expr)]}({arg}))")
            return dest
        if _indicator(expr):  # Piecewise((1, c), (0, True)) is the boolean array c itself
            return self.code(expr.args[0].cond)
        if isinstance(expr, (clamp_min, sp.Max)):
            fixed = [a for a in expr.args if not self.varies(a)]
            moving = self._first([("max", a) for a in expr.args if self.varies(a)], alias)
            if len(expr.args) != 2:
                raise ValueError(f"in-place max of two arguments only: {expr}")
            acc = self.emit(moving[0][1], dest, alias)
            if fixed:
                other, tmp = self.code(fixed[0]), None
            else:
                other, tmp = self._operand(moving[1][1], dest, alias, first=False)
            self._op("maximum", acc, other, dest)
            if tmp is not None:
                self.release(tmp)
            return dest
        if isinstance(expr, select):  # one bool (a switch, options compared): one form runs
            s, *forms = expr.args
            before, branches = self.lines, []
            for form in forms:
                self.lines = []
                got = self.emit(form, dest, alias)
                if got != dest:
                    self.lines.append(f"np.copyto({dest}, {got})")
                branches.append(self.lines)
            self.lines = before + [f"if {self.condition(s)}:"]
            self.lines += ["    " + ln for ln in branches[0]] + ["else:"]
            self.lines += ["    " + ln for ln in branches[1]]
            return dest
        if isinstance(expr, mul0):
            a, b = expr.args
            src = self.emit(b, dest, alias)
            self.lines.append(f"_mul0_into({self.code(a)}, {src}, {dest})")
            return dest
        if isinstance(expr, sp.Piecewise) and len(expr.args) == 2 and expr.args[1].cond is sp.true:
            (val, cond), (other, _) = expr.args
            tmp = src = None
            if self.varies(val):  # computed first: it may read the value dest holds
                tmp = self.temp()
                src = self.emit(val, tmp)
            first = self.emit(other, dest, alias)
            if first != dest:
                self.lines.append(f"np.copyto({dest}, {first})")
            self.lines.append(
                f"np.copyto({dest}, {src or self.code(val)}, where={self.code(cond)})"
            )
            if tmp is not None:
                self.release(tmp)
            return dest
        if isinstance(expr, sp.Pow):  # base ** exponent, either or both varying
            parts = {"base": expr.base, "exp": expr.exp}
            moving = self._first([(k, a) for k, a in parts.items() if self.varies(a)], alias)
            key, first = moving[0]
            acc = self.emit(first, dest, alias)
            other, tmp = parts["exp" if key == "base" else "base"], None
            if self.varies(other):
                other, tmp = self._operand(other, dest, alias, first=False)
            else:
                other = self.code(other)
            self._op("power", *((acc, other) if key == "base" else (other, acc)), dest)
            if tmp is not None:
                self.release(tmp)
            return dest
        raise ValueError(f"no in-place form for {type(expr).__name__}: {expr}")

    def _op(self, ufunc, a, b, dest):
        self.lines.append(f"np.{ufunc}({a}, {b}, out={dest})")

    def _first(self, parts, alias):
        """The block operand that reads ``alias`` goes first (it is computed into dest)."""
        if alias is None:
            return parts
        hit = [p for p in parts if _count(p[1], alias)]
        return hit + [p for p in parts if not _count(p[1], alias)]

    def _operand(self, expr, dest, alias, first):
        """Code of a block operand: the first one goes into dest; the others into the buffer of
        a value they read for the last time (computed over it), or into scratch."""
        if first:
            return self.emit(expr, dest, alias), None
        for name in sorted(self.dying):
            if _count(expr, name):
                buf = self.dying.pop(name)
                return self.emit(expr, buf, name), None
        tmp = self.temp()
        return self.emit(expr, tmp), tmp

    def _add(self, expr, dest, alias):
        parts, fixed = [], []
        for term in expr.args:
            if not self.varies(term):
                fixed.append(term)
                continue
            coeff, rest = term.as_coeff_Mul()
            parts.append(("-", rest) if coeff == -1 else ("+", term))
        parts = self._first(parts, alias)
        rest_fixed = sp.Add(*fixed)
        acc = None
        for i, (sign, term) in enumerate(parts):
            code, tmp = self._operand(term, dest, alias, first=i == 0)
            if acc is None:
                if sign == "-" and fixed:
                    self._op("subtract", self.code(rest_fixed), code, dest)
                    fixed = []
                elif sign == "-":
                    self.lines.append(f"np.negative({code}, out={dest})")
                else:
                    acc = code
                    continue
            else:
                self._op("add" if sign == "+" else "subtract", acc, code, dest)
            acc = dest
            if tmp is not None:
                self.release(tmp)
        if fixed:
            if rest_fixed.could_extract_minus_sign():
                self._op("subtract", acc, self.code(-rest_fixed), dest)
            else:
                self._op("add", acc, self.code(rest_fixed), dest)
            acc = dest
        return acc

    def _mul(self, expr, dest, alias):
        parts, fixed = [], []
        for factor in expr.args:
            if not self.varies(factor):
                fixed.append(factor)
            elif isinstance(factor, sp.Pow) and factor.exp == -1:
                parts.append(("/", factor.base))
            else:
                parts.append(("*", factor))
        # a product before any quotient: a / b is one rounding, a * (1 / b) two
        parts = self._first(sorted(parts, key=lambda p: p[0] == "/"), alias)
        if parts[0][0] == "/" and not fixed:
            fixed = [sp.Integer(1)]
        acc = None
        for i, (how, factor) in enumerate(parts):
            code, tmp = self._operand(factor, dest, alias, first=i == 0)
            if acc is None and how == "/":
                num = sp.Mul(*fixed)
                self._op("divide", self.code(num), code, dest)
                fixed = []
            elif acc is None:
                acc = code
                continue
            else:
                self._op("multiply" if how == "*" else "divide", acc, code, dest)
            acc = dest
            if tmp is not None:
                self.release(tmp)
        if fixed:
            num, den = sp.fraction(sp.Mul(*fixed))
            if sp.Mul(*fixed) == -1:
                self.lines.append(f"np.negative({acc}, out={dest})")
            elif den == 1:
                self._op("multiply", acc, self.code(num), dest)
            else:  # a division, as the slot divides: e / (1 + Srest) is one rounding, not two
                self._op("divide", acc, self.code(den if num == 1 else den / num), dest)
            acc = dest
        return acc


def assemble(steps: list[Step], small: CodePrinter, block_names: Iterable[str]) -> tuple[list, int]:
    """The lines of a block program and the number of float64 block buffers it needs.

    ``small`` prints the row-level parts; ``block_names``: the values that are blocks (those the
    steps define are added)."""
    block_names = set(block_names) | {s.name for s in steps if s.kind != "line"}
    reads = []
    for st in steps:
        if st.kind in ("block", "update"):
            reads.append({s.name for s in st.expr.free_symbols} & block_names)
        elif st.kind == "line":
            reads.append(set(st.reads))
        else:
            reads.append(set())
    last = {}
    for i, names in enumerate(reads):
        for name in names:
            last[name] = i
    free, count, owner = [], [0], {}  # owner: value -> buffer name

    def alloc():
        if free:
            return free.pop()
        count[0] += 1
        return f"_b{count[0] - 1}"

    def give_back(buf):
        free.append(buf)
        free.sort(reverse=True)

    out = []
    for i, st in enumerate(steps):
        pad = "    " if st.cond else ""
        body = []
        if st.kind == "view":
            body.append(f"{st.name} = {st.code}")
        elif st.kind == "load":
            owner[st.name] = alloc()
            body.append(f"{st.name} = _widen({st.code}, {owner[st.name]})")
        elif st.kind == "line":
            body.append(st.code)
        else:
            alias = None
            if st.kind == "update":
                if _count(st.expr, st.name) != 1:
                    raise ValueError(f"an update of {st.name} must read it once: {st.expr}")
                alias = st.name
            for name in sorted(reads[i]):
                if (
                    alias is None
                    and last.get(name) == i
                    and name in owner
                    and _count(st.expr, name) == 1
                ):
                    alias = name
            dest = owner.pop(alias) if alias else alloc()
            dying = {
                name: owner[name]
                for name in reads[i]
                if name != alias
                and name in owner
                and last.get(name) == i
                and _count(st.expr, name) == 1
            }
            em = InplaceEmitter(small, block_names, alloc, give_back, dying)
            result = em.emit(st.expr, dest, alias)
            if result != dest:
                em.lines.append(f"np.copyto({dest}, {result})")
            last_line = em.lines[-1]
            if last_line.endswith(f"out={dest})") and not last_line.startswith(("np.copyto", " ")):
                body += em.lines[:-1] + [f"{st.name} = {last_line}"]  # a ufunc returns its out
            else:
                body += em.lines + [f"{st.name} = {dest}"]
            owner[st.name] = dest
        for name in reads[i]:
            if last.get(name) == i and name in owner and name != st.name:
                give_back(owner.pop(name))
        if st.cond and not (i and steps[i - 1].cond == st.cond):  # one if for a run of steps
            out.append(f"if {st.cond}:")
        out += [pad + b for b in body]
    return out, count[0]
