"""Stage 6 — emission: build the proofs' PDF (generated/latex/symce_derivations.pdf) until its
references are stable, and refuse a document with an overfull line or an undefined reference.

``python -m symce.pdf [latex_dir]`` is what ``make pdf`` runs.  latexmk reruns pdflatex until the
table of contents and the cross-references settle; without latexmk, pdflatex runs until its log no
longer asks for a rerun.  The tests call :func:`build` and :func:`toc_pages_match`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

MASTER = "symce_derivations"
MAX_PASSES = 5


class PdfError(RuntimeError):
    """The document did not build cleanly."""


def _run(cmd, cwd):
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise PdfError(f"{' '.join(cmd)} failed:\n{run.stdout[-3000:]}")


def problems(log: str) -> list:
    """Overfull boxes, undefined references and requests for another pass, from a LaTeX log."""
    out = [
        line for line in log.splitlines() if line.startswith(("Overfull \\hbox", "Overfull \\vbox"))
    ]
    out += [
        line
        for line in log.splitlines()
        if "undefined" in line
        and ("Reference" in line or "Citation" in line or "There were undefined" in line)
    ]
    out += [
        line for line in log.splitlines() if "Rerun to get" in line or "may have changed" in line
    ]
    return out


def build(latex_dir: str | Path | None = None) -> Path:
    """Build the PDF in ``latex_dir`` (default: generated/latex); return its path."""
    from .generate import GENERATED

    latex_dir = Path(latex_dir or GENERATED / "latex")
    latexmk = shutil.which("latexmk")
    if latexmk:
        _run(
            [latexmk, "-pdf", "-interaction=nonstopmode", "-halt-on-error", f"{MASTER}.tex"],
            latex_dir,
        )
    else:
        pdflatex = shutil.which("pdflatex")
        if pdflatex is None:
            raise PdfError("neither latexmk nor pdflatex is installed (make install)")
        for _ in range(MAX_PASSES):
            _run(
                [pdflatex, "-interaction=nonstopmode", "-halt-on-error", f"{MASTER}.tex"], latex_dir
            )
            log = (latex_dir / f"{MASTER}.log").read_text(encoding="latin-1")
            if not any("Rerun to get" in ln or "may have changed" in ln for ln in log.splitlines()):
                break
    log = (latex_dir / f"{MASTER}.log").read_text(encoding="latin-1")
    found = problems(log)
    if found:
        raise PdfError("the PDF has layout or reference problems:\n" + "\n".join(found))
    if not toc_pages_match(latex_dir):
        raise PdfError("the table of contents does not match the section pages")
    return latex_dir / f"{MASTER}.pdf"


def toc_pages_match(latex_dir: str | Path) -> bool:
    """Every section's page in the table of contents equals the page its label landed on."""
    latex_dir = Path(latex_dir)
    aux = (latex_dir / f"{MASTER}.aux").read_text(encoding="latin-1")
    toc = (latex_dir / f"{MASTER}.toc").read_text(encoding="latin-1")
    labels = dict(re.findall(r"\\newlabel\{sec:[^}]*\}\{\{(\d+)\}\{(\d+)\}", aux))
    entries = re.findall(r"\\contentsline \{section\}\{\\numberline \{(\d+)\}.*\}\{(\d+)\}\{", toc)
    if not entries or len(entries) != len(labels):
        return False
    return all(labels.get(number) == page for number, page in entries)


def main(argv: list[str] | None = None) -> int:
    """Build the PDF in the folder ``argv[0]`` (default: generated/latex) and print its path; the
    exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        pdf = build(argv[0] if argv else None)
    except PdfError as err:
        print(f"symce: {err}", file=sys.stderr)
        return 1
    print(pdf)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
