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
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .diff_output import finite
from .errors import DotError

#: The nodes a diff looks at: those that become relations in the warehouse.
DIFFED_TYPES = ("model", "seed", "snapshot")
#: Lineage also shows sources, as parents.
LINEAGE_TYPES = (*DIFFED_TYPES, "source")

#: Config that changes what is built (or how), beside the code's checksum.
BUILD_CONFIG = (
    "materialized",
    "alias",
    "schema",
    "database",
    "unique_key",
    "incremental_strategy",
    "on_schema_change",
    "full_refresh",
    "partition_by",
    "cluster_by",
    "sort",
    "dist",
    "strategy",
    "updated_at",
    "check_cols",
    "column_types",
    "quote_columns",
    "delimiter",
    "pre-hook",
    "post-hook",
    "snapshot_meta_column_names",
    "hard_deletes",
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
            raise DiffError(f"--key {item!r} is not MODEL=COL[,COL]: e.g. --key orders=order_id or --key order_lines=order_id,line_no")
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
    #: Floats within this relative difference of each other count as equal (0: exactly equal).
    float_tolerance: float = 0.0
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
    return {uid: list((n.get("depends_on") or {}).get("nodes") or []) for uid, n in (manifest.get("nodes") or {}).items()}


def choose_key(
    node: Mapping[str, Any], manifest: Mapping[str, Any], overrides: Mapping[str, list[str]]
) -> tuple[list[str] | None, str | None]:
    """The columns a model's rows are matched on, and where that choice came from."""
    name = str(node.get("name"))
    if name in overrides:
        return list(overrides[name]), "--key"
    for constraint in node.get("constraints") or []:
        if constraint.get("type") == "primary_key" and constraint.get("columns"):
            return [str(c) for c in constraint["columns"]], "primary_key constraint"
    columns = node.get("columns") or {}
    in_columns = [c for c, spec in columns.items() if any(k.get("type") == "primary_key" for k in spec.get("constraints") or [])]
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
    return {
        "database": node.get("database"),
        "schema": node.get("schema"),
        "identifier": node.get("alias") or node.get("identifier") or node.get("name"),
    }


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


def plan(
    base_manifest: Mapping[str, Any],
    head_manifest: Mapping[str, Any],
    keys: Mapping[str, list[str]],
    read_from: Mapping[str, dict[str, Any]] | None = None,
) -> list[NodePlan]:
    """Every model, seed and snapshot of either side, with its code state and key.

    `read_from` maps the head's deferred nodes (those a partial build did not build)
    to the relation dbt read in their place: the head side of those is that relation.
    """
    base_nodes, head_nodes = _nodes(base_manifest, DIFFED_TYPES), _nodes(head_manifest, DIFFED_TYPES)
    states = {uid: code_state(base_nodes.get(uid), head_nodes.get(uid)) for uid in set(base_nodes) | set(head_nodes)}
    changed = {uid for uid, state in states.items() if state in ("modified", "added")}
    impacted = _descendants(_parents(head_manifest), changed)
    unknown = set(keys) - {str(n.get("name")) for n in (*base_nodes.values(), *head_nodes.values())}
    if unknown:
        raise DiffError(
            f"--key names {', '.join(sorted(unknown))}, which is not a model, seed or snapshot "
            "of either build: give the model's name, e.g. --key orders=order_id"
        )
    plans = []
    for uid in sorted(states):
        base, head = base_nodes.get(uid), head_nodes.get(uid)
        node = head or base
        assert node is not None
        key, source = choose_key(node, head_manifest if head else base_manifest, keys)
        plans.append(
            NodePlan(
                unique_id=uid,
                name=str(node.get("name")),
                resource_type=str(node.get("resource_type")),
                code=states[uid],
                impacted=states[uid] == "unchanged" and uid in impacted,
                base=_relation(base),
                head=(read_from or {}).get(uid) or _relation(head),
                ephemeral=_ephemeral(base) or _ephemeral(head),
                key=key,
                key_source=source,
            )
        )
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


def lineage(base_manifest: Mapping[str, Any], head_manifest: Mapping[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any]:
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
            graph[uid] = {
                "name": n["name"],
                "resource_type": n["resource_type"],
                "code": n["code"],
                "impacted": n["impacted"],
                "in_selection": True,
            }
            continue
        node = head_all.get(uid) or base_all.get(uid) or {}
        graph[uid] = {
            "name": node.get("name", uid),
            "resource_type": node.get("resource_type", uid.split(".")[0]),
            "code": code_state(base_all.get(uid), head_all.get(uid)),
            "impacted": False,
            "in_selection": False,
        }
    return {"nodes": graph, "edges": [list(e) for e in sorted(edges)]}


# --- the per-node driver (runs in the dbt child) --------------------------------------


def _by_name(columns: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {str(c["name"]).lower(): c for c in columns or []}


def _shown(name: str, adapter_type: str) -> str:
    return name.lower() if adapter_type in UPPER_FOLDING or adapter_type == "postgres" else name


_INTEGER_TYPES = frozenset(
    {
        "int",
        "integer",
        "bigint",
        "smallint",
        "tinyint",
        "hugeint",
        "int2",
        "int4",
        "int8",
        "int16",
        "int32",
        "int64",
        "int128",
        "long",
        "short",
        "byte",
        "ubigint",
        "uinteger",
        "usmallint",
        "utinyint",
        "uhugeint",
        "serial",
        "bigserial",
        "smallserial",
    }
)
_FLOAT_TYPES = frozenset({"double precision", "double", "float", "float4", "float8", "float64", "real"})
_DECIMAL_TYPES = frozenset({"numeric", "decimal", "number", "dec", "bignumeric"})
_TEXT_TYPES = frozenset({"text", "varchar", "character varying", "char", "character", "string", "bpchar", "nvarchar", "nchar", "name"})
_TIMESTAMPTZ_TYPES = frozenset(
    {"timestamp with time zone", "timestamptz", "timestamp_tz", "timestamp_ltz", "timestamp with local time zone"}
)
#: Kinds that compare with one another by value when a column's type changes between the sides.
_FAMILY = {"integer": "number", "decimal": "number", "float": "number"}


def value_kind(data_type: str) -> str:
    """How values of a warehouse type are compared (see the dot_text macro for what each means)."""
    name = re.sub(r"\(.*?\)", "", str(data_type).lower()).strip()
    if "json" in name:
        return "json"
    if name in _TIMESTAMPTZ_TYPES:
        return "timestamptz"
    if name.startswith(("timestamp", "datetime")):
        return "timestamp"
    if name == "date":
        return "date"
    if name in ("boolean", "bool"):
        return "boolean"
    for kind, names in (("integer", _INTEGER_TYPES), ("float", _FLOAT_TYPES), ("decimal", _DECIMAL_TYPES), ("text", _TEXT_TYPES)):
        if name in names:
            return kind
    return "other"


def compare_spec(base_column: Mapping[str, Any], head_column: Mapping[str, Any]) -> dict[str, Any]:
    """How one column (or key column) is compared: its name on each side, its kind and any cast.

    Within a family (integer, decimal, float) a changed type is compared by value: as a
    double when either side is a float, as the warehouse compares the two; across families
    both sides are compared as text.
    """
    base_kind, head_kind = value_kind(base_column["type"]), value_kind(head_column["type"])
    if base_kind == head_kind:
        kind, cast = base_kind, None
    elif _FAMILY.get(base_kind) == _FAMILY.get(head_kind) == "number":
        kind, cast = ("float", "double") if "float" in (base_kind, head_kind) else ("decimal", None)
    else:
        kind, cast = "text", "string"
    return {"base": str(base_column["name"]), "head": str(head_column["name"]), "kind": kind, "cast": cast}


def column_changes(base: list[dict[str, Any]] | None, head: list[dict[str, Any]] | None, adapter_type: str = "") -> dict[str, Any]:
    """Columns added, removed and retyped; a change of order alone is reported apart."""
    b, h = _by_name(base), _by_name(head)
    if base is None or head is None:
        return {"added": [], "removed": [], "type_changed": [], "order_changed": False}
    common_b = [n for n in b if n in h]
    common_h = [n for n in h if n in b]
    return {
        "added": [_shown(h[n]["name"], adapter_type) for n in h if n not in b],
        "removed": [_shown(b[n]["name"], adapter_type) for n in b if n not in h],
        "type_changed": [
            {"name": _shown(h[n]["name"], adapter_type), "base": b[n]["type"], "head": h[n]["type"]}
            for n in common_h
            if str(b[n]["type"]).lower() != str(h[n]["type"]).lower()
        ],
        "order_changed": common_b != common_h,
    }


def compare_node(
    call: Callable[..., Any],
    *,
    unique_id: str,
    label: str,
    base: dict[str, Any] | None,
    head: dict[str, Any] | None,
    key: list[str] | None,
    sample: int,
    adapter_type: str = "",
    exact_key_check: bool = False,
    tolerance: float | None = None,
) -> dict[str, Any]:
    """Levels b to d for one node: `call(macro, **kwargs)` runs one `dot_diff` macro."""
    base_cols = call("dot_columns_of", side=base) if base else None
    head_cols = call("dot_columns_of", side=head) if head else None
    out: dict[str, Any] = {
        "columns": column_changes(base_cols, head_cols, adapter_type),
        "rows": {"base": None, "head": None},
        "values": None,
        "values_skipped": None,
        "missing": [side for side, rel, cols in (("base", base, base_cols), ("head", head, head_cols)) if rel is not None and cols is None],
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
    key_specs = [compare_spec(b[k.lower()], h[k.lower()]) for k in key] if key and problem is None else []
    stats: dict[str, dict[str, int]] = {}

    def check_key() -> str | None:
        """Exact duplicate and NULL counts per side (a GROUP BY each): the problem, if any."""
        for side, rel in (("base", base), ("head", head)):
            stats[side] = call("dot_side_stats", side=rel, key=[s[side] for s in key_specs])
        bad = [
            f"{side} has {s['duplicate_keys']} duplicate key value(s) and {s['null_key_rows']} row(s) with a NULL key"
            for side, s in stats.items()
            if s["duplicate_keys"] or s["null_key_rows"]
        ]
        if not bad:
            return None
        out["key_problems"] = {
            side: {"duplicate_keys": s["duplicate_keys"], "null_key_rows": s["null_key_rows"]} for side, s in stats.items()
        }
        return "key " + ", ".join(s["head"] for s in key_specs) + " is not unique and not null: " + "; ".join(bad)

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
    keyset = {k.lower() for k in key or []}
    specs = [compare_spec(b[n], h[n]) for n in h if n in b and n not in keyset]
    names = [s["head"] for s in specs]
    values = call("dot_values", base=base, head=head, key=key_specs, columns=specs, tolerance=tolerance)
    values["columns"] = dict(zip(names, values.pop("per_column"), strict=False))
    # The join itself shows most key trouble: a NULL key, or a repeated key that matched (a side's
    # rows then appear more often in the join than in the table). A key repeated among one side's
    # unmatched rows shows in the sample query's multiplicity. Only then are exact counts taken.
    checks = {k: values.pop(k, None) for k in ("base_present", "head_present", "base_null_keys", "head_null_keys")}
    suspect = bool(checks["base_null_keys"] or checks["head_null_keys"]) or any(
        checks[f"{side}_present"] not in (None, out["rows"][side]) for side in ("base", "head")
    )
    found: dict[str, Any] = {"rows": [], "max_multiplicity": 0}
    if not suspect and (values["added"] or values["removed"] or (sample > 0 and values["changed"])):
        found = call("dot_samples", base=base, head=head, key=key_specs, columns=specs, sample=max(sample, 1), tolerance=tolerance)
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
        if per_kind[kind] <= sample:
            samples.append(
                _sample_entry(
                    kind,
                    [s["head"] for s in key_specs],
                    names,
                    row["key"],
                    row["base"],
                    row["head"],
                    [n for n, d in zip(names, row["differs"], strict=False) if d],
                )
            )
    values["columns"] = {_shown(c, adapter_type): n for c, n in values["columns"].items()}
    values["key"] = [_shown(s["head"], adapter_type) for s in key_specs]
    values["sample"] = samples
    out["values"] = values
    out["compare"] = {"key": key_specs, "columns": specs}
    return out


def _sample_entry(
    kind: str, key: list[str], columns: list[str], key_values: list[Any], base: list[Any] | None, head: list[Any] | None, changed: list[str]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": kind, "key": {n: finite(v) for n, v in zip(key, key_values, strict=False)}}
    if kind != "added" and base is not None:
        entry["base"] = {c: finite(v) for c, v in zip(columns, base, strict=False)}
    if kind != "removed" and head is not None:
        entry["head"] = {c: finite(v) for c, v in zip(columns, head, strict=False)}
    if kind == "changed":
        entry["changed"] = changed
    return entry


# --- two databases: checksums of key-hash buckets, split only where they differ ------------
#
# Each row's key hashes to an integer below 2^60 (the warehouse's own hash: PostgreSQL
# hashtextextended, DuckDB hash; md5 where the two sides' engines differ). A level groups
# the rows by the low bits of that hash, within the buckets of the level before that
# differed, and returns one row per bucket (count, sum of row hashes): one aggregate query
# per side per level, both sides at once, streamed and compared as they arrive.

#: Bits of the key hash added per level: a differing bucket splits 256 ways.
SPLIT_BITS = 8
#: A differing bucket with at most this many rows (on either side) is fetched, not split again.
LEAF_ROWS = 4
#: The most buckets one query names; when more differ, their parents' rows are fetched instead.
MAX_BUCKETS = 4096
#: The key hash's width (see the dot_hash_int macro).
HASH_BITS = 60


#: Rows per bucket the first level aims at: one level more then reaches single rows.
FIRST_LEVEL_ROWS = 64


def first_level_bits(rows: int) -> int:
    """Bits of the first level: about FIRST_LEVEL_ROWS rows a bucket, 256 to 65,536 buckets.

    A table that matches is then one query a side; one with few differences two
    (the second level splits each differing bucket into single rows).
    """
    return min(2 * SPLIT_BITS, max(SPLIT_BITS, math.ceil(math.log2(max(rows, 1) / FIRST_LEVEL_ROWS))))


def _merged(base_rows: Iterator[list[Any]], head_rows: Iterator[list[Any]]) -> Iterator[tuple[Any, list[Any] | None, list[Any] | None]]:
    """Two streams ordered by their first value, side by side; both are read to their end."""
    b, h = next(base_rows, None), next(head_rows, None)
    while b is not None or h is not None:
        if h is None or (b is not None and b[0] < h[0]):
            yield b[0], b, None  # type: ignore[index]
            b = next(base_rows, None)
        elif b is None or h[0] < b[0]:
            yield h[0], None, h
            h = next(head_rows, None)
        else:
            yield b[0], b, h
            b, h = next(base_rows, None), next(head_rows, None)


def _grouped(rows: Iterator[list[Any]]) -> Iterator[list[Any]]:
    """Rows ordered by key hash as [hash, [rows with that hash]]: keys whose hashes collide stay together."""
    group: list[Any] | None = None
    for row in rows:
        if group is not None and group[0] == row[0]:
            group[1].append(row[1:])
            continue
        if group is not None:
            yield group
        group = [row[0], [row[1:]]]
    if group is not None:
        yield group


@dataclass
class ApartPlan:
    """What both sides of a two-database comparison hash, and how."""

    base: dict[str, Any]
    head: dict[str, Any]
    key: list[dict[str, Any]]
    columns: list[dict[str, Any]]
    tolerance: float | None
    portable: bool

    def args(self, which: str) -> dict[str, Any]:
        return {"side": getattr(self, which), "which": which, "key": self.key, "columns": self.columns, "portable": self.portable}


def differing_buckets(base_side: Any, head_side: Any, p: ApartPlan, rows: int) -> tuple[int, list[int] | None, int]:
    """The buckets whose rows differ, narrowed level by level, as (bits, buckets or None for all rows);
    and how many bucket checksums were read."""
    bits, parent_bits, parents = first_level_bits(rows), 0, None
    checksums = 0
    while True:
        level = {"bits": bits, "parent_bits": parent_bits, "parents": parents, "tolerance": p.tolerance}
        streams = [s.stream("dot_bucket_checksums", **p.args(w), **level) for s, w in ((base_side, "base"), (head_side, "head"))]
        differing: list[int] = []
        largest, overflow = 0, False
        for bucket, b, h in _merged(*streams):
            checksums += 1
            if b is not None and h is not None and b[1:] == h[1:]:
                continue
            if len(differing) >= MAX_BUCKETS:
                overflow = True
                continue
            differing.append(int(bucket))
            largest = max(largest, (b or [0, 0])[1], (h or [0, 0])[1])
        if overflow:
            return parent_bits, parents, checksums
        if not differing or largest <= LEAF_ROWS or bits + SPLIT_BITS > HASH_BITS:
            return bits, differing, checksums
        parent_bits, parents, bits = bits, differing, bits + SPLIT_BITS


def _same(kind: str, a: Any, b: Any, tolerance: float | None) -> bool:
    """Two normalised texts, as the same-database comparison would judge their values."""
    if a == b:
        return True
    if a is None or b is None or kind != "float" or not tolerance:
        return False
    x, y = float(a), float(b)
    return abs(x - y) <= tolerance * max(abs(x), abs(y))


def _key_order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, v if v is not None else "") for v in key)


def compare_values_apart(base_side: Any, head_side: Any, p: ApartPlan, sample: int, rows: dict[str, int]) -> dict[str, Any]:
    """Level d when the sides live in different databases: only differing buckets' rows leave either side.

    The rows are streamed in key-hash order from both sides and counted as they pass;
    only the sample (the first `sample` keys of each kind, in key order) is kept.
    """
    bits, buckets, checksums = differing_buckets(base_side, head_side, p, max(rows["base"], rows["head"]))
    names = [s["head"] for s in p.columns]
    kinds = [s["kind"] for s in p.columns]
    width = len(p.key)
    counts = {"added": 0, "removed": 0, "changed": 0}
    per_column = dict.fromkeys(names, 0)
    kept: dict[str, list[tuple[Any, ...]]] = {"added": [], "changed": [], "removed": []}
    transferred = 0

    def keep(kind: str, entry: tuple[Any, ...]) -> None:
        kept[kind].append(entry)
        if len(kept[kind]) > 2 * sample:
            kept[kind] = sorted(kept[kind], key=lambda e: _key_order(e[0]))[:sample]

    if buckets != []:
        args = {"bits": bits, "buckets": buckets}
        streams = [_grouped(s.stream("dot_bucket_rows", **p.args(w), **args)) for s, w in ((base_side, "base"), (head_side, "head"))]
        for _, b_group, h_group in _merged(*streams):
            b = {tuple(r[:width]): r[width:] for r in (b_group or [None, []])[1]}
            h = {tuple(r[:width]): r[width:] for r in (h_group or [None, []])[1]}
            transferred += len(b) + len(h)
            for k in b.keys() | h.keys():
                if k not in b:
                    counts["added"] += 1
                    keep("added", (k, None, h[k], []))
                elif k not in h:
                    counts["removed"] += 1
                    keep("removed", (k, b[k], None, []))
                else:
                    differs = [n for n, kind, bv, hv in zip(names, kinds, b[k], h[k], strict=False) if not _same(kind, bv, hv, p.tolerance)]
                    for n in differs:
                        per_column[n] += 1
                    if differs:
                        counts["changed"] += 1
                        keep("changed", (k, b[k], h[k], differs))
    samples = []
    for kind in ("added", "changed", "removed"):
        for k, bv, hv, differs in sorted(kept[kind], key=lambda e: _key_order(e[0]))[:sample]:
            samples.append(_sample_entry(kind, [s["head"] for s in p.key], names, list(k), bv, hv, differs))
    matched = rows["base"] - counts["removed"]
    return {
        **counts,
        "unchanged": matched - counts["changed"],
        "columns": per_column,
        "sample": samples,
        "transfer": {"rows": transferred, "buckets": len(buckets) if buckets is not None else None, "bits": bits, "checksums": checksums},
    }


def compare_node_apart(
    base_side: Any,
    head_side: Any,
    *,
    unique_id: str,
    label: str,
    base: dict[str, Any] | None,
    head: dict[str, Any] | None,
    key: list[str] | None,
    sample: int,
    adapter_type: str = "",
    tolerance: float | None = None,
    portable: bool = False,
) -> dict[str, Any]:
    """`compare_node` for two databases: each side's macros run in that side's own session."""

    def call(macro: str, **kwargs: Any) -> Any:
        # Levels b and c are per side: send each to the side whose relation it names.
        if macro == "dot_values":
            return {"added": 0, "removed": 0, "changed": 0, "unchanged": 0, "per_column": [0] * len(kwargs["columns"])}
        return (base_side if kwargs.get("side") is base else head_side).call(macro, **kwargs)

    out = compare_node(
        call,
        unique_id=unique_id,
        label=label,
        base=base,
        head=head,
        key=key,
        sample=0,
        adapter_type=adapter_type,
        exact_key_check=True,
        tolerance=tolerance,
    )
    if out["values"] is None:
        return out
    compared = out.pop("compare")
    p = ApartPlan(base, head, compared["key"], compared["columns"], tolerance, portable)  # type: ignore[arg-type]
    values = compare_values_apart(base_side, head_side, p, sample, out["rows"])
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
        or columns.get("added")
        or columns.get("removed")
        or columns.get("type_changed")
        or rows.get("base") != rows.get("head")
        or values.get("added")
        or values.get("removed")
        or values.get("changed")
    )


def assemble(plans: list[NodePlan], compared: Mapping[str, Mapping[str, Any]], errors: Mapping[str, str]) -> list[dict[str, Any]]:
    nodes = []
    for p in plans:
        result = compared.get(p.unique_id) or {}
        node: dict[str, Any] = {
            "name": p.name,
            "unique_id": p.unique_id,
            "resource_type": p.resource_type,
            "code": p.code,
            "impacted": p.impacted,
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
        raise DiffError(
            f"the build of {side.context}@{side.ref} has no readable {path} ({exc}): "
            f"rebuild it with `dot-tasks run {side.context}@{side.commit[:12]}`"
        ) from None


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
            raise DiffError(f"the build of {context}@{ref} ({commit[:12]}) {why}: run `{command}`, or drop --no-build")
        options.progress(f"diff: no successful build of {context}@{ref}: building it as `{command}` would")
        summary: dict[str, Any] = {}
        builds.run_steps(ws, builds.RunOptions(ref=ref, context=context), summary, options.progress)
        record = read_json(ctx.record) or {}
    return Side(ref, commit, context, record.get("schema"), ctx.target_dir, ctx.context_dir)


def _deferred_relations(ws: Any, head: Side) -> dict[str, dict[str, Any]]:
    """For a partial (deferred, not cloned) head build: each node it did not build, and the
    relation of its base build that dbt read instead. Empty for a complete build."""
    from .files import read_json

    record = read_json(ws.paths(head.commit).context(head.context).record) or {}
    deferred_to = record.get("deferred_to")
    if not record.get("partial") or record.get("cloned") or not deferred_to:
        return {}
    results = read_json(head.target_dir / "run_results.json") or {}
    built = {r.get("unique_id") for r in results.get("results") or []}
    base_target = ws.paths(str(deferred_to["commit"])).context(str(deferred_to["context"])).target_dir
    base_nodes = _nodes(read_json(base_target / "manifest.json") or {}, DIFFED_TYPES)
    return {uid: rel for uid, node in base_nodes.items() if uid not in built and (rel := _relation(node))}


def _nothing_selected(options: DiffOptions) -> DiffError:
    words = ([f"--select {' '.join(options.select)}"] if options.select else []) + (
        [f"--exclude {' '.join(options.exclude)}"] if options.exclude else []
    )
    return DiffError(
        f"{' '.join(words)} matches no model, seed or snapshot of either build: "
        "check the names (`dot-tasks diff` without --select lists every node)"
    )


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
            raise DiffError(
                f"no BASE given and the build of {head.context}@{head.ref} is not deferred: "
                "name the base, e.g. `dot-tasks diff prod@main dev@HEAD`"
            )
    base = _side(ws, options.base, deferred, options)
    base_manifest, head_manifest = _load_manifest(base), _load_manifest(head)
    plans = plan(base_manifest, head_manifest, options.keys, _deferred_relations(ws, head))

    base_profile = builds.generated_profile(ws, base.commit, base.context)
    head_profile = builds.generated_profile(ws, head.commit, head.context)
    adapter_type = str(head_profile[2].get("type", ""))
    same_database = _connection(base_profile[2]) == _connection(head_profile[2])
    threads = int(head_profile[2].get("threads") or 1)
    jobs = [
        {
            "unique_id": p.unique_id,
            "label": f"{p.resource_type} {p.name}",
            "base": p.base,
            "head": p.head,
            "key": p.key,
            "sample": max(0, int(options.sample)),
            "adapter_type": adapter_type,
            "tolerance": options.float_tolerance or None,
        }
        for p in plans
        if not p.ephemeral
    ]
    listing = None
    by_name = _selected_by_name(options.select, options.exclude, plans)
    if by_name is not None:
        plans = [p for p in plans if p.unique_id in by_name]
        jobs = [j for j in jobs if j["unique_id"] in by_name]
    elif options.select or options.exclude:
        listing = Listing(
            project_dir=str(ws.paths(head.commit).worktree_project_dir),
            profiles_dir=str(head.profiles_dir),
            target=head_profile[1],
            select=list(options.select),
            exclude=list(options.exclude),
            state=str(base.target_dir),
            parsed_in=str(head.target_dir),
        )
    started = time.monotonic()
    if not same_database:
        if listing is not None and all(_PLAIN_NAME.match(word) for word in options.select) and not options.exclude:
            raise _nothing_selected(options)
        if listing is not None:
            raise DiffError(
                "--select with graph operators or methods is not supported across two databases yet: "
                "name the models, e.g. --select orders customers"
            )
        options.progress(
            f"diff: {base.context}@{base.ref} and {head.context}@{head.ref} are in different "
            "databases: comparing checksums of key ranges on each side"
        )
        compared, errors = _compare_apart(ws, jobs, (base, base_profile), (head, head_profile), options)
        return _result(base, head, plans, compared, errors, base_manifest, head_manifest, started, same_database, adapter_type)
    options.progress(
        f"diff: comparing {len(jobs)} node(s) of {base.context}@{base.ref} and {head.context}@{head.ref} on {threads} thread(s)"
    )
    with ExitStack() as stack:
        fds: tuple[int, ...] = stack.enter_context(builds.warehouse_locks(ws, [head_profile[2]]))
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diff-", dir=dot_dir(ws.project_dir))))
        # The ops project's parse is kept per head context, so a second diff parses partially;
        # its lock keeps two diffs from writing that parse at once.
        ops_target = ws.paths(head.commit).context(head.context).diff_ops_target
        fds += (
            stack.enter_context(
                hold(
                    locks_dir(ws.project_dir) / f"{head.commit}.{head.context}.diff.lock",
                    "another diff of this build",
                    ws.settings.lock_timeout,
                )
            ),
        )
        target = OpsTarget(str(head.profiles_dir), head_profile[0], head_profile[1], str(scratch))
        outcome = run_macro_jobs(
            MacroJobs(
                target=target,
                driver="dot_tasks.diffing:compare_node",
                jobs=jobs,
                threads=threads,
                listing=listing,
                ops_target_path=str(ops_target),
            ),
            scratch,
            lock_fds=fds,
        )
    if outcome.error:
        raise DiffError(f"the comparison failed: {outcome.error}")
    compared, errors = {}, {}
    for job, result in zip(jobs, outcome.results, strict=False):
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
        if not plans:
            raise _nothing_selected(options)
    return _result(base, head, plans, compared, errors, base_manifest, head_manifest, started, same_database, adapter_type)


def _result(
    base: Side,
    head: Side,
    plans: list[NodePlan],
    compared: Mapping[str, Any],
    errors: Mapping[str, str],
    base_manifest: Mapping[str, Any],
    head_manifest: Mapping[str, Any],
    started: float,
    same_database: bool,
    adapter_type: str,
) -> dict[str, Any]:
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


def _compare_apart(
    ws: Any, jobs: list[dict[str, Any]], base: tuple[Side, Any], head: tuple[Side, Any], options: DiffOptions
) -> tuple[dict[str, Any], dict[str, str]]:
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
        # Two engines hash alike only through the portable (md5) hash.
        portable = str(base[1][2].get("type")) != str(head[1][2].get("type"))
        for job in jobs:
            job_started = time.monotonic()
            try:
                compared[job["unique_id"]] = compare_node_apart(sessions[0], sessions[1], **job, portable=portable)
            except DotError as exc:
                errors[job["unique_id"]] = str(exc)
            options.progress(f"compared {job['label']} ({time.monotonic() - job_started:.1f}s)")
    return compared, errors
