"""An isolated build, end to end: resolve → (base) → worktree → profile → build.

Each step is a plain function over a `Workspace`, in the module named after
it (`workspace`, `worktrees`, `profile_step`, `build_step`, `deferral`), and
recomputes what it needs from (project dir, commit, context), so it can run
alone, be repeated, or follow another step in a shell script. This module
composes them into `run`, and is where the commands and the other rooms
import the steps from (`builds.resolve`, `builds.build`, ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .build_step import BuildResult, build, rebuilding_live_refusal, refuse_rebuilding_live
from .deferral import BaseLookup, Deferral, find_base, parse_base_spec
from .errors import DeferralError, DotError
from .node_results import node_statuses
from .profile_step import (
    ContextChoice,
    GeneratedProfile,
    ProfileResult,
    choose_context,
    context_name,
    ensure_generated_profile,
    preflight,
    read_generated_profile,
    require_adapter,
    write_profile,
)
from .warehouse_locks import named_lock, warehouse_locks
from .workspace import Settings, Workspace, built_commits, claim_suffix, resolve, schema_suffix
from .worktrees import WorktreeResult, ensure_worktree, local_package_dirs, require_worktree, sparse_dirs

#: The old name of `ensure_generated_profile`, for callers not yet moved (diffing, deploy).
generated_profile = ensure_generated_profile

__all__ = [
    "BaseLookup",
    "BuildResult",
    "build_with_options",
    "ContextChoice",
    "Deferral",
    "GeneratedProfile",
    "ProfileResult",
    "RunOptions",
    "Settings",
    "Workspace",
    "WorktreeResult",
    "build",
    "built_commits",
    "check_options",
    "choose_context",
    "claim_suffix",
    "context_name",
    "ensure_base",
    "ensure_generated_profile",
    "ensure_worktree",
    "find_base",
    "generated_profile",
    "local_package_dirs",
    "named_lock",
    "node_statuses",
    "parse_base_spec",
    "preflight",
    "read_generated_profile",
    "rebuilding_live_refusal",
    "refuse_rebuilding_live",
    "require_adapter",
    "require_worktree",
    "resolve",
    "run_steps",
    "schema_suffix",
    "sparse_dirs",
    "warehouse_locks",
    "write_profile",
]

T = TypeVar("T")


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
    from .dbt.guard import check_extra_args  # no dbt import: the module imports dbt in its child only

    check_extra_args(options.args, deferred=options.defer_to is not None)
    if options.defer_to is None:
        for flag, given in (("--build-base", options.build_base), ("--clone", options.clone)):
            if given:
                raise DeferralError(f"{flag} needs a base: give it with --defer-to CTX@REF")


def ensure_base(ws: Workspace, options: RunOptions, say: Callable[[str], None]) -> Deferral | None:
    """The build `options.defer_to` names, built first with `build_base`; None when not deferring."""
    check_options(options)
    return _ensure_checked_base(ws, options, say)


def build_with_options(
    ws: Workspace,
    commit: str,
    context: str | None,
    options: RunOptions,
    base: Deferral | None,
    *,
    worktree_checked: bool = False,
) -> BuildResult:
    """The build step with options `check_options` has passed (through `ensure_base`): the one
    place a `RunOptions` becomes `build()`'s arguments, for `run` and for the `build` task."""
    return build(
        ws,
        commit,
        context,
        command=options.command,
        args=options.args,
        install_deps=options.install_deps,
        check_isolation=options.check_isolation,
        ref=options.ref,
        worktree_checked=worktree_checked,
        defer=base,
        clone=options.clone,
        rebuild_live=options.rebuild_live,
        args_checked=True,
    )


def _ensure_checked_base(ws: Workspace, options: RunOptions, say: Callable[[str], None]) -> Deferral | None:
    """`ensure_base` for options `check_options` has passed."""
    if options.defer_to is None:
        return None
    found = find_base(ws, options.defer_to)
    if found.base is not None:
        return found.base
    label = f"{found.context}@{found.commit[:12]}"
    command = f"dot-tasks run {label}"
    if not options.build_base:
        raise DeferralError(f"the base {label} {found.problem}: build it with `{command}` first, or add --build-base")
    say(f"base     {label} {found.problem}: building it first")
    base_options = RunOptions(
        ref=found.commit, context=found.context, install_deps=options.install_deps, check_isolation=options.check_isolation
    )
    run_steps(ws, base_options, {}, lambda line: say(f"base: {line}"))
    found = find_base(ws, options.defer_to)
    if found.base is None:  # pragma: no cover - run_steps raises when the build fails
        raise DeferralError(f"the base {found.context}@{found.commit[:12]} {found.problem} after `{command}`")
    return found.base


def run_steps(ws: Workspace, options: RunOptions, summary: dict[str, Any], say: Callable[[str], None]) -> BuildResult:
    """resolve → (base) → worktree → profile → build, filling `summary` as each step lands.

    The base is checked (or built) before the head's worktree is made, so a
    missing base leaves nothing half-made behind. The options are checked
    once, here, before anything else.
    """
    summary["project_dir"] = str(ws.project_dir)

    def step(name: str, action: Callable[[], T], describe: Callable[[T], str]) -> T:
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
    base = _ensure_checked_base(ws, options, say)
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
    _summarise_profile(ws, commit, prof, summary)
    return _build_step(ws, options, commit, prof, base, summary, say)


def _summarise_profile(ws: Workspace, commit: str, prof: ProfileResult, summary: dict[str, Any]) -> None:
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


def _build_step(
    ws: Workspace,
    options: RunOptions,
    commit: str,
    prof: ProfileResult,
    base: Deferral | None,
    summary: dict[str, Any],
    say: Callable[[str], None],
) -> BuildResult:
    """The last step of `run`: dbt, timed and summarised."""
    started = time.monotonic()
    what = " ".join(options.command) + (" + clone" if options.clone else "")
    # dbt is silent for the seconds it takes to import: say at once what is starting.
    say(f"build    starting dbt {what} (dbt takes a few seconds to start)")
    try:
        result = build_with_options(ws, commit, prof.context, options, base, worktree_checked=True)
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
