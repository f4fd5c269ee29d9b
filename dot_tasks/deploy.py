"""Red/green deployment: `promote`, `rollback` and `live`.

A build sits in `<schema>_<short>`; the schema that dashboards read is the
context's own `<schema>`. Promoting makes, in the live schema, one view per
model, seed and snapshot of the build, selecting from the build's relation
(`analytics_<short>.orders` → `analytics.orders`, `analytics_<short>_marts.x`
→ `analytics_marts.x`), so a switch moves no data and a rollback is the same
switch to an older build.

This module plans (which relations, whether the build passed its gate, the
history row) as pure functions over the build's records. The switch itself is
the `dot_promote` macro (dbt_ops/macros/dot_deploy.sql), which takes its
decisions about what the warehouse holds inside the one transaction that
makes the change. Team state (what is live, the history) lives in the
warehouse's `dot_promotions` table; `.dot/live/<context>.json` is only a
local note of the last switch seen from this machine, for `list` and `clean`.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import gitrepo
from .adapters import schema_key
from .builds import (
    Workspace,
    built_commits,
    choose_context,
    generated_profile,
    named_lock,
    resolve,
    schema_suffix,
    warehouse_locks,
)
from .errors import DotError, LockTimeout, WarehouseError
from .files import read_json, write_json_atomic
from .layout import dot_dir, live_notes_dir, ops_dir, ops_logs_dir
from .locks import hold

PROMOTABLE = ("model", "seed", "snapshot")
HISTORY_TABLE = "dot_promotions"
HISTORY_SHOWN = 10
#: Seconds a promotion waits for readers to let go of the live views it replaces.
READER_WAIT_SECONDS = 60


class PromotionRefused(DotError):
    """The build may not go live (gate, foreign relations, dependants)."""


class BuildGone(DotError):
    """The build to return to has been cleaned."""


@dataclass(frozen=True)
class PromoteOptions:
    ref: str
    context: str | None = None
    allow_untested: bool = False
    replace_existing: bool = False
    fail_on_warn: bool = False


# --- pure planning ---------------------------------------------------------------


def live_base(build_schema: str, short: str) -> str:
    """The context's live schema: the build's schema with its suffix taken out."""
    suffix = "_" + short
    if not build_schema.lower().endswith(suffix.lower()) or len(build_schema) <= len(suffix):
        raise PromotionRefused(
            f"the build's schema {build_schema} does not end in _{short}, so it has no live schema "
            "to switch: rebuild it with `dot-tasks run`"
        )
    return build_schema[: -len(suffix)]


def live_schema_for(node_schema: str, build_schema: str, base: str) -> str | None:
    """`analytics_<short>` → `analytics`, `analytics_<short>_marts` → `analytics_marts`; None outside."""
    if node_schema.lower() == build_schema.lower():
        return base
    if node_schema.lower().startswith(build_schema.lower() + "_"):
        return base + node_schema[len(build_schema):]
    return None


def plan_relations(manifest: Mapping[str, Any], build_schema: str, base: str) -> list[list[str]]:
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
        live = live_schema_for(schema, build_schema, base)
        if live is None:
            outside.append(f"{uid} ({schema})")
            continue
        if live.lower() == base.lower() and name.lower() == HISTORY_TABLE:
            raise PromotionRefused(f"{uid} is named {HISTORY_TABLE}, which holds the promotion history: rename it")
        relations.append([schema, live, name])
    if outside:
        raise PromotionRefused(
            f"{len(outside)} node(s) were built outside {build_schema}, so they have no live location: "
            f"{', '.join(outside[:5])}{' ...' if len(outside) > 5 else ''}"
        )
    return relations


def _short_name(uid: str) -> str:
    parts = uid.split(".")
    return parts[2] if len(parts) > 2 else uid


def _listing(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def gate_problems(
    record: Mapping[str, Any] | None,
    run_results: Mapping[str, Any] | None,
    commit: str,
    context: str,
    fail_on_warn: bool = False,
) -> list[str]:
    """Why a build may not go live, by the gate; empty when it may.

    The gate: the last dbt invocation was `build` (or a `test` after a
    successful `run`) for this commit and context; it exited 0; its
    run_results.json shows every selected test passed, none skipped after an
    upstream failure (nor warned, with `--fail-on-warn`).
    """
    if not record:
        return [f"there is no build of {context} at {commit[:12]} on this machine"]
    problems: list[str] = []
    if record.get("commit") not in (None, commit) or record.get("context") not in (None, context):
        problems.append("its build record belongs to another commit or context")
    command = str(record.get("command") or "")
    status = record.get("status")
    if status == "running":
        problems.append("it is being built right now (or its build was interrupted)")
    elif status != "success" or record.get("exit_code") not in (0, None):
        problems.append(f"its last dbt {command or 'invocation'} failed (exit {record.get('exit_code')})")
    previous = record.get("previous") or {}
    if command == "test":
        if previous.get("command") not in ("run", "build") or previous.get("status") != "success":
            problems.append("its last dbt invocation was a `test` that did not follow a successful `run`")
    elif command != "build":
        problems.append(f"its last dbt invocation was `{command or 'unknown'}`, not `build`")
    if not run_results:
        problems.append("its run_results.json is missing")
        return problems
    which = (run_results.get("args") or {}).get("which")
    generated = _parse_time((run_results.get("metadata") or {}).get("generated_at"))
    started = _parse_time(record.get("started"))
    if (which and command and which != command.split()[0]) or (generated and started and generated < started):
        problems.append("its run_results.json is not from its last dbt invocation")
        return problems
    failed, skipped, warned, errored = [], [], [], []
    for result in run_results.get("results") or []:
        uid = str(result.get("unique_id", ""))
        state = result.get("status")
        if uid.startswith(("test.", "unit_test.")):
            if state in ("fail", "error"):
                failed.append(_short_name(uid))
            elif state == "skipped":
                skipped.append(_short_name(uid))
            elif state == "warn" and fail_on_warn:
                warned.append(_short_name(uid))
        elif state in ("error", "skipped", "fail"):
            errored.append(_short_name(uid))
    if errored:
        problems.append(f"{len(errored)} node(s) did not build: {_listing(errored)}")
    if failed:
        problems.append(f"{len(failed)} test(s) failed: {_listing(failed)}")
    if skipped:
        problems.append(f"{len(skipped)} test(s) were skipped after an upstream failure: {_listing(skipped)}")
    if warned:
        problems.append(f"{len(warned)} test(s) warned (--fail-on-warn): {_listing(warned)}")
    return problems


def partial_problem(record: Mapping[str, Any] | None) -> str | None:
    """The slim-CI contract: a deferred build that built only part of the project cannot go live."""
    if record and record.get("partial") and not record.get("cloned"):
        return ("it is a partial build deferred to another build (without --clone), so the live schema would "
                "be missing models: rebuild it in full, or with --clone")
    return None


def _parse_time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def drift(relations: list[list[str]], existing: Mapping[str, str], view_sources: list[list[str]]) -> list[dict[str, str]]:
    """Live relations that are missing, or no longer views over the live build's relation."""
    reads: dict[str, list[tuple[str, str]]] = {}
    for schema, name, kind, what in view_sources:
        reads.setdefault(f"{schema}.{name}".lower(), []).append((kind, str(what)))
    found = []
    for build_schema, live_schema, name in relations:
        key = f"{live_schema}.{name}".lower()
        where = f"{live_schema}.{name}"
        expected = f"{build_schema}.{name}"
        kind = existing.get(key)
        if kind is None:
            found.append({"relation": where, "problem": "missing"})
        elif kind != "view":
            found.append({"relation": where, "problem": f"replaced by a {kind}"})
        elif not _reads(reads.get(key, []), build_schema, name):
            found.append({"relation": where, "problem": f"no longer a view over {expected}"})
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


