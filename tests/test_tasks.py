"""The CLI surface: config from invoke.yaml and INVOKE_DOT_*, the CTX@REF shorthand, --help speed."""

from __future__ import annotations

import subprocess
import sys

from conftest import Project, dot, make_project, write


def test_invoke_yaml_sets_project_dir_and_context_map(tmp_path) -> None:
    project = make_project(tmp_path, subdir="warehouse")
    write(
        project.repo_dir / "invoke.yaml",
        """
        dot:
          project_dir: warehouse
          contexts:
            ci: prod
        """,
    )
    result = dot("profile", "--context", "ci", cwd=project.repo_dir)
    assert result.code == 0, result.stderr
    profile = (project.build_dir(project.second) / "ci" / "profiles.yml").read_text()
    assert "schema: analytics_" in profile  # the prod output, under the ci context


def test_positional_spec() -> None:
    from dot_tasks.cli_grammar import canonical_argv

    assert canonical_argv(["dot-tasks", "run", "dev@main", "--json"]) == ["dot-tasks", "run", "--json", "--spec", "dev@main"]
    assert canonical_argv(["dot-tasks", "run", "@HEAD~1"]) == ["dot-tasks", "run", "--ref", "HEAD~1"]
    assert canonical_argv(["dot-tasks", "build", "x@y"]) == ["dot-tasks", "build", "--context", "x", "--ref", "y"]
    assert canonical_argv(["dot-tasks", "run", "--", "x@y"]) == ["dot-tasks", "run", "--", "x@y"]


def test_spec_and_flags_that_disagree_are_refused(project: Project) -> None:
    result = project.run("run", "--spec", "dev@main", "--ref", "HEAD~1")
    assert result.code == 2 and "--ref HEAD~1 and --spec dev@main name two different refs" in result.stderr
    assert project.run("run", "--spec", "dev@main", "--context", "dev", "--ref", "main", "--command", "-x").code == 2
    assert not (project.project_dir / ".dot" / "isolated_builds").exists()


def test_steps_that_do_not_build_never_import_dbt(project: Project) -> None:
    probe = (
        "import sys; from dot_tasks.main import program; "
        "program.run(['dot-tasks', *sys.argv[1:]], exit=False); "
        "loaded = sorted(m for m in sys.modules if m == 'dbt' or m.startswith('dbt.')); "
        "print('LOADED', loaded, file=sys.stderr)"
    )
    for args in (["resolve"], ["worktree"], ["profile"], ["list"], ["--help"]):
        proc = subprocess.run([sys.executable, "-c", probe, *args], cwd=project.project_dir, capture_output=True, text=True)
        assert "LOADED []" in proc.stderr, (args, proc.stderr)
        assert proc.stdout.strip(), (args, proc.stderr)  # the task really ran and printed its result
    # The probe can tell: `run` looks dbt up (dbt itself then runs in a child process).
    proc = subprocess.run([sys.executable, "-c", probe, "run"], cwd=project.project_dir, capture_output=True, text=True)
    assert "'dbt'" in proc.stderr.split("LOADED")[-1], proc.stderr


def test_arguments_after_dashes_reach_dbt_as_written(project: Project) -> None:
    (project.project_dir / "models" / "labelled.sql").write_text("select '{{ var(\"label\") }}' as label\n")
    commit = project.commit("a model that reads a var")
    result = project.run("run", "--select", "labelled", "--", "--vars", '{"label": "two  spaces"}')
    assert result.code == 0, result.stderr
    from conftest import duckdb_rows

    assert duckdb_rows(project.project_dir / "warehouse.duckdb", f"select label from dev_{commit[:8]}.labelled") == [("two  spaces",)]


def test_bad_config_values_get_one_line(project: Project) -> None:
    for env in ({"INVOKE_DOT_SHORT_HASH_LENGTH": "abc"}, {"INVOKE_DOT_LOCK_TIMEOUT": "soon"}):
        result = project.run("resolve", env=env)
        assert result.code == 2 and "Traceback" not in result.stderr, result.stderr
        assert "set it to a positive number" in result.stderr
    write(project.project_dir / "invoke.yaml", "dot:\n  contexts: [a, b]\n")
    result = project.run("profile")
    assert result.code == 2 and "invoke.yaml cannot be used" in result.stderr and "Traceback" not in result.stderr


def test_run_json_reports_early_failures(project: Project) -> None:
    import json

    result = project.run("run", "--ref", "nope", "--json")
    assert result.code == 2
    data = json.loads(result.stdout)
    assert data["status"] == "failed" and "unknown ref 'nope'" in data["error"] and data["exit_code"] == 2
