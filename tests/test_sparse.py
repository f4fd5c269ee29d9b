"""Sparse worktrees: only the dbt project and its local packages, still clean and reusable."""

from __future__ import annotations

from conftest import Project, git, make_project, write


def _monorepo(tmp_path) -> tuple[Project, str]:
    project = make_project(tmp_path, subdir="warehouse/dbt")
    write(project.repo_dir / "libs" / "macros_pkg" / "dbt_project.yml", 'name: macros_pkg\nconfig-version: 2\nversion: "1.0"\n')
    write(project.repo_dir / "libs" / "macros_pkg" / "macros" / "triple.sql", "{% macro triple(x) %}({{ x }} * 3){% endmacro %}\n")
    for i in range(30):
        write(project.repo_dir / "services" / "api" / f"module_{i}.py", f"VALUE = {i}\n")
    write(project.repo_dir / "README.md", "monorepo\n")
    write(project.project_dir / "packages.yml", "packages:\n  - local: ../../libs/macros_pkg\n")
    write(
        project.project_dir / "models" / "tripled.sql",
        "select order_id, {{ macros_pkg.triple('amount') }} as amount from {{ ref('raw_orders') }}\n",
    )
    return project, project.commit("monorepo with a local package")


def test_sparse_worktree_holds_only_the_project_and_its_packages(tmp_path) -> None:
    project, commit = _monorepo(tmp_path)
    result = project.run("run", "--json")
    assert result.code == 0, result.stderr
    worktree = project.build_dir(commit) / "worktree"
    assert (worktree / "warehouse" / "dbt" / "models" / "tripled.sql").is_file()
    assert (worktree / "libs" / "macros_pkg" / "macros" / "triple.sql").is_file()
    assert (worktree / "README.md").is_file()  # cone mode keeps files at the root
    assert not (worktree / "services").exists()
    assert git("status", "--porcelain", "--untracked-files=no", cwd=worktree) == ""
    again = project.run("worktree")
    assert again.code == 0 and again.out == str(worktree)
    assert project.run("run").code == 0
    assert "worktree reused" in project.run("run").stderr
    assert project.run("clean", "--ref", commit).code == 0
    assert not project.build_dir(commit).exists()
    assert ".dot/isolated_builds" not in git("worktree", "list", cwd=project.repo_dir)
    assert project.run("worktree").code == 0  # and it can be made again


def test_an_edit_in_a_sparse_worktree_is_still_seen(tmp_path) -> None:
    project, commit = _monorepo(tmp_path)
    worktree = project.run("worktree").out
    model = project.build_dir(commit) / "worktree" / "warehouse" / "dbt" / "models" / "orders.sql"
    model.write_text("select 1 as edited\n")
    result = project.run("worktree")
    assert result.code != 0 and "warehouse/dbt/models/orders.sql" in result.stderr
    assert model.read_text() == "select 1 as edited\n" and worktree == str(project.build_dir(commit) / "worktree")


def test_full_checkout_when_sparse_is_switched_off(tmp_path) -> None:
    project, commit = _monorepo(tmp_path)
    write(project.repo_dir / "invoke.yaml", "dot:\n  sparse_checkout: false\n")
    assert project.run("worktree").code == 0
    assert (project.build_dir(commit) / "worktree" / "services" / "api" / "module_0.py").is_file()
