"""symce — symbolic derivations of the sigmoid / softmax / cross-entropy family, SymPy-verified
proofs, and NumPy, C and MATLAB kernels generated from the closed forms.

Stages (data flows one way; each module's docstring starts with its stage):

1. model       — :mod:`symce.model`, :mod:`symce.functions`, :mod:`symce.definitions`: SymPy
   definitions (general K and concrete K), the functions the stable forms use, and the functions
   users declare through the public API (:func:`symce.define_activation`,
   :func:`symce.define_loss`; symce's own library of
   such declarations is :mod:`symce.library`)
2. derivation  — :mod:`symce.rewrite`, :mod:`symce.derive`: general-K rewriting and the engine
   that finds each closed form
3. proofs      — :mod:`symce.rules`, :mod:`symce.proof`, :mod:`symce.proofs`: step-by-step
   derivations, every step verified
4. numerics    — :mod:`symce.stable`, :mod:`symce.approx`: stable rewrites as symbolic passes, and
   the polynomial approximations the vectorised kernels evaluate
5. kernels     — :mod:`symce.kernels`, :mod:`symce.describe`, :mod:`symce.program`,
   :mod:`symce.reductions`, :mod:`symce.options`, :mod:`symce.errors`, :mod:`symce.examples`,
   :mod:`symce.names`: the kernel registry, the language-neutral description of each kernel
   (layout, variants, parameters, checks), the per-row programs of the loss kernels (a small IR
   every language prints), the loss reductions and the gradient's scale (SymPy, every language
   prints its helpers from them), the option records, the error catalogue, the worked examples
   (data) and the rules for the names printed into every language
6. emission    — :mod:`symce.lang` (printers and emitters per language, registered in
   :mod:`symce.lang.registry`), :mod:`symce.generate` (writes the files), :mod:`symce.pdf`,
   :mod:`symce.snippets` (one kernel with exactly the helpers it needs, `symce emit`)

Outside the pipeline: :mod:`symce.cli` (the command line) and verification, the tests' and
benchmarks' oracle: :mod:`symce.reference` (mpmath references) and :mod:`symce.ulp`, and
:mod:`symce.check` (`symce check`: a kernel against mpmath in every language present).
"""

__version__ = "0.1.0"

from . import kernels  # noqa: F401  (reserves its kernels' names for the definitions)
from .definitions import define_activation, define_loss, option, switch
from .functions import clamp_min, expm1, log1p, mul0, select, sigmoid, softplus

__all__ = [
    "clamp_min",
    "define_activation",
    "define_loss",
    "expm1",
    "log1p",
    "mul0",
    "option",
    "select",
    "sigmoid",
    "softplus",
    "switch",
]
