"""The diff as a lineage picture: one self-contained HTML file.

`render_html(diff)` takes the JSON object of `diffing.diff_builds` and returns
the whole page. It is pure: no files, no network, no clock. The page opens from
file:// with nothing else: the graph is inline SVG laid out here, in Python,
by grandalf's Sugiyama layout (a registry package, imported only when a report
is written), and the few lines of JavaScript for pan, zoom, filter and the
detail panel are inlined. A Content-Security-Policy forbids every request and
every script but our own, so even a model name that slipped past escaping
could neither load nor run anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

#: Fill of a node's box per state; the legend, the tests and the CSS read this one table.
COLOURS = {
    "added": "#86efac",
    "removed": "#fca5a5",
    "modified": "#fcd34d",
    "impacted": "#c4b5fd",
    "unchanged": "#f3f4f6",
}
BORDERS = {
    "added": "#15803d",
    "removed": "#b91c1c",
    "modified": "#b45309",
    "impacted": "#6d28d9",
    "unchanged": "#9ca3af",
}
STATES = tuple(COLOURS)

NODE_W, NODE_H = 210, 50  # px, before zoom
LAYER_GAP, ROW_GAP = 90, 18
NAME_CHARS = 28


@dataclass
class Node:
    index: int
    uid: str
    name: str
    resource_type: str
    state: str
    in_selection: bool
    data_differs: bool
    rows_badge: str
    share_badge: str
    detail: dict[str, Any]


@dataclass
class Drawing:
    """One laid-out picture: boxes (a node, or a group of collapsed nodes) and edges between them."""

    boxes: dict[str, tuple[float, float]] = field(default_factory=dict)  # box id -> centre (x, y)
    edges: list[tuple[str, str, list[tuple[float, float]]]] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


# --- the model: what each node is and what its badges say ----------------------------------


def _state(code: str | None, impacted: bool) -> str:
    if code in ("added", "removed", "modified"):
        return code
    return "impacted" if impacted else "unchanged"


def _data_differs(node: dict[str, Any]) -> bool:
    columns = node.get("columns") or {}
    if any(columns.get(k) for k in ("added", "removed", "type_changed")):
        return True
    rows = node.get("rows") or {}
    if rows.get("base") != rows.get("head"):
        return True
    values = node.get("values") or {}
    return any(values.get(k) for k in ("added", "removed", "changed"))


def _signed(n: int) -> str:
    return f"+{n:,}" if n > 0 else f"\u2212{-n:,}" if n < 0 else "\u00b10"


def _rows_badge(node: dict[str, Any]) -> str:
    rows = node.get("rows") or {}
    base, head = rows.get("base"), rows.get("head")
    if base is None and head is None:
        return ""
    if base is None:
        return f"{head:,} rows new"
    if head is None:
        return f"{base:,} rows gone"
    if base == head:
        return f"{head:,} rows"
    return f"rows {_signed(head - base)}"


def _share_changed(values: dict[str, Any] | None) -> float | None:
    """Share of keyed rows, on either side, that were added, removed or changed."""
    if not values:
        return None
    differ = sum(int(values.get(k) or 0) for k in ("added", "removed", "changed"))
    total = differ + int(values.get("unchanged") or 0)
    return differ / total if total else None


def _share_badge(values: dict[str, Any] | None) -> str:
    share = _share_changed(values)
    if not share:
        return ""
    return f"{max(share * 100, 0.1):.1f}% changed" if share < 0.1 else f"{share * 100:.0f}% changed"


def _samples(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Samples in one shape for the page: column names, and per row its kind, key and both sides' values.

    The diff gives each side's values either as a list in the order of `values.columns`, or
    as a mapping of column to value; both are accepted.
    """
    if not values or not values.get("sample"):
        return None
    columns = [str(c) for c in (values.get("compared") or list((values.get("columns") or {}).keys()))]
    rows = []
    for item in values["sample"]:
        if not isinstance(item, dict):
            rows.append({"kind": "?", "key": [item], "base": None, "head": None})
            continue
        key = item.get("key")
        key = list(key.values()) if isinstance(key, dict) else key if isinstance(key, list) else [key]
        sides = {}
        for side in ("base", "head"):
            got = item.get(side)
            if isinstance(got, dict):
                for name in got:
                    if str(name) not in columns:
                        columns.append(str(name))
                sides[side] = got
            elif isinstance(got, list):
                sides[side] = dict(zip(columns, got, strict=False))
            else:
                sides[side] = None
        rows.append({"kind": str(item.get("kind", "")), "key": key, **sides})
    # The columns that changed most come first, so the marked cells are in sight without scrolling.
    counts = values.get("columns") or {}
    columns.sort(key=lambda c: -int(counts.get(c) or 0))
    for row in rows:
        for side in ("base", "head"):
            if row[side] is not None:
                row[side] = [row[side].get(c) for c in columns]
    return {"key": [str(k) for k in (values.get("key") or [])], "columns": columns, "rows": rows}


