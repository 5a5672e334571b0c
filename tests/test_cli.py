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
    assert "closed form: p[j] - y[j]" in out and "assumes:" in out
    assert "p[j]*Sum(y[k], (k, 1, K)) - y[j]" in out


def test_show_kernel_prints_its_slots(capsys):
    assert cli.main(["show", "log_softmax"]) == 0
    out = capsys.readouterr().out
    assert "slot out = " in out and "log1p(Srest)" in out


def test_show_unknown_name_fails_clearly(capsys):
    assert cli.main(["show", "softmaxx"]) == 2
    assert "no kernel or derivation named 'softmaxx'" in capsys.readouterr().err


def test_module_entry_point_check_in_sync():
    run = subprocess.run([sys.executable, "-m", "symce", "derive", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    assert "in sync" in run.stdout


def test_derive_fails_naming_the_bad_step(monkeypatch, tmp_path, capsys):
    from symce import generate
    from symce.proof import ProofError

    def broken(*_a, **_k):
        raise ProofError("proof 'softmax_jacobian', step 4 (p_i = e^{z_i}/S): ... cannot show")
    monkeypatch.setattr(generate, "render_all", broken)
    assert cli.main(["derive", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "softmax_jacobian" in err and "step 4" in err
    assert not any(tmp_path.iterdir())  # nothing written
