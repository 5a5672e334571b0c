#!/usr/bin/env python3
"""Speed of symce's C and NumPy kernels beside PyTorch, textbook NumPy and memcpy, in one run.

    make bench           # python bench/speed.py [--reps 20] [--min-reps 10] [--json PATH | --no-json]
    make bench QUICK=1   # python bench/speed.py --quick: the closing line in well under 90 s

Work timed (each implementation on the whole batch, one call):
  * sce      fused softmax cross-entropy, loss + gradient, integer labels (int64), mean reduction,
             no weight, ignore_index -100, no label smoothing, (N, K) in (4096, 1000),
             (256, 32000), (262144, 10), (64, 128000), float32 and float64. C:
             symce_softmax_cross_entropy_with_grad_{f32,f64}; NumPy: softmax_cross_entropy_with_grad;
             torch: F.cross_entropy(reduction='mean') forward + autograd backward.
  * softmax  softmax alone, (4096, 1000). C: symce_softmax_*; NumPy: softmax; torch: F.softmax.
  * bce      fused sigmoid binary cross-entropy, loss + gradient, mean over all elements, on
             N = 10^7 elements laid out as a multi-label batch of n = 10000 rows by k = 1000
             columns (rows for OpenMP to split, a long contiguous loop in each), targets 0 or 1,
             no weight, no pos_weight. C: symce_sigmoid_binary_cross_entropy_with_grad_* if the
             library exports it, else the two calls symce_sigmoid_binary_cross_entropy_* and
             symce_sigmoid_binary_cross_entropy_grad_* (the table says which); NumPy likewise
             (sigmoid_binary_cross_entropy_with_grad, else the loss and the grad function); torch:
             F.binary_cross_entropy_with_logits forward + autograd backward.
  Logits are N(0, 1) x 3, seeded. In the sce cases every 64th row is dominated by its label (its
  logit set to the row max + 24 down to + 8), so 1 - p at the label is small there: a kernel that
  forms p - 1 directly fails the check below. The C argument lists are read from
  generated/c/symce.h and bound by parameter name (a changed signature is an error, not a
  mis-call); SYMCE_REDUCTION_MEAN is read from there too.

Implementations, interleaved: repetition r runs each implementation once, round robin, starting at
a point that rotates with r, so noise on the machine hits all of them alike. Each figure is the
median of the repetitions after warm-up (the check's call, plus one more for a fast one). A fast
implementation is looped ``inner`` times per sample (>= 20 ms a sample, >= 5 ms with --quick).
Every implementation gets --reps samples (20; --quick 10), except one whose samples would take
more than --budget seconds (2; --quick 1) a case: it gets fewer, never fewer than --min-reps (10;
--quick 3). The "runs" column gives the count.
  * symce C 1T   gcc -std=c99 -O3 -march=native -shared -fPIC symce.c -lm (in a temp dir), called
                 through ctypes with preallocated outputs;
  * symce C 2T   the same plus -fopenmp, with omp_set_num_threads(2) before each sample (torch is
                 imported first, so both share torch's libgomp; the header names it). Without a
                 ``#pragma omp`` in symce.c it is the 1-thread code (the header counts the
                 pragmas), and --quick then leaves it out;
  * symce NumPy  generated/numpy/symce_kernels.py, imported from its path;
  * textbook     NumPy in the input dtype: zs = z - max, e = exp(zs), s = sum(e), loss =
                 mean(log s - zs[label]), grad = (e/s - onehot)/N; softmax e/s; BCE loss
                 mean(max(x, 0) - x y + log1p(exp(-|x|))), grad (1/(1 + exp(-x)) - y)/N;
  * torch 1T/2T  torch.set_num_threads(1 or 2) before each sample, CPU tensors sharing the NumPy
                 inputs' memory;
  * memcpy       np.copyto of one uint8 buffer of B/2 bytes into another (both touched
                 beforehand), where B = bytes read + bytes written by the kernel, counting each
                 input once and each output once (logits, labels or targets; gradient or p, the
                 loss). The copy reads B/2 and writes B/2 bytes: memcpy time is the time to move B
                 bytes, as many as the kernel must move at the least.

Columns: runs; median ms; effective GB/s = B / time; "x memcpy" = memcpy time / time (1 = as fast
as copying its bytes); "x torch 1T" = torch 1-thread time / time (above 1 = faster than torch).

Correctness first: before any timing, every case's outputs are computed once and checked against a
reference computed here, in float64 for float32 outputs and in x87 long double (64-bit
significand) for float64 outputs, with 1 - p at the label summed from the other classes so nothing
cancels. symce's outputs (C 1T, C 2T, NumPy), the loss and every element of the gradient (or p),
must be within 8 float32 ULP (of the reference rounded to float32; the current float32 NumPy BCE
gradient is at 3.4-4.1 ULP, the C at 0.5) in float32 and within 1e-13 relative in float64. A miss
stops the benchmark, exit status 1, with a message naming the case, implementation, output and
error. torch and the textbook NumPy get a loose check (error over the largest |reference| below
5e-4 in float32, 1e-10 in float64), which guards the harness itself.

Output: a machine header (date, CPU model and flags, CPUs, load average, gcc and flags, versions),
one Markdown table per case, a JSON file with all figures and samples under bench/results/
(speed-<UTC date-time>[-quick].json, git-ignored), and the closing line

    symce-bench: sce_frac=A sce_vs_torch=B sce_k10_vs_torch=C bce_frac=D bce_vs_torch=E numpy_vs_naive=F

A = the smallest "x memcpy" of symce C 1T on the float32 sce cases with K >= 1000; B = its
smallest "x torch 1T" on those; C = its "x torch 1T" at K = 10; D, E = "x memcpy" and "x torch 1T"
of symce C 1T on the float32 bce case; F = the smallest ratio textbook-NumPy time / symce-NumPy
time on the four float32 sce cases (above 1: symce's NumPy is faster). Figures print with 2
decimals, or with 2 significant digits below 0.1 (0.0086).

--quick runs only the float32 sce and bce cases (all the closing line needs), keeps each case in
memory from its check to its timing (the check's call is the first warm-up) and uses the smaller
counts above; the full run rebuilds each case after the checks, to hold one case at a time.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import gc
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "generated" / "c" / "symce.h"
SOURCE = ROOT / "generated" / "c" / "symce.c"
NUMPY_MODULE = ROOT / "generated" / "numpy" / "symce_kernels.py"
RESULTS = ROOT / "bench" / "results"

CFLAGS = ["-std=c99", "-O3", "-march=native", "-shared", "-fPIC"]
SCE_SHAPES = ((4096, 1000), (256, 32000), (262144, 10), (64, 128000))
SOFTMAX_SHAPE = (4096, 1000)
BCE_SHAPE = (10_000, 1_000)  # N = 10^7 elements
LOGIT_SCALE = 3.0
REDUCTION_MEAN = 1  # SYMCE_REDUCTION_MEAN in symce.h (checked at start-up)

F32_ULP_TOL = 8.0  # symce float32 outputs: ULPs of the rounded reference
F64_REL_TOL = 1e-13  # symce float64 outputs: relative error
LOOSE_TOL = {np.float32: 5e-4, np.float64: 1e-10}  # torch / textbook, relative to the scale

C1, C2, SNP, NAIVE, T1, T2, MEMCPY = (
    "symce C 1T",
    "symce C 2T (OpenMP)",
    "symce NumPy",
    "textbook NumPy",
    "torch 1T",
    "torch 2T",
    "memcpy",
)
STRICT = (C1, C2, SNP)


class BenchError(Exception):
    """A failed check or a broken set-up: the benchmark stops with exit status 1."""


# ---- machine ----------------------------------------------------------------------------------
def machine_info(omp_pragmas):
    info = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    cpu, flags = "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = m.group(1).strip() if m else platform.processor() or "unknown"
        m = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        flags = set(m.group(1).split()) if m else set()
    except OSError:
        pass
    info["cpu"] = cpu
    info["flags"] = [
        f
        for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl")
        if f in flags
    ]
    info["logical_cpus"] = os.cpu_count()
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cpus"] = os.cpu_count()
    try:
        info["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        info["loadavg"] = None
    try:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=True)
        info["gcc"] = out.stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError):
        info["gcc"] = "not found"
    info["cflags"] = " ".join(CFLAGS + ["-lm"])
    info["cflags_openmp"] = " ".join(CFLAGS + ["-fopenmp", "-lm"])
    info["omp_pragmas_in_symce_c"] = omp_pragmas
    return info


def loaded_libgomp():
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = sorted({line.split()[-1] for line in maps if "libgomp" in line and "/" in line})
    return paths or None


# ---- C library: build, and bind the prototypes in symce.h ------------------------------------
def start_build(tmp):
    """Start the serial and the OpenMP build side by side; finish_build waits for them."""
    libs, jobs = {}, []
    for tag, extra in (("serial", []), ("openmp", ["-fopenmp"])):
        out = Path(tmp) / f"libsymce_{tag}.so"
        cmd = ["gcc", *CFLAGS, *extra, str(SOURCE), "-o", str(out), "-lm"]
        jobs.append(
            (cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        )
        libs[tag] = out
    return libs, jobs


def finish_build(pending):
    libs, jobs = pending
    for cmd, proc in jobs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise BenchError(f"C build failed: {' '.join(cmd)}\n{err}")
    return libs


def parse_prototypes(text):
    """{function name: [(C type, parameter name), ...]} for every ``int symce_*(...);``."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    protos = {}
    for m in re.finditer(r"\bint\s+(symce_\w+)\s*\(([^)]*)\)\s*;", text):
        params = []
        for p in m.group(2).split(","):
            p = " ".join(p.replace("*", " * ").split())
            if p in ("", "void"):
                continue
            name = p.split()[-1]
            params.append((p[: -len(name)].strip(), name))
        protos[m.group(1)] = params
    return protos