def _nodes_and_edges(diff: dict[str, Any]) -> tuple[list[Node], list[tuple[int, int]]]:
    lineage = diff.get("lineage") or {}
    lineage_nodes: dict[str, dict[str, Any]] = lineage.get("nodes") or {}
    by_uid = {n["unique_id"]: n for n in diff.get("nodes") or [] if n.get("unique_id")}
    uids = list(lineage_nodes) + [u for u in by_uid if u not in lineage_nodes]
    nodes: list[Node] = []
    for index, uid in enumerate(uids):
        seen = lineage_nodes.get(uid, {})
        full = by_uid.get(uid, {})
        code = full.get("code", seen.get("code"))
        impacted = bool(full.get("impacted", seen.get("impacted", False)))
        values = full.get("values")
        columns = full.get("columns") or {}
        changed_columns = sorted(c for c, n in ((values or {}).get("columns") or {}).items() if n)
        detail = {
            "uid": uid,
            "name": str(full.get("name") or seen.get("name") or uid),
            "type": str(full.get("resource_type") or seen.get("resource_type") or ""),
            "code": code,
            "impacted": impacted,
            "in_selection": bool(seen.get("in_selection", uid in by_uid)),
            "compared": uid in by_uid,
            "columns": {
                "added": [str(c) for c in columns.get("added") or []],
                "removed": [str(c) for c in columns.get("removed") or []],
                "type_changed": [{k: str(t.get(k)) for k in ("name", "base", "head")} for t in columns.get("type_changed") or []],
                "order_changed": bool(columns.get("order_changed")),
            },
            "rows": {"base": (full.get("rows") or {}).get("base"), "head": (full.get("rows") or {}).get("head")},
            "values": None
            if values is None
            else {
                "key": [str(k) for k in values.get("key") or []],
                **{k: int(values.get(k) or 0) for k in ("added", "removed", "changed", "unchanged")},
                "columns": {str(c): int(n or 0) for c, n in (values.get("columns") or {}).items()},
                "changed_columns": changed_columns,
                "share": _share_changed(values),
            },
            "values_skipped": full.get("values_skipped"),
            "samples": _samples(values),
        }
        nodes.append(
            Node(
                index=index,
                uid=uid,
                name=detail["name"],
                resource_type=detail["type"],
                state=_state(code, impacted),
                in_selection=detail["in_selection"],
                data_differs=bool(full) and _data_differs(full),
                rows_badge=_rows_badge(full),
                share_badge=_share_badge(values),
                detail=detail,
            )
        )
    position = {n.uid: n.index for n in nodes}
    edges = []
    for pair in lineage.get("edges") or []:
        parent, child = pair[0], pair[1]
        if parent in position and child in position and parent != child:
            edges.append((position[parent], position[child]))
    return nodes, sorted(set(edges))


