"""The steps of an isolated build, as plain functions over a `Workspace`.

Each step recomputes what it needs from (project dir, commit, context), so it
can run alone, be repeated, or follow another step in a shell script. The
Invoke tasks call these functions and only print what they return.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pygit2
import yaml

from . import gitrepo
from .adapters import schema_key, unchecked_warning
from .errors import DbtFailed, DeferralError, DotError, ProfileError, ProjectError, WarehouseError, WorktreeError
from .files import read_json, write_atomic, write_json_atomic
from .layout import COMMIT_DIR_NAME, BuildPaths, builds_root, locks_dir
from .locks import describe_process, hold, posix_lock_holder, wait_while_locked
from .naming import (
    DEFAULT_SHORT_LENGTH,
    check_context_name,
    check_identifier_length,
    is_template,
    parse_spec,
    short_hash,
)
from .profiles import (
    ChosenOutput,
    choose_output,
    duckdb_file,
    find_profiles_file,
    isolate_output,
    load_profiles,
    spark_metastore,
)
from .project import (
    PACKAGE_FILES,
    PROJECT_FILE,
    ProjectConfig,
    declares_packages,
    find_project_dir,
    local_packages,
    parse_project_config,
)


@dataclass(frozen=True)
class Settings:
    """The `dot.*` configuration, as Invoke resolved it."""

    project_dir: str | None = None
    profiles_dir: str | None = None
    short_hash_length: int = DEFAULT_SHORT_LENGTH
    #: context name → profile output (target) name, for contexts not named after a target.
    contexts: Mapping[str, str] = field(default_factory=dict)
    lock_timeout: float = 600.0
    #: Check out only the dbt project and its local packages when it sits in a subdirectory.
    sparse_checkout: bool = True


@dataclass(frozen=True)
class Workspace:
    """A dbt project inside a git repository: the place builds are made for."""

    repo: pygit2.Repository
    project_dir: Path
    #: The project's directory relative to the git work tree, POSIX style ('' at the root).
    subdir: str
    settings: Settings

    @classmethod
    def open(cls, settings: Settings, cwd: Path | None = None) -> Workspace:
        project_dir = find_project_dir(cwd or Path.cwd(), settings.project_dir)
        repo = gitrepo.open_repository(project_dir)
        root = gitrepo.work_tree(repo)
        try:
            subdir = project_dir.relative_to(root).as_posix()
        except ValueError as exc:  # pragma: no cover - discover_repository walks upward
            raise ProjectError(f"{project_dir} is not inside the git work tree {root}") from exc
        return cls(repo, project_dir, "" if subdir == "." else subdir, settings)

    def paths(self, commit: str) -> BuildPaths:
        return BuildPaths(self.project_dir, commit, self.subdir)

    def in_repo(self, name: str) -> str:
        """`name` (a file of the dbt project) as a path in the commit's tree."""
        return f"{self.subdir}/{name}" if self.subdir else name


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- resolve -------------------------------------------------------------------


def resolve(ws: Workspace, ref: str) -> str:
    return gitrepo.resolve_commit(ws.repo, ref)


def _suffix_lock(ws: Workspace) -> Path:
    return locks_dir(ws.project_dir) / "suffixes.lock"


def built_commits(project_dir: Path) -> list[str]:
    """The commits that have a build directory in this project."""
    root = builds_root(project_dir)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and COMMIT_DIR_NAME.fullmatch(p.name)) if root.is_dir() else []


def _computed_suffix(ws: Workspace, commit: str) -> str:
    """The configured-length prefix, lengthened while another build's commit shares it.

    Equal suffixes would mean a shared schema, and a suffix can only equal
    another build's if that build's commit starts with it.
    """
    others = [other for other in built_commits(ws.project_dir) if other != commit]
    length = ws.settings.short_hash_length
    while any(other.startswith(commit[:length]) for other in others):
        length += 1
    return short_hash(commit, length)


def schema_suffix(ws: Workspace, commit: str) -> str:
    """The suffix recorded for this commit's schemas, or the one it would get."""
    record = read_json(ws.paths(commit).commit_record) or {}
    return record.get("short") or _computed_suffix(ws, commit)


def claim_suffix(ws: Workspace, commit: str, ref: str | None = None) -> str:
    """Record the commit's schema suffix on its first build and reuse it afterwards."""
    paths = ws.paths(commit)
    record = read_json(paths.commit_record) or {}
    if record.get("short") and (ref is None or ref in record.get("refs", [])):
        return str(record["short"])
    with hold(_suffix_lock(ws), "the schema-suffix registry", ws.settings.lock_timeout):
        record = read_json(paths.commit_record) or {}
        suffix = record.get("short") or _computed_suffix(ws, commit)
        refs = list(record.get("refs", []))
        if ref is not None and ref not in refs:
            refs.append(ref)
        write_json_atomic(
            paths.commit_record,
            {"commit": commit, "short": suffix, "refs": refs, "created": record.get("created") or _now()},
        )
    return suffix


