"""Comparing two builds: what a change does to the data, node by node.

Planning is pure: the two manifests say which nodes were added, removed,
modified or impacted, and which key each model is compared on. The counting
happens in the warehouse, through the `dot_diff` ops macros, on a pool of
threads in one dbt child (`dbt_runner.run_macro_jobs`); only counts and the
samples come back. `compare_node` is the per-node driver that child runs: it
calls the macros in turn and decides, in plain Python, what to compare.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DotError

#: The nodes a diff looks at: those that become relations in the warehouse.
DIFFED_TYPES = ("model", "seed", "snapshot")
#: Lineage also shows sources, as parents.
LINEAGE_TYPES = (*DIFFED_TYPES, "source")

#: Config that changes what is built (or how), beside the code's checksum.
BUILD_CONFIG = (
    "materialized", "alias", "schema", "database", "unique_key", "incremental_strategy",
    "on_schema_change", "full_refresh", "partition_by", "cluster_by", "sort", "dist",
    "strategy", "updated_at", "check_cols", "column_types", "quote_columns", "delimiter",
    "pre-hook", "post-hook", "snapshot_meta_column_names", "hard_deletes",
)

#: Adapters that fold unquoted names to upper case; their column names are reported lower-cased.
UPPER_FOLDING = frozenset({"snowflake", "oracle", "db2", "exasol"})


class DiffError(DotError):
    """A diff that cannot be made: a missing build, a bad --key, a side that cannot be read."""


# --- specs and options -------------------------------------------------------------


def parse_side(spec: str) -> tuple[str | None, str]:
    """`CTX@REF`, `@REF` or a bare ref (the default context)."""
    if "@" not in spec:
        return None, spec
    context, _, ref = spec.partition("@")
    if not ref:
        raise DiffError(f"{spec!r} is not of the form CTX@REF, @REF or REF (e.g. prod@main, @HEAD~1, main)")
    return (context or None), ref


def parse_keys(items: Iterable[str]) -> dict[str, list[str]]:
    """`--key MODEL=COL[,COL]` flags as {model: [columns]}."""
    keys: dict[str, list[str]] = {}
    for item in items:
        model, sep, columns = item.partition("=")
        names = [c.strip() for c in columns.split(",") if c.strip()]
        if not sep or not model.strip() or not names:
            raise DiffError(f"--key {item!r} is not MODEL=COL[,COL]: e.g. --key orders=order_id or "
                            "--key order_lines=order_id,line_no")
        keys[model.strip()] = names
    return keys


@dataclass(frozen=True)
class DiffOptions:
    #: CTX@REF of each side; base None means the head build's `deferred_to`.
    base: str | None = None
    head: str = "HEAD"
    select: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    keys: Mapping[str, list[str]] = field(default_factory=dict)
    sample: int = 5
    #: Build a side that has no successful build, as `run` would.
    build: bool = True
    progress: Callable[[str], None] = lambda message: None


# --- planning from the manifests ----------------------------------------------------


def _relevant_config(node: Mapping[str, Any]) -> dict[str, Any]:
    config = node.get("config") or {}
    picked = {k: config.get(k) for k in BUILD_CONFIG if config.get(k) not in (None, [], {})}
    contract = config.get("contract") or {}
    if contract.get("enforced"):
        picked["contract"] = True
    return picked


def _checksum(node: Mapping[str, Any]) -> Any:
    return (node.get("checksum") or {}).get("checksum")


def code_state(base: Mapping[str, Any] | None, head: Mapping[str, Any] | None) -> str:
    if base is None:
        return "added"
    if head is None:
        return "removed"
    if head.get("resource_type") == "source":
        # Sources have no code: what matters is the relation they point at.
        same = (base.get("identifier"), base.get("schema")) == (head.get("identifier"), head.get("schema"))
        return "unchanged" if same else "modified"
    if _checksum(base) != _checksum(head) or _relevant_config(base) != _relevant_config(head):
        return "modified"
    return "unchanged"


def _nodes(manifest: Mapping[str, Any], types: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = set(types)
    found = {uid: n for uid, n in (manifest.get("nodes") or {}).items() if n.get("resource_type") in wanted}
    if "source" in wanted:
        found.update(manifest.get("sources") or {})
    return found


def _parents(manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    parents = manifest.get("parent_map")
    if parents is not None:
        return {k: list(v) for k, v in parents.items()}
    return {uid: list((n.get("depends_on") or {}).get("nodes") or [])
            for uid, n in (manifest.get("nodes") or {}).items()}


def choose_key(node: Mapping[str, Any], manifest: Mapping[str, Any],
               overrides: Mapping[str, list[str]]) -> tuple[list[str] | None, str | None]:
    """The columns a model's rows are matched on, and where that choice came from."""
    name = str(node.get("name"))
    if name in overrides:
        return list(overrides[name]), "--key"
    for constraint in node.get("constraints") or []:
        if constraint.get("type") == "primary_key" and constraint.get("columns"):
            return [str(c) for c in constraint["columns"]], "primary_key constraint"
    columns = node.get("columns") or {}
    in_columns = [c for c, spec in columns.items()
                  if any(k.get("type") == "primary_key" for k in spec.get("constraints") or [])]
    if in_columns:
        return in_columns, "primary_key constraint"
    meta = {**((node.get("config") or {}).get("meta") or {}), **(node.get("meta") or {})}
    declared = meta.get("primary_key")
    if declared:
        return ([declared] if isinstance(declared, str) else [str(c) for c in declared]), "meta.primary_key"
    tested: dict[str, set[str]] = {}
    uid = node.get("unique_id")
    for test in (manifest.get("nodes") or {}).values():
        if test.get("resource_type") != "test" or test.get("attached_node") != uid:
            continue
        kind = (test.get("test_metadata") or {}).get("name")
        column = test.get("column_name")
        if kind in ("unique", "not_null") and column:
            tested.setdefault(str(column), set()).add(kind)
    both = sorted(c for c, kinds in tested.items() if kinds == {"unique", "not_null"})
    if both:
        return [both[0]], "unique and not_null tests"
    return None, None


