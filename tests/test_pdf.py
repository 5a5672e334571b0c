"""The proofs' PDF: built until its references settle, no overfull line, no undefined reference,
a table of contents that matches the pages, and the figures in it (and in the Markdown, as SVG)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from symce import generate, pdf
from symce.lang import figures

from support import toolchain


def require_latex():
    """pdflatex and pgfplots, or skip (fail in CI, SYMCE_REQUIRE_PDFLATEX=1)."""
    toolchain("pdflatex", "SYMCE_REQUIRE_PDFLATEX")
    found = subprocess.run(["kpsewhich", "pgfplots.sty"], capture_output=True, text=True)
    if not found.stdout.strip():
        msg = "pgfplots.sty not found (Debian: texlive-pictures)"
        if os.environ.get("SYMCE_REQUIRE_PDFLATEX") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    if os.environ.get("SYMCE_REQUIRE_PDFLATEX") == "1" and shutil.which("latexmk") is None:
        pytest.fail("latexmk not found, and SYMCE_REQUIRE_PDFLATEX=1 requires it (make install)")


@pytest.fixture(scope="module")
def fresh():
    return generate.render_all()


@pytest.fixture(scope="module")
def built(tmp_path_factory, fresh):
    require_latex()
    out = tmp_path_factory.mktemp("pdf")
    generate.write(out, fresh)
    return pdf.build(out / "latex")


def test_pdf_builds_from_clean_without_layout_or_reference_problems(built):
    latex = built.parent
    log = (latex / "symce_derivations.log").read_text(encoding="latin-1")
    assert pdf.problems(log) == []
    assert "Overfull" not in log
    assert built.stat().st_size > 20_000


def test_table_of_contents_matches_the_pages(built):
    assert pdf.toc_pages_match(built.parent)


def test_figures_are_in_the_pdf(built):
    log = (built.parent / "symce_derivations.log").read_text(encoding="latin-1")
    for fig in figures.figures():
        assert f"fig_{fig.name}.tex" in log, fig.name


def test_problems_finds_overfull_lines_and_undefined_references():
    log = (
        "Overfull \\hbox (12.1pt too wide) in paragraph at lines 19--20\n"
        "LaTeX Warning: Reference `sec:x' on page 3 undefined on input line 5.\n"
        "LaTeX Warning: Label(s) may have changed. Rerun to get cross-references right.\n"
    )
    assert len(pdf.problems(log)) == 3
    assert pdf.problems("Underfull \\hbox (badness 10000)\n") == []


def test_toc_check_detects_a_wrong_page(tmp_path):
    (tmp_path / "symce_derivations.aux").write_text(
        "\\newlabel{sec:a}{{1}{1}{A}{}{}}\n\\newlabel{sec:b}{{2}{3}{B}{}{}}\n"
    )
    (tmp_path / "symce_derivations.toc").write_text(
        "\\contentsline {section}{\\numberline {1}A}{1}{}%\n"
        "\\contentsline {section}{\\numberline {2}B}{2}{}%\n"
    )
    assert not pdf.toc_pages_match(tmp_path)
    (tmp_path / "symce_derivations.toc").write_text(
        "\\contentsline {section}{\\numberline {1}A}{1}{}%\n"
        "\\contentsline {section}{\\numberline {2}B}{3}{}%\n"
    )
    assert pdf.toc_pages_match(tmp_path)


# ---- figures: symce's own values, byte-reproducible ----------------------------------------------
def test_figures_come_from_symce_functions():
    figs = {f.name: f for f in figures.figures()}
    sig, dsig = figs["sigmoid"].series
    peak = max(dsig.points, key=lambda xy: xy[1])
    assert peak == (0.0, 0.25)  # sigma' is largest, 1/4, at 0
    assert figs["sigmoid"].marks[0][:2] == (0.0, 0.25)
    for (_, s), (_, d) in zip(sig.points, dsig.points):
        assert abs(d - s * (1 - s)) < 2e-6
    p1, p2, p3 = figs["softmax"].series
    for a, b, c in zip(p1.points, p2.points, p3.points):
        assert abs(a[1] + b[1] + c[1] - 1) < 3e-6  # a distribution at every z_1
    loss, grad = figs["cross_entropy"].series
    for pt, g in grad.points:
        assert abs(g - (pt - 1)) < 2e-6


def test_figures_are_byte_reproducible_and_in_the_markdown(fresh):
    # (test_generated checks every file is the same in a fresh interpreter)
    a = fresh
    again = [(figures.pgf_context(f), figures.svg_context(f)) for f in figures.figures()]
    assert again == [(figures.pgf_context(f), figures.svg_context(f)) for f in figures.figures()]
    for fig in figures.figures():
        assert f"](figures/{fig.name}.svg)" in a["derivations.md"]
        assert a[f"figures/{fig.name}.svg"].count("<polyline") == len(fig.series)
        assert f"\\input{{fig_{fig.name}}}" in "".join(
            text for rel, text in a.items() if rel.startswith("latex/")
        )
