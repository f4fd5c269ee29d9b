"""promote, rollback and live on DuckDB and PostgreSQL: the switch, the gate, history, drift, clean.

Each commit is built once per engine (module-scoped fixtures); the tests then
run many promotions against those builds. The atomicity tests (a reader in
another process, kill -9 at chosen moments) are in the PostgreSQL-only part.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PG_DSN,
    Project,
    Result,
    dot,
    git,
    make_hermetic,
    pg_connect_or_skip,
    pg_output_fields,
    write,
    write_project_config,
)

from dot_tasks import deploy
from dot_tasks.records import BuildRecord

# --- the project: two commits whose models must agree with each other ----------------
#
# A: orders has 3 rows (order_id, amount), order_totals.n = 3, legacy exists,
#    marts.summary.total = 60.
# B: orders has 2 rows and another shape (amount_doubled), order_totals.n = 2,
#    legacy is gone, marts.summary.total = 100.
# C: B plus a test that fails.

SCHEMA_YML = """
    version: 2
    models:
      - name: orders
        columns:
          - name: order_id
            data_tests: [unique, not_null]
    """


def _make(root: Path, profile: str) -> tuple[Project, str, str, str]:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    write_project_config(repo, "+materialized: table")
    write(repo / "seeds" / "raw_orders.csv", "order_id,amount\n1,10\n2,20\n3,30\n")
    write(repo / "models" / "orders.sql", "select order_id, amount from {{ ref('raw_orders') }}\n")
    write(repo / "models" / "order_totals.sql", "select count(*) as n from {{ ref('orders') }}\n")
    write(repo / "models" / "legacy.sql", "select 1 as x\n")
    write(repo / "models" / "marts" / "summary.sql", "{{ config(schema='marts') }}\nselect sum(amount) as total from {{ ref('orders') }}\n")
    write(repo / "models" / "schema.yml", SCHEMA_YML)
    write(repo / ".gitignore", "target/\nlogs/\n*.duckdb*\n")
    write(repo / "profiles.yml", profile)
    project = Project(repo, repo, "", "")
    a = project.commit("A")
    write(repo / "models" / "orders.sql", "select order_id, amount * 2 as amount_doubled from {{ ref('raw_orders') }} where order_id > 1\n")
    write(
        repo / "models" / "marts" / "summary.sql",
        "{{ config(schema='marts') }}\nselect sum(amount_doubled) as total from {{ ref('orders') }}\n",
    )
    (repo / "models" / "legacy.sql").unlink()
    b = project.commit("B: fewer orders, another shape, no legacy")
    git("checkout", "-q", "-b", "broken", cwd=repo)
    write(repo / "tests" / "always_fails.sql", "select 1 as x\n")
    c = project.commit("C: a failing test")
    git("checkout", "-q", "main", cwd=repo)
    project.first, project.second = a, b
    return project, a, b, c


@dataclass
class Env:
    engine: str
    project: Project
    a: str
    b: str
    c: str
    #: context → its live schema
    live: dict[str, str]
    database: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 300) -> Result:
        return dot(*args, cwd=self.project.project_dir, timeout=timeout)

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.code == 0, (args, result.stderr[-3000:])
        return result

    def rows(self, sql: str) -> list[tuple]:
        if self.engine == "duckdb":
            import duckdb

            with duckdb.connect(str(self.database)) as con:
                return con.execute(sql).fetchall()
        import psycopg2

        with psycopg2.connect(PG_DSN) as con, con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []

    def execute(self, sql: str) -> None:
        if self.engine == "duckdb":
            import duckdb

            with duckdb.connect(str(self.database)) as con:
                con.execute(sql)
            return
        import psycopg2

        con = psycopg2.connect(PG_DSN)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()

    def relations(self, schema: str) -> dict[str, str]:
        found = self.rows(f"select table_name, table_type from information_schema.tables where table_schema = '{schema}'")
        return {name: "view" if kind.upper() == "VIEW" else "table" for name, kind in found}

    def state(self, schema: str) -> tuple:
        """What a reader of the live schema sees: (orders rows, order_totals.n, summary, has legacy)."""
        orders = self.rows(f"select count(*) from {schema}.orders")[0][0]
        totals = self.rows(f"select n from {schema}.order_totals")[0][0]
        summary = self.rows(f"select total from {schema}_marts.summary")[0][0]
        return orders, totals, summary, "legacy" in self.relations(schema)


STATE_A = (3, 3, 60, True)
STATE_B = (2, 2, 100, False)


def _duckdb_profile() -> str:
    outputs = "".join(
        f"""
            {name}:
              type: duckdb
              path: warehouse.duckdb
              schema: {schema}
              threads: 2"""
        for name, schema in (("prod", "analytics"), ("dev", "sandbox"))
    )
    return f"shop:\n  target: prod\n  outputs:{textwrap.indent(textwrap.dedent(outputs), '    ')}\n"


def _postgres_profile(base: str) -> str:
    fields = textwrap.indent(pg_output_fields(), " " * 14).lstrip()
    outputs = "".join(
        f"""
            {name}:
              type: postgres
              {fields}
              password: ""
              schema: {schema}
              threads: 2"""
        for name, schema in (("prod", base), ("dev", base + "_dev"))
    )
    return f"shop:\n  target: prod\n  outputs:{textwrap.indent(textwrap.dedent(outputs), '    ')}\n"


def _build_all(env: Env) -> None:
    env.ok("run", f"prod@{env.a}")
    env.ok("run", f"prod@{env.b}")


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    engine = request.param
    mp = pytest.MonkeyPatch()
    make_hermetic(mp, tmp_path_factory.mktemp("home"))
    root = tmp_path_factory.mktemp(f"deploy-{engine}")
    base = ""
    try:
        if engine == "postgres":
            pg_connect_or_skip().close()
            base = "dt_" + uuid.uuid4().hex[:8]
            project, a, b, c = _make(root, _postgres_profile(base))
            env = Env(engine, project, a, b, c, {"prod": base, "dev": base + "_dev"})
        else:
            project, a, b, c = _make(root, _duckdb_profile())
            env = Env(engine, project, a, b, c, {"prod": "analytics", "dev": "sandbox"}, database=project.project_dir / "warehouse.duckdb")
        _build_all(env)
        yield env
    finally:
        if base:
            import psycopg2

            con = psycopg2.connect(PG_DSN)
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("select nspname from pg_namespace where nspname like %s", (base + "%",))
                for (name,) in cur.fetchall():
                    cur.execute(f'drop schema "{name}" cascade')
            con.close()
        mp.undo()


def _history(env: Env, context: str = "prod") -> list[dict]:
    report = json.loads(env.ok("live", context, "--json").stdout)
    return report["history"]


# --- the switch ------------------------------------------------------------------------


def test_promote_promote_rollback_shows_exactly_each_commit(env: Env) -> None:
    live = env.live["prod"]
    sa, sb = env.a[:8], env.b[:8]
    first = json.loads(env.ok("promote", f"prod@{env.a}", "--json").stdout)
    assert first["previous_commit"] is None and first["relations"] == 5  # seed, orders, totals, legacy, summary
    assert env.state(live) == STATE_A
    # A view made by hand in the live schema, which is not a model: never touched.
    env.execute(f"create view {live}.my_report as select 42 as answer")

    second = json.loads(env.ok("promote", f"prod@{env.b}", "--json").stdout)
    assert second["previous_commit"] == env.a and second["dropped"] == [f"{live}.legacy"]
    assert env.state(live) == STATE_B
    if env.engine == "postgres":  # orders lost a column: CREATE OR REPLACE cannot, so drop and create
        assert second["recreated"] == [f"{live}.orders"]
    assert [c for c in env.rows(f"select * from {live}.orders order by 1")] == [(2, 40), (3, 60)]

    back = env.ok("rollback", "prod")
    assert f"prod is now {env.a}" in back.stdout
    assert env.state(live) == STATE_A
    assert env.rows(f"select answer from {live}.my_report") == [(42,)]
    relations = env.relations(live)
    assert relations["my_report"] == "view" and relations["dot_promotions"] == "table"
    assert {k for k, v in relations.items() if v == "view"} == {"orders", "order_totals", "legacy", "raw_orders", "my_report"}

    history = _history(env)
    assert [(h["action"], h["commit"], h["previous_commit"]) for h in history[:3]] == [
        ("rollback", env.a, env.b),
        ("promote", env.b, env.a),
        ("promote", env.a, None),
    ]
    for h in history[:3]:
        assert h["context"] == "prod" and h["node_count"] in (4, 5) and h["gate_overridden"] in (False, 0)
        assert h["promoted_by"] and h["short"] in (sa, sb) and h["promoted_at"]
    assert history[1]["refs"] == "main"
    report = json.loads(env.ok("live", "prod", "--json").stdout)
    assert report["commit"] == env.a and report["previous_commit"] == env.b and report["drift"] == []

    # list shows it from this machine's note, without the warehouse.
    rows = {(r["commit"], r["context"]): r for r in map(json.loads, env.ok("list", "--json").stdout.splitlines())}
    assert rows[(env.a, "prod")]["live"] == "live" and rows[(env.b, "prod")]["live"] == "rollback"
    assert "LIVE" in env.ok("list").stdout


def test_drift_after_a_live_view_is_replaced_by_hand(env: Env) -> None:
    live = env.live["prod"]
    env.ok("promote", f"prod@{env.a}")
    env.execute(f"drop view {live}.order_totals")
    env.execute(f"create view {live}.order_totals as select 99 as n")
    env.execute(f"drop view {live}.legacy")
    drifted = env.run("live", "prod", "--json")
    assert drifted.code == 1  # drift fails the command, for a monitor; --exit-zero only reports
    report = json.loads(env.ok("live", "prod", "--json", "--exit-zero").stdout)
    problems = {d["relation"]: d["problem"] for d in report["drift"]}
    assert problems == {f"{live}.order_totals": f"no longer a view over {live}_{env.a[:8]}.order_totals", f"{live}.legacy": "missing"}
    shown = env.run("live", "prod").stdout
    assert "drift     " in shown and "order_totals" in shown
    # The next promotion puts its own views back.
    env.ok("promote", f"prod@{env.a}")
    assert json.loads(env.ok("live", "prod", "--json").stdout)["drift"] == []
    assert env.state(live) == STATE_A
    # The build relation behind a live view gone (DuckDB leaves the view dangling): drift, not `none`.
    build = f"{live}_{env.a[:8]}"
    env.execute(f"alter table {build}.legacy rename to legacy_away")
    try:
        gone = env.run("live", "prod", "--json")
        problems = {d["relation"]: d["problem"] for d in json.loads(gone.stdout)["drift"]}
        assert gone.code == 1 and list(problems) == [f"{live}.legacy"]
        if env.engine == "duckdb":
            assert problems[f"{live}.legacy"] == f"broken: it reads {build}.legacy, which is gone"
    finally:
        env.execute(f"alter table {build}.legacy_away rename to legacy")


def test_rollback_needs_the_build_and_names_the_way_back(env: Env) -> None:
    env.ok("promote", f"prod@{env.b}")
    context_dir = env.project.build_dir(env.a) / "prod"
    moved = context_dir.with_name("prod.away")
    context_dir.rename(moved)
    try:
        result = env.run("rollback", "prod", "--to", env.a)
        assert result.code == 2 and "Traceback" not in result.stderr
        assert f"`dot-tasks run prod@{env.a}`" in result.stderr and "promote" in result.stderr
        already = env.run("rollback", "prod", "--to", env.b)
        assert already.code == 2 and "is already live" in already.stderr
    finally:
        moved.rename(context_dir)
    assert env.state(env.live["prod"]) == STATE_B


# --- the gate -------------------------------------------------------------------------


def test_gate_refusals_user_table_and_allow_untested(env: Env) -> None:
    live = env.live["dev"]
    # No build at all: say which command makes one. Nothing reaches the warehouse.
    none = env.run("promote", f"dev@{env.a}")
    assert none.code == 2 and f"`dot-tasks run dev@{env.a[:12]}`" in none.stderr

    # A `run` is not a build: the gate wants the tests.
    env.ok("run", f"dev@{env.a}", "--command", "seed")
    env.ok("build", "--ref", env.a, "--context", "dev", "--command", "run")
    untested = env.run("promote", f"dev@{env.a}")
    assert untested.code == 2 and "2 test(s) never ran: " in untested.stderr
    assert "--allow-untested" in untested.stderr and "Traceback" not in untested.stderr

    # A `test` after that run opens the gate; a table the user made in the live schema stops it.
    env.ok("build", "--ref", env.a, "--context", "dev", "--command", "test")
    env.execute(f"create schema {live}")
    env.execute(f"create table {live}.orders as select 7 as mine")
    env.execute(f"create view {live}.notes as select 'keep me' as note")
    theirs = env.run("promote", f"dev@{env.a}")
    assert theirs.code == 2 and f"{live}.orders (table)" in theirs.stderr and "--replace-existing" in theirs.stderr
    assert env.rows(f"select mine from {live}.orders") == [(7,)]
    assert set(env.relations(live)) == {"orders", "notes"}  # nothing was changed
    env.ok("promote", f"dev@{env.a}", "--replace-existing")
    assert env.rows(f"select count(*) from {live}.orders") == [(3,)]
    assert env.rows(f"select note from {live}.notes") == [("keep me",)]

    # Partial builds never go live, not even with --allow-untested (the slim-CI contract).
    record_path = env.project.build_dir(env.a) / "dev" / "build.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "partial": True, "cloned": False}))
    partial = env.run("promote", f"dev@{env.a}", "--allow-untested")
    assert partial.code == 2 and "would be missing models" in partial.stderr
    record_path.write_text(json.dumps({**record, "partial": True, "cloned": True}))
    env.ok("promote", f"dev@{env.a}")
    record_path.write_text(json.dumps(record))

    # The build's schemas dropped behind its back: refused, naming them and the fix.
    env.execute(f"drop schema {live}_{env.a[:8]} cascade")
    gone = env.run("promote", f"dev@{env.a}")
    assert gone.code == 2 and f"{live}_{env.a[:8]}.orders" in gone.stderr
    assert f"`dot-tasks run dev@{env.a[:12]}`" in gone.stderr


def test_failing_tests_refused_then_allow_untested_is_recorded(env: Env) -> None:
    if env.engine == "postgres":
        pytest.skip("the gate reads only files; DuckDB shows it")
    failed = env.run("run", f"prod@{env.c}")
    assert failed.code == 1
    never = env.run("rollback", "prod", "--to", env.c)
    assert never.code == 2 and "was never live" in never.stderr
    refused = env.run("promote", f"prod@{env.c}")
    assert refused.code == 2 and "1 test(s) failed: always_fails" in refused.stderr
    assert "failed (exit 1)" in refused.stderr
    forced = env.ok("promote", f"prod@{env.c}", "--allow-untested")
    assert "warning: --allow-untested" in forced.stderr
    assert _history(env)[0]["gate_overridden"] in (True, 1)
    env.ok("promote", f"prod@{env.b}")


def test_gate_judges_every_node_across_invocations() -> None:
    from dot_tasks.builds import node_statuses

    commit, ctx = "a" * 40, "prod"
    manifest = {
        "nodes": {
            "model.shop.orders": {"resource_type": "model", "config": {}},
            "model.shop.eph": {"resource_type": "model", "config": {"materialized": "ephemeral"}},
            "seed.shop.raw": {"resource_type": "seed", "config": {}},
            "test.shop.unique_orders.1": {"resource_type": "test", "depends_on": {"nodes": ["model.shop.orders"]}},
            "test.shop.check_raw.2": {"resource_type": "test", "depends_on": {"nodes": ["seed.shop.raw"]}},
        }
    }

    def results(*pairs: tuple[str, str], at: str = "2026-11-29T10:01:00Z") -> dict:
        return {"metadata": {"generated_at": at}, "results": [{"unique_id": u, "status": s} for u, s in pairs]}

    started = "2026-11-29T10:00:00+00:00"
    everything = results(
        ("model.shop.orders", "success"),
        ("seed.shop.raw", "success"),
        ("test.shop.unique_orders.1", "fail"),
        ("test.shop.check_raw.2", "pass"),
    )
    nodes = node_statuses(None, ["build"], [], everything, manifest, started)
    record = {"commit": commit, "context": ctx, "command": "build", "status": "success", "exit_code": 0, "nodes": nodes}

    def judged(data: dict, judged_manifest: dict | None = manifest, **kw: Any) -> str:
        return "; ".join(deploy.gate_problems(BuildRecord.from_json(data), judged_manifest, commit, ctx, **kw))

    def problems(nodes: dict, **kw: Any) -> str:
        return judged({**record, "nodes": nodes}, **kw)

    assert problems(nodes) == "1 test(s) failed: unique_orders"
    # A selection that passes does not repair what it did not run ...
    walked = node_statuses(
        nodes, ["build"], ["--select", "raw"], results(("seed.shop.raw", "success"), ("test.shop.check_raw.2", "pass")), manifest, started
    )
    assert problems(walked) == "1 test(s) failed: unique_orders"
    # ... a model rebuilt without its tests leaves them stale ...
    rerun = node_statuses(nodes, ["run"], ["--select", "orders"], results(("model.shop.orders", "success")), manifest, started)
    assert problems(rerun) == ("1 test(s) ran before the node they test was rebuilt, and have not run since: unique_orders")
    # ... and one that covers the failed node repairs it by passing it.
    fixed = node_statuses(
        nodes,
        ["build"],
        ["--select", "orders+"],
        results(("model.shop.orders", "success"), ("test.shop.unique_orders.1", "pass")),
        manifest,
        started,
    )
    assert problems(fixed) == ""
    # A full `run` starts the models afresh; the tests stay until a full `test` starts them afresh too.
    run_only = node_statuses(None, ["run"], [], results(("model.shop.orders", "success")), manifest, started)
    assert "1 node(s) were never built: raw" in problems(run_only) and "2 test(s) never ran" in problems(run_only)
    tested = node_statuses(
        {**fixed, "model.shop.orders": "error"}, ["run"], [], results(("model.shop.orders", "success")), manifest, started
    )
    assert "unique_orders" in problems(tested)  # stale after the rebuild
    # Old run_results (another invocation's) change nothing.
    assert node_statuses(nodes, ["build"], [], results(at="2026-11-29T09:00:00Z"), manifest, started) == nodes
    assert "warned (--fail-on-warn): unique_orders" in problems({**fixed, "test.shop.unique_orders.1": "warn"}, fail_on_warn=True)
    assert problems({**fixed, "test.shop.unique_orders.1": "warn"}) == ""
    assert "skipped after an upstream failure" in problems({**fixed, "test.shop.unique_orders.1": "skipped"})
    assert "did not build: orders" in problems({**fixed, "model.shop.orders": "error"})
    assert "unit_orders" in problems({**fixed, "unit_test.shop.orders.unit_orders": "fail"})
    assert judged({**record, "status": "failed", "exit_code": 1, "nodes": fixed}) == "its last dbt build failed (exit 1)"
    assert "being built right now" in judged({**record, "status": "running"})
    assert "no per-node results" in judged({**record, "nodes": None})
    assert "manifest.json is missing" in judged(record, None)
    assert "another commit" in judged({**record, "commit": "b" * 40})
    assert deploy.gate_problems(None, manifest, commit, ctx)
    partial, cloned = BuildRecord.from_json({"partial": True}), BuildRecord.from_json({"partial": True, "cloned": True})
    assert partial and partial.partial_problem() and cloned and not cloned.partial_problem()


def test_live_locations_take_the_suffix_out() -> None:
    assert deploy.live_schema_of("analytics_ab12cd34", "ab12cd34") == "analytics"
    assert deploy.live_schema_for("analytics_ab12cd34_marts", "analytics_ab12cd34", "analytics") == "analytics_marts"
    assert deploy.live_schema_for("analytics_ab12cd34", "analytics_ab12cd34", "analytics") == "analytics"
    assert deploy.live_schema_for("analytics_ab12cd34x", "analytics_ab12cd34", "analytics") is None
    with pytest.raises(deploy.PromotionRefused):
        deploy.live_schema_of("analytics", "ab12cd34")
    manifest = {
        "nodes": {
            "model.p.a": {"resource_type": "model", "schema": "s_1234", "name": "a", "alias": "a_alias", "config": {}},
            "model.p.e": {"resource_type": "model", "schema": "s_1234", "name": "e", "config": {"materialized": "ephemeral"}},
            "test.p.t": {"resource_type": "test", "schema": "s_1234", "name": "t", "config": {}},
            "seed.p.s": {"resource_type": "seed", "schema": "s_1234_raw", "name": "s", "config": {}},
        }
    }
    assert deploy.plan_relations(manifest, "s_1234", "s") == [["s_1234", "s", "a_alias"], ["s_1234_raw", "s_raw", "s"]]
    manifest["nodes"]["model.p.x"] = {"resource_type": "model", "schema": "elsewhere", "name": "x", "config": {}}
    with pytest.raises(deploy.PromotionRefused, match="outside s_1234"):
        deploy.plan_relations(manifest, "s_1234", "s")


# --- history, retire, plain dbt ------------------------------------------------------------


def test_repairing_the_live_commit_keeps_the_real_previous_release(env: Env) -> None:
    implicit = env.run("promote")
    assert implicit.code == 2 and "promote needs the build to make live" in implicit.stderr
    env.ok("promote", f"prod@{env.a}")
    second = env.ok("promote", f"prod@{env.b}")
    assert "Running with dbt" not in second.stderr and "Registered adapter" not in second.stderr  # quiet
    repair = json.loads(env.ok("promote", f"prod@{env.b}", "--json", "--verbose").stdout)
    assert repair["action"] == "repair" and repair["previous_commit"] == env.a
    history = _history(env)
    assert [(h["action"], h["commit"], h["previous_commit"]) for h in history[:2]] == [("repair", env.b, env.a), ("promote", env.b, env.a)]
    back = env.ok("rollback", "prod")
    assert f"prod is now {env.a}" in back.stdout
    assert env.state(env.live["prod"]) == STATE_A
    refused = env.run("rollback", "prod", "--to", env.a)
    assert refused.code == 2 and f"refusing to roll prod back to {env.a[:12]}" in refused.stderr
    assert "promote" not in refused.stderr.split("refusing", 1)[1]


def test_rebuilding_the_live_commit_is_refused_unless_rebuild_live(env: Env) -> None:
    env.ok("promote", f"prod@{env.b}")
    refused = env.run("run", f"prod@{env.b}")
    assert refused.code == 2 and "--rebuild-live" in refused.stderr and "Build another commit" in refused.stderr
    assert "Running with dbt" not in refused.stderr  # before dbt starts
    assert env.run("build", "--ref", env.b, "--context", "prod").code == 2
    rebuilt = env.ok("build", "--ref", env.b, "--context", "prod", "--rebuild-live")
    assert f"promoting prod@{env.b[:12]} again" in rebuilt.stderr
    report = json.loads(env.ok("live", "prod", "--json").stdout)
    assert report["drift"] == [] and report["history"][0]["action"] == "repair"
    assert env.state(env.live["prod"]) == STATE_B


def _plain_dbt(env: Env, context: str, *args: str) -> subprocess.CompletedProcess:
    """The user's own `dbt build` from their checkout, without dot-tasks."""
    dbt = Path(sys.executable).with_name("dbt")
    return subprocess.run(
        [str(dbt), *args, "--target", context, "--profiles-dir", ".", "--project-dir", "."],
        cwd=env.project.project_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_retire_then_plain_dbt_then_replace_existing_over_dbts_own_views(env: Env) -> None:
    live = env.live["dev"]
    env.ok("run", f"dev@{env.a}", "--rebuild-live")  # whether or not an earlier test left it live
    env.ok("promote", f"dev@{env.a}", "--replace-existing")
    retired = json.loads(env.ok("retire", "dev", "--json").stdout)
    assert retired["retired"] == env.a and f"{live}.orders" in retired["dropped"]
    # Every view the promotion made is gone from the warehouse, not only from the report.
    made = json.loads(env.rows(f"select relations from {live}.dot_promotions where action <> 'retire' order by seq desc limit 1")[0][0])
    assert made and not ({rel[2] for rel in made} & set(env.relations(live))), env.relations(live)
    assert "nothing is live" in env.ok("live", "dev").stdout
    assert (env.a, "dev") not in deploy.live_marks(_workspace(env))
    assert env.run("retire", "dev").code == 2
    # The user's own dbt owns the schema again: their `dbt build`, with a staging view on a seed.
    orders = env.project.project_dir / "models" / "orders.sql"
    original = orders.read_text()
    orders.write_text("{{ config(materialized='view') }}\n" + original)
    try:
        built = _plain_dbt(env, "dev", "build")
        assert built.returncode == 0, built.stdout[-3000:]
    finally:
        orders.write_text(original)
    assert env.relations(live)["orders"] == "view" and env.relations(live)["raw_orders"] == "table"
    # A relation that is no node of the project on dbt's table, and (PostgreSQL) a case-variant user table.
    env.execute(f"create view {live}.my_orders as select * from {live}.raw_orders")
    if env.engine == "postgres":
        env.execute(f'create table {live}."ORDERS" as select 7 as mine')
    refused = env.run("promote", f"dev@{env.a}", "--replace-existing", "--json")
    if env.engine == "postgres":  # DuckDB records no dependencies: nothing blocks the drop there
        assert refused.code == 2 and f"{live}.my_orders (on {live}.raw_orders)" in refused.stderr
        assert f"{live}.orders (on" not in refused.stderr  # dbt's own view goes with its table
        env.execute(f"drop view {live}.my_orders")
        result = json.loads(env.ok("promote", f"dev@{env.a}", "--replace-existing", "--json").stdout)
    else:  # DuckDB binds views when read: the user's view reads the new raw_orders view
        assert refused.code == 0, refused.stderr
        result = json.loads(env.ok("promote", f"dev@{env.a}", "--replace-existing", "--json").stdout)
        assert result["action"] == "repair" and env.rows(f"select count(*) from {live}.my_orders") == [(3,)]
        result = {**result, "replaced_existing": json.loads(refused.stdout)["replaced_existing"]}
    assert f"{live}.orders" in result["replaced_existing"] and f"{live}.raw_orders" in result["replaced_existing"]
    assert env.rows(f"select count(*) from {live}.orders") == [(3,)]
    assert env.rows(f"select count(*) from {live}.raw_orders") == [(3,)]
    if env.engine == "postgres":
        assert env.rows(f'select mine from {live}."ORDERS"') == [(7,)]  # left alone, never in the way
        assert f"{live}.ORDERS" not in json.dumps(result)


def test_gate_walk_around_is_refused_until_the_failed_nodes_pass(env: Env) -> None:
    if env.engine == "postgres":
        pytest.skip("the gate reads only files; DuckDB shows it")
    repo = env.project.repo_dir
    git("checkout", "-q", "-b", "dup", env.b, cwd=repo)
    write(
        repo / "models" / "orders.sql",
        "select order_id, amount * 2 as amount_doubled from {{ ref('raw_orders') }} where order_id > 1\n"
        "{% if var('dup', false) %}union all select 2, 40{% endif %}\n",
    )
    d = env.project.commit("D: orders duplicates a key when asked")
    git("checkout", "-q", "main", cwd=repo)
    failed = env.run("run", f"prod@{d}", "--", "--vars", "{dup: true}")
    assert failed.code == 1
    env.ok("build", "--ref", d, "--context", "prod", "--select", "order_totals")  # passes, and walks around
    refused = env.run("promote", f"prod@{d}")
    assert refused.code == 2 and "test(s) failed: unique_orders_order_id" in refused.stderr
    # The model rebuilt right but without its tests is not enough either.
    env.ok("build", "--ref", d, "--context", "prod", "--command", "run", "--select", "orders")
    stale = env.run("promote", f"prod@{d}")
    assert stale.code == 2 and "ran before the node they test was rebuilt" in stale.stderr
    env.ok("build", "--ref", d, "--context", "prod", "--select", "orders+")
    env.ok("promote", f"prod@{d}")
    assert env.rows(f"select count(*) from {env.live['prod']}.orders") == [(2,)]
    env.ok("promote", f"prod@{env.b}")


def test_a_users_view_that_a_switch_would_break_stops_it_on_duckdb(env: Env) -> None:
    if env.engine != "duckdb":
        pytest.skip("PostgreSQL refuses the drop by its dependencies (test_a_users_view_on_a_live_view...)")
    live = env.live["prod"]
    env.ok("promote", f"prod@{env.a}")
    env.execute(f"create view {live}.my_legacy_report as select * from {live}.legacy")
    refused = env.run("promote", f"prod@{env.b}")  # B has no legacy: its view would go
    assert refused.code == 2 and f"{live}.my_legacy_report (reads {live}.legacy" in refused.stderr
    assert env.state(live) == STATE_A and env.rows(f"select x from {live}.my_legacy_report") == [(1,)]
    env.execute(f"drop view {live}.my_legacy_report")
    env.ok("promote", f"prod@{env.b}")


# --- clean and concurrency ----------------------------------------------------------------


def test_clean_keeps_the_live_build_and_the_rollback_target(env: Env) -> None:
    env.ok("promote", f"prod@{env.a}")
    env.ok("promote", f"prod@{env.b}")  # live: B, rollback target: A
    protected = deploy.protected_commits(_workspace(env))
    assert protected[env.b] == "live for prod" and "rollback target for prod" in protected[env.a]
    dry = env.ok("clean", "--all", "--context", "prod", "--dry-run").stdout
    assert f"kept {env.b[:8]} prod: live for prod" in dry and "rollback target for prod" in dry
    # --keep 1 counts the protected builds among the kept: only C (newest) goes, if it was built.
    result = env.ok("clean", "--keep", "1", "--context", "prod")
    schemas = {r[0] for r in env.rows("select schema_name from information_schema.schemata")}
    assert f"{env.live['prod']}_{env.a[:8]}" in schemas and f"{env.live['prod']}_{env.b[:8]}" in schemas
    if env.engine == "duckdb":  # the newest unprotected build goes (D, from the gate test, or C)
        assert f"dropped {env.live['prod']}_" in result.stdout
    assert env.state(env.live["prod"]) == STATE_B


def _workspace(env: Env) -> Any:
    from dot_tasks.builds import Settings, Workspace

    return Workspace.open(Settings(), env.project.project_dir)


def _popen(env: Env, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dot_tasks", *args],
        cwd=env.project.project_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_two_promotes_at_once_serialize(env: Env) -> None:
    before = _history(env)[0]["seq"]
    procs = [_popen(env, "promote", f"prod@{env.a}"), _popen(env, "promote", f"prod@{env.b}")]
    outs = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for code, _out, err in outs:
        assert code == 0, err[-2000:]
    assert any("waiting for the live schema" in err for _c, _o, err in outs)
    history = _history(env)
    assert [h["seq"] for h in history[:2]] == [before + 2, before + 1]
    assert history[0]["previous_commit"] == history[1]["commit"]
    assert env.state(env.live["prod"]) == (STATE_A if history[0]["commit"] == env.a else STATE_B)


# --- atomicity on PostgreSQL ------------------------------------------------------------

READER = r"""
import json, os, sys, time
import psycopg2
import psycopg2.extensions

dsn, schema, stop, order = sys.argv[1:5]
con = psycopg2.connect(dsn)
con.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ)
queries = {"orders": f"select count(*) from {schema}.orders", "order_totals": f"select n from {schema}.order_totals"}
names = ["orders", "order_totals"] if order == "forward" else ["order_totals", "orders"]
seen, errors, reads = {}, [], 0
while not os.path.exists(stop):
    try:
        values = {}
        with con.cursor() as cur:  # one repeatable-read transaction: psycopg2 begins it with the first read
            for name in names:
                cur.execute(queries[name])
                values[name] = cur.fetchone()[0]
                time.sleep(0.005)  # widen the window between the two reads
        con.commit()
        key = f"{values['orders']}/{values['order_totals']}"
        seen[key] = seen.get(key, 0) + 1
        reads += 1
        time.sleep(0.02)  # about 30 transactions a second
    except Exception as exc:  # noqa: BLE001 - every error is a finding
        errors.append(str(exc).strip())
        con.rollback()
print(json.dumps({"seen": seen, "errors": errors[:5], "reads": reads}))
"""


def _postgres_only(env: Env) -> None:
    if env.engine != "postgres":
        pytest.skip("PostgreSQL-only: transactional DDL seen from a second connection")


def test_four_readers_in_both_orders_never_fail_nor_see_a_mix_during_10_switches(env: Env, tmp_path: Path) -> None:
    _postgres_only(env)
    live = env.live["prod"]
    env.ok("promote", f"prod@{env.a}")
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, PG_DSN, live, str(stop), order], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for order in ("forward", "backward", "forward", "backward")
    ]
    switches = []
    try:
        for _ in range(5):  # 5 promote/rollback cycles: 10 switches
            switches.append(json.loads(env.ok("promote", f"prod@{env.b}", "--json").stdout))
            switches.append(json.loads(env.ok("rollback", "prod", "--json").stdout))
    finally:
        stop.touch()
        reports = []
        for reader in readers:
            out, err = reader.communicate(timeout=60)
            reports.append(json.loads(out) if out.strip() else {"errors": [err], "seen": {}, "reads": 0})
    for report in reports:
        assert report["errors"] == [], report
        assert set(report["seen"]) <= {"3/3", "2/2"}, report  # never a mix
        assert report["reads"] > 20, report
    assert {key for r in reports for key in r["seen"]} == {"3/3", "2/2"}  # both commits were seen
    assert all(s["transaction"][0] == s["transaction"][1] for s in switches)
    assert [h["action"] for h in _history(env)[:2]] == ["rollback", "promote"]


