"""focal_loss: the focal loss of logits (Lin et al., 2017), declared through symce's public API.

FL = alpha_t (1 - p_t)^gamma CE with p = sigma(x), p_t = p y + (1 - p)(1 - y),
alpha_t = alpha y + (1 - alpha)(1 - y) (1 for a negative alpha: no weighting) and CE the binary
cross-entropy of p: torchvision's ``sigmoid_focal_loss(inputs, targets, alpha, gamma)``,
elementwise, with symce's element weights and reductions.  gamma = 0 is the alpha-weighted binary
cross-entropy with logits.

As written, 1 - p_t and CE cancel as p_t -> 1.  The kernels evaluate them without cancellation:
1 - p_t = q = y sigma(-x) + (1 - y) sigma(x) (a sum of non-negative terms for y in [0, 1]) and
CE = y softplus(-x) + (1 - y) softplus(x).  The gradient, declared in those quantities and proved
equal to the derivative, alpha_t [q^gamma (sigma - y) + gamma (1 - 2y) CE sigma(x) sigma(-x)
q^(gamma - 1)], is evaluated as alpha_t q^gamma [(1 - y) sigma(x) - y sigma(-x) + gamma (1 - 2y) r]
with r = mul0(sigma(x) sigma(-x), CE) / max(q, 2^-1022): no q^(gamma - 1), which is infinite where
q underflows to 0 (p_t = 1 to the last bit, |x| > 745 with a 0/1 target), so gamma = 0 gives
exactly alpha_t times the binary cross-entropy's gradient, and the gradient is finite for every
finite logit (mul0: 0 times a CE near the float's maximum is 0, not NaN).
"""

import sympy as sp

import symce

x = sp.Symbol("x", real=True)  # the logit
y = sp.Symbol("y", real=True)  # the target in [0, 1]
gamma = sp.Symbol("gamma", real=True)
alpha = sp.Symbol("alpha", real=True)

# torchvision weights by alpha only where it is not negative (alpha = -1: no weighting)
alpha_t = symce.select(alpha >= 0, alpha * y + (1 - alpha) * (1 - y), 1)
# the binary cross-entropy of p, -(y log p + (1 - y) log(1 - p)), with logits (as torchvision's
# binary_cross_entropy_with_logits): -log sigma(x) = log(1 + exp(-x)), -log(1 - sigma(x)) = log(1 + exp(x))
ce = y * sp.log(1 + sp.exp(-x)) + (1 - y) * sp.log(1 + sp.exp(x))
# 1 - p_t = y (1 - p) + (1 - y) p with p = sigma(x), p_t = p y + (1 - p)(1 - y): q
q = y * symce.sigmoid(-x) + (1 - y) * symce.sigmoid(x)
ce_stable = y * symce.softplus(-x) + (1 - y) * symce.softplus(x)
# ce sigma(x) sigma(-x) / q, with q kept from 0: where q underflows (p_t = 1 to the last bit)
# sigma(x) sigma(-x) is 0 too, and the term is 0, not 0/0; mul0 makes it 0 also where ce is huge
# (|x| near the float's max: 0 * ce, in whichever order the product is printed, is not inf * 0)
ce_r = symce.mul0(symce.sigmoid(x) * symce.sigmoid(-x), ce_stable) / symce.clamp_min(
    q, sp.Float("2.2250738585072014e-308")
)

symce.define_loss(
    "focal_loss",
    alpha_t * q**gamma * ce,
    input=x,
    target=y,
    over="elements",
    options={
        "alpha": symce.option(0.25, high=1, doc="weight of the positive class (negative: none)"),
        "gamma": symce.option(2.0, low=0, doc="focusing exponent; 0 is the weighted BCE"),
    },
    stable=alpha_t * q**gamma * ce_stable,
    grad=sp.Symbol("alpha_t")
    * (
        sp.Symbol("q") ** gamma * (symce.sigmoid(x) - y)
        + gamma
        * (1 - 2 * y)
        * sp.Symbol("ce")
        * symce.sigmoid(x)
        * symce.sigmoid(-x)
        * sp.Symbol("q") ** (gamma - 1)
    ),
    where={"alpha_t": alpha_t, "q": q, "ce": ce},
    cases=(({"gamma": 0}, alpha_t * ce, "the alpha-weighted binary cross-entropy with logits"),),
    grad_stable=alpha_t
    * q**gamma
    * ((1 - y) * symce.sigmoid(x) - y * symce.sigmoid(-x) + gamma * (1 - 2 * y) * ce_r),
    input_name="input",
    input_doc="logits",
    summary="Focal loss of logits against binary targets, elementwise (as torchvision).",
    example=(((2.0, -1.0, 0.5),), ((1.0, 0.0, 1.0),), {"reduction": "none"}),
)
