"""Looking after builds once made: `list` and `clean`."""

from __future__ import annotations

import json

from invoke import Context

from ..errors import DotError
from .common import builds, dot_task, lifecycle, progress, workspace

H_WAREHOUSE = "Ask the warehouse: every build its registry holds, from every machine and CI runner (one dbt start per warehouse)."


@dot_task(
    name="list",
    help={
        "json": "Print one JSON object per build on stdout, one per line.",
        "warehouse": H_WAREHOUSE,
        "context": "With --warehouse: only this context's builds.",
    },
)
def list_(c: Context, json_: bool = False, warehouse: bool = False, context: str | None = None, project_dir: str | None = None) -> None:
    """List isolated builds: one row per (commit, context), with damaged builds flagged."""
    ws = workspace(c, project_dir)
    if warehouse:
        from .. import registry

        found = registry.read(ws, context, progress)
        if json_:
            for build in found:
                print(json.dumps(build.as_dict(), sort_keys=True))
        else:
            print(registry.format_table(found))
        return
    rows = lifecycle.list_builds(ws)
    if json_:
        for row in rows:
            print(json.dumps(row.as_dict(), sort_keys=True))
        return
    print(lifecycle.format_table(rows))


@dot_task(
    help={
        "ref": "Clean the build of this ref's commit.",
        "context": "Only this context's files and schemas (the worktree stays).",
        "all": "Clean every build.",
        "keep": "Keep the newest N builds of each context; clean the older ones.",
        "older_than": "Clean builds last built before this age, e.g. 36h, 7d, 2w.",
        "unreachable": "Clean builds of commits no branch or tag reaches any more.",
        "dry_run": "Print what would be cleaned and change nothing.",
        "keep_schemas": "Leave the warehouse alone: remove files and worktrees only.",
        "warehouse": (
            "Select among every build the warehouse registry holds, whichever machine made it; drop their "
            "schemas and registry rows (and this machine's files of them)."
        ),
        "force": (
            "Also clean a build that is live, that `rollback` would return to, or that another build defers to "
            "or cloned from; says which live views or builds it breaks."
        ),
    },
)
def clean(
    c: Context,
    ref: str | None = None,
    context: str | None = None,
    all_: bool = False,
    keep: int | None = None,
    older_than: str | None = None,
    unreachable: bool = False,
    dry_run: bool = False,
    keep_schemas: bool = False,
    force: bool = False,
    warehouse: bool = False,
    project_dir: str | None = None,
) -> None:
    """Remove builds: their warehouse schemas, worktree registration and files."""
    ws = workspace(c, project_dir)
    selection = lifecycle.Selection(
        commit=builds.resolve(ws, ref) if ref else None,
        context=context,
        everything=all_,
        keep=lifecycle.parse_count(keep) if keep is not None else None,
        older_than=lifecycle.parse_age(older_than) if older_than else None,
        unreachable=unreachable,
    )
    if warehouse:
        from .. import warehouse_clean

        if keep_schemas:
            raise DotError("--warehouse cleans what the warehouse holds: it cannot --keep-schemas")
        lifecycle.check_selection(selection)
        warehouse_clean.clean_warehouse(ws, selection, dry_run=dry_run, force=force, say=print, progress=progress)
        return
    lifecycle.clean(ws, selection, dry_run=dry_run, drop_schemas=not keep_schemas, say=print, progress=progress, force=force)
