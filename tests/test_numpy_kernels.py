"""The generated NumPy module: every kernel against the mpmath references (raw definitions and
closed forms), against finite differences, at the published seed values and at the edges
(huge logits, masked classes, probabilities 0 and 1, NaN, K = 1, N = 0, strided views).

Accuracy is measured elementwise, relative to the reference value; for the kernels whose result
is a difference of two terms (the Jacobian, the VJP, log-sum-exp, the softmax cross-entropy and
sigmoid BCE gradients) relative to the magnitude of the terms instead, since p - y cancels by
nature: e.g. p_t - 1 for p_t = 1 - 1e-13 has an absolute error of an ulp of 1.
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import shutil
import subprocess
import sys

import mpmath
import numpy as np
import pytest

from symce import kernels as kr
from symce import reference as R
from symce.lang import numpy_backend

from support import random_distribution, random_logits

F64, F32 = np.float64, np.float32
TOL = {F64: 1e-12, F32: 1e-5}
KS = (1, 2, 3, 7, 16)
N = 4


@pytest.fixture(scope="module")
def sk():
    return numpy_backend.load_generated()


# ----------------------------------------------------------------------------------------------
# The module itself
# ----------------------------------------------------------------------------------------------
def test_docstring_examples_run(sk):
    result = doctest.testmod(sk, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted >= len(kr.registry())
    for name in kr.registry():
        doc = getattr(sk, name).__doc__
        assert ">>> " in doc and "Args:" in doc and "Returns:" in doc, name


def test_exports_every_kernel(sk):
    assert sorted(sk.__all__) == sorted(kr.registry())


def _tree():
    return ast.parse((numpy_backend.GENERATED / numpy_backend.OUTPUT).read_text(encoding="utf-8"))


def test_imports_only_numpy():
    imported = set()
    for node in ast.walk(_tree()):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"numpy"}


def test_vectorised_no_python_loops():
    """No Python loop over samples or classes: the only loops run over blocks of rows (``for lo,
    hi in _blocks(x)``) or tiles (``for tile in _tiles(x)``), each a vectorised program, and
    the generators themselves."""
    loops = (ast.For, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
    tree = _tree()
    allowed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in ("_blocks", "_tiles"):
            allowed |= set(ast.walk(node))
        if (
            isinstance(node, ast.For)
            and isinstance(node.iter, ast.Call)
            and getattr(node.iter.func, "id", "") in ("_blocks", "_tiles")
        ):
            allowed.add(node)
    found = [
        (type(n).__name__, n.lineno)
        for n in ast.walk(tree)
        if isinstance(n, loops) and n not in allowed
    ]
    assert not found
    assert any(isinstance(n, ast.For) for n in allowed)


def test_works_from_a_copy_in_a_temp_dir(tmp_path):
    copy = tmp_path / "my_losses.py"
    shutil.copy(numpy_backend.GENERATED / numpy_backend.OUTPUT, copy)
    spec = importlib.util.spec_from_file_location("my_losses", copy)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    p = mod.softmax(np.array([[1.0, 2.0, 0.5]]))
    assert p.shape == (1, 3) and abs(p.sum() - 1) < 1e-15
    # and in a fresh interpreter, it needs nothing of symce
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import my_losses as m, numpy as np; "
        "l = m.softmax_cross_entropy(np.array([1.0, 2.0, 0.5]), 1); "
        "assert 'symce' not in sys.modules; print(repr(float(l)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert abs(float(out) - 0.464368784107945) < 1e-14


# ----------------------------------------------------------------------------------------------
# Inputs per kernel, and how each result is compared with its reference
# ----------------------------------------------------------------------------------------------
def _ce_cases(rng, K, dt, x):
    labels = rng.integers(0, K, N)
    ignored = labels.copy()
    ignored[1] = -100
    w = (rng.random(K) + 0.5).astype(dt)
    return [
        ((x, labels), {}),
        ((x, ignored), dict(weight=w, label_smoothing=0.1, reduction="sum")),
        (
            (x, random_distribution(rng, N, K, dt)),
            dict(weight=w, label_smoothing=0.2, reduction="none"),
        ),
    ]


def cases(name, rng, K, dt):
    """[(args, options)] for kernel ``name`` with K classes in dtype ``dt``."""
    fam = kr.kernel(name).family
    z = random_logits(rng, N, K, dtype=dt)
    if fam == "elementwise":
        return [((z,), {})]
    if fam == "rowwise":
        g = rng.standard_normal((N, K)).astype(dt)
        return [((z, g) if name == "softmax_vjp" else (z,), {})]
    if fam == "ce_probs":
        return _ce_cases(rng, K, dt, random_distribution(rng, N, K, dt))
    if fam == "ce_logits":
        return _ce_cases(rng, K, dt, z)
    x = (rng.random((N, K)) * 0.98 + 0.01).astype(dt) if name.startswith("binary") else z
    binary = rng.integers(0, 2, (N, K)).astype(dt)
    soft = rng.random((N, K)).astype(dt)
    w = (rng.random((N, K)) + 0.5).astype(dt)
    opts = [dict(), dict(weight=w, reduction="sum")]
    if name.startswith("sigmoid"):
        opts.append(dict(weight=w, pos_weight=(rng.random(K) * 3).astype(dt), reduction="none"))
    return [((x, binary), opts[0])] + [((x, soft), o) for o in opts[1:]]


def scaled_error(actual, ref, scale=None) -> float:
    """max |actual - ref| / max(scale, tiny): scale defaults to |ref|, tiny is the dtype's
    smallest normal number (below it, in the subnormals, only absolute accuracy exists).
    Non-finite values must match exactly (NaN for NaN, infinities with their sign)."""
    actual = np.asarray(actual)
    ref = np.asarray(ref, dtype=object)
    scale = np.broadcast_to(np.abs(ref) if scale is None else scale, ref.shape)
    tiny = mpmath.mpf(float(np.finfo(actual.dtype).tiny))
    worst = 0.0
    for a, r, s in zip(actual.ravel(), ref.ravel(), scale.ravel()):
        a, r = float(a), mpmath.mpf(r)
        if not (mpmath.isfinite(r) and np.isfinite(a)):
            if not ((mpmath.isnan(r) and np.isnan(a)) or a == float(r)):
                return float("inf")
            continue
        worst = max(worst, float(abs(mpmath.mpf(a) - r) / max(mpmath.mpf(s), tiny)))
    return worst


def _f(a):
    return np.asarray(a, dtype=float)


def term_scale(name, args, opts, ref):
    """The magnitude of the terms a difference-valued kernel subtracts (None: use |ref|)."""
    if name == "logsumexp":
        return np.abs(_f(ref)) + np.max(np.abs(args[0]), axis=-1)
    if name in ("softmax_jacobian", "softmax_vjp"):
        p = _f(R.evaluate("softmax", args[0], form="raw"))
        if name == "softmax_jacobian":
            return p[:, :, None] * (np.eye(p.shape[1]) + p[:, None, :])
        g = np.abs(args[1].astype(float))
        return p * (g + np.sum(g * p, axis=1, keepdims=True))
    if name in ("softmax_cross_entropy_grad", "softmax_cross_entropy_with_grad"):
        # the effective target over the divisor, from the reference: dCE/dp at p = 1 is -y~/div
        ones = np.ones_like(args[0])
        yt = -_f(R.evaluate("cross_entropy_grad", ones, args[1], form="closed", **opts))
        p = _f(R.evaluate("softmax", args[0], form="raw"))
        return p * np.abs(yt.sum(axis=1, keepdims=True)) + np.abs(yt)
    if name in ("sigmoid_binary_cross_entropy_grad", "sigmoid_binary_cross_entropy_with_grad"):
        # (1 - y) sigma(x) w / c and y pw sigma(-x) w / c are the reference at y = 0 and y = 1
        x, y = args
        grad = "sigmoid_binary_cross_entropy_grad"
        at0 = _f(R.evaluate(grad, x, np.zeros_like(y), form="closed", **opts))
        at1 = _f(R.evaluate(grad, x, np.ones_like(y), form="closed", **opts))
        return np.abs(1 - y) * np.abs(at0) + np.abs(y) * np.abs(at1)
    return None


@pytest.mark.parametrize("dt", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("name", list(kr.registry()))
def test_against_references(sk, name, K, dt):
    rng = np.random.default_rng([K, 7 if dt is F64 else 3, len(name)])
    for args, opts in cases(name, rng, K, dt):
        before = [np.copy(a) for a in args]
        out = getattr(sk, name)(*args, **opts)
        for a, b in zip(args, before):
            assert np.array_equal(a, b), "an input was modified"
        for form in ("raw", "closed"):
            ref = R.evaluate(name, *args, form=form, **opts)
            pairs = (
                list(zip(out, ref, ("loss", "grad")))
                if name.endswith("_with_grad")
                else [(out, ref, name)]
            )
            for got, want, part in pairs:
                assert np.asarray(got).dtype == dt
                assert np.shape(got) == np.shape(want)
                scale = None if part == "loss" else term_scale(name, args, opts, want)
                err = scaled_error(got, want, scale)
                assert err <= TOL[dt], f"{name} {part} ({form}, {opts}): error {err:.3g}"


# ----------------------------------------------------------------------------------------------
# Gradients against central finite differences of the loss kernels (float64)
# ----------------------------------------------------------------------------------------------
def _fd(f, x, h=1e-6, relative=False):
    """Central differences: out[..., idx] = d f(x)[...] / d x[idx] for every entry idx of x.

    The step is h * max(1, |x|), or h * |x| with ``relative`` (probabilities, some near 0); a
    probability within a step of 1 takes a one-sided second-order difference from below (the
    kernels refuse probabilities above 1)."""
    columns = []
    for idx in np.ndindex(x.shape):
        step = h * (abs(x[idx]) if relative else max(1.0, abs(x[idx])))

        def at(k):
            v = x.copy()
            v[idx] += k * step
            return np.asarray(f(v))

        if relative and x[idx] + step > 1:
            columns.append((3 * at(0) - 4 * at(-1) + at(-2)) / (2 * step))
        else:
            columns.append((at(1) - at(-1)) / (2 * step))
    return np.stack(columns, axis=-1).reshape(np.shape(f(x)) + x.shape)


GRADS = {  # gradient kernel -> its loss kernel
    "cross_entropy_grad": "cross_entropy",
    "softmax_cross_entropy_grad": "softmax_cross_entropy",
    "binary_cross_entropy_grad": "binary_cross_entropy",
    "sigmoid_binary_cross_entropy_grad": "sigmoid_binary_cross_entropy",
}


@pytest.mark.parametrize("grad_name", list(GRADS))
def test_gradients_match_finite_differences(sk, grad_name):
    rng = np.random.default_rng(11)
    loss = getattr(sk, GRADS[grad_name])
    relative = kr.kernel(grad_name).inputs[0].name == "probs"
    for K in (1, 3, 5):
        for args, opts in cases(grad_name, rng, K, F64):
            for reduction in ("mean", "sum"):  # 'none' is checked per sample below
                o = dict(opts, reduction=reduction)
                got = getattr(sk, grad_name)(*args, **o)
                fd = _fd(lambda x: loss(x, *args[1:], **o), args[0].copy(), relative=relative)
                np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8, err_msg=f"{K} {o}")
            # reduction='none': each sample's (or element's) own gradient
            o = dict(opts, reduction="none")
            got = getattr(sk, grad_name)(*args, **o)
            fd = _fd(lambda x: np.sum(loss(x, *args[1:], **o)), args[0].copy(), relative=relative)
            np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


WITH_GRAD = ["softmax_cross_entropy", "sigmoid_binary_cross_entropy"]  # fused: base + "_with_grad"


@pytest.mark.parametrize("dt", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("base", WITH_GRAD)
def test_with_grad_is_loss_and_grad(sk, base, dt):
    """The fused kernels return the separate kernels' numbers, bit for bit (huge logits too)."""
    rng = np.random.default_rng(5)
    big = np.array([[1e4, -1e4, 0.0, 88.0, -104.0], [-745.0, 40.0, -1e-8, 3.0, np.inf]], dtype=dt)
    extra = (
        [((big[:, :4], np.array([0, 3])), {}), ((big, np.eye(2, 5, dtype=dt)), {})]
        if base.startswith("softmax")
        else [
            ((big, np.eye(2, 5, dtype=dt)), dict(reduction=r, pos_weight=np.arange(5, dtype=dt)))
            for r in ("none", "mean", "sum")
        ]
    )
    for args, opts in cases(base, rng, 5, dt) + extra:
        loss, grad = getattr(sk, base + "_with_grad")(*args, **opts)
        np.testing.assert_array_equal(loss, getattr(sk, base)(*args, **opts))
        np.testing.assert_array_equal(grad, getattr(sk, base + "_grad")(*args, **opts))
        assert np.asarray(loss).dtype == dt and grad.dtype == dt


