"""What this machine remembers of the live schemas: `.dot/live/<context>.json`.

The warehouse's history is the team's truth (`live` reads it). The note is
only the last switch seen from here, so that `list` and `clean` can tell
which builds are live, or were, without reaching the warehouse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..builds import Workspace
from ..files import read_json, write_json_atomic
from ..layout import live_notes_dir

#: A note: {"commit", "short", "context", "live_schema", "since", "previous_commit", "action"},
#: and "pending" (a commit) while a switch this machine started has not been seen to end.
LiveNoteDict = dict[str, Any]


def _note_file(ws: Workspace, context: str) -> Path:
    return live_notes_dir(ws.project_dir) / f"{context}.json"


def _read_note(path: Path) -> LiveNoteDict | None:
    """The one reader of a note file: None when it is missing, cut short, or names no commit."""
    note = read_json(path)
    if isinstance(note, dict) and (note.get("commit") or note.get("pending")):
        return note
    return None


def remember(ws: Workspace, context: str, note: LiveNoteDict | None) -> None:
    """Write (or, with None, forget) the note of `context`."""
    if note is None:
        _note_file(ws, context).unlink(missing_ok=True)
    else:
        write_json_atomic(_note_file(ws, context), note)


def live_note(
    context: str, commit: str, short: str, live_schema: str, since: str, previous_commit: str | None, action: str
) -> LiveNoteDict:
    """The note of a switch seen to end: what is live for `context` now."""
    return {
        "commit": commit,
        "short": short,
        "context": context,
        "live_schema": live_schema,
        "since": since,
        "previous_commit": previous_commit,
        "action": action,
    }


def remembered(ws: Workspace) -> dict[str, LiveNoteDict]:
    """context → the last switch seen from this machine (not the warehouse: see `live`)."""
    notes: dict[str, LiveNoteDict] = {}
    folder = live_notes_dir(ws.project_dir)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            note = _read_note(path)
            if note is not None:
                notes[path.stem] = note
    return notes


def protected_commits(ws: Workspace) -> dict[str, str]:
    """commit → why `clean` must keep its build: live for a context, or its rollback target."""
    reasons: dict[str, list[str]] = {}
    notes = remembered(ws)
    for context, note in notes.items():
        if note.get("commit"):
            reasons.setdefault(str(note["commit"]), []).append(f"live for {context}")
    for context, note in notes.items():
        if note.get("previous_commit"):
            reasons.setdefault(str(note["previous_commit"]), []).append(f"rollback target for {context}")
        if note.get("pending"):
            # A switch this machine started and never saw end (killed): it may have committed.
            reasons.setdefault(str(note["pending"]), []).append(f"maybe live for {context} (run `dot-tasks live`)")
    return {commit: ", ".join(why) for commit, why in reasons.items()}


def live_marks(ws: Workspace) -> dict[tuple[str, str], str]:
    """(commit, context) → 'live' or 'rollback', for the LIVE column of `list`."""
    marks: dict[tuple[str, str], str] = {}
    for context, note in remembered(ws).items():
        if note.get("previous_commit"):
            marks[(str(note["previous_commit"]), context)] = "rollback"
        if note.get("pending"):
            marks[(str(note["pending"]), context)] = "live?"
        if note.get("commit"):
            marks[(str(note["commit"]), context)] = "live?" if note.get("pending") else "live"
    return marks
