"""Stage 3 — proofs: the derivations symce publishes, step by step, in the order the seed articles take.

Every step below is a claim ``expr = previous expr`` with the rules that justify it; nothing here is
trusted: :func:`symce.proof.verify` checks each one (general K symbolically, numerically at 40
digits for several (N, K) with N != K, and that the step *is* an application of the rules it names),
and the last step of each proof must equal the closed form the derivation engine found on its own
(:mod:`symce.derive`).  Where a seed article has a mistake, the proof follows the mathematics and the
text names the seed and the mistake.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from functools import cache
from typing import Any

import mpmath
import sympy as sp

from . import definitions, rewrite
from . import functions as fn
from . import model as m
from . import rules as R
from .proof import Condition, Fact, Proof, Step, verify
from .rewrite import D as rewrite_D
from .rewrite import d as rewrite_d
from .rewrite import e as rewrite_e

D = sp.Derivative


def cite(proof_name: str, rename: tuple = ()) -> R.Rule:
    """The rule "result of ``proof_name``" (its closed form replaces its derivative)."""
    return R.cite(proof_name, statement, rename)


def M(*args: sp.Expr | int) -> sp.Expr:
    """A product kept as written (for the display of a step)."""
    return sp.Mul(*args, evaluate=False)


def A(*args: sp.Expr | int) -> sp.Expr:
    """A sum kept as written."""
    return sp.Add(*args, evaluate=False)


def Neg(arg: sp.Expr) -> sp.Expr:
    """-(arg), kept as written (SymPy would distribute the sign over a sum)."""
    return sp.Mul(-1, arg, evaluate=False)


def St(expr: sp.Expr, *rules: R.Rule, note: str = "", **kw: Any) -> Step:
    """A step: its expression, the rules that justify it, an optional note (LaTeX)."""
    return Step(expr, note, rules=tuple(rules), **kw)


z, y, p, S, K = m.z, m.y, m.p, m.S, m.K
i, j, k, n, t, mm = m.i, m.j, m.k, m.n, m.t, m.m
SIGMA = m.partition_sum()  # sum_{k=1}^K e^{z_k}
delta_ij = sp.KroneckerDelta(i, j)
delta_tj = sp.KroneckerDelta(t, j)

CASE_I_EQ_J = Condition(r"i = j", "i = j", bind={j: i})
CASE_I_NE_J = Condition(r"i \neq j", "i ≠ j", zero=(delta_ij,), distinct=((i, j),))
CASE_J_EQ_T = Condition(r"j = t", "j = t", bind={j: t})
CASE_J_NE_T = Condition(r"j \neq t", "j ≠ t", zero=(delta_tj,), distinct=((j, t),))
Y_SUMS_TO_ONE = Condition(
    r"\sum_{i=1}^{K} y_i = 1",
    "Σ_i y_i = 1 (a one-hot or probability target)",
    sums_to_one=((y, 0, ()),),
)
BATCH_Y_SUMS_TO_ONE = Condition(
    r"\sum_{k=1}^{K} Y_{m,k} = 1", "Σ_k Y_mk = 1 for every sample m", sums_to_one=((m.Y, 1, (mm,)),)
)

ytilde = sp.IndexedBase(r"ytilde", real=True)
wc = sp.IndexedBase("w", positive=True)
eps = sp.Symbol(r"epsilon", nonnegative=True)
EFFECTIVE_TARGET = Condition(
    r"\tilde{y}_k = (1 - \varepsilon)\, w_t\, \delta_{tk} + \varepsilon\, w_k / K",
    "ỹ_k = (1 − ε) w_t δ_tk + ε w_k / K (integer label t, class weights w, smoothing ε)",
    define={ytilde: lambda a: (1 - eps) * wc[t] * sp.KroneckerDelta(t, a) + eps * wc[a] / K},
)
UNIT_WEIGHTS = Condition(r"w_k = 1", "w_k = 1 (no class weights)", define={wc: lambda a: 1})

# the losses, written in the output symbols (the checker unfolds p, S, sigma)
CE_OF_P = -sp.Sum(y[i] * sp.log(p[i]), (i, 1, K))


def _sigmoid():
    th = m.theta
    e = sp.exp(-th)
    s = m.s
    return Proof(
        "sigmoid_grad",
        "Derivative of the sigmoid",
        r"\frac{d\sigma}{d\theta}",
        (
            St(D(1 / (1 + e), th), R.DEFINITION),
            St(
                M(-1, (1 + e) ** -2, D(1 + e, th)),
                R.CHAIN,
                note=r"\frac{d}{d\theta} u^{-1} = -u^{-2} \frac{du}{d\theta}",
            ),
            St(
                e / (1 + e) ** 2,
                R.LIN,
                R.D_EXP,
                note=r"\frac{d}{d\theta} e^{-\theta} = -e^{-\theta}",
            ),
            St(M(1 / (1 + e), e / (1 + e)), R.ALGEBRA, note=r"\text{split the fraction}"),
            St(
                M(1 / (1 + e), A(1, -1 / (1 + e))),
                R.ALGEBRA,
                note=r"\frac{e^{-\theta}}{1 + e^{-\theta}} = 1 - \frac{1}{1 + e^{-\theta}}",
            ),
            St(M(s, A(1, -s)), R.subst(s, latex=r"\sigma = \frac{1}{1 + e^{-\theta}}")),
        ),
        result="sigmoid_grad",
        defs=(s,),
        claim=D(s, th),
        intro=r"Let $\sigma(\theta) = \frac{1}{1 + e^{-\theta}}$, the logistic sigmoid, which maps "
        r"a score $\theta$ to a probability (the proofs write the score $\theta$ and a "
        r"predicted probability $\hat{y}$; the kernels' arguments are $x$ and $p$). Then:",
        outro=r"So $\sigma' = \sigma(1 - \sigma)$: the derivative needs only the forward value.",
        sources="seeds 000 and 001",
    )


def _softmax_jacobian():
    ez_i, ez_j = sp.exp(z[i]), sp.exp(z[j])
    return Proof(
        "softmax_jacobian",
        "Jacobian of the softmax",
        r"\frac{\partial p_i}{\partial z_j}",
        (
            St(D(ez_i / SIGMA, z[j]), R.DEFINITION),
            St(M(A(M(D(ez_i, z[j]), SIGMA), M(-1, ez_i, D(SIGMA, z[j]))), SIGMA**-2), R.QUOTIENT),
            St(
                M(A(M(delta_ij, ez_i, SIGMA), M(-1, ez_i, ez_j)), SIGMA**-2),
                R.LIN,
                R.D_EXP,
                R.SIFT,
                note=r"\frac{\partial e^{z_i}}{\partial z_j} = \delta_{ij} e^{z_i},\ "
                r"\frac{\partial}{\partial z_j}\sum_k e^{z_k} = e^{z_j}",
            ),
            St(
                A(M(delta_ij, ez_i / S), -M(ez_i / S, ez_j / S)),
                R.subst(S, latex=r"S = \sum_k e^{z_k}"),
                note=r"\text{divide through by } S^2",
            ),
            St(A(M(delta_ij, p[i]), -M(p[i], p[j])), R.subst(p, latex=r"p_a = e^{z_a}/S")),
            St(
                A(p[i], -(p[i] ** 2)),
                R.CASE,
                given=(CASE_I_EQ_J,),
                block=r"Case $i = j$",
                note=r"\delta_{ii} = 1",
            ),
            St(M(p[i], A(1, -p[i])), R.ALGEBRA, note=r"\text{factor}"),
            St(
                -M(p[i], p[j]),
                R.CASE,
                ref=4,
                given=(CASE_I_NE_J,),
                block=r"Case $i \neq j$",
                note=r"\delta_{ij} = 0",
            ),
            St(
                M(p[i], A(delta_ij, -p[j])),
                R.ALGEBRA,
                ref=4,
                block="Both cases",
                note=r"\text{factor } p_i",
            ),
        ),
        result="softmax_jacobian",
        defs=(p, S),
        claim=D(p[i], z[j]),
        intro=r"Let $p = \operatorname{softmax}(z)$, $p_i = e^{z_i} / \sum_{k=1}^{K} e^{z_k}$, "
        r"for any number of classes $K$ and indices $1 \le i, j \le K$. Then:",
        outro=r"On the diagonal $p_i(1 - p_i)$, off it $-p_i p_j$: "
        r"$J = \operatorname{diag}(p) - p p^\top$. Seed 001 (eq. 10) writes "
        r"$-\frac{e^{z_i} e^{z_j}}{S^2} = \delta_{ij} p_i - p_i p_j$; the left-hand side is "
        r"only the case $i \neq j$, the right-hand side is right for both.",
        sources="seeds 000, 001 and 004",
    )


def _log_sum_exp_route():
    return Proof(
        "cross_entropy_label_grad",
        "Integer-label cross-entropy through log-sum-exp",
        r"\frac{\partial L}{\partial z_j}",
        (
            St(D(-sp.log(sp.exp(z[t]) / SIGMA), z[j]), R.DEFINITION),
            St(
                D(A(-z[t], sp.log(SIGMA)), z[j]),
                R.ALGEBRA,
                note=r"\log\frac{a}{b} = \log a - \log b,\ \log e^{z_t} = z_t",
            ),
            St(A(-D(z[t], z[j]), M(1 / SIGMA, D(SIGMA, z[j]))), R.LIN, R.D_LOG),
            St(
                A(-delta_tj, sp.exp(z[j]) / SIGMA),
                R.LIN,
                R.D_VAR,
                R.D_EXP,
                R.SIFT,
                note=r"\frac{\partial z_t}{\partial z_j} = \delta_{tj},\ "
                r"\frac{\partial}{\partial z_j}\sum_k e^{z_k} = e^{z_j}",
            ),
            St(A(p[j], -delta_tj), R.subst(p, S, latex=r"p_j = e^{z_j} / \sum_k e^{z_k}")),
            St(
                A(p[t], -1),
                R.CASE,
                given=(CASE_J_EQ_T,),
                block=r"Case $j = t$",
                note=r"\delta_{tt} = 1",
            ),
            St(
                p[j],
                R.CASE,
                ref=4,
                given=(CASE_J_NE_T,),
                block=r"Case $j \neq t$",
                note=r"\delta_{tj} = 0",
            ),
        ),
        result="cross_entropy_label_grad",
        defs=(p, S),
        intro=r"Let $L = -\log p_t = -z_t + \log\sum_{k=1}^{K} e^{z_k}$, the loss of a sample "
        r"whose true class is $t$ (the one-hot target selects one term). Then:",
        outro=r"So $\nabla_z L = p - e_t$: the true class's logit gets $p_t - 1 \le 0$ and every "
        r"other logit $p_j > 0$. Seed 003 claims the gradient is $0$ for the wrong classes "
        r"($j \neq t$); it is $p_j$, because $p_t$ depends on every logit through the sum. "
        r"Seed 002's example: logits $(1, 2, 0.5)$, true class 1 (0-based), gives "
        r"$L = 0.464368784\ldots$; the seed's $0.462$ comes from rounding $p_1$ to $0.63$ first.",
        sources="seeds 002 and 003",
    )


def _ce_wrt_probabilities():
    return Proof(
        "cross_entropy_grad",
        "Cross-entropy with respect to the probabilities",
        r"\frac{\partial L}{\partial p_j}",
        (
            St(D(m.cross_entropy(), p[j]), R.DEFINITION),
            St(-sp.Sum(M(y[i], D(sp.log(p[i]), p[j])), (i, 1, K)), R.LIN),
            St(
                -sp.Sum(M(y[i], delta_ij / p[i]), (i, 1, K)),
                R.D_LOG,
                note=r"\frac{\partial \log p_i}{\partial p_j} = \frac{\delta_{ij}}{p_i}",
            ),
            St(-y[j] / p[j], R.SIFT, note=r"\text{only } i = j \text{ remains}"),
        ),
        result="cross_entropy_grad",
        defs=(),
        claim=D(CE_OF_P, p[j]),
        intro=r"Let $L = -\sum_{i=1}^{K} y_i \log p_i$, with the probabilities $p$ as the "
        r"variables (no softmax yet). Then:",
        sources="seed 001 (eq. 19)",
    )


def _softmax_cross_entropy():
    dp = M(p[i], A(delta_ij, -p[j]))
    return Proof(
        "softmax_cross_entropy_grad",
        "Cross-entropy of the softmax: the chain rule over all classes",
        r"\frac{\partial L}{\partial z_j}",
        (
            St(D(CE_OF_P, z[j]), R.DEFINITION),
            St(-sp.Sum(M(y[i], D(sp.log(p[i]), z[j])), (i, 1, K)), R.LIN),
            St(
                -sp.Sum(M(y[i] / p[i], D(p[i], z[j])), (i, 1, K)),
                R.CHAIN,
                note=r"\text{through every } p_i:\ \frac{\partial L}{\partial p_i} = "
                r"-\frac{y_i}{p_i}",
            ),
            St(-sp.Sum(M(y[i] / p[i], dp), (i, 1, K)), cite("softmax_jacobian")),
            St(
                sp.Sum(A(-M(y[i], delta_ij), M(y[i], p[j])), (i, 1, K)),
                R.LIN,
                R.ALGEBRA,
                note=r"p_i \text{ cancels}",
            ),
            St(
                A(-y[j], M(p[j], sp.Sum(y[i], (i, 1, K)))),
                R.SIFT,
                note=r"\sum_i y_i \delta_{ij} = y_j",
            ),
            St(
                A(p[j], -y[j]),
                R.ASSUME,
                given=(Y_SUMS_TO_ONE,),
                note=r"\text{(one-hot or probability target)}",
            ),
        ),
        result="softmax_cross_entropy_grad",
        defs=(p, S),
        claim=D(CE_OF_P, z[j]),
        intro=r"Let $L = -\sum_{i=1}^{K} y_i \log p_i$ with $p = \operatorname{softmax}(z)$. "
        r"Every $p_i$ depends on every $z_j$, so the chain rule sums over all $i$:",
        outro=r"$\nabla_z L = p - y$ (predicted minus target). Seed 001 (eq. 22-4) writes "
        r"$y - \hat{y}$, the negative gradient. Without $\sum_i y_i = 1$ the gradient is "
        r"$p_j \sum_i y_i - y_j$, which symce's kernels compute (weights and label smoothing "
        r"need it).",
        sources="seeds 001, 003 and 004",
    )


def _log_softmax():
    return Proof(
        "log_softmax_jacobian",
        "Jacobian of the log-softmax",
        r"\frac{\partial \log p_i}{\partial z_j}",
        (
            St(D(sp.log(sp.exp(z[i]) / SIGMA), z[j]), R.DEFINITION),
            St(
                D(A(z[i], -sp.log(SIGMA)), z[j]),
                R.ALGEBRA,
                note=r"\log\frac{e^{z_i}}{S} = z_i - \log S",
            ),
            St(A(delta_ij, -M(1 / SIGMA, D(SIGMA, z[j]))), R.LIN, R.D_VAR, R.D_LOG),
            St(A(delta_ij, -sp.exp(z[j]) / SIGMA), R.LIN, R.D_EXP, R.SIFT),
            St(A(delta_ij, -p[j]), R.subst(p, S, latex=r"p_j = e^{z_j}/S")),
        ),
        result="log_softmax_jacobian",
        defs=(p, S),
        claim=D(sp.log(p[i]), z[j]),
        intro=r"Let $\log p_i = z_i - \log\sum_{k=1}^{K} e^{z_k}$. Then:",
        outro=r"In particular $\frac{\partial}{\partial z_j}\log\sum_k e^{z_k} = p_j$: "
        r"the gradient of log-sum-exp is the softmax.",
        sources="seed 002",
    )


def _logsumexp():
    return Proof(
        "logsumexp_grad",
        "Gradient of log-sum-exp",
        r"\frac{\partial}{\partial z_j}\log\sum_k e^{z_k}",
        (
            St(D(sp.log(SIGMA), z[j]), R.DEFINITION),
            St(M(1 / SIGMA, D(SIGMA, z[j])), R.D_LOG),
            St(sp.exp(z[j]) / SIGMA, R.LIN, R.D_EXP, R.SIFT),
            St(p[j], R.subst(p, S, latex=r"p_j = e^{z_j}/S")),
        ),
        result="logsumexp_grad",
        defs=(p, S),
        intro=r"Let $\operatorname{lse}(z) = \log\sum_{k=1}^{K} e^{z_k}$. Then:",
        sources="seed 002",
    )


def _bce():
    yh, yb = m.yhat, m.y_bin
    return Proof(
        "binary_cross_entropy_grad",
        "Binary cross-entropy with respect to the probability",
        r"\frac{\partial L}{\partial \hat{y}}",
        (
            St(D(m.binary_cross_entropy(), yh), R.DEFINITION),
            St(
                Neg(A(yb / yh, -(1 - yb) / (1 - yh))),
                R.LIN,
                R.D_LOG,
                note=r"\frac{d \log\hat{y}}{d\hat{y}} = \frac{1}{\hat{y}},\ "
                r"\frac{d \log(1 - \hat{y})}{d\hat{y}} = -\frac{1}{1 - \hat{y}}",
            ),
            St(
                M(A(-M(yb, 1 - yh), M(1 - yb, yh)), 1 / M(yh, 1 - yh)),
                R.ALGEBRA,
                note=r"\text{common denominator}",
            ),
            St(
                M(A(yh, -yb), 1 / M(yh, 1 - yh)),
                R.ALGEBRA,
                note=r"-y + y\hat{y} + \hat{y} - y\hat{y} = \hat{y} - y",
            ),
        ),
        result="binary_cross_entropy_grad",
        defs=(),
        intro=r"Let $L = -(y \log\hat{y} + (1 - y)\log(1 - \hat{y}))$, the binary cross-entropy of "
        r"a predicted probability $\hat{y}$ (the kernels' $p$) against a target "
        r"$y \in [0, 1]$. Then:",
        outro=r"$L' = \frac{\hat{y} - y}{\hat{y}(1 - \hat{y})}$; it is unbounded as $\hat{y} \to 0$ "
        r"or $1$, which is why the kernels on logits (next) are preferred.",
        sources="seeds 000 and 001 (eq. 15)",
    )


def _sigmoid_bce():
    s, yb, th = m.s, m.y_bin, m.theta
    L = Neg(A(M(yb, sp.log(s)), M(1 - yb, sp.log(1 - s))))
    return Proof(
        "sigmoid_binary_cross_entropy_grad",
        "Binary cross-entropy of the sigmoid",
        r"\frac{\partial L}{\partial \theta}",
        (
            St(D(L, th), R.DEFINITION),
            St(
                Neg(A(M(yb / s, D(s, th)), M((1 - yb) / (1 - s), D(1 - s, th)))),
                R.LIN,
                R.CHAIN,
                note=r"\text{through } \hat{y} = \sigma(\theta)",
            ),
            St(
                Neg(A(M(yb / s, s, 1 - s), -M((1 - yb) / (1 - s), s, 1 - s))),
                R.LIN,
                cite("sigmoid_grad"),
                note=r"\sigma' = \sigma(1 - \sigma)",
            ),
            St(A(s, -yb), R.ALGEBRA, note=r"\sigma(1 - \sigma) \text{ cancels}"),
        ),
        result="sigmoid_binary_cross_entropy_grad",
        defs=(s,),
        intro=r"Let $L = -(y \log\sigma + (1 - y)\log(1 - \sigma))$ with "
        r"$\sigma = \sigma(\theta)$: the binary cross-entropy of the predicted probability $\hat{y} = \sigma(\theta)$. "
        r"Then:",
        outro=r"$\frac{\partial L}{\partial \theta} = \sigma(\theta) - y$: bounded, and the "
        r"unbounded factors of the previous derivation cancel exactly.",
        sources="seeds 000 and 001",
    )


def _sigmoid_weighted_bce():
    s, yb, th, wp = m.s, m.y_bin, m.theta, m.pos_weight
    L = Neg(A(M(wp, yb, sp.log(s)), M(1 - yb, sp.log(1 - s))))
    return Proof(
        "sigmoid_weighted_binary_cross_entropy_grad",
        "Binary cross-entropy of the sigmoid with a positive-class weight",
        r"\frac{\partial L}{\partial \theta}",
        (
            St(D(L, th), R.DEFINITION),
            St(
                Neg(A(M(wp * yb / s, D(s, th)), M((1 - yb) / (1 - s), D(1 - s, th)))),
                R.LIN,
                R.CHAIN,
            ),
            St(
                Neg(A(M(wp, yb, 1 - s), -M(1 - yb, s))),
                R.LIN,
                cite("sigmoid_grad"),
                note=r"\sigma' = \sigma(1 - \sigma)",
            ),
            St(A(M(1 - yb, s), -M(wp, yb, 1 - s)), R.ALGEBRA, note=r"\text{expand the sign}"),
        ),
        result="sigmoid_weighted_binary_cross_entropy_grad",
        defs=(s,),
        intro=r"Let $L = -(w_{+} y \log\sigma + (1 - y)\log(1 - \sigma))$ with "
        r"$\sigma = \sigma(\theta)$ (PyTorch's positive-class weight $w_{+}$). Then:",
        outro=r"With $w_{+} = 1$ this is $\sigma - y$. The kernels evaluate it as "
        r"$(1 - y)\sigma(\theta) - w_{+} y\,\sigma(-\theta)$ ($1 - \sigma(\theta) = "
        r"\sigma(-\theta)$), which never subtracts two numbers close to 1.",
        sources="PyTorch's BCE with logits (pos-weight option)",
    )


def _weighted_target():
    L = -sp.Sum(ytilde[i] * sp.log(p[i]), (i, 1, K))
    sum_yt = sp.Sum(ytilde[k], (k, 1, K))
    yt_def = lambda a: A(M(1 - eps, wc[t], sp.KroneckerDelta(t, a)), M(eps, wc[a], 1 / K))
    return Proof(
        "weighted_target",
        "Class weights and label smoothing change $y$ into an effective target",
        r"\frac{\partial L}{\partial z_j}",
        (
            St(D(L, z[j]), R.DEFINITION),
            St(
                A(M(p[j], sum_yt), -ytilde[j]),
                cite("softmax_cross_entropy_grad", rename=((y, ytilde),)),
                note=r"\text{without assuming } \sum_k \tilde{y}_k = 1",
            ),
            St(
                A(M(p[j], sp.Sum(yt_def(k), (k, 1, K))), -yt_def(j)),
                R.ASSUME,
                given=(EFFECTIVE_TARGET,),
                block=r"Integer label $t$, class weights $w$, smoothing $\varepsilon$",
            ),
            St(
                A(M(p[j], A(M(1 - eps, wc[t]), M(eps / K, sp.Sum(wc[k], (k, 1, K))))), -yt_def(j)),
                R.SIFT,
                note=r"\sum_k \delta_{tk} = 1",
            ),
            St(
                A(p[j], -A(M(1 - eps, delta_tj), eps / K)),
                R.ASSUME,
                R.LIN,
                note=r"\sum_k \tilde{y}_k = (1 - \varepsilon) + \varepsilon = 1",
                given=(UNIT_WEIGHTS,),
                block=r"Without class weights ($w_k = 1$)",
            ),
        ),
        result=None,
        defs=(p, S),
        intro=r"PyTorch's class weights and label smoothing only change the target: "
        r"$\tilde{y}_k = w_k((1-\varepsilon) y_k + \varepsilon / K)$ for a probability "
        r"target, $\tilde{y}_k = (1 - \varepsilon) w_t [k = t] + \varepsilon w_k / K$ for "
        r"an integer label $t$. Let $L = -\sum_i \tilde{y}_i \log p_i$. Then:",
        outro=r"So every kernel computes $p_j \sum_k \tilde{y}_k - \tilde{y}_j$; with "
        r"the mean reduction the sum over samples is divided by $\sum_n w_{t_n}$ "
        r"(integer labels) or $N$ (probability targets).",
        sources="PyTorch's cross-entropy options",
    )


def _batch():
    Zb, Yb, Pb = m.Z, m.Y, m.P
    row = sp.Sum(sp.exp(Zb[n, k]), (k, 1, K))
    ce_n = -sp.Sum(Yb[n, i] * sp.log(sp.exp(Zb[n, i]) / row), (i, 1, K))
    dn = sp.KroneckerDelta(mm, n)
    row_grad = M(dn, A(M(Pb[n, j], sp.Sum(Yb[n, k], (k, 1, K))), -Yb[n, j]))
    return Proof(
        "batch_softmax_cross_entropy_grad",
        "The batch: mean cross-entropy over $N$ samples",
        r"\frac{\partial L}{\partial Z_{m,j}}",
        (
            St(D(m.batch_softmax_cross_entropy(), Zb[mm, j]), R.DEFINITION),
            St(M(1 / m.N, sp.Sum(D(ce_n, Zb[mm, j]), (n, 1, m.N))), R.LIN),
            St(
                M(1 / m.N, sp.Sum(row_grad, (n, 1, m.N))),
                R.lemma(D(ce_n, Zb[mm, j]), row_grad),
                note=r"L_n \text{ depends on row } n \text{ only; the single-sample result}",
            ),
            St(
                M(1 / m.N, A(M(Pb[mm, j], sp.Sum(Yb[mm, k], (k, 1, K))), -Yb[mm, j])),
                R.SIFT,
                note=r"\text{only } n = m \text{ remains}",
            ),
            St(M(1 / m.N, A(Pb[mm, j], -Yb[mm, j])), R.ASSUME, given=(BATCH_Y_SUMS_TO_ONE,)),
        ),
        result="batch_softmax_cross_entropy_grad",
        defs=(Pb, m.S_n),
        intro=r"Stack the logits of $N$ samples as the rows of $Z \in \mathbb{R}^{N \times K}$ "
        r"and the targets as $Y$. Let $L = \frac{1}{N}\sum_{n=1}^{N} L_n$ with "
        r"$L_n = -\sum_i Y_{n,i}\log P_{n,i}$, $P_{n,:} = \operatorname{softmax}(Z_{n,:})$. "
        r"Then:",
        outro=r"In matrix form $\nabla_Z L = \frac{1}{N}(P - Y)$ with $P$ the row-wise softmax of "
        r"$Z$ (the batch section seed 001 promised and left unwritten).",
        sources="seed 001 (section 6)",
    )


# ---- the seeds' remaining derivations ----------------------------------------------------------
def _softmax_two_classes():
    z1, z2 = z[1], z[2]
    p1 = sp.Symbol("p_1", positive=True)
    sig12 = sp.Symbol("sigma_z12", positive=True)  # printed sigma(z_1 - z_2)
    return Proof(
        "softmax_two_classes",
        "Two classes: the softmax is the sigmoid of the logit difference",
        r"p_1",
        (
            St(
                sp.exp(z1) / A(sp.exp(z1), sp.exp(z2)),
                R.subst(p1, latex=r"p_1 = \frac{e^{z_1}}{\sum_{k=1}^{2} e^{z_k}}"),
                lhs=p1,
            ),
            St(
                1 / A(1, sp.exp(A(z2, -z1))),
                R.ALGEBRA,
                note=r"\text{divide above and below by } e^{z_1}",
            ),
            St(1 / A(1, sp.exp(Neg(A(z1, -z2)))), R.ALGEBRA),
            St(sig12, R.subst(sig12, latex=r"\sigma(u) = \frac{1}{1 + e^{-u}}")),
            St(
                A(1, -sp.exp(z2) / A(sp.exp(z1), sp.exp(z2))),
                R.subst(p1),
                R.ALGEBRA,
                lhs=p1,
                block=r"The other class",
                note=r"p_1 = 1 - p_2",
            ),
        ),
        result=None,
        defs=(),
        let=((p1, sp.exp(z1) / (sp.exp(z1) + sp.exp(z2))), (sig12, 1 / (1 + sp.exp(-(z1 - z2))))),
        intro=r"Let $K = 2$ and $p = \operatorname{softmax}(z_1, z_2)$. Then:",
        outro=r"So with two classes the softmax is the sigmoid of the difference of the logits, "
        r"$p_1 = \sigma(z_1 - z_2)$ and $p_2 = 1 - p_1 = \sigma(z_2 - z_1)$: the binary "
        r"kernels are the $K = 2$ case of the softmax ones, with $\theta = z_1 - z_2$ "
        r"(seed 001, eqs. 4--6).",
        sources="seed 001 (eqs. 4--6)",
    )


class Sigmoid(sp.Function):
    """sigma(u) = 1/(1 + e^{-u}), differentiated by the result of the first proof,
    sigma' = sigma (1 - sigma), so that SymPy keeps the algebra in sigma instead of expanding
    exponentials (the proof checks that rule against the definition: a side condition)."""

    nargs = 1
    is_positive = True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        """sigma' = sigma (1 - sigma), the rule the proof checks."""
        return self * (1 - self)

    def definition(self) -> sp.Expr:
        """1/(1 + e^{-u}), written out."""
        return 1 / (1 + sp.exp(-self.args[0]))

    def _latex(self, printer):
        return r"\sigma\left(" + printer._print(self.args[0]) + r"\right)"

    def _symce_plain(self, printer):
        return "σ(" + printer._print(self.args[0]) + ")"