def test_rowwise_derivatives_match_finite_differences(sk):
    rng = np.random.default_rng(12)
    x = rng.standard_normal(7) * 3
    np.testing.assert_allclose(sk.sigmoid_grad(x), np.diag(_fd(sk.sigmoid, x)), rtol=1e-7)
    z = random_logits(rng, 3, 4)
    g = rng.standard_normal((3, 4))
    for n in range(3):
        J = _fd(sk.softmax, z[n].copy())  # J[i, j] = dp_i / dz_j
        np.testing.assert_allclose(sk.softmax_jacobian(z)[n], J, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(sk.softmax_vjp(z, g)[n], J.T @ g[n], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(_fd(sk.logsumexp, z[n].copy()), sk.softmax(z[n]), rtol=1e-7)


# ----------------------------------------------------------------------------------------------
# Published seed values
# ----------------------------------------------------------------------------------------------
def test_seed_values(sk):
    p = sk.softmax(np.array([-2.85, 0.86, 0.28]))
    exact = [0.0154493156760736, 0.631163353604709, 0.353387330719218]
    np.testing.assert_allclose(p, exact, rtol=1e-13)
    np.testing.assert_allclose(
        p, [0.0154493156751271, 0.631163353697413, 0.353387330637003], rtol=1e-9
    )  # the published (Maple) values, good to ~1e-9
    # CE of those scores with the correct class 3 (1-based), i.e. index 2
    ce = sk.softmax_cross_entropy(np.array([-2.85, 0.86, 0.28]), 2)
    assert abs(ce - 1.0401905694301) < 1e-13 and abs(ce - 1.040190570) < 1e-9
    assert abs(sk.cross_entropy(p, 2) - 1.0401905694301) < 1e-13
    # logits (1, 2, 0.5), class index 1 ("dog"): 0.464368784107945 (not the seed's 0.462)
    logits = np.array([1.0, 2.0, 0.5])
    loss, grad = sk.softmax_cross_entropy_with_grad(logits, 1)
    assert abs(loss - 0.464368784107945) < 1e-14
    assert abs(loss - 0.462) > 1e-3
    # dL/dz = p - y (not y - p): negative only at the true class
    q = sk.softmax(logits)
    np.testing.assert_allclose(grad, q - np.array([0.0, 1.0, 0.0]), rtol=1e-15, atol=1e-16)
    assert grad[1] < 0 < grad[0] and grad[2] > 0


# ----------------------------------------------------------------------------------------------
# Stability and edge cases
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dt,big", [(F64, 1e4), (F64, 1e300), (F32, 100.0), (F32, 1e4), (F32, 1e30)]
)
def test_huge_logits_are_finite_and_accurate(sk, dt, big):
    z = np.array(
        [[big, -big, 0.0], [-big, -big, -big], [big, big, big * 0.5], [0.5, big, -big]], dtype=dt
    )
    labels = np.array([0, 1, 2, 1])
    for name, args in [
        ("softmax", (z,)),
        ("log_softmax", (z,)),
        ("logsumexp", (z,)),
        ("softmax_cross_entropy", (z, labels)),
        ("softmax_cross_entropy_grad", (z, labels)),
        ("sigmoid", (z,)),
        ("sigmoid_grad", (z,)),
        ("sigmoid_binary_cross_entropy", (z, np.eye(4, 3, dtype=dt))),
        ("sigmoid_binary_cross_entropy_grad", (z, np.eye(4, 3, dtype=dt))),
    ]:
        out = getattr(sk, name)(*args)
        assert np.all(np.isfinite(out)), name
        err = scaled_error(
            out,
            R.evaluate(name, *args, form="closed"),
            term_scale(name, args, {}, R.evaluate(name, *args, form="closed")),
        )
        assert err <= TOL[dt], (name, err)


@pytest.mark.parametrize("dt", [F64, F32])
def test_dominant_logit_keeps_log_p_accurate(sk, dt):
    # log p of the dominant class is -log1p(Srest), about -3.9e-22 here: z - lse would give 0
    z = np.array([[50.0, 0.0, 0.0], [20.0, -1.0, 3.0]], dtype=dt)
    for name in ("log_softmax", "softmax_cross_entropy"):
        args = (z,) if name == "log_softmax" else (z, np.array([0, 0]))
        out = getattr(sk, name)(*args, **({} if name == "log_softmax" else {"reduction": "none"}))
        ref = R.evaluate(
            name, *args, form="raw", **({} if name == "log_softmax" else {"reduction": "none"})
        )
        assert scaled_error(out, ref) <= 4 * np.finfo(dt).eps, name
    assert sk.log_softmax(z)[0, 0] < 0


@pytest.mark.parametrize("dt", [F64, F32])
def test_equal_logits_give_uniform_rows(sk, dt):
    for K in (1, 2, 3, 7, 16):
        z = np.full((2, K), 3.25, dtype=dt)
        np.testing.assert_allclose(sk.softmax(z), 1.0 / K, rtol=2 * np.finfo(dt).eps)
        np.testing.assert_allclose(sk.log_softmax(z), -np.log(K), rtol=2 * np.finfo(dt).eps, atol=0)
        np.testing.assert_allclose(sk.logsumexp(z), 3.25 + np.log(K), rtol=2 * np.finfo(dt).eps)


@pytest.mark.parametrize("dt", [F64, F32])
def test_masked_classes_with_zero_target_contribute_nothing(sk, dt):
    z = np.array([[1.0, -np.inf, 2.0, 0.5], [-np.inf, 0.3, -np.inf, -1.0]], dtype=dt)
    labels = np.array([2, 3])
    soft = np.array([[0.2, 0.0, 0.8, 0.0], [0.0, 0.5, 0.0, 0.5]], dtype=dt)
    for target in (labels, soft):
        loss, grad = sk.softmax_cross_entropy_with_grad(z, target, reduction="none")
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
        assert np.all(grad[np.isinf(z)] == 0)
        assert (
            scaled_error(
                loss,
                R.evaluate("softmax_cross_entropy", z, target, form="closed", reduction="none"),
            )
            <= TOL[dt]
        )
    p = sk.softmax(z)
    assert np.all(p[np.isinf(z)] == 0) and np.all(np.isfinite(p))
    # the same loss as the unmasked classes alone
    np.testing.assert_allclose(
        sk.softmax_cross_entropy(z[:1], labels[:1]),
        sk.softmax_cross_entropy(z[:1, [0, 2, 3]], np.array([1])),
        rtol=4 * np.finfo(dt).eps,
    )


@pytest.mark.parametrize("dt", [F64, F32])
def test_probabilities_zero_and_one_stay_finite(sk, dt):
    p = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=dt)
    y = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=dt)
    for name, args in [
        ("binary_cross_entropy", (p, y)),
        ("binary_cross_entropy_grad", (p, y)),
        ("cross_entropy", (p, np.array([0, 1, 0]))),
        ("cross_entropy_grad", (p, np.array([0, 1, 0]))),
        ("cross_entropy", (p, y)),
        ("cross_entropy_grad", (p, y)),
    ]:
        for reduction in ("none", "sum"):
            out = getattr(sk, name)(*args, reduction=reduction)
            assert np.all(np.isfinite(out)), (name, reduction)
            ref = R.evaluate(name, *args, form="raw", reduction=reduction)
            assert scaled_error(out, ref) <= TOL[dt], (name, reduction)
    # the clamps: log at -100, denominators at 1e-12
    assert sk.binary_cross_entropy(p[:1], y[:1], reduction="none")[0, 0] == 100
    assert sk.cross_entropy(p[:1], np.array([0]), reduction="none")[0] == 100
    np.testing.assert_allclose(
        sk.cross_entropy_grad(p[:1], np.array([0]), reduction="sum"), [[-1e12, 0.0]], rtol=1e-6
    )


