"""docs/semantics.md's special values, the same in NumPy, C and MATLAB (issue 8, items 4b and 4c).

* A row holding +inf is shifted by its largest finite logit: softmax gives 0 at every other
  entry (also at a finite logit far above log(DBL_MAX) ~ 709: 1000 beside +inf gave NaN) and NaN
  at the +inf ones, log_softmax -inf and NaN, logsumexp +inf; the kernels that combine the
  classes (the Jacobian, the VJP, softmax cross-entropy and its gradient) give NaN for the whole
  row, as PyTorch.  Rows of 3 classes (the C kernels' blocks of rows) and of 20 (one row at a
  time), float32 and float64, next to a clean row that must not change.
* A NaN is never dropped: 0 * NaN is NaN.  A NaN logit in a sample whose label has class weight
  0 gives a NaN loss and gradient row (it gave 0), as PyTorch; a probability target that is 0
  where the row is NaN, too; so does a NaN probability at a zero target in cross_entropy.  An
  ignored sample (ignore_index) stays 0 and out of the mean, NaN or not, as PyTorch (NumPy's
  cross_entropy gave NaN there).
* Label smoothing on a masked (-inf) class gives an infinite loss, in every reduction (the float64
  C kernels' compensated sums gave NaN: inf - inf in TwoSum's error term).
"""

from __future__ import annotations

import numpy as np
import pytest

from symce import kernels as kr
from symce.lang import numpy_backend

import support
from c_build import library
from octave_runner import Batch, matlab_args, to_numpy_layout

DTYPES = (np.float32, np.float64)
INF, NAN = np.inf, np.nan
ROWWISE = ("softmax", "log_softmax", "logsumexp", "softmax_jacobian", "softmax_vjp")
CE = ("softmax_cross_entropy", "softmax_cross_entropy_grad", "softmax_cross_entropy_with_grad")


def _plus_inf_rows(k, dtype):
    """Rows holding +inf (the issue's [1000, inf, 0], the dtype's largest finite values beside
    +inf, two +inf) padded to k classes with small logits, then a clean row."""
    big = float(np.finfo(dtype).max)
    rows = [
        [1000.0, INF, 0.0],
        [big, INF, -big],
        [INF, 1.0, INF],
        [-INF, INF, 800.0],
        [0.5, -1.0, 2.0],
    ]
    pad = np.linspace(-2.0, 1.0, k - 3)
    return np.array([r + list(pad) for r in rows], dtype=dtype)


def _cases():
    """(key, kernel, args, opts) in NumPy layout, every call of this module."""
    out = []
    for dtype in DTYPES:
        dt = np.dtype(dtype).name
        for k in (3, 20):
            z = _plus_inf_rows(k, dtype)
            g = np.linspace(-1.0, 1.0, z.size).reshape(z.shape).astype(dtype)
            for name in ROWWISE:
                out.append(
                    (f"inf {dt} {k} {name}", name, (z, g) if name == "softmax_vjp" else (z,), {})
                )
            labels = np.array([0, 1, 2, 0, 1])
            soft = np.full(z.shape, 1.0 / k, dtype=dtype)
            for name in CE:
                for eps in (0.0, 0.1):
                    for tname, target in (("labels", labels), ("soft", soft)):
                        out.append(
                            (
                                f"inf {dt} {k} {name} {eps} {tname}",
                                name,
                                (z, target),
                                {"reduction": "none", "label_smoothing": eps},
                            )
                        )
        # a NaN logit where the label's class weight is 0; the second sample is clean
        z = np.array([[NAN, 1.0, 2.0], [1.0, 2.0, 3.0]], dtype=dtype)
        w = np.array([0.0, 1.0, 1.0], dtype=dtype)
        for name in CE:
            for red in ("none", "sum", "mean"):
                out.append(
                    (
                        f"nan {dt} {name} {red}",
                        name,
                        (z, np.array([0, 1])),
                        {"reduction": red, "weight": w},
                    )
                )
                # an ignored sample is 0 and out of the mean, NaN logit or not
                out.append(
                    (
                        f"ignored {dt} {name} {red}",
                        name,
                        (z, np.array([-100, 1])),
                        {"reduction": red, "weight": w},
                    )
                )
            # probability target 0 where the weight is not, weight 0 where it is 1: y~ = 0
            out.append(
                (
                    f"nan soft {dt} {name}",
                    name,
                    (z, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)),
                    {"reduction": "none", "weight": w},
                )
            )
        # cross-entropy from probabilities: a NaN probability at a class the label does not want
        probs = np.array([[NAN, 0.5, 0.5], [0.2, 0.3, 0.5]], dtype=dtype)
        for name in ("cross_entropy", "cross_entropy_grad"):
            out.append(
                (f"nan probs {dt} {name}", name, (probs, np.array([1, 2])), {"reduction": "none"})
            )
            out.append(
                (
                    f"ignored probs {dt} {name}",
                    name,
                    (probs, np.array([-100, 2])),
                    {"reduction": "none"},
                )
            )
        # smoothing puts target on a masked (-inf) class: the loss is +inf (the compensated sums
        # of the float64 C kernels turned it into NaN), the gradient finite
        zm = np.array([[-INF, 0.0, 1.0], [0.5, 1.0, -1.0]], dtype=dtype)
        for red in ("none", "sum", "mean"):
            out.append(
                (
                    f"masked {dt} {red}",
                    "softmax_cross_entropy_with_grad",
                    (zm, np.array([2, 0])),
                    {"reduction": red, "label_smoothing": 0.1},
                )
            )
    return out