# --- worktree ------------------------------------------------------------------


@dataclass(frozen=True)
class WorktreeResult:
    path: Path
    project_path: Path
    reused: bool


def ensure_worktree(ws: Workspace, commit: str) -> WorktreeResult:
    """A clean checkout of `commit`, reused when intact, repaired when a run died mid-way."""
    paths = ws.paths(commit)
    gitrepo.ensure_excluded(ws.repo, f"/{ws.in_repo('.dot/')}")
    with hold(paths.commit_lock(), f"the worktree of {commit[:12]}", ws.settings.lock_timeout):
        state = gitrepo.inspect_worktree(ws.repo, paths)
        if state.complete and state.directory and not state.registered:
            # The repository was moved (or its registration pruned): re-link
            # rather than recreate, so edits in the worktree are not lost.
            gitrepo.repair_worktree(ws.repo, paths)
            state = gitrepo.inspect_worktree(ws.repo, paths)
        if state.intact_at(commit):
            return WorktreeResult(paths.worktree_dir, paths.worktree_project_dir, reused=True)
        if state.complete and state.registered and state.directory:
            if state.changes:
                shown = ", ".join(state.changes[:5]) + (" ..." if len(state.changes) > 5 else "")
                raise WorktreeError(
                    f"the worktree {paths.worktree_dir} has changes to tracked files ({shown}): "
                    f"save what you need, then `dot-tasks clean --ref {commit[:12]} --keep-schemas` and rerun"
                )
            raise WorktreeError(
                f"the worktree {paths.worktree_dir} is no longer at {commit[:12]} (HEAD is "
                f"{(state.head or 'a branch')[:12]}): `dot-tasks clean --ref {commit[:12]} --keep-schemas` and rerun"
            )
        # Absent, or left half-made by a killed run (or deleted by hand): make it anew.
        gitrepo.create_worktree(ws.repo, paths, sparse_dirs(ws, commit), local_package_dirs(ws, commit))
    return WorktreeResult(paths.worktree_dir, paths.worktree_project_dir, reused=False)


def local_package_dirs(ws: Workspace, commit: str) -> list[str]:
    """The commit's `local:` packages, as paths in the repository ('.' for its root)."""
    dirs = set()
    for name in PACKAGE_FILES:
        for local in local_packages(gitrepo.read_file_at(ws.repo, commit, ws.in_repo(name))):
            resolved = posixpath.normpath(posixpath.join(ws.subdir, local))
            if not resolved.startswith("../"):
                dirs.add(resolved)
    return sorted(dirs)


def sparse_dirs(ws: Workspace, commit: str) -> list[str] | None:
    """What a sparse checkout needs: the project and its in-repo `local:` packages.

    None means a full checkout: the project is at the repository root, or
    `dot.sparse_checkout` is off for projects that read files elsewhere.
    """
    if not ws.subdir or not ws.settings.sparse_checkout:
        return None
    packages = local_package_dirs(ws, commit)
    if "." in packages:
        return None  # the package is the whole repository
    return sorted({ws.subdir, *packages})


def require_worktree(ws: Workspace, commit: str) -> BuildPaths:
    paths = ws.paths(commit)
    state = gitrepo.inspect_worktree(ws.repo, paths)
    if not state.intact_at(commit):
        problem = "has changes to tracked files" if state.changes else "is missing or incomplete"
        raise WorktreeError(
            f"the worktree for {commit[:12]} {problem}: run `dot-tasks worktree --ref {commit[:12]}` first (or `dot-tasks run`)"
        )
    return paths


# --- profile -------------------------------------------------------------------


@dataclass(frozen=True)
class ContextChoice:
    context: str
    target: str
    profile_name: str


def _project_config_at(ws: Workspace, commit: str) -> ProjectConfig:
    where = ws.in_repo(PROJECT_FILE)
    text = gitrepo.read_file_at(ws.repo, commit, where)
    if text is None:
        raise ProjectError(f"commit {commit[:12]} has no {where}: the dbt project did not exist there yet (pick a later ref)")
    return parse_project_config(text, f"{where} at {commit[:12]}")


def _user_profiles(ws: Workspace) -> tuple[Path, dict[str, Any]]:
    source = find_profiles_file(ws.settings.profiles_dir, os.environ, ws.project_dir, Path.home(), Path.cwd())
    return source, load_profiles(source)


