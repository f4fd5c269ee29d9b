"""How a diff reads: one line per differing node for a terminal, or a pull-request comment.

Pure functions of the `DiffResult` that `diffing.diff_builds` returns; the states and
verdicts they show are the result's own properties.
"""

from __future__ import annotations

import re
from typing import Any

from .diffing.result import DiffResult, LineageNode, NodeDiff, finite

__all__ = ["differing", "finite", "markdown", "mermaid", "shown", "terminal"]


def shown(value: Any) -> str:
    """A value in a table or a line: NULL for SQL's NULL, not Python's None."""
    return "NULL" if value is None else str(finite(value))


def _signed(n: int) -> str:
    return f"+{n}" if n > 0 else str(n)


def _rows(node: NodeDiff) -> str:
    base, head = node.rows.base, node.rows.head
    if base is None and head is None:
        return ""
    if base is None or head is None:
        return f"rows {base if base is not None else '-'} → {head if head is not None else '-'}"
    if base == head:
        return f"rows {base}"
    return f"rows {base} → {head} ({_signed(head - base)})"


def _columns(node: NodeDiff) -> str:
    c = node.columns
    parts = [f"+{a}" for a in c.added] + [f"-{r}" for r in c.removed]
    parts += [f"~{t.name} {t.base}→{t.head}" for t in c.type_changed]
    return ("columns " + " ".join(parts)) if parts else ""


def _values(node: NodeDiff) -> str:
    v = node.values
    if v is None:
        skipped = node.values_skipped
        return f"values: {skipped}" if skipped and skipped not in ("only in head", "only in base") else ""
    if not v.differs:
        return f"values equal ({v.unchanged} rows)"
    per_column = ", ".join(f"{c} {n}" for c, n in v.columns.items() if n)
    text = f"values +{v.added} -{v.removed} ~{v.changed}"
    return f"{text} ({per_column})" if per_column else text


def differing(diff: DiffResult) -> list[NodeDiff]:
    """The nodes that differ or failed, in the order both formats list them."""
    return diff.differing()


def terminal(diff: DiffResult) -> str:
    """One line per node that differs, then one that counts the rest."""
    rows = diff.differing()
    width = max((len(n.name) for n in rows), default=0)
    lines = []
    for n in rows:
        details = [d for d in (_columns(n), _rows(n), _values(n)) if d]
        lines.append(f"{n.state:<9} {n.resource_type:<8} {n.name:<{width}}  " + "   ".join(details))
    same = len(diff.nodes) - len(rows)
    skipped = [n for n in diff.nodes if not n.differs and n.values_skipped == "ephemeral"]
    tail = f"{same} node(s) unchanged"
    if skipped:
        tail += f" ({len(skipped)} ephemeral, not compared)"
    lines.append(tail)
    return "\n".join(lines)


# --- markdown for a pull request ----------------------------------------------------

_MERMAID_CLASS = {"modified": "modified", "added": "added", "removed": "removed", "impacted": "impacted", "unchanged": "unchanged"}
_COLOURS = {
    "modified": "fill:#fff3cd,stroke:#b58900,color:#000",
    "added": "fill:#d4edda,stroke:#2e7d32,color:#000",
    "removed": "fill:#f8d7da,stroke:#c62828,color:#000",
    "impacted": "fill:#dbe9ff,stroke:#1f5fbf,color:#000",
    "unchanged": "fill:#f0f0f0,stroke:#999,color:#000",
}