@cache
def _check_sigmoid_rule():
    """Sigmoid's derivative rule is the derivative of its definition (symbolically and at
    40 digits at a few points)."""
    u = sp.Symbol("u", real=True)
    rule = sp.diff(Sigmoid(u), u).xreplace({Sigmoid(u): Sigmoid(u).definition()})
    exact = sp.diff(Sigmoid(u).definition(), u)
    ok = sp.cancel(sp.together(rule - exact)) == 0
    with mpmath.workdps(40):
        f = sp.lambdify(u, Sigmoid(u).definition(), "mpmath")
        g = sp.lambdify(u, rule, "mpmath")
        worst = max(abs(mpmath.diff(f, x) - g(x)) for x in (-7, -1.5, 0, 0.3, 4))
    return (
        ok and worst < mpmath.mpf(10) ** -30,
        f"d/du 1/(1 + e^-u) = sigma(u)(1 - sigma(u)); numeric difference {mpmath.nstr(worst, 3)}",
    )


SIGMOID_RULE = Fact(
    r"SymPy differentiates $\sigma$ by $\sigma' = \sigma(1 - \sigma)$ "
    r"(\S\ref{sec:sigmoid_grad}); checked against the derivative of "
    r"$1/(1 + e^{-u})$",
    _check_sigmoid_rule,
    "sigmoid derivative rule",
)


