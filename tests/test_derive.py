"""The derivation engine: each closed form equals the raw derivative, for general and concrete K.

The expected textbook forms appear here only as checks of what the engine found.
"""

from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp

from symce import derive, rewrite
from symce import model as m

R = derive.results()


def _general_equal(a, b, assumption=None):
    subs = dict(assumption.replace) if assumption else None
    return rewrite.equal(a, b, subs)


@pytest.mark.parametrize("name", sorted(R))
def test_closed_form_equals_raw_derivative_general_K(name):
    res = R[name]
    named = dict(res.named)  # a defined function's form is in its outputs: unfold them
    assert _general_equal(res.raw, res.general.xreplace(named)), name
    assert _general_equal(res.raw, res.closed.xreplace(named), res.spec.assumption), name


EXPECTED = {  # the closed forms people use; checked against what the engine found
    "sigmoid_grad": m.s * (1 - m.s),
    "softmax_jacobian": m.p[m.i] * (sp.KroneckerDelta(m.i, m.j) - m.p[m.j]),
    "log_softmax_jacobian": sp.KroneckerDelta(m.i, m.j) - m.p[m.j],
    "logsumexp_grad": m.p[m.j],
    "cross_entropy_grad": -m.y[m.j] / m.p[m.j],
    "cross_entropy_label_grad": m.p[m.j] - sp.KroneckerDelta(m.t, m.j),
    "softmax_cross_entropy_grad": m.p[m.j] - m.y[m.j],
    "binary_cross_entropy_grad": (m.yhat - m.y_bin) / (m.yhat * (1 - m.yhat)),
    "weighted_binary_cross_entropy_grad": (
        m.yhat * (1 - m.y_bin) - m.pos_weight * m.y_bin * (1 - m.yhat)
    )
    / (m.yhat * (1 - m.yhat)),
    "sigmoid_binary_cross_entropy_grad": m.s - m.y_bin,
    "sigmoid_weighted_binary_cross_entropy_grad": (1 - m.y_bin) * m.s
    - m.pos_weight * m.y_bin * (1 - m.s),
    "batch_softmax_cross_entropy_grad": (m.P[m.m, m.j] - m.Y[m.m, m.j]) / m.N,
}


def test_every_result_has_an_expected_form():
    # symce's own; the defined functions' forms are found by fitting (tests/test_define.py)
    assert set(EXPECTED) == {n for n in R if n in derive.DISPLAY}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_engine_found_the_textbook_form(name):
    # the engine's form, in output symbols, is the textbook one (compared as rational functions)
    assert sp.simplify(R[name].closed - EXPECTED[name]) == 0


def test_general_form_keeps_the_target_sum_when_not_assumed():
    general = R["softmax_cross_entropy_grad"].general
    assert general.has(sp.Sum)  # p_j * sum_k y_k - y_j
    assert rewrite.equal(general, m.p[m.j] * sp.Sum(m.y[m.k], (m.k, 1, m.K)) - m.y[m.j])


def test_sympy_obstacles_are_real():
    """The reasons symce rewrites by itself (if SymPy fixes them, this test says so)."""
    raw = sp.diff(m.softmax(m.i), m.z[m.j])
    done = raw.doit()
    assert done.has(sp.Piecewise)  # Sum(delta * exp).doit() -> Piecewise((exp(z[j]), K >= j), ...)
    assert not rewrite.collapse_sums(raw).has(sp.Piecewise)


# ---- concrete K = 2..16 ------------------------------------------------------------------------
def _concrete_jacobian_pairs(K):
    pairs = {(1, 1), (1, 2), (K, 1), (K, K)}
    return sorted((a, b) for a, b in pairs if a <= K and b <= K)


def _instantiate_closed(expr, zs, ys=None, label=None, idx=None):
    p = [sp.exp(v) / sum(sp.exp(u) for u in zs) for v in zs]
    rep = {}
    if idx:
        expr = expr.xreplace({sym: sp.Integer(val) for sym, val in idx.items()})
    expr = expr.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == m.p, lambda e: p[int(e.indices[0]) - 1]
    )
    if ys is not None:
        expr = expr.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base == m.y,
            lambda e: ys[int(e.indices[0]) - 1],
        )
    return expr.xreplace(rep)


def _rational_zero(expr, zs):
    es = sp.symbols(f"E1:{len(zs) + 1}", positive=True)
    expr = expr.subs({sp.exp(v): e for v, e in zip(zs, es)})  # subs also maps exp(2 z) -> E**2
    return sp.cancel(sp.together(expr)) == 0


@pytest.mark.parametrize("K", range(2, 17))
def test_softmax_jacobian_concrete_K_symbolic(K):
    zs = m.concrete_logits(K)
    closed = R["softmax_jacobian"].closed
    for a, b in _concrete_jacobian_pairs(K):
        raw = sp.diff(sp.exp(zs[a - 1]) / sum(sp.exp(v) for v in zs), zs[b - 1])
        inst = _instantiate_closed(closed, zs, idx={m.i: a, m.j: b})
        assert _rational_zero(raw - inst, zs), (K, a, b)


