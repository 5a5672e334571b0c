"""Stage 6 — emission: figures for the proofs, computed from symce's own definitions and
closed forms, printed as pgfplots (LaTeX) and as SVG (Markdown).

Every value comes from :mod:`symce.model` / :mod:`symce.derive` evaluated with mpmath and printed
with a fixed number of digits, so the files are byte-identical on every machine.  The SVG scaling is
done here; the templates only lay out the strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from .. import model as m
from ..derive import result


@dataclass(frozen=True)
class Series:
    label: str  # LaTeX (pgfplots legend)
    text: str  # plain text (SVG legend)
    points: tuple  # ((x, y), ...) as Python floats rounded to 6 digits
    style: str  # pgfplots style
    color: str  # SVG stroke


@dataclass(frozen=True)
class Figure:
    name: str
    caption: str  # LaTeX
    caption_text: str  # plain text (Markdown)
    xlabel: str
    ylabel: str
    xlabel_text: str
    ylabel_text: str
    xrange: tuple
    yrange: tuple
    series: tuple
    marks: tuple = ()  # ((x, y, LaTeX label, text label), ...)


def _grid(lo, hi, count):
    return [lo + (hi - lo) * q / (count - 1) for q in range(count)]


def _r(v) -> float:
    return float(mpmath.nstr(mpmath.mpf(v), 6, strip_zeros=False).replace(" ", ""))


def _sigmoid_figure():
    sig = sp.lambdify(m.theta, m.sigmoid(), "mpmath")
    # sigma' from the engine's closed form sigma (1 - sigma), evaluated at the forward value
    dsig = sp.lambdify(m.s, result("sigmoid_grad").closed, "mpmath")
    xs = _grid(-6, 6, 61)
    s_pts = tuple((_r(x), _r(sig(x))) for x in xs)
    d_pts = tuple((_r(x), _r(dsig(sig(x)))) for x in xs)
    peak = dsig(sig(0))
    return Figure(
        "sigmoid",
        r"The sigmoid $\sigma$ and its derivative $\sigma' = \sigma(1 - \sigma)$, "
        r"whose maximum is $\frac14$ at $\theta = 0$.",
        "The sigmoid σ and its derivative σ' = σ(1 − σ), whose maximum is 1/4 at θ = 0.",
        r"$\theta$",
        "",
        "θ",
        "",
        (-6, 6),
        (0, 1),
        (
            Series(r"$\sigma(\theta)$", "σ(θ)", s_pts, "thick, blue", "#1f5fbf"),
            Series(r"$\sigma'(\theta)$", "σ'(θ)", d_pts, "thick, red, dashed", "#c0392b"),
        ),
        ((0.0, _r(peak), r"$\frac14$", "1/4"),),
    )


def _softmax_figure():
    K = 3
    z = m.z
    probs = [
        sp.lambdify((z[1], z[2], z[3]), m.softmax(c).xreplace({m.K: K}).doit(), "mpmath")
        for c in (1, 2, 3)
    ]
    xs = _grid(-4, 4, 41)
    series = []
    styles = (
        ("thick, blue", "#1f5fbf"),
        ("thick, red, dashed", "#c0392b"),
        ("thick, black, dotted", "#333333"),
    )
    for c, (style, color) in zip((1, 2, 3), styles):
        pts = tuple((_r(x), _r(probs[c - 1](x, 0, 1))) for x in xs)
        series.append(Series(rf"$p_{c}$", f"p_{c}", pts, style, color))
    return Figure(
        "softmax",
        r"The softmax over $K = 3$ classes as $z_1$ varies, with $z_2 = 0$, "
        r"$z_3 = 1$: the three probabilities always sum to 1.",
        "The softmax over K = 3 classes as z_1 varies, with z_2 = 0, z_3 = 1: the three "
        "probabilities always sum to 1.",
        r"$z_1$",
        "",
        "z_1",
        "",
        (-4, 4),
        (0, 1),
        tuple(series),
    )


def _cross_entropy_figure():
    pt = sp.Symbol("p_t", positive=True)
    loss = sp.lambdify(pt, -sp.log(pt), "mpmath")
    # the engine's gradient p_j - delta_tj at j = t
    grad_expr = (
        result("cross_entropy_label_grad").closed.xreplace({m.j: m.t}).xreplace({m.p[m.t]: pt})
    )
    grad = sp.lambdify(pt, grad_expr, "mpmath")
    xs = _grid(0.02, 1.0, 50)
    return Figure(
        "cross_entropy",
        r"The cross-entropy $L = -\log p_t$ of the true class and its gradient "
        r"$\partial L / \partial z_t = p_t - 1$, against $p_t$.",
        "The cross-entropy L = −log p_t of the true class and its gradient ∂L/∂z_t = p_t − 1, "
        "against p_t.",
        r"$p_t$",
        "",
        "p_t",
        "",
        (0, 1),
        (-1, 4),
        (
            Series(
                r"$-\log p_t$",
                "−log p_t",
                tuple((_r(x), _r(loss(x))) for x in xs),
                "thick, blue",
                "#1f5fbf",
            ),
            Series(
                r"$p_t - 1$",
                "p_t − 1",
                tuple((_r(x), _r(grad(x))) for x in xs),
                "thick, red, dashed",
                "#c0392b",
            ),
        ),
    )


def figures() -> tuple:
    """Every figure, in document order."""
    return (_sigmoid_figure(), _softmax_figure(), _cross_entropy_figure())


# which proof each figure illustrates
FIGURE_OF_PROOF = {
    "sigmoid_grad": "sigmoid",
    "softmax_jacobian": "softmax",
    "cross_entropy_label_grad": "cross_entropy",
}


def pgf_context(fig: Figure) -> dict:
    """The pgfplots template context of ``fig`` (LaTeX labels, coordinates as text)."""
    return {
        "name": fig.name,
        "caption": fig.caption,
        "xlabel": fig.xlabel,
        "xmin": fig.xrange[0],
        "xmax": fig.xrange[1],
        "ymin": fig.yrange[0],
        "ymax": fig.yrange[1],
        "series": [
            {
                "label": s.label,
                "style": s.style,
                "coords": " ".join(f"({x:g},{y:g})" for x, y in s.points),
            }
            for s in fig.series
        ],
        "marks": [{"x": f"{x:g}", "y": f"{y:g}", "label": lab} for x, y, lab, _ in fig.marks],
    }


WIDTH, HEIGHT, PAD = 480, 300, 40


def svg_context(fig: Figure) -> dict:
    """The SVG template context of ``fig``: everything scaled to the drawing, as text."""
    (x0, x1), (y0, y1) = fig.xrange, fig.yrange

    def sx(x):
        return PAD + (x - x0) / (x1 - x0) * (WIDTH - 2 * PAD)

    def sy(y):
        y = min(max(y, y0), y1)
        return HEIGHT - PAD - (y - y0) / (y1 - y0) * (HEIGHT - 2 * PAD)

    def fmt(v):
        return f"{v:.1f}"

    series = []
    for k_, s in enumerate(fig.series):
        series.append(
            {
                "points": " ".join(f"{fmt(sx(x))},{fmt(sy(y))}" for x, y in s.points),
                "color": s.color,
                "dash": "6,4"
                if "dashed" in s.style
                else ("2,3" if "dotted" in s.style else "none"),
                "label": s.text,
                "lx": fmt(WIDTH - PAD - 90),
                "lx2": fmt(WIDTH - PAD - 66),
                "tx": fmt(WIDTH - PAD - 60),
                "ly": fmt(PAD + 14 + 16 * k_),
            }
        )
    ticks_x = [
        {"x": fmt(sx(v)), "label": f"{v:g}", "ty": fmt(HEIGHT - PAD + 14)} for v in _ticks(x0, x1)
    ]
    ticks_y = [{"y": fmt(sy(v)), "label": f"{v:g}", "tx": fmt(PAD - 4)} for v in _ticks(y0, y1)]
    marks = [
        {"x": fmt(sx(x)), "y": fmt(sy(y)), "label": text, "ly": fmt(sy(y) - 8)}
        for x, y, _, text in fig.marks
    ]
    return {
        "name": fig.name,
        "caption": fig.caption_text,
        "width": WIDTH,
        "height": HEIGHT,
        "left": PAD,
        "right": WIDTH - PAD,
        "top": PAD,
        "bottom": HEIGHT - PAD,
        "box_w": WIDTH - 2 * PAD,
        "box_h": HEIGHT - 2 * PAD,
        "zero_y": fmt(sy(0)) if y0 < 0 < y1 else None,
        "xlabel": fig.xlabel_text,
        "series": series,
        "ticks_x": ticks_x,
        "ticks_y": ticks_y,
        "marks": marks,
        "xlabel_x": fmt(WIDTH / 2),
        "xlabel_y": fmt(HEIGHT - 6),
    }


def _ticks(lo, hi):
    span = hi - lo
    step = 1 if span <= 5 else 2
    if span <= 1:
        step = 0.25
    out, v = [], lo
    while v <= hi + 1e-9:
        out.append(round(v, 6))
        v += step
    return out
