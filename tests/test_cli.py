"""The command line: list, show, derive --check; errors are specific."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from symce import cli, kernels

ROOT = Path(__file__).resolve().parent.parent


def test_list_names_every_kernel_and_derivation(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in kernels.registry():
        assert f"  {name} " in out
    assert "softmax_jacobian" in out and "batch_softmax_cross_entropy_grad" in out


def test_show_derivation_states_its_assumption(capsys):
    assert cli.main(["show", "softmax_cross_entropy_grad"]) == 0
    out = capsys.readouterr().out
    assert "closed form: p_j − y_j" in out and "assumes: Σ_k y_k = 1" in out
    assert "without the assumption: −y_j + p_j*Σ_{k=1..K}[y_k]" in out
    assert "\\" not in out.split("kernel ")[0]  # no raw LaTeX in the proof part


def test_list_names_every_proof_and_show_accepts_each(capsys):
    from symce import proofs

    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    section = out.split("proofs (")[1].split("closed forms without")[0]
    listed = [line.split()[0] for line in section.splitlines()[1:] if line.strip()]
    assert listed == [p.name for p in proofs.proofs()]
    assert "weighted_target" in listed and "exp_range_reduction" in listed


def test_show_prints_every_proof_with_numbered_checked_steps(capsys):
    from symce import proofs

    for pr in proofs.proofs():
        assert cli.main(["show", pr.name]) == 0, pr.name
        out = capsys.readouterr().out
        assert out.startswith(f"{pr.name}: {pr.title.replace('$', '').replace(chr(92) + '_', '_')}")
        for number in range(1, len(pr.steps) + 1):  # numbered from 1, as in the documents
            assert f"  ({number}) = " in out, (pr.name, number)
        assert "(0)" not in out
        body = out.split("kernel ")[0]
        assert "\\" not in body and "$" not in body, pr.name  # words, not LaTeX


def test_show_states_what_is_derived(capsys):
    assert cli.main(["show", "softmax_jacobian"]) == 0
    assert "\n  ∂p_i/∂z_j\n  (1) = ∂/∂z_j[" in capsys.readouterr().out
    assert cli.main(["show", "binary_cross_entropy_grad"]) == 0
    assert "\n  ∂L/∂ŷ\n" in capsys.readouterr().out


def test_show_rules_and_assumptions_in_words(capsys):
    assert cli.main(["show", "softmax_jacobian"]) == 0
    out = capsys.readouterr().out
    assert "[quotient rule]" in out and "[case i = j]" in out and "[case i ≠ j]" in out
    assert "[substitute p_a = exp(z_a)/S]" in out
    assert cli.main(["show", "batch_softmax_cross_entropy_grad"]) == 0
    assert "assume Σ_k Y_mk = 1 for every sample m" in capsys.readouterr().out


def test_show_latex(capsys):
    assert cli.main(["show", "sigmoid_grad", "--latex"]) == 0
    out = capsys.readouterr().out
    assert "\\begin{align*}" in out and "\\sigma" in out and "(6)" in out


def test_show_kernel_prints_its_slots(capsys):
    assert cli.main(["show", "log_softmax"]) == 0
    out = capsys.readouterr().out
    assert "slot out = " in out and "log1p(Srest)" in out


def test_show_unknown_name_fails_clearly(capsys):
    assert cli.main(["show", "softmaxx"]) == 2
    assert "no kernel, proof or derivation named 'softmaxx'" in capsys.readouterr().err


def test_module_entry_point_runs_the_command_line():
    """``python -m symce`` is the command line.  A whole derive in a subprocess is
    tests/test_packaging.py's (an installed wheel's, compared with generated/); derive --check is
    tests/test_generated.py's (in-process)."""
    run = subprocess.run(
        [sys.executable, "-m", "symce", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    assert all(f"  {name} " in run.stdout for name in kernels.registry())


def test_derive_fails_naming_the_bad_step(monkeypatch, tmp_path, capsys):
    from symce import generate
    from symce.proof import ProofError

    def broken(*_a, **_k):
        raise ProofError("proof 'softmax_jacobian', step 5 (substitution): ... not proved")

    monkeypatch.setattr(generate, "render_all", broken)
    assert cli.main(["derive", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "softmax_jacobian" in err and "step 5" in err
    assert not any(tmp_path.iterdir())  # nothing written
