"""The generated C kernels (generated/c), compiled with gcc and called through ctypes.

Tiers: printer unit tests and generated text; every kernel in float32 and float64 against the
mpmath references (``form="raw"``: model definitions and sp.diff; ``form="closed"``: the registry
slots) for K in {1, 2, 3, 7, 16}; gradients against central differences of the C loss kernels;
the published seed values; stability (huge logits, -inf and +inf rows, probabilities 0 and 1,
NaN, K = 1, N = 0).  The ULP bounds are in test_c_accuracy.py.
"""

from __future__ import annotations

import math
import re

import mpmath
import numpy as np
import pytest
import sympy as sp

from symce import reference as R
from symce.functions import clamp_min, expm1, log1p, mul0, sigmoid, softplus, two_sum_err
from symce.kernels import registry
from symce.lang import c_backend

from c_build import C_DIR, clib, clib_each, environment_library, library  # noqa: F401  (fixtures)
from support import random_distribution, random_logits

KS = (1, 2, 3, 7, 16, 17)  # up to 16 classes the rows go in blocks; 17 takes the per-row path
DTYPES = (np.float32, np.float64)
TOL = {np.float32: 1e-5, np.float64: 1e-12}
# outputs that are differences of nearly equal terms somewhere (p - y, lse near 0, p_i(1 - p_i)):
# compared normwise, |a - r| / max(|r|, max |r| over the output), the usual measure for gradients
NORMWISE = {
    "logsumexp",
    "softmax_jacobian",
    "softmax_vjp",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_grad",
    "sigmoid_binary_cross_entropy_grad",
    "sigmoid_binary_cross_entropy_with_grad",
}


def max_error(actual, ref, normwise=False) -> float:
    """Largest relative error (elementwise or normwise); non-finite values must match exactly.

    Below the smallest normal number of ``actual``'s dtype the error is absolute (subnormals
    carry fewer digits)."""
    tiny = mpmath.mpf(float(np.finfo(np.asarray(actual).dtype).tiny))
    a = np.ravel(np.asarray(actual, dtype=np.float64))
    r = [mpmath.mpf(v) for v in np.ravel(np.asarray(ref, dtype=object))]
    assert a.size == len(r), (a.shape, len(r))
    finite = [abs(v) for v in r if mpmath.isfinite(v)]
    norm = max(finite) if (normwise and finite) else mpmath.mpf(0)
    worst = 0.0
    for av, rv in zip(a, r):
        if not mpmath.isfinite(rv) or not np.isfinite(av):
            same = (mpmath.isnan(rv) and np.isnan(av)) or (mpmath.isinf(rv) and av == float(rv))
            if not same:
                return math.inf
            continue
        den = max(abs(rv), norm, tiny)
        worst = max(worst, float(abs(mpmath.mpf(float(av)) - rv) / den))
    return worst