def _multilabel_bce():
    sg = sp.IndexedBase("sigma", positive=True)  # sigma_i = sigma(z_i), one per class
    bce_i = Neg(A(M(y[i], sp.log(sg[i])), M(1 - y[i], sp.log(1 - sg[i]))))
    coef = lambda a: A(y[a] / sg[a], -(1 - y[a]) / (1 - sg[a]))
    return Proof(
        "multilabel_binary_cross_entropy_grad",
        "Multi-label cross-entropy: a binary cross-entropy per class",
        r"\frac{\partial L}{\partial z_j}",
        (
            St(D(sp.Sum(bce_i, (i, 1, K)), z[j]), R.DEFINITION),
            St(
                -sp.Sum(
                    A(M(y[i], D(sp.log(sg[i]), z[j])), M(1 - y[i], D(sp.log(1 - sg[i]), z[j]))),
                    (i, 1, K),
                ),
                R.LIN,
            ),
            St(
                -sp.Sum(M(coef(i), D(sg[i], z[j])), (i, 1, K)),
                R.LIN,
                R.CHAIN,
                note=r"\text{through } \sigma_i",
            ),
            St(
                -sp.Sum(M(coef(i), sg[i], 1 - sg[i], delta_ij), (i, 1, K)),
                R.lemma(
                    D(sg[i], z[j]),
                    M(sg[i], 1 - sg[i], delta_ij),
                    latex=r"\frac{\partial \sigma_i}{\partial z_j} = "
                    r"\sigma_i (1 - \sigma_i) \delta_{ij}",
                ),
                note=r"\sigma_i \text{ depends on } z_i \text{ only}",
            ),
            St(-M(coef(j), sg[j], 1 - sg[j]), R.SIFT),
            St(A(sg[j], -y[j]), R.ALGEBRA),
        ),
        result=None,
        defs=(),
        let=((sg, lambda a: Sigmoid(z[a])),),
        facts=(SIGMOID_RULE,),
        intro=r"When a sample may belong to several classes at once, each class gets its own "
        r"sigmoid $\sigma_i = \sigma(z_i)$ and its own binary cross-entropy against "
        r"$y_i \in [0, 1]$. Let $L = -\sum_{i=1}^{K} (y_i \log\sigma_i + (1 - y_i)"
        r"\log(1 - \sigma_i))$. Then:",
        outro=r"$\nabla_z L = \sigma(z) - y$, class by class. Seed 001 (eq. 16) calls this sum "
        r"“the cross-entropy loss”; it is the multi-label loss, whose gradient "
        r"$\sigma(z_j) - y_j$ is not the softmax one ($p_j - y_j$): the classes do not "
        r"share a normalisation. Seed 003 leaves this case out of scope.",
        sources="seed 001 (eq. 16) and seed 003",
    )


