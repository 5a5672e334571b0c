"""Stage 5 — kernels (continued): the language-neutral description of each kernel.

The registry (:mod:`symce.kernels`) says what a kernel computes: its inputs and outputs and its
slots.  Every language also needs to know how the kernel is laid out and what it must check, and
that is decided here, once, from the registry entry, so no backend guesses it on its own:

* the **layout** of the work: one value per element (``elementwise``, ``bce``), a row of K
  classes to one value (``scalar``), to K values (``vector``), to a K x K matrix
  (``jacobian``), with an upstream gradient (``vjp``), or a loss over rows (``ce_probs``,
  ``ce_logits``);
* the **variants** emitted for it (the cross-entropies take integer labels or probability
  targets: one C function each, one branch in NumPy and MATLAB), each with its parameters in
  order (name, role, dimensions and words), the catalogue errors it checks in the order it
  checks them (:mod:`symce.errors`), and what ``mean`` divides by;
* the **row program's needs**: the local symbols the slots read (``reads``), so whether the
  row computes the softmax, its complement, the target's row sum or the upstream dot product;
* the outputs it stores, its options as records (:mod:`symce.options`) and its special rows.

A :class:`Param`'s words are language-neutral; each language's formatter adds its own notation
(C's ``[n*k]`` buffer lengths, MATLAB's K-by-N sizes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from . import definitions, errors, options
from . import kernels as kr

# the families whose rows carry the per-row statistics: the shift (row max) and Srest
ROW_FAMILIES = ("rowwise", "ce_logits")
CE_FAMILIES = ("ce_probs", "ce_logits")

# what mean divides by, per variant (docs/semantics.md: PyTorch's rule)
DIVISORS = {
    "weight_of_kept": "the summed weight[t] of the kept (not ignored) samples",
    "rows": "the number of samples",
    "elements": "the number of elements",
}


@dataclass(frozen=True)
class Param:
    """One parameter of an emitted function, in the order every language takes it.

    ``role``: size, in, labels, target, weight, pos_weight, ignore_index, label_smoothing,
    option (a defined loss's number), switch (its switch), reduction or
    out.  ``dims``: the extents of an array in NumPy's row-major order (("n", "k")
    for rows of classes, ("count",) for elements), () for a scalar.  ``doc``: what it is, in
    words every language shares."""

    name: str
    role: str
    dims: tuple
    doc: str

    @property
    def is_array(self) -> bool:
        """Whether the parameter is an array (a buffer in C), not a scalar."""
        return bool(self.dims)


@dataclass(frozen=True)
class Variant:
    """One emitted function of a kernel: its target kind, parameters, checks and divisor."""

    target: str  # "" (no target), "labels" or "soft" (probability targets)
    params: tuple
    checks: tuple  # catalogue keys (symce.errors), in the order the function checks them
    divisor: str  # a DIVISORS key, or "" for a kernel without reductions

    @property
    def soft(self) -> bool:
        """Whether the targets are probabilities (one per class), not labels."""
        return self.target == "soft"

    def param(self, role: str) -> Param | None:
        """The first parameter of ``role``, or None."""
        return next((p for p in self.params if p.role == role), None)

    def has(self, role: str) -> bool:
        """Whether the function takes a parameter of ``role``."""
        return self.param(role) is not None


@dataclass(frozen=True)
class Description:
    """Everything a language needs about one kernel beyond its printed slots."""

    kernel: kr.Kernel
    layout: str
    variants: tuple
    reads: frozenset  # the kernel-local symbols (symce.kernels.LOCALS) its slots read
    stores: tuple  # its outputs' names, in order

    @property
    def name(self) -> str:
        """The kernel's name."""
        return self.kernel.name

    @property
    def family(self) -> str:
        """The kernel's family (symce.kernels)."""
        return self.kernel.family

    @property
    def input(self) -> str:
        """The name of the first input (x, z, logits or probs): the array the rows come from."""
        return self.kernel.inputs[0].name

    @property
    def has_loss(self) -> bool:
        """Whether the kernel stores a loss."""
        return "loss" in self.stores

    @property
    def has_grad(self) -> bool:
        """Whether the kernel stores a gradient."""
        return "grad" in self.stores

    @property
    def fused(self) -> bool:
        """Loss and gradient in one pass."""
        return self.has_loss and self.has_grad

    @property
    def options(self) -> tuple:
        """The option records (symce.options) the kernel takes, in the registry's order."""
        return options.records(self.kernel)

    @property
    def has_pos_weight(self) -> bool:
        """Whether the kernel takes a positive-class weight."""
        return "pos_weight" in self.kernel.options

    @property
    def rows(self) -> bool:
        """Whether the rows carry the per-row statistics (the shift and Srest)."""
        return self.family in ROW_FAMILIES

    @property
    def movable_axis(self) -> bool:
        """One array in and one out with no class-by-class structure: the class axis can be any
        axis (NumPy's ``axis``)."""
        return self.layout in ("vector", "scalar")

    @property
    def needs_p(self) -> bool:
        """Whether the row computes the softmax p: it returns p itself (no ``out`` slot), or a
        stored slot reads it."""
        return not self.stored_slots or bool({"p", "p_i", "p_j"} & self._stored_reads)

    @property
    def needs_complement(self) -> bool:
        """Whether a slot reads the complement 1 - p (pc, pc_i), computed without cancellation."""
        return self.rows and bool({"pc", "pc_i"} & self.reads)

    @property
    def needs_ysum(self) -> bool:
        """Whether a slot reads the row sum of the effective target."""
        return "ysum" in self.reads

    @property
    def needs_dot(self) -> bool:
        """Whether a slot reads <g, p> (the VJP's upstream dot product)."""
        return "dot" in self.reads

    @property
    def stored_slots(self) -> dict:
        """The slots that become outputs (out, loss_term, loss, grad), by name."""
        return {n: e for n, e in self.kernel.slots.items() if n in _STORED}

    @property
    def _stored_reads(self) -> set:
        return {s.name for e in self.stored_slots.values() for s in e.free_symbols}

    @property
    def checks(self) -> tuple:
        """The catalogue checks of every variant, merged in order (each variant's keep theirs):
        the order of a NumPy or MATLAB function, which takes every kind of target."""
        keys = []
        for v in self.variants:
            keys += [key for key in v.checks if key not in keys]
        return tuple(keys)

    @property
    def checks_domain(self) -> bool:
        """Whether an input is checked against [0, 1] (catalogue "domain")."""
        return self.kernel.checks_domain

    @property
    def nan_row_at_inf(self) -> bool:
        """A row whose max is not finite is NaN throughout (symce.kernels.Kernel)."""
        return self.kernel.nan_row_at_inf


