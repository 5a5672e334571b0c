"""The generated NumPy module as NumPy code: what only the NumPy language has.

Its docstring examples run, it exports every kernel and imports only numpy, it has no Python loop
over samples or classes, it works from a copy anywhere, strided and Fortran views, the ``axis``
argument, NumPy scalars of the input's dtype, a 1-D row as one sample, a list target, the printer
and the printed slots, the block programs' memory and their in-place emitter.

The numeric checks (references, finite differences, seed values, special values) are written
once for every language in tests/test_kernels.py.
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import shutil
import subprocess
import sys

import numpy as np
import pytest

from symce import kernels as kr
from symce.lang import numpy_backend

from support import random_distribution, random_logits

F64, F32 = np.float64, np.float32
N = 4


@pytest.fixture(scope="module")
def sk():
    return numpy_backend.load_generated()


# ----------------------------------------------------------------------------------------------
# The module itself
# ----------------------------------------------------------------------------------------------
def test_docstrings_describe_each_familys_target(sk):
    """A cross-entropy's target is labels or probability rows; a BCE's, targets of the input's
    shape."""
    for name, kern in kr.registry().items():
        if "target" not in [a.name for a in kern.inputs]:
            continue
        line = next(ln for ln in getattr(sk, name).__doc__.splitlines() if "target:" in ln)
        words = "class indices" if kern.family in ("ce_probs", "ce_logits") else "the input's shape"
        assert words in line or words in getattr(sk, name).__doc__.split("target:")[1][:200], name


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
# Inputs per kernel (the layout tests call every kernel with every option)
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


@pytest.mark.parametrize("dt", [F64, F32])
def test_a_list_target(sk, dt):
    """Targets are array-like: a list of labels, or [] for a batch of none (the empty batch with
    array targets, in every language, is in test_kernels.py)."""
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=dt)
    for name in ("softmax_cross_entropy", "cross_entropy"):
        x = z if name.startswith("softmax") else sk.softmax(z)
        for red in ("none", "sum", "mean"):
            for suffix in ("", "_grad"):
                f = getattr(sk, name + suffix)
                np.testing.assert_array_equal(
                    f(x, [1, 2], reduction=red), f(x, np.array([1, 2]), reduction=red)
                )
        z0 = np.zeros((0, 3), dtype=dt)
        f, g = getattr(sk, name), getattr(sk, name + "_grad")
        assert np.isnan(f(z0, [])) and f(z0, []).dtype == dt
        assert f(z0, [], reduction="sum") == 0 and f(z0, [], reduction="none").shape == (0,)
        assert g(z0, []).shape == (0, 3) and g(z0, []).dtype == dt
    loss, grad = sk.softmax_cross_entropy_with_grad(np.zeros((0, 3), dtype=dt), [], reduction="sum")
    assert loss == 0 and grad.shape == (0, 3)


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
    ctx = numpy_backend.kernel_context(kr.kernel("softmax"))
    code = ctx["code"]
    assert {"zs", "zlo", "e", "em1_a"} <= set(code)
    assert code["em1_a"] == "np.expm1(zs_a) + _mul0(zlo_a, np.exp(zs_a))"
    assert ctx["row_after"] == ["p = e/(srest + 1)"]  # softmax: no NaN rows, no complement
    jac = numpy_backend.kernel_context(kr.kernel("softmax_jacobian"))["row_after"]
    assert jac[0] == "_nan_at_inf(srest)"
    assert [line.split(" = ")[0] for line in jac[1:]] == ["p", "em1", "pc"]
    # the cross-entropy from logits runs its rows as block programs (numpy_blocks.py), printed
    # from the same slots, laid out by its program's lines; its template reads no printed slot
    ctx = numpy_backend.kernel_context(kr.kernel("softmax_cross_entropy_with_grad"))
    assert set(ctx["code"]) == set() and ctx["programs"]
    labels = ctx["program"]["labels"]
    assert labels[1] == "c = label_smoothing*w_k/n_classes"  # y~ at hot = 0: the class part


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