def _softmax_ce_split():
    notj = A(1, -delta_ij)  # the factor that keeps i != j
    dpi, dpj = D(p[i], z[j]), D(p[j], z[j])
    return Proof(
        "softmax_cross_entropy_grad_split",
        "Cross-entropy of the softmax, splitting the sum at $i = j$ (seed 004's route)",
        r"\frac{\partial L}{\partial z_j}",
        (
            St(D(CE_OF_P, z[j]), R.DEFINITION),
            St(-sp.Sum(M(y[i] / p[i], dpi), (i, 1, K)), R.LIN, R.CHAIN),
            St(
                A(-M(y[j] / p[j], dpj), -sp.Sum(M(notj, y[i] / p[i], dpi), (i, 1, K))),
                R.LIN,
                R.SIFT,
                note=r"\text{split the sum into } i = j \text{ and } i \neq j",
            ),
            St(
                A(
                    -M(y[j] / p[j], p[j], A(1, -p[j])),
                    -sp.Sum(M(notj, y[i] / p[i], Neg(M(p[i], p[j]))), (i, 1, K)),
                ),
                cite("softmax_jacobian"),
                R.ALGEBRA,
                note=r"\text{the two cases: } p_j(1 - p_j) \text{ and } -p_i p_j",
            ),
            St(
                A(M(-y[j], A(1, -p[j])), sp.Sum(M(notj, y[i], p[j]), (i, 1, K))),
                R.LIN,
                R.ALGEBRA,
                note=r"p_i \text{ and } p_j \text{ cancel}",
            ),
            St(
                A(-y[j], M(p[j], sp.Sum(y[i], (i, 1, K)))),
                R.LIN,
                R.SIFT,
                note=r"\text{recombine: } y_j p_j + p_j \sum_{i \neq j} y_i = p_j \sum_i y_i",
            ),
            St(A(p[j], -y[j]), R.ASSUME, given=(Y_SUMS_TO_ONE,)),
        ),
        result="softmax_cross_entropy_grad",
        defs=(p, S),
        claim=None,
        intro=r"The same gradient as above, by the route of seed 004: split the chain-rule sum "
        r"into the term $i = j$ and the terms $i \neq j$, use the two cases of the "
        r"Jacobian, then recombine. Let $L = -\sum_{i=1}^{K} y_i \log p_i$ with "
        r"$p = \operatorname{softmax}(z)$. Then:",
        outro=r"Both routes give $p_j - y_j$. The terms $i \neq j$ do not vanish: seed 003's "
        r"“the gradient is 0 for the wrong classes” drops them (it differentiates only "
        r"$y_j \log p_j$ for $j \neq t$, where $y_j = 0$, and forgets that $p_t$ depends on "
        r"$z_j$); their sum $p_j \sum_{i \neq j} y_i$ is exactly what makes the gradient "
        r"of a wrong class $p_j$ rather than $0$.",
        sources="seed 004 (and seed 003's error)",
    )


