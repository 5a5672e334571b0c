"""The input policies of docs/semantics.md ("Input policies") in the MATLAB kernels, run in GNU
Octave (every call of this module in one octave-cli process).

* precision: single input to the BCE and cross-entropy-from-probabilities kernels is computed in
  double and rounded once (bit for bit the double computation, cast), and the BCE gradient at
  subnormal probabilities, weighted, is within an ULP of mpmath (in single and in double);
* 'mean' over a zero total class weight is NaN (loss and gradient), also with label smoothing,
  where the sum is not zero (as NumPy, C and PyTorch), in double and single;
* [] for any option means its default (Weight and PosWeight alike), also after another value;
* too few inputs: symce:notEnoughInputs, naming the function and the inputs it needs;
* a vector of either orientation is one sample: a 1-by-K row (K > 1) gives the column's numbers,
  in a row (row kernels, cross-entropy with a scalar label or a row of probabilities); 1-by-1 is
  one sample of one class, 1-by-0 an empty batch of one class;
* labels or probability targets: a floating-point target the size of the input is probability
  targets and must lie in [0, 1] (NaN passes), so labels given as doubles in that shape are an
  error that says what to do, never a (negative) loss; with one class (K = 1) a floating-point
  target of whole numbers is symce:ambiguousTarget;
* integer and logical arrays next to the first input (Weight, PosWeight, the BCE target, the VJP's
  g) are converted to its class: the same numbers as the double (or single) arrays.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from symce import kernels, options, reference

import support
from octave_runner import Batch

CALLS = {}  # tag -> batch key
ROUND_ONCE = []  # (call, key with single input, key with the same input in double)


def _call(batch, tag, expr, *args, nout=1):
    CALLS[tag] = batch.call(expr, *args, nout=nout)


def _build_precision(batch):
    rng = np.random.default_rng(8)
    K, N = 7, 400
    p = rng.random((K, N)) + 1e-3
    p32 = (p / p.sum(axis=0)).astype(np.float32)
    soft = rng.random((K, N)).astype(np.float32)
    y = rng.random((K, N)).astype(np.float32)
    w = rng.uniform(0.2, 2, (K, 1)).astype(np.float32)
    labels = batch.arg((rng.integers(0, K, N) + 1).reshape(1, -1).astype(np.float64))
    args = {
        "p": batch.arg(p32),
        "soft": batch.arg(soft),
        "y": batch.arg(y),
        "w": batch.arg(w),
        "x": batch.arg((rng.normal(0, 4, (K, N))).astype(np.float32)),
    }
    calls = []
    for name in ("cross_entropy", "cross_entropy_grad"):
        for red in ("mean", "sum", "none"):
            calls.append(
                (
                    f"symce_{name}(%(p)s, {labels}, 'Reduction', '{red}', "
                    "'LabelSmoothing', 0.1, 'Weight', %(w)s)",
                    1,
                )
            )
            calls.append((f"symce_{name}(%(p)s, %(soft)s, 'Reduction', '{red}')", 1))
    for name, first in (
        ("binary_cross_entropy", "p"),
        ("binary_cross_entropy_grad", "p"),
        ("sigmoid_binary_cross_entropy", "x"),
        ("sigmoid_binary_cross_entropy_grad", "x"),
        ("sigmoid_binary_cross_entropy_with_grad", "x"),
    ):
        nout = 2 if name.endswith("with_grad") else 1
        extra = ", 'PosWeight', %(w)s" if first == "x" else ""
        for red in ("mean", "sum", "none"):
            calls.append(
                (
                    f"symce_{name}(%({first})s, %(y)s, 'Reduction', '{red}', "
                    f"'Weight', %(w)s{extra})",
                    nout,
                )
            )
    ROUND_ONCE.clear()
    for call, nout in calls:
        single = batch.call(call % args, nout=nout)
        double = batch.call(call % {k: f"double({v})" for k, v in args.items()}, nout=nout)
        ROUND_ONCE.append((call, single, double))
    # BCE gradient at subnormal probabilities, weighted: (p - y) / 1e-12 (the clamped p(1 - p))
    # times w; the weight must not multiply p - y before the division (that product is rounded
    # in the subnormal range, up to 50% off)
    sub32 = np.array([3, 5, 7, 1000, 2**20 + 1], dtype=np.float64) * 2.0**-149
    sub64 = np.array([3, 5, 7, 1000, 2**40 + 1], dtype=np.float64) * 2.0**-1074
    for tag, pv, dt in (
        ("subnormal single", sub32, np.float32),
        ("subnormal double", sub64, np.float64),
    ):
        pv = pv.astype(dt).reshape(1, -1)
        yv = np.zeros_like(pv)
        yv[0, -1] = pv[0, 0]
        wv = np.full_like(pv, 0.5)
        wv[0, 1] = 0.3
        CASES_SUBNORMAL.append((tag, pv, yv, wv))
        _call(
            batch,
            tag,
            "symce_binary_cross_entropy_grad(%s, %s, 'Weight', %s, 'Reduction', 'sum')",
            batch.arg(pv),
            batch.arg(yv),
            batch.arg(wv),
        )


CASES_SUBNORMAL = []
CE_KERNELS = (
    "cross_entropy",
    "cross_entropy_grad",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_with_grad",
)


def _build_zero_weight(batch):
    z = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]])
    p = np.exp(z) / np.exp(z).sum(axis=0)
    for cls in ("double", "single"):
        for name in CE_KERNELS:
            first = p if name.startswith("cross") else z
            nout = 2 if name.endswith("with_grad") else 1
            for eps in ("0", "0.1"):
                _call(
                    batch,
                    f"zero weight {name} {cls} {eps}",
                    f"symce_{name}({cls}(%s), [1 1], 'Weight', [0 1 1], 'LabelSmoothing', {eps})",
                    batch.arg(first),
                    nout=nout,
                )


# a non-default value of each option (MATLAB literal), to be overridden by []
OPTION_VALUES = {
    "Weight": "[0.5 2 1]",
    "PosWeight": "[2; 3; 0.5]",
    "IgnoreIndex": "3",
    "LabelSmoothing": "0.3",
    "Reduction": "'sum'",
}
EMPTY_DEFAULT = []  # (kernel, option, key without the option, key with [], key with v then [])


def _build_empty_options(batch):
    from octave_runner import MATLAB_OPTION

    z = batch.arg(np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]]))
    p = batch.arg(np.array([[0.2, 0.5], [0.5, 0.1], [0.3, 0.4]]))
    y = batch.arg(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.0]]))
    for name, kern in kernels.registry().items():
        if not kern.options:
            continue
        nout = len(kern.outputs)
        first = p if kern.inputs[0].name == "probs" else z
        args = f"{first}, {'[1 3]' if kern.family.startswith('ce') else y}"
        base = batch.call(f"symce_{name}({args})", nout=nout)
        declared = {o.name: o for o in kern.scalars}  # a defined loss's options
        for option in kern.options:
            if option in declared:  # a value between its low end and its default
                o = declared[option]
                mname = options.matlab_name(option)
                value = repr(((o.default - 1 if o.low is None else o.low) + o.default) / 2)
                if o.switch:  # a switch: the other form
                    value = "false" if o.default else "true"
            else:
                mname = MATLAB_OPTION[option]
                value = OPTION_VALUES[mname]
            if kern.family == "bce" and mname == "Weight":
                value = "[0.5; 2; 1]"  # element weights: one per row, expanding
            EMPTY_DEFAULT.append(
                (
                    name,
                    mname,
                    base,
                    batch.call(f"symce_{name}({args}, '{mname}', [])", nout=nout),
                    batch.call(
                        f"symce_{name}({args}, '{mname}', {value}, '{mname}', [])", nout=nout
                    ),
                    batch.call(f"symce_{name}({args}, '{mname}', {value})", nout=nout),
                )
            )


NARGIN = []  # (kernel, number of inputs given, key)


def _build_nargin(batch):
    for name, kern in kernels.registry().items():
        given = ["[1; 2]", "[1; 0]"]
        for n in range(len(kern.inputs)):
            NARGIN.append((name, n, batch.call(f"symce_{name}({', '.join(given[:n])})", nout=0)))


ROW_VS_COLUMN = []  # (call, key with row inputs, key with column inputs, row result shape)


def _build_rows(batch):
    ROW_VS_COLUMN.clear()
    z, g, p = [1.0, 2.0, -0.5, 3.0], [1.0, 0.0, -2.0, 0.5], [0.2, 0.5, 0.1, 0.2]
    soft = [0.0, 0.25, 0.75, 0.0]
    for cls in ("double", "single"):
        row = {
            k: f"{cls}({batch.arg(np.array([v]))})"
            for k, v in (("z", z), ("g", g), ("p", p), ("soft", soft))
        }
        col = {k: f"{v}'" for k, v in row.items()}
        for call, nout, shape in (
            ("symce_softmax(%(z)s)", 1, [(1, 4)]),
            ("symce_log_softmax(%(z)s)", 1, [(1, 4)]),
            ("symce_logsumexp(%(z)s)", 1, [(1, 1)]),
            ("symce_softmax_jacobian(%(z)s)", 1, [(4, 4)]),
            ("symce_softmax_vjp(%(z)s, %(g)s)", 1, [(1, 4)]),
            ("symce_softmax_cross_entropy(%(z)s, 2)", 1, [(1, 1)]),
            (
                "symce_softmax_cross_entropy_grad(%(z)s, int8(3), 'LabelSmoothing', 0.1)",
                1,
                [(1, 4)],
            ),
            (
                "symce_softmax_cross_entropy_with_grad(%(z)s, 4, 'Reduction', 'none', "
                "'Weight', [1 2 3 4])",
                2,
                [(1, 1), (1, 4)],
            ),
            ("symce_softmax_cross_entropy_with_grad(%(z)s, %(soft)s)", 2, [(1, 1), (1, 4)]),
            ("symce_cross_entropy(%(p)s, 2, 'Reduction', 'sum')", 1, [(1, 1)]),
            ("symce_cross_entropy_grad(%(p)s, %(soft)s)", 1, [(1, 4)]),
        ):
            ROW_VS_COLUMN.append(
                (
                    f"{call} {cls}",
                    batch.call(call % row, nout=nout),
                    batch.call(call % col, nout=nout),
                    shape,
                )
            )
    # one class: 1-by-1 is one sample, 1-by-0 an empty batch; a row is one sample, not N labels
    _call(batch, "one class", "symce_softmax_cross_entropy_with_grad(2.5, int32(1))", nout=2)
    _call(batch, "one class softmax", "symce_softmax(-7)")
    _call(batch, "empty row", "symce_softmax(zeros(1, 0))")
    _call(
        batch,
        "empty row ce",
        "symce_softmax_cross_entropy(zeros(1, 0), zeros(1, 0), 'Reduction', 'none')",
    )
    _call(batch, "row, N labels", "symce_softmax_cross_entropy([1 2 3], int32([1 1 1]))")


TARGETS = []  # (kernel, call, expected error id or None, words of the message)


def _build_targets(batch):
    TARGETS.clear()
    for name in CE_KERNELS:
        nout = 0
        f = f"symce_{name}"
        probs = name.startswith("cross")
        one = "0.5" if probs else "2.5"
        for call, err, words in (
            # the cases: labels as doubles the size of a row (one sample)
            (
                f"{f}([.5 .5 .5], [2 2 2])",
                "symce:domain",
                ("target", "[0, 1]", "got 2 at element 1", "int32(target)"),
            ),
            (
                f"{f}([0.5 0.5], [1 -100])",
                "symce:domain",
                ("target", "got -100 at element 2", "one per sample"),
            ),
            (
                f"{f}([.2 .5; .5 .1; .3 .4], [0 1; 1 0; 0 1.5])",
                "symce:domain",
                ("target", "got 1.5 at element 6"),
            ),
            (
                f"{f}(single([.2 .5 .3]), single([0 -0.25 1]))",
                "symce:domain",
                ("target", "got -0.25 at element 2"),
            ),
            # one class: a whole-number double could be a label or a probability
            (f"{f}({one}, 1)", "symce:ambiguousTarget", ("K = 1", "target 1", "int32(target)")),
            (f"{f}(single({one}), single(0))", "symce:ambiguousTarget", ("target 0",)),
            (f"{f}({one}, int32(1))", None, ()),
            (f"{f}({one}, 0.25)", None, ()),
            (f"{f}({one}, NaN)", None, ()),
            # probabilities in [0, 1], NaN and -0 pass; labels as doubles of another size
            (f"{f}([.2 .5 .3], [0 1 0])", None, ()),
            (f"{f}([.2 .5 .3], [NaN -0 1])", None, ()),
            (f"{f}([.2 .5; .5 .1; .3 .4], [3 1])", None, ()),
            (f"{f}([.2 .5; .5 .1; .3 .4], [3; 1])", None, ()),
        ):
            TARGETS.append((name, call, err, words, batch.call(call, nout=nout)))
    # the probabilities are checked before the target (a bad PROBS is reported first)
    TARGETS.append(
        (
            "cross_entropy",
            "bad probs and target",
            "symce:domain",
            ("probs must be", "got 1.5"),
            batch.call("symce_cross_entropy([.2 1.5 .3], [2 2 2])", nout=0),
        )
    )


CONVERTED = []  # (call, key with integer/logical arrays, key with the same values as floats)


def _build_converted(batch):
    CONVERTED.clear()
    for cls in ("double", "single"):
        z = f"{cls}([1 2; 0 1; 3 0])"
        p = f"{cls}([.2 .5; .5 .1; .3 .4])"
        for call in (
            f"symce_softmax_cross_entropy_with_grad({z}, [1 3], 'Weight', %(w)s)",
            f"symce_cross_entropy_grad({p}, [1 3], 'Weight', %(w)s, 'LabelSmoothing', 0.1)",
            f"symce_binary_cross_entropy({p}, %(y)s, 'Weight', %(w)s, 'Reduction', 'none')",
            f"symce_sigmoid_binary_cross_entropy_with_grad({z}, %(y)s, 'Weight', %(w)s, "
            "'PosWeight', %(w)s)",
            f"symce_softmax_vjp({z}, %(y)s)",
        ):
            nout = 2 if "with_grad" in call else 1
            for int_cls in ("int32", "uint8", "logical"):
                w = "[1; 0; 1]" if int_cls == "logical" else "[1; 0; 2]"
                y = "[1 0; 0 1; 1 1]"
                ints = {"w": f"{int_cls}({w})", "y": f"{int_cls}({y})"}
                floats = {"w": w, "y": f"{cls}({y})"}
                CONVERTED.append(
                    (
                        f"{call % ints} ({cls})",
                        batch.call(call % ints, nout=nout),
                        batch.call(call % floats, nout=nout),
                    )
                )


@pytest.fixture(scope="module")
def results():
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    CALLS.clear()
    CASES_SUBNORMAL.clear()
    batch = Batch()
    _build_precision(batch)
    _build_zero_weight(batch)
    EMPTY_DEFAULT.clear()
    _build_empty_options(batch)
    NARGIN.clear()
    _build_nargin(batch)
    _build_rows(batch)
    _build_targets(batch)
    _build_converted(batch)
    return batch.run(octave)


# ----------------------------------------------------------------------------------------------
# Precision
# ----------------------------------------------------------------------------------------------
def test_single_is_the_double_computation_rounded_once(results):
    assert len(ROUND_ONCE) == 27
    for call, k_single, k_double in ROUND_ONCE:
        single, double = results[k_single].check(), results[k_double].check()
        assert set(single.classes) == {"single"} and set(double.classes) == {"double"}, call
        for a, b in zip(single.values, double.values):
            np.testing.assert_array_equal(a, b.astype(np.float32), err_msg=call)


def test_bce_grad_at_subnormal_probabilities(results):
    for tag, p, y, w in CASES_SUBNORMAL:
        got = results[CALLS[tag]].value
        ref = reference.evaluate(
            "binary_cross_entropy_grad",
            p.astype(np.float64),
            y.astype(np.float64),
            form="closed",
            reduction="sum",
            weight=w.astype(np.float64),
        )
        with mpmath.workdps(40):
            err = support.ulp_error(got, ref)
        assert err <= 1, f"{tag}: {err:.3g} ULP ({got} vs {ref})"


# ----------------------------------------------------------------------------------------------
# 'mean' over a zero total weight
# ----------------------------------------------------------------------------------------------
def test_mean_over_zero_weight_is_nan(results):
    for cls in ("double", "single"):
        for name in CE_KERNELS:
            for eps in ("0", "0.1"):
                res = results[CALLS[f"zero weight {name} {cls} {eps}"]].check()
                assert set(res.classes) == {cls}
                for v in res.values:
                    assert np.isnan(v).all(), f"{name} {cls} smoothing {eps}: {v}"


# ----------------------------------------------------------------------------------------------
# [] is the default
# ----------------------------------------------------------------------------------------------
def test_empty_option_value_is_the_default(results):
    declared = {options.matlab_name(o.name) for k in kernels.registry().values() for o in k.scalars}
    assert {e[1] for e in EMPTY_DEFAULT} == set(OPTION_VALUES) | declared
    for name, option, base, empty, reset, other in EMPTY_DEFAULT:
        want = results[base].check().values
        changed = results[other].check().values
        assert any(not np.array_equal(a, b, equal_nan=True) for a, b in zip(want, changed)), (
            f"{name}: {option} changes nothing here"
        )
        for key, how in ((empty, "[]"), (reset, "a value then []")):
            got = results[key].check().values
            for a, b in zip(want, got):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}: '{option}', {how}")


# ----------------------------------------------------------------------------------------------
# Too few inputs
# ----------------------------------------------------------------------------------------------
def test_too_few_inputs(results):
    assert len(NARGIN) == sum(len(k.inputs) for k in kernels.registry().values())
    for name, n, key in NARGIN:
        res = results[key]
        kern = kernels.kernel(name)
        assert res.error_id == "symce:notEnoughInputs", (name, n, res.error_message)
        msg = res.error_message
        assert msg.startswith(f"symce_{name}: expected the input"), msg
        for a in kern.inputs:
            assert a.name.upper() in msg, msg
        assert f"got {n} input" in msg, msg
        assert ("name-value" in msg) == bool(kern.options), msg


# ----------------------------------------------------------------------------------------------
# A vector of either orientation is one sample
# ----------------------------------------------------------------------------------------------
def test_a_row_is_one_sample(results):
    assert len(ROW_VS_COLUMN) == 22
    for call, k_row, k_col, shapes in ROW_VS_COLUMN:
        row, col = results[k_row].check(), results[k_col].check()
        assert [v.shape for v in row.values] == shapes, call
        for a, b in zip(row.values, col.values):
            b = b if b.ndim == 2 and b.shape[0] == b.shape[1] else b.T  # the Jacobian: as is
            np.testing.assert_array_equal(a, b, err_msg=call)


def test_one_class_and_empty_rows(results):
    loss, grad = results[CALLS["one class"]].check().values
    assert loss.shape == (1, 1) and loss[0, 0] == 0 and grad.shape == (1, 1) and grad[0, 0] == 0
    assert results[CALLS["one class softmax"]].value.tolist() == [[1.0]]
    assert results[CALLS["empty row"]].value.shape == (1, 0)
    assert results[CALLS["empty row ce"]].value.shape == (1, 0)
    res = results[CALLS["row, N labels"]]
    assert res.error_id == "symce:shape", res.error_message
    assert "N = 1 labels" in res.error_message and "1-by-3" in res.error_message, res.error_message


# ----------------------------------------------------------------------------------------------
# Labels or probability targets
# ----------------------------------------------------------------------------------------------
def test_labels_or_probability_targets(results):
    assert len(TARGETS) == 13 * len(CE_KERNELS) + 1
    for name, call, err, words, key in TARGETS:
        res = results[key]
        if err is None:
            res.check()
            continue
        assert res.error_id == err, f"{call}: {res.error_id}: {res.error_message}"
        msg = res.error_message
        assert msg.startswith(f"symce_{name}: "), msg
        for word in words:
            assert word in msg, f"{call}: {word!r} not in {msg!r}"


# ----------------------------------------------------------------------------------------------
# Integer and logical arrays are converted
# ----------------------------------------------------------------------------------------------
def test_integer_and_logical_arrays_are_converted(results):
    assert len(CONVERTED) == 30
    for call, k_int, k_float in CONVERTED:
        a, b = results[k_int], results[k_float].check()
        assert a.error_id is None, f"{call}: {a.error_id}: {a.error_message}"
        assert a.classes == b.classes, call
        for x, y in zip(a.values, b.values):
            np.testing.assert_array_equal(x, y, err_msg=call)
