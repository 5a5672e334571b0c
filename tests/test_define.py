"""The public API for user-defined functions (symce.define_activation) and symce's library, which
uses nothing else: closed forms found (not typed), proofs checked, hostile declarations refused,
kernels emitted in every language and checked against mpmath like the built-ins."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy as sp

import symce
from symce import check, definitions, derive, kernels, proof, proofs
from symce import model as m

x = sp.Symbol("x", real=True)
LIBRARY = ("tanh", "softplus", "log_sigmoid")


@pytest.mark.parametrize(
    "name, closed",
    [
        ("tanh", 1 - sp.Symbol("tanh", real=True) ** 2),  # in its own output
        ("softplus", m.s),  # the sigmoid
        ("log_sigmoid", 1 - m.s),
    ],
)
def test_the_engine_finds_the_closed_form(name, closed):
    res = derive.result(name + "_grad")
    assert sp.expand(res.closed - closed) == 0
    named = dict(res.named)
    # the form, unfolded, is the derivative of the definition
    assert sp.simplify(res.closed.xreplace(named) - res.raw) == 0


@pytest.mark.parametrize("name", LIBRARY)
def test_each_library_proof_is_checked(name):
    pr = proofs.by_name()[name + "_grad"]
    counts = proof.verify(pr)
    assert counts["rule_verified"] >= 2 and counts["definitions_checked"] == 1


@pytest.mark.parametrize("name", LIBRARY)
def test_library_functions_are_kernels(name):
    kern = kernels.registry()[name]
    grad = kernels.registry()[name + "_grad"]
    assert kern.family == grad.family == "elementwise"
    assert kern.defined_in == f"symce.library.{name}"
    assert grad.derivation == name + "_grad"


def test_library_kernels_pass_the_numeric_check_in_every_language():
    names = [n for lib in LIBRARY for n in (lib, lib + "_grad")]
    rows = check.check(names)
    assert {r[1] for r in rows} >= {"numpy"}
    failed = [r for r in rows if r[6] is False]
    assert not failed, check.table(rows)
    assert all(r[3] is not None for r in rows)  # elementwise: every language checks them


def test_log_sigmoid_is_stable_at_both_ends():
    ns = {}
    from symce import snippets

    exec(snippets.snippet("numpy", "log_sigmoid"), ns)
    exec(snippets.snippet("numpy", "log_sigmoid_grad"), ns)
    import numpy as np

    v = np.array([-1000.0, -40.0, 40.0, 1000.0])
    out = ns["log_sigmoid"](v)
    assert out[0] == -1000.0 and out[3] == -0.0 or abs(out[3]) < 1e-300
    assert abs(out[2] + 4.248354255291589e-18) < 1e-30
    grad = ns["log_sigmoid_grad"](v)
    assert grad[0] == 1.0 and 0 < grad[2] < 1e-17 and grad[3] == 0.0


# ---- hostile and wrong declarations ----------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"name": "x;system('rm -rf /')"}, ValueError, "identifier"),
        ({"name": "sigmoid"}, ValueError, "already taken"),
        ({"name": "tanh"}, ValueError, "already defined"),
        ({"name": "while"}, ValueError, "reserved"),
        ({"name": "Tanh2"}, ValueError, "lowercase"),
        ({"name": 7}, TypeError, "string"),
        ({"definition": "exp(x)"}, TypeError, "SymPy expression"),
        ({"definition": sp.exp(x) * sp.Symbol("y")}, ValueError, "one variable"),
        ({"definition": sp.erf(x)}, ValueError, "not printed in every language"),
        ({"definition": sp.Integer(3)}, ValueError, "one variable"),
        ({"summary": "ok'); exec('bad"}, ValueError, "summary"),
        ({"summary": "two\nlines"}, ValueError, "summary"),
        ({"summary": "{{ x }}"}, ValueError, "summary"),
        ({"summary": "ends */ int x; /*"}, ValueError, "summary"),
        ({"stable": sp.exp(2 * x)}, ValueError, "not equal"),
        ({"grad_stable": sp.exp(x)}, ValueError, "not equal"),
        ({"example": ("a",)}, TypeError, "example"),
    ],
)
def test_bad_declarations_are_refused(kwargs, exc, words):
    args = {"name": "user_fn", "definition": sp.exp(x) / (1 + sp.exp(x)), **kwargs}
    if args["name"] == "tanh":
        args["definition"] = sp.exp(x)
    try:
        with pytest.raises(exc, match=words):
            symce.define_activation(args.pop("name"), args.pop("definition"), **args)
    finally:
        if "user_fn" in [a.name for a in definitions.activations()]:
            definitions.forget("user_fn")
            pytest.fail("a refused declaration was registered")


def test_a_defined_function_joins_and_leaves_the_registry():
    symce.define_activation("user_swish", x / (1 + sp.exp(-x)), example=(-1.0, 1.0))
    try:
        assert "user_swish_grad" in kernels.registry()
        res = derive.result("user_swish_grad")
        assert m.s in res.closed.free_symbols  # in the sigmoid and x
        proof.verify(proofs.by_name()["user_swish_grad"])
        rows = check.check(["user_swish", "user_swish_grad"], ["numpy"])
        assert all(r[6] for r in rows), check.table(rows)
    finally:
        definitions.forget("user_swish")
    assert "user_swish" not in kernels.registry()


def test_the_command_line_lists_a_user_module_outside_the_checkout(tmp_path, capsys):
    """A module whose file name would be LaTeX (braces, %, $) is named safely in the proofs;
    mish' has no polynomial closed form in its output or sigma: the proof ends in x."""
    (tmp_path / "my{defs}%$.py").write_text(
        textwrap.dedent(
            """
            import sympy as sp
            import symce

            x = sp.Symbol("x", real=True)
            symce.define_activation("mish_like", x * sp.tanh(sp.log(1 + sp.exp(x))))
            """
        )
    )
    from symce import cli

    try:
        assert (
            cli.main(["show", "mish_like_grad", "--module", str(tmp_path / "my{defs}%$.py")]) == 0
        )
        out = capsys.readouterr().out
    finally:
        definitions.forget("mish_like")
    assert "closed form: " in out and "mish_like_grad" in out
    pr = out.split("closed form: ")[1].splitlines()[0]
    assert "exp(" in pr  # in x: no output symbol fits
    # declared from a module whose __name__ is not an identifier: not printed into the proofs
    code = "symce.define_activation('mish_like', x * sp.tanh(sp.log(1 + sp.exp(x))))"
    exec(code, {"__name__": "my{defs}%$", "symce": symce, "sp": sp, "x": x})
    try:
        intro = proofs.by_name()["mish_like_grad"].intro
        assert "{defs}" not in intro and "%" not in intro and "texttt{a module}" in intro
    finally:
        definitions.forget("mish_like")


