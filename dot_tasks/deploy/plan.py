"""Pure planning of a switch: where each relation goes live, the plan the macros take, drift.

Nothing here reads a file or reaches the warehouse: the functions take the
build's manifest and what `dot_live_state` answered, so each rule can be
tested on plain values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import DotError
from .results import Drift

PROMOTABLE = ("model", "seed", "snapshot")
HISTORY_TABLE = "dot_promotions"
#: Seconds a promotion waits for readers to let go of the live views it replaces.
READER_WAIT_SECONDS = 300


class PromotionRefused(DotError):
    """The build may not go live (gate, foreign relations, dependants)."""


class BuildGone(DotError):
    """The build to return to has been cleaned."""


def listing(names: list[str], limit: int = 5) -> str:
    """`a, b, c and 4 more`: names for a message, cut at `limit`."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def live_schema_of(build_schema: str, short: str) -> str:
    """The context's live schema: the build's schema with its suffix taken out."""
    suffix = "_" + short
    if not build_schema.lower().endswith(suffix.lower()) or len(build_schema) <= len(suffix):
        raise PromotionRefused(
            f"the build's schema {build_schema} does not end in _{short}, so it has no live schema "
            "to switch: rebuild it with `dot-tasks run`"
        )
    return build_schema[: -len(suffix)]


def live_schema_for(node_schema: str, build_schema: str, live_schema: str) -> str | None:
    """`analytics_<short>` → `analytics`, `analytics_<short>_marts` → `analytics_marts`; None outside."""
    if node_schema.lower() == build_schema.lower():
        return live_schema
    if node_schema.lower().startswith(build_schema.lower() + "_"):
        return live_schema + node_schema[len(build_schema) :]
    return None


def plan_relations(manifest: Mapping[str, Any], build_schema: str, live_schema: str) -> list[list[str]]:
    """[[build schema, live schema, relation name], ...] for every model, seed and snapshot."""
    relations: list[list[str]] = []
    outside: list[str] = []
    for uid, node in sorted((manifest.get("nodes") or {}).items()):
        if not isinstance(node, dict) or node.get("resource_type") not in PROMOTABLE:
            continue
        config = node.get("config") or {}
        if config.get("materialized") == "ephemeral" or config.get("enabled") is False:
            continue
        schema = str(node.get("schema") or "")
        name = str(node.get("alias") or node.get("name"))
        live = live_schema_for(schema, build_schema, live_schema)
        if live is None:
            outside.append(f"{uid} ({schema})")
            continue
        if live.lower() == live_schema.lower() and name.lower() == HISTORY_TABLE:
            raise PromotionRefused(f"{uid} is named {HISTORY_TABLE}, which holds the promotion history: rename it")
        relations.append([schema, live, name])
    if outside:
        raise PromotionRefused(
            f"{len(outside)} node(s) were built outside {build_schema}, so they have no live location: "
            f"{', '.join(outside[:5])}{' ...' if len(outside) > 5 else ''}"
        )
    return relations


@dataclass(frozen=True)
class HistoryRow:
    """The row a promote or rollback adds to `dot_promotions` (the macro adds seq, previous, nodes)."""

    action: str
    context: str
    commit: str
    short: str
    #: The git refs pointing at the commit, comma-separated.
    refs: str
    promoted_by: str
    #: UTC, `%Y-%m-%d %H:%M:%S.%f`: the warehouse casts it to a timestamp.
    promoted_at: str
    gate_overridden: bool
    build_schema: str

    def to_dict(self) -> dict[str, Any]:
        """The row as the `dot_promote` macro reads it."""
        return {
            "action": self.action,
            "context": self.context,
            "commit": self.commit,
            "short": self.short,
            "refs": self.refs,
            "promoted_by": self.promoted_by,
            "promoted_at": self.promoted_at,
            "gate_overridden": self.gate_overridden,
            "build_schema": self.build_schema,
        }