def reduction_mean_value(text):
    m = re.search(r"SYMCE_REDUCTION_MEAN\s*=\s*(\d+)", text)
    return int(m.group(1)) if m else None


def _ctype(ctype):
    if "*" in ctype:
        return ctypes.c_void_p
    base = ctype.replace("const", "").replace("restrict", "").split()
    base = " ".join(base)
    table = {
        "size_t": ctypes.c_size_t,
        "int64_t": ctypes.c_int64,
        "float": ctypes.c_float,
        "double": ctypes.c_double,
        "int": ctypes.c_int,
        "symce_reduction": ctypes.c_int,
    }
    if base not in table:
        raise BenchError(f"symce.h: parameter type {ctype!r} is not known to bench/speed.py")
    return table[base]


def _arg(value):
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return ctypes.c_void_p(value.ctypes.data)
    return value


def c_call(lib, protos, name, **values):
    """A no-argument callable running ``name`` with the parameters bound by name (a missing
    parameter is an error, so a changed signature is noticed, not silently mis-called)."""
    if name not in protos:
        raise BenchError(f"symce.h declares no {name}")
    params = protos[name]
    fn = lib[name]
    fn.argtypes = [_ctype(t) for t, _ in params]
    fn.restype = ctypes.c_int
    unknown = [p for _, p in params if p not in values]
    if unknown:
        raise BenchError(
            f"{name}: bench/speed.py has no value for parameter(s) {unknown} "
            f"(signature: {', '.join(t + ' ' + p for t, p in params)})"
        )
    args = [_arg(values[p]) for _, p in params]

    def call():
        rc = fn(*args)
        if rc != 0:
            raise BenchError(f"{name} returned {rc}")

    return call


