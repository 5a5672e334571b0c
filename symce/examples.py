"""Stage 5 — kernels: one shared table of worked examples, each kernel's call and results.

Every language's documentation shows each kernel's example from this table: the NumPy docstrings
as doctests (``softmax(z).round(4)`` and the array it prints) and the MATLAB help as a call and
what it returns.  Each language's emitter formats the table in its own conventions; the tests run
every example and compare: the doctests in tests/test_numpy_kernels.py, the MATLAB help's calls in
Octave in tests/test_matlab_kernels.py.  So a result here that a kernel no longer returns fails in
both.  No emitter evaluates a reference to write its docs.

The layout is NumPy's: a row per sample (classes along the last axis), labels 0-based, options as
PyTorch's keywords, each result rounded to 4 decimals in the dtype of the first input.  The MATLAB
help moves the sample axis last (a column per sample), adds 1 to each label but ``ignore_index``
(a value, not a position) and names the options as :mod:`symce.options` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Example:
    """One call of a kernel: its inputs and options, and its results."""

    inputs: tuple  # arrays; integer arrays are class labels
    results: tuple  # one per output: an array, or a float for a reduced loss (4 decimals)
    options: dict = field(default_factory=dict)  # PyTorch keyword -> value


_Z1 = np.array([[1.0, 2.0, 0.5]])  # 1 sample, 3 classes
_Z2 = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])  # 2 samples, 3 classes
_X = np.array([2.0, -1.0])  # BCE logits and their targets
_Y = np.array([1.0, 0.0])

EXAMPLES = {
    "sigmoid": Example(
        (np.array([-1.0, 0.0, 2.0], dtype=np.float32),),  # float32 in, float32 out
        (np.array([0.2689, 0.5, 0.8808]),),
    ),
    "sigmoid_grad": Example((np.array([-1.0, 0.0, 2.0]),), (np.array([0.1966, 0.25, 0.105]),)),
    "softmax": Example((np.array([[-2.85, 0.86, 0.28]]),), (np.array([[0.0154, 0.6312, 0.3534]]),)),
    "log_softmax": Example(
        (_Z2,), (np.array([[-1.4644, -0.4644, -1.9644], [-3.0949, -3.0949, -0.0949]]),)
    ),
    "logsumexp": Example((_Z2,), (np.array([2.4644, 3.0949]),)),
    "softmax_jacobian": Example(
        (_Z1,),
        (
            np.array(
                [
                    [
                        [0.1778, -0.1453, -0.0324],
                        [-0.1453, 0.2335, -0.0881],
                        [-0.0324, -0.0881, 0.1206],
                    ]
                ]
            ),
        ),
    ),
    "softmax_vjp": Example(
        (_Z1, np.array([[1.0, 0.0, 0.0]])), (np.array([[0.1778, -0.1453, -0.0324]]),)
    ),
    "cross_entropy": Example((np.array([[0.2, 0.7, 0.1]]), np.array([1])), (0.3567,)),
    "cross_entropy_grad": Example(
        (np.array([[0.5, 0.25, 0.25]]), np.array([0])),
        (np.array([[-1.6, -0.4, -0.4]]),),
        {"label_smoothing": 0.3},
    ),
    "softmax_cross_entropy": Example(  # the second sample is ignored (ignore_index=-100)
        (_Z2, np.array([1, -100])), (np.array([0.4644, 0.0]),), {"reduction": "none"}
    ),
    "softmax_cross_entropy_grad": Example(
        (_Z2, np.array([1, 2])),
        (np.array([[0.0989, -0.1524, 0.0535], [0.006, 0.006, -0.0119]]),),
        {"label_smoothing": 0.1},
    ),
    "softmax_cross_entropy_with_grad": Example(
        (_Z2, np.array([1, 2])),
        (0.3412, np.array([[0.1541, -0.2476, 0.0935], [0.0151, 0.0151, -0.0302]])),
        {"weight": np.array([1.0, 2.0, 1.0])},
    ),
    "binary_cross_entropy": Example(  # log is clamped at -100, as PyTorch does
        (np.array([0.9, 1.0]), _Y), (np.array([0.1054, 100.0]),), {"reduction": "none"}
    ),
    "binary_cross_entropy_grad": Example((np.array([0.9, 0.2]), _Y), (np.array([-0.5556, 0.625]),)),
    "sigmoid_binary_cross_entropy": Example((_X, _Y), (0.347,), {"pos_weight": 3.0}),
    "sigmoid_binary_cross_entropy_grad": Example(
        (_X, _Y), (np.array([-0.1192, 0.2689]),), {"reduction": "sum"}
    ),
    "sigmoid_binary_cross_entropy_with_grad": Example(
        (_X, _Y), (0.694, np.array([-0.3576, 0.2689])), {"pos_weight": 3.0, "reduction": "sum"}
    ),
}


def of(kern: object) -> Example:
    """The worked example of ``kern``: the table's, or for a defined function (its declaration
    names the inputs, symce.definitions) the results of its definition at 50 digits, rounded to
    4 decimals: computed from the definition once, not from any kernel."""
    if kern.name in EXAMPLES:
        return EXAMPLES[kern.name]
    if kern.example is None or kern.raw is None:
        raise KeyError(f"{kern.name}: no worked example (symce.examples.EXAMPLES)")
    import mpmath
    import sympy as sp

    if kern.family == "ce_probs":  # a defined loss: (rows, targets, options) from its declaration
        return _loss_example(kern)
    if kern.family == "bce":
        return _element_example(kern)
    (var,) = kern.raw.free_symbols
    f = sp.lambdify(var, kern.raw, "mpmath")
    with mpmath.workdps(50):
        values = [round(float(f(mpmath.mpf(v))), 4) + 0.0 for v in kern.example]
    return Example((np.array(kern.example),), (np.array(values),))


def _loss_example(kern: object) -> Example:
    """A defined loss's worked example: its declaration's inputs (symce.definitions checks the
    labels are classes and the options are reduction and label_smoothing alone), and the results
    of its definition at 50 digits, rounded: the term (``Kernel.raw``, over the input v and the
    effective target yt) summed over each row's classes, or its derivative, reduced."""
    import mpmath
    import sympy as sp

    from . import kernels as kr

    rows, targets, opts = kern.example
    opts = dict(opts)
    eps, reduction = opts.get("label_smoothing", 0.0), opts.get("reduction", "mean")
    f = sp.lambdify([kr.v, kr.yt], kern.raw, "mpmath")
    zero = kern.raw.xreplace({kr.yt: 0}) == 0  # a class without target adds nothing
    K = len(rows[0])
    with mpmath.workdps(50):
        values = []
        for row, t in zip(rows, targets):
            y = [int(k == t) for k in range(K)] if isinstance(t, int) else list(t)
            yt = [(1 - mpmath.mpf(eps)) * y_k + mpmath.mpf(eps) / K for y_k in y]
            values.append(
                [0 if (a == 0 and zero) else f(mpmath.mpf(v), a) for v, a in zip(row, yt)]
            )
        scale = 1 / mpmath.mpf(len(rows)) if reduction == "mean" else 1
        if "grad" in kern.slots:
            result = np.array([[float(v * scale) for v in r] for r in values])
        else:
            losses = [mpmath.fsum(r) for r in values]
            result = np.array([float(v) for v in losses]) if reduction == "none" else None
            if result is None:
                result = float(mpmath.fsum(losses) * scale)
    result = np.round(result, 4) + 0.0
    inputs = (np.array(rows), np.array(targets))
    return Example(inputs, (result if result.ndim else float(result),), opts)


