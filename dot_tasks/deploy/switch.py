"""`promote` and `rollback`: plan a switch from the build's files, then make it in one transaction.

The checks this machine can make (the build's record, the gate, the plan)
come first, before dbt starts. The `dot_promote` macro then takes, under the
promotion lock and inside the transaction that makes the change, every
decision that depends on what the warehouse holds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .. import gitrepo
from ..builds import Workspace, context_name, resolve, schema_suffix, warehouse_locks
from ..errors import WarehouseError
from ..files import read_json
from ..locks import hold
from ..records import BuildRecord
from ..registry import who
from .gate import gate_problems
from .notes import live_note, pending_note, remember, remembered
from .plan import BuildGone, HistoryRow, PromotePlan, PromotionRefused, plan_relations
from .refusals import Moved, SwitchRequest, gone_message, refusal_error
from .results import SwitchResult
from .warehouse import Connection, any_connection, call_macro, connection, live_lock, read_live_state

#: Whole-transaction attempts when the warehouse ended one (deadlock, lock timeout): nothing had changed.
SWITCH_ATTEMPTS = 6
#: What the warehouse says when it rolled a promotion back whole because of another session's locks.
_RETRYABLE = ("deadlock detected", "lock timeout", "could not serialize access")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PromoteOptions:
    """What `promote` was asked: the build, and the flags that widen what may go live."""

    ref: str
    context: str | None = None
    allow_untested: bool = False
    replace_existing: bool = False
    fail_on_warn: bool = False
    #: Show dbt's own banner and logs on stderr.
    verbose: bool = False


def promote(ws: Workspace, options: PromoteOptions, progress: Progress) -> SwitchResult:
    """Make a commit's tested build live for its context (or repair the live one)."""
    commit = resolve(ws, options.ref)
    context = options.context or context_name(ws, commit, None)
    request = SwitchRequest(
        commit, context, "promote", options.allow_untested, options.replace_existing, options.fail_on_warn, verbose=options.verbose
    )
    return switch_to(ws, request, progress)


def rollback(ws: Workspace, context: str, to_ref: str | None, progress: Progress, verbose: bool = False) -> SwitchResult:
    """Switch back to the previously live commit (or `to_ref`, which must have been live).

    The commit to return to is planned from this machine's note of the last
    switch, and the switch itself checks, under its lock, that the warehouse
    agrees (one dbt start). When it does not (someone promoted from another
    machine), the history is read first and the switch planned again.
    """
    if to_ref:
        commit = resolve(ws, to_ref)
        progress(f"rolling {context} back to {commit[:12]}")
        return switch_to(ws, SwitchRequest(commit, context, "rollback", rollback="was live", verbose=verbose), progress)
    note = remembered(ws).get(context)
    guess = note.previous_commit if note else None
    if guess:
        try:
            progress(f"rolling {context} back to {str(guess)[:12]}")
            return switch_to(ws, SwitchRequest(str(guess), context, "rollback", rollback="previous", verbose=verbose), progress)
        except Moved:
            pass
    conn = any_connection(ws, context)
    history = read_live_state(ws, conn, 1, verbose=verbose).history
    if not history or history[0].action == "retire":
        raise PromotionRefused(f"nothing is live in {conn.live_schema} for {context}: there is nothing to roll back")
    previous = history[0].previous_commit
    if not previous:
        raise PromotionRefused(
            f"{history[0].commit[:12]} is the first commit promoted to {conn.live_schema}: there is no earlier one to roll back to"
        )
    progress(f"rolling {context} back to {str(previous)[:12]} (the warehouse's previous commit)")
    return switch_to(ws, SwitchRequest(str(previous), context, "rollback", rollback="previous", verbose=verbose), progress)


def switch_to(ws: Workspace, request: SwitchRequest, progress: Progress) -> SwitchResult:
    """Switch the context's live schemas to `request.commit`'s build: checked here, made by the warehouse."""
    short = schema_suffix(ws, request.commit)
    manifest, gate_overridden = _checked_build(ws, request, short, progress)
    conn = connection(ws, request.commit, request.context)
    relations = plan_relations(manifest, conn.build_schema, conn.live_schema)
    if not relations:
        raise PromotionRefused(f"{request.refusing}: its build has no models, seeds or snapshots")
    plan = PromotePlan(
        live_schema=conn.live_schema,
        relations=relations,
        replace_existing=request.replace_existing,
        rollback=request.rollback,
        row=_history_row(ws, request, short, conn, gate_overridden),
    )
    return _switch_under_locks(ws, conn, plan, request, progress)