def _pg_rows(sql: str) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(PG_DSN) as con, con.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _waiting_pids(live: str) -> set[int]:
    """Backends waiting for the promotion lock of `live`, or for the lock of its orders view."""
    return {
        row[0]
        for row in _pg_rows(
            f"select pid from pg_locks where not granted and (locktype = 'advisory' or relation = '{live}.orders'::regclass)"
        )
    }


def test_the_whole_promotion_is_one_transaction_holding_the_promotion_lock(env: Env, tmp_path: Path) -> None:
    _postgres_only(env)
    import psycopg2
    from gates import Run

    live = env.live["prod"]
    env.ok("promote", f"prod@{env.a}")
    # A reader holding the live orders view keeps the promotion in its lock phase, after its reads.
    reader = psycopg2.connect(PG_DSN)
    try:
        with reader.cursor() as cur:
            cur.execute(f"select count(*) from {live}.orders")
        run = Run(env.project, "promote", f"prod@{env.b}", "--json")
        run.wait_for_line("promotion lock taken")
        deadline = time.monotonic() + 60
        while not _waiting_pids(live) and time.monotonic() < deadline:
            time.sleep(0.01)
        [(pid, state, xact_age)] = _pg_rows(
            "select a.pid, a.state, extract(epoch from now() - a.xact_start) from pg_locks l "
            "join pg_stat_activity a on a.pid = l.pid where l.locktype = 'advisory' and l.granted"
        )
        # The promoting backend holds the transaction-scoped lock while it waits: one transaction since.
        assert state in ("active", "idle in transaction") and xact_age > 0
        time.sleep(0.3)
        assert _pg_rows("select pid from pg_locks where locktype = 'advisory' and granted") == [(pid,)]
    finally:
        reader.rollback()
        reader.close()
    assert run.wait() == 0, run.stderr
    result = json.loads(run.proc.stdout.read())
    first, last = result["transaction"]
    assert first is not None and first == last  # the first and last statement: one transaction
    assert result["lock_attempts"] > 1
    assert env.state(live) == STATE_B


