"""The team's record of builds, kept in the warehouse: what `list --warehouse` shows and `clean --warehouse` sweeps.

Every build appends two events to `<base>_dot.dot_builds` (written by its own
dbt child: see `dbt.child_build`), so every machine sharing the warehouse sees
every build, whichever machine made it. A machine's `.dot` stays what it was:
this machine's files, and a cache of what it last saw.

The SQL is in dbt_ops/macros/dot_registry.sql; this module writes and reads
the rows. `clean --warehouse`, which acts on them, is `warehouse_clean.py`.
"""

from __future__ import annotations

import getpass
import json
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, gitrepo
from .errors import DotError, WarehouseError
from .layout import dot_dir, locks_dir, ops_logs_dir, registry_profile_dir
from .locks import is_held
from .profile_step import project_config_at, user_profiles
from .timestamps import now_text, parse_time
from .warehouse_locks import warehouse_locks
from .workspace import Workspace, resolve

#: The registry's schema is the context's base schema with this suffix: `analytics_dot`.
#: Not hexadecimal, so it can never be a build's `<schema>_<short>`.
REGISTRY_SUFFIX = "dot"
#: A `running` build of another machine, started this long ago, was interrupted.
STALE_RUNNING_SECONDS = 24 * 3600


def registry_schema(base: str) -> str:
    """The schema beside `base` that holds the warehouse's build registry."""
    return f"{base}_{REGISTRY_SUFFIX}"


def who(ws: Workspace) -> str:
    """git's `user.email`, else the OS user: who built or cleaned."""
    email = gitrepo.user_email(ws.repo)
    if email:
        return email
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def live_base(build_schema: str, short: str) -> str | None:
    """`analytics` for `analytics_<short>`; None when the schema does not carry the suffix."""
    suffix = "_" + short
    if len(build_schema) > len(suffix) and build_schema.lower().endswith(suffix.lower()):
        return build_schema[: -len(suffix)]
    return None


def build_event(
    ws: Workspace, *, commit: str, short: str, context: str, build_schema: str, command: str, deferred_to: Mapping[str, str] | None
) -> dict[str, Any]:
    """The registry row a build writes when it starts; the child fills in the end."""
    return {
        "project": project_config_at(ws, commit).name,
        "commit_sha": commit,
        "short": short,
        "context": context,
        "build_schema": build_schema,
        "schemas": json.dumps([build_schema]),
        "status": "running",
        "started_at": now_text(),
        "finished_at": None,
        "recorded_at": now_text(),
        "dbt_version": None,
        "dot_version": __version__,
        "built_by": who(ws),
        "host": socket.gethostname(),
        "workdir": str(ws.project_dir),
        "command": command,
        "deferred_commit": (deferred_to or {}).get("commit"),
        "deferred_context": (deferred_to or {}).get("context"),
        "deferred_schema": (deferred_to or {}).get("schema"),
    }


# --- what the warehouse holds ----------------------------------------------------


@dataclass
class RegisteredBuild:
    """A build as the registry has it: the newest event of (project, commit, context)."""

    project: str
    commit: str
    short: str
    context: str
    schema: str
    schemas: list[str]
    #: As recorded: running, success, failed. `status` is what it means now.
    recorded_status: str
    status: str
    started: str | None
    finished: str | None
    built_by: str | None
    host: str | None
    workdir: str | None
    registry: str
    deferred_to: dict[str, str] | None = None
    live: str = ""
    #: Whether this machine has the build's files.
    local: bool = False
    warehouse: str = ""

    @property
    def built_at(self) -> float:
        return parse_time(self.finished) or parse_time(self.started) or time.time()

    @property
    def label(self) -> str:
        return f"{self.context}@{self.short}"

    @property
    def key(self) -> dict[str, str]:
        return {"project": self.project, "commit_sha": self.commit, "context": self.context}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["age_seconds"] = round(time.time() - self.built_at)
        return data


def current_status(
    recorded: str, commit: str, context: str, host: str | None, workdir: str | None, started: str | None, now: float | None = None
) -> str:
    """What a recorded status means now: a `running` build whose process is gone was interrupted.

    On the machine that built it (same host, its project directory here) the
    build's own lock says whether it still runs; elsewhere, a build that has
    been running for a day is taken as interrupted.
    """
    if recorded != "running":
        return recorded
    if host == socket.gethostname() and workdir and Path(workdir).is_dir():
        lock = locks_dir(Path(workdir)) / f"{commit}.{context}.lock"
        return "running" if lock.exists() and is_held(lock) else "interrupted"
    began = parse_time(started)
    if began is not None and (now or time.time()) - began > STALE_RUNNING_SECONDS:
        return "interrupted"
    return "running"


def _registered(row: Mapping[str, Any], ws: Workspace, warehouse: str) -> RegisteredBuild:
    try:
        schemas = [str(s) for s in json.loads(row.get("schemas") or "[]")]
    except (TypeError, ValueError):
        schemas = []
    commit, context = str(row["commit_sha"]), str(row["context"])
    deferred = (
        {"commit": str(row["deferred_commit"]), "context": str(row.get("deferred_context")), "schema": str(row.get("deferred_schema"))}
        if row.get("deferred_commit")
        else None
    )
    return RegisteredBuild(
        project=str(row.get("project") or ""),
        commit=commit,
        short=str(row.get("short") or commit[:8]),
        context=context,
        schema=str(row.get("build_schema") or ""),
        schemas=schemas,
        recorded_status=str(row.get("status")),
        status=current_status(str(row.get("status")), commit, context, row.get("host"), row.get("workdir"), row.get("started_at")),
        started=row.get("started_at"),
        finished=row.get("finished_at"),
        built_by=row.get("built_by"),
        host=row.get("host"),
        workdir=row.get("workdir"),
        registry=str(row.get("registry") or ""),
        deferred_to=deferred,
        local=ws.paths(commit).context(context).record.is_file() if _plain_name(context) else False,
        warehouse=warehouse,
    )


