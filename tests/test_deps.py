"""`dbt deps`: skipped with --no-deps, and a run killed while it installs can be repeated."""

from __future__ import annotations

import os
import signal

from conftest import Project, duckdb_rows, git, make_project, summary, write
from gates import Gate, Run, git_wrapper

from dot_tasks.layout import BuildPaths


def _package_repo(root) -> str:
    """A dbt package in a git repository of its own, for `git:` in packages.yml."""
    write(root / "dbt_project.yml", 'name: macros_pkg\nconfig-version: 2\nversion: "1.0"\n')
    write(root / "macros" / "double.sql", "{% macro double(x) %}({{ x }} * 2){% endmacro %}\n")
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "package", cwd=root)
    return root.as_uri()


def _uses_package(project: Project, packages_yml: str) -> str:
    write(project.project_dir / "packages.yml", packages_yml)
    write(
        project.project_dir / "models" / "doubled.sql",
        "select order_id, {{ macros_pkg.double('amount') }} as amount from {{ ref('raw_orders') }}\n",
    )
    return project.commit("use a package")


def test_no_deps_really_skips_dbt_deps(tmp_path) -> None:
    project = make_project(tmp_path, subdir="dbt")
    write(project.repo_dir / "macros_pkg" / "dbt_project.yml", 'name: macros_pkg\nconfig-version: 2\nversion: "1.0"\n')
    write(project.repo_dir / "macros_pkg" / "macros" / "double.sql", "{% macro double(x) %}({{ x }} * 2){% endmacro %}\n")
    commit = _uses_package(project, "packages:\n  - local: ../macros_pkg\n")
    paths = BuildPaths(project.project_dir, commit, "dbt")
    skipped = project.run("run", "--no-deps")
    # The package was never installed, so the model that uses it cannot compile.
    assert skipped.code != 0
    assert "Installing" not in skipped.stderr and not paths.deps_marker.exists()
    assert not (paths.worktree_project_dir / "dbt_packages").exists()
    installed = project.run("run")
    assert installed.code == 0, installed.stderr
    assert installed.stderr.count("Installing") == 1 and paths.deps_marker.is_file()


def test_run_killed_during_dbt_deps_can_be_repeated(project: Project, tmp_path) -> None:
    url = _package_repo(tmp_path / "pkg")
    commit = _uses_package(project, f'packages:\n  - git: "{url}"\n')
    gate = Gate(tmp_path / "gate")
    path = f"{git_wrapper(tmp_path / 'bin', 'clone')}:{os.environ['PATH']}"
    run = Run(project, "run", env={**gate.env, "PATH": path})
    gate.wait_entered(run.proc)  # dbt deps is inside `git clone` of the package
    assert run.kill_group() == -signal.SIGKILL
    paths = BuildPaths(project.project_dir, commit)
    assert paths.worktree_marker.exists() and not paths.deps_marker.exists()
    record = (project.build_dir(commit) / "dev" / "build.json").read_text()
    assert '"status": "running"' in record
    gate.open()
    again = project.run("run", "--json", env={**gate.env, "PATH": path})
    assert again.code == 0, again.stderr
    assert summary(again)["status"] == "success" and paths.deps_marker.is_file()
    assert duckdb_rows(project.project_dir / "warehouse.duckdb", f"select sum(amount) from dev_{commit[:8]}.doubled") == [(120,)]
