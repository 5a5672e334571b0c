"""Verification (outside the pipeline): error in units in the last place (ULP) of a
floating-point result against an mpmath reference."""

from __future__ import annotations

import mpmath
import numpy as np
from numpy.typing import ArrayLike


def ulp_error(actual: ArrayLike, reference: ArrayLike | mpmath.mpf) -> float:
    """Largest |actual - reference| in units of the last place of ``actual``'s dtype.

    ``reference`` is an array (or scalar) of mpmath numbers.  Equal infinities and NaN-for-NaN
    count as 0; any other mismatch of non-finite values is infinite error.
    """
    actual = np.asarray(actual)
    dtype = actual.dtype if actual.dtype.kind == "f" else np.dtype(np.float64)
    finfo = np.finfo(dtype)
    ref = np.asarray(reference, dtype=object)
    worst = 0.0
    with mpmath.workdps(40):  # the reference must not be rounded before the difference
        for a, r in zip(np.ravel(actual), np.ravel(ref)):
            worst = max(worst, _one(float(a), mpmath.mpf(r), dtype, finfo))
            if worst == float("inf"):
                break
    return worst


def _one(a, r, dtype, finfo) -> float:
    if mpmath.isnan(r) or np.isnan(a):
        return 0.0 if (mpmath.isnan(r) and np.isnan(a)) else float("inf")
    if mpmath.isinf(r) or np.isinf(a):
        same = mpmath.isinf(r) and np.isinf(a) and (r > 0) == (a > 0)
        return 0.0 if same else float("inf")
    rf = dtype.type(float(r))  # the reference rounded to the dtype
    ulp = float(np.spacing(np.abs(rf))) if rf != 0 else float(finfo.smallest_subnormal)
    return float(abs(mpmath.mpf(a) - r) / ulp)
