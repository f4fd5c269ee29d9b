"""The dbt child's warehouse operations: the `ops`, `jobs` and `session` modes.

dbt is imported here, in the child only. Each mode runs macros of the
shipped `dbt_ops` project through `dbt run-operation`, so that dbt parses the
project and opens the adapter of the target's profile; what the macros
return is sent back as JSON.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from ..errors import DotError
from .child_common import json_safe, one_line, ops_flags, patch, why_it_failed, write_all
from .protocol import (
    EXIT_ERROR,
    EXIT_SUCCESS,
    JobsReport,
    Listing,
    MacroCall,
    MacroJobs,
    MacroOutcome,
    OpsReport,
    OpsRequest,
    OpsTarget,
    SessionCall,
    SessionReport,
    SessionRequest,
)

#: Rows per message of a streamed query: what the child holds at once.
STREAM_CHUNK = 2000

#: What the last macro run by `run_operation` returned, or its error.
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
            _CAPTURED["error"] = one_line(exc)
            raise
        _CAPTURED["value"] = value
        return value

    keeping_the_value.dot_capturing = True  # type: ignore[attr-defined]
    # run-operation discards what its macro returns; the call is wrapped to keep it.
    patch(RunOperationTask, "_run_unsafe", keeping_the_value)


def run_operation(runner: Any, call: MacroCall, target_path: str, quiet: bool = False) -> tuple[Any, str | None]:
    """(what the macro returned, None) or (None, its error), from one `dbt run-operation` in this process."""
    _capture_macro_values()
    _CAPTURED.clear()
    result = runner.invoke(
        [
            # --quiet keeps dbt's banner and per-statement lines off stderr; the macros' print() still shows.
            *(["--quiet"] if quiet else []),
            "run-operation",
            call.macro,
            *ops_flags(call.target, target_path),
            "--args",
            json.dumps(call.args),
        ]
    )
    if result.success:
        return json_safe(_CAPTURED.get("value")), None
    return None, _CAPTURED.get("error") or why_it_failed(result)


def run_ops(request: OpsRequest, report: OpsReport) -> int:
    """Run each macro call through `dbt run-operation`, keeping what the macro returned."""
    from dbt.cli.main import dbtRunner

    outcomes = []
    for call in request.calls:
        value, error = run_operation(dbtRunner(), call, request.scratch, quiet=request.quiet)
        outcomes.append(MacroOutcome(value, error))
    report.outcomes = outcomes
    return EXIT_SUCCESS if all(o.error is None for o in outcomes) else EXIT_ERROR


def _run_in_operation(target: OpsTarget, target_path: str, body: Callable[[Any, Any, Any], Any]) -> Any:
    """Start `dbt run-operation` on the ops project with `body` in place of its macro call; dbt's result."""
    from dbt.cli.main import dbtRunner
    from dbt.task.run_operation import RunOperationTask

    # run-operation gives a parsed ops project and an adapter for the target,
    # then calls one macro: `body` takes that call's place and does its own work.
    patch(RunOperationTask, "_run_unsafe", body)
    return dbtRunner().invoke(["run-operation", "dot_diff_session", "--quiet", *ops_flags(target, target_path)])


# --- jobs -----------------------------------------------------------------------


def _set_up_session(adapter: Any, task: Any, spill_dir: str | None = None, memory_mb: int | None = None) -> None:
    """The engine's settings for dot-tasks' own queries on this connection (`dot_session_setup`);
    with `spill_dir`, an engine inside this process limited to `memory_mb` (None: its
    default) and spilling there.

    Best effort: a warehouse that refuses a setting (a managed one may allow
    only some) still runs the queries, as it would have without it.
    """
    kwargs = {"spill_dir": spill_dir, "memory_mb": memory_mb}
    try:
        adapter.execute_macro("dot_session_setup", kwargs=kwargs, macro_resolver=task.manifest)
    except Exception:  # noqa: BLE001 - see the docstring
        adapter.connections.rollback_if_open()


