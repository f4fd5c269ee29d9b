"""Runs killed in the middle of their work, at moments the test chooses by a gate.

Each test proves the kill landed mid-way (what a finished step leaves is not
there yet), then that running again succeeds.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import Project, duckdb_rows, git, summary
from gates import Gate, Run, add_gate_model, alive, dbt_child, git_wrapper

from dot_tasks.errors import LockTimeout
from dot_tasks.layout import BuildPaths
from dot_tasks.locks import hold


def _tables(project: Project, schema: str) -> set[str]:
    database = project.project_dir / "warehouse.duckdb"
    return {r[0] for r in duckdb_rows(database, f"select table_name from information_schema.tables where table_schema = '{schema}'")}


def _schemas(project: Project) -> set[str]:
    return {r[0] for r in duckdb_rows(project.project_dir / "warehouse.duckdb", "select schema_name from information_schema.schemata")}


def _rerun_succeeds(project: Project, env: dict[str, str] | None = None) -> dict:
    again = project.run("run", "--json", env=env)
    assert again.code == 0, again.stderr
    data = summary(again)
    assert data["status"] == "success"
    assert git("branch", "--list", cwd=project.repo_dir) == "* main"
    assert git("status", "--porcelain", cwd=project.build_dir(data["commit"]) / "worktree") == ""
    return data


def test_run_killed_during_sql_can_be_repeated(project: Project, tmp_path) -> None:
    commit = add_gate_model(project)
    gate = Gate(tmp_path / "gate")
    run = Run(project, "run", env=gate.env)
    gate.wait_entered(run.proc)
    assert run.kill_group() == -signal.SIGKILL
    schema = f"dev_{commit[:8]}"
    # Mid-way: dbt made the schema and was building, but the gated model never landed.
    assert schema in _schemas(project) and "gate" not in _tables(project, schema)
    record = json.loads((project.build_dir(commit) / "dev" / "build.json").read_text())
    assert record["status"] == "running"
    listed = [json.loads(line) for line in project.run("list", "--json").stdout.splitlines()]
    assert [r["status"] for r in listed if r["commit"] == commit] == ["interrupted"]
    gate.open()
    _rerun_succeeds(project, env=gate.env)
    assert {"gate", "orders"} <= _tables(project, schema)


def test_run_killed_during_the_checkout_can_be_repeated(project: Project, tmp_path) -> None:
    gate = Gate(tmp_path / "gate")
    path = f"{git_wrapper(tmp_path / 'bin', 'worktree')}:{os.environ['PATH']}"
    run = Run(project, "run", env={**gate.env, "PATH": path})
    gate.wait_entered(run.proc)
    assert run.kill_group() == -signal.SIGKILL
    paths = BuildPaths(project.project_dir, project.second)
    # Mid-way: git made the checkout, but the step never marked it complete.
    assert paths.worktree_dir.is_dir() and not paths.worktree_marker.exists()
    assert "dot-tasks: worktree" not in run.stderr
    data = _rerun_succeeds(project)
    assert data["commit"] == project.second and paths.worktree_marker.exists()


def test_killed_parent_keeps_the_build_locked_until_dbt_exits(project: Project, tmp_path) -> None:
    commit = add_gate_model(project)
    assert project.run("worktree").code == 0 and project.run("profile").code == 0
    gate = Gate(tmp_path / "gate")
    run = Run(project, "build", env=gate.env)
    child = dbt_child(run.proc.pid)
    os.kill(run.proc.pid, signal.SIGKILL)  # only the orchestrator; dbt runs on
    assert run.wait() == -signal.SIGKILL
    assert alive(child)
    lock = BuildPaths(project.project_dir, commit).context_lock("dev")
    with pytest.raises(LockTimeout):
        with hold(lock, "probe", timeout=0):
            pass
    gate.open()  # let the orphaned dbt finish
    deadline = time.monotonic() + 120
    while alive(child) and time.monotonic() < deadline:
        with pytest.raises(LockTimeout):  # held for as long as dbt runs
            with hold(lock, "probe", timeout=0):
                pass
        time.sleep(0.05)
    assert not alive(child)
    with hold(lock, "probe", timeout=5):
        pass
