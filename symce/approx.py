"""Stage 4 — numerics: the polynomial approximations symce derives for its vectorised kernels.

glibc's scalar ``exp``/``log1p`` do not vectorise, so the C kernels evaluate their own, derived
here at ``make derive`` time with mpmath:

* **exp** — range reduction x = n ln2 + r with n = round(x / ln2) (the proof
  ``exp_range_reduction``), so exp(x) = 2^n exp(r) and |r| <= ln2/2.  ln2 is split Cody–Waite
  style, ln2 = C_hi + C_lo with C_hi carrying only :data:`CW_BITS` significant bits, so n C_hi is
  exact for |n| < 2^11 and r = (x - n C_hi) - n C_lo loses nothing to cancellation.  exp(r) is a
  polynomial P(r) = 1 + c_1 r + ... + c_d r^d, a minimax fit of the *relative* error on
  [-ln2/2, ln2/2] (Remez exchange, P(0) = 1 exactly so exp(0) = 1 exactly), of the lowest degree
  that meets the precision asked for.  2^n is built from its bits in two factors, so results in
  the subnormal range round once and correctly.
* **log1p** on [0, 1] (the softplus of the sigmoid losses, log1p(e^{-|x|})) — s = v / (2 + v)
  lies in [0, 1/3] and log1p(v) = 2 atanh(s) = 2 s Q(s^2) with Q a minimax fit of atanh(s)/s in
  s^2 (relative error), again of the lowest degree that suffices.

Each :class:`Approximation` carries its coefficients rounded to double, the measured
approximation error of those rounded coefficients (mpmath, 40 digits, on a dense grid) and the
measured error of the whole evaluation in IEEE double (each operation rounded as C rounds it
without FMA contraction, against mpmath on random and edge arguments), in ULPs.  The C printer
prints them as hexadecimal literals and puts the figures in the generated comment; the tests
check the compiled helpers against mpmath with and without FMA.

Targets: :data:`TARGETS` — ``f64`` (the double kernels: 2^-56 relative, an eighth of an ULP,
below the rounding of the evaluation) and ``f32`` (the float kernels, which compute in double:
2^-38 relative, so a float result stays within 0.5 ULP + 2^-14 ULP).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import mpmath

DPS = 32  # working precision of the fits and the measurements
GRID = 240  # points per interval for locating extrema / measuring
CW_BITS = 32  # significant bits of C_hi: n * C_hi exact for |n| < 2^(53 - 32)
SHIFTER = 1.5 * 2.0**52  # x * log2(e) + SHIFTER rounds to an integer n in the low bits
EXP_LO = -745.1332191019412  # below: exp(x) < 2^-1075 / 2, which rounds to 0
EXP_HI = 709.782712893384  # above: exp(x) overflows double
TARGETS = {  # compute precision -> the relative approximation error the polynomial must meet
    "f64": 2.0**-56,  # 1/8 ULP of a double: the rounding of the evaluation dominates
    "f32": 2.0**-38,  # 2^-14 ULP of a float, for the float kernels that compute in double
}


@dataclass(frozen=True)
class Approximation:
    """A polynomial fit: what it approximates, on which interval, its double coefficients (lowest
    power first), the approximation error of those coefficients (relative, measured) and the error
    of the evaluation in double (ULPs, measured)."""

    function: str  # "exp" | "log1p"
    target: str  # TARGETS key
    interval: tuple  # (a, b) of the reduced argument
    variable: str  # "r" (exp) or "s^2" (log1p)
    coefficients: tuple  # floats, lowest power first
    approx_error: float  # max relative error of the rounded polynomial on the interval
    eval_ulps: float  # max error of the double evaluation, in ULPs of the double result
    eval_rel_error: float  # max relative error of the double evaluation (normal results)
    eval_points: int  # how many arguments the evaluation error was measured on

    @property
    def degree(self) -> int:
        """The polynomial's degree (coefficients less one)."""
        return len(self.coefficients) - 1


def _f(x):
    return float(x)