def test_two_clones_promoting_at_once_are_serialised_by_the_warehouse(env: Env, tmp_path: Path) -> None:
    """Two machines (two clones, each its own .dot), one warehouse: the advisory lock is what orders them."""
    _postgres_only(env)
    import psycopg2
    from gates import Run

    live = env.live["prod"]
    env.ok("promote", f"prod@{env.a}")
    other = tmp_path / "other"
    git("clone", "-q", str(env.project.repo_dir), str(other), cwd=tmp_path)
    clone = Project(other, other, env.a, env.b)
    assert clone.run("run", f"prod@{env.c}").code == 1  # C is B with a failing test: built, gate overridden below
    # Hold both promotions at the relation locks (or the promotion lock) and release them together.
    holder = psycopg2.connect(PG_DSN)
    try:
        with holder.cursor() as cur:
            cur.execute(f"lock table {live}.orders in access share mode")
        runs = [Run(env.project, "promote", f"prod@{env.b}"), Run(clone, "promote", f"prod@{env.c}", "--allow-untested")]
        seen: set[int] = set()
        deadline = time.monotonic() + 120
        while len(seen) < 2 and time.monotonic() < deadline:
            seen |= _waiting_pids(live)
            time.sleep(0.005)
        assert len(seen) == 2, [r.stderr for r in runs]
    finally:
        holder.rollback()
        holder.close()
    for run in runs:
        assert run.wait() == 0, run.stderr
    newest, older = _history(env)[:2]
    assert {newest["commit"], older["commit"]} == {env.b, env.c}
    assert older["previous_commit"] == env.a
    assert newest["previous_commit"] == older["commit"]  # the second saw the first: never both `a`
    assert env.state(live) == STATE_B  # C is B's models plus a test: wholly one of them


