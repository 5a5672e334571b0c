"""Stage 6 — emission: the proofs' emitter, LaTeX (one file per derivation and a master
document) and Markdown.

Every proof is verified (:func:`symce.proofs.verified_proofs`) before a line is printed, so a
wrong step makes ``make derive`` fail with the proof's name and the step's number.  The printer
is a :class:`sympy.printing.latex.LatexPrinter` subclass that keeps a step as written: terms in the
order given, and products built unevaluated (``M(...)`` in :mod:`symce.proofs`) printed factor
by factor, so ``1/(1+e) * e/(1+e)`` does not collapse back into the previous step.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sympy as sp
from sympy.printing.latex import LatexPrinter

from .. import model
from .. import proofs as proofs_mod
from ..proofs import verified_proofs
from ..rewrite import excluded_sum
from . import figures as figures_mod
from .base import Output

_WORDS = r"[a-z]{2,}(_[a-z]{2,})+"  # a name in words, not a subscripted symbol (y_t, p_i)


def word_name(name: str) -> str:
    """A name in words as LaTeX: upright, its underscores escaped (\\mathrm{log\\_target})."""
    return r"\mathrm{" + name.replace("_", r"\_") + "}"


class ProofPrinter(LatexPrinter):
    """LaTeX for derivation steps, as written."""

    _NAMES = {
        "epsilon": r"\varepsilon",
        "w_+": r"w_{+}",
        "ytilde": r"\tilde{y}",
        "yhat": r"\hat{y}",
        "theta": r"\theta",
        "sigma": r"\sigma",
        "Srow": "S",
        "C_hi": r"C_{\mathrm{hi}}",
        "C_lo": r"C_{\mathrm{lo}}",
        "sigma_z12": r"\sigma(z_1 - z_2)",
    }

    def __init__(self, order="none"):
        super().__init__({"order": order, "symbol_names": {}})

    def _print_Symbol(self, expr, style="plain"):
        if expr.name in self._NAMES:
            return self._NAMES[expr.name]
        if re.fullmatch(_WORDS, expr.name):  # an option's name in words (log_target), upright
            return word_name(expr.name)
        return super()._print_Symbol(expr, style=style)

    def _print_log(self, expr, exp=None):
        if expr.args[0].is_Integer:  # ln 2, as the numerical literature writes it
            tex = r"\ln " + self._print(expr.args[0])
            return tex if exp is None else r"\left(" + tex + r"\right)^{" + exp + "}"
        return super()._print_log(expr, exp)

    def _print_Sum(self, expr):
        rest, other = excluded_sum(expr)
        if rest is None:
            return super()._print_Sum(expr)
        ((v, lo, hi),) = expr.limits
        body = self._print(rest)
        if isinstance(rest, sp.Add):
            body = r"\left(" + body + r"\right)"
        return (
            r"\sum_{\substack{"
            + self._print(v)
            + "="
            + self._print(lo)
            + r"\\ "
            + self._print(v)
            + r" \neq "
            + self._print(other)
            + "}}^{"
            + self._print(hi)
            + "} "
            + body
        )

    def _print_IndexedBase(self, expr):
        return self._NAMES.get(expr.name, expr.name)

    def _print_Indexed(self, expr):
        base = self._print(expr.base)
        return base + "_{" + ",".join(self._print(i) for i in expr.indices) + "}"

    _DELTA_ORDER = ("t", "i", "j", "k", "m", "n")  # one order everywhere: delta_ij, delta_tj

    def _print_KroneckerDelta(self, expr, exp=None):
        args = sorted(
            expr.args,
            key=lambda a: (
                self._DELTA_ORDER.index(str(a)) if str(a) in self._DELTA_ORDER else 99,
                str(a),
            ),
        )
        i, j = (self._print(a) for a in args)
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
        den = [a.base**-a.exp for a in args if a.is_Pow and a.exp.is_negative]
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


_PRINTER = ProofPrinter()  # steps: terms in the order they were written
_CANONICAL = ProofPrinter(order=None)  # closed forms: SymPy's usual order (p_j - y_j)


def tex(expr: sp.Basic, canonical: bool = False) -> str:
    """``expr`` in LaTeX: as written (a step), or in SymPy's usual order (``canonical``)."""
    return (_CANONICAL if canonical else _PRINTER).doprint(expr)


def tidy(expr: sp.Expr) -> sp.Expr:
    """-a (b - c) -> a (c - b): a closed form as people write it (sigma (1 - sigma), not
    -sigma (-1 + sigma)); the same expression, only the sign moved into one factor."""
    if isinstance(expr, sp.Mul):
        coeff, factors = expr.as_coeff_mul()
        if coeff == -1:
            for k, f in enumerate(factors):
                if isinstance(f, sp.Add):
                    terms = sorted((-t for t in f.args), key=lambda t: t.could_extract_minus_sign())
                    return sp.Mul(
                        *factors[:k],
                        sp.Add(*terms, evaluate=False),
                        *factors[k + 1 :],
                        evaluate=False,
                    )
    return expr


