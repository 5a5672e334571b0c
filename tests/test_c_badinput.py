"""Bad input to every C function: every row of the "Bad input" table of docs/semantics.md.

Each call gets output buffers full of a sentinel, with guard elements past their ends
(tests/c_build.py); after an error every output element and guard must still hold the
sentinel ("writes nothing"), and the inputs must be unchanged.  Sizes that overflow are passed
with small real buffers: the functions must reject them before reading anything.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from symce.lang import c_backend

from c_build import C_DIR, SENTINEL, clib_each  # noqa: F401  (fixture)

CODES = {name: value for name, value, _ in c_backend.ERRORS}
(
    OK,
    NULL,
    NO_CLASSES,
    SIZE,
    SMOOTHING,
    OPTION,
    REDUCTION,
    WEIGHT,
    POS_WEIGHT,
    LABEL,
    DOMAIN,
    TARGET,
) = (
    CODES[f"SYMCE_{c}"]
    for c in (
        "OK",
        "ERR_NULL",
        "ERR_NO_CLASSES",
        "ERR_SIZE",
        "ERR_SMOOTHING",
        "ERR_OPTION",
        "ERR_REDUCTION",
        "ERR_WEIGHT",
        "ERR_POS_WEIGHT",
        "ERR_LABEL",
        "ERR_DOMAIN",
        "ERR_TARGET",
    )
)
# the order the functions check in (the header lists each function's codes in this order)
ORDER = [
    NULL,
    NO_CLASSES,
    SIZE,
    SMOOTHING,
    OPTION,
    REDUCTION,
    WEIGHT,
    POS_WEIGHT,
    LABEL,
    DOMAIN,
    TARGET,
]
# the argument each code's message names first
ARGUMENT = {
    NO_CLASSES: "k",
    SIZE: "n, k (or count)",
    SMOOTHING: "label_smoothing",
    OPTION: "an option of the loss",
    REDUCTION: "reduction",
    WEIGHT: "weight",
    POS_WEIGHT: "pos_weight",
    LABEL: "labels",
    DOMAIN: "probs",
    TARGET: "target",
}
SIZE_MAX = 2**64 - 1 if np.dtype(np.uintp).itemsize == 8 else 2**32 - 1
N, K = 3, 4
FUNCTIONS = c_backend.functions()


def _dtype(fn):
    return np.float32 if fn.dtype == "f32" else np.float64


def _valid_inputs(fn):
    """Valid inputs (NumPy layout) for fn, and its kernel name."""
    rng = np.random.default_rng(0)
    fam = c_backend.kr.kernel(fn.kernel).family
    if fam == "elementwise":
        return [rng.standard_normal(6)]
    x = rng.uniform(0.1, 0.9, (N, K))
    x /= x.sum(1, keepdims=True)
    if fam == "rowwise":
        return [x, rng.standard_normal((N, K))] if fn.kernel == "softmax_vjp" else [x]
    if fam in ("ce_probs", "ce_logits"):
        return [x, x.copy() if fn.soft else np.array([0, 3, 1])]
    return [x, rng.uniform(0, 1, (N, K))]


def _call(clib, fn, inputs=None, **kw):
    """Call fn; returns (code, outputs dict incl. guards, inputs after the call)."""
    dtype = _dtype(fn)
    inputs = [np.array(a) for a in (inputs if inputs is not None else _valid_inputs(fn))]
    before = [a.copy() for a in inputs]
    code, _, outs = clib.call(fn.kernel, dtype, *inputs, check=False, **kw)
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b)  # const inputs
    return code, outs


def _expect(clib, fn, code, what, **kw):
    got, outs = _call(clib, fn, **kw)
    assert got == code, f"{fn.cname} {what}: returned {got}, expected {code}"
    if code != OK:
        for name, buf in outs.items():
            assert np.all(buf == SENTINEL), f"{fn.cname} {what}: wrote into {name} on error"


def _roles(fn):
    return {p.role for p in fn.params}


def _class_weights(fn):
    """Whether the weight is one per class (the cross-entropies), not one per element (BCE)."""
    return c_backend.kr.kernel(fn.kernel).family in ("ce_probs", "ce_logits")


def _takes_probs(fn):
    return c_backend.kr.kernel(fn.kernel).checks_domain


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.cname)
def test_bad_input_writes_nothing(clib_each, fn):
    roles = _roles(fn)
    inputs = _valid_inputs(fn)
    _expect(clib_each, fn, OK, "valid input")

    # required pointer NULL (each of them); weight and pos_weight may be NULL
    for p in fn.params:
        if p.role in ("in", "labels", "target", "out"):
            _expect(clib_each, fn, NULL, f"{p.name}=NULL", null=(p.name,))

    # sizes: k = 0, and n*k (n*k*k) overflowing size_t (the buffers are small: nothing is read)
    if "count" in [p.name for p in fn.params]:
        _expect(clib_each, fn, SIZE, "count overflow", sizes={"count": SIZE_MAX})
        _expect(clib_each, fn, SIZE, "count bytes overflow", sizes={"count": SIZE_MAX // 4 + 1})
    else:
        # rows of classes need one; the BCE's rows of elements may be empty (no element read)
        k0 = NO_CLASSES if "no_classes" in fn.variant.checks else OK
        _expect(clib_each, fn, k0, "k=0", sizes={"k": 0})
        _expect(clib_each, fn, k0, "k=0, n=0", sizes={"k": 0, "n": 0})
        _expect(clib_each, fn, k0, "k=0, n overflowing", sizes={"k": 0, "n": SIZE_MAX})
        _expect(clib_each, fn, SIZE, "n*k overflow", sizes={"n": SIZE_MAX // 2 + 1, "k": 2})
        _expect(clib_each, fn, SIZE, "n*k bytes overflow", sizes={"n": SIZE_MAX // 16 + 1, "k": 4})
        if fn.kernel == "softmax_jacobian":  # n*k fits, n*k*k does not
            _expect(clib_each, fn, SIZE, "n*k*k overflow", sizes={"n": 2**22, "k": 2**20})

    # options
    if "label_smoothing" in roles:
        for eps in (-0.01, 1.01, math.nan, math.inf, -math.inf):
            _expect(clib_each, fn, SMOOTHING, f"label_smoothing={eps}", label_smoothing=eps)
        for eps in (0.0, 1.0):
            _expect(clib_each, fn, OK, f"label_smoothing={eps}", label_smoothing=eps)
    if "reduction" in roles:  # the enum's values past the kernel's reductions are refused
        taken = len(c_backend.kr.kernel(fn.kernel).reductions)  # SYMCE_REDUCTION_BATCHMEAN = 3
        for red in (taken, -1, 1000):
            _expect(clib_each, fn, REDUCTION, f"reduction={red}", reduction=red)
        for red in range(taken):
            _expect(clib_each, fn, OK, f"reduction={red}", reduction=red)
    for opt in c_backend.kr.kernel(fn.kernel).scalars:  # a defined loss's options
        if opt.switch:  # an int: 0 or 1
            for value in (2, -1, 1000):
                _expect(clib_each, fn, OPTION, f"{opt.name}={value}", **{opt.name: value})
            for value in (0, 1):
                _expect(clib_each, fn, OK, f"{opt.name}={value}", **{opt.name: value})
            continue
        bad = [math.nan, math.inf, -math.inf]
        bad += [opt.low - 0.5] if opt.low is not None else []
        bad += [opt.high + 0.5] if opt.high is not None else []
        for value in bad:
            _expect(clib_each, fn, OPTION, f"{opt.name}={value}", **{opt.name: value})
        for value in {opt.low, opt.high, opt.default} - {None}:
            _expect(clib_each, fn, OK, f"{opt.name}={value}", **{opt.name: value})
    if "weight" in roles:
        size = K if _class_weights(fn) else N * K
        for bad in (-1.0, math.nan, -1e-30):
            w = np.ones(size)
            w[-1] = bad  # the last entry: the whole array is checked before anything is written
            _expect(clib_each, fn, WEIGHT, f"weight[-1]={bad}", weight=w)
        w = np.ones(size)
        w[0] = -0.0
        _expect(clib_each, fn, OK, "weight -0.0", weight=w)
    if "pos_weight" in roles:
        for bad in (-2.0, math.nan):
            pw = np.ones(K)
            pw[-1] = bad
            _expect(clib_each, fn, POS_WEIGHT, f"pos_weight[-1]={bad}", pos_weight=pw)
            _expect(
                clib_each,
                fn,
                WEIGHT,
                f"weight and pos_weight[-1]={bad}",
                pos_weight=pw,
                weight=-np.ones(N * K),
            )
    if "labels" in roles:
        for bad in (K, -1, 2**63 - 1, -(2**63), -100):
            labels = np.array([0, 1, bad])
            _expect(
                clib_each,
                fn,
                LABEL,
                f"label {bad}",
                inputs=[inputs[0], labels],
                ignore_index=-1 if bad == -100 else -100,
            )
        _expect(
            clib_each,
            fn,
            OK,
            "ignored label",
            inputs=[inputs[0], np.array([0, -7, 3])],
            ignore_index=-7,
        )
        _expect(
            clib_each,
            fn,
            OK,
            "ignore_index is a class",
            inputs=[inputs[0], np.array([0, 1, 3])],
            ignore_index=1,
        )

    # a probability outside [0, 1] (the last entry: all are checked before anything is written)
    if _takes_probs(fn):
        for bad in (-1e-30, 1.0000001, -np.inf, np.inf, 2.0, -0.5):
            probs = inputs[0].copy()
            probs.flat[-1] = bad
            _expect(clib_each, fn, DOMAIN, f"probability {bad}", inputs=[probs, *inputs[1:]])
        for fine in (0.0, -0.0, 1.0, np.nan):  # the ends of [0, 1]; NaN passes through
            probs = inputs[0].copy()
            probs.flat[-1] = fine
            _expect(clib_each, fn, OK, f"probability {fine}", inputs=[probs, *inputs[1:]])
    else:
        assert DOMAIN not in _documented_codes(fn), fn.cname

    # a probability target outside [0, 1]: SYMCE_ERR_TARGET in the cross-entropy kernels
    # (docs/semantics.md, Input policies); a BCE target is not checked, as in PyTorch
    if fn.soft:
        for bad in (-1e-30, 1.0000001, np.inf, -0.5, 3.0):
            target = inputs[1].copy()
            target.flat[-1] = bad
            _expect(clib_each, fn, TARGET, f"target {bad}", inputs=[inputs[0], target, *inputs[2:]])
        for fine in (0.0, 1.0, np.nan):
            target = inputs[1].copy()
            target.flat[-1] = fine
            _expect(clib_each, fn, OK, f"target {fine}", inputs=[inputs[0], target, *inputs[2:]])
    else:
        assert TARGET not in _documented_codes(fn), fn.cname
        if len(inputs) > 1 and np.asarray(inputs[1]).dtype.kind == "f":
            _expect(
                clib_each, fn, OK, "BCE target outside [0, 1]", inputs=[inputs[0], inputs[1] * 3]
            )

    # precedence: the order of ORDER, as documented
    out = next(p.name for p in fn.params if p.role == "out")
    elementwise = "count" in [p.name for p in fn.params]
    classes = "no_classes" in fn.variant.checks
    size_bad = {"k": 0} if classes else {"count": SIZE_MAX} if elementwise else {"n": SIZE_MAX}
    size_code = NO_CLASSES if classes else SIZE
    _expect(clib_each, fn, NULL, "NULL and bad size", null=(out,), sizes=size_bad)
    if not elementwise:
        _expect(
            clib_each,
            fn,
            SIZE,
            "n*k overflow and bad options",
            sizes={"n": SIZE_MAX, "k": 2},
            reduction=7,
            label_smoothing=2.0,
        )
    if "label_smoothing" in roles:
        _expect(
            clib_each, fn, SMOOTHING, "smoothing and reduction", label_smoothing=2.0, reduction=7
        )
    if "reduction" in roles:
        _expect(clib_each, fn, size_code, "bad size and reduction", sizes=size_bad, reduction=7)
        if "weight" in roles:
            wbad = -np.ones(K if _class_weights(fn) else N * K)
            _expect(clib_each, fn, REDUCTION, "reduction and weight", reduction=7, weight=wbad)
            if "labels" in roles:
                _expect(
                    clib_each,
                    fn,
                    WEIGHT,
                    "weight and label",
                    weight=wbad,
                    inputs=[inputs[0], np.array([0, 1, 99])],
                )
    if _takes_probs(fn):
        bad_probs = inputs[0].copy()
        bad_probs.flat[0] = 1.5
        if "labels" in roles:
            _expect(
                clib_each,
                fn,
                LABEL,
                "label and probability",
                inputs=[bad_probs, np.array([0, 1, 99])],
            )
        if "weight" in roles:
            wbad = -np.ones(K if _class_weights(fn) else N * K)
            _expect(
                clib_each,
                fn,
                WEIGHT,
                "weight and probability",
                weight=wbad,
                inputs=[bad_probs, *inputs[1:]],
            )
        _expect(
            clib_each,
            fn,
            REDUCTION,
            "reduction and probability",
            reduction=7,
            inputs=[bad_probs, *inputs[1:]],
        )


def _documented_codes(fn):
    """The codes the header lists for fn, in order."""
    header = (C_DIR / "symce.h").read_text()
    doc = header[header.index(f"* {fn.cname}: ") :]
    doc = doc[: doc.index(f"int {fn.cname}(")]
    returns = doc[doc.index("Returns SYMCE_OK, or") :].split("(checked")[0]
    return [CODES[name] for name in re.findall(r"SYMCE_ERR_\w+", returns)]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.cname)
def test_documented_error_order(fn):
    """The header lists the codes in the order they are checked (ORDER), one per argument the
    function has; DOMAIN last where it applies."""
    codes = _documented_codes(fn)
    names = [p.name for p in fn.params]
    # rows of classes need one; elements (and the BCE's rows of elements) need none
    classes = "count" not in names and c_backend.kr.kernel(fn.kernel).family != "bce"
    head = [NULL, NO_CLASSES, SIZE] if classes else [NULL, SIZE]
    assert codes[: len(head)] == head
    assert codes == sorted(codes, key=ORDER.index)
    for code, arg in (
        (SMOOTHING, "label_smoothing"),
        (REDUCTION, "reduction"),
        (WEIGHT, "weight"),
        (POS_WEIGHT, "pos_weight"),
        (LABEL, "labels"),
    ):
        assert (code in codes) == (arg in names), (fn.cname, arg)
    assert (OPTION in codes) == any(p.role in ("option", "switch") for p in fn.params)
    assert (DOMAIN in codes) == _takes_probs(fn)


def test_strerror(clib_each):
    messages = set()
    for _name, value, message in c_backend.ERRORS:
        assert clib_each.strerror(value) == message
        messages.add(message)
    assert len(messages) == len(c_backend.ERRORS)
    for code in (1, min(CODES.values()) - 1, -1000, 2**31 - 1):
        assert clib_each.strerror(code) == c_backend.UNKNOWN_ERROR
    header = (C_DIR / "symce.h").read_text()
    flat = " ".join(header.split())
    for name, value, message in c_backend.ERRORS:
        assert re.search(rf"\b{name} = {value}\b", header), name
        assert " ".join(message.split()) in flat, name


def test_one_code_per_cause():
    """Every error code is one cause, and its message names the argument and what was
    expected: a caller can tell a bad label_smoothing from a bad reduction."""
    values = [value for _, value, _ in c_backend.ERRORS]
    assert len(set(values)) == len(values) and all(v < 0 for v in values[1:])
    assert set(ORDER) == set(values[1:])
    messages = {value: message for _, value, message in c_backend.ERRORS}
    for code, arg in ARGUMENT.items():
        assert messages[code].startswith(arg + ": expected "), messages[code]
    assert "SYMCE_ERR_ARG" not in (C_DIR / "symce.h").read_text()
