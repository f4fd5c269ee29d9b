"""The warehouse knows every build: two clones of one repository are two machines sharing one warehouse.

What is live, what may be rolled back to, what another machine's build defers
to and what a user's view reads are decided in the warehouse, by the dbt child
that drops; never from one machine's `.dot`.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import (
    Project,
    duckdb_profile,
    duckdb_rows,
    git,
    make_project,
    pg_rows,
    pg_schemas,
    postgres_profile,
    write,
)

from dot_tasks.registry import STALE_RUNNING_SECONDS, current_status, live_base, parse_time


def _clone(project: Project, root: Path, profile: str | None = None) -> Project:
    """A second machine: its own clone of the repository (and its own .dot)."""
    repo = root / "clone"
    root.mkdir(parents=True, exist_ok=True)
    git("clone", "-q", str(project.repo_dir), str(repo), cwd=root)
    git("checkout", "-q", "main", cwd=repo)
    clone = Project(repo, repo, project.first, project.second)
    if profile is not None:
        write(repo / "profiles.yml", profile)
    return clone


def _warehouse_rows(project: Project) -> list[dict]:
    result = project.run("list", "--warehouse", "--json")
    assert result.code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _said(result, prefix: str) -> set[str]:
    return {line[len(prefix) :].split(" ")[0] for line in result.stdout.splitlines() if line.startswith(prefix)}


@pytest.mark.postgres
def test_a_machine_that_never_promoted_cannot_drop_what_is_live(tmp_path, pg, pg_schema) -> None:
    a = make_project(tmp_path / "a", profile=postgres_profile(pg_schema))
    v1, v2 = a.first, a.second
    for ref in ("HEAD~1", "HEAD"):
        assert a.run("run", "--ref", ref).code == 0
    assert a.run("promote", "--ref", "HEAD~1").code == 0
    b = _clone(a, tmp_path / "b")
    built = b.run("run")  # the same commit and context: the same schema as A's
    assert built.code == 0, built.stderr
    promoted = a.run("promote", "--ref", "HEAD")  # A promotes it; B's .dot never hears of it
    assert promoted.code == 0, promoted.stderr
    live_view = f'"{pg_schema}".orders'

    # B's notes say nothing is live; the warehouse says v2 is, so B's rebuild of it (which would
    # replace the tables under the live views) is refused before dbt writes.
    rebuilt = b.run("run")
    assert rebuilt.code == 2 and f"dev@{v2[:12]} is live (so says the warehouse)" in rebuilt.stderr, rebuilt.stderr
    assert "--rebuild-live" in rebuilt.stderr and "Traceback" not in rebuilt.stderr
    assert pg_rows(pg, f"select count(*) from {live_view}") == [(2,)]

    # B sees every build, A's included, with who made it, where, and what is live.
    rows = {(r["commit"], r["workdir"]): r for r in _warehouse_rows(b)}
    assert rows[(v1, str(a.project_dir))]["live"] == "rollback"
    assert rows[(v1, str(a.project_dir))]["host"] == socket.gethostname()
    assert rows[(v2, str(b.project_dir))]["live"] == "live" and rows[(v2, str(b.project_dir))]["local"] is True
    assert rows[(v1, str(a.project_dir))]["local"] is False and rows[(v1, str(a.project_dir))]["built_by"]

    # 1. B never promoted, so its .dot knows nothing: the warehouse keeps the live build and the rollback target.
    for args, why in ((["--ref", "HEAD"], "live for dev"), (["--warehouse", "--ref", "HEAD~1"], "rollback target for dev")):
        kept = b.run("clean", *args)
        assert kept.code == 0, kept.stderr
        assert why in kept.out and "dropped" not in kept.out
    assert {f"{pg_schema}_{v1[:8]}", f"{pg_schema}_{v2[:8]}"} <= pg_schemas(pg, pg_schema)
    assert pg_rows(pg, f"select count(*) from {live_view}") == [(2,)]

    # 2, 3. Users' views: one on the live view, one in another schema on the rollback build.
    with pg.cursor() as cur:
        cur.execute(f'create view "{pg_schema}".report as select * from {live_view}')
        cur.execute(f'create schema "{pg_schema}_user"')
        cur.execute(f'create view "{pg_schema}_user".on_build as select * from "{pg_schema}_{v1[:8]}".orders')
    refused = b.run("clean", "--ref", "HEAD", "--force")
    assert refused.code == 2 and f"{pg_schema}.report (reads {pg_schema}.orders)" in refused.stderr, refused.stderr
    refused = a.run("clean", "--ref", "HEAD~1", "--force", "--dry-run")
    assert refused.code == 2 and f"{pg_schema}_user.on_build" in refused.stderr, refused.stderr
    assert pg_rows(pg, f'select count(*) from "{pg_schema}".report') == [(2,)]
    assert pg_rows(pg, f'select count(*) from "{pg_schema}_user".on_build') == [(3,)]
    assert (a.build_dir(v1) / "dev").is_dir()

    # --force may break the live views that promotions made, named, and only those.
    with pg.cursor() as cur:
        cur.execute(f'drop view "{pg_schema}".report')
    dry = b.run("clean", "--ref", "HEAD", "--force", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert f"would break the live view {pg_schema}.orders" in dry.out
    real = b.run("clean", "--ref", "HEAD", "--force")
    assert real.code == 0, real.stderr
    assert _said(dry, "would drop ") == _said(real, "dropped ") == {f"{pg_schema}_{v2[:8]}"}
    assert f"broke the live view {pg_schema}.orders" in real.out
    history = pg_rows(pg, f'select action, commit_sha from "{pg_schema}".dot_promotions order by seq desc limit 1')
    assert history == [("retire", v2)]
    assert f"{pg_schema}_{v1[:8]}" in pg_schemas(pg, pg_schema)  # the rollback target and the user's view stay
    assert pg_rows(pg, f'select count(*) from "{pg_schema}_user".on_build') == [(3,)]
    # Its registry rows went with it; A's build of v1 is still listed. The database is shared with
    # the suite's other PostgreSQL tests (whose hermetic repositories make the same commits), and
    # `list --warehouse` shows every registry in it: only this test's schemas are its to count.
    assert {r["commit"] for r in _warehouse_rows(a) if r["schema"].startswith(f"{pg_schema}_")} == {v1}


def _duck(project: Project, sql: str) -> None:
    import duckdb

    with duckdb.connect(str(project.project_dir / "warehouse.duckdb")) as con:
        con.execute(sql)


def _duck_schemas(project: Project) -> set[str]:
    return {r[0] for r in duckdb_rows(project.project_dir / "warehouse.duckdb", "select schema_name from information_schema.schemata")}


def test_bases_other_machines_defer_to_and_users_views_are_kept_then_a_fresh_runner_sweeps(tmp_path) -> None:
    a = make_project(tmp_path / "a")
    shared = duckdb_profile().replace("path: warehouse.duckdb", f"path: {a.project_dir / 'warehouse.duckdb'}")
    b = _clone(a, tmp_path / "b", shared)
    base, head = a.first, a.second
    assert a.run("run", "--ref", "HEAD~1").code == 0
    # B's build defers to the base (built again on B: the same schema as A's).
    deferred = b.run("run", "--defer-to", "dev@HEAD~1", "--build-base")
    assert deferred.code == 0, deferred.stderr
    base_schema, head_schema = f"dev_{base[:8]}", f"dev_{head[:8]}"

    # A knows nothing of B's build: the registry keeps the base.
    kept = a.run("clean", "--ref", "HEAD~1")
    assert kept.code == 0, kept.stderr
    assert f"dev@{head[:8]}" in kept.out and "defers to it" in kept.out, kept.out
    assert base_schema in _duck_schemas(a)

    # A user's view reads the base: not even --force drops it (DuckDB records no dependencies: the bodies tell).
    _duck(a, f"create view main.user_report as select * from {base_schema}.orders")
    refused = a.run("clean", "--ref", "HEAD~1", "--force")
    assert refused.code == 2 and "main.user_report (reads " + base_schema in refused.stderr, refused.stderr
    assert duckdb_rows(a.project_dir / "warehouse.duckdb", "select count(*) from main.user_report") == [(3,)]
    _duck(a, "drop view main.user_report")

    # A fresh CI runner (no .dot at all) sweeps what is a week old, from every machine, and nothing else.
    _duck(a, "create schema dev_deadbeef")  # looks like a build; the registry never heard of it
    old = "2020-01-01T00:00:00.000000Z"
    _duck(a, f"update dev_dot.dot_builds set started_at = '{old}', finished_at = '{old}'")
    fresh = _clone(a, tmp_path / "c", shared)
    dry = fresh.run("clean", "--warehouse", "--older-than", "7d", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert base_schema in _duck_schemas(a)
    real = fresh.run("clean", "--warehouse", "--older-than", "7d")
    assert real.code == 0, real.stderr
    assert _said(dry, "would drop ") == _said(real, "dropped ") == {base_schema, head_schema}
    schemas = _duck_schemas(a)
    assert not {base_schema, head_schema} & schemas and {"dev_deadbeef", "dev"} <= schemas | {"dev"}
    assert _warehouse_rows(fresh) == []
    # Relation by relation, then RESTRICT: dbt's log of the SQL it ran never says CASCADE.
    ran = (fresh.project_dir / ".dot" / "logs" / "dbt.log").read_text().lower()
    assert f'drop schema if exists "{base_schema}" restrict' in ran and "cascade" not in ran
    # B's own files of them are B's cache: B sees they are gone from the warehouse.
    assert (b.build_dir(head) / "dev").is_dir()


def test_a_suffix_taken_in_the_warehouse_by_another_commit_is_lengthened(tmp_path) -> None:
    project = make_project(tmp_path)
    head = project.second
    other = head[:8] + "0" * 32  # another machine's commit, with the same first eight digits
    columns = (
        "project, commit_sha, short, context, build_schema, schemas, status, started_at, finished_at, "
        "recorded_at, dbt_version, dot_version, built_by, host, workdir, command, deferred_commit, "
        "deferred_context, deferred_schema"
    )
    _duck(project, "create schema dev_dot")
    _duck(project, f"create table dev_dot.dot_builds ({', '.join(c + ' varchar' for c in columns.split(', '))})")
    _duck(
        project,
        f"insert into dev_dot.dot_builds ({columns}) values ('shop', '{other}', '{head[:8]}', 'dev', "
        f"'dev_{head[:8]}', '[]', 'success', '2026-01-01', '2026-01-01', '2026-01-01T00:00:00.000000Z', "
        "null, null, 'someone@example.com', 'elsewhere', '/far', 'build', null, null, null)",
    )
    result = project.run("run", "--json")
    assert result.code == 0, result.stderr
    assert f"the suffix {head[:8]} is taken in the warehouse by {other[:12]}" in result.stderr
    assert json.loads(result.stdout)["schema"] == f"dev_{head[:9]}"
    assert f"dev_{head[:8]}" not in _duck_schemas(project)
    assert duckdb_rows(
        project.project_dir / "warehouse.duckdb", f"select status from dev_dot.dot_builds where commit_sha = '{head}' order by recorded_at"
    ) == [("running",), ("success",)]

    # A build running right now on another machine is never swept; commits this clone lacks are
    # left to --ref, since --unreachable cannot tell.
    busy = "f" * 40
    _duck(
        project,
        f"insert into dev_dot.dot_builds ({columns}) values ('shop', '{busy}', 'ffffffff', 'dev', "
        "'dev_ffffffff', '[]', 'running', strftime(now(), '%Y-%m-%dT%H:%M:%S.000000Z'), null, "
        "strftime(now(), '%Y-%m-%dT%H:%M:%S.000000Z'), null, null, 'ci@example.com', 'runner-7', '/ci', "
        "'build', null, null, null)",
    )
    swept = project.run("clean", "--warehouse", "--all", "--dry-run")
    assert swept.code == 0, swept.stderr
    assert "kept dev@ffffffff: it is being built right now (ci@example.com on runner-7)" in swept.out
    assert f"would drop dev_{head[:9]}" in swept.out and f"would forget dev@{head[:8]} " in swept.out
    unreachable = project.run("clean", "--warehouse", "--unreachable", "--dry-run")
    assert unreachable.code == 0 and "2 registered commit(s) are not in this clone" in unreachable.stderr
    assert "nothing to clean" in unreachable.out


def test_a_registry_that_cannot_be_written_warns_once_and_the_build_goes_on(tmp_path) -> None:
    project = make_project(tmp_path)
    _duck(project, "create schema dev_dot")
    _duck(project, "create view dev_dot.dot_builds as select 1 as x")  # not a table we can append to
    result = project.run("run")
    assert result.code == 0, result.stderr
    assert result.stderr.count("warning: the build registry dev_dot.dot_builds could not be written") == 1
    assert f"dev_{project.second[:8]}" in _duck_schemas(project)
    listed = project.run("list", "--warehouse")
    assert listed.code == 2 and "could not read the build registry" in listed.stderr, listed.stderr
    for args, error in ((["--keep-schemas"], "cannot --keep-schemas"), ([], "say what to clean")):
        refused = project.run("clean", "--warehouse", *args)
        assert refused.code == 2 and error in refused.stderr


def test_what_a_recorded_status_means_now(tmp_path) -> None:
    here = socket.gethostname()
    started = "2026-01-01T00:00:00.000000Z"
    assert current_status("success", "c", "dev", "elsewhere", None, started) == "success"
    # Another machine's build: running, until it has been running for a day.
    now = parse_time(started) + 60
    assert current_status("running", "c", "dev", "elsewhere", "/far", started, now) == "running"
    assert current_status("running", "c", "dev", "elsewhere", "/far", started, now + STALE_RUNNING_SECONDS) == "interrupted"
    # This machine's build whose lock nobody holds was killed.
    assert current_status("running", "c", "dev", here, str(tmp_path), started) == "interrupted"
    assert live_base("dev_1234abcd_marts", "1234abcd") is None and live_base("dev_1234abcd", "1234abcd") == "dev"
