"""symce — symbolic derivations of the sigmoid / softmax / cross-entropy family, SymPy-verified
proofs, and NumPy, C and MATLAB kernels generated from the closed forms.

Stages (one module each, data flows one way):

1. :mod:`symce.model`     — SymPy definitions (general K and concrete K)
2. :mod:`symce.rewrite`, :mod:`symce.derive` — general-K rewriting and the derivation engine
3. :mod:`symce.proof`, :mod:`symce.proofs` — step-by-step derivations, every step verified
4. :mod:`symce.stable`    — numerically stable rewrites as symbolic passes
5. :mod:`symce.kernels`   — the kernel registry (data)
6. :mod:`symce.lang`      — printers and emitters per language; :mod:`symce.generate` writes files
"""

__version__ = "0.1.0"