CASES = _cases()


def _numpy(name, args, opts):
    return getattr(_sk(), name)(*args, **opts)


_MODULE = []


def _sk():
    if not _MODULE:
        _MODULE.append(numpy_backend.load_generated())
    return _MODULE[0]


def _outputs(name, value):
    """A kernel's results as a tuple (one entry per output)."""
    n = len(kr.kernel(name).outputs)
    return tuple(value) if n > 1 else (value,)


@pytest.fixture(scope="module")
def matlab():
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    batch = Batch()
    keys = {}
    for key, name, args, opts in CASES:
        margs = matlab_args(batch, name, args, opts)
        keys[key] = batch.call(f"symce_{name}({margs})", nout=len(kr.kernel(name).outputs))
    results = batch.run(octave)
    out = {}
    for key, name, args, opts in CASES:
        res = results[keys[key]].check()
        outs = [o.name for o in kr.kernel(name).outputs]
        out[key] = tuple(
            to_numpy_layout(
                name, v, output=o, reduction=opts.get("reduction", "mean"), shape=np.shape(args[0])
            )
            for v, o in zip(res.values, outs)
        )
    return out


def _run(lang, key, name, args, opts, clib=None, matlab=None):
    if lang == "numpy":
        return _outputs(name, _numpy(name, args, opts))
    if lang == "c":
        return _outputs(name, clib.call(name, args[0].dtype, *args, **opts))
    return matlab[key]


@pytest.fixture(params=["numpy", "c", "matlab"])
def run(request):
    lang = request.param
    clib = library() if lang == "c" else None
    mat = request.getfixturevalue("matlab") if lang == "matlab" else None

    def call(key):
        case = next(c for c in CASES if c[0] == key)
        return _run(lang, *case, clib=clib, matlab=mat)

    return call


def _keys(*prefixes):
    return [c[0] for c in CASES if c[0].startswith(prefixes)]


def _check_all(run, keys, check):
    """Run ``check(key, case, outputs)`` (an assertion) on every key; report every failure."""
    bad = []
    for key in keys:
        case = next(c for c in CASES if c[0] == key)
        try:
            check(key, case, [np.asarray(o) for o in run(key)])
        except AssertionError as exc:
            bad.append(f"{key}: {exc}")
    assert not bad, f"{len(bad)} of {len(keys)} cases:\n" + "\n".join(bad)


