"""How a diff reads: one line per differing node for a terminal, or a pull-request comment.

Pure functions of the JSON object `diffing.diff_builds` returns.
"""

from __future__ import annotations

import math
import re
from typing import Any

_STATE_ORDER = {"modified": 0, "added": 1, "removed": 2, "unchanged": 3}


def finite(value: Any) -> Any:
    """`value` with every NaN and infinity as the string JavaScript prints for it, so JSON stays JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def shown(value: Any) -> str:
    """A value in a table or a line: NULL for SQL's NULL, not Python's None."""
    return "NULL" if value is None else str(finite(value))


def _signed(n: int) -> str:
    return f"+{n}" if n > 0 else str(n)


def _rows(node: dict[str, Any]) -> str:
    base, head = node["rows"]["base"], node["rows"]["head"]
    if base is None and head is None:
        return ""
    if base is None or head is None:
        return f"rows {base if base is not None else '-'} → {head if head is not None else '-'}"
    if base == head:
        return f"rows {base}"
    return f"rows {base} → {head} ({_signed(head - base)})"


def _columns(node: dict[str, Any]) -> str:
    c = node["columns"]
    parts = [f"+{a}" for a in c["added"]] + [f"-{r}" for r in c["removed"]]
    parts += [f"~{t['name']} {t['base']}→{t['head']}" for t in c["type_changed"]]
    return ("columns " + " ".join(parts)) if parts else ""


def _values(node: dict[str, Any]) -> str:
    v = node.get("values")
    if v is None:
        skipped = node.get("values_skipped")
        return f"values: {skipped}" if skipped and skipped not in ("only in head", "only in base") else ""
    if not (v["added"] or v["removed"] or v["changed"]):
        return f"values equal ({v['unchanged']} rows)"
    per_column = ", ".join(f"{c} {n}" for c, n in v["columns"].items() if n)
    text = f"values +{v['added']} -{v['removed']} ~{v['changed']}"
    return f"{text} ({per_column})" if per_column else text


def _state(node: dict[str, Any]) -> str:
    return "impacted" if node["impacted"] else node["code"]


def differing(diff: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        (n for n in diff["nodes"] if n["differs"] or n.get("error")), key=lambda n: (_STATE_ORDER.get(n["code"], 9), n["unique_id"])
    )


def terminal(diff: dict[str, Any]) -> str:
    """One line per node that differs, then one that counts the rest."""
    rows = differing(diff)
    width = max((len(n["name"]) for n in rows), default=0)
    lines = []
    for n in rows:
        details = [d for d in (_columns(n), _rows(n), _values(n)) if d]
        lines.append(f"{_state(n):<9} {n['resource_type']:<8} {n['name']:<{width}}  " + "   ".join(details))
    same = len(diff["nodes"]) - len(rows)
    skipped = [n for n in diff["nodes"] if not n["differs"] and n.get("values_skipped") == "ephemeral"]
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


def mermaid(diff: dict[str, Any]) -> str:
    """A flowchart of the changed nodes and their direct neighbours, coloured by state."""
    graph = diff.get("lineage") or {"nodes": {}, "edges": []}
    changed = {n["unique_id"] for n in diff["nodes"] if n["differs"] or n["impacted"] or n["code"] != "unchanged"}
    shown = set(changed)
    for parent, child in graph["edges"]:
        if parent in changed or child in changed:
            shown.update((parent, child))
    if not shown:
        return ""
    ids = {uid: f"n{i}" for i, uid in enumerate(sorted(shown))}
    lines = ["```mermaid", "flowchart LR"]
    for uid in sorted(shown):
        info = graph["nodes"].get(uid, {"name": uid, "code": "unchanged", "impacted": False, "resource_type": ""})
        state = "impacted" if info.get("impacted") else info.get("code", "unchanged")
        label = _mermaid_label(f"{info.get('name')} ({info.get('resource_type')}, {state})")
        lines.append(f'  {ids[uid]}["{label}"]:::{_MERMAID_CLASS.get(state, "unchanged")}')
    for parent, child in graph["edges"]:
        if parent in shown and child in shown:
            lines.append(f"  {ids[parent]} --> {ids[child]}")
    for name, style in _COLOURS.items():
        lines.append(f"  classDef {name} {style}")
    lines.append("```")
    return "\n".join(lines)


def _sample_table(node: dict[str, Any]) -> str:
    values = node.get("values") or {}
    samples = values.get("sample") or []
    if not samples:
        return ""
    key = values.get("key") or []
    columns: list[str] = []
    for s in samples:
        for c in s.get("changed") or list((s.get("head") or s.get("base") or {}).keys()):
            if c not in columns:
                columns.append(c)
    header = ["kind", *key, *[f"{c} (base → head)" for c in columns]]
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for s in samples:
        cells = [s["kind"], *[shown(s["key"].get(k)) for k in key]]
        for c in columns:
            b = shown((s.get("base") or {}).get(c))
            h = shown((s.get("head") or {}).get(c))
            if s["kind"] == "added":
                cells.append(f"→ {h}")
            elif s["kind"] == "removed":
                cells.append(f"{b} →")
            else:
                cells.append(f"{b} → {h}" if c in (s.get("changed") or []) else f"{b}")
        out.append("| " + " | ".join(_cell(v) for v in cells) + " |")
    return "\n".join(out)


def markdown(diff: dict[str, Any]) -> str:
    """A pull-request comment: summary, table, Mermaid lineage, collapsible samples."""
    rows = differing(diff)
    counts: dict[str, int] = {}
    for n in rows:
        counts[_state(n)] = counts.get(_state(n), 0) + 1
    base, head = diff["base"], diff["head"]
    described = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no differences"
    summary = (
        f"**dot-tasks diff** `{base['context']}@{base['commit'][:8]}` → `{head['context']}@{head['commit'][:8]}`: "
        f"{len(rows)} node(s) differ ({described}); {len(diff['nodes']) - len(rows)} unchanged."
    )
    parts = [summary, ""]
    if rows:
        parts += ["| node | state | columns | rows (base → head) | values (+added −removed ~changed) |", "|---|---|---|---|---|"]
        for n in rows:
            r = n["rows"]
            rows_text = (
                ""
                if r["base"] is None and r["head"] is None
                else (f"{'–' if r['base'] is None else r['base']} → {'–' if r['head'] is None else r['head']}")
            )
            v = n.get("values")
            values_text = (
                f"+{v['added']} −{v['removed']} ~{v['changed']}" + "".join(f"<br>{_cell(c)}: {k}" for c, k in v["columns"].items() if k)
                if v
                else _cell(n.get("values_skipped") or "")
            )
            parts.append(
                f"| `{_cell(n['name'])}` | {_state(n)} | {_cell(_columns(n).removeprefix('columns '))} | {rows_text} | {values_text} |"
            )
        parts.append("")
    chart = mermaid(diff)
    if chart:
        parts += [chart, ""]
    samples = [(n, _sample_table(n)) for n in rows]
    samples = [(n, t) for n, t in samples if t]
    if samples:
        parts += ["<details><summary>Samples</summary>", ""]
        for n, table in samples:
            parts += [f"#### `{_cell(n['name'])}`", "", table, ""]
        parts += ["</details>", ""]
    return "\n".join(parts).rstrip() + "\n"
