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

__all__ = ["MAX_LENGTH", "RESERVED", "check_name"]

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