def _plain_name(context: str) -> bool:
    try:
        from .naming import check_context_name

        check_context_name(context)
        return True
    except DotError:
        return False


@dataclass
class Warehouse:
    """One database that some of the project's contexts build into, and a way in."""

    name: str
    context: str
    target: Any  # dbt.protocol.OpsTarget
    output: dict[str, Any]
    contexts: list[str] = field(default_factory=list)


def _identity(output: Mapping[str, Any]) -> str:
    keys = ("type", "host", "port", "dbname", "database", "path", "method", "account", "project", "catalog")
    return json.dumps({k: output.get(k) for k in keys if output.get(k) is not None}, sort_keys=True, default=str)


def _contexts(ws: Workspace, commit: str) -> list[str]:
    """Every context the project can build: its profile's outputs and dot.contexts."""
    project = project_config_at(ws, commit)
    _source, profiles = user_profiles(ws)
    outputs = (profiles.get(project.profile) or {}).get("outputs") or {}
    return sorted(set(map(str, outputs)) | set(ws.settings.contexts))


def registry_target(ws: Workspace, commit: str, context: str) -> tuple[Any, dict[str, Any]]:
    """A profile into `context`'s warehouse, with the registry schema as its own; written under `.dot/ops`."""
    from .dbt.protocol import OpsTarget
    from .profile_step import choose_context, write_rendered_profile
    from .profiles import isolate_output

    choice, chosen = choose_context(ws, commit, context)
    output, _schema = isolate_output(chosen.output, REGISTRY_SUFFIX, ws.project_dir)
    folder = registry_profile_dir(ws.project_dir, choice.context)
    write_rendered_profile(folder / "profiles.yml", commit, choice.context, chosen, output)
    return OpsTarget(str(folder), chosen.profile_name, chosen.target_name, str(ops_logs_dir(ws.project_dir))), output


def warehouses(ws: Workspace, context: str | None, progress: Callable[[str], None]) -> list[Warehouse]:
    """One way into each distinct warehouse of the project's contexts (or of `context`)."""
    head = resolve(ws, "HEAD")
    found: dict[str, Warehouse] = {}
    for name in [context] if context else _contexts(ws, head):
        try:
            target, output = registry_target(ws, head, name)
        except DotError as exc:
            if context:
                raise
            progress(f"skipping context {name}: {exc}")
            continue
        identity = _identity(output)
        if identity in found:
            found[identity].contexts.append(name)
        else:
            where = output.get("path") or output.get("dbname") or output.get("database") or output.get("host") or ""
            found[identity] = Warehouse(f"{output.get('type')} {where}".strip(), name, target, output, [name])
    return list(found.values())


def read(ws: Workspace, context: str | None, progress: Callable[[str], None]) -> list[RegisteredBuild]:
    """Every build the warehouses' registries hold (of `context`, if given), newest first."""
    from .dbt.client import call_macros
    from .dbt.protocol import MacroCall

    places = warehouses(ws, context, progress)
    if not places:
        return []
    with (
        warehouse_locks(ws, [w.output for w in places]) as fds,
        tempfile.TemporaryDirectory(prefix="registry-", dir=dot_dir(ws.project_dir)) as scratch,
    ):
        outcomes = call_macros([MacroCall(w.target, "dot_registry_read", {}) for w in places], Path(scratch), lock_fds=fds)
    builds: list[RegisteredBuild] = []
    failures = []
    for place, outcome in zip(places, outcomes, strict=False):
        if outcome.error:
            failures.append(f"{place.name} (context {place.context}): {outcome.error}")
            continue
        value = outcome.value or {}
        live = value.get("live") or {}
        for row in value.get("builds") or []:
            build = _registered(row, ws, place.name)
            state = live.get(live_base(build.schema, build.short) or "") or {}
            build.live = "live" if state.get("commit") == build.commit else "rollback" if state.get("previous") == build.commit else ""
            builds.append(build)
    if failures and not builds:
        raise WarehouseError("could not read the build registry: " + "; ".join(failures))
    for failure in failures:
        progress(f"warning: could not read the build registry of {failure}")
    if context:
        builds = [b for b in builds if b.context == context]
    return sorted(builds, key=lambda b: (b.built_at, b.commit, b.context), reverse=True)


def format_table(builds: list[RegisteredBuild]) -> str:
    """The `list --warehouse` table: one row per registered build, in the order given."""
    from .listing import human_age

    if not builds:
        return "no builds in the warehouse registry"
    header = ("SHORT", "CONTEXT", "SCHEMA", "STATUS", "LIVE", "AGE", "BY", "HOST", "PROJECT", "HERE")
    now = time.time()
    table = [header] + [
        (
            b.short,
            b.context,
            b.schema,
            b.status,
            b.live or "-",
            human_age(now - b.built_at),
            b.built_by or "-",
            b.host or "-",
            b.project,
            "yes" if b.local else "-",
        )
        for b in builds
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in table)
