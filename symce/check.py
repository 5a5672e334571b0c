"""Verification (outside the pipeline): `symce check`, the numeric check of kernels as a user runs it.

Each kernel is run on fixed inputs (random, and for the elementwise kernels the edges out to
|x| = 700) in each language whose toolchain is present, from the code symce generates now (the
NumPy module, the C snippet of `symce emit` built with the C compiler, the MATLAB file run by
octave-cli), in float32 and float64, and compared with :mod:`symce.reference`'s mpmath value of
the raw definition (no closed form involved).  The elementwise kernels are measured in ULPs
(:mod:`symce.ulp`, at most :data:`MAX_ULP`); the others normwise, relative to the largest
reference value (at most :data:`TOL`).  The test suite (``make test``) checks much more (every
option, bad input, finite differences, every C build); this is the quick check of one function,
for instance one a user just defined.

Every language checks every kernel, with PyTorch's default options (mean reduction, no
weights): NumPy runs the module, C each kernel's snippet alone (:mod:`symce.snippets`), MATLAB
each kernel's file alone in Octave.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import reference as R
from .kernels import Kernel, registry
from .ulp import ulp_error

DTYPES = ("float32", "float64")
TOL = {"float32": 1e-5, "float64": 1e-12}
MAX_ULP = 4.0
_EDGES = (-700.0, -100.0, -30.0, 0.0, 30.0, 100.0, 700.0)


def inputs(name: str, dtype: str) -> tuple:
    """Fixed inputs of kernel ``name`` in NumPy's layout (the same on every run)."""
    kern = registry()[name]
    rng = np.random.default_rng(20261203)
    fam = kern.family
    dt = np.dtype(dtype)
    if fam == "elementwise":
        x = np.concatenate([np.linspace(-40, 40, 81), rng.normal(0, 5, 40), _EDGES])
        return (x.astype(dt),)
    n, k = 5, 7
    z = (rng.normal(0, 3, (n, k))).astype(dt)
    labels = rng.integers(0, k, n)
    if fam == "rowwise":
        return (z, rng.normal(0, 1, (n, k)).astype(dt)) if len(kern.inputs) == 2 else (z,)
    if fam == "ce_probs":  # probabilities, or a defined loss's log-probabilities
        e = np.exp(z.astype(np.float64))
        p = e / e.sum(axis=1, keepdims=True)
        return ((p if kern.checks_domain else np.log(p)).astype(dt), labels)
    if fam == "ce_logits":
        return (z, labels)
    first = rng.uniform(0.02, 0.98, (n, k)) if kern.inputs[0].domain else z
    return (first.astype(dt), rng.uniform(0, 1, (n, k)).astype(dt))


def _error(kern, got, ref) -> float:
    """The error of one output: in ULPs (elementwise), else normwise relative."""
    if kern.family == "elementwise":
        return ulp_error(got, ref)
    got = np.asarray(got, dtype=np.float64)
    refs = np.array([float(v) for v in np.ravel(np.asarray(ref, dtype=object))])
    if not refs.size:
        return 0.0
    scale = max(float(np.max(np.abs(refs))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(np.ravel(got) - refs))) / scale


# ---- the languages ---------------------------------------------------------------------------
class NumPyModule:
    """The generated NumPy module as it renders now (``.module``), run in this process."""

    name = "numpy"

    def __init__(self):
        from .generate import render_all

        self.module = types.ModuleType("symce_kernels_check")
        code = render_all(["numpy"])["numpy/symce_kernels.py"]
        exec(compile(code, "symce_kernels.py", "exec"), self.module.__dict__)

    def run(self, kern: Kernel, args: tuple) -> tuple:
        """The kernel's outputs on ``args`` (NumPy's layout)."""
        out = getattr(self.module, kern.name)(*args)
        return out if isinstance(out, tuple) else (out,)


_CTYPES = {
    "size": ctypes.c_size_t,
    "ignore_index": ctypes.c_int64,
    "label_smoothing": ctypes.c_double,
    "option": ctypes.c_double,
    "switch": ctypes.c_int,
    "reduction": ctypes.c_int,
}
_DEFAULTS = {"ignore_index": -100, "label_smoothing": 0.0, "reduction": 1}  # PyTorch's; mean


def _variant(desc, args):
    """The emitted function that takes ``args``: the labels variant for integer labels."""
    labels = any(np.asarray(a).dtype.kind in "iu" for a in args)
    return next(v for v in desc.variants if (v.target == "labels") == labels)


def _sizes(kern, args) -> dict:
    x = np.asarray(args[0])
    if kern.family == "elementwise":
        return {"count": x.size}
    return {"n": x.shape[0], "k": x.shape[1]}


