"""Proofs: every step verified; a wrong step, a wrong case or a wrong conclusion is rejected."""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

from symce import model as m
from symce import proofs
from symce import rules as R
from symce.proof import ProofError, Step, verify

ALL = proofs.by_name()


@pytest.mark.parametrize("name", sorted(ALL))
def test_proof_verifies(name):
    verify(ALL[name])


def test_cover_the_derivations_the_issue_lists():
    assert {
        "sigmoid_grad",
        "softmax_jacobian",
        "cross_entropy_grad",
        "softmax_cross_entropy_grad",
        "cross_entropy_label_grad",
        "binary_cross_entropy_grad",
        "sigmoid_binary_cross_entropy_grad",
        "batch_softmax_cross_entropy_grad",
        "exp_range_reduction",
        "weighted_target",
    } <= set(ALL)
    # the Jacobian is proved by the two cases, as the seeds do
    blocks = [s.block for s in ALL["softmax_jacobian"].steps if s.block]
    assert blocks[:2] == [r"Case $i = j$", r"Case $i \neq j$"]


def _replace_step(proof, index, expr):
    steps = list(proof.steps)
    steps[index] = dataclasses.replace(steps[index], expr=expr)
    return dataclasses.replace(proof, steps=tuple(steps))


def test_broken_step_is_rejected_with_proof_and_step_named():
    p = ALL["softmax_jacobian"]
    bad = _replace_step(p, 4, m.p[m.i] * sp.KroneckerDelta(m.i, m.j) + m.p[m.i] * m.p[m.j])
    with pytest.raises(ProofError) as err:
        verify(bad)
    msg = str(err.value)
    assert "softmax_jacobian" in msg and "step 5" in msg  # numbered from 1, as printed


def test_sign_error_of_a_seed_is_rejected():
    # one seed writes dL/dz = y - yhat; symce's checker refuses it
    p = ALL["softmax_cross_entropy_grad"]
    bad = _replace_step(p, len(p.steps) - 1, m.y[m.j] - m.p[m.j])
    with pytest.raises(ProofError, match="softmax_cross_entropy_grad"):
        verify(bad)


def test_step_true_only_in_one_case_is_rejected_outside_it():
    p = ALL["softmax_jacobian"]
    # p_i (1 - p_i) holds for i = j only; claim it with no case condition
    steps = list(p.steps[:5]) + [
        Step(m.p[m.i] * (1 - m.p[m.i]), "claimed for all i, j", rules=(R.ALGEBRA,))
    ]
    with pytest.raises(ProofError, match="step 6"):
        verify(dataclasses.replace(p, steps=tuple(steps), result=None))


def test_assumption_is_needed_where_it_is_used():
    p = ALL["softmax_cross_entropy_grad"]
    last = dataclasses.replace(p.steps[-1], given=())  # drop "sum_i y_i = 1"
    with pytest.raises(ProofError):
        verify(dataclasses.replace(p, steps=p.steps[:-1] + (last,)))


def test_conclusion_must_match_the_engine():
    p = ALL["log_softmax_jacobian"]
    # a correct chain of steps that is claimed to prove a different result
    with pytest.raises(ProofError, match="log_softmax_jacobian.*(closed form|not the derivative)"):
        verify(dataclasses.replace(p, result="logsumexp_grad", claim=None))


def test_numeric_check_catches_what_symbolic_might_miss(monkeypatch):
    from symce import proof as proof_mod

    monkeypatch.setattr(proof_mod, "_symbolic_equal", lambda *a, **k: True)
    p = ALL["logsumexp_grad"]
    bad = _replace_step(p, 3, 2 * m.p[m.j])
    with pytest.raises(ProofError, match="step 4 .*false: the two sides differ at"):
        verify(dataclasses.replace(p, result=None, steps=bad.steps))