def test_the_readme_example_runs_as_printed_in_a_fresh_folder(tmp_path):
    """README "Define your own function": its file and its three commands, outside the checkout."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Define your own function") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    commands = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) < 20
    (tmp_path / "mydefs.py").write_text(code)
    outputs = []
    for line in commands.strip().splitlines():
        argv = line.split("#")[0].split()
        assert argv[0] == "symce"
        run = subprocess.run(
            [sys.executable, "-m", "symce", *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, (line, run.stderr[-2000:])
        outputs.append(run.stdout)
    assert "closed form: −σ² x + σ x + σ" in outputs[0]
    assert (tmp_path / "out" / "latex" / "swish_grad.tex").is_file()
    assert "symce_swish_grad_f32" in (tmp_path / "out" / "c" / "symce.c").read_text()
    assert "int symce_brier_grad_soft_f64(" in (tmp_path / "out" / "c" / "symce.c").read_text()
    assert "def brier(" in (tmp_path / "out" / "numpy" / "symce_kernels.py").read_text()
    assert "FAIL" not in outputs[2] and re.search(r"all \d+ checks passed", outputs[2])


def test_the_variable_may_be_any_symbol_and_the_stable_form_must_use_it():
    t = sp.Symbol("t")  # no assumptions: symce takes it as real
    act = symce.define_activation(
        "half_softplus2", sp.log(1 + sp.exp(2 * t)) / 2, stable=symce.softplus(2 * t) / 2
    )
    try:
        assert act.var.name == "t" and act.var.is_real
        assert kernels.registry()["half_softplus2"].slots["out"].free_symbols == {kernels.x}
        with pytest.raises(ValueError, match="alone, got also u"):
            symce.define_activation("other_fn", sp.exp(t), stable=sp.exp(sp.Symbol("u")))
    finally:
        definitions.forget("half_softplus2")


def test_a_fresh_process_cannot_take_a_library_name():
    """The library is declared before any user's function, even the first thing a process does."""
    code = (
        "import sympy as sp, symce\n"
        "x = sp.Symbol('x', real=True)\n"
        "try:\n"
        "    symce.define_activation('tanh', sp.exp(x))\n"
        "except ValueError as err:\n"
        "    print(err)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "already defined (in symce.library.tanh)" in run.stdout


# ---- losses (symce.define_loss) ----------------------------------------------------------------
v_ = sp.Symbol("v", real=True)
y_ = sp.Symbol("y", real=True)


def test_nll_loss_is_declared_through_the_public_api():
    kern, grad = kernels.registry()["nll_loss"], kernels.registry()["nll_loss_grad"]
    assert kern.defined_in == grad.defined_in == "symce.library.nll_loss"
    assert kern.family == grad.family == "ce_probs"
    assert kern.inputs[0].name == "input" and not kern.checks_domain
    assert derive.result("nll_loss_grad").closed == -y_
    counts = proof.verify(proofs.by_name()["nll_loss_grad"])
    assert counts["rule_verified"] >= 1 and counts["definitions_checked"] == 1


def test_a_user_loss_is_derived_proved_and_emitted():
    """A loss of one line: its gradient derived, proved and checked in NumPy against mpmath."""
    import numpy as np

    from symce import reference, snippets

    term = y_ * sp.exp(-v_) + v_  # the Poisson negative log-likelihood in log-rate
    try:
        symce.define_loss("user_poisson", term, input=v_, target=y_, summary="A user loss.")
        assert sp.simplify(derive.result("user_poisson_grad").closed - (1 - y_ * sp.exp(-v_))) == 0
        proof.verify(proofs.by_name()["user_poisson_grad"])
        ns = {}
        exec(snippets.snippet("numpy", "user_poisson_grad"), ns)
        v = np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -0.5]])
        t = np.array([2, 0])
        got = ns["user_poisson_grad"](v, t, reduction="sum", label_smoothing=0.1)
        want = reference.evaluate(
            "user_poisson_grad", v, t, reduction="sum", label_smoothing=0.1
        ).astype(float)
        np.testing.assert_allclose(got, want, rtol=1e-14)
    finally:
        definitions.forget("user_poisson")


