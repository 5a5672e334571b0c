"""tanh and its derivative, declared through symce's public API.

The engine finds tanh' = 1 - tanh^2 in tanh's own output.  The kernels evaluate the derivative as
4 sigma(2x) sigma(-2x), which equals it: 1 - tanh^2 cancels to nothing where |tanh| rounds to 1
(|x| > 19 in double), while the true value 4 e^{-2|x|} is still far above the smallest double.
"""

import sympy as sp

import symce

x = sp.Symbol("x", real=True)

symce.define_activation(
    "tanh",
    sp.tanh(x),
    summary="Hyperbolic tangent, elementwise.",
    grad_stable=4 * symce.sigmoid(2 * x) * symce.sigmoid(-2 * x),
    example=(-1.0, 0.0, 2.0),
)
