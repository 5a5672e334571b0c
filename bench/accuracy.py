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

Implementations: symce's generated NumPy module, C library (built here with gcc -O2, and
-O3 -march=native, which fuses multiply-adds where the machine has FMA) and MATLAB files (run by
GNU Octave, every case in one octave-cli), and PyTorch (torch.nn.functional + autograd) and SciPy
(scipy.special) where they offer the kernel.

Rows with K = 3000 and K = 128000 classes (sums over a vocabulary: the error must not grow with K)
take their reference straight from the definitions (a SymPy expression of thousands of terms
would take hours): the row sum by mpmath, each class's exponential in long double (see
direct_row), and count ULPs against that long double reference (about 2^-62 relative: a few
thousandths of an ULP of either dtype), vectorised.  Their softmax cross-entropy rows are taken
with label_smoothing = 1/3 as well as without (every class then has a target, and the gradient
p sum(y~) - y~ sums over the row), and with class weights.
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
    klass: str  # input class, e.g. "random |z|<=30"
    args: tuple
    kwargs: dict
    dps: int = reference.DPS
    direct: bool = False  # reference straight from the definitions (large K), see direct_row


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
    # the label's class dominates: loss = log1p(Srest) ~ 1e-9 .. 1e-8 (labels 0, see cases)
    dominated = _rows(rng, dtype, n, k, 1.0)
    dominated[:, 0] += np.linspace(20, 23, n).astype(dtype)
    return {
        "random |z|<=30": _rows(rng, dtype, n, k, 10.0, clip=30.0),
        "small K=2": _rows(rng, dtype, n, 2, 10.0, clip=30.0),
        # far outside exp's range (overflow without the max-shift), spread of a few dozen
        f"large |z|~{big:g}": (
            _rows(rng, dtype, n, k, 10.0, clip=30.0) + np.where(rng.random((n, 1)) < 0.5, -big, big)
        ).astype(dtype),
        "all equal": np.full((n, k), 3.5, dtype=dtype),
        "one dominant": dominant,
        DOMINATED: dominated,
        "masked -inf": masked,
    }


DOMINATED = "dominated, loss~1e-8"
LARGE_K = 128000
MID_K = 3000
SMOOTHING = 1 / 3  # the large-K cross-entropy rows' label smoothing (in the input's dtype)


def _elementwise():
    from symce.kernels import registry

    return [n for n, k in registry().items() if k.family == "elementwise"]


ELEMENTWISE = _elementwise()


