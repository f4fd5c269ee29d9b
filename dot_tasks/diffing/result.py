"""The typed result of a diff: a `DiffResult` of one `NodeDiff` per node (pure).

`to_json()` is exactly what `dot-tasks diff --json` prints; `from_dict` reads it back. What
the readers of a diff re-derived (does a node differ, in its data, in which state is it
drawn, what share of its rows changed) are properties, so every format agrees.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: How --format text and markdown order the states of the nodes they list.
STATE_ORDER = {"modified": 0, "added": 1, "removed": 2, "unchanged": 3}


def finite(value: Any) -> Any:
    """`value` with every NaN and infinity as the string JavaScript prints for it, so JSON stays JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


@dataclass(frozen=True)
class DiffSide:
    """One side of a diff as its result names it: the ref given, its commit, context and schema."""

    ref: str
    commit: str
    context: str
    schema: str | None

    def to_dict(self) -> dict[str, Any]:
        """The side as `--json` prints it."""
        return {"ref": self.ref, "commit": self.commit, "context": self.context, "schema": self.schema}


@dataclass(frozen=True)
class Relation:
    """Where a node's rows are on one side."""

    database: str | None
    schema: str | None
    identifier: str | None

    def to_dict(self) -> dict[str, Any]:
        """The relation as `--json` prints it."""
        return {"database": self.database, "schema": self.schema, "identifier": self.identifier}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Relation | None:
        """The relation from its `--json` object (None: the node is not on that side)."""
        return None if data is None else cls(data["database"], data["schema"], data["identifier"])


@dataclass(frozen=True)
class TypeChange:
    """A column on both sides whose type changed."""

    name: str
    base: str
    head: str


@dataclass(frozen=True)
class ColumnChanges:
    """Columns added, removed and retyped from base to head; a change of order alone is apart."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    type_changed: tuple[TypeChange, ...] = ()
    order_changed: bool = False

    @property
    def changed(self) -> bool:
        """Whether the node's columns differ (an order change alone does not count)."""
        return bool(self.added or self.removed or self.type_changed)

    def to_dict(self) -> dict[str, Any]:
        """The changes as `--json` prints them."""
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "type_changed": [{"name": t.name, "base": t.base, "head": t.head} for t in self.type_changed],
            "order_changed": self.order_changed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ColumnChanges:
        """The changes from their `--json` object (None: nothing was compared)."""
        if not data:
            return cls()
        return cls(
            tuple(data["added"]),
            tuple(data["removed"]),
            tuple(TypeChange(t["name"], t["base"], t["head"]) for t in data["type_changed"]),
            bool(data["order_changed"]),
        )


@dataclass(frozen=True)
class RowCounts:
    """A node's row count on each side (None: not on that side, or not counted)."""

    base: int | None = None
    head: int | None = None

    @property
    def differ(self) -> bool:
        """Whether the counts differ, a side without a count included."""
        return self.base != self.head

    @property
    def delta(self) -> int | None:
        """Head's rows minus base's, when both are counted."""
        return None if self.base is None or self.head is None else self.head - self.base

    def to_dict(self) -> dict[str, Any]:
        """The counts as `--json` prints them."""
        return {"base": self.base, "head": self.head}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RowCounts:
        """The counts from their `--json` object."""
        return cls() if not data else cls(data["base"], data["head"])


