"""`.dot/live/<context>.json`: the last switch of a context seen from this machine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..files import read_json, write_json_atomic
from ..layout import live_notes_dir
from .fields import check_version, optional_str

#: The shape written. A note without one was written before versions (0).
LIVE_NOTE_VERSION = 1


_LIVE_NOTE_KEYS = frozenset(
    {"context", "commit", "short", "live_schema", "since", "previous_commit", "action", "pending", "schema_version"}
)


@dataclass(frozen=True)
class LiveNote:
    """The last switch of a context seen from this machine (the warehouse is the truth: see `live`).

    `pending` names a commit a switch was started for and not seen to end
    (the process was killed): it may have committed, so it may be live.
    """

    context: str
    commit: str | None = None
    short: str | None = None
    live_schema: str | None = None
    since: str | None = None
    previous_commit: str | None = None
    action: str | None = None
    pending: str | None = None
    schema_version: int = field(default=LIVE_NOTE_VERSION, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @staticmethod
    def path(project_dir: Path, context: str) -> Path:
        """Where the note of `context` lives."""
        return live_notes_dir(project_dir) / f"{context}.json"

    @classmethod
    def from_json(cls, data: Any, context: str, path: Path | None = None) -> LiveNote | None:
        """A note from its JSON; None when it names neither a live commit nor a pending one."""
        if not isinstance(data, Mapping) or not (data.get("commit") or data.get("pending")):
            return None
        return cls(
            context=str(data.get("context") or context),
            commit=optional_str(data.get("commit")),
            short=optional_str(data.get("short")),
            live_schema=optional_str(data.get("live_schema")),
            since=optional_str(data.get("since")),
            previous_commit=optional_str(data.get("previous_commit")),
            action=optional_str(data.get("action")),
            pending=optional_str(data.get("pending")),
            schema_version=check_version(data, path, LIVE_NOTE_VERSION),
            extra={k: v for k, v in data.items() if k not in _LIVE_NOTE_KEYS},
        )

    @classmethod
    def load_all(cls, project_dir: Path) -> dict[str, LiveNote]:
        """context → its note, for every context this machine has seen switched."""
        notes: dict[str, LiveNote] = {}
        folder = live_notes_dir(project_dir)
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                note = cls.from_json(read_json(path), path.stem, path)
                if note is not None:
                    notes[path.stem] = note
        return notes

    def to_json(self) -> dict[str, Any]:
        """The JSON written: `context`, the switch's keys once one was seen, `pending` while one runs."""
        data: dict[str, Any] = {**self.extra, "context": self.context}
        if self.commit is not None:
            data.update(
                commit=self.commit,
                short=self.short,
                live_schema=self.live_schema,
                since=self.since,
                previous_commit=self.previous_commit,
                action=self.action,
            )
        if self.pending is not None:
            data["pending"] = self.pending
        data["schema_version"] = LIVE_NOTE_VERSION
        return data

    def save(self, project_dir: Path) -> None:
        """Write the note atomically, as `.dot/live/<context>.json`."""
        write_json_atomic(self.path(project_dir, self.context), self.to_json())

    @classmethod
    def forget(cls, project_dir: Path, context: str) -> None:
        """Remove the note: nothing is live for `context` (or a switch was undone before it began)."""
        cls.path(project_dir, context).unlink(missing_ok=True)

    def with_pending(self, commit: str) -> LiveNote:
        """The note while a switch to `commit` runs."""
        return replace(self, pending=commit)


def live_marks(project_dir: Path) -> dict[tuple[str, str], str]:
    """(commit, context) → 'live', 'live?' (maybe: a switch never seen to end) or 'rollback', from the notes."""
    marks: dict[tuple[str, str], str] = {}
    for context, note in LiveNote.load_all(project_dir).items():
        if note.previous_commit:
            marks[(note.previous_commit, context)] = "rollback"
        if note.pending:
            marks[(note.pending, context)] = "live?"
        if note.commit:
            marks[(note.commit, context)] = "live?" if note.pending else "live"
    return marks


def protected_commits(project_dir: Path) -> dict[str, str]:
    """commit → why `clean` must keep its build: live for a context, or its rollback target."""
    notes = LiveNote.load_all(project_dir)
    reasons: dict[str, list[str]] = {}
    for context, note in notes.items():
        if note.commit:
            reasons.setdefault(note.commit, []).append(f"live for {context}")
    for context, note in notes.items():
        if note.previous_commit:
            reasons.setdefault(note.previous_commit, []).append(f"rollback target for {context}")
        if note.pending:
            # A switch this machine started and never saw end (killed): it may have committed.
            reasons.setdefault(note.pending, []).append(f"maybe live for {context} (run `dot-tasks live`)")
    return {commit: ", ".join(why) for commit, why in reasons.items()}
