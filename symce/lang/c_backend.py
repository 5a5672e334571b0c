"""Stage 6 — emission: the C99 emitter, a printer per compute type and the contexts of
symce.h / symce.c.

What comes out is one header and one source file (``generated/c/symce.h``, ``generated/c/symce.c``)
that a user pastes into a project: C99, libm only, every buffer the caller's (but for a heap stash
of the exponentials of a row longer than STASH classes),
``const`` and ``restrict`` on every pointer (spelled ``SYMCE_RESTRICT`` in the prototypes, so that
symce.h also compiles as C++), one function per kernel and dtype,
``symce_<kernel>[_soft]_<f32|f64>``, returning ``SYMCE_OK`` (0) or a negative error code.

Flow: the registry's slots (SymPy, :mod:`symce.kernels`) -> :class:`CPrinter` (a
``C99CodePrinter`` configured per compute type with ``type_aliases``: ``f32`` prints ``expf`` and
``1.0F``, ``f80`` prints ``expl``) -> strings in the template context -> ``templates/c/``.  The
templates lay out the loops of each family (validation first, then the row statistics, sums,
effective targets, reductions); every formula inside a loop is a printed slot.  The row families
declare their per-class slots (zs, zlo, e, em1, p, pc) in dependency order, only those an output
needs, and compute row values such as log1p(Srest) once per row.  The helpers the printed code
calls (``symce_<fn>_double``, ``symce_<fn>_long_double``) are printed from the ``.stable()``
forms of symce's functions, only those some kernel uses; the reductions (``symce_scale_<sfx>``,
``symce_reduce_<sfx>``) from :mod:`symce.reductions`.

:func:`functions` describes every emitted C function (name, parameters and their roles); the
tests use it to call the compiled library through ctypes.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import sympy as sp
from sympy.codegen.ast import float64, float80, real
from sympy.codegen.cfunctions import fma
from sympy.logic.boolalg import BooleanFunction
from sympy.printing.c import C99CodePrinter

from .. import approx, describe, errors, options, program, reductions
from .. import kernels as kr
from ..describe import Param, Variant
from ..functions import clamp_min, log1p, mul0, sigmoid, softplus, to_plain, two_sum_err
from .base import Output, Part

# the families whose per-row program (symce.program) this language prints whole, in plain loops;
# the row families print theirs around the row statistics (_rows), the BCE family in blocks
PROGRAM_FAMILIES = ("ce_probs",)

# ----------------------------------------------------------------------------------------------
# Types.  DTYPES are the storage dtypes (one C function per kernel and dtype): T is the buffer
# type, ``compute`` the compute type (a CTYPES key) the printed math runs in,
# ``compute_by_family`` the exceptions, and every sum (row sums, <g, p>, row losses, reductions,
# the mean divisor) accumulates in ``acc``.  The float kernels compute in double and round once:
# in float, zs = z - shift alone is rounded to 2^-24 relative, which exp(zs) turns into
# |zs| 2^-24 relative error.  In double, z - shift of two floats is exact to 2^-53 relative, so
# the float kernels carry no TwoSum error term (zlo = 0) and use the float-accurate polynomial
# approximations (``approx``: a key of symce.approx.TARGETS).  The double elementwise kernels
# (sigmoid, sigmoid') compute in long double and round once.  CTYPES are the compute types a
# CPrinter is made for; ``sfx`` names their helpers (symce_exp_for_f32 computes in double for the
# float kernels).
# ----------------------------------------------------------------------------------------------
DTYPES = {
    "f32": {"T": "float", "acc": "double", "compute": "f32c", "compute_by_family": {}},
    "f64": {
        "T": "double",
        "acc": "double",
        "compute": "f64",
        "compute_by_family": {"elementwise": "f80"},
    },
}
CTYPES = {
    "f32c": {
        "T": "double",
        "alias": float64,
        "sfx": "for_f32",
        "approx": "f32",
        "exact_shift": True,
    },
    "f64": {
        "T": "double",
        "alias": float64,
        "sfx": "for_f64",
        "approx": "f64",
        "exact_shift": False,
    },
    "f80": {
        "T": "long double",
        "alias": float80,
        "sfx": "ld",
        "approx": None,
        "exact_shift": False,
    },
}
DTYPES_FOR = {
    "f32c": "float",
    "f64": "double",
    "f80": "double",
}  # whose kernels a compute type serves
ROW_FAMILIES = describe.ROW_FAMILIES  # families with the per-row statistics (shift, Srest)
STASH = 2048  # a row of up to this many classes keeps its exponentials on the stack
SMALL_K = 16  # up to this many classes, the row statistics are computed ROWS rows at a time
ROWS = 64
MAX_LANES = {"float": 32, "double": 16}  # partial maxima of the row max (measured fastest)
WIDE_FAMILIES = (
    "elementwise",
    "bce",
    "ce_logits",
    "rowwise",
)  # kernels marked SYMCE_WIDE (the row statistics are too)
SUM_LANES = 16  # partial sums of a float kernel's row statistics (two 512-bit registers of double)
BLOCK = 1024  # elements per block of the BCE kernels (their weight buffers on the stack)


def compute_dtype(dtype: str, family: str) -> str:
    """The compute type (a CTYPES key) the printed math of ``family`` runs in, for ``dtype``."""
    spec = DTYPES[dtype]
    return spec["compute_by_family"].get(family, spec["compute"])


# kernel-local symbol -> C variable name; anything else in a slot is an error
LOCAL_NAMES = {name: name for name in kr.LOCALS}
LOCAL_NAMES.update(
    {
        "K": "k_real",  # the class count as a real (the size parameter k is a size_t)
        "Srest": "srest",
        "x": "xv",  # x, g and z are also the names of input arrays
        "g": "gv",
        "z": "zv",
        "label_smoothing": "eps",  # the option, converted once to the compute type (float -> double)
    }
)

# the per-class slots of the row families, in dependency order
CLASS_SLOTS = ("zs", "zlo", "e", "em1", "p", "pc")
JACOBIAN_BLOCK = 64  # columns of the Jacobian whose p_j are kept on the stack

# symce's functions -> static helpers in symce.c, suffixed per compute type; callees first
HELPERS = ("clamp_min", "mul0", "softplus", "sigmoid", "two_sum_err")
_HELPER_CLASSES = {
    "clamp_min": clamp_min,
    "mul0": mul0,
    "softplus": softplus,
    "sigmoid": sigmoid,
    "two_sum_err": two_sum_err,
}

# (name, value, message): symce_strerror's table and the header's documentation, from symce.errors
ERRORS = errors.c_codes()
UNKNOWN_ERROR = errors.UNKNOWN_C_CODE


def helper_name(fn: str, cdtype: str) -> str:
    """``symce_<fn>_<sfx>``: symce_sigmoid_for_f32 (double math for the float kernels),
    symce_sigmoid_for_f64, symce_sigmoid_ld (long double)."""
    return f"symce_{fn}_{CTYPES[cdtype]['sfx']}"


def vectorised(cdtype: str) -> bool:
    """Whether the compute type uses symce's own exp and branch-free selects (double math), so
    the loops vectorise; long double keeps libm and the ternary operator."""
    return CTYPES[cdtype]["approx"] is not None


class _log1p_s(sp.Function):
    """log1p(v) given s = v/(2 + v): 2 atanh(s) (symce_log1p_s_for_f32)."""

    nargs = 1


def _log1p_by_s(expr):
    """log1p(a) -> log1p_s(a/(2 + a)): the float kernels' log1p on [0, 1] takes s."""
    return expr.replace(
        lambda e: isinstance(e, log1p), lambda e: _log1p_s(e.args[0] / (2 + e.args[0]))
    )


class _pick(sp.Function):
    """cond ? a : b, printed as C's ternary (the reduction helpers, run once per call)."""

    nargs = 3


class _blend(sp.Function):
    """cond ? a : b in a loop, printed as SYMCE_PICK: C's ternary where GCC vectorises it with
    a mask (AVX-512: measured 15% faster than symce_select's bit mask there), the bit mask
    elsewhere (AVX2: the ternary stops the loop vectorising)."""

    nargs = 3


class _log1p01(sp.Function):
    """log1p(v) for v in [0, 1] (symce_log1p01_for_f64): vectorises, unlike libm's log1p."""

    nargs = 1


class _isfinite(BooleanFunction):
    """isfinite(v): the condition of the TwoSum helper."""

    nargs = 1


class CPrinter(C99CodePrinter):
    """C99 printer for one compute type (a CTYPES key): math functions and literals typed by
    ``type_aliases``, symce's functions mapped to that type's helpers, symbols renamed through a
    table (strict: an unknown symbol or function is an error)."""

    def __init__(self, cdtype: str, names=None, functions=None, nonpositive_exp=False):
        self.cdtype = cdtype
        self.nonpositive_exp = nonpositive_exp  # every exp argument here is <= 0 (or NaN)
        self.names = LOCAL_NAMES if names is None else names
        user = {name: helper_name(name, cdtype) for name in HELPERS}
        if vectorised(cdtype):
            user["exp"] = helper_name("exp", cdtype)  # symce's polynomial exp: vectorises
        user.update(functions or {})
        super().__init__(
            {
                "type_aliases": {real: CTYPES[cdtype]["alias"]},
                "strict": True,
                "user_functions": user,
            }
        )

    def _print_Symbol(self, expr):
        if expr.name not in self.names:
            raise ValueError(f"symbol {expr.name!r} has no C name: add it to the C backend's table")
        return self.names[expr.name]

    def _print_fma(self, expr):
        # a fused multiply-add where the build has one, else a*b + c (symce.c's SYMCE_FMA)
        return "SYMCE_FMA({}, {}, {})".format(*(self._print(a) for a in expr.args))

    def _print_exp(self, expr):
        # symce's exp for x <= 0 (no overflow test) where SymPy proves the argument nonpositive
        # (exp(-|t|)) or the caller knows it (z - max in a row whose max is finite)
        if vectorised(self.cdtype) and (self.nonpositive_exp or expr.args[0].is_nonpositive):
            return f"{helper_name('exp_neg', self.cdtype)}({self._print(expr.args[0])})"
        return super()._print_exp(expr)

    def _print_Piecewise(self, expr):
        # one line, for the two-branch helpers.  In double, symce_select(cond, a, b) picks by a bit
        # mask: GCC threads a ternary with a constant arm into two paths and stops vectorising.
        if len(expr.args) != 2 or expr.args[1].cond is not sp.true:
            raise ValueError("only two-branch Piecewise with a default branch prints to C")
        (val, cond), (other, _) = expr.args
        if vectorised(self.cdtype):
            return f"symce_select({self._print(cond)}, {self._print(val)}, {self._print(other)})"
        return f"({self._print(cond)}) ? ({self._print(val)}) : ({self._print(other)})"

    def _print_select(self, expr):
        # a switch (an int parameter): one test the compiler can hoist out of the loop, and only
        # the form it picks is evaluated
        s, on, off = (self._print(arg) for arg in expr.args)
        return f"({s} ? ({on}) : ({off}))"

    def _print__pick(self, expr):
        cond, a, b = (self._print(arg) for arg in expr.args)
        return f"(({cond}) ? {a} : {b})"

    def _print__blend(self, expr):
        if not vectorised(self.cdtype):
            return self._print__pick(expr)
        cond, a, b = (self._print(arg) for arg in expr.args)
        return f"SYMCE_PICK({cond}, {a}, {b})"

    def _print_And(self, expr):
        # in double, & of the 0/1 conditions: no branch (&& can stop the loop vectorising)
        op = " & " if vectorised(self.cdtype) else " && "
        return op.join(f"({self._print(a)})" for a in sorted(expr.args, key=sp.default_sort_key))

    def _print_isnan(self, expr):
        arg = self._print(expr.args[0])
        return f"symce_isnan({arg})" if vectorised(self.cdtype) else f"symce_isnan((double)({arg}))"

    def _print_iszero(self, expr):
        arg = self._print(expr.args[0])
        return (
            f"symce_iszero({arg})" if vectorised(self.cdtype) else f"symce_iszero((double)({arg}))"
        )

    def _print_Not(self, expr):
        return f"!{self._print(expr.args[0])}"

    def _print_NaN(self, expr):
        # NAN is a float: cast, so no implicit promotion (-Wdouble-promotion) mixes the types
        return f"({CTYPES[self.cdtype]['T']})NAN"

    def _print__isfinite(self, expr):
        # from the bit pattern in double, so -ffast-math cannot fold the test away
        if vectorised(self.cdtype):
            return f"symce_isfinite({self._print(expr.args[0])})"
        return f"isfinite({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        raise ValueError("Max would print as fmax, which drops NaN: use clamp_min")

    _print_Min = _print_Max


def _nan_keeping_max(*args):
    """Max(t, c) with one numeric argument -> clamp_min(t, c), which keeps a NaN t."""
    nums = [a for a in args if a.is_number]
    rest = [a for a in args if not a.is_number]
    if len(nums) != 1 or len(rest) != 1:
        raise ValueError(f"cannot print Max{args} as a NaN-keeping clamp")
    return clamp_min(rest[0], nums[0])


