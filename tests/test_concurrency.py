"""Runs at once, runs killed with SIGKILL, and schema-suffix identity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pygit2
import pytest
from conftest import Project, duckdb_rows, git, make_project, pg_rows, postgres_profile, write


def _popen(project: Project, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dot_tasks", *args],
        cwd=project.project_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _more_commits(project: Project, n: int) -> list[str]:
    commits = []
    for i in range(n):
        write(project.project_dir / "models" / "orders.sql", f"select order_id, amount + {i} as amount from {{{{ ref('raw_orders') }}}}\n")
        commits.append(project.commit(f"variant {i}"))
    return commits


@pytest.mark.postgres
def test_four_commits_at_once_on_postgres(tmp_path, pg, pg_schema) -> None:
    project = make_project(tmp_path, profile=postgres_profile(pg_schema))
    commits = _more_commits(project, 4)
    procs = [_popen(project, "run", "--ref", c, "--json") for c in commits]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for code, _out, err in results:
        assert code == 0, err
    for i, commit in enumerate(commits):
        assert pg_rows(pg, f"select sum(amount) from {pg_schema}_{commit[:8]}.orders") == [(60 + 3 * i,)]


def test_four_runs_into_one_duckdb_file_wait_for_each_other(project: Project) -> None:
    commits = _more_commits(project, 3)
    refs = [*commits, commits[0]]  # one commit twice: the second waits on the first's locks
    procs = [_popen(project, "run", "--ref", r, "--json") for r in refs]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for code, _out, err in results:
        assert code == 0, err
    assert any("waiting for" in err for _c, _o, err in results)
    database = project.project_dir / "warehouse.duckdb"
    for i, commit in enumerate(commits):
        assert duckdb_rows(database, f"select sum(amount) from dev_{commit[:8]}.orders") == [(60 + 3 * i,)]


def test_lock_timeout_is_reported(project: Project) -> None:
    assert project.run("worktree").code == 0 and project.run("profile").code == 0
    from dot_tasks.layout import BuildPaths
    from dot_tasks.locks import hold

    paths = BuildPaths(project.project_dir, project.second)
    with hold(paths.context_lock("dev"), "test", timeout=1):
        result = project.run("build", env={"INVOKE_DOT_LOCK_TIMEOUT": "0.5"})
    assert result.code == 2 and "gave up after 0.5s waiting for the dev build" in result.stderr


@pytest.mark.parametrize("delay", [0.15, 0.4, 0.8, 1.5, 3.0, 5.0])
def test_run_killed_at_any_moment_can_be_repeated(project: Project, delay: float) -> None:
    proc = _popen(project, "run")
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run, dbt included, as `kill -9` of a pipeline
    proc.wait()
    again = project.run("run", "--json")
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "success"
    assert git("branch", "--list", cwd=project.repo_dir) == "* main"
    assert git("status", "--porcelain", cwd=project.build_dir(project.second) / "worktree") == ""


def _commits_sharing_a_prefix(project: Project, length: int) -> tuple[str, str]:
    """Make commits until two share their first `length` hex digits (a birthday search)."""
    repo = pygit2.Repository(str(project.repo_dir))
    head = repo.head.peel(pygit2.Commit)
    sig = pygit2.Signature("Test", "test@example.com", 1700000000, 0)
    seen: dict[str, str] = {}
    for i in range(200000):
        oid = repo.create_commit(None, sig, sig, f"clash {i}", head.tree.id, [head.id])
        prefix = str(oid)[:length]
        if prefix in seen:
            repo.references.create("refs/heads/clash-a", seen[prefix])
            repo.references.create("refs/heads/clash-b", oid)
            return str(seen[prefix]), str(oid)
        seen[prefix] = oid
    raise AssertionError("no prefix clash found")


def test_prefix_clash_lengthens_the_suffix(project: Project) -> None:
    a, b = _commits_sharing_a_prefix(project, 4)
    env = {"INVOKE_DOT_SHORT_HASH_LENGTH": "4"}
    assert project.run("profile", "--ref", "clash-a", env=env).code == 0
    assert project.run("profile", "--ref", "clash-b", env=env).code == 0
    short_a = project.run("resolve", "--ref", "clash-a", "--short", env=env).out
    short_b = project.run("resolve", "--ref", "clash-b", "--short", env=env).out
    assert short_a == a[:4] and short_b != short_a and b.startswith(short_b) and len(short_b) > 4
    profile_b = (project.build_dir(b) / "dev" / "profiles.yml").read_text()
    assert f"schema: dev_{short_b}\n" in profile_b


def test_suffix_is_recorded_on_first_build_and_reused(project: Project) -> None:
    assert project.run("profile").code == 0
    again = project.run("profile", env={"INVOKE_DOT_SHORT_HASH_LENGTH": "12"})
    assert again.code == 0
    profile = (project.build_dir(project.second) / "dev" / "profiles.yml").read_text()
    assert f"schema: dev_{project.second[:8]}\n" in profile
    record = json.loads((project.build_dir(project.second) / "commit.json").read_text())
    assert record["short"] == project.second[:8]


def test_concurrent_runs_in_threads_do_not_share_a_worktree_creation(project: Project) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: project.run("worktree"), range(4)))
    assert {r.code for r in results} == {0}
    assert len({r.out for r in results}) == 1
    assert git("worktree", "list", cwd=project.repo_dir).count(".dot/isolated_builds") == 1