# --- what this machine remembers -------------------------------------------------


def _cache_dir(ws: Workspace) -> Path:
    return live_notes_dir(ws.project_dir)


def _cache_file(ws: Workspace, context: str) -> Path:
    return _cache_dir(ws) / f"{context}.json"


def _remember(ws: Workspace, context: str, note: dict[str, Any] | None) -> None:
    if note is None:
        _cache_file(ws, context).unlink(missing_ok=True)
    else:
        write_json_atomic(_cache_file(ws, context), note)


def remembered(ws: Workspace) -> dict[str, dict[str, Any]]:
    """context → the last switch seen from this machine (not the warehouse: see `live`)."""
    notes: dict[str, dict[str, Any]] = {}
    folder = _cache_dir(ws)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            note = read_json(path)
            if isinstance(note, dict) and note.get("commit"):
                notes[path.stem] = note
    return notes


def protected_commits(ws: Workspace) -> dict[str, str]:
    """commit → why `clean` must keep its build: live for a context, or its rollback target."""
    reasons: dict[str, list[str]] = {}
    for context, note in remembered(ws).items():
        reasons.setdefault(str(note["commit"]), []).append(f"live for {context}")
    for context, note in remembered(ws).items():
        if note.get("previous_commit"):
            reasons.setdefault(str(note["previous_commit"]), []).append(f"rollback target for {context}")
    return {commit: ", ".join(why) for commit, why in reasons.items()}


