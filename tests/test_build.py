"""End to end: two commits built into two schemas side by side, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import stat

import pytest
import yaml
from conftest import (
    SECRET,
    Project,
    duckdb_rows,
    git,
    make_project,
    pg_rows,
    pg_schemas,
    postgres_profile,
    summary,
    write,
)


def _build_both(project: Project) -> tuple[dict, dict]:
    first = project.run("run", "--context", "dev", "--ref", "HEAD~1", "--json")
    assert first.code == 0, first.stderr
    second = project.run("run", "dev@main", "--json")
    assert second.code == 0, second.stderr
    return summary(first), summary(second)


def test_two_commits_side_by_side_in_one_duckdb_file(project: Project) -> None:
    one, two = _build_both(project)
    assert one["commit"] == project.first and two["commit"] == project.second
    assert one["schema"] == f"dev_{project.first[:8]}" and two["schema"] == f"dev_{project.second[:8]}"
    database = project.project_dir / "warehouse.duckdb"  # the user's own file, not one in the worktree
    assert database.is_file()
    assert not list((project.build_dir(project.first) / "worktree").rglob("*.duckdb"))
    assert duckdb_rows(database, f"select order_id, amount from dev_{project.first[:8]}.orders order by 1") == [(1, 10), (2, 20), (3, 30)]
    assert duckdb_rows(database, f"select order_id, amount from dev_{project.second[:8]}.orders order by 1") == [(2, 40), (3, 60)]
    # The user's own schema is untouched.
    assert duckdb_rows(database, "select count(*) from information_schema.schemata where schema_name = 'dev'") == [(0,)]


@pytest.mark.postgres
def test_two_commits_side_by_side_in_postgres(tmp_path, pg, pg_schema) -> None:
    project = make_project(tmp_path, profile=postgres_profile(pg_schema))
    one, two = _build_both(project)
    # The two builds' schemas, and dot-tasks' registry of them beside (see docs/teams.md).
    assert pg_schemas(pg, pg_schema) == {f"{pg_schema}_{project.first[:8]}", f"{pg_schema}_{project.second[:8]}", f"{pg_schema}_dot"}
    # Each build registered itself: its start, once the guard passed, and its end.
    assert pg_rows(pg, f'select commit_sha, status from "{pg_schema}_dot".dot_builds order by recorded_at') == [
        (project.first, "running"),
        (project.first, "success"),
        (project.second, "running"),
        (project.second, "success"),
    ]
    assert pg_rows(pg, f"select order_id, amount from {one['schema']}.orders order by 1") == [(1, 10), (2, 20), (3, 30)]
    assert pg_rows(pg, f"select order_id, amount from {two['schema']}.orders order by 1") == [(2, 40), (3, 60)]
    # env_var() secrets reach dbt, yet nothing under .dot holds the resolved value.
    leaked = [p for p in (project.project_dir / ".dot").rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []
    profile = yaml.safe_load((project.build_dir(project.second) / "dev" / "profiles.yml").read_text())
    assert profile["shop"]["outputs"]["dev"]["password"] == "{{ env_var('DOT_TEST_SECRET') }}"


def test_summary_names_every_path_and_records_the_build(project: Project) -> None:
    result = project.run("run", "--json")
    assert result.code == 0, result.stderr
    data = summary(result)
    build = project.build_dir(project.second)
    assert data["worktree"] == str(build / "worktree")
    assert data["profiles_dir"] == str(build / "dev")
    assert data["target_path"] == str(build / "dev" / "target")
    assert data["log_path"] == str(build / "dev" / "logs")
    assert data["status"] == "success" and data["exit_code"] == 0
    assert (build / "dev" / "target" / "manifest.json").is_file()
    assert (build / "dev" / "logs" / "dbt.log").is_file()
    # dbt wrote nothing into the user's checkout or the worktree's project.
    assert not (project.project_dir / "target").exists() and not (project.project_dir / "logs").exists()
    assert not (build / "worktree" / "target").exists() and not (build / "worktree" / "logs").exists()
    record = json.loads((build / "dev" / "build.json").read_text())
    assert record["status"] == "success" and record["schema"] == f"dev_{project.second[:8]}"
    assert record["dbt_version"] and record["adapter_type"] == "duckdb"
    # Progress went to stderr, one line per step.
    for step in ("resolve", "worktree", "profile", "build"):
        assert f"dot-tasks: {step}" in result.stderr


def test_steps_alone_chain_like_a_shell_script(project: Project) -> None:
    ref = project.run("resolve", "--ref", "main").out
    assert ref == project.second
    worktree = project.run("worktree", "--ref", ref).out
    assert worktree == str(project.build_dir(ref) / "worktree")
    profiles_dir = project.run("profile", "--ref", ref, "--context", "dev").out
    assert profiles_dir == str(project.build_dir(ref) / "dev")
    mode = stat.S_IMODE((project.build_dir(ref) / "dev" / "profiles.yml").stat().st_mode)
    assert mode == 0o600
    seeded = project.run("build", "--ref", ref, "--context", "dev", "--command", "seed")
    assert seeded.code == 0, seeded.stderr
    built = project.run("build", "--ref", ref, "--context", "dev", "--command", "run", "--", "--select", "orders")
    assert built.code == 0, built.stderr
    assert built.out == str(project.build_dir(ref) / "dev" / "target")
    run_results = json.loads((project.build_dir(ref) / "dev" / "target" / "run_results.json").read_text())
    assert [r["unique_id"] for r in run_results["results"]] == ["model.shop.orders"]


def test_rerun_is_idempotent_and_reuses_the_worktree(project: Project) -> None:
    assert project.run("run").code == 0
    marker = project.build_dir(project.second) / "worktree" / "dbt_project.yml"
    before = marker.stat().st_mtime_ns
    again = project.run("run")
    assert again.code == 0, again.stderr
    assert "worktree reused" in again.stderr
    assert marker.stat().st_mtime_ns == before
    assert duckdb_rows(project.project_dir / "warehouse.duckdb", f"select count(*) from dev_{project.second[:8]}.orders") == [(2,)]


def test_project_in_a_subdirectory(tmp_path) -> None:
    project = make_project(tmp_path, subdir="analytics/dbt")
    result = project.run("run", "--json")
    assert result.code == 0, result.stderr
    data = summary(result)
    assert data["project_path"] == str(project.build_dir(project.second) / "worktree" / "analytics" / "dbt")
    assert (project.project_dir / ".dot").is_dir() and not (project.repo_dir / ".dot").exists()
    exclude = (project.repo_dir / ".git" / "info" / "exclude").read_text()
    assert "/analytics/dbt/.dot/" in exclude.splitlines()
    assert git("status", "--porcelain", cwd=project.repo_dir) == ""


def test_local_package_is_installed_once_per_commit(tmp_path) -> None:
    project = make_project(tmp_path, subdir="dbt")
    write(
        project.repo_dir / "macros_pkg" / "dbt_project.yml",
        """
        name: macros_pkg
        config-version: 2
        version: "1.0"
        """,
    )
    write(project.repo_dir / "macros_pkg" / "macros" / "double.sql", "{% macro double(x) %}({{ x }} * 2){% endmacro %}\n")
    write(project.project_dir / "packages.yml", "packages:\n  - local: ../macros_pkg\n")
    write(
        project.project_dir / "models" / "doubled.sql",
        "select order_id, {{ macros_pkg.double('amount') }} as amount from {{ ref('raw_orders') }}\n",
    )
    commit = project.commit("use a local package")
    first = project.run("run", "--json")
    assert first.code == 0, first.stderr
    assert "Installing ../macros_pkg" in first.stderr or "Installed from <local @ ../macros_pkg>" in first.stderr
    assert duckdb_rows(project.project_dir / "warehouse.duckdb", f"select sum(amount) from dev_{commit[:8]}.doubled") == [(120,)]
    second = project.run("run")
    assert second.code == 0, second.stderr
    assert first.stderr.count("Installing") == 1 and second.stderr.count("Installing") == 0
    assert (project.build_dir(commit) / ".deps-installed").is_file()
    third = project.run("build", "--no-deps")
    assert third.code == 0, third.stderr


def test_dbt_failure_exit_code_reaches_the_shell(project: Project) -> None:
    write(project.project_dir / "models" / "broken.sql", "select * from no_such_table\n")
    commit = project.commit("break the build")
    result = project.run("run", "--json")
    assert result.code == 1  # dbt's own "run produced failures"
    data = summary(result)
    assert data["status"] == "failed" and data["exit_code"] == 1 and data["commit"] == commit
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("dot-tasks: dbt")]
    assert error_lines and "failed (exit 1)" in error_lines[-1]
    assert "Traceback" not in result.stderr
    record = json.loads((project.build_dir(commit) / "dev" / "build.json").read_text())
    assert record["status"] == "failed" and record["exit_code"] == 1
