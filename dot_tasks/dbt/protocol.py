"""What the parent and the dbt child send each other: dataclasses, sent as JSON and rebuilt whole.

Each request and report is a `Payload`: `to_payload()` turns it into plain
JSON data, and `from_payload()` rebuilds the same dataclass on the other
side, nested dataclasses included, so neither side reads raw dicts. Nothing
here imports dbt.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, cast

# dbt's exit codes (dbt.cli.exceptions.ExitCodes).
EXIT_SUCCESS, EXIT_FAILURES, EXIT_ERROR = 0, 1, 2

#: The environment variable that names the dbt child's parent, so the child can tell it is orphaned.
PARENT_ENV = "DOT_TASKS_DBT_PARENT"

_P = TypeVar("_P", bound="Payload")
_HINTS: dict[type, dict[str, Any]] = {}


class Payload:
    """A dataclass that crosses the process boundary as JSON and is rebuilt as itself."""

    def to_payload(self) -> dict[str, Any]:
        """This value as plain JSON data (nested dataclasses become dicts)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(cast(Any, self))}

    @classmethod
    def from_payload(cls: type[_P], data: Mapping[str, Any]) -> _P:
        """The dataclass that `to_payload` sent; keys it does not declare are left out."""
        hints = _HINTS.get(cls)
        if hints is None:
            hints = _HINTS[cls] = typing.get_type_hints(cls)
        known = {f.name for f in fields(cast(Any, cls)) if f.init}
        values = {name: _rebuild(hints[name], value) for name, value in data.items() if name in known}
        return cast(Any, cls)(**values)


