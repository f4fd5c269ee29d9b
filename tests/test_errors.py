"""Every bad input gets one clear line on stderr, a non-zero exit, no traceback, nothing half-made."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project, dot, git, write


def _one_line_error(result, *needles: str) -> str:
    assert result.code != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("dot-tasks: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _no_builds(project: Project) -> None:
    builds = project.project_dir / ".dot" / "isolated_builds"
    assert not builds.exists() or not any(builds.iterdir())


def test_unknown_ref_names_the_ref_and_what_exists(project: Project) -> None:
    git("tag", "v1", project.first, cwd=project.repo_dir)
    for task in ("resolve", "worktree", "profile", "run"):
        line = _one_line_error(project.run(task, "--ref", "nope"), "'nope'", "main", "v1")
    assert "unknown ref" in line
    _no_builds(project)


def test_ref_that_is_not_a_commit(project: Project) -> None:
    tree = git("rev-parse", "HEAD^{tree}", cwd=project.repo_dir)
    _one_line_error(project.run("resolve", "--ref", tree), "not a commit")
    _no_builds(project)


def test_ref_beginning_with_dash_is_never_an_option(project: Project) -> None:
    _one_line_error(project.run("worktree", "--ref=--orphan"), "'--orphan'", "begin with '-'")
    _no_builds(project)
    assert git("branch", "--list", cwd=project.repo_dir) == "* main"


def test_not_a_git_repo(tmp_path: Path) -> None:
    write(tmp_path / "dbt_project.yml", "name: x\nprofile: x\n")
    _one_line_error(dot("resolve", cwd=tmp_path), "not inside a git repository")


def test_no_dbt_project(tmp_path: Path) -> None:
    git("init", "-q", cwd=tmp_path)
    _one_line_error(dot("resolve", cwd=tmp_path), "no dbt_project.yml", "--project-dir")
    _one_line_error(dot("resolve", "--project-dir", "elsewhere", cwd=tmp_path), "no dbt_project.yml")


def test_commit_before_the_project_existed(project: Project) -> None:
    write(project.repo_dir / "other" / "dbt_project.yml", "name: other\n")
    _one_line_error(project.run("profile", "--ref", project.first, "--project-dir", "../repo/other"), "has no other/dbt_project.yml")


def test_missing_profile_lists_the_ones_that_exist(project: Project) -> None:
    write(project.project_dir / "profiles.yml", "other:\n  target: dev\n  outputs:\n    dev: {type: duckdb}\n")
    project.commit("profile renamed")
    _one_line_error(project.run("profile"), "profile 'shop'", "other")
    _no_builds(project)


def test_missing_target_lists_the_ones_that_exist(project: Project) -> None:
    _one_line_error(project.run("profile", "--context", "staging"), "'staging'", "dev, prod")
    _no_builds(project)


def test_no_profiles_file_anywhere(project: Project) -> None:
    (project.project_dir / "profiles.yml").unlink()
    _one_line_error(project.run("profile"), "no profiles.yml", "~/.dbt")


@pytest.mark.parametrize("context", ["../etc", "a/b", "..", "worktree", ".hidden"])
def test_context_must_be_a_plain_name(project: Project, context: str) -> None:
    _one_line_error(project.run("profile", "--context", context), "not a plain name")
    _no_builds(project)


def test_dbt_missing(project: Project, tmp_path: Path) -> None:
    assert project.run("worktree").code == 0
    assert project.run("profile").code == 0
    # An empty regular package named `dbt`, first on the path, hides the real
    # (namespace) one: this Python has everything but dbt.
    shadow = tmp_path / "shadow"
    write(shadow / "dbt" / "__init__.py", "")
    result = project.run("build", env={"PYTHONPATH": str(shadow)})
    _one_line_error(result, "dbt is not installed")


def test_adapter_missing_is_named(project: Project) -> None:
    write(
        project.project_dir / "profiles.yml",
        """
        shop:
          target: dev
          outputs:
            dev: {type: nosuchdb, schema: s}
        """,
    )
    assert project.run("worktree").code == 0
    assert project.run("profile").code == 0
    _one_line_error(project.run("build"), "nosuchdb", "pip install dbt-nosuchdb")


def test_build_before_its_steps_says_which_step_to_run(project: Project) -> None:
    _one_line_error(project.run("build"), "dot-tasks worktree --ref")
    assert project.run("worktree").code == 0
    _one_line_error(project.run("build"), "dot-tasks profile --ref")


def test_bad_spec(project: Project) -> None:
    _one_line_error(project.run("run", "--spec", "dev@"), "CTX@REF")


@pytest.mark.parametrize("target", ["{{ env_var('X' }}", "{{ var('t') }}", "{{ env_var('DBT_ENV_SECRET_T') }}"])
def test_default_target_that_cannot_be_worked_out(project: Project, target: str) -> None:
    write(
        project.project_dir / "profiles.yml",
        f"""
        shop:
          target: "{target}"
          outputs:
            dev: {{type: duckdb, path: w.duckdb, schema: dev}}
        """,
    )
    _one_line_error(project.run("profile", env={"DBT_ENV_SECRET_T": "dev"}), "--context")
    assert project.run("profile", "--context", "dev").code == 0


def test_unbalanced_quotes_in_flags(project: Project) -> None:
    _one_line_error(project.run("build", "--select", "a'b"), "--select", "balance its quotes")
