"""Build generated/c into a shared library and call it from Python (ctypes); no conftest needed.

``library()`` compiles ``generated/c/symce.c`` once per process with gcc (``-std=c99 -Wall
-Wextra -Wpedantic -Werror``) into a temporary folder and returns a :class:`CLib`.  With
``SYMCE_C_SANITIZE=1`` it builds with ``-fsanitize=address,undefined -fno-sanitize-recover=all``
(the Python process must then run with libasan preloaded: see :func:`sanitizer_env`);
``SYMCE_C_LIBRARY=/path/to/lib.so`` loads a library built elsewhere instead.

``CLib.call(kernel, dtype, *inputs, **options)`` takes NumPy arrays in NumPy's layout (2-D
``(N, K)`` for the row and BCE families, labels as int64 or a float target), allocates every
output with guard elements past its end filled with a sentinel, calls the C function, checks the
guard is intact, and returns the outputs (raising :class:`CError` with the code on failure).  The
C signatures come from :func:`symce.lang.c_backend.functions`.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from symce.lang import c_backend

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "generated" / "c"
TESTS_C = Path(__file__).resolve().parent / "c"
STRICT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g",
                  "-fno-omit-frame-pointer"]
GUARD = 8                       # elements past the end of every output
SENTINEL = -12345.0             # what the guard (and, for error tests, the outputs) hold
REDUCTION = {"none": 0, "mean": 1, "sum": 2}
DTYPE_SFX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


class CError(Exception):
    """A C kernel returned a nonzero code."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def gcc():
    """Path of gcc, or skip (fail when SYMCE_REQUIRE_GCC=1)."""
    path = shutil.which("gcc")
    if path is None:
        if os.environ.get("SYMCE_REQUIRE_GCC") == "1":
            pytest.fail("gcc not found on PATH, and SYMCE_REQUIRE_GCC=1 requires it")
        pytest.skip("gcc not found on PATH (set SYMCE_REQUIRE_GCC=1 to make this a failure)")
    return path


_TMP = []


def build_dir() -> Path:
    if not _TMP:
        _TMP.append(Path(tempfile.mkdtemp(prefix="symce_c_")))
        atexit.register(shutil.rmtree, str(_TMP[0]), True)
    return _TMP[0]


def sanitize_requested() -> bool:
    return os.environ.get("SYMCE_C_SANITIZE") == "1"


BUILDS = {  # object-file flavours of generated/c/symce.c: extra flags after STRICT_FLAGS
    "plain": ["-O2", "-fPIC"],
    "asan": ["-O1", "-fPIC", *SANITIZE_FLAGS],
    "native": ["-O3", "-march=native", "-fPIC"],
}


