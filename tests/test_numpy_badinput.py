"""Bad input to the generated NumPy kernels that is NumPy's own (docs/semantics.md, "Bad input",
NumPy column, and the NumPy input policies): the dtype decides (labels must be of an integer
dtype; non-floating input and mixed float dtypes are refused), Python types of the scalar
options, the axis of the row kernels, 1-D and leading-singleton shapes that MATLAB reads
otherwise, and the messages' 0-based positions.  Each error is a ValueError or TypeError whose
message starts with the argument's name and says what was expected and what was given.

The refusals every language shares (weights, label_smoothing, reduction, labels, the domains,
K = 0, shapes, two faults at once) and the edges every language lets through are
tests/test_bad_input.py.
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


# wrong shapes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CE)
def test_shapes_matlab_reads_otherwise(sk, name):
    """A (1, K) weight and a leading singleton axis: refused here, where MATLAB takes a weight of
    either orientation and drops trailing singleton dimensions (a (1, N, K) batch is K x N x 1)."""
    x, labels = good(name)
    f = getattr(sk, name)
    raises(ValueError, "weight", f, x, labels, weight=np.ones((1, 4)), match=r"\(4,\)")
    raises(ValueError, kr.kernel(name).inputs[0].name, f, x[None], labels, match="(N, K)")


def test_vjp_g_with_a_leading_singleton_axis(sk):
    z = good("softmax_vjp")[0]
    raises(ValueError, "g", sk.softmax_vjp, z, z[None], match=r"\(3, 4\)")


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
    """Labels of any integer dtype and a scalar label are checked; the message names the value
    and its 0-based position (the values themselves: tests/test_bad_input.py)."""
    x, labels = good(name)
    f = getattr(sk, name)
    t = labels.copy()
    t[2] = -100
    raises(ValueError, "target", f, x, t, match=r"\[0, 4\).*got -100 at position 2", ignore_index=7)
    raises(ValueError, "target", f, x[0], 4)
    raises(ValueError, "target", f, x, np.array([0, 1, 2], dtype=np.uint8) + 3)


# weights ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CE + BCE)
def test_weight_messages_name_the_value_and_index(sk, name):
    args = good(name)
    f = getattr(sk, name)
    options = ("weight", "pos_weight") if name in SBCE else ("weight",)
    for option in options:
        for value, shown in ((-0.5, "-0.5"), (np.nan, "nan")):
            w = np.ones(4)
            w[1] = value
            raises(
                ValueError,
                option,
                f,
                *args,
                match=rf"non-negative.*got {shown} at index 1",
                **{option: w},
            )


# label_smoothing and reduction -----------------------------------------------------------------
@pytest.mark.parametrize("name", CE)
def test_label_smoothing_types(sk, name):
    """A number of any Python or NumPy type; anything else is a TypeError."""
    args = good(name)
    f = getattr(sk, name)
    for eps in ("0.1", None, np.array([0.1]), True):
        raises(TypeError, "label_smoothing", f, *args, label_smoothing=eps)
    f(*args, label_smoothing=1)
    f(*args, label_smoothing=np.float32(0.0))


@pytest.mark.parametrize("name", CE + BCE)
def test_unknown_reduction(sk, name):
    """The names are case-sensitive, as PyTorch's (MATLAB's are not), and are strings."""
    names = [repr(r) for r in kr.kernel(name).reductions]  # none, mean, sum and its own
    for reduction in ("MEAN", None, 1):
        raises(
            ValueError,
            "reduction",
            getattr(sk, name),
            *good(name),
            reduction=reduction,
            match=f"{', '.join(names[:-1])} or {names[-1]}",
        )


# probabilities outside [0, 1] -----------------------------------------------------------------
PROBS = [n for n in CE + BCE if kr.kernel(n).inputs[0].name == "probs"]


@pytest.mark.parametrize("name", PROBS)
def test_probability_messages_name_the_value_and_index(sk, name):
    """The value in full (1 + 2**-52 is not "1") and its 0-based index."""
    x, target = good(name)
    f = getattr(sk, name)
    for value, shown in ((1.5, "1.5"), (1 + 2**-52, "1.0000000000000002"), (-np.inf, "-inf")):
        bad = x.copy()
        bad[1, 2] = value
        raises(
            ValueError, "probs", f, bad, target, match=rf"\[0, 1\].*got {shown} at index \(1, 2\)"
        )
    raises(ValueError, "probs", f, x[0] * 0 + 2.0, target[0], match="at index 0")  # one row


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
    """Weights of the other precision are refused (MATLAB converts them: its literals are
    double); Python lists are taken in the input's dtype.  (A target or g of the other precision,
    refused in MATLAB too: tests/test_bad_input.py.)"""
    args = good(name, np.float32)
    f = getattr(sk, name)
    kern = kr.kernel(name)
    if kern.family in ("ce_probs", "ce_logits"):
        f(args[0], np.full(args[0].shape, 0.25).tolist())
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