def choose_context(ws: Workspace, commit: str, context: str | None) -> tuple[ContextChoice, ChosenOutput]:
    """The context (default: the profile's default target) and the output it builds with."""
    if context is not None:
        check_context_name(context)
    project = _project_config_at(ws, commit)
    source, profiles = _user_profiles(ws)
    target = ws.settings.contexts.get(context, context) if context else None
    chosen = choose_output(profiles, source, project.profile, target)
    name = context or chosen.target_name
    check_context_name(name)
    return ContextChoice(name, chosen.target_name, project.profile), chosen


@dataclass(frozen=True)
class ProfileResult:
    context: str
    target: str
    schema: str
    profiles_dir: Path
    short: str
    #: One line for the user when the adapter is one dot-tasks has not been checked with.
    warning: str | None = None


def write_profile(ws: Workspace, commit: str, context: str | None, ref: str | None = None) -> ProfileResult:
    """Write `<commit>/<context>/profiles.yml`, pointing the context at `<schema>_<short>`."""
    from .templating import render_profiles  # Jinja is only needed here

    choice, chosen = choose_context(ws, commit, context)
    suffix = claim_suffix(ws, commit, ref)
    output, schema = isolate_output(chosen.output, suffix, ws.project_dir)
    check_identifier_length(schema, str(output.get("type", "")))
    ctx = ws.paths(commit).context(choice.context)
    text = render_profiles(
        commit=commit,
        context=choice.context,
        profile_name=chosen.profile_name,
        target_name=chosen.target_name,
        output=output,
        user_config=chosen.user_config,
        source=chosen.source,
    )
    write_atomic(ctx.profiles_yml, text, mode=0o600)
    adapter = str(output.get("type", ""))
    return ProfileResult(
        choice.context, choice.target, schema, ctx.context_dir, suffix, unchecked_warning(adapter, schema_key(output), schema)
    )


def generated_profile(ws: Workspace, commit: str, context: str) -> tuple[str, str, dict[str, Any]]:
    """The (profile, target, output) a build of `commit` in `context` reaches its warehouse with.

    The profile is derived, so it is written again when missing: a build
    restored from a CI cache carries only its records and dbt's artifacts.
    """
    ctx = ws.paths(commit).context(context)
    if not ctx.profiles_yml.is_file():
        write_profile(ws, commit, context)
    return read_generated_profile(ctx.profiles_yml)


def read_generated_profile(path: Path) -> tuple[str, str, dict[str, Any]]:
    """The (profile name, target name, output) of a profiles.yml that `write_profile` wrote."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    name, profile = next((k, v) for k, v in data.items() if k != "config")
    return str(name), str(profile["target"]), profile["outputs"][profile["target"]]


# --- build ---------------------------------------------------------------------


@dataclass
class BuildResult:
    commit: str
    context: str
    target: str
    schema: str | None
    exit_code: int
    seconds: float
    schemas: list[str] = field(default_factory=list)
    deferred_to: dict[str, str] | None = None
    cloned: bool = False


def named_lock(ws: Workspace, kind: str, name: str) -> Path:
    """A lock for something named by a string (a schema, a database file), not by a path of ours."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:16]
    return locks_dir(ws.project_dir) / f"{kind}-{digest}.lock"


@contextmanager
def warehouse_locks(ws: Workspace, outputs: Iterable[Mapping[str, Any]]) -> Iterator[tuple[int, ...]]:
    """Hold what a process needs before it opens these outputs' warehouses; yield the lock fds.

    A DuckDB file takes one writer, and an embedded Derby metastore (Spark in
    session mode) one JVM: a second JVM fails after ~20 s with Derby's
    "Another instance of Derby may have already booted the database". Builds,
    `clean` and every other dbt start of ours take these locks, in one order.
    """
    # lock → (what it guards, a file another program may hold a POSIX lock on, and what that is)
    wanted: dict[Path, tuple[str, Path, str]] = {}
    for output in outputs:
        database = duckdb_file(output)
        if database is not None:
            wanted[named_lock(ws, "duckdb", str(database))] = (
                f"the DuckDB file {database} (one writer at a time)",
                database,
                f"the DuckDB file {database}, open in another process",
            )
        metastore = spark_metastore(output)
        if metastore is not None:
            wanted[named_lock(ws, "metastore", str(metastore))] = (
                f"the Spark metastore {metastore} (embedded Derby: one Spark process at a time)",
                metastore / "dbex.lck",
                f"the Spark metastore {metastore}, open in another Spark process",
            )
    with ExitStack() as stack:
        fds = []
        for lock in sorted(wanted):  # one order, so two holders of several never deadlock
            what, theirs, open_elsewhere = wanted[lock]
            fds.append(stack.enter_context(hold(lock, what, ws.settings.lock_timeout)))
            # Processes that are not ours (the user's own dbt, a notebook, a BI tool,
            # or our last build's JVM still exiting) hold DuckDB's or Derby's own lock:
            # wait here, naming them, rather than let dbt fail after its traceback.
            wait_while_locked(theirs, open_elsewhere, ws.settings.lock_timeout)
        yield tuple(fds)


