"""Running dbt: the only module that starts a subprocess for dbt or imports it.

The parent side (`run_dbt`) never imports dbt, so steps that do not build
stay fast. It starts one child, `python -m dot_tasks.dbt_runner`, which runs
`dbt deps` when needed and then the dbt command, in one dbt start. The
isolation guard runs inside that same invocation, at the moment dbt has
parsed the project and chosen its nodes but before it creates a schema or
runs a hook, so it checks exactly what dbt is about to build. The child
reports back as JSON on a pipe; dbt's own output goes to stderr, so stdout
stays free for results.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import DbtFailed, DotError, IsolationError, ProfileError, WarehouseError
from .naming import IDENTIFIER_LIMITS, is_template, too_long

# dbt's exit codes (dbt.cli.exceptions.ExitCodes).
EXIT_SUCCESS, EXIT_FAILURES, EXIT_ERROR = 0, 1, 2

# Flags dot-tasks sets itself: given again after `--`, dbt would take the
# later one and build with another profile, target or schema.
RESERVED_FLAGS = frozenset(
    {
        "--project-dir",
        "--profiles-dir",
        "--profile",
        "--target",
        "-t",
        "--target-path",
        "--log-path",
    }
)

# Deferral goes through `--defer-to CTX@REF`, which records the base so that
# `clean` keeps it: a deferral given after `--` would read from a build that
# nothing records, and that a clean could drop under it.
DEFER_FLAGS = frozenset({"--defer", "--no-defer", "--defer-state", "--favor-state", "--no-favor-state"})
# `--state` alone (state:modified selection without deferral) reads files only;
# with --defer-to it would replace the base's manifest, so it is refused then.
STATE_FLAGS = frozenset({"--state"})
# The words that choose nodes; when one is given, a deferred build keeps it
# instead of selecting `state:modified+`.
SELECTION_FLAGS = frozenset({"-s", "--select", "-m", "--models", "--model", "--selector"})

# The dbt commands that write to the warehouse, and so are guarded.
WRITING_COMMANDS = frozenset({"build", "run", "seed", "snapshot", "test", "retry", "clone"})
_WRITING_NODES = ("model", "seed", "snapshot", "test")
_ARGV_LIMIT = 100_000


@dataclass
class DbtRequest:
    """Everything the child needs; plain data so it crosses the process boundary."""

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
    #: The build registry's event, written by this child when dbt starts and ends
    #: (see `_registry_event`): {"target": OpsTarget fields, "schema", "row", "ops_target_path"}.
    registry: dict[str, Any] | None = None


@dataclass
class DbtOutcome:
    exit_code: int
    schema: str | None = None
    adapter_type: str | None = None
    dbt_version: str | None = None
    adapter_version: str | None = None
    #: Schemas that the build's nodes write to (the suffixed one and custom variants).
    schemas: list[str] = field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None
    #: Whether `then_command` ran and succeeded; which command failed, if one did.
    then_succeeded: bool = False
    failed_command: str | None = None
    #: Another commit holds this build's suffix in the warehouse registry: {"commit", "host", ...}.
    registry_collision: dict[str, Any] | None = None


def _importable(module: str) -> bool:
    # find_spec raises, rather than answering None, when a parent package is missing.
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def adapter_available(adapter_type: str) -> bool:
    return _importable(f"dbt.adapters.{adapter_type}")


def require_dbt() -> None:
    if not _importable("dbt.cli"):
        raise DotError(
            "dbt is not installed in this Python environment: pip install 'dot-tasks' "
            "(which brings dbt-core) and the adapter for your warehouse"
        )


#: The environment variable that names the dbt child's parent, so the child can tell it is orphaned.
PARENT_ENV = "DOT_TASKS_DBT_PARENT"


def _child_env() -> dict[str, str]:
    return {**os.environ, PARENT_ENV: str(os.getpid())}


def _die_with_parent(watch_stdin: bool) -> None:
    """Make the dbt child die with the process that started it (kill -9 included).

    An orphaned child would go on with what its parent no longer knows about:
    finish a promotion's switch after the parent was killed. On Linux the
    kernel sends SIGKILL when the parent dies (the parent *thread*: dot-tasks
    starts its dbt children from the main thread); elsewhere a thread watches
    stdin, a pipe whose other end only the parent holds.
    """
    expected = os.environ.pop(PARENT_ENV, None)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    elif watch_stdin:  # pragma: no cover - CI runs on Linux
        import threading

        def watch() -> None:
            sys.stdin.buffer.read()
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, daemon=True).start()
    # The parent may have died before the death signal was asked for.
    if expected and os.getppid() != int(expected):  # pragma: no cover - a race of microseconds
        os.kill(os.getpid(), signal.SIGKILL)


def _spawn(kind: str, payload: Any, cwd: str, lock_fds: tuple[int, ...] = ()) -> tuple[int, dict[str, Any]]:
    """Run `payload` in a dbt child; return its exit code and its JSON report.

    The child inherits `lock_fds`, so the locks stay held while dbt runs even
    if this process is killed: a flock lasts until its last descriptor closes.
    """
    argument = json.dumps(payload)
    if len(argument) > _ARGV_LIMIT:
        # Linux caps one argument at 128 KiB: a promotion of thousands of models
        # travels in a private file instead.
        fd, spill = tempfile.mkstemp(prefix=".dot-payload-", suffix=".json", dir=cwd)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(argument)
        argument = "@" + spill
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dot_tasks.dbt_runner", kind, argument, str(write_fd)],
            # A pipe that stays open while this process lives: the child's watch elsewhere than Linux.
            stdin=subprocess.PIPE,
            stdout=sys.stderr.fileno(),  # dbt's output is progress, not a result
            pass_fds=(write_fd, *lock_fds),
            cwd=cwd,
            env=_child_env(),
        )
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    with os.fdopen(read_fd, "r", encoding="utf-8") as reader:
        report = reader.read()
    code = proc.wait()
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        return code, (json.loads(report) if report.strip() else {})
    except json.JSONDecodeError:
        return code, {}


def run_dbt(request: DbtRequest, lock_fds: tuple[int, ...] = ()) -> DbtOutcome:
    """Run dbt for `request` in a child process and report how it went."""
    code, report = _spawn("build", asdict(request), cwd=request.project_dir, lock_fds=lock_fds)
    report["exit_code"] = code
    known = {f for f in DbtOutcome.__dataclass_fields__}
    return DbtOutcome(**{k: v for k, v in report.items() if k in known})


@dataclass(frozen=True)
class OpsTarget:
    """Where an operation runs: a build's generated profile (profiles dir, profile, target)."""

    profiles_dir: str
    profile: str
    target: str
    #: dbt's --log-path for the operation's own log.
    log_path: str