def reason(step: proofs_mod.Step, cite_ref: Callable[[str], str]) -> str:
    """The justification of a step as text with inline math: its rules in words, what was
    substituted, the case or assumption, and the step's note."""
    parts = []
    for rule in step.rules:
        if rule.kind == "definition":
            continue
        if rule.kind == "substitute":
            parts.append("substitute " + (f"${rule.latex}$" if rule.latex else rule.words))
        elif rule.kind in ("case", "assumption"):
            word = "case" if rule.kind == "case" else "assume"
            parts.append(word + " " + ", ".join(f"${c.latex}$" for c in step.given))
        elif rule.kind == "cite" and rule.cite:
            parts.append("the result " + cite_ref(rule.cite))
        elif rule.kind == "cite":
            parts.append("lemma" + (f" ${rule.latex}$" if rule.latex else ""))
        else:
            parts.append(rule.words)
    text = ", ".join(parts)
    if step.reason:  # one math span per comma-separated part, so a long note can wrap
        note = ", ".join(f"${part}$" for part in step.reason.split(r",\ "))
        text += (": " if text else "") + note
    if not text:
        text = "definition"
    return text[0].upper() + text[1:]


_tex = tex  # proof_blocks' own tex abbreviates


def proof_blocks(proof: proofs_mod.Proof, cite_ref: Callable[[str], str]) -> list[tuple]:
    """[(heading, [(number, lhs, rhs)], [(number, reason)])]: strings only, for the templates.
    Steps are numbered from 1, as in the checker's messages."""
    blocks = []
    # the quantities a closed form names (a declared loss's where=), shown by their names in the
    # steps before it: the definition written out would run far past the line
    short = {d: sym for sym, d in proof.let if proof.abbreviate and not isinstance(d, sp.Symbol)}

    def tex(expr):
        return _tex(sp.sympify(expr).xreplace(short) if short else expr)

    for index, step in enumerate(proof.steps):
        number = str(index + 1)
        ref = step.ref if step.ref is not None else index - 1
        if step.lhs is not None:  # a chain with its own left-hand side
            blocks.append((step.block, [], []))
            lhs = tex(step.lhs)
        elif index == 0:
            blocks.append(("", [], []))
            lhs = proof.lhs
        elif step.block:
            blocks.append(
                (
                    step.block,
                    [(rf"\text{{from ({ref + 1})}}", proof.lhs, tex(proof.steps[ref].expr))],
                    [],
                )
            )
            lhs = ""
        else:
            lhs = ""
        blocks[-1][1].append((f"({number})", lhs, tex(step.expr)))
        blocks[-1][2].append((number, reason(step, cite_ref)))
    return blocks


def _title(name):
    return {p.name: p.title for p in proofs_mod.proofs()}[name]


# a proof whose longest displayed line has more TeX than this sets its displays in \small (the
# focal loss's: at the body size its longest line ran 27pt past the margin)
LONG_LINE = 300


def _context(proof, cite_ref):
    glossary = [d.meaning for d in model.DEFINITIONS if d.symbol in proof.defs]
    closed = display_form(proof.result) if proof.result else None
    blocks = proof_blocks(proof, cite_ref)
    long = max((len(rhs) for _, lines, _ in blocks for _, _, rhs in lines), default=0) > LONG_LINE
    return {
        "name": proof.name,
        "title": proof.title,
        "intro": proof.intro,
        "outro": proof.outro,
        "sources": proof.sources,
        "glossary": glossary,
        "blocks": blocks,
        "math_open": r"\begin{small}" if long else "",
        "math_close": r"\end{small}" if long else "",
        "closed": closed or "",
        "lhs": proof.lhs,
        "facts": [f.latex for f in proof.facts],
        "steps": len(proof.steps),
        "scalar": not _has_class_index(proof),
        "figure": figures_mod.FIGURE_OF_PROOF.get(proof.name, ""),
        "figure_caption": _captions().get(figures_mod.FIGURE_OF_PROOF.get(proof.name, ""), ""),
    }


def _captions():
    return {f.name: f.caption_text for f in figures_mod.figures()}


def _has_class_index(proof) -> bool:
    """Whether the proof is about vectors (indices) rather than scalars."""
    return any(sp.sympify(s.expr).atoms(sp.Indexed) for s in proof.steps)


def display_form(name: str) -> str:
    """The closed form as people write it (symce.derive.DISPLAY), in LaTeX."""
    from ..derive import display

    return tex(display(name).expr, canonical=False)


def outputs() -> list:
    """The proofs in LaTeX (one file each and the master document), in Markdown, and the
    figures (pgfplots and SVG)."""
    verified = verified_proofs()
    counts = proofs_mod.verification_counts()
    latex_ref = lambda name: rf"(\S\ref{{sec:{name}}})"
    md_ref = lambda name: f"([{_title(name)}](#{name}))"
    tex_proofs = [_context(p, latex_ref) for p in verified]
    md_proofs = [_context(p, md_ref) for p in verified]
    totals = {key: sum(c[key] for c in counts.values()) for key in next(iter(counts.values()))}
    totals["proofs"] = len(verified)
    outs = [
        Output(f"latex/{p['name']}.tex", "latex/proof.tex.jinja", {"proof": p}) for p in tex_proofs
    ]
    outs.append(
        Output(
            "latex/symce_derivations.tex",
            "latex/symce_derivations.tex.jinja",
            {"proofs": tex_proofs, "totals": totals},
        )
    )
    outs.append(
        Output(
            "derivations.md",
            "markdown/derivations.md.jinja",
            {"proofs": md_proofs, "totals": totals},
        )
    )
    for fig in figures_mod.figures():
        outs.append(
            Output(
                f"latex/fig_{fig.name}.tex",
                "latex/figure.tex.jinja",
                {"fig": figures_mod.pgf_context(fig)},
            )
        )
        outs.append(
            Output(
                f"figures/{fig.name}.svg",
                "markdown/figure.svg.jinja",
                {"fig": figures_mod.svg_context(fig)},
            )
        )
    return outs