def _helper_defs(cdtype: str):
    """{fn: (parameter names, [(symbol, expr) statements], return expr, doc)} from SymPy, for
    compute type ``cdtype``.  In double the sigmoid takes one exponential, v = exp(-|t|), and the
    float kernels' softplus takes log1p from symce's polynomial on [0, 1] (see _approx_helpers)."""
    a, b, t, lo, xs = sp.symbols("a b t lo x", real=True)
    steps = list(two_sum_err(a, b).stable())
    s_sym = steps[0][0]
    err_sym = steps[-1][0]
    if vectorised(cdtype):
        v = sp.Symbol("v", positive=True)
        sig = (
            ("t",),
            [(v, sp.exp(-sp.Abs(t)))],
            sp.Piecewise((1, sp.GreaterThan(t, 0)), (v, True)) / (1 + v),
            "1 / (1 + exp(-t)) as (t >= 0 ? 1 : v) / (1 + v), v = exp(-|t|): one exponential, "
            "no overflow, about an ULP for every t",
        )
    else:
        # expl's argument floored where exp is 0 even in long double: GCC's -ffast-math expl
        # (inline x87) gives NaN at -inf
        floor = sp.Integer(EXPL_FLOOR)
        sig = (
            ("t",),
            [],
            sigmoid(t).stable().replace(sp.exp, lambda u: sp.exp(clamp_min(u, floor))),
            "1 / (1 + exp(-t)): branch-free, no overflow, about an ULP for every t; exp's "
            f"argument floored at {EXPL_FLOOR} (exp is 0 there in long double; -ffast-math's "
            "expl gives NaN at -inf)",
        )
    return {
        # max(x, lo) that keeps a NaN x: (x < lo) is false for NaN, and NaN is also told from its
        # bits, since -ffast-math lets the compiler turn the comparison into a max that drops it
        "clamp_min": (
            ("x", "lo"),
            [],
            clamp_min(xs, lo).stable(),
            "max(x, lo), propagating NaN in x (fmax would drop it)",
        ),
        "mul0": (
            ("a", "b"),
            [],
            mul0(a, b).stable(),
            "a * b, exactly 0 when a == 0 and b is not NaN (0 * inf = 0: a zero target at a "
            "-inf log; 0 * NaN = NaN: a NaN is never dropped); both tests from the bits",
        ),
        "softplus": _softplus_def(cdtype, t),
        "sigmoid": sig,
        "two_sum_err": (
            ("a", "b"),
            steps,
            sp.Piecewise((err_sym, _isfinite(s_sym)), (0, True)),
            "the exact rounding error of a + b (Knuth's TwoSum), 0 when a + b is not finite",
        ),
    }


EXPL_FLOOR = -12000  # below log(smallest long double subnormal) ~ -11400: exp is 0 there


def _softplus_def(cdtype: str, t):
    """softplus(t) = max(t, 0) + log1p(exp(-|t|)); the float kernels name v = exp(-|t|) and take
    log1p(v) from symce's polynomial, given s = v/(2 + v)."""
    doc = "log(1 + exp(t)) without overflow"
    stable = softplus(t).stable().replace(sp.Max, _nan_keeping_max)
    if CTYPES[cdtype]["approx"] != "f32":
        return (("t",), [], stable, doc)
    v = sp.Symbol("v", positive=True)
    return (("t",), [(v, sp.exp(-sp.Abs(t)))], clamp_min(t, 0) + _log1p_s(v / (2 + v)), doc)


def _helper_functions(cdtype: str, fn: str) -> dict:
    """Printer overrides for one helper (the float kernels' log1p on [0, 1], see _log1p_s)."""
    if CTYPES[cdtype]["approx"] == "f32":
        return {"_log1p_s": helper_name("log1p_s", cdtype)}
    if CTYPES[cdtype]["approx"] == "f64":
        return {"_log1p01": helper_name("log1p01", cdtype)}
    return {}


def _hexf(v: float) -> str:
    """A double as a C99 hexadecimal literal (exact)."""
    return float(v).hex()


def _exp_helper(cdtype: str, nonpositive: bool = False) -> dict:
    """symce_exp_<sfx>: exp(x) in double, from the reduction and polynomial that symce.approx
    derives; vectorises (no branch, no libm).  ``nonpositive``: symce_exp_neg_<sfx>, the same
    for x <= 0 or NaN only (no overflow test: one compare and two bit operations fewer)."""
    target = CTYPES[cdtype]["approx"]
    fit = approx.exp_approximation(target)
    scheme = approx.SCHEMES[target]
    log2e, c_hi, c_lo = approx.cody_waite()
    shifter = _hexf(scheme.shifter)
    lines = [
        f"const double kd0 = SYMCE_FMA(x, {_hexf(log2e)}, {shifter});  /* n in the low bits */",
        f"const double kd = SYMCE_UNSHIFT(kd0, {shifter});",
    ]
    if scheme.cody_waite:
        lines += [
            f"double r = SYMCE_FMA(-kd, {_hexf(c_hi)}, x);  /* exact: C_hi has "
            f"{approx.CW_BITS} bits */",
            f"r = SYMCE_FMA(-kd, {_hexf(c_lo)}, r);",
        ]
    else:
        lines += [f"const double r = SYMCE_FMA(-kd, {_hexf(c_hi + c_lo)}, x);"]
    coeffs = fit.coefficients
    if scheme.split_one:
        lines.append(f"double q = {_hexf(coeffs[-1])};  /* P(r) = 1 + r + r^2 Q(r) */")
        for c in reversed(coeffs[2:-1]):
            lines.append(f"q = SYMCE_FMA(q, r, {_hexf(c)});")
        lines += [
            "const double t = 1 + r;",
            "const double err = (1 - t) + r;  /* 1 + r = t + err exactly (Fast2Sum) */",
            "const double p = t + SYMCE_FMA(r * r, q, err);  /* one rounding at the end */",
        ]
    else:
        lines.append(f"double p = {_hexf(coeffs[-1])};")
        for c in reversed(coeffs[:-1]):
            lines.append(f"p = SYMCE_FMA(p, r, {_hexf(c)});")
    if scheme.two_step:
        lines += [
            "/* 2^n = 2^n1 2^n2, n1 = floor(n/2): both normal, so a subnormal result rounds "
            "once */",
            f"const uint64_t u = symce_bits(kd0) - (symce_bits({shifter}) - 2100u);  "
            "/* n + 2100 */",
            "const uint64_t u1 = u >> 1, u2 = u - u1;",
            "const double v = (p * symce_from_bits((u1 - 27u) << 52)) * "
            "symce_from_bits((u2 - 27u) << 52);",
        ]
    else:
        lines += [
            "const double v = p * symce_from_bits(symce_bits(kd0) << 52);  "
            "/* 2^n: the low bits of kd0 are n + 1023 */"
        ]
    lines.append(f"const uint64_t under = (uint64_t)0 - (uint64_t)(x < {scheme.lo!r});")
    if nonpositive:
        lines.append("const double e = symce_from_bits(symce_bits(v) & ~under);")
    else:
        lines += [
            f"const uint64_t over = (uint64_t)0 - (uint64_t)(x > {scheme.hi!r});",
            "const double e = symce_from_bits((symce_bits(v) & ~(under | over)) | "
            "(UINT64_C(0x7ff0000000000000) & over));",
        ]
    lines.append("return SYMCE_KEEP_NAN(x, e);")
    ulps = (
        f"{fit.eval_ulps:.2f} ULP"
        if target == "f64"
        else f"2^{math.log2(fit.eval_rel_error):.1f} relative"
    )
    flush = (
        "0 below -745.13 (subnormal results rounded once)"
        if scheme.two_step
        else f"0 below {scheme.lo:g} (exp < 2^-1021: below float's range, never visible in a "
        "float result)"
    )
    if nonpositive:
        return {
            "signature": f"SYMCE_INLINE double {helper_name('exp_neg', cdtype)}(double x)",
            "doc": [
                f"exp(x) for x <= 0 or NaN only, in double for the {DTYPES_FOR[cdtype]} "
                f"kernels: {helper_name('exp', cdtype)} (below) without its overflow "
                "test, for z - max in a row whose max is finite and for exp(-|t|)."
            ],
            "lines": lines,
        }
    doc = [
        f"exp(x) in double for the {DTYPES_FOR[cdtype]} kernels; derived by symce "
        "(symce/approx.py, proof exp_range_reduction):",
        "x = n ln2 + r, n = round(x log2 e) by the 1.5*2^52 shifter, |r| <= ln2/2, "
        + ("ln2 = C_hi + C_lo (Cody-Waite);" if scheme.cody_waite else "ln2 rounded to double;"),
        f"exp(r) ~ P(r) = 1 + r + ... (degree {fit.degree}), minimax relative error "
        f"2^{math.log2(fit.approx_error):.1f} (Remez, mpmath, coefficients rounded to double);",
        f"evaluated in double, measured {ulps} against mpmath on {fit.eval_points} arguments, "
        "with and without FMA;",
        f"{flush}; -inf -> 0; NaN -> NaN; above {scheme.hi:g}, +inf.",
    ]
    return {
        "signature": f"SYMCE_INLINE double {helper_name('exp', cdtype)}(double x)",
        "doc": doc,
        "lines": lines,
    }


def _log1p_row_helper(cdtype: str) -> dict:
    """symce_log1p_<sfx>: log1p(Srest) once per row of the float kernels (libm's for Srest < 0,
    NaN or +inf: rows whose max is not finite)."""
    fit = approx.log1p_any_approximation(CTYPES[cdtype]["approx"])
    _, c_hi, c_lo = approx.cody_waite()
    coeffs = fit.coefficients
    lines = [
        "if (!symce_isfinite(s) || !(s >= 0)) return log1p(s);  /* NaN by its bits */",
        "double e = 0, f = s;  /* 1 + s = (1 + f) 2^e, 1 + f in [1/sqrt2, sqrt2) */",
        f"if (s > {_hexf(approx.SQRT2 - 1)}) {{",
        "    const uint64_t b = symce_bits(1 + s);",
        "    double m = symce_from_bits((b & UINT64_C(0x000fffffffffffff)) | "
        "UINT64_C(0x3ff0000000000000));",
        "    e = (double)(int)((b >> 52) - 1023u);",
        f"    if (m > {_hexf(approx.SQRT2)}) {{",
        "        m *= 0.5;",
        "        e += 1;",
        "    }",
        "    f = m - 1;",
        "}",
        "const double t = f / (2 + f);  /* log(1 + f) = 2 atanh(t), |t| <= 0.172 */",
        "const double w = t * t;",
        f"double q = {_hexf(coeffs[-1])};",
    ]
    lines += [f"q = SYMCE_FMA(q, w, {_hexf(c)});" for c in reversed(coeffs[:-1])]
    lines.append(f"return SYMCE_FMA(e, {_hexf(c_hi)}, SYMCE_FMA(e, {_hexf(c_lo)}, (t + t) * q));")
    doc = [
        f"log1p(s) for s >= 0, in double for the {DTYPES_FOR[cdtype]} kernels (log1p(Srest), "
        "once per row): e ln2 + 2 t Q(t^2)",
        "with 1 + s = (1 + f) 2^e, t = f/(2 + f), f = s itself up to sqrt2 - 1 (no rounding "
        f"of 1 + s near s = 0, nothing for -ffast-math to cancel); Q of degree {fit.degree},",
        f"minimax relative error 2^{math.log2(fit.approx_error):.1f}; measured "
        f"2^{math.log2(fit.eval_rel_error):.1f} relative against mpmath on {fit.eval_points} "
        "arguments, with and without FMA.",
    ]
    return {
        "signature": f"static inline double {helper_name('log1p', cdtype)}(double s)",
        "doc": doc,
        "lines": lines,
    }


def _log1p_s_helper(cdtype: str) -> dict:
    """symce_log1p_s_<sfx>: log1p(v) for v in [0, 1] (the softplus of the sigmoid losses), given
    s = v/(2 + v) in [0, 1/3]: the caller forms s, so it can share the division."""
    fit = approx.log1p_approximation(CTYPES[cdtype]["approx"])
    coeffs = fit.coefficients
    lines = [
        "const double u = s * s;  /* log1p(v) = 2 atanh(s) */",
        f"double q = {_hexf(coeffs[-1])};",
    ]
    lines += [f"q = SYMCE_FMA(q, u, {_hexf(c)});" for c in reversed(coeffs[:-1])]
    lines.append("return (s + s) * q;")
    doc = [
        f"log1p(v) for v in [0, 1], in double for the {DTYPES_FOR[cdtype]} kernels, given "
        "s = v / (2 + v): 2 s Q(s^2);",
        f"Q ~ atanh(s)/s of degree {fit.degree} in s^2, minimax relative error "
        f"2^{math.log2(fit.approx_error):.1f} (Remez, mpmath);",
        f"measured 2^{math.log2(fit.eval_rel_error):.1f} relative against mpmath on "
        f"{fit.eval_points} arguments, with and without FMA; NaN -> NaN.",
    ]
    return {
        "signature": f"SYMCE_INLINE double {helper_name('log1p_s', cdtype)}(double s)",
        "doc": doc,
        "lines": lines,
    }


