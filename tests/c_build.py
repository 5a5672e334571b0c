"""Build generated/c with gcc and clang and call it from Python (ctypes); no conftest needed.

Builds.  ``MATRIX`` is every (compiler, flags) build that users make: gcc and clang, each at
``-O2``, ``-O3 -march=native`` and ``-O3 -march=native -ffast-math``, always with the strict
warnings ``STRICT_FLAGS`` (any warning is an error).  A build compiles ``tests/c/hooks.c``, which
is ``generated/c/symce.c`` itself plus exported wrappers of a few static helpers (for
test_c_exp.py), into one object (``standalone_object`` compiles symce.c by itself, for the
warnings a compiler gives only in the file it compiles); the shared library, the C driver
(``tests/c/driver.c``) and the C++ caller (``tests/c/caller.cpp``) are linked from it *without*
the build's flags: a program linked with -ffast-math switches the whole process to
flush-to-zero (crtfastmath.o).  "asan" is
gcc with ``-fsanitize=address,undefined -fno-sanitize-recover=all`` (the Python process must
then run with libasan preloaded: see :func:`sanitizer_env`); "no-malloc" is gcc -O2 with
``-DSYMCE_NO_MALLOC`` (rows longer than SYMCE_STASH recompute their exponentials).

Every compiler output is cached in ``build/c-cache`` (or ``$SYMCE_C_CACHE``), named by a hash
of the compiler's version, the command and the bytes of every input, so an unchanged symce.c is
compiled once, not once per run; :func:`prefetch` compiles the objects in a thread pool (one
worker per core, at least two) while the tests run.  A missing gcc skips (fails with
``SYMCE_REQUIRE_GCC=1``), a missing clang skips (fails with ``SYMCE_REQUIRE_CLANG=1``, as CI
sets).

``library()`` is the gcc -O2 build (sanitized when ``SYMCE_C_SANITIZE=1``; or the prebuilt one
named by ``SYMCE_C_LIBRARY``); the fixture ``clib`` returns it, and the fixture ``clib_each``
returns each build of the matrix in turn (only the environment's library when either variable
is set).  ``CLib.call(kernel, dtype, *inputs, **options)`` takes NumPy arrays in NumPy's layout
(2-D ``(N, K)`` for the row and BCE families, labels as int64 or a float target), allocates
every output with guard elements past its end filled with a sentinel, calls the C function,
checks the guard is intact, and returns the outputs (raising :class:`CError` with the code on
failure).  The C signatures come from :func:`symce.lang.c_backend.functions`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from symce.lang import c_backend

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "generated" / "c"
TESTS_C = Path(__file__).resolve().parent / "c"
STRICT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wdouble-promotion", "-Werror"]
CXX_FLAGS = ["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
SANITIZE_FLAGS = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-g",
    "-fno-omit-frame-pointer",
]
GUARD = 8  # elements past the end of every output
SENTINEL = -12345.0  # what the guard (and, for error tests, the outputs) hold
REDUCTION = {"none": 0, "mean": 1, "sum": 2, "batchmean": 3}
DTYPE_SFX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

COMPILERS = {"gcc": "g++", "clang": "clang++"}  # C compiler -> the C++ compiler beside it
REQUIRE = {
    "gcc": "SYMCE_REQUIRE_GCC",
    "g++": "SYMCE_REQUIRE_GCC",
    "clang": "SYMCE_REQUIRE_CLANG",
    "clang++": "SYMCE_REQUIRE_CLANG",
}
LEVELS = {
    "O2": ["-O2"],
    "native": ["-O3", "-march=native"],
    "fast-math": ["-O3", "-march=native", "-ffast-math"],
}
MATRIX = tuple(f"{cc}-{level}" for cc in COMPILERS for level in LEVELS)
BUILDS = {f"{cc}-{level}": (cc, flags) for cc in COMPILERS for level, flags in LEVELS.items()}
BUILDS["asan"] = ("gcc", ["-O1", *SANITIZE_FLAGS])
BUILDS["no-malloc"] = ("gcc", ["-O2", "-DSYMCE_NO_MALLOC"])  # rows > SYMCE_STASH: e computed twice
ALIASES = {"plain": "gcc-O2", "native": "gcc-native"}  # the names of the first two builds
DEFAULT = "gcc-O2"


class CError(Exception):
    """A C kernel returned a nonzero code."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def tool(name: str) -> str:
    """Path of a compiler on PATH, or skip (fail when its SYMCE_REQUIRE_* variable is 1)."""
    path = shutil.which(name)
    if path is None:
        var = REQUIRE.get(name, "SYMCE_REQUIRE_" + name.upper())
        if os.environ.get(var) == "1":
            pytest.fail(f"{name} not found on PATH, and {var}=1 requires it")
        pytest.skip(f"{name} not found on PATH (install it, or set {var}=1 to make this a failure)")
    return path


