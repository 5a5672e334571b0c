"""Stage 6 — emission: one module per output language (and one for the proofs).

Each module has a printer (a SymPy printer subclass, or configuration of one) and a function
``outputs() -> list[symce.lang.base.Output]`` that turns the kernel registry into template
contexts of strings.  Adding a language is adding a module here, a folder in templates/, and its
line in :mod:`symce.lang.registry`.
"""
