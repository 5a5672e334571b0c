"""log_sigmoid and its derivative, declared through symce's public API.

log sigma(x) = -log(1 + e^{-x}) overflows for x < -709 in double as written, and log of a
rounded sigma loses everything for large x; the kernels evaluate -softplus(-x), stable for
x -> +-inf.  The engine finds the derivative 1 - sigma, which the stable rewrites evaluate as
sigma(-x).
"""

import sympy as sp

import symce

x = sp.Symbol("x", real=True)

symce.define_activation(
    "log_sigmoid",
    -sp.log(1 + sp.exp(-x)),
    summary="Log of the sigmoid, elementwise.",
    stable=-symce.softplus(-x),
    example=(-1.0, 0.0, 2.0),
)