def _log1p01_helper(cdtype: str) -> dict:
    """symce_log1p01_<sfx>: log1p(v) for v in [0, 1] in double (the double sigmoid losses'
    log1p(e^-|x|)), as symce.approx.log1p01_double evaluates it: s = v/(2 + v) carried as s + s_lo
    (the remainder v - s (2 + v) exact by FMA, or by Dekker's product without it), then
    2 s + 2 (s_lo + s u R(u)) with u = s^2 and atanh(s)/s = 1 + u R(u)."""
    fit = approx.log1p01_approximation(CTYPES[cdtype]["approx"])
    coeffs = fit.coefficients
    lines = [
        "const double t = 2.0 + v;",
        "const double et = (2.0 - t) + v;  /* t + et = 2 + v exactly */",
        "const double s = v / t;",
        "#if SYMCE_FUSED",
        "const double rem = SYMCE_FMA(-s, t, v);  /* v - s t, exact */",
        "#else",
        "const double p = s * t;  /* Dekker: s t = p + pe exactly */",
        "const double sc = 134217729.0 * s, tc = 134217729.0 * t;",
        "const double sh = sc - (sc - s), sl = s - sh, th = tc - (tc - t), tl = t - th;",
        "const double pe = ((sh * th - p) + sh * tl + sl * th) + sl * tl;",
        "const double rem = (v - p) - pe;",
        "#endif",
        f"const double s_lo = (rem - s * et) * ({_hexf(approx.INV_2PV[0])} - v * "
        f"{_hexf(approx.INV_2PV[1])});  /* / (2 + v), within 4% */",
        "const double u = s * s;",
        f"double r = {_hexf(coeffs[-1])};",
    ]
    lines += [f"r = SYMCE_FMA(r, u, {_hexf(c)});" for c in reversed(coeffs[1:-1])]
    lines += ["const double lo = SYMCE_FMA(s * u, r, s_lo);", "return (s + s) + (lo + lo);"]
    doc = [
        f"log1p(v) for v in [0, 1], in double for the {DTYPES_FOR[cdtype]} kernels: s = v / (2 + v) "
        "carried as s + s_lo, then 2 s + 2 (s_lo + s u R(u)), u = s^2;",
        f"atanh(s)/s = 1 + u R(u) of degree {fit.degree} in u, minimax relative error "
        f"2^{math.log2(fit.approx_error):.1f} (Remez, mpmath); measured {fit.eval_ulps:.2f} ULP "
        f"against mpmath on {fit.eval_points} arguments, with and without FMA (within 2^-1074 "
        "for a subnormal v); NaN -> NaN.",
    ]
    return {
        "signature": f"SYMCE_INLINE double {helper_name('log1p01', cdtype)}(double v)",
        "doc": doc,
        "lines": lines,
    }


def _callees(defs, fn):
    """The helpers helper ``fn`` calls (directly)."""
    _, steps, body, _ = defs[fn]
    exprs = [body] + [expr for _, expr in steps]
    return {
        name
        for name, cls in _HELPER_CLASSES.items()
        if name != fn and any(e.atoms(cls) for e in exprs)
    }


def _helpers(cdtype: str, used=None):
    """The static inline helpers in compute type ``cdtype`` (all, or those ``used`` and what they
    call), callees first: name, parameter names, statements, printed body, doc."""
    defs = _helper_defs(cdtype)
    wanted = set(HELPERS if used is None else used)
    todo = list(wanted)
    while todo:
        for callee in _callees(defs, todo.pop()):
            if callee not in wanted:
                wanted.add(callee)
                todo.append(callee)
    out = []
    for fn in HELPERS:
        if fn not in wanted:
            continue
        args, steps, body, doc = defs[fn]
        names = {n: n for n in args}
        names.update({sym.name: sym.name for sym, _ in steps})
        pr = CPrinter(cdtype, names, _helper_functions(cdtype, fn))
        out.append(
            {
                "name": helper_name(fn, cdtype),
                "args": list(args),
                "statements": [{"name": sym.name, "expr": pr.doprint(expr)} for sym, expr in steps],
                "body": pr.doprint(body),
                "doc": doc,
            }
        )
    return out


def _printed_exprs(kern, cdtype) -> list:
    """The expressions the emitted code of ``kern`` evaluates in ``cdtype``: its slots, and for
    the BCE family, where the type vectorises, loss and gradient with softplus and sigmoid
    written over one shared exponential (as _printed_slots prints them)."""
    sl = local_slots(kern, cdtype)
    if kern.family == "bce" and vectorised(cdtype):
        exprs = {name: kr.w * sl[name] for name in ("loss", "grad") if name in sl}
        lets = []
        if any(e.has(softplus, sigmoid) for e in exprs.values()):
            exprs, lets, _ = _shared_exponential(exprs, cdtype)
        return list(exprs.values()) + [val for _, val in lets]
    return list(sl.values())


def _printed_by_type() -> dict:
    """{compute type: every expression the emitted functions evaluate in it}."""
    out = {}
    for dtype in DTYPES:
        for kern in kr.registry().values():
            cdt = compute_dtype(dtype, kern.family)
            out.setdefault(cdt, []).extend(_printed_exprs(kern, cdt))
    return out


def used_helpers(printed: dict | None = None) -> dict:
    """{compute type: [helpers the printed code calls directly]} over every emitted function
    (only those: an unused static function is a warning); ``printed``: _printed_by_type()."""
    printed = _printed_by_type() if printed is None else printed
    used = {
        cdt: {n for expr in exprs for n, cls in _HELPER_CLASSES.items() if expr.atoms(cls)}
        for cdt, exprs in printed.items()
    }
    for spec in DTYPES.values():  # the runtime's compensated sums (symce_accumulate) call TwoSum
        if not CTYPES[spec["compute"]]["exact_shift"]:
            used.setdefault(spec["compute"], set()).add("two_sum_err")
    return {
        cdt: [fn for fn in HELPERS if fn in names]
        for cdt, names in sorted(used.items(), key=lambda kv: list(CTYPES).index(kv[0]))
        if names
    }


def _accumulate(dtype: str) -> dict:
    """The body of symce_accumulate_<sfx>(sum, comp, x) and its words: compensated by TwoSum's
    error (symce.functions.two_sum_err, printed once as a helper) where the accumulator is the
    storage type, plain where the float kernels sum in double."""
    cdt = DTYPES[dtype]["compute"]
    if CTYPES[cdt]["exact_shift"]:
        doc = "plain (the float kernels sum in double: 2^-53 per addition is far below a float ULP)"
        return {"doc": doc, "lines": ["(void)comp;", "*sum += x;"]}
    doc = (
        "compensated (TwoSum): the error of every addition is kept in *comp (0 once the sum is "
        "not finite, so an infinite total stays infinite, not NaN)"
    )
    return {
        "doc": doc,
        "lines": [f"*comp += {helper_name('two_sum_err', cdt)}(*sum, x);", "*sum += x;"],
    }


def _uses_log1p_s(cdtype: str, printed: dict, used: dict) -> bool:
    """Whether the code in ``cdtype`` calls the float kernels' log1p on [0, 1] (see _log1p_s)."""
    wanted = {h["name"] for h in _helpers(cdtype, used.get(cdtype, []))}
    return helper_name("softplus", cdtype) in wanted or any(
        expr.has(_log1p_s) for expr in printed.get(cdtype, [])
    )


# ----------------------------------------------------------------------------------------------
# Functions: one per kernel, dtype and variant (symce.describe), with its parameters.
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CFunction:
    """One emitted C function: a kernel's variant (symce.describe.Variant) in one dtype."""

    cname: str
    kernel: str
    dtype: str
    variant: Variant

    @property
    def soft(self) -> bool:
        """The cross-entropy's probability-target variant (the _soft functions)."""
        return self.variant.soft

    @property
    def params(self) -> tuple:
        """The parameters (symce.describe.Param), in the prototype's order."""
        return self.variant.params


def functions() -> list:
    """Every emitted C function, in header order (dtype-major, then registry order)."""
    out = []
    for dtype in DTYPES:
        for desc in describe.descriptions().values():
            for variant in desc.variants:
                cname = f"symce_{desc.name}{'_soft' if variant.soft else ''}_{dtype}"
                out.append(CFunction(cname, desc.name, dtype, variant))
    return out


def _param_doc(p: Param, desc: describe.Description) -> str:
    """A parameter's words in the header, with its buffer length in elements ("[n*k]")."""
    if p.role == "reduction":
        extra = [r for r in desc.kernel.reductions if r not in reductions.REDUCTIONS]
        if extra:  # a defined loss's own (batchmean: the total over n)
            return "SYMCE_REDUCTION_NONE, _MEAN, _SUM or " + ", ".join(
                f"_{r.upper()} ({reductions.DIVISOR_WORDS[reductions.ALIASES[r][1]]}: n)"
                for r in extra
            )
        return "SYMCE_REDUCTION_NONE, _MEAN or _SUM"
    if p.role == "out" and p.name == "loss":
        per, what = ("n*k", "element") if desc.family == "bce" else ("n", "sample")
        return f"[{per}] for SYMCE_REDUCTION_NONE (one loss per {what}), else [1]"
    return f"[{'*'.join(p.dims)}] {p.doc}" if p.is_array else p.doc


# ----------------------------------------------------------------------------------------------
# Template contexts
# ----------------------------------------------------------------------------------------------
RESTRICT = "SYMCE_RESTRICT"  # symce.h: restrict in C, __restrict (or nothing) in C++


def _decl(p: Param, T: str) -> str:
    if p.role == "size":
        return f"size_t {p.name}"
    if p.role == "labels":
        return f"const int64_t *{RESTRICT} {p.name}"
    if p.role in ("in", "target", "weight", "pos_weight"):
        return f"const {T} *{RESTRICT} {p.name}"
    if p.role == "out":
        return f"{T} *{RESTRICT} {p.name}"
    if p.role == "ignore_index":
        return f"int64_t {p.name}"
    if p.role in ("label_smoothing", "option"):
        return f"double {p.name}"  # in both dtypes: options are doubles, as in NumPy and MATLAB
    if p.role == "switch":
        return f"int {p.name}"  # 0 or 1
    if p.role == "reduction":
        return f"symce_reduction {p.name}"
    raise ValueError(p.role)


def _check_calls(fn: CFunction, desc: describe.Description, T: str) -> list:
    """The calls that validate fn's arguments, in the order its variant checks them (the pointers
    are checked before, by the function's first line): each returns SYMCE_OK or the catalogue's
    code.  "no_classes" is checked with the sizes."""
    v, sfx = fn.variant, fn.dtype

    def length(role):
        return " * ".join(v.param(role).dims)

    def code(key):
        return errors.BY_KEY[key].c

    size = {
        "elementwise": f"symce_check_count(count, sizeof({T}))",
        "bce": f"symce_check_elements(n, k, sizeof({T}))",
    }.get(
        desc.family,
        f"symce_check_shape(n, k, {'k' if desc.layout == 'jacobian' else '1'}, sizeof({T}))",
    )
    calls = {
        "size": size,
        "smoothing": "symce_check_smoothing(label_smoothing)",
        "reduction": "symce_check_reduction(reduction)"
        if desc.kernel.reductions == reductions.REDUCTIONS
        else " && ".join(  # a defined loss's own reductions, then symce's three
            f"reduction != {reduction_enum(r)}"
            for r in desc.kernel.reductions
            if r not in reductions.REDUCTIONS
        )
        + " ? symce_check_reduction(reduction) : SYMCE_OK",
        "label": "symce_check_labels(labels, n, k, ignore_index)",
    }
    for role in ("weight", "pos_weight"):
        if v.has(role):
            calls[options.OPTIONS[role].error] = (
                f"symce_check_weights_{sfx}({role}, {length(role)}, {code(options.OPTIONS[role].error)})"
            )
    calls["domain"] = f"symce_check_probs_{sfx}({desc.input}, {length('in')}, {code('domain')})"
    if v.has("target"):
        calls["target"] = f"symce_check_probs_{sfx}(target, {length('target')}, {code('target')})"
    out = []
    for key in v.checks:
        if key == "option_value":  # a defined loss's options, each against its interval
            out += [_option_check(o) for o in desc.kernel.scalars]
        elif key not in ("null", "no_classes"):
            out.append(calls[key])
    return out


def _option_check(opt) -> str:
    """The call that checks a defined loss's option against its interval (symce_check_option),
    or a switch against 0 and 1 (symce_check_switch)."""
    if opt.switch:
        return f"symce_check_switch({opt.name})"
    low = "-HUGE_VAL" if opt.low is None else repr(float(opt.low))
    high = "HUGE_VAL" if opt.high is None else repr(float(opt.high))
    return f"symce_check_option({opt.name}, {low}, {high})"


def _errors_for(fn: CFunction) -> list:
    """The codes fn can return, in the order it checks them (symce.describe, symce.errors)."""
    return [errors.BY_KEY[key].c for key in fn.variant.checks]


_DOC_WIDTH = 96  # characters of comment text per header line