def has_symbol(lib, name):
    try:
        lib[name]
        return True
    except AttributeError:
        return False


# ---- references (float64 for float32 outputs, long double for float64 outputs) ------------
def _wide(dtype):
    return np.float64 if dtype == np.float32 else np.longdouble


def _chunks(n, k, target=1 << 20):
    step = max(1, target // max(k, 1))
    for lo in range(0, n, step):
        yield lo, min(n, lo + step)


def reference(kind, inputs):
    """(loss or None, output array in the wide type) for the case, computed in row chunks."""
    if kind == "sce":
        z, labels = inputs["z"], inputs["labels"]
        n, k = z.shape
        wd = _wide(z.dtype)
        grad = np.empty((n, k), dtype=wd)
        total = wd(0)
        for lo, hi in _chunks(n, k):
            zc = z[lo:hi].astype(wd)
            r = np.arange(hi - lo)
            lab = labels[lo:hi]
            zs = zc - zc.max(axis=1, keepdims=True)
            e = np.exp(zs)
            s = e.sum(axis=1)
            g = e / s[:, None]
            e[r, lab] = 0
            g[r, lab] = -e.sum(axis=1) / s  # -(1 - p_label), from the other classes
            grad[lo:hi] = g / n
            total += np.sum(np.log(s) - zs[r, lab])
        return total / n, grad
    if kind == "softmax":
        z = inputs["z"]
        n, k = z.shape
        wd = _wide(z.dtype)
        p = np.empty((n, k), dtype=wd)
        for lo, hi in _chunks(n, k):
            zc = z[lo:hi].astype(wd)
            e = np.exp(zc - zc.max(axis=1, keepdims=True))
            p[lo:hi] = e / e.sum(axis=1, keepdims=True)
        return None, p
    if kind == "bce":
        x, y = inputs["x"], inputs["y"]
        n, k = x.shape
        count = x.size
        wd = _wide(x.dtype)
        grad = np.empty((n, k), dtype=wd)
        total = wd(0)
        for lo, hi in _chunks(n, k):
            xc, yc = x[lo:hi].astype(wd), y[lo:hi].astype(wd)
            ex = np.exp(-np.abs(xc))
            total += np.sum(
                np.maximum(xc, 0) - xc * yc + np.log1p(ex)
            )  # y in {0, 1}: no cancellation
            sig_pos = np.where(xc >= 0, 1, ex) / (1 + ex)  # sigmoid(x)
            sig_neg = np.where(xc >= 0, ex, 1) / (1 + ex)  # sigmoid(-x)
            grad[lo:hi] = ((1 - yc) * sig_pos - yc * sig_neg) / count
        return total / count, grad
    raise ValueError(kind)


def _strict_error(out, ref, dtype):
    """Largest error: float32 in ULPs of the float32-rounded reference, float64 relative."""
    out = np.asarray(out)
    if out.dtype != np.dtype(dtype):
        raise BenchError(f"output dtype {out.dtype}, expected {np.dtype(dtype).name}")
    ref = np.asarray(ref)
    if out.shape != ref.shape:
        raise BenchError(f"output shape {out.shape}, expected {ref.shape}")
    worst = 0.0
    flat_o, flat_r = out.reshape(-1), ref.reshape(-1)
    step = 1 << 20
    for lo in range(0, flat_o.size, step):
        o, r = flat_o[lo : lo + step], flat_r[lo : lo + step]
        if not np.all(np.isfinite(o)):
            return float("inf")
        if dtype == np.float32:
            unit = np.spacing(np.maximum(np.abs(r.astype(np.float32)), np.finfo(np.float32).tiny))
            err = np.abs(o.astype(np.float64) - r.astype(np.float64)) / unit.astype(np.float64)
        else:
            err = np.abs(o.astype(np.longdouble) - r) / np.maximum(
                np.abs(r), np.finfo(np.float64).tiny
            )
        worst = max(worst, float(err.max()))
    return worst


def _loose_error(out, ref):
    """Largest |out - ref| over the largest |ref| (NaN or inf anywhere: inf)."""
    out, ref = np.asarray(out), np.asarray(ref)
    if out.shape != ref.shape:
        return float("inf")
    if not np.all(np.isfinite(out)):
        return float("inf")
    scale = float(np.max(np.abs(ref))) or 1.0
    return float(np.max(np.abs(out.astype(ref.dtype) - ref)) / scale)


def check_case(case):
    """Run every implementation once and compare with the reference; raise on a strict miss."""
    ref_loss, ref_out = reference(case.kind, case.inputs)
    report = {}
    failures = []
    for impl in case.impls:
        impl.pre()
        t0 = time.perf_counter()
        impl.fn()  # also the first warm-up call
        case.first_call[impl.name] = time.perf_counter() - t0
        if impl.result is None:
            continue
        loss, out = impl.result()
        errs = {}
        if impl.name in STRICT:
            unit = "ulp" if case.dtype == np.float32 else "rel"
            tol = F32_ULP_TOL if case.dtype == np.float32 else F64_REL_TOL
            try:
                if ref_loss is not None:
                    errs["loss"] = _strict_error(
                        np.asarray(loss).reshape(()), np.asarray(ref_loss), case.dtype
                    )
                errs["out"] = _strict_error(out, ref_out, case.dtype)
            except BenchError as exc:
                failures.append(f"{case.title}: {impl.name}: {exc}")
                continue
            for what, err in errs.items():
                if not err <= tol:
                    failures.append(
                        f"{case.title}: {impl.name}: {case.out_name if what == 'out' else 'loss'} "
                        f"off by {err:.3g} {unit} (tolerance {tol:g} {unit})"
                    )
            report[impl.name] = {k: (v, unit) for k, v in errs.items()}
        else:
            tol = LOOSE_TOL[case.dtype]
            if ref_loss is not None:
                errs["loss"] = _loose_error(
                    np.asarray(loss, dtype=np.float64).reshape(()), np.asarray(ref_loss)
                )
            errs["out"] = _loose_error(out, ref_out)
            for what, err in errs.items():
                if not err <= tol:
                    failures.append(
                        f"{case.title}: {impl.name} (loose check, harness guard): "
                        f"{what} off by {err:.3g} relative (tolerance {tol:g})"
                    )
            report[impl.name] = {k: (v, "rel") for k, v in errs.items()}
    if failures:
        raise BenchError("output check failed before timing:\n  " + "\n  ".join(failures))
    return report


# ---- cases ------------------------------------------------------------------------------------
@dataclass
class Impl:
    name: str
    fn: object  # no-argument callable, the timed work
    pre: object = lambda: None  # untimed set-up before each sample (thread counts)
    result: object = None  # () -> (loss, output) of the last fn() call, for the check
    note: str = ""


@dataclass
class Case:
    kind: str  # "sce", "softmax", "bce"
    dtype: type
    shape: tuple
    inputs: dict
    bytes_read: int
    bytes_written: int
    out_name: str
    impls: list = field(default_factory=list)
    note: str = ""
    first_call: dict = field(default_factory=dict)  # seconds of the check's call

    @property
    def title(self):
        n, k = self.shape
        label = {
            "sce": "softmax CE loss + grad",
            "softmax": "softmax",
            "bce": "sigmoid BCE loss + grad",
        }[self.kind]
        return f"{label}, (N, K) = ({n}, {k}), {np.dtype(self.dtype).name}"

    @property
    def key(self):
        n, k = self.shape
        return f"{self.kind}_{n}x{k}_{np.dtype(self.dtype).name}"


class Env:
    """What every case needs: the two C libraries, their prototypes, the NumPy module, torch."""

    def __init__(self, libs, protos, with_c2=True):
        self.with_c2 = with_c2
        self.lib1 = ctypes.CDLL(str(libs["serial"]))
        self.lib2 = ctypes.CDLL(str(libs["openmp"]))
        self.protos = protos
        try:
            self.omp_set = self.lib2.omp_set_num_threads
        except AttributeError:
            self.omp_set = ctypes.CDLL("libgomp.so.1").omp_set_num_threads
        self.omp_set.argtypes = [ctypes.c_int]
        self.omp_set.restype = None
        spec = importlib.util.spec_from_file_location("symce_kernels", NUMPY_MODULE)
        self.sk = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.sk)


