"""The ``symce`` command line (also ``python -m symce``).

symce list                 the kernels and the derivations
symce show NAME [--latex]  a proof (numbered, checked steps, rules in words), a derivation
                           (closed form, assumptions) or a kernel (formula, slots)
symce derive [--check]     verify every proof and (re)generate generated/, or compare with it
symce emit --lang L --kernel NAME [--dtype T]
                           one kernel as a self-contained snippet to paste (NumPy, C, MATLAB)
symce check [NAME ...]     each kernel against mpmath in every language whose toolchain is here
Each takes --module FILE: a user's declarations (symce.define_activation, symce.define_loss).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .proof import Step


def _progress(what: str) -> None:
    print(f"symce: {what}", file=sys.stderr, flush=True)


def _load_modules(paths) -> None:
    """Run each user module (a Python file declaring functions with symce.define_activation or
    symce.define_loss)."""
    import importlib.util
    import re

    for index, path in enumerate(paths or ()):
        file = Path(path)
        if not file.is_file():
            raise SystemExit(f"symce: --module {path}: no such file")
        stem = re.sub(r"[^A-Za-z0-9_]", "_", file.stem)  # the name is printed into the proofs
        spec = importlib.util.spec_from_file_location(f"symce_user_{index}_{stem}", file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except (TypeError, ValueError) as err:
            raise SystemExit(f"symce: --module {path}: {err}") from None


def _derive(args) -> int:
    from . import generate
    from .proof import ProofError
    from .proofs import proofs

    out = Path(args.out) if args.out is not None else generate.default_out()
    try:
        _progress(f"verifying {len(proofs())} proofs (every step), then rendering")
        files = generate.render_all(progress=lambda name: _progress(f"rendering {name}"))
        if args.check:
            text = generate.diff(out, files)
            if text:
                sys.stdout.write(text)
                print(
                    f"{out} is out of sync with symce + templates: "
                    "run `make derive` (or symce derive --out) and commit.",
                    file=sys.stderr,
                )
                return 1
            print(f"{out} is in sync with symce + templates")
            return 0
        files = generate.write(out, files)
    except ProofError as err:
        print(f"symce: a derivation step does not hold: {err}", file=sys.stderr)
        return 2
    from .proofs import verification_counts

    counts = verification_counts()
    total = {key: sum(v[key] for v in counts.values()) for key in next(iter(counts.values()))}
    checked = total["steps"] - total["definitions"] - total["algebra"]
    print(
        f"verified {len(counts)} proofs, {total['steps']} steps: {total['definitions']} opening "
        f"definitions ({total['definitions_checked']} checked against the engine), "
        f"{total['rule_verified']} of {checked} rule steps confirmed as applications of their "
        f"rule, {total['algebra']} algebra steps checked as algebra alone; "
        f"{total['facts']} side conditions"
    )
    print(f"wrote {len(files)} files under {out}")
    return 0


def _list(args) -> int:
    from .derive import results
    from .kernels import registry
    from .proofs import proofs

    print("kernels:")
    width = max(len(n) for n in registry()) + 2
    for kern in registry().values():
        origin = f"  [declared in {kern.defined_in}]" if kern.defined_in else ""
        print(f"  {kern.name:{width}s} {kern.formula}{origin}")
    print("proofs (symce show NAME prints the numbered, checked steps):")
    written = set()
    for pr in proofs():
        written.add(pr.name)
        print(f"  {pr.name:44s} {_plain_heading(pr.title)}")
    rest = [res for res in results().values() if res.name not in written]
    if rest:
        print("closed forms without a written proof (symce show NAME):")
        for res in rest:
            print(f"  {res.name:44s} {res.spec.title}")
    return 0


def _definition_words(name, lets) -> str:
    """'p_a = exp(z_a)/S': what a substitution put in, in plain text."""
    import sympy as sp

    from . import model
    from .lang.text import text

    for sym, value in lets:
        if sym == name:
            return f"{text(sym)} = {text(value)}"
    if isinstance(name, sp.IndexedBase):
        a = sp.Symbol("a", integer=True)
        return f"{text(name[a])} = {text(model.INDEXED_DEFS[name](a))}"
    if name in model.SCALAR_DEFS:
        return f"{text(name)} = {text(model.SCALAR_DEFS[name])}"
    return text(name)


def step_words(step: Step, lets: tuple = ()) -> str:
    """A step's justification in words: its rules, what was substituted, the case or assumption."""
    from .lang.text import text

    parts = []
    for rule in step.rules:
        if rule.kind == "substitute":
            parts.append(
                "substitute " + ", ".join(_definition_words(nm, lets) for nm in rule.names)
            )
        elif rule.kind in ("case", "assumption"):
            word = "case" if rule.kind == "case" else "assume"
            parts.append(word + " " + ", ".join(c.words or c.latex for c in step.given))
        elif rule.kind == "cite" and rule.lemma:
            lhs, rhs = rule.lemma
            parts.append(f"lemma {text(lhs)} = {text(rhs)} (checked)")
        else:
            parts.append(rule.words)
    return ", ".join(parts)


