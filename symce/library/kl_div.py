"""kl_div: the Kullback-Leibler divergence of log-probabilities, declared through symce's public API.

PyTorch's ``kl_div(input, target, reduction, log_target)``: the pointwise KL term of a target
distribution y against the log-probabilities v, elementwise, with symce's element weights and
PyTorch's reductions, ``batchmean`` (the sum over the number of samples: the KL divergence
per sample) among them.  ``log_target`` says whether the target is given as probabilities
(y (log y - v)) or as log-probabilities l (e^l (l - v)).

An element without target mass adds nothing: 0 log 0 = 0 (PyTorch's xlogy), and a target of
probability 0 or log-target -inf times an input of -inf is 0 too, where PyTorch gives NaN.
The kernels evaluate it as PyTorch does, y log y - y v (e^l l - e^l v), each product by mul0
(0 times an infinite factor is 0; NaN stays NaN): y (log y - v) would be -inf + inf there.  A
negative target probability gives NaN, as in PyTorch (its log is not real).  The gradient with
respect to v is -y, or -e^l.
"""

import sympy as sp

import symce

v = sp.Symbol("v", real=True)  # the input: log-probabilities
y = sp.Symbol("y", real=True)  # the target: probabilities, or log-probabilities (log_target)
log_target = sp.Symbol("log_target", real=True)  # the switch

symce.define_loss(
    "kl_div",
    symce.select(log_target, sp.exp(y) * (y - v), y * (sp.log(y) - v)),
    input=v,
    target=y,
    over="elements",
    options={"log_target": symce.switch(False, doc="whether the target is log-probabilities")},
    # each product 0 where the target has no mass, whatever the input: (log y - v) would be
    # -inf + inf = NaN at y = 0, v = -inf (and y - v at a log-target and an input of -inf)
    stable=symce.select(
        log_target,
        symce.mul0(sp.exp(y), y) - symce.mul0(sp.exp(y), v),
        symce.mul0(y, sp.log(y)) - symce.mul0(y, v),
    ),
    reductions=("none", "mean", "sum", "batchmean"),
    input_doc="log-probabilities",
    summary="Kullback-Leibler divergence of log-probabilities from a target, elementwise (as PyTorch).",
    example=(((-1.2, -0.5, -2.3),), ((0.2, 0.7, 0.1),), {"reduction": "none"}),
)