def as_list(x):
    return list(x) if isinstance(x, tuple) else [x]


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
            pr = c_backend.CPrinter(c_backend.compute_dtype(dtype, kern.family))
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
    assert used["f80"] == ["sigmoid"]  # the double elementwise kernels
    # the BCE kernels write softplus and sigmoid over one shared exponential: no helper for them
    assert {"two_sum_err", "mul0", "clamp_min"} <= set(used["f64"])
    assert not {"softplus", "sigmoid"} & set(used["f64"]) and "softplus" not in used["f32c"]
    assert "two_sum_err" not in used["f32c"]  # z - shift is exact enough in double
    assert [h["name"] for h in c_backend._helpers("f80", used["f80"])] == [
        "symce_clamp_min_ld",
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
    assert "long double" not in f64[f64.index("int symce_softmax_f64(") :]
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
# Against the mpmath references
# ----------------------------------------------------------------------------------------------
def _f32(a):
    """Values representable in float32, so one reference serves both dtypes."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _cases(name, K, rng):
    """(inputs, options) cases for kernel ``name`` with K classes (inputs in NumPy layout)."""
    fam = registry()[name].family
    N = 4
    if fam == "elementwise":
        return [((_f32(np.linspace(-30, 30, 3 * K + 1) + rng.uniform(-0.5, 0.5, 3 * K + 1)),), {})]
    if fam == "rowwise":
        z = _f32(random_logits(rng, N, K))
        if name == "softmax_vjp":
            return [((z, _f32(rng.standard_normal((N, K)))), {})]
        return [((z,), {})]
    if fam in ("ce_probs", "ce_logits"):
        x = _f32(random_distribution(rng, N, K) if fam == "ce_probs" else random_logits(rng, N, K))
        labels = rng.integers(0, K, N)
        soft = _f32(random_distribution(rng, N, K))
        w = _f32(rng.uniform(0.2, 2.0, K))
        ignored = labels.copy()
        ignored[1] = -100
        return [
            ((x, labels), {}),
            ((x, ignored), {"weight": w, "label_smoothing": 0.25, "reduction": "none"}),
            ((x, labels), {"weight": w, "label_smoothing": 0.1, "reduction": "sum"}),
            ((x, soft), {}),
            ((x, soft), {"weight": w, "label_smoothing": 0.25, "reduction": "none"}),
        ]
    # bce
    x = (
        _f32(rng.uniform(0.02, 0.98, (N, K)))
        if not name.startswith("sigmoid")
        else _f32(random_logits(rng, N, K))
    )
    y = _f32(rng.uniform(0, 1, (N, K)))
    w = _f32(rng.uniform(0.2, 2.0, (N, K)))
    opts = {"weight": w, "reduction": "none"}
    if name.startswith("sigmoid"):
        opts["pos_weight"] = _f32(rng.uniform(0.5, 3.0, K))
    return [((x, y), {}), ((x, y), opts), ((x, y), {"reduction": "sum"})]


@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("name", list(registry()))
def test_against_reference(clib, name, K):
    rng = np.random.default_rng(1000 + 17 * K + len(name))
    normwise = name in NORMWISE
    for inputs, opts in _cases(name, K, rng):
        for form in ("raw", "closed"):
            refs = as_list(R.evaluate(name, *inputs, form=form, **opts))
            for dtype in DTYPES:
                got = as_list(clib.call(name, dtype, *inputs, **opts))
                for g, r, out in zip(got, refs, ("loss", "grad")):
                    nw = normwise and not (name.endswith("_with_grad") and out == "loss")
                    err = max_error(g, r, nw)
                    assert err <= TOL[dtype], (
                        f"{name} {dtype.__name__} K={K} {form} {opts}: error {err:.3g}"
                    )


# ----------------------------------------------------------------------------------------------
# Gradients against central differences of the C loss kernels (float64)
# ----------------------------------------------------------------------------------------------
def _fd(f, x, h=1e-6):
    """Central differences of the scalar f at x (any shape)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = h * max(1.0, abs(x[idx]))
        xp, xm = x.copy(), x.copy()
        xp[idx] += step
        xm[idx] -= step
        g[idx] = (f(xp) - f(xm)) / (2 * step)
    return g


def _close(a, b, tol=1e-6):
    scale = max(np.max(np.abs(b)), 1e-30)
    assert np.all(np.abs(np.asarray(a) - b) <= tol * scale), (a, b)


def _total(clib, name, *inputs, **opts):
    out = clib.call(name, np.float64, *inputs, **opts)
    return float(np.sum(out))  # 'none' -> the sum of the per-sample losses


CE_FD_OPTIONS = [
    {},
    {"reduction": "sum", "label_smoothing": 0.2},
    {"reduction": "none", "weight": np.array([0.5, 2.0, 1.0, 1.5]), "ignore_index": 1},
    {"reduction": "mean", "weight": np.array([0.5, 2.0, 1.0, 1.5]), "label_smoothing": 0.3},
]


@pytest.mark.parametrize("opts", CE_FD_OPTIONS)
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "cross_entropy"])
def test_ce_gradients_match_finite_differences(clib, loss, opts):
    rng = np.random.default_rng(3)
    K = 4
    x = random_distribution(rng, 3, K) if loss == "cross_entropy" else random_logits(rng, 3, K)
    for target in (np.array([0, 1, 3]), random_distribution(rng, 3, K)):
        o = dict(opts)
        if target.dtype.kind == "f":
            o.pop("ignore_index", None)
        fd = _fd(lambda v: _total(clib, loss, v, target, **o), x)
        _close(clib.call(loss + "_grad", np.float64, x, target, **o), fd)
        if loss == "softmax_cross_entropy":
            lv, gv = clib.call(loss + "_with_grad", np.float64, x, target, **o)
            _close(gv, fd)
            np.testing.assert_array_equal(lv, clib.call(loss, np.float64, x, target, **o))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("loss", ["binary_cross_entropy", "sigmoid_binary_cross_entropy"])