def gcc():
    """Path of gcc, or skip (fail when SYMCE_REQUIRE_GCC=1)."""
    return tool("gcc")


_TMP = []


def build_dir() -> Path:
    """A temporary folder for this process (removed at exit)."""
    if not _TMP:
        _TMP.append(Path(tempfile.mkdtemp(prefix="symce_c_")))
        atexit.register(shutil.rmtree, str(_TMP[0]), True)
    return _TMP[0]


CACHE_KEEP = 300  # files; the least recently used beyond these are removed once per process
CACHE_IN_USE = 3600  # seconds: a file used this recently is never removed (another run may hold it)


_CACHE_LOCK = threading.Lock()


def cache_dir() -> Path:
    """The cache folder, pruned on the first call of the process (one thread prunes while the
    others wait; a file another process removes meanwhile is skipped, and a file used in the
    last hour is kept: pytest-xdist's workers and concurrent runs share the cache)."""
    with _CACHE_LOCK:
        return _pruned_cache_dir()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # pruned by another process meanwhile
        return 0.0


@cache
def _pruned_cache_dir() -> Path:
    path = Path(os.environ.get("SYMCE_C_CACHE") or ROOT / "build" / "c-cache")
    path.mkdir(parents=True, exist_ok=True)
    entries = sorted((p for p in path.iterdir() if p.suffix != ".lock"), key=_mtime, reverse=True)
    stale = time.time() - CACHE_IN_USE
    for old in entries[CACHE_KEEP:]:
        if _mtime(old) < stale:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".lock").unlink(missing_ok=True)
    return path


def sanitize_requested() -> bool:
    return os.environ.get("SYMCE_C_SANITIZE") == "1"


def run_checked(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0 or proc.stderr:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@cache
def _version(path: str) -> str:
    return subprocess.run([path, "--version"], capture_output=True, text=True).stdout


def cached(name: str, cmd: list, inputs, suffix: str = "") -> Path:
    """Run ``cmd + ["-o", output]`` unless its output is in the cache already; the output is
    named by a hash of the compiler's version (cmd[0]), the command and the bytes of ``inputs``
    (every file it reads).  Concurrent processes (pytest-xdist's workers) are safe: one compiles
    while the others wait on the output's lock file, and the output is written under a temporary
    name and renamed."""
    h = hashlib.sha256(_version(str(cmd[0])).encode())
    h.update("\0".join(map(str, cmd)).encode())
    for path in inputs:
        h.update(Path(path).read_bytes())
    out = cache_dir() / f"{name}-{h.hexdigest()[:20]}{suffix}"
    with file_lock(out.with_name(out.name + ".lock")):
        if out.exists():
            os.utime(out)  # recently used: kept by every pruning for the next hour
        else:
            tmp = out.with_name(f"{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                run_checked([*cmd, "-o", tmp])
                os.replace(tmp, out)
            finally:
                if tmp.exists():
                    tmp.unlink()
    return out


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock between processes (flock on ``path``, created if missing); threads of one
    process each open the file, so they exclude each other too."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- the builds ---------------------------------------------------------------------------------
_LOCK = threading.Lock()
_JOBS = {}
_POOL = []


def _submit(key, fn, *args):
    """A future for fn(*args), started once per key in the shared pool (leaf jobs only: a job
    never waits for another, so the pool cannot deadlock)."""
    with _LOCK:
        if key not in _JOBS:
            if not _POOL:
                _POOL.append(ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)))
                atexit.register(_POOL[0].shutdown, wait=False, cancel_futures=True)
            _JOBS[key] = _POOL[0].submit(fn, *args)
        return _JOBS[key]


def _resolve(build: str) -> str:
    build = ALIASES.get(build, build)
    if build not in BUILDS:
        raise KeyError(f"unknown build {build!r}: one of {sorted(BUILDS)}")
    return build


def _compile_object(build: str, path: str) -> Path:
    _, flags = BUILDS[build]
    src = TESTS_C / "hooks.c"
    return cached(
        f"symce-{build}",
        [path, *STRICT_FLAGS, *flags, "-fPIC", "-I", C_DIR, "-c", src],
        [src, C_DIR / "symce.c", C_DIR / "symce.h"],
        ".o",
    )


def _compile_driver(compiler: str, path: str, sanitize: bool) -> Path:
    src = TESTS_C / "driver.c"
    flags = ["-O1", *SANITIZE_FLAGS] if sanitize else ["-O1", "-g"]
    # the driver's checks promote floats freely: -Wdouble-promotion is for symce.c
    strict = [f for f in STRICT_FLAGS if f != "-Wdouble-promotion"]
    return cached(
        f"driver-{compiler}{'-asan' if sanitize else ''}",
        [path, *strict, *flags, "-I", C_DIR, "-c", src],
        [src, TESTS_C / "driver_body.h", C_DIR / "symce.h"],
        ".o",
    )


