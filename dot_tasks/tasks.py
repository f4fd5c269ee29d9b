"""The Invoke tasks: the ADR's steps, each runnable alone, composed into `run`.

This is the only module that imports invoke. Tasks parse flags, call the
steps in `builds`, and print: results on stdout, progress on stderr. Domain
errors become an `Exit` here and nowhere else.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from invoke import Collection, Context, Exit, task

from .errors import DotError
from .naming import DEFAULT_SHORT_LENGTH, parse_spec

F = TypeVar("F", bound=Callable[..., Any])


def _deferred(name: str) -> ModuleType:
    """Import `name` on first use (importlib's LazyLoader recipe).

    `--help` and `--list` then start without pygit2 and YAML, about 50 ms.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from . import builds, lifecycle
else:
    builds = _deferred("dot_tasks.builds")
    lifecycle = _deferred("dot_tasks.lifecycle")

# Every key is declared here so that invoke.yaml and INVOKE_DOT_* can set it
# (Invoke only honours environment variables for keys it already knows).
# Numbers default to None (meaning the built-in value) rather than to a number:
# Invoke casts an environment value to the default's type, and would print a
# traceback for INVOKE_DOT_LOCK_TIMEOUT=soon instead of our one-line error.
DEFAULT_LOCK_TIMEOUT = 600.0
DEFAULTS: dict[str, Any] = {
    "project_dir": None,
    "profiles_dir": None,
    "short_hash_length": None,
    "contexts": {},
    "lock_timeout": None,
    "sparse_checkout": True,
}

H_REF = "Git ref to build: branch, tag, HEAD~2, short or full hash (default: HEAD)."
H_CONTEXT = "Context (profile target) to build, e.g. dev or prod (default: the profile's default target)."
H_PROJECT = "The dbt project's root (default: dot.project_dir, else found upward from the current directory)."
H_PROFILES = "Directory of the profiles.yml to start from (default: dbt's order: DBT_PROFILES_DIR, current dir, project dir, ~/.dbt)."
H_BUILD = {
    "command": "dbt command to run, e.g. build, run, test, seed, snapshot, compile, 'docs generate' (default: build).",
    "select": "dbt --select expression.",
    "exclude": "dbt --exclude expression.",
    "deps": "Run `dbt deps` first, once per commit, when the commit declares packages (--no-deps skips it).",
    "allow_shared_schemas": "Build even if some node would write outside the build's own schema (warns).",
}


def reports_errors(body: F) -> F:
    """Turn domain errors into a one-line message and an exit code, without a traceback."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except DotError as exc:
            raise Exit(f"dot-tasks: {exc}", code=exc.exit_code) from None
        except OSError as exc:  # disk full, permissions: the user's to fix, not a bug
            raise Exit(f"dot-tasks: {exc}", code=2) from None

    return wrapper  # type: ignore[return-value]


def _number(key: str, value: Any, default: float, kind: type) -> Any:
    if value is None or value == "":
        return kind(default)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = -1
    if number <= 0:
        raise DotError(f"dot.{key} is {value!r}: set it to a positive number in invoke.yaml or INVOKE_DOT_{key.upper()}")
    return number


def _settings(c: Context, project_dir: str | None = None, profiles_dir: str | None = None) -> builds.Settings:
    dot = c.config.dot
    # Relative directories in invoke.yaml are relative to that file, not to
    # wherever the command happens to run; flags stay relative to the shell.
    base = Path(getattr(c.config, "_project_prefix", None) or ".")

    def configured(value: str | None) -> str | None:
        return str(base / Path(value).expanduser()) if value else None

    contexts = dot.contexts or {}
    if not hasattr(contexts, "items"):
        raise DotError(f"dot.contexts is {contexts!r}: it maps context names to targets, e.g. {{ci: prod}}")
    return builds.Settings(
        project_dir=project_dir or configured(dot.project_dir),
        profiles_dir=profiles_dir or configured(dot.profiles_dir),
        short_hash_length=_number("short_hash_length", dot.short_hash_length, DEFAULT_SHORT_LENGTH, int),
        contexts={str(k): str(v) for k, v in dict(contexts).items()},
        lock_timeout=_number("lock_timeout", dot.lock_timeout, DEFAULT_LOCK_TIMEOUT, float),
        sparse_checkout=bool(dot.sparse_checkout),
    )


def _workspace(c: Context, project_dir: str | None, profiles_dir: str | None = None) -> builds.Workspace:
    return builds.Workspace.open(_settings(c, project_dir, profiles_dir))


def _progress(message: str) -> None:
    print(f"dot-tasks: {message}", file=sys.stderr, flush=True)


def _split(flag: str, text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise DotError(f"{flag} {text!r} cannot be split into words ({exc}): balance its quotes") from None


def _extra_args(c: Context) -> list[str]:
    """What followed `--`, exactly as the shell passed it.

    Invoke hands it over as one space-joined string, which loses quoting
    (`--vars '{"a": "x y"}'`). The process's own argv still has the words;
    it is used when it matches, so a programmatic call falls back safely.
    """
    remainder = c.remainder or ""
    if "--" in sys.argv:
        words = sys.argv[sys.argv.index("--") + 1:]
        if " ".join(words) == remainder:
            return words
    return _split("the arguments after --", remainder)


def _dbt_args(c: Context, select: str | None, exclude: str | None) -> list[str]:
    args = []
    if select:
        args += ["--select", *_split("--select", select)]
    if exclude:
        args += ["--exclude", *_split("--exclude", exclude)]
    return args + _extra_args(c)


def _dbt_command(command: str) -> list[str]:
    words = _split("--command", command)
    if not words or any(w.startswith("-") for w in words):
        raise DotError(
            f"--command {command!r} is not a dbt command: give its name, e.g. build, run, seed or "
            "'docs generate', and put dbt flags after --"
        )
    return words


def _warn_if_shared(allow_shared_schemas: bool) -> None:
    if allow_shared_schemas:
        _progress("warning: --allow-shared-schemas: nodes may write outside the build's own schema")


@task(auto_shortflags=False, help={"ref": H_REF, "short": "Print the schema suffix (the short hash) instead of the full hash.",
            "project_dir": H_PROJECT})
@reports_errors
def resolve(c: Context, ref: str = "HEAD", short: bool = False, project_dir: str | None = None) -> None:
    """Print the full commit hash a ref names (or, with --short, its schema suffix)."""
    ws = _workspace(c, project_dir)
    commit = builds.resolve(ws, ref)
    print(builds.schema_suffix(ws, commit) if short else commit)


@task(auto_shortflags=False, help={"ref": H_REF, "project_dir": H_PROJECT})
@reports_errors
def worktree(c: Context, ref: str = "HEAD", project_dir: str | None = None) -> None:
    """Check the commit out at .dot/isolated_builds/<hash>/worktree and print that path."""
    ws = _workspace(c, project_dir)
    result = builds.ensure_worktree(ws, builds.resolve(ws, ref))
    print(result.path)


@task(auto_shortflags=False, help={"ref": H_REF, "context": H_CONTEXT, "project_dir": H_PROJECT, "profiles_dir": H_PROFILES})
@reports_errors
def profile(c: Context, ref: str = "HEAD", context: str | None = None, project_dir: str | None = None,
            profiles_dir: str | None = None) -> None:
    """Write the context's profiles.yml for <schema>_<short> and print its directory."""
    ws = _workspace(c, project_dir, profiles_dir)
    commit = builds.resolve(ws, ref)
    result = builds.write_profile(ws, commit, context, ref=ref)
    print(result.profiles_dir)


@task(auto_shortflags=False, help={"ref": H_REF, "context": H_CONTEXT, "project_dir": H_PROJECT,
                                   "profiles_dir": H_PROFILES, **H_BUILD})
@reports_errors
def build(c: Context, ref: str = "HEAD", context: str | None = None, command: str = "build",
          select: str | None = None, exclude: str | None = None, deps: bool = True,
          allow_shared_schemas: bool = False, project_dir: str | None = None,
          profiles_dir: str | None = None) -> None:
    """Run dbt on the commit's worktree with its generated profile; extra dbt flags go after --."""
    ws = _workspace(c, project_dir, profiles_dir)
    commit = builds.resolve(ws, ref)
    _warn_if_shared(allow_shared_schemas)
    result = builds.build(ws, commit, context, command=_dbt_command(command), args=_dbt_args(c, select, exclude),
                          install_deps=deps, check_isolation=not allow_shared_schemas, ref=ref)
    print(ws.paths(commit).context(result.context).target_dir)


@task(auto_shortflags=False, help={
    "spec": "The ADR's shorthand CTX@REF (or @REF for the default context); dot-tasks also takes it positionally.",
    "ref": H_REF, "context": H_CONTEXT, "project_dir": H_PROJECT, "profiles_dir": H_PROFILES,
    "json": "Print the summary as one JSON object on stdout.", **H_BUILD,
})
@reports_errors
def run(c: Context, spec: str | None = None, ref: str | None = None, context: str | None = None,
        command: str = "build", select: str | None = None, exclude: str | None = None, deps: bool = True,
        allow_shared_schemas: bool = False, json_: bool = False, project_dir: str | None = None,
        profiles_dir: str | None = None) -> None:
    """Resolve, check out, write the profile and build: one isolated build, end to end."""
    if spec:
        spec_context, spec_ref = parse_spec(spec)
        context, ref = context or spec_context, ref or spec_ref
    ref = ref or "HEAD"
    summary: dict[str, Any] = {"ref": ref, "command": command, "status": "failed"}
    try:
        _run_steps(c, summary, ref, context, command, select, exclude, deps, allow_shared_schemas,
                   project_dir, profiles_dir)
    except DotError as exc:
        summary.update(exit_code=exc.exit_code, error=str(exc))
        # A script asked for JSON gets it whatever failed; a person gets the
        # summary once there is a build to summarise.
        if json_ or "context" in summary:
            _print_summary(summary, json_)
        raise
    _print_summary(summary, json_)


def _run_steps(c: Context, summary: dict[str, Any], ref: str, context: str | None, command: str,
               select: str | None, exclude: str | None, deps: bool, allow_shared_schemas: bool,
               project_dir: str | None, profiles_dir: str | None) -> None:
    """resolve → worktree → profile → build, filling `summary` as each step lands."""
    dbt_command, dbt_args = _dbt_command(command), _dbt_args(c, select, exclude)
    ws = _workspace(c, project_dir, profiles_dir)
    summary["project_dir"] = str(ws.project_dir)

    def step(name: str, action: Callable[[], Any], describe: Callable[[Any], str]) -> Any:
        started = time.monotonic()
        value = action()
        _progress(f"{name:<8} {describe(value)} ({time.monotonic() - started:.2f}s)")
        return value

    commit = summary["commit"] = step("resolve", lambda: builds.resolve(ws, ref), lambda v: f"{ref} → {v}")
    wt = step("worktree", lambda: builds.ensure_worktree(ws, commit),
              lambda v: f"{'reused' if v.reused else 'created'} {v.path}")
    summary.update(worktree=str(wt.path), project_path=str(wt.project_path))
    prof = step("profile", lambda: builds.write_profile(ws, commit, context, ref=ref),
                lambda v: f"{v.context} → schema {v.schema} ({v.profiles_dir / 'profiles.yml'})")
    ctx = ws.paths(commit).context(prof.context)
    summary.update(
        short=prof.short, context=prof.context, target=prof.target, schema=prof.schema,
        profiles_dir=str(prof.profiles_dir), target_path=str(ctx.target_dir), log_path=str(ctx.logs_dir),
    )
    _warn_if_shared(allow_shared_schemas)
    started = time.monotonic()
    try:
        result = builds.build(ws, commit, prof.context, command=dbt_command, args=dbt_args, install_deps=deps,
                              check_isolation=not allow_shared_schemas, ref=ref, worktree_checked=True)
    except DotError:
        summary["seconds"] = round(time.monotonic() - started, 3)
        _progress(f"build    failed ({summary['seconds']:.2f}s)")
        raise
    summary.update(status="success", exit_code=0, seconds=round(result.seconds, 3),
                   schema=result.schema or prof.schema, schemas=result.schemas)
    _progress(f"build    dbt {command} succeeded ({result.seconds:.2f}s)")


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
        ("status", f"{summary['status']} (dbt {summary['command']}, exit {summary['exit_code']}, "
                   f"{summary.get('seconds', 0):.1f}s)"),
    ]
    print("\n".join(f"{label:<9} {value}" for label, value in rows))