def live_marks(ws: Workspace) -> dict[tuple[str, str], str]:
    """(commit, context) → 'live' or 'rollback', for the LIVE column of `list`."""
    marks: dict[tuple[str, str], str] = {}
    for context, note in remembered(ws).items():
        if note.get("previous_commit"):
            marks[(str(note["previous_commit"]), context)] = "rollback"
        marks[(str(note["commit"]), context)] = "live"
    return marks


# --- reaching the warehouse ------------------------------------------------------


@dataclass(frozen=True)
class _Connection:
    target: Any  # dbt_runner.OpsTarget
    output: dict[str, Any]
    build_schema: str
    base: str


def _connection(ws: Workspace, commit: str, context: str) -> _Connection:
    from .dbt_runner import OpsTarget

    ctx = ws.paths(commit).context(context)
    profile_name, target, output = generated_profile(ws, commit, context)
    build_schema = str(output.get(schema_key(output)) or "")
    base = live_base(build_schema, schema_suffix(ws, commit))
    logs = str(ops_logs_dir(ws.project_dir))
    return _Connection(OpsTarget(str(ctx.context_dir), profile_name, target, logs), output, build_schema, base)


def _any_connection(ws: Workspace, context: str) -> _Connection:
    """A way into the context's warehouse without naming a build: the one last seen live, any build, or HEAD."""
    note = remembered(ws).get(context) or {}
    candidates = [str(note["commit"])] if note.get("commit") else []
    candidates += [c for c in built_commits(ws.project_dir) if ws.paths(c).context(context).profiles_yml.is_file()]
    for commit in candidates:
        if ws.paths(commit).context(context).profiles_yml.is_file():
            return _connection(ws, commit, context)
    return _connection(ws, resolve(ws, "HEAD"), context)


def _call(ws: Workspace, target: Any, macro: str, args: dict[str, Any], lock_fds: tuple[int, ...] = ()) -> Any:
    from .dbt_runner import MacroCall, call_macros

    # dbt's own files for the ops project, kept per profile so that dbt's partial
    # parsing spares the next promotion a full parse; private to one call at a time.
    key = hashlib.sha1(f"{target.profiles_dir}\0{target.target}".encode()).hexdigest()[:16]
    kept = ops_dir(ws.project_dir) / key
    with ExitStack() as stack:
        try:
            stack.enter_context(hold(kept.with_suffix(".lock"), "", timeout=0))
            scratch = str(kept)
        except LockTimeout:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="deploy-", dir=dot_dir(ws.project_dir)))
        [outcome] = call_macros([MacroCall(target, macro, args)], Path(scratch), lock_fds=lock_fds)
    if outcome.error:
        changed = ", nothing was changed" if macro == "dot_promote" else ""
        raise WarehouseError(f"{macro} failed{changed}: {outcome.error}")
    return outcome.value


