"""The dbt child: `python -m dot_tasks.dbt.child MODE PAYLOAD REPORT_FD`.

Started by `client` only. It reads the payload (JSON, or `@file` for a large
one), rebuilds the mode's request dataclass, runs the mode in this one dbt
start and writes the mode's report as JSON to REPORT_FD. dbt's own output
goes to stderr. A DotError raised by a mode is reported, by message and
kind, for the parent to raise again.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DotError
from .protocol import (
    EXIT_SUCCESS,
    PARENT_ENV,
    DbtOutcome,
    DbtRequest,
    JobsReport,
    MacroJobs,
    OpsReport,
    OpsRequest,
    Payload,
    SessionReport,
    SessionRequest,
)


@dataclass(frozen=True)
class Mode:
    """One mode of the child: the request it reads, the report it writes, and what runs it."""

    request: type[Payload]
    report: type[Payload]
    #: run(request, report, report_fd) -> exit code; it fills `report`.
    run: Callable[[Any, Any, int], int]


def _build(request: DbtRequest, report: DbtOutcome, report_fd: int) -> int:
    from .child_build import run_build

    return run_build(request, report)


def _ops(request: OpsRequest, report: OpsReport, report_fd: int) -> int:
    from .child_ops import run_ops

    return run_ops(request, report)


def _jobs(request: MacroJobs, report: JobsReport, report_fd: int) -> int:
    from .child_ops import run_jobs

    return run_jobs(request, report)


def _session(request: SessionRequest, report: SessionReport, report_fd: int) -> int:
    from .child_ops import run_session

    return run_session(request, report, report_fd)


MODES = {
    "build": Mode(DbtRequest, DbtOutcome, _build),
    "ops": Mode(OpsRequest, OpsReport, _ops),
    "jobs": Mode(MacroJobs, JobsReport, _jobs),
    "session": Mode(SessionRequest, SessionReport, _session),
}


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


def _read_payload(argument: str) -> dict[str, Any]:
    """The payload the parent sent: inline JSON, or `@file` (a private file, removed once read)."""
    if argument.startswith("@"):
        spill = Path(argument[1:])
        argument = spill.read_text(encoding="utf-8")
        spill.unlink(missing_ok=True)
    payload: dict[str, Any] = json.loads(argument)
    return payload


def main(argv: list[str]) -> int:
    """Run the mode `argv` names and write its report; the exit code."""
    kind, argument, report_fd = argv[1], argv[2], int(argv[3])
    if kind != "build":
        # A warehouse operation (a promotion's switch, a drop) must not go on
        # once nobody waits for it. A build may: it holds its locks until it
        # ends, and its record stays `running`, which the gate refuses.
        # (A session reads its calls from stdin: it ends by itself when the parent goes.)
        _die_with_parent(watch_stdin=kind != "session")
    mode = MODES[kind]
    request = mode.request.from_payload(_read_payload(argument))
    # dbt prints its progress to stdout; send it to stderr so that the parent's
    # stdout carries results only.
    os.dup2(2, 1)
    # Spark in session mode binds its driver to the machine's first address
    # otherwise, which may not be routable (or may change under a laptop).
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    report: Any = mode.report.from_payload({"exit_code": EXIT_SUCCESS})
    try:
        code = mode.run(request, report, report_fd)
    except DotError as exc:
        report.error, report.error_kind = str(exc), type(exc).__name__
        code = exc.exit_code
    report.exit_code = code
    with os.fdopen(report_fd, "w", encoding="utf-8") as writer:
        writer.write(json.dumps(report.to_payload()))
    return code


#: Modes that only read the warehouse, so may leave without Python's own shutdown.
READ_ONLY_MODES = ("jobs", "session")


def _leave(code: int, kind: str) -> None:
    """End the process once its report is written.

    A read-only child skips the interpreter's shutdown: tearing down dbt's modules and
    objects took about 0.4 s of a 4.6 s diff, after every result was in the parent's hands.
    Coverage (which measures these children in the tests) is saved first, since it saves at
    exit. Not with an in-process Spark: its JVM and embedded metastore are shut down by
    Python's own exit hooks.
    """
    if kind not in READ_ONLY_MODES or "pyspark" in sys.modules:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    coverage = sys.modules.get("coverage")
    current = coverage.Coverage.current() if coverage is not None else None
    if current is not None:
        current.stop()
        current.save()
    os._exit(code)


if __name__ == "__main__":
    _leave(main(sys.argv), sys.argv[1])
