"""Locks: how long a run waits, what it waits for, and locks other programs hold (Derby's, in a Spark JVM)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Project, duckdb_rows, make_project
from gates import Gate, Run, add_gate_model

from dot_tasks.errors import LockTimeout
from dot_tasks.locks import hold, posix_lock_holder, wait_while_locked


@pytest.mark.parametrize("timeout", [0.3, 1.0])
def test_lock_timeout_waits_as_long_as_asked_and_no_longer(tmp_path, capsys, timeout: float) -> None:
    lock = tmp_path / "x.lock"
    with hold(lock, "the first holder", timeout=1):
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=f"gave up after {timeout:g}s waiting for the second"):
            with hold(lock, "the second", timeout=timeout):
                pass
        waited = time.monotonic() - started
    assert timeout <= waited < timeout + 1.0, waited  # a loaded CI machine oversleeps a little
    assert capsys.readouterr().err.count("dot-tasks: waiting for the second (held by pid") == 1


def test_a_waiting_run_gets_the_lock_as_soon_as_it_is_free(tmp_path) -> None:
    lock = tmp_path / "x.lock"
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with hold(lock, "first", timeout=1):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(10)
    threading.Timer(0.4, release.set).start()
    started = time.monotonic()
    with hold(lock, "second", timeout=30):
        waited = time.monotonic() - started
    thread.join()
    assert 0.35 <= waited < 1.5, waited


def test_contexts_mapped_to_one_target_wait_on_its_schema(tmp_path) -> None:
    project = make_project(tmp_path)
    (project.project_dir / "invoke.yaml").write_text("dot:\n  contexts:\n    ci: prod\n")
    commit = add_gate_model(project)
    assert project.run("worktree").code == 0
    assert project.run("profile", "--context", "prod").code == 0
    assert project.run("profile", "--context", "ci").code == 0
    gate = Gate(tmp_path / "gate")
    prod = Run(project, "build", "--context", "prod", env=gate.env)
    gate.wait_entered(prod.proc)  # prod is writing into analytics_<short>
    ci = Run(project, "build", "--context", "ci", env=gate.env)
    schema = f"analytics_{commit[:8]}"
    line = ci.wait_for_line("dot-tasks: waiting for")
    # Not the DuckDB file's lock, which a PostgreSQL target would not have: the schema's.
    assert f"waiting for the schema {schema} (held by pid" in line, line
    assert ci.proc.poll() is None
    gate.open()
    assert prod.wait() == 0, prod.stderr
    assert ci.wait() == 0, ci.stderr
    assert duckdb_rows(project.project_dir / "warehouse.duckdb", f"select x from {schema}.gate") == [(1,)]


def test_clean_skips_a_build_that_is_running(project: Project, tmp_path) -> None:
    commit = add_gate_model(project)
    gate = Gate(tmp_path / "gate")
    run = Run(project, "run", env=gate.env)
    gate.wait_entered(run.proc)
    schema = f"dev_{commit[:8]}"
    cleaned = project.run("clean", "--ref", "HEAD")
    assert cleaned.code == 2
    assert (
        f"dot-tasks: {commit[:12]} is in use right now (being built, or read by a deferred build): "
        "rerun the clean when it is done" in cleaned.stderr
    )
    assert "dropped" not in cleaned.stdout and "removed" not in cleaned.stdout
    assert project.build_dir(commit).joinpath("dev", "profiles.yml").is_file()
    assert project.build_dir(commit).joinpath("worktree", "dbt_project.yml").is_file()
    gate.open()
    assert run.wait() == 0, run.stderr
    assert schema in {
        r[0] for r in duckdb_rows(project.project_dir / "warehouse.duckdb", "select schema_name from information_schema.schemata")
    }
    after = project.run("clean", "--ref", "HEAD")
    assert after.code == 0, after.stderr
    assert f"dropped {schema}" in after.stdout and not project.build_dir(commit).exists()


# Holds a POSIX lock as Java's FileChannel.tryLock does, until its stdin closes.
HOLDER = """
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_another_process_posix_lock_is_seen_and_waited_for(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / "dbex.lck"
    assert posix_lock_holder(lock) is None  # no file yet
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert posix_lock_holder(lock) == holder.pid
        assert posix_lock_holder(lock) == holder.pid  # asking twice never took it
        with pytest.raises(LockTimeout, match=rf"gave up after 0.3s waiting for the metastore \(held by pid {holder.pid}: .*python"):
            wait_while_locked(lock, "the metastore", timeout=0.3)
        started = time.monotonic()
        threading.Timer(0.5, holder.stdin.close).start()  # the other process lets go while we wait
        wait_while_locked(lock, "the metastore", timeout=10)
        assert 0.4 < time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    assert posix_lock_holder(lock) is None
    assert f"dot-tasks: waiting for the metastore (held by pid {holder.pid}: {sys.executable} -c" in capfd.readouterr().err