@dataclass
class MacroCall:
    """One macro of the shipped `dbt_ops` project, run against `target` with keyword `args`."""

    target: OpsTarget
    macro: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class MacroOutcome:
    #: What the macro returned with `{{ return(...) }}`, made JSON-safe; None if it failed.
    value: Any = None
    #: The first line of its error; None when it succeeded.
    error: str | None = None


OPS_PROJECT = Path(__file__).resolve().parent / "dbt_ops"


def call_macros(calls: list[MacroCall], scratch: Path, lock_fds: tuple[int, ...] = (), quiet: bool = False) -> list[MacroOutcome]:
    """Run each call's macro in one dbt start; one outcome per call, in order.

    `lock_fds` are inherited by the child, as for `run_dbt`: a promotion's locks
    stay held until its transaction is over, even if this process is killed.

    The SQL lives in the `dbt_ops` macros and goes through the adapter of each
    call's own profile, so any adapter works; only what a macro returns comes
    back here (counts, samples, names), never a table's worth of rows.
    `lock_fds` (from `builds.warehouse_locks`) stay held by the child, as in a build.
    `quiet` keeps dbt's banner and logs off stderr (errors and the macros' own
    `print` lines still show).
    """
    if not calls:
        return []
    require_dbt()
    scratch.mkdir(parents=True, exist_ok=True)
    code, report = _spawn(
        "ops",
        {"calls": [asdict(c) for c in calls], "scratch": str(scratch), "quiet": quiet},
        cwd=str(scratch),
        lock_fds=lock_fds,
    )
    outcomes = report.get("outcomes")
    if not isinstance(outcomes, list) or len(outcomes) != len(calls):
        reason = report.get("error") or f"dbt exited with {code} before reporting"
        return [MacroOutcome(error=reason) for _ in calls]
    return [MacroOutcome(**o) for o in outcomes]


@dataclass(frozen=True)
class Listing:
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
class MacroJobs:
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


@dataclass
class JobsOutcome:
    #: The unique ids the listing selected; None when there was no listing.
    selected: list[str] | None
    #: One per job, in order; None for a job the listing left out.
    results: list[MacroOutcome | None]
    #: Set when the whole run failed (dbt could not start, the listing failed).
    error: str | None = None


def run_macro_jobs(request: MacroJobs, scratch: Path, lock_fds: tuple[int, ...] = ()) -> JobsOutcome:
    """Run `request`'s jobs concurrently in one dbt child; only what the drivers return comes back."""
    require_dbt()
    scratch.mkdir(parents=True, exist_ok=True)
    code, report = _spawn("jobs", {**asdict(request), "scratch": str(scratch)}, cwd=str(scratch), lock_fds=lock_fds)
    results = report.get("results")
    if report.get("error") or not isinstance(results, list) or len(results) != len(request.jobs):
        reason = report.get("error") or f"dbt exited with {code} before reporting"
        return JobsOutcome(selected=None, results=[None] * len(request.jobs), error=reason)
    return JobsOutcome(
        selected=report.get("selected"),
        results=[MacroOutcome(**r) if r is not None else None for r in results],
    )


