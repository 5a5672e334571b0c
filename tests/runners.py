"""One runner per language with one call: ``call(kernel, dtype, *args, **options)``.

Every runner takes the inputs in NumPy's layout (classes on the last axis, 0-based labels) and
PyTorch's keyword options, and returns either the kernel's outputs, a tuple of arrays in NumPy's
layout (one per output), or a :class:`Raised`: the error as the Python exception class and the
arguments it is about, C codes and MATLAB identifiers mapped through ``symce.errors``, the one
catalogue.  So a test is written once and run in every language::

    out = runners.runner("c", clib=clib).call("softmax", np.float32, z)

MATLAB's runner takes its calls in batches (one octave-cli for many calls, ``call_many``); every
runner has ``call_many``, and ``call`` is a batch of one.  ``expresses(kernel, args)`` says whether
a language has the call at all (MATLAB reads a vector of either orientation as one sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symce import errors as catalogue
from symce import kernels as kr
from symce.lang import c_backend, numpy_backend

import support
from c_build import CError, library
from octave_runner import MATLAB_OPTION, Batch, matlab_args, to_numpy_layout

LANGUAGES = ("numpy", "c", "matlab")
BAD_REDUCTION = "bogus"  # a reduction no language accepts (C is passed 7: no symce_reduction)


@dataclass(frozen=True)
class Raised:
    """An error as a Python exception class and the argument(s) it may be about (and the
    language's own message, for the tests of its wording; not compared)."""

    exc: str
    args: frozenset
    message: str = field(default="", compare=False)

    def same_kind(self, other) -> bool:
        return self.exc == other.exc and bool(self.args & other.args)

    def __str__(self):
        return f"{self.exc}({'|'.join(sorted(self.args))})"


def about(kernel: str, role: str) -> frozenset:
    """The arguments an error about ``role`` names in ``kernel`` (the K = 0 and the probability
    errors name the first input)."""
    first = kr.kernel(kernel).inputs[0].name
    return frozenset({"classes": {first}, "probs": {first}}.get(role, {role}))


def numpy_kind(kernel: str, exc: Exception) -> Raised:
    """A NumPy exception: its class and the argument its message starts with ("name: ...")."""
    arg = str(exc).split(":", 1)[0].strip()
    return Raised(type(exc).__name__, frozenset({arg}), str(exc))


# a C code -> (its Python class, the arguments it may be about); a MATLAB identifier -> the same
# (weight and pos_weight share symce:weight, probabilities and targets symce:domain)
C_CODES = {e.c: (e.python, e.about) for e in catalogue.CATALOGUE if e.c is not None}
MATLAB_IDS: dict = {}
for _e in catalogue.CATALOGUE:
    if _e.matlab is not None and _e.python is not None:
        _exc, _roles = MATLAB_IDS.get(_e.matlab, (_e.python, ()))
        assert _exc == _e.python, f"{_e.matlab}: two Python classes in the catalogue"
        MATLAB_IDS[_e.matlab] = (_exc, _roles + _e.about)


def c_kind(kernel: str, code: int, message: str = "") -> Raised:
    """A C return code as the kind of error it reports."""
    names = {value: name for name, value, _ in c_backend.ERRORS}
    exc, roles = C_CODES.get(names.get(code), (f"unknown code {code}", ("?",)))
    return Raised(exc, frozenset().union(*(about(kernel, r) for r in roles)), message)


# a MATLAB message "symce_<kernel>: <Argument> ..." names the argument by its MATLAB name
_MATLAB_ARGUMENT = {m: k for k, m in MATLAB_OPTION.items()}


def matlab_kind(kernel: str, ident: str | None, message: str | None = None) -> Raised:
    """A MATLAB error identifier as the kind of error it reports; with its ``message``, about the
    argument the message names (an input or option of ``kernel``), else about every argument
    the identifier may concern."""
    exc, roles = MATLAB_IDS.get(ident, (f"unknown identifier {ident!r}", ("?",)))
    args = frozenset().union(*(about(kernel, r) for r in roles))
    head = f"symce_{kernel}: "
    if message and message.startswith(head):
        word = message[len(head) :].split(" ", 1)[0]
        word = _MATLAB_ARGUMENT.get(word, word)
        kern = kr.kernel(kernel)
        if word in {i.name for i in kern.inputs} | set(kern.options):
            args = frozenset({word})
    return Raised(exc, args, message or "")


# the field of a symce.errors entry that says how each language reports it (None: it has no such
# refusal, e.g. C has no shape errors: sizes are the caller's)
CATALOGUE_FIELD = {"numpy": "python", "c": "c", "matlab": "matlab"}


def reports(lang: str, key: str) -> bool:
    """Whether ``lang`` has the refusal ``key`` of symce.errors."""
    return getattr(catalogue.BY_KEY[key], CATALOGUE_FIELD[lang]) is not None


def outputs(kernel: str, value) -> tuple:
    """A kernel's return value as a tuple of arrays, one per output."""
    n = len(kr.kernel(kernel).outputs)
    return tuple(np.asarray(v) for v in (value if n > 1 else (value,)))


class _Runner:
    """``call_many([(kernel, dtype, args, options), ...])`` one by one; ``call`` is one."""

    lang = ""

    def expresses(self, kernel: str, args: tuple) -> bool:
        return True

    def call(self, kernel: str, dtype, *args, **options):
        return self.call_many([(kernel, dtype, args, options)])[0]

    def call_many(self, calls: list) -> list:
        return [self._one(k, np.dtype(d), a, o) for k, d, a, o in calls]


class NumpyRunner(_Runner):
    """The generated NumPy module (generated/numpy/symce_kernels.py), or ``sk``."""

    lang = "numpy"

    def __init__(self, sk=None):
        self.sk = sk if sk is not None else numpy_backend.load_generated()

    def _one(self, kernel, dtype, args, options):
        try:
            return outputs(kernel, getattr(self.sk, kernel)(*args, **options))
        except (ValueError, TypeError) as exc:
            return numpy_kind(kernel, exc)


class CRunner(_Runner):
    """symce.c through ctypes (a tests/c_build.py library: one build users make)."""

    lang = "c"

    def __init__(self, clib):
        self.clib = clib

    def _one(self, kernel, dtype, args, options):
        opts = dict(options)
        if opts.get("reduction") == BAD_REDUCTION:
            opts["reduction"] = 7  # no such symce_reduction
        bce = kr.kernel(kernel).family == "bce"
        if bce:  # C takes n*k element weights and k pos_weights: PyTorch broadcasts them
            shape = np.shape(args[0])
            for name, to in (("weight", shape), ("pos_weight", shape[-1:])):
                if opts.get(name) is not None and to:
                    try:
                        opts[name] = np.broadcast_to(np.asarray(opts[name]), to)
                    except ValueError:
                        pass  # a wrong shape: C has no shape errors (sizes are the caller's)
        try:
            out = outputs(kernel, self.clib.call(kernel, dtype, *args, **opts))
        except CError as exc:
            return c_kind(kernel, exc.code, self.clib.strerror(exc.code))
        if bce:  # C's n x k rows back in the input's shape
            out = tuple(v if v.ndim == 0 else v.reshape(np.shape(args[0])) for v in out)
        return out


class MatlabRunner(_Runner):
    """The generated MATLAB functions in one octave-cli per batch of calls."""

    lang = "matlab"

    def __init__(self, octave):
        self.octave = octave

    def expresses(self, kernel: str, args: tuple) -> bool:
        """MATLAB reads a vector of either orientation as one sample (docs/semantics.md), so a
        batch of N > 1 one-class samples of a kernel with a class axis has no MATLAB call."""
        shape = np.shape(args[0])
        return not (
            kr.kernel(kernel).inputs[0].shape == "(N, K)"
            and len(shape) == 2
            and shape[1] == 1
            and shape[0] > 1
        )

    def call_many(self, calls: list) -> list:
        """Each call's outcome, or None for a call MATLAB does not have (see expresses)."""
        batch = Batch()
        keys = []
        for kernel, _dtype, args, options in calls:
            if not self.expresses(kernel, args):
                keys.append(None)
                continue
            nout = len(kr.kernel(kernel).outputs)
            # labels as int32: never read as probabilities (K = 1)
            margs = matlab_args(batch, kernel, args, options, label_class=np.int32)
            keys.append(batch.call(f"symce_{kernel}({margs})", nout=nout))
        results = batch.run(self.octave)
        out = []
        for (kernel, _dtype, args, options), key in zip(calls, keys):
            if key is None:
                out.append(None)
                continue
            res = results[key]
            if res.error_id is not None or res.error_message is not None:
                out.append(matlab_kind(kernel, res.error_id, res.error_message))
                continue
            names = [o.name for o in kr.kernel(kernel).outputs]
            out.append(
                tuple(
                    np.asarray(
                        to_numpy_layout(
                            kernel,
                            v,
                            output=o,
                            reduction=options.get("reduction", "mean"),
                            shape=np.shape(args[0]),
                        )
                    )
                    for v, o in zip(res.values, names)
                )
            )
        return out


def for_language(lang: str) -> _Runner:
    """The runner of ``lang`` on this machine's resources, for a test module's fixture: the
    generated NumPy module, the default C build (tests/c_build.py), or octave-cli (skipped
    without it, failed when SYMCE_REQUIRE_OCTAVE=1)."""
    if lang == "matlab":
        return runner(lang, octave=support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE"))
    if lang == "c":
        return runner(lang, clib=library())
    return runner(lang)


def runner(lang: str, *, sk=None, clib=None, octave=None) -> _Runner:
    """The runner of ``lang`` (one of LANGUAGES), given its resource: the NumPy module (loaded
    from generated/ when None), a C library (tests/c_build.py) or the octave-cli path."""
    if lang == "numpy":
        return NumpyRunner(sk)
    if lang == "c":
        return CRunner(clib)
    if lang == "matlab":
        return MatlabRunner(octave)
    raise ValueError(f"lang: expected one of {LANGUAGES}, got {lang!r}")