@pytest.mark.parametrize("dt", [F64, F32])
def test_nan_in_gives_nan_out(sk, dt):
    z = np.array([[np.nan, 1.0, 2.0], [0.0, 1.0, 2.0]], dtype=dt)
    probs = np.array([[np.nan, 0.2, 0.7], [0.1, 0.5, 0.4]], dtype=dt)
    labels = np.array([0, 0])
    for name in ("softmax", "log_softmax", "logsumexp", "softmax_jacobian"):
        out = getattr(sk, name)(z)
        assert np.all(np.isnan(out[0])) and not np.any(np.isnan(out[1])), name
    assert np.all(np.isnan(sk.softmax_vjp(z, np.ones_like(z))[0]))
    for name, x in (("softmax_cross_entropy", z), ("cross_entropy", probs)):
        loss = getattr(sk, name)(x, labels, reduction="none")
        assert np.isnan(loss[0]) and not np.isnan(loss[1]), name
        assert np.isnan(getattr(sk, name)(x, labels))
        grad = getattr(sk, name + "_grad")(x, labels, reduction="none")
        assert np.isnan(grad[0]).any() and not np.isnan(grad[1]).any(), name
    for name in ("sigmoid", "sigmoid_grad"):
        assert np.array_equal(np.isnan(getattr(sk, name)(z)), np.isnan(z))
    y = np.full_like(z, 0.5)
    for name, x in (("binary_cross_entropy", probs), ("sigmoid_binary_cross_entropy", z)):
        for grad in ("", "_grad"):
            out = getattr(sk, name + grad)(x, y, reduction="none")
            assert np.array_equal(np.isnan(out), np.isnan(x)), name + grad
        assert np.isnan(getattr(sk, name)(x, y))
    for out in sk.sigmoid_binary_cross_entropy_with_grad(z, y, reduction="none"):
        assert np.array_equal(np.isnan(out), np.isnan(z))
    # a NaN in a probability target shows too (a NaN weight is refused: see the bad-input tests)
    assert np.isnan(sk.softmax_cross_entropy(z[1:], np.array([[np.nan, 0.5, 0.5]], dtype=dt)))
    assert np.isnan(sk.sigmoid_binary_cross_entropy(z[1], np.array([0.5, np.nan, 0.5], dtype=dt)))


