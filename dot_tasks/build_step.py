"""The build step: dbt on the commit's worktree, with the context's generated profile.

The build is recorded `running` before dbt starts, under the locks that keep
two builds (or a build and a clean) of one schema or one DuckDB file apart,
and recorded again when dbt returns (`records.BuildRecord`). With a deferral,
dbt builds only what changed since the base and reads the rest from it.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import gitrepo
from .adapters import schema_key
from .deferral import Deferral, check_same_warehouse, recheck_base
from .errors import DbtFailed, DeferralError, DotError, ProfileError, WarehouseError
from .files import read_json
from .layout import BuildPaths, ContextPaths
from .locks import hold
from .naming import is_template
from .node_results import node_statuses
from .profile_step import GeneratedProfile, context_name, read_generated_profile, require_adapter, write_profile
from .project import PACKAGE_FILES, declares_packages
from .records import BuildRecord, live_marks
from .warehouse_locks import held_elsewhere, named_lock, warehouse_locks
from .workspace import Workspace, lengthen_suffix, now, schema_suffix
from .worktrees import require_worktree

if TYPE_CHECKING:
    from .dbt.protocol import DbtOutcome, DbtRequest


@dataclass
class BuildResult:
    """What a successful build made: its schema(s), how long dbt took, and its base if it deferred."""

    commit: str
    context: str
    target: str
    schema: str | None
    exit_code: int
    seconds: float
    schemas: list[str] = field(default_factory=list)
    deferred_to: dict[str, str] | None = None
    cloned: bool = False


def refuse_rebuilding_live(ws: Workspace, commit: str, context: str, command: list[str]) -> None:
    """A writing dbt command on the live build would replace the tables its live views read.

    On PostgreSQL dbt drops them with CASCADE, and the live views with them;
    on DuckDB readers would see half-rebuilt tables. Known from this machine's
    notes of what is live (`dot-tasks live` refreshes them from the warehouse).
    """
    from .dbt.guard import WRITING_COMMANDS  # no dbt import: the module imports dbt in its child only

    mark = live_marks(ws.project_dir).get((commit, context))
    if mark in ("live", "live?") and command and command[0] in WRITING_COMMANDS:
        raise DotError(rebuilding_live_refusal(commit, context, "live" if mark == "live" else "maybe live"))


def rebuilding_live_refusal(commit: str, context: str, state: str = "live") -> str:
    """Why a live build is not rebuilt, and the two ways on."""
    return (
        f"{context}@{commit[:12]} is {state}: rebuilding it would replace "
        "the tables its live views read (dbt's CASCADE drops those views on PostgreSQL). Build another commit "
        f"and `dot-tasks promote {context}@<it>`, or pass --rebuild-live to rebuild this one and promote it "
        "again in the same command"
    )


@dataclass(frozen=True)
class _BuildPlan:
    """Everything about one build that is decided before its locks are taken."""

    commit: str
    context: str
    paths: BuildPaths
    ctx: ContextPaths
    profile: GeneratedProfile
    request: DbtRequest
    defer: Deferral | None
    clone: bool

    @property
    def adapter(self) -> str:
        """The dbt adapter of the build's output (`duckdb`, `postgres`, `spark`, ...)."""
        return str(self.profile.output.get("type", ""))


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
    args_checked: bool = False,
) -> BuildResult:
    """Run dbt on the commit's worktree with the context's generated profile.

    `worktree_checked` spares a second `git status` when the caller has just
    made or verified the worktree (as `run` does), and `args_checked` a second
    check of the flags (`builds.check_options`). With `defer`, dbt builds
    what changed since the base (`state:modified+` unless `args` select) and
    reads every other ref from the base's relations; `clone` then fills the
    build's schemas with `dbt clone` of the rest.
    """
    from .dbt.client import require_dbt
    from .dbt.guard import check_extra_args

    require_dbt()
    if not args_checked:
        check_extra_args(args, deferred=defer is not None)
    if clone and defer is None:
        raise DeferralError("--clone copies the unchanged nodes from a base: give it with --defer-to CTX@REF")
    if context is None:
        context = context_name(ws, commit, None)
    asked = _Asked(install_deps, check_isolation, worktree_checked, defer, clone, rebuild_live)
    while True:
        if not asked.rebuild_live:
            refuse_rebuilding_live(ws, commit, context, command)
        plan = _plan(ws, commit, context, command, args, asked)
        started = time.monotonic()
        outcome, record, error = _run_locked(ws, plan, _running_record(plan, ref))
        collision = outcome.registry_collision
        if not collision:
            break
        # Another machine built another commit under this suffix: lengthen ours and build
        # again (the worktree is known good; --rebuild-live is not carried over, as it never was).
        lengthen_suffix(ws, commit, str(collision.get("commit") or ""), collision)
        write_profile(ws, commit, context)
        asked = replace(asked, worktree_checked=True, rebuild_live=False)
    if error:
        raise error
    deferred_to = record.deferred_to.to_json() if record.deferred_to else None
    seconds = time.monotonic() - started
    return BuildResult(
        commit, context, plan.profile.target, outcome.schema, outcome.exit_code, seconds, list(record.schemas), deferred_to, record.cloned
    )