def to_double(x: mpmath.mpf | float | int) -> float:
    """mpmath number -> the nearest double (mpmath rounds to nearest)."""
    return float(mpmath.mpf(x))


# ----------------------------------------------------------------------------------------------
# Remez exchange for a weighted linear minimax problem.
# ----------------------------------------------------------------------------------------------
def _remez(basis, target, weight, a, b, iters=12):
    """Coefficients c minimising max_x |weight(x) (sum_i c_i basis_i(x) - target(x))| on [a, b].

    ``basis`` is a list of callables; the error must equioscillate at len(basis) + 1 points.
    """
    m = len(basis)
    grid = [a + (b - a) * (1 - mpmath.cos(mpmath.pi * k / (GRID - 1))) / 2 for k in range(GRID)]
    vals = [[f(x) for f in basis] for x in grid]
    tgt = [target(x) for x in grid]
    wts = [weight(x) for x in grid]
    # initial reference: Chebyshev extrema, moved off any point where the error is forced to 0
    ref = [int(round((GRID - 1) * (1 - math.cos(math.pi * k / m)) / 2)) for k in range(m + 1)]
    ref = [k + 1 if wts[k] * tgt[k] == 0 and all(v == 0 for v in vals[k]) else k for k in ref]
    coeffs = None
    for _ in range(iters):
        A = mpmath.matrix(m + 1, m + 1)
        rhs = mpmath.matrix(m + 1, 1)
        for row, idx in enumerate(ref):
            for col in range(m):
                A[row, col] = vals[idx][col] * wts[idx]
            A[row, m] = (-1) ** row
            rhs[row] = tgt[idx] * wts[idx]
        sol = mpmath.lu_solve(A, rhs)
        coeffs = [sol[i] for i in range(m)]
        err = [wts[k] * (sum(c * v for c, v in zip(coeffs, vals[k])) - tgt[k]) for k in range(GRID)]
        ref_new = _alternating_extrema(err, m + 1)
        if ref_new is None or ref_new == ref:
            break
        ref = ref_new
    return coeffs


def _alternating_extrema(err, count):
    """Indices of ``count`` local extrema of ``err`` with alternating signs and the largest
    magnitudes (the multi-point exchange); None if there are too few."""
    n = len(err)
    cand = []
    for k in range(n):
        left = err[k - 1] if k > 0 else None
        right = err[k + 1] if k < n - 1 else None
        e = err[k]
        if e == 0:
            continue
        if e > 0 and (left is None or e >= left) and (right is None or e >= right):
            cand.append(k)
        elif e < 0 and (left is None or e <= left) and (right is None or e <= right):
            cand.append(k)
    # merge runs of the same sign, keeping the largest
    merged = []
    for k in cand:
        if merged and (err[merged[-1]] > 0) == (err[k] > 0):
            if abs(err[k]) > abs(err[merged[-1]]):
                merged[-1] = k
        else:
            merged.append(k)
    while len(merged) > count:  # drop the smaller end
        if abs(err[merged[0]]) < abs(err[merged[-1]]):
            merged.pop(0)
        else:
            merged.pop()
    return merged if len(merged) == count else None


def _max_rel_error(poly, exact, a, b, points=3 * GRID):
    worst = mpmath.mpf(0)
    for k in range(points):
        x = a + (b - a) * mpmath.mpf(k) / (points - 1)
        ex = exact(x)
        if ex == 0:
            continue
        worst = max(worst, abs((poly(x) - ex) / ex))
    return worst


def _horner(coeffs, x):
    acc = mpmath.mpf(0)
    for c in reversed(coeffs):
        acc = acc * x + c
    return acc


# ----------------------------------------------------------------------------------------------
# exp
# ----------------------------------------------------------------------------------------------
@cache
def cody_waite() -> tuple[float, float, float]:
    """(log2(e), C_hi, C_lo) as doubles: C_hi = ln2 to CW_BITS bits, C_lo = ln2 - C_hi rounded."""
    with mpmath.workdps(DPS):
        ln2 = mpmath.log(2)
        scale = mpmath.mpf(2) ** (CW_BITS - 1)  # ln2 in [0.5, 1): CW_BITS bits after the point
        c_hi = mpmath.floor(ln2 * scale * 2) / (scale * 2)
        c_lo = ln2 - c_hi
        return to_double(1 / ln2), to_double(c_hi), to_double(c_lo)


