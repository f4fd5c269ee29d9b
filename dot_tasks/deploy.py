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

import hashlib
import json
import random
import re
import tempfile
import time
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
from .registry import who

PROMOTABLE = ("model", "seed", "snapshot")
HISTORY_TABLE = "dot_promotions"
HISTORY_SHOWN = 10
#: Seconds a promotion waits for readers to let go of the live views it replaces.
READER_WAIT_SECONDS = 300
#: Whole-transaction attempts when the warehouse ended one (deadlock, lock timeout): nothing had changed.
SWITCH_ATTEMPTS = 6
#: What the warehouse says when it rolled a promotion back whole because of another session's locks.
_RETRYABLE = ("deadlock detected", "lock timeout", "could not serialize access")


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
    #: Show dbt's own banner and logs on stderr.
    verbose: bool = False


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
        return base + node_schema[len(build_schema) :]
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
    manifest: Mapping[str, Any] | None,
    commit: str,
    context: str,
    fail_on_warn: bool = False,
) -> list[str]:
    """Why a build may not go live, by the gate; empty when it may.

    The gate judges the build, not its last invocation: every model, seed and
    snapshot of its manifest was built successfully, and every test passed
    (not warned, with `--fail-on-warn`), by the invocations since the last
    full one (`builds.node_statuses`). A selected re-run repairs a failed node
    only by passing it; the last invocation must have succeeded too.
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
    nodes = record.get("nodes")
    if not isinstance(nodes, dict):
        problems.append("its build record has no per-node results (made by an older dot-tasks)")
        return problems
    if not manifest:
        problems.append("its manifest.json is missing")
        return problems
    unbuilt, never_built, failed, skipped, never_ran, stale, warned = [], [], [], [], [], [], []
    for uid, node in sorted((manifest.get("nodes") or {}).items()):
        if not isinstance(node, dict):
            continue
        kind = node.get("resource_type")
        state = nodes.get(uid)
        if kind in PROMOTABLE:
            if (node.get("config") or {}).get("materialized") == "ephemeral":
                continue
            if state is None:
                never_built.append(_short_name(uid))
            elif state != "success":
                unbuilt.append(_short_name(uid))
        elif kind == "test":
            if state is None:
                never_ran.append(_short_name(uid))
            elif state == "stale":
                stale.append(_short_name(uid))
            elif state == "skipped":
                skipped.append(_short_name(uid))
            elif state == "warn":
                if fail_on_warn:
                    warned.append(_short_name(uid))
            elif state != "pass":
                failed.append(_short_name(uid))
    failed += [uid.split(".")[-1] for uid, state in sorted(nodes.items()) if uid.startswith("unit_test.") and state in ("fail", "error")]
    for names, what in (
        (unbuilt, "node(s) did not build"),
        (never_built, "node(s) were never built"),
        (failed, "test(s) failed"),
        (skipped, "test(s) were skipped after an upstream failure"),
        (never_ran, "test(s) never ran"),
        (stale, "test(s) ran before the node they test was rebuilt, and have not run since"),
        (warned, "test(s) warned (--fail-on-warn)"),
    ):
        if names:
            problems.append(f"{len(names)} {what}: {_listing(names)}")
    return problems


def partial_problem(record: Mapping[str, Any] | None) -> str | None:
    """The slim-CI contract: a deferred build that built only part of the project cannot go live."""
    if record and record.get("partial") and not record.get("cloned"):
        return (
            "it is a partial build deferred to another build (without --clone), so the live schema would "
            "be missing models: rebuild it in full, or with --clone"
        )
    return None


def relation_key(schema: str, name: str, case_sensitive: bool) -> str:
    """A relation's key as the ops macros make it (`dot_key`): schema lower-cased, name as the warehouse compares it."""
    return f"{schema.lower()}.{name if case_sensitive else name.lower()}"


