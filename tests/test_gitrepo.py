"""Resolving refs and keeping isolated worktrees with pygit2, on real repositories."""

from __future__ import annotations

import shutil

import pygit2
from conftest import Project, dot, git, write


def test_refs_of_every_kind_resolve_to_the_full_hash(project: Project, tmp_path) -> None:
    repo = project.repo_dir
    git("tag", "-a", "v1", "-m", "annotated", project.first, cwd=repo)
    git("tag", "light", project.second, cwd=repo)
    git("branch", "feature", project.first, cwd=repo)
    clone = tmp_path / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    cases = {
        "HEAD": project.second,
        "main": project.second,
        "HEAD~1": project.first,
        "v1": project.first,
        "light": project.second,
        "feature": project.first,
        project.first[:7]: project.first,
        project.second: project.second,
    }
    for ref, expected in cases.items():
        result = project.run("resolve", "--ref", ref)
        assert (result.code, result.out) == (0, expected), (ref, result.stderr)
    remote = project.run("resolve", "--ref", "origin/main", "--project-dir", str(clone))
    assert remote.out == project.second


def test_short_suffix_is_configurable(project: Project) -> None:
    assert project.run("resolve", "--short").out == project.second[:8]
    longer = project.run("resolve", "--short", env={"INVOKE_DOT_SHORT_HASH_LENGTH": "12"})
    assert longer.out == project.second[:12]


def test_worktree_is_detached_registered_and_leaves_no_branch(project: Project) -> None:
    path = project.run("worktree", "--ref", "HEAD~1").out
    checkout = pygit2.Repository(path)
    assert checkout.head_is_detached and str(checkout.head.target) == project.first
    assert git("branch", "--list", "--all", cwd=project.repo_dir) == "* main"
    assert path in git("worktree", "list", cwd=project.repo_dir)
    assert git("status", "--porcelain", cwd=path) == ""
    # .dot/ is hidden from the user's status through info/exclude, not their .gitignore.
    assert git("status", "--porcelain", cwd=project.repo_dir) == ""
    assert ".dot" not in (project.project_dir / ".gitignore").read_text()


def test_worktree_is_reused_when_intact(project: Project) -> None:
    path = project.run("worktree").out
    sentinel = project.build_dir(project.second) / "worktree" / ".git"
    before = sentinel.stat().st_mtime_ns
    assert project.run("worktree").out == path
    assert sentinel.stat().st_mtime_ns == before


def test_modified_worktree_is_refused_not_discarded(project: Project) -> None:
    path = project.run("worktree").out
    model = project.build_dir(project.second) / "worktree" / "models" / "orders.sql"
    model.write_text("select 1 as debugging\n")
    result = project.run("worktree")
    assert result.code != 0 and "models/orders.sql" in result.stderr and "clean --ref" in result.stderr
    assert model.read_text() == "select 1 as debugging\n"  # the user's edit survives
    assert project.run("worktree").code != 0  # and stays refused, not repaired away
    assert path == str(project.build_dir(project.second) / "worktree")


def test_moved_repository_keeps_worktree_edits(project: Project, tmp_path) -> None:
    project.run("worktree")
    model = project.build_dir(project.second) / "worktree" / "models" / "orders.sql"
    model.write_text("select 1 as debugging\n")
    moved = tmp_path / "moved"
    project.repo_dir.rename(moved)
    result = dot("worktree", cwd=moved)
    moved_model = moved / ".dot" / "isolated_builds" / project.second / "worktree" / "models" / "orders.sql"
    assert moved_model.read_text() == "select 1 as debugging\n"
    assert result.code != 0 and "changes to tracked files" in result.stderr


def test_worktree_deleted_by_hand_is_recreated(project: Project) -> None:
    path = project.run("worktree").out
    shutil.rmtree(path)
    again = project.run("worktree")
    assert again.code == 0, again.stderr
    assert git("status", "--porcelain", cwd=path) == ""


def test_pruned_registration_is_recreated(project: Project) -> None:
    path = project.run("worktree").out
    git("worktree", "remove", "--force", path, cwd=project.repo_dir)
    assert project.run("worktree").code == 0
    assert path in git("worktree", "list", cwd=project.repo_dir)


def test_half_made_worktree_is_repaired(project: Project) -> None:
    """A run killed mid-checkout leaves a registration and a partial directory."""
    project.run("worktree")
    build = project.build_dir(project.second)
    (build / ".worktree-complete").unlink()  # as if killed before the checkout finished
    (build / "worktree" / "models" / "orders.sql").unlink()
    again = project.run("worktree")
    assert again.code == 0, again.stderr
    assert (build / "worktree" / "models" / "orders.sql").is_file()
    assert git("status", "--porcelain", cwd=build / "worktree") == ""


def test_existing_exclude_lines_are_kept(project: Project) -> None:
    exclude = project.repo_dir / ".git" / "info" / "exclude"
    exclude.write_text("*.log")  # no trailing newline
    project.run("worktree")
    project.run("worktree")
    assert exclude.read_text().splitlines() == ["*.log", "# isolated dbt builds (dot-tasks)", "/.dot/"]


def test_two_projects_in_one_repo_build_the_same_commit(project: Project) -> None:
    other = project.repo_dir / "second_project"
    shutil.copytree(project.project_dir / "models", other / "models")
    write(other / "dbt_project.yml", "name: shop\nprofile: shop\nconfig-version: 2\n")
    commit = project.commit("a second dbt project")
    a = project.run("worktree")
    b = project.run("worktree", "--project-dir", str(other))
    assert a.code == 0 and b.code == 0, (a.stderr, b.stderr)
    assert a.out != b.out and commit in a.out and commit in b.out