def _live_lock(ws: Workspace, conn: _Connection) -> Path:
    where = {k: conn.output.get(k) for k in ("type", "host", "port", "dbname", "database", "path")}
    return named_lock(ws, "live", json.dumps([where, conn.base.lower()], sort_keys=True, default=str))


def _who(ws: Workspace) -> str:
    email = gitrepo.user_email(ws.repo)
    if email:
        return email
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def default_context(ws: Workspace, context: str | None) -> str:
    return context or choose_context(ws, resolve(ws, "HEAD"), None)[0].context


# --- promote and rollback ---------------------------------------------------------


@dataclass(frozen=True)
class _Switch:
    commit: str
    context: str
    action: str
    allow_untested: bool = False
    replace_existing: bool = False
    fail_on_warn: bool = False
    #: 'previous' (must be the live row's previous commit) or 'was live' (must be in the history).
    rollback: str | None = None


def promote(ws: Workspace, options: PromoteOptions, progress: Callable[[str], None]) -> dict[str, Any]:
    commit = resolve(ws, options.ref)
    context = options.context or choose_context(ws, commit, None)[0].context
    return _switch(ws, _Switch(commit, context, "promote", options.allow_untested, options.replace_existing,
                               options.fail_on_warn), progress)


def rollback(ws: Workspace, context: str, to_ref: str | None, progress: Callable[[str], None]) -> dict[str, Any]:
    """Switch back to the previously live commit (or `to_ref`, which must have been live).

    The commit to return to is planned from this machine's note of the last
    switch, and the switch itself checks, under its lock, that the warehouse
    agrees (one dbt start). When it does not (someone promoted from another
    machine), the history is read first and the switch planned again.
    """
    if to_ref:
        commit = resolve(ws, to_ref)
        progress(f"rolling {context} back to {commit[:12]}")
        return _switch(ws, _Switch(commit, context, "rollback", rollback="was live"), progress)
    note = remembered(ws).get(context) or {}
    guess = note.get("previous_commit")
    if guess:
        try:
            progress(f"rolling {context} back to {str(guess)[:12]}")
            return _switch(ws, _Switch(str(guess), context, "rollback", rollback="previous"), progress)
        except _Moved:
            pass
    conn = _any_connection(ws, context)
    state = _call(ws, conn.target, "dot_live_state", {"live_schema": conn.base, "limit": 1})
    history = state.get("history") or []
    if not history:
        raise PromotionRefused(f"nothing has been promoted to {conn.base} for {context}: there is nothing to roll back")
    previous = history[0].get("previous_commit")
    if not previous:
        raise PromotionRefused(f"{history[0]['commit'][:12]} is the first commit promoted to {conn.base}: "
                               "there is no earlier one")
    progress(f"rolling {context} back to {str(previous)[:12]} (the warehouse's previous commit)")
    return _switch(ws, _Switch(str(previous), context, "rollback", rollback="previous"), progress)


class _Moved(PromotionRefused):
    """What was live changed since this machine last looked."""


def _gone(commit: str, context: str) -> str:
    return (f"the build of {commit[:12]} for {context} is not here any more (cleaned): `dot-tasks run "
            f"{context}@{commit}` builds it again, then `dot-tasks promote {context}@{commit}` brings it back")