def _plus_inf(key, case, outs):
    name = case[1]
    inf = np.isposinf(case[2][0][:4])
    for out in outs:
        assert np.all(np.isfinite(out[4])), out  # the clean row
        rows = out[:4]
        if name == "softmax":
            assert np.all(np.isnan(rows[inf])) and np.all(rows[~inf] == 0), rows
        elif name == "log_softmax":
            assert np.all(np.isnan(rows[inf])) and np.all(rows[~inf] == -np.inf), rows
        elif name == "logsumexp":
            assert np.all(rows == np.inf), rows
        else:  # the kernels that combine the classes: a NaN row
            assert np.all(np.isnan(rows)), rows


def test_plus_inf_rows(run):
    _check_all(run, _keys("inf "), _plus_inf)


def _never_dropped(key, case, outs):
    _, name, args, opts = case
    ignored = key.startswith("ignored")
    red = opts.get("reduction")
    for o, out in zip(kr.kernel(name).outputs, outs):
        if o.name == "loss" and red != "none":
            # the NaN sample makes the sum and the mean NaN; an ignored one adds nothing
            assert np.isnan(out) != ignored, out
            continue
        first, second = out[0], out[1]
        if ignored:
            assert np.all(first == 0) and np.all(np.isfinite(second)), out
        elif key.startswith("nan probs") and o.name == "grad":
            # -y~_k / p_k: NaN where p is, the other entries as without it
            assert np.isnan(first[0]) and np.all(np.isfinite(first[1:])), out
        else:
            assert np.all(np.isnan(first)) and np.all(np.isfinite(second)), out


def test_nan_is_never_dropped(run):
    _check_all(run, _keys("nan ", "ignored "), _never_dropped)


def _masked(key, case, outs):
    loss, grad = outs
    assert np.ravel(loss)[0] == np.inf, loss
    assert np.all(np.isfinite(grad)), grad


def test_target_on_a_masked_class_is_an_infinite_loss(run):
    _check_all(run, _keys("masked "), _masked)


def test_mean_of_ignored_nan_is_the_clean_samples(run):
    """The ignored NaN sample is out of the divisor: the mean is the clean sample's loss over its
    weight, as PyTorch (weight 1 here)."""
    for dt in ("float32", "float64"):
        mean = np.asarray(run(f"ignored {dt} softmax_cross_entropy mean")[0])
        none = np.asarray(run(f"ignored {dt} softmax_cross_entropy none")[0])
        assert mean == none[1] and none[0] == 0


def test_torch_agrees_on_the_nan_and_inf_losses():
    """PyTorch's numbers for the cross-entropy cases of this module (float64)."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    z = np.array([[NAN, 1.0, 2.0], [1.0, 2.0, 3.0]])
    w = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    loss = F.cross_entropy(torch.tensor(z), torch.tensor([0, 1]), weight=w, reduction="none")
    ours = _sk().softmax_cross_entropy(z, np.array([0, 1]), reduction="none", weight=w.numpy())
    np.testing.assert_array_equal(loss.numpy(), ours)  # [nan, finite]: NaN kept
    loss = F.cross_entropy(torch.tensor(z), torch.tensor([-100, 1]), weight=w, reduction="none")
    ours = _sk().softmax_cross_entropy(z, np.array([-100, 1]), reduction="none", weight=w.numpy())
    np.testing.assert_array_equal(loss.numpy(), ours)  # [0, finite]: ignored
    zi = _plus_inf_rows(3, np.float64)
    t = torch.tensor(zi, requires_grad=True)
    F.cross_entropy(t, torch.tensor([0, 1, 2, 0, 1]), reduction="sum").backward()
    ours = _sk().softmax_cross_entropy_with_grad(zi, np.array([0, 1, 2, 0, 1]), reduction="none")
    for a, b in (
        (
            F.cross_entropy(
                torch.tensor(zi), torch.tensor([0, 1, 2, 0, 1]), reduction="none"
            ).numpy(),
            ours[0],
        ),
        (t.grad.numpy(), ours[1]),
    ):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(
        torch.logsumexp(torch.tensor(zi), -1).numpy(), _sk().logsumexp(zi)
    )