def _relation(node: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if node is None:
        return None
    return {"database": node.get("database"), "schema": node.get("schema"),
            "identifier": node.get("alias") or node.get("identifier") or node.get("name")}


def _ephemeral(node: Mapping[str, Any] | None) -> bool:
    return bool(node) and (node.get("config") or {}).get("materialized") == "ephemeral"


@dataclass
class NodePlan:
    unique_id: str
    name: str
    resource_type: str
    code: str
    impacted: bool
    base: dict[str, Any] | None
    head: dict[str, Any] | None
    ephemeral: bool
    key: list[str] | None
    key_source: str | None


def plan(base_manifest: Mapping[str, Any], head_manifest: Mapping[str, Any],
         keys: Mapping[str, list[str]]) -> list[NodePlan]:
    """Every model, seed and snapshot of either side, with its code state and key."""
    base_nodes, head_nodes = _nodes(base_manifest, DIFFED_TYPES), _nodes(head_manifest, DIFFED_TYPES)
    states = {uid: code_state(base_nodes.get(uid), head_nodes.get(uid)) for uid in set(base_nodes) | set(head_nodes)}
    changed = {uid for uid, state in states.items() if state in ("modified", "added")}
    impacted = _descendants(_parents(head_manifest), changed)
    unknown = set(keys) - {str(n.get("name")) for n in (*base_nodes.values(), *head_nodes.values())}
    if unknown:
        raise DiffError(f"--key names {', '.join(sorted(unknown))}, which is not a model, seed or snapshot "
                        "of either build: give the model's name, e.g. --key orders=order_id")
    plans = []
    for uid in sorted(states):
        base, head = base_nodes.get(uid), head_nodes.get(uid)
        node = head or base
        assert node is not None
        key, source = choose_key(node, head_manifest if head else base_manifest, keys)
        plans.append(NodePlan(
            unique_id=uid, name=str(node.get("name")), resource_type=str(node.get("resource_type")),
            code=states[uid], impacted=states[uid] == "unchanged" and uid in impacted,
            base=_relation(base), head=_relation(head),
            ephemeral=_ephemeral(base) or _ephemeral(head), key=key, key_source=source,
        ))
    return plans


def _descendants(parents: Mapping[str, list[str]], roots: set[str]) -> set[str]:
    children: dict[str, set[str]] = {}
    for child, ps in parents.items():
        for p in ps:
            children.setdefault(p, set()).add(child)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def lineage(base_manifest: Mapping[str, Any], head_manifest: Mapping[str, Any],
            nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The shared `lineage` object: the diff's nodes plus their direct parents and children."""
    in_selection = {n["unique_id"] for n in nodes}
    by_uid = {n["unique_id"]: n for n in nodes}
    edges: set[tuple[str, str]] = set()
    for manifest in (base_manifest, head_manifest):
        known = _nodes(manifest, LINEAGE_TYPES)
        for child, ps in _parents(manifest).items():
            for parent in ps:
                if parent in known and child in known and (parent in in_selection or child in in_selection):
                    edges.add((parent, child))
    graph: dict[str, dict[str, Any]] = {}
    base_all, head_all = _nodes(base_manifest, LINEAGE_TYPES), _nodes(head_manifest, LINEAGE_TYPES)
    for uid in sorted(in_selection | {u for e in edges for u in e}):
        if uid in by_uid:
            n = by_uid[uid]
            graph[uid] = {"name": n["name"], "resource_type": n["resource_type"], "code": n["code"],
                          "impacted": n["impacted"], "in_selection": True}
            continue
        node = head_all.get(uid) or base_all.get(uid) or {}
        graph[uid] = {"name": node.get("name", uid), "resource_type": node.get("resource_type", uid.split(".")[0]),
                      "code": code_state(base_all.get(uid), head_all.get(uid)), "impacted": False,
                      "in_selection": False}
    return {"nodes": graph, "edges": [list(e) for e in sorted(edges)]}


# --- the per-node driver (runs in the dbt child) --------------------------------------


def _by_name(columns: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {str(c["name"]).lower(): c for c in columns or []}


def _shown(name: str, adapter_type: str) -> str:
    return name.lower() if adapter_type in UPPER_FOLDING or adapter_type == "postgres" else name


def column_changes(base: list[dict[str, Any]] | None, head: list[dict[str, Any]] | None,
                   adapter_type: str = "") -> dict[str, Any]:
    """Columns added, removed and retyped; a change of order alone is reported apart."""
    b, h = _by_name(base), _by_name(head)
    if base is None or head is None:
        return {"added": [], "removed": [], "type_changed": [], "order_changed": False}
    common_b = [n for n in b if n in h]
    common_h = [n for n in h if n in b]
    return {
        "added": [_shown(h[n]["name"], adapter_type) for n in h if n not in b],
        "removed": [_shown(b[n]["name"], adapter_type) for n in b if n not in h],
        "type_changed": [{"name": _shown(h[n]["name"], adapter_type), "base": b[n]["type"], "head": h[n]["type"]}
                         for n in common_h if str(b[n]["type"]).lower() != str(h[n]["type"]).lower()],
        "order_changed": common_b != common_h,
    }


def compare_node(call: Callable[..., Any], *, unique_id: str, label: str, base: dict[str, Any] | None,
                 head: dict[str, Any] | None, key: list[str] | None, sample: int,
                 adapter_type: str = "", exact_key_check: bool = False) -> dict[str, Any]:
    """Levels b to d for one node: `call(macro, **kwargs)` runs one `dot_diff` macro."""
    base_cols = call("dot_columns_of", side=base) if base else None
    head_cols = call("dot_columns_of", side=head) if head else None
    out: dict[str, Any] = {
        "columns": column_changes(base_cols, head_cols, adapter_type),
        "rows": {"base": None, "head": None}, "values": None, "values_skipped": None,
        "missing": [side for side, rel, cols in (("base", base, base_cols), ("head", head, head_cols))
                    if rel is not None and cols is None],
    }
    b, h = _by_name(base_cols), _by_name(head_cols)
    problem = None
    if base is None or head is None:
        problem = "only in head" if base is None else "only in base"
    elif out["missing"]:
        problem = f"not in the warehouse on the {' and '.join(out['missing'])} side"
    elif not key:
        problem = "no key"
    else:
        absent = [k for k in key if k.lower() not in b or k.lower() not in h]
        if absent:
            problem = f"key column {', '.join(absent)} is not on both sides"
    usable_key = [h[k.lower()]["name"] for k in key] if key and problem is None else []
    stats: dict[str, dict[str, int]] = {}

    def check_key() -> str | None:
        """Exact duplicate and NULL counts per side (a GROUP BY each): the problem, if any."""
        for side, rel in (("base", base), ("head", head)):
            stats[side] = call("dot_side_stats", side=rel, key=usable_key)
        bad = [f"{side} has {s['duplicate_keys']} duplicate key value(s) and {s['null_key_rows']} row(s) with a NULL key"
               for side, s in stats.items() if s["duplicate_keys"] or s["null_key_rows"]]
        if not bad:
            return None
        out["key_problems"] = {side: {"duplicate_keys": s["duplicate_keys"], "null_key_rows": s["null_key_rows"]}
                               for side, s in stats.items()}
        return "key " + ", ".join(usable_key) + " is not unique and not null: " + "; ".join(bad)

    if problem is None and exact_key_check:
        problem = check_key()
    for side, rel, cols in (("base", base, base_cols), ("head", head, head_cols)):
        if rel is not None and cols is not None:
            if side not in stats:
                stats[side] = call("dot_side_stats", side=rel, key=[])
            out["rows"][side] = stats[side]["rows"]
    if problem is not None:
        out["values_skipped"] = problem
        return out
    keyset = {k.lower() for k in usable_key}
    compared = [h[n]["name"] for n in h if n in b and n not in keyset]
    as_text = [h[n]["name"] for n in h if n in b and n not in keyset
               and str(b[n]["type"]).lower() != str(h[n]["type"]).lower()]
    values = call("dot_values", base=base, head=head, key=usable_key, columns=compared, as_text=as_text)
    # The join itself shows most key trouble: a NULL key, or a repeated key that matched (a side's
    # rows then appear more often in the join than in the table). A key repeated among one side's
    # unmatched rows shows in the sample query's multiplicity. Only then are exact counts taken.
    checks = {k: values.pop(k, None) for k in ("base_present", "head_present", "base_null_keys", "head_null_keys")}
    suspect = bool(checks["base_null_keys"] or checks["head_null_keys"]) or any(
        checks[f"{side}_present"] not in (None, out["rows"][side]) for side in ("base", "head"))
    found: dict[str, Any] = {"rows": [], "max_multiplicity": 0}
    if not suspect and (values["added"] or values["removed"] or (sample > 0 and values["changed"])):
        found = call("dot_samples", base=base, head=head, key=usable_key, columns=compared,
                     as_text=as_text, sample=max(sample, 1))
        suspect = found["max_multiplicity"] > 1
    if suspect and not exact_key_check:
        problem = check_key() or "key columns are not unique"
        out["values_skipped"] = problem
        return out
    samples: list[dict[str, Any]] = []
    per_kind: dict[str, int] = {}
    for row in found["rows"]:
        kind = {"matched": "changed"}.get(row["kind"], row["kind"])
        per_kind[kind] = per_kind.get(kind, 0) + 1
        if per_kind[kind] > sample:
            continue
        entry: dict[str, Any] = {"kind": kind, "key": dict(zip(usable_key, row["key"]))}
        if kind != "added":
            entry["base"] = dict(zip(compared, row["base"]))
        if kind != "removed":
            entry["head"] = dict(zip(compared, row["head"]))
        if kind == "changed":
            entry["changed"] = [c for c, bv, hv in zip(compared, row["base"], row["head"]) if bv != hv]
        samples.append(entry)
    values["columns"] = {_shown(c, adapter_type): n for c, n in values["columns"].items()}
    values["key"] = [_shown(k, adapter_type) for k in usable_key]
    values["sample"] = samples
    out["values"] = values
    return out


# --- two databases: checksums of key-hash ranges, split only where they differ ------------

#: Hex digits of the key's hash added per level: each differing range splits 256 ways.
SPLIT_DIGITS = 2
#: A differing range this small (on both sides) is fetched rather than split again.
LEAF_ROWS = 64
#: How the normalised text spells NULL (see the dot_text macro).
NULL_TEXT = "\\N"


def _differing_ranges(base_call: Callable[..., Any], head_call: Callable[..., Any], base: dict[str, Any],
                      head: dict[str, Any], key: list[str], columns: list[str]) -> tuple[list[str], int]:
    """The key-hash ranges whose rows differ, narrowed level by level; and how many checksums came back."""
    leaves: list[str] = []
    pending: list[str] = []
    depth, fetched = 0, 0
    while depth == 0 or pending:
        depth += SPLIT_DIGITS
        args = {"key": key, "columns": columns, "depth": depth, "parents": pending}
        b = {r["bucket"]: r for r in base_call("dot_bucket_checksums", side=base, **args)}
        h = {r["bucket"]: r for r in head_call("dot_bucket_checksums", side=head, **args)}
        fetched += len(b) + len(h)
        pending = []
        for bucket in sorted(set(b) | set(h)):
            if b.get(bucket) == h.get(bucket):
                continue
            rows = max((b.get(bucket) or {}).get("n", 0), (h.get(bucket) or {}).get("n", 0))
            (leaves if rows <= LEAF_ROWS or depth >= 32 else pending).append(bucket)
    return leaves, fetched


def compare_values_apart(base_call: Callable[..., Any], head_call: Callable[..., Any], base: dict[str, Any],
                         head: dict[str, Any], key: list[str], columns: list[str], sample: int,
                         rows: dict[str, int]) -> dict[str, Any]:
    """Level d when the sides live in different databases: only differing ranges' rows leave either side."""
    leaves, checksums = _differing_ranges(base_call, head_call, base, head, key, columns)
    fetched_b = base_call("dot_bucket_rows", side=base, key=key, columns=columns, buckets=leaves) if leaves else []
    fetched_h = head_call("dot_bucket_rows", side=head, key=key, columns=columns, buckets=leaves) if leaves else []
    width = len(key)

    def as_value(text: Any) -> Any:
        return None if text == NULL_TEXT else text

    b = {tuple(r[:width]): r[width:] for r in fetched_b}
    h = {tuple(r[:width]): r[width:] for r in fetched_h}
    added = sorted(k for k in h if k not in b)
    removed = sorted(k for k in b if k not in h)
    per_column = dict.fromkeys(columns, 0)
    changed: list[tuple[Any, ...]] = []
    for k in sorted(set(b) & set(h)):
        differs = [c for c, bv, hv in zip(columns, b[k], h[k]) if bv != hv]
        for c in differs:
            per_column[c] += 1
        if differs:
            changed.append(k)
    samples: list[dict[str, Any]] = []
    for kind, keys in (("added", added), ("changed", changed), ("removed", removed)):
        for k in keys[:sample]:
            entry: dict[str, Any] = {"kind": kind, "key": {n: as_value(v) for n, v in zip(key, k)}}
            if kind != "added":
                entry["base"] = {c: as_value(v) for c, v in zip(columns, b[k])}
            if kind != "removed":
                entry["head"] = {c: as_value(v) for c, v in zip(columns, h[k])}
            if kind == "changed":
                entry["changed"] = [c for c, bv, hv in zip(columns, b[k], h[k]) if bv != hv]
            samples.append(entry)
    matched = rows["base"] - len(removed)
    return {
        "added": len(added), "removed": len(removed), "changed": len(changed), "unchanged": matched - len(changed),
        "columns": per_column, "sample": samples,
        "transfer": {"rows": len(fetched_b) + len(fetched_h), "ranges": len(leaves), "checksums": checksums},
    }


def compare_node_apart(base_call: Callable[..., Any], head_call: Callable[..., Any], *, unique_id: str,
                       label: str, base: dict[str, Any] | None, head: dict[str, Any] | None,
                       key: list[str] | None, sample: int, adapter_type: str = "") -> dict[str, Any]:
    """`compare_node` for two databases: each side's macros run on that side's own connection."""
    plan_calls: dict[str, Any] = {}

    def call(macro: str, **kwargs: Any) -> Any:
        # Levels b and c are per side: send each to the side whose relation it names.
        side = kwargs.get("side")
        if macro == "dot_values":
            plan_calls.update(kwargs)
            return {"added": 0, "removed": 0, "changed": 0, "unchanged": 0, "columns": {}}
        return (base_call if side is base else head_call)(macro, **kwargs)

    out = compare_node(call, unique_id=unique_id, label=label, base=base, head=head, key=key, sample=0,
                       adapter_type=adapter_type, exact_key_check=True)
    if out["values"] is None:
        return out
    values = compare_values_apart(base_call, head_call, base, head,  # type: ignore[arg-type]
                                  plan_calls["key"], plan_calls["columns"], sample, out["rows"])
    values["columns"] = {_shown(c, adapter_type): n for c, n in values["columns"].items()}
    values["key"] = out["values"]["key"]
    out["values"] = values
    return out


# --- assembling the result ------------------------------------------------------------


def node_differs(node: Mapping[str, Any]) -> bool:
    columns = node.get("columns") or {}
    values = node.get("values") or {}
    rows = node.get("rows") or {}
    return bool(
        node["code"] != "unchanged"
        or columns.get("added") or columns.get("removed") or columns.get("type_changed")
        or rows.get("base") != rows.get("head")
        or values.get("added") or values.get("removed") or values.get("changed")
    )


def assemble(plans: list[NodePlan], compared: Mapping[str, Mapping[str, Any]],
             errors: Mapping[str, str]) -> list[dict[str, Any]]:
    nodes = []
    for p in plans:
        result = compared.get(p.unique_id) or {}
        node: dict[str, Any] = {
            "name": p.name, "unique_id": p.unique_id, "resource_type": p.resource_type,
            "code": p.code, "impacted": p.impacted,
            "columns": result.get("columns") or {"added": [], "removed": [], "type_changed": [], "order_changed": False},
            "rows": result.get("rows") or {"base": None, "head": None},
            "values": result.get("values"),
            "values_skipped": result.get("values_skipped"),
            "key_source": p.key_source if result.get("values") else None,
            "relations": {"base": p.base, "head": p.head},
        }
        if "key_problems" in result:
            node["key_problems"] = result["key_problems"]
        if p.ephemeral:
            node["values_skipped"] = "ephemeral"
        elif p.unique_id in errors:
            node["values_skipped"] = f"error: {errors[p.unique_id]}"
            node["error"] = errors[p.unique_id]
        node["differs"] = node_differs(node)
        nodes.append(node)
    return nodes


# --- the whole diff ---------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    ref: str
    commit: str
    context: str
    schema: str | None
    target_dir: Path
    profiles_dir: Path

    def describe(self) -> dict[str, Any]:
        return {"ref": self.ref, "commit": self.commit, "context": self.context, "schema": self.schema}


def _connection(output: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies the database a profile output connects to (schema and threads aside)."""
    from .profiles import connection_identity  # a DuckDB file by its real path: a symlink is the same file

    return connection_identity(output)


def _load_manifest(side: Side) -> dict[str, Any]:
    path = side.target_dir / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DiffError(f"the build of {side.context}@{side.ref} has no readable {path} ({exc}): "
                        f"rebuild it with `dot-tasks run {side.context}@{side.commit[:12]}`") from None


def _side(ws: Any, spec: str | None, deferred: dict[str, Any] | None, options: DiffOptions) -> Side:
    from . import builds
    from .files import read_json

    if spec is None:
        assert deferred is not None
        ref, context = str(deferred["commit"]), str(deferred["context"])
    else:
        context, ref = parse_side(spec)
    commit = builds.resolve(ws, ref)
    context = builds.choose_context(ws, commit, context)[0].context
    ctx = ws.paths(commit).context(context)
    record = read_json(ctx.record) or {}
    built = record.get("status") == "success" and (ctx.target_dir / "manifest.json").is_file()
    if not built:
        command = f"dot-tasks run {context}@{ref}"
        if not options.build:
            why = "has failed" if record.get("status") == "failed" else "does not exist"
            raise DiffError(f"the build of {context}@{ref} ({commit[:12]}) {why}: run `{command}`, "
                            "or drop --no-build")
        options.progress(f"diff: no successful build of {context}@{ref}: building it as `{command}` would")
        summary: dict[str, Any] = {}
        builds.run_steps(ws, builds.RunOptions(ref=ref, context=context), summary, options.progress)
        record = read_json(ctx.record) or {}
    return Side(ref, commit, context, record.get("schema"), ctx.target_dir, ctx.context_dir)


_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _selected_by_name(select: list[str], exclude: list[str], plans: list[NodePlan]) -> set[str] | None:
    """The unique ids a selection of plain node names picks, or None when dbt must evaluate it.

    `--select orders customers` means those nodes to dbt too; answering it here
    spares the child a parse of the head project. Anything else (graph
    operators, methods, paths, a name that is not a node) goes to `dbt ls`.
    """
    if not select or exclude or not all(_PLAIN_NAME.match(word) for word in select):
        return None
    chosen = {p.unique_id for p in plans if p.name in select and p.code != "removed"}
    named = {p.name for p in plans if p.unique_id in chosen}
    return chosen if named == set(select) else None


def diff_builds(ws: Any, options: DiffOptions) -> dict[str, Any]:
    """Compare two builds; the result is the JSON object `dot-tasks diff --json` prints."""
    from . import builds
    from .dbt_runner import Listing, MacroJobs, OpsTarget, run_macro_jobs
    from .files import read_json
    from .layout import dot_dir, locks_dir
    from .locks import hold

    head = _side(ws, options.head, None, options)
    deferred = None
    if options.base is None:
        deferred = (read_json(ws.paths(head.commit).context(head.context).record) or {}).get("deferred_to")
        if not deferred:
            raise DiffError(f"no BASE given and the build of {head.context}@{head.ref} is not deferred: "
                            "name the base, e.g. `dot-tasks diff prod@main dev@HEAD`")
    base = _side(ws, options.base, deferred, options)
    base_manifest, head_manifest = _load_manifest(base), _load_manifest(head)
    plans = plan(base_manifest, head_manifest, options.keys)

    base_profile = builds.generated_profile(ws, base.commit, base.context)
    head_profile = builds.generated_profile(ws, head.commit, head.context)
    adapter_type = str(head_profile[2].get("type", ""))
    same_database = _connection(base_profile[2]) == _connection(head_profile[2])
    threads = int(head_profile[2].get("threads") or 1)
    jobs = [
        {"unique_id": p.unique_id, "label": f"{p.resource_type} {p.name}", "base": p.base, "head": p.head,
         "key": p.key, "sample": max(0, int(options.sample)), "adapter_type": adapter_type}
        for p in plans if not p.ephemeral
    ]
    listing = None
    by_name = _selected_by_name(options.select, options.exclude, plans)
    if by_name is not None:
        plans = [p for p in plans if p.unique_id in by_name]
        jobs = [j for j in jobs if j["unique_id"] in by_name]
    elif options.select or options.exclude:
        listing = Listing(
            project_dir=str(ws.paths(head.commit).worktree_project_dir), profiles_dir=str(head.profiles_dir),
            target=head_profile[1], select=list(options.select), exclude=list(options.exclude),
            state=str(base.target_dir), parsed_in=str(head.target_dir),
        )
    started = time.monotonic()
    if not same_database:
        if listing is not None:
            raise DiffError("--select with graph operators or methods is not supported across two databases yet: "
                            "name the models, e.g. --select orders customers")
        options.progress(f"diff: {base.context}@{base.ref} and {head.context}@{head.ref} are in different "
                         "databases: comparing checksums of key ranges on each side")
        compared, errors = _compare_apart(ws, jobs, (base, base_profile), (head, head_profile), options)
        return _result(base, head, plans, compared, errors, base_manifest, head_manifest, started,
                       same_database, adapter_type)
    options.progress(f"diff: comparing {len(jobs)} node(s) of {base.context}@{base.ref} and "
                     f"{head.context}@{head.ref} on {threads} thread(s)")
    with ExitStack() as stack:
        fds: tuple[int, ...] = stack.enter_context(builds.warehouse_locks(ws, [head_profile[2]]))
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diff-", dir=dot_dir(ws.project_dir))))
        # The ops project's parse is kept per head context, so a second diff parses partially;
        # its lock keeps two diffs from writing that parse at once.
        ops_target = ws.paths(head.commit).context(head.context).diff_ops_target
        fds += (stack.enter_context(hold(locks_dir(ws.project_dir) / f"{head.commit}.{head.context}.diff.lock",
                                         "another diff of this build",
                                         ws.settings.lock_timeout)),)
        target = OpsTarget(str(head.profiles_dir), head_profile[0], head_profile[1], str(scratch))
        outcome = run_macro_jobs(MacroJobs(target=target, driver="dot_tasks.diffing:compare_node", jobs=jobs,
                                           threads=threads, listing=listing, ops_target_path=str(ops_target)),
                                 scratch, lock_fds=fds)
    if outcome.error:
        raise DiffError(f"the comparison failed: {outcome.error}")
    compared, errors = {}, {}
    for job, result in zip(jobs, outcome.results):
        if result is None:
            continue
        if result.error:
            errors[job["unique_id"]] = result.error
        else:
            compared[job["unique_id"]] = result.value
    if outcome.selected is not None:
        chosen = set(outcome.selected)
        uses_state = any("state:" in s for s in options.select)
        plans = [p for p in plans if p.unique_id in chosen or (uses_state and p.code == "removed")]
    return _result(base, head, plans, compared, errors, base_manifest, head_manifest, started,
                   same_database, adapter_type)


def _result(base: Side, head: Side, plans: list[NodePlan], compared: Mapping[str, Any], errors: Mapping[str, str],
            base_manifest: Mapping[str, Any], head_manifest: Mapping[str, Any], started: float,
            same_database: bool, adapter_type: str) -> dict[str, Any]:
    nodes = assemble(plans, compared, errors)
    transferred = [n["values"]["transfer"]["rows"] for n in nodes if n.get("values") and "transfer" in n["values"]]
    return {
        "base": base.describe(),
        "head": head.describe(),
        "differs": any(n["differs"] for n in nodes),
        "errors": len(errors),
        "same_database": same_database,
        "adapter_type": adapter_type,
        "seconds": round(time.monotonic() - started, 3),
        "nodes": nodes,
        "rows_transferred": sum(transferred) if not same_database else None,
        "lineage": lineage(base_manifest, head_manifest, nodes),
    }


def _compare_apart(ws: Any, jobs: list[dict[str, Any]], base: tuple[Side, Any], head: tuple[Side, Any],
                   options: DiffOptions) -> tuple[dict[str, Any], dict[str, str]]:
    """Every job through two sessions, one per database, node after node."""
    from . import builds
    from .dbt_runner import MacroSession, OpsTarget
    from .layout import dot_dir

    compared: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diff-", dir=dot_dir(ws.project_dir))))
        sessions = []
        for name, (side, profile) in (("base", base), ("head", head)):
            fds = stack.enter_context(builds.warehouse_locks(ws, [profile[2]]))
            target = OpsTarget(str(side.profiles_dir), profile[0], profile[1], str(scratch / name))
            sessions.append(stack.enter_context(MacroSession(target, scratch / name, lock_fds=fds)))
        for job in jobs:
            job_started = time.monotonic()
            try:
                compared[job["unique_id"]] = compare_node_apart(sessions[0].call, sessions[1].call, **job)
            except DotError as exc:
                errors[job["unique_id"]] = str(exc)
            options.progress(f"compared {job['label']} ({time.monotonic() - job_started:.1f}s)")
    return compared, errors