# a user loss's inputs in the tests below: logits far out (+-40) and near 0, soft and 0/1 targets
USER_INPUTS = (
    np.array([[40.0, -40.0, 0.5], [2.0, -3.0, 0.0]]),
    np.array([[1.0, 0.0, 0.3], [0.0, 1.0, 0.5]]),
)


def _proved_and_checked(name: str):
    """The declared loss ``name``: its gradient's proof verified, it and its gradient passing
    symce check in every language present; its NumPy function, from its emitted snippet."""
    from symce import snippets

    proof.verify(proofs.by_name()[name + "_grad"])
    rows = check.check([name, name + "_grad"])
    failed = [r for r in rows if r[6] is False]
    assert not failed, check.table(rows)
    ns = {}
    exec(snippets.snippet("numpy", name), ns)
    return ns[name]


def test_a_user_loss_with_a_switch_and_batchmean_passes_every_languages_check():
    """A user's loss over elements with a switch (two forms, one with its stable form) and
    batchmean: derived, proved, and checked against mpmath in every language present, each
    form; no symce file knows it."""
    import numpy as np

    from symce import reference

    flip = sp.Symbol("flip", real=True)
    term = symce.select(flip, (v_ - y_) ** 2, sp.log(1 + sp.exp(v_)) - y_ * v_)
    try:
        symce.define_loss(
            "user_flip",
            term,
            input=v_,
            target=y_,
            over="elements",
            options={"flip": symce.switch(True, doc="squared error, else BCE with logits")},
            stable=symce.select(flip, (v_ - y_) ** 2, symce.softplus(v_) - y_ * v_),
            reductions=("none", "mean", "sum", "batchmean"),
        )
        res = derive.result("user_flip_grad")
        on, off = (res.closed.xreplace({flip: b}) for b in (1, 0))
        assert sp.simplify(on - 2 * (v_ - y_)) == 0
        assert sp.simplify(off - (1 / (1 + sp.exp(-v_)) - y_)) == 0
        user_flip = _proved_and_checked("user_flip")
        v, y = USER_INPUTS
        for value in (False, True):
            got = user_flip(v, y, flip=value, reduction="batchmean")
            want = reference.evaluate("user_flip", v, y, flip=value, reduction="batchmean")
            np.testing.assert_allclose(got, float(want), rtol=1e-15)
    finally:
        definitions.forget("user_flip")


