"""What promote, rollback, retire and live hand back: frozen records with their `--json` and text forms.

Each `to_dict()` gives the keys the commands printed before these were types,
in the same order; `to_json()` is the one `--json` line, printed with sorted
keys, so the output stays the same byte for byte (tests/data/deploy_outputs.txt).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def _json_line(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _names(values: Sequence[Any] | None) -> tuple[str, ...]:
    return tuple(str(v) for v in values or ())


@dataclass(frozen=True)
class Drift:
    """A live relation that is not what the last promotion made of it."""

    relation: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        """The drift as `live --json` shows it."""
        return {"relation": self.relation, "problem": self.problem}


@dataclass(frozen=True)
class HistoryEntry:
    """One row of the warehouse's `dot_promotions`, as `dot_live_state` reads it.

    The values are the warehouse's own (`gate_overridden` is a boolean on
    DuckDB and PostgreSQL, may be 0 or 1 elsewhere), passed through untouched.
    """

    seq: int
    promoted_at: str
    action: str
    context: str
    commit: str
    short: str
    refs: str | None
    promoted_by: str
    previous_commit: str | None
    node_count: int
    gate_overridden: Any
    build_schema: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> HistoryEntry:
        """The entry from the macro's row (a dict of the twelve columns)."""
        return cls(
            seq=row["seq"],
            promoted_at=row["promoted_at"],
            action=row["action"],
            context=row["context"],
            commit=row["commit"],
            short=row["short"],
            refs=row["refs"],
            promoted_by=row["promoted_by"],
            previous_commit=row["previous_commit"],
            node_count=row["node_count"],
            gate_overridden=row["gate_overridden"],
            build_schema=row["build_schema"],
        )

    def to_dict(self) -> dict[str, Any]:
        """The row as `live --json` shows it, in the macro's column order."""
        return {
            "seq": self.seq,
            "promoted_at": self.promoted_at,
            "action": self.action,
            "context": self.context,
            "commit": self.commit,
            "short": self.short,
            "refs": self.refs,
            "promoted_by": self.promoted_by,
            "previous_commit": self.previous_commit,
            "node_count": self.node_count,
            "gate_overridden": self.gate_overridden,
            "build_schema": self.build_schema,
        }


@dataclass(frozen=True)
class SwitchResult:
    """What one promote, repair or rollback changed, as the warehouse reported it."""

    commit: str
    short: str
    context: str
    live_schema: str
    #: When the switch was recorded (UTC), as written into the history row.
    since: str
    #: The commit the history now names as the one before (a rollback target).
    previous_commit: str | None
    #: 'promote', 'repair' (the live commit promoted again) or 'rollback'.
    action: str
    #: How many relations the live schemas now show from the build.
    relations: int
    created: int
    replaced: int
    recreated: tuple[str, ...]
    dropped: tuple[str, ...]
    replaced_existing: tuple[str, ...]
    gate_overridden: bool
    promoted_by: str
    #: What was live when the switch took its lock.
    was_live: str | None
    transaction: Any
    lock_attempts: int | None
    switch_attempts: int | None

    @classmethod
    def from_macro(cls, value: Mapping[str, Any], **planned: Any) -> SwitchResult:
        """The result from `dot_promote`'s answer and what was planned (commit, short, context, ...)."""
        return cls(
            **planned,
            created=value.get("created", 0),
            replaced=value.get("replaced", 0),
            recreated=_names(value.get("recreated")),
            dropped=_names(value.get("dropped")),
            replaced_existing=_names(value.get("replaced_existing")),
            was_live=value.get("was_live"),
            transaction=value.get("transaction"),
            lock_attempts=value.get("lock_attempts"),
            switch_attempts=value.get("switch_attempts"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The result as `promote --json` and `rollback --json` print it."""
        return {
            "commit": self.commit,
            "short": self.short,
            "context": self.context,
            "live_schema": self.live_schema,
            "since": self.since,
            "previous_commit": self.previous_commit,
            "action": self.action,
            "relations": self.relations,
            "created": self.created,
            "replaced": self.replaced,
            "recreated": list(self.recreated),
            "dropped": list(self.dropped),
            "replaced_existing": list(self.replaced_existing),
            "gate_overridden": self.gate_overridden,
            "promoted_by": self.promoted_by,
            "was_live": self.was_live,
            "transaction": self.transaction,
            "lock_attempts": self.lock_attempts,
            "switch_attempts": self.switch_attempts,
        }

    def to_json(self) -> str:
        """The one line `--json` prints."""
        return _json_line(self.to_dict())

    def summary(self) -> str:
        """The one line printed without `--json`."""
        changes = [f"{self.relations} relation(s) live in {self.live_schema}"]
        if self.dropped:
            changes.append(f"dropped {', '.join(self.dropped)}")
        if self.replaced_existing:
            changes.append(f"replaced {', '.join(self.replaced_existing)}")
        if self.recreated:
            changes.append(f"recreated (shape changed) {', '.join(self.recreated)}")
        previous = (self.previous_commit or "nothing")[:12]
        return f"{self.action}: {self.context} is now {self.commit} ({self.short}), was {previous}; " + "; ".join(changes)


@dataclass(frozen=True)
class RetireResult:
    """What `retire` dropped, and which commit it took out of red/green."""

    context: str
    live_schema: str
    retired: str
    short: str
    dropped: tuple[str, ...]
    transaction: Any

    def to_dict(self) -> dict[str, Any]:
        """The result as `retire --json` prints it."""
        return {
            "context": self.context,
            "live_schema": self.live_schema,
            "retired": self.retired,
            "short": self.short,
            "dropped": list(self.dropped),
            "transaction": self.transaction,
        }

    def to_json(self) -> str:
        """The one line `--json` prints."""
        return _json_line(self.to_dict())

    def summary(self) -> str:
        """The one line printed without `--json`."""
        return (
            f"retire: nothing is live in {self.live_schema} for {self.context} any more (was "
            f"{self.retired}); dropped {len(self.dropped)} view(s)"
        )


@dataclass(frozen=True)
class LiveReport:
    """What is live for a context, read from the warehouse: commit, since, history, drift."""

    context: str
    live_schema: str
    #: None when nothing is live (never promoted, or retired).
    commit: str | None
    short: str | None
    since: str | None
    previous_commit: str | None
    history: tuple[HistoryEntry, ...]
    drift: tuple[Drift, ...]

    def to_dict(self) -> dict[str, Any]:
        """The report as `live --json` prints it."""
        return {
            "context": self.context,
            "live_schema": self.live_schema,
            "commit": self.commit,
            "short": self.short,
            "since": self.since,
            "previous_commit": self.previous_commit,
            "history": [entry.to_dict() for entry in self.history],
            "drift": [found.to_dict() for found in self.drift],
        }

    def to_json(self) -> str:
        """The one line `--json` prints."""
        return _json_line(self.to_dict())
