"""dbt's exit code reaches the shell: 2 for an error, and a dbt killed by a signal is reported."""

from __future__ import annotations

import json
import os
import signal

from conftest import Project, summary, write
from gates import Gate, Run, add_gate_model, dbt_child


def test_dbt_error_exit_code_2_reaches_the_shell(project: Project) -> None:
    write(project.project_dir / "models" / "broken.sql", "select * from {{ ref('no_such_model') }}\n")
    commit = project.commit("a ref to a model that does not exist: dbt cannot even start")
    result = project.run("run", "--json")
    assert result.code == 2, result.stderr  # dbt's own "error", not "the run had failures"
    data = summary(result)
    assert data["status"] == "failed" and data["exit_code"] == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("dot-tasks: dbt")]
    assert errors and "dbt build failed (exit 2)" in errors[-1]
    assert "Traceback" not in result.stderr
    record = json.loads((project.build_dir(commit) / "dev" / "build.json").read_text())
    assert record["status"] == "failed" and record["exit_code"] == 2


def test_dbt_killed_by_a_signal_is_reported(project: Project, tmp_path) -> None:
    commit = add_gate_model(project)
    gate = Gate(tmp_path / "gate")
    run = Run(project, "run", env=gate.env)
    gate.wait_entered(run.proc)
    os.kill(dbt_child(run.proc.pid), signal.SIGKILL)  # dbt only; dot-tasks sees it die
    assert run.wait() == 2, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("dot-tasks: ")]
    assert lines[-1] == "dot-tasks: dbt was killed by signal 9"
    assert "Traceback" not in run.stderr
    record = json.loads((project.build_dir(commit) / "dev" / "build.json").read_text())
    assert record["status"] == "failed" and record["exit_code"] == 2
    assert record["error"] == "dbt was killed by signal 9"
