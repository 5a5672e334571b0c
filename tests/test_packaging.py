"""symce as users install it: a wheel (pip install ., not editable) carries the templates, and its
`symce derive --out DIR` works from any directory and writes what the checkout's generated/ holds."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import c_build

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """symce's wheel, built from this checkout without network (setuptools is installed).  The
    build writes build/ and symce.egg-info in the checkout: pytest-xdist's workers take turns."""
    out = tmp_path_factory.mktemp("wheel")
    (ROOT / "build").mkdir(exist_ok=True)
    with c_build.file_lock(ROOT / "build" / "wheel.lock"):
        run = _build_wheel(out)
    if run.returncode != 0 and "No module named pip" in run.stderr:
        pytest.skip("pip is not available to build the wheel")
    assert run.returncode == 0, run.stdout + run.stderr
    (path,) = out.glob("symce-*.whl")
    return path


def _build_wheel(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_wheel_ships_every_template(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    templates = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*.jinja")
    )
    assert templates, "no templates in the checkout"
    missing = [t for t in templates if "symce/" + t not in names]
    assert not missing, f"templates missing from the wheel: {missing}"
    assert "symce/lang/c_backend.py" in names
    # every module of the package, symce.library's declarations too (an editable install on the
    # path would hide a missing one from the run below)
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "symce").rglob("*.py"))
    assert not [m for m in modules if m not in names], "modules missing from the wheel"


@pytest.mark.slow
def test_installed_wheel_derives_from_any_directory(wheel, tmp_path):
    """Unpacked as pip installs it (no checkout on the path), run from an empty directory:
    symce derive --out DIR writes the same files as the checkout's generated/ (so --check,
    test_generated.py's round trip, agrees); without --out it would write ./generated."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))

    def python(*args):
        return subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, cwd=work, env=env, timeout=300
        )

    where = python("-c", "import symce; print(symce.__file__)")
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    run = python("-m", "symce", "derive", "--out", "kernels")
    assert run.returncode == 0, run.stdout + run.stderr
    written = {
        p.relative_to(work / "kernels").as_posix(): p.read_text(encoding="utf-8")
        for p in (work / "kernels").rglob("*")
        if p.is_file()
    }
    expected = {
        p.relative_to(ROOT / "generated").as_posix(): p.read_text(encoding="utf-8")
        for p in (ROOT / "generated").rglob("*")
        if p.is_file()
        and p.name != ".gitkeep"
        and "__pycache__" not in p.parts
        and p.suffix not in (".pdf", ".aux", ".log", ".out", ".toc", ".fls", ".fdb_latexmk")
    }
    assert written == expected
    assert not (work / "generated").exists()
    default = python("-c", "from symce import generate; print(generate.default_out())")
    assert Path(default.stdout.strip()) == work / "generated", default.stdout + default.stderr
    assert (site / "symce" / "templates" / "c" / "symce.c.jinja").is_file()
