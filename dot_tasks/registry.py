"""The team's record of builds, kept in the warehouse: `list --warehouse` and `clean --warehouse`.

Every build appends two events to `<base>_dot.dot_builds` (written by its own
dbt child: see `dbt.child_build`), so every machine sharing the warehouse sees
every build, whichever machine made it. A machine's `.dot` stays what it was:
this machine's files, and a cache of what it last saw.

The SQL is in dbt_ops/macros/dot_registry.sql; this module plans (which
builds, which schemas, which key) and reports.
"""

from __future__ import annotations

import getpass
import json
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, gitrepo
from .errors import DotError, WarehouseError
from .layout import dot_dir, locks_dir, ops_logs_dir, registry_profile_dir
from .locks import is_held
from .profile_step import project_config_at, user_profiles
from .warehouse_locks import warehouse_locks
from .workspace import Workspace, resolve

if TYPE_CHECKING:
    from .schema_drops import Drop

#: The registry's schema is the context's base schema with this suffix: `analytics_dot`.
#: Not hexadecimal, so it can never be a build's `<schema>_<short>`.
REGISTRY_SUFFIX = "dot"
#: A `running` build of another machine, started this long ago, was interrupted.
STALE_RUNNING_SECONDS = 24 * 3600


def registry_schema(base: str) -> str:
    """The schema beside `base` that holds the warehouse's build registry."""
    return f"{base}_{REGISTRY_SUFFIX}"


def now_text() -> str:
    """A UTC time as fixed-width ISO text: it sorts as time does, on every engine."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: Any) -> float | None:
    """Seconds since the epoch of a registry time (ISO text, UTC when no zone), or None if it is not one."""
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


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
    from .lifecycle import human_age  # lifecycle reads the registry too: imported where it is used

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


# --- clean --warehouse ----------------------------------------------------------


def clean_warehouse(
    ws: Workspace, selection: Any, *, dry_run: bool, force: bool, say: Callable[[str], None], progress: Callable[[str], None]
) -> None:
    """Apply `selection` to every build the registries hold, whichever machine made it.

    Only schemas a registry names are dropped, and only those carrying the
    build's own suffix (`records.owned_schemas`); each goes through `dot_clean_build`,
    which keeps what is live, a rollback target, a base, or read by anything.
    The local files of the builds this machine also has go too.
    """
    from .lifecycle import remove_local
    from .schema_drops import run_drops

    chosen = _chosen_builds(ws, selection, say, progress)
    if not chosen:
        say("nothing to clean")
        return
    drops = _registry_drops(ws, chosen, selection, dry_run=dry_run, force=force, progress=progress)
    failures, stayed = run_drops(ws, drops, dry_run=dry_run, force=force, say=say, progress=progress)
    dropped = {(d.commit, d.context) for d in drops}
    for build in chosen:
        if (build.commit, build.context) in stayed or (build.commit, build.context) not in dropped:
            continue
        if dry_run:
            say(f"would forget {build.label} ({build.built_by or '?'} on {build.host or '?'})")
            continue
        say(f"forgot {build.label} ({build.built_by or '?'} on {build.host or '?'})")
        if build.local:
            remove_local(ws, build.commit, [build.context], selection, say)
    if failures:
        raise WarehouseError("; ".join(failures))


def _chosen_builds(ws: Workspace, selection: Any, say: Callable[[str], None], progress: Callable[[str], None]) -> list[RegisteredBuild]:
    """The registered builds `selection` picks, less those being built right now."""
    from .lifecycle import select
    from .listing import BuildRow

    everything = read(ws, selection.context, progress)
    by_key = {(b.commit, b.context): b for b in everything}
    rows = [BuildRow(b.commit, b.short, b.context, b.schema, b.status, b.built_at, 0, 0) for b in everything]
    if selection.unreachable:
        unknown = sorted({r.commit for r in rows if r.commit not in ws.repo})
        if unknown:
            progress(
                f"{len(unknown)} registered commit(s) are not in this clone, so --unreachable cannot tell: "
                "left alone (fetch them, or clean them with --ref)"
            )
        rows = [r for r in rows if r.commit in ws.repo]
    chosen = [by_key[(r.commit, str(r.context))] for r in select(ws, rows, selection, {})]
    for build in [b for b in chosen if b.status == "running"]:
        say(f"kept {build.label}: it is being built right now ({build.built_by or '?'} on {build.host or '?'})")
    return [b for b in chosen if b.status != "running"]


def _registry_drops(
    ws: Workspace, chosen: list[RegisteredBuild], selection: Any, *, dry_run: bool, force: bool, progress: Callable[[str], None]
) -> list[Drop]:
    """A `schema_drops.Drop` for each chosen build whose warehouse this machine reaches."""
    from .records import owned_schemas
    from .schema_drops import Drop, drop_plan

    places = {w.name: w for w in warehouses(ws, selection.context, progress)}
    leaving = sorted([b.commit, b.context] for b in chosen)
    cleaned_by = who(ws)
    drops: list[Drop] = []
    for build in chosen:
        place = places.get(build.warehouse)
        schemas = owned_schemas(build.schema, build.schemas, build.short)
        if place is None or not schemas:
            progress(f"{build.label}: its registered schema {build.schema} does not carry its suffix: only its registry row goes")
        plan = drop_plan(
            schemas=schemas,
            short=build.short,
            live_schema=live_base(build.schema, build.short),
            key=build.key,
            leaving=leaving,
            force=force,
            dry_run=dry_run,
            cleaned_by=cleaned_by,
        )
        plan["defers"] = build.deferred_to is not None
        if place is not None:
            drops.append(Drop(build.label, build.commit, build.context, place.target, place.output, plan))
    return drops
