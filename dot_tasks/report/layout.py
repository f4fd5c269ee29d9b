"""Where each box goes: grandalf's Sugiyama layout, turned to run left to right.

grandalf is imported only when a report is drawn, so that the command line starts without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Edges, Node

NODE_W, NODE_H = 210, 50  # px, before zoom
LAYER_GAP, ROW_GAP = 90, 18

#: A routed edge: the ids of its two boxes and the bends between them.
RoutedEdge = tuple[str, str, list[tuple[float, float]]]


@dataclass
class Drawing:
    """One laid-out picture: boxes (a node, or a group of collapsed nodes) and edges between them."""

    boxes: dict[str, tuple[float, float]] = field(default_factory=dict)  # box id -> centre (x, y)
    edges: list[RoutedEdge] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


class _View:
    """What grandalf needs of a box: its size (swapped: grandalf layers top to bottom), and a place for the result."""

    def __init__(self, w: float, h: float) -> None:
        self.w, self.h = h, w
        self.xy: tuple[float, float] = (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points: list[tuple[float, float]]) -> None:
        self.points = [(float(x), float(y)) for x, y in points]


def sugiyama(box_ids: list[str], edges: list[tuple[str, str]]) -> Drawing:
    """Lay the boxes out in layers from left to right, each connected part below the one before, biggest first."""
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    vertices = {b: Vertex(b) for b in box_ids}
    for v in vertices.values():
        v.view = _View(NODE_W, NODE_H)
    graph_edges = []
    for parent, child in edges:
        e = Edge(vertices[parent], vertices[child])
        e.view = _EdgeView()
        graph_edges.append(e)
    graph = Graph(list(vertices.values()), graph_edges)
    drawing = Drawing()
    top = 0.0
    # Each connected part is laid out on its own; stack them, biggest first.
    parts = sorted(graph.C, key=lambda c: (-len(c.sV), str(c.sV[0].data)))
    for part in parts:
        sug = SugiyamaLayout(part)
        sug.xspace, sug.yspace = ROW_GAP, LAYER_GAP
        sug.init_all()
        sug.draw(4)
        # grandalf: x across a layer, y down the layers; we want layers left to right.
        # Routed edges may bend outside the boxes: they count towards the part's extent.
        bends = [p for e in part.sE for p in e.view.points[1:-1]]
        xs = [v.view.xy[1] for v in part.sV] + [y for _, y in bends]
        ys = [v.view.xy[0] for v in part.sV] + [x for x, _ in bends]
        dx, dy = -min(xs) + NODE_W / 2, top - min(ys) + NODE_H / 2
        for v in part.sV:
            drawing.boxes[v.data] = (v.view.xy[1] + dx, v.view.xy[0] + dy)
        for e in part.sE:
            middle = [(y + dx, x + dy) for x, y in e.view.points[1:-1]]
            src, dst = e.v[0].data, e.v[1].data
            (sx, _), (tx, _) = drawing.boxes[src], drawing.boxes[dst]
            if middle and sx > tx:  # grandalf routed an edge it had to invert: its points run backwards
                middle.reverse()
            drawing.edges.append((src, dst, middle))
        drawing.width = max(drawing.width, max(xs) - min(xs) + NODE_W)
        top += max(ys) - min(ys) + NODE_H + LAYER_GAP / 2
    drawing.height = max(top - LAYER_GAP / 2, NODE_H)
    return drawing


def drawing_of(nodes: list[Node], edges: Edges, groups: list[list[int]]) -> Drawing:
    """The picture of the nodes with each group drawn as one box ("g:<group>"), every other node as "n:<index>"."""
    member = {i: g for g, group in enumerate(groups) for i in group}
    box = {n.index: (f"g:{member[n.index]}" if n.index in member else f"n:{n.index}") for n in nodes}
    box_ids = list(dict.fromkeys(box[n.index] for n in nodes))
    box_edges = sorted({(box[p], box[c]) for p, c in edges if box[p] != box[c]})
    return sugiyama(box_ids, box_edges)
