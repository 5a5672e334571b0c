"""Stage 5 — kernels (continued): the per-row program of a row or loss kernel, a small IR every
language prints.

A :class:`Program` lists what one variant of a kernel (:mod:`symce.describe`) computes for each
row (sample) of K classes, in order, as steps at the scopes once per row (``"row"``), once per
class of the row (``"class"``) and once per pair of classes (``"pair"``, the Jacobian); the BCE
family's elements are each a class of their own.  Its expressions are the registry's slots
(:mod:`symce.kernels`), over the kernel-local symbols the earlier steps bind; nothing is retyped.
The steps:

* :class:`Load` — a value read from an argument by its role: the first input or the probability
  target at the class, the class weight at the class or at the row's label, the row's label, or
  the one-hot ``[class == label]``;
* :class:`RowStats` — the row statistics of logits (shift, Srest and the per-class values of
  the stable scheme), which each language computes with its own runtime;
* :class:`Pair` — the pairs of classes (i, j) of a row, for the Jacobian's stores;
* :class:`Skip` — rows whose label is ``ignore_index`` are skipped: their loss and gradient are
  0 and they are not in the mean's divisor;
* :class:`Let` — a value computed from earlier ones (the effective target y~);
* :class:`RowSum` — the sum over the row's classes of a per-class expression (the row's loss);
* :class:`Store` — an output: one per class (the gradient, scaled by the reduction), or one per
  row (the loss, reduced over the rows by the ``reduction`` option).

A program has the steps that depend on the target kind (``target_steps``: labels or probability
targets) and the steps both kinds share (``steps``): C prints both into one function per variant;
NumPy and MATLAB, whose functions take either kind, print the target steps of each in a branch and
the shared steps once.  What the program leaves to a language is how it binds a role (a pointer
and an index, a broadcast array, a K-by-N matrix) and how it loops.

Which language prints which programs: all three print all four families.  MATLAB and NumPy
print them as array code (NumPy's axis row kernels, cross-entropy from logits and BCE family
around the block programs of numpy_blocks.py).  C prints the cross-entropy from probabilities
whole; the row families (rowwise and the cross-entropy from logits) around its row statistics,
with the speed work's loops (the row sums in chunks of the stash, each class's e from it, and
with labels every class first as off-label and the label's class once); and the BCE family's
body in blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import describe
from . import kernels as kr

ROW_LOSS = sp.Symbol("row_loss", real=True)  # the row's loss, the sum of its loss terms


@dataclass(frozen=True)
class Load:
    """``name`` = the argument of ``role`` ("in", "target", "labels", "weight", "onehot") read
    ``at`` the row's class ("class"), the row's label ("label") or the row ("row")."""

    name: str
    role: str
    at: str

    @property
    def scope(self) -> str:
        """Where the value changes: per class, or per row."""
        return "class" if self.at == "class" else "row"


@dataclass(frozen=True)
class Skip:
    """Rows whose label is ignore_index: outputs 0, not in the divisor."""

    scope: str = "row"


@dataclass(frozen=True)
class RowStats:
    """The row's statistics from its logits (the rowwise scheme of symce.kernels): the shift
    (row max), the per-class zs, zlo, e and em1, Srest = S - 1, and p and pc where later steps
    read them.  Each language computes them with its own runtime (the C row kernels' stash, the
    NumPy blocks, MATLAB's column-wise code)."""

    scope: str = "row"


@dataclass(frozen=True)
class Pair:
    """The Jacobian's pairs of classes (i, j) of a row: p_i, p_j and pc_i (p and pc of classes i
    and j) and delta = [i == j], over which a "pair" store runs."""

    scope: str = "row"


@dataclass(frozen=True)
class Let:
    """``name`` = ``expr`` (a slot), computed at ``scope``."""

    name: str
    expr: sp.Expr
    scope: str


@dataclass(frozen=True)
class RowSum:
    """``name`` = the sum over the row's classes of ``expr``."""

    name: str
    expr: sp.Expr
    scope: str = "row"


@dataclass(frozen=True)
class Store:
    """The output ``output`` = ``expr``: one per class, one per pair of classes (the Jacobian),
    or one per row (a loss is then reduced over the rows).  A
    ``weight`` (a symbol) multiplies the finished value, never a factor inside it (the BCE
    element weight: w (p - y)/d would round a subnormal w (p - y) before the division)."""

    output: str
    expr: sp.Expr
    scope: str
    weight: sp.Symbol | None = None


@dataclass(frozen=True)
class Program:
    """The per-row program of one kernel variant."""

    kernel: str
    variant: describe.Variant
    target_steps: tuple
    steps: tuple

    @property
    def all_steps(self) -> tuple:
        """The target steps, then the shared ones."""
        return self.target_steps + self.steps

    def at(self, scope: str) -> tuple:
        """The steps at ``scope`` ("row" or "class"), in order."""
        return tuple(s for s in self.all_steps if s.scope == scope)

    def loads(self, role: str) -> tuple:
        """The loads of the argument of ``role``."""
        return tuple(s for s in self.all_steps if isinstance(s, Load) and s.role == role)

    def stores(self, scope: str | None = None) -> tuple:
        """The stores (at ``scope``, or all)."""
        return tuple(
            s for s in self.steps if isinstance(s, Store) and (scope is None or s.scope == scope)
        )

    @property
    def skips(self) -> bool:
        """Whether rows can be skipped (labels and ignore_index)."""
        return any(isinstance(s, Skip) for s in self.all_steps)


def _target_steps(kern: kr.Kernel, variant: describe.Variant) -> tuple:
    """Reading the target: the effective target y~ of each class (symce.kernels)."""
    if variant.soft:
        head = (Load("y", "target", "class"),)
    else:
        head = (
            Load("t", "labels", "row"),
            Skip(),
            Load("w_t", "weight", "label"),
            Load("hot", "onehot", "class"),
        )
    slot = kern.slots["yt_soft" if variant.soft else "yt_label"]
    return (*head, Load("w_k", "weight", "class"), Let("yt", slot, "class"))


def _ce_steps(kern: kr.Kernel) -> list:
    """What both cross-entropies do after their row's values: the row sum of y~ where the
    gradient reads it (a target need not sum to 1), the loss terms summed, the gradient stored
    per class and the loss per row."""
    steps = []
    if "grad" in kern.slots and kern.slots["grad"].has(kr.ysum):
        steps.append(RowSum(kr.ysum.name, kr.yt))
    if "loss_term" in kern.slots:
        steps.append(RowSum(ROW_LOSS.name, kern.slots["loss_term"]))
    if "grad" in kern.slots:
        steps.append(Store("grad", kern.slots["grad"], "class"))
    if "loss_term" in kern.slots:
        steps.append(Store("loss", ROW_LOSS, "row"))
    return steps


def _ce_probs(kern: kr.Kernel, variant: describe.Variant) -> Program:
    """The cross-entropy from probabilities: y~, then the loss and the gradient from p (loaded
    where a slot reads it: a gradient that is -y~ alone reads no input, and C's -Werror would
    refuse the unused load)."""
    reads = describe.describe(kern).reads  # p, or a defined loss's input v
    load = tuple(Load(s.name, "in", "class") for s in (kr.p, kr.v) if s.name in reads)
    steps = (*load, *_ce_steps(kern))
    return Program(kern.name, variant, _target_steps(kern, variant), steps)


def _ce_logits(kern: kr.Kernel, variant: describe.Variant) -> Program:
    """The cross-entropy from logits: y~, the row statistics, then the loss and the gradient."""
    steps = (Load(kr.z.name, "in", "class"), RowStats(), *_ce_steps(kern))
    return Program(kern.name, variant, _target_steps(kern, variant), steps)


def _rowwise(kern: kr.Kernel, variant: describe.Variant) -> Program:
    """The row kernels of logits: the row statistics, then the output per class (softmax,
    log-softmax), per row (logsumexp), per pair of classes (the Jacobian), or per class after the
    row's <g, p> (the VJP)."""
    layout = describe.describe(kern).layout
    steps = [Load(kr.z.name, "in", "class")]
    steps += [Load(a.name, "in", "class") for a in kern.inputs[1:]]  # the VJP's upstream g
    steps.append(RowStats())
    out = kern.slots.get("out", kr.p)  # the softmax returns p itself
    if layout == "jacobian":
        steps += [Pair(), Store("out", out, "pair")]
    elif layout == "vjp":
        steps += [
            RowSum(kr.gesum.name, kern.slots["dot_term"]),
            Let(kr.dot.name, kern.slots["dot"], "row"),
            Store("out", out, "class"),
        ]
    else:
        steps.append(Store("out", out, "row" if layout == "scalar" else "class"))
    return Program(kern.name, variant, (), tuple(steps))


def _bce(kern: kr.Kernel, variant: describe.Variant) -> Program:
    """The binary cross-entropies: every element is a class of its own (its row is the sample,
    its column the class of pos_weight); loss and gradient per element, times the weight."""
    reads = describe.describe(kern).reads  # probabilities, or logits x (a defined loss's input)
    steps = [
        Load(kr.prob.name if kr.prob.name in reads else kr.x.name, "in", "class"),
        Load(kr.y.name, "target", "class"),
        Load(kr.w.name, "weight", "class"),
    ]
    if "pos_weight" in kern.options:
        steps.append(Load(kr.pw.name, "pos_weight", "class"))
    steps += [
        Store(name, kern.slots[name], "class", kr.w)
        for name in ("loss", "grad")
        if name in kern.slots
    ]
    return Program(kern.name, variant, (), tuple(steps))


# family -> its lowering
LOWER = {"rowwise": _rowwise, "ce_probs": _ce_probs, "ce_logits": _ce_logits, "bce": _bce}


def program(kern: kr.Kernel | str, variant: describe.Variant) -> Program:
    """The program of ``kern``'s ``variant`` (families in LOWER)."""
    kern = kr.kernel(kern) if isinstance(kern, str) else kern
    if kern.family not in LOWER:
        raise ValueError(f"{kern.name}: no per-row program for the family {kern.family!r} yet")
    return LOWER[kern.family](kern, variant)
