"""The functions symce ships beyond its model, each declared in its own module through the public
API alone (:func:`symce.define_activation`), exactly as a user declares theirs: nothing in them
reaches into symce's internals, and shipping one more is adding its module here (no list to
edit).  :func:`symce.definitions.activations` imports them, in the order of their names, the
first time it is asked, so the registry, the proofs and generated/ include them.
"""

import pkgutil


def modules() -> list:
    """The names of the library's modules, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__))
