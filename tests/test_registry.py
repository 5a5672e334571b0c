"""The kernel registry: stable slot expressions equal the definitions they were rewritten from.

Language-independent: the registry's slots (form="closed") against the raw model definitions and
their sp.diff derivatives (form="raw"), both evaluated with mpmath at 50 digits, on random and
adversarial inputs, with every option.
"""

from __future__ import annotations

import itertools

import mpmath
import numpy as np
import pytest
import sympy as sp

from symce import definitions, derive, functions, kernels, reference

REG = kernels.registry()
TOL = mpmath.mpf(10) ** -35


def _close(a, b):
    a = np.ravel(np.asarray(a, dtype=object))
    b = np.ravel(np.asarray(b, dtype=object))
    assert a.shape == b.shape
    with mpmath.workdps(reference.DPS):
        for u, v in zip(a, b):
            if mpmath.isnan(u) or mpmath.isnan(v):
                assert mpmath.isnan(u) and mpmath.isnan(v)
                continue
            assert abs(u - v) <= TOL * max(1, abs(v)), (u, v)


def test_slots_use_only_kernel_locals_and_known_functions():
    known = {
        sp.exp,
        sp.log,
        functions.log1p,
        functions.expm1,
        functions.softplus,
        functions.clamp_min,
        functions.mul0,
        functions.sigmoid,
        functions.two_sum_err,
        sp.Abs,
        sp.Max,
        *definitions.FUNCTIONS,  # what a defined function may use (symce.library's tanh)
    }
    for kern in REG.values():
        for slot, expr in kern.slots.items():
            options = {o.symbol for o in kern.scalars}  # a defined loss's options: parameters
            assert expr.free_symbols <= set(kernels.LOCALS.values()) | options, (kern.name, slot)
            for f in expr.atoms(sp.Function):
                assert f.func in known, (kern.name, slot, f)


def test_derivations_named_by_kernels_exist():
    for kern in REG.values():
        if kern.derivation:
            derive.result(kern.derivation)


def test_kernel_names_are_identifiers_in_every_language():
    reserved = {"function", "end", "if", "for", "while", "return", "double", "float", "int"}
    for name in REG:
        assert name.isidentifier() and name not in reserved and len(f"symce_{name}_f64") < 63


RNG = np.random.default_rng(7)
ROWS = {
    "random": RNG.standard_normal((3, 4)) * 3,
    "large": np.array([[1e4, -1e4, 0.0, 9999.5], [-800.0, -801.0, -799.0, -1e4]]),
    "equal": np.full((2, 3), 7.25),
    "dominant": np.array([[0.0, -20.0, -25.0], [30.0, 0.0, -30.0]]),
}


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "softmax_jacobian"])
@pytest.mark.parametrize("rows", sorted(ROWS))
def test_rowwise_slots_equal_definitions(name, rows):
    z = ROWS[rows]
    _close(reference.evaluate(name, z, form="closed"), reference.evaluate(name, z, form="raw"))


def test_vjp_slot_equals_jacobian_transpose_times_g():
    z, g = ROWS["random"], RNG.standard_normal((3, 4))
    _close(
        reference.evaluate("softmax_vjp", z, g, form="closed"),
        reference.evaluate("softmax_vjp", z, g, form="raw"),
    )


@pytest.mark.parametrize("name", ["sigmoid", "sigmoid_grad"])
def test_elementwise_slots(name):
    x = np.array([-745.0, -50.0, -3.5, -1e-8, 0.0, 2.0, 36.0, 50.0, 700.0])
    _close(reference.evaluate(name, x, form="closed"), reference.evaluate(name, x, form="raw"))


CE_OPTIONS = [
    dict(weight=w, label_smoothing=e, reduction=r)
    for w, e, r in itertools.product(
        [None, [0.5, 2.0, 1.0, 3.0]], [0.0, 0.2], ["none", "mean", "sum"]
    )
]


@pytest.mark.parametrize(
    "name",
    ["softmax_cross_entropy", "softmax_cross_entropy_grad", "cross_entropy", "cross_entropy_grad"],
)
@pytest.mark.parametrize("opts", CE_OPTIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_ce_slots_equal_definitions(name, opts):
    z = ROWS["random"]
    x = (
        z
        if "softmax" in name
        else reference.np.asarray(
            [[float(v) for v in row] for row in reference.evaluate("softmax", z)]
        )
    )
    labels = np.array([0, 3, -100])
    soft = np.abs(RNG.standard_normal((3, 4))) + 0.1
    soft /= soft.sum(axis=1, keepdims=True)
    for target in (labels, soft):
        _close(
            reference.evaluate(name, x, target, form="closed", **opts),
            reference.evaluate(name, x, target, form="raw", **opts),
        )


@pytest.mark.parametrize(
    "name",
    [
        "binary_cross_entropy",
        "binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy",
        "sigmoid_binary_cross_entropy_grad",
    ],
)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_slots_equal_definitions(name, reduction):
    if name.startswith("sigmoid"):
        x = np.array([[-40.0, -2.0, 0.0, 3.0], [15.0, -0.5, 60.0, -700.0]])
        extra = dict(pos_weight=[1.0, 2.5, 0.5, 3.0], weight=[[1.0, 2.0, 0.5, 1.0]])
    else:
        x = np.array([[1e-6, 0.2, 0.5, 0.9], [0.999, 0.3, 0.7, 0.01]])
        extra = dict(weight=[[1.0, 2.0, 0.5, 1.0]])
    y = np.array([[0.0, 1.0, 0.3, 1.0], [1.0, 0.0, 0.5, 0.0]])
    _close(
        reference.evaluate(name, x, y, form="closed", reduction=reduction, **extra),
        reference.evaluate(name, x, y, form="raw", reduction=reduction, **extra),
    )


def test_log1p_form_keeps_dominant_class_accurate():
    # log p of a class with p close to 1: the shifted, log1p form keeps full relative accuracy
    z = np.array([[0.0, -40.0]])
    with mpmath.workdps(reference.DPS):
        exact = -mpmath.log1p(mpmath.exp(-40))
        got = reference.evaluate("log_softmax", z, form="closed")[0][0]
        assert abs(got - exact) / abs(exact) < 1e-30