def _c_variants(env):
    out = [(C1, env.lib1, lambda: None)]
    if env.with_c2:
        out.append((C2, env.lib2, lambda: env.omp_set(2)))
    return out


def _torch_threads(n):
    import torch

    def pre():
        torch.set_num_threads(n)

    return pre


def _memcpy_impl(nbytes):
    half = max(1, nbytes // 2)
    src = np.ones(half, dtype=np.uint8)
    dst = np.ones(half, dtype=np.uint8)  # touched, so no page faults in the copy
    return Impl(MEMCPY, lambda: np.copyto(dst, src), note=f"{half} bytes copied")


def make_sce_case(env, dtype, shape, seed):
    import torch
    import torch.nn.functional as F

    n, k = shape
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k), dtype=dtype) * dtype(LOGIT_SCALE)
    labels = rng.integers(0, k, n, dtype=np.int64)
    # every 64th row is dominated by its label (gap 24 down to 8 over the row max), so 1 - p at the
    # label is small and a kernel that forms p - 1 directly fails the check
    rows = np.arange(0, n, 64)
    z[rows, labels[rows]] = z[rows].max(axis=1) + np.linspace(24, 8, rows.size).astype(dtype)
    it = np.dtype(dtype).itemsize
    case = Case(
        "sce",
        dtype,
        shape,
        {"z": z, "labels": labels},
        bytes_read=z.nbytes + labels.nbytes,
        bytes_written=z.nbytes + it,
        out_name="grad",
    )
    sfx = "f32" if dtype == np.float32 else "f64"
    fname = f"symce_softmax_cross_entropy_with_grad_{sfx}"
    for name, lib, pre in _c_variants(env):
        loss, grad = np.zeros(1, dtype=dtype), np.zeros((n, k), dtype=dtype)
        fn = c_call(
            lib,
            env.protos,
            fname,
            n=n,
            k=k,
            logits=z,
            labels=labels,
            weight=None,
            ignore_index=-100,
            label_smoothing=0.0,
            reduction=REDUCTION_MEAN,
            loss=loss,
            grad=grad,
        )
        case.impls.append(Impl(name, fn, pre, (lambda out=loss, g=grad: (out[0], g))))
    sk = env.sk
    box = {}

    def symce_np():
        box["snp"] = sk.softmax_cross_entropy_with_grad(z, labels)

    case.impls.append(Impl(SNP, symce_np, result=lambda: box["snp"]))
    r = np.arange(n)

    def textbook():
        zs = z - z.max(axis=1, keepdims=True)
        e = np.exp(zs)
        s = e.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(s[:, 0]) - zs[r, labels])
        grad = e / s
        grad[r, labels] -= 1
        grad /= n
        box["naive"] = (loss, grad)

    case.impls.append(Impl(NAIVE, textbook, result=lambda: box["naive"]))
    zt, lt = torch.from_numpy(z), torch.from_numpy(labels)

    def torch_ce():
        t = zt.detach().requires_grad_(True)
        loss = F.cross_entropy(t, lt, reduction="mean")
        loss.backward()
        box["torch"] = (loss, t.grad)

    for name, threads in ((T1, 1), (T2, 2)):
        case.impls.append(
            Impl(
                name,
                torch_ce,
                _torch_threads(threads),
                lambda: (box["torch"][0].item(), box["torch"][1].numpy()),
            )
        )
    case.impls.append(_memcpy_impl(case.bytes_read + case.bytes_written))
    return case