@task(auto_shortflags=False, name="list", help={"json": "Print one JSON object per build on stdout, one per line.", "project_dir": H_PROJECT})
@reports_errors
def list_(c: Context, json_: bool = False, project_dir: str | None = None) -> None:
    """List isolated builds: one row per (commit, context), with damaged builds flagged."""
    ws = _workspace(c, project_dir)
    rows = lifecycle.list_builds(ws)
    if json_:
        for row in rows:
            print(json.dumps(row.as_dict(), sort_keys=True))
        return
    print(lifecycle.format_table(rows))


@task(auto_shortflags=False, help={
    "ref": "Clean the build of this ref's commit.",
    "context": "Only this context's files and schemas (the worktree stays).",
    "all": "Clean every build.",
    "keep": "Keep the newest N builds of each context; clean the older ones.",
    "older_than": "Clean builds last built before this age, e.g. 36h, 7d, 2w.",
    "unreachable": "Clean builds of commits no branch or tag reaches any more.",
    "dry_run": "Print what would be cleaned and change nothing.",
    "keep_schemas": "Leave the warehouse alone: remove files and worktrees only.",
    "project_dir": H_PROJECT,
})
@reports_errors
def clean(c: Context, ref: str | None = None, context: str | None = None, all_: bool = False,
          keep: int | None = None, older_than: str | None = None, unreachable: bool = False,
          dry_run: bool = False, keep_schemas: bool = False, project_dir: str | None = None) -> None:
    """Remove builds: their warehouse schemas, worktree registration and files."""
    ws = _workspace(c, project_dir)
    selection = lifecycle.Selection(
        commit=builds.resolve(ws, ref) if ref else None, context=context, everything=all_,
        keep=lifecycle.parse_count(keep) if keep is not None else None,
        older_than=lifecycle.parse_age(older_than) if older_than else None, unreachable=unreachable,
    )
    lifecycle.clean(ws, selection, dry_run=dry_run, drop_schemas=not keep_schemas,
                    say=print, progress=_progress)


ns = Collection(resolve, worktree, profile, build, run, list_, clean)
ns.configure({"dot": DEFAULTS})