def _plain_heading(heading: str) -> str:
    for tex, plain in (
        (r"\_", "_"),
        (r"\neq", "≠"),
        (r"\varepsilon", "ε"),
        ("--", "–"),
        ("$", ""),
        ("  ", " "),
    ):
        heading = heading.replace(tex, plain)
    return heading


def _plain_lhs(tex: str) -> str:
    """A proof's left-hand side (LaTeX) as plain text: \\frac{\\partial L}{\\partial z_j} -> ∂L/∂z_j."""
    import re

    for a, b in (
        (r"\hat{y}", "ŷ"),
        (r"\log", "log "),
        (r"\sum_k", "Σ_k "),
        (r"\sigma", "σ"),
        (r"\theta", "θ"),
        (r"\partial", "∂"),
        (",", ""),
        (r"\_", "_"),
    ):
        tex = tex.replace(a, b)
    tex = re.sub(r"\\operatorname\{([^{}]*)\}", r"\1", tex)  # a defined function's name
    tex = re.sub(r"([_^])\{([^{}]*)\}", r"\1\2", tex)  # z_{k} -> z_k, e^{z_k} -> e^z_k
    tex = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"\1/\2 ", tex)
    return " ".join(tex.replace("∂ ", "∂").split())


def _show_proof(pr, latex: bool) -> None:
    import sympy as sp

    from .derive import display, results
    from .lang.text import text
    from .proof import verify

    counts = verify(pr)  # every step checked before a line is printed
    print(f"{pr.name}: {_plain_heading(pr.title)}")
    scope = (
        "symbolically for general K and N"
        if any(sp.sympify(s.expr).atoms(sp.Indexed) for s in pr.steps)
        else "symbolically"
    )
    print(
        f"  {counts['steps']} steps, each checked {scope}, numerically at 40 digits, and as an "
        f"application of the rule it names ({counts['rule_verified']} by a rule, "
        f"{counts['algebra']} by algebra alone, {counts['definitions']} definition)"
    )
    if latex:
        from .lang import latex as L

        for heading, lines, reasons in L.proof_blocks(pr, lambda nm: f"({nm})"):
            if heading:
                print(f"% {heading}")
            print(r"\begin{align*}")
            for label, lhs, rhs in lines:
                print(f"{lhs} &= {rhs} && {label} \\\\")
            print(r"\end{align*}")
            for number, why in reasons:
                print(f"% ({number}) {why}")
    else:
        for index, step in enumerate(pr.steps):
            ref = step.ref if step.ref is not None else index - 1
            if step.block:
                print(f"  {_plain_heading(step.block)}:")
            if index == 0 and step.lhs is None:
                print(f"  {_plain_lhs(pr.lhs)}")
            if step.lhs is not None:
                print(f"  {text(step.lhs)}")
            elif step.block and index:
                print(f"       = {text(pr.steps[ref].expr)}   (from step {ref + 1})")
            words = step_words(step, pr.let) or "definition"
            print(f"  ({index + 1:d}) = {text(step.expr)}")
            print(f"        [{words}]")
    for fact in pr.facts:
        ok, detail = fact.check()
        print(f"  checked: {fact.name}: {detail}")
    if pr.result:
        res = results()[pr.result]
        print(f"  closed form: {display(pr.result).text}")
        if res.assumptions:
            print(f"  without the assumption: {text(res.general)}")
            for a in res.assumptions:
                print(f"  assumes: {a.words or a.text}")


