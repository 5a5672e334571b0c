"""ULP accuracy of the MATLAB kernels against the raw mpmath definitions (one octave-cli).

The bounds of the numerics pass, in units in the last place of the result's class:

* softmax, log_softmax, logsumexp, softmax_cross_entropy ('none' losses) and the gradient of
  softmax_cross_entropy(_with_grad) within ``ROW_ULPS`` (4), for logits |z| <= 30, K in {2, 3, 10},
  double and single (rows of uniform logits, a narrow row, a dominant class, a tie at the max).
  The gradient p_k sum(y~) - y~_k is checked where it is not a cancellation: every class without
  target (grad = p) and the labelled class when p <= 1/2 (p - 1 of a likely class keeps only
  the digits p has: up to ~1e4 ULP in single too, for 1 - p ~ 1e-12, although the row is
  computed in double);
* sigmoid and sigmoid_grad within ``SIGMOID_ULPS`` (2) for |x| <= 700 (double) / 85 (single),
  except sigmoid_grad in double: the registry's slot sigmoid(-x) sigmoid(x) rounds the shared
  denominator 1 + exp(-|x|) into both factors, then divides twice and multiplies, so it is
  good to ~3 ULP (3.2 is the worst of 8000 random x; ~2% of x exceed 2 ULP), and the test
  allows ``SIGMOID_GRAD_F64_ULPS`` (3.5).  In single the sigmoid is computed in double and
  rounded once (1/2 ULP);
* the Jacobian of a dominant class, p_a = 1 - 1e-6 .. 1 - 1e-12, within ``ROW_ULPS`` of
  p_a (1 - p_a) on the diagonal (and of -p_i p_j off it), in both classes.

The references are ``symce.reference.evaluate(..., form="raw")`` (the model's definitions, no
stable rewrite) with ``dps = 50 + spread / 2.3 + 10`` digits per row, so that the raw definitions'
cancellation (a class dominating by a logit gap g costs ~g / 2.3 digits) cannot reach the
compared digits.  ``measure`` returns the worst ULPs per kernel and class (the figures reported
for the numerics pass); ``python tests/test_matlab_accuracy.py [matlab-dir]`` prints them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from symce import reference

import support
from octave_runner import MATLAB_DIR, Batch

ROW_ULPS = 4
SIGMOID_ULPS = 2
SIGMOID_GRAD_F64_ULPS = 3.5
KS = (2, 3, 10)
DTYPES = (np.float64, np.float32)
SIGMOID_RANGE = {np.float64: 700.0, np.float32: 85.0}
ROW_KERNELS = ("softmax", "log_softmax", "logsumexp")
CE = "softmax_cross_entropy"
DOMINANT = tuple(10.0**-k for k in range(6, 13))  # 1 - p_a


def ulps(actual, ref) -> float:
    """``support.ulp_error`` with its arithmetic at 40 digits (at mpmath's default 15 it would
    round the reference to a double first, and report whole ULPs in float64)."""
    with mpmath.workdps(40):
        return support.ulp_error(actual, ref)


def _dps(row) -> int:
    row = np.asarray(row, dtype=np.float64)
    spread = float(np.max(row) - np.min(row)) if row.size else 0.0
    return 50 + int(spread / 2.3) + 10


def _rows(rng, K, dtype):
    """Logits (N, K), |z| <= 30: uniform rows, a narrow one, a dominant class, a tie at the max."""
    rows = [rng.uniform(-30, 30, K) for _ in range(3)]
    rows.append(rng.uniform(-3, 3, K))
    dom = rng.uniform(-1, 1, K)
    dom[rng.integers(K)] = rng.uniform(12, 29)
    rows.append(dom)
    tie = rng.uniform(-30, 20, K)
    tie[:2] = 25.0 if K > 2 else tie[0]
    rows.append(tie)
    return np.array(rows).astype(dtype)


def _sigmoid_inputs(rng, dtype):
    bound = SIGMOID_RANGE[dtype]
    x = np.concatenate(
        [rng.uniform(-bound, bound, 120), rng.normal(0, 4, 60), [bound, -bound, 0.0, 1e-30, -1e-30]]
    )
    return x.astype(dtype)


def _dominant_logits(dtype):
    """K = 3 logits whose class a (cycling through 0, 1, 2) has p_a = 1 - delta."""
    rows = []
    for n, delta in enumerate(DOMINANT):
        z = np.zeros(3)
        z[n % 3] = np.log(2 / delta)  # p_a = 1 / (1 + 2 exp(-g))
        rows.append(z)
    return np.array(rows).astype(dtype)


# ----------------------------------------------------------------------------------------------
# The batch.
# ----------------------------------------------------------------------------------------------
def build(batch: Batch) -> list:
    """Register every call; returns the cases (kind, dtype, inputs, key)."""
    rng = np.random.default_rng(31)
    cases = []
    for dtype in DTYPES:
        for K in KS:
            z = _rows(rng, K, dtype)
            labels = rng.integers(0, K, len(z))
            zarg = batch.arg(z.T)
            larg = batch.arg((labels + 1).reshape(1, -1).astype(np.float64))
            for name in ROW_KERNELS:
                cases.append(("row", name, dtype, (z,), batch.call(f"symce_{name}({zarg})")))
            cases.append(
                (
                    "ce",
                    CE,
                    dtype,
                    (z, labels),
                    batch.call(f"symce_{CE}({zarg}, {larg}, 'Reduction', 'none')"),
                )
            )
            cases.append(
                (
                    "ce_grad",
                    f"{CE}_grad",
                    dtype,
                    (z, labels),
                    batch.call(f"symce_{CE}_grad({zarg}, {larg}, 'Reduction', 'sum')"),
                )
            )
            cases.append(
                (
                    "ce_with_grad",
                    f"{CE}_with_grad",
                    dtype,
                    (z, labels),
                    batch.call(
                        f"symce_{CE}_with_grad({zarg}, {larg}, 'Reduction', 'none')", nout=2
                    ),
                )
            )
        x = _sigmoid_inputs(rng, dtype)
        xarg = batch.arg(x.reshape(1, -1))
        for name in ("sigmoid", "sigmoid_grad"):
            cases.append(("sigmoid", name, dtype, (x,), batch.call(f"symce_{name}({xarg})")))
        zd = _dominant_logits(dtype)
        cases.append(
            (
                "jacobian",
                "softmax_jacobian",
                dtype,
                (zd,),
                batch.call("symce_softmax_jacobian(%s)", batch.arg(zd.T)),
            )
        )
    return cases


# ----------------------------------------------------------------------------------------------
# References and errors.
# ----------------------------------------------------------------------------------------------
def _row_reference(name, z, labels=None, **opts):
    """Raw reference, one row at a time at that row's digits, stacked (NumPy layout)."""
    out = []
    for n, row in enumerate(z):
        args = (row[None],) if labels is None else (row[None], labels[n : n + 1])
        out.append(reference.evaluate(name, *args, form="raw", dps=_dps(row), **opts))
    return out


