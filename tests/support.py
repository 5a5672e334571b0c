"""Shared test helpers: error in ULPs against mpmath references, toolchain discovery, inputs."""

from __future__ import annotations

import os
import shutil

import mpmath
import numpy as np
import pytest

from symce.ulp import ulp_error  # noqa: F401  (re-exported for the language tests)


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
