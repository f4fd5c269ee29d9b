"""What each node of the diff is in the picture: its state, its badges, and the detail the page shows.

Pure: it reads the typed `DiffResult` of `diffing.diff_builds`; which state a node is in, whether
its data differs and what share of its rows changed are the result's own properties, not derived here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..diffing.result import ColumnChanges, DiffResult, LineageNode, NodeDiff, RowCounts, ValueDiff

#: Fill of a node's box per state; the legend, the tests and the CSS read this one table.
COLOURS = {
    "added": "#86efac",
    "removed": "#fca5a5",
    "modified": "#fcd34d",
    "impacted": "#c4b5fd",
    "unchanged": "#f3f4f6",
}
#: Border of a node's box per state, a darker shade of its fill.
BORDERS = {
    "added": "#15803d",
    "removed": "#b91c1c",
    "modified": "#b45309",
    "impacted": "#6d28d9",
    "unchanged": "#9ca3af",
}
#: Every state a node can be drawn in, in the legend's order.
STATES = tuple(COLOURS)

#: Lineage as indices into the node list: (parent, child).
Edges = list[tuple[int, int]]


@dataclass
class Node:
    """One node of the lineage as the picture draws it; `detail` is what the page's panel shows of it."""

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


def _signed(n: int) -> str:
    return f"+{n:,}" if n > 0 else f"\u2212{-n:,}" if n < 0 else "\u00b10"


def _rows_badge(rows: RowCounts) -> str:
    if rows.delta is not None:
        return f"{rows.head:,} rows" if rows.delta == 0 else f"rows {_signed(rows.delta)}"
    if rows.head is not None:
        return f"{rows.head:,} rows new"
    return "" if rows.base is None else f"{rows.base:,} rows gone"


def _share_badge(values: ValueDiff | None) -> str:
    share = None if values is None else values.share_changed
    if not share:
        return ""
    return f"{max(share * 100, 0.1):.1f}% changed" if share < 0.1 else f"{share * 100:.0f}% changed"


def _samples(values: ValueDiff | None) -> dict[str, Any] | None:
    """Samples in one shape for the page: column names, and per row its kind, key and both sides' values.

    The compared columns come first, those that changed most leading, so the marked cells are in
    sight without scrolling; then any other column a side has (one added or removed, say).
    """
    if values is None or not values.sample:
        return None
    # Among equal counts the result's column order stands: the warehouse's for a live diff, the
    # alphabetical one of a result read back from --json (whose keys are sorted).
    columns = values.columns_by_changes()
    for sample in values.sample:
        for side in (sample.base, sample.head):
            columns += [str(name) for name in side or {} if str(name) not in columns]
    rows = [
        {
            "kind": sample.kind,
            "key": list(sample.key.values()),
            "base": None if sample.base is None else [sample.base.get(c) for c in columns],
            "head": None if sample.head is None else [sample.head.get(c) for c in columns],
        }
        for sample in values.sample
    ]
    return {"key": list(values.key), "columns": columns, "rows": rows}


def _columns_detail(columns: ColumnChanges) -> dict[str, Any]:
    return {
        "added": list(columns.added),
        "removed": list(columns.removed),
        "type_changed": [{"name": t.name, "base": t.base, "head": t.head} for t in columns.type_changed],
        "order_changed": columns.order_changed,
    }


def _values_detail(values: ValueDiff | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {
        "key": list(values.key),
        "added": values.added,
        "removed": values.removed,
        "changed": values.changed,
        "unchanged": values.unchanged,
        "columns": dict(values.columns),
        "changed_columns": sorted(c for c, n in values.columns.items() if n),
        "share": values.share_changed,
    }


def _compared_node(index: int, node: NodeDiff, seen: LineageNode | None) -> Node:
    """A node the diff compared; `seen` is what the lineage says of it, when it names it."""
    detail: dict[str, Any] = {
        "uid": node.unique_id,
        "name": node.name or node.unique_id,
        "type": node.resource_type,
        "code": node.code,
        "impacted": node.impacted,
        "in_selection": True if seen is None else seen.in_selection,
        "compared": True,
        "columns": _columns_detail(node.columns),
        "rows": node.rows.to_dict(),
        "values": _values_detail(node.values),
        "values_skipped": node.values_skipped,
        "samples": _samples(node.values),
    }
    return Node(
        index=index,
        uid=node.unique_id,
        name=detail["name"],
        resource_type=node.resource_type,
        state=node.state,
        in_selection=detail["in_selection"],
        data_differs=node.data_differs,
        rows_badge=_rows_badge(node.rows),
        share_badge=_share_badge(node.values),
        detail=detail,
    )


def _context_node(index: int, uid: str, seen: LineageNode) -> Node:
    """A node only the lineage names: a parent or child of the compared ones, drawn for context."""
    detail: dict[str, Any] = {
        "uid": uid,
        "name": seen.name or uid,
        "type": seen.resource_type,
        "code": seen.code,
        "impacted": seen.impacted,
        "in_selection": seen.in_selection,
        "compared": False,
        "columns": _columns_detail(ColumnChanges()),
        "rows": RowCounts().to_dict(),
        "values": None,
        "values_skipped": None,
        "samples": None,
    }
    return Node(index, uid, detail["name"], seen.resource_type, seen.state, seen.in_selection, False, "", "", detail)


def nodes_and_edges(result: DiffResult) -> tuple[list[Node], Edges]:
    """Every node the diff or its lineage names (the lineage's order first), and the edges between them.

    Edges to a node nobody described, and self-loops, are dropped; each edge appears once.
    """
    lineage = result.lineage.nodes
    compared = {n.unique_id: n for n in result.nodes}
    uids = list(lineage) + [u for u in compared if u not in lineage]
    nodes = [
        _compared_node(index, compared[uid], lineage.get(uid)) if uid in compared else _context_node(index, uid, lineage[uid])
        for index, uid in enumerate(uids)
    ]
    position = {n.uid: n.index for n in nodes}
    edges = {(position[p], position[c]) for p, c in result.lineage.edges if p in position and c in position and p != c}
    return nodes, sorted(edges)
