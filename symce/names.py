"""Stage 5 — kernels: the names a kernel, an argument or an option may take, in every language.

A name symce writes into generated code (a kernel's name, which becomes ``symce_<name>`` in C and
MATLAB and ``<name>`` in the NumPy module; an argument's or an option's name, which becomes a
parameter in all three) must be an identifier in C, C++ (symce.h is included from C++), Python
and MATLAB, reserved in none of them, and unable to carry anything but itself into a template.
:func:`check_name` refuses anything else with an error that says which rule it broke: the
lowercase ASCII snake_case every built-in name uses (so no Unicode look-alike, no quote, no
newline, no template syntax gets through), a length MATLAB's 63-character names allow with the
``symce_`` prefix and a dtype suffix, no double underscore (reserved in C and C++), and not one of
the reserved words of :data:`RESERVED`.

The user-facing API (issue 11: functions users define) checks every name it is given here before
any of it reaches a printer or a template.
"""

from __future__ import annotations

import keyword
import re

__all__ = ["GENERATED", "MAX_LENGTH", "RESERVED", "check_argument", "check_name"]

# symce_<name>_soft_f32 must fit MATLAB's namelengthmax (63) and stay readable in C
MAX_LENGTH = 40
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")

_C = """
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn
_Static_assert _Thread_local alignas alignof bool false true static_assert thread_local typeof
"""
_CPP = """
and and_eq asm bitand bitor catch char8_t char16_t char32_t class co_await co_return co_yield
compl concept const_cast consteval constexpr constinit decltype delete dynamic_cast explicit export
friend mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public
reinterpret_cast requires static_cast template this throw try typeid typename using virtual
wchar_t xor xor_eq
"""
_MATLAB = """
break case catch classdef continue else elseif end for function global if otherwise parfor
persistent return spmd switch try while
"""

# the reserved words of each language a name is printed in
RESERVED = {
    "C": frozenset(_C.split()),
    "C++": frozenset(_CPP.split()),
    "Python": frozenset(keyword.kwlist) | frozenset(keyword.softkwlist),
    "MATLAB": frozenset(_MATLAB.split()),
}


# the identifiers the generated code uses itself (its locals, helpers and library calls, in any of
# the three languages; symce's kernel names, parameters and reserved words aside): an argument or
# option a user names may be none of them, or it would shadow one (a C local, NumPy's np).
# tests/test_names.py extracts them from generated/ and fails if one is missing here.
_GENERATED = """
a abs absolute add ahead ahead_len all always_inline aname any apply_reduction apply_scale
arange arg argmax args argwhere arr asarray astype at axis b b0 bad below big bname bool_
broadcast_shapes broadcast_to buf bufs bytes c c0 c_contiguous cap cast ceil check_class_weight
check_classes check_elementwise_weight check_float check_ignore_index check_label_range
check_labels check_like check_nargin check_nonnegative check_option check_pos_weight
check_probabilities check_real_numbers check_reduction check_smoothing clamp_min class_str cls
code col cols comp cond copy copyto count csum d db dcomp defaults define defined delta divide
divisor dot dst dsum dtype e e_a e_out e_t eblock ec elem em1 em1_a em1_at em1_t empty endif eps
equal err error errstate et exc exp expl expm1 eye ez f fabs fabsl factor fc fieldnames find
finfo finite_z flags float32 float64 float_control floating fma found free full g_dot_e g_dot_p
gb gdiv generic gesum given gmul got greater_equal grow gv h heap hi high hint hit hot hot_a i
i0 id ifdef ifndef inf inputs int32_t int64 int64_t integer interval inv_srest is_soft_target
ischar isempty isequal isfinite isfloat isinf isinstance isinteger islogical ismatrix isnan
isnumeric isposinf isreal isrow isscalar isstring isvector j j0 j1 k k2 k_real kd kd0 keep_all
keepdims kept key kind l l1p labels lane lane_sum lb len less_equal like like_name lo log log1p
log1p_srest log1pl longdouble loss_rows losses low lower lsum lt m malloc mat2str max maximum mc
mean mean_divisor memcpy mfilename min mod moveaxis mul0 multiply mx mxy n n_classes name names
nan nargin ndarray ndim near need negative next next_out nmant none not_equal np num2str numel
numpy o ok omp on ones ones_k optimize opts orow out_ahead over own p p_a p_block p_i p_j p_t
pairwise_sum parallel parse_options pc pc_a pc_i pc_t pe plural pow power pragma precise prob
prod ptrdiff_t put_along_axis pw pwb pwin q r range rc rem reshape round row row_loss rows s
s_lo safe sc scale schedule sh shape shift shift_out shiftb shown size size_str size_t skip sl
slice small smooth smoothing soft sprintf srest srest_out srestb start stash status status_out
statusb step stop str strcmp strcmpi strjoin subtract sum sz t t_all take_along_axis tanhl tc
tcomp terms th tie ties tile tl tolist top total ts tuple two_sum_err type u u1 u2 uint32_t
uint64_t under v value value_str values varargin vb w w_a w_k w_row w_t w_t_all wb wcomp
weighted where width win ws wsum x_name xin xv y yin yrow ysum yt yt_a yt_on yt_t zlo zlo_a
zlo_t zs zs_a zs_t zv allowed check_reduction_in check_switch logical ndims quoted real real_log
repr strcat join map
"""
GENERATED = frozenset(_GENERATED.split())


def check_name(name: object, what: str = "name", taken: dict | None = None) -> str:
    """``name`` if it may name ``what`` ("kernel name", "option name", ...) in every language,
    else a ValueError (a TypeError for a non-string) that says which rule it breaks.  ``taken``
    maps names already in use to what uses them (the registry's kernels, a kernel's other
    arguments): a name among them is refused too."""
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected a string, got {type(name).__name__} {name!r}")
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{what}: expected lowercase ASCII letters, digits and underscores, starting with a "
            f"letter (an identifier in C, Python and MATLAB), got {name!r}"
        )
    if len(name) > MAX_LENGTH:
        raise ValueError(
            f"{what}: expected at most {MAX_LENGTH} characters (MATLAB's names are at most 63 "
            f"with the symce_ prefix), got {len(name)} in {name!r}"
        )
    if "__" in name:
        raise ValueError(f"{what}: a double underscore is reserved in C and C++, got {name!r}")
    reserved = [lang for lang, words in RESERVED.items() if name in words]
    if reserved:
        raise ValueError(f"{what}: {name!r} is a reserved word in {' and '.join(reserved)}")
    if taken and name in taken:
        raise ValueError(f"{what}: {name!r} is already taken by {taken[name]}")
    return name


def check_argument(name: object, what: str = "argument name", taken: dict | None = None) -> str:
    """:func:`check_name`, and not one of the generated code's own identifiers
    (:data:`GENERATED`): the name of an argument or option a user declares, which becomes a
    parameter beside those locals in every language."""
    check_name(name, what, taken)
    if name in GENERATED:
        raise ValueError(
            f"{what}: {name!r} is used by symce's generated code itself (a local, helper or "
            "library name in C, NumPy or MATLAB) and would shadow it; choose another name"
        )
    return name