def _cell(text: Any) -> str:
    """A table cell: pipes escaped, newlines flattened, HTML-sensitive characters made harmless."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _mermaid_label(text: str) -> str:
    # Inside a quoted Mermaid label, a double quote ends the label: use its entity.
    return re.sub(r'["<>]', lambda m: {'"': "#quot;", "<": "#lt;", ">": "#gt;"}[m.group(0)], text)


def mermaid(diff: DiffResult) -> str:
    """A flowchart of the changed nodes and their direct neighbours, coloured by state."""
    graph = diff.lineage
    changed = {n.unique_id for n in diff.nodes if n.differs or n.impacted or n.code != "unchanged"}
    drawn = set(changed)
    for parent, child in graph.edges:
        if parent in changed or child in changed:
            drawn.update((parent, child))
    if not drawn:
        return ""
    ids = {uid: f"n{i}" for i, uid in enumerate(sorted(drawn))}
    lines = ["```mermaid", "flowchart LR"]
    for uid in sorted(drawn):
        info = graph.nodes.get(uid) or LineageNode(uid, "", "unchanged", impacted=False, in_selection=False)
        label = _mermaid_label(f"{info.name} ({info.resource_type}, {info.state})")
        lines.append(f'  {ids[uid]}["{label}"]:::{_MERMAID_CLASS.get(info.state, "unchanged")}')
    for parent, child in graph.edges:
        if parent in drawn and child in drawn:
            lines.append(f"  {ids[parent]} --> {ids[child]}")
    for name, style in _COLOURS.items():
        lines.append(f"  classDef {name} {style}")
    lines.append("```")
    return "\n".join(lines)


def _sample_table(node: NodeDiff) -> str:
    if node.values is None or not node.values.sample:
        return ""
    samples, key = node.values.sample, node.values.key
    columns: list[str] = []
    for s in samples:
        for c in s.changed or list((s.head or s.base or {}).keys()):
            if c not in columns:
                columns.append(c)
    header = ["kind", *key, *[f"{c} (base → head)" for c in columns]]
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for s in samples:
        cells = [s.kind, *[shown(s.key.get(k)) for k in key]]
        for c in columns:
            b = shown((s.base or {}).get(c))
            h = shown((s.head or {}).get(c))
            if s.kind == "added":
                cells.append(f"→ {h}")
            elif s.kind == "removed":
                cells.append(f"{b} →")
            else:
                cells.append(f"{b} → {h}" if c in (s.changed or ()) else f"{b}")
        out.append("| " + " | ".join(_cell(v) for v in cells) + " |")
    return "\n".join(out)


def _summary(diff: DiffResult, rows: list[NodeDiff]) -> str:
    counts: dict[str, int] = {}
    for n in rows:
        counts[n.state] = counts.get(n.state, 0) + 1
    base, head = diff.base, diff.head
    described = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no differences"
    return (
        f"**dot-tasks diff** `{base.context}@{base.commit[:8]}` → `{head.context}@{head.commit[:8]}`: "
        f"{len(rows)} node(s) differ ({described}); {len(diff.nodes) - len(rows)} unchanged."
    )


def _table_row(n: NodeDiff) -> str:
    r = n.rows
    rows_text = "" if r.base is None and r.head is None else f"{'–' if r.base is None else r.base} → {'–' if r.head is None else r.head}"
    v = n.values
    values_text = (
        f"+{v.added} −{v.removed} ~{v.changed}" + "".join(f"<br>{_cell(c)}: {k}" for c, k in v.columns.items() if k)
        if v is not None
        else _cell(n.values_skipped or "")
    )
    return f"| `{_cell(n.name)}` | {n.state} | {_cell(_columns(n).removeprefix('columns '))} | {rows_text} | {values_text} |"


def markdown(diff: DiffResult) -> str:
    """A pull-request comment: summary, table, Mermaid lineage, collapsible samples."""
    rows = diff.differing()
    parts = [_summary(diff, rows), ""]
    if rows:
        parts += ["| node | state | columns | rows (base → head) | values (+added −removed ~changed) |", "|---|---|---|---|---|"]
        parts += [_table_row(n) for n in rows]
        parts.append("")
    chart = mermaid(diff)
    if chart:
        parts += [chart, ""]
    samples = [(n, _sample_table(n)) for n in rows]
    samples = [(n, t) for n, t in samples if t]
    if samples:
        parts += ["<details><summary>Samples</summary>", ""]
        for n, table in samples:
            parts += [f"#### `{_cell(n.name)}`", "", table, ""]
        parts += ["</details>", ""]
    return "\n".join(parts).rstrip() + "\n"