X_LIN = sp.IndexedBase("X", real=True)  # the inputs of a linear layer, N x D
W_LIN = sp.IndexedBase("w", real=True)  # its weights, D


class LinearScore(sp.Function):
    """s_n = sum_e X_{n,e} w_e, the score of sample n: linear in w, so d s_n / d w_d = X_{n,d}
    (SymPy differentiates it through this; the proof checks that fact on the sum itself)."""

    nargs = 2
    is_real = True

    def _eval_derivative(self, x):
        if isinstance(x, sp.Indexed) and x.base == W_LIN:
            return X_LIN[self.args[0], x.indices[0]]
        return sp.S.Zero

    def definition(self) -> sp.Sum:
        """sum_e X_{n,e} w_e, written out."""
        return sp.Sum(X_LIN[self.args[0], rewrite_e] * W_LIN[rewrite_e], (rewrite_e, 1, rewrite_D))

    def _latex(self, printer):
        return "s_{" + printer._print(self.args[0]) + "}"

    def _symce_plain(self, printer):
        return "s_" + printer._print(self.args[0])


def _check_linear_score():
    """d/dw_d sum_e X_{n,e} w_e = X_{n,d}: on the sum itself (sifting over e, d in 1..D)."""
    from .rewrite import collapse_sums

    s_n = LinearScore(n, W_LIN)
    got = collapse_sums(sp.diff(s_n.definition(), W_LIN[rewrite_d]))
    ok = got == X_LIN[n, rewrite_d] and sp.diff(s_n, W_LIN[rewrite_d]) == got
    return ok, f"d/dw_d sum_e X_ne w_e = {sp.sstr(got)}"


def _batch_logistic():
    X, w, yv, dd = X_LIN, W_LIN, m.y, rewrite_d
    sg = sp.IndexedBase("sigma", positive=True)
    sn = LinearScore(n, w)
    loss_n = Neg(A(M(yv[n], sp.log(sg[n])), M(1 - yv[n], sp.log(1 - sg[n]))))
    coef = A(yv[n] / sg[n], -(1 - yv[n]) / (1 - sg[n]))
    return Proof(
        "batch_logistic_regression_grad",
        "Batch logistic loss through a linear layer",
        r"\frac{\partial L}{\partial w_d}",
        (
            St(D(M(1 / m.N, sp.Sum(loss_n, (n, 1, m.N))), w[dd]), R.DEFINITION),
            St(
                M(
                    1 / m.N,
                    -sp.Sum(
                        A(
                            M(yv[n], D(sp.log(sg[n]), w[dd])),
                            M(1 - yv[n], D(sp.log(1 - sg[n]), w[dd])),
                        ),
                        (n, 1, m.N),
                    ),
                ),
                R.LIN,
            ),
            St(
                M(1 / m.N, -sp.Sum(M(coef, D(sg[n], w[dd])), (n, 1, m.N))),
                R.LIN,
                R.CHAIN,
                note=r"\text{through } \sigma_n",
            ),
            St(
                M(1 / m.N, -sp.Sum(M(coef, sg[n], 1 - sg[n], D(sn, w[dd])), (n, 1, m.N))),
                R.lemma(
                    D(sg[n], w[dd]),
                    M(sg[n], 1 - sg[n], D(sn, w[dd])),
                    latex=r"\frac{\partial \sigma_n}{\partial w_d} = \sigma_n(1 - \sigma_n)"
                    r"\frac{\partial s_n}{\partial w_d}",
                ),
                note=r"\sigma' = \sigma(1 - \sigma)",
            ),
            St(
                M(1 / m.N, sp.Sum(M(A(sg[n], -yv[n]), D(sn, w[dd])), (n, 1, m.N))),
                R.LIN,
                R.ALGEBRA,
                note=r"\text{as for one sample: } \sigma_n - y_n",
            ),
            St(
                M(1 / m.N, sp.Sum(M(A(sg[n], -yv[n]), X[n, dd]), (n, 1, m.N))),
                R.lemma(
                    D(sn, w[dd]), X[n, dd], latex=r"\frac{\partial s_n}{\partial w_d} = X_{n,d}"
                ),
            ),
        ),
        result=None,
        defs=(),
        let=((sg, lambda a: Sigmoid(LinearScore(a, W_LIN))),),
        facts=(
            SIGMOID_RULE,
            Fact(
                r"$\frac{\partial}{\partial w_d} \sum_{e=1}^{D} X_{n,e} w_e = X_{n,d}$ "
                r"(sifting over $e$, as $1 \le d \le D$)",
                _check_linear_score,
                "linear score",
            ),
        ),
        intro=r"Logistic regression on $N$ samples with $D$ features: the rows of "
        r"$X \in \mathbb{R}^{N \times D}$, weights $w \in \mathbb{R}^D$, scores "
        r"$s_n = \sum_{e=1}^{D} X_{n,e} w_e$ and $\sigma_n = \sigma(s_n)$. Let "
        r"$L(w) = \frac{1}{N}\sum_{n=1}^{N} -(y_n \log\sigma_n + "
        r"(1 - y_n)\log(1 - \sigma_n))$ (seed 001 eq. 14, seed 000's $L(W)$). Then, for $1 \le d \le D$:",
        outro=r"In matrix form $\nabla_w L = \frac{1}{N} X^\top(\sigma(Xw) - y)$. Seed 000 writes "
        r"the batch loss with $y$ in place of $y_n$ in its first term; every sample has its "
        r"own target.",
        sources="seed 001 (eq. 14) and seed 000",
    )