class CSnippets:
    """Each kernel's `symce emit` C snippet, compiled alone into a shared library and called
    through ctypes, its parameters laid out from the kernel's description (symce.describe)."""

    name = "c"

    def __init__(self, workdir: Path):
        self.cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
        self.workdir = workdir
        if self.cc is None:
            raise RuntimeError("no C compiler (gcc or $CC) on the PATH")

    def _function(self, kern: Kernel, sfx: str, soft: bool):
        from .snippets import snippet

        src = self.workdir / f"{kern.name}_{sfx}.c"
        lib = src.with_suffix(".so")
        if not lib.exists():
            src.write_text(snippet("c", kern.name, "float32" if sfx == "f32" else "float64"))
            subprocess.run(
                [self.cc, "-std=c99", "-O2", "-shared", "-fPIC", str(src), "-o", str(lib), "-lm"],
                check=True,
                capture_output=True,
            )
        return getattr(ctypes.CDLL(str(lib)), f"symce_{kern.name}{'_soft' if soft else ''}_{sfx}")

    def run(self, kern: Kernel, args: tuple) -> tuple:
        """The kernel's outputs on ``args`` (NumPy's layout), with PyTorch's default options."""
        from .describe import describe

        variant = _variant(describe(kern), args)
        dtype = np.asarray(args[0]).dtype
        sfx = "f32" if dtype == np.float32 else "f64"
        fn = self._function(kern, sfx, variant.soft)
        sizes = _sizes(kern, args)
        data = iter(args)
        keep, call, outs = [], [], []
        for p in variant.params:
            if p.role == "size":
                call.append(sizes[p.name])
            elif p.role in ("in", "target", "labels"):
                kind = np.int64 if p.role == "labels" else dtype
                a = np.ascontiguousarray(np.asarray(next(data), dtype=kind))
                keep.append(a)
                call.append(a.ctypes.data_as(ctypes.c_void_p))
            elif p.role == "out":
                reduced = p.name == "loss"  # the default reduction, mean: one number
                shape = () if reduced else tuple(sizes[d] for d in p.dims)
                out = np.zeros(max(1, int(np.prod(shape))), dtype=dtype)
                outs.append((out, shape))
                call.append(out.ctypes.data_as(ctypes.c_void_p))
            elif p.role in ("option", "switch"):  # a defined loss's option: its default
                default = next(o.default for o in kern.scalars if o.name == p.name)
                call.append(int(default) if p.role == "switch" else default)
            else:  # an option: NULL weights, PyTorch's defaults
                call.append(_DEFAULTS.get(p.role))
        fn.argtypes = [_CTYPES.get(p.role, ctypes.c_void_p) for p in variant.params]
        status = fn(*call)
        if status != 0:
            raise RuntimeError(f"{fn.__name__} returned {status}")
        return tuple(out[: int(np.prod(shape))].reshape(shape) for out, shape in outs)


class OctaveFiles:
    """Each kernel's MATLAB file alone in a folder, run by octave-cli: the inputs in MATLAB's
    layout (a column per sample, 1-based labels) and the outputs back in NumPy's."""

    name = "matlab"

    def __init__(self, workdir: Path):
        self.octave = shutil.which("octave-cli") or shutil.which("octave")
        self.workdir = workdir
        if self.octave is None:
            raise RuntimeError("no octave-cli on the PATH")

    def run(self, kern: Kernel, args: tuple) -> tuple:
        """The kernel's outputs on ``args`` (NumPy's layout), with the default options."""
        from .snippets import snippet

        folder = self.workdir / f"m_{kern.name}"
        folder.mkdir(exist_ok=True)
        (folder / f"symce_{kern.name}.m").write_text(snippet("matlab", kern.name))
        dtype = np.asarray(args[0]).dtype
        cls = "single" if dtype == np.float32 else "double"
        loads = []
        for index, a in enumerate(args):
            a = np.asarray(a)
            if a.dtype.kind in "iu":  # labels: 1-based, a row
                value, cast = (a + 1).reshape(1, -1), "double"
            else:  # a column per sample (an elementwise input: one column)
                value, cast = (a.T if a.ndim == 2 else a.reshape(-1, 1)), cls
            np.savetxt(folder / f"a{index}.txt", np.atleast_2d(value.astype(np.float64)), "%.17g")
            loads.append(f"{cast}(load('a{index}.txt'))")
        names = [f"o{i}" for i in range(len(kern.outputs))]
        script = f"[{', '.join(names)}] = symce_{kern.name}({', '.join(loads)}); " + " ".join(
            f"printf('%d ', ndims({o}), size({o})); printf('%.17g ', double({o})(:)); "
            "printf('\\n');"
            for o in names
        )
        res = subprocess.run(
            [self.octave, "--no-gui", "--quiet", "--norc", "--eval", script],
            cwd=folder,
            check=True,
            capture_output=True,
            text=True,
        )
        return tuple(
            self._numpy(kern, out, line, args, dtype)
            for out, line in zip(kern.outputs, res.stdout.strip().splitlines())
        )

    @staticmethod
    def _numpy(kern: Kernel, out, line: str, args: tuple, dtype) -> np.ndarray:
        values = [float(v) for v in line.split()]
        ndims = int(values[0])
        shape = tuple(int(v) for v in values[1 : 1 + ndims])
        a = np.array(values[1 + ndims :], dtype=dtype).reshape(shape, order="F")
        if kern.family == "elementwise":
            return a.reshape(np.shape(args[0]))
        if out.name == "loss" or a.size == 1 and out.shape in ("()", "() or (N,)"):
            return a.reshape(())
        if a.ndim == 3:  # the Jacobian, K x K x N
            return np.moveaxis(a, 2, 0)
        if out.shape == "(N,)":  # a value per row: 1 x N
            return a.ravel()
        return a.T