# what the slot symbols stand for in the loops, for the "computed as" lines (in this order;
# family overrides below; "" for a symbol documented with another)
_SYMBOL_DOC = {
    "x": "x = the element",
    "z": "z = the logit",
    "shift": "shift = the row max (if not finite: the largest finite z, or 0), a = its index",
    "Srest": "Srest = S - 1 = sum_{j != a} e_j + em1_a",
    "p_i": "p_i, p_j, pc_i = p, p, pc of classes i, j",
    "p_j": "",
    "pc_i": "",
    "delta": "delta = Kronecker delta_ij",
    "g": "g = the upstream gradient",
    "gesum": "gesum = sum_j g_j e_j",
    "dot": "dot = <g, p> = gesum / (1 + Srest)",
    "yt": "yt = y~_c",
    "ysum": "ysum = sum_c y~_c",
    "p": "p = probs[i*k + c]",
    "prob": "prob = the probability",
    "y": "y = the target",
    "pw": "pw = pos_weight[column]",
}
_FUNCTION_DOC = {
    "softplus": "softplus(t) = log(1 + exp(t)), evaluated as max(t, 0) + log1p(exp(-|t|)).",
    "clamp_min": "clamp_min(v, lo) = max(v, lo), keeping a NaN v (PyTorch's clamps: logs at -100, "
    "gradient denominators at 1e-12).",
    "mul0": "mul0(a, b) = a*b, and exactly 0 when a = 0 and b is not NaN (a zero target times "
    "log 0 is 0; 0 times NaN stays NaN).",
    "sigmoid": "sigmoid(t) = 1/(1 + exp(-t)), evaluated as exp(min(t, 0))/(1 + exp(-|t|)).",
    "select": "select(c, a, b) = a where the condition c (a switch, or a comparison of options) "
    "holds, else b; only the form picked is evaluated.",
    "two_sum_err": "two_sum_err(a, b) = the exact rounding error of a + b (Knuth's TwoSum; 0 if "
    "a + b is not finite), so zs + zlo = z - shift exactly.",
}
_FAMILY_SYMBOL_DOC = {"bce": {"x": "x = the logit"}}


def _legend(kern):
    used = set()
    for name, expr in kern.slots.items():
        if not name.startswith("yt_"):
            used |= {sym.name for sym in expr.free_symbols}
    used -= set(kern.slots)  # a slot printed above its use (p) needs no legend
    docs = dict(_SYMBOL_DOC, **_FAMILY_SYMBOL_DOC.get(kern.family, {}))
    docs[kr.v.name] = f"v = {kern.inputs[0].name}[i*k + c]"  # a defined loss's input
    if kern.defined_in and kern.family == "bce":  # its input, whatever it holds
        docs[kr.x.name] = f"x = the element of {kern.inputs[0].name}"
    docs.update({o.name: "" for o in kern.scalars})  # its options: parameters of their own name
    return "; ".join(docs[n] for n in sorted(used, key=lambda n: list(docs).index(n)) if docs[n])


def _wrapped(text, indent, hang=None):
    hang = indent if hang is None else hang
    return textwrap.wrap(
        text,
        _DOC_WIDTH,
        initial_indent=indent,
        subsequent_indent=hang,
        break_long_words=False,
        break_on_hyphens=False,
    )


# what mean divides by (symce.describe.DIVISORS), in the header's words
_DIVISOR_DOC = {
    "weight_of_kept": "the summed weight[t] of the kept (not ignored) samples",
    "rows": "n",
    "elements": "n*k",
}
_FUSED_DOC = {
    False: "One pass per row: its max, then Srest and sum y~, then loss and gradient together; "
    "the same numbers as the separate loss and gradient kernels.",
    True: "One pass over the elements, loss and gradient together; the same numbers as the "
    "separate loss and gradient kernels.",
}


def _doc(fn: CFunction, kern) -> list:
    """The header's comment block for one function, as lines (no comment markers)."""
    fam = kern.family
    lines = _wrapped(f"{fn.cname}: {kern.summary}", "") + [""]
    lines += _wrapped(kern.doc_formula, "    ", "      ")
    if fam in ("ce_probs", "ce_logits"):
        slot = kern.slots["yt_soft" if fn.soft else "yt_label"]
        legend = (
            "y = target[i*k + c]" if fn.soft else "t = labels[i], hot = [c == t], w_t = weight[t]"
        )
        lines += [
            "  with the effective target of class c:",
            f"    y~_c = {sp.sstr(slot)}",
            f"    ({legend}, w_k = weight[c], K = k)",
        ]
    # the registry's stable forms: exactly what the code evaluates
    lines += _wrapped(f"computed as ({_legend(kern)}):", "  ", "    ")
    for name, expr in kern.slots.items():
        if not name.startswith("yt_"):
            lines.append(f"    {name} = {sp.sstr(expr)}" + ("   (times w)" if fam == "bce" else ""))
    used = set()
    for expr in kern.slots.values():
        used |= {type(f).__name__ for f in expr.atoms(sp.Function)}
    for fname, text in _FUNCTION_DOC.items():
        if fname in used:
            lines += _wrapped(text, "  ", "    ")
    lines.append("")
    desc = describe.describe(kern)
    width = max(len(p.name) for p in fn.params)
    for p in fn.params:
        lines += _wrapped(_param_doc(p, desc), f"  {p.name.ljust(width)}  ", " " * (width + 4))
    notes = []
    if fn.variant.divisor:
        notes.append(
            f"mean divides by {_DIVISOR_DOC[fn.variant.divisor]}; n = 0 gives NaN for mean and 0 "
            "for sum."
        )
        if desc.has_grad:
            notes.append("The gradient is that of the reduced loss (for none, each sample's own).")
    if desc.fused:
        notes.append(_FUSED_DOC[desc.family == "bce"])
    layout = desc.layout
    if layout == "jacobian":
        notes.append(
            f"No allocation: p_j of {JACOBIAN_BLOCK} columns at a time is kept on the "
            "stack in the compute type, p_i and pc_i are computed per row of J."
        )
    if layout == "vjp":
        notes.append("No allocation: p is computed twice per class, for <g, p> and for the output.")
    if notes:
        lines.append("")
        for note in notes:
            lines += _wrapped(note, "  ")
    lines.append("")
    codes = _errors_for(fn)
    lines += _wrapped(
        "Returns SYMCE_OK, or " + ", ".join(codes) + " (checked in that order, "
        "before anything is written).",
        "",
    )
    return lines


def _prototype(cname, decls, indent=""):
    """``int name(args)`` wrapped at 100 columns, continuation lines aligned after the '('."""
    head = f"{indent}int {cname}("
    lines, line = [], head
    for i, d in enumerate(decls):
        piece = d + ("," if i < len(decls) - 1 else ")")
        if line != head and len(line) + 1 + len(piece) > 100:
            lines.append(line.rstrip())
            line = " " * len(head)
        line += piece + " "
    lines.append(line.rstrip())
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Printed code of the row families
#
# Every row kernel starts from symce_row_stats_<dtype> (printed once per dtype, see
# _dtype_context): the row max by partial maxima, then the exponentials e_j in chunks of STASH
# classes (kept on the stack when the whole row fits) and Srest = sum of e_j over the classes
# below the max + (ties - 1): em1 is exactly 0 at a finite max, so Srest needs no expm1.  A
# float row longer than STASH is read once, each chunk for its own max and exponentials, into a
# heap stash (symce_row_stats_chunked, rescaled by a factor per chunk where read).  The
# kernels' per-class loops then read e from the stash (or recompute a chunk) and print the
# registry's slots.  Rows whose max is not finite (+inf, or only -inf/NaN) take the general
# statistics (the argmax, em1 by expm1) and the same loops.
# ----------------------------------------------------------------------------------------------
_ROW_VALUES = {"Srest", "shift"}  # the row statistics: known before the per-class loops


def local_expr(expr: sp.Expr, cdtype: str) -> sp.Expr:
    """``expr`` as the compute type evaluates it: in the float kernels z - shift is exact in
    double to 2^-53 relative, so zlo = 0 (and mul0(0, b) = 0)."""
    if not CTYPES[cdtype]["exact_shift"]:
        return expr
    return expr.xreplace({kr.zlo: sp.S.Zero}).replace(
        lambda t: isinstance(t, mul0) and t.args[0] == 0, lambda t: sp.S.Zero
    )


def local_slots(kern: kr.Kernel, cdtype: str) -> dict:
    """The kernel's slots as the compute type evaluates them (local_expr)."""
    sl = {name: local_expr(expr, cdtype) for name, expr in kern.slots.items()}
    if "zlo" in sl and CTYPES[cdtype]["exact_shift"]:
        sl["zlo"] = sp.S.Zero
    return sl


def _lets(sl, exprs, pr, provided=(), rename=None):
    """Declarations of the per-class slots ``exprs`` need (transitively, not descending into the
    ``provided`` ones), in dependency order: [{name, expr}].  ``rename`` declares a slot under
    another name (p -> p_i)."""
    rename = rename or {}
    needed = set()
    todo = [s.name for e in exprs for s in e.free_symbols]
    while todo:
        name = todo.pop()
        if name in CLASS_SLOTS and name not in needed:
            needed.add(name)
            if name not in provided:
                todo += [s.name for s in sl[name].free_symbols]
    if rename:
        pr = CPrinter(pr.cdtype, {**pr.names, **rename})
    return [
        {"name": rename.get(name, LOCAL_NAMES[name]), "expr": pr.doprint(sl[name])}
        for name in CLASS_SLOTS
        if name in needed and name not in provided
    ]


def _words(code: str) -> set:
    """The identifiers in a printed C expression."""
    return set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", code))


def _hoist(exprs, names, cdtype):
    """Row values out of the per-class loops: function calls on the row statistics only
    (log1p(Srest)) become symbols computed once per row, and in the float kernels a division by
    1 + Srest becomes a product with its reciprocal (2^-53 relative: invisible once rounded to
    float).  Returns the substitution {value: symbol}; adds the symbols to ``names``."""
    calls = []
    for expr in exprs:
        for f in sorted(expr.atoms(sp.Function), key=sp.default_sort_key):
            syms = {s.name for s in f.free_symbols}
            if syms and syms <= _ROW_VALUES and f not in calls:
                calls.append(f)
    subs = {}
    for f in calls:
        cname = (
            type(f).__name__
            + "_"
            + "_".join(LOCAL_NAMES[s.name] for s in sorted(f.free_symbols, key=lambda s: s.name))
        )
        subs[f] = sp.Symbol(cname, real=True)
    if CTYPES[cdtype]["exact_shift"]:
        subs[1 / (kr.Srest + 1)] = sp.Symbol("inv_srest", positive=True)
    for sym in subs.values():
        names[sym.name] = sym.name
    return subs


def _em1_at_class(sl):
    """em1 = e - 1 of one class, for 1 - p at the label: exactly 0 at the row max (zs = zlo = 0),
    elsewhere e - 1, whose rounding cannot cancel in Srest - em1 = Srest + 1 - e >= 1 (e is one
    of Srest's terms there).  No expm1 per row."""
    return sp.Piecewise((0, _tie(sl)), (kr.e - 1, True))


def _tie(sl):
    """The class is at the row max: zs = 0 (and zlo = 0 where zlo is carried)."""
    return sp.Eq(kr.zs, 0) if sl.get("zlo", 0) == 0 else sp.And(sp.Eq(kr.zs, 0), sp.Eq(kr.zlo, 0))


def _split_target(sl):
    """The label target y~_c = A [c == t] + B(w_c): (A, B, y~ at the label, sum_c y~_c with
    sum_c w_c = wsum), checked to be that shape (B linear in w_c)."""
    yt = sl["yt_label"]
    A = sp.expand(yt).coeff(kr.hot)
    B = sp.expand(yt - A * kr.hot)
    if (
        B.has(kr.hot)
        or A.has(kr.hot)
        or A.has(kr.w_k)
        or sp.diff(B, kr.w_k, 2) != 0
        or B.subs(kr.w_k, 0) != 0
    ):
        raise ValueError(f"the label target {yt} is not A [c == t] + B w_c")
    wsum = sp.Symbol("wsum", positive=True)
    return A, B, yt.subs({kr.hot: 1, kr.w_k: kr.w_t}), A + B.subs(kr.w_k, wsum)


def _fold_in_e(out, sl, row_symbols):
    """A per-class output that is affine in e, out = e G + H, with G a row value: (G, H), so the
    loop prints one multiply-add e gmul + H with gmul = G computed once per row (in the float
    kernels: a different rounding of G's factors moves the double result by 2^-52 relative, far
    below the exponential's own 2^-39.7 and a float ULP).  None when out is not of that shape."""
    full = out.xreplace({kr.p: sl["p"]}) if "p" in sl else out
    G = sp.diff(full, kr.e)
    H = full.subs(kr.e, 0)
    if not {s.name for s in G.free_symbols} <= row_symbols or sp.expand(full - (kr.e * G + H)) != 0:
        return None
    return G, H


def _loss_parts(sl):
    """loss_term = mul0(yt, X): X, the class's -log p."""
    term = sl["loss_term"]
    if not isinstance(term, mul0) or term.args[0] != kr.yt:
        raise ValueError(f"the loss term {term} is not mul0(yt, -log p)")
    return term.args[1]


