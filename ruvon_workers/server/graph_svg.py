"""A laid-out workflow graph (``graph.layout``) as inline SVG, styled by the dashboard's CSS
variables (so it follows light and dark mode) and scaled to its container."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from ..definitions.models import WorkflowDefinition
from .graph import LABEL_SIZE, NAME_SIZE, SUB_SIZE, Box, Edge, Graph, RunMarks, layout

MARGIN = 10


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _arrow(edge: Edge) -> str:
    if edge.arrow is None:
        return ""
    x, y, dx, dy = edge.arrow
    # A small triangle whose tip is at (x, y), pointing along (dx, dy).
    bx, by = x - dx * 7, y - dy * 7
    px, py = -dy * 4, dx * 4
    return (f'<path class="tip" d="M{x:g},{y:g} L{bx + px:g},{by + py:g} '
            f'L{bx - px:g},{by - py:g} Z"/>')


def _edge(edge: Edge) -> str:
    out = [f'<g class="edge {edge.kind}" data-from="{_attr(edge.source)}" '
           f'data-to="{_attr(edge.target)}">',
           f'<path d="{edge.path}"/>', _arrow(edge)]
    if edge.label:
        lab = edge.label
        title = f"<title>{escape(lab.title)}</title>" if lab.title != lab.text else ""
        out.append(f'<text x="{lab.x:g}" y="{lab.y:g}" text-anchor="{lab.anchor}" '
                   f'font-size="{LABEL_SIZE}">{title}{escape(lab.text)}</text>')
    out.append("</g>")
    return "".join(out)


def _mark(b: Box) -> tuple[str, str]:
    """The symbol drawn in a step's corner for a run, and what it means (its tooltip);
    a symbol alone, so that it never runs into a long step name."""
    if "current" in b.classes:
        return "●", "the current step"
    if "failed" in b.classes or "r-failed" in b.classes:
        return "✕", "failed"
    if "r-compensated" in b.classes:
        return "↩", "compensated"
    return ("✓", "completed") if "r-completed" in b.classes else ("", "")


def _box(b: Box) -> str:
    classes = " ".join([b.kind, *b.classes])
    out = [f'<g id="{_attr(b.id)}" class="{_attr(classes)}"'
           + (f' data-step="{_attr(b.step)}"' if b.step else "") + ">"]
    if b.title:
        out.append(f"<title>{escape(b.title)}</title>")
    if b.href:
        out.append(f'<a href="{_attr(b.href)}">')
    if b.kind == "join":
        out.append(f'<circle cx="{b.cx:g}" cy="{b.y + b.h / 2:g}" r="{b.w / 2:g}"/>')
    else:
        radius = b.h / 2 if b.kind in ("start", "end") else 6
        if b.stacked:  # one branch per item: drawn as a stack of cards
            out.append(f'<rect class="stack" x="{b.x + 4:g}" y="{b.y + 4:g}" '
                       f'width="{b.w:g}" height="{b.h:g}" rx="{radius:g}"/>')
        out.append(f'<rect x="{b.x:g}" y="{b.y:g}" width="{b.w:g}" height="{b.h:g}" '
                   f'rx="{radius:g}"/>')
    if b.kind in ("start", "end", "branch", "body"):
        out.append(f'<text x="{b.cx:g}" y="{b.y + b.h / 2 + 4:g}" text-anchor="middle" '
                   f'font-size="{SUB_SIZE + 1}">{escape(b.text)}</text>')
    elif b.kind in ("step", "injected"):
        out.append(f'<text class="name" x="{b.x + 10:g}" y="{b.y + 18:g}" '
                   f'font-size="{NAME_SIZE}">{escape(b.text)}</text>')
        out.append(f'<text class="type" x="{b.x + 10:g}" y="{b.y + 34:g}" '
                   f'font-size="{SUB_SIZE}">{escape(b.sub)}</text>')
        mark, meaning = _mark(b)
        if mark:
            out.append(f'<text class="mark" x="{b.right - 8:g}" y="{b.y + 17:g}" '
                       f'text-anchor="end" font-size="{SUB_SIZE}"><title>{meaning}</title>'
                       f'{mark}</text>')
    if b.href:
        out.append("</a>")
    out.append("</g>")
    return "".join(out)


def describe(g: Graph, marks: RunMarks | None) -> str:
    steps = [b.step for b in g.boxes if b.kind == "step" and b.step]
    text = f"Workflow {g.workflow_type}: {len(steps)} steps"
    if steps:
        text += f", from {steps[0]} to {steps[-1]}"
    if marks is not None and marks.current:
        text += f"; current step {marks.current}"
    if marks is not None and marks.failed:
        text += f"; failed at {marks.failed}"
    return text + "."


def render(g: Graph, marks: RunMarks | None = None) -> Markup:
    left, top, right, bottom = g.bounds()
    left, top = left - MARGIN, top - MARGIN
    w, h = right - left + MARGIN, bottom - top + MARGIN
    head = (f'<svg class="wfgraph" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="{left:g} {top:g} {w:g} {h:g}" width="{w:g}" height="{h:g}" '
            f'role="img" aria-label="{_attr(describe(g, marks))}">')
    body = [_edge(e) for e in g.edges] + [_box(b) for b in g.boxes]
    return Markup(head + "".join(body) + "</svg>")


def svg(d: WorkflowDefinition, marks: RunMarks | None = None, prefix: str = "") -> Markup:
    """``d`` drawn as an inline SVG; with ``marks``, as a run sees it."""
    return render(layout(d, marks, prefix), marks)
