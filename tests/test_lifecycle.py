"""`list` and `clean`: files, worktree registrations and warehouse schemas, never a decoy."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from conftest import Project, duckdb_rows, git, make_project, pg_rows, pg_schemas, postgres_profile

from dot_tasks.lifecycle import parse_age
from dot_tasks.records import BuildRecord


def _rows(project: Project) -> list[dict]:
    result = project.run("list", "--json")
    assert result.code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _duck_schemas(project: Project) -> set[str]:
    return {r[0] for r in duckdb_rows(project.project_dir / "warehouse.duckdb", "select schema_name from information_schema.schemata")}


def _make_decoys_duckdb(project: Project, commit: str) -> list[str]:
    import duckdb

    decoys = ["dev", "dev_deadbeef", f"dev_{commit[:8]}x", f"prod_{commit[:8]}"]
    with duckdb.connect(str(project.project_dir / "warehouse.duckdb")) as con:
        for name in decoys:
            con.execute(f'create schema if not exists "{name}"')
            con.execute(f'create table "{name}".keep as select 1 as x')
    return decoys


def test_list_shows_builds_with_refs_and_status(project: Project) -> None:
    git("tag", "v1", project.first, cwd=project.repo_dir)
    assert project.run("run", "--ref", "v1").code == 0
    assert project.run("worktree").code == 0
    rows = {(r["commit"], r["context"]): r for r in _rows(project)}
    built = rows[(project.first, "dev")]
    assert built["refs"] == ["v1"] and built["status"] == "success"
    assert built["schema"] == f"dev_{project.first[:8]}" and built["size_bytes"] > 0 and built["problems"] == []
    assert rows[(project.second, None)]["status"] == "no build"
    assert "main" in rows[(project.second, None)]["refs"]
    table = project.run("list").out
    assert project.first[:8] in table and "v1" in table and "success" in table


def test_list_flags_damaged_builds(project: Project) -> None:
    assert project.run("worktree", "--ref", "HEAD~1").code == 0
    assert project.run("worktree").code == 0
    shutil.rmtree(project.build_dir(project.first) / "worktree")  # deleted by hand
    git("worktree", "prune", cwd=project.repo_dir)
    # A registration whose whole build directory is gone, and a directory whose registration is gone.
    shutil.rmtree(project.build_dir(project.second))
    rows = {r["commit"]: r for r in _rows(project)}
    assert rows[project.first]["problems"] == ["worktree missing"]
    assert rows[project.second]["problems"] == ["registration without directory"]
    assert project.run("clean", "--all").code == 0
    assert _rows(project) == []
    assert ".dot/isolated_builds" not in git("worktree", "list", cwd=project.repo_dir)
    # After a clean, the same commit builds again.
    assert project.run("run").code == 0


def test_directory_without_registration_is_flagged_and_cleaned(project: Project) -> None:
    assert project.run("worktree").code == 0
    registration = project.repo_dir / ".git" / "worktrees"
    shutil.rmtree(registration)
    rows = _rows(project)
    assert rows[0]["problems"] == ["directory without registration"]
    assert project.run("clean", "--ref", "HEAD").code == 0
    assert not project.build_dir(project.second).exists()


def test_clean_drops_own_schemas_and_spares_decoys_duckdb(project: Project) -> None:
    assert project.run("run", "--ref", "HEAD~1").code == 0
    assert project.run("run").code == 0
    decoys = _make_decoys_duckdb(project, project.second)
    dry = project.run("clean", "--ref", "HEAD", "--dry-run")
    assert dry.code == 0 and f"dev_{project.second[:8]}" in dry.out
    assert f"dev_{project.second[:8]}" in _duck_schemas(project) and project.build_dir(project.second).exists()
    result = project.run("clean", "--ref", "HEAD")
    assert result.code == 0, result.stderr
    schemas = _duck_schemas(project)
    assert f"dev_{project.second[:8]}" not in schemas and f"dev_{project.first[:8]}" in schemas
    assert set(decoys) <= schemas
    assert not project.build_dir(project.second).exists()
    again = project.run("clean", "--ref", "HEAD")
    assert again.code == 0 and "nothing to clean" in again.out
    assert project.run("clean", "--all").code == 0
    assert set(decoys) <= _duck_schemas(project) and f"dev_{project.first[:8]}" not in _duck_schemas(project)


def test_clean_context_only_keeps_the_worktree(project: Project) -> None:
    assert project.run("run", "--context", "dev").code == 0
    assert project.run("run", "--context", "prod").code == 0
    assert project.run("clean", "--ref", "HEAD", "--context", "prod").code == 0
    assert (project.build_dir(project.second) / "worktree").is_dir()
    assert (project.build_dir(project.second) / "dev").is_dir()
    assert not (project.build_dir(project.second) / "prod").exists()
    schemas = _duck_schemas(project)
    assert f"analytics_{project.second[:8]}" not in schemas and f"dev_{project.second[:8]}" in schemas


def test_keep_older_than_and_unreachable_choose_the_right_builds(project: Project) -> None:
    git("checkout", "-q", "-b", "feature", cwd=project.repo_dir)
    (project.project_dir / "models" / "extra.sql").write_text("select 1 as x\n")
    feature = project.commit("feature work")
    git("checkout", "-q", "main", cwd=project.repo_dir)
    for ref in (project.first, project.second, feature):
        assert project.run("profile", "--ref", ref).code == 0
        time.sleep(0.01)
    # Age the first build by two days.
    old = time.time() - 2 * 86400
    for path in (project.build_dir(project.first), project.build_dir(project.first) / "dev"):
        os.utime(path, (old, old))

    kept = project.run("clean", "--keep", "2", "--keep-schemas", "--dry-run").out
    assert project.first[:8] in kept and project.second[:8] not in kept and feature[:8] not in kept
    older = project.run("clean", "--older-than", "1d", "--keep-schemas", "--dry-run").out
    assert project.first[:8] in older and project.second[:8] not in older

    git("branch", "-D", "feature", cwd=project.repo_dir)
    unreachable = project.run("clean", "--unreachable", "--keep-schemas")
    assert unreachable.code == 0, unreachable.stderr
    assert not project.build_dir(feature).exists()
    assert project.build_dir(project.first).exists() and project.build_dir(project.second).exists()


@pytest.mark.postgres
def test_clean_on_postgres_spares_decoys_and_custom_variants_go(tmp_path, pg, pg_schema) -> None:
    project = make_project(tmp_path, profile=postgres_profile(pg_schema))
    (project.project_dir / "models" / "marts.sql").write_text("{{ config(schema='marts') }}\nselect * from {{ ref('orders') }}\n")
    commit = project.commit("a custom schema")
    assert project.run("run").code == 0
    assert project.run("run", "--ref", "HEAD~1").code == 0
    own = {f"{pg_schema}_{commit[:8]}", f"{pg_schema}_{commit[:8]}_marts"}
    assert own <= pg_schemas(pg, pg_schema)
    decoys = [pg_schema, f"{pg_schema}_deadbeef", f"{pg_schema}_{commit[:8]}extra"]
    with pg.cursor() as cur:
        for name in decoys:
            cur.execute(f'create schema "{name}"')
    result = project.run("clean", "--ref", "HEAD")
    assert result.code == 0, result.stderr
    remaining = pg_schemas(pg, pg_schema)
    assert not own & remaining
    assert set(decoys) <= remaining and f"{pg_schema}_{project.second[:8]}" in remaining


@pytest.mark.postgres
def test_unreachable_warehouse_keeps_files_for_a_retry(tmp_path, pg, pg_schema) -> None:
    project = make_project(tmp_path, profile=postgres_profile(pg_schema))
    assert project.run("run").code == 0
    profile = project.build_dir(project.second) / "dev" / "profiles.yml"
    text = profile.read_text()
    profile.write_text(text.replace("port: 5432", "port: 1"))  # the warehouse is unreachable now
    result = project.run("clean", "--all")
    assert result.code == 2 and "its files are kept so the clean can be retried" in result.stderr
    assert project.build_dir(project.second).exists()
    profile.write_text(text)
    retry = project.run("clean", "--all")
    assert retry.code == 0, retry.stderr
    # Only the registry, dot-tasks' own, stays; the build's rows went with its schema.
    assert pg_schemas(pg, pg_schema) == {f"{pg_schema}_dot"} and not project.build_dir(project.second).exists()
    assert pg_rows(pg, f'select count(*) from "{pg_schema}_dot".dot_builds') == [(0,)]


def test_clean_needs_a_selection(project: Project) -> None:
    result = project.run("clean")
    assert result.code == 2 and "say what to clean" in result.stderr


def test_owned_schemas_never_include_lookalikes() -> None:
    record = BuildRecord(schema="dev_1234abcd", schemas=("dev", "dev_1234abcd_marts", "dev_1234abcdx", "dev_deadbeef"))
    assert record.owned_schemas("1234abcd") == ["dev_1234abcd", "dev_1234abcd_marts"]
    assert BuildRecord(schema="dev", schemas=("dev",)).owned_schemas("1234abcd") == []


def test_parse_age() -> None:
    assert parse_age("7d") == 7 * 86400 and parse_age("36h") == 36 * 3600 and parse_age("2w") == 14 * 86400
    with pytest.raises(Exception, match="not an age"):
        parse_age("7 days")


def test_contexts_sharing_a_schema_keep_it_until_the_last_goes(tmp_path) -> None:
    project = make_project(tmp_path)
    (project.project_dir / "invoke.yaml").write_text("dot:\n  contexts:\n    ci: prod\n")
    assert project.run("run", "--context", "ci").code == 0
    assert project.run("run", "--context", "prod").code == 0
    schema = f"analytics_{project.second[:8]}"
    result = project.run("clean", "--ref", "HEAD", "--context", "ci")
    assert result.code == 0 and "keeping " + schema in result.stderr
    assert schema in _duck_schemas(project)
    assert project.run("clean", "--ref", "HEAD", "--context", "prod").code == 0
    assert schema not in _duck_schemas(project)


def test_clean_after_a_killed_build_drops_its_schema(project: Project) -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "dot_tasks", "run"], cwd=project.project_dir, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    for line in proc.stderr:  # dbt has created the schema once a model starts
        if "START sql table model" in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until dbt, in the same group, is gone and lets go of the file
        try:
            os.killpg(proc.pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            break
    schema = f"dev_{project.second[:8]}"
    assert schema in _duck_schemas(project)
    # The registry's row of the killed build still says running; every reader reports it interrupted.
    recorded = duckdb_rows(project.project_dir / "warehouse.duckdb", "select status from dev_dot.dot_builds")
    assert recorded == [("running",)]
    listed = project.run("list", "--warehouse", "--json")
    assert listed.code == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["recorded_status"], row["status"], row["schema"]) == ("running", "interrupted", schema)
    assert "interrupted" in project.run("list").out
    result = project.run("clean", "--ref", "HEAD")
    assert result.code == 0, result.stderr
    assert schema not in _duck_schemas(project)
    assert duckdb_rows(project.project_dir / "warehouse.duckdb", "select count(*) from dev_dot.dot_builds") == [(0,)]