def languages(wanted: tuple | None, workdir: Path) -> tuple:
    """The language runners whose toolchain is present (of ``wanted``, default all), and the
    reason each missing one is skipped."""
    made, missing = [], {}
    for name, make in (("numpy", NumPyModule), ("c", CSnippets), ("matlab", OctaveFiles)):
        if wanted and name not in wanted:
            continue
        try:
            made.append(make() if name == "numpy" else make(workdir))
        except RuntimeError as err:
            missing[name] = str(err)
    return tuple(made), missing


def check(
    names: list, wanted: tuple | None = None, progress: Callable[[str], None] | None = None
) -> list:
    """Rows (kernel, language, dtype, error, bound, unit, passed) for each kernel in ``names``."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="symce_check_") as tmp:
        langs, missing = languages(wanted, Path(tmp))
        for lang, why in missing.items():
            if progress is not None:
                progress(f"{lang}: skipped ({why})")
        for name in names:
            kern = registry()[name]
            if progress is not None:
                progress(f"checking {name}")
            for dtype in DTYPES:
                args = inputs(name, dtype)
                ref = R.evaluate(name, *args, form="raw")
                refs = ref if isinstance(ref, tuple) else (ref,)
                for lang in langs:
                    got = lang.run(kern, args)
                    worst, unit = 0.0, "ulp" if kern.family == "elementwise" else "rel"
                    for g, r in zip(got, refs):
                        err = _error(kern, np.asarray(g).astype(dtype), r)
                        worst = max(worst, err)
                    bound = MAX_ULP if unit == "ulp" else TOL[dtype]
                    rows.append((name, lang.name, dtype, worst, bound, unit, worst <= bound))
    return rows


def table(rows: list) -> str:
    """The rows as a short text table: one line per kernel, a column per language and dtype."""
    cols = sorted(
        {(r[1], r[2]) for r in rows}, key=lambda c: (("numpy", "c", "matlab").index(c[0]), c[1])
    )
    width = max(len(r[0]) for r in rows) + 2 if rows else 8
    head = f"{'kernel':{width}s}" + "".join(f"{lang + ' ' + dt[5:]:>14s}" for lang, dt in cols)
    lines = [head]
    by = {(r[0], r[1], r[2]): r for r in rows}
    for name in dict.fromkeys(r[0] for r in rows):
        cells = []
        for lang, dt in cols:
            r = by.get((name, lang, dt))
            if r is None:
                cells.append(f"{'-':>14s}")
            else:
                mark = "ok" if r[6] else "FAIL"
                value = f"{r[3]:.2f}ulp" if r[5] == "ulp" else f"{r[3]:.1e}"
                cells.append(f"{value + ' ' + mark:>14s}")
        lines.append(f"{name:{width}s}" + "".join(cells))
    return "\n".join(lines)


def main(
    names: list, wanted: tuple | None = None, progress: Callable[[str], None] | None = None
) -> int:
    """Check ``names``, print the table; 0 when every check passed, 1 otherwise."""
    rows = check(names, wanted, progress)
    print(table(rows))
    failed = [r for r in rows if r[6] is False]
    print(
        f"bounds: elementwise {MAX_ULP:g} ulp; others normwise {TOL['float32']:g} (float32), "
        f"{TOL['float64']:g} (float64)"
    )
    if failed:
        print(f"{len(failed)} checks FAILED", flush=True)
        return 1
    print(f"all {sum(r[6] is True for r in rows)} checks passed")
    return 0