@pytest.mark.parametrize("dt", [F64, F32])
def test_non_finite_rows(sk, dt):
    # a row of -inf: S = 0, so p = 0/0 and log p = -inf + inf are NaN, and lse = log 0 = -inf
    # (the references divide by zero here)
    z = np.full((1, 3), -np.inf, dtype=dt)
    for name in ("softmax", "log_softmax", "softmax_jacobian"):
        assert np.all(np.isnan(getattr(sk, name)(z))), name
    assert sk.logsumexp(z) == -np.inf
    assert np.all(np.isnan(sk.softmax_cross_entropy_with_grad(z, np.array([1]))[0]))
    # a row holding +inf: shift 0 and Srest = inf, so NaN where inf/inf or inf - inf occurs
    # (the +inf entry, a target on it) and the limits elsewhere, as the references
    z = np.array([[np.inf, 0.0, -1.0]], dtype=dt)
    for name in ("softmax", "log_softmax", "logsumexp"):
        assert scaled_error(getattr(sk, name)(z), R.evaluate(name, z, form="closed")) == 0, name
    for t in (0, 1):
        for name in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
            got = getattr(sk, name)(z, np.array([t]), reduction="none")
            ref = R.evaluate(name, z, np.array([t]), form="closed", reduction="none")
            assert scaled_error(got, ref) == 0, (name, t)