@dataclass(frozen=True)
class PromotePlan:
    """Everything `dot_promote` needs to switch the live schemas to one build, in one transaction."""

    #: The context's own schema, which holds the history.
    live_schema: str
    #: [[build schema, live schema, name], ...] from `plan_relations`.
    relations: list[list[str]]
    replace_existing: bool
    #: 'previous' (must be the live row's previous commit), 'was live' (must be in the history), or None.
    rollback: str | None
    row: HistoryRow
    lock_wait_seconds: int = READER_WAIT_SECONDS

    @property
    def live_schemas(self) -> list[str]:
        """Every live schema the build maps to (analytics, analytics_marts)."""
        return sorted({r[1] for r in self.relations})

    @property
    def build_schemas(self) -> list[str]:
        """The build's schemas that hold the relations."""
        return sorted({r[0] for r in self.relations})

    def to_dict(self) -> dict[str, Any]:
        """The plan as the `dot_promote` macro takes it (dbt_ops/macros/dot_deploy.sql)."""
        return {
            "live_schema": self.live_schema,
            "live_schemas": self.live_schemas,
            "build_schemas": self.build_schemas,
            "relations": self.relations,
            "replace_existing": self.replace_existing,
            "rollback": self.rollback,
            "lock_wait_seconds": self.lock_wait_seconds,
            "row": self.row.to_dict(),
        }


@dataclass(frozen=True)
class RetirePlan:
    """What `dot_retire` needs: the macro fills in the commit, short and build schema from the history."""

    live_schema: str
    context: str
    promoted_by: str
    promoted_at: str
    lock_wait_seconds: int = READER_WAIT_SECONDS

    def to_dict(self) -> dict[str, Any]:
        """The plan as the `dot_retire` macro takes it."""
        row = {
            "context": self.context,
            "refs": "",
            "promoted_by": self.promoted_by,
            "gate_overridden": False,
            "promoted_at": self.promoted_at,
        }
        return {"live_schema": self.live_schema, "lock_wait_seconds": self.lock_wait_seconds, "row": row}


def relation_key(schema: str, name: str, case_sensitive: bool) -> str:
    """A relation's key as the ops macros make it (`dot_key`): schema lower-cased, name as the warehouse compares it."""
    return f"{schema.lower()}.{name if case_sensitive else name.lower()}"


def drift(
    relations: list[list[str]], existing: Mapping[str, str], view_sources: list[list[str]], case_sensitive: bool = False
) -> list[Drift]:
    """Live relations that are missing, no longer views over the live build's relation, or read a relation that is gone."""
    reads: dict[str, list[tuple[str, str]]] = {}
    for schema, name, source_kind, what in view_sources:
        reads.setdefault(relation_key(schema, name, case_sensitive), []).append((source_kind, str(what)))
    found = []
    for build_schema, live_schema, name in relations:
        key = relation_key(live_schema, name, case_sensitive)
        where = f"{live_schema}.{name}"
        expected = f"{build_schema}.{name}"
        kind = existing.get(key)
        if kind is None:
            found.append(Drift(where, "missing"))
        elif kind != "view":
            found.append(Drift(where, f"replaced by a {kind}"))
        elif not _reads(reads.get(key, []), build_schema, name):
            found.append(Drift(where, f"no longer a view over {expected}"))
        elif relation_key(build_schema, name, case_sensitive) not in existing:
            found.append(Drift(where, f"broken: it reads {expected}, which is gone"))
    return found


def _reads(sources: list[tuple[str, str]], schema: str, name: str) -> bool:
    for kind, what in sources:
        if kind == "relation" and what.lower() == f"{schema}.{name}".lower():
            return True
        # DuckDB keeps the view's SQL, normalised: `CREATE VIEW a.x AS SELECT * FROM b.x;`
        body = what.replace('"', "").lower()
        if kind == "sql" and re.search(r"\bselect\s+\*\s+from\s+" + re.escape(f"{schema}.{name}".lower()) + r"\s*;?\s*$", body):
            return True
    return False