def _switch(ws: Workspace, switch: _Switch, progress: Callable[[str], None]) -> dict[str, Any]:
    commit, context = switch.commit, switch.context
    short = schema_suffix(ws, commit)
    ctx = ws.paths(commit).context(context)
    record = read_json(ctx.record)
    if not record:
        if switch.action == "rollback":
            raise BuildGone(_gone(commit, context))
        raise PromotionRefused(
            f"there is no build of {context} at {commit[:12]} on this machine: run "
            f"`dot-tasks run {context}@{commit[:12]}`, then promote"
        )
    partial = partial_problem(record)
    if partial:
        raise PromotionRefused(f"refusing to promote {short} to {context}: {partial}")
    problems: list[str] = []
    if switch.action == "promote":
        # A rollback needs no new test run: its build passed the gate when it first went live.
        problems = gate_problems(record, read_json(ctx.target_dir / "run_results.json"), commit, context,
                                 switch.fail_on_warn)
        if problems and not switch.allow_untested:
            raise PromotionRefused(
                f"refusing to promote {short} to {context}: {'; '.join(problems)}. Run "
                f"`dot-tasks run {context}@{commit[:12]}` (dbt build: models and tests), then promote again "
                "(or pass --allow-untested)"
            )
        if problems:
            progress(f"warning: --allow-untested: promoting {short} past its gate ({'; '.join(problems)}); "
                     "the history records it")
    manifest = read_json(ctx.target_dir / "manifest.json")
    if not manifest:
        raise PromotionRefused(f"the build of {context} at {short} has no manifest.json: run "
                               f"`dot-tasks run {context}@{commit[:12]}`")
    conn = _connection(ws, commit, context)
    relations = plan_relations(manifest, conn.build_schema, conn.base)
    if not relations:
        raise PromotionRefused(f"the build of {context} at {short} has no models, seeds or snapshots to promote")
    row = {
        "action": switch.action,
        "context": context,
        "commit": commit,
        "short": short,
        "refs": ",".join(gitrepo.refs_pointing_at(ws.repo).get(commit, [])),
        "promoted_by": _who(ws),
        "promoted_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "gate_overridden": bool(problems),
        "build_schema": conn.build_schema,
    }
    plan = {
        "live_schema": conn.base,
        "live_schemas": sorted({r[1] for r in relations}),
        "build_schemas": sorted({r[0] for r in relations}),
        "relations": relations,
        "replace_existing": switch.replace_existing,
        "rollback": switch.rollback,
        "lock_wait_seconds": READER_WAIT_SECONDS,
        "row": row,
    }
    with ExitStack() as locks:
        fds = [locks.enter_context(hold(_live_lock(ws, conn), f"the live schema {conn.base}",
                                        ws.settings.lock_timeout))]
        fds.extend(locks.enter_context(warehouse_locks(ws, [conn.output])))
        progress(f"{switch.action}: switching {len(relations)} relation(s) of {conn.base} to {short} ({commit[:12]})")
        for attempt in range(3):
            try:
                value = _call(ws, conn.target, "dot_promote", {"plan": plan}, tuple(fds)) or {}
                break
            except WarehouseError as exc:
                # PostgreSQL ended a lock cycle with a reader by rolling the promotion back
                # whole: nothing changed, so it is simply tried again.
                if "deadlock detected" not in str(exc) or attempt == 2:
                    raise
                progress(f"{switch.action}: a reader's locks crossed the switch (deadlock); nothing changed, retrying")
        refusal = value.get("refusal")
        if refusal:
            raise _refused(refusal, value, switch, short, conn)
        note = {
            "commit": commit, "short": short, "context": context, "live_schema": conn.base,
            "since": row["promoted_at"], "previous_commit": value.get("previous"), "action": switch.action,
        }
        _remember(ws, context, note)
    return {**note, "relations": len(relations), "created": value.get("created", 0),
            "replaced": value.get("replaced", 0), "recreated": value.get("recreated", []),
            "dropped": value.get("dropped", []), "replaced_existing": value.get("replaced_existing", []),
            "gate_overridden": row["gate_overridden"], "promoted_by": row["promoted_by"]}