def test_a_user_loss_with_a_comparison_of_options_passes_every_languages_check():
    """A select on a comparison of an option with a number (torchvision's "a negative alpha: no
    weighting"): both forms derived and proved, checked against mpmath in every language at the
    default (the negative form), and NumPy against the reference at both forms."""
    import numpy as np

    from symce import reference

    beta = sp.Symbol("beta", real=True)
    bce = y_ * sp.log(1 + sp.exp(-v_)) + (1 - y_) * sp.log(1 + sp.exp(v_))
    stable = y_ * symce.softplus(-v_) + (1 - y_) * symce.softplus(v_)
    weight = symce.select(beta >= 0, beta * y_ + (1 - y_), 1)
    try:
        symce.define_loss(
            "user_posweight",
            weight * bce,
            input=v_,
            target=y_,
            over="elements",
            options={"beta": symce.option(-1.0, doc="positive weight (negative: none)")},
            stable=weight * stable,
        )
        res = derive.result("user_posweight_grad")
        on, off = (res.closed.xreplace({symce.functions.iverson(beta >= 0): b}) for b in (1, 0))
        assert sp.simplify(off - (1 / (1 + sp.exp(-v_)) - y_)) == 0
        assert sp.simplify(on - (beta * y_ + 1 - y_) * (1 / (1 + sp.exp(-v_)) - y_)) == 0
        user_posweight = _proved_and_checked("user_posweight")
        v, y = USER_INPUTS
        for value in (-1.0, -0.0, 0.0, 3.0):
            got = user_posweight(v, y, beta=value, reduction="sum")
            want = reference.evaluate("user_posweight", v, y, beta=value, reduction="sum")
            np.testing.assert_allclose(got, float(want), rtol=1e-15)
        # beta = 1 weighs nothing: the same as no weighting
        assert user_posweight(v, y, beta=1.0) == user_posweight(v, y, beta=-2.0)
    finally:
        definitions.forget("user_posweight")


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"name": "nll_loss"}, ValueError, "already defined"),
        ({"name": "cross_entropy"}, ValueError, "already taken"),
        ({"name": 'a"); system("x'}, ValueError, "identifier"),
        ({"term": "-y*v"}, TypeError, "SymPy expression"),
        ({"term": -y_ * sp.Symbol("q")}, ValueError, "q"),
        ({"term": -y_ * 3}, ValueError, "does not depend on the input"),
        ({"term": sp.erf(v_) * y_}, ValueError, "not printed in every language"),
        ({"input": "v"}, TypeError, "Symbol"),
        ({"target": v_}, ValueError, "two different symbols"),
        ({"over": "rows"}, ValueError, "over"),
        ({"input_name": "weight"}, ValueError, "taken"),
        ({"input_name": "int"}, ValueError, "reserved"),
        ({"input_name": "total"}, ValueError, "generated code"),
        ({"input_name": "np"}, ValueError, "generated code"),
        ({"input_name": "x); exit(1); ("}, ValueError, "identifier"),
        ({"input_doc": "a */ comment"}, ValueError, "summary"),
        ({"summary": "{% raw %}"}, ValueError, "summary"),
        ({"example": (((0.1, 0.2),), (5,))}, ValueError, "labels in"),
        ({"example": (((0.1, 0.2),), (0,), {"weight": 1})}, ValueError, "options"),
        ({"example": ("ab", (0,))}, TypeError, "example"),
    ],
)
def test_bad_loss_declarations_are_refused(kwargs, exc, words):
    args = {"name": "user_loss", "term": -y_ * v_, "input": v_, "target": y_, **kwargs}
    try:
        with pytest.raises(exc, match=words):
            symce.define_loss(args.pop("name"), args.pop("term"), **args)
    finally:
        if "user_loss" in [a.name for a in definitions.losses()]:
            definitions.forget("user_loss")
    assert "user_loss" not in kernels.registry()