def test_a_users_view_on_a_live_view_stops_a_drop_and_is_named(env: Env) -> None:
    _postgres_only(env)
    live = env.live["prod"]
    env.ok("promote", f"prod@{env.a}")
    # B changes the shape of orders and removes legacy: both views must be dropped, and these block it.
    env.execute(f"create view {live}.my_big_orders as select * from {live}.orders where amount > 15")
    env.execute(f"create view {live}.my_legacy as select * from {live}.legacy")
    refused = env.run("promote", f"prod@{env.b}")
    assert refused.code == 2 and "never uses CASCADE" in refused.stderr
    assert f"{live}.my_big_orders (on {live}.orders)" in refused.stderr
    assert f"{live}.my_legacy (on {live}.legacy)" in refused.stderr
    assert env.state(live) == STATE_A and env.rows(f"select count(*) from {live}.my_big_orders") == [(2,)]
    env.execute(f"drop view {live}.my_big_orders")
    env.execute(f"drop view {live}.my_legacy")
    env.ok("promote", f"prod@{env.b}")
    assert env.state(live) == STATE_B


def _promote_until(env: Env, marker: str, ref: str, blocked_on: str | None = None) -> None:
    """Start `promote`, and kill -9 it (dbt included) the moment it prints `marker`.

    With `blocked_on`, wait first until its session waits for that relation's
    lock: then some of its statements have run and the others have not.
    """
    proc = _popen(env, "promote", f"prod@{ref}")
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            deadline = time.monotonic() + 60
            while (
                blocked_on
                and time.monotonic() < deadline
                and not env.rows(f"select count(*) from pg_locks where not granted and relation = '{blocked_on}'::regclass")[0][0]
            ):
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert any(marker in line for line in seen), "".join(seen)[-3000:]


