"""Stage 6 — emission: the emitters `make derive` runs, in order, by name.

An emitter is a module with ``outputs() -> list[Output]`` (:class:`symce.lang.base.Output`).
Adding a language is a module in :mod:`symce.lang`, a folder in templates/, and a line here.
"""

from __future__ import annotations

from types import ModuleType

from . import c_backend, latex, matlab_backend, numpy_backend

EMITTERS: dict[str, ModuleType] = {
    "latex": latex,  # the proofs (LaTeX and Markdown) and their figures
    "numpy": numpy_backend,
    "c": c_backend,
    "matlab": matlab_backend,
}
