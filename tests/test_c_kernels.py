"""The generated C kernels (generated/c), compiled with gcc and called through ctypes: what only
C has.

The printer (types per dtype, strict, NaN-propagating helpers, TwoSum's grouping, only the helpers
used) and the generated text; rows longer than SYMCE_STASH (the heap stash, and chunk by chunk
without it); label_smoothing as a double in both dtypes.

The numeric checks (every kernel against the mpmath references for K up to 17, finite
differences, seed values, and the special values in every build of ``c_build.MATRIX``) are
written once for every language in tests/test_kernels.py; the ULP bounds are in
test_c_accuracy.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

from symce import reference as R
from symce.functions import clamp_min, expm1, log1p, mul0, sigmoid, softplus, two_sum_err
from symce.kernels import registry
from symce.lang import c_backend

from c_build import C_DIR, environment_library, library
from support import random_distribution

DTYPES = (np.float32, np.float64)


# ----------------------------------------------------------------------------------------------
# Printer and generated text
# ----------------------------------------------------------------------------------------------
def test_printer_types_per_dtype():
    x = sp.Symbol("x", real=True)
    expr = sp.exp(x) + sp.log(x) + sp.Float("1e-12")
    # the float kernels compute in double with symce's float-accurate exp; double with its own
    assert (
        c_backend.CPrinter("f32c").doprint(expr)
        == "symce_exp_for_f32(xv) + log(xv) + 9.9999999999999998e-13"
    )
    assert (
        c_backend.CPrinter("f64").doprint(expr)
        == "symce_exp_for_f64(xv) + log(xv) + 9.9999999999999998e-13"
    )
    assert (
        c_backend.CPrinter("f80").doprint(expr)
        == "expl(xv) + logl(xv) + 9.99999999999999979887e-13L"
    )


def test_printer_maps_symce_functions_and_is_strict():
    pr = c_backend.CPrinter("f64")
    a, b = sp.symbols("p yt", real=True)
    assert pr.doprint(clamp_min(a, -100)) == "symce_clamp_min_for_f64(p, -100)"
    assert pr.doprint(mul0(b, a)) == "symce_mul0_for_f64(yt, p)"
    assert pr.doprint(softplus(a)) == "symce_softplus_for_f64(p)"
    assert pr.doprint(sigmoid(-a)) == "symce_sigmoid_for_f64(-p)"
    assert pr.doprint(two_sum_err(a, -b)) == "symce_two_sum_err_for_f64(p, -yt)"
    assert pr.doprint(expm1(a) + log1p(b)) == "expm1(p) + log1p(yt)"
    # a two-branch Piecewise is a bit-mask select in double (a ternary stops GCC vectorising)
    assert pr.doprint(sp.Piecewise((0, sp.Eq(a, 0)), (b, True))) == "symce_select(p == 0, 0, yt)"
    assert (
        c_backend.CPrinter("f80").doprint(sigmoid(a) + sp.exp(b))
        == "expl(yt) + symce_sigmoid_ld(p)"
    )
    assert (
        c_backend.CPrinter("f80").doprint(sp.Piecewise((0, sp.Eq(a, 0)), (b, True)))
        == "(p == 0) ? (0) : (yt)"
    )
    with pytest.raises(ValueError, match="no C name"):
        pr.doprint(sp.Symbol("unknown_local"))
    with pytest.raises(ValueError, match="fmax"):
        pr.doprint(sp.Max(a, b))  # fmax drops NaN
    with pytest.raises(Exception, match="Unsupported"):
        pr.doprint(sp.Function("mystery")(a))


def test_every_slot_prints():
    """Every slot of every kernel prints in every compute type (strict: no unmapped function)."""
    for kern in registry().values():
        for dtype in c_backend.DTYPES:
            params = {o.name: o.name for o in kern.scalars}  # a defined loss's options
            names = {**c_backend.LOCAL_NAMES, **params}
            pr = c_backend.CPrinter(c_backend.compute_dtype(dtype, kern.family), names)
            for name, expr in kern.slots.items():
                assert pr.doprint(expr), (kern.name, name)


def test_helpers_propagate_nan():
    helpers = {h["name"]: h["body"] for h in c_backend._helpers("f64")}
    # (lo > x) is false for a NaN x, so the clamp returns x (a bit-mask select in double); NaN is
    # also told from its bits, which -ffast-math cannot assume away
    assert helpers["symce_clamp_min_for_f64"] == "symce_select((!symce_isnan(x)) & (lo > x), lo, x)"
    long_double = {h["name"]: h["body"] for h in c_backend._helpers("f80")}
    assert (
        long_double["symce_clamp_min_ld"]
        == "((!symce_isnan((double)(x))) && (lo > x)) ? (lo) : (x)"
    )
    # mul0's tests from the bits: a NaN target is not 0, and 0 * NaN stays NaN (0 * inf is 0)
    assert (
        helpers["symce_mul0_for_f64"]
        == "symce_select((!symce_isnan(b)) & (symce_iszero(a)), 0, a*b)"
    )
    assert "fmax" not in "".join(helpers.values()) + "".join(long_double.values())


def test_two_sum_helper_keeps_its_grouping():
    """SymPy flattens (a - (s - t)) + (b - t) to a + b - s (0 in floating point): the helper
    keeps TwoSum's operations apart, and returns 0 when a + b is not finite."""
    (helper,) = [h for h in c_backend._helpers("f64") if h["name"] == "symce_two_sum_err_for_f64"]
    lines = [f"{st['name']} = {st['expr']}" for st in helper["statements"]]
    assert lines == ["s = a + b", "t = -a + s", "err = (a - (s - t)) + (b - t)"]
    # finiteness from the exponent bits, so -ffast-math cannot fold the test away
    assert helper["body"] == "symce_select(symce_isfinite(s), err, 0)"
    a, b = sp.symbols("a b", real=True)
    steps = two_sum_err(a, b).stable()
    assert steps[-1][0].name == "err" and steps[-1][1].has(sp.Symbol("t", real=True))