def _wholly_one_commit(env: Env) -> tuple:
    live = env.live["prod"]
    state = env.state(live)
    assert state in (STATE_A, STATE_B), state
    latest = env.rows(f"select commit_sha from {live}.dot_promotions order by seq desc limit 1")[0][0]
    assert latest == (env.a if state == STATE_A else env.b), (state, latest)
    return state


@pytest.mark.parametrize("moment", ["before dbt", "lock taken", "mid-switch", "at commit"])
def test_promote_killed_at_any_moment_leaves_one_commit_live(env: Env, moment: str) -> None:
    _postgres_only(env)
    import psycopg2

    live = env.live["prod"]
    marker = {
        "before dbt": "promote: switching",  # ours, before dbt starts
        "lock taken": "promotion lock taken",  # inside the transaction, before any change
        "mid-switch": "dot-tasks: switching ",  # dbt's line: the switch under way, held mid-way (below)
        "at commit": "committing the switch",  # at the commit itself: either side, never between
    }[moment]
    env.ok("promote", f"prod@{env.a}")
    blocker = None
    if moment == "mid-switch":
        # A session holding the new build's table: the switch stops half-way through its statements.
        blocker = psycopg2.connect(PG_DSN)
        with blocker.cursor() as cur:
            cur.execute(f"lock table {live}_{env.b[:8]}.order_totals in access exclusive mode")
    try:
        _promote_until(env, marker, env.b, f"{live}_{env.b[:8]}.order_totals" if blocker else None)
    finally:
        if blocker is not None:
            blocker.rollback()  # the orphaned statements may go on now: they must never commit
            blocker.close()
    before = _wholly_one_commit(env)
    if moment == "lock taken":
        assert before == STATE_A
    time.sleep(0.5)
    assert _wholly_one_commit(env) == before
    env.ok("promote", f"prod@{env.b}")
    assert _wholly_one_commit(env) == STATE_B


