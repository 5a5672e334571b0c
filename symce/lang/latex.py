"""Emitter for the proofs: LaTeX (one file per derivation and a master document) and Markdown.

Every proof is verified (:func:`symce.proofs.verified_proofs`) before a line is printed, so a
wrong step makes ``make derive`` fail with the proof's name and the step's number.  The printer
is a :class:`sympy.printing.latex.LatexPrinter` subclass that keeps a step as written: terms in the
order given, and products built unevaluated (``M(...)`` in :mod:`symce.proofs`) printed factor
by factor, so ``1/(1+e) * e/(1+e)`` does not collapse back into the previous step.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from .. import model
from ..derive import results
from ..generate import Output
from ..proofs import verified_proofs


class ProofPrinter(LatexPrinter):
    """LaTeX for derivation steps, as written."""

    _NAMES = {"epsilon": r"\varepsilon", "w_+": r"w_{+}", "ytilde": r"\tilde{y}",
              "yhat": r"\hat{y}", "theta": r"\theta", "sigma": r"\sigma", "Srow": "S",
              "C_hi": r"C_{\mathrm{hi}}", "C_lo": r"C_{\mathrm{lo}}"}

    def __init__(self, order="none"):
        super().__init__({"order": order, "symbol_names": {}})

    def _print_Symbol(self, expr, style="plain"):
        if expr.name in self._NAMES:
            return self._NAMES[expr.name]
        return super()._print_Symbol(expr, style=style)

    def _print_log(self, expr, exp=None):
        if expr.args[0].is_Integer:  # ln 2, as the numerical literature writes it
            tex = r"\ln " + self._print(expr.args[0])
            return tex if exp is None else r"\left(" + tex + r"\right)^{" + exp + "}"
        return super()._print_log(expr, exp)

    def _print_IndexedBase(self, expr):
        return self._NAMES.get(expr.name, expr.name)

    def _print_Indexed(self, expr):
        base = self._print(expr.base)
        return base + "_{" + ",".join(self._print(i) for i in expr.indices) + "}"

    def _print_KroneckerDelta(self, expr, exp=None):
        i, j = (self._print(a) for a in expr.args)
        sep = "," if len(i) > 1 or len(j) > 1 else ""
        tex = r"\delta_{" + i + sep + j + "}"
        return tex if exp is None else tex + "^{" + exp + "}"

    def _print_Mul(self, expr):
        if not isinstance(expr, sp.Mul) or sp.Mul(*expr.args) == expr:
            return super()._print_Mul(expr)  # canonical: SymPy's layout is fine
        # a product built unevaluated: keep its factors, denominators under one fraction bar
        args = []
        for a in expr.args:  # 1/(a b) arrives as a product of inverses: flatten it
            inv = isinstance(a, sp.Mul) and all(f.is_Pow and f.exp.is_negative for f in a.args)
            args.extend(a.args if inv else [a])
        sign = ""
        if args and args[0] == -1:
            sign, args = "-", args[1:]
        num = [a for a in args if not (a.is_Pow and a.exp.is_negative)]
        den = [a.base ** -a.exp for a in args if a.is_Pow and a.exp.is_negative]
        if den and any(sp.fraction(a)[1] != 1 for a in num):
            # a fraction times a fraction: print the factors side by side, as written
            return sign + self._join(num + [1 / d for d in den])
        if len(num) == 1 and den:
            top = self._print(num[0])
        else:
            top = self._join(num) if num else "1"
        if den:
            return sign + r"\frac{" + top + "}{" + self._join(den) + "}"
        return sign + top

    def _join(self, factors):
        out = ""
        for a in factors:
            tex = self._print(a)
            if isinstance(a, sp.Add) or (isinstance(a, sp.Mul) and a.could_extract_minus_sign()):
                tex = r"\left(" + tex + r"\right)"
            if out:
                out += r" \cdot " if tex[0].isdigit() or tex.startswith("-") else " "
            out += tex
        return out


_PRINTER = ProofPrinter()              # steps: terms in the order they were written
_CANONICAL = ProofPrinter(order=None)  # closed forms: SymPy's usual order (p_j - y_j)


def tex(expr, canonical=False) -> str:
    return (_CANONICAL if canonical else _PRINTER).doprint(expr)


def tidy(expr):
    """-a (b - c) -> a (c - b): a closed form as people write it (sigma (1 - sigma), not
    -sigma (-1 + sigma)); the same expression, only the sign moved into one factor."""
    if isinstance(expr, sp.Mul):
        coeff, factors = expr.as_coeff_mul()
        if coeff == -1:
            for k, f in enumerate(factors):
                if isinstance(f, sp.Add):
                    terms = sorted((-t for t in f.args), key=lambda t: t.could_extract_minus_sign())
                    return sp.Mul(*factors[:k], sp.Add(*terms, evaluate=False), *factors[k + 1:],
                                  evaluate=False)
    return expr


def _blocks(proof):
    """[(heading, [(lhs, rhs, reason)])] — strings only, for the templates."""
    blocks = [("", [(proof.lhs, tex(proof.steps[0].expr), proof.steps[0].reason)])]
    for index, step in enumerate(proof.steps[1:], start=1):
        ref = step.ref if step.ref is not None else index - 1
        if step.lhs is not None:   # a new chain, with its own left-hand side
            blocks.append((step.block, [(tex(step.lhs), tex(step.expr), step.reason)]))
            continue
        if step.block:
            restate = [(proof.lhs, tex(proof.steps[ref].expr), r"\text{from above}")]
            if step.given:
                restate[0] = (proof.lhs, restate[0][1], restate[0][2] + r",\ " +
                              r",\ ".join(c.latex for c in step.given))
            blocks.append((step.block, restate))
        blocks[-1][1].append(("", tex(step.expr), step.reason))
    return blocks


def _context(proof):
    glossary = [d.meaning for d in model.DEFINITIONS if d.symbol in proof.defs]
    closed = results()[proof.result].closed if proof.result else None
    return {
        "name": proof.name,
        "title": proof.title,
        "intro": proof.intro,
        "outro": proof.outro,
        "sources": proof.sources,
        "glossary": glossary,
        "blocks": _blocks(proof),
        "closed": tex(tidy(closed), canonical=True) if closed is not None else "",
        "lhs": proof.lhs,
        "facts": [f.latex for f in proof.facts],
        "steps": len(proof.steps),
    }


def outputs():
    proofs = [_context(p) for p in verified_proofs()]
    outs = [Output(f"latex/{p['name']}.tex", "latex/proof.tex.jinja", {"proof": p}) for p in proofs]
    outs.append(Output("latex/symce_derivations.tex", "latex/symce_derivations.tex.jinja",
                       {"proofs": proofs}))
    outs.append(Output("derivations.md", "markdown/derivations.md.jinja", {"proofs": proofs}))
    return outs