@pytest.mark.parametrize("dt", [F64, F32])
def test_one_class(sk, dt):
    z = np.array([[3.0], [-1e4], [0.0]], dtype=dt)
    labels = np.zeros(3, dtype=np.int64)
    assert np.all(sk.softmax(z) == 1) and np.all(sk.log_softmax(z) == 0)
    np.testing.assert_array_equal(sk.logsumexp(z), z[:, 0])
    assert np.all(sk.softmax_jacobian(z) == 0) and sk.softmax_jacobian(z).shape == (3, 1, 1)
    loss, grad = sk.softmax_cross_entropy_with_grad(z, labels)
    assert loss == 0 and np.all(grad == 0) and loss.dtype == dt
    assert sk.cross_entropy(np.ones((3, 1), dtype=dt), labels) == 0


@pytest.mark.parametrize("dt", [F64, F32])
def test_empty_batch(sk, dt):
    z = np.zeros((0, 3), dtype=dt)
    labels = np.zeros(0, dtype=np.int64)
    assert sk.softmax(z).shape == (0, 3) and sk.logsumexp(z).shape == (0,)
    assert sk.softmax_jacobian(z).shape == (0, 3, 3)
    assert sk.softmax_vjp(z, z).shape == (0, 3)
    for target in (labels, np.zeros((0, 3), dtype=dt), []):
        for name in ("softmax_cross_entropy", "cross_entropy"):
            f, g = getattr(sk, name), getattr(sk, name + "_grad")
            assert np.isnan(f(z, target)) and f(z, target).dtype == dt
            assert f(z, target, reduction="sum") == 0
            assert f(z, target, reduction="none").shape == (0,)
            assert g(z, target).shape == (0, 3) and g(z, target).dtype == dt
        loss, grad = sk.softmax_cross_entropy_with_grad(z, target, reduction="sum")
        assert loss == 0 and grad.shape == (0, 3)
    for name in ("binary_cross_entropy", "sigmoid_binary_cross_entropy"):
        f, g = getattr(sk, name), getattr(sk, name + "_grad")
        assert np.isnan(f(z, z)) and f(z, z, reduction="sum") == 0
        assert f(z, z, reduction="none").shape == (0, 3) and g(z, z).shape == (0, 3)
    loss, grad = sk.sigmoid_binary_cross_entropy_with_grad(z, z)
    assert np.isnan(loss) and grad.shape == (0, 3) and grad.dtype == dt