@dataclass(frozen=True)
class Sample:
    """One key that was added, removed or changed, with each side's values (key columns apart)."""

    kind: str
    key: dict[str, Any]
    base: dict[str, Any] | None = None
    head: dict[str, Any] | None = None
    #: The columns whose values differ, for a changed key.
    changed: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The sample as `--json` prints it: a side it has no values for is left out."""
        entry: dict[str, Any] = {"kind": self.kind, "key": dict(self.key)}
        if self.base is not None:
            entry["base"] = dict(self.base)
        if self.head is not None:
            entry["head"] = dict(self.head)
        if self.changed is not None:
            entry["changed"] = list(self.changed)
        return entry

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sample:
        """The sample from its `--json` object."""
        changed = data.get("changed")
        return cls(data["kind"], dict(data["key"]), data.get("base"), data.get("head"), None if changed is None else tuple(changed))


@dataclass(frozen=True)
class Transfer:
    """What a two-database comparison moved: rows fetched, buckets named, their bits, checksums read."""

    rows: int
    buckets: int | None
    bits: int
    checksums: int

    def to_dict(self) -> dict[str, Any]:
        """The transfer as `--json` prints it."""
        return {"rows": self.rows, "buckets": self.buckets, "bits": self.bits, "checksums": self.checksums}


@dataclass(frozen=True)
class ValueDiff:
    """The rows of a keyed node compared by key: counts, changes per column, and samples."""

    added: int
    removed: int
    changed: int
    unchanged: int
    #: Changed rows per compared column, in the head's column order.
    columns: dict[str, int]
    key: tuple[str, ...]
    sample: tuple[Sample, ...] = ()
    #: Only for two databases.
    transfer: Transfer | None = None

    @property
    def differs(self) -> bool:
        """Whether any key was added or removed, or any matched row changed."""
        return bool(self.added or self.removed or self.changed)

    @property
    def share_changed(self) -> float | None:
        """Share of keyed rows, on either side, that were added, removed or changed (None: no rows)."""
        differ = self.added + self.removed + self.changed
        total = differ + self.unchanged
        return differ / total if total else None

    def columns_by_changes(self) -> list[str]:
        """The compared columns, those that changed most first (in column order among equals)."""
        return sorted(self.columns, key=lambda c: -self.columns[c])

    def to_dict(self) -> dict[str, Any]:
        """The comparison as `--json` prints it."""
        out: dict[str, Any] = {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "columns": dict(self.columns),
            "key": list(self.key),
            "sample": [s.to_dict() for s in self.sample],
        }
        if self.transfer is not None:
            out["transfer"] = self.transfer.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ValueDiff | None:
        """The comparison from its `--json` object (None: the values were not compared)."""
        if data is None:
            return None
        transfer = data.get("transfer")
        return cls(
            data["added"],
            data["removed"],
            data["changed"],
            data["unchanged"],
            dict(data["columns"]),
            tuple(data["key"]),
            tuple(Sample.from_dict(s) for s in data["sample"]),
            None if transfer is None else Transfer(**transfer),
        )


@dataclass(frozen=True)
class KeyProblem:
    """Why one side's key cannot match rows: repeated values and NULLs."""

    duplicate_keys: int
    null_key_rows: int


@dataclass(frozen=True)
class NodeDiff:
    """One model, seed or snapshot compared: its code, columns, rows and values."""

    name: str
    unique_id: str
    resource_type: str
    #: added, removed, modified or unchanged.
    code: str
    #: Unchanged itself, downstream of a change.
    impacted: bool
    columns: ColumnChanges
    rows: RowCounts
    values: ValueDiff | None
    #: Why the values were not compared (then `values` is None), or why they were not counted.
    values_skipped: str | None
    key_source: str | None
    base_relation: Relation | None
    head_relation: Relation | None
    key_problems: dict[str, KeyProblem] | None = None
    error: str | None = None

    @property
    def data_differs(self) -> bool:
        """Whether what is in the warehouse differs: columns, row counts or values."""
        return self.columns.changed or self.rows.differ or (self.values is not None and self.values.differs)

    @property
    def differs(self) -> bool:
        """Whether the node differs at all: its code, or its data."""
        return self.code != "unchanged" or self.data_differs

    @property
    def state(self) -> str:
        """How the node is shown: its code state, or impacted when only its parents changed."""
        return "impacted" if self.impacted else self.code

    def to_dict(self) -> dict[str, Any]:
        """The node as `--json` prints it."""
        out: dict[str, Any] = {
            "name": self.name,
            "unique_id": self.unique_id,
            "resource_type": self.resource_type,
            "code": self.code,
            "impacted": self.impacted,
            "columns": self.columns.to_dict(),
            "rows": self.rows.to_dict(),
            "values": None if self.values is None else self.values.to_dict(),
            "values_skipped": self.values_skipped,
            "key_source": self.key_source,
            "relations": {
                "base": None if self.base_relation is None else self.base_relation.to_dict(),
                "head": None if self.head_relation is None else self.head_relation.to_dict(),
            },
        }
        if self.key_problems is not None:
            out["key_problems"] = {
                side: {"duplicate_keys": p.duplicate_keys, "null_key_rows": p.null_key_rows} for side, p in self.key_problems.items()
            }
        if self.error is not None:
            out["error"] = self.error
        out["differs"] = self.differs
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeDiff:
        """The node from its `--json` object (`differs` is derived, not read)."""
        problems = data.get("key_problems")
        return cls(
            name=data["name"],
            unique_id=data["unique_id"],
            resource_type=data["resource_type"],
            code=data["code"],
            impacted=data["impacted"],
            columns=ColumnChanges.from_dict(data["columns"]),
            rows=RowCounts.from_dict(data["rows"]),
            values=ValueDiff.from_dict(data["values"]),
            values_skipped=data["values_skipped"],
            key_source=data["key_source"],
            base_relation=Relation.from_dict(data["relations"]["base"]),
            head_relation=Relation.from_dict(data["relations"]["head"]),
            key_problems=None if problems is None else {side: KeyProblem(**p) for side, p in problems.items()},
            error=data.get("error"),
        )