def _element_example(kern: object) -> Example:
    """A defined loss over elements' worked example: its declaration's input and target (one row:
    a 1-D array), and the results of its definition (``Kernel.raw`` over x, y and the options, at
    the example's option values or their defaults) at 50 digits, reduced, rounded."""
    import mpmath
    import sympy as sp

    from . import definitions
    from . import kernels as kr

    rows, targets, opts = kern.example
    opts = dict(opts)
    reduction = opts.get("reduction", "mean")
    numbers = [o for o in kern.scalars if not o.switch]
    values = {o.name: opts.get(o.name, o.default) for o in numbers}
    # a switch, or a comparison of the options, picks the form (select collapses to it)
    at = {o.symbol: sp.Rational(float(opts.get(o.name, o.default))) for o in kern.scalars}
    syms = [kr.x, kr.y, *(o.symbol for o in numbers)]
    f = sp.lambdify(syms, definitions.picked(kern.raw, at), "mpmath")
    xs = [v for row in rows for v in row]
    ys = [v for row in targets for v in row]
    shape = (len(xs),) if len(rows) == 1 else (len(rows), len(rows[0]))
    with mpmath.workdps(50):
        out = [
            f(mpmath.mpf(a), mpmath.mpf(b), *map(mpmath.mpf, values.values()))
            for a, b in zip(xs, ys)
        ]
        divisor = {"mean": len(out), "batchmean": shape[0]}.get(reduction)
        scale = 1 / mpmath.mpf(divisor) if divisor else 1
        if "grad" in kern.slots:
            result = np.array([float(v * scale) for v in out])
        elif reduction == "none":
            result = np.array([float(v) for v in out])
        else:
            result = np.array(float(mpmath.fsum(out) * scale))
    result = np.round(result, 4) + 0.0
    inputs = (np.array(xs).reshape(shape), np.array(ys).reshape(shape))
    return Example(inputs, (result.reshape(shape) if result.ndim else float(result),), opts)
