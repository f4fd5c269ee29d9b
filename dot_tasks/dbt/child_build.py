"""The dbt child's `build` mode: `dbt deps` if needed, the command, and `--clone`'s clone, in one dbt start.

dbt is imported here, in the child only. The guard (`child_guard`) checks
what the command is about to write and records the build's start in the
warehouse registry; this module writes the end, through the same adapter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import DotError
from .child_guard import PendingStart, install_guard, prepare_start, record_end, registry_unwritable
from .guard import WRITING_COMMANDS
from .protocol import EXIT_ERROR, EXIT_FAILURES, EXIT_SUCCESS, DbtOutcome, DbtRequest, RegistryEvent


def run_build(request: DbtRequest, report: DbtOutcome) -> int:
    """Run the build's dbt command (and `then_command`), guarded and registered; dbt's exit code."""
    common = ["--project-dir", request.project_dir, "--profiles-dir", request.profiles_dir, "--target", request.target]
    code = _deps(request, common)
    if code != EXIT_SUCCESS:
        return code
    # Only writing commands are registered, and the guard writes their start
    # once it has passed (see child_guard._record_start).
    pending = prepare_start(RegistryEvent.from_payload(request.registry) if request.registry else None)
    if request.command[0] in WRITING_COMMANDS:
        install_guard(request, report, pending)
    report.adapter_type = request.adapter_type
    report.dbt_version, report.adapter_version = _versions(request.adapter_type)
    try:
        code = _build_and_then(request, report, common)
    except DotError:
        if report.registered and pending is not None:
            _record_end(pending, report, "failed")
        raise
    if report.registry_collision:
        return EXIT_ERROR
    if report.registered and pending is not None:
        _record_end(pending, report, "success" if code == EXIT_SUCCESS else "failed")
    return code


def _deps(request: DbtRequest, common: list[str]) -> int:
    """`dbt deps`, once per commit, under the commit's lock; dbt's exit code."""
    if not (request.deps_lock and request.deps_marker):
        return EXIT_SUCCESS
    from dbt.cli.main import dbtRunner

    from ..files import write_atomic
    from ..locks import hold

    with hold(Path(request.deps_lock), "this commit's `dbt deps`", request.lock_timeout):
        if not Path(request.deps_marker).exists():
            result = dbtRunner().invoke(["deps", *common, "--log-path", request.log_path])
            if not result.success:
                return EXIT_ERROR if result.exception else EXIT_FAILURES
            write_atomic(Path(request.deps_marker), "ok\n")
    return EXIT_SUCCESS


def _versions(adapter_type: str) -> tuple[str | None, str | None]:
    """The installed dbt-core and adapter versions, for the build record."""
    from importlib.metadata import PackageNotFoundError, version

    def get(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return get("dbt-core"), get(f"dbt-{adapter_type}") if adapter_type else None


def _record_end(start: PendingStart, report: DbtOutcome, status: str) -> bool:
    """Append the build's end to the warehouse registry, through the adapter the guard wrote its start with.

    No second dbt start or parse is paid (see `child_guard.record_end`).
    Where the registry cannot be written (a read-only role, an adapter
    without the SQL), the build warns once and goes on; it is then not seen
    by `list --warehouse`.
    """
    from ..timestamps import now_text

    event = start.event
    row = dict(
        event.row,
        status=status,
        finished_at=now_text(),
        recorded_at=now_text(),
        dbt_version=report.dbt_version,
        schemas=json.dumps(sorted(set(report.schemas or []) | {event.row["build_schema"]})),
    )
    error = record_end(start, row)
    if error is not None:
        registry_unwritable(event.schema, error)
        return False
    return True


def _build_and_then(request: DbtRequest, report: DbtOutcome, common: list[str]) -> int:
    """The command, then `then_command` if the command succeeded; the exit code of the last that ran."""
    from dbt.cli.main import dbtRunner

    argv = [*request.command, *common, "--target-path", request.target_path, "--log-path", request.log_path, *request.args]
    code = _invoke(dbtRunner(), argv)
    if code != EXIT_SUCCESS or not request.then_command:
        if code != EXIT_SUCCESS:
            report.failed_command = " ".join(request.command)
        return code
    if request.then_command[0] in WRITING_COMMANDS and request.command[0] not in WRITING_COMMANDS:
        install_guard(request, report, None)
    then_target = Path(request.then_target_path or request.target_path)
    then_target.mkdir(parents=True, exist_ok=True)
    # The project is the same, so the first command's parse is reused.
    parsed = Path(request.target_path) / "partial_parse.msgpack"
    if parsed.is_file() and then_target != Path(request.target_path):
        shutil.copyfile(parsed, then_target / parsed.name)
    then_argv = [*request.then_command, *common, "--target-path", str(then_target), "--log-path", request.log_path, *request.then_args]
    code = _invoke(dbtRunner(), then_argv)
    if code != EXIT_SUCCESS:
        report.failed_command = " ".join(request.then_command)
    report.then_succeeded = code == EXIT_SUCCESS
    return code


def _invoke(runner: Any, argv: list[str]) -> int:
    """Run one dbt command in this process; dbt's exit code, or the guard's refusal raised as ours."""
    result = runner.invoke(argv)
    refusal = getattr(result.exception, "refusal", None)
    if isinstance(refusal, DotError):
        raise refusal  # the guard's, reported in our own words
    if getattr(result.exception, "collision", False):
        return EXIT_ERROR  # the report names the other commit; the parent lengthens the suffix
    if result.exception is not None:
        return EXIT_ERROR
    return EXIT_SUCCESS if result.success else EXIT_FAILURES
