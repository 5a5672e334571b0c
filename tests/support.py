"""Shared test helpers: error in ULPs against mpmath references, toolchain discovery, inputs."""
from __future__ import annotations

import os
import shutil

import mpmath
import numpy as np
import pytest


def ulp_error(actual, reference) -> float:
    """Largest |actual - reference| in units of the last place of ``actual``'s dtype.

    ``reference`` is an array (or scalar) of mpmath numbers.  Equal infinities and NaN-for-NaN
    count as 0; any other mismatch of non-finite values is infinite error.
    """
    actual = np.asarray(actual)
    dtype = actual.dtype if actual.dtype.kind == "f" else np.dtype(np.float64)
    finfo = np.finfo(dtype)
    ref = np.asarray(reference, dtype=object)
    worst = 0.0
    for a, r in zip(np.ravel(actual), np.ravel(ref)):
        a = float(a)
        r = mpmath.mpf(r)
        if mpmath.isnan(r) or np.isnan(a):
            if not (mpmath.isnan(r) and np.isnan(a)):
                return float("inf")
            continue
        if mpmath.isinf(r) or np.isinf(a):
            if not (mpmath.isinf(r) and np.isinf(a) and (r > 0) == (a > 0)):
                return float("inf")
            continue
        rf = dtype.type(float(r))  # the reference rounded to the dtype
        ulp = float(np.spacing(np.abs(rf))) if rf != 0 else float(finfo.smallest_subnormal)
        worst = max(worst, float(abs(mpmath.mpf(a) - r) / ulp))
    return worst


def rel_error(actual, reference) -> float:
    """Largest |a - r| / max(|r|, tiny) over the elements (non-finite must match exactly)."""
    actual = np.asarray(actual, dtype=float)
    ref = np.asarray(reference, dtype=object)
    worst = 0.0
    for a, r in zip(np.ravel(actual), np.ravel(ref)):
        r = mpmath.mpf(r)
        if not mpmath.isfinite(r) or not np.isfinite(a):
            same = (mpmath.isnan(r) and np.isnan(a)) or (mpmath.isinf(r) and a == float(r))
            if not same:
                return float("inf")
            continue
        worst = max(worst, float(abs(mpmath.mpf(float(a)) - r) / max(abs(r), mpmath.mpf("1e-300"))))
    return worst


def toolchain(name: str, env_var: str):
    """Path of an external tool, or skip — unless ``env_var`` is "1" (CI), then fail."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not found on PATH"
        if os.environ.get(env_var) == "1":
            pytest.fail(f"{msg}, and {env_var}=1 requires it")
        pytest.skip(f"{msg} (install it, or set {env_var}=1 to make this a failure)")
    return path


def random_logits(rng, n, k, scale=3.0, dtype=np.float64):
    return (rng.standard_normal((n, k)) * scale).astype(dtype)


def random_distribution(rng, n, k, dtype=np.float64):
    a = rng.random((n, k)) + 1e-3
    return (a / a.sum(axis=1, keepdims=True)).astype(dtype)