@pytest.mark.parametrize("moment", ["lock taken", "at commit"])
def test_kill_9_of_promote_alone_leaves_no_orphan_and_everything_agrees(env: Env, moment: str) -> None:
    """Only the dot-tasks process is killed, as a terminal's kill -9 would: its dbt child must die with it."""
    _postgres_only(env)
    from gates import Run, alive, dbt_child

    marker = {"lock taken": "promotion lock taken", "at commit": "committing the switch"}[moment]
    env.ok("promote", f"prod@{env.a}")
    run = Run(env.project, "promote", f"prod@{env.b}")
    child = dbt_child(run.proc.pid)
    run.wait_for_line(marker)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 20
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the dbt child outlived the promote it belonged to"
    assert "Traceback" not in run.stderr
    state = _wholly_one_commit(env)
    if moment == "lock taken":
        assert state == STATE_A  # the child died inside the transaction: nothing committed
    in_warehouse = env.a if state == STATE_A else env.b
    # Before anything reads the warehouse: clean keeps whichever may be live, list says it is unsure.
    protected = deploy.protected_commits(_workspace(env))
    assert env.a in protected and env.b in protected
    marks = deploy.live_marks(_workspace(env))
    assert marks[(in_warehouse, "prod")] == "live?"
    # The next look at the warehouse settles it, and then all agree.
    assert json.loads(env.ok("live", "prod", "--json").stdout)["commit"] == in_warehouse
    assert deploy.live_marks(_workspace(env))[(in_warehouse, "prod")] == "live"
    assert "live for prod" in deploy.protected_commits(_workspace(env))[in_warehouse]
    rows = {(r["commit"], r["context"]): r for r in map(json.loads, env.ok("list", "--json").stdout.splitlines())}
    assert rows[(in_warehouse, "prod")]["live"] == "live"


