"""Error in units in the last place (ULP) of a floating-point result against an mpmath reference."""
from __future__ import annotations

import mpmath
import numpy as np


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
