"""Deploying a build: `promote`, `rollback`, `live` and `retire`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Context, Exit

from ..errors import DotError
from ..naming import parse_spec
from .common import deferred, dot_task, progress, workspace

if TYPE_CHECKING:
    from .. import deploy
else:
    deploy = deferred("dot_tasks.deploy")


def _print(result: deploy.SwitchResult, as_json: bool) -> None:
    print(result.to_json() if as_json else result.summary())


@dot_task(
    help={
        "allow_untested": "Promote even if the build did not pass its gate (warns; the history records it).",
        "replace_existing": "Replace live relations no promotion made (e.g. tables of a plain dbt build), in the same transaction.",
        "fail_on_warn": "Count a test that warned as a failure of the gate.",
    },
)
def promote(
    c: Context,
    spec: str | None = None,
    ref: str | None = None,
    context: str | None = None,
    allow_untested: bool = False,
    replace_existing: bool = False,
    fail_on_warn: bool = False,
    json_: bool = False,
    verbose: bool = False,
    project_dir: str | None = None,
    profiles_dir: str | None = None,
) -> None:
    """Make a commit's tested build live: views in the context's schema switch to it in one transaction."""
    if spec:
        spec_context, spec_ref = parse_spec(spec)
        context, ref = context or spec_context, ref or spec_ref
    if not ref:
        # Deploying is never implicit: no default commit, so no HEAD of whatever is checked out.
        raise DotError(
            "promote needs the build to make live: `dot-tasks promote CTX@REF` "
            "(e.g. `dot-tasks promote prod@v1.4`, or `@REF` for the default context)"
        )
    ws = workspace(c, project_dir, profiles_dir)
    options = deploy.PromoteOptions(
        ref=ref,
        context=context,
        allow_untested=allow_untested,
        replace_existing=replace_existing,
        fail_on_warn=fail_on_warn,
        verbose=verbose,
    )
    _print(deploy.promote(ws, options, progress), json_)


@dot_task(
    help={
        "context": "The context to roll back (dot-tasks also takes it positionally).",
        "to": "Return to this commit (a ref), which must have been live before (default: the previous live commit).",
    },
)
def rollback(
    c: Context,
    context: str | None = None,
    to: str | None = None,
    json_: bool = False,
    verbose: bool = False,
    project_dir: str | None = None,
    profiles_dir: str | None = None,
) -> None:
    """Make the previously live commit live again (or --to an earlier one); no new test run."""
    ws = workspace(c, project_dir, profiles_dir)
    _print(deploy.rollback(ws, deploy.default_context(ws, context), to, progress, verbose=verbose), json_)


@dot_task(
    help={
        "context": "The context to show (default: the profile's default target); dot-tasks also takes it positionally.",
        "exit_zero": "Exit 0 even when there is drift (report only).",
    },
)
def live(
    c: Context,
    context: str | None = None,
    json_: bool = False,
    verbose: bool = False,
    exit_zero: bool = False,
    project_dir: str | None = None,
    profiles_dir: str | None = None,
) -> None:
    """Show, from the warehouse, which commit is live, the last 10 promotions and any drift (exit 1 on drift)."""
    ws = workspace(c, project_dir, profiles_dir)
    report = deploy.live(ws, context, verbose=verbose)
    print(report.to_json() if json_ else deploy.format_live(report))
    if report.drift and not exit_zero:
        raise Exit(code=1)


@dot_task(help={"context": "The context to take out of red/green (dot-tasks also takes it positionally)."})
def retire(
    c: Context,
    context: str | None = None,
    json_: bool = False,
    verbose: bool = False,
    project_dir: str | None = None,
    profiles_dir: str | None = None,
) -> None:
    """Drop the views promotions made in the context's live schemas (one transaction): back to plain dbt."""
    if not context:
        raise DotError("retire needs the context to take out of red/green: `dot-tasks retire CTX`")
    ws = workspace(c, project_dir, profiles_dir)
    result = deploy.retire(ws, context, progress, verbose=verbose)
    print(result.to_json() if json_ else result.summary())
