"""Stage 5 — kernels: the options the loss kernels take, as records, for every language.

An option is PyTorch's keyword (what :attr:`symce.kernels.Kernel.options` lists), its MATLAB
name-value name, its default in each language, the error of the catalogue (:mod:`symce.errors`)
that its validation raises, and what it does, per family (``ce``: the cross-entropies, ``bce``:
the binary ones).  The NumPy signatures and docstrings, the MATLAB option parsing and help, and
the C checks all read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    """One keyword option of the loss kernels."""

    name: str  # PyTorch's keyword, the NumPy keyword and the C parameter
    matlab: str  # the MATLAB name-value name
    python_default: str  # the NumPy signature's default, as Python source
    matlab_default: str  # the MATLAB default, as a MATLAB literal
    error: str | None  # the catalogue entry its validation raises (symce.errors)
    doc: dict = field(default_factory=dict)  # family -> what it does (NumPy docstring words)
    matlab_doc: dict = field(default_factory=dict)  # family -> the MATLAB help line
    # a defined loss's scalar option (symce.definitions.Option): its interval, checked in every
    # language (catalogue "option_value"); None for symce's own options
    scalar: object = None


# the MATLAB help says what 'mean' divides by, per family
_DIVISOR = {
    "ce": "the summed weight of the kept samples' classes (labels) or N (probability targets)",
    "bce": "the number of elements",
}

OPTIONS = {
    o.name: o
    for o in (
        Option(
            "weight",
            "Weight",
            "None",
            "[]",
            "weight",
            doc={
                "ce": "(K,) non-negative class weights, or None (all 1).",
                "bce": "non-negative weights broadcastable to the input (one per element), "
                "or None (all 1).",
            },
            matlab_doc={
                "ce": "class weights, a vector of K non-negative values (default all 1)",
                "bce": "element weights, non-negative, of a size that expands to the input's "
                "(default 1)",
            },
        ),
        Option(
            "ignore_index",
            "IgnoreIndex",
            "-100",
            "-100",
            "label",
            doc={
                "ce": "int, default -100: a sample with this label adds nothing to the loss, the "
                "gradient or the mean's divisor (integer labels only).",
            },
            matlab_doc={
                "ce": "label value whose samples are skipped: they add 0 to the loss, a zero "
                "gradient column and nothing to the 'mean' divisor (default -100)",
            },
        ),
        Option(
            "label_smoothing",
            "LabelSmoothing",
            "0.0",
            "0",
            "smoothing",
            doc={
                "ce": "float in [0, 1], default 0.0: the target y becomes (1 - eps) y + eps / K.",
            },
            matlab_doc={
                "ce": "epsilon in [0, 1]: the target becomes (1 - epsilon) y + epsilon / K "
                "(default 0)",
            },
        ),
        Option(
            "pos_weight",
            "PosWeight",
            "None",
            "1",
            "pos_weight",
            doc={
                "bce": "non-negative weight of the positive term, broadcastable to the input "
                "(e.g. one per class, shape (K,)), or None (1).",
            },
            matlab_doc={
                "bce": "weight of the positive term, a scalar or K = size(LOGITS, 1) non-negative "
                "values along dimension 1 (default 1)",
            },
        ),
        Option(
            "reduction",
            "Reduction",
            '"mean"',
            "'mean'",
            "reduction",
            doc={
                "ce": "'none' (one loss per sample), 'mean' (default: the sum over the summed "
                "class weight of the kept samples for labels, over N for probability targets) "
                "or 'sum'.",
                "bce": "'none' (one loss per element), 'mean' (default: over all elements) "
                "or 'sum'.",
            },
            matlab_doc={
                fam: f"'mean' (default) | 'sum' | 'none'; 'mean' divides by {divisor}"
                for fam, divisor in _DIVISOR.items()
            },
        ),
    )
}


def family(kernel_family: str) -> str:
    """The options' family of a kernel family: ``bce``, or ``ce`` for the cross-entropies."""
    return "bce" if kernel_family == "bce" else "ce"


def matlab_name(name: str) -> str:
    """A defined option's MATLAB name-value name: its words capitalised (log_target ->
    LogTarget), as symce's own (PosWeight, LabelSmoothing)."""
    return "".join(word.capitalize() for word in name.split("_"))


def _number(v: float) -> str:
    """A default as Python and MATLAB source (both read a repr of a float)."""
    return repr(float(v))


def declared(opt: object) -> Option:
    """The record of a defined loss's scalar option (symce.definitions.Option)."""
    if opt.switch:  # True or False: a NumPy bool, a C int 0 or 1, a MATLAB logical
        on = bool(opt.default)
        return Option(
            opt.name,
            matlab_name(opt.name),
            repr(on),
            "true" if on else "false",
            "option_value",
            doc={"bce": f"bool, default {on!r}: {opt.doc}."},
            matlab_doc={"bce": f"{opt.doc}; true or false, default {str(on).lower()}"},
            scalar=opt,
        )
    words = f"{opt.doc}; a real number in {opt.interval}, default {_number(opt.default)}"
    return Option(
        opt.name,
        matlab_name(opt.name),
        _number(opt.default),
        _number(opt.default),
        "option_value",
        doc={"bce": f"float, default {_number(opt.default)}: {opt.doc} (in {opt.interval})."},
        matlab_doc={"bce": words},
        scalar=opt,
    )


def records(kern: object) -> tuple:
    """The option records of a kernel (symce.kernels.Kernel), in its order: symce's own
    (:data:`OPTIONS`) and a defined loss's scalar options (:func:`declared`)."""
    scalars = {o.name: o for o in getattr(kern, "scalars", ())}
    return tuple(
        declared(scalars[name])
        if name in scalars
        else _reduction(kern.reductions)
        if name == "reduction" and tuple(kern.reductions) != _THREE
        else OPTIONS[name]
        for name in kern.options
    )


_THREE = ("none", "mean", "sum")


def _reduction(values: tuple) -> Option:
    """The reduction option of a defined loss that takes more values than none, mean and sum
    (batchmean: the total over the number of samples)."""
    base = OPTIONS["reduction"]
    extra = [v for v in values if v not in _THREE]
    words = {"batchmean": "the sum over the number of samples (the input's first extent)"}
    more = "; ".join(f"'{v}': {words[v]}" for v in extra)
    return Option(
        base.name,
        base.matlab,
        base.python_default,
        base.matlab_default,
        base.error,
        doc={"bce": base.doc["bce"][:-1] + f", or {more}."},
        matlab_doc={
            "bce": base.matlab_doc["bce"].replace(
                " | 'none'", " | 'none' | " + " | ".join(f"'{v}'" for v in extra)
            )
            + "; 'batchmean' divides by the extent of the last dimension (the samples)"
        },
    )


def record(kern: object, name: str) -> Option:
    """The record of the option ``name`` of ``kern``."""
    return next(o for o in records(kern) if o.name == name)