def drift(
    relations: list[list[str]], existing: Mapping[str, str], view_sources: list[list[str]], case_sensitive: bool = False
) -> list[dict[str, str]]:
    """Live relations that are missing, no longer views over the live build's relation, or read a relation that is gone."""
    reads: dict[str, list[tuple[str, str]]] = {}
    for schema, name, kind, what in view_sources:
        reads.setdefault(relation_key(schema, name, case_sensitive), []).append((kind, str(what)))
    found = []
    for build_schema, live_schema, name in relations:
        key = relation_key(live_schema, name, case_sensitive)
        where = f"{live_schema}.{name}"
        expected = f"{build_schema}.{name}"
        kind = existing.get(key)
        if kind is None:
            found.append({"relation": where, "problem": "missing"})
        elif kind != "view":
            found.append({"relation": where, "problem": f"replaced by a {kind}"})
        elif not _reads(reads.get(key, []), build_schema, name):
            found.append({"relation": where, "problem": f"no longer a view over {expected}"})
        elif relation_key(build_schema, name, case_sensitive) not in existing:
            found.append({"relation": where, "problem": f"broken: it reads {expected}, which is gone"})
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
            if isinstance(note, dict) and (note.get("commit") or note.get("pending")):
                notes[path.stem] = note
    return notes


def protected_commits(ws: Workspace) -> dict[str, str]:
    """commit → why `clean` must keep its build: live for a context, or its rollback target."""
    reasons: dict[str, list[str]] = {}
    for context, note in remembered(ws).items():
        if note.get("commit"):
            reasons.setdefault(str(note["commit"]), []).append(f"live for {context}")
    for context, note in remembered(ws).items():
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


def _call(ws: Workspace, target: Any, macro: str, args: dict[str, Any], lock_fds: tuple[int, ...] = (), verbose: bool = False) -> Any:
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
        [outcome] = call_macros([MacroCall(target, macro, args)], Path(scratch), lock_fds=lock_fds, quiet=not verbose)
    if outcome.error:
        changed = ", nothing was changed" if macro == "dot_promote" else ""
        raise WarehouseError(f"{macro} failed{changed}: {outcome.error}")
    return outcome.value


def _live_lock(ws: Workspace, conn: _Connection) -> Path:
    where = {k: conn.output.get(k) for k in ("type", "host", "port", "dbname", "database", "path")}
    return named_lock(ws, "live", json.dumps([where, conn.base.lower()], sort_keys=True, default=str))


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
    verbose: bool = False

    @property
    def refusing(self) -> str:
        """How a refusal begins, in the words of the command that was refused."""
        if self.action == "retire":
            return f"refusing to retire {self.context}"
        if self.action == "rollback":
            return f"refusing to roll {self.context} back to {self.commit[:12]}"
        return f"refusing to promote {self.commit[:12]} to {self.context}"

    @property
    def again(self) -> str:
        return {"rollback": "roll back again", "retire": "retire again"}.get(self.action, "promote again")


def promote(ws: Workspace, options: PromoteOptions, progress: Callable[[str], None]) -> dict[str, Any]:
    commit = resolve(ws, options.ref)
    context = options.context or choose_context(ws, commit, None)[0].context
    return _switch(
        ws,
        _Switch(
            commit, context, "promote", options.allow_untested, options.replace_existing, options.fail_on_warn, verbose=options.verbose
        ),
        progress,
    )


def rollback(ws: Workspace, context: str, to_ref: str | None, progress: Callable[[str], None], verbose: bool = False) -> dict[str, Any]:
    """Switch back to the previously live commit (or `to_ref`, which must have been live).

    The commit to return to is planned from this machine's note of the last
    switch, and the switch itself checks, under its lock, that the warehouse
    agrees (one dbt start). When it does not (someone promoted from another
    machine), the history is read first and the switch planned again.
    """
    if to_ref:
        commit = resolve(ws, to_ref)
        progress(f"rolling {context} back to {commit[:12]}")
        return _switch(ws, _Switch(commit, context, "rollback", rollback="was live", verbose=verbose), progress)
    note = remembered(ws).get(context) or {}
    guess = note.get("previous_commit")
    if guess:
        try:
            progress(f"rolling {context} back to {str(guess)[:12]}")
            return _switch(ws, _Switch(str(guess), context, "rollback", rollback="previous", verbose=verbose), progress)
        except _Moved:
            pass
    conn = _any_connection(ws, context)
    state = _call(ws, conn.target, "dot_live_state", {"live_schema": conn.base, "limit": 1}, verbose=verbose)
    history = state.get("history") or []
    if not history or history[0].get("action") == "retire":
        raise PromotionRefused(f"nothing is live in {conn.base} for {context}: there is nothing to roll back")
    previous = history[0].get("previous_commit")
    if not previous:
        raise PromotionRefused(
            f"{history[0]['commit'][:12]} is the first commit promoted to {conn.base}: there is no earlier one to roll back to"
        )
    progress(f"rolling {context} back to {str(previous)[:12]} (the warehouse's previous commit)")
    return _switch(ws, _Switch(str(previous), context, "rollback", rollback="previous", verbose=verbose), progress)