def test_all_ignored_mean_is_nan_and_gradient_zero(sk):
    z = random_logits(np.random.default_rng(3), 3, 4)
    t = np.full(3, -100)
    assert np.isnan(sk.softmax_cross_entropy(z, t))
    assert sk.softmax_cross_entropy(z, t, reduction="sum") == 0
    assert np.all(sk.softmax_cross_entropy_grad(z, t) == 0)
    assert np.all(sk.cross_entropy_grad(sk.softmax(z), t) == 0)


# ----------------------------------------------------------------------------------------------
# Layout: strides, axis, dtype, 1-D samples
# ----------------------------------------------------------------------------------------------
def _strided_variants(a):
    """Non-contiguous and negative-stride views holding the same values as ``a``."""
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
    wide[:, ::2] = a
    flipped = np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    fortran = np.asfortranarray(a)
    return {"every other column": wide[:, ::2], "negative strides": flipped, "Fortran": fortran}


@pytest.mark.parametrize("dt", [F64, F32])
def test_strided_views_give_the_same_results(sk, dt):
    rng = np.random.default_rng(9)
    for name in kr.registry():
        for args, opts in cases(name, rng, 5, dt):
            want = getattr(sk, name)(*args, **opts)
            for how, view in _strided_variants(args[0]).items():
                assert not view.flags.c_contiguous and np.array_equal(view, args[0])
                got = getattr(sk, name)(view, *args[1:], **opts)
                for g, w in zip(got, want) if name.endswith("_with_grad") else [(got, want)]:
                    np.testing.assert_allclose(
                        g,
                        w,
                        rtol=8 * np.finfo(dt).eps,
                        atol=8 * np.finfo(dt).tiny,
                        err_msg=f"{name} {how}",
                    )
            if len(args) > 1 and np.ndim(args[1]) == 2:  # a strided target (or g) too
                view = _strided_variants(args[1])["negative strides"]
                got = getattr(sk, name)(args[0], view, *args[2:], **opts)
                for g, w in zip(got, want) if name.endswith("_with_grad") else [(got, want)]:
                    np.testing.assert_allclose(g, w, rtol=8 * np.finfo(dt).eps)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_axis(sk, name):
    z = random_logits(np.random.default_rng(4), 3, 5)
    f = getattr(sk, name)
    want = f(z)
    for axis in (0, -2):
        got = f(z.T, axis=axis)
        np.testing.assert_allclose(got.T if got.ndim == 2 else got, want, rtol=1e-15)
    z3 = np.stack([z, 2 * z])  # (2, 3, 5) with the classes on axis 1
    got = f(np.swapaxes(z3, 1, 2), axis=1)
    np.testing.assert_allclose(
        np.swapaxes(got, 1, 2) if got.ndim == 3 else got, np.stack([f(z), f(2 * z)]), rtol=1e-15
    )


@pytest.mark.parametrize("dt", [F64, F32])
def test_dtype_is_kept(sk, dt):
    rng = np.random.default_rng(1)
    for name in kr.registry():
        for args, opts in cases(name, rng, 3, dt):
            out = getattr(sk, name)(*args, **opts)
            for o in out if name.endswith("_with_grad") else [out]:
                assert np.asarray(o).dtype == dt, (name, opts)
                if np.ndim(o) == 0:
                    assert isinstance(o, dt), (name, type(o))