# ---- range reduction of exp (the vectorised exp of the kernels) -------------------------------
x_e = sp.Symbol("x", real=True)
n_e = sp.Symbol("n", integer=True)  # not the sample index model.n (that one is positive)
r_e = sp.Symbol("r", real=True)
C_HI = sp.Symbol("C_hi", positive=True)
C_LO = sp.Symbol("C_lo", real=True)
LN2 = sp.log(2)


# Cody-Waite splits of ln 2.  float64: the kernels' own (symce.approx.cody_waite on main): C_hi is
# ln 2 truncated to 32 significant bits, C_lo = ln 2 - C_hi rounded (the fdlibm pair); float32: the
# Cephes pair, for an evaluation in single precision.  C_hi has few significant bits, so n * C_hi
# is exact for every |n| < 2^k; C_lo carries the rest of ln 2.
def _truncated_ln2(bits: int) -> tuple:
    with mpmath.workdps(60):
        ln2 = mpmath.log(2)
        hi = mpmath.floor(ln2 * 2**bits) / 2**bits  # exact in a double: 32 bits
        return repr(float(hi)), repr(float(ln2 - hi))


_HI64, _LO64 = _truncated_ln2(32)
CODY_WAITE = {
    # precision p, C_hi, C_lo (as the floating-point constants), Taylor degree, |n| needed
    "float32": dict(p=24, hi="0.693359375", lo="-2.12194440e-4", degree=7, n_max=150),
    "float64": dict(p=53, hi=_HI64, lo=_LO64, degree=13, n_max=1075),
}


def _as_float(text, fmt):
    import numpy as np

    return float(np.float32(text)) if fmt == "float32" else float(text)


def _exact_bits(fmt):
    """k such that n * C_hi is exact in ``fmt`` for all |n| < 2^k: p minus C_hi's bits."""
    from fractions import Fraction

    c = CODY_WAITE[fmt]
    hi = Fraction(_as_float(c["hi"], fmt))
    return c["p"] - hi.numerator.bit_length()


def _check_exact_product(fmt):
    """n * C_hi rounds to itself for every |n| the kernels use and near the claimed limit 2^k.

    The reason is a bit count (n has at most k bits, C_hi at most p - k significant bits); the
    check multiplies in the format itself and compares with the exact rational product.
    """
    from fractions import Fraction

    import numpy as np

    c = CODY_WAITE[fmt]
    k = _exact_bits(fmt)
    if c["n_max"] >= 2**k:
        return False, f"{fmt}: |n| up to {c['n_max']} but n C_hi is exact only for |n| < 2^{k}"
    hi = _as_float(c["hi"], fmt)
    top = np.arange(2**k - 2048, 2**k, dtype=np.int64)
    ns = np.concatenate([np.arange(-c["n_max"], c["n_max"] + 1, dtype=np.int64), top, -top])
    dtype = np.float32 if fmt == "float32" else np.float64
    prod = ns.astype(dtype) * dtype(hi)  # rounded in fmt
    exact = Fraction(hi)
    bad = [int(n) for n, v in zip(ns, prod) if Fraction(float(v)) != int(n) * exact]
    if bad:
        return False, f"{fmt}: n C_hi is rounded for n in {bad[:5]}"
    return True, f"{fmt}: exact for all {len(ns)} n checked (|n| <= {c['n_max']} and near 2^{k})"


def _cw_fact(fmt):
    from fractions import Fraction

    c = CODY_WAITE[fmt]
    hi = Fraction(_as_float(c["hi"], fmt))
    bits, k = hi.numerator.bit_length(), _exact_bits(fmt)
    shift = hi.denominator.bit_length() - 1
    return Fact(
        rf"{fmt}: $C_{{\mathrm{{hi}}}} = {hi.numerator} \cdot 2^{{-{shift}}}$ has {bits} "
        rf"significant bits, so $n C_{{\mathrm{{hi}}}}$ is exact for $|n| < 2^{{{k}}}$ "
        rf"(the kernels need $|n| \le {c['n_max']}$)",
        lambda: _check_exact_product(fmt),
        f"{fmt} exact product",
    )


def _check_split(fmt, bound):
    c = CODY_WAITE[fmt]
    with mpmath.workdps(60):
        err = abs(
            mpmath.mpf(_as_float(c["hi"], fmt))
            + mpmath.mpf(_as_float(c["lo"], fmt))
            - mpmath.log(2)
        )
        ok = err <= mpmath.mpf(bound)
        return ok, f"{fmt}: |C_hi + C_lo - ln 2| = {mpmath.nstr(err, 3)} (claimed <= {bound})"


def _check_reduced_range():
    """|x - round(x/ln 2) ln 2| <= ln2/2, at random x and at the ties x = (k + 1/2) ln 2."""
    import random

    rng = random.Random(7)
    with mpmath.workdps(50):
        ln2 = mpmath.log(2)
        xs = [mpmath.mpf(rng.uniform(-800, 800)) for _ in range(400)]
        xs += [
            (kk + mpmath.mpf(1) / 2) * ln2 + d
            for kk in range(-6, 6)
            for d in (-(mpmath.mpf(10) ** -40), 0, mpmath.mpf(10) ** -40)
        ]
        worst = max(abs(x - mpmath.nint(x / ln2) * ln2) for x in xs)
        # at a tie |r| = ln2/2 exactly, up to the 50-digit rounding of x
        return worst <= ln2 / 2 * (
            1 + mpmath.mpf(10) ** -45
        ), f"max |r| = {mpmath.nstr(worst, 12)} over {len(xs)} x, ties included (ln2/2 allowed)"


def _check_taylor(fmt):
    """|e^r - T_d(r)| / e^r <= 2 (ln2/2)^(d+1)/(d+1)! < 2^-p on |r| <= ln2/2 (Lagrange), sampled."""
    c = CODY_WAITE[fmt]
    d = c["degree"]
    with mpmath.workdps(60):
        h = mpmath.log(2) / 2
        bound = 2 * h ** (d + 1) / mpmath.factorial(d + 1)
        if not bound < mpmath.mpf(2) ** -c["p"]:
            return False, (
                f"{fmt}: degree {d} bound {mpmath.nstr(bound, 3)} is not below 2^-{c['p']}"
            )
        worst = 0
        for q in range(-200, 201):
            r = h * q / 200
            taylor = mpmath.fsum(r**kk / mpmath.factorial(kk) for kk in range(d + 1))
            worst = max(worst, abs(mpmath.exp(r) - taylor) / mpmath.exp(r))
        return worst <= bound, (
            f"{fmt}: degree {d}: sampled max {mpmath.nstr(worst, 3)} <= "
            f"bound {mpmath.nstr(bound, 3)} < 2^-{c['p']}"
        )


def _check_taylor_all():
    checks = [_check_taylor(fmt) for fmt in CODY_WAITE]
    return all(ok for ok, _ in checks), "; ".join(why for _, why in checks)


