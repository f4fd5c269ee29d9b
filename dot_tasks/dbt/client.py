"""The parent side: start a dbt child, send it a request, read back its report.

Every call goes through one transport (`_start_child`): a child
`python -m dot_tasks.dbt.child MODE PAYLOAD FD`, whose report comes back as
JSON on the pipe FD while dbt's own output goes to stderr, so stdout stays
free for results. `run_dbt`, `call_macros` and `run_macro_jobs` read one
report; a `MacroSession` reads a reply per call from the same pipe. Nothing
here imports dbt, so steps that do not build stay fast.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from .. import errors
from ..errors import DbtFailed, DotError, WarehouseError
from .protocol import (
    EXIT_ERROR,
    EXIT_SUCCESS,
    PARENT_ENV,
    DbtOutcome,
    DbtRequest,
    JobsOutcome,
    JobsReport,
    MacroCall,
    MacroJobs,
    MacroOutcome,
    OpsReport,
    OpsRequest,
    OpsTarget,
    Payload,
    SessionCall,
    SessionRequest,
)

# Linux caps one argument at 128 KiB: a larger payload travels in a private file.
_ARGV_LIMIT = 100_000
#: The module the child runs as.
CHILD_MODULE = "dot_tasks.dbt.child"


def _importable(module: str) -> bool:
    # find_spec raises, rather than answering None, when a parent package is missing.
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def adapter_available(adapter_type: str) -> bool:
    """Whether the dbt adapter for `adapter_type` is installed (found without importing it)."""
    return _importable(f"dbt.adapters.{adapter_type}")


def require_dbt() -> None:
    """Refuse, saying what to install, when dbt is not installed here."""
    if not _importable("dbt.cli"):
        raise DotError(
            "dbt is not installed in this Python environment: pip install 'dot-tasks' "
            "(which brings dbt-core) and the adapter for your warehouse"
        )


def _child_env() -> dict[str, str]:
    return {**os.environ, PARENT_ENV: str(os.getpid())}


def _argument(payload: Payload, cwd: str) -> str:
    """The payload as the child's argument: JSON, or `@file` when too long for one argument."""
    argument = json.dumps(payload.to_payload())
    if len(argument) <= _ARGV_LIMIT:
        return argument
    # A promotion of thousands of models travels in a private file instead.
    fd, spill = tempfile.mkstemp(prefix=".dot-payload-", suffix=".json", dir=cwd)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(argument)
    return "@" + spill


def _start_child(mode: str, payload: Payload, cwd: str, lock_fds: tuple[int, ...]) -> tuple[subprocess.Popen[str], IO[str]]:
    """Start a dbt child in `mode`; the process, and the read end of its report pipe.

    The child inherits `lock_fds`, so the locks stay held while dbt runs even
    if this process is killed: a flock lasts until its last descriptor closes.
    """
    argument = _argument(payload, cwd)
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE, mode, argument, str(write_fd)],
            # A pipe that stays open while this process lives: the child's watch
            # elsewhere than Linux, and a session's calls.
            stdin=subprocess.PIPE,
            stdout=sys.stderr.fileno(),  # dbt's output is progress, not a result
            pass_fds=(write_fd, *lock_fds),
            cwd=cwd,
            text=True,
            env=_child_env(),
        )
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    return proc, os.fdopen(read_fd, "r", encoding="utf-8")


def _parse_report(text: str) -> dict[str, Any]:
    """The child's JSON report; empty when it died before writing one."""
    try:
        report = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}
    return report if isinstance(report, dict) else {}


def _exchange(mode: str, payload: Payload, cwd: str, lock_fds: tuple[int, ...] = ()) -> tuple[int, dict[str, Any]]:
    """Run `payload` in a dbt child; its exit code and its JSON report."""
    proc, reader = _start_child(mode, payload, cwd, lock_fds)
    with reader:
        report = reader.read()
    code = proc.wait()
    assert proc.stdin is not None
    proc.stdin.close()
    return code, _parse_report(report)


def run_dbt(request: DbtRequest, lock_fds: tuple[int, ...] = ()) -> DbtOutcome:
    """Run dbt for `request` in a child process and report how it went."""
    code, report = _exchange("build", request, cwd=request.project_dir, lock_fds=lock_fds)
    return DbtOutcome.from_payload({**report, "exit_code": code})


def _not_reported(code: int, error: str | None) -> str:
    return error or f"dbt exited with {code} before reporting"


def call_macros(calls: list[MacroCall], scratch: Path, lock_fds: tuple[int, ...] = (), quiet: bool = False) -> list[MacroOutcome]:
    """Run each call's macro in one dbt start; one outcome per call, in order.

    The SQL lives in the `dbt_ops` macros and goes through the adapter of each
    call's own profile, so any adapter works; only what a macro returns comes
    back here (counts, samples, names), never a table's worth of rows.
    `lock_fds` (from `builds.warehouse_locks`) are inherited by the child, as
    for `run_dbt`: a promotion's locks stay held until its transaction is over,
    even if this process is killed. `quiet` keeps dbt's banner and logs off
    stderr (errors and the macros' own `print` lines still show).
    """
    if not calls:
        return []
    require_dbt()
    scratch.mkdir(parents=True, exist_ok=True)
    request = OpsRequest(calls=calls, scratch=str(scratch), quiet=quiet)
    code, payload = _exchange("ops", request, cwd=str(scratch), lock_fds=lock_fds)
    report = OpsReport.from_payload(payload)
    if report.outcomes is None or len(report.outcomes) != len(calls):
        return [MacroOutcome(error=_not_reported(code, report.error)) for _ in calls]
    return report.outcomes