def _row_code(kern, cdtype, layout, soft=False):
    """Printed code of a row kernel (rowwise or ce_logits) in compute type ``cdtype``."""
    sl = local_slots(kern, cdtype)
    names = dict(LOCAL_NAMES)
    names.update({"wsum": "wsum", "scale": "scale"})
    scale = sp.Symbol("scale", real=True)
    outs = {}
    if kern.family == "ce_logits":
        X = _loss_parts(sl) if "loss_term" in sl else None
        grad = sl.get("grad")
        if soft:
            if X is not None:
                outs["loss_term"] = mul0(kr.yt, X)
            if grad is not None:
                plain = sp.expand(grad.subs(kr.pc, 1 - kr.p))
                tie = grad.subs(kr.pc, sl["pc"].subs(kr.em1, 0))
                outs["grad"] = sp.Piecewise((tie, _tie(sl)), (plain, True)) * scale
            outs["yt"] = sl["yt_soft"]
        else:
            A, B, yt_on, ysum = _split_target(sl)
            outs["ysum"] = ysum
            outs["yt_on"] = yt_on
            if X is not None:
                outs["loss_on"] = mul0(A, X)
                outs["loss_off"] = mul0(B, X)
            if grad is not None:
                outs["grad_off"] = (sp.expand(grad.subs(kr.pc, 1 - kr.p)).subs(kr.yt, B)) * scale
                # at the label ysum - yt = B(sum_{c != t} w_c), taken symbolically so that it is
                # exactly 0 where every other class has weight 0 (K = 1, eps = 0)
                yt_on_sym = sp.Symbol("yt_on", real=True)
                rest = B.subs(kr.w_k, sp.Symbol("wsum", positive=True) - kr.w_t)
                outs["grad_on"] = grad.subs({kr.ysum: yt_on_sym + rest, kr.yt: yt_on_sym}) * scale
                names["yt_on"] = "yt_on"
    elif layout == "vector":
        outs["out"] = sl.get("out", kr.p)
    elif layout == "vjp":
        outs = {"dot_term": sl["dot_term"], "dot": sl["dot"], "out": sl["out"]}
    else:
        outs["out"] = sl["out"]
    subs = _hoist(list(outs.values()) + list(sl.values()), names, cdtype)
    outs = {k: v.xreplace(subs) for k, v in outs.items()}
    sl = {k: v.xreplace(subs) for k, v in sl.items()}
    used = set()
    todo = list(outs.values())
    if kern.family == "ce_logits" and not soft:
        todo.append(_em1_at_class(sl))
    if layout == "jacobian":
        todo += [kr.p, kr.pc]
    while todo:
        v = todo.pop()
        for sym in v.free_symbols - used:
            used.add(sym)
            if sym.name in CLASS_SLOTS and sym.name in sl:
                todo.append(sl[sym.name])
    # the float kernels' log1p(Srest): symce's, once per row (libm's would dominate at K = 10)
    pr = CPrinter(
        cdtype,
        names,
        {"log1p": helper_name("log1p", cdtype)} if CTYPES[cdtype]["approx"] == "f32" else None,
    )
    code = {
        "hoisted": [
            {"name": pr.doprint(sym), "expr": pr.doprint(val)}
            for val, sym in subs.items()
            if sym in used
        ],
        "row_values": [],
    }
    if (
        kern.family == "ce_logits"
        and not soft
        and "grad_off" in outs
        and CTYPES[cdtype]["exact_shift"]
    ):
        # the off-label gradient e gmul + H: one multiply-add per class instead of four products
        row_symbols = {"scale", "ysum", "wsum", "w_t", "label_smoothing", "K"} | {
            sym.name for sym in subs.values()
        }
        folded = _fold_in_e(outs["grad_off"], sl, row_symbols)
        if folded is not None:
            gmul = sp.Symbol("gmul", real=True)
            names["gmul"] = "gmul"
            code["row_values"].append({"name": "gmul", "expr": pr.doprint(folded[0])})
            outs["grad_off"] = fma(kr.e, gmul, folded[1])
    code["out"] = {k: pr.doprint(v) for k, v in outs.items()}
    if layout == "jacobian":
        code["lets_j"] = _lets(sl, (kr.p,), pr, rename={"p": "p_j"})
        code["lets_i"] = _lets(sl, (kr.p, kr.pc), pr, rename={"p": "p_i", "pc": "pc_i"})
        return code
    # per-class loops: which read e (from the stash, or a recomputed chunk) and which need z
    per_class = {
        k: v for k, v in outs.items() if k not in ("dot", "ysum", "yt_on", "loss_on", "grad_on")
    }
    code["lets"] = {k: _lets(sl, (v,), pr, provided=("e",)) for k, v in per_class.items()}
    code["needs_z"] = {
        k: any("zv" in _words(let["expr"]) for let in lets) or "zv" in _words(code["out"][k])
        for k, lets in code["lets"].items()
    }
    code["needs_e"] = {
        k: any(let["name"] != "e" and "e" in _words(let["expr"]) for let in lets)
        or "e" in _words(code["out"][k])
        for k, lets in code["lets"].items()
    }
    if kern.family == "ce_logits":  # y~ of one class, as the program's Let computes it
        code["yt_printed"] = pr.doprint(sl["yt_soft" if soft else "yt_label"])
    if kern.family == "ce_logits" and "grad" in sl:
        # rows whose max is not finite: the gradient slot as it stands, class by class (1 - p by
        # expm1; NaN wherever the slot gives NaN)
        code["grad_slow"] = pr.doprint(sl["grad"].xreplace(subs) * scale)
        code["lets_slow"] = _lets(sl, (sl["grad"],), pr)
    if kern.family == "ce_logits" and not soft:
        # the label's own class: its slots with em1 without expm1 (see _em1_at_class)
        at = {k: outs[k] for k in ("loss_on", "grad_on") if k in outs}
        sl_t = dict(sl, em1=_em1_at_class(sl).xreplace(subs))
        code["lets_t"] = _lets(sl_t, tuple(at.values()), pr)
    return code


def _printed_slots(kern, cdtype):
    """The slots the non-row templates print: elementwise out, BCE loss and gradient (times the
    element weight w); the cross-entropy from probabilities prints its program (_program_lines)."""
    sl = local_slots(kern, cdtype)
    pr = CPrinter(cdtype)
    fam = kern.family
    out = {}
    if fam == "elementwise":
        out["out"] = pr.doprint(sl["out"])
        out["at_inf"] = _limits(kern, cdtype)
    elif fam == "bce":
        out.update(
            _bce_printed(
                {name: kr.w * sl[name] for name in ("loss", "grad") if name in sl},
                (),
                cdtype,
                tuple(o.name for o in kern.scalars),
            )
        )
        out["plain"] = None  # the unit-weight forms, where weights change the slots' shape
        if sl.get("loss", sl.get("grad")).has(kr.pw):
            out["plain"] = _bce_printed(*_unit_weight_slots(sl, cdtype), cdtype)
            if out["plain"]["first"] != out["first"]:  # the template computes them once for both
                raise ValueError(f"{kern.name}: the unit-weight form starts differently")
    return out


def _guarded(slots: dict, narrow: str, vector: bool) -> str:
    """An elementwise kernel's value at xv: its slot where x is finite, NaN for NaN, the limits
    at +-inf, each test from the bits.  In the vectorised compute types by symce_select's bit
    masks (every form is computed and one kept: a ternary is control flow that keeps GCC from
    vectorising the loop on AVX2); in long double by C's ternary."""
    out, pos, neg = slots["out"], slots["at_inf"]["pos"], slots["at_inf"]["neg"]
    if vector:
        return (
            f"{narrow}(symce_select(symce_isfinite(xv), {out}, symce_select(symce_isnan(xv), xv, "
            f"symce_select(xv > 0, {pos}, {neg}))))"
        )
    return (
        f"symce_isfinite((double)x[i]) ? {narrow}({out})\n"
        "                 : symce_isnan((double)x[i]) ? x[i]\n"
        f"                 : x[i] > 0 ? {narrow}({pos}) : {narrow}({neg})"
    )


def _limits(kern, cdtype) -> dict:
    """An elementwise kernel's values at x = +inf and -inf (the limits of its slot), printed in
    the compute type: a non-finite input takes them directly, so -ffast-math (which may assume
    every value finite) cannot turn them into NaN."""
    C = CTYPES[cdtype]["T"]
    x = kr.LOCALS["x"]
    plain = to_plain(kern.slots["out"])
    out = {}
    for key, end in (("pos", sp.oo), ("neg", -sp.oo)):
        value = sp.limit(plain, x, end)
        if value in (sp.oo, -sp.oo):
            out[key] = f"{'-' if value == -sp.oo else ''}({C})INFINITY"
        elif value.is_finite and value.is_real:
            out[key] = CPrinter(cdtype).doprint(value)
        else:
            raise ValueError(f"{kern.name}: no limit at x = {end} ({value})")
    return out


def _bce_printed(exprs, extra, cdtype, params=()):
    """The BCE family's printed loss / grad over the shared exponential, and its statements
    (then the ``extra`` ones); ``params``: the names of a defined loss's options, parameters of
    the function printed as they are."""
    lets, first = [], []
    if vectorised(cdtype) and any(e.has(softplus, sigmoid) for e in exprs.values()):
        exprs, lets, first = _shared_exponential(exprs, cdtype)
    lets = lets + list(extra)
    names = dict(LOCAL_NAMES, **{sym.name: sym.name for sym, _ in lets})
    names.update({name: name for name in params})
    # log1p(v) of v = exp(-|x|) in [0, 1]: the float kernels' polynomial for that interval
    pr = CPrinter(cdtype, names, _helper_functions(cdtype, "bce"))
    out = {
        "first": [{"name": sym.name, "expr": pr.doprint(val)} for sym, val in lets if sym in first],
        "lets": [
            {"name": sym.name, "expr": pr.doprint(val)} for sym, val in lets if sym not in first
        ],
    }
    out.update({name: pr.doprint(e) for name, e in exprs.items()})
    return out


@cache
def _softplus_reflection_holds():
    """softplus(-t) = softplus(t) - t, checked by SymPy (once per process)."""
    t = sp.Symbol("t", real=True)
    identity = (softplus(-t) - softplus(t) + t).rewrite(sp.log)
    if sp.simplify(sp.expand_log(sp.logcombine(identity, force=True), force=True)) != 0:
        raise AssertionError("softplus(-t) = softplus(t) - t does not hold")


def _unit_weight_slots(sl, cdtype):
    """The sigmoid BCE slots without weight and pos_weight (w = w+ = 1).  The loss becomes
    softplus(x) - x y by softplus(-x) = softplus(x) - x (checked here), where x y is exact (float
    inputs multiplied in double), grouped as log1p(v) + (max(x, 0) - x y): both terms >= 0, no
    cancellation, and one log1p term instead of two; elsewhere it keeps the weighted form, whose
    terms are all >= 0.  The gradient keeps (1 - y) sigma(x) - y sigma(-x)."""
    x, y = kr.x, kr.y
    _softplus_reflection_holds()
    out = {}
    if "grad" in sl:  # not sigma(x) - y, which cancels at y = 1, x >> 0 (measured 1.5e7 ULP)
        out["grad"] = sl["grad"].xreplace({kr.pw: 1})
    if "loss" in sl:
        loss = sl["loss"].xreplace({kr.pw: 1})
        if CTYPES[cdtype]["exact_shift"]:
            loss = sp.expand(loss.xreplace({softplus(-x): softplus(x) - x}))
            if sp.expand(loss - (softplus(x) - x * y)) != 0:
                raise AssertionError(f"unexpected unit-weight loss {loss}")
            mxy = sp.Symbol("mxy", real=True)  # max(x, 0) - x y, its own statement
            out["loss"] = softplus(x) - clamp_min(x, 0) + mxy  # = log1p(v) + mxy
            return out, [(mxy, clamp_min(x, 0) - x * y)]
        out["loss"] = loss
    return out, []


def _shared_exponential(exprs, cdtype):
    """softplus(+-x) and sigmoid(+-x) of one logit x written over v = exp(-|x|), computed once:
    softplus(t) = max(t, 0) + log1p(v) and sigmoid(t) = (t >= 0 ? 1 : v) r with r = 1/(1 + v)
    (the stable forms of symce.functions with their exponential named), so the loss and the
    gradient of the sigmoid losses take one exponential, one log1p and one division per element.
    Returns the rewritten expressions, the statements [(symbol, value)] they need, and the
    symbols of those that the C loops compute first, in a loop of their own over a block (the
    exponential and the division: the long-latency start of each element, from x alone; the
    second loop's chains are then short enough for the CPU to overlap, measured 13% faster at
    N = 10^7), or [] for none."""
    v, lp, r = (sp.Symbol(n, positive=True) for n in ("v", "l1p", "r"))
    x = kr.x
    for e in exprs.values():
        for f in e.atoms(softplus, sigmoid):
            if f.args[0] not in (x, -x):
                raise ValueError(f"{f}: the shared exponential needs the argument +-x")
    # sigmoid(-x) = (-x >= 0 ? 1 : v) r is written (x >= 0 ? v : 1) r, one test for both
    # sigmoid(+-x): the two differ only at x = 0, where v = exp(-0) = 1 exactly (a NaN x makes v
    # and r NaN either way)
    sub = {
        softplus(x): clamp_min(x, 0) + lp,
        softplus(-x): clamp_min(-x, 0) + lp,
        sigmoid(x): _blend(sp.GreaterThan(x, 0), 1, v) * r,
        sigmoid(-x): _blend(sp.GreaterThan(x, 0), v, 1) * r,
    }
    out = {name: e.xreplace(sub) for name, e in exprs.items()}
    lets = [(v, sp.exp(-sp.Abs(x)))]
    need_lp, need_r = (any(e.has(sym) for e in out.values()) for sym in (lp, r))
    if CTYPES[cdtype]["approx"] == "f32" and need_lp and need_r:
        # one division for both: d = 1/((1 + v)(2 + v)), r = (2 + v) d, s = v/(2 + v) = v (1 + v) d
        # (three roundings in s instead of one: 2^-51 relative, invisible in a float)
        d = sp.Symbol("d", positive=True)
        lets += [(d, 1 / ((1 + v) * (2 + v))), (r, (2 + v) * d), (lp, _log1p_s(v * (1 + v) * d))]
        return out, lets, [v, d]
    if need_lp:
        lets.append(
            (
                lp,
                {"f32": _log1p_by_s(log1p(v)), "f64": _log1p01(v)}.get(
                    CTYPES[cdtype]["approx"], log1p(v)
                ),
            )
        )
    if need_r:
        lets.append((r, 1 / (1 + v)))
    return out, lets, []


