"""A laid-out picture as inline SVG text, every string from the diff escaped."""

from __future__ import annotations

import html
from itertools import pairwise
from typing import Any

from .layout import NODE_H, NODE_W, Drawing
from .model import Node

NAME_CHARS = 28  # what fits on a box at 13px


def escape(text: Any) -> str:
    """`text` as it may stand in HTML or SVG, inside an element or a quoted attribute."""
    return html.escape(str(text), quote=True)


def short_name(name: str) -> str:
    """A node's name cut to fit on its box, with an ellipsis when cut."""
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "\u2026"


def _edge_path(start: tuple[float, float], middle: list[tuple[float, float]], end: tuple[float, float]) -> str:
    points = [start, *middle, end]
    parts = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in pairwise(points):
        bend = (x1 - x0) / 2
        parts.append(f"C{x0 + bend:.1f},{y0:.1f} {x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
    return "".join(parts)


def _group_box(number: str, members: list[int], nodes: list[Node], left: float, top: float) -> str:
    names = " ".join(nodes[i].name.lower() for i in members)
    return (
        f'<g class="box group" data-group="{number}" data-names="{escape(names)}" transform="translate({left:.1f},{top:.1f})" tabindex="0">'
        f"<title>{escape(', '.join(nodes[i].name for i in members[:40]))}{'…' if len(members) > 40 else ''}</title>"
        f'<rect class="shape" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
        f'<text class="name" x="12" y="21">{len(members)} unchanged nodes</text>'
        f'<text class="sub" x="12" y="38">collapsed: click to list</text></g>'
    )


def _node_box(node: Node, left: float, top: float) -> str:
    classes = f"box node state-{node.state}" + ("" if node.in_selection else " context")
    if node.data_differs:
        classes += " data-differs"
    badges = "  \u00b7  ".join(b for b in (node.rows_badge, node.share_badge) if b)
    return (
        f'<g class="{classes}" data-node="{node.index}" data-state="{node.state}" data-name="{escape(node.name.lower())}" '
        f'transform="translate({left:.1f},{top:.1f})" tabindex="0">'
        f"<title>{escape(node.uid)} ({node.state})</title>"
        f'<rect class="shape" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
        f'<text class="name" x="12" y="21">{escape(short_name(node.name))}</text>'
        f'<text class="sub" x="12" y="38"><tspan class="type">{escape(node.resource_type)}</tspan>'
        f'{"  " if badges else ""}<tspan class="badges">{escape(badges)}</tspan></text></g>'
    )


def svg_of(drawing: Drawing, nodes: list[Node], groups: list[list[int]], view: str) -> str:
    """The `<svg class="graph" id="graph-<view>">` element of one picture, edges under boxes."""
    pad = 20
    # Inline SVG in an HTML page needs no xmlns: the page names no URL at all.
    out = [
        (
            f'<svg class="graph" id="graph-{view}" data-view="{view}" '
            f'data-width="{drawing.width + 2 * pad:.0f}" data-height="{drawing.height + 2 * pad:.0f}">'
            f'<g class="viewport"><g transform="translate({pad},{pad})"><g class="edges">'
        )
    ]
    for src, dst, middle in drawing.edges:
        (sx, sy), (tx, ty) = drawing.boxes[src], drawing.boxes[dst]
        start, end = (sx + NODE_W / 2, sy), (tx - NODE_W / 2 - 4, ty)
        out.append(f'<path class="edge" data-from="{escape(src)}" data-to="{escape(dst)}" d="{_edge_path(start, middle, end)}"/>')
    out.append('</g><g class="nodes">')
    for box, (x, y) in drawing.boxes.items():
        left, top = x - NODE_W / 2, y - NODE_H / 2
        kind, _, number = box.partition(":")
        if kind == "g":
            out.append(_group_box(number, groups[int(number)], nodes, left, top))
        else:
            out.append(_node_box(nodes[int(number)], left, top))
    out.append("</g></g></g></svg>")
    return "".join(out)