def run_macro_jobs(request: MacroJobs, scratch: Path, lock_fds: tuple[int, ...] = ()) -> JobsOutcome:
    """Run `request`'s jobs concurrently in one dbt child; only what the drivers return comes back."""
    require_dbt()
    scratch.mkdir(parents=True, exist_ok=True)
    code, payload = _exchange("jobs", replace(request, scratch=str(scratch)), cwd=str(scratch), lock_fds=lock_fds)
    report = JobsReport.from_payload(payload)
    if report.error or report.results is None or len(report.results) != len(request.jobs):
        return JobsOutcome(selected=None, results=[None] * len(request.jobs), error=_not_reported(code, report.error))
    return JobsOutcome(selected=report.selected, results=report.results)


class MacroSession:
    """One dbt child that stays up and runs ops macros one call at a time, sent over a pipe.

    For work that goes back and forth between two warehouses (the two-database
    diff): each side gets its own session, so each keeps one dbt start and one
    connection however many calls it takes.
    """

    def __init__(self, target: OpsTarget, scratch: Path, lock_fds: tuple[int, ...] = ()) -> None:
        require_dbt()
        scratch.mkdir(parents=True, exist_ok=True)
        request = SessionRequest(target=target, scratch=str(scratch))
        self._proc, self._replies = _start_child("session", request, str(scratch), lock_fds)
        self.calls = 0
        #: Streams started, and the one whose rows and answer are still to be read (0: none).
        self._streams = self._streaming = 0

    def _send(self, call: SessionCall) -> None:
        assert self._proc.stdin is not None
        self._finish_abandoned_stream()
        try:
            self._proc.stdin.write(json.dumps(call.to_payload()) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the child is gone; the empty reply says so

    def call(self, macro: str, **kwargs: Any) -> Any:
        """What `macro` returned; a failed call raises WarehouseError with its first line."""
        self._send(SessionCall(macro, kwargs))
        return self._reply(macro, self._replies.readline())

    def stream(self, macro: str, **kwargs: Any) -> Iterator[list[Any]]:
        """The rows of the query `macro` returns as SQL, read a chunk at a time.

        The query starts now (so two sessions' queries run at once); the rows
        arrive as the iterator is read. One left unread is read to its end by
        the session's next call.
        """
        self._send(SessionCall(macro, kwargs, stream=True))
        self._streams += 1
        self._streaming = self._streams
        return self._rows(macro, self._streams)

    def _rows(self, macro: str, stream: int) -> Iterator[list[Any]]:
        # An abandoned stream's rest is read by the next call (`_finish_abandoned_stream`); this
        # iterator then ends rather than read that call's answer.
        while self._streaming == stream and (line := self._replies.readline()).startswith('{"rows"'):
            yield from json.loads(line)["rows"]
        if self._streaming == stream:
            self._streaming = 0
            self._reply(macro, line)

    def _finish_abandoned_stream(self) -> None:
        """Read to its answer a stream its reader left unread, so that the next call reads its own.

        A diff stops reading one side's stream when the other side's query fails; the rows and
        the answer still to come from this side would otherwise be taken as the next call's.
        """
        if self._streaming:
            self._streaming = 0
            while (line := self._replies.readline()).startswith('{"rows"'):
                pass
            if line.startswith('{"reply"'):
                self.calls += 1

    def _reply(self, macro: str, line: str) -> Any:
        if not line.startswith('{"reply"'):
            # The child's last word, the report of a session that ended.
            reason = _parse_report(line + self._replies.read()).get("error")
            raise WarehouseError(f"the dbt session ended before answering {macro}: {reason or 'see dbt output above'}")
        self.calls += 1
        reply = MacroOutcome.from_payload(json.loads(line)["reply"])
        if reply.error:
            raise WarehouseError(f"{macro} failed: {reply.error}")
        return reply.value

    def close(self) -> None:
        """End the session: close its stdin, and wait for the child to go."""
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


def _error_of_kind(kind: str | None, message: str) -> DotError:
    """The child's error raised again here as the DotError subclass it was raised as there."""
    found = getattr(errors, kind or "", None)
    if isinstance(found, type) and issubclass(found, DbtFailed):
        return found(message, EXIT_ERROR)
    if isinstance(found, type) and issubclass(found, DotError):
        return found(message)
    return DotError(message)  # a kind defined outside errors.py (a room's own) keeps the base


def failure(outcome: DbtOutcome, request: DbtRequest) -> DotError | None:
    """The error to report for a child that did not succeed, if it did not."""
    if outcome.error:
        error = _error_of_kind(outcome.error_kind, outcome.error)
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