def _collapse(nodes: list[Node], edges: list[tuple[int, int]]) -> list[list[int]]:
    """Groups of unchanged nodes to draw as one box each: the regions away from every change.

    A node stays drawn when it changed (code or data) or touches a node that did. The
    rest collapse: the connected regions among them that hang off the same drawn nodes
    (or off none) make one box. A box of one node stays a node, and a group that would
    draw a cycle is split by depth.
    """
    import networkx as nx

    interesting = {n.index for n in nodes if n.state != "unchanged" or n.data_differs}
    near = set(interesting)
    for parent, child in edges:
        if parent in interesting:
            near.add(child)
        if child in interesting:
            near.add(parent)
    rest = nx.Graph()
    rest.add_nodes_from(n.index for n in nodes if n.index not in near)
    rest.add_edges_from((p, c) for p, c in edges if p not in near and c not in near)
    region = {i: r for r, members in enumerate(nx.connected_components(rest)) for i in members}
    anchors: dict[int, set[tuple[int, str]]] = {r: set() for r in region.values()}
    for parent, child in edges:
        if parent in region and child not in region:
            anchors[region[parent]].add((child, "down"))
        elif child in region and parent not in region:
            anchors[region[child]].add((parent, "up"))
    by_anchor: dict[frozenset[tuple[int, str]], list[int]] = {}
    for i, r in sorted(region.items()):
        by_anchor.setdefault(frozenset(anchors[r]), []).append(i)
    groups = [members for members in by_anchor.values() if len(members) > 1]
    dag = nx.DiGraph(edges)
    dag.add_nodes_from(range(len(nodes)))
    if not nx.is_directed_acyclic_graph(dag):
        # Base's edges and head's together can loop (a -> b before, b -> a after): draw every node.
        return []
    depth = {i: d for d, generation in enumerate(nx.topological_generations(dag)) for i in generation}
    while groups:
        member = {i: g for g, group in enumerate(groups) for i in group}
        contracted = nx.DiGraph()
        contracted.add_nodes_from(("g", g) if i in member else ("n", i) for i in range(len(nodes)) for g in [member.get(i)])
        contracted.add_edges_from(
            (("g", member[p]) if p in member else ("n", p), ("g", member[c]) if c in member else ("n", c))
            for p, c in edges
            if not (p in member and c in member and member[p] == member[c])
        )
        try:
            cycle = nx.find_cycle(contracted)
        except nx.NetworkXNoCycle:
            break
        # Split each group on the cycle by depth: boxes of nodes of one topological generation
        # can never close a cycle, since every edge leads to a later generation.
        broken = {end[1] for edge in cycle for end in edge[:2] if end[0] == "g"}
        kept = [g for i, g in enumerate(groups) if i not in broken]
        for i in sorted(broken):
            by_depth: dict[int, list[int]] = {}
            for member_index in groups[i]:
                by_depth.setdefault(depth[member_index], []).append(member_index)
            kept += [part for part in by_depth.values() if len(part) > 1 and part != groups[i]]
        groups = kept
    return sorted(groups, key=lambda g: g[0])


# --- layout: grandalf's Sugiyama, turned to run left to right -----------------------------


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


def _layout(box_ids: list[str], edges: list[tuple[str, str]]) -> Drawing:
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


