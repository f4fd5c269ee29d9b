"""The CLI surface: config from invoke.yaml and INVOKE_DOT_*, the CTX@REF shorthand, --help speed."""

from __future__ import annotations

import subprocess
import sys

from conftest import Project, dot, make_project, write


def test_invoke_yaml_sets_project_dir_and_context_map(tmp_path) -> None:
    project = make_project(tmp_path, subdir="warehouse")
    write(project.repo_dir / "invoke.yaml", """
        dot:
          project_dir: warehouse
          contexts:
            ci: prod
        """)
    result = dot("profile", "--context", "ci", cwd=project.repo_dir)
    assert result.code == 0, result.stderr
    profile = (project.build_dir(project.second) / "ci" / "profiles.yml").read_text()
    assert "schema: analytics_" in profile  # the prod output, under the ci context


def test_positional_spec(project: Project) -> None:
    from dot_tasks.main import accept_positional_spec

    assert accept_positional_spec(["run", "dev@main", "--json"]) == ["run", "--spec", "dev@main", "--json"]
    assert accept_positional_spec(["run", "@HEAD~1"]) == ["run", "--spec", "@HEAD~1"]
    assert accept_positional_spec(["build", "x@y"]) == ["build", "x@y"]
    assert accept_positional_spec(["run", "--", "x@y"]) == ["run", "--", "x@y"]


def test_steps_that_do_not_build_never_import_dbt(project: Project) -> None:
    code = (
        "import sys; from dot_tasks.main import program; "
        "program.run(sys.argv[1:], exit=False); "
        "print('DBT-LOADED' if any(m == 'dbt.cli' or m.startswith('dbt.cli.') for m in sys.modules) else 'NO-DBT',"
        " file=sys.stderr)"
    )
    for args in (["resolve"], ["worktree"], ["profile"], ["list"], ["--help"]):
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=project.project_dir,
                              capture_output=True, text=True)
        assert "NO-DBT" in proc.stderr, (args, proc.stderr)