# ---- losses over elements, with options (focal_loss) ---------------------------------------------
def test_focal_loss_is_proved_with_its_gamma_0_case():
    kern, grad = kernels.registry()["focal_loss"], kernels.registry()["focal_loss_grad"]
    assert kern.family == grad.family == "bce" and kern.defined_in == "symce.library.focal_loss"
    assert [o.name for o in kern.scalars] == ["alpha", "gamma"]
    assert kern.options == ("weight", "alpha", "gamma", "reduction")
    counts = proof.verify(proofs.by_name()["focal_loss_grad"])
    assert counts["facts"] == 1 and counts["definitions_checked"] == 1


def test_focal_loss_at_gamma_0_is_the_weighted_bce_and_finite_everywhere():
    """gamma = 0: alpha_t times the BCE with logits and its gradient, in NumPy, to the last
    logit; the gradient is finite where q = 1 - p_t underflows (|x| > 745) for every gamma."""
    import numpy as np

    from symce import snippets

    ns = {}
    for name in ("focal_loss", "focal_loss_grad", "sigmoid_binary_cross_entropy"):
        exec(snippets.snippet("numpy", name), ns)
    exec(snippets.snippet("numpy", "sigmoid_binary_cross_entropy_grad"), ns)
    x = np.array([-1000.0, -750.0, -40.0, -1.0, 0.0, 2.0, 40.0, 750.0, 1000.0])
    y = np.array([0.0, 1.0, 0.0, 0.3, 1.0, 0.0, 1.0, 1.0, 0.0])
    alpha_t = 0.25 * y + 0.75 * (1 - y)
    loss = ns["focal_loss"](x, y, gamma=0.0, reduction="none")
    bce = ns["sigmoid_binary_cross_entropy"](x, y, reduction="none")
    np.testing.assert_allclose(loss, alpha_t * bce, rtol=1e-15, atol=0)
    grad = ns["focal_loss_grad"](x, y, gamma=0.0, reduction="none")
    bce_grad = ns["sigmoid_binary_cross_entropy_grad"](x, y, reduction="none")
    # the same formula, rounded in another order (the BCE's cancels for a soft target)
    np.testing.assert_allclose(grad, alpha_t * bce_grad, rtol=1e-14, atol=0)
    for gamma in (0.0, 0.3, 1.0, 2.0, 5.0):
        assert np.isfinite(ns["focal_loss_grad"](x, y, gamma=gamma, reduction="none")).all()
    # torchvision's alpha = -1 (any negative alpha): no weighting, twice alpha = 0.5's loss
    for name in ("focal_loss", "focal_loss_grad"):
        for alpha in (-1.0, -1e-300, -1e300):
            none = ns[name](x, y, alpha=alpha, reduction="none")
            np.testing.assert_array_equal(none, 2 * ns[name](x, y, alpha=0.5, reduction="none"))
        with pytest.raises(ValueError, match=r"alpha: expected a number in \(-inf, 1"):
            ns[name](x, y, alpha=1.5)
        for bad in (np.nan, -np.inf):  # the interval is open at -inf: not a number in it
            with pytest.raises(ValueError, match="alpha"):
                ns[name](x, y, alpha=bad)


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"options": {"total": symce.option(1.0)}}, ValueError, "generated code"),
        ({"options": {"weight": symce.option(1.0)}}, ValueError, "taken"),
        ({"options": {"opt_a": symce.option(1.0)}}, ValueError, "opt_"),
        ({"options": {"v": symce.option(1.0)}}, ValueError, "input's or the target's symbol"),
        ({"options": {"beta": 2.0}}, TypeError, "symce.option"),
        ({"options": {"a b": symce.option(1.0)}}, ValueError, "identifier"),
        ({"options": ["a"]}, TypeError, "dict"),
        ({"over": "classes", "options": {"beta": symce.option(1.0)}}, ValueError, "options"),
        ({"grad": sp.Symbol("q"), "where": {"q": 2 * v_}}, ValueError, "not the derivative"),
        ({"where": {"q": v_}}, ValueError, "grad="),
        ({"cases": (({"b": 0}, v_, "x"),)}, ValueError, "not an option"),
        ({"cases": (({"beta": -1}, v_, "x"),)}, ValueError, "outside"),
        ({"cases": ("a",)}, TypeError, "cases"),
        ({"stable": y_ * v_}, ValueError, "not equal"),
        # switches and reductions
        ({"term": symce.select(sp.Symbol("beta", real=True), v_**2, v_)}, ValueError, "switch"),
        ({"term": symce.select(y_, v_**2, v_)}, ValueError, "switch's symbol"),
        (
            {
                "term": sp.Symbol("flip", real=True) * v_**2,
                "options": {"flip": symce.switch(False)},
            },
            ValueError,
            "only be select's first argument",
        ),
        (
            {
                "term": symce.select(sp.Symbol("flip", real=True), v_**2, v_),
                "options": {"flip": symce.switch(True)},
                "stable": symce.select(sp.Symbol("flip", real=True), v_, v_**2),
            },
            ValueError,
            "flip = ",
        ),
        (
            {
                "term": symce.select(sp.Symbol("flip", real=True), v_**2, v_),
                "options": {"flip": symce.switch(True)},
                "example": (((1.0,),), ((0.0,),), {"flip": 1}),
            },
            ValueError,
            "option flip",
        ),
        # a select on a comparison: of options with numbers, nothing else
        ({"term": symce.select(v_ >= 0, v_**2, v_)}, ValueError, "comparison"),
        ({"term": symce.select(sp.Symbol("beta", real=True) >= y_, v_**2, v_)}, ValueError, "y"),
        (
            {"term": symce.select(sp.Eq(sp.Symbol("beta", real=True), 0), v_**2, v_)},
            ValueError,
            "Eq",
        ),
        (
            {"term": symce.select(sp.exp(sp.Symbol("beta", real=True)) > 1, v_**2, v_)},
            ValueError,
            "comparison",
        ),
        (
            {
                "term": symce.select(sp.Symbol("flip", real=True) > 0, v_**2, v_),
                "options": {"flip": symce.switch(False)},
            },
            ValueError,
            "comparison",
        ),
        (
            {"term": symce.functions.iverson(sp.Symbol("beta", real=True) >= 0) * v_**2},
            ValueError,
            "iverson",
        ),
        (
            {
                "term": symce.select(sp.Symbol("beta", real=True) >= 0, v_**2, v_),
                "stable": symce.select(sp.Symbol("beta", real=True) >= 0, v_, v_**2),
            },
            ValueError,
            "beta >= 0",
        ),
        ({"reductions": ("none", "mean", "sum", "median")}, ValueError, "median"),
        ({"reductions": ("none", "sum")}, ValueError, "'mean'"),
        ({"reductions": "batchmean"}, TypeError, "tuple"),
        (
            {
                "over": "classes",
                "term": v_**2,
                "options": {},
                "reductions": ("none", "mean", "sum", "batchmean"),
            },
            ValueError,
            "over 'elements'",
        ),
        ({"example": (((1.0,),), ((0.0,),), {"reduction": "batchmean"})}, ValueError, "reduction"),
    ],
)
def test_bad_options_are_refused(kwargs, exc, words):
    a = sp.Symbol("beta", real=True)
    args = {
        "name": "user_el",
        "term": a * (v_ - y_) ** 2,
        "input": v_,
        "target": y_,
        "over": "elements",
        "options": {"beta": symce.option(1.0, low=0.0)},
        **kwargs,
    }
    try:
        with pytest.raises(exc, match=words):
            symce.define_loss(args.pop("name"), args.pop("term"), **args)
    finally:
        if "user_el" in [a.name for a in definitions.losses()]:
            definitions.forget("user_el")


