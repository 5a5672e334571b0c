"""Stage 1 — model: the definitions every other stage derives from.

Nothing here is a result. The sigmoid, softmax, log-softmax, logsumexp, the cross-entropies and
their compositions are written down once, as SymPy expressions, in two flavours:

* **general K** — the number of classes is the symbol ``K``; vectors are ``IndexedBase`` objects and
  sums are ``Sum(..., (k, 1, K))``.  This is what the proofs are about.
* **concrete K** — ``K`` is an integer and the vector components are plain symbols, which is what
  the tests use to check the general results for K = 2..16 and what the numeric references evaluate.

Output symbols (``p`` for softmax probabilities, ``s`` for the sigmoid value, ``S`` for the
partition sum) are *names* for sub-expressions; :data:`DEFINITIONS` records what each one stands
for, so that a closed form written in output symbols can always be unfolded back to the inputs.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import sympy as sp

# ----------------------------------------------------------------------------------------------
# Symbols.  Indices range over 1..K (classes) and 1..N (samples); every rewrite in
# :mod:`symce.rewrite` relies on that range assumption and says so where it uses it.
# ----------------------------------------------------------------------------------------------
K = sp.Symbol("K", integer=True, positive=True)
N = sp.Symbol("N", integer=True, positive=True)
i, j, k, n, m = sp.symbols("i j k n m", integer=True, positive=True)
t = sp.Symbol("t", integer=True, positive=True)  # an integer class label

theta = sp.Symbol("theta", real=True)  # a logit fed to the sigmoid
y_bin = sp.Symbol("y", real=True)  # binary target in [0, 1]
yhat = sp.Symbol("yhat", positive=True)  # predicted probability of the positive class
s = sp.Symbol("sigma", positive=True)  # output symbol: s = sigma(theta)
pos_weight = sp.Symbol("w_+", positive=True)  # weight of the positive term in BCE

z = sp.IndexedBase("z", real=True)  # logits of one sample
y = sp.IndexedBase("y", real=True)  # target distribution (one-hot or soft)
p = sp.IndexedBase("p", positive=True)  # output symbol: p_i = softmax(z)_i
S = sp.Symbol("S", positive=True)  # output symbol: S = sum_k exp(z_k)

Z = sp.IndexedBase("Z", real=True)  # batch logits, Z[n, k]
Y = sp.IndexedBase("Y", real=True)  # batch targets, Y[n, k]
P = sp.IndexedBase("P", positive=True)  # output symbol: P[n, k] = softmax(Z[n, :])_k
S_n = sp.IndexedBase("Srow", positive=True)  # output symbol: Srow[n] = sum_k exp(Z[n, k])


# ----------------------------------------------------------------------------------------------
# Definitions (general K).
# ----------------------------------------------------------------------------------------------
def partition_sum(logits: sp.IndexedBase = z, dummy: sp.Symbol = k) -> sp.Sum:
    """S = sum_{k=1}^{K} exp(z_k)."""
    return sp.Sum(sp.exp(logits[dummy]), (dummy, 1, K))


def sigmoid(t: sp.Expr = theta) -> sp.Expr:
    """sigma(t) = 1 / (1 + exp(-t))."""
    return 1 / (1 + sp.exp(-t))


def softmax(idx: sp.Expr | int = i, logits: sp.IndexedBase = z) -> sp.Expr:
    """p_idx = exp(z_idx) / sum_k exp(z_k)."""
    return sp.exp(logits[idx]) / partition_sum(logits)


def logsumexp(logits: sp.IndexedBase = z) -> sp.Expr:
    """log sum_k exp(z_k)."""
    return sp.log(partition_sum(logits))


def log_softmax(idx: sp.Expr | int = i, logits: sp.IndexedBase = z) -> sp.Expr:
    """log p_idx, written as the log of the softmax quotient (the proofs expand it)."""
    return sp.log(softmax(idx, logits))


def cross_entropy(
    probs: sp.IndexedBase = p, target: sp.IndexedBase = y, dummy: sp.Symbol = i
) -> sp.Expr:
    """L = -sum_i y_i log p_i  (one-hot or soft y)."""
    return -sp.Sum(target[dummy] * sp.log(probs[dummy]), (dummy, 1, K))


def cross_entropy_label(label: sp.Expr | int = i, logits: sp.IndexedBase = z) -> sp.Expr:
    """Integer-label form: L = -log p_label = -z_label + log sum_k exp(z_k)."""
    return -sp.log(softmax(label, logits))


def softmax_cross_entropy(
    logits: sp.IndexedBase = z, target: sp.IndexedBase = y, dummy: sp.Symbol = i
) -> sp.Expr:
    """CE o softmax: L(z) = -sum_i y_i log softmax(z)_i."""
    return -sp.Sum(target[dummy] * sp.log(softmax(dummy, logits)), (dummy, 1, K))


def binary_cross_entropy(prob: sp.Expr = yhat, target: sp.Expr = y_bin) -> sp.Expr:
    """BCE(yhat, y) = -(y log yhat + (1 - y) log(1 - yhat))."""
    return -(target * sp.log(prob) + (1 - target) * sp.log(1 - prob))


def weighted_binary_cross_entropy(
    prob: sp.Expr = yhat, target: sp.Expr = y_bin, w: sp.Expr = pos_weight
) -> sp.Expr:
    """BCE with a weight on the positive term: -(w y log yhat + (1 - y) log(1 - yhat))."""
    return -(w * target * sp.log(prob) + (1 - target) * sp.log(1 - prob))


def sigmoid_binary_cross_entropy(t: sp.Expr = theta, target: sp.Expr = y_bin) -> sp.Expr:
    """BCE o sigma, as a function of the logit."""
    return binary_cross_entropy(sigmoid(t), target)


def sigmoid_weighted_binary_cross_entropy(
    t: sp.Expr = theta, target: sp.Expr = y_bin, w: sp.Expr = pos_weight
) -> sp.Expr:
    """pos_weight-BCE o sigma, as a function of the logit."""
    return weighted_binary_cross_entropy(sigmoid(t), target, w)


def batch_softmax_cross_entropy(
    logits: sp.IndexedBase = Z,
    target: sp.IndexedBase = Y,
    n_dummy: sp.Symbol = n,
    k_dummy: sp.Symbol = i,
) -> sp.Expr:
    """Batch mean: L(Z) = (1/N) sum_n -sum_i Y[n,i] log softmax(Z[n,:])_i."""
    row_sum = sp.Sum(sp.exp(logits[n_dummy, k]), (k, 1, K))
    inner = -sp.Sum(
        target[n_dummy, k_dummy] * sp.log(sp.exp(logits[n_dummy, k_dummy]) / row_sum),
        (k_dummy, 1, K),
    )
    return sp.Sum(inner, (n_dummy, 1, N)) / N


# ----------------------------------------------------------------------------------------------
# Output symbols and what they stand for.  Unfolding replaces each by its definition.
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputSymbol:
    """A name for a sub-expression, e.g. ``p[a] := exp(z[a]) / S``."""

    symbol: object  # Symbol, or IndexedBase for an indexed family
    latex: str  # how the name reads in proofs
    meaning: str  # one line, for the proofs' glossary

    def unfold(self, expr: sp.Expr) -> sp.Expr:
        """Replace every occurrence of this name by its definition."""
        base = self.symbol
        if isinstance(base, sp.IndexedBase):
            return expr.replace(
                lambda e: isinstance(e, sp.Indexed) and e.base == base,
                lambda e: INDEXED_DEFS[base](*e.indices),
            )
        return expr.xreplace({base: SCALAR_DEFS[base]})


SCALAR_DEFS = {
    S: partition_sum(),
    s: sigmoid(),
}
INDEXED_DEFS = {
    p: lambda a: sp.exp(z[a]) / S,
    P: lambda a, b: sp.exp(Z[a, b]) / S_n[a],
    S_n: lambda a: sp.Sum(sp.exp(Z[a, k]), (k, 1, K)),
}

DEFINITIONS = (
    OutputSymbol(p, r"p_i", r"$p_i = e^{z_i} / S$, the softmax probabilities"),
    OutputSymbol(P, r"P_{n,i}", r"$P_{n,i} = e^{Z_{n,i}} / S_n$, the softmax of sample $n$"),
    OutputSymbol(S, r"S", r"$S = \sum_{k=1}^{K} e^{z_k}$, the partition sum"),
    OutputSymbol(
        S_n, r"S_n", r"$S_n = \sum_{k=1}^{K} e^{Z_{n,k}}$, the partition sum of sample $n$"
    ),
    OutputSymbol(s, r"\sigma", r"$\sigma = \sigma(\theta) = 1/(1 + e^{-\theta})$"),
)


def unfold(expr: sp.Expr, which: Collection[sp.Basic] | None = None) -> sp.Expr:
    """Replace output symbols (all, or those in ``which``) by their definitions, recursively."""
    defs = [d for d in DEFINITIONS if which is None or d.symbol in which]
    for _ in range(4):  # definitions nest at most P -> S_n -> Sum
        new = expr
        for d in defs:
            new = d.unfold(new)
        if new == expr:
            return new
        expr = new
    return expr


# ----------------------------------------------------------------------------------------------
# Concrete K: plain symbols, for the K = 2..16 checks and the numeric references.
# ----------------------------------------------------------------------------------------------
def concrete_logits(size: int, name: str = "z") -> tuple[sp.Symbol, ...]:
    """Symbols z_1..z_K (real)."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive integer number of classes, got {size!r}")
    return sp.symbols(f"{name}1:{size + 1}", real=True)