def _ce_grad_mask(z, labels):
    """Gradient entries that are not a cancellation (see the module docstring)."""
    mask = np.ones(z.shape, dtype=bool)
    p = np.array([[float(v) for v in r[0]] for r in _row_reference("softmax", z)])
    rows = np.arange(len(z))
    mask[rows, labels] = p[rows, labels] <= 0.5
    return mask


def case_ulps(case, res) -> dict:
    """{label: worst ULPs} of one case (label = kernel[.output])."""
    kind, name, dtype, args, _ = case
    vals = res.check().values
    cls = {np.float64: "double", np.float32: "single"}[dtype]
    assert res.classes == [cls] * len(vals), f"{name}: {res.classes} out for {cls} in"
    if kind == "row":
        ref = _row_reference(name, *args)
        got = vals[0].ravel() if name == "logsumexp" else vals[0].T
        ref = np.array([r[0] for r in ref], dtype=object)
        return {name: ulps(got, ref)}
    if kind == "sigmoid":
        ref = reference.evaluate(name, args[0], form="raw")
        return {name: ulps(vals[0].ravel(), ref)}
    if kind == "jacobian":
        z = args[0]
        ref = np.array([r[0] for r in _row_reference(name, z)], dtype=object)
        got = np.moveaxis(vals[0], 2, 0)  # K x K x N -> (N, K, K)
        diag = np.array([np.diag(j) for j in got])
        rdiag = np.array([np.diag(r) for r in ref], dtype=object)
        return {f"{name}.diagonal": ulps(diag, rdiag), f"{name}.all": ulps(got, ref)}
    z, labels = args
    out = {}
    if kind in ("ce", "ce_with_grad"):
        ref = _row_reference(CE, z, labels, reduction="none")
        loss_ref = np.array([r[0] for r in ref], dtype=object)
        out[f"{name}.loss"] = ulps(vals[0].ravel(), loss_ref)
    if kind in ("ce_grad", "ce_with_grad"):
        ref = _row_reference(f"{CE}_grad", z, labels, reduction="sum")
        grad_ref = np.array([r[0] for r in ref], dtype=object)
        got = vals[-1].T
        mask = _ce_grad_mask(z, labels)
        out[f"{name}.grad"] = ulps(got[mask], grad_ref[mask])
    return out