_PARTIAL = {
    "elementwise": "elementwise",
    "rowwise": "rows",
    "ce_probs": "ce",
    "ce_logits": "rows",
    "bce": "bce",
}


# ----------------------------------------------------------------------------------------------
# Per-row programs (symce.program) as C: pointers to the row, then each step as statements.
# ----------------------------------------------------------------------------------------------
# a role's array, and the pointer name of its row (the first input's row is `row`)
_ROW_POINTER = {"in": "row", "grad": "grow", "target": "yrow"}


def _indent(lines: list, levels: int = 1) -> list:
    """``lines`` indented by ``levels`` steps of 4 spaces."""
    return ["    " * levels + line for line in lines]


def _divisor(prog: program.Program, ctx: dict) -> str:
    """What ``mean`` divides by (describe.Variant.divisor), as a C expression."""
    return {
        "rows": f"({ctx['acc']})n",
        "weight_of_kept": f"symce_label_divisor_{ctx['sfx']}(labels, weight, n, ignore_index)",
    }[prog.variant.divisor]


def _class_load(st: program.Load, ctx: dict, at: str, weight: str | None = None) -> str:
    """The declaration of a per-class load at class index ``at``: the class weight is
    ``weight`` where given (a loop that knows whether the weight is NULL), else read or 1."""
    C, wide = ctx["C"], ctx["wide"]
    if st.role == "weight":
        value = weight or f"weight != NULL ? {wide}weight[{at}] : 1"
    elif st.role == "onehot":  # 0 or 1 by a conversion, not a branch (the loop vectorises)
        value = f"({C})({at} == (size_t)t)"
    else:  # a value of the row at the class
        value = f"{wide}{_ROW_POINTER[st.role]}[{at}]"
    return f"const {C} {LOCAL_NAMES.get(st.name, st.name)} = {value};"


def _row_head(prog: program.Program, ctx: dict) -> list:
    """A row's lines before its classes: the rows of the arrays written or read per class, the
    label, the skipped rows (ignore_index: outputs 0) and the label's weight."""
    T, C, wide = ctx["T"], ctx["C"], ctx["wide"]
    grad, loss = prog.stores("class"), prog.stores("row")
    lines = [f"{T} *{_ROW_POINTER[st.output]} = {st.output} + i * k;" for st in grad]
    lines += [f"const {T} *yrow = target + i * k;" for _ in prog.loads("target")]
    for st in prog.all_steps:
        if isinstance(st, program.Load) and st.role == "labels":
            lines.append(f"const int64_t {st.name} = labels[i];")
        elif isinstance(st, program.Load) and st.role == "weight" and st.at == "label":
            lines.append(f"const {C} {st.name} = weight != NULL ? {wide}weight[t] : 1;")
        elif isinstance(st, program.Skip):
            lines.append(
                "if (t == ignore_index) {  /* loss 0, gradient row 0, not in the divisor */"
            )
            lines += [
                f"    for (size_t j = 0; j < k; ++j) {_ROW_POINTER[g.output]}[j] = 0;" for g in grad
            ]
            lines += ["    if (reduction == SYMCE_REDUCTION_NONE) loss[i] = 0;" for _ in loss]
            lines += ["    continue;", "}"]
    return lines


def _loss_store(st: program.Store, ctx: dict, value: str, add: str, total: str) -> tuple:
    """A per-row loss store: (its lines after the row's classes, its lines after the rows).  The
    row's ``value`` is kept per row for 'none', else added to the total (``add``), which is reduced
    once after the rows (symce.reductions, printed as symce_reduce_<sfx>)."""
    row_end = [
        f"if (reduction == SYMCE_REDUCTION_NONE) {st.output}[i] = ({ctx['T']}){value};",
        f"else {add}",
    ]
    finish = [
        f"if (reduction != SYMCE_REDUCTION_NONE) *{st.output} = "
        f"symce_reduce_{ctx['sfx']}(reduction, {total}, divisor);"
    ]
    return row_end, finish


def _program_lines(prog: program.Program, ctx: dict, cdtype: str) -> dict:
    """The C statements of a per-row program, by where the template lays them out: "call" (once,
    before the rows), "row" (per row, before its classes), "cls" (per class), "row_end" (per
    row, after its classes) and "finish" (after the rows).  ``ctx`` is the function's context
    (its types and names)."""
    bound = {st.name: st.name for st in prog.all_steps if hasattr(st, "name")}
    pr = CPrinter(cdtype, names={**bound, **LOCAL_NAMES})
    T, C, acc, sfx = ctx["T"], ctx["C"], ctx["acc"], ctx["sfx"]

    def code(expr):
        return pr.doprint(local_expr(expr, cdtype))

    loss = prog.stores("row")
    grad = prog.stores("class")
    call = [f"const {C} k_real = ({C})k;", f"const {C} eps = label_smoothing;"]
    call.append(f"const {acc} divisor = {_divisor(prog, ctx)};")
    if grad:
        call.append(f"const {acc} scale = symce_scale_{sfx}(reduction, divisor);")
    if loss:
        call.append(f"{acc} total = 0;")
    # the input's row where a step reads it (a gradient of -y~ alone, as nll_loss's, reads none)
    row = [f"const {T} *row = {ctx['x']} + i * k;" for _ in prog.loads("in")[:1]]
    row += _row_head(prog, ctx)
    cls, row_end, finish = [], [], []
    weighted = any(
        isinstance(st, program.Load) and st.scope == "class" and st.role == "weight"
        for st in prog.all_steps
    )
    for st in prog.all_steps:
        if isinstance(st, program.Load) and st.scope == "class":
            # the class weight: "w_k" here, set by the loop that knows whether weight is NULL
            cls.append(_class_load(st, ctx, "j", "WEIGHT" if st.role == "weight" else None))
        elif isinstance(st, program.Let):
            cls.append(f"const {C} {st.name} = {code(st.expr)};")
        elif isinstance(st, program.RowSum):
            row.append(f"{acc} {st.name} = 0;")
            cls.append(f"{st.name} += {code(st.expr)};")
        elif isinstance(st, program.Store) and st.scope == "class":
            cls.append(f"{_ROW_POINTER[st.output]}[j] = ({T})(({code(st.expr)}) * scale);")
        elif isinstance(st, program.Store):
            value = code(st.expr)
            ends, fin = _loss_store(st, ctx, value, f"total += {value};", "total")
            row_end += ends
            finish += fin
    loop = ["for (size_t j = 0; j < k; ++j) {", *_indent(cls), "}"]
    if weighted:  # the NULL test once per row, not per class (a branch in the loop stops GCC
        # vectorising it): one loop that reads the weights, one that takes 1
        with_w, without = (
            [line.replace("WEIGHT", value) for line in loop]
            for value in (f"{ctx['wide']}weight[j]", "1")
        )
        loop = ["if (weight != NULL) {", *_indent(with_w), "} else {", *_indent(without), "}"]
    return {"call": call, "row": row, "classes": loop, "row_end": row_end, "finish": finish}


# ----------------------------------------------------------------------------------------------
# The cross-entropy from logits: its program (symce.program) over the row statistics, printed
# with the speed issue's loops: each class's e from the stash (or a recomputed chunk), sums of
# up to SYMCE_STASH terms pairwise and compensated across chunks, and with labels each class
# first as off-label (y~ = B w_c, no test per class) and the label's class once.
# ----------------------------------------------------------------------------------------------
def _each_weight(prog: program.Program, ctx: dict, body) -> list:
    """``body(w)``'s lines with the class weight ``w``: twice, with the weight and with 1,
    where the variant takes a weight (no NULL test per class)."""
    if not prog.variant.has("weight"):
        return body("1")
    return [
        "if (weight != NULL) {",
        *_indent(body(f"{ctx['wide']}weight[c0 + j]")),
        "} else {",
        *_indent(body("1")),
        "}",
    ]


def _chunks(ctx: dict, body: list, tail: list = (), note: str = "") -> list:
    """``body`` per chunk of up to SYMCE_STASH classes (c0, len), then ``tail``."""
    return [
        f"for (size_t c0 = 0; c0 < k; c0 += SYMCE_STASH) {{{note}",
        "    const size_t len = k - c0 < SYMCE_STASH ? k - c0 : SYMCE_STASH;",
        *_indent(body),
        *_indent(list(tail)),
        "}",
    ]


def _e_chunks(ctx: dict, body: list, note: str = "") -> list:
    """``body`` per chunk of classes, with the chunk's e_j = ec[j] * fc from the stash (or
    computed again where the row did not fit)."""
    C = ctx["C"]
    chunk = [
        f"{C} fc;  /* this chunk's e_j = ec[j] * fc */",
        f"const {C} *ec = symce_row_chunk_{ctx['sfx']}(row, k, c0, len, shift, status, stash, &fc);",
        *body,
    ]
    return _chunks(ctx, chunk, note=note)


def _class_lines(
    prog: program.Program, ctx: dict, result: str, lets: list, at: str, weight: str | None = None
) -> list:
    """The statements of one class at index ``at`` ending in ``result``: the loads and y~ (the
    program's class steps) the printed lines read, then the row statistics' lets.  ``weight``:
    the class weight where the loop knows it (_each_weight), else it is read or 1."""
    C, row = ctx["C"], ctx["row"]
    needed = _words(result) | {word for d in lets for word in _words(d["expr"])}
    if "yt" in needed:
        needed |= _words(row["yt_printed"])
    lines = []
    for st in prog.all_steps:
        if isinstance(st, program.Load) and st.scope == "class":
            if LOCAL_NAMES.get(st.name, st.name) in needed:
                lines.append(_class_load(st, ctx, at, weight))
        elif isinstance(st, program.Let) and st.name in needed:
            lines.append(f"const {C} {st.name} = {row['yt_printed']};")
    lines += [f"const {C} {d['name']} = {d['expr']};" for d in lets]
    return [*lines, result]


def _row_sum(
    prog: program.Program, ctx: dict, name: str, term: str, lets: list, head: str = "{"
) -> list:
    """``name`` = the sum of ``term`` over the row's classes, pairwise within a chunk and
    compensated across chunks, in a block opened by ``head`` (a plain brace, or a test that
    skips the sum); the row loss is kept in the accumulator type."""
    C, acc = ctx["C"], ctx["acc"]

    def each(w):
        return [
            "for (size_t j = 0; j < len; ++j) {",
            *_indent(_class_lines(prog, ctx, f"terms[j] = {term};", lets, "c0 + j", w)),
            "}",
        ]

    accumulate = f"symce_accumulate_{ctx['sfx']}(&sum, &comp, symce_pairwise_sum(terms, len));"
    total = "sum + comp" if name == program.ROW_LOSS.name else f"({C})(sum + comp)"
    return [
        head,
        f"    {acc} sum = 0, comp = 0;",
        f"    {C} terms[SYMCE_STASH];",
        *_indent(_chunks(ctx, _each_weight(prog, ctx, each), [accumulate])),
        f"    {name} = {total};",
        "}",
    ]


def _gradient(prog: program.Program, ctx: dict, out: str, lets: list, note: str = "") -> list:
    """The gradient per class: rows whose max is not finite take the slot as it stands (class
    by class); the others ``out`` with e from the stash, chunk by chunk."""
    T, row = ctx["T"], ctx["row"]
    slow = _class_lines(prog, ctx, f"grow[j] = ({T})({row['grad_slow']});", row["lets_slow"], "j")

    def each(w):
        result = f"grow[c0 + j] = ({T})({out});"
        body = _class_lines(prog, ctx, result, lets, "c0 + j", w)
        return [
            "for (size_t j = 0; j < len; ++j) {",
            f"    const {ctx['C']} e = ec[j] * fc;",
            *_indent(body),
            "}",
        ]

    loop = _e_chunks(ctx, _each_weight(prog, ctx, each), note)
    return [
        "if (status == SYMCE_ROW_GENERAL) {",
        "    for (size_t j = 0; j < k; ++j) {  /* the gradient slot class by class */",
        *_indent(slow, 2),
        "    }",
        "} else " + loop[0],
        *loop[1:],
    ]