class MacroSession:
    """One dbt child that stays up and runs ops macros one call at a time, sent over a pipe.

    For work that goes back and forth between two warehouses (the two-database
    diff): each side gets its own session, so each keeps one dbt start and one
    connection however many calls it takes.
    """

    def __init__(self, target: OpsTarget, scratch: Path, lock_fds: tuple[int, ...] = ()) -> None:
        require_dbt()
        scratch.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dot_tasks.dbt_runner",
                    "session",
                    json.dumps({"target": asdict(target), "scratch": str(scratch)}),
                    str(write_fd),
                ],
                stdin=subprocess.PIPE,
                stdout=sys.stderr.fileno(),
                pass_fds=(write_fd, *lock_fds),
                cwd=str(scratch),
                text=True,
                env=_child_env(),
            )
        except BaseException:
            os.close(read_fd)
            os.close(write_fd)
            raise
        os.close(write_fd)
        self._replies = os.fdopen(read_fd, "r", encoding="utf-8")
        self.calls = 0

    def _send(self, request: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the child is gone; the empty reply says so

    def call(self, macro: str, **kwargs: Any) -> Any:
        """What `macro` returned; a failed call raises WarehouseError with its first line."""
        self._send({"macro": macro, "args": kwargs})
        return self._reply(macro, self._replies.readline())

    def stream(self, macro: str, **kwargs: Any) -> Iterator[list[Any]]:
        """The rows of the query `macro` returns as SQL, read a chunk at a time.

        The query starts now (so two sessions' queries run at once); the rows
        arrive as the iterator is read, which must be read to its end.
        """
        self._send({"macro": macro, "args": kwargs, "stream": True})
        return self._rows(macro)

    def _rows(self, macro: str) -> Iterator[list[Any]]:
        while (line := self._replies.readline()).startswith('{"rows"'):
            yield from json.loads(line)["rows"]
        self._reply(macro, line)

    def _reply(self, macro: str, line: str) -> Any:
        if not line.startswith('{"reply"'):
            rest = line + self._replies.read()
            try:
                reason = json.loads(rest).get("error") if rest.strip() else None
            except json.JSONDecodeError:
                reason = None
            raise WarehouseError(f"the dbt session ended before answering {macro}: {reason or 'see dbt output above'}")
        self.calls += 1
        reply = json.loads(line)["reply"]
        if reply["error"]:
            raise WarehouseError(f"{macro} failed: {reply['error']}")
        return reply["value"]

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        self._proc.wait()
        self._replies.close()

    def __enter__(self) -> MacroSession:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def failure(outcome: DbtOutcome, request: DbtRequest) -> DotError | None:
    """The error to report for a child that did not succeed, if it did not."""
    if outcome.error:
        kinds = {"IsolationError": IsolationError, "ProfileError": ProfileError}
        error = kinds.get(outcome.error_kind or "", DotError)(outcome.error)
        error.exit_code = outcome.exit_code or EXIT_ERROR
        return error
    if outcome.exit_code < 0:
        return DbtFailed(f"dbt was killed by signal {-outcome.exit_code}", EXIT_ERROR)
    if outcome.exit_code != EXIT_SUCCESS:
        what = outcome.failed_command or " ".join(request.command)
        return DbtFailed(
            f"dbt {what} failed (exit {outcome.exit_code}): see dbt's output above, or {request.log_path}/dbt.log",
            outcome.exit_code,
        )
    return None


def _flags(args: list[str], names: frozenset[str]) -> list[str]:
    return sorted({a.partition("=")[0] for a in args if a.partition("=")[0] in names})


def check_extra_args(args: list[str], deferred: bool = False) -> None:
    """Refuse extra dbt args that would point the build at another profile, place or base."""
    clashes = _flags(args, RESERVED_FLAGS)
    if clashes:
        raise IsolationError(
            f"{', '.join(clashes)} after -- would override what isolates the build: drop it "
            "(choose the target with --context, the profile with --profiles-dir)"
        )
    deferring = _flags(args, DEFER_FLAGS | (STATE_FLAGS if deferred else frozenset()))
    if deferring:
        raise IsolationError(
            f"{', '.join(deferring)} after -- would defer to a base that dot-tasks does not record "
            "(and `clean` could drop it): use --defer-to CTX@REF instead"
        )


def selects_nodes(args: list[str]) -> bool:
    """Whether `args` already choose the nodes to build."""
    return bool(_flags(args, SELECTION_FLAGS))


def writes_outside(nodes: list[dict[str, Any]], schema: str, database: str | None) -> list[tuple[str, str]]:
    """The nodes that would write outside `schema` (or its `<schema>_<custom>` variants)."""
    offenders = []
    for node in nodes:
        node_schema = str(node.get("schema") or "")
        node_db = node.get("database")
        inside = node_schema.lower() == schema.lower() or node_schema.lower().startswith(schema.lower() + "_")
        same_db = database is None or node_db is None or str(node_db).lower() == database.lower()
        if not (inside and same_db):
            where = f"{node_db}.{node_schema}" if node_db else node_schema
            offenders.append((str(node["unique_id"]), where))
    return offenders


def names_too_long(nodes: list[dict[str, Any]], limit: int) -> list[str]:
    """The schema and relation names, among `nodes`, longer than `limit` bytes."""
    names = {name for node in nodes for name in (node.get("schema"), node.get("identifier"))}
    return sorted(name for name in names if isinstance(name, str) and too_long(name, limit))


def _refuse_long_names(nodes: list[dict[str, Any]], adapter_type: str) -> None:
    limit = IDENTIFIER_LIMITS.get(adapter_type)
    too_long = names_too_long(nodes, limit) if limit else []
    if too_long:
        raise IsolationError(
            f"refusing to build: {adapter_type} cuts names at {limit} bytes, and these are longer: "
            f"{', '.join(too_long[:5])}{' ...' if len(too_long) > 5 else ''}. Shorten the schema or "
            "alias (or dot.short_hash_length)"
        )


def _refuse_shared_schemas(nodes: list[dict[str, Any]], schema: str, database: str | None) -> None:
    offenders = writes_outside(nodes, schema, database)
    if offenders:
        listing = ", ".join(f"{uid} → {where}" for uid, where in offenders[:10])
        more = f" and {len(offenders) - 10} more" if len(offenders) > 10 else ""
        raise IsolationError(
            f"refusing to build: {len(offenders)} node(s) would write outside {schema}: "
            f"{listing}{more}. Fix generate_schema_name/target_schema/+database, "
            "or pass --allow-shared-schemas to build anyway"
        )


# --- the child process ---------------------------------------------------------


def _versions(adapter_type: str) -> tuple[str | None, str | None]:
    """The installed dbt-core and adapter versions, for the build record."""
    from importlib.metadata import PackageNotFoundError, version

    def get(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return get("dbt-core"), get(f"dbt-{adapter_type}") if adapter_type else None


def _install_guard(request: DbtRequest, report: dict[str, Any]) -> None:
    """Check the selected nodes just before dbt creates schemas or runs hooks.

    `execute_with_hooks` receives the nodes dbt selected, after parsing and
    before `before_run` creates schemas, so refusing here writes nothing and
    costs no second parse. dbt-core is pinned below 1.12, where this holds.
    """
    from dbt.exceptions import DbtRuntimeError
    from dbt.flags import get_flags
    from dbt.task.runnable import GraphRunnableTask

    class GuardRefusal(DbtRuntimeError):
        # A dbt exception, so dbt reports it in one line rather than a stack
        # trace; our own message follows from the parent.
        def __init__(self, refusal: DotError) -> None:
            super().__init__("dot-tasks refused to build (see below); nothing was written")
            self.refusal = refusal

    original = GraphRunnableTask.execute_with_hooks

    def stores_failures(node: Any) -> bool:
        if node.config.get("store_failures_as") in ("table", "view"):
            return True
        flag = getattr(get_flags(), "STORE_FAILURES", False)
        return bool(node.config.store_failures if node.config.store_failures is not None else flag)

    def guarded(task: Any, selected_uids: Any) -> Any:
        credentials = task.config.credentials
        schema = str(credentials.schema)
        database = str(credentials.database) if getattr(credentials, "database", None) else None
        report["schema"] = schema
        nodes = [task.manifest.nodes[uid] for uid in sorted(selected_uids) if uid in task.manifest.nodes]
        writing = [
            {"unique_id": n.unique_id, "schema": n.schema, "database": n.database, "identifier": n.alias or n.name}
            for n in nodes
            if n.resource_type in _WRITING_NODES
            and n.config.materialized != "ephemeral"
            and (n.resource_type != "test" or stores_failures(n))
        ]
        # A union: the clone step's nodes add to the build's.
        report["schemas"] = sorted({str(n["schema"]) for n in writing} | {schema} | set(report.get("schemas", [])))
        try:
            expected = request.expected_schema
            if expected and not is_template(expected) and schema != expected:
                raise IsolationError(
                    f"refusing to build: dbt's target schema is {schema}, not this build's {expected}; "
                    "something overrides the generated profile"
                )
            # Over-long names are refused even with --allow-shared-schemas: the
            # warehouse would silently cut them, and two builds could then collide.
            _refuse_long_names(writing, credentials.type)
            if request.check_isolation:
                _refuse_shared_schemas(writing, schema, database)
        except DotError as refusal:
            raise GuardRefusal(refusal) from None
        if _PENDING_START and not report.get("registered"):
            refusal = _live_in_the_warehouse(task)
            if refusal is not None:
                raise GuardRefusal(refusal)
            _record_start(task, report)
            if report.get("registry_collision"):
                raise RegistryCollision()
        return original(task, selected_uids)

    class RegistryCollision(DbtRuntimeError):
        def __init__(self) -> None:
            super().__init__("dot-tasks stopped the build (see below); nothing was written")
            self.collision = True

    GraphRunnableTask.execute_with_hooks = guarded


#: The 'running' event that the guard writes once it has passed: the ops
#: manifest, the registry schema and the row (see `_parse_ops`).
_PENDING_START: dict[str, Any] = {}


def _live_in_the_warehouse(task: Any) -> DotError | None:
    """A refusal when the warehouse says this commit is live for the context.

    The parent checked this machine's notes; another machine may have
    promoted the commit since, and rebuilding it would replace the tables its
    live views read. A history that cannot be read refuses nothing: the
    build's own schema is all that dbt is about to write.
    """
    from dbt.adapters.factory import get_adapter

    if not _PENDING_START.get("live_refusal"):
        return None
    adapter = get_adapter(task.config)
    try:
        with adapter.connection_named("dot_live_check"):
            latest = adapter.execute_macro(
                "dot_reg_promotion",
                macro_resolver=_PENDING_START["manifest"],
                project="dot_tasks_ops",
                kwargs={"live_schema": _PENDING_START["live_schema"]},
            )
    except Exception:  # noqa: BLE001 - see the docstring
        return None
    commit = _PENDING_START["row"]["commit_sha"]
    if isinstance(latest, dict) and latest.get("commit") == commit:
        return IsolationError(_PENDING_START["live_refusal"])
    return None


def _record_start(task: Any, report: dict[str, Any]) -> None:
    """Write the build's 'running' event on dbt's own adapter, once the guard has passed.

    Written here, not before dbt starts, so that a build the guard refuses
    creates nothing, not even the registry schema or the DuckDB file; and
    before `before_run` creates the build's schemas, so that a clean on
    another machine sees this build running before it has written a thing.
    The macro is the ops project's `dot_registry_record`, resolved from its
    manifest (parsed before the build, see `_parse_ops`), so there is one
    registry SQL for every path.
    """
    from dbt.adapters.factory import get_adapter

    start = dict(_PENDING_START)
    _PENDING_START.clear()
    adapter = get_adapter(task.config)
    try:
        with adapter.connection_named("dot_registry"):
            value = adapter.execute_macro(
                "dot_registry_record",
                macro_resolver=start["manifest"],
                project="dot_tasks_ops",
                kwargs={"registry_schema": start["schema"], "row": start["row"]},
            )
    except Exception as error:  # noqa: BLE001 - the registry is best effort, the build is not
        _registry_unwritable(start["schema"], _one_line(error))
        return
    if isinstance(value, dict) and value.get("collision"):
        report["registry_collision"] = dict(value["collision"])
        return
    report["registered"] = True


def _child(request: DbtRequest, report: dict[str, Any]) -> int:
    from dbt.cli.main import dbtRunner

    from .files import write_atomic
    from .locks import hold

    common = [
        "--project-dir",
        request.project_dir,
        "--profiles-dir",
        request.profiles_dir,
        "--target",
        request.target,
    ]
    if request.deps_lock and request.deps_marker:
        with hold(Path(request.deps_lock), "this commit's `dbt deps`", request.lock_timeout):
            if not Path(request.deps_marker).exists():
                result = dbtRunner().invoke(["deps", *common, "--log-path", request.log_path])
                if not result.success:
                    return EXIT_ERROR if result.exception else EXIT_FAILURES
                write_atomic(Path(request.deps_marker), "ok\n")

    if request.command[0] in WRITING_COMMANDS:
        _install_guard(request, report)
    report["adapter_type"] = request.adapter_type
    report["dbt_version"], report["adapter_version"] = _versions(request.adapter_type)
    # Only writing commands are registered, and the guard writes their start
    # once it has passed (see _record_start).
    _parse_ops(request, report)
    try:
        code = _build_and_then(request, report, common)
    except DotError:
        if report.get("registered"):
            _registry_event(request, report, "failed")
        raise
    if report.get("registry_collision"):
        return EXIT_ERROR
    if report.get("registered"):
        _registry_event(request, report, "success" if code == EXIT_SUCCESS else "failed")
    return code


def _parse_ops(request: DbtRequest, report: dict[str, Any]) -> None:
    """Parse the ops project for `_record_start`: parsing touches no warehouse, run-operation would."""
    registry = request.registry
    if not registry:
        return
    from dbt.cli.main import dbtRunner

    target = OpsTarget(**registry["target"])
    result = dbtRunner().invoke(
        [
            "--quiet",
            "parse",
            "--project-dir",
            str(OPS_PROJECT),
            "--profiles-dir",
            target.profiles_dir,
            "--profile",
            target.profile,
            "--target",
            target.target,
            "--target-path",
            registry["ops_target_path"],
            "--log-path",
            target.log_path,
        ]
    )
    if not result.success or result.result is None:
        _registry_unwritable(registry["schema"], _one_line(result.exception) if result.exception else "the ops project did not parse")
        return
    _PENDING_START.update(
        manifest=result.result,
        schema=registry["schema"],
        live_schema=registry.get("live_schema"),
        live_refusal=registry.get("live_refusal"),
        row=dict(registry["row"], status="running"),
    )


def _registry_unwritable(schema: str, error: str) -> None:
    print(
        f"dot-tasks: warning: the build registry {schema}.dot_builds could not be written "
        f"({error}); building anyway, but `list --warehouse` and `clean --warehouse` will not see this build",
        file=sys.stderr,
        flush=True,
    )


def _registry_event(request: DbtRequest, report: dict[str, Any], status: str) -> bool:
    """Append the build's event to the warehouse registry, through the build's own profile.

    One `run-operation` of the ops project in this same process: dbt is
    already imported, so no second start is paid. Where the registry cannot be
    written (a read-only role, an adapter without the SQL), the build warns
    once and goes on; it is then not seen by `list --warehouse`.
    """
    registry = request.registry
    if not registry:
        return False
    from dbt.cli.main import dbtRunner

    from .registry import now_text

    # The start was written by the guard (_record_start): this is the end.
    row = dict(
        registry["row"],
        status=status,
        finished_at=now_text(),
        recorded_at=now_text(),
        dbt_version=report.get("dbt_version"),
        schemas=json.dumps(sorted(set(report.get("schemas") or []) | {registry["row"]["build_schema"]})),
    )
    target = OpsTarget(**registry["target"])
    value, error = _run_operation(
        dbtRunner(),
        MacroCall(target, "dot_registry_record", {"registry_schema": registry["schema"], "row": row}),
        registry["ops_target_path"],
    )
    if error is not None:
        _registry_unwritable(registry["schema"], error)
        return False
    return True


def _build_and_then(request: DbtRequest, report: dict[str, Any], common: list[str]) -> int:
    from dbt.cli.main import dbtRunner

    code = _invoke(
        dbtRunner(),
        [
            *request.command,
            *common,
            "--target-path",
            request.target_path,
            "--log-path",
            request.log_path,
            *request.args,
        ],
    )
    if code != EXIT_SUCCESS or not request.then_command:
        if code != EXIT_SUCCESS:
            report["failed_command"] = " ".join(request.command)
        return code
    if request.then_command[0] in WRITING_COMMANDS and request.command[0] not in WRITING_COMMANDS:
        _install_guard(request, report)
    then_target = Path(request.then_target_path or request.target_path)
    then_target.mkdir(parents=True, exist_ok=True)
    # The project is the same, so the first command's parse is reused.
    parsed = Path(request.target_path) / "partial_parse.msgpack"
    if parsed.is_file() and then_target != Path(request.target_path):
        shutil.copyfile(parsed, then_target / parsed.name)
    code = _invoke(
        dbtRunner(),
        [
            *request.then_command,
            *common,
            "--target-path",
            str(then_target),
            "--log-path",
            request.log_path,
            *request.then_args,
        ],
    )
    if code != EXIT_SUCCESS:
        report["failed_command"] = " ".join(request.then_command)
    report["then_succeeded"] = code == EXIT_SUCCESS
    return code


def _invoke(runner: Any, argv: list[str]) -> int:
    result = runner.invoke(argv)
    refusal = getattr(result.exception, "refusal", None)
    if isinstance(refusal, DotError):
        raise refusal  # the guard's, reported in our own words
    if getattr(result.exception, "collision", False):
        return EXIT_ERROR  # the report names the other commit; the parent lengthens the suffix
    if result.exception is not None:
        return EXIT_ERROR
    return EXIT_SUCCESS if result.success else EXIT_FAILURES


def _json_safe(value: Any) -> Any:
    """A macro's return value as plain JSON: agate tables become lists of row dicts."""
    import datetime
    import decimal

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if hasattr(value, "column_names") and hasattr(value, "rows"):  # agate.Table from run_query
        names = list(value.column_names)
        return [{n: _json_safe(v) for n, v in zip(names, row, strict=False)} for row in value.rows]
    if isinstance(value, (list, tuple, set)) or hasattr(value, "__iter__"):
        return [_json_safe(v) for v in value]
    return str(value)


def _one_line(exc: BaseException) -> str:
    """dbt's multi-line error ("Database Error\\n  relation x does not exist") as one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return ": ".join(lines[:3])[:500] or type(exc).__name__


_CAPTURED: dict[str, Any] = {}


def _capture_macro_values() -> None:
    """Make run-operation keep its macro's return value (and error, in our words) in `_CAPTURED`."""
    from dbt.task.run_operation import RunOperationTask

    if getattr(RunOperationTask._run_unsafe, "dot_capturing", False):
        return
    original = RunOperationTask._run_unsafe

    def keeping_the_value(task: Any, package_name: Any, macro_name: Any) -> Any:
        try:
            value = original(task, package_name, macro_name)
        except Exception as exc:
            _CAPTURED["error"] = _one_line(exc)
            raise
        _CAPTURED["value"] = value
        return value

    keeping_the_value.dot_capturing = True  # type: ignore[attr-defined]
    RunOperationTask._run_unsafe = keeping_the_value  # type: ignore[method-assign]


def _run_operation(runner: Any, call: MacroCall, target_path: str, quiet: bool = False) -> tuple[Any, str | None]:
    """(what the macro returned, None) or (None, its error), from one `dbt run-operation` in this process."""
    _capture_macro_values()
    _CAPTURED.clear()
    result = runner.invoke(
        [
            # --quiet keeps dbt's banner and per-statement lines off stderr; the macros' print() still shows.
            *(["--quiet"] if quiet else []),
            "run-operation",
            call.macro,
            "--project-dir",
            str(OPS_PROJECT),
            "--profiles-dir",
            call.target.profiles_dir,
            "--profile",
            call.target.profile,
            "--target",
            call.target.target,
            "--target-path",
            target_path,
            "--log-path",
            call.target.log_path,
            "--args",
            json.dumps(call.args),
        ]
    )
    if result.success:
        return _json_safe(_CAPTURED.get("value")), None
    return None, _CAPTURED.get("error") or (_one_line(result.exception) if result.exception else "see dbt's output above")


def _child_ops(payload: dict[str, Any], report: dict[str, Any]) -> int:
    """Run each macro call through `dbt run-operation`, keeping what the macro returned.

    run-operation discards the macro's return value, so the task method that
    calls the macro is wrapped to keep it (and the error, in our words).
    """
    from dbt.cli.main import dbtRunner

    outcomes: list[dict[str, Any]] = []
    for item in payload["calls"]:
        call = MacroCall(target=OpsTarget(**item["target"]), macro=item["macro"], args=item["args"])
        value, error = _run_operation(dbtRunner(), call, payload["scratch"], quiet=bool(payload.get("quiet")))
        outcomes.append({"value": value, "error": error})
    report["outcomes"] = outcomes
    return EXIT_SUCCESS if all(o["error"] is None for o in outcomes) else EXIT_ERROR


def _child_listing(listing: dict[str, Any], scratch: str) -> list[str]:
    import shutil

    from dbt.cli.main import dbtRunner

    target_path = Path(scratch) / "ls-target"
    if listing.get("parsed_in") and (Path(listing["parsed_in"]) / "partial_parse.msgpack").is_file():
        target_path.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(listing["parsed_in"]) / "partial_parse.msgpack", target_path / "partial_parse.msgpack")
    args = [
        "ls",
        "--quiet",
        "--log-level",
        "none",
        "--output",
        "json",
        "--output-keys",
        "unique_id",
        "--project-dir",
        listing["project_dir"],
        "--profiles-dir",
        listing["profiles_dir"],
        "--target",
        listing["target"],
        "--target-path",
        str(target_path),
        "--log-path",
        scratch,
    ]
    for kind in listing["resource_types"]:
        args += ["--resource-type", kind]
    if listing["select"]:
        args += ["--select", *listing["select"]]
    if listing["exclude"]:
        args += ["--exclude", *listing["exclude"]]
    if listing.get("state"):
        args += ["--state", listing["state"]]
    result = dbtRunner().invoke(args)
    if not result.success:
        raise DotError(
            "the selection could not be evaluated: " + (_one_line(result.exception) if result.exception else "see dbt's output above")
        )
    return [json.loads(line)["unique_id"] for line in (result.result or [])]


def _child_jobs(payload: dict[str, Any], report: dict[str, Any]) -> int:
    """The listing (if any), then every job on a thread pool inside one `run-operation`.

    run-operation gives a parsed ops project and an adapter for the target; its
    single macro call is replaced by the jobs, each thread in its own named
    connection, as dbt's own runner threads are.
    """
    import importlib
    import time
    from concurrent.futures import ThreadPoolExecutor

    from dbt.adapters.factory import get_adapter
    from dbt.cli.main import dbtRunner
    from dbt.task.run_operation import RunOperationTask

    scratch = payload["scratch"]
    jobs: list[dict[str, Any]] = payload["jobs"]
    selected = _child_listing(payload["listing"], scratch) if payload.get("listing") else None
    report["selected"] = selected
    wanted = set(selected) if selected is not None else None
    todo = [i for i, job in enumerate(jobs) if wanted is None or job.get("unique_id") in wanted]
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    module, _, name = payload["driver"].partition(":")
    driver = getattr(importlib.import_module(module), name)
    started = time.monotonic()

    def run_all(task: Any, package_name: Any, macro_name: Any) -> Any:
        adapter = get_adapter(task.config)

        def one(index: int) -> None:
            job = jobs[index]
            job_started = time.monotonic()
            with adapter.connection_named(f"dot_job_{index}"):

                def call(macro: str, **kwargs: Any) -> Any:
                    return _json_safe(adapter.execute_macro(macro, kwargs=kwargs, macro_resolver=task.manifest))

                try:
                    results[index] = {"value": _json_safe(driver(call, **job)), "error": None}
                except Exception as exc:  # noqa: BLE001 - one job's failure leaves the others going
                    results[index] = {"value": None, "error": _one_line(exc)}
            if time.monotonic() - started > 1.0:
                label = job.get("label") or job.get("unique_id") or index
                print(f"dot-tasks: compared {label} ({time.monotonic() - job_started:.1f}s)", file=sys.stderr, flush=True)

        with ThreadPoolExecutor(max_workers=max(1, int(payload["threads"]))) as pool:
            list(pool.map(one, todo))
        return None

    if todo:
        RunOperationTask._run_unsafe = run_all  # type: ignore[method-assign]
        target = payload["target"]
        result = dbtRunner().invoke(
            [
                "run-operation",
                "dot_diff_session",
                "--quiet",
                "--project-dir",
                str(OPS_PROJECT),
                "--profiles-dir",
                target["profiles_dir"],
                "--profile",
                target["profile"],
                "--target",
                target["target"],
                "--target-path",
                payload.get("ops_target_path") or scratch,
                "--log-path",
                target["log_path"],
            ]
        )
        if not result.success and any(results[i] is None for i in todo):
            raise DotError(
                "the comparison could not start: " + (_one_line(result.exception) if result.exception else "see dbt's output above")
            )
    report["results"] = results
    return EXIT_SUCCESS


#: Rows per message of a streamed query: what the child holds at once.
STREAM_CHUNK = 2000


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _stream_rows(adapter: Any, sql: str, report_fd: int) -> int:
    """Run `sql` and send its rows to the parent a chunk at a time; how many there were.

    run_query would hold the whole result (as an agate table) in this process; a
    diff of two databases reads millions of hashes this way. On PostgreSQL a named
    (server-side) cursor keeps the result on the server; DuckDB's cursor streams.
    """
    handle = adapter.connections.get_thread_connection().handle
    named = adapter.type() == "postgres"
    cursor = handle.cursor(name="dot_stream", withhold=bool(handle.autocommit)) if named else handle.cursor()
    count = 0
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(STREAM_CHUNK):
            count += len(rows)
            _write_all(report_fd, (json.dumps({"rows": _json_safe(rows)}) + "\n").encode())
    finally:
        if named:
            cursor.close()  # DuckDB's cursor is the connection's own: it stays open
    return count


def _child_session(payload: dict[str, Any], report_fd: int) -> int:
    """Answer macro calls read from stdin, one JSON line each, until stdin closes."""
    from dbt.adapters.factory import get_adapter
    from dbt.cli.main import dbtRunner
    from dbt.task.run_operation import RunOperationTask

    def serve(task: Any, package_name: Any, macro_name: Any) -> Any:
        adapter = get_adapter(task.config)
        with adapter.connection_named("dot_session"):
            for line in sys.stdin:
                call = json.loads(line)
                try:
                    value = adapter.execute_macro(call["macro"], kwargs=call["args"], macro_resolver=task.manifest)
                    if call.get("stream"):
                        value = _stream_rows(adapter, str(value), report_fd)
                    reply = {"value": _json_safe(value), "error": None}
                except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
                    reply = {"value": None, "error": _one_line(exc)}
                _write_all(report_fd, (json.dumps({"reply": reply}) + "\n").encode())
        return None

    RunOperationTask._run_unsafe = serve  # type: ignore[method-assign]
    target = payload["target"]
    result = dbtRunner().invoke(
        [
            "run-operation",
            "dot_diff_session",
            "--quiet",
            "--project-dir",
            str(OPS_PROJECT),
            "--profiles-dir",
            target["profiles_dir"],
            "--profile",
            target["profile"],
            "--target",
            target["target"],
            "--target-path",
            payload["scratch"],
            "--log-path",
            target["log_path"],
        ]
    )
    if not result.success:
        raise DotError(
            "the dbt session could not start: " + (_one_line(result.exception) if result.exception else "see dbt's output above")
        )
    return EXIT_SUCCESS


def _main(argv: list[str]) -> int:
    kind, argument, report_fd = argv[1], argv[2], int(argv[3])
    if kind != "build":
        # A warehouse operation (a promotion's switch, a drop) must not go on
        # once nobody waits for it. A build may: it holds its locks until it
        # ends, and its record stays `running`, which the gate refuses.
        # (A session reads its calls from stdin: it ends by itself when the parent goes.)
        _die_with_parent(watch_stdin=kind != "session")
    if argument.startswith("@"):
        spill = Path(argument[1:])
        argument = spill.read_text(encoding="utf-8")
        spill.unlink(missing_ok=True)
    payload = json.loads(argument)
    # dbt prints its progress to stdout; send it to stderr so that the parent's
    # stdout carries results only.
    os.dup2(2, 1)
    # Spark in session mode binds its driver to the machine's first address
    # otherwise, which may not be routable (or may change under a laptop).
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    report: dict[str, Any] = {}
    try:
        if kind == "ops":
            code = _child_ops(payload, report)
        elif kind == "jobs":
            code = _child_jobs(payload, report)
        elif kind == "session":
            code = _child_session(payload, report_fd)
        else:
            code = _child(DbtRequest(**payload), report)
    except DotError as exc:
        report.update(error=str(exc), error_kind=type(exc).__name__)
        code = exc.exit_code
    report["exit_code"] = code
    with os.fdopen(report_fd, "w", encoding="utf-8") as writer:
        writer.write(json.dumps(report))
    return code


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