def make_softmax_case(env, dtype, shape, seed):
    import torch
    import torch.nn.functional as F

    n, k = shape
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k), dtype=dtype) * dtype(LOGIT_SCALE)
    case = Case(
        "softmax", dtype, shape, {"z": z}, bytes_read=z.nbytes, bytes_written=z.nbytes, out_name="p"
    )
    sfx = "f32" if dtype == np.float32 else "f64"
    for name, lib, pre in _c_variants(env):
        out = np.zeros((n, k), dtype=dtype)
        fn = c_call(lib, env.protos, f"symce_softmax_{sfx}", n=n, k=k, z=z, out=out)
        case.impls.append(Impl(name, fn, pre, (lambda o=out: (None, o))))
    sk = env.sk
    box = {}

    def symce_np():
        box["snp"] = sk.softmax(z)

    case.impls.append(Impl(SNP, symce_np, result=lambda: (None, box["snp"])))

    def textbook():
        e = np.exp(z - z.max(axis=1, keepdims=True))
        box["naive"] = e / e.sum(axis=1, keepdims=True)

    case.impls.append(Impl(NAIVE, textbook, result=lambda: (None, box["naive"])))
    zt = torch.from_numpy(z)

    def torch_softmax():
        box["torch"] = F.softmax(zt, dim=-1)

    for name, threads in ((T1, 1), (T2, 2)):
        case.impls.append(
            Impl(name, torch_softmax, _torch_threads(threads), lambda: (None, box["torch"].numpy()))
        )
    case.impls.append(_memcpy_impl(case.bytes_read + case.bytes_written))
    return case