# --- drawing: SVG text, every string escaped ------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _edge_path(start: tuple[float, float], middle: list[tuple[float, float]], end: tuple[float, float]) -> str:
    points = [start, *middle, end]
    parts = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in pairwise(points):
        bend = (x1 - x0) / 2
        parts.append(f"C{x0 + bend:.1f},{y0:.1f} {x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
    return "".join(parts)


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "\u2026"


def _svg(drawing: Drawing, nodes: list[Node], groups: list[list[int]], view: str) -> str:
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
        out.append(f'<path class="edge" data-from="{_e(src)}" data-to="{_e(dst)}" d="{_edge_path(start, middle, end)}"/>')
    out.append('</g><g class="nodes">')
    for box, (x, y) in drawing.boxes.items():
        left, top = x - NODE_W / 2, y - NODE_H / 2
        kind, _, number = box.partition(":")
        if kind == "g":
            members = groups[int(number)]
            names = " ".join(nodes[i].name.lower() for i in members)
            out.append(
                f'<g class="box group" data-group="{number}" data-names="{_e(names)}" transform="translate({left:.1f},{top:.1f})" tabindex="0">'
                f"<title>{_e(', '.join(nodes[i].name for i in members[:40]))}{'…' if len(members) > 40 else ''}</title>"
                f'<rect class="shape" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
                f'<text class="name" x="12" y="21">{len(members)} unchanged nodes</text>'
                f'<text class="sub" x="12" y="38">collapsed: click to list</text></g>'
            )
            continue
        node = nodes[int(number)]
        classes = f"box node state-{node.state}" + ("" if node.in_selection else " context")
        if node.data_differs:
            classes += " data-differs"
        badges = "  \u00b7  ".join(b for b in (node.rows_badge, node.share_badge) if b)
        out.append(
            f'<g class="{classes}" data-node="{node.index}" data-state="{node.state}" data-name="{_e(node.name.lower())}" '
            f'transform="translate({left:.1f},{top:.1f})" tabindex="0">'
            f"<title>{_e(node.uid)} ({node.state})</title>"
            f'<rect class="shape" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
            f'<text class="name" x="12" y="21">{_e(_short(node.name))}</text>'
            f'<text class="sub" x="12" y="38"><tspan class="type">{_e(node.resource_type)}</tspan>'
            f'{"  " if badges else ""}<tspan class="badges">{_e(badges)}</tspan></text></g>'
        )
    out.append("</g></g></g></svg>")
    return "".join(out)


def _drawing_of(nodes: list[Node], edges: list[tuple[int, int]], groups: list[list[int]]) -> Drawing:
    member = {i: g for g, group in enumerate(groups) for i in group}
    box = {n.index: (f"g:{member[n.index]}" if n.index in member else f"n:{n.index}") for n in nodes}
    box_ids = list(dict.fromkeys(box[n.index] for n in nodes))
    box_edges = sorted({(box[p], box[c]) for p, c in edges if box[p] != box[c]})
    return _layout(box_ids, box_edges)


def _json_for_script(data: Any) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever the strings hold."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _side(diff: dict[str, Any], name: str) -> dict[str, str]:
    side = diff.get(name) or {}
    return {k: "" if side.get(k) is None else str(side.get(k)) for k in ("ref", "commit", "context", "schema")}


def render_html(diff: dict[str, Any]) -> str:
    """The whole report page for one diff object (the JSON of `dot-tasks diff --json`)."""
    nodes, edges = _nodes_and_edges(diff)
    groups = _collapse(nodes, edges)
    full = _drawing_of(nodes, edges, [])
    collapsed = _drawing_of(nodes, edges, groups) if groups else None
    counts = {s: sum(1 for n in nodes if n.state == s and n.detail["compared"]) for s in STATES}
    data = {
        "base": _side(diff, "base"),
        "head": _side(diff, "head"),
        "differs": bool(diff.get("differs")),
        "counts": counts,
        "data_differs": sum(1 for n in nodes if n.data_differs),
        "nodes": [n.detail | {"state": n.state} for n in nodes],
        "groups": groups,
    }
    script = _SCRIPT
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"
    base, head = data["base"], data["head"]
    title = f"dot-tasks diff {base['ref'] or base['commit'][:8]} \u2192 {head['ref'] or head['commit'][:8]}"
    colours = "".join(f"--{s}:{COLOURS[s]};--{s}-border:{BORDERS[s]};" for s in STATES)
    legend = "".join(
        f'<span class="legend-item"><span class="swatch" style="background:var(--{s});border-color:var(--{s}-border)"></span>'
        f'{s} <b class="count" data-count="{s}">{counts[s]}</b></span>'
        for s in STATES
    )

    def side_html(label: str, side: dict[str, str]) -> str:
        return (
            f'<div class="side"><span class="label">{label}</span> <b>{_e(side["ref"] or side["commit"][:8])}</b> '
            f'<code title="{_e(side["commit"])}">{_e(side["commit"][:12])}</code> '
            f'<span class="muted">{_e(side["context"])} \u00b7 {_e(side["schema"])}</span></div>'
        )

    verdict = "differs" if data["differs"] else "no differences"
    svgs = (collapsed and _svg(collapsed, nodes, groups, "collapsed") or "") + _svg(full, nodes, groups, "full")
    toggle = f'<button id="toggle" type="button">Show all {len(nodes)} nodes</button>' if collapsed else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>:root{{{colours}}}{_CSS}</style></head>
<body>
<header>
  <div class="sides">{side_html("base", base)}<span class="arrow">\u2192</span>{side_html("head", head)}
    <span class="verdict {"yes" if data["differs"] else "no"}">{verdict}</span></div>
  <div class="bar"><div class="legend">{legend}<span class="legend-item muted">data differs in <b>{data["data_differs"]}</b></span></div>
    <div class="tools"><input id="filter" type="search" placeholder="Filter by name" aria-label="Filter nodes by name" autocomplete="off">
    <span id="matches" class="muted"></span>{toggle}<button id="fit" type="button" title="Fit to window">Fit</button>
    <button id="zoom-in" type="button" title="Zoom in">+</button><button id="zoom-out" type="button" title="Zoom out">\u2212</button></div></div>
</header>
<main><div id="canvas">{svgs}</div>
<aside id="detail" hidden><button id="close" type="button" aria-label="Close">\u00d7</button><div id="detail-body"></div></aside></main>
<script type="application/json" id="report-data">{_json_for_script(data)}</script>
<script>{script}</script>
</body></html>
"""


_CSS = """
*{box-sizing:border-box}html,body{margin:0;height:100%}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#fff;display:flex;flex-direction:column}
header{padding:10px 16px;border-bottom:1px solid #e5e7eb;background:#f9fafb}
.sides{display:flex;flex-wrap:wrap;align-items:center;gap:10px}.side .label{text-transform:uppercase;font-size:11px;color:#6b7280;letter-spacing:.05em}
.arrow{color:#6b7280}.muted{color:#6b7280}code{font:12px ui-monospace,Menlo,monospace;background:#eef0f3;padding:1px 4px;border-radius:4px}
.verdict{margin-left:auto;font-weight:600;padding:2px 10px;border-radius:999px}.verdict.yes{background:#fde68a}.verdict.no{background:#bbf7d0}
.bar{display:flex;flex-wrap:wrap;gap:12px;align-items:center;justify-content:space-between;margin-top:8px}
.legend{display:flex;flex-wrap:wrap;gap:14px}.legend-item{display:inline-flex;align-items:center;gap:5px}
.swatch{width:14px;height:14px;border-radius:4px;border:2px solid}
.tools{display:flex;gap:6px;align-items:center}#filter{width:220px;padding:5px 8px;border:1px solid #d1d5db;border-radius:6px;font:inherit}
button{font:inherit;padding:4px 10px;border:1px solid #d1d5db;background:#fff;border-radius:6px;cursor:pointer}button:hover{background:#f3f4f6}
main{flex:1;display:flex;min-height:0;position:relative}#canvas{flex:1;overflow:hidden;cursor:grab;background:#fff;
background-image:radial-gradient(#e5e7eb 1px,transparent 1px);background-size:18px 18px}#canvas.dragging{cursor:grabbing}
svg.graph{width:100%;height:100%;display:block;user-select:none}svg.graph[hidden]{display:none}
.edge{fill:none;stroke:#9ca3af;stroke-width:1.5}.edge.lit{stroke:#111827;stroke-width:2.5}
.box{cursor:pointer}.box .shape{stroke-width:2}.box .name{font-weight:600;font-size:13px;fill:#111827}.box .sub{font-size:11px;fill:#374151}
.box .badges{font-weight:600}
.node.state-added .shape{fill:var(--added);stroke:var(--added-border)}
.node.state-removed .shape{fill:var(--removed);stroke:var(--removed-border)}
.node.state-modified .shape{fill:var(--modified);stroke:var(--modified-border)}
.node.state-impacted .shape{fill:var(--impacted);stroke:var(--impacted-border)}
.node.state-unchanged .shape{fill:var(--unchanged);stroke:var(--unchanged-border)}
.node.context .shape{stroke-dasharray:5 3}.node.context{opacity:.75}
.group .shape{fill:#fff;stroke:#9ca3af;stroke-dasharray:3 3}.group .name{fill:#4b5563}
.box.selected .shape{stroke:#111827;stroke-width:3.5}.box.match .shape{stroke:#2563eb;stroke-width:4}
.filtering .box:not(.match){opacity:.25}.filtering .edge{opacity:.25}
aside{width:min(560px,55vw);border-left:1px solid #e5e7eb;overflow:auto;padding:14px 18px;background:#fff;position:relative}
aside h2{margin:0 24px 2px 0;font-size:18px;word-break:break-all}aside h3{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#6b7280;margin:16px 0 6px}
#close{position:absolute;right:10px;top:10px;border:none;font-size:20px;line-height:1;padding:2px 8px}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;border:1px solid}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #e5e7eb;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f9fafb;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto;max-width:100%}.samples td{font-family:ui-monospace,Menlo,monospace;white-space:pre;max-width:220px;overflow:hidden;text-overflow:ellipsis}
.samples th{white-space:nowrap}
td.differs{background:#fef3c7;font-weight:600}td.absent{background:#f3f4f6;color:#9ca3af}td.null{color:#9ca3af;font-style:italic}
tr.kind-added td.side-head{background:#dcfce7}tr.kind-removed td.side-base{background:#fee2e2}
.plus{color:#15803d}.minus{color:#b91c1c}ul.cols{margin:0;padding-left:18px}.bar-share{height:6px;background:#e5e7eb;border-radius:3px;width:80px;display:inline-block;vertical-align:middle}
.bar-share i{display:block;height:100%;background:#d97706;border-radius:3px}
"""

# Pan and zoom, the filter, the collapsed/full switch and the detail panel. Only DOM calls
# that treat data as text (textContent, setAttribute) touch values from the diff.
_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var canvas = document.getElementById("canvas");
  var detail = document.getElementById("detail");
  var body = document.getElementById("detail-body");
  var svgs = Array.prototype.slice.call(document.querySelectorAll("svg.graph"));
  var current = svgs[0];
  var views = {};
  function setHidden(node, hide) { if (hide) node.setAttribute("hidden", ""); else node.removeAttribute("hidden"); }
  svgs.forEach(function (svg, i) { setHidden(svg, i !== 0); views[svg.id] = {x: 0, y: 0, k: 1, fitted: false}; });

  function apply() {
    var v = views[current.id];
    current.querySelector(".viewport").setAttribute("transform", "translate(" + v.x + "," + v.y + ") scale(" + v.k + ")");
  }
  function fit() {
    var v = views[current.id], w = canvas.clientWidth, h = canvas.clientHeight;
    var gw = +current.getAttribute("data-width"), gh = +current.getAttribute("data-height");
    // The whole picture when its names stay legible; else the full width, from the top, to scroll down.
    v.k = Math.min(1.2, w / gw, Math.max(0.45, Math.min(w / gw, h / gh)));
    v.x = Math.max(0, (w - gw * v.k) / 2); v.y = Math.max(0, (h - gh * v.k) / 2); v.fitted = true; apply();
  }
  function zoomAt(factor, cx, cy) {
    var v = views[current.id], k = Math.min(4, Math.max(0.05, v.k * factor));
    v.fitted = false;
    v.x = cx - (cx - v.x) * (k / v.k); v.y = cy - (cy - v.y) * (k / v.k); v.k = k; apply();
  }
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var r = canvas.getBoundingClientRect();
    zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  }, {passive: false});
  var drag = null;
  canvas.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0) return;
    drag = {x: ev.clientX, y: ev.clientY, moved: false};
  });
  window.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    drag.moved = true; canvas.classList.add("dragging");
    var v = views[current.id]; v.x += dx; v.y += dy; v.fitted = false; drag.x = ev.clientX; drag.y = ev.clientY; apply();
  });
  window.addEventListener("pointerup", function () {
    canvas.classList.remove("dragging");
    if (drag && drag.moved) { canvas.dataset.justDragged = "1"; setTimeout(function () { delete canvas.dataset.justDragged; }, 0); }
    drag = null;
  });
  document.getElementById("fit").addEventListener("click", fit);
  document.getElementById("zoom-in").addEventListener("click", function () { zoomAt(1.25, canvas.clientWidth / 2, canvas.clientHeight / 2); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoomAt(0.8, canvas.clientWidth / 2, canvas.clientHeight / 2); });
  var toggle = document.getElementById("toggle");
  function show(svg) {
    setHidden(current, true); current = svg; setHidden(current, false);
    if (!views[current.id].fitted) fit(); else apply();
    if (toggle) toggle.textContent = current.getAttribute("data-view") === "full" ? "Collapse unchanged" : "Show all " + data.nodes.length + " nodes";
    runFilter(); markSelected();
  }
  if (toggle) toggle.addEventListener("click", function () { show(svgs[current === svgs[0] ? 1 : 0]); });

  // --- detail panel ---
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function num(n) { return n === null || n === undefined ? "\u2013" : Number(n).toLocaleString("en-US"); }
  function signed(n) { return n > 0 ? "+" + num(n) : n < 0 ? "\u2212" + num(-n) : "\u00b10"; }
  function text(v) { return v === null || v === undefined ? "NULL" : typeof v === "object" ? JSON.stringify(v) : String(v); }
  function same(a, b) { return JSON.stringify(a === undefined ? null : a) === JSON.stringify(b === undefined ? null : b); }
  var selected = null;
  function reveal() {
    // The panel takes room from the canvas: bring the selected box back into view if it went under it.
    var box = selected && current.querySelector(selected);
    if (!box) return;
    var r = box.getBoundingClientRect(), c = canvas.getBoundingClientRect(), v = views[current.id], m = 24;
    if (r.right > c.right - m) v.x -= r.right - c.right + m;
    if (r.left < c.left + m) v.x += c.left + m - r.left;
    if (r.bottom > c.bottom - m) v.y -= r.bottom - c.bottom + m;
    if (r.top < c.top + m) v.y += c.top + m - r.top;
    apply();
  }
  function showDetail() {
    var wasHidden = detail.hidden;
    detail.hidden = false;
    // Still the fitted picture (the reader has not panned or zoomed): fit it to the narrower canvas.
    if (wasHidden && views[current.id].fitted) fit(); else reveal();
  }
  function markSelected() {
    Array.prototype.forEach.call(document.querySelectorAll(".box.selected"), function (b) { b.classList.remove("selected"); });
    Array.prototype.forEach.call(current.querySelectorAll(".edge.lit"), function (e) { e.classList.remove("lit"); });
    if (!selected) return;
    var box = current.querySelector(selected);
    if (!box) return;
    box.classList.add("selected");
    var id = box.hasAttribute("data-node") ? "n:" + box.getAttribute("data-node") : "g:" + box.getAttribute("data-group");
    Array.prototype.forEach.call(current.querySelectorAll(".edge"), function (e) {
      if (e.getAttribute("data-from") === id || e.getAttribute("data-to") === id) e.classList.add("lit");
    });
  }
  function openNode(i) {
    var n = data.nodes[i];
    selected = '[data-node="' + i + '"]'; markSelected();
    body.textContent = "";
    var state = el("span", {"class": "pill", style: "background:var(--" + n.state + ");border-color:var(--" + n.state + "-border)"}, [n.state]);
    body.appendChild(el("h2", {}, [n.name]));
    body.appendChild(el("div", {"class": "muted"}, [n.type + " \u00b7 ", el("code", {}, [n.uid]), " ", state,
      n.in_selection ? "" : " (one hop outside the selection)"]));
    if (!n.compared) { body.appendChild(el("p", {"class": "muted"}, ["Not compared: outside the diff's selection."])); showDetail(); return; }
    body.appendChild(el("h3", {}, ["Rows"]));
    var r = n.rows, delta = (r.base !== null && r.head !== null) ? " (" + signed(r.head - r.base) + ")" : "";
    body.appendChild(el("p", {"id": "detail-rows"}, ["base " + num(r.base) + " \u2192 head " + num(r.head) + delta]));
    body.appendChild(el("h3", {}, ["Columns"]));
    var c = n.columns, list = el("ul", {"class": "cols"});
    c.added.forEach(function (name) { list.appendChild(el("li", {"class": "plus"}, ["+ " + name])); });
    c.removed.forEach(function (name) { list.appendChild(el("li", {"class": "minus"}, ["\u2212 " + name])); });
    c.type_changed.forEach(function (t) { list.appendChild(el("li", {}, ["~ " + t.name + ": " + t.base + " \u2192 " + t.head])); });
    if (c.order_changed) list.appendChild(el("li", {"class": "muted"}, ["column order changed (not a difference)"]));
    body.appendChild(list.childNodes.length ? list : el("p", {"class": "muted"}, ["No columns added, removed or retyped."]));
    body.appendChild(el("h3", {}, ["Values"]));
    var v = n.values;
    if (!v) { body.appendChild(el("p", {"class": "muted"}, [n.values_skipped ? "Not compared: " + n.values_skipped : "Not compared."])); showDetail(); return; }
    body.appendChild(el("p", {}, ["key ", el("code", {}, [v.key.join(", ")]), " \u00b7 ",
      el("span", {"class": "plus"}, ["+" + num(v.added) + " added"]), " \u00b7 ",
      el("span", {"class": "minus"}, ["\u2212" + num(v.removed) + " removed"]), " \u00b7 ",
      "~" + num(v.changed) + " changed \u00b7 " + num(v.unchanged) + " unchanged"]));
    body.appendChild(el("p", {"id": "changed-columns"}, [el("b", {}, [String(v.changed_columns.length)]),
      v.changed_columns.length === 1 ? " column changed" : " columns changed",
      " of " + Object.keys(v.columns).length + " compared"]));
    var matched = v.changed + v.unchanged;
    var table = el("table", {"class": "per-column"}, [el("tr", {}, [el("th", {}, ["column"]), el("th", {}, ["rows changed"]), el("th", {}, ["share of matched rows"])])]);
    Object.keys(v.columns).sort(function (a, b) { return v.columns[b] - v.columns[a]; }).forEach(function (name) {
      var share = matched ? v.columns[name] / matched : 0;
      var bar = el("span", {"class": "bar-share"}, [el("i", {style: "width:" + Math.round(share * 100) + "%"})]);
      table.appendChild(el("tr", {}, [el("td", {}, [name]), el("td", {"class": "num"}, [num(v.columns[name])]),
        el("td", {}, [bar, " " + (share * 100).toFixed(1) + "%"])]));
    });
    body.appendChild(table);
    var s = n.samples;
    if (s && s.rows.length) {
      body.appendChild(el("h3", {}, ["Samples (base | head)"]));
      var head = el("tr", {}, [el("th", {rowspan: "2"}, ["kind"])].concat(s.key.length ? [el("th", {rowspan: "2"}, [s.key.join(", ")])] : []));
      var sub = el("tr");
      s.columns.forEach(function (col) { head.appendChild(el("th", {colspan: "2"}, [col])); sub.appendChild(el("th", {}, ["base"])); sub.appendChild(el("th", {}, ["head"])); });
      var samples = el("table", {"class": "samples"}, [head, sub]);
      s.rows.forEach(function (row) {
        var tr = el("tr", {"class": "kind-" + row.kind}, [el("td", {}, [row.kind])].concat(s.key.length ? [el("td", {}, [row.key.map(text).join(", ")])] : []));
        s.columns.forEach(function (col, j) {
          var b = row.base ? row.base[j] : undefined, h = row.head ? row.head[j] : undefined;
          var differs = row.base && row.head && !same(b, h);
          [["base", row.base, b], ["head", row.head, h]].forEach(function (side) {
            var cls = "side-" + side[0] + (side[1] ? (differs ? " differs" : "") + (side[2] === null ? " null" : "") : " absent");
            tr.appendChild(el("td", {"class": cls}, [side[1] ? text(side[2]) : ""]));
          });
        });
        samples.appendChild(tr);
      });
      body.appendChild(el("div", {"class": "scroll"}, [samples]));
    }
    showDetail();
  }
  function openGroup(g) {
    selected = '[data-group="' + g + '"]'; markSelected();
    body.textContent = "";
    var members = data.groups[g];
    body.appendChild(el("h2", {}, [members.length + " unchanged nodes"]));
    body.appendChild(el("p", {"class": "muted"}, ["Same code, same data on both sides; collapsed to keep the picture on the changes."]));
    var list = el("ul", {"class": "cols"});
    members.forEach(function (i) {
      var a = el("a", {href: "#"}, [data.nodes[i].name]);
      a.addEventListener("click", function (ev) { ev.preventDefault(); if (toggle && current.getAttribute("data-view") !== "full") show(svgs[1]); openNode(i); });
      list.appendChild(el("li", {}, [a]));
    });
    body.appendChild(list);
    showDetail();
  }
  canvas.addEventListener("click", function (ev) {
    if (canvas.dataset.justDragged) return;
    var box = ev.target.closest && ev.target.closest(".box");
    if (!box) return;
    if (box.hasAttribute("data-node")) openNode(+box.getAttribute("data-node"));
    else openGroup(+box.getAttribute("data-group"));
  });
  canvas.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && ev.target.classList && ev.target.classList.contains("box")) ev.target.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  });
  document.getElementById("close").addEventListener("click", function () {
    detail.hidden = true; selected = null; markSelected();
    if (views[current.id].fitted) fit();
  });

  // --- filter by name ---
  var filter = document.getElementById("filter"), matches = document.getElementById("matches");
  function runFilter() {
    var q = filter.value.trim().toLowerCase(), found = 0;
    current.classList.toggle("filtering", q !== "");
    Array.prototype.forEach.call(current.querySelectorAll(".box"), function (box) {
      var names = box.getAttribute("data-name") || box.getAttribute("data-names") || "";
      var hit = q !== "" && names.indexOf(q) !== -1;
      box.classList.toggle("match", hit);
      if (hit) found++;
    });
    matches.textContent = q ? found + (found === 1 ? " match" : " matches") : "";
  }
  filter.addEventListener("input", runFilter);
  filter.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter") return;
    var box = current.querySelector(".box.match");
    if (!box) return;
    box.dispatchEvent(new MouseEvent("click", {bubbles: true}));
    var r = box.getBoundingClientRect(), c = canvas.getBoundingClientRect(), v = views[current.id];
    v.x += c.width / 2 - (r.left - c.left + r.width / 2); v.y += c.height / 2 - (r.top - c.top + r.height / 2);
    v.fitted = false; apply();
  });
  window.addEventListener("resize", function () { if (views[current.id].fitted) fit(); });
  fit();
})();
"""