def test_helpers_only_where_used():
    used = c_backend.used_helpers()
    assert set(used) == {"f32c", "f64", "f80"}  # float computes in double
    assert used["f80"] == [
        "softplus",
        "sigmoid",
    ]  # the double elementwise kernels (softplus: symce.library)
    # the BCE kernels write softplus and sigmoid over one shared exponential: no helper for them
    assert {"two_sum_err", "mul0", "clamp_min"} <= set(used["f64"])
    # (the float elementwise kernels, softplus and log_sigmoid of symce.library, call them)
    assert not {"softplus", "sigmoid"} & set(used["f64"])
    assert "two_sum_err" not in used["f32c"]  # z - shift is exact enough in double
    assert [h["name"] for h in c_backend._helpers("f80", used["f80"])] == [
        "symce_clamp_min_ld",
        "symce_softplus_ld",
        "symce_sigmoid_ld",
    ]  # callees first


def _sections(text):
    f32, f64 = text.split("Kernels on float buffers")[1].split("Kernels on double buffers")
    return f32, f64


def test_generated_text_uses_the_right_types():
    src = (C_DIR / "symce.c").read_text()
    f32, f64 = _sections(src)
    assert "float" not in f64 and "expf" not in f64 and "F)" not in f64
    # the float kernels compute in double and round once: no float math, a cast per result
    assert not re.search(r"\b(expf|logf|log1pf|expm1f|fabsf)\(", src)
    assert "(float)(" in f32 and "const double zs" in f32 and "const float zs" not in f32
    # the double sigmoid kernels compute in long double, the others in double
    sig = f64[f64.index("int symce_sigmoid_f64(") : f64.index("int symce_softmax_f64(")]
    assert "long double xv" in sig and "(double)(symce_sigmoid_ld(" in sig
    # every double elementwise kernel (symce.library's too) computes in long double, no other
    for body in re.split(r"\n(?=int symce_)", f64)[1:]:
        name = re.match(r"int symce_(\w+)_f64\(", body).group(1)
        elementwise = registry()[name.removesuffix("_soft")].family == "elementwise"
        assert ("long double xv" in body) == elementwise, name
    # the one allocation: the heap stash of a row longer than SYMCE_STASH, freed in its block
    assert re.findall(r"\b(?:malloc|free)\(", src) == ["malloc(", "free("]  # the two #defines
    stashes = re.findall(r"\bsymce_heap_stash_f(?:32|64)\(k\)", src)
    assert stashes and len(stashes) == src.count("SYMCE_FREE(heap);")
    header = (C_DIR / "symce.h").read_text()
    for fn in c_backend.functions():
        assert re.search(rf"\bint {fn.cname}\(", header), fn.cname
        assert re.search(rf"\* {fn.cname}: ", header), f"{fn.cname} is not documented"
    for name in registry():
        assert f"symce_{name}_f32" in header and f"symce_{name}_f64" in header