def cases(dtype, quick=False, kernels=None):
    rng = np.random.default_rng(20261123)
    n = 4 if quick else 12
    out = []

    def add(kernel, klass, *args, **kw):
        if kernels is None or kernel in kernels:
            out.append(Case(kernel, klass, args, kw))

    for klass, z in row_classes(rng, dtype, n).items():
        nn, kk = z.shape
        g = rng.standard_normal((nn, kk)).astype(dtype)
        labels = rng.integers(0, kk, nn)
        if klass == "masked -inf":
            labels = np.array([1 + 3 * (r % ((kk - 2) // 3)) + 1 for r in range(nn)])  # unmasked
        if klass == DOMINATED:
            labels = np.zeros(nn, dtype=np.int64)
        for name in ("softmax", "log_softmax", "logsumexp"):
            add(name, klass, z)
        if klass != "masked -inf":
            add("softmax_vjp", klass, z, g)
        add("softmax_cross_entropy", klass, z, labels, reduction="none")
        add("softmax_cross_entropy_grad", klass, z, labels, reduction="sum")
    # K = 3000 and 128000 (a language model's vocabulary): the sums over the row must not lose
    # accuracy; the cross-entropy also with label_smoothing = 1/3 (a target on every class)
    for big_k in (MID_K, LARGE_K):
        zl = _rows(rng, dtype, 1 if quick else 2, big_k, 4.0, clip=30.0)
        labels = rng.integers(0, big_k, zl.shape[0])
        klass = f"K={big_k}"
        for name in ("softmax", "log_softmax", "logsumexp"):
            if kernels is None or name in kernels:
                out.append(Case(name, klass, (zl,), {}, direct=True))
        weight = rng.uniform(0.5, 2.0, big_k).astype(dtype)
        # 1/3 in the input's dtype: a float32 C kernel takes label_smoothing as a float
        eps3 = float(np.asarray(SMOOTHING, dtype=dtype))
        for eps, w in ((0.0, None), (eps3, None), (eps3, weight)):
            tag = klass + (" eps=1/3" if eps else "") + (" weighted" if w is not None else "")
            for name, red in (
                ("softmax_cross_entropy", "none"),
                ("softmax_cross_entropy_grad", "sum"),
            ):
                if kernels is None or name in kernels:
                    kw = {
                        "reduction": red,
                        **({"label_smoothing": eps} if eps else {}),
                        **({"weight": w} if w is not None else {}),
                    }
                    out.append(Case(name, tag, (zl, labels), kw, direct=True))
    x_random = (rng.standard_normal(64) * 10).clip(-30, 30).astype(dtype)
    big = 700.0 if dtype == np.float64 else 85.0
    x_large = np.concatenate([np.linspace(-big, -30, 16), np.linspace(30, big, 16)]).astype(dtype)
    x_tiny = (rng.standard_normal(32) * 1e-6).astype(dtype)
    for klass, x in (
        ("random |x|<=30", x_random),
        (f"large |x|<={big:g}", x_large),
        ("tiny |x|~1e-6", x_tiny),
    ):
        for name in ELEMENTWISE:  # the sigmoid's, then symce.library's (tanh, softplus, ...)
            add(name, klass, x)
        y = rng.random(x.shape).round().astype(dtype)
        add(
            "sigmoid_binary_cross_entropy",
            klass,
            x.reshape(-1, 1),
            y.reshape(-1, 1),
            reduction="none",
        )
        add(
            "sigmoid_binary_cross_entropy_grad",
            klass,
            x.reshape(-1, 1),
            y.reshape(-1, 1),
            reduction="sum",
        )
    probs = {
        "random p": rng.uniform(0.01, 0.99, 64),
        "p near 0 or 1": np.concatenate(
            [10.0 ** -rng.uniform(3, 7, 16), 1 - 10.0 ** -rng.uniform(3, 7, 16)]
        ),
    }
    for klass, pr in probs.items():
        pr = pr.astype(dtype)
        y = rng.random(pr.shape).round().astype(dtype)
        add("binary_cross_entropy", klass, pr.reshape(-1, 1), y.reshape(-1, 1), reduction="none")
        add(
            "binary_cross_entropy_grad", klass, pr.reshape(-1, 1), y.reshape(-1, 1), reduction="sum"
        )
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


def symce_c(flavour="plain"):
    try:
        import c_build  # tests/c_build.py: compiles generated/c with gcc, calls it with ctypes

        lib = c_build.CLib(c_build.shared_library(flavour=flavour))
    except Exception as exc:  # no gcc: report the column as unavailable
        print(f"# symce-c unavailable: {exc}", file=sys.stderr)
        return None

    def run(case):
        dtype = np.asarray(case.args[0]).dtype
        out = lib.call(case.kernel, dtype, *case.args, **case.kwargs)
        x = np.asarray(case.args[0])
        if case.kernel in (
            "softmax",
            "log_softmax",
            "softmax_vjp",
            "softmax_cross_entropy_grad",
            "sigmoid_binary_cross_entropy",
            "binary_cross_entropy",
            "sigmoid_binary_cross_entropy_grad",
            "binary_cross_entropy_grad",
        ):
            return np.asarray(out).reshape(x.shape)
        return out

    return run


class MatlabRun:
    """symce's MATLAB files in GNU Octave: :meth:`prepare` runs every case in one octave-cli
    (starting Octave costs more than the kernels), then each call looks its result up."""

    def __init__(self, octave):
        self.octave = octave
        self.results = {}

    def prepare(self, all_cases):
        from symce import kernels

        from octave_runner import Batch, matlab_args  # tests/octave_runner.py

        batch = Batch()
        keys = []
        for case in all_cases:
            nout = len(kernels.kernel(case.kernel).outputs)
            args = matlab_args(batch, case.kernel, case.args, case.kwargs)
            keys.append((case, batch.call(f"symce_{case.kernel}({args})", nout=nout)))
        results = batch.run(self.octave)
        self.results = {id(case): results[key] for case, key in keys}

    def __call__(self, case):
        from symce import kernels

        from octave_runner import to_numpy_layout

        res = self.results[id(case)].check()
        out = kernels.kernel(case.kernel).outputs[0].name
        return to_numpy_layout(
            case.kernel,
            res.values[0],
            output=out,
            reduction=case.kwargs.get("reduction", "mean"),
            shape=np.shape(case.args[0]),
        )


def symce_matlab():
    import shutil

    octave = shutil.which("octave-cli")
    if octave is None:
        print("# symce-matlab unavailable: octave-cli not found", file=sys.stderr)
        return None
    return MatlabRun(octave)


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
        library = {"tanh": torch.tanh, "softplus": F.softplus, "log_sigmoid": F.logsigmoid}
        if k in library:
            return library[k](T(x)).numpy()
        if k.removesuffix("_grad") in library:
            return grad_of(library[k.removesuffix("_grad")], x)
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
        eps = case.kwargs.get("label_smoothing", 0.0)
        w = case.kwargs.get("weight")
        w = None if w is None else T(np.asarray(w))
        if k == "softmax_cross_entropy":
            return F.cross_entropy(
                T(x), T(a[1]), reduction="none", label_smoothing=eps, weight=w
            ).numpy()
        if k == "softmax_cross_entropy_grad":
            return grad_of(
                lambda t: F.cross_entropy(
                    t, T(a[1]), reduction="sum", label_smoothing=eps, weight=w
                ),
                x,
            )
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
        if k == "softmax_cross_entropy" and set(case.kwargs) <= {"reduction"}:
            # scipy's log_softmax at the label
            lab = np.asarray(case.args[1])
            return -np.take_along_axis(special.log_softmax(x, axis=-1), lab[:, None], -1)[:, 0]
        return None

    return run


# ---- measurement -------------------------------------------------------------------------------
_DIRECT = {}


def direct_row(z):
    """(exp(z_k - m) in long double, log S in long double) of one row, m = the row max: the sum
    S = sum_k exp(z_k - m) and its log by mpmath at 30 digits, each class's exponential by the C
    library's expl (64-bit mantissa, within an ULP of long double, 2^-63 relative).  Cached (the
    last few rows): every large-K kernel reads the same rows."""
    key = (z.dtype.str, z.tobytes())
    if key not in _DIRECT:
        if len(_DIRECT) >= 8:
            _DIRECT.pop(next(iter(_DIRECT)))
        zl = z.astype(np.longdouble)
        m = zl.max()
        e = np.exp(zl - m)
        with mpmath.workdps(30):
            top = mpmath.mpf(float(z.max()))
            S = mpmath.fsum(mpmath.exp(mpmath.mpf(float(v)) - top) for v in z)
            log_s = mpmath.log(S)
            s_ld = to_longdouble(np.array([S], dtype=object))[0]
            lse = to_longdouble(np.array([log_s + top], dtype=object))[0]
        _DIRECT[key] = (e, s_ld, lse)
    return _DIRECT[key]


def direct_reference(case):
    """softmax, log_softmax, logsumexp, and the softmax cross-entropy (labels, label_smoothing
    eps) and its gradient by their definitions, in long double from direct_row: p = e/S,
    log p = z - lse, lse, L = sum_k y~_k (lse - z_k), dL/dz = p sum(y~) - y~ with
    y~_k = (1 - eps) [k = t] + eps / K (reference error about 2^-62 relative: a few thousandths
    of a double's ULP)."""
    x = np.asarray(case.args[0])
    rows = []
    for r in range(x.shape[0]):
        e, S, lse = direct_row(x[r])
        z = x[r].astype(np.longdouble)
        k = case.kernel
        if k == "softmax":
            rows.append(e / S)
        elif k == "log_softmax":
            rows.append(z - lse)
        elif k == "logsumexp":
            rows.append(lse)
        else:
            yt = _smoothed_target(case, r, len(z))
            if k == "softmax_cross_entropy":
                rows.append(np.sum(yt * (lse - z)))
            else:
                rows.append(e / S * np.sum(yt) - yt)
    return np.array(rows, dtype=np.longdouble)


def _smoothed_target(case, r, k):
    """y~ of row r in long double: (1 - eps) w_t at the label t + eps w_k / K (w = 1 without
    class weights)."""
    eps = np.longdouble(case.kwargs.get("label_smoothing", 0.0))
    w = case.kwargs.get("weight")
    w = np.ones(k, dtype=np.longdouble) if w is None else np.asarray(w).astype(np.longdouble)
    t = int(np.asarray(case.args[1])[r])
    yt = eps * w / k
    yt[t] += (1 - eps) * w[t]
    return yt


def to_longdouble(ref):
    """mpmath numbers -> long double, as hi + lo (two doubles: 106 bits, more than long double's
    64)."""
    flat = np.ravel(np.asarray(ref, dtype=object))
    hi = np.array([float(v) for v in flat])
    lo = np.array([float(v - h) if np.isfinite(h) else 0.0 for v, h in zip(flat, hi)])
    return (hi.astype(np.longdouble) + lo.astype(np.longdouble)).reshape(np.shape(ref))


def fast_ulp_error(got, ref_ld):
    """max |got - ref| in ULPs of got's dtype, vectorised, against the reference in long double
    (2^-64 relative: far below an ULP of float or double); finite values only."""
    got = np.asarray(got)
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(ref_ld))):
        raise AssertionError("fast_ulp_error takes finite values only")
    spacing = np.spacing(np.abs(ref_ld.astype(got.dtype))).astype(np.longdouble)
    spacing[spacing == 0] = np.finfo(got.dtype).smallest_subnormal
    return float(np.max(np.abs(got.astype(np.longdouble) - ref_ld) / spacing))


def reference_value(case):
    """The raw reference, row by row for the row kernels so each row gets the digits its own
    logit spread needs (a whole batch at the largest spread's precision would be slow)."""
    if case.direct:
        return direct_reference(case)
    x = np.asarray(case.args[0])
    rowwise = x.ndim == 2 and case.kernel.startswith(("softmax", "log_softmax", "logsumexp"))
    if not rowwise:
        return reference.evaluate(case.kernel, *case.args, form="raw", dps=case.dps, **case.kwargs)
    parts = []
    for r in range(x.shape[0]):
        args = tuple(np.asarray(a)[r : r + 1] for a in case.args)
        parts.append(
            reference.evaluate(
                case.kernel, *args, form="raw", dps=_gap_digits(args[0]), **case.kwargs
            )
        )
    if case.kernel == "logsumexp" or (
        case.kernel == "softmax_cross_entropy" and case.kwargs.get("reduction") == "none"
    ):
        return np.concatenate([np.atleast_1d(p_) for p_ in parts])
    return np.concatenate(parts, axis=0)


CANCELLING = ("softmax_vjp", "softmax_cross_entropy_grad")


def term_scale(case):
    """Per-element size of the terms of a cancelling result (see the module docstring)."""
    with mpmath.workdps(reference.DPS):
        x = np.asarray(case.args[0])
        if case.direct:
            p = direct_reference(Case("softmax", case.klass, case.args[:1], {}, direct=True))
            yt = np.array([_smoothed_target(case, r, x.shape[1]) for r in range(x.shape[0])])
            return p * np.sum(yt, axis=1, keepdims=True) + yt
        else:
            p = np.concatenate(
                [
                    reference.evaluate(
                        "softmax", x[r : r + 1], form="raw", dps=_gap_digits(x[r : r + 1])
                    )
                    for r in range(x.shape[0])
                ]
            )
        if case.kernel == "softmax_vjp":
            g = np.vectorize(mpmath.mpf, otypes=[object])(np.asarray(case.args[1], dtype=float))
            absdot = np.array(
                [[mpmath.fsum(abs(a) * b for a, b in zip(gr, pr))] for gr, pr in zip(g, p)],
                dtype=object,
            )
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
            ulp = (
                float(np.spacing(dtype.type(float(sc))))
                if sc != 0
                else float(np.finfo(dtype).smallest_subnormal)
            )
            worst = max(worst, float(abs(mpmath.mpf(float(a)) - r) / ulp))
    return worst


def fast_scaled_ulp_error(got, ref_ld, scale_ld):
    """scaled_ulp_error, vectorised through long double (finite values only)."""
    got = np.asarray(got)
    spacing = np.spacing(scale_ld.astype(got.dtype)).astype(np.longdouble)
    spacing[spacing == 0] = np.finfo(got.dtype).smallest_subnormal
    return float(np.max(np.abs(got.astype(np.longdouble) - ref_ld) / spacing))


def measure(impls, dtypes=DTYPES, quick=False, kernels=None):
    """{(kernel, dtype name, input class): {impl name: max ULP or None}}"""
    table = {}
    all_cases = [case for dtype in dtypes for case in cases(dtype, quick=quick, kernels=kernels)]
    for run in impls.values():
        if hasattr(run, "prepare"):
            run.prepare(all_cases)
    for case in all_cases:
        dtype = np.asarray(case.args[0]).dtype
        ref = reference_value(case)
        scale = term_scale(case) if case.kernel in CANCELLING else None
        if case.direct:  # already long double
            ref_ld, scale_ld = ref, scale
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
            if case.direct:
                err = (
                    fast_ulp_error(got, ref_ld)
                    if scale is None
                    else fast_scaled_ulp_error(got, ref_ld, scale_ld)
                )
            elif scale is not None:
                err = scaled_ulp_error(got, ref, scale)
            else:
                err = ulp_error(got, ref)
            row[name] = max(err, row.get(name) or 0.0)
    return table


def implementations():
    mod = load_numpy_module()
    return {
        "symce-numpy": symce_numpy(mod),
        "symce-c": symce_c(),
        "symce-c-native": symce_c("native"),
        "symce-matlab": symce_matlab(),
        "torch": torch_impl(),
        "scipy": scipy_impl(),
    }


def format_table(table, names):
    def cell(v):
        if v is None:
            return "—"
        if v == float("inf"):
            return "inf"
        return f"{v:.3g}" if v < 1e6 else f"{v:.2e}"

    head = "| kernel | dtype | inputs | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (3 + len(names))]
    for (kernel, dtype, klass), row in table.items():
        kernel = kernel + (" (ulp of terms)" if kernel in CANCELLING else "")
        lines.append(
            f"| {kernel} | {dtype} | {klass} | "
            + " | ".join(cell(row.get(n)) for n in names)
            + " |"
        )
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
    worse = [
        (key, row)
        for key, row in table.items()
        if row.get("torch") is not None
        and any(
            (row.get(n) or 0) > row["torch"] + 1
            for n in ("symce-numpy", "symce-c", "symce-c-native", "symce-matlab")
        )
    ]
    print(
        f"\nsymce worse than PyTorch by more than 1 ULP on {len(worse)} of {len(table)} "
        "(kernel, dtype, input class) rows"
    )
    for key, row in worse:
        print("  ", key, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