@dataclass(frozen=True)
class LineageNode:
    """A node of the lineage graph: one the diff compared, or a direct parent or child of one."""

    name: str
    resource_type: str
    code: str
    impacted: bool
    in_selection: bool

    @property
    def state(self) -> str:
        """How the node is shown: its code state, or impacted."""
        return "impacted" if self.impacted else self.code


@dataclass(frozen=True)
class Lineage:
    """The compared nodes, their direct parents and children, and the (parent, child) edges."""

    nodes: dict[str, LineageNode]
    edges: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        """The lineage as `--json` prints it."""
        return {
            "nodes": {
                uid: {
                    "name": n.name,
                    "resource_type": n.resource_type,
                    "code": n.code,
                    "impacted": n.impacted,
                    "in_selection": n.in_selection,
                }
                for uid, n in self.nodes.items()
            },
            "edges": [list(e) for e in self.edges],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lineage:
        """The lineage from its `--json` object."""
        return cls({uid: LineageNode(**n) for uid, n in data["nodes"].items()}, tuple((p, c) for p, c in data["edges"]))


@dataclass(frozen=True)
class DiffResult:
    """Two builds compared, node by node: what `dot-tasks diff` reports in every format."""

    base: DiffSide
    head: DiffSide
    #: Nodes that could not be compared (their `error` says why).
    errors: int
    same_database: bool
    adapter_type: str
    seconds: float
    nodes: tuple[NodeDiff, ...]
    lineage: Lineage

    @property
    def differs(self) -> bool:
        """Whether any node differs: `diff` then exits 1."""
        return any(n.differs for n in self.nodes)

    @property
    def rows_transferred(self) -> int | None:
        """Rows that left either database to be compared (None on one database, where none do)."""
        if self.same_database:
            return None
        return sum(n.values.transfer.rows for n in self.nodes if n.values is not None and n.values.transfer is not None)

    def differing(self) -> list[NodeDiff]:
        """The nodes that differ or failed, modified first, then added, removed and impacted."""
        return sorted((n for n in self.nodes if n.differs or n.error), key=lambda n: (STATE_ORDER.get(n.code, 9), n.unique_id))

    def to_dict(self) -> dict[str, Any]:
        """The result as the JSON object `--json` prints."""
        return {
            "base": self.base.to_dict(),
            "head": self.head.to_dict(),
            "differs": self.differs,
            "errors": self.errors,
            "same_database": self.same_database,
            "adapter_type": self.adapter_type,
            "seconds": self.seconds,
            "nodes": [n.to_dict() for n in self.nodes],
            "rows_transferred": self.rows_transferred,
            "lineage": self.lineage.to_dict(),
        }

    def to_json(self) -> str:
        """Exactly what `dot-tasks diff --json` prints, newline included."""
        # NaN is not JSON: `finite` spells it (and the infinities) as strings.
        return json.dumps(finite(self.to_dict()), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiffResult:
        """The result from the JSON object `--json` printed."""
        return cls(
            base=DiffSide(**data["base"]),
            head=DiffSide(**data["head"]),
            errors=data["errors"],
            same_database=data["same_database"],
            adapter_type=data["adapter_type"],
            seconds=data["seconds"],
            nodes=tuple(NodeDiff.from_dict(n) for n in data["nodes"]),
            lineage=Lineage.from_dict(data["lineage"]),
        )

    @classmethod
    def from_json(cls, text: str) -> DiffResult:
        """The result from what `--json` printed."""
        return cls.from_dict(json.loads(text))