def test_one_sample_is_a_1d_row(sk):
    rng = np.random.default_rng(2)
    z = random_logits(rng, 2, 4)
    y = random_distribution(rng, 2, 4)
    for name in kr.registry():
        fam = kr.kernel(name).family
        if fam in ("ce_probs", "ce_logits"):
            x = y if fam == "ce_probs" else z
            for t_row, t_batch in ((3, np.array([3])), (y[0], y[:1])):
                one = getattr(sk, name)(x[0], t_row, reduction="none")
                batch = getattr(sk, name)(x[:1], t_batch, reduction="none")
                for a, b in zip(one, batch) if name.endswith("_with_grad") else [(one, batch)]:
                    assert np.shape(a) == np.shape(b)[1:]
                    np.testing.assert_array_equal(a, b[0])
        elif fam == "rowwise":
            args = (z[0], z[1]) if name == "softmax_vjp" else (z[0],)
            one = getattr(sk, name)(*args)
            batch = getattr(sk, name)(*(a[None] for a in args))
            np.testing.assert_array_equal(one, batch[0])


# ----------------------------------------------------------------------------------------------
# The printer
# ----------------------------------------------------------------------------------------------
def test_printer_maps_symce_functions_and_names():
    import sympy as sp

    from symce.functions import clamp_min, log1p, mul0, softplus

    pr = numpy_backend.printer("ce_logits")
    z, yt, srest = kr.LOCALS["zs"], kr.LOCALS["yt"], kr.LOCALS["Srest"]
    assert pr.doprint(softplus(z)) == "_softplus(zs)"
    assert pr.doprint(clamp_min(z, -100)) == "np.maximum(zs, -100)"
    assert pr.doprint(mul0(yt, log1p(srest))) == "_mul0(yt, np.log1p(srest))"
    assert pr.doprint(sp.Max(z, 0)) == "np.maximum(0, zs)"
    assert dict(pr.module_imports) == {"numpy": {"maximum", "log1p"}}
    assert numpy_backend.printer("ce_probs").doprint(kr.LOCALS["p"]) == "probs"
    with pytest.raises(ValueError, match="not bound"):
        numpy_backend.printer("elementwise").doprint(z)
    with pytest.raises(Exception, match="Unsupported"):  # strict: no silent partial printing
        pr.doprint(sp.Function("mystery")(z))
    # the module's _softplus (emitted where a kernel calls it) is softplus(t).stable(), printed
    helpers = {h["name"]: h["body"] for h in numpy_backend.formula_helpers()}
    assert helpers["_softplus"] == ["return np.log1p(np.exp(-np.abs(t))) + np.maximum(0, t)"]


def test_printer_maps_the_numerics_functions():
    from symce.functions import expm1, mul0, sigmoid, two_sum_err

    pr = numpy_backend.printer("rowwise")
    zs, zlo, z, shift = (kr.LOCALS[n] for n in ("zs", "zlo", "z", "shift"))
    assert pr.doprint(two_sum_err(z, -shift)) == "_two_sum_err(z, -shift)"
    assert pr.doprint(expm1(zs) + mul0(zlo, kr.LOCALS["e"])) == "np.expm1(zs) + _mul0(zlo, e)"
    assert numpy_backend.printer("elementwise").doprint(sigmoid(-kr.LOCALS["x"])) == "_sigmoid(-x)"
    helpers = {h["name"]: h["body"] for h in numpy_backend.formula_helpers()}
    # sigmoid(t).stable(), printed: exp(min(t, 0)) / (1 + exp(-|t|)), min NaN-propagating
    assert helpers["_sigmoid"] == ["return np.exp(-np.maximum(-t, 0))/(1 + np.exp(-np.abs(t)))"]
    # TwoSum in its order of operations (SymPy must not fold the error term to a + b - s = 0)
    assert helpers["_two_sum_err"] == [
        "s = a + b",
        "t = -a + s",
        "err = (a - (s - t)) + (b - t)",
        "return np.where(np.isfinite(s), err, 0)",
    ]


def test_row_code_is_printed_slots():
    """Every exp/log in the row kernels comes from a printed slot: the templates type no math."""
    import re

    templates = numpy_backend.GENERATED.parent / "templates" / "numpy"
    for path in templates.glob("*.jinja"):
        text = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"), flags=re.S)
        found = re.findall(r"np\.(exp|expm1|log|log1p|maximum|minimum|abs|sqrt)\b", text)
        assert not found, f"{path.name} types {found}"
    code = numpy_backend.kernel_context(kr.kernel("softmax"))["code"]
    assert {"zs", "zlo", "e", "em1", "em1_a", "p"} <= set(code)
    assert code["em1_a"] == "np.expm1(zs_a) + _mul0(zlo_a, np.exp(zs_a))"
    # the cross-entropy from logits runs its rows as block programs (numpy_blocks.py), printed
    # from the same slots; only the class part of y~ is printed for its template
    ctx = numpy_backend.kernel_context(kr.kernel("softmax_cross_entropy_with_grad"))
    assert set(ctx["code"]) == {"yt_class"} and ctx["programs"]