#: The resource types each dbt command builds when it selects nothing: its results replace theirs.
_FULL_COVER = {
    "build": ("model", "seed", "snapshot", "test", "unit_test"),
    "run": ("model",),
    "test": ("test", "unit_test"),
    "seed": ("seed",),
    "snapshot": ("snapshot",),
}
#: Flags that narrow an invocation to some nodes: its results update the record rather than replace it.
_NARROWING = frozenset(
    {
        "-s",
        "--select",
        "-m",
        "--models",
        "--model",
        "--selector",
        "--exclude",
        "--resource-type",
        "--resource-types",
        "--exclude-resource-type",
    }
)


def node_statuses(
    previous: Mapping[str, str] | None,
    command: list[str],
    args: list[str],
    run_results: Mapping[str, Any] | None,
    manifest: Mapping[str, Any] | None,
    started: str,
) -> dict[str, str]:
    """Each node's last status, across the invocations since the last full one: what the gate judges.

    A full invocation (one that selects nothing) starts its resource types
    afresh; a selected one updates the nodes it ran. A model, seed or snapshot
    rebuilt without its tests makes those tests `stale`: they passed on data
    that is gone. run_results.json older than the invocation is not its own.
    """
    nodes = dict(previous or {})
    generated = str((run_results or {}).get("metadata", {}).get("generated_at") or "")
    if not run_results or _parsed(generated) < _parsed(started):
        return nodes
    which = command[0] if command else ""
    if which in _FULL_COVER and not any(a.split("=")[0] in _NARROWING for a in args):
        nodes = {uid: st for uid, st in nodes.items() if uid.split(".")[0] not in _FULL_COVER[which]}
    ran = {str(r.get("unique_id")): str(r.get("status")) for r in run_results.get("results") or []}
    nodes.update(ran)
    rebuilt = {uid for uid, st in ran.items() if st == "success" and not uid.startswith(("test.", "unit_test."))}
    for uid, node in ((manifest or {}).get("nodes") or {}).items():
        depends = set((node.get("depends_on") or {}).get("nodes") or [])
        if uid.startswith("test.") and uid not in ran and uid in nodes and depends & rebuilt:
            nodes[uid] = "stale"
    return nodes


