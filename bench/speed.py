#!/usr/bin/env python3
"""Speed of the generated kernels beside their peers, measured in the same run.

    make bench            # or: python bench/speed.py [--n 4096] [--k 1000] [--repeat 7]

For softmax, log_softmax and softmax cross-entropy (loss + gradient) on an N x K batch it times:
symce's C kernels (gcc -O3 -march=native, called once through ctypes on the whole batch), symce's
NumPy module, PyTorch on the CPU (forward + autograd backward for the loss), and SciPy where it
has the kernel. Each figure is the best of --repeat runs; the table prints milliseconds, the
effective bandwidth (bytes of the inputs read and outputs written, once each, per second) and the
ratio to symce's C kernel. Timing only: the accuracy of the same kernels is `make accuracy`.
"""
from __future__ import annotations

import argparse
import ctypes
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import load_numpy_module  # noqa: E402


def build_c():
    out = Path(tempfile.mkdtemp(prefix="symce_bench_")) / "libsymce.so"
    subprocess.run(["gcc", "-std=c99", "-O3", "-march=native", "-shared", "-fPIC",
                    str(ROOT / "generated" / "c" / "symce.c"), "-o", str(out), "-lm"], check=True)
    return ctypes.CDLL(str(out))


def best(fn, repeat):
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    n, k = args.n, args.k
    lib = build_c()
    sk = load_numpy_module()
    try:
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    try:
        from scipy import special
    except ImportError:
        special = None
    rng = np.random.default_rng(0)
    print(f"N = {n}, K = {k}; best of {args.repeat}; torch threads = 1; "
          "ratio = time / symce-C time (lower is faster)\n")
    print("| kernel | dtype | implementation | ms | GB/s | ratio |")
    print("|---|---|---|---|---|---|")
    for dtype, sfx, ctype in ((np.float32, "f32", ctypes.c_float), (np.float64, "f64", ctypes.c_double)):
        z = (rng.standard_normal((n, k)) * 4).astype(dtype)
        labels = rng.integers(0, k, n).astype(np.int64)
        out = np.empty_like(z)
        loss = np.empty(1, dtype=dtype)
        P = ctypes.c_void_p
        zp, op, lp, yp = (P(a.ctypes.data) for a in (z, out, loss, labels))
        nbytes = z.nbytes
        runs = {
            "softmax": (2 * nbytes, {
                "symce-C": lambda: lib[f"symce_softmax_{sfx}"](ctypes.c_size_t(n), ctypes.c_size_t(k), zp, op),
                "symce-NumPy": lambda: sk.softmax(z),
                "torch": (lambda: F.softmax(torch.from_numpy(z), dim=-1)) if torch else None,
                "scipy": (lambda: special.softmax(z, axis=-1)) if special else None,
            }),
            "log_softmax": (2 * nbytes, {
                "symce-C": lambda: lib[f"symce_log_softmax_{sfx}"](ctypes.c_size_t(n), ctypes.c_size_t(k), zp, op),
                "symce-NumPy": lambda: sk.log_softmax(z),
                "torch": (lambda: F.log_softmax(torch.from_numpy(z), dim=-1)) if torch else None,
                "scipy": (lambda: special.log_softmax(z, axis=-1)) if special else None,
            }),
            "softmax_cross_entropy_with_grad": (2 * nbytes + labels.nbytes, {
                "symce-C": lambda: lib[f"symce_softmax_cross_entropy_with_grad_{sfx}"](
                    ctypes.c_size_t(n), ctypes.c_size_t(k), zp, yp, None, ctypes.c_int64(-100),
                    ctype(0.0), ctypes.c_int(1), lp, op),
                "symce-NumPy": lambda: sk.softmax_cross_entropy_with_grad(z, labels),
                "torch": (lambda: _torch_ce(torch, F, z, labels)) if torch else None,
            }),
        }
        for kernel, (moved, impls) in runs.items():
            times = {name: best(fn, args.repeat) for name, fn in impls.items() if fn is not None}
            base = times["symce-C"]
            for name, t in times.items():
                print(f"| {kernel} | {np.dtype(dtype).name} | {name} | {t * 1e3:.2f} | "
                      f"{moved / t / 1e9:.2f} | {t / base:.2f} |")
    return 0


def _torch_ce(torch, F, z, labels):
    t = torch.from_numpy(z).requires_grad_(True)
    loss = F.cross_entropy(t, torch.from_numpy(labels))
    loss.backward()
    return loss, t.grad


if __name__ == "__main__":
    raise SystemExit(main())
