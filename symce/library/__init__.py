"""The functions symce ships beyond its model, each declared in its own module through the public
API alone (:func:`symce.define_activation`), exactly as a user declares theirs: nothing in them
reaches into symce's internals.  :func:`symce.definitions.activations` imports them the first
time it is asked, so the registry, the proofs and generated/ include them.
"""

MODULES = ("tanh", "softplus", "log_sigmoid")