def _listing(listing: Listing, scratch: str) -> list[str]:
    """The unique ids `dbt ls` selects for `listing`."""
    from dbt.cli.main import dbtRunner

    target_path = Path(scratch) / "ls-target"
    if listing.parsed_in and (Path(listing.parsed_in) / "partial_parse.msgpack").is_file():
        target_path.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(listing.parsed_in) / "partial_parse.msgpack", target_path / "partial_parse.msgpack")
    args = ["ls", "--quiet", "--log-level", "none", "--output", "json", "--output-keys", "unique_id"]
    args += ["--project-dir", listing.project_dir, "--profiles-dir", listing.profiles_dir, "--target", listing.target]
    args += ["--target-path", str(target_path), "--log-path", scratch]
    for kind in listing.resource_types:
        args += ["--resource-type", kind]
    if listing.select:
        args += ["--select", *listing.select]
    if listing.exclude:
        args += ["--exclude", *listing.exclude]
    if listing.state:
        args += ["--state", listing.state]
    result = dbtRunner().invoke(args)
    if not result.success:
        raise DotError("the selection could not be evaluated: " + why_it_failed(result))
    lines = cast("list[str]", result.result or [])  # `ls` gives its lines; the type says any command's result
    return [json.loads(line)["unique_id"] for line in lines]


def _load_driver(spec: str) -> Callable[..., Any]:
    """The function a "module:function" spec names."""
    module, _, name = spec.partition(":")
    driver: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return driver


def _jobs_body(request: MacroJobs, todo: list[int], results: list[MacroOutcome | None]) -> Callable[[Any, Any, Any], Any]:
    """run-operation's macro call replaced by every job in `todo`, on a thread pool, filling `results`."""
    from dbt.adapters.factory import get_adapter

    driver = _load_driver(request.driver)
    started = time.monotonic()

    def run_all(task: Any, package_name: Any, macro_name: Any) -> Any:
        adapter = get_adapter(task.config)

        def one(index: int) -> None:
            job = request.jobs[index]
            job_started = time.monotonic()
            # Each thread in its own named connection, as dbt's own runner threads are.
            with adapter.connection_named(f"dot_job_{index}"):
                _set_up_session(adapter, task)

                def call(macro: str, **kwargs: Any) -> Any:
                    return json_safe(adapter.execute_macro(macro, kwargs=kwargs, macro_resolver=task.manifest))

                try:
                    results[index] = MacroOutcome(json_safe(driver(call, **job)), None)
                except Exception as exc:  # noqa: BLE001 - one job's failure leaves the others going
                    results[index] = MacroOutcome(None, one_line(exc))
            if time.monotonic() - started > 1.0:
                label = job.get("label") or job.get("unique_id") or index
                # One write per line: print() writes the text and its newline apart, and two
                # job threads then ran their lines together.
                sys.stderr.write(f"dot-tasks: compared {label} ({time.monotonic() - job_started:.1f}s)\n")
                sys.stderr.flush()

        with ThreadPoolExecutor(max_workers=max(1, int(request.threads))) as pool:
            list(pool.map(one, todo))
        return None

    return run_all


def run_jobs(request: MacroJobs, report: JobsReport) -> int:
    """The listing (if any), then every job it selects on a thread pool inside one `run-operation`."""
    selected = _listing(request.listing, request.scratch) if request.listing else None
    report.selected = selected
    wanted = set(selected) if selected is not None else None
    todo = [i for i, job in enumerate(request.jobs) if wanted is None or job.get("unique_id") in wanted]
    results: list[MacroOutcome | None] = [None] * len(request.jobs)
    if todo:
        result = _run_in_operation(request.target, request.ops_target_path or request.scratch, _jobs_body(request, todo, results))
        if not result.success and any(results[i] is None for i in todo):
            raise DotError("the comparison could not start: " + why_it_failed(result))
    report.results = results
    return EXIT_SUCCESS


# --- a session ------------------------------------------------------------------