def measure(cases, results) -> dict:
    """{(label, dtype name): worst ULPs} over every case."""
    worst = {}
    for case in cases:
        dt = np.dtype(case[2]).name
        for label, err in case_ulps(case, results[case[4]]).items():
            worst[(label, dt)] = max(worst.get((label, dt), 0.0), err)
    return worst


# ----------------------------------------------------------------------------------------------
# Tests.
# ----------------------------------------------------------------------------------------------
CASES = []


@pytest.fixture(scope="module")
def results():
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    batch = Batch()
    CASES[:] = build(batch)
    return batch.run(octave)


def _bound(label, dtype):
    if label == "sigmoid_grad" and dtype == np.float64:
        return SIGMOID_GRAD_F64_ULPS
    return SIGMOID_ULPS if label.startswith("sigmoid") else ROW_ULPS


@pytest.mark.parametrize("kind", ["row", "ce", "ce_grad", "ce_with_grad", "sigmoid", "jacobian"])
def test_ulps(results, kind):
    checked = 0
    for case in (c for c in CASES if c[0] == kind):
        for label, err in case_ulps(case, results[case[4]]).items():
            checked += 1
            bound = _bound(label, case[2])
            assert err <= bound, (
                f"{label} {np.dtype(case[2]).name}: {err:.3g} ULP > {bound} (inputs {case[3]})"
            )
    assert checked >= 2 * (len(KS) if kind not in ("sigmoid", "jacobian") else 1)


def test_dominant_jacobian_is_p_times_one_minus_p(results):
    """The diagonal entry of the dominant class is p_a (1 - p_a) ~ delta, not 0 or noise."""
    for case in (c for c in CASES if c[0] == "jacobian"):
        J = results[case[4]].value
        diag = np.array([J[n % 3, n % 3, n] for n in range(J.shape[2])], dtype=np.float64)
        np.testing.assert_allclose(diag, np.array(DOMINANT) * (1 - np.array(DOMINANT)), rtol=1e-4)


def main(argv):
    """Print the worst ULPs per kernel and class, for the generated files in argv[1] (or ours)."""
    paths = (Path(argv[1]),) if len(argv) > 1 else (MATLAB_DIR,)
    batch = Batch(paths)
    cases = build(batch)
    worst = measure(cases, batch.run("octave-cli"))
    for (label, dt), err in sorted(worst.items()):
        print(f"{label:45s} {dt:8s} {err:8.3f} ULP")


if __name__ == "__main__":
    main(sys.argv)