def _exp_range_reduction():
    kk = sp.Symbol("k", integer=True, nonnegative=True)
    series = sp.Sum(r_e**kk / sp.factorial(kk), (kk, 0, sp.oo))
    e_ln2 = sp.exp(LN2, evaluate=False)
    return Proof(
        "exp_range_reduction",
        "Range reduction of the exponential",
        r"e^{x}",
        (
            St(
                sp.exp(A(M(n_e, LN2), r_e)), R.subst(r_e, latex=r"x = n \ln 2 + r"), lhs=sp.exp(x_e)
            ),
            St(M(sp.exp(M(n_e, LN2)), sp.exp(r_e)), R.ALGEBRA, note=r"e^{a + b} = e^{a} e^{b}"),
            St(
                M(sp.Pow(e_ln2, n_e, evaluate=False), sp.exp(r_e)),
                R.ALGEBRA,
                note=r"e^{n a} = (e^{a})^{n}",
            ),
            St(M(2**n_e, sp.exp(r_e)), R.ALGEBRA, note=r"e^{\ln 2} = 2"),
            St(
                A(x_e, -M(n_e, LN2)),
                R.subst(r_e, latex=r"r = x - n \ln 2"),
                lhs=r_e,
                block=r"The reduced argument, with Cody--Waite constants",
            ),
            St(
                A(x_e, -M(n_e, A(C_HI, C_LO))),
                R.subst(C_LO, latex=r"\ln 2 = C_{\mathrm{hi}} + C_{\mathrm{lo}}"),
            ),
            St(
                A(A(x_e, -M(n_e, C_HI)), -M(n_e, C_LO)),
                R.ALGEBRA,
                note=r"\text{distribute; } n C_{\mathrm{hi}} \text{ is exact (below)}",
            ),
            St(
                M(LN2, A(x_e / LN2, -n_e)),
                R.subst(r_e, latex=r"r = x - n \ln 2"),
                lhs=r_e,
                block=r"The range of $r$",
                note=r"\text{factor } \ln 2",
            ),
            St(
                series,
                R.SERIES,
                lhs=sp.exp(r_e),
                block=r"The polynomial",
                note=r"\text{the exponential series}",
            ),
        ),
        result=None,
        defs=(),
        let=((r_e, x_e - n_e * LN2), (C_LO, LN2 - C_HI)),
        facts=(
            Fact(
                r"$|x/\ln 2 - n| \le \tfrac{1}{2}$ for $n = \operatorname{round}(x/\ln 2)$, "
                r"so $|r| \le \tfrac{\ln 2}{2}$",
                _check_reduced_range,
                "reduced range",
            ),
            _cw_fact("float32"),
            _cw_fact("float64"),
            Fact(
                r"float32: $|C_{\mathrm{hi}} + C_{\mathrm{lo}} - \ln 2| \le 2 \cdot 10^{-12}$ "
                r"with $C_{\mathrm{lo}} = -2.12194440 \cdot 10^{-4}$",
                lambda: _check_split("float32", "2e-12"),
                "float32 split",
            ),
            Fact(
                r"float64: $|C_{\mathrm{hi}} + C_{\mathrm{lo}} - \ln 2| \le 2 \cdot 10^{-26}$ "
                r"with $C_{\mathrm{lo}} = 1.90821492927058770002 \cdot 10^{-10}$",
                lambda: _check_split("float64", "2e-26"),
                "float64 split",
            ),
            Fact(
                r"$\left|e^{r} - \sum_{k=0}^{d} \tfrac{r^k}{k!}\right| \le e^{r} \cdot "
                r"\tfrac{2 (\ln 2 / 2)^{d+1}}{(d+1)!}$ for $|r| \le \tfrac{\ln 2}{2}$ "
                r"(Lagrange remainder): below $2^{-24}$ at $d = 7$ and $2^{-53}$ at $d = 13$",
                _check_taylor_all,
                "Taylor remainder",
            ),
        ),
        intro=r"The vectorised exponential of the kernels does not call $\exp$: it writes "
        r"$x = n \ln 2 + r$ with the integer $n = \operatorname{round}(x / \ln 2)$, scales by "
        r"$2^n$ exactly (in the exponent bits) and evaluates a polynomial in the small $r$.",
        outro=r"So $e^{x} = 2^{n} e^{r}$ with $|r| \le \frac{\ln 2}{2}$, and $r$ is computed as "
        r"$(x - n C_{\mathrm{hi}}) - n C_{\mathrm{lo}}$ where the product $n C_{\mathrm{hi}}$ "
        r"is exact. The kernels fit a minimax polynomial on $|r| \le \frac{\ln 2}{2}$; "
        r"the Taylor polynomial of degree $d$ above is the certified reference it improves on.",
        sources="the Cody--Waite reduction (issue 7)",
    )


BUILDERS = (
    _sigmoid,
    _softmax_jacobian,
    _log_sum_exp_route,
    _ce_wrt_probabilities,
    _softmax_cross_entropy,
    _log_softmax,
    _logsumexp,
    _bce,
    _sigmoid_bce,
    _sigmoid_weighted_bce,
    _weighted_target,
    _batch,
    _softmax_ce_split,
    _softmax_two_classes,
    _multilabel_bce,
    _batch_logistic,
    _exp_range_reduction,
)


# ----------------------------------------------------------------------------------------------
# A defined activation's derivative (symce.definitions): the steps are found by applying the
# derivative rules to the outermost derivative until none is left, then algebra, then the
# substitution of the output the engine wrote the closed form in.  Each step is checked like
# every other proof's.
# ----------------------------------------------------------------------------------------------
def _rule_for(d: sp.Derivative) -> R.Rule | None:
    """The rule that takes the derivative ``d`` apart (or None: nothing applies)."""
    (x,) = d.variables
    f = d.expr
    if isinstance(f, sp.exp):
        return R.D_EXP
    if isinstance(f, sp.log):
        return R.D_LOG
    if isinstance(f, sp.Add) or (
        isinstance(f, sp.Mul) and any(not R.depends(a, x) for a in f.args)
    ):
        return R.LIN
    if isinstance(f, sp.Pow) and not R.depends(f.exp, x) and f.exp != -1:
        return R.CHAIN
    _, den = sp.fraction(f)
    if den != 1 and R.depends(den, x):
        return R.QUOTIENT
    if isinstance(f, sp.Mul):
        return R.PRODUCT
    if isinstance(f, sp.Pow):
        return R.CHAIN
    return None


def derivative_steps(expr: sp.Expr, name: str) -> list:
    """Steps that evaluate every derivative in ``expr``: each step applies one rule wherever it
    is the rule that takes a derivative apart (the first derivative's rule first)."""
    from .proof import ProofError

    steps = []
    for _ in range(40):
        nodes = [e for e in sp.preorder_traversal(expr) if isinstance(e, sp.Derivative)]
        if not nodes:
            return steps
        rule = _rule_for(nodes[0])
        new = expr
        for node in nodes:
            if rule is not None and _rule_for(node) == rule and node in new.atoms(sp.Derivative):
                new = R.apply_at(rule, new, node)
        if new == expr:
            raise ProofError(f"proof {name!r}: no derivative rule takes {nodes[0]} apart")
        if steps and steps[-1].rules == (rule,):  # the same rule again: one step
            steps[-1] = St(new, rule)
        else:
            steps.append(St(new, rule))
        expr = new
    raise ProofError(f"proof {name!r}: more than 40 derivative steps")


def _escaped(words: str) -> str:
    """Plain words for LaTeX text: underscores escaped (names are checked identifiers)."""
    return words.replace("_", r"\_")


def _differentiated(expr: sp.Expr, var: sp.Symbol, name: str, tidy: bool = True) -> list:
    """The definition's derivative, then each derivative rule, then algebra where it is simpler
    (``tidy``)."""
    steps = [St(D(expr, var), R.DEFINITION)]
    steps += derivative_steps(steps[0].expr, name)
    if not tidy:
        return steps
    last = steps[-1].expr
    tidy = min((sp.factor(sp.cancel(last)), sp.powsimp(sp.together(last))), key=sp.count_ops)
    if sp.count_ops(tidy) < sp.count_ops(last):
        steps.append(St(tidy, R.ALGEBRA, note=r"\text{simplify}"))
    return steps


def _case_fact(loss: definitions.Loss, values: tuple, known: sp.Expr, words: str) -> Fact:
    """A declared case of a loss (symce.define_loss's ``cases``): at those option values, the term
    is ``known`` and its derivative is ``known``'s, each checked symbolically."""
    at = {sp.Symbol(k, real=True): v for k, v in values}
    v = loss.input
    plain, want = loss.plain.xreplace(at), definitions.elementary(known)

    def check():
        if not rewrite.equal(plain, want):
            return False, f"{sp.sstr(plain)} is not {sp.sstr(want)}"
        if not rewrite.equal(sp.diff(plain, v), sp.diff(want, v)):
            return False, "the derivatives differ"
        return True, "the term and its derivative, symbolically"

    where = ", ".join(rf"{sp.latex(s)} = {sp.latex(x)}" for s, x in at.items())
    claim = (
        rf"At ${where}$ the loss is ${sp.latex(known)}$, {_escaped(words)}, and its gradient "
        "that loss's gradient."
    )
    plain_where = ", ".join(f"{s} = {x}" for s, x in at.items())
    return Fact(claim, check, name=f"{loss.name} at {plain_where}")


