"""softplus and its derivative, declared through symce's public API.

softplus(x) = log(1 + e^x) overflows for x > 709 in double as written; the kernels evaluate
symce.softplus, printed as max(x, 0) + log1p(e^{-|x|}).  The engine finds softplus' = sigma.
"""

import sympy as sp

import symce

x = sp.Symbol("x", real=True)

symce.define_activation(
    "softplus",
    sp.log(1 + sp.exp(x)),
    summary="Softplus log(1 + exp(x)), elementwise.",
    stable=symce.softplus(x),
    example=(-1.0, 0.0, 2.0),
)
