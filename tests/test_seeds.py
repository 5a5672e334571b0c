"""Published values from the seed articles, reproduced from the symbolic model (mpmath, 50 digits)."""

from __future__ import annotations

import mpmath
import numpy as np

from symce import reference

SCORES = np.array([[-2.85, 0.86, 0.28]])


def test_softmax_of_seed_scores():
    p = reference.evaluate("softmax", SCORES)[0]
    published = [0.0154493156751271, 0.631163353697413, 0.353387330637003]
    # the published (Maple) values are good to about 10 digits: they differ from the exact
    # softmax by up to 6e-11 relative; symce's value is the exact one
    for got, pub in zip(p, published):
        assert abs(got - pub) / pub < 1e-9
    assert abs(p[0] - mpmath.mpf("0.01544931567607360")) < 1e-16
    assert abs(mpmath.fsum(p) - 1) < mpmath.mpf(10) ** -45


def test_cross_entropy_correct_class_3():
    # seed 000: "index of the correct class at 3" (1-based) -> 1.040190570 (10 digits, rounded up
    # from 1.04019056943...)
    loss = reference.evaluate("softmax_cross_entropy", SCORES, np.array([2]), reduction="sum")
    assert abs(loss - mpmath.mpf("1.040190570")) < 1e-9
    assert abs(loss - mpmath.mpf("1.0401905694301082")) < 1e-15


def test_dog_example_exact_value():
    # seed 002: logits (1, 2, 0.5), true class "dog" = index 1 (0-based). The seed prints 0.462,
    # which comes from rounding q_1 to 0.63 before the log; the exact loss is 0.46436...
    loss = reference.evaluate(
        "softmax_cross_entropy", np.array([[1.0, 2.0, 0.5]]), np.array([1]), reduction="sum"
    )
    assert abs(loss - mpmath.mpf("0.46436878410794484")) < 1e-15
    assert abs(loss - mpmath.mpf("0.462")) > 1e-3
    q = reference.evaluate("softmax", np.array([[1.0, 2.0, 0.5]]))[0]
    assert (
        abs(-mpmath.log(mpmath.mpf("0.63")) - mpmath.mpf("0.462")) < 1e-3
    )  # where 0.462 came from
    with mpmath.workdps(reference.DPS):
        assert abs(-mpmath.log(q[1]) - loss) < 1e-40


def test_gradient_sign_is_p_minus_y():
    # the gradient of the loss is p - y; a seed's y - yhat is its negative (a descent direction)
    z = np.array([[1.0, 2.0, 0.5]])
    grad = reference.evaluate("softmax_cross_entropy_grad", z, np.array([1]), reduction="sum")[0]
    p = reference.evaluate("softmax", z)[0]
    y = [0, 1, 0]
    h = mpmath.mpf("1e-20")
    for k in range(3):
        with mpmath.workdps(60):
            lp = _loss_mp([mpmath.mpf(v) + (h if c == k else 0) for c, v in enumerate(z[0])], 1)
            lm = _loss_mp([mpmath.mpf(v) - (h if c == k else 0) for c, v in enumerate(z[0])], 1)
            fd = (lp - lm) / (2 * h)
        assert abs(fd - grad[k]) < 1e-15
        with mpmath.workdps(reference.DPS):
            assert abs(grad[k] - (p[k] - y[k])) < 1e-40
    assert grad[1] < 0 < grad[0]


def _loss_mp(row, label):
    return -row[label] + mpmath.log(mpmath.fsum(mpmath.exp(v) for v in row))