def _show(args) -> int:
    import sympy as sp

    from .derive import display, results
    from .kernels import registry
    from .lang.text import text
    from .proofs import by_name

    name = args.name
    found = False
    if name in by_name():
        _show_proof(by_name()[name], args.latex)
        found = True
    elif name in results():
        res = results()[name]
        print(f"{res.spec.title}  ({res.name})")
        print(f"  d/d{text(res.spec.wrt)} of {text(res.spec.definition)}")
        shown = display(name)
        print(f"  closed form: {shown.text if shown is not None else text(res.closed)}")
        if res.assumptions:
            print(f"  without the assumption: {text(res.general)}")
            for a in res.assumptions:
                print(f"  assumes: {a.words or a.text}")
        found = True
    if name in registry():  # a kernel may share its name with the derivation it evaluates
        kern = registry()[name]
        print(f"kernel {kern.name}: {kern.summary}")
        print(f"  formula: {kern.formula}")
        print(f"  family: {kern.family}; from derivation: {kern.derivation or '(definition)'}")
        for slot, expr in kern.slots.items():
            print(f"  slot {slot} = {sp.sstr(expr)}")
        if kern.options:
            print(f"  options: {', '.join(kern.options)}")
        found = True
    if found:
        return 0
    import difflib

    known = sorted(set(by_name()) | set(results()) | set(registry()))
    near = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    print(
        f"symce: no kernel, proof or derivation named {name!r}{hint}; expected one of: "
        f"{', '.join(known)}",
        file=sys.stderr,
    )
    return 2


def _emit(args) -> int:
    from . import snippets
    from .kernels import registry

    if args.kernel not in registry():
        print(
            f"symce emit: --kernel: no kernel named {args.kernel!r}; expected one of: "
            f"{', '.join(registry())}",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(snippets.snippet(args.lang, args.kernel, args.dtype))
    return 0


def _check(args) -> int:
    from . import check
    from .kernels import registry

    unknown = [n for n in args.names if n not in registry()]
    if unknown:
        print(
            f"symce check: no kernel named {', '.join(map(repr, unknown))}; expected some of: "
            f"{', '.join(registry())}",
            file=sys.stderr,
        )
        return 2
    names = args.names or list(registry())
    return check.main(names, args.lang or None, progress=_progress)


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: sys.argv[1:]); the exit status."""
    from . import snippets

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="FILE",
        help="a Python file declaring functions with symce.define_activation or "
        "symce.define_loss (repeatable)",
    )
    parser = argparse.ArgumentParser(
        prog="symce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "derive", parents=[common], help="verify every derivation and regenerate generated/"
    )
    d.add_argument(
        "--out",
        default=None,
        help="output folder (default: generated/ of the checkout symce runs from, "
        "else ./generated)",
    )
    d.add_argument(
        "--check",
        action="store_true",
        help="compare a fresh generation with the folder instead of writing",
    )
    d.set_defaults(func=_derive)
    ls = sub.add_parser("list", parents=[common], help="list kernels and derivations")
    ls.set_defaults(func=_list)
    sh = sub.add_parser(
        "show",
        parents=[common],
        help="show one proof (numbered, checked steps), derivation or kernel",
    )
    sh.add_argument("name")
    sh.add_argument("--latex", action="store_true", help="print a proof's steps as LaTeX")
    sh.set_defaults(func=_show)
    em = sub.add_parser(
        "emit",
        parents=[common],
        help="print one kernel as a self-contained snippet (every helper it needs, nothing else)",
    )
    em.add_argument("--lang", required=True, choices=snippets.LANGUAGES)
    em.add_argument("--kernel", required=True, metavar="NAME", help="a kernel (symce list)")
    em.add_argument(
        "--dtype",
        default="float64",
        choices=tuple(snippets.DTYPES),
        help="the C function's type (default float64; NumPy and MATLAB take either)",
    )
    em.set_defaults(func=_emit)
    ck = sub.add_parser(
        "check",
        parents=[common],
        help="check kernels against mpmath in every language whose toolchain is present",
    )
    ck.add_argument("names", nargs="*", metavar="NAME", help="kernels to check (default: all)")
    ck.add_argument(
        "--lang",
        action="append",
        choices=snippets.LANGUAGES,
        help="only these languages (repeatable; default: every one present)",
    )
    ck.set_defaults(func=_check)
    args = parser.parse_args(argv)
    _load_modules(args.module)
    return args.func(args)