def _fit_exp(degree):
    with mpmath.workdps(DPS):
        h = mpmath.log(2) / 2
        # c_0 = c_1 = 1 exactly (Taylor's): the rounding of the fitted c_i, i >= 2, is then scaled
        # by r^2 <= 0.12, and exp(0) = 1 exactly
        basis = [lambda x, i=i: x**i for i in range(2, degree + 1)]
        coeffs = _remez(basis, lambda x: mpmath.exp(x) - 1 - x, lambda x: 1 / mpmath.exp(x), -h, h)
        rounded = [1.0, 1.0] + [to_double(c) for c in coeffs]
        err = _max_rel_error(
            lambda x: _horner([mpmath.mpf(c) for c in rounded], x), mpmath.exp, -h, h
        )
        return rounded, float(err)


ATANH_WIDE = 1.0 / 9  # s = v/(2 + v), v in [0, 1]
ATANH_NARROW = ((2**0.5 - 1) / (2**0.5 + 1)) ** 2  # t = (m - 1)/(m + 1), m in [1/sqrt2, sqrt2]


def _fit_log1p(degree, width=ATANH_WIDE):
    # atanh(s)/s = 1 + s^2/3 + s^4/5 + ... as Q(u), u = s^2 in [0, width]; Q(0) = 1 exactly
    with mpmath.workdps(DPS):

        def q_exact(u):
            if u == 0:
                return mpmath.mpf(1)
            s = mpmath.sqrt(u)
            return mpmath.atanh(s) / s

        basis = [lambda u, i=i: u**i for i in range(1, degree + 1)]
        lo, hi = mpmath.mpf(0), mpmath.mpf(width)
        coeffs = _remez(basis, lambda u: q_exact(u) - 1, lambda u: 1 / q_exact(u), lo, hi)
        rounded = [1.0] + [to_double(c) for c in coeffs]
        err = _max_rel_error(
            lambda u: _horner([mpmath.mpf(c) for c in rounded], u), q_exact, lo, hi
        )
        return rounded, float(err)


def _lowest_degree(fit, target, start):
    """The fit of the lowest degree >= start whose measured error meets target."""
    degree = start
    while True:
        coeffs, err = fit(degree)
        if err <= target:
            return coeffs, err
        degree += 1
        if degree > 24:
            raise RuntimeError(f"no polynomial of degree <= 24 meets {target}")


# ----------------------------------------------------------------------------------------------
# The evaluation in IEEE double, step by step as the printed C does it (no FMA contraction).
# ----------------------------------------------------------------------------------------------
def _split(a: float):
    """Veltkamp's split: a = hi + lo with 26-bit halves (so hi*hi etc. are exact)."""
    t = 134217729.0 * a  # 2^27 + 1
    hi = t - (t - a)
    return hi, a - hi


def _fma(a: float, b: float, c: float) -> float:
    """fma(a, b, c) rounded once: a*b = p + e exactly (Dekker's product), and math.fsum rounds
    p + e + c exactly once."""
    p = a * b
    if not all(math.isfinite(v) for v in (a, b, c, p)):
        return p + c
    if abs(p) > 1e300 or (p != 0 and abs(p) < 1e-280) or max(abs(a), abs(b)) > 1e290:
        return float(Fraction(a) * Fraction(b) + Fraction(c))  # the split would over/underflow
    p, e = _two_prod(a, b)
    return math.fsum((p, e, c))


def _mul_add(fma: bool):
    return _fma if fma else (lambda a, b, c: a * b + c)


