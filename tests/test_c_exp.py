"""symce's own exp and log1p in the generated C (symce/approx.py): in every build users make
(gcc and clang at -O2, -O3 -march=native with FMA, and -O3 -march=native -ffast-math: the
builds of tests/c_build.py, whose objects export the helpers) they give the numbers
symce.approx measured, bit for bit (-ffast-math included: symce.c turns reassociation off for
itself, and SYMCE_FMA fuses wherever the compiler has FMA, Clang included), stay within the bound
printed in symce.c against mpmath, and give 1 at 0, 0 at -inf and below the underflow threshold,
NaN at NaN.  The OpenMP build splits the rows over threads and gives the same numbers."""

from __future__ import annotations

import ctypes
import math
import os
import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest

from symce import approx

import c_build
from c_build import C_DIR, STRICT_FLAGS, build_dir, cached, gcc

HOOKS = (
    "exp_f64",
    "exp_f32",
    "exp_neg_f64",
    "exp_neg_f32",
    "log1p01_f32",
    "log1p_f32",
    "log1p01_f64",
)


def _library(build):
    """The build's object (tests/c/hooks.c: symce.c and wrappers of its helpers), as a shared
    library linked without the build's flags (see tests/c_build.py)."""
    lib = ctypes.CDLL(str(c_build.shared_library(flavour=build)))
    for name in HOOKS:
        getattr(lib, "symce_test_" + name).argtypes = [
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
    return lib


def _call(lib, name, x):
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    getattr(lib, name.replace("t_", "symce_test_", 1))(x.size, x.ctypes.data, out.ctypes.data)
    return out


def _args(seed=5):
    rng = np.random.default_rng(seed)
    x = np.concatenate(
        [
            rng.uniform(-745, 0, 3000),
            rng.uniform(-3, 0, 2000),
            -(10.0 ** rng.uniform(-300, 0, 500)),
            np.arange(-1070, 1) * math.log(2) / 2,
        ]
    )
    return x[x >= -745.0]


BUILDS = c_build.MATRIX


@pytest.mark.parametrize("build", BUILDS)
def test_exp_is_what_approx_measured(build):
    """Bit for bit the operations symce.approx.exp_double evaluates (FMA as the build has it)."""
    lib = _library(build)
    fma = bool(lib.symce_test_fast_fma())
    x = _args()
    for target in ("f64", "f32"):
        fit = approx.exp_approximation(target)
        scheme = approx.SCHEMES[target]
        want = np.array([approx.exp_double(v, fit.coefficients, scheme, fma) for v in x])
        for name in (f"t_exp_{target}", f"t_exp_neg_{target}"):  # x <= 0: the same numbers
            np.testing.assert_array_equal(_call(lib, name, x), want, err_msg=f"{build} {name}")
    fit = approx.log1p_approximation("f32")
    v = np.concatenate([np.linspace(0, 1, 2001), 10.0 ** -np.linspace(0, 300, 301)])
    want = np.array([approx.log1p_double(a, fit.coefficients, fma) for a in v])
    np.testing.assert_array_equal(_call(lib, "t_log1p01_f32", v), want)
    fit = approx.log1p_any_approximation("f32")
    s = np.concatenate([np.linspace(0, 20, 2001), 10.0 ** np.linspace(-300, 6, 601)])
    want = np.array([approx.log1p_any_double(a, fit.coefficients, fma) for a in s])
    np.testing.assert_array_equal(_call(lib, "t_log1p_f32", s), want)
    fit = approx.log1p01_approximation("f64")  # the remainder by FMA or by Dekker's product
    want = np.array([approx.log1p01_double(a, fit.coefficients, fma) for a in v])
    np.testing.assert_array_equal(_call(lib, "t_log1p01_f64", v), want, err_msg=build)


def _ulps_f64(got, x, fn=mpmath.exp):
    worst = 0.0
    with mpmath.workdps(40):
        for g, a in zip(got, x):
            ref = fn(mpmath.mpf(float(a)))
            r = float(ref)
            spacing = math.ulp(r) if r != 0 else 2.0**-1074
            worst = max(worst, float(abs(mpmath.mpf(float(g)) - ref) / spacing))
    return worst


@pytest.mark.parametrize("build", BUILDS)
def test_exp_within_its_printed_bound(build):
    lib = _library(build)
    x = _args(seed=9)[::12]
    # double: within an ULP (the comment in symce.c prints the measured figure), -ffast-math
    # included (symce.c turns reassociation off for itself)
    assert _ulps_f64(_call(lib, "t_exp_f64", x), x) <= 1.0
    text = (C_DIR / "symce.c").read_text()
    fit = approx.exp_approximation("f64")
    assert f"measured {fit.eval_ulps:.2f} ULP against mpmath" in text
    # the float kernels' exp: relative error within 2^-38 where the result is a normal double
    xs = x[x >= -700]
    got = _call(lib, "t_exp_f32", xs)
    with mpmath.workdps(40):
        rel = max(
            float(abs((mpmath.mpf(float(g)) - mpmath.exp(float(a))) / mpmath.exp(float(a))))
            for g, a in zip(got, xs)
        )
    assert rel <= 2.0**-38, rel
    v = np.linspace(0, 1, 301)
    got = _call(lib, "t_log1p01_f32", v)
    with mpmath.workdps(40):
        rel = max(
            float(abs(mpmath.mpf(float(g)) - mpmath.log1p(float(a))) / mpmath.log1p(float(a)))
            for g, a in zip(got[1:], v[1:])
        )
    assert rel <= 2.0**-37, rel


@pytest.mark.parametrize("build", BUILDS)
def test_exp_special_values(build):
    """The arguments the kernels pass (z - max <= 0, -|t|): 0, -0, -inf, NaN, underflow; and
    NaN handling that does not depend on isnan surviving -ffast-math."""
    lib = _library(build)
    for name in ("t_exp_f64", "t_exp_f32", "t_exp_neg_f64", "t_exp_neg_f32"):
        got = _call(lib, name, [0.0, -0.0, -np.inf, np.nan, -746.0, -1e300, -1e-300])
        assert got[0] == 1 and got[1] == 1, name  # exp(0) = 1 exactly: p = 1 at the max
        assert got[2] == 0 and got[4] == 0 and got[5] == 0, name
        assert np.isnan(got[3]), name
        assert got[6] == 1, name
    for name in ("t_exp_f64", "t_exp_f32"):  # the full-range helper (rows whose max is not finite)
        got = _call(lib, name, [1.0, 700.0, 710.0, np.inf])
        assert got[0] == pytest.approx(math.e, rel=2.0**-38), name
        assert got[1] == pytest.approx(math.exp(700.0), rel=2.0**-38), name
        assert got[2] == np.inf and got[3] == np.inf, name
    # double: subnormal results, each within an ULP of mpmath (2^n in two factors)
    x = np.array([-709.0, -720.5, -740.0, -744.4, -745.0])
    got = _call(lib, "t_exp_f64", x)
    assert np.all(got > 0) and _ulps_f64(got, x) <= 1.0
    # float kernels: flushed below exp(-708), far below float's range
    got = _call(lib, "t_exp_f32", [-708.5, -720.0])
    assert np.all(got == 0)
    # log1p(Srest): relative accuracy near 0 (a dominated row), libm's for -1, NaN, +inf
    s = np.array([1e-300, 1e-12, 3e-8, 0.4142, 1.0, 9.0, 127999.0])
    got = _call(lib, "t_log1p_f32", s)
    with mpmath.workdps(40):
        rel = max(
            float(abs((mpmath.mpf(float(g)) - mpmath.log1p(float(a))) / mpmath.log1p(float(a))))
            for g, a in zip(got, s)
        )
    assert rel <= 2.0**-38, rel
    got = _call(lib, "t_log1p_f32", [0.0, -1.0, np.inf, np.nan])
    assert got[0] == 0 and got[1] == -np.inf and got[2] == np.inf and np.isnan(got[3])
    got = _call(lib, "t_log1p01_f32", [0.0, np.nan, 1.0])
    assert got[0] == 0 and np.isnan(got[1]) and got[2] == pytest.approx(math.log(2), rel=2.0**-37)
    # the double kernels' log1p on [0, 1]: under 0.65 ULP of mpmath (libm's is ~0.75), exact at
    # 0 and NaN for NaN, in every build
    got = _call(lib, "t_log1p01_f64", [0.0, np.nan, -0.0])
    assert got[0] == 0 and np.isnan(got[1]) and got[2] == 0
    v = np.concatenate([np.linspace(0, 1, 1001)[1:], 10.0 ** -np.linspace(0, 300, 301)])
    assert _ulps_f64(_call(lib, "t_log1p01_f64", v), v, mpmath.log1p) <= 0.65


OPENMP_SCRIPT = textwrap.dedent("""\
    import ctypes, sys
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from c_build import CLib
    one, two = CLib(sys.argv[1]), CLib(sys.argv[2])
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((257, 300)) * 5).astype(np.float32)
    labels = rng.integers(0, 300, 257)
    labels[::7] = -100
    x = rng.standard_normal((97, 33)).astype(np.float32)
    y = rng.random((97, 33)).astype(np.float32)
    for dtype in (np.float32, np.float64):
        zz, xx, yy = z.astype(dtype), x.astype(dtype), y.astype(dtype)
        for name, args in (("softmax", (zz,)), ("softmax_cross_entropy_with_grad", (zz, labels)),
                           ("sigmoid_binary_cross_entropy_with_grad", (xx, yy))):
            a = one.call(name, dtype, *args)
            b = two.call(name, dtype, *args)
            for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
                np.testing.assert_allclose(v, u, rtol=4 * np.finfo(dtype).eps, atol=0)
    print("ok")
    """)


def test_openmp_build_gives_the_same_numbers():
    """Built with -fopenmp and run on 2 threads: per-row results identical, reduced losses equal
    to a few ULP (the threads' partial sums add in another order)."""
    lib_dir = build_dir()
    src = C_DIR / "symce.c"  # the gcc -O2 build's flags, plus -fopenmp
    out = cached(
        "libsymce-openmp",
        [gcc(), *STRICT_FLAGS, *c_build.LEVELS["O2"], "-fopenmp", "-fPIC", "-shared", src, "-lm"],
        [src, C_DIR / "symce.h"],
        ".so",
    )
    libs = [str(c_build.shared_library()), str(out)]
    script = lib_dir / "openmp_check.py"
    script.write_text(OPENMP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run(
        [sys.executable, str(script), *libs, tests_dir],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