def test_bce_gradients_match_finite_differences(clib, loss, reduction):
    rng = np.random.default_rng(4)
    x = (
        rng.uniform(0.1, 0.9, (3, 4))
        if loss == "binary_cross_entropy"
        else random_logits(rng, 3, 4)
    )
    y = rng.uniform(0, 1, (3, 4))
    opts = {"reduction": reduction, "weight": rng.uniform(0.5, 2, (3, 4))}
    if loss.startswith("sigmoid"):
        opts["pos_weight"] = rng.uniform(0.5, 3, 4)
    fd = _fd(lambda v: _total(clib, loss, v, y, **opts), x)
    _close(clib.call(loss + "_grad", np.float64, x, y, **opts), fd)
    if loss.startswith("sigmoid"):
        lv, gv = clib.call(loss + "_with_grad", np.float64, x, y, **opts)
        _close(gv, fd)
        np.testing.assert_array_equal(lv, clib.call(loss, np.float64, x, y, **opts))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_with_grad_is_loss_and_grad(clib, reduction, dtype):
    """The fused kernel returns the separate kernels' numbers, bit for bit (huge logits too)."""
    rng = np.random.default_rng(6)
    x = np.concatenate(
        [
            random_logits(rng, 3, 5),
            [[1e4, -1e4, 0.0, 88.0, -104.0], [-745.0, 40.0, -1e-8, 3.0, np.inf]],
        ]
    )
    y = rng.uniform(0, 1, x.shape)
    y[3:] = np.round(y[3:])
    for opts in ({}, {"weight": rng.uniform(0.5, 2, x.shape), "pos_weight": rng.uniform(0, 3, 5)}):
        name = "sigmoid_binary_cross_entropy"
        lv, gv = clib.call(name + "_with_grad", dtype, x, y, reduction=reduction, **opts)
        np.testing.assert_array_equal(lv, clib.call(name, dtype, x, y, reduction=reduction, **opts))
        np.testing.assert_array_equal(
            gv, clib.call(name + "_grad", dtype, x, y, reduction=reduction, **opts)
        )


def test_row_derivatives_match_finite_differences(clib):
    rng = np.random.default_rng(5)
    z = random_logits(rng, 2, 5)
    g = rng.standard_normal((2, 5))
    x = np.linspace(-8, 8, 9)
    _close(
        clib.call("sigmoid_grad", np.float64, x),
        np.array(
            [
                _fd(lambda v: float(clib.call("sigmoid", np.float64, v)[0]), np.array([t]))[0]
                for t in x
            ]
        ),
    )
    p = clib.call("softmax", np.float64, z)
    _close(_fd(lambda v: _total(clib, "logsumexp", v), z), p)  # d lse / dz = p
    J = clib.call("softmax_jacobian", np.float64, z)
    for r in range(2):
        for i in range(5):
            col = _fd(lambda v: float(clib.call("softmax", np.float64, v[None])[0, i]), z[r].copy())
            _close(J[r, i], col)
    _close(clib.call("softmax_vjp", np.float64, z, g), np.einsum("ni,nij->nj", g, J), 1e-12)
    # d log p_i / dz_j = delta_ij - p_j
    ls = _fd(lambda v: float(clib.call("log_softmax", np.float64, v[None])[0, 2]), z[0].copy())
    _close(ls, np.eye(5)[2] - p[0])


# ----------------------------------------------------------------------------------------------
# Seed values
# ----------------------------------------------------------------------------------------------
SEED_Z = np.array([[-2.85, 0.86, 0.28]])
SEED_P = [0.0154493156760736, 0.631163353604709, 0.353387330719218]
SEED_P_PUBLISHED = [0.0154493156751271, 0.631163353697413, 0.353387330637003]