def test_promote_rollback_and_live_take_their_words_positionally() -> None:
    from dot_tasks.cli_grammar import accept_positional_spec

    assert accept_positional_spec(["dot-tasks", "promote", "prod@v1", "--json"]) == ["dot-tasks", "promote", "--spec", "prod@v1", "--json"]
    assert accept_positional_spec(["dot-tasks", "rollback", "prod", "--to", "v1"]) == [
        "dot-tasks",
        "rollback",
        "--context",
        "prod",
        "--to",
        "v1",
    ]
    assert accept_positional_spec(["dot-tasks", "live", "prod"]) == ["dot-tasks", "live", "--context", "prod"]
    assert accept_positional_spec(["dot-tasks", "live", "--json"]) == ["dot-tasks", "live", "--json"]
    assert accept_positional_spec(["dot-tasks", "run", "--context", "live", "x"]) == ["dot-tasks", "run", "--context", "live", "x"]


# --- what each command prints, byte for byte --------------------------------------------

GOLDEN_OUTPUTS = Path(__file__).parent / "data" / "deploy_outputs.txt"


def _outputs_normalised(env: Env) -> str:
    """Every deploy command's stdout over one fresh history, with commits, times and transaction ids named."""
    a, b = env.a, env.b
    steps = [
        ("promote", f"prod@{a}", "--json"),
        ("promote", f"prod@{b}", "--json"),
        ("promote", f"prod@{b}", "--json"),  # a repair
        ("rollback", "prod", "--json"),
        ("rollback", "prod", "--to", b, "--json"),
        ("live", "prod", "--json"),
        ("live", "prod"),
        ("promote", f"prod@{a}"),
        ("rollback", "prod"),
        ("retire", "prod", "--json"),
        ("live", "prod", "--json"),
        ("live", "prod"),
        ("promote", f"prod@{a}", "--json"),
        ("retire", "prod"),
    ]
    # The same user everywhere, so that the BY column of `live` is as wide on every machine.
    who = {"LOGNAME": "deployer", "USER": "deployer"}
    text = []
    for step in steps:
        result = dot(*step, cwd=env.project.project_dir, env=who)
        assert result.code == 0, (step, result.stderr[-3000:])
        text.append(f"$ {' '.join(step)}\n{result.stdout}")
    # Stand-ins as long as what they replace, so that the columns of `live` line up as they did.
    shown = "\n".join(text)
    for commit, letter in ((a, "a"), (b, "b")):
        for length in (40, 12, 8):
            shown = shown.replace(commit[:length], letter * length)
    shown = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "2000-01-01 00:00:00", shown)
    shown = re.sub(r"(2000-01-01 00:00:00)\.\d+", r"\1.<fraction>", shown)
    return re.sub(r'"transaction": \[\d+, \d+\]', '"transaction": [<txid>, <txid>]', shown)


def test_every_deploy_command_prints_what_it_printed_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The --json objects (keys, order, types) and the text of promote, rollback, live and retire.

    tests/data/deploy_outputs.txt was written by this function from the code
    before deploy.py became a package of typed results.
    """
    make_hermetic(monkeypatch, tmp_path / "home")
    project, a, b, c = _make(tmp_path / "golden", _duckdb_profile())
    env = Env("duckdb", project, a, b, c, {"prod": "analytics"}, database=project.project_dir / "warehouse.duckdb")
    _build_all(env)
    assert _outputs_normalised(env) == GOLDEN_OUTPUTS.read_text()
