"""`live`: what is live for a context, read from the warehouse, and its text form."""

from __future__ import annotations

from ..builds import Workspace
from .notes import live_note, remember
from .plan import drift
from .results import LiveReport
from .warehouse import any_connection, default_context, read_live_state

HISTORY_SHOWN = 10


def live(ws: Workspace, context: str | None, verbose: bool = False) -> LiveReport:
    """What is live for `context`, read from the warehouse: commit, since, history, drift."""
    context = default_context(ws, context)
    conn = any_connection(ws, context)
    state = read_live_state(ws, conn, HISTORY_SHOWN, verbose=verbose)
    current = state.current
    report = LiveReport(
        context=context,
        live_schema=conn.live_schema,
        commit=current.commit if current else None,
        short=current.short if current else None,
        since=current.promoted_at if current else None,
        previous_commit=current.previous_commit if current else None,
        history=state.history,
        drift=tuple(drift(state.relations, state.existing, state.view_sources, state.case_sensitive)),
    )
    # Bring this machine's note in line with the warehouse.
    note = None
    if current:
        note = live_note(
            context, current.commit, current.short, conn.live_schema, current.promoted_at, current.previous_commit, current.action
        )
    remember(ws, context, note)
    return report


def format_live(report: LiveReport) -> str:
    """The text `live` prints: what is live, the previous commit, drift, and the history as a table."""
    if not report.commit:
        return f"nothing is live in {report.live_schema} for {report.context}"
    lines = [
        f"live      {report.commit} ({report.short}) in {report.live_schema} since {report.since} UTC",
        f"previous  {report.previous_commit or '-'}",
        "drift     " + ("none" if not report.drift else "; ".join(f"{d.relation}: {d.problem}" for d in report.drift)),
        "",
    ]
    header = ("#", "WHEN (UTC)", "ACTION", "CONTEXT", "SHORT", "REFS", "BY", "PREVIOUS", "NODES", "GATE")
    table = [header] + [
        (
            str(h.seq),
            str(h.promoted_at)[:19],
            str(h.action),
            str(h.context),
            str(h.short),
            h.refs or "-",
            str(h.promoted_by),
            (h.previous_commit or "-")[:12],
            str(h.node_count),
            "overridden" if h.gate_overridden else "passed",
        )
        for h in report.history
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in table]
    return "\n".join(lines)