def _plain(value: Any) -> Any:
    """`value` with its dataclasses as dicts; unlike `asdict`, other values are not copied."""
    if isinstance(value, Payload):
        return value.to_payload()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _rebuild(hint: Any, value: Any) -> Any:
    """`value`, as JSON gave it, turned back into the type `hint` declares."""
    if value is None:
        return None
    if isinstance(hint, type) and issubclass(hint, Payload):
        return hint.from_payload(value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        declared = [a for a in args if a is not type(None)]
        return _rebuild(declared[0], value) if len(declared) == 1 else value
    if origin is list:
        return [_rebuild(args[0], item) for item in value]
    if origin is tuple:
        return tuple(value)  # JSON has only lists
    return value


# --- builds ---------------------------------------------------------------------


@dataclass
class DbtRequest(Payload):
    """Everything the child needs to run one dbt command of a build."""

    project_dir: str
    profiles_dir: str
    target: str
    target_path: str
    log_path: str
    command: list[str]
    args: list[str]
    #: Set when `dbt deps` must run first: the lock file and completion marker.
    deps_lock: str | None = None
    deps_marker: str | None = None
    lock_timeout: float = 600.0
    check_isolation: bool = True
    #: From the generated profile: the adapter, and the schema as written (maybe a template).
    adapter_type: str = ""
    expected_schema: str = ""
    #: A second command run in the same dbt start once the first has succeeded
    #: (`--clone`'s `dbt clone`), with its own target path so that the build's
    #: run_results.json stays the record of what was built.
    then_command: list[str] = field(default_factory=list)
    then_args: list[str] = field(default_factory=list)
    then_target_path: str | None = None
    #: The build registry's event, written by this child when dbt starts and ends:
    #: a `RegistryEvent`'s fields (builds.py writes them as a dict).
    registry: dict[str, Any] | None = None


@dataclass(frozen=True)
class OpsTarget(Payload):
    """Where an operation runs: a build's generated profile (profiles dir, profile, target)."""

    profiles_dir: str
    profile: str
    target: str
    #: dbt's --log-path for the operation's own log.
    log_path: str


@dataclass(frozen=True)
class RegistryEvent(Payload):
    """The build's rows in the warehouse registry: where they go and what they say (written on the build's own adapter)."""

    #: The registry's schema, beside the live one.
    schema: str
    #: The columns of the build's row; the child sets its status and times.
    row: dict[str, Any]
    #: The context's live schema, and the refusal to give if the warehouse says this commit is live there.
    live_schema: str | None = None
    live_refusal: str | None = None


@dataclass
class DbtOutcome(Payload):
    """How a build's dbt command went: the child's report, with the child's exit code."""

    exit_code: int
    schema: str | None = None
    adapter_type: str | None = None
    dbt_version: str | None = None
    adapter_version: str | None = None
    #: Schemas that the build's nodes write to (the suffixed one and custom variants).
    schemas: list[str] = field(default_factory=list)
    error: str | None = None
    #: The DotError subclass that `error` was raised as, by name.
    error_kind: str | None = None
    #: Whether `then_command` ran and succeeded; which command failed, if one did.
    then_succeeded: bool = False
    failed_command: str | None = None
    #: Another commit holds this build's suffix in the warehouse registry: {"commit", "host", ...}.
    registry_collision: dict[str, Any] | None = None
    #: The guard wrote the build's 'running' row, so its end is written too.
    registered: bool = False


# --- warehouse operations ---------------------------------------------------------


@dataclass
class MacroCall(Payload):
    """One macro of the shipped `dbt_ops` project, run against `target` with keyword `args`."""

    target: OpsTarget
    macro: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class MacroOutcome(Payload):
    """What one macro call gave: its value, or its error."""

    #: What the macro returned with `{{ return(...) }}`, made JSON-safe; None if it failed.
    value: Any = None
    #: The first line of its error; None when it succeeded.
    error: str | None = None


@dataclass
class OpsRequest(Payload):
    """The `ops` mode: each call in turn, in one dbt start."""

    calls: list[MacroCall]
    #: dbt's --target-path for the ops project.
    scratch: str
    #: Keep dbt's banner and logs off stderr.
    quiet: bool = False


@dataclass
class OpsReport(Payload):
    """The `ops` mode's report: one outcome per call, unless the child failed first."""

    exit_code: int = EXIT_SUCCESS
    outcomes: list[MacroOutcome] | None = None
    error: str | None = None
    error_kind: str | None = None


@dataclass(frozen=True)
class Listing(Payload):
    """A `dbt ls` over a built project, to evaluate a selection the way dbt does."""

    project_dir: str
    profiles_dir: str
    target: str
    select: list[str]
    exclude: list[str]
    #: A target directory holding the manifest.json that `state:` methods compare against.
    state: str | None = None
    resource_types: tuple[str, ...] = ("model", "seed", "snapshot")
    #: The build's own target dir: its partial_parse.msgpack is copied (never written) to spare a full parse.
    parsed_in: str | None = None


@dataclass
class MacroJobs(Payload):
    """Many jobs, each a pure Python `driver(call, **job)` that runs ops macros through `call`.

    The jobs run on a pool of `threads` threads, each on its own connection,
    in one dbt start; a job whose "unique_id" the listing (if any) does not
    select is skipped.
    """

    target: OpsTarget
    #: "module:function", importable without dbt; `call(macro, **kwargs)` returns what the macro returned.
    driver: str
    jobs: list[dict[str, Any]]
    threads: int = 1
    listing: Listing | None = None
    #: dbt's --target-path for the ops project; a lasting one keeps its partial parse between runs.
    ops_target_path: str | None = None
    #: The child's scratch directory, set by `run_macro_jobs`.
    scratch: str = ""


@dataclass
class JobsReport(Payload):
    """The `jobs` mode's report: what each driver returned, unless the child failed first."""

    exit_code: int = EXIT_SUCCESS
    selected: list[str] | None = None
    results: list[MacroOutcome | None] | None = None
    error: str | None = None
    error_kind: str | None = None


@dataclass
class JobsOutcome:
    """What `run_macro_jobs` gives back: one result per job."""

    #: The unique ids the listing selected; None when there was no listing.
    selected: list[str] | None
    #: One per job, in order; None for a job the listing left out.
    results: list[MacroOutcome | None]
    #: Set when the whole run failed (dbt could not start, the listing failed).
    error: str | None = None


# --- a session --------------------------------------------------------------------


@dataclass
class SessionRequest(Payload):
    """The `session` mode: one connection to `target`, answering calls read from stdin."""

    target: OpsTarget
    scratch: str


@dataclass
class SessionCall(Payload):
    """One line a session reads: a macro to run, and whether to stream the rows of the SQL it returns."""

    macro: str
    args: dict[str, Any] = field(default_factory=dict)
    stream: bool = False


@dataclass
class SessionReport(Payload):
    """The `session` mode's last word, written once stdin closes or the session fails to start."""

    exit_code: int = EXIT_SUCCESS
    error: str | None = None
    error_kind: str | None = None
