"""Reaching the warehouse of a context: its connection, the ops macros, the live lock, its state.

A promotion needs no build of its own to reach the warehouse: the profile
generated for any build of the context names the same warehouse, and the
live schema is that build's schema without its suffix.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..adapters import rules_for, schema_key
from ..builds import Workspace, built_commits, context_name, ensure_generated_profile, named_lock, resolve, schema_suffix
from ..errors import LockTimeout, WarehouseError
from ..layout import dot_dir, ops_dir, ops_logs_dir
from ..locks import hold
from .notes import remembered
from .plan import live_schema_of
from .results import HistoryEntry


@dataclass(frozen=True)
class Connection:
    """The way into one build's warehouse, and the schemas a switch there works on."""

    target: Any  # dbt.protocol.OpsTarget, imported only when a macro runs
    #: The profile's output, as generated for the build.
    output: dict[str, Any]
    build_schema: str
    #: The context's own schema, the build's without its suffix: where its views go live.
    live_schema: str

    @property
    def transactional(self) -> bool:
        """Whether the warehouse's DDL is transactional, so that a switch is one commit (not on Spark)."""
        return rules_for(str(self.output.get("type", ""))).transactional_ddl


def connection(ws: Workspace, commit: str, context: str) -> Connection:
    """The connection through the profile generated for `commit`'s build of `context`."""
    from ..dbt.protocol import OpsTarget

    ctx = ws.paths(commit).context(context)
    profile = ensure_generated_profile(ws, commit, context)
    output = profile.output
    build_schema = str(output.get(schema_key(output)) or "")
    live_schema = live_schema_of(build_schema, schema_suffix(ws, commit))
    logs = str(ops_logs_dir(ws.project_dir))
    return Connection(OpsTarget(str(ctx.context_dir), profile.profile_name, profile.target, logs), output, build_schema, live_schema)


def any_connection(ws: Workspace, context: str) -> Connection:
    """A way into the context's warehouse without naming a build: the one last seen live, any build, or HEAD."""
    note = remembered(ws).get(context)
    candidates = [note.commit] if note and note.commit else []
    candidates += [c for c in built_commits(ws.project_dir) if ws.paths(c).context(context).profiles_yml.is_file()]
    for commit in candidates:
        if ws.paths(commit).context(context).profiles_yml.is_file():
            return connection(ws, commit, context)
    return connection(ws, resolve(ws, "HEAD"), context)


def call_macro(ws: Workspace, target: Any, macro: str, args: dict[str, Any], lock_fds: tuple[int, ...] = (), verbose: bool = False) -> Any:
    """Run one ops macro in the dbt child and return its value; a failure is a `WarehouseError`."""
    from ..dbt.client import call_macros
    from ..dbt.protocol import MacroCall

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


def live_lock(ws: Workspace, conn: Connection) -> Path:
    """The lock file this machine holds while it switches `conn`'s live schema."""
    where = {k: conn.output.get(k) for k in ("type", "host", "port", "dbname", "database", "path")}
    return named_lock(ws, "live", json.dumps([where, conn.live_schema.lower()], sort_keys=True, default=str))


def default_context(ws: Workspace, context: str | None) -> str:
    """`context`, or the profile's default target at HEAD."""
    return context or context_name(ws, resolve(ws, "HEAD"), None)


@dataclass(frozen=True)
class LiveState:
    """What `dot_live_state` read: the newest history rows and what the live schemas hold now."""

    history: tuple[HistoryEntry, ...]
    #: The last promotion's [[build schema, live schema, name], ...].
    relations: list[list[str]]
    #: relation key → 'view' or 'table'
    existing: dict[str, str]
    view_sources: list[list[str]]
    case_sensitive: bool

    @property
    def current(self) -> HistoryEntry | None:
        """The row of what is live; None when nothing is (never promoted, or retired: the history stays)."""
        if self.history and self.history[0].action != "retire":
            return self.history[0]
        return None


def read_live_state(ws: Workspace, conn: Connection, limit: int, verbose: bool = False) -> LiveState:
    """The warehouse's history (newest `limit` rows) and the live schemas' relations, in one dbt start."""
    state = call_macro(ws, conn.target, "dot_live_state", {"live_schema": conn.live_schema, "limit": limit}, verbose=verbose)
    return LiveState(
        history=tuple(HistoryEntry.from_row(row) for row in state.get("history") or []),
        relations=state.get("relations") or [],
        existing=state.get("existing") or {},
        view_sources=state.get("view_sources") or [],
        case_sensitive=bool(state.get("case_sensitive")),
    )
