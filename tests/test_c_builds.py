"""The generated C in every build users make, and from C++.

* ``c_build.MATRIX``: gcc and clang, each at -O2, -O3 -march=native and -O3 -march=native
  -ffast-math, compile symce.c without a warning under -std=c99 -Wall -Wextra -Wpedantic
  -Wdouble-promotion -Werror;
* the C driver (tests/c/driver.c: every function with bad and extreme input, both dtypes) passes
  against each of those builds (compiled with the build's flags, linked without them: see
  tests/c_build.py);
* symce.h compiles as C++ (g++ and clang++, -std=c++11 -Wall -Wextra -Wpedantic -Werror), and a
  C++ program links against the C object and gets the C results (tests/c/caller.cpp).

The ctypes bad-input tests run on every build through the ``clib_each`` fixture
(test_c_badinput.py), the special values on every build as targets of test_kernels.py.  A missing
clang skips (SYMCE_REQUIRE_CLANG=1 makes it a failure, as in CI).
"""

from __future__ import annotations

import subprocess

import pytest

import c_build


@pytest.fixture(scope="module", autouse=True)
def _start():
    c_build.prefetch(c_build.MATRIX, drivers=True)


@pytest.mark.parametrize("build", c_build.MATRIX)
def test_compiles_without_warnings(build):
    assert c_build.object_file(build).is_file()


@pytest.mark.parametrize("compiler", list(c_build.COMPILERS))
def test_compiles_by_itself_without_warnings(compiler):
    """symce.c as the file compiled (clang warns of an unused static inline function only there)."""
    assert c_build.standalone_object(compiler).is_file()


@pytest.mark.parametrize("build", c_build.MATRIX)
def test_driver_bad_and_extreme_input(build):
    proc = subprocess.run(
        [str(c_build.driver(build=build))], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and ", 0 failures" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("compiler", list(c_build.COMPILERS))
def test_cxx_caller_links_and_agrees(compiler):
    """symce.h from C++: SYMCE_RESTRICT is a spelling C++ accepts, extern "C" links the C
    symbols; the README's example gives its numbers, and a bad label its code."""
    proc = subprocess.run(
        [str(c_build.cxx_caller(compiler))], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and ", 0 failures" in proc.stdout, proc.stdout + proc.stderr
