"""What each node of the diff is in the picture: its state, its badges, and the detail the page shows.

Pure: it reads the JSON object of `diffing.diff_builds` as it is, and tolerates what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    rows: list[dict[str, Any]] = []
    for item in values["sample"]:
        if not isinstance(item, dict):
            rows.append({"kind": "?", "key": [item], "base": None, "head": None})
            continue
        key = item.get("key")
        key = list(key.values()) if isinstance(key, dict) else key if isinstance(key, list) else [key]
        sides: dict[str, Any] = {}
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


def _columns_detail(columns: dict[str, Any]) -> dict[str, Any]:
    return {
        "added": [str(c) for c in columns.get("added") or []],
        "removed": [str(c) for c in columns.get("removed") or []],
        "type_changed": [{k: str(t.get(k)) for k in ("name", "base", "head")} for t in columns.get("type_changed") or []],
        "order_changed": bool(columns.get("order_changed")),
    }


def _values_detail(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {
        "key": [str(k) for k in values.get("key") or []],
        **{k: int(values.get(k) or 0) for k in ("added", "removed", "changed", "unchanged")},
        "columns": {str(c): int(n or 0) for c, n in (values.get("columns") or {}).items()},
        "changed_columns": sorted(c for c, n in (values.get("columns") or {}).items() if n),
        "share": _share_changed(values),
    }


def _node(index: int, uid: str, seen: dict[str, Any], full: dict[str, Any], compared: bool) -> Node:
    """The node `uid` from what the lineage saw of it (`seen`) and, when compared, the diff's entry (`full`)."""
    code = full.get("code", seen.get("code"))
    impacted = bool(full.get("impacted", seen.get("impacted", False)))
    values = full.get("values")
    detail: dict[str, Any] = {
        "uid": uid,
        "name": str(full.get("name") or seen.get("name") or uid),
        "type": str(full.get("resource_type") or seen.get("resource_type") or ""),
        "code": code,
        "impacted": impacted,
        "in_selection": bool(seen.get("in_selection", compared)),
        "compared": compared,
        "columns": _columns_detail(full.get("columns") or {}),
        "rows": {"base": (full.get("rows") or {}).get("base"), "head": (full.get("rows") or {}).get("head")},
        "values": _values_detail(values),
        "values_skipped": full.get("values_skipped"),
        "samples": _samples(values),
    }
    return Node(
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


def nodes_and_edges(diff: dict[str, Any]) -> tuple[list[Node], Edges]:
    """Every node the diff or its lineage names (the lineage's order first), and the edges between them.

    Edges to a node nobody described, and self-loops, are dropped; each edge appears once.
    """
    lineage = diff.get("lineage") or {}
    lineage_nodes: dict[str, dict[str, Any]] = lineage.get("nodes") or {}
    by_uid = {n["unique_id"]: n for n in diff.get("nodes") or [] if n.get("unique_id")}
    uids = list(lineage_nodes) + [u for u in by_uid if u not in lineage_nodes]
    nodes = [_node(index, uid, lineage_nodes.get(uid, {}), by_uid.get(uid, {}), uid in by_uid) for index, uid in enumerate(uids)]
    position = {n.uid: n.index for n in nodes}
    edges = []
    for pair in lineage.get("edges") or []:
        parent, child = pair[0], pair[1]
        if parent in position and child in position and parent != child:
            edges.append((position[parent], position[child]))
    return nodes, sorted(set(edges))