def _running_record(plan: _BuildPlan, ref: str | None) -> BuildRecord:
    """The record written before dbt starts, so a killed build is still known."""
    return BuildRecord(
        commit=plan.commit,
        context=plan.context,
        target=plan.profile.target,
        ref=ref,
        command=" ".join(plan.request.command),
        args=tuple(plan.request.args),
        status="running",
        started=now(),
        pid=os.getpid(),
        # The contract other rooms read (diff's default base, promote's refusal, clean's dependants).
        deferred_to=plan.defer.deferred_to() if plan.defer else None,
        partial=plan.defer is not None,
        cloned=False,
    ).at(plan.ctx)


@dataclass(frozen=True)
class _Asked:
    """What the caller of `build` asked for, beyond the commit, the context and dbt's command line."""

    install_deps: bool
    check_isolation: bool
    worktree_checked: bool
    defer: Deferral | None
    clone: bool
    rebuild_live: bool


def _plan(ws: Workspace, commit: str, context: str, command: list[str], args: list[str], asked: _Asked) -> _BuildPlan:
    """The checks a build passes before it locks anything, and the request for the dbt child."""
    defer, clone = asked.defer, asked.clone
    from .dbt.guard import WRITING_COMMANDS, selects_nodes
    from .dbt.protocol import DbtRequest

    paths = ws.paths(commit) if asked.worktree_checked else require_worktree(ws, commit)
    ctx = paths.context(context)
    if not ctx.profiles_yml.is_file():
        raise ProfileError(
            f"no generated profile for context {context!r} at {commit[:12]}: run "
            f"`dot-tasks profile --ref {commit[:12]} --context {context}` first (or `dot-tasks run`)"
        )
    profile = read_generated_profile(ctx.profiles_yml)
    output = profile.output
    adapter = str(output.get("type", ""))
    require_adapter(context, adapter)
    if defer is not None:
        if (defer.commit, defer.context) == (commit, context):
            raise DeferralError(f"{context}@{commit[:12]} cannot defer to itself: name another build with --defer-to")
        check_same_warehouse(ws, defer, context, output)
        selection = [] if selects_nodes(args) else ["--select", "state:modified+"]
        args = ["--state", str(defer.state_dir), "--defer", *selection, *args]
    needs_deps = asked.install_deps and _needs_deps(ws, paths, commit)
    request = DbtRequest(
        project_dir=str(paths.worktree_project_dir),
        profiles_dir=str(ctx.context_dir),
        target=profile.target,
        target_path=str(ctx.target_dir),
        log_path=str(ctx.logs_dir),
        command=command,
        args=args,
        deps_lock=str(paths.commit_lock()) if needs_deps else None,
        deps_marker=str(paths.deps_marker) if needs_deps else None,
        lock_timeout=ws.settings.lock_timeout,
        check_isolation=asked.check_isolation,
        adapter_type=adapter,
        expected_schema=str(output.get(schema_key(output)) or ""),
        then_command=["clone"] if clone else [],
        then_args=["--state", str(defer.state_dir)] if clone and defer else [],
        then_target_path=str(ctx.clone_target_dir) if clone else None,
    )
    if command[0] in WRITING_COMMANDS:
        request.registry = _registry_request(ws, commit, context, request, defer, asked.rebuild_live)
    return _BuildPlan(commit, context, paths, ctx, profile, request, defer, clone)


def _run_locked(ws: Workspace, plan: _BuildPlan, record: BuildRecord) -> tuple[DbtOutcome, BuildRecord, DotError | None]:
    """Take the build's locks, record it running, run dbt, record how it ended."""
    from .dbt.client import run_dbt

    with ExitStack() as locks:
        fds = _take_locks(locks, ws, plan)
        previous = BuildRecord.load(plan.ctx)
        schema = plan.request.expected_schema
        # Keep what earlier builds learned about schemas, so `clean` can drop them
        # all, and name the schema before dbt starts, in case this run is killed.
        record = record.change(
            schemas=previous.schemas if previous else (),
            # The invocation before this one: `promote` accepts a `test` that follows a successful `run`.
            previous=previous.as_previous() if previous and previous.command else None,
            schema=schema if schema and not is_template(schema) else (previous.schema if previous else None),
            nodes=(previous.nodes if previous else None) or {},
        )
        record.save()
        outcome = run_dbt(plan.request, lock_fds=tuple(fds))
        if outcome.registry_collision:
            # Nothing was built: the record goes back to what it was.
            previous.save() if previous else plan.ctx.record.unlink(missing_ok=True)
            return outcome, record, None
        record, error = _finished(plan, record, previous, outcome)
        record.save()
    return outcome, record, error


