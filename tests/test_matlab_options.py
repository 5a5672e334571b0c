"""MATLAB conventions of the options (name-value pairs), run in GNU Octave (one octave-cli).

Names and values are case-insensitive, the last pair wins, [] is the default; labels are rows or
columns of any numeric class; IgnoreIndex is a 1-based label; single in -> single out (weights
given in double are converted); 'none' keeps the shape; PosWeight runs along dimension 1 of an
N-D array.  The options' numbers (PyTorch parity, the reference, their relations) are
tests/test_options.py, in every language.
"""

from __future__ import annotations

import numpy as np
import pytest

import support
from octave_runner import Batch

SEMANTICS = {}  # name -> batch key


def _build_semantics(batch):
    S = SEMANTICS
    rng = np.random.default_rng(11)
    z = batch.arg(rng.normal(0, 2, (4, 5)))
    zs = batch.arg(rng.normal(0, 2, (4, 5)).astype(np.float32))
    lab_row = "[1 2 4 3 2]"
    sum01 = "'Reduction', 'sum', 'LabelSmoothing', 0.1"

    def with_grad(tag, args):
        S[tag] = batch.call(f"symce_softmax_cross_entropy_with_grad({args})", nout=2)

    with_grad("base", f"{z}, {lab_row}, {sum01}")
    with_grad("case", f"{z}, {lab_row}, 'reduction', 'SUM', 'labelsmoothing', 0.1")
    with_grad(
        "last wins",
        f"{z}, {lab_row}, 'Reduction', 'none', 'LabelSmoothing', 0.1, 'Reduction', 'sum'",
    )
    with_grad("column", f"{z}, {lab_row}', {sum01}")
    with_grad("int32", f"{z}, int32({lab_row}), {sum01}")
    with_grad("uint8", f"{z}, uint8({lab_row}), {sum01}")
    with_grad("weight []", f"{z}, {lab_row}, {sum01}, 'Weight', []")
    with_grad("weight ones", f"{z}, {lab_row}, {sum01}, 'Weight', ones(4, 1)")
    with_grad("mean", f"{z}, {lab_row}")
    with_grad("mean explicit", f"{z}, {lab_row}, 'Reduction', 'mean', 'IgnoreIndex', -100")
    with_grad("ignore default", f"{z}, [1 -100 4 3 2], 'Reduction', 'none'")
    with_grad("ignore 3", f"{z}, [1 2 4 3 2], 'Reduction', 'none', 'IgnoreIndex', 3")
    with_grad("none", f"{z}, {lab_row}, 'Reduction', 'none'")
    with_grad("single", f"{zs}, {lab_row}, 'Weight', [1 2 1 0.5], 'LabelSmoothing', 0.1")
    with_grad(
        "single weight", f"{zs}, {lab_row}, 'Weight', single([1 2 1 0.5]), 'LabelSmoothing', 0.1"
    )
    with_grad(
        "single labels", f"{zs}, single({lab_row}), 'Weight', [1 2 1 0.5], 'LabelSmoothing', 0.1"
    )
    # BCE on an N-D array: PosWeight along dimension 1, Weight expanding, 'none' keeps the size
    x3 = batch.arg(rng.normal(0, 2, (3, 2, 4)))
    y3 = batch.arg(rng.uniform(0, 1, (3, 2, 4)))
    pw = "[2; 0.5; 1]"
    S["nd"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', {pw}, "
        "'Weight', [1; 2; 3], 'Reduction', 'none')"
    )
    S["nd full"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', "
        f"{pw}, 'Weight', repmat([1; 2; 3], [1 2 4]), 'Reduction', 'none')"
    )
    S["nd row pw"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', "
        f"{pw}', 'Weight', [1; 2; 3], 'Reduction', 'none')"
    )
    S["nd mean"] = batch.call(f"symce_sigmoid_binary_cross_entropy_grad({x3}, {y3})")
    S["nd none"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy_grad({x3}, {y3}, 'Reduction', 'none')"
    )
    S["pw scalar"] = batch.call(f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', 2)")
    S["pw vector"] = batch.call(
        f"symce_sigmoid_binary_cross_entropy({x3}, {y3}, 'PosWeight', [2 2 2])"
    )
    S["bce single"] = batch.call(
        "symce_binary_cross_entropy(single([0.2 0.7]), single([0 1]), 'Weight', [2 3])"
    )


@pytest.fixture(scope="module")
def results():
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    SEMANTICS.clear()
    batch = Batch()
    _build_semantics(batch)
    return batch.run(octave)


def _vals(results, key):
    return results[SEMANTICS[key]].check().values


def test_names_and_values_are_case_insensitive_and_last_wins(results):
    base = _vals(results, "base")
    for key in ("case", "last wins", "weight []", "weight ones"):
        for a, b in zip(base, _vals(results, key)):
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_label_orientation_and_class_do_not_matter(results):
    base = _vals(results, "base")
    for key in ("column", "int32", "uint8"):
        for a, b in zip(base, _vals(results, key)):
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_defaults(results):
    for a, b in zip(_vals(results, "mean"), _vals(results, "mean explicit")):
        np.testing.assert_array_equal(a, b)
    loss, grad = _vals(results, "ignore default")
    assert loss.shape == (1, 5) and loss[0, 1] == 0 and np.all(grad[:, 1] == 0)
    assert np.all(loss[0, [0, 2, 3, 4]] > 0)
    loss3, grad3 = _vals(results, "ignore 3")  # IgnoreIndex is a 1-based label here
    assert loss3[0, 3] == 0 and np.all(grad3[:, 3] == 0) and np.all(loss3[0, [0, 1, 2, 4]] > 0)
    none_loss, none_grad = _vals(results, "none")
    mean_loss, mean_grad = _vals(results, "mean")
    assert none_loss.shape == (1, 5) and mean_loss.shape == (1, 1)
    np.testing.assert_allclose(mean_loss[0, 0], none_loss.sum() / 5, rtol=1e-15)
    np.testing.assert_allclose(mean_grad, none_grad / 5, rtol=1e-15)


def test_single_in_single_out(results):
    for key in ("single", "single weight", "single labels"):
        res = results[SEMANTICS[key]].check()
        assert res.classes == ["single", "single"], key
    a = _vals(results, "single")
    for key in ("single weight", "single labels"):
        for x, y in zip(a, _vals(results, key)):
            np.testing.assert_array_equal(x, y, err_msg=key)
    assert results[SEMANTICS["bce single"]].check().classes == ["single"]


def test_bce_on_nd_arrays(results):
    nd = results[SEMANTICS["nd"]].value
    assert nd.shape == (3, 2, 4)
    np.testing.assert_array_equal(nd, results[SEMANTICS["nd full"]].value)
    np.testing.assert_array_equal(nd, results[SEMANTICS["nd row pw"]].value)
    mean, none = results[SEMANTICS["nd mean"]].value, results[SEMANTICS["nd none"]].value
    assert none.shape == (3, 2, 4)
    np.testing.assert_allclose(mean, none / 24, rtol=1e-15)
    np.testing.assert_array_equal(
        results[SEMANTICS["pw scalar"]].value, results[SEMANTICS["pw vector"]].value
    )