_STORED = ("out", "loss_term", "loss", "grad")


def _layout(kern: kr.Kernel) -> str:
    if kern.family != "rowwise":
        return kern.family
    shape = kern.outputs[0].shape
    if shape == "(N, K, K)":
        return "jacobian"
    if len(kern.inputs) == 2:
        return "vjp"
    return "scalar" if shape == "(N,)" else "vector"


_SIZE_N = Param("n", "size", (), "number of rows (samples); may be 0")
_SIZE_K = Param("k", "size", (), "number of classes per row; must be >= 1")


def _ce_params(kern: kr.Kernel, soft: bool) -> list:
    fam = kern.family
    first = kern.inputs[0].name
    if kern.defined_in:  # a defined loss's input: its declaration's words
        words = kern.inputs[0].doc + ", row-major"
    elif fam == "ce_probs":
        words = "class probabilities, row-major"
    else:
        words = "logits (unnormalised scores), row-major"
    ps = [_SIZE_N, _SIZE_K, Param(first, "in", ("n", "k"), words)]
    if soft:
        note = " (need not sum to 1: the gradient is p sum(y~) - y~)" if fam == "ce_logits" else ""
        ps.append(Param("target", "target", ("n", "k"), "probability target per row" + note))
    else:
        ps.append(Param("labels", "labels", ("n",), "class index per sample, 0-based"))
    ps.append(Param("weight", "weight", ("k",), "class weights, or NULL for all ones"))
    if not soft:
        ps.append(
            Param(
                "ignore_index",
                "ignore_index",
                (),
                "label that marks an ignored sample (PyTorch: -100): loss 0, gradient row 0, "
                "not in the mean divisor",
            )
        )
    ps.append(
        Param(
            "label_smoothing",
            "label_smoothing",
            (),
            "epsilon in [0, 1]; 0 for none (a double in both dtypes: checked, and the target y~ "
            "formed, in double)",
        )
    )
    ps.append(Param("reduction", "reduction", (), "none, mean or sum"))
    return ps


def _bce_params(kern: kr.Kernel) -> list:
    first = kern.inputs[0].name
    if kern.defined_in:
        words = kern.inputs[0].doc
    else:
        words = "logits" if first == "logits" else "probabilities in [0, 1]"
    ps = [
        _SIZE_N,
        Param("k", "size", (), "number of elements per row (the columns of pos_weight); may be 0"),
        Param(first, "in", ("n", "k"), words),
        Param(
            "target", "target", ("n", "k"), "targets" if kern.defined_in else "targets in [0, 1]"
        ),
        Param("weight", "weight", ("n", "k"), "element weights, or NULL for all ones"),
    ]
    if "pos_weight" in kern.options:
        ps.append(
            Param(
                "pos_weight",
                "pos_weight",
                ("k",),
                "weight of the positive term per column, or NULL for all ones",
            )
        )
    for o in kern.scalars:  # a defined loss's options (a double in both dtypes, as NumPy's)
        if o.switch:  # a switch: an int, 0 or 1
            ps.append(Param(o.name, "switch", (), f"{o.doc}: 0 (false) or 1 (true)"))
        else:
            ps.append(Param(o.name, "option", (), f"{o.doc}: a number in {o.interval}"))
    ps.append(Param("reduction", "reduction", (), "none, mean or sum"))
    return ps