def prefetch(builds=MATRIX, drivers=False):
    """Start compiling the objects of ``builds`` (and the drivers) in the background; compilers
    that are missing are left out (the tests that need them skip)."""
    for build in builds:
        build = _resolve(build)
        cc = BUILDS[build][0]
        path = shutil.which(cc)
        if path is not None:
            _submit(("obj", build), _compile_object, build, path)
            if drivers:
                _submit(("driver", cc, build == "asan"), _compile_driver, cc, path, build == "asan")


def object_file(build: str = DEFAULT) -> Path:
    """The object of one build (``MATRIX``, "asan", or the aliases "plain" and "native"): symce.c
    under STRICT_FLAGS and the build's flags.  Raises AssertionError with the compiler's output."""
    build = _resolve(build)
    path = tool(BUILDS[build][0])
    return _submit(("obj", build), _compile_object, build, path).result()


def standalone_object(compiler: str) -> Path:
    """generated/c/symce.c compiled by itself at -O0 under STRICT_FLAGS: the warnings that a
    compiler gives only for the file it compiles (clang: an unused static inline function), which
    the builds, compiling it through tests/c/hooks.c, would not show."""
    src = C_DIR / "symce.c"
    return cached(
        f"standalone-{compiler}",
        [tool(compiler), *STRICT_FLAGS, "-O0", "-c", src],
        [src, C_DIR / "symce.h"],
        ".o",
    )


def shared_library(sanitize: bool = False, flavour: str | None = None) -> Path:
    """The shared library of build ``flavour`` (default gcc -O2, or "asan" when ``sanitize``),
    linked without the build's flags."""
    build = _resolve(flavour or ("asan" if sanitize else DEFAULT))
    cc = tool(BUILDS[build][0])
    obj = object_file(build)
    return cached(
        f"libsymce-{build}",
        [cc, "-shared", *(SANITIZE_FLAGS if build == "asan" else []), obj, "-lm"],
        [obj],
        ".so",
    )


def driver(sanitize: bool = False, build: str | None = None) -> Path:
    """The C driver (tests/c/driver.c: every function with bad and extreme input), compiled at
    -O1 without the build's flags and linked with the build's object."""
    build = _resolve(build or ("asan" if sanitize else DEFAULT))
    cc = BUILDS[build][0]
    path = tool(cc)
    obj = object_file(build)
    drv = _submit(
        ("driver", cc, build == "asan"), _compile_driver, cc, path, build == "asan"
    ).result()
    return cached(
        f"driver-{build}",
        [path, *(SANITIZE_FLAGS if build == "asan" else []), drv, obj, "-lm"],
        [drv, obj],
    )


def cxx_caller(compiler: str) -> Path:
    """tests/c/caller.cpp compiled by the C++ compiler beside ``compiler`` and linked with that
    compiler's -O2 object."""
    cxx = tool(COMPILERS[compiler])
    obj = object_file(f"{compiler}-O2")
    src = TESTS_C / "caller.cpp"
    caller = cached(
        f"caller-{compiler}",
        [cxx, *CXX_FLAGS, "-O1", "-I", C_DIR, "-c", src],
        [src, C_DIR / "symce.h"],
        ".o",
    )
    return cached(f"caller-{compiler}", [cxx, caller, obj, "-lm"], [caller, obj])


