"""The generated C under AddressSanitizer + UBSan, and valgrind (the strict-warning builds with
gcc and clang are in test_c_builds.py).

* the C driver (tests/c/driver.c: every function with bad and extreme input, exact-size heap
  buffers) passes when built with -fsanitize=address,undefined -fno-sanitize-recover=all, and
  under valgrind --error-exitcode=1 (skipped without valgrind unless SYMCE_REQUIRE_VALGRIND=1);
* the ctypes bad-input and stability tests pass against a sanitized build of the library
  (a Python subprocess with SYMCE_C_SANITIZE=1 and libasan preloaded), the special values of
  test_kernels.py among them (its C calls only).

The builds and runs start together (two at a time) when the module's first test asks for them.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import c_build
from c_build import ROOT
from support import toolchain

SUBSUITE = [
    "tests/test_c_badinput.py",
    "tests/test_c_kernels.py",
    "tests/test_kernels.py",
    "-k",
    "(badinput or stability or nan_in or empty or single or ignored or seed or special"
    " or longer_than or chunk_by_chunk) and not (test_kernels and (numpy or matlab))",
]
SUBPROCESS_CHECK = (
    "import sys, c_build, pytest; "
    "assert c_build.library().path.name.startswith('libsymce-asan-'), c_build.library().path; "
    "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1:]]))"
)


def _asan_python_suite():
    env = c_build.sanitizer_env(c_build.shared_library(sanitize=True))
    env["PYTHONPATH"] = str(ROOT / "tests")
    return subprocess.run(
        [sys.executable, "-c", SUBPROCESS_CHECK, *SUBSUITE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _driver_asan_run():
    exe = c_build.driver(sanitize=True)
    env = dict(c_build.sanitizer_env(), ASAN_OPTIONS="detect_leaks=1:halt_on_error=1")
    env.pop("LD_PRELOAD")  # the driver links the sanitizers itself
    return subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def jobs():
    """Start every build and run; two workers (the sanitized object is built once, first)."""
    c_build.gcc()
    c_build.object_file("asan")
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {  # the longest first
        "asan_python": pool.submit(_asan_python_suite),
        "driver_asan": pool.submit(_driver_asan_run),
        "driver": pool.submit(c_build.driver, False),
    }
    yield futures
    pool.shutdown(wait=True)


def test_driver_under_address_and_undefined_sanitizers(jobs):
    proc = jobs["driver_asan"].result()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 failures" in proc.stdout and "runtime error" not in proc.stderr


def test_ctypes_suite_under_sanitizers(jobs):
    proc = jobs["asan_python"].result()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_driver_under_valgrind(jobs):
    valgrind = toolchain("valgrind", "SYMCE_REQUIRE_VALGRIND")
    exe = jobs["driver"].result()
    proc = subprocess.run(
        [
            valgrind,
            "-q",
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            str(exe),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 failures" in proc.stdout
