"""What this machine remembers of the live schemas: `.dot/live/<context>.json`, through `records.LiveNote`.

The warehouse's history is the team's truth (`live` reads it). The note is
only the last switch seen from here, so that `list` and `clean` can tell
which builds are live, or were, without reaching the warehouse. The file
itself is read and written by `records` alone; this module names what
deploy does with it.
"""

from __future__ import annotations

from .. import records
from ..builds import Workspace
from ..records import LiveNote


def remember(ws: Workspace, context: str, note: LiveNote | None) -> None:
    """Write (or, with None, forget) the note of `context`."""
    if note is None:
        LiveNote.forget(ws.project_dir, context)
    else:
        note.save(ws.project_dir)


def live_note(context: str, commit: str, short: str, live_schema: str, since: str, previous_commit: str | None, action: str) -> LiveNote:
    """The note of a switch seen to end: what is live for `context` now."""
    return LiveNote(
        context=context,
        commit=commit,
        short=short,
        live_schema=live_schema,
        since=since,
        previous_commit=previous_commit,
        action=action,
    )


def pending_note(before: LiveNote | None, context: str, commit: str) -> LiveNote:
    """The note while a switch of `context` to `commit` runs: the last one seen, marked pending."""
    return (before or LiveNote(context=context)).with_pending(commit)


def remembered(ws: Workspace) -> dict[str, LiveNote]:
    """context → the last switch seen from this machine (not the warehouse: see `live`)."""
    return LiveNote.load_all(ws.project_dir)


def protected_commits(ws: Workspace) -> dict[str, str]:
    """commit → why `clean` must keep its build: live for a context, or its rollback target."""
    return records.protected_commits(ws.project_dir)


def live_marks(ws: Workspace) -> dict[tuple[str, str], str]:
    """(commit, context) → 'live', 'live?' or 'rollback', for the LIVE column of `list`."""
    return records.live_marks(ws.project_dir)
