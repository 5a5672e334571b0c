#!/usr/bin/env python3
"""Speed of the library's declared functions (symce/library) beside PyTorch, in one run.

    make bench-library           # python bench/library.py [--quick] [--json PATH | --no-json]

Work timed, each function on one batch, its value and its derivative (or gradient), float32 and
float64 (--quick: float32 only):
  * tanh, softplus, log_sigmoid   2^20 elements, N(0, 1) x 3.  symce: the function and its
                                  derivative kernels (two calls); torch: torch.tanh,
                                  F.softplus, F.logsigmoid forward + autograd backward.
  * nll_loss                      (N, K) = (8192, 128) log-probabilities, integer labels, mean.
                                  symce: nll_loss and nll_loss_grad; torch: F.nll_loss.
  * kl_div                        (N, K) = (8192, 128): log-probabilities against probability
                                  rows, batchmean, log_target False and True.  torch: F.kl_div.
  * focal_loss                    2^20 logits, 0/1 targets, alpha 0.25, gamma 2, mean.  torch:
                                  torchvision's sigmoid_focal_loss formula written in torch
                                  (torchvision is not a dependency), forward + backward.
Implementations, interleaved as bench/speed.py interleaves them (its timing loop is reused):
symce C 1T (gcc -O3 -march=native, through ctypes, outputs preallocated), symce NumPy (the
generated module) and torch 1T.  "x torch 1T" = torch time / time (above 1: faster than torch).

Before timing, every implementation's value and derivative are compared with float64 (float32
inputs) or long double (float64 inputs) PyTorch, as a guard on the harness: within 1e-5 (float32)
or 1e-12 (float64) of the largest magnitude.  The accuracy itself is `make accuracy`'s and
`symce check`'s.  The closing line gives symce C 1T's "x torch 1T" for each float32 case:

    symce-library-bench: tanh=A softplus=B log_sigmoid=C nll_loss=D kl_div=E kl_div_log_target=F focal_loss=G
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # bench/speed.py: build, prototypes, interleaved timing

ROOT = speed.ROOT
ELEMENTS = 1 << 20
ROWS = (8192, 128)
REDUCTION = {"mean": 1, "batchmean": 3}  # checked against symce.h at start-up
TOL = {np.float32: 1e-5, np.float64: 1e-12}
C1, SNP, T1 = "symce C 1T", "symce NumPy", "torch 1T"


def _reduction_values(header: str) -> None:
    import re

    for name, value in REDUCTION.items():
        m = re.search(rf"SYMCE_REDUCTION_{name.upper()}\s*=\s*(\d+)", header)
        if not m or int(m.group(1)) != value:
            raise speed.BenchError(f"symce.h: SYMCE_REDUCTION_{name.upper()} is not {value}")


def _torch_pair(torch, fn, *inputs, wide=False):
    """(value, derivative) of fn at inputs[0] by autograd (backward of the sum for an
    elementwise value, of the reduced loss for a loss); in float64 when ``wide``."""
    first = torch.from_numpy(inputs[0])
    rest = [torch.from_numpy(a) for a in inputs[1:]]
    if wide:
        first = first.double()
        rest = [r.double() if r.is_floating_point() else r for r in rest]
    leaf = first.detach().requires_grad_(True)
    out = fn(leaf, *rest)
    out.sum().backward()
    return out.detach(), leaf.grad


def make_case(env, torch, name, dtype, seed, log_target=False):
    """(title, inputs, {implementation: (callable, result)}, reference (value, derivative))."""
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    sfx = "f32" if dtype == np.float32 else "f64"
    sk, lib, protos = env["sk"], env["lib"], env["protos"]
    impls = {}
    if name in ("tanh", "softplus", "log_sigmoid"):
        x = (rng.standard_normal(ELEMENTS) * 3).astype(dtype)
        inputs = (x,)
        f_out, g_out = np.empty_like(x), np.empty_like(x)
        c = [
            speed.c_call(lib, protos, f"symce_{n}_{sfx}", count=x.size, x=x, out=o)
            for n, o in ((name, f_out), (name + "_grad", g_out))
        ]
        tfn = {"tanh": torch.tanh, "softplus": F.softplus, "log_sigmoid": F.logsigmoid}[name]
        np_f, np_g = getattr(sk, name), getattr(sk, name + "_grad")
        impls[C1] = (lambda: (c[0](), c[1]()), lambda: (f_out, g_out))
        box = {}
        impls[SNP] = (lambda: box.update(r=(np_f(x), np_g(x))), lambda: box["r"])
        title = f"{name} and its derivative, {x.size} elements"
    else:
        if name == "focal_loss":
            x = (rng.standard_normal(ELEMENTS) * 3).astype(dtype)
            y = (rng.random(ELEMENTS) < 0.5).astype(dtype)
            inputs, n, k, red = (x, y), 1, x.size, "mean"
            opts_c = dict(target=y, weight=None, alpha=0.25, gamma=2.0)
            opts_np = dict(alpha=0.25, gamma=2.0)

            def tfn(t, yt):
                p = torch.sigmoid(t)
                ce = F.binary_cross_entropy_with_logits(t, yt, reduction="none")
                p_t = p * yt + (1 - p) * (1 - yt)
                return ((0.25 * yt + 0.75 * (1 - yt)) * ce * (1 - p_t) ** 2).mean()

            title = f"focal_loss and its gradient, {x.size} logits, alpha 0.25, gamma 2, mean"
        else:
            n, k = ROWS
            z = rng.standard_normal(ROWS) * 3
            logp = (z - np.log(np.exp(z).sum(axis=1, keepdims=True))).astype(dtype)
            if name == "nll_loss":
                labels = rng.integers(0, k, n, dtype=np.int64)
                inputs, red = (logp, labels), "mean"
                opts_c = dict(labels=labels, weight=None, ignore_index=-100, label_smoothing=0.0)
                opts_np = {}

                def tfn(t, lab):
                    return F.nll_loss(t, lab)

                title = f"nll_loss and its gradient, (N, K) = {ROWS}, labels, mean"
            else:
                q = rng.standard_normal(ROWS) * 2
                prob = np.exp(q) / np.exp(q).sum(axis=1, keepdims=True)
                target = (np.log(prob) if log_target else prob).astype(dtype)
                inputs, red = (logp, target), "batchmean"
                opts_c = dict(target=target, weight=None, log_target=int(log_target))
                opts_np = dict(log_target=log_target)

                def tfn(t, tt):
                    return F.kl_div(t, tt, reduction="batchmean", log_target=log_target)

                title = f"kl_div and its gradient, (N, K) = {ROWS}, batchmean" + (
                    ", log_target" if log_target else ""
                )
        first = inputs[0]
        loss, grad = np.zeros(1, dtype=dtype), np.empty_like(first)
        common = dict(n=n, k=k, input=first, reduction=REDUCTION[red], **opts_c)
        c = [
            speed.c_call(lib, protos, f"symce_{name}_{sfx}", **common, loss=loss),
            speed.c_call(lib, protos, f"symce_{name}_grad_{sfx}", **common, grad=grad),
        ]
        impls[C1] = (lambda: (c[0](), c[1]()), lambda: (loss[0], grad))
        np_f, np_g = getattr(sk, name), getattr(sk, name + "_grad")
        box = {}
        impls[SNP] = (
            lambda: box.update(r=(np_f(*inputs, red, **opts_np), np_g(*inputs, red, **opts_np))),
            lambda: box["r"],
        )
    box_t = {}
    impls[T1] = (
        lambda: box_t.update(r=_torch_pair(torch, tfn, *inputs)),
        lambda: tuple(a.numpy() for a in box_t["r"]),
    )
    ref = tuple(a.numpy() for a in _torch_pair(torch, tfn, *inputs, wide=True))
    return f"{title}, {np.dtype(dtype).name}", impls, ref


def check(title, impls, ref, dtype):
    """Each implementation's value and derivative within TOL of the reference's scale."""
    worst = {}
    for impl, (fn, result) in impls.items():
        fn()
        for what, got, want in zip(("value", "derivative"), result(), ref):
            got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
            scale = float(np.max(np.abs(want))) or 1.0
            err = float(np.max(np.abs(got - want))) / scale if np.all(np.isfinite(got)) else np.inf
            if not err <= TOL[dtype]:
                raise speed.BenchError(f"{title}: {impl}: {what} off by {err:.3g} of its scale")
            worst[impl] = max(worst.get(impl, 0.0), err)
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="float32 only, fewer repetitions")
    ap.add_argument("--json", type=Path, default=None, help="where to write the JSON")
    ap.add_argument("--no-json", action="store_true", help="write no JSON file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except speed.BenchError as exc:
        print(f"\nsymce-library-bench: FAILED: {exc}", file=sys.stderr)
        return 1


def _run(args) -> int:
    import importlib.util

    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="symce_bench_library_")
    out = Path(tmp.name) / "libsymce.so"
    cmd = ["gcc", *speed.CFLAGS, str(speed.SOURCE), "-o", str(out), "-lm"]
    import subprocess

    build = subprocess.run(cmd, capture_output=True, text=True)
    if build.returncode != 0:
        raise speed.BenchError(f"C build failed: {' '.join(cmd)}\n{build.stderr}")
    import torch

    torch.set_num_threads(1)
    header = speed.HEADER.read_text()
    _reduction_values(header)
    spec = importlib.util.spec_from_file_location("symce_kernels", speed.NUMPY_MODULE)
    sk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sk)
    env = {"lib": ctypes.CDLL(str(out)), "protos": speed.parse_prototypes(header), "sk": sk}
    info = speed.machine_info(0)
    info["torch"] = torch.__version__
    q = args.quick
    tm = speed.Timing(
        reps=10 if q else 20, min_reps=3 if q else 10, budget=1.0 if q else 2.0, min_sample=0.005
    )
    print("# symce library benchmark" + (" (quick)" if q else ""))
    print()
    print(f"- date: {info['date_utc']}")
    print(f"- CPU: {info['cpu']}; flags: {' '.join(info['flags']) or 'none of interest'}")
    print(f"- compiler: {info['gcc']}; `gcc {' '.join(speed.CFLAGS)} -lm`")
    print(
        f"- Python {info['python']}, NumPy {info['numpy']}, PyTorch {torch.__version__}, 1 thread"
    )
    print("- x torch 1T = torch 1-thread time / time (above 1: faster than torch)")
    print(flush=True)
    plan = [
        (name, dtype, lt)
        for dtype in ((np.float32,) if q else (np.float32, np.float64))
        for name, lt in (
            ("tanh", False),
            ("softplus", False),
            ("log_sigmoid", False),
            ("nll_loss", False),
            ("kl_div", False),
            ("kl_div", True),
            ("focal_loss", False),
        )
    ]
    results, closing = {}, {}
    for i, (name, dtype, lt) in enumerate(plan):
        title, impls, ref = make_case(env, torch, name, dtype, args.seed + i, log_target=lt)
        worst = check(title, impls, ref, dtype)
        case = speed.Case("library", dtype, (0, 0), {}, 0, 0, "")
        case.impls = [speed.Impl(n, fn) for n, (fn, _) in impls.items()]
        med, samples, _ = speed.time_case(case, tm)
        print(f"### {title}")
        print()
        print("| implementation | runs | median ms | x torch 1T | check (of the scale) |")
        print("|---|---:|---:|---:|---:|")
        rows = {}
        for n, t in med.items():
            rows[n] = {"median_ms": t * 1e3, "vs_torch1": med[T1] / t, "runs": len(samples[n])}
            print(
                f"| {n} | {len(samples[n])} | {t * 1e3:.3f} | {speed.fmt(med[T1] / t)} | "
                f"{worst[n]:.1e} |"
            )
        print(flush=True)
        key = name + ("_log_target" if lt else "")
        results[f"{key}_{np.dtype(dtype).name}"] = {"title": title, "rows": rows, "check": worst}
        if dtype == np.float32:
            closing[key] = rows[C1]["vs_torch1"]
        gc.collect()
    line = "symce-library-bench: " + " ".join(f"{k}={speed.fmt(v)}" for k, v in closing.items())
    elapsed = time.perf_counter() - t_start
    payload = {"machine": info, "quick": q, "cases": results, "closing_line": line}
    speed.write_results(args, "library", payload, elapsed)
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
