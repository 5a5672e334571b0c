"""Bad input to the generated NumPy kernels (docs/semantics.md, "Bad input", NumPy column): every
row of the table, for every kernel it applies to.  Each error is a ValueError or TypeError whose
message starts with the argument's name and says what was expected and what was given.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from symce import kernels as kr
from symce.lang import numpy_backend

CE = [n for n, k in kr.registry().items() if k.family in ("ce_probs", "ce_logits")]
BCE = [n for n, k in kr.registry().items() if k.family == "bce"]
ROWWISE = [n for n, k in kr.registry().items() if k.family == "rowwise"]
ELEMENTWISE = [n for n, k in kr.registry().items() if k.family == "elementwise"]
SBCE = [n for n in BCE if n.startswith("sigmoid")]


@pytest.fixture(scope="module")
def sk():
    return numpy_backend.load_generated()


def raises(exc, arg, func, *args, match=None, **kwargs):
    """func(*args, **kwargs) raises exc with a message 'arg: expected ..., got ...'."""
    with pytest.raises(exc) as info:
        func(*args, **kwargs)
    msg = str(info.value)
    assert msg.startswith(arg + ":"), msg
    assert "expected" in msg and ("got" in msg or "given" in msg), msg
    if match:
        assert re.search(match, msg), msg
    return msg


def good(name, dt=np.float64, n=3, k=4):
    """Valid arguments for kernel ``name``."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, k)).astype(dt)
    fam = kr.kernel(name).family
    if fam == "elementwise":
        return [z]
    if fam == "rowwise":
        return [z, z.copy()] if name == "softmax_vjp" else [z]
    labels = np.arange(n) % max(k, 1)
    if fam == "ce_probs":
        return [np.full((n, k), 1.0 / max(k, 1), dtype=dt), labels]
    if fam == "ce_logits":
        return [z, labels]
    x = np.full((n, k), 0.5, dtype=dt) if name.startswith("binary") else z
    return [x, np.ones((n, k), dtype=dt)]


def test_the_valid_inputs_are_valid(sk):
    for name in kr.registry():
        getattr(sk, name)(*good(name))


# K = 0 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ROWWISE + CE)
def test_no_classes(sk, name):
    args = good(name, k=0)
    raises(ValueError, kr.kernel(name).inputs[0].name, getattr(sk, name), *args, match="K >= 1")


# wrong shapes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CE)
def test_target_shape(sk, name):
    x, labels = good(name)
    f = getattr(sk, name)
    raises(ValueError, "target", f, x, np.arange(4) % 4, match=r"\(3,\)")  # N + 1 labels
    raises(ValueError, "target", f, x, np.zeros((3, 5)), match=r"\(3, 4\)")  # K + 1 columns
    raises(ValueError, "target", f, x, np.zeros((3, 4, 1)))
    raises(ValueError, "target", f, x[0], labels, match=r"\(\)")  # one sample: a scalar
    raises(ValueError, kr.kernel(name).inputs[0].name, f, x[None], labels, match="(N, K)")


@pytest.mark.parametrize("name", CE)
def test_weight_length(sk, name):
    x, labels = good(name)
    for w in (np.ones(3), np.ones(5), np.ones((1, 4)), 1.0):
        raises(ValueError, "weight", getattr(sk, name), x, labels, weight=w, match=r"\(4,\)")


def test_vjp_g_shape(sk):
    z = good("softmax_vjp")[0]
    for g in (z[:, :3], z[:2], z[0], z[None]):
        raises(ValueError, "g", sk.softmax_vjp, z, g, match=r"\(3, 4\)")


@pytest.mark.parametrize("name", BCE)
def test_bce_shapes(sk, name):
    x, y = good(name)
    f = getattr(sk, name)
    raises(ValueError, "target", f, x, y[:, :3])
    raises(ValueError, "target", f, x, y[0])  # PyTorch: the target has the input's size
    raises(ValueError, "weight", f, x, y, weight=np.ones(3))
    raises(ValueError, "weight", f, x, y, weight=np.ones((2, 3, 4)))
    if name in SBCE:
        raises(ValueError, "pos_weight", f, x, y, pos_weight=np.ones(5))