def _defined(sym: sp.Symbol, value: sp.Expr, tex) -> str:
    """``sym = value`` as LaTeX for inside $...$; a select's forms in words between formulas
    ("a$ if $c$, else $b"), so a paragraph may break the line between them."""
    if not isinstance(value, fn.select):
        return rf"{tex(sym)} = {tex(value)}"
    c, a, b = value.args
    return rf"{tex(sym)} = {tex(a)}$ if ${tex(c)}$, else ${tex(b)}"


def loss_proof(loss: definitions.Loss) -> Proof:
    """The gradient of a defined loss's term with respect to its input, as checked steps ending
    in the engine's closed form."""
    from .derive import latex_name, result

    res = result(loss.grad_name)
    v, y = loss.input, loss.target
    ell = rf"{latex_name(loss.name)}({sp.latex(v)}, {sp.latex(y)})"
    named = res.named  # a declared closed form: the rules' result is substituted into it directly
    # a switch's forms are simplified each on its own (derive): the rules' result is their blend
    switched = any(o.switch for o in loss.options)
    steps = _differentiated(loss.plain, v, loss.grad_name, tidy=not (named or switched))
    declared = dict(loss.where)
    if named:  # the declared closed form, in the quantities it names (inside $...$)
        words = "$, $".join(
            _defined(sym, declared[sym], sp.latex)
            if isinstance(declared.get(sym), fn.select)
            else rf"{sp.latex(sym)} = {sp.latex(h)}"
            for sym, h in named
        )
        steps.append(St(res.closed, R.subst(*(sym for sym, _ in named), latex=words)))
    elif steps[-1].expr != res.closed:
        steps.append(St(res.closed, R.ALGEBRA, note=r"\text{simplify}"))
    # an option named in words (log_target) upright, as the steps show it (symce.lang.latex)
    words = {o.symbol: r"\mathrm{" + o.name.replace("_", r"\_") + "}" for o in loss.options}
    tex = lambda e: sp.latex(e, symbol_names={s: w for s, w in words.items() if "_" in s.name})
    term, shown = tex(loss.term), tex(loss.plain)
    if named:  # the term in the quantities its closed form names, each defined after it
        short = loss.term.xreplace({d: s for s, d in loss.where})
        intro = rf"Let ${ell} = {tex(short)}$ with " + ", ".join(
            rf"${_defined(s, d, tex)}$" for s, d in loss.where
        )
    else:
        intro = rf"Let ${ell} = {term}$"
        if shown != term:
            intro += rf" $= {shown}$"
    where = r" in \texttt{" + _escaped(loss.module) + "}" if loss.module else ""
    per = (
        rf"the loss of one class (a row's loss is the sum over its classes, ${sp.latex(y)}$ the "
        "class's effective target)"
        if loss.over == "classes"
        else rf"the loss of one element (${sp.latex(y)}$ its target; the loss is their sum or mean)"
    )
    intro += rf", {per}, declared with symce.define\_loss" + where + "."
    for o in loss.options:
        if o.switch:  # the switch's forms as one expression, each form where the switch picks it
            intro += (
                rf" The switch ${tex(o.symbol)}$ is 1 (true) or 0 (false), so the loss is the "
                rf"sum of each form times its switch, which the steps differentiate."
            )
    intro += " Then:"
    each = "class" if loss.over == "classes" else "element"
    outro = (
        rf"So $\partial {latex_name(loss.name)} / \partial {sp.latex(v)} = "
        rf"{tex(definitions.switched(res.closed, loss.options))}$ for each {each}; the gradient "
        "of the reduced loss is this times the reduction's scale."
    )
    return Proof(
        loss.grad_name,
        "Gradient of " + _escaped(loss.name),
        rf"\frac{{\partial}}{{\partial {sp.latex(v)}}} {ell}",
        tuple(steps),
        result=loss.grad_name,
        let=tuple(named),
        abbreviate=bool(named),
        facts=tuple(_case_fact(loss, *case) for case in loss.cases),
        intro=intro,
        outro=outro,
        sources=r"its declaration with symce.define\_loss",
    )


def activation_proof(act: definitions.Activation) -> Proof:
    """The derivative of a defined activation, as checked steps ending in the engine's closed form."""
    from .derive import latex_name, result

    res = result(act.grad_name)
    x = act.var
    fx = rf"{latex_name(act.name)}({sp.latex(x)})"
    steps = _differentiated(act.plain, x, act.grad_name)
    named = res.named
    if named:
        syms = [sym for sym, _ in named]
        words = ", ".join(rf"{sp.latex(sym)} = {sp.latex(h)}" for sym, h in named)
        steps.append(St(res.closed, R.subst(*syms, latex=words)))
    definition = sp.latex(act.definition)
    shown = sp.latex(act.plain)
    intro = rf"Let ${fx} = {definition}$"
    if shown != definition:
        intro += rf" $= {shown}$"
    where = r" in \texttt{" + _escaped(act.module) + "}" if act.module else ""
    intro += r", declared with symce.define\_activation" + where + ". Then:"
    if named:
        outro = (
            rf"So ${fx}' = {sp.latex(res.closed)}$, written in "
            + ", ".join(rf"${sp.latex(sym)} = {sp.latex(h)}$" for sym, h in named)
            + ": the closed form the engine found by itself, checked against the derivative."
        )
    else:
        outro = (
            "No polynomial in the function's own output (or the sigmoid's) equals the "
            "derivative: the kernel evaluates it in $x$."
        )
    return Proof(
        act.grad_name,
        "Derivative of " + _escaped(act.name),
        rf"\frac{{d}}{{d{sp.latex(x)}}} {fx}",
        tuple(steps),
        result=act.grad_name,
        let=tuple(named),
        intro=intro,
        outro=outro,
        sources=r"its declaration with symce.define\_activation",
    )


@cache
def by_name() -> dict:
    """Every proof by name (unverified)."""
    return {pr.name: pr for pr in proofs()}


def statement(name: str) -> tuple:
    """(the derivative a proof is about, in output symbols; its closed form without assumptions):
    what a later proof may cite."""
    from .derive import result

    pr = by_name()[name]
    claim = pr.claim if pr.claim is not None else pr.steps[0].expr
    return claim, result(pr.result).general


@cache
def proofs() -> tuple:
    """Every proof, unverified (see :func:`verified_proofs`): symce's own, then each defined
    activation's derivative."""
    own = tuple(build() for build in BUILDERS)
    declared = tuple(activation_proof(act) for act in definitions.activations())
    return own + declared + tuple(loss_proof(loss) for loss in definitions.losses())


def _forget_proofs() -> None:
    for cached in (proofs, by_name, verified_proofs):
        cached.cache_clear()


definitions.on_change(_forget_proofs)


_COUNTS: dict = {}


def _verify_index(index: int) -> tuple:
    return index, verify(proofs()[index])


def verification_counts() -> dict:
    """{proof name: counts from :func:`symce.proof.verify`} (verifies every proof if needed)."""
    verified_proofs()
    return dict(_COUNTS)


@cache
def verified_proofs(jobs: int | None = None) -> tuple:
    """Every proof, each step checked; raises ProofError naming the first bad step.

    The proofs are independent, so they are checked in parallel (``jobs`` processes, default:
    the CPU count); every step of every proof is still verified.
    """
    from .derive import results

    results()  # computed once here, inherited by the forked workers
    out = proofs()
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(out) == 1:
        for pr in out:
            _COUNTS[pr.name] = verify(pr)
        return out
    ctx = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        # the slowest first, so the two workers finish together
        order = sorted(range(len(out)), key=lambda k: -len(sp.srepr(out[k].steps)))
        for fut in [pool.submit(_verify_index, k) for k in order]:
            index, counts = fut.result()  # re-raises the worker's ProofError with its message
            _COUNTS[out[index].name] = counts
    return out