_OUT_DIMS = {"(N,)": ("n",), "(N, K)": ("n", "k"), "(N, K, K)": ("n", "k", "k")}


def _params(kern: kr.Kernel, soft: bool) -> tuple:
    fam = kern.family
    if fam == "elementwise":
        return (
            Param("count", "size", (), "number of elements; may be 0"),
            Param("x", "in", ("count",), "input"),
            Param("out", "out", ("count",), kern.outputs[0].doc),
        )
    if fam == "rowwise":
        ps = [
            _SIZE_N,
            _SIZE_K,
            Param("z", "in", ("n", "k"), "logits, row-major (one row per sample)"),
        ]
        ps += [Param(a.name, "in", ("n", "k"), a.doc + " dL/dp") for a in kern.inputs[1:]]
        out = kern.outputs[0]
        return (*ps, Param(out.name, "out", _OUT_DIMS[out.shape], out.doc))
    ps = _ce_params(kern, soft) if fam in CE_FAMILIES else _bce_params(kern)
    grad_of = f"gradient of the reduced loss w.r.t. {kern.inputs[0].name}"
    per_sample = ("n", "k") if fam == "bce" else ("n",)
    for out in kern.outputs:  # loss, then grad
        if out.name == "loss":
            ps.append(Param("loss", "out", per_sample, "the loss: one per sample for none"))
        else:
            ps.append(Param(out.name, "out", ("n", "k"), grad_of))
    return tuple(ps)


def _checks(kern: kr.Kernel, params: tuple, soft: bool) -> tuple:
    """The catalogue errors a function checks, in its order: the pointers, the sizes, the
    options (their records' errors), the labels, then the values' domains."""
    roles = [p.role for p in params]
    keys = ["null"]
    if kern.family not in ("elementwise", "bce"):  # the BCE's elements need no class: k may be 0
        keys.append("no_classes")
    keys.append("size")
    for role in ("label_smoothing", "option", "reduction", "weight", "pos_weight"):
        if role == "option" and ({"option", "switch"} & set(roles)):  # a defined loss's options
            keys.append("option_value")
        elif role in roles:
            keys.append(options.OPTIONS[role].error)
    if "labels" in roles:
        keys.append("label")
    if kern.checks_domain:
        keys.append("domain")
    if soft:
        keys.append("target")
    assert all(k in errors.BY_KEY for k in keys), keys
    return tuple(keys)


def _divisor(kern: kr.Kernel, soft: bool) -> str:
    if "reduction" not in kern.options:
        return ""
    if kern.family == "bce":
        return "elements"
    return "rows" if soft else "weight_of_kept"


def _describe(kern: kr.Kernel) -> Description:
    targets = ("labels", "soft") if kern.family in CE_FAMILIES else ("",)
    variants = []
    for target in targets:
        soft = target == "soft"
        params = _params(kern, soft)
        variants.append(Variant(target, params, _checks(kern, params, soft), _divisor(kern, soft)))
    reads = frozenset(s.name for e in kern.slots.values() for s in e.free_symbols)
    return Description(
        kern, _layout(kern), tuple(variants), reads, tuple(o.name for o in kern.outputs)
    )


def arguments(kern: kr.Kernel) -> dict:
    """The kernel-local symbols that stand for a whole argument, by the argument's name, for the
    array languages (NumPy, MATLAB) to print: a cross-entropy-from-probabilities input (p, or a
    defined loss's v), a BCE-family input (x or prob), and a defined loss's options."""
    first = kern.inputs[0].name
    out = {}
    if kern.family == "ce_probs":
        out = {kr.p.name: first, kr.v.name: first}
    elif kern.family == "bce":  # logits or probabilities, or a defined loss's input
        out = {kr.x.name: first, kr.prob.name: first}
    return out | {o.name: o.name for o in kern.scalars}


@cache
def descriptions() -> dict:
    """name -> Description of every registry kernel, in the registry's order."""
    return {name: _describe(kern) for name, kern in kr.registry().items()}


def describe(kern: kr.Kernel | str) -> Description:
    """The description of ``kern`` (a registry kernel or its name)."""
    return descriptions()[kern if isinstance(kern, str) else kern.name]


definitions.on_change(descriptions.cache_clear)
