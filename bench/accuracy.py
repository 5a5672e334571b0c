#!/usr/bin/env python3
"""Accuracy harness: maximum error in ULPs of every kernel, per dtype and input class, against an
mpmath reference, beside PyTorch's and SciPy's error on the same inputs.

    make accuracy          # or: python bench/accuracy.py [--kernels softmax,log_softmax] [--quick]

The reference is symce's *raw* definition (``symce.reference``, form="raw": the model's SymPy
expressions and their sp.diff derivatives, no closed form, no stable rewrite) evaluated with
mpmath at 50 digits or more (more where the definition itself cancels: a class that dominates by
a logit gap g needs about g/2.3 extra digits).  Each implementation's output is compared with the
reference rounded to the output dtype; the error is in units of the last place of that rounded
reference (denormal spacing at 0).  Losses use reduction='none' and gradients reduction='sum', so
the numbers are per sample and per class, not averaged.

Two results are differences of terms that may cancel: the softmax VJP p_j (g_j - <g, p>) and the
cross-entropy gradient p_j - y_j.  Where they cancel, every implementation's error is set by the
rounding of p, and an error in ULPs of the (tiny) result says nothing about the kernel; for these
two the error is counted in ULPs of the size of the terms, p_j (|g_j| + sum_k |g_k| p_k) and
p_j + y_j (marked "ulp of terms" in the table).

Implementations: symce's generated NumPy module and C library (built here with gcc -O2), and
PyTorch (torch.nn.functional + autograd) and SciPy (scipy.special) where they offer the kernel.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import mpmath
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from symce import reference  # noqa: E402
from symce.ulp import ulp_error  # noqa: E402

DTYPES = (np.float32, np.float64)


# ---- inputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    kernel: str
    klass: str              # input class, e.g. "random |z|<=30"
    args: tuple
    kwargs: dict
    dps: int = reference.DPS


def _rows(rng, dtype, n, k, scale, clip=None):
    z = rng.standard_normal((n, k)) * scale
    if clip is not None:
        z = np.clip(z, -clip, clip)
    return z.astype(dtype)


def _gap_digits(z):
    finite = z[np.isfinite(z)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    return reference.DPS + int(spread / 2.3) + 10


def row_classes(rng, dtype, n):
    big = 1e4 if dtype == np.float64 else 200.0
    k = 10
    masked = _rows(rng, dtype, n, k, 5.0)
    masked[:, ::3] = -np.inf
    dominant = _rows(rng, dtype, n, k, 1.0)
    dominant[:, 0] += np.linspace(15, 28, n).astype(dtype)
    return {
        "random |z|<=30": _rows(rng, dtype, n, k, 10.0, clip=30.0),
        "small K=2": _rows(rng, dtype, n, 2, 10.0, clip=30.0),
        # far outside exp's range (overflow without the max-shift), spread of a few dozen
        f"large |z|~{big:g}": (_rows(rng, dtype, n, k, 10.0, clip=30.0)
                               + np.where(rng.random((n, 1)) < 0.5, -big, big)).astype(dtype),
        "all equal": np.full((n, k), 3.5, dtype=dtype),
        "one dominant": dominant,
        "masked -inf": masked,
    }


def cases(dtype, quick=False, kernels=None):
    rng = np.random.default_rng(20261123)
    n = 4 if quick else 12
    out = []

    def add(kernel, klass, *args, **kw):
        if kernels is None or kernel in kernels:
            z = np.asarray(args[0])
            out.append(Case(kernel, klass, args, kw))

    for klass, z in row_classes(rng, dtype, n).items():
        nn, kk = z.shape
        g = rng.standard_normal((nn, kk)).astype(dtype)
        labels = rng.integers(0, kk, nn)
        if klass == "masked -inf":
            labels = np.array([1 + 3 * (r % ((kk - 2) // 3)) + 1 for r in range(nn)])  # unmasked
        for name in ("softmax", "log_softmax", "logsumexp"):
            add(name, klass, z)
        if klass != "masked -inf":
            add("softmax_vjp", klass, z, g)
        add("softmax_cross_entropy", klass, z, labels, reduction="none")
        add("softmax_cross_entropy_grad", klass, z, labels, reduction="sum")
    x_random = (rng.standard_normal(64) * 10).clip(-30, 30).astype(dtype)
    big = 700.0 if dtype == np.float64 else 85.0
    x_large = np.concatenate([np.linspace(-big, -30, 16), np.linspace(30, big, 16)]).astype(dtype)
    x_tiny = (rng.standard_normal(32) * 1e-6).astype(dtype)
    for klass, x in (("random |x|<=30", x_random), (f"large |x|<={big:g}", x_large),
                     ("tiny |x|~1e-6", x_tiny)):
        add("sigmoid", klass, x)
        add("sigmoid_grad", klass, x)
        y = rng.random(x.shape).round().astype(dtype)
        add("sigmoid_binary_cross_entropy", klass, x.reshape(-1, 1), y.reshape(-1, 1),
            reduction="none")
        add("sigmoid_binary_cross_entropy_grad", klass, x.reshape(-1, 1), y.reshape(-1, 1),
            reduction="sum")
    probs = {"random p": rng.uniform(0.01, 0.99, 64),
             "p near 0 or 1": np.concatenate([10.0 ** -rng.uniform(3, 7, 16),
                                              1 - 10.0 ** -rng.uniform(3, 7, 16)])}
    for klass, pr in probs.items():
        pr = pr.astype(dtype)
        y = rng.random(pr.shape).round().astype(dtype)
        add("binary_cross_entropy", klass, pr.reshape(-1, 1), y.reshape(-1, 1), reduction="none")
        add("binary_cross_entropy_grad", klass, pr.reshape(-1, 1), y.reshape(-1, 1),
            reduction="sum")
    return out


# ---- implementations ---------------------------------------------------------------------------
def load_numpy_module():
    path = ROOT / "generated" / "numpy" / "symce_kernels.py"
    spec = importlib.util.spec_from_file_location("symce_kernels", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def symce_numpy(mod):
    def run(case):
        return getattr(mod, case.kernel)(*case.args, **case.kwargs)
    return run


def symce_c():
    try:
        import c_build  # tests/c_build.py: compiles generated/c with gcc, calls it with ctypes
        lib = c_build.CLib(c_build.shared_library())
    except Exception as exc:  # no gcc: report the column as unavailable
        print(f"# symce-c unavailable: {exc}", file=sys.stderr)
        return None

    def run(case):
        dtype = np.asarray(case.args[0]).dtype
        out = lib.call(case.kernel, dtype, *case.args, **case.kwargs)
        x = np.asarray(case.args[0])
        if case.kernel in ("softmax", "log_softmax", "softmax_vjp", "softmax_cross_entropy_grad",
                           "sigmoid_binary_cross_entropy", "binary_cross_entropy",
                           "sigmoid_binary_cross_entropy_grad", "binary_cross_entropy_grad"):
            return np.asarray(out).reshape(x.shape)
        return out
    return run


def torch_impl():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None

    def grad_of(fn, x, *rest):
        t = torch.tensor(x, requires_grad=True)
        fn(t, *rest).sum().backward()
        return t.grad.numpy()

    def run(case):
        a = case.args
        k = case.kernel
        x = np.asarray(a[0])
        T = torch.tensor
        if k == "sigmoid":
            return torch.sigmoid(T(x)).numpy()
        if k == "sigmoid_grad":
            return grad_of(torch.sigmoid, x)
        if k == "softmax":
            return F.softmax(T(x), dim=-1).numpy()
        if k == "log_softmax":
            return F.log_softmax(T(x), dim=-1).numpy()
        if k == "logsumexp":
            return torch.logsumexp(T(x), dim=-1).numpy()
        if k == "softmax_vjp":
            t = T(x, requires_grad=True)
            F.softmax(t, dim=-1).backward(T(np.asarray(a[1])))
            return t.grad.numpy()
        if k == "softmax_cross_entropy":
            return F.cross_entropy(T(x), T(a[1]), reduction="none").numpy()
        if k == "softmax_cross_entropy_grad":
            return grad_of(lambda t: F.cross_entropy(t, T(a[1]), reduction="sum"), x)
        y = T(np.asarray(a[1]))
        if k == "sigmoid_binary_cross_entropy":
            return F.binary_cross_entropy_with_logits(T(x), y, reduction="none").numpy()
        if k == "sigmoid_binary_cross_entropy_grad":
            return grad_of(lambda t: F.binary_cross_entropy_with_logits(t, y, reduction="sum"), x)
        if k == "binary_cross_entropy":
            return F.binary_cross_entropy(T(x), y, reduction="none").numpy()
        if k == "binary_cross_entropy_grad":
            return grad_of(lambda t: F.binary_cross_entropy(t, y, reduction="sum"), x)
        return None
    return run


def scipy_impl():
    try:
        from scipy import special
    except ImportError:
        return None

    def run(case):
        k, x = case.kernel, np.asarray(case.args[0])
        if k == "sigmoid":
            return special.expit(x)
        if k == "softmax":
            return special.softmax(x, axis=-1)
        if k == "log_softmax":
            return special.log_softmax(x, axis=-1)
        if k == "logsumexp":
            return special.logsumexp(x, axis=-1)
        if k == "softmax_cross_entropy":  # scipy's log_softmax at the label
            lab = np.asarray(case.args[1])
            return -np.take_along_axis(special.log_softmax(x, axis=-1), lab[:, None], -1)[:, 0]
        return None
    return run


# ---- measurement -------------------------------------------------------------------------------
def reference_value(case):
    """The raw reference, row by row for the row kernels so each row gets the digits its own
    logit spread needs (a whole batch at the largest spread's precision would be slow)."""
    x = np.asarray(case.args[0])
    rowwise = x.ndim == 2 and case.kernel.startswith(("softmax", "log_softmax", "logsumexp"))
    if not rowwise:
        return reference.evaluate(case.kernel, *case.args, form="raw", dps=case.dps,
                                  **case.kwargs)
    parts = []
    for r in range(x.shape[0]):
        args = tuple(np.asarray(a)[r:r + 1] for a in case.args)
        parts.append(reference.evaluate(case.kernel, *args, form="raw", dps=_gap_digits(args[0]),
                                        **case.kwargs))
    if case.kernel == "logsumexp" or (case.kernel == "softmax_cross_entropy"
                                      and case.kwargs.get("reduction") == "none"):
        return np.concatenate([np.atleast_1d(p_) for p_ in parts])
    return np.concatenate(parts, axis=0)


CANCELLING = ("softmax_vjp", "softmax_cross_entropy_grad")


def term_scale(case):
    """Per-element size of the terms of a cancelling result (see the module docstring)."""
    with mpmath.workdps(reference.DPS):
        x = np.asarray(case.args[0])
        p = np.concatenate([reference.evaluate("softmax", x[r:r + 1], form="raw",
                                               dps=_gap_digits(x[r:r + 1]))
                            for r in range(x.shape[0])])
        if case.kernel == "softmax_vjp":
            g = np.vectorize(mpmath.mpf, otypes=[object])(np.asarray(case.args[1], dtype=float))
            absdot = np.array([[mpmath.fsum(abs(a) * b for a, b in zip(gr, pr))]
                               for gr, pr in zip(g, p)], dtype=object)
            return p * (np.vectorize(abs, otypes=[object])(g) + absdot)
        onehot = np.zeros(x.shape, dtype=object)
        onehot[np.arange(x.shape[0]), np.asarray(case.args[1])] = 1
        return p + onehot


def scaled_ulp_error(got, ref, scale):
    """max |got - ref| / ulp(scale), elementwise (non-finite handled as in ulp_error)."""
    worst = 0.0
    dtype = np.asarray(got).dtype
    with mpmath.workdps(40):
        for a, r, sc in zip(np.ravel(got), np.ravel(ref), np.ravel(scale)):
            if not (np.isfinite(a) and mpmath.isfinite(r)):
                worst = max(worst, ulp_error(np.array([a], dtype=dtype), [r]))
                continue
            ulp = float(np.spacing(dtype.type(float(sc)))) if sc != 0 else \
                float(np.finfo(dtype).smallest_subnormal)
            worst = max(worst, float(abs(mpmath.mpf(float(a)) - r) / ulp))
    return worst


def measure(impls, dtypes=DTYPES, quick=False, kernels=None):
    """{(kernel, dtype name, input class): {impl name: max ULP or None}}"""
    table = {}
    for dtype in dtypes:
        for case in cases(dtype, quick=quick, kernels=kernels):
            ref = reference_value(case)
            scale = term_scale(case) if case.kernel in CANCELLING else None
            key = (case.kernel, np.dtype(dtype).name, case.klass)
            row = table.setdefault(key, {})
            for name, run in impls.items():
                got = run(case) if run is not None else None
                if got is None:
                    row.setdefault(name, None)
                    continue
                got = np.asarray(got)
                if got.dtype != np.dtype(dtype):
                    raise AssertionError(f"{name} {case.kernel}: dtype {got.dtype} != {dtype}")
                err = ulp_error(got, ref) if scale is None else scaled_ulp_error(got, ref, scale)
                row[name] = max(err, row.get(name) or 0.0)
    return table


def implementations():
    mod = load_numpy_module()
    return {"symce-numpy": symce_numpy(mod), "symce-c": symce_c(), "torch": torch_impl(),
            "scipy": scipy_impl()}


def format_table(table, names):
    def cell(v):
        if v is None:
            return "—"
        if v == float("inf"):
            return "inf"
        return f"{v:.3g}" if v < 1e6 else f"{v:.2e}"

    head = f"| kernel | dtype | inputs | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (3 + len(names))]
    for (kernel, dtype, klass), row in table.items():
        kernel = kernel + (" (ulp of terms)" if kernel in CANCELLING else "")
        lines.append(f"| {kernel} | {dtype} | {klass} | "
                     + " | ".join(cell(row.get(n)) for n in names) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", help="comma-separated kernel names (default: all measured)")
    ap.add_argument("--quick", action="store_true", help="fewer rows per input class")
    args = ap.parse_args(argv)
    kernels = set(args.kernels.split(",")) if args.kernels else None
    impls = implementations()
    names = list(impls)
    with mpmath.workdps(reference.DPS):
        table = measure(impls, quick=args.quick, kernels=kernels)
    print("Maximum error in ULPs against an mpmath reference (— : the library has no such kernel)")
    print(format_table(table, names))
    worse = [(key, row) for key, row in table.items()
             if row.get("torch") is not None
             and any((row.get(n) or 0) > row["torch"] + 1 for n in ("symce-numpy", "symce-c"))]
    print(f"\nsymce worse than PyTorch by more than 1 ULP on {len(worse)} of {len(table)} "
          "(kernel, dtype, input class) rows")
    for key, row in worse:
        print("  ", key, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