@pytest.mark.parametrize(
    "args, kwargs, exc, words",
    [
        ((float("nan"),), {}, TypeError, "real number"),
        (("1",), {}, TypeError, "real number"),
        ((True,), {}, TypeError, "real number"),
        ((1.0,), {"low": 2.0}, ValueError, "outside"),
        ((1.0,), {"low": 2.0, "high": 0.0}, ValueError, "above"),
        ((1.0,), {"high": float("inf")}, ValueError, "finite"),
        ((1.0,), {"doc": "a */ b"}, ValueError, "summary"),
    ],
)
def test_bad_option_records_are_refused(args, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        symce.option(*args, **kwargs)


@pytest.mark.parametrize("default", [0, 1, 0.0, "False", None])
def test_a_switch_default_is_a_bool(default):
    with pytest.raises(TypeError, match="True or False"):
        symce.switch(default)


def test_kl_div_picks_its_form_by_the_switch_and_takes_batchmean():
    """Each form of the switch in NumPy against its definition; batchmean is the sum over the
    first extent; a target without mass adds 0 even at v = -inf; other losses refuse batchmean."""
    import numpy as np

    from symce import snippets

    ns: dict = {}
    for name in ("kl_div", "kl_div_grad", "focal_loss"):
        exec(snippets.snippet("numpy", name), ns)
    rng = np.random.default_rng(5)
    v = np.log(rng.dirichlet(np.ones(4), size=3))
    y = rng.dirichlet(np.ones(4), size=3)
    none = {"reduction": "none"}
    np.testing.assert_allclose(ns["kl_div"](v, y, **none), y * (np.log(y) - v), rtol=1e-14)
    lt = np.log(y)
    got = ns["kl_div"](v, lt, log_target=True, **none)
    np.testing.assert_allclose(got, y * (lt - v), rtol=1e-14)
    np.testing.assert_allclose(ns["kl_div_grad"](v, lt, log_target=np.True_, **none), -y)
    np.testing.assert_array_equal(ns["kl_div_grad"](v, y, log_target=0, **none), -y)
    total = ns["kl_div"](v, y, reduction="sum")
    np.testing.assert_allclose(ns["kl_div"](v, y, reduction="batchmean"), total / 3, rtol=1e-15)
    np.testing.assert_allclose(ns["kl_div_grad"](v, y, reduction="batchmean"), -y / 3, rtol=1e-15)
    zero = ns["kl_div"](np.array([-np.inf, -1.0]), np.array([0.0, 0.5]), reduction="none")
    assert zero[0] == 0 and np.isfinite(zero[1])
    zero = ns["kl_div"](np.array([-np.inf]), np.array([-np.inf]), log_target=True, **none)
    assert zero[0] == 0
    assert np.isnan(ns["kl_div"](np.array([-1.0]), np.array([-0.5]), **none)[0])
    for bad in ("yes", 2, 0.5, None):
        with pytest.raises(ValueError, match="log_target: expected True or False"):
            ns["kl_div"](v, y, log_target=bad)
    with pytest.raises(ValueError, match="'batchmean'"):
        ns["kl_div"](v, y, reduction="median")
    with pytest.raises(ValueError, match="expected 'none', 'mean' or 'sum'"):
        ns["focal_loss"](v, y, reduction="batchmean")