def _refused(kind: str, value: Mapping[str, Any], switch: _Switch, short: str, conn: _Connection) -> DotError:
    names = value.get("relations") or []
    if kind == "missing":
        if switch.action == "rollback":
            return BuildGone(_gone(switch.commit, switch.context))
        return PromotionRefused(
            f"refusing to promote {short} to {switch.context}: the build's relations are gone from the warehouse "
            f"({_listing([str(n) for n in names])}): run `dot-tasks run {switch.context}@{switch.commit[:12]}`, "
            "then promote again"
        )
    if kind == "not ours":
        listing = _listing([f"{n} ({k})" for n, k in names], 10)
        return PromotionRefused(
            f"refusing to promote {short} to {switch.context}: {len(names)} relation(s) in the live schema were not "
            f"made by a promotion and would be replaced: {listing}. Nothing was changed; pass --replace-existing "
            "to replace them in the same transaction"
        )
    if kind == "dependants":
        listing = _listing([f"{d[0]}.{d[1]} (on {d[2]}.{d[3]})" for d in names], 10)
        return PromotionRefused(
            f"refusing to promote {short} to {switch.context}: these views depend on live relations the switch must "
            f"drop and recreate: {listing}. Nothing was changed; drop them (dot-tasks never uses CASCADE) "
            "and promote again"
        )
    if kind == "moved":
        return _Moved(f"{conn.base} changed since this machine last looked (now live: "
                      f"{str(value.get('live') or 'nothing')[:12]}): run it again")
    if kind == "never live":
        return PromotionRefused(
            f"{switch.commit[:12]} was never live in {conn.base}: --to takes a commit that was "
            f"(see `dot-tasks live {switch.context}`)"
        )
    if kind == "already live":
        return PromotionRefused(f"{switch.commit[:12]} is already live in {conn.base}")
    return PromotionRefused(f"the promotion was refused ({kind})")


# --- live ------------------------------------------------------------------------


def live(ws: Workspace, context: str | None) -> dict[str, Any]:
    """What is live for `context`, read from the warehouse: commit, since, history, drift."""
    context = default_context(ws, context)
    conn = _any_connection(ws, context)
    state = _call(ws, conn.target, "dot_live_state", {"live_schema": conn.base, "limit": HISTORY_SHOWN})
    history = state.get("history") or []
    current = history[0] if history else None
    report: dict[str, Any] = {
        "context": context,
        "live_schema": conn.base,
        "commit": current["commit"] if current else None,
        "short": current["short"] if current else None,
        "since": current["promoted_at"] if current else None,
        "previous_commit": current["previous_commit"] if current else None,
        "history": history,
        "drift": drift(state.get("relations") or [], state.get("existing") or {}, state.get("view_sources") or []),
    }
    # Bring this machine's note in line with the warehouse.
    _remember(ws, context, {
        "commit": report["commit"], "short": report["short"], "context": context, "live_schema": conn.base,
        "since": report["since"], "previous_commit": report["previous_commit"], "action": current["action"],
    } if current else None)
    return report


def format_live(report: Mapping[str, Any]) -> str:
    lines = []
    if not report["commit"]:
        lines.append(f"nothing is live in {report['live_schema']} for {report['context']}")
    else:
        lines.append(f"live      {report['commit']} ({report['short']}) in {report['live_schema']} since "
                     f"{report['since']} UTC")
        lines.append(f"previous  {report['previous_commit'] or '-'}")
        drifted = report["drift"]
        lines.append("drift     " + ("none" if not drifted else
                                      "; ".join(f"{d['relation']}: {d['problem']}" for d in drifted)))
        lines.append("")
        header = ("#", "WHEN (UTC)", "ACTION", "CONTEXT", "SHORT", "REFS", "BY", "PREVIOUS", "NODES", "GATE")
        table = [header] + [
            (str(h["seq"]), str(h["promoted_at"])[:19], str(h["action"]), str(h["context"]), str(h["short"]),
             h["refs"] or "-", str(h["promoted_by"]), (h["previous_commit"] or "-")[:12], str(h["node_count"]),
             "overridden" if h["gate_overridden"] else "passed")
            for h in report["history"]
        ]
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines)
