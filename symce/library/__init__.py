"""The functions symce ships beyond its model, each declared in its own module through the public
API alone (:func:`symce.define_activation`, :func:`symce.define_loss`), exactly as a user declares
theirs: nothing in them reaches into symce's internals, and shipping one more is adding its module
here (no list to edit).  :mod:`symce.definitions` imports them the first time it is asked and
orders their declarations by module, so the registry, the proofs and generated/ include them, the
same whatever order they were imported in.
"""

import pkgutil


def modules() -> list:
    """The names of the library's modules, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__))