def _stream_rows(adapter: Any, sql: str, report_fd: int, sent: list[int]) -> int:
    """Run `sql` and send its rows to the parent a chunk at a time; how many there were.

    run_query would hold the whole result (as an agate table) in this process; a
    diff of two databases reads millions of hashes this way. On PostgreSQL a named
    (server-side) cursor keeps the result on the server; DuckDB's cursor streams.
    `sent` counts the rows as they leave, so a failed call knows whether any did.
    """
    handle = adapter.connections.get_thread_connection().handle
    own = adapter.type() in ("postgres", "duckdb")
    if adapter.type() == "postgres":
        cursor = handle.cursor(name="dot_stream", withhold=bool(handle.autocommit))
    elif own:
        # dbt-duckdb's cursor is the connection's own; a query that fails while it streams
        # leaves it failing every statement after (the next model's too), so the stream gets a
        # cursor of its own (same database, settings and attachments), closed after.
        cursor = handle.cursor().cursor()
    else:
        cursor = handle.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(STREAM_CHUNK):
            write_all(report_fd, (json.dumps({"rows": json_safe(rows)}) + "\n").encode())
            sent[0] += len(rows)
    finally:
        if own:
            cursor.close()
    return sent[0]


#: The memory (MB) a two-database diff's session lets an engine inside the dbt child use, and
#: the steps a query that ran out of it is run again with (None: the engine's own default).
SESSION_MEMORY_MB: tuple[int | None, ...] = (32, 128, 512, None)


class _Session:
    """One side's session of a two-database diff: its settings, and the calls it answers."""

    def __init__(self, adapter: Any, task: Any, spill_dir: str) -> None:
        self.adapter, self.task, self.spill_dir = adapter, task, spill_dir
        self.set_memory(SESSION_MEMORY_MB[0])

    def set_memory(self, memory_mb: int | None) -> None:
        _set_up_session(self.adapter, self.task, spill_dir=self.spill_dir, memory_mb=memory_mb)

    def answer(self, call: SessionCall, report_fd: int) -> MacroOutcome:
        """Run one call; its outcome (a streamed call's value is its row count).

        A query the engine ran out of memory for, before any of its rows left, is run again
        with more (see SESSION_MEMORY_MB), and the session then goes back to the small limit:
        memory stays bounded for the queries that fit, and no count is lost for those that
        do not (2 KB rows need more than 32 MB to scan and sort).
        """
        outcome, sent = self._run(call, report_fd)
        raised = False
        # Only an engine in this process has its memory limited here (DuckDB's); a warehouse
        # server that runs out of memory would only fail the same query again.
        for more in SESSION_MEMORY_MB[1:] if self.adapter.type() == "duckdb" else ():
            if outcome.error is None or sent or "out of memory" not in outcome.error.lower():
                break
            self.set_memory(more)
            (outcome, sent), raised = self._run(call, report_fd), True
        if raised:
            self.set_memory(SESSION_MEMORY_MB[0])
        return outcome

    def _run(self, call: SessionCall, report_fd: int) -> tuple[MacroOutcome, int]:
        """One try of `call`: its outcome, and how many rows it sent before it ended."""
        sent = [0]
        try:
            value = self.adapter.execute_macro(call.macro, kwargs=call.args, macro_resolver=self.task.manifest)
            if call.stream:
                value = _stream_rows(self.adapter, str(value), report_fd, sent)
            return MacroOutcome(json_safe(value), None), sent[0]
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            # A failed statement leaves the transaction aborted: without a rollback every
            # later call of this session (the next models) would fail too.
            self.adapter.connections.rollback_if_open()
            return MacroOutcome(None, one_line(exc)), sent[0]


def run_session(request: SessionRequest, report: SessionReport, report_fd: int) -> int:
    """Answer macro calls read from stdin, one JSON line each, until stdin closes."""
    from dbt.adapters.factory import get_adapter

    def serve(task: Any, package_name: Any, macro_name: Any) -> Any:
        adapter = get_adapter(task.config)
        with adapter.connection_named("dot_session"):
            session = _Session(adapter, task, spill_dir=str(Path(request.scratch) / "spill"))
            for line in sys.stdin:
                reply = session.answer(SessionCall.from_payload(json.loads(line)), report_fd)
                write_all(report_fd, (json.dumps({"reply": reply.to_payload()}) + "\n").encode())
        return None

    result = _run_in_operation(request.target, request.scratch, serve)
    if not result.success:
        raise DotError("the dbt session could not start: " + why_it_failed(result))
    return EXIT_SUCCESS