@pytest.mark.parametrize("name", ROWWISE)
def test_rowwise_shapes_and_axis(sk, name):
    f = getattr(sk, name)
    args = good(name)
    raises(ValueError, "z", f, np.float64(1.0), *args[1:], match="scalar")
    if name in ("softmax", "log_softmax", "logsumexp"):
        raises(ValueError, "axis", f, args[0], axis=2, match="ndim 2")
        raises(ValueError, "axis", f, args[0], axis=-3)
        raises(TypeError, "axis", f, args[0], axis=1.0)
        raises(TypeError, "axis", f, args[0], axis=None)
        raises(ValueError, "z", f, np.zeros((3, 0, 2)), axis=1, match="K >= 1")


# labels ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CE)
def test_labels_must_be_integers(sk, name):
    x, labels = good(name)
    f = getattr(sk, name)
    raises(TypeError, "target", f, x, labels.astype(np.float64), match="integer")
    raises(TypeError, "target", f, x, [0.0, 1.0, 2.0], match="integer")
    raises(TypeError, "target", f, x, labels.astype(bool), match="bool")
    raises(TypeError, "target", f, x, np.array(["a", "b", "c"]))
    raises(TypeError, "target", f, x[0], 1.0)
    raises(TypeError, "ignore_index", f, x, labels, ignore_index=1.5)
    raises(TypeError, "ignore_index", f, x, labels, ignore_index=None)


@pytest.mark.parametrize("name", CE)
def test_labels_in_range(sk, name):
    x, labels = good(name)
    f = getattr(sk, name)
    for bad in (4, -1, -100, 10**6):
        t = labels.copy()
        t[2] = bad
        kwargs = {"ignore_index": 7} if bad == -100 else {}
        raises(ValueError, "target", f, x, t, match=rf"\[0, 4\).*got {bad} at position 2", **kwargs)
    raises(ValueError, "target", f, x[0], 4)
    raises(ValueError, "target", f, x, np.array([0, 1, 2], dtype=np.uint8) + 3)
    # ignore_index itself is fine anywhere, also outside [0, K)
    t = labels.copy()
    t[1] = 99
    f(x, t, ignore_index=99)


# weights ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CE + BCE)
def test_weights_nonnegative_and_not_nan(sk, name):
    args = good(name)
    f = getattr(sk, name)
    k = args[0].shape[-1]
    options = ("weight", "pos_weight") if name in SBCE else ("weight",)
    for option in options:
        for value, shown in ((-0.5, "-0.5"), (np.nan, "nan")):
            w = np.ones(k)
            w[1] = value
            raises(
                ValueError,
                option,
                f,
                *args,
                match=rf"non-negative.*got {shown} at index 1",
                **{option: w},
            )
        f(*args, **{option: np.zeros(k)})  # zero is fine
        if name in BCE:  # a scalar weight is checked too
            raises(ValueError, option, f, *args, match="got -1.0", **{option: -1.0})


# label_smoothing and reduction -----------------------------------------------------------------
@pytest.mark.parametrize("name", CE)
def test_label_smoothing_range(sk, name):
    args = good(name)
    f = getattr(sk, name)
    for eps in (-0.1, 1.5, np.nan, np.inf):
        raises(ValueError, "label_smoothing", f, *args, label_smoothing=eps, match=r"\[0, 1\]")
    for eps in ("0.1", None, np.array([0.1]), True):
        raises(TypeError, "label_smoothing", f, *args, label_smoothing=eps)
    f(*args, label_smoothing=1)  # the ends are fine, as in PyTorch
    f(*args, label_smoothing=np.float32(0.0))


@pytest.mark.parametrize("name", CE + BCE)
def test_unknown_reduction(sk, name):
    for reduction in ("avg", "MEAN", None, 1):
        raises(
            ValueError,
            "reduction",
            getattr(sk, name),
            *good(name),
            reduction=reduction,
            match="'none', 'mean' or 'sum'",
        )


# probabilities outside [0, 1] -----------------------------------------------------------------
PROBS = [n for n in CE + BCE if kr.kernel(n).inputs[0].name == "probs"]