@pytest.mark.parametrize("K", range(2, 17))
def test_softmax_cross_entropy_gradient_concrete_K_symbolic(K):
    zs = m.concrete_logits(K)
    ys = sp.symbols(f"y1:{K + 1}", real=True)
    total = sum(sp.exp(v) for v in zs)
    L = -sum(yk * (v - sp.log(total)) for yk, v in zip(ys, zs))
    general = R["softmax_cross_entropy_grad"].general
    for b in sorted({1, K}):
        inst = general.xreplace({m.j: sp.Integer(b)}).doit()
        inst = inst.xreplace({m.K: K}).doit() if inst.has(m.K) else inst
        inst = _instantiate_closed(inst.doit(), zs, ys)
        assert _rational_zero(sp.diff(L, zs[b - 1]) - inst, zs), (K, b)
        # and the closed form under sum y = 1: substitute y_K = 1 - sum of the others
        closed = _instantiate_closed(
            R["softmax_cross_entropy_grad"].closed.xreplace({m.j: sp.Integer(b)}), zs, ys
        )
        on_simplex = {ys[-1]: 1 - sum(ys[:-1])}
        assert _rational_zero((sp.diff(L, zs[b - 1]) - closed).xreplace(on_simplex), zs)


@pytest.mark.parametrize("K", range(2, 17))
def test_closed_forms_concrete_K_numeric_high_precision(K):
    """Every softmax-family closed form vs sp.diff of the concrete definition, at 50 digits."""
    rng = random.Random(K)
    zs = m.concrete_logits(K)
    ys = sp.symbols(f"y1:{K + 1}", real=True)
    total = sum(sp.exp(v) for v in zs)
    soft = [sp.exp(v) / total for v in zs]
    zval = {v: sp.Float(rng.uniform(-4, 4), 50) for v in zs}
    raw_y = [sp.Float(rng.uniform(0.01, 1), 50) for _ in ys]
    yval = {v: r / sum(raw_y) for v, r in zip(ys, raw_y)}  # sums to 1 at 50 digits
    pval = [s_.xreplace(zval).evalf(50) for s_ in soft]
    env = {**zval, **yval}

    def closed_at(name, **idx):
        expr = R[name].closed.xreplace({getattr(m, sym): sp.Integer(v) for sym, v in idx.items()})
        expr = expr.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base == m.p,
            lambda e: pval[int(e.indices[0]) - 1],
        )
        expr = expr.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base == m.y,
            lambda e: yval[ys[int(e.indices[0]) - 1]],
        )
        return expr.evalf(50)

    tol = sp.Float(10) ** -40
    ce = -sum(yk * sp.log(pk) for yk, pk in zip(ys, soft))
    for a in range(1, K + 1):
        for b in sorted({1, a, K}):
            raw = sp.diff(soft[a - 1], zs[b - 1]).xreplace(env).evalf(50)
            assert abs(raw - closed_at("softmax_jacobian", i=a, j=b)) < tol
            raw = sp.diff(sp.log(soft[a - 1]), zs[b - 1]).xreplace(env).evalf(50)
            assert abs(raw - closed_at("log_softmax_jacobian", i=a, j=b)) < tol
            raw = sp.diff(-sp.log(soft[a - 1]), zs[b - 1]).xreplace(env).evalf(50)
            assert abs(raw - closed_at("cross_entropy_label_grad", t=a, j=b)) < tol
        raw = sp.diff(ce, zs[a - 1]).xreplace(env).evalf(50)
        assert abs(raw - closed_at("softmax_cross_entropy_grad", j=a)) < tol
        raw = sp.diff(sp.log(total), zs[a - 1]).xreplace(env).evalf(50)
        assert abs(raw - closed_at("logsumexp_grad", j=a)) < tol


@pytest.mark.parametrize(
    "name",
    [
        "sigmoid_grad",
        "binary_cross_entropy_grad",
        "weighted_binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy_grad",
        "sigmoid_weighted_binary_cross_entropy_grad",
    ],
)
def test_scalar_closed_forms_numeric(name):
    res = R[name]
    rng = random.Random(name)
    for _ in range(20):
        th = sp.Float(rng.uniform(-20, 20), 50)
        vals = {
            m.theta: th,
            m.y_bin: sp.Float(rng.uniform(0, 1), 50),
            m.yhat: sp.Float(rng.uniform(0.001, 0.999), 50),
            m.pos_weight: sp.Float(rng.uniform(0.1, 5), 50),
        }
        vals[m.s] = (1 / (1 + sp.exp(-th))).evalf(50)
        with mpmath.workdps(50):
            raw = res.raw.xreplace(vals).evalf(50)
            closed = res.closed.xreplace(vals).evalf(50)
        assert abs(raw - closed) <= sp.Float(10) ** -40 * max(1, abs(raw)), (name, vals)


# ---- one display form per closed form (issue 9) --------------------------------------------------
@pytest.mark.parametrize("name", sorted(derive.DISPLAY))
def test_display_form_is_the_closed_form(name):
    shown = derive.DISPLAY[name].expr.doit()
    assert sp.simplify(shown - R[name].closed) == 0, name


def test_every_closed_form_has_a_display_form():
    assert all(derive.display(name) is not None for name in R)
    assert set(derive.DISPLAY) <= set(R)


def test_readme_table_shows_the_display_forms():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("| derivative | closed form found by symce |")
    table = readme[start : readme.index("\n\n", start)]
    for name in R:  # symce's own and the declared functions' (symce.library)
        disp = derive.display(name)
        assert disp.text in table, (
            f"README table drifted from the display form of {name}: {disp.text!r}"
        )
