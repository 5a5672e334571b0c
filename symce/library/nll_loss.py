"""nll_loss: the negative log-likelihood of log-probabilities, declared through symce's public API.

PyTorch's ``nll_loss(input, target)``: a row's loss is -input[t] for its label t, i.e. the sum
over the classes of -y~_k v_k with the one-hot target y~ (times the label's class weight).  The
row takes class labels (with ``weight``, ``ignore_index`` and ``reduction`` as PyTorch) or a
probability target per row, and ``label_smoothing`` as cross_entropy: so
``cross_entropy(logits, t)`` is ``nll_loss(log_softmax(logits), t)`` for every option.  The
engine derives the gradient -y~_k; a class without target adds nothing even where its
log-probability is -inf.
"""

import sympy as sp

import symce

v = sp.Symbol("v", real=True)  # the log-probability of a class
y = sp.Symbol("y", real=True)  # the class's effective target

symce.define_loss(
    "nll_loss",
    -y * v,
    input=v,
    target=y,
    over="classes",
    input_name="input",
    input_doc="log-probabilities, one row per sample",
    summary="Negative log-likelihood loss of log-probabilities against a target.",
    example=(((-1.2, -0.5, -2.3), (-0.1, -3.0, -2.5)), (1, 0)),
)