def make_bce_case(env, dtype, shape, seed):
    import torch
    import torch.nn.functional as F

    n, k = shape
    count = n * k
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, k), dtype=dtype) * dtype(LOGIT_SCALE)
    y = (rng.random((n, k), dtype=dtype) < 0.5).astype(dtype)
    it = np.dtype(dtype).itemsize
    case = Case(
        "bce",
        dtype,
        shape,
        {"x": x, "y": y},
        bytes_read=x.nbytes + y.nbytes,
        bytes_written=x.nbytes + it,
        out_name="grad",
    )
    sfx = "f32" if dtype == np.float32 else "f64"
    fused = f"symce_sigmoid_binary_cross_entropy_with_grad_{sfx}"
    for name, lib, pre in _c_variants(env):
        loss, grad = np.zeros(1, dtype=dtype), np.zeros((n, k), dtype=dtype)
        common = dict(
            n=n, k=k, logits=x, target=y, weight=None, pos_weight=None, reduction=REDUCTION_MEAN
        )
        if has_symbol(lib, fused):
            fn = c_call(lib, env.protos, fused, **common, loss=loss, grad=grad)
            note = "fused"
        else:
            f_loss = c_call(
                lib, env.protos, f"symce_sigmoid_binary_cross_entropy_{sfx}", **common, loss=loss
            )
            f_grad = c_call(
                lib,
                env.protos,
                f"symce_sigmoid_binary_cross_entropy_grad_{sfx}",
                **common,
                grad=grad,
            )

            def fn(f_loss=f_loss, f_grad=f_grad):
                f_loss()
                f_grad()

            note = "two calls: loss, grad"
        case.impls.append(Impl(name, fn, pre, (lambda out=loss, g=grad: (out[0], g)), note=note))
    sk = env.sk
    box = {}
    if hasattr(sk, "sigmoid_binary_cross_entropy_with_grad"):

        def symce_np():
            box["snp"] = sk.sigmoid_binary_cross_entropy_with_grad(x, y)

        np_note = "fused"
    else:

        def symce_np():
            box["snp"] = (
                sk.sigmoid_binary_cross_entropy(x, y),
                sk.sigmoid_binary_cross_entropy_grad(x, y),
            )

        np_note = "two calls: loss, grad"
    case.impls.append(Impl(SNP, symce_np, result=lambda: box["snp"], note=np_note))

    def textbook():
        loss = np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))
        grad = (1 / (1 + np.exp(-x)) - y) / dtype(count)
        box["naive"] = (loss, grad)

    case.impls.append(Impl(NAIVE, textbook, result=lambda: box["naive"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_bce():
        t = xt.detach().requires_grad_(True)
        loss = F.binary_cross_entropy_with_logits(t, yt, reduction="mean")
        loss.backward()
        box["torch"] = (loss, t.grad)

    for name, threads in ((T1, 1), (T2, 2)):
        case.impls.append(
            Impl(
                name,
                torch_bce,
                _torch_threads(threads),
                lambda: (box["torch"][0].item(), box["torch"][1].numpy()),
            )
        )
    case.impls.append(_memcpy_impl(case.bytes_read + case.bytes_written))
    case.note = f"symce C: {case.impls[0].note}; symce NumPy: {np_note}"
    return case


def case_plan(quick):
    """[(kind, dtype, shape)] in run order; --quick keeps the float32 cases of the closing line."""
    dtypes = (np.float32,) if quick else (np.float32, np.float64)
    plan = []
    for dtype in dtypes:
        plan += [("sce", dtype, s) for s in SCE_SHAPES]
        if not quick:
            plan.append(("softmax", dtype, SOFTMAX_SHAPE))
        plan.append(("bce", dtype, BCE_SHAPE))
    return plan


MAKERS = {"sce": make_sce_case, "softmax": make_softmax_case, "bce": make_bce_case}


# ---- timing -----------------------------------------------------------------------------------
@dataclass
class Timing:
    reps: int  # repetitions for a fast implementation
    min_reps: int  # ... and for a slow one (never fewer)
    budget: float  # seconds of samples per implementation and case that decide "slow"
    min_sample: float  # a sample loops a fast implementation until about this many seconds


def time_case(case, tm):
    """Median seconds per call of each implementation, interleaved round robin.

    Each implementation has had one call in the check. A fast one (under 0.25 s) gets a second
    warm-up call, timed, which sets its loop count ``inner`` and its cost; a slow one is costed by
    the check's call. An implementation gets ``tm.reps`` samples, or fewer if they would take
    more than ``tm.budget`` seconds, but never fewer than ``tm.min_reps``. Repetition r runs
    every implementation with more than r samples to take, in an order rotated by r."""
    impls = case.impls
    inner, count = {}, {}
    for impl in impls:
        t = case.first_call.get(impl.name)
        if t is None or t < 0.25:
            impl.pre()
            t0 = time.perf_counter()
            impl.fn()
            t = time.perf_counter() - t0
        m = max(1, min(1000, int(tm.min_sample / max(t, 1e-7))))
        inner[impl.name] = m
        count[impl.name] = max(tm.min_reps, min(tm.reps, int(tm.budget / (t * m))))
    samples = {impl.name: [] for impl in impls}
    gc.collect()
    gc.disable()
    try:
        for rep in range(max(count.values())):
            start = rep % len(impls)
            for impl in impls[start:] + impls[:start]:
                if rep >= count[impl.name]:
                    continue
                impl.pre()
                m = inner[impl.name]
                fn = impl.fn
                t0 = time.perf_counter()
                for _ in range(m):
                    fn()
                samples[impl.name].append((time.perf_counter() - t0) / m)
    finally:
        gc.enable()
    return {name: float(np.median(v)) for name, v in samples.items()}, samples, inner


# ---- output -----------------------------------------------------------------------------------
def fmt(x):
    """2 decimals, or 2 significant digits below 0.1."""
    if x is None or not np.isfinite(x):
        return "nan"
    if abs(float(f"{x:.2g}")) >= 0.1 or x == 0:
        return f"{x:.2f}"
    digits = 1 - int(np.floor(np.log10(abs(float(f"{x:.2g}")))))
    return f"{x:.{digits}f}"


def table(case, med, runs):
    moved = case.bytes_read + case.bytes_written
    t_mem, t_torch = med[MEMCPY], med[T1]
    lines = [f"### {case.title}", ""]
    if case.note:
        lines += [f"({case.note})", ""]
    lines += [
        f"bytes moved B = {moved / 1e6:.1f} MB (read {case.bytes_read / 1e6:.1f}, "
        f"written {case.bytes_written / 1e6:.1f})",
        "",
        "| implementation | runs | median ms | GB/s | x memcpy | x torch 1T |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = {}
    for impl in case.impls:
        t = med[impl.name]
        row = {
            "runs": runs[impl.name],
            "median_ms": t * 1e3,
            "gb_per_s": moved / t / 1e9,
            "frac_memcpy": t_mem / t,
            "vs_torch1": t_torch / t,
        }
        rows[impl.name] = row
        lines.append(
            f"| {impl.name} | {runs[impl.name]} | {t * 1e3:.3f} | {row['gb_per_s']:.2f} | "
            f"{fmt(row['frac_memcpy'])} | {fmt(row['vs_torch1'])} |"
        )
    return "\n".join(lines), rows


def closing(results):
    def get(kind, shape, dtype="float32"):
        return results.get(f"{kind}_{shape[0]}x{shape[1]}_{dtype}")

    big = [get("sce", s) for s in SCE_SHAPES if s[1] >= 1000]
    k10 = get("sce", (262144, 10))
    bce = get("bce", BCE_SHAPE)
    every = [get("sce", s) for s in SCE_SHAPES]
    if any(r is None for r in big + every) or k10 is None or bce is None:
        raise BenchError("a float32 case of the closing line was not run")
    A = min(r["rows"][C1]["frac_memcpy"] for r in big)
    B = min(r["rows"][C1]["vs_torch1"] for r in big)
    C = k10["rows"][C1]["vs_torch1"]
    D = bce["rows"][C1]["frac_memcpy"]
    E = bce["rows"][C1]["vs_torch1"]
    Fv = min(r["rows"][NAIVE]["median_ms"] / r["rows"][SNP]["median_ms"] for r in every)
    figures = {
        "sce_frac": A,
        "sce_vs_torch": B,
        "sce_k10_vs_torch": C,
        "bce_frac": D,
        "bce_vs_torch": E,
        "numpy_vs_naive": Fv,
    }
    line = "symce-bench: " + " ".join(f"{k}={fmt(v)}" for k, v in figures.items())
    return figures, line


def write_results(args, prefix: str, payload: dict, elapsed: float) -> None:
    """The run's JSON at --json, or bench/results/<prefix>-<UTC time>[-quick].json (not with
    --no-json), and the time it all took."""
    if args.no_json:
        print(f"{elapsed:.0f} s in all")
        return
    path = args.json
    if path is None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"{prefix}-{stamp}{'-quick' if args.quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    try:
        shown = path.resolve().relative_to(ROOT)
    except ValueError:
        shown = path
    print(f"JSON: {shown}; {elapsed:.0f} s in all")


# ---- main -------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="the float32 cases of the closing line, 3 to 10 repetitions, ~5 ms "
        "samples; symce C 2T only if symce.c has an OpenMP pragma (under 90 s)",
    )
    ap.add_argument(
        "--reps",
        type=int,
        default=None,
        help="repetitions of a fast implementation (default 20, --quick 10)",
    )
    ap.add_argument(
        "--min-reps",
        type=int,
        default=None,
        help="repetitions of a slow one (default 10, --quick 3)",
    )
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of samples per implementation and case above which it counts "
        "as slow (default 2, --quick 1)",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the JSON (default bench/results/speed-<UTC time>.json)",
    )
    ap.add_argument("--no-json", action="store_true", help="write no JSON file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    q = args.quick
    tm = Timing(
        reps=args.reps or (10 if q else 20),
        min_reps=args.min_reps or (3 if q else 10),
        budget=args.budget or (1.0 if q else 2.0),
        min_sample=0.005 if q else 0.02,
    )
    tm.reps = max(tm.reps, tm.min_reps)
    t_start = time.perf_counter()
    try:
        return _run(args, tm, t_start)
    except BenchError as exc:
        print(f"\nsymce-bench: FAILED: {exc}", file=sys.stderr)
        return 1


def _run(args, tm, t_start):
    tmp = tempfile.TemporaryDirectory(prefix="symce_bench_")
    t_build = time.perf_counter()
    pending = start_build(tmp.name)  # compiles while torch imports
    import torch

    header_text = HEADER.read_text()
    mean = reduction_mean_value(header_text)
    if mean != REDUCTION_MEAN:
        raise BenchError(
            f"symce.h: SYMCE_REDUCTION_MEAN = {mean}, bench/speed.py assumes {REDUCTION_MEAN}"
        )
    protos = parse_prototypes(header_text)
    omp_pragmas = len(re.findall(r"#\s*pragma\s+omp\b", SOURCE.read_text()))
    info = machine_info(omp_pragmas)
    info["torch"] = torch.__version__

    libs = finish_build(pending)
    info["c_build_s"] = round(time.perf_counter() - t_build, 2)
    with_c2 = not (args.quick and omp_pragmas == 0)
    env = Env(libs, protos, with_c2=with_c2)
    env.omp_set(2)
    info["libgomp"] = loaded_libgomp()

    print("# symce speed benchmark" + (" (quick)" if args.quick else ""))
    print()
    print(f"- date: {info['date_utc']}")
    print(
        f"- CPU: {info['cpu']}; {info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable); "
        f"flags: {' '.join(info['flags']) or 'none of interest'}; load average "
        f"{' '.join(info['loadavg'] or ['?'])}"
    )
    c2 = (
        ""
        if omp_pragmas
        else ", so the 2-thread build runs on 1 thread"
        + ("" if with_c2 else " and --quick leaves it out")
    )
    print(
        f"- compiler: {info['gcc']}; `gcc {info['cflags']}`, plus `-fopenmp` for symce C 2T "
        f"(`#pragma omp` in symce.c: {omp_pragmas}{c2}); both built, in parallel, in {info['c_build_s']} s"
    )
    print(
        f"- Python {info['python']}, NumPy {info['numpy']}, PyTorch {info['torch']}; "
        f"libgomp: {', '.join(info['libgomp'] or ['?'])}"
    )
    print(
        f"- median of {tm.min_reps}-{tm.reps} interleaved repetitions after warm-up (column runs; "
        f"fewer for an implementation slower than {tm.budget:g} s / {tm.reps}); fast ones "
        f"looped to >= {tm.min_sample * 1e3:g} ms a sample; logits N(0, 1) x {LOGIT_SCALE:g}"
    )
    print(
        "- x memcpy = memcpy time / time; x torch 1T = torch 1-thread time / time; "
        "GB/s = (bytes read + bytes written) / time"
    )
    print(flush=True)

    plan = case_plan(args.quick)
    keep = args.quick  # --quick: the check's call is the warm-up; else rebuild, to save memory
    # 1. every output checked before anything is timed
    checks, kept = {}, []
    for i, (kind, dtype, shape) in enumerate(plan):
        case = MAKERS[kind](env, dtype, shape, args.seed + i)
        checks[case.key] = check_case(case)
        if keep:
            kept.append(case)
        del case
        gc.collect()
    worst = {}
    for rep in checks.values():
        for name, errs in rep.items():
            if name in STRICT:
                for err, unit in errs.values():
                    worst[(name, unit)] = max(worst.get((name, unit), 0.0), err)
    summary = "; ".join(
        f"{name} {err:.3g} {'ulp (float32)' if unit == 'ulp' else 'rel (float64)'}"
        for (name, unit), err in sorted(worst.items())
    )
    print(
        f"All outputs checked against float64 / long double references before timing: pass "
        f"(worst errors, losses and gradients: {summary}; tolerances {F32_ULP_TOL:g} ulp, "
        f"{F64_REL_TOL:g} rel)."
    )
    print(flush=True)

    # 2. timing
    results = {}
    for i, (kind, dtype, shape) in enumerate(plan):
        if keep:
            case = kept[i]
            kept[i] = None
        else:
            case = MAKERS[kind](env, dtype, shape, args.seed + i)
            for impl in case.impls:  # first warm-up call
                impl.pre()
                t0 = time.perf_counter()
                impl.fn()
                case.first_call[impl.name] = time.perf_counter() - t0
        med, samples, inner = time_case(case, tm)
        text, rows = table(case, med, {k: len(v) for k, v in samples.items()})
        print(text)
        print(flush=True)
        results[case.key] = {
            "kind": kind,
            "dtype": np.dtype(dtype).name,
            "shape": list(shape),
            "bytes_read": case.bytes_read,
            "bytes_written": case.bytes_written,
            "note": case.note,
            "rows": rows,
            "samples_ms": {k: [x * 1e3 for x in v] for k, v in samples.items()},
            "inner": inner,
            "check": {
                name: {w: {"error": e, "unit": u} for w, (e, u) in errs.items()}
                for name, errs in checks[case.key].items()
            },
        }
        del case
        gc.collect()

    figures, line = closing(results)
    elapsed = time.perf_counter() - t_start
    payload = {
        "machine": info,
        "quick": args.quick,
        "timing": {
            "reps": tm.reps,
            "min_reps": tm.min_reps,
            "budget_s": tm.budget,
            "min_sample_s": tm.min_sample,
        },
        "seed": args.seed,
        "logit_scale": LOGIT_SCALE,
        "tolerances": {
            "float32_ulp": F32_ULP_TOL,
            "float64_rel": F64_REL_TOL,
            "loose": {np.dtype(k).name: v for k, v in LOOSE_TOL.items()},
        },
        "cases": results,
        "closing": figures,
        "closing_line": line,
        "elapsed_s": round(elapsed, 1),
    }
    write_results(args, "speed", payload, elapsed)
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