@dataclass(frozen=True)
class ExpScheme:
    """How a C exp helper evaluates: the shifter (1.5 2^52, plus the exponent bias when 2^n is
    built in one factor), the reduction constants, one or two factors for 2^n, and the arguments
    below which the result is 0 and above which it is +inf."""

    two_step: bool  # 2^n in two factors (subnormal results round once)
    cody_waite: bool  # ln2 as C_hi + C_lo (else one double: enough for float results)
    lo: float
    hi: float
    split_one: bool = False  # P(r) = (1 + r) + r^2 Q(r) with 1 + r split exactly (Fast2Sum)

    @property
    def shifter(self) -> float:
        """What x log2(e) + shifter rounds n into the low bits with: SHIFTER, plus the exponent bias
        when 2^n is one factor."""
        return SHIFTER if self.two_step else SHIFTER + 1023.0


SCHEMES = {  # per target: the double kernels go down to the subnormals; the float kernels flush
    # exp(x) < 2^-1022 to 0 (below float's range by a factor 2^873, so never visible in a float)
    "f64": ExpScheme(True, True, EXP_LO, EXP_HI, split_one=True),
    "f32": ExpScheme(False, False, -708.0, 709.0),
}


def exp_double(x: float, coeffs: Sequence[float], scheme: ExpScheme, fma: bool = False) -> float:
    """symce's exp evaluated in double, operation by operation as the printed C helper (with or
    without FMA contraction)."""
    ma = _mul_add(fma)
    log2e, c_hi, c_lo = cody_waite()
    if x != x:
        return x
    if x < scheme.lo:
        return 0.0
    if x > scheme.hi:
        return math.inf
    kd0 = ma(x, log2e, scheme.shifter)
    kd = kd0 - scheme.shifter
    if scheme.cody_waite:
        r = ma(-kd, c_hi, x)
        r = ma(-kd, c_lo, r)
    else:
        r = ma(-kd, float(mpmath.log(2)), x)
    if scheme.split_one:
        # r^2 Q(r) with Q = c_2 + c_3 r + ...; 1 + r = t + err exactly; one rounding at the end
        q = coeffs[-1]
        for c in reversed(coeffs[2:-1]):
            q = ma(q, r, c)
        t = 1.0 + r
        err = (1.0 - t) + r
        p = t + ma(r * r, q, err)
    else:
        p = coeffs[-1]
        for c in reversed(coeffs[:-1]):
            p = ma(p, r, c)
    n = int(kd)
    if scheme.two_step:
        n1 = n // 2  # floor, as the unsigned shift of the biased exponent in C
        return (p * 2.0**n1) * 2.0 ** (n - n1)
    return p * 2.0**n


def log1p_double(v: float, coeffs: Sequence[float], fma: bool = False) -> float:
    """symce's log1p on [0, 1] in double, as the C helper: s = v / (2 + v), 2 s Q(s^2)."""
    ma = _mul_add(fma)
    s = v / (2.0 + v)
    u = s * s
    q = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        q = ma(q, u, c)
    return (s + s) * q


def log1p_any_double(s: float, coeffs: Sequence[float], fma: bool = False) -> float:
    """symce's log1p for s >= 0 (Srest) in double, as the C helper: 1 + s = (1 + f) 2^e with
    1 + f in [1/sqrt2, sqrt2) (f = s itself, exact, while s <= sqrt2 - 1: no rounding of 1 + s
    to correct, and nothing for -ffast-math to cancel), log(1 + f) = 2 atanh(t) with
    t = f/(2 + f), so log1p(s) = e ln2 + 2 t Q(t^2)."""
    if not (math.isfinite(s) and s >= 0):
        return math.log1p(s) if s >= -1 else math.nan
    ma = _mul_add(fma)
    _, c_hi, c_lo = cody_waite()
    e, f = 0, s
    if s > SQRT2 - 1:
        m, e = math.frexp(1.0 + s)  # 1 + s = m 2^e, m in [0.5, 1)
        m, e = m * 2.0, e - 1  # m in [1, 2)
        if m > SQRT2:
            m, e = m * 0.5, e + 1
        f = m - 1.0
    t = f / (2.0 + f)
    w = t * t
    q = coeffs[-1]
    for k in reversed(coeffs[:-1]):
        q = ma(q, w, k)
    return ma(float(e), c_hi, ma(float(e), c_lo, (t + t) * q))