class _Moved(PromotionRefused):
    """What was live changed since this machine last looked."""


def _gone(commit: str, context: str) -> str:
    return (
        f"the build of {commit[:12]} for {context} is not here any more (cleaned): `dot-tasks run "
        f"{context}@{commit}` builds it again, then `dot-tasks promote {context}@{commit}` brings it back"
    )


def _switch(ws: Workspace, switch: _Switch, progress: Callable[[str], None]) -> dict[str, Any]:
    commit, context = switch.commit, switch.context
    short = schema_suffix(ws, commit)
    ctx = ws.paths(commit).context(context)
    record = read_json(ctx.record)
    if not record:
        if switch.action == "rollback":
            raise BuildGone(_gone(commit, context))
        raise PromotionRefused(
            f"there is no build of {context} at {commit[:12]} on this machine: run `dot-tasks run {context}@{commit[:12]}`, then promote"
        )
    partial = partial_problem(record)
    if partial:
        raise PromotionRefused(f"{switch.refusing}: {partial}")
    problems: list[str] = []
    if switch.action == "promote":
        # A rollback needs no new test run: its build passed the gate when it first went live.
        problems = gate_problems(record, read_json(ctx.target_dir / "manifest.json"), commit, context, switch.fail_on_warn)
        if problems and not switch.allow_untested:
            raise PromotionRefused(
                f"{switch.refusing}: {'; '.join(problems)}. Run "
                f"`dot-tasks run {context}@{commit[:12]}` (dbt build: models and tests), or re-run the nodes named "
                "until they pass, then promote again (or pass --allow-untested)"
            )
        if problems:
            progress(f"warning: --allow-untested: promoting {short} past its gate ({'; '.join(problems)}); the history records it")
    manifest = read_json(ctx.target_dir / "manifest.json")
    if not manifest:
        raise PromotionRefused(f"{switch.refusing}: its build has no manifest.json: run `dot-tasks run {context}@{commit[:12]}`")
    conn = _connection(ws, commit, context)
    relations = plan_relations(manifest, conn.build_schema, conn.base)
    if not relations:
        raise PromotionRefused(f"{switch.refusing}: its build has no models, seeds or snapshots")
    row = {
        "action": switch.action,
        "context": context,
        "commit": commit,
        "short": short,
        "refs": ",".join(gitrepo.refs_pointing_at(ws.repo).get(commit, [])),
        "promoted_by": who(ws),
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
        fds = [locks.enter_context(hold(_live_lock(ws, conn), f"the live schema {conn.base}", ws.settings.lock_timeout))]
        fds.extend(locks.enter_context(warehouse_locks(ws, [conn.output])))
        progress(f"{switch.action}: switching {len(relations)} relation(s) of {conn.base} to {short} ({commit[:12]})")
        # Noted before the switch: if this process is killed once the warehouse has
        # committed it, `list` and `clean` still know the commit may be live.
        before = remembered(ws).get(context)
        _remember(ws, context, {**(before or {"context": context}), "pending": commit})
        try:
            value = _switch_with_retries(ws, conn, plan, tuple(fds), switch, progress)
        except BaseException:
            _remember(ws, context, before)
            raise
        refusal = value.get("refusal")
        if refusal:
            _remember(ws, context, before)
            raise _refused(refusal, value, switch, short, conn)
        note = {
            "commit": commit,
            "short": short,
            "context": context,
            "live_schema": conn.base,
            "since": row["promoted_at"],
            "previous_commit": value.get("previous"),
            "action": value.get("action") or switch.action,
        }
        _remember(ws, context, note)
    return {
        **note,
        "relations": len(relations),
        "created": value.get("created", 0),
        "replaced": value.get("replaced", 0),
        "recreated": value.get("recreated", []),
        "dropped": value.get("dropped", []),
        "replaced_existing": value.get("replaced_existing", []),
        "gate_overridden": row["gate_overridden"],
        "promoted_by": row["promoted_by"],
        "was_live": value.get("was_live"),
        "transaction": value.get("transaction"),
        "lock_attempts": value.get("lock_attempts"),
        "switch_attempts": value.get("switch_attempts"),
    }


def _switch_with_retries(
    ws: Workspace, conn: _Connection, plan: dict[str, Any], fds: tuple[int, ...], switch: _Switch, progress: Callable[[str], None]
) -> dict[str, Any]:
    """The switch, tried again whole (after a jittered, growing pause) when the warehouse rolled it back.

    PostgreSQL ends a lock cycle or a lock wait by rolling the promotion back
    whole: nothing changed, so it is simply tried again, never a reader.
    """
    for attempt in range(1, SWITCH_ATTEMPTS + 1):
        try:
            value = _call(ws, conn.target, "dot_promote", {"plan": plan}, fds, verbose=switch.verbose) or {}
            return {**value, "switch_attempts": attempt}
        except WarehouseError as exc:
            if not any(word in str(exc) for word in _RETRYABLE) or attempt == SWITCH_ATTEMPTS:
                raise
            pause = min(0.2 * 2**attempt, 5.0) * (0.5 + random.random())
            progress(
                f"{switch.action}: the warehouse rolled the switch back ({str(exc)[:80]}); nothing changed, trying again in {pause:.1f}s"
            )
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def _refused(kind: str, value: Mapping[str, Any], switch: _Switch, short: str, conn: _Connection) -> DotError:
    names = value.get("relations") or []
    if kind == "missing":
        if switch.action == "rollback":
            return BuildGone(_gone(switch.commit, switch.context))
        return PromotionRefused(
            f"{switch.refusing}: the build's relations are gone from the warehouse "
            f"({_listing([str(n) for n in names])}): run `dot-tasks run {switch.context}@{switch.commit[:12]}`, "
            "then promote again"
        )
    if kind == "not ours":
        listing = _listing([f"{n} ({k})" for n, k in names], 10)
        return PromotionRefused(
            f"{switch.refusing}: {len(names)} relation(s) in the live schema were not made by a promotion and "
            f"would be replaced: {listing}. Nothing was changed; pass --replace-existing to replace them (in "
            "dependency order, in the same transaction)"
        )
    if kind == "dependants":
        listing = _listing([f"{d[0]}.{d[1]} (on {d[2]}.{d[3]})" for d in names], 10)
        return PromotionRefused(
            f"{switch.refusing}: these views depend on live relations the switch must "
            f"drop and recreate: {listing}. Nothing was changed; drop them (dot-tasks never uses CASCADE) "
            f"and {switch.again}"
        )
    if kind == "broken":
        return PromotionRefused(
            f"{switch.refusing}: these views of the live schemas, which dot-tasks did not make, would no longer "
            f"work after the switch: {_listing([str(n) for n in names], 10)}. Nothing was changed; change or drop "
            f"them and {switch.again}"
        )
    if kind == "moved":
        return _Moved(
            f"{conn.base} changed since this machine last looked (now live: {str(value.get('live') or 'nothing')[:12]}): run it again"
        )
    if kind == "never live":
        return PromotionRefused(
            f"{switch.refusing}: {switch.commit[:12]} was never live in {conn.base}: --to takes a commit that was "
            f"(see `dot-tasks live {switch.context}`)"
        )
    if kind == "already live":
        return PromotionRefused(f"{switch.refusing}: {switch.commit[:12]} is already live in {conn.base}")
    return PromotionRefused(f"{switch.refusing}: the warehouse refused ({kind})")  # pragma: no cover


# --- retire ----------------------------------------------------------------------


def retire(ws: Workspace, context: str, progress: Callable[[str], None], verbose: bool = False) -> dict[str, Any]:
    """Take a context out of red/green: drop the views promotions made, in one transaction, and record it.

    Everything else in the live schemas stays (the user's views, dbt's own
    relations, the history). Afterwards nothing is live for the context, so
    `clean` protects nothing for it, and a plain `dbt build` owns the schema again.
    """
    conn = _any_connection(ws, context)
    row = {
        "context": context,
        "refs": "",
        "promoted_by": who(ws),
        "gate_overridden": False,
        "promoted_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    plan = {"live_schema": conn.base, "lock_wait_seconds": READER_WAIT_SECONDS, "row": row}
    switch = _Switch("", context, "retire", verbose=verbose)
    with ExitStack() as locks:
        fds = [locks.enter_context(hold(_live_lock(ws, conn), f"the live schema {conn.base}", ws.settings.lock_timeout))]
        fds.extend(locks.enter_context(warehouse_locks(ws, [conn.output])))
        progress(f"retire: dropping the views promotions made in {conn.base}")
        value = _call(ws, conn.target, "dot_retire", {"plan": plan}, tuple(fds), verbose=verbose) or {}
        refusal = value.get("refusal")
        if refusal == "nothing live":
            raise PromotionRefused(f"nothing is live in {conn.base} for {context}: there is nothing to retire")
        if refusal:
            raise _refused(refusal, value, switch, "", conn)
        _remember(ws, context, None)
    return {
        "context": context,
        "live_schema": conn.base,
        "retired": value["retired"],
        "short": value["short"],
        "dropped": value.get("dropped", []),
        "transaction": value.get("transaction"),
    }


# --- live ------------------------------------------------------------------------


def live(ws: Workspace, context: str | None, verbose: bool = False) -> dict[str, Any]:
    """What is live for `context`, read from the warehouse: commit, since, history, drift."""
    context = default_context(ws, context)
    conn = _any_connection(ws, context)
    state = _call(ws, conn.target, "dot_live_state", {"live_schema": conn.base, "limit": HISTORY_SHOWN}, verbose=verbose)
    history = state.get("history") or []
    # After `retire` nothing is live, though the history stays.
    current = history[0] if history and history[0].get("action") != "retire" else None
    report: dict[str, Any] = {
        "context": context,
        "live_schema": conn.base,
        "commit": current["commit"] if current else None,
        "short": current["short"] if current else None,
        "since": current["promoted_at"] if current else None,
        "previous_commit": current["previous_commit"] if current else None,
        "history": history,
        "drift": drift(
            state.get("relations") or [], state.get("existing") or {}, state.get("view_sources") or [], bool(state.get("case_sensitive"))
        ),
    }
    # Bring this machine's note in line with the warehouse.
    _remember(
        ws,
        context,
        {
            "commit": report["commit"],
            "short": report["short"],
            "context": context,
            "live_schema": conn.base,
            "since": report["since"],
            "previous_commit": report["previous_commit"],
            "action": current["action"],
        }
        if current
        else None,
    )
    return report


def format_live(report: Mapping[str, Any]) -> str:
    lines = []
    if not report["commit"]:
        lines.append(f"nothing is live in {report['live_schema']} for {report['context']}")
    else:
        lines.append(f"live      {report['commit']} ({report['short']}) in {report['live_schema']} since {report['since']} UTC")
        lines.append(f"previous  {report['previous_commit'] or '-'}")
        drifted = report["drift"]
        lines.append("drift     " + ("none" if not drifted else "; ".join(f"{d['relation']}: {d['problem']}" for d in drifted)))
        lines.append("")
        header = ("#", "WHEN (UTC)", "ACTION", "CONTEXT", "SHORT", "REFS", "BY", "PREVIOUS", "NODES", "GATE")
        table = [header] + [
            (
                str(h["seq"]),
                str(h["promoted_at"])[:19],
                str(h["action"]),
                str(h["context"]),
                str(h["short"]),
                h["refs"] or "-",
                str(h["promoted_by"]),
                (h["previous_commit"] or "-")[:12],
                str(h["node_count"]),
                "overridden" if h["gate_overridden"] else "passed",
            )
            for h in report["history"]
        ]
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in table]
    return "\n".join(lines)