# ----------------------------------------------------------------------------------------------
# Memory: the loss kernels work in blocks, so their extra memory is the outputs and a few blocks
# ----------------------------------------------------------------------------------------------
def _peak(f, *args, **opts):
    """Peak bytes NumPy allocates during f(*args, **opts) (tracemalloc traces NumPy's data)."""
    import tracemalloc

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        f(*args, **opts)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dt", [F64, F32], ids=["f64", "f32"])
def test_peak_memory_of_the_fused_kernels(sk, dt):
    """At most 2 arrays of the input's size: the gradient (1) and the block buffers (measured
    0.3-0.5 at these sizes; the textbook NumPy allocates 3-4, the row-at-once code took 5-26)."""
    rng = np.random.default_rng(13)
    z = random_logits(rng, 4096, 512, dtype=dt)
    for target, opts in (
        (rng.integers(0, 512, 4096), {}),
        (rng.integers(0, 512, 4096), dict(label_smoothing=0.1, weight=np.ones(512, dt))),
        (random_distribution(rng, 4096, 512, dt), {}),
    ):
        peak = _peak(sk.softmax_cross_entropy_with_grad, z, target, **opts)
        assert peak <= 2 * z.nbytes, (peak / z.nbytes, opts)
    x = (rng.standard_normal(2_000_000) * 3).astype(dt)
    y = rng.random(x.shape).astype(dt)
    assert _peak(sk.sigmoid_binary_cross_entropy_with_grad, x, y) <= 2 * x.nbytes
    x2, y2 = x.reshape(-1, 100), y.reshape(-1, 100)
    pw = np.ones(100, dt)
    assert (
        _peak(sk.sigmoid_binary_cross_entropy_with_grad, x2, y2, pos_weight=pw, weight=pw)
        <= 2 * x.nbytes
    )
    # reduction='none': the two outputs, and the same blocks
    assert (
        _peak(sk.sigmoid_binary_cross_entropy_with_grad, x2, y2, reduction="none") <= 2.5 * x.nbytes
    )


def test_inplace_emitter_and_buffer_reuse():
    """Block programs: ufunc calls with out=, the parts that do not vary over the block grouped
    into one expression, a dying operand's buffer reused, and the program computes the formula."""
    import sympy as sp

    from symce.lang import numpy_blocks as nb

    e, zs, r, c = sp.symbols("e zs r c", real=True)
    small = numpy_backend.NumPyKernelPrinter({"e": "e", "zs": "zs", "r": "r", "c": "c", "g": "g"})
    steps = [
        nb.Step("view", name="zs", code="src"),
        nb.block("e", sp.exp(zs)),
        nb.block("g", e * r / (r + 1) - c),
        nb.line("out = g", reads=("g",)),
    ]
    lines, nbuf = nb.assemble(steps, small, {"zs"})
    assert lines == [
        "zs = src",
        "e = np.exp(zs, out=_b0)",
        "np.divide(e, (r + 1)/r, out=_b0)",
        "g = np.subtract(_b0, c, out=_b0)",
        "out = g",
    ]
    assert nbuf == 1
    src = np.linspace(-3, 1, 12).reshape(3, 4)
    env = {
        "np": np,
        "src": src,
        "r": np.array([[1.0], [2.0], [3.0]]),
        "c": np.arange(4.0),
        "_b0": np.empty((3, 4)),
    }
    exec("\n".join(lines), env)
    np.testing.assert_allclose(
        env["out"], np.exp(src) * env["r"] / (env["r"] + 1) - env["c"], rtol=1e-14, atol=1e-14
    )


def test_shared_exp_is_the_stable_forms():
    """The BCE programs' one exp(-|x|): softplus and sigmoid of +-x from it equal their stable
    forms bit for bit (x < 0: exp(x) is exp(-|x|)), NaN included."""
    import sympy as sp

    from symce.functions import sigmoid, softplus

    x = kr.LOCALS["x"]
    names = {"x": "x", "E": "E", "L": "L"}
    pr = numpy_backend.NumPyKernelPrinter(names)
    xs = np.array([-800.0, -40.0, -1.5, -1e-9, 0.0, 1e-9, 2.0, 36.0, 800.0, np.nan])
    env = {"np": np, "x": xs, "_softplus": None}
    with np.errstate(all="ignore"):
        env["E"] = np.exp(-np.abs(xs))
        env["L"] = np.log1p(env["E"])
        for f in (softplus(x), softplus(-x), sigmoid(x), sigmoid(-x)):
            shared = eval(pr.doprint(numpy_backend.shared_exp(f)), env)
            direct = eval(pr.doprint(f.stable()), env)
            np.testing.assert_array_equal(shared, direct, err_msg=str(f))
    assert not any(
        numpy_backend.shared_exp(f(s * x)).has(sp.exp)  # only E = exp(-|x|)
        for f in (sigmoid, softplus)
        for s in (1, -1)
    )