@pytest.mark.parametrize("name", PROBS)
def test_probabilities_outside_0_1(sk, name):
    x, target = good(name)
    f = getattr(sk, name)
    for value, shown in (
        (-0.25, "-0.25"),
        (1.5, "1.5"),
        (1 + 2**-52, "1.0000000000000002"),
        (np.inf, "inf"),
        (-np.inf, "-inf"),
    ):
        bad = x.copy()
        bad[1, 2] = value
        raises(
            ValueError, "probs", f, bad, target, match=rf"\[0, 1\].*got {shown} at index \(1, 2\)"
        )
    raises(ValueError, "probs", f, x[0] * 0 + 2.0, target[0], match="at index 0")  # one row
    # the ends, -0.0 and NaN pass (NaN gives NaN out), in both dtypes
    for dt in (np.float64, np.float32):
        ok = x.astype(dt)
        ok[0, :2] = (0.0, 1.0)
        ok[1, 0] = -0.0
        ok[2, 2] = np.nan  # sample 2 has label 2
        out = f(ok, target.astype(dt) if target.dtype.kind == "f" else target, reduction="none")
        assert np.isnan(out).any() and not np.isnan(out[0]).any()


@pytest.mark.parametrize("name", PROBS)
def test_domain_is_checked_last(sk, name):
    x, target = good(name)
    f = getattr(sk, name)
    bad = x.copy()
    bad[0, 0] = 2.0
    raises(ValueError, "reduction", f, bad, target, reduction="avg")
    raises(ValueError, "weight", f, bad, target, weight=-np.ones(4))
    if name in CE:
        wrong = target.copy()
        wrong[0] = 9
        raises(ValueError, "target", f, bad, wrong)
        raises(ValueError, "label_smoothing", f, bad, target, label_smoothing=2.0)
    else:
        raises(ValueError, "target", f, bad, target[:, :2])


def test_bce_probabilities_of_any_shape(sk):
    for shape in ((), (5,), (2, 3, 4)):
        p = np.full(shape, 0.5)
        sk.binary_cross_entropy(p, p)
        raises(ValueError, "probs", sk.binary_cross_entropy_grad, p + 1, p, match="got 1.5")


# dtypes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(kr.registry()))
def test_non_floating_input(sk, name):
    args = good(name)
    first = kr.kernel(name).inputs[0].name
    for bad in (
        args[0].astype(np.int64),
        args[0].astype(np.float16),
        args[0].astype(bool),
        args[0].astype(np.complex128),
        args[0].astype(str),
        [[1, 2], [3, 4]],
    ):
        raises(TypeError, first, getattr(sk, name), bad, *args[1:], match="float32 or float64")


@pytest.mark.parametrize("name", list(kr.registry()))
def test_mixed_float_dtypes(sk, name):
    args = good(name, np.float32)
    f = getattr(sk, name)
    kern = kr.kernel(name)
    second = [a.name for a in kern.inputs[1:] if a.kind != "target" or kern.family == "bce"]
    if len(args) > 1 and second:  # g, or the BCE target
        raises(TypeError, second[0], f, args[0], args[1].astype(np.float64), match="float32")
    if kern.family in ("ce_probs", "ce_logits"):
        soft = np.full(args[0].shape, 0.25)
        raises(TypeError, "target", f, args[0], soft, match="never mixed")
        f(args[0], soft.tolist())  # Python lists are taken in the input's dtype
        raises(TypeError, "weight", f, *args, weight=np.ones(4), match="never mixed")
        f(*args, weight=[1.0, 2.0, 1.0, 1.0])
    if kern.family == "bce":
        raises(TypeError, "weight", f, *args, weight=np.ones(4), match="never mixed")
        # (integer and bool arrays are converted: test_numpy_policies)
        raises(
            TypeError,
            "weight",
            f,
            *args,
            weight=np.ones(4, dtype=np.complex64),
            match="real numbers",
        )
        raises(TypeError, "weight", f, *args, weight=["a"] * 4, match="real numbers")
        if name in SBCE:
            raises(TypeError, "pos_weight", f, *args, pos_weight=np.ones(4), match="never mixed")
            f(*args, pos_weight=2.0)
    out = f(*args)
    for o in out if name.endswith("_with_grad") else [out]:
        assert np.asarray(o).dtype == np.float32