def test_row_kernels_print_the_slots():
    """The row statistics print the e (and, for rows whose max is not finite, em1) slots once per
    dtype; log1p(Srest) is computed once per row and log p needs no exponential per class."""
    src = (C_DIR / "symce.c").read_text()
    pr = c_backend.CPrinter("f64")
    kern = registry()["log_softmax"]
    stats = src[src.index("static int symce_row_stats_f64(") :]
    stats = stats[: stats.index("\n}\n")]
    em1, e = pr.doprint(kern.slots["em1"]), pr.doprint(kern.slots["e"])
    assert f"const double em1 = {em1};" in stats and "sum += em1;" in stats
    exp_loop = src[src.index("static void symce_row_exp_f64(") :]
    assert f"const double e = {e};" in exp_loop[: exp_loop.index("\n}\n")]
    ls = src[src.index("int symce_log_softmax_f64(") : src.index("int symce_logsumexp_f64(")]
    assert ls.count("log1p(") == 1 and "const double log1p_srest = log1p(srest);" in ls
    for slot in ("zs", "zlo"):
        assert f"const double {slot} = {pr.doprint(kern.slots[slot])};" in ls
    assert "exp(" not in ls.split("log1p_srest = ")[1]  # log p needs no exponential per class
    # the float kernels carry no TwoSum term: z - shift of two floats is exact enough in double
    ls32 = src[src.index("int symce_log_softmax_f32(") : src.index("int symce_logsumexp_f32(")]
    assert "two_sum" not in ls32 and "const double zs = -shift + zv;" in ls32


# ----------------------------------------------------------------------------------------------
# Rows longer than the stack stash
# ----------------------------------------------------------------------------------------------
LONG_ROWS = ("gcc-O2", "no-malloc")  # the heap stash (float: one pass, chunk by chunk); recomputing


@pytest.mark.parametrize("build", LONG_ROWS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_longer_than_the_stash_agree_with_numpy(build, dtype):
    """K = 2500 > SYMCE_STASH: the row's exponentials go to the heap stash (float: two chunks,
    each with its own max), or without malloc are recomputed chunk by chunk.  Every row kernel
    and option agrees with the NumPy module (an independent implementation of the same slots) to
    a few ULP."""
    if environment_library() and build != LONG_ROWS[0]:
        pytest.skip("the environment names one library")
    clib = library(None if environment_library() else build)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "symce_kernels_c_check", C_DIR.parent / "numpy" / "symce_kernels.py"
    )
    sk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sk)
    rng = np.random.default_rng(11)
    K = 2500
    z = (rng.standard_normal((3, K)) * 6).astype(dtype)
    z[1, 7] += 30  # a dominant class: 1 - p must not be formed
    labels = np.array([5, 7, -100])
    soft = rng.random((3, K)).astype(dtype)
    soft /= soft.sum(axis=1, keepdims=True)
    weight = rng.uniform(0.5, 2, K).astype(dtype)
    g = rng.standard_normal((3, K)).astype(dtype)
    tol = 8 * np.finfo(dtype).eps
    for name, args in (
        ("softmax", (z,)),
        ("log_softmax", (z,)),
        ("logsumexp", (z,)),
        ("softmax_vjp", (z, g)),
    ):
        np.testing.assert_allclose(
            clib.call(name, dtype, *args),
            getattr(sk, name)(*args),
            rtol=tol,
            atol=tol,
            err_msg=name,
        )
    for target in (labels, soft):
        opts = {"weight": weight, "label_smoothing": 0.1, "reduction": "none"}
        if target is soft:
            opts.pop("reduction")
        for name in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
            got = clib.call(name, dtype, z, target, **opts)
            want = getattr(sk, name)(z, target, **opts)
            np.testing.assert_allclose(
                got, want, rtol=tol, atol=tol * np.max(np.abs(want)), err_msg=name
            )


# ----------------------------------------------------------------------------------------------
# Options: label_smoothing is a double in both dtypes
# ----------------------------------------------------------------------------------------------
def test_label_smoothing_is_a_double():
    """The float kernels take label_smoothing as a double, as NumPy and MATLAB hold it: with
    eps = 0.1 (not 0.1f) every float output is the reference at eps = 0.1 rounded once (within
    0.5 ULP, where a float eps put a third of them 1-2 ULP away), and eps just outside [0, 1] is
    rejected although it rounds into [0, 1] as a float."""
    from support import ulp_error

    rng = np.random.default_rng(21)
    z = (rng.standard_normal((64, 10)) * 3).astype(np.float32)
    probs = random_distribution(rng, 64, 10).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    soft = random_distribution(rng, 64, 10).astype(np.float32)
    lib = library()
    for x, names in (
        (z, ("softmax_cross_entropy", "softmax_cross_entropy_grad")),
        (probs, ("cross_entropy", "cross_entropy_grad")),
    ):
        for target in (labels, soft):
            for name in names:
                opts = {
                    "label_smoothing": 0.1,
                    "reduction": "none" if "grad" not in name else "sum",
                }
                got = lib.call(name, np.float32, x, target, **opts)
                ref = R.evaluate(name, x.astype(np.float64), target, form="closed", **opts)
                assert ulp_error(got, ref) <= 0.5 + 1e-3, (name, target.dtype)
    for fn in c_backend.functions():
        if any(p.role == "label_smoothing" for p in fn.params):
            assert "double label_smoothing" in fn_prototype(fn), fn.cname
    for eps in (1.00000001, -1e-300, 1 + 2.0**-40):
        for dtype in DTYPES:
            code, _, _ = lib.call(
                "softmax_cross_entropy", dtype, z[:2], labels[:2], label_smoothing=eps, check=False
            )
            assert code == dict((n, v) for n, v, _ in c_backend.ERRORS)["SYMCE_ERR_SMOOTHING"], eps