SQRT2 = 1.4142135623730951


def _ulps(value: float, exact) -> float:
    if exact == 0:
        return 0.0 if value == 0 else math.inf
    ref = to_double(exact)
    spacing = math.ulp(ref) if ref != 0 else 2.0**-1074
    return float(abs(mpmath.mpf(value) - exact) / spacing)


def _measure(fn, exact, args):
    """(max error in double ULPs, max relative error where the result is a normal double)."""
    ulps, rel = 0.0, 0.0
    with mpmath.workdps(DPS):
        for a in args:
            value, ex = fn(a), exact(mpmath.mpf(a))
            ulps = max(ulps, _ulps(value, ex))
            if abs(ex) >= 2.0**-1022 and not mpmath.isinf(ex):
                rel = max(rel, float(abs((value - ex) / ex)))
    return ulps, rel


def _exp_args(count, seed=7):
    rng = random.Random(seed)
    args = [rng.uniform(-745.0, 0.0) for _ in range(count // 2)]
    args += [rng.uniform(-2.0, 0.0) for _ in range(count // 4)]
    args += [rng.uniform(0.0, 709.0) for _ in range(count // 8)]
    h = math.log(2) / 2
    args += [k * math.log(2) + d for k in range(-60, 60, 7) for d in (-h, -h / 2, 0.0, h / 2, h)]
    args += [0.0, -0.0, -1e-300, -708.4, -709.0, -740.0, -745.0, 1e-300, 709.7]
    return args


def _exp_degree_estimate(target):
    """The degree the Chebyshev bound (ln2/2)^(d+1) / ((d+1)! 2^d) suggests (the search starts
    there and goes up until the measured error meets the target)."""
    h = math.log(2) / 2
    d = 2
    while h ** (d + 1) / (math.factorial(d + 1) * 2.0**d) > target:
        d += 1
    return d


def _log1p_degree_estimate(target):
    """As above for Q(u) on [0, 1/9]: (1/9)^(d+1) / (2d + 3) / 4^d."""
    d = 1
    while (1 / 9) ** (d + 1) / (2 * d + 3) / 4.0**d > target:
        d += 1
    return d


@cache
def exp_approximation(target: str) -> Approximation:
    """The exp polynomial for compute precision ``target`` (TARGETS key), fitted and measured
    (the evaluation error: the worse of the builds with and without FMA)."""
    coeffs, err = _lowest_degree(_fit_exp, TARGETS[target], _exp_degree_estimate(TARGETS[target]))
    scheme = SCHEMES[target]
    args = _exp_args(1000)
    # the kernels pass z - max <= 0 and -|t| <= 0; below scheme.lo the result is 0 by design
    args = [a for a in args if scheme.lo <= a <= 0]
    ulps, rel = 0.0, 0.0
    for fma in (False, True):
        u, r = _measure(lambda a, fma=fma: exp_double(a, coeffs, scheme, fma), mpmath.exp, args)
        ulps, rel = max(ulps, u), max(rel, r)
    h = math.log(2) / 2
    return Approximation("exp", target, (-h, h), "r", tuple(coeffs), err, ulps, rel, len(args))


@cache
def log1p_approximation(target: str) -> Approximation:
    """The log1p polynomial (on [0, 1]) for compute precision ``target``."""
    coeffs, err = _lowest_degree(
        _fit_log1p, TARGETS[target], _log1p_degree_estimate(TARGETS[target])
    )
    rng = random.Random(11)
    args = [rng.uniform(0.0, 1.0) for _ in range(700)] + [
        10.0 ** -rng.uniform(0, 300) for _ in range(700)
    ]
    args += [0.0, 1.0, 2.0**-1074, 1e-300, 0.5]
    ulps, rel = 0.0, 0.0
    for fma in (False, True):
        u, r = _measure(lambda a, fma=fma: log1p_double(a, coeffs, fma), mpmath.log1p, args)
        ulps, rel = max(ulps, u), max(rel, r)
    return Approximation(
        "log1p", target, (0.0, 1.0 / 9), "s^2", tuple(coeffs), err, ulps, rel, len(args)
    )


@cache
def log1p_any_approximation(target: str) -> Approximation:
    """log1p(s) for s >= 0 (the row kernels' log1p(Srest), once per row) for ``target``: the
    exponent of 1 + s split off, atanh of the mantissa's reduced argument by Q on [0, 0.0295]."""
    coeffs, err = _lowest_degree(lambda d: _fit_log1p(d, ATANH_NARROW), TARGETS[target], 2)
    rng = random.Random(13)
    args = [rng.uniform(0.0, 4.0) for _ in range(400)] + [
        10.0 ** rng.uniform(-300, 6) for _ in range(600)
    ]
    args += [0.0, 1.0, 2.0**-1074, 1e-300, 0.5, SQRT2 - 1, 127999.0]
    ulps, rel = 0.0, 0.0
    for fma in (False, True):
        u, r = _measure(lambda a, fma=fma: log1p_any_double(a, coeffs, fma), mpmath.log1p, args)
        ulps, rel = max(ulps, u), max(rel, r)
    return Approximation(
        "log1p", target, (0.0, ATANH_NARROW), "t^2", tuple(coeffs), err, ulps, rel, len(args)
    )


def _two_prod(a: float, b: float):
    """Dekker's product without FMA: a*b = p + e exactly (Veltkamp's split of both factors)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


INV_2PV = (0.5, 1.0 / 6)  # 1/(2 + v) ~ 0.5 - v/6 on [0, 1], within 4%: enough for s_lo


def log1p01_double(v: float, coeffs: Sequence[float], fma: bool = False) -> float:
    """symce's log1p on [0, 1] for the double kernels, as the C helper: s = v/(2 + v) carried as
    s + s_lo (2 + v = t + et by Fast2Sum; v - s t exactly, by FMA or Dekker's product), then
    log1p(v) = 2 atanh(s + s_lo) = 2 s + 2 (s_lo + s u R(u)), u = s^2, Q(u) = 1 + u R(u): only
    the last addition rounds at the result's scale (the rest is below it by a factor of 27)."""
    ma = _mul_add(fma)
    t = 2.0 + v
    et = (2.0 - t) + v  # exact: 2 >= v >= 0
    s = v / t
    if fma:
        rem = _fma(-s, t, v)  # v - s t is exact (the remainder of a rounded quotient)
    else:
        ph, pl = _two_prod(s, t)
        rem = (v - ph) - pl
    s_lo = (rem - s * et) * (INV_2PV[0] - v * INV_2PV[1])
    u = s * s
    r = coeffs[-1]
    for c in reversed(coeffs[1:-1]):
        r = ma(r, u, c)
    lo = ma(s * u, r, s_lo)
    return (s + s) + (lo + lo)


@cache
def log1p01_approximation(target: str) -> Approximation:
    """log1p on [0, 1] for the double kernels (the sigmoid losses' log1p(e^-|x|)): the f64 fit
    of atanh(s)/s, evaluated with s carried to twice double precision (log1p01_double)."""
    coeffs, err = _lowest_degree(
        _fit_log1p, TARGETS[target], _log1p_degree_estimate(TARGETS[target])
    )
    if coeffs[0] != 1.0:
        raise ValueError("log1p01_double needs Q(0) = 1 exactly")
    rng = random.Random(12)
    args = [rng.uniform(0.0, 1.0) for _ in range(700)] + [
        10.0 ** -rng.uniform(0, 300) for _ in range(200)
    ]
    args += [0.0, 1.0, 1e-300, 0.5, 1.0 - 2.0**-53]  # (a subnormal v: within 2^-1074)
    ulps, rel = 0.0, 0.0
    for fma in (False, True):
        u, r = _measure(lambda a, fma=fma: log1p01_double(a, coeffs, fma), mpmath.log1p, args)
        ulps, rel = max(ulps, u), max(rel, r)
    return Approximation(
        "log1p", target, (0.0, ATANH_WIDE), "s^2", tuple(coeffs), err, ulps, rel, len(args)
    )
