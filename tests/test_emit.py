"""`symce emit`: one kernel as a snippet that compiles or runs on its own, in each language.

* C: every kernel's snippet, in float32 and float64, is its own translation unit, compiled with
  the strict warnings (an unused helper is an error: nothing but what the kernel needs), linked
  into one library, called, and compared with the full generated library;
* NumPy: every kernel's snippet runs in an empty namespace (no symce, no generated module) and
  returns the module's numbers;
* MATLAB: a kernel's file alone in an empty folder runs in Octave and returns NumPy's numbers.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from symce import check, snippets
from symce.kernels import registry

import c_build
import support
from c_build import clib  # noqa: F401  (fixture)

KERNELS = list(registry())
DTYPES = ("float32", "float64")


@pytest.fixture(scope="module")
def snippet_library(tmp_path_factory):
    gcc = c_build.gcc()
    folder = tmp_path_factory.mktemp("snippets")
    sources = []
    for name in KERNELS:
        for dtype in DTYPES:
            src = folder / f"{name}_{dtype}.c"
            src.write_text(snippets.snippet("c", name, dtype))
            sources.append(str(src))
    lib = folder / "snippets.so"
    flags = [*c_build.STRICT_FLAGS, "-O1", "-shared", "-fPIC"]
    run = subprocess.run(
        [gcc, *flags, *sources, "-o", str(lib), "-lm"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[:4000]
    return c_build.CLib(lib, "snippets")


@pytest.mark.parametrize("name", KERNELS)
def test_c_snippet_compiles_alone_and_gives_the_library_numbers(snippet_library, clib, name):
    for dtype in DTYPES:
        args = check.inputs(name, dtype)
        got = _outputs(snippet_library.call(name, dtype, *args))
        want = _outputs(clib.call(name, dtype, *args))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=check.TOL[dtype], atol=0, equal_nan=True)


def _outputs(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


@pytest.fixture(scope="module")
def module():
    """The whole generated NumPy module, as it is rendered now."""
    return check.NumPyModule().module


@pytest.mark.parametrize("name", KERNELS)
def test_numpy_snippet_runs_alone(module, name):
    code = snippets.snippet("numpy", name)
    imports = [ln.split()[1] for ln in code.splitlines() if ln.startswith(("import ", "from "))]
    assert imports == ["numpy"], imports
    alone: dict = {}
    exec(compile(code, f"{name}.py", "exec"), alone)
    for dtype in DTYPES:
        args = check.inputs(name, dtype)
        for got, want in zip(_outputs(alone[name](*args)), _outputs(getattr(module, name)(*args))):
            np.testing.assert_array_equal(got, want)


def test_matlab_snippet_runs_alone_in_octave(module, tmp_path):
    octave = support.toolchain("octave-cli", "SYMCE_REQUIRE_OCTAVE")
    z, labels = check.inputs("softmax_cross_entropy", "float64")
    (tmp_path / "symce_softmax_cross_entropy.m").write_text(
        snippets.snippet("matlab", "softmax_cross_entropy")
    )
    (tmp_path / "symce_tanh_grad.m").write_text(snippets.snippet("matlab", "tanh_grad"))
    np.savetxt(tmp_path / "z.txt", z.T, fmt="%.17g")  # MATLAB's layout: a column per sample
    np.savetxt(tmp_path / "t.txt", labels + 1, fmt="%d")  # 1-based labels
    script = (
        "z = load('z.txt'); t = load('t.txt')'; "
        "printf('%.17g\\n', symce_softmax_cross_entropy(z, t)); "
        "printf('%.17g\\n', symce_tanh_grad([-2 0 3]));"
    )
    run = subprocess.run(
        [octave, "--no-gui", "--quiet", "--norc", "--eval", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    values = [float(v) for v in run.stdout.split()]
    assert abs(values[0] - module.softmax_cross_entropy(z, labels)) <= 1e-13 * abs(values[0])
    np.testing.assert_allclose(values[1:], module.tanh_grad(np.array([-2.0, 0, 3])), rtol=1e-15)


def test_emit_on_the_command_line(capsys):
    from symce import cli

    assert cli.main(["emit", "--lang", "c", "--kernel", "tanh", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "int symce_tanh_f32(" in out
    assert "symce_tanh_f64" not in out and "symce_softmax" not in out
    assert cli.main(["emit", "--lang", "c", "--kernel", "tanhh"]) == 2
    err = capsys.readouterr().err
    assert "expected one of" in err and "tanh_grad" in err
    with pytest.raises(SystemExit) as bad:  # argparse: the valid choices
        cli.main(["emit", "--lang", "rust", "--kernel", "tanh"])
    assert bad.value.code == 2
    err = capsys.readouterr().err
    assert "numpy" in err and "matlab" in err
    with pytest.raises(SystemExit) as helped:
        cli.main(["emit", "--help"])
    assert helped.value.code == 0 and "--dtype" in capsys.readouterr().out