def _ce_logits_lines(prog: program.Program, ctx: dict) -> dict:
    """The cross-entropy from logits as C lines around the row statistics (c/_rows.c.jinja):
    "head" (before the rows), "row" (a row's target), "next_out", "per_row" (after the
    statistics), "output" (the classes) and "row_end" / "finish" (the loss's reduction)."""
    T, C, acc, sfx, wide = ctx["T"], ctx["C"], ctx["acc"], ctx["sfx"], ctx["wide"]
    row, out = ctx["row"], ctx["row"]["out"]
    soft = prog.variant.soft
    grad, loss = prog.stores("class"), prog.stores("row")
    values = [f"const {C} {h['name']} = {h['expr']};" for h in row["hoisted"]]
    lines, row_end, finish = [], [], []
    for st in prog.steps:
        if isinstance(st, program.RowSum) and st.name == kr.ysum.name and not soft:
            # over a one-hot row the sum of y~ is closed: A + B sum_c w_c (_split_target)
            values += [f"const {C} ysum = {out['ysum']};", f"const {C} yt_on = {out['yt_on']};"]
            values += [f"const {C} {h['name']} = {h['expr']};" for h in row["row_values"]]
        elif isinstance(st, program.RowSum) and st.name == kr.ysum.name:
            lines.append(f"{C} ysum;  /* sum_c y~_c */")
            lines += _row_sum(prog, ctx, "ysum", "yt", [])
        elif isinstance(st, program.RowSum) and soft:
            lines.append(f"{acc} {st.name};")
            lines += _row_sum(prog, ctx, st.name, out["loss_term"], row["lets"]["loss_term"])
        elif isinstance(st, program.RowSum):  # the label's share is added with its class
            head = "if (eps != 0) {  /* every class's share eps w_c / K of the target */"
            lines.append(f"{acc} {st.name} = 0;")
            lines += _row_sum(prog, ctx, st.name, out["loss_off"], row["lets"]["loss_off"], head)
        elif isinstance(st, program.Store) and st.scope == "class" and soft:
            lines += _gradient(prog, ctx, out["grad"], row["lets"]["grad"])
        elif isinstance(st, program.Store) and st.scope == "class":
            note = "  /* every class as off-label first */"
            lines += _gradient(prog, ctx, out["grad_off"], row["lets"]["grad_off"], note)
        elif isinstance(st, program.Store):
            add = f"symce_accumulate_{sfx}(&total, &tcomp, {st.expr});"
            ends, fin = _loss_store(st, ctx, str(st.expr), add, "total + tcomp")
            row_end += ends
            finish += fin
    if not soft:  # the label's own class, once
        label = [f"const {C} zv = {wide}row[t];"]
        label += [f"const {C} {d['name']} = {d['expr']};" for d in row["lets_t"]]
        if loss:
            label.append(f"{program.ROW_LOSS.name} += {out['loss_on']};")
        if grad:
            label.append(f"if (status != SYMCE_ROW_GENERAL) grow[t] = ({T})({out['grad_on']});")
        lines += ["{  /* the label's class */", *_indent(label), "}"]
    printed = " ".join([*values, *lines, *row_end])
    head = [
        f"const {C} k_real = ({C})k;",
        f"const {C} eps = label_smoothing;",
        f"const {acc} divisor = {_divisor(prog, ctx)};",
    ]
    if "wsum" in _words(printed):
        head += [
            f"{acc} wsum = 0, wcomp = 0;  /* sum_c w_c, for sum_c y~_c: compensated (K may be 10^5) */",
            "for (size_t j = 0; j < k; ++j)",
            f"    symce_accumulate_{sfx}(&wsum, &wcomp, weight != NULL ? {ctx['wide_acc']}weight[j] : 1);",
            "wsum += wcomp;",
        ]
    if grad:
        head.append(f"const {acc} scale = symce_scale_{sfx}(reduction, divisor);")
    head.append("const size_t step = symce_row_step(k);  /* rows per block (the OpenMP unit) */")
    if loss:
        head += [f"{acc} total = 0, tcomp = 0;", "SYMCE_OMP_FOR_SUM(total, tcomp)"]
    else:
        head.append("SYMCE_OMP_FOR")
    return {
        "head": head,
        "row": _row_head(prog, ctx),
        "next_out": "i + 1 < n ? grow + k : NULL" if grad else "NULL",
        "per_row": values,
        "output": Part(ROW_LINES, {"lines": lines}, line=True),
        "row_end": row_end,
        "finish": finish,
    }


def _bce_element(prog: program.Program, ctx: dict, plain: bool) -> list:
    """One element's values in the BCE loops, from the program's loads: the input, the target,
    the weights (1 where ``plain``: no weight given, and dropped where the unit-weight slots do
    without them), then the values computed first (from their buffers) and the slots' lets."""
    C, wide, slots = ctx["C"], ctx["wide"], ctx["slots"]
    unit = plain and slots["plain"] is not None
    sl = slots["plain"] if unit else slots
    buffer = {"weight": "wb[l]", "pos_weight": "pwb[l]"}
    # the code that reads the loads: an input no slot reads is not loaded (kl_div's gradient,
    # -y or -e^y, reads no input; -Werror refuses the unused variable)
    code = " ".join(
        [sl.get(n) or "" for n in ("loss", "grad")] + [d["expr"] for d in sl["first"] + sl["lets"]]
    )
    lines = []
    for st in prog.steps:
        if not isinstance(st, program.Load):
            continue
        if st.role == "in" and not re.search(rf"\b{LOCAL_NAMES[st.name]}\b", code):
            continue
        if st.role in buffer:
            if not unit:
                lines.append(f"const {C} {st.name} = {'1' if plain else buffer[st.role]};")
        else:
            source = ctx["x"] if st.role == "in" else "target"
            lines.append(f"const {C} {LOCAL_NAMES[st.name]} = {wide}{source}[b0 + l];")
    lines += [f"const {C} {d['name']} = {d['name']}b[l];" for d in sl["first"]]
    lines += [f"const {C} {d['name']} = {d['expr']};" for d in sl["lets"]]
    return lines


def _bce_compute(prog: program.Program, ctx: dict, plain: bool) -> list:
    """The BCE loops over one block: each stored output per element, the loss kept per element
    (none) or summed by block (in double for the float kernels)."""
    T, slots = ctx["T"], ctx["slots"]
    sl = slots["plain"] if plain and slots["plain"] is not None else slots
    element = ["    " + line for line in _bce_element(prog, ctx, plain)]
    outputs = [st.output for st in prog.stores()]
    grad = [f"    grad[b0 + l] = ({T})(({sl['grad']}) * scale);"] if "grad" in outputs else []
    if "loss" not in outputs:
        return ["for (size_t l = 0; l < len; ++l) {", *element, *grad, "}"]
    return [
        "if (reduction == SYMCE_REDUCTION_NONE) {",
        "    for (size_t l = 0; l < len; ++l) {",
        *("    " + line for line in element),
        *("    " + line for line in grad),
        f"        loss[b0 + l] = {ctx['narrow']}({sl['loss']});",
        "    }",
        "} else {",
        f"    {ctx['C']} terms[SYMCE_BLOCK];",
        "    for (size_t l = 0; l < len; ++l) {",
        *("    " + line for line in element),
        *("    " + line for line in grad),
        f"        terms[l] = {sl['loss']};",
        "    }",
        f"    symce_accumulate_{ctx['sfx']}(&total, &tcomp, {ctx['block_sum']}(terms, len));",
        "}",
    ]


def _bce_body(kern: kr.Kernel, ctx: dict) -> dict:
    """The BCE family's body as lines, from its program (symce.program): the divisor, scale and
    sums its stores need; the values computed first per block; the loops without weights and with
    them (the block's weights, and pos_weight by column, copied to the stack); the reduction."""
    prog = program.program(kern, describe.describe(kern).variants[0])
    C, acc, sfx, wide = ctx["C"], ctx["acc"], ctx["sfx"], ctx["wide"]
    outputs = [st.output for st in prog.stores()]
    aliased = [r for r in reductions.ALIASES if r in kern.reductions]
    const = "" if aliased else "const "
    head = ["const size_t count = n * k;", f"{const}{acc} divisor = ({acc})count;"]
    for value, (same, _) in reductions.ALIASES.items():
        if value in kern.reductions:  # a mean over the samples, n (symce.reductions)
            head += [
                f"if (reduction == {reduction_enum(value)}) {{",
                f"    reduction = {reduction_enum(same)};",
                f"    divisor = ({acc})n;",
                "}",
            ]
    if "grad" in outputs:
        head.append(f"const {acc} scale = symce_scale_{sfx}(reduction, divisor);")
    if "loss" in outputs:
        head += [f"{acc} total = 0, tcomp = 0;", "SYMCE_OMP_FOR_SUM(total, tcomp)"]
    else:
        head.append("SYMCE_OMP_FOR")
    block = [] if kern.switches else _first_block(ctx)
    weights = [
        st.role
        for st in prog.steps
        if isinstance(st, program.Load) and st.role in ("weight", "pos_weight")
    ]
    copies = []
    if "pos_weight" in weights:
        copies = [
            f"{C} pwb[SYMCE_BLOCK];",
            "if (pos_weight != NULL) {",
            "    size_t col = b0 % k;",
            "    for (size_t l = 0; l < len; ++l) {",
            f"        pwb[l] = {wide}pos_weight[col];",
            "        col = col + 1 == k ? 0 : col + 1;",
            "    }",
            "} else {",
            "    for (size_t l = 0; l < len; ++l) pwb[l] = 1;",
            "}",
        ]
    finish = []
    if "loss" in outputs:
        finish.append(
            f"if (reduction != SYMCE_REDUCTION_NONE) *loss = symce_reduce_{sfx}(reduction, total + tcomp, divisor);"
        )
    return {
        "head": head,
        "first": block,
        "unweighted": " && ".join(f"{role} == NULL" for role in weights),
        "plain": _switched_compute(kern, prog, ctx, True),
        "copies": copies,
        "weighted": _switched_compute(kern, prog, ctx, False),
        "finish": finish,
    }


def _first_block(ctx: dict) -> list:
    """The values a BCE block computes first, for every element (the exponential and the
    division of the stable sigmoid forms), into stack arrays the loops read."""
    C, wide, first = ctx["C"], ctx["wide"], ctx["slots"]["first"]
    if not first:
        return []
    return [
        f"{C} " + ", ".join(f"{d['name']}b[SYMCE_BLOCK]" for d in first) + ";",
        "for (size_t l = 0; l < len; ++l) {  /* the exponential and the division first */",
        f"    const {C} xv = {wide}{ctx['x']}[b0 + l];",
        *(f"    const {C} {d['name']} = {d['expr']};" for d in first),
        *(f"    {d['name']}b[l] = {d['name']};" for d in first),
        "}",
    ]


def _switched_compute(kern: kr.Kernel, prog: program.Program, ctx: dict, plain: bool) -> list:
    """The BCE loops over one block (_bce_compute); where the kernel has switches, once per form,
    the switches tested once per block outside the loops, so each loop is one form with no
    branch (and vectorises: a ternary with a libm call in the other arm would not)."""
    if not kern.switches:
        return _bce_compute(prog, ctx, plain)
    names = [o.name for o in kern.switches]
    out = []
    combos = list(itertools.product((1, 0), repeat=len(names)))
    for i, values in enumerate(combos):
        at = {o.symbol: v for o, v in zip(kern.switches, values)}
        form = dataclasses.replace(kern, slots={n: e.xreplace(at) for n, e in kern.slots.items()})
        sub = dict(ctx, slots=_printed_slots(form, ctx["cdt"]))
        test = " && ".join(n if v else f"!{n}" for n, v in zip(names, values))
        head = "if" if i == 0 else "} else if"
        out.append(f"{head} ({test}) {{" if i < len(combos) - 1 else "} else {")
        body = _first_block(sub) + _bce_compute(prog, sub, plain)
        out += ["    " + line for line in body]
    return out + ["}"]


# a row kernel's output step (symce.program) -> the template of its loops
_ROW_OUTPUT = {"row": "c/_row_scalar.c.jinja", "pair": "c/_row_jacobian.c.jinja"}
ROW_LINES = "c/_row_lines.c.jinja"  # the classes of one row, as lines printed here


def _vector_lines(ctx: dict) -> list:
    """A row kernel's output per class (softmax, log_softmax) as lines: with e from the stash
    (chunk by chunk) where the output reads it, else from z alone."""
    C, wide, row = ctx["C"], ctx["wide"], ctx["row"]
    lets = [f"const {C} {d['name']} = {d['expr']};" for d in row["lets"]["out"]]
    if not row["needs_e"]["out"]:
        result = f"orow[j] = {ctx['narrow']}({row['out']['out']});"
        return [
            "for (size_t j = 0; j < k; ++j) {",
            f"    const {C} zv = {wide}row[j];",
            *_indent(lets),
            f"    {result}",
            "}",
        ]
    z = [f"const {C} zv = {wide}row[c0 + j];"] if row["needs_z"]["out"] else []
    result = f"orow[c0 + j] = {ctx['narrow']}({row['out']['out']});"
    each = [
        "for (size_t j = 0; j < len; ++j) {",
        f"    const {C} e = ec[j] * fc;",
        *_indent([*z, *lets, result]),
        "}",
    ]
    return _e_chunks(ctx, each)


