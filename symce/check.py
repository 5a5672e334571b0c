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

Languages: NumPy checks every kernel; C and MATLAB check the elementwise kernels (a defined
activation's), and report the other families as left to the test suite.
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
    if fam == "ce_probs":
        e = np.exp(z.astype(np.float64))
        return ((e / e.sum(axis=1, keepdims=True)).astype(dt), labels)
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

    def covers(self, kern: Kernel) -> bool:
        """Whether this language checks ``kern`` here: NumPy checks every kernel."""
        return True

    def run(self, kern: Kernel, args: tuple) -> tuple:
        """The kernel's outputs on ``args`` (NumPy's layout)."""
        out = getattr(self.module, kern.name)(*args)
        return out if isinstance(out, tuple) else (out,)


class _C:
    name = "c"

    def __init__(self, workdir: Path):
        self.cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
        self.workdir = workdir
        if self.cc is None:
            raise RuntimeError("no C compiler (gcc or $CC) on the PATH")

    def covers(self, kern) -> bool:
        return kern.family == "elementwise"

    def run(self, kern, args):
        from .snippets import snippet

        (x,) = args
        sfx = "f32" if x.dtype == np.float32 else "f64"
        src = self.workdir / f"{kern.name}_{sfx}.c"
        lib = src.with_suffix(".so")
        src.write_text(snippet("c", kern.name, "float32" if sfx == "f32" else "float64"))
        subprocess.run(
            [self.cc, "-std=c99", "-O2", "-shared", "-fPIC", str(src), "-o", str(lib), "-lm"],
            check=True,
            capture_output=True,
        )
        fn = getattr(ctypes.CDLL(str(lib)), f"symce_{kern.name}_{sfx}")
        x = np.ascontiguousarray(x)
        out = np.empty_like(x)
        status = fn(
            ctypes.c_size_t(x.size),
            x.ctypes.data_as(ctypes.c_void_p),
            out.ctypes.data_as(ctypes.c_void_p),
        )
        if status != 0:
            raise RuntimeError(f"symce_{kern.name}_{sfx} returned {status}")
        return (out,)


class _Matlab:
    name = "matlab"

    def __init__(self, workdir: Path):
        self.octave = shutil.which("octave-cli") or shutil.which("octave")
        self.workdir = workdir
        if self.octave is None:
            raise RuntimeError("no octave-cli on the PATH")

    def covers(self, kern) -> bool:
        return kern.family == "elementwise"

    def run(self, kern, args):
        from .snippets import snippet

        (x,) = args
        (self.workdir / f"symce_{kern.name}.m").write_text(snippet("matlab", kern.name))
        data = self.workdir / "x.txt"
        np.savetxt(data, x.astype(np.float64), fmt="%.17g")
        cls = "single" if x.dtype == np.float32 else "double"
        script = (
            f"x = {cls}(load('{data}')); y = symce_{kern.name}(x); printf('%.17g\\n', double(y));"
        )
        res = subprocess.run(
            [self.octave, "--no-gui", "--quiet", "--norc", "--eval", script],
            cwd=self.workdir,
            check=True,
            capture_output=True,
            text=True,
        )
        return (np.array([float(v) for v in res.stdout.split()], dtype=x.dtype),)


def languages(wanted: tuple | None, workdir: Path) -> tuple:
    """The language runners whose toolchain is present (of ``wanted``, default all), and the
    reason each missing one is skipped."""
    made, missing = [], {}
    for name, make in (("numpy", NumPyModule), ("c", _C), ("matlab", _Matlab)):
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
                    if not lang.covers(kern):
                        rows.append((name, lang.name, dtype, None, None, "", None))
                        continue
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
    head = f"{'kernel':34s}" + "".join(f"{lang + ' ' + dt[5:]:>14s}" for lang, dt in cols)
    lines = [head]
    by = {(r[0], r[1], r[2]): r for r in rows}
    for name in dict.fromkeys(r[0] for r in rows):
        cells = []
        for lang, dt in cols:
            r = by.get((name, lang, dt))
            if r is None or r[3] is None:
                cells.append(f"{'(make test)':>14s}")
            else:
                mark = "ok" if r[6] else "FAIL"
                value = f"{r[3]:.2f}ulp" if r[5] == "ulp" else f"{r[3]:.1e}"
                cells.append(f"{value + ' ' + mark:>14s}")
        lines.append(f"{name:34s}" + "".join(cells))
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