def sanitizer_env(library_path=None) -> dict:
    """Environment for a Python subprocess that loads the sanitized library through ctypes
    (``library_path``: a prebuilt one, passed on in SYMCE_C_LIBRARY)."""
    libasan = subprocess.run(
        [gcc(), "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = dict(
        os.environ,
        SYMCE_C_SANITIZE="1",
        LD_PRELOAD=libasan,
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
    )
    if library_path is not None:
        env["SYMCE_C_LIBRARY"] = str(library_path)
    return env


# ----------------------------------------------------------------------------------------------
def _ptr(a):
    return ctypes.c_void_p(a.ctypes.data)


class CLib:
    """The compiled library, with NumPy-friendly calls."""

    def __init__(self, path: Path, build: str = "env"):
        self.path = path
        self.build = build  # a key of BUILDS, or "env" for a library the environment named
        self.dll = ctypes.CDLL(str(path))
        if hasattr(self.dll, "symce_strerror"):  # (a library of `symce emit` snippets has none)
            self.dll.symce_strerror.restype = ctypes.c_char_p
            self.dll.symce_strerror.argtypes = [ctypes.c_int]
        self.functions = {}
        for fn in c_backend.functions():
            if not hasattr(self.dll, fn.cname):  # the snippets' library holds those emitted
                continue
            cfun = getattr(self.dll, fn.cname)
            cfun.restype = ctypes.c_int
            cfun.argtypes = [
                {
                    "size": ctypes.c_size_t,
                    "ignore_index": ctypes.c_int64,
                    "label_smoothing": ctypes.c_double,
                    "option": ctypes.c_double,
                    "switch": ctypes.c_int,
                    "reduction": ctypes.c_int,
                }.get(p.role, ctypes.c_void_p)
                for p in fn.params
            ]
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

    def call(
        self,
        kernel,
        dtype,
        *inputs,
        weight=None,
        ignore_index=-100,
        label_smoothing=0.0,
        pos_weight=None,
        reduction="mean",
        fill=SENTINEL,
        check=True,
        sizes=None,
        null=(),
        **declared,
    ):
        """Run ``kernel`` in ``dtype`` on NumPy inputs; returns the output array(s).

        ``sizes`` overrides n/k/count; ``null`` names pointer parameters to pass as NULL;
        ``check=False`` returns ``(code, outputs)`` instead of raising; ``declared``: a defined
        loss's options (symce.define_loss) by name, their defaults otherwise.
        """
        dtype = np.dtype(dtype)
        fam = c_backend.kr.kernel(kernel).family
        unknown = set(declared) - {o.name for o in c_backend.kr.kernel(kernel).scalars}
        if unknown:
            raise TypeError(f"{kernel}: unknown options {sorted(unknown)}")
        soft = fam in ("ce_probs", "ce_logits") and np.asarray(inputs[1]).dtype.kind == "f"
        fn, cfun = self.function(kernel, dtype, soft)
        x = np.asarray(inputs[0], dtype=dtype)
        if fam == "elementwise":
            shapes = {"count": x.size}
        elif "batchmean" in c_backend.kr.kernel(kernel).reductions and x.ndim:
            # batchmean divides by n: the samples, NumPy's first axis (as PyTorch's input.size(0))
            shapes = {"n": x.shape[0], "k": int(np.prod(x.shape[1:]))}
        else:
            x2 = x.reshape(int(np.prod(x.shape[:-1])), x.shape[-1]) if x.ndim else x.reshape(1, 1)
            shapes = {"n": x2.shape[0], "k": x2.shape[1]}
        c_sizes = dict(shapes, **(sizes or {}))  # what C is told (may lie, for error tests)
        shapes_out = self.output_shapes(fn, shapes, reduction if reduction in REDUCTION else "none")
        if fam == "elementwise":
            shapes_out = {name: x.shape for name in shapes_out}
        outs = {
            name: np.full(int(np.prod(shape)) + GUARD, fill, dtype=dtype)
            for name, shape in shapes_out.items()
        }
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
            elif p.role in ("option", "switch"):
                default = {o.name: o.default for o in c_backend.kr.kernel(kernel).scalars}
                value = declared.get(p.name, default[p.name])
                args.append(int(value) if p.role == "switch" else float(value))
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


@cache
def _library(build: str) -> CLib:
    return CLib(shared_library(flavour=build), build)


def environment_library() -> bool:
    """Whether the environment names the library (SYMCE_C_LIBRARY, or SYMCE_C_SANITIZE=1)."""
    return bool(os.environ.get("SYMCE_C_LIBRARY")) or sanitize_requested()


def library(build: str | None = None) -> CLib:
    """The compiled library of ``build`` (default: gcc -O2), loaded once per process; the
    environment's when SYMCE_C_LIBRARY names a prebuilt one or SYMCE_C_SANITIZE=1 asks for the
    sanitized build."""
    prebuilt = os.environ.get("SYMCE_C_LIBRARY")
    if prebuilt:
        return _prebuilt(prebuilt)
    if sanitize_requested():
        return _library("asan")
    return _library(_resolve(build or DEFAULT))


@cache
def _prebuilt(path: str) -> CLib:
    return CLib(Path(path))


@pytest.fixture(scope="session")
def clib():
    """pytest fixture: ``from c_build import clib`` in a test module."""
    return library()


EACH = ("env",) if environment_library() else MATRIX


FAST_MATH = ("env",) if environment_library() else (DEFAULT, "gcc-fast-math", "clang-fast-math")


@pytest.fixture(scope="session", params=FAST_MATH)
def clib_fast_math(request):
    """pytest fixture: the default build, then the two -ffast-math builds (the environment's
    library alone when it names one); for the accuracy bounds, which hold under -ffast-math too."""
    if request.param != "env" and request.param != DEFAULT:
        prefetch()
    return library(None if request.param == "env" else request.param)


@pytest.fixture(scope="session", params=EACH)
def clib_each(request):
    """pytest fixture: the library of each build of MATRIX in turn (the environment's library
    alone when it names one); for the bad-input and extreme-input tests."""
    if request.param != "env":
        prefetch()
    return library(None if request.param == "env" else request.param)