def _checked_build(ws: Workspace, request: SwitchRequest, short: str, progress: Progress) -> tuple[Mapping[str, Any], bool]:
    """The build's manifest once its record lets it go live, and whether --allow-untested overrode the gate."""
    commit, context = request.commit, request.context
    ctx = ws.paths(commit).context(context)
    record = BuildRecord.load(ctx)
    if record is None:
        if request.action == "rollback":
            raise BuildGone(gone_message(commit, context))
        raise PromotionRefused(
            f"there is no build of {context} at {commit[:12]} on this machine: run `dot-tasks run {context}@{commit[:12]}`, then promote"
        )
    partial = record.partial_problem()
    if partial:
        raise PromotionRefused(f"{request.refusing}: {partial}")
    manifest = read_json(ctx.target_dir / "manifest.json")
    problems: list[str] = []
    if request.action == "promote":
        # A rollback needs no new test run: its build passed the gate when it first went live.
        problems = gate_problems(record, manifest, commit, context, request.fail_on_warn)
        if problems and not request.allow_untested:
            raise PromotionRefused(
                f"{request.refusing}: {'; '.join(problems)}. Run "
                f"`dot-tasks run {context}@{commit[:12]}` (dbt build: models and tests), or re-run the nodes named "
                "until they pass, then promote again (or pass --allow-untested)"
            )
        if problems:
            progress(f"warning: --allow-untested: promoting {short} past its gate ({'; '.join(problems)}); the history records it")
    if not manifest:
        raise PromotionRefused(f"{request.refusing}: its build has no manifest.json: run `dot-tasks run {context}@{commit[:12]}`")
    return manifest, bool(problems)


def _history_row(ws: Workspace, request: SwitchRequest, short: str, conn: Connection, gate_overridden: bool) -> HistoryRow:
    """The history row of this switch, stamped now."""
    return HistoryRow(
        action=request.action,
        context=request.context,
        commit=request.commit,
        short=short,
        refs=",".join(gitrepo.refs_pointing_at(ws.repo).get(request.commit, [])),
        promoted_by=who(ws),
        promoted_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
        gate_overridden=gate_overridden,
        build_schema=conn.build_schema,
    )


def _switch_under_locks(ws: Workspace, conn: Connection, plan: PromotePlan, request: SwitchRequest, progress: Progress) -> SwitchResult:
    """The switch, holding this machine's live lock and the warehouse's; the note kept true whatever happens."""
    row, context = plan.row, request.context
    with ExitStack() as locks:
        fds = [locks.enter_context(hold(live_lock(ws, conn), f"the live schema {conn.live_schema}", ws.settings.lock_timeout))]
        fds.extend(locks.enter_context(warehouse_locks(ws, [conn.output])))
        progress(f"{request.action}: switching {len(plan.relations)} relation(s) of {conn.live_schema} to {row.short} ({row.commit[:12]})")
        # Noted before the switch: if this process is killed once the warehouse has
        # committed it, `list` and `clean` still know the commit may be live.
        before = remembered(ws).get(context)
        remember(ws, context, pending_note(before, context, row.commit))
        try:
            value = _switch_with_retries(ws, conn, plan, tuple(fds), request, progress)
        except BaseException:
            remember(ws, context, before)
            raise
        refusal = value.get("refusal")
        if refusal:
            remember(ws, context, before)
            raise refusal_error(refusal, value, request, conn.live_schema, transactional=conn.transactional)
        action = value.get("action") or request.action
        remember(ws, context, live_note(context, row.commit, row.short, conn.live_schema, row.promoted_at, value.get("previous"), action))
    return SwitchResult.from_macro(
        value,
        commit=row.commit,
        short=row.short,
        context=context,
        live_schema=conn.live_schema,
        since=row.promoted_at,
        previous_commit=value.get("previous"),
        action=action,
        relations=len(plan.relations),
        gate_overridden=row.gate_overridden,
        promoted_by=row.promoted_by,
    )


def _switch_with_retries(
    ws: Workspace, conn: Connection, plan: PromotePlan, fds: tuple[int, ...], request: SwitchRequest, progress: Progress
) -> dict[str, Any]:
    """The switch, tried again whole (after a jittered, growing pause) when the warehouse rolled it back.

    PostgreSQL ends a lock cycle or a lock wait by rolling the promotion back
    whole: nothing changed, so it is simply tried again, never a reader.
    """
    for attempt in range(1, SWITCH_ATTEMPTS + 1):
        try:
            value = call_macro(ws, conn.target, "dot_promote", {"plan": plan.to_dict()}, fds, verbose=request.verbose) or {}
            return {**value, "switch_attempts": attempt}
        except WarehouseError as exc:
            if not any(word in str(exc) for word in _RETRYABLE) or attempt == SWITCH_ATTEMPTS:
                raise
            pause = min(0.2 * 2**attempt, 5.0) * (0.5 + random.random())
            progress(
                f"{request.action}: the warehouse rolled the switch back ({str(exc)[:80]}); nothing changed, trying again in {pause:.1f}s"
            )
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover
