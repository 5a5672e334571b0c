"""Stage 6 — emission: what every emitter returns, and where the checkout keeps its outputs.

Emitters (:mod:`symce.lang.registry`) import this module; :mod:`symce.generate` imports the
registry.  Nothing here imports an emitter, so no import runs in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
GENERATED = ROOT / "generated"  # the checkout's generated/ (see symce.generate.default_out)


@dataclass(frozen=True)
class Part:
    """A piece of a file that its own template lays out: a kernel's body, whose template the
    emitter's config chooses (per family).  :mod:`symce.generate` renders every Part in a context
    first and hands the file's template the text, so no template includes a file by a name it
    is given."""

    template: str  # relative to templates/
    context: dict = field(default_factory=dict, hash=False)
    line: bool = False  # laid out as one item of a list of lines: without its final newline


@dataclass
class Output:
    """One generated file."""

    path: str  # relative to generated/, with forward slashes
    template: str  # relative to templates/
    context: dict = field(default_factory=dict)