def _take_locks(locks: ExitStack, ws: Workspace, plan: _BuildPlan) -> list[int]:
    """The build's locks, in the one order every holder takes them; their fds, for the dbt child."""
    commit, context, defer, schema = plan.commit, plan.context, plan.defer, plan.request.expected_schema
    # The context's files, then its schema: contexts mapped to one target
    # share a schema and must not build into it at once.
    fds = [locks.enter_context(hold(plan.paths.context_lock(context), f"the {context} build of {commit[:12]}", ws.settings.lock_timeout))]
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
        recheck_base(ws, defer)
    fds.append(locks.enter_context(hold(named_lock(ws, "schema", schema), f"the schema {schema}", ws.settings.lock_timeout)))
    fds.extend(locks.enter_context(warehouse_locks(ws, [plan.profile.output])))
    return fds


def _finished(
    plan: _BuildPlan, record: BuildRecord, previous: BuildRecord | None, outcome: DbtOutcome
) -> tuple[BuildRecord, DotError | None]:
    """The record of a build dbt has returned from, and the error to raise if it failed."""
    from .dbt.client import failure

    error = failure(outcome, plan.request)
    if error and plan.clone and plan.adapter == "spark" and outcome.failed_command == "clone":
        # dbt-spark's clone is Delta's SHALLOW CLONE, refused for every other file format.
        error = DbtFailed(
            f"{error}. On Spark, dbt clone copies only Delta tables (file_format: delta): "
            "without Delta, build with --defer-to and no --clone",
            error.exit_code,
        )
    record = record.change(
        status="failed" if error else "success",
        exit_code=error.exit_code if error else outcome.exit_code,
        finished=now(),
        # A build that failed before dbt reported its schema keeps the one known before.
        schema=outcome.schema or record.schema,
        # A failed build may still have made schemas: remember them for `clean`.
        schemas=tuple(sorted(set(record.schemas) | set(outcome.schemas))),
        adapter_type=outcome.adapter_type,
        dbt_version=outcome.dbt_version,
        adapter_version=outcome.adapter_version,
        cloned=bool(plan.clone and outcome.then_succeeded),
        error=str(error) if error else None,
        nodes=node_statuses(
            previous.nodes if previous else None,
            plan.request.command,
            plan.request.args,
            read_json(plan.ctx.target_dir / "run_results.json"),
            read_json(plan.ctx.target_dir / "manifest.json"),
            record.started,
        ),
    )
    held = held_elsewhere(plan.profile.output) if error else None
    if held is not None:
        # dbt could not open the file (a notebook took it after our check): the
        # build never started, so a good earlier record stays as it was.
        error = WarehouseError(f"{held}: close it there and rerun (the earlier build's record is kept)")
        record = previous if previous and previous.succeeded else record.change(error=str(error))
    return record, error


def _needs_deps(ws: Workspace, paths: BuildPaths, commit: str) -> bool:
    """`dbt deps` has not run in this checkout, and the commit declares packages."""
    return not paths.deps_marker.exists() and any(
        declares_packages(gitrepo.read_file_at(ws.repo, commit, ws.in_repo(name))) for name in PACKAGE_FILES
    )


def _registry_request(
    ws: Workspace, commit: str, context: str, request: DbtRequest, defer: Deferral | None, rebuild_live: bool
) -> dict[str, Any] | None:
    """What the build's child writes to the warehouse registry; None when the schema has no suffix to key on."""
    from .registry import build_event, live_base, registry_schema

    short = schema_suffix(ws, commit)
    schema = request.expected_schema
    base = live_base(schema, short) if schema and not is_template(schema) else None
    if base is None:
        return None
    row = build_event(
        ws,
        commit=commit,
        short=short,
        context=context,
        build_schema=schema,
        command=" ".join(request.command),
        deferred_to=defer.as_record() if defer else None,
    )
    registry: dict[str, Any] = {
        "schema": registry_schema(base),
        "live_schema": base,
        "row": row,
    }
    if not rebuild_live:
        # This machine's notes may not know: another machine may have promoted
        # this commit. The guard asks the warehouse before dbt writes.
        registry["live_refusal"] = rebuilding_live_refusal(commit, context, "live (so says the warehouse)")
    return registry