@pytest.mark.parametrize("dtype", DTYPES)
def test_seed_values(clib_each, dtype):
    tol = TOL[dtype] * 10 if dtype == np.float64 else TOL[dtype]
    p = clib_each.call("softmax", dtype, SEED_Z)[0]
    np.testing.assert_allclose(p, SEED_P, rtol=tol)
    np.testing.assert_allclose(p, SEED_P_PUBLISHED, rtol=1e-9 if dtype == np.float64 else 1e-5)
    np.testing.assert_allclose(
        clib_each.call("softmax_cross_entropy", dtype, SEED_Z, np.array([2])),
        1.0401905694301,
        rtol=max(tol, 1e-13),
    )
    np.testing.assert_allclose(
        clib_each.call("softmax_cross_entropy", dtype, np.array([[1, 2, 0.5]]), np.array([1])),
        0.464368784107945,
        rtol=max(tol, 1e-14),
    )
    # dL/dz = p - y (not y - p): negative at the true class, positive elsewhere
    grad = clib_each.call("softmax_cross_entropy_grad", dtype, SEED_Z, np.array([2]))[0]
    np.testing.assert_allclose(grad, np.array(SEED_P) - [0, 0, 1], rtol=tol, atol=tol)
    assert grad[2] < 0 < grad[1]


# ----------------------------------------------------------------------------------------------
# Stability
# ----------------------------------------------------------------------------------------------
ROW_KERNELS = ("softmax", "log_softmax", "logsumexp", "softmax_jacobian")