def _parsed(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def refuse_rebuilding_live(ws: Workspace, commit: str, context: str, command: list[str]) -> None:
    """A writing dbt command on the live build would replace the tables its live views read.

    On PostgreSQL dbt drops them with CASCADE, and the live views with them;
    on DuckDB readers would see half-rebuilt tables. Known from this machine's
    notes of what is live (`dot-tasks live` refreshes them from the warehouse).
    """
    from .dbt.guard import WRITING_COMMANDS
    from .deploy import live_marks  # .dot/live only: no warehouse, no dbt import

    mark = live_marks(ws).get((commit, context))
    if mark in ("live", "live?") and command and command[0] in WRITING_COMMANDS:
        raise DotError(rebuilding_live_refusal(commit, context, "live" if mark == "live" else "maybe live"))


def rebuilding_live_refusal(commit: str, context: str, state: str = "live") -> str:
    return (
        f"{context}@{commit[:12]} is {state}: rebuilding it would replace "
        "the tables its live views read (dbt's CASCADE drops those views on PostgreSQL). Build another commit "
        f"and `dot-tasks promote {context}@<it>`, or pass --rebuild-live to rebuild this one and promote it "
        "again in the same command"
    )


def build(
    ws: Workspace,
    commit: str,
    context: str | None,
    *,
    command: list[str],
    args: list[str],
    install_deps: bool = True,
    check_isolation: bool = True,
    ref: str | None = None,
    worktree_checked: bool = False,
    defer: Deferral | None = None,
    clone: bool = False,
    rebuild_live: bool = False,
) -> BuildResult:
    """Run dbt on the commit's worktree with the context's generated profile.

    `worktree_checked` spares a second `git status` when the caller has just
    made or verified the worktree (as `run` does). With `defer`, dbt builds
    what changed since the base (`state:modified+` unless `args` select) and
    reads every other ref from the base's relations; `clone` then fills the
    build's schemas with `dbt clone` of the rest.
    """
    from .dbt.client import failure, require_dbt, run_dbt
    from .dbt.guard import WRITING_COMMANDS, check_extra_args, selects_nodes
    from .dbt.protocol import DbtRequest

    require_dbt()
    given_args = list(args)
    check_extra_args(args, deferred=defer is not None)
    if clone and defer is None:
        raise DeferralError("--clone copies the unchanged nodes from a base: give it with --defer-to CTX@REF")
    if context is None:
        context = choose_context(ws, commit, None)[0].context
    if not rebuild_live:
        refuse_rebuilding_live(ws, commit, context, command)
    paths = ws.paths(commit) if worktree_checked else require_worktree(ws, commit)
    ctx = paths.context(context)
    if not ctx.profiles_yml.is_file():
        raise ProfileError(
            f"no generated profile for context {context!r} at {commit[:12]}: run "
            f"`dot-tasks profile --ref {commit[:12]} --context {context}` first (or `dot-tasks run`)"
        )
    profile_name, target, output = read_generated_profile(ctx.profiles_yml)
    adapter = str(output.get("type", ""))
    require_adapter(context, adapter)
    if defer is not None:
        if (defer.commit, defer.context) == (commit, context):
            raise DeferralError(f"{context}@{commit[:12]} cannot defer to itself: name another build with --defer-to")
        _check_same_warehouse(ws, defer, context, output)
        selection = [] if selects_nodes(args) else ["--select", "state:modified+"]
        args = ["--state", str(defer.state_dir), "--defer", *selection, *args]
    needs_deps = (
        install_deps
        and not paths.deps_marker.exists()
        and any(declares_packages(gitrepo.read_file_at(ws.repo, commit, ws.in_repo(name))) for name in PACKAGE_FILES)
    )
    request = DbtRequest(
        project_dir=str(paths.worktree_project_dir),
        profiles_dir=str(ctx.context_dir),
        target=target,
        target_path=str(ctx.target_dir),
        log_path=str(ctx.logs_dir),
        command=command,
        args=args,
        deps_lock=str(paths.commit_lock()) if needs_deps else None,
        deps_marker=str(paths.deps_marker) if needs_deps else None,
        lock_timeout=ws.settings.lock_timeout,
        check_isolation=check_isolation,
        adapter_type=adapter,
        expected_schema=str(output.get(schema_key(output)) or ""),
        then_command=["clone"] if clone else [],
        then_args=["--state", str(defer.state_dir)] if clone and defer else [],
        then_target_path=str(ctx.clone_target_dir) if clone else None,
    )
    if command[0] in WRITING_COMMANDS:
        request.registry = _registry_request(ws, commit, context, request, profile_name, defer)
        if request.registry and not rebuild_live:
            # This machine's notes may not know: another machine may have promoted
            # this commit. The guard asks the warehouse before dbt writes.
            request.registry["live_refusal"] = rebuilding_live_refusal(commit, context, "live (so says the warehouse)")
    record: dict[str, Any] = {
        "commit": commit,
        "context": context,
        "target": target,
        "ref": ref,
        "command": " ".join(command),
        "args": args,
        "status": "running",
        "started": _now(),
        "pid": os.getpid(),
        # The contract other rooms read (diff's default base, promote's refusal, clean's dependants).
        "deferred_to": defer.as_record() if defer else None,
        "partial": defer is not None,
        "cloned": False,
    }
    started = time.monotonic()
    schema = request.expected_schema
    with ExitStack() as locks:
        # The context's files, then its schema: contexts mapped to one target
        # share a schema and must not build into it at once.
        fds = [locks.enter_context(hold(paths.context_lock(context), f"the {context} build of {commit[:12]}", ws.settings.lock_timeout))]
        if defer is not None:
            # Shared with other builds reading the same base, exclusive of a rebuild
            # or a clean of it: the base cannot change or go while dbt reads it.
            # Taken before the schema and DuckDB locks, which a rebuild of the
            # base takes after its own (commit, context) lock: one order, no cycle.
            fds.append(
                locks.enter_context(
                    hold(
                        ws.paths(defer.commit).context_lock(defer.context),
                        f"the base {defer.context}@{defer.commit[:12]} (being rebuilt or cleaned)",
                        ws.settings.lock_timeout,
                        shared=True,
                    )
                )
            )
            _recheck_base(ws, defer)
        fds.append(locks.enter_context(hold(named_lock(ws, "schema", schema), f"the schema {schema}", ws.settings.lock_timeout)))
        fds.extend(locks.enter_context(warehouse_locks(ws, [output])))
        previous = read_json(ctx.record) or {}
        # Keep what earlier builds learned about schemas, so `clean` can drop them
        # all, and name the schema before dbt starts, in case this run is killed.
        record["schemas"] = previous.get("schemas", [])
        # The invocation before this one: `promote` accepts a `test` that follows a successful `run`.
        if previous.get("command"):
            record["previous"] = {k: previous.get(k) for k in ("command", "args", "status", "exit_code", "finished")}
        record["schema"] = schema if schema and not is_template(schema) else previous.get("schema")
        record["nodes"] = previous.get("nodes") or {}
        write_json_atomic(ctx.record, record)
        outcome = run_dbt(request, lock_fds=tuple(fds))
        error = None
        if outcome.registry_collision:
            # Nothing was built: the record goes back to what it was.
            write_json_atomic(ctx.record, previous) if previous else ctx.record.unlink(missing_ok=True)
        else:
            error = failure(outcome, request)
            if error and clone and adapter == "spark" and outcome.failed_command == "clone":
                # dbt-spark's clone is Delta's SHALLOW CLONE, refused for every other file format.
                error = DbtFailed(
                    f"{error}. On Spark, dbt clone copies only Delta tables (file_format: delta): "
                    "without Delta, build with --defer-to and no --clone",
                    error.exit_code,
                )
            record.update(
                status="failed" if error else "success",
                exit_code=error.exit_code if error else outcome.exit_code,
                finished=_now(),
                # A build that failed before dbt reported its schema keeps the one known before.
                schema=outcome.schema or record["schema"],
                # A failed build may still have made schemas: remember them for `clean`.
                schemas=sorted(set(record["schemas"]) | set(outcome.schemas)),
                adapter_type=outcome.adapter_type,
                dbt_version=outcome.dbt_version,
                adapter_version=outcome.adapter_version,
                cloned=bool(clone and outcome.then_succeeded),
            )
            if error:
                record["error"] = str(error)
            record["nodes"] = node_statuses(
                previous.get("nodes"),
                command,
                args,
                read_json(ctx.target_dir / "run_results.json"),
                read_json(ctx.target_dir / "manifest.json"),
                record["started"],
            )
            held = _held_elsewhere(output) if error else None
            if held is not None:
                # dbt could not open the file (a notebook took it after our check): the
                # build never started, so a good earlier record stays as it was.
                error = WarehouseError(f"{held}: close it there and rerun (the earlier build's record is kept)")
                record = previous if previous.get("status") == "success" else {**record, "error": str(error)}
            write_json_atomic(ctx.record, record)
    if outcome.registry_collision:
        # Another machine built another commit under this suffix: lengthen ours, and build again.
        _lengthen_suffix(ws, commit, str(outcome.registry_collision.get("commit") or ""), outcome.registry_collision)
        write_profile(ws, commit, context)
        return build(
            ws,
            commit,
            context,
            command=command,
            args=given_args,
            install_deps=install_deps,
            check_isolation=check_isolation,
            ref=ref,
            worktree_checked=True,
            defer=defer,
            clone=clone,
        )
    if error:
        raise error
    return BuildResult(
        commit,
        context,
        target,
        outcome.schema,
        outcome.exit_code,
        time.monotonic() - started,
        record["schemas"],
        record["deferred_to"],
        record["cloned"],
    )


def _held_elsewhere(output: Mapping[str, Any]) -> str | None:
    """'the DuckDB file X is open in another process (pid N: ...)', if one holds it now."""
    database = duckdb_file(output)
    pid = posix_lock_holder(database) if database is not None else None
    return None if pid is None else f"the DuckDB file {database} is open in another process ({describe_process(pid)})"


def _registry_request(
    ws: Workspace, commit: str, context: str, request: Any, profile_name: str, defer: Deferral | None
) -> dict[str, Any] | None:
    """What the build's child writes to the warehouse registry; None when the schema has no suffix to key on."""
    from .dbt.protocol import OpsTarget
    from .registry import build_event, live_base, registry_schema

    short = schema_suffix(ws, commit)
    schema = request.expected_schema
    base = live_base(schema, short) if schema and not is_template(schema) else None
    if base is None:
        return None
    ctx = ws.paths(commit).context(context)
    row = build_event(
        ws,
        commit=commit,
        short=short,
        context=context,
        build_schema=schema,
        command=" ".join(request.command),
        deferred_to=defer.as_record() if defer else None,
    )
    target = OpsTarget(str(ctx.context_dir), profile_name, request.target, str(ctx.logs_dir))
    return {
        "target": {f: getattr(target, f) for f in target.__dataclass_fields__},
        "schema": registry_schema(base),
        "live_schema": base,
        "row": row,
        "ops_target_path": str(ctx.context_dir / "registry-ops"),
    }


def _lengthen_suffix(ws: Workspace, commit: str, taken_by: str, holder: Mapping[str, Any]) -> str:
    """Give `commit` a suffix that `taken_by` (another machine's commit, in the registry) cannot share."""
    paths = ws.paths(commit)
    with hold(_suffix_lock(ws), "the schema-suffix registry", ws.settings.lock_timeout):
        record = read_json(paths.commit_record) or {}
        old = str(record.get("short") or _computed_suffix(ws, commit))
        length = len(old) + 1
        while taken_by.startswith(commit[:length]) or any(
            other != commit and other.startswith(commit[:length]) for other in built_commits(ws.project_dir)
        ):
            length += 1
        suffix = short_hash(commit, length)
        write_json_atomic(paths.commit_record, {**record, "commit": commit, "short": suffix, "created": record.get("created") or _now()})
    print(
        f"dot-tasks: the suffix {old} is taken in the warehouse by {taken_by[:12]} (built by "
        f"{holder.get('built_by') or '?'} on {holder.get('host') or '?'}): building {commit[:12]} as {suffix}",
        file=sys.stderr,
        flush=True,
    )
    return suffix


# --- deferral ------------------------------------------------------------------


@dataclass(frozen=True)
class Deferral:
    """A successful build of another commit, whose relations a partial build reads."""

    commit: str
    context: str
    schema: str
    #: The base's target directory: its manifest.json is dbt's --state.
    state_dir: Path

    def as_record(self) -> dict[str, str]:
        return {"commit": self.commit, "context": self.context, "schema": self.schema}


def _check_same_warehouse(ws: Workspace, base: Deferral, context: str, output: Mapping[str, Any]) -> None:
    """dbt resolves a deferred ref by name in the head's own connection: the base must be reachable there."""
    base_profile = ws.paths(base.commit).context(base.context).profiles_yml
    if not base_profile.is_file():
        return  # a base restored from a cache may carry only its target/ and build.json
    base_output = read_generated_profile(base_profile)[2]
    mine, theirs = (str(output.get("type", "")), duckdb_file(output)), (str(base_output.get("type", "")), duckdb_file(base_output))
    if mine != theirs:
        raise DeferralError(
            f"{context} and the base {base.context}@{base.commit[:12]} are in different warehouses "
            f"({mine[0]} {mine[1] or ''} vs {theirs[0]} {theirs[1] or ''}): defer to a context of the same one"
        )


def _recheck_base(ws: Workspace, base: Deferral) -> None:
    """The base, checked again once its lock is held: a rebuild may have failed in between."""
    record = read_json(ws.paths(base.commit).context(base.context).record) or {}
    if record.get("status") != "success" or record.get("schema") != base.schema:
        raise DeferralError(
            f"the base {base.context}@{base.commit[:12]} changed while this build waited for it "
            f"(status {record.get('status')}): rerun it with `dot-tasks run {base.context}@{base.commit[:12]}`"
        )


def parse_base_spec(spec: str) -> tuple[str | None, str]:
    try:
        return parse_spec(spec)
    except DotError as exc:
        raise DeferralError(f"--defer-to: {exc}") from None


def find_base(ws: Workspace, spec: str) -> tuple[Deferral | None, str, str, str]:
    """The base `spec` (CTX@REF) names: (its deferral if usable, commit, context, why not)."""
    context, ref = parse_base_spec(spec)
    commit = resolve(ws, ref)
    if context is None:
        context = choose_context(ws, commit, None)[0].context
    check_context_name(context)
    ctx = ws.paths(commit).context(context)
    record = read_json(ctx.record) or {}
    status = record.get("status")
    if not record:
        problem = "has not been built"
    elif status != "success":
        problem = f"did not succeed (status {status})"
    elif record.get("partial") and not record.get("cloned"):
        base = record.get("deferred_to") or {}
        problem = f"is itself partial (deferred to {base.get('context')}@{str(base.get('commit'))[:12]} without --clone)"
    elif not (ctx.target_dir / "manifest.json").is_file():
        problem = f"has no {ctx.target_dir / 'manifest.json'}"
    elif not record.get("schema"):
        problem = "records no schema"
    else:
        return Deferral(commit, context, str(record["schema"]), ctx.target_dir), commit, context, ""
    return None, commit, context, problem


@dataclass(frozen=True)
class RunOptions:
    """What `run` was asked to do; `build` shares the deferral part."""

    ref: str
    context: str | None = None
    command: list[str] = field(default_factory=lambda: ["build"])
    args: list[str] = field(default_factory=list)
    install_deps: bool = True
    check_isolation: bool = True
    #: `CTX@REF` of a successful build to defer to, or None for a full build.
    defer_to: str | None = None
    #: Build the base first when it is missing or did not succeed.
    build_base: bool = False
    clone: bool = False
    #: Rebuild a commit that is live, then promote it again.
    rebuild_live: bool = False


def check_options(options: RunOptions) -> None:
    """Refuse flags that cannot work together, before anything is built or checked out."""
    from .dbt.guard import check_extra_args  # no dbt import: the rules are pure

    check_extra_args(options.args, deferred=options.defer_to is not None)
    if options.defer_to is None:
        for flag, given in (("--build-base", options.build_base), ("--clone", options.clone)):
            if given:
                raise DeferralError(f"{flag} needs a base: give it with --defer-to CTX@REF")


def ensure_base(ws: Workspace, options: RunOptions, say: Callable[[str], None]) -> Deferral | None:
    """The build `options.defer_to` names, built first with `build_base`; None when not deferring."""
    check_options(options)
    if options.defer_to is None:
        return None
    base, commit, context, problem = find_base(ws, options.defer_to)
    if base is not None:
        return base
    command = f"dot-tasks run {context}@{commit[:12]}"
    if not options.build_base:
        raise DeferralError(f"the base {context}@{commit[:12]} {problem}: build it with `{command}` first, or add --build-base")
    say(f"base     {context}@{commit[:12]} {problem}: building it first")
    base_options = RunOptions(ref=commit, context=context, install_deps=options.install_deps, check_isolation=options.check_isolation)
    run_steps(ws, base_options, {}, lambda line: say(f"base: {line}"))
    base, commit, context, problem = find_base(ws, options.defer_to)
    if base is None:  # pragma: no cover - run_steps raises when the build fails
        raise DeferralError(f"the base {context}@{commit[:12]} {problem} after `{command}`")
    return base


def preflight(ws: Workspace, commit: str, context: str | None) -> None:
    """What a build needs and can be checked without writing anything: the context and its adapter."""
    from .dbt.client import require_dbt  # no dbt import here: dbt runs in a child

    require_dbt()
    choice, chosen = choose_context(ws, commit, context)
    require_adapter(choice.context, str(chosen.output.get("type", "")))


def require_adapter(context: str, adapter: str) -> None:
    from .dbt.client import adapter_available

    if adapter and not is_template(adapter) and not adapter_available(adapter):
        raise ProfileError(f"context {context!r} uses the {adapter} adapter, which is not installed: pip install dbt-{adapter}")


def run_steps(ws: Workspace, options: RunOptions, summary: dict[str, Any], say: Callable[[str], None]) -> BuildResult:
    """resolve → (base) → worktree → profile → build, filling `summary` as each step lands.

    The base is checked (or built) before the head's worktree is made, so a
    missing base leaves nothing half-made behind.
    """
    summary["project_dir"] = str(ws.project_dir)

    def step(name: str, action: Callable[[], Any], describe: Callable[[Any], str]) -> Any:
        started = time.monotonic()
        value = action()
        say(f"{name:<8} {describe(value)} ({time.monotonic() - started:.2f}s)")
        return value

    check_options(options)
    ref = options.ref
    commit = summary["commit"] = step("resolve", lambda: resolve(ws, ref), lambda v: f"{ref} → {v}")
    # Everything that can be checked is, before the first write: an unknown
    # context or a missing adapter must not leave a half-made build in `list`.
    preflight(ws, commit, options.context)
    base = ensure_base(ws, options, say)
    if base is not None:
        summary["deferred_to"] = base.as_record()
        say(f"defer    to {base.context}@{base.commit[:12]} (schema {base.schema})")
    wt = step("worktree", lambda: ensure_worktree(ws, commit), lambda v: f"{'reused' if v.reused else 'created'} {v.path}")
    summary.update(worktree=str(wt.path), project_path=str(wt.project_path))
    prof = step(
        "profile",
        lambda: write_profile(ws, commit, options.context, ref=ref),
        lambda v: f"{v.context} → schema {v.schema} ({v.profiles_dir / 'profiles.yml'})",
    )
    if prof.warning:
        say(prof.warning)
    ctx = ws.paths(commit).context(prof.context)
    summary.update(
        short=prof.short,
        context=prof.context,
        target=prof.target,
        schema=prof.schema,
        profiles_dir=str(prof.profiles_dir),
        target_path=str(ctx.target_dir),
        log_path=str(ctx.logs_dir),
    )
    started = time.monotonic()
    what = " ".join(options.command) + (" + clone" if options.clone else "")
    # dbt is silent for the seconds it takes to import: say at once what is starting.
    say(f"build    starting dbt {what} (dbt takes a few seconds to start)")
    try:
        result = build(
            ws,
            commit,
            prof.context,
            command=options.command,
            args=options.args,
            install_deps=options.install_deps,
            check_isolation=options.check_isolation,
            ref=ref,
            worktree_checked=True,
            defer=base,
            clone=options.clone,
            rebuild_live=options.rebuild_live,
        )
    except DotError:
        summary["seconds"] = round(time.monotonic() - started, 3)
        say(f"build    failed ({summary['seconds']:.2f}s)")
        raise
    summary.update(
        status="success",
        exit_code=0,
        seconds=round(result.seconds, 3),
        schema=result.schema or prof.schema,
        schemas=result.schemas,
        partial=base is not None,
        cloned=result.cloned,
    )
    say(f"build    dbt {what} succeeded ({result.seconds:.2f}s)")
    return result
