"""Stage 5 — kernels: the one catalogue of bad-input errors, for every language.

Each entry is a cause of refusal: the condition (as docs/semantics.md states it), the arguments it
is about, and how each language reports it — the Python exception class the NumPy module raises,
the C return code (its name, value and ``symce_strerror`` message) and the MATLAB error
identifier.  The C header and ``symce_strerror``, the MATLAB templates' ``error(...)`` calls, the
table in docs/semantics.md (tests/test_errors.py compares it) and the cross-language bad-input
test (tests/test_differential.py) all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Error:
    """One cause of refusal and its report in each language (None: the language cannot meet it:
    C has no type errors, one function per dtype; NumPy and MATLAB have no NULL pointers)."""

    key: str
    when: str  # the condition, in words (docs/semantics.md)
    about: tuple  # the arguments (roles) the error names: "target", "weight", "probs", ...
    python: str | None = None  # the exception class of the NumPy module
    python_note: str = ""  # what the docs add after the class
    c: str | None = None  # the C return code's name
    c_value: int | None = None
    c_message: str | None = None  # symce_strerror's text
    matlab: str | None = None  # the MATLAB error identifier
    c_note: str = ""  # what the docs say where C has no code


CATALOGUE = (
    Error(
        "null",
        "required pointer NULL",
        (),
        c="SYMCE_ERR_NULL",
        c_value=-1,
        c_message="a required pointer argument is NULL (only weight and pos_weight may be NULL, "
        "for all ones)",
    ),
    Error(
        "no_classes",
        "K = 0 (rows of no classes)",
        ("classes",),
        python="ValueError",
        c="SYMCE_ERR_NO_CLASSES",
        c_value=-9,
        c_message="k: expected at least 1 class per row, got 0",
        matlab="symce:emptyClasses",
    ),
    Error(
        "size",
        "n·k (or n·k·k) overflows `size_t`",
        ("classes",),
        c="SYMCE_ERR_SIZE",
        c_value=-2,
        c_message="n, k (or count): expected buffer sizes that fit in size_t, got n*k "
        "(n*k*k for the Jacobian, count elementwise) elements that overflow it",
    ),
    Error(
        "shape",
        "wrong shapes (target vs logits, weight length ≠ K, g vs z)",
        ("shape",),
        python="ValueError",
        python_note="naming the argument",
        c_note="sizes are the caller's",
        matlab="symce:shape",
    ),
    Error(
        "label",
        "label not an integer, or outside [0, K) (and ≠ ignore_index)",
        ("target", "ignore_index"),
        python="ValueError",
        python_note="(`TypeError` for labels of a non-integer dtype)",
        c="SYMCE_ERR_LABEL",
        c_value=-3,
        c_message="labels: expected class indices in [0, k) or ignore_index, got one outside",
        matlab="symce:label",
    ),
    Error(
        "weight",
        "weight negative or NaN",
        ("weight",),
        python="ValueError",
        c="SYMCE_ERR_WEIGHT",
        c_value=-4,
        c_message="weight: expected NULL or entries >= 0, got a negative or NaN entry",
        matlab="symce:weight",
    ),
    Error(
        "pos_weight",
        "pos_weight negative or NaN",
        ("pos_weight",),
        python="ValueError",
        c="SYMCE_ERR_POS_WEIGHT",
        c_value=-8,
        c_message="pos_weight: expected NULL or entries >= 0, got a negative or NaN entry",
        matlab="symce:weight",
    ),
    Error(
        "smoothing",
        "label_smoothing outside [0, 1] or NaN",
        ("label_smoothing",),
        python="ValueError",
        python_note="(`TypeError` for a value that is not a number)",
        c="SYMCE_ERR_SMOOTHING",
        c_value=-5,
        c_message="label_smoothing: expected a number in [0, 1], got one outside it or NaN",
        matlab="symce:smoothing",
    ),
    Error(
        "option_value",
        "an option a loss declares (symce.define_loss: focal_loss's gamma and alpha, ...) "
        "outside its interval, or NaN",
        ("option",),
        python="ValueError",
        python_note="naming the option (`TypeError` for a value that is not a number)",
        c="SYMCE_ERR_OPTION",
        c_value=-11,
        c_message="an option of the loss: expected a number in its interval (see the "
        "function's documentation), got one outside it or NaN",
        matlab="symce:option",
    ),
    Error(
        "reduction",
        "unknown reduction",
        ("reduction",),
        python="ValueError",
        c="SYMCE_ERR_REDUCTION",
        c_value=-7,
        c_message="reduction: expected SYMCE_REDUCTION_NONE, _MEAN or _SUM, got another value",
        matlab="symce:reduction",
    ),
    Error(
        "domain",
        "a probability outside [0, 1] in the `probs` input of `binary_cross_entropy(_grad)` or "
        "`cross_entropy(_grad)` (NaN passes through; BCE targets are not checked, as in PyTorch)",
        ("probs",),
        python="ValueError",
        c="SYMCE_ERR_DOMAIN",
        c_value=-6,
        c_message="probs: expected probabilities in [0, 1] (or NaN, which passes through), got "
        "one outside",
        matlab="symce:domain",
    ),
    Error(
        "target",
        "a probability target outside [0, 1] in the cross-entropy kernels (from logits or from "
        "probabilities; NaN passes through; see Input policies)",
        ("target",),
        python="ValueError",
        c="SYMCE_ERR_TARGET",
        c_value=-10,
        c_message="target: expected probability targets in [0, 1] (or NaN, which passes "
        "through), got one outside",
        matlab="symce:domain",
    ),
    Error(
        "type",
        "non-floating input, or mixed float dtypes",
        ("type",),
        python="TypeError",
        python_note="(float32 and float64 are kept, never mixed)",
        c_note="one function per dtype",
        matlab="symce:type",
    ),
    Error(
        "ambiguous_target",
        "one class (K = 1) and a floating target: labels or probabilities cannot be told apart",
        ("target",),
        python_note="the dtype decides: integer labels, floating probabilities",
        c_note="one function each",
        matlab="symce:ambiguousTarget",
    ),
    Error(
        "inputs",
        "too few inputs",
        (),
        python="TypeError",
        python_note="(Python's own)",
        c_note="the compiler's",
        matlab="symce:notEnoughInputs",
    ),
    Error(
        "option",
        "an unknown option, or options that are not name-value pairs",
        (),
        python="TypeError",
        python_note="(Python's own: an unexpected keyword)",
        c_note="the compiler's",
        matlab="symce:badOption",
    ),
)

# C: one code per cause, each message naming the argument, what was expected and what was found.
# Values are stable: -5 was SYMCE_ERR_ARG (smoothing or reduction) until the two got their own codes.
BY_KEY = {e.key: e for e in CATALOGUE}
SUCCESS = ("SYMCE_OK", 0, "success")  # C's return code when nothing is wrong
UNKNOWN_C_CODE = "unknown symce error code"  # symce_strerror of any other value


def c_codes() -> tuple:
    """((name, value, message), ...): SYMCE_OK, then every C code, by value downwards."""
    coded = sorted((e for e in CATALOGUE if e.c is not None), key=lambda e: -e.c_value)
    return (SUCCESS, *((e.c, e.c_value, e.c_message) for e in coded))


def matlab_ids() -> dict:
    """{key: MATLAB identifier} for the templates' ``error(...)`` calls."""
    return {e.key: e.matlab for e in CATALOGUE if e.matlab is not None}


def python_classes() -> dict:
    """{key: exception class name} for the NumPy module's ``raise``."""
    return {e.key: e.python for e in CATALOGUE if e.python is not None}


def _cell(code: str | None, note: str) -> str:
    if code is None:
        return f"— ({note})" if note else "—"
    return f"`{code}` {note}".rstrip()


def markdown_table() -> str:
    """The bad-input table of docs/semantics.md: one row per error."""
    lines = ["| condition | NumPy | C | MATLAB |", "|---|---|---|---|"]
    for e in CATALOGUE:
        lines.append(
            f"| {e.when} | {_cell(e.python, e.python_note)} | {_cell(e.c, e.c_note)} | "
            f"{_cell(e.matlab, '')} |"
        )
    return "\n".join(lines) + "\n"
