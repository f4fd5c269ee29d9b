"""Planning a diff from the two manifests, before anything runs (pure).

The manifests say which nodes were added, removed, modified or impacted, which key each
model's rows are matched on, and the lineage the result shows around them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .options import DiffError
from .result import Lineage, LineageNode

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
    """A node's code from base to head: added, removed, modified or unchanged."""
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


def manifest_nodes(manifest: Mapping[str, Any], types: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The manifest's nodes (and sources, if asked for) of these resource types, by unique id."""
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


def relation_of(node: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Where a manifest node's rows are: database, schema and identifier (None: no node)."""
    if node is None:
        return None
    return {
        "database": node.get("database"),
        "schema": node.get("schema"),
        "identifier": node.get("alias") or node.get("identifier") or node.get("name"),
    }


def _ephemeral(node: Mapping[str, Any] | None) -> bool:
    return node is not None and (node.get("config") or {}).get("materialized") == "ephemeral"


@dataclass
class NodePlan:
    """One node to compare: its code state, the relation on each side and the key its rows match on."""

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
    base_nodes, head_nodes = manifest_nodes(base_manifest, DIFFED_TYPES), manifest_nodes(head_manifest, DIFFED_TYPES)
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
                base=relation_of(base),
                head=(read_from or {}).get(uid) or relation_of(head),
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


def lineage(base_manifest: Mapping[str, Any], head_manifest: Mapping[str, Any], plans: list[NodePlan]) -> Lineage:
    """The diff's nodes plus their direct parents and children, and the edges between them."""
    by_uid = {p.unique_id: p for p in plans}
    edges: set[tuple[str, str]] = set()
    for manifest in (base_manifest, head_manifest):
        known = manifest_nodes(manifest, LINEAGE_TYPES)
        for child, ps in _parents(manifest).items():
            for parent in ps:
                if parent in known and child in known and (parent in by_uid or child in by_uid):
                    edges.add((parent, child))
    graph: dict[str, LineageNode] = {}
    base_all, head_all = manifest_nodes(base_manifest, LINEAGE_TYPES), manifest_nodes(head_manifest, LINEAGE_TYPES)
    for uid in sorted(set(by_uid) | {u for e in edges for u in e}):
        if uid in by_uid:
            p = by_uid[uid]
            graph[uid] = LineageNode(p.name, p.resource_type, p.code, p.impacted, in_selection=True)
            continue
        node = head_all.get(uid) or base_all.get(uid) or {}
        graph[uid] = LineageNode(
            name=node.get("name", uid),
            resource_type=node.get("resource_type", uid.split(".")[0]),
            code=code_state(base_all.get(uid), head_all.get(uid)),
            impacted=False,
            in_selection=False,
        )
    return Lineage(graph, tuple(sorted(edges)))
