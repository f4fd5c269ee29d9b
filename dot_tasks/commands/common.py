"""What every task shares: the task factory, configuration, the error boundary, progress.

The `commands` package is the only code that imports invoke. Tasks parse flags,
call one function of a room below (`builds`, `lifecycle`, ...) and print:
results on stdout, progress on stderr. Domain errors become an `Exit` in
`reports_errors` and nowhere else. Every task is made by `dot_task`, which
applies it; what the shared flags mean is in `params`.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from invoke import Context, Exit, Task, task

from ..errors import DotError
from ..naming import DEFAULT_SHORT_LENGTH, parse_spec
from .params import SHARED_HELP

F = TypeVar("F", bound=Callable[..., Any])


def deferred(name: str) -> ModuleType:
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
    from .. import builds, lifecycle
else:
    builds = deferred("dot_tasks.builds")
    lifecycle = deferred("dot_tasks.lifecycle")

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


def reports_errors(body: F) -> F:
    """Turn domain errors into a one-line message and an exit code, without a traceback."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except DotError as exc:
            raise Exit(f"dot-tasks: {exc}", code=exc.exit_code) from None
        except BrokenPipeError:
            raise  # the reader went away (`| head -1`): the program exits quietly
        except OSError as exc:  # disk full, permissions: the user's to fix, not a bug
            raise Exit(f"dot-tasks: {exc}", code=2) from None

    return wrapper  # type: ignore[return-value]


def dot_task(*, help: Mapping[str, str] | None = None, **options: Any) -> Callable[[Callable[..., Any]], Task[Any]]:
    """`@task` as every dot-tasks command is made: long flags only, shared help, the error boundary.

    `help` holds the task's own flags (and any shared flag it means differently);
    the shared flags its signature names get their help from `params.SHARED_HELP`.
    `options` go to Invoke's `@task` as they are (`name=`, `iterable=`).
    """

    def make(body: Callable[..., Any]) -> Task[Any]:
        # Invoke matches help to a parameter by its name without the trailing underscore (`json_` is `json`).
        names = {name.strip("_") for name in inspect.signature(body).parameters}
        merged = {name: text for name, text in SHARED_HELP.items() if name in names} | dict(help or {})
        made: Task[Any] = task(auto_shortflags=False, help=merged, **options)(reports_errors(body))
        return made

    return make


def merge_spec(spec: str | None, context: str | None, ref: str | None) -> tuple[str | None, str | None]:
    """The (context, ref) of `--spec CTX@REF` with `--context`/`--ref`; refuses two of either."""
    if not spec:
        return context, ref
    spec_context, spec_ref = parse_spec(spec)
    for flag, mine, theirs in (("--context", context, spec_context), ("--ref", ref, spec_ref)):
        if mine is not None and theirs is not None and mine != theirs:
            raise DotError(f"{flag} {mine} and --spec {spec} name two different {flag[2:]}s: give one")
    return context or spec_context, ref or spec_ref


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


def settings(c: Context, project_dir: str | None = None, profiles_dir: str | None = None) -> builds.Settings:
    """The `dot.*` configuration, checked, with `--project-dir`/`--profiles-dir` taking precedence."""
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


def workspace(c: Context, project_dir: str | None, profiles_dir: str | None = None) -> builds.Workspace:
    """The project a task acts on, from the configuration and the shared `--project-dir`/`--profiles-dir` flags."""
    return builds.Workspace.open(settings(c, project_dir, profiles_dir))


def progress(message: str) -> None:
    """One line of progress on stderr (`dot-tasks: ...`): stdout is kept for results."""
    print(f"dot-tasks: {message}", file=sys.stderr, flush=True)


def split_words(flag: str, text: str) -> list[str]:
    """`text` split as a shell would; refuses unbalanced quotes, naming `flag`."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise DotError(f"{flag} {text!r} cannot be split into words ({exc}): balance its quotes") from None


def extra_args(c: Context) -> list[str]:
    """What followed `--`, exactly as the shell passed it.

    Invoke hands it over as one space-joined string, which loses quoting
    (`--vars '{"a": "x y"}'`). The process's own argv still has the words;
    it is used when it matches, so a programmatic call falls back safely.
    """
    remainder = c.remainder or ""
    if "--" in sys.argv:
        words = sys.argv[sys.argv.index("--") + 1 :]
        if " ".join(words) == remainder:
            return words
    return split_words("the arguments after --", remainder)


def collect_dbt_args(c: Context, select: str | None, exclude: str | None) -> list[str]:
    """The flags dbt gets: `--select`, `--exclude`, then whatever followed `--`."""
    args = []
    if select:
        args += ["--select", *split_words("--select", select)]
    if exclude:
        args += ["--exclude", *split_words("--exclude", exclude)]
    return args + extra_args(c)


def parse_dbt_command(command: str) -> list[str]:
    """The words of `--command` (`docs generate` is two); refuses a flag where a command name belongs."""
    words = split_words("--command", command)
    if not words or any(w.startswith("-") for w in words):
        raise DotError(
            f"--command {command!r} is not a dbt command: give its name, e.g. build, run, seed or "
            "'docs generate', and put dbt flags after --"
        )
    return words


def warn_if_shared(allow_shared_schemas: bool) -> None:
    """Warn that `--allow-shared-schemas` lets nodes write outside the build's own schema."""
    if allow_shared_schemas:
        progress("warning: --allow-shared-schemas: nodes may write outside the build's own schema")