def run_checked(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0 or proc.stderr:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


@lru_cache(maxsize=None)
def object_file(flavour: str = "plain") -> Path:
    """symce.c compiled with the strict flags (any warning is an error) and BUILDS[flavour]."""
    out = build_dir() / f"symce_{flavour}.o"
    run_checked([gcc(), *STRICT_FLAGS, *BUILDS[flavour], "-c", C_DIR / "symce.c", "-o", out])
    return out


@lru_cache(maxsize=None)
def shared_library(sanitize: bool = False, flavour: str | None = None) -> Path:
    """The library from object_file(flavour): "plain" (-O2), "asan", or "native" (-O3
    -march=native: FMA where the machine has it)."""
    flavour = flavour or ("asan" if sanitize else "plain")
    out = build_dir() / f"libsymce_{flavour}.so"
    run_checked([gcc(), "-shared", *(SANITIZE_FLAGS if sanitize else []), object_file(flavour),
                 "-o", out, "-lm"])
    return out


@lru_cache(maxsize=None)
def driver(sanitize: bool = False) -> Path:
    """The C driver (tests/c/driver.c) over the bad-input and extreme-input cases."""
    flavour = "asan" if sanitize else "plain"
    out = build_dir() / f"driver_{flavour}"
    run_checked([gcc(), *STRICT_FLAGS, *BUILDS[flavour], "-g", "-I", C_DIR, TESTS_C / "driver.c",
                 object_file(flavour), "-o", out, "-lm"])
    return out


def sanitizer_env(library_path=None) -> dict:
    """Environment for a Python subprocess that loads the sanitized library through ctypes
    (``library_path``: a prebuilt one, passed on in SYMCE_C_LIBRARY)."""
    libasan = subprocess.run([gcc(), "-print-file-name=libasan.so"], capture_output=True,
                             text=True, check=True).stdout.strip()
    env = dict(os.environ, SYMCE_C_SANITIZE="1", LD_PRELOAD=libasan,
               ASAN_OPTIONS="detect_leaks=0:halt_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    if library_path is not None:
        env["SYMCE_C_LIBRARY"] = str(library_path)
    return env


# ----------------------------------------------------------------------------------------------
def _ptr(a):
    return ctypes.c_void_p(a.ctypes.data)


class CLib:
    """The compiled library, with NumPy-friendly calls."""

    def __init__(self, path: Path):
        self.path = path
        self.dll = ctypes.CDLL(str(path))
        self.dll.symce_strerror.restype = ctypes.c_char_p
        self.dll.symce_strerror.argtypes = [ctypes.c_int]
        self.functions = {}
        for fn in c_backend.functions():
            cfun = getattr(self.dll, fn.cname)
            cfun.restype = ctypes.c_int
            real = ctypes.c_float if fn.dtype == "f32" else ctypes.c_double
            cfun.argtypes = [{"size": ctypes.c_size_t, "ignore_index": ctypes.c_int64,
                              "label_smoothing": real, "reduction": ctypes.c_int}
                             .get(p.role, ctypes.c_void_p) for p in fn.params]
            self.functions[fn.cname] = (fn, cfun)

    def strerror(self, code) -> str:
        return self.dll.symce_strerror(code).decode()

    # -- lookup ------------------------------------------------------------------------------
    def function(self, kernel, dtype, soft=False):
        sfx = DTYPE_SFX[np.dtype(dtype)]
        return self.functions[f"symce_{kernel}{'_soft' if soft else ''}_{sfx}"]

    @staticmethod
    def output_shapes(fn, shapes, reduction):
        """{output name: shape} for inputs of the given shapes ({'n': .., 'k': .., 'count': ..})."""
        kern = fn.kernel
        fam = c_backend.kr.kernel(kern).family
        n, k = shapes.get("n"), shapes.get("k")
        out = {}
        for p in fn.params:
            if p.role != "out":
                continue
            if fam == "elementwise":
                out[p.name] = (shapes["count"],)
            elif fam == "rowwise":
                out[p.name] = {"logsumexp": (n,), "softmax_jacobian": (n, k, k)}.get(kern, (n, k))
            elif p.name == "loss":
                none = reduction == "none"
                out[p.name] = ((n,) if fam != "bce" else (n, k)) if none else ()
            else:
                out[p.name] = (n, k)
        return out

    # -- calls ---------------------------------------------------------------------------------
    def raw(self, cname, args):
        """Call by C name with ctypes-ready arguments; returns the code."""
        return self.functions[cname][1](*args)

    def call(self, kernel, dtype, *inputs, weight=None, ignore_index=-100, label_smoothing=0.0,
             pos_weight=None, reduction="mean", fill=SENTINEL, check=True, sizes=None,
             null=()):
        """Run ``kernel`` in ``dtype`` on NumPy inputs; returns the output array(s).

        ``sizes`` overrides n/k/count; ``null`` names pointer parameters to pass as NULL;
        ``check=False`` returns ``(code, outputs)`` instead of raising.
        """
        dtype = np.dtype(dtype)
        fam = c_backend.kr.kernel(kernel).family
        soft = fam in ("ce_probs", "ce_logits") and np.asarray(inputs[1]).dtype.kind == "f"
        fn, cfun = self.function(kernel, dtype, soft)
        x = np.asarray(inputs[0], dtype=dtype)
        if fam == "elementwise":
            shapes = {"count": x.size}
        else:
            x2 = x.reshape(int(np.prod(x.shape[:-1])), x.shape[-1]) if x.ndim else x.reshape(1, 1)
            shapes = {"n": x2.shape[0], "k": x2.shape[1]}
        c_sizes = dict(shapes, **(sizes or {}))   # what C is told (may lie, for error tests)
        shapes_out = self.output_shapes(fn, shapes, reduction if reduction in REDUCTION else "none")
        if fam == "elementwise":
            shapes_out = {name: x.shape for name in shapes_out}
        outs = {name: np.full(int(np.prod(shape)) + GUARD, fill, dtype=dtype)
                for name, shape in shapes_out.items()}
        keep = []  # keep every buffer alive over the call

        def buf(a, dt):
            a = np.ascontiguousarray(np.asarray(a, dtype=dt).ravel())
            if a.size == 0:  # a valid non-NULL pointer for empty inputs
                a = np.zeros(1, dtype=dt)
            keep.append(a)
            return _ptr(a)

        data_inputs = iter(inputs)
        args = []
        for p in fn.params:
            if p.role in ("in", "target", "labels"):
                a = next(data_inputs)
            if p.name in null:
                args.append(None)
            elif p.role == "size":
                args.append(c_sizes[p.name])
            elif p.role in ("in", "target"):
                args.append(buf(a, dtype))
            elif p.role == "labels":
                args.append(buf(a, np.int64))
            elif p.role == "weight":
                args.append(None if weight is None else buf(weight, dtype))
            elif p.role == "pos_weight":
                args.append(None if pos_weight is None else buf(pos_weight, dtype))
            elif p.role == "ignore_index":
                args.append(int(ignore_index))
            elif p.role == "label_smoothing":
                args.append(float(label_smoothing))
            elif p.role == "reduction":
                args.append(REDUCTION.get(reduction, reduction))
            elif p.role == "out":
                args.append(_ptr(outs[p.name]))
        code = cfun(*args)
        results = []
        for name, a in outs.items():
            size = int(np.prod(shapes_out[name]))
            if not np.array_equal(a[size:], np.full(GUARD, fill, dtype=dtype), equal_nan=True):
                raise AssertionError(f"{fn.cname} wrote past the end of {name}")
            results.append(a[:size].reshape(shapes_out[name]))
        if not check:
            return code, (results[0] if len(results) == 1 else tuple(results)), outs
        if code != 0:
            raise CError(code, self.strerror(code))
        results = [r[()] if r.shape == () else r for r in results]
        return results[0] if len(results) == 1 else tuple(results)


@lru_cache(maxsize=None)
def _library(sanitize: bool) -> CLib:
    return CLib(shared_library(sanitize))


def library() -> CLib:
    """The compiled library, built once per process: sanitized when SYMCE_C_SANITIZE=1, or the
    prebuilt one named by SYMCE_C_LIBRARY."""
    prebuilt = os.environ.get("SYMCE_C_LIBRARY")
    if prebuilt:
        return _prebuilt(prebuilt)
    return _library(sanitize_requested())


@lru_cache(maxsize=None)
def _prebuilt(path: str) -> CLib:
    return CLib(Path(path))


@pytest.fixture(scope="session")
def clib():
    """pytest fixture: ``from c_build import clib`` in a test module."""
    return library()