def _row_output(kern: kr.Kernel, ctx: dict) -> dict:
    """The row kernels' parts around the row statistics (c/_rows.c.jinja), from their program
    (symce.program): the output's loops (per row, per class, per pair of classes, or per class
    after a row sum), where the row statistics may prefetch the next row's output (an output per
    class), and a row whose max is not finite made NaN where the kernel combines its classes."""
    prog = program.program(kern, describe.describe(kern).variants[0])
    (store,) = prog.stores()
    summed = any(isinstance(st, program.RowSum) for st in prog.steps)
    if store.scope == "class" and not summed:
        lines = [f"{ctx['T']} *orow = out + i * k;", *_vector_lines(ctx)]
        output = Part(ROW_LINES, {"lines": lines}, line=True)
    else:
        template = _ROW_OUTPUT.get(store.scope, "c/_row_vjp.c.jinja")
        output = Part(template, {"f": dict(ctx)}, line=True)
    return {
        "head": [
            "const size_t step = symce_row_step(k);  /* rows per block (the OpenMP unit) */",
            "SYMCE_OMP_FOR",
        ],
        "row": [],
        "next_out": "i + 1 < n ? out + (i + 1) * k : NULL" if store.scope == "class" else "NULL",
        "per_row": [f"const {ctx['C']} {h['name']} = {h['expr']};" for h in ctx["row"]["hoisted"]],
        "output": output,
        "row_end": [],
        "finish": [],
    }


def _rows(kern: kr.Kernel, prog: program.Program, ctx: dict) -> dict:
    """The row families' lines around the row statistics (c/_rows.c.jinja); a row whose max is
    not finite is NaN where the kernel combines its classes (Kernel.nan_row_at_inf)."""
    rows = _ce_logits_lines(prog, ctx) if kern.family == "ce_logits" else _row_output(kern, ctx)
    if kern.nan_row_at_inf:
        nan = f"if (status == SYMCE_ROW_GENERAL) srest = ({ctx['C']})NAN;  /* +inf or no finite logit: a NaN row */"
        rows["per_row"] = [nan, *rows["per_row"]]
    return rows


def _widening(T: str, C: str, acc: str) -> dict:
    """The explicit casts that widen a T value to the compute type C ("wide") and to the
    accumulator type ("wide_acc"), empty where the types are equal: every promotion is written
    out (-Wdouble-promotion)."""
    return {"wide": "" if C == T else f"({C})", "wide_acc": "" if acc == T else f"({acc})"}


def _function_context(fn: CFunction):
    kern = kr.kernel(fn.kernel)
    desc = describe.describe(kern)
    T = DTYPES[fn.dtype]["T"]
    cdt = compute_dtype(fn.dtype, kern.family)
    ctx = {
        "cname": fn.cname,
        "kernel": fn.kernel,
        "sfx": fn.dtype,
        "T": T,
        "C": CTYPES[cdt]["T"],
        "narrow": "" if CTYPES[cdt]["T"] == T else f"({T})",  # the cast that rounds to T
        **_widening(T, CTYPES[cdt]["T"], DTYPES[fn.dtype]["acc"]),
        "acc": DTYPES[fn.dtype]["acc"],
        "family": kern.family,
        "summary": kern.summary,
        "prototype": _prototype(fn.cname, [_decl(p, T) for p in fn.params]),
        # one long loop of exponentials: 512-bit vectors where GCC targets AVX-512 (SYMCE_WIDE)
        "wide_vectors": kern.family in WIDE_FAMILIES and vectorised(cdt),
        "required": [p.name for p in fn.params if p.role in ("in", "labels", "target", "out")],
        "doc": _doc(fn, kern),
        "slots": _printed_slots(kern, cdt),
        "cdt": cdt,
        "soft": fn.soft,
        "x": desc.input,
        "domain": desc.checks_domain,
        "has_loss": desc.has_loss,
        "has_grad": desc.has_grad,
        "has_pos_weight": fn.variant.has("pos_weight"),
        "has_weight": fn.variant.has("weight"),
        # a block's terms: 16 lane sums in double for the float kernels, pairwise for the double
        "block_sum": "symce_lane_sum" if CTYPES[cdt]["exact_shift"] else "symce_pairwise_sum",
    }
    if kern.family == "elementwise":
        ctx["value"] = _guarded(ctx["slots"], ctx["narrow"], vectorised(cdt))
    if kern.family == "rowwise":
        ctx["block"] = JACOBIAN_BLOCK
    if desc.rows:
        ctx["row"] = _row_code(
            kern, cdt, desc.layout if kern.family == "rowwise" else "ce", fn.soft
        )
        ctx["rows"] = _rows(kern, program.program(kern, fn.variant), ctx)
    if kern.family in PROGRAM_FAMILIES:
        ctx["program"] = _program_lines(program.program(kern, fn.variant), ctx, cdt)
    if kern.family == "bce":
        ctx["bce"] = _bce_body(kern, ctx)
    checks = _check_calls(fn, desc, T)
    ctx["first_check"], ctx["then_checks"] = checks[0], checks[1:]
    # the body: the family's template (_PARTIAL), laid out with this context
    ctx["body"] = Part("c/_" + _PARTIAL[kern.family] + ".c.jinja", {"f": dict(ctx)})
    return ctx


def _dtype_context(dtype):
    """Per storage dtype: the validation and reduction helpers' types, and the printed per-class
    slots of the row statistics (zs, zlo, e; em1 for rows whose max is not finite)."""
    spec = DTYPES[dtype]
    cdt = spec["compute"]
    row_kernels = [k for k in kr.registry().values() if k.family in ROW_FAMILIES]
    base = local_slots(row_kernels[0], cdt)
    for kern in row_kernels[1:]:  # the statistics are shared: every row kernel has the same slots
        other = local_slots(kern, cdt)
        if any(other[n] != base[n] for n in ("zs", "zlo", "e", "em1")):
            raise ValueError(f"{kern.name}: row slots differ from {row_kernels[0].name}'s")
    pr = CPrinter(cdt)
    return {
        "sfx": dtype,
        "T": spec["T"],
        "acc": spec["acc"],
        "C": CTYPES[cdt]["T"],
        **_widening(spec["T"], CTYPES[cdt]["T"], spec["acc"]),
        "lets_e": _lets(base, (kr.e,), pr),
        "lets_e_neg": _lets(base, (kr.e,), CPrinter(cdt, nonpositive_exp=True)),
        "lets_em1": _lets(base, (kr.em1,), pr),
        "compensated": not CTYPES[cdt]["exact_shift"],
        "accumulate": _accumulate(dtype),
        "exp_neg": helper_name("exp_neg", cdt) if vectorised(cdt) else "exp",
        "max_lanes": MAX_LANES[spec["T"]],
        "sum_lanes": SUM_LANES,
        **_reduction_helpers(dtype),
    }


def _ternary(expr: sp.Expr) -> sp.Expr:
    """Every two-branch Piecewise of ``expr`` as C's ternary (_pick): the reduction helpers run
    once per call, not in a loop that symce_select's bit mask would keep vectorised."""
    return expr.replace(
        lambda e: isinstance(e, sp.Piecewise),
        lambda e: _pick(e.args[0].cond, e.args[0].expr, e.args[1].expr),
    )


def reduction_enum(value: str) -> str:
    """The symce_reduction constant of a reduction value: SYMCE_REDUCTION_MEAN."""
    return f"SYMCE_REDUCTION_{value.upper()}"


def reduction_lines(table: dict, cdtype: str, result: Callable[[str], str] = str) -> list:
    """A table of symce.reductions (reduction value -> expression of total and divisor) as C
    statements in compute type ``cdtype``: ``if (reduction == ...) return ...;`` per branch, then
    the default's return.  ``result`` wraps each printed value (a cast)."""
    pr = CPrinter(cdtype, names={"total": "total", "divisor": "divisor"})

    def value(expr):
        return result(pr.doprint(_ternary(reductions.expand(expr))))

    branches, default = reductions.cases(table)
    lines = []
    for values, expr in branches:
        test = " || ".join(f"reduction == {reduction_enum(v)}" for v in values)
        lines.append(f"if ({test}) return {value(expr)};")
    return lines + [f"return {value(default)};"]


def _one_group(code: str) -> bool:
    """Whether ``code`` is one parenthesised group, "(...)"."""
    depth = 0
    for pos, ch in enumerate(code):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            return pos == len(code) - 1 and ch == ")"
    return False


def _reduction_helpers(dtype: str) -> dict:
    """The bodies of symce_scale_<sfx> (the gradient's scale) and symce_reduce_<sfx> (the loss
    from the total), printed from symce.reductions in the accumulator type; the reduced loss is
    rounded once to the storage type."""
    spec = DTYPES[dtype]
    T, acc = spec["T"], spec["acc"]
    cdt = next(c for c in CTYPES if CTYPES[c]["T"] == acc)  # the sums' type, double

    def narrow(code: str) -> str:
        if T == acc:
            return code
        return f"({T}){code}" if code.isidentifier() or _one_group(code) else f"({T})({code})"

    return {
        "scale": reduction_lines(reductions.SCALE, cdt),
        "reduce": reduction_lines(reductions.from_total(), cdt, narrow),
    }


def _helper_sections():
    """The helpers per compute type: symce's exp (and the float kernels' log1p on [0, 1]) where
    the type vectorises, then the SymPy-defined ones some printed slot calls (and their callees)."""
    out = []
    printed = _printed_by_type()
    all_used = used_helpers(printed)
    for cdt, used in all_used.items():
        raw = []
        if vectorised(cdt):
            raw.append(_exp_helper(cdt, nonpositive=True))
            raw.append(_exp_helper(cdt))
            if CTYPES[cdt]["approx"] == "f32" and _uses_log1p_s(cdt, printed, all_used):
                raw.append(_log1p_s_helper(cdt))
            if CTYPES[cdt]["approx"] == "f32":
                raw.append(_log1p_row_helper(cdt))
            if any(expr.has(_log1p01) for expr in printed.get(cdt, [])):
                raw.append(_log1p01_helper(cdt))
        out.append(
            {
                "T": CTYPES[cdt]["T"],
                "role": f" for the {DTYPES_FOR[cdt]} kernels",
                "raw": raw,
                "list": _helpers(cdt, used),
            }
        )
    return out


def _precision_lines():
    """The header's paragraph on compute types, accumulation and accuracy (from DTYPES)."""
    accs = {spec["acc"] for spec in DTYPES.values()}
    if len(accs) == 1:
        acc = accs.pop()
    else:
        acc = " / ".join(f"{spec['acc']} ({spec['T']} kernels)" for spec in DTYPES.values())
    computes = []
    exceptions = []
    for spec in DTYPES.values():
        T = spec["T"]
        C = CTYPES[spec["compute"]]["T"]
        computes.append(
            f"the {T} kernels "
            + ("compute " if not computes else "")
            + f"in {C}"
            + ("" if C == T else " and round once")
        )
        for fam, cdt in spec["compute_by_family"].items():
            kernels = [n for n, k in kr.registry().items() if k.family == fam]
            CF = CTYPES[cdt]["T"]
            exceptions.append(
                f"the {T} kernels {', '.join(kernels)} in {CF}"
                + ("" if CF == T else ", rounded once")
            )
    sentence = ", ".join(computes)
    sentence = sentence[0].upper() + sentence[1:]
    if exceptions:
        sentence += " (" + "; ".join(exceptions) + ")"
    text = (
        "Precision: every sum (row sums, <g, p>, row losses, reductions, the mean divisor) "
        f"accumulates in {acc}.  {sentence}.  "
        "Against the mpmath definitions (make accuracy: |logits| <= 30, K = 2, 10, 3000 and "
        "128000, logits near 1e4, a dominated loss of 1e-8, masked -inf): every kernel within "
        "1 ULP in float and 4 ULP in double (measured: float 0.5 ULP on every input class; "
        "double softmax 3.6 ULP at K = 128000 and at most 2.6 elsewhere, the VJP 3.3 in "
        "ULPs of its terms; sigmoid and sigmoid' 0.5 ULP for |x| <= 85 (float) / 700 "
        "(double): with a long double that is double, sigmoid' is about 2.6 ULP).  "
        "Built with -ffast-math (GCC or Clang, tested), every bound and special value "
        "here still holds: symce.c turns reassociation off for itself and tells NaN and "
        "infinities from their bits.  The one bound it cannot keep is for subnormals in a "
        "process that flushes them to zero (as a program linked with -ffast-math does from "
        "start-up): there subnormal inputs and results count as 0."
    )
    return textwrap.wrap(
        text,
        _DOC_WIDTH,
        initial_indent="   - ",
        subsequent_indent="     ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def context() -> dict:
    """The template context of symce.h and symce.c (strings, names and numbers only)."""
    fns = [_function_context(fn) for fn in functions()]
    return {
        "precision": _precision_lines(),
        "errors": [
            {"name": n, "value": v, "message": msg, "comment": _wrapped(f"/* {msg} */", "", "   ")}
            for n, v, msg in ERRORS
        ],
        "unknown_error": UNKNOWN_ERROR,
        "helpers": _helper_sections(),
        "stash": STASH,
        "block": BLOCK,
        "small_k": SMALL_K,
        "rows": ROWS,
        "sum_lanes": SUM_LANES,
        "dtypes": [_dtype_context(d) for d in DTYPES],
        "sections": [
            {"T": DTYPES[d]["T"], "sfx": d, "functions": [f for f in fns if f["sfx"] == d]}
            for d in DTYPES
        ],
    }


def outputs() -> list:
    """symce.h and symce.c, from one context."""
    ctx = context()
    return [
        Output("c/symce.h", "c/symce.h.jinja", ctx),
        Output("c/symce.c", "c/symce.c.jinja", ctx),
    ]
