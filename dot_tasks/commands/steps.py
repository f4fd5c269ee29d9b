"""The ADR's steps, each runnable alone, composed into `run`."""

from __future__ import annotations

import json
from typing import Any

from invoke import Context

from ..errors import DotError
from ..records import live_marks
from .common import builds, collect_dbt_args, dot_task, merge_spec, parse_dbt_command, progress, warn_if_shared, workspace
from .params import H_BUILD


@dot_task(help={"short": "Print the schema suffix (the short hash) instead of the full hash."})
def resolve(c: Context, ref: str = "HEAD", short: bool = False, project_dir: str | None = None) -> None:
    """Print the full commit hash a ref names (or, with --short, its schema suffix)."""
    ws = workspace(c, project_dir)
    commit = builds.resolve(ws, ref)
    print(builds.schema_suffix(ws, commit) if short else commit)


@dot_task()
def worktree(c: Context, ref: str = "HEAD", project_dir: str | None = None) -> None:
    """Check the commit out at .dot/isolated_builds/<hash>/worktree and print that path."""
    ws = workspace(c, project_dir)
    result = builds.ensure_worktree(ws, builds.resolve(ws, ref))
    print(result.path)


@dot_task()
def profile(
    c: Context, ref: str = "HEAD", context: str | None = None, project_dir: str | None = None, profiles_dir: str | None = None
) -> None:
    """Write the context's profiles.yml for <schema>_<short> and print its directory."""
    ws = workspace(c, project_dir, profiles_dir)
    commit = builds.resolve(ws, ref)
    result = builds.write_profile(ws, commit, context, ref=ref)
    if result.warning:
        progress(result.warning)
    print(result.profiles_dir)


@dot_task(help=H_BUILD)
def build(
    c: Context,
    ref: str = "HEAD",
    context: str | None = None,
    command: str = "build",
    select: str | None = None,
    exclude: str | None = None,
    deps: bool = True,
    allow_shared_schemas: bool = False,
    defer_to: str | None = None,
    build_base: bool = False,
    clone: bool = False,
    rebuild_live: bool = False,
    project_dir: str | None = None,
    profiles_dir: str | None = None,
) -> None:
    """Run dbt on the commit's worktree with its generated profile; extra dbt flags go after --."""
    ws = workspace(c, project_dir, profiles_dir)
    commit = builds.resolve(ws, ref)
    was_live = rebuild_live and live_for(ws, commit, context)
    options = run_options(
        c,
        ref=ref,
        context=context,
        command=command,
        select=select,
        exclude=exclude,
        deps=deps,
        allow_shared_schemas=allow_shared_schemas,
        defer_to=defer_to,
        build_base=build_base,
        clone=clone,
        rebuild_live=rebuild_live,
    )
    base = builds.ensure_base(ws, options, progress)
    warn_if_shared(allow_shared_schemas)
    result = builds.build_with_options(ws, commit, context, options, base)
    if was_live:
        promote_again(ws, commit, result.context)
    print(ws.paths(commit).context(result.context).target_dir)


@dot_task(help={"json": "Print the summary as one JSON object on stdout.", **H_BUILD})
def run(
    c: Context,
    spec: str | None = None,
    ref: str | None = None,
    context: str | None = None,
    command: str = "build",
    select: str | None = None,
    exclude: str | None = None,
    deps: bool = True,
    allow_shared_schemas: bool = False,
    defer_to: str | None = None,
    build_base: bool = False,
    clone: bool = False,
    rebuild_live: bool = False,
    json_: bool = False,
    project_dir: str | None = None,
    profiles_dir: str | None = None,
) -> None:
    """Resolve, check out, write the profile and build: one isolated build, end to end."""
    context, ref = merge_spec(spec, context, ref)
    ref = ref or "HEAD"
    summary: dict[str, Any] = {"ref": ref, "command": command, "status": "failed"}
    try:
        options = run_options(
            c,
            ref=ref,
            context=context,
            command=command,
            select=select,
            exclude=exclude,
            deps=deps,
            allow_shared_schemas=allow_shared_schemas,
            defer_to=defer_to,
            build_base=build_base,
            clone=clone,
            rebuild_live=rebuild_live,
        )
        warn_if_shared(allow_shared_schemas)
        ws = workspace(c, project_dir, profiles_dir)
        was_live = rebuild_live and live_for(ws, builds.resolve(ws, ref), context)
        result = builds.run_steps(ws, options, summary, progress)
        if was_live:
            promote_again(ws, result.commit, result.context)
    except DotError as exc:
        summary.update(exit_code=exc.exit_code, error=str(exc))
        # A script asked for JSON gets it whatever failed; a person gets the
        # summary once there is a build to summarise.
        if json_ or "context" in summary:
            _print_summary(summary, json_)
        raise
    _print_summary(summary, json_)


def run_options(
    c: Context,
    *,
    ref: str,
    context: str | None,
    command: str,
    select: str | None,
    exclude: str | None,
    deps: bool,
    allow_shared_schemas: bool,
    defer_to: str | None,
    build_base: bool,
    clone: bool,
    rebuild_live: bool,
) -> builds.RunOptions:
    """The build flags of `build` and `run` (H_BUILD) as the options `builds` takes; refuses a flag where `--command` belongs."""
    return builds.RunOptions(
        ref=ref,
        context=context,
        command=parse_dbt_command(command),
        args=collect_dbt_args(c, select, exclude),
        install_deps=deps,
        check_isolation=not allow_shared_schemas,
        defer_to=defer_to,
        build_base=build_base,
        clone=clone,
        rebuild_live=rebuild_live,
    )


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, sort_keys=True))
        return
    rows = [
        ("commit", f"{summary.get('commit', '-')} ({summary['ref']})"),
        ("context", f"{summary['context']} (target {summary['target']})"),
        ("schema", summary["schema"]),
        ("worktree", summary["worktree"]),
        ("profiles", summary["profiles_dir"]),
        ("target", summary["target_path"]),
        ("logs", summary["log_path"]),
        ("status", f"{summary['status']} (dbt {summary['command']}, exit {summary['exit_code']}, {summary.get('seconds', 0):.1f}s)"),
    ]
    base = summary.get("deferred_to")
    if base:
        rows.insert(
            3,
            (
                "deferred",
                f"to {base['context']}@{base['commit'][:12]} ({base['schema']})"
                + (", the rest cloned" if summary.get("cloned") else ", partial"),
            ),
        )
    print("\n".join(f"{label:<9} {value}" for label, value in rows))


def live_for(ws: builds.Workspace, commit: str, context: str | None) -> bool:
    """Whether the commit's build is live (or may be) for the context, as `--rebuild-live` requires."""
    chosen = context or builds.context_name(ws, commit, None)
    return live_marks(ws.project_dir).get((commit, chosen)) in ("live", "live?")


def promote_again(ws: builds.Workspace, commit: str, context: str) -> None:
    """--rebuild-live: the rebuild replaced the tables the live views read; switch them to it again."""
    from .. import deploy

    progress(f"--rebuild-live: promoting {context}@{commit[:12]} again")
    deploy.promote(ws, deploy.PromoteOptions(ref=commit, context=context), progress)