def test_true_but_unproved_step_is_not_called_false(monkeypatch):
    # issue 9: "cannot show equal" read like "false"; a true step SymPy cannot prove says so
    from symce import proof as proof_mod

    original, second = proof_mod._symbolic_equal, ALL["logsumexp_grad"].steps[1].expr
    monkeypatch.setattr(
        proof_mod,
        "_symbolic_equal",
        lambda a, b, *r, **k: False if b == second else original(a, b, *r, **k),
    )
    with pytest.raises(ProofError) as err:
        verify(ALL["logsumexp_grad"])
    msg = str(err.value)
    assert "step 2 " in msg and "not proved" in msg and "agree at every sampled point" in msg
    assert "false" not in msg


def test_numeric_check_uses_n_different_from_k():
    from symce import proof as proof_mod

    assert all(nv != kv for nv, kv in proof_mod.NUMERIC_NK)
    assert any(nv < kv for nv, kv in proof_mod.NUMERIC_NK)
    assert any(nv > kv for nv, kv in proof_mod.NUMERIC_NK)


def test_index_choices_reach_both_ends_of_each_range():
    import random

    from symce import proof as proof_mod

    choices = proof_mod._index_choices([m.j, m.m], 4, 2, (), random.Random(0))
    assert {c[m.j] for c in choices} >= {1, 4}  # classes: 1..K with K = 4
    assert {c[m.m] for c in choices} >= {1, 2}  # samples: 1..N with N = 2


def test_sifting_needs_the_index_in_range():
    from symce import rewrite

    d = sp.KroneckerDelta(m.m, m.n)
    f = sp.Function("f")
    # m ranges over 1..N: a sum over 1..N sifts, a sum over 1..K does not (N and K differ)
    assert rewrite.collapse_sums(sp.Sum(d * f(m.n), (m.n, 1, m.N))) == f(m.m)
    assert rewrite.collapse_sums(sp.Sum(d * f(m.n), (m.n, 1, m.K))).has(sp.Sum)
    # j ranges over 1..K: a sum from 2 does not sift it
    dj = sp.KroneckerDelta(m.i, m.j)
    assert rewrite.collapse_sums(sp.Sum(dj * f(m.i), (m.i, 2, m.K))).has(sp.Sum)
    assert rewrite.collapse_sums(sp.Sum(dj * f(m.i), (m.i, 1, m.K))) == f(m.j)


# ---- the range reduction of exp (issue 7's vectorised exp) --------------------------------------
def test_exp_range_reduction_is_a_verified_proof():
    p = ALL["exp_range_reduction"]
    verify(p)
    assert len(p.facts) >= 5
    for fact in p.facts:
        ok, detail = fact.check()
        assert ok, detail


def test_exp_range_reduction_wrong_scaling_is_rejected():
    p = ALL["exp_range_reduction"]
    n = p.steps[3].expr.free_symbols
    two_n = next(s for s in n if s.name == "n")
    bad = _replace_step(p, 3, 2 ** (two_n + 1) * sp.exp(sp.Symbol("r", real=True)))
    with pytest.raises(ProofError, match="exp_range_reduction.*step 4"):
        verify(bad)


def test_exp_cody_waite_wrong_sign_is_rejected():
    p = ALL["exp_range_reduction"]
    x, n = sp.Symbol("x", real=True), sp.Symbol("n", integer=True)
    c_hi, c_lo = sp.Symbol("C_hi", positive=True), sp.Symbol("C_lo", real=True)
    bad = _replace_step(p, 6, (x - n * c_hi) + n * c_lo)
    with pytest.raises(ProofError, match="step 7"):
        verify(bad)


def test_exp_cody_waite_constant_with_too_many_bits_is_rejected(monkeypatch):
    from symce import proofs as proofs_mod

    table = {k: dict(v) for k, v in proofs_mod.CODY_WAITE.items()}
    table["float32"]["hi"] = "0.693147182"  # ln 2 rounded to float32: 24 significant bits
    monkeypatch.setattr(proofs_mod, "CODY_WAITE", table)
    ok, detail = proofs_mod._check_exact_product("float32")
    assert not ok and "float32" in detail
    table["float32"]["degree"] = 5  # the Taylor bound then misses 2^-24
    assert not proofs_mod._check_taylor("float32")[0]