def _check_rows(clib, dtype, z, labels, soft=None, kernels=ROW_KERNELS):
    """Every row kernel and the logits CE (+grad) against the closed-form reference."""
    zf = z.astype(np.float64)
    for name in kernels:
        got = clib.call(name, dtype, z)
        assert (
            max_error(got, R.evaluate(name, zf, form="closed"), name in NORMWISE) <= TOL[dtype]
        ), name
    for target in [labels] + ([soft] if soft is not None else []):
        for name in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
            got = clib.call(name, dtype, z, target, reduction="none")
            ref = R.evaluate(name, zf, target, form="closed", reduction="none")
            assert max_error(got, ref, name in NORMWISE) <= TOL[dtype], (name, got, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stability_huge_logits(clib_each, dtype):
    big = 1e4 if dtype == np.float64 else 100.0
    rows = [[big, -big, 0.0], [-big, -big + 1, -big + 2], [big, big, big], [0.5, big, -3.0]]
    if dtype == np.float32:  # beyond float32's exp range (exp(89) overflows), and far beyond
        rows += [[200.0, -200.0, 0.0], [1e30, -1e30, 3e29], [-1e30, -1e30, -1e30]]
    z = np.array(rows, dtype=dtype)
    out = [clib_each.call(n, dtype, z) for n in ROW_KERNELS]
    assert all(np.all(np.isfinite(o)) for o in out)
    _check_rows(
        clib_each,
        dtype,
        z,
        np.array([1] * len(rows)),
        random_distribution(np.random.default_rng(0), len(rows), 3).astype(dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_stability_equal_and_dominant(clib_each, dtype):
    z = np.array([[2.0] * 5, [-7.0] * 5, [40.0, 0, 0, 0, 0], [0, 0, 0, 0, 60.0]], dtype=dtype)
    p = clib_each.call("softmax", dtype, z)
    np.testing.assert_allclose(p[:2], 0.2, rtol=TOL[dtype])
    # log p of the dominant class is -log1p(4 e^-40) ~ -1.7e-17: only the Srest scheme keeps it
    ls = clib_each.call("log_softmax", dtype, z)
    assert ls[2, 0] < 0 and abs(ls[2, 0] / -math.log1p(4 * math.exp(-40)) - 1) < TOL[dtype]
    _check_rows(clib_each, dtype, z, np.array([0, 3, 0, 4]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_stability_masked_classes(clib_each, dtype):
    ninf = -np.inf
    z = np.array([[0.0, ninf, 1.0, ninf], [ninf, 3.0, ninf, ninf], [ninf] * 4], dtype=dtype)
    p = clib_each.call("softmax", dtype, z)
    assert np.all(p[:2][np.isinf(z[:2])] == 0) and np.all(np.isnan(p[2]))  # all -inf: NaN
    labels = np.array([2, 1, -100])
    soft = np.array([[0.3, 0, 0.7, 0], [0, 1, 0, 0], [0.25] * 4], dtype=dtype)
    loss = clib_each.call("softmax_cross_entropy", dtype, z[:2], labels[:2], reduction="none")
    assert np.all(np.isfinite(loss))
    lv, gv = clib_each.call(
        "softmax_cross_entropy_with_grad", dtype, z[:2], soft[:2], reduction="none"
    )
    assert np.all(np.isfinite(lv)) and np.all(gv[np.isinf(z[:2])] == 0)
    gl = clib_each.call("softmax_cross_entropy_grad", dtype, z, labels, reduction="sum")
    assert np.all(gl[np.isinf(z)] == 0) and np.all(gl[2] == 0)  # masked and ignored
    _check_rows(clib_each, dtype, z[:2], labels[:2], soft[:2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_stability_plus_inf_row(clib_each, dtype):
    """docs/semantics.md: a row holding +inf is shifted by its largest finite logit; the +inf
    entries' p and log p are NaN, the others' p is 0 and log p is -inf, also for a finite logit
    far above log(DBL_MAX) ~ 709 (issue 8: 1000 beside +inf gave NaN); logsumexp is +inf."""
    big = np.finfo(dtype).max
    z = np.array(
        [
            [0.0, np.inf, 1.0],
            [np.inf, -np.inf, np.inf],
            [-big, np.inf, 700.0],
            [1000.0, np.inf, 0.0],
            [big, np.inf, -big],
        ],
        dtype=dtype,
    )
    inf = np.isposinf(z)
    p = clib_each.call("softmax", dtype, z)
    lp = clib_each.call("log_softmax", dtype, z)
    assert np.all(np.isnan(p[inf])) and np.all(p[~inf] == 0)
    assert np.all(np.isnan(lp[inf])) and np.all(lp[~inf] == -np.inf)
    np.testing.assert_array_equal(clib_each.call("logsumexp", dtype, z), np.inf)
    # the Jacobian of such a row is NaN only through 0 * NaN off the diagonal (p_i (0 pc_i -
    # p_j)), which -ffast-math may fold to 0: not a documented value, so not compared there
    kernels = [
        k for k in ROW_KERNELS if k != "softmax_jacobian" or "fast-math" not in clib_each.build
    ]
    _check_rows(clib_each, dtype, z[:1], np.array([1]), kernels=kernels)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stability_minus_inf_row(clib_each, dtype):
    """A row of -inf: softmax and log-softmax NaN, logsumexp -inf; beside a normal row."""
    z = np.array([[-np.inf] * 4, [0.5, -np.inf, 2.0, -1.0]], dtype=dtype)
    p = clib_each.call("softmax", dtype, z)
    assert np.all(np.isnan(p[0])) and np.all(np.isfinite(p[1]))
    lp = clib_each.call("log_softmax", dtype, z)
    assert np.all(np.isnan(lp[0])) and lp[1, 1] == -np.inf
    lse = clib_each.call("logsumexp", dtype, z)
    assert lse[0] == -np.inf and np.isfinite(lse[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_stability_probabilities_zero_and_one(clib_each, dtype):
    p = np.array([[0.0, 1.0, 0.0, 1.0, 0.5]], dtype=dtype)
    y = np.array([[0.0, 1.0, 1.0, 0.0, 0.5]], dtype=dtype)
    for name in ("binary_cross_entropy", "binary_cross_entropy_grad"):
        got = clib_each.call(name, dtype, p, y, reduction="none")
        assert np.all(np.isfinite(got)), (name, got)
        ref = R.evaluate(
            name, p.astype(np.float64), y.astype(np.float64), form="raw", reduction="none"
        )
        assert max_error(got, ref) <= TOL[dtype], (name, got)
    loss = clib_each.call("binary_cross_entropy", dtype, p, y, reduction="none")
    np.testing.assert_allclose(loss[0, 2:4], 100.0, rtol=TOL[dtype])  # log clamped at -100
    probs = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], dtype=dtype)
    for target in (np.array([0, 2]), np.array([[0.5, 0.5, 0.0], [0, 0.5, 0.5]], dtype=dtype)):
        for name in ("cross_entropy", "cross_entropy_grad"):
            got = clib_each.call(name, dtype, probs, target, reduction="none")
            assert np.all(np.isfinite(got))
            ref = R.evaluate(name, probs.astype(np.float64), target, form="raw", reduction="none")
            assert max_error(got, ref) <= TOL[dtype], (name, got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_in_every_build(clib_each, dtype):
    """docs/semantics.md's special values in every build, -ffast-math included: sigmoid and
    sigmoid' at +-inf and NaN; logsumexp of a row of -inf is -inf; a NaN probability gives NaN in
    binary_cross_entropy and cross_entropy (not the clamp's 100); the log-probability of a
    dominant class is -log1p(4 e^-40), not 0; a subnormal float probability is not flushed
    (a build with -ffast-math, linked without it, keeps subnormals)."""
    lib, inf, nan = clib_each, np.inf, np.nan
    x = np.array([inf, -inf, nan, 0.0, 1e4, -1e4])
    s = lib.call("sigmoid", dtype, x)
    np.testing.assert_array_equal(s, [1, 0, nan, 0.5, 1, 0])
    np.testing.assert_array_equal(lib.call("sigmoid_grad", dtype, x), [0, 0, nan, 0.25, 0, 0])
    lse = lib.call("logsumexp", dtype, np.array([[-inf] * 4, [-inf, 0, -inf, 1], [1, 2, 3, 4]]))
    assert lse[0] == -inf
    np.testing.assert_allclose(
        lse[1:],
        [1 + math.log1p(math.exp(-1)), 4 + math.log1p(sum(math.exp(-k) for k in (1, 2, 3)))],
        rtol=TOL[dtype],
    )
    p = np.array([[nan, 0.5, 0.0, 1.0]])
    y = np.array([[1.0, 1.0, 1.0, 0.0]])
    loss = lib.call("binary_cross_entropy", dtype, p, y, reduction="none")
    assert np.isnan(loss[0, 0]) and np.all(loss[0, 2:] == 100)
    assert np.isnan(lib.call("binary_cross_entropy_grad", dtype, p, y, reduction="none")[0, 0])
    assert np.isnan(lib.call("binary_cross_entropy", dtype, p, y, reduction="sum"))
    probs = np.array([[nan, 0.5, 0.5], [0.0, 0.5, 0.5]])
    ce = lib.call("cross_entropy", dtype, probs, np.array([0, 0]), reduction="none")
    assert np.isnan(ce[0]) and ce[1] == 100
    assert np.isnan(lib.call("cross_entropy_grad", dtype, probs, np.array([0, 0]))[0, 0])
    ls = lib.call("log_softmax", dtype, np.array([[40.0, 0, 0, 0, 0], [0, 0, 60.0, 0, 0]]))
    want = [-math.log1p(4 * math.exp(-40)), -math.log1p(4 * math.exp(-60))]
    np.testing.assert_allclose(ls[:, [0, 2]].diagonal(), want, rtol=TOL[dtype])
    lv = lib.call("softmax_cross_entropy", dtype, np.array([[40.0, 0, 0, 0, 0]]), np.array([0]))
    np.testing.assert_allclose(lv, -want[0], rtol=TOL[dtype])
    if dtype == np.float32:  # 1e-42 is a float subnormal: -log p = 96.7, not the clamp's 100
        tiny = np.array([[1e-42, 1e-40]], dtype=np.float32)
        got = lib.call("binary_cross_entropy", dtype, tiny, np.ones((1, 2)), reduction="none")
        np.testing.assert_allclose(got, -np.log(tiny.astype(np.float64)), rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(registry()))
def test_nan_in_nan_out(clib_each, name, dtype):
    """A NaN in an input gives NaN in every output that depends on it, and nowhere else."""
    kern = registry()[name]
    fam = kern.family
    rng = np.random.default_rng(9)
    if fam == "elementwise":
        out = clib_each.call(name, dtype, np.array([0.5, np.nan, -2.0]))
        assert np.isnan(out[1]) and not np.any(np.isnan(out[[0, 2]]))
        return
    if fam in ("rowwise", "ce_logits"):
        x = random_logits(rng, 3, 4)
    elif fam == "ce_probs":
        x = random_distribution(rng, 3, 4)
    else:
        x = rng.uniform(0.1, 0.9, (3, 4))
    bad = x.copy()
    bad[1, 2] = np.nan
    if fam == "rowwise":
        extra = (rng.standard_normal((3, 4)),) if name == "softmax_vjp" else ()
        out = clib_each.call(name, dtype, bad, *extra)
        assert np.all(np.isnan(out[1])) and not np.any(np.isnan(out[[0, 2]]))
        return
    if fam == "bce":
        y = rng.uniform(0, 1, (3, 4))
        for a, b in ((bad, y), (x, np.where(np.isnan(bad), np.nan, y))):
            for out in as_list(clib_each.call(name, dtype, a, b, reduction="none")):
                assert np.isnan(out[1, 2]) and np.sum(np.isnan(out)) == 1
            if kern.outputs[0].name == "loss":
                assert np.isnan(as_list(clib_each.call(name, dtype, a, b, reduction="mean"))[0])
        return
    soft = random_distribution(rng, 3, 4)
    nan_soft = soft.copy()
    nan_soft[1, 2] = np.nan
    # row 1's label is class 2, where the NaN is; every soft target entry is nonzero
    for xin, target in ((bad, np.array([0, 2, 3])), (bad, soft), (x, nan_soft)):
        for out in as_list(clib_each.call(name, dtype, xin, target, reduction="none")):
            assert np.isnan(out[1]).any() and not np.isnan(out[[0, 2]]).any()
            if fam == "ce_logits":  # a NaN logit or target reaches the whole row through Srest
                assert np.isnan(out[1]).all()
        for out in as_list(clib_each.call(name, dtype, xin, target, reduction="mean")):
            assert np.isnan(out).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_class(clib_each, dtype):
    z = np.array([[3.0], [-1e3], [0.0]], dtype=dtype)
    np.testing.assert_array_equal(clib_each.call("softmax", dtype, z), 1.0)
    np.testing.assert_array_equal(clib_each.call("log_softmax", dtype, z), 0.0)
    np.testing.assert_array_equal(clib_each.call("logsumexp", dtype, z), z[:, 0])
    np.testing.assert_array_equal(clib_each.call("softmax_jacobian", dtype, z), 0.0)
    lv, gv = clib_each.call(
        "softmax_cross_entropy_with_grad", dtype, z, np.zeros(3, dtype=np.int64)
    )
    assert lv == 0 and np.all(gv == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch(clib_each, dtype):
    z = np.zeros((0, 3), dtype=dtype)
    labels = np.zeros(0, dtype=np.int64)
    for name in ROW_KERNELS:
        assert clib_each.call(name, dtype, z).size == 0
    assert clib_each.call("softmax_vjp", dtype, z, z).size == 0
    assert clib_each.call("sigmoid", dtype, np.zeros(0)).size == 0
    for name, target in (
        ("softmax_cross_entropy", labels),
        ("cross_entropy", labels),
        ("softmax_cross_entropy", z),
        ("binary_cross_entropy", z),
        ("sigmoid_binary_cross_entropy", z),
    ):
        assert np.isnan(clib_each.call(name, dtype, z, target, reduction="mean"))
        assert clib_each.call(name, dtype, z, target, reduction="sum") == 0
        assert clib_each.call(name, dtype, z, target, reduction="none").size == 0
        assert clib_each.call(name + "_grad", dtype, z, target).size == 0
    lv, gv = clib_each.call("softmax_cross_entropy_with_grad", dtype, z, labels)
    assert np.isnan(lv) and gv.size == 0
    lv, gv = clib_each.call("sigmoid_binary_cross_entropy_with_grad", dtype, z, z)
    assert np.isnan(lv) and gv.size == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_ignored(clib_each, dtype):
    z = random_logits(np.random.default_rng(2), 3, 4).astype(dtype)
    labels = np.full(3, -100)
    lv, gv = clib_each.call(
        "softmax_cross_entropy_with_grad", dtype, z, labels, label_smoothing=0.1
    )
    assert np.isnan(lv) and np.all(gv == 0)
    probs = random_distribution(np.random.default_rng(2), 3, 4).astype(dtype)
    assert clib_each.call("cross_entropy", dtype, probs, labels, reduction="sum") == 0
    assert np.all(clib_each.call("cross_entropy_grad", dtype, probs, labels) == 0)


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