def fn_prototype(fn):
    header = (C_DIR / "symce.h").read_text()
    start = header.index(f"int {fn.cname}(")
    return header[start : header.index(";", start)]


def _numpy_module():
    """generated/numpy/symce_kernels.py, imported from its path (an independent implementation
    of the same slots, accurate to a few float64 ULP: a reference for float32 outputs)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "symce_kernels_c_check", C_DIR.parent / "numpy" / "symce_kernels.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_long_float_rows_read_chunk_by_chunk():
    """A float row longer than SYMCE_STASH is read once, each chunk of 2048 classes with its own
    max (symce_row_stats_chunked).  On rows of 4200 classes (three chunks) whose max sits in the
    last or the first chunk, is tied across chunks, dominates by 40, or grows chunk by chunk, and
    on a row with a whole chunk of -inf (which takes the two-pass path), every row kernel stays
    within 0.5 ULP of the float64 NumPy module (the VJP, which cancels, within 2^-24 of its
    largest term), with and without the heap stash; with +inf or NaN in the row, the two builds
    give the same special values."""
    sk = _numpy_module()
    K = 4200
    rng = np.random.default_rng(5)
    z = (rng.standard_normal((8, K)) * 4).astype(np.float32)
    z[0, 4150] = z[0].max() + 5  # the max in the last chunk
    z[1, 3] = z[1].max() + 5  # in the first
    z[2, [10, 4150]] = z[2].max() + 2  # tied across chunks
    z[3, 3000] = z[3].max() + 40  # dominant: Srest ~ 1e-14
    z[4, 2048:4096] = -np.inf  # a chunk with no finite max: two passes
    z[5] = np.linspace(-20, 20, K, dtype=np.float32)  # the max grows with every chunk
    z[6, 2100] = np.inf
    z[7, 5] = np.nan
    labels = np.array([4150, 7, 10, 3000, 1, 4000, 0, 0])
    g = rng.standard_normal((8, K)).astype(np.float32)
    cases = (
        ("softmax", (z,), {}),
        ("log_softmax", (z,), {}),
        ("logsumexp", (z,), {}),
        ("softmax_vjp", (z, g), {}),
        ("softmax_cross_entropy_with_grad", (z, labels), {"reduction": "none"}),
    )
    builds = (
        {"heap": library()}
        if environment_library()
        # e.g. the sanitized build
        else {"heap": library("gcc-O2"), "recompute": library("no-malloc")}
    )
    terms = np.abs(sk.softmax(z[:6].astype(np.float64)) * g[:6]).max(axis=1, keepdims=True)
    for name, args, opts in cases:
        ref = getattr(sk, name)(
            *(a[:6].astype(np.float64) if a.dtype.kind == "f" else a[:6] for a in args), **opts
        )
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = {}
        for b, lib in builds.items():
            out = lib.call(name, np.float32, *args, **opts)
            got[b] = out = out if isinstance(out, tuple) else (out,)
            for o, r in zip(out, ref):
                o = np.asarray(o, dtype=np.float64)[:6]
                if name == "softmax_vjp":
                    assert np.all(np.abs(o - r) <= 2.0**-24 * terms), (name, b)
                    continue
                same = o == r  # -inf where the chunk of -inf is
                ulp = np.spacing(np.abs(r[~same].astype(np.float32))).astype(np.float64)
                assert np.max(np.abs(o[~same] - r[~same]) / ulp) <= 0.5 + 1e-3, (name, b)
        for x, y in zip(got["heap"], got.get("recompute", got["heap"])):
            x, y = np.asarray(x)[6:], np.asarray(y)[6:]
            assert np.array_equal(x, y, equal_nan=True), name
