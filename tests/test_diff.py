"""`diff`: two commits built once per database, then many diffs against them.

The project's second commit changes, against the first:
- orders: returned orders get amount 0 (orders 2, 4 and 7: 3 rows, one column);
- order_totals (untouched, downstream of orders): impacted, totals of customers 1, 2 and 4 change;
- order_lines (untouched, downstream, key order_id + line_no from meta): 6 rows change;
- widened: gains the column status, and amount changes type from integer to bigint;
- old_model is removed, new_model added;
- customers (untouched, unaffected; key from a primary_key constraint) does not change;
- dupes (key customer_id from meta, duplicated) stops its own value diff only;
- note is NULL on both sides in 7 rows, status in 1: NULL against NULL is equal.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PG_DSN, Project, git, make_hermetic, pg_connect_or_skip, pg_output_fields, postgres_profile, write

ORDERS_V1 = "select order_id, customer_id, amount, status, note from {{ ref('raw_orders') }}\n"
ORDERS_V2 = (
    "select order_id, customer_id, case when status = 'returned' then 0 else amount end as amount, "
    "status, note from {{ ref('raw_orders') }}\n"
)


def make_diff_project(root: Path, profile: str) -> Project:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    write(
        repo / "dbt_project.yml",
        """
        name: shop
        profile: shop
        config-version: 2
        version: "1.0"
        models:
          shop:
            +materialized: table
        seeds:
          shop:
            raw_orders:
              +column_types: {order_id: integer, customer_id: integer, amount: integer, status: varchar, note: varchar}
        """,
    )
    write(
        repo / "seeds" / "raw_orders.csv",
        """
        order_id,customer_id,amount,status,note
        1,1,10,placed,
        2,1,20,returned,gift
        3,2,30,placed,
        4,2,40,returned,
        5,3,50,,
        6,3,60,placed,rush
        7,4,70,returned,
        8,4,80,placed,
        9,5,90,placed,
        10,5,100,placed,
        """,
    )
    write(
        repo / "seeds" / "raw_customers.csv",
        """
        customer_id,name
        1,Ann
        2,Bob
        3,Cid
        4,Dee
        5,Eve
        """,
    )
    models = repo / "models"
    write(models / "orders.sql", ORDERS_V1)
    write(
        models / "order_totals.sql",
        "select customer_id, sum(amount) as total, count(*) as n from {{ ref('orders') }} group by customer_id\n",
    )
    write(
        models / "order_lines.sql",
        "select o.order_id, l.line_no, o.amount * l.line_no as qty from {{ ref('orders') }} o "
        "cross join (select 1 as line_no union all select 2 as line_no) l\n",
    )
    write(models / "customers.sql", "select customer_id, name from {{ ref('raw_customers') }}\n")
    write(models / "dupes.sql", "select customer_id, amount from {{ ref('raw_orders') }}\n")
    write(models / "widened.sql", "select order_id, cast(amount as integer) as amount from {{ ref('raw_orders') }}\n")
    write(models / "old_model.sql", "select order_id from {{ ref('raw_orders') }}\n")
    write(models / "eph.sql", "{{ config(materialized='ephemeral') }}\nselect 1 as x\n")
    write(
        models / "schema.yml",
        """
        version: 2
        models:
          - name: orders
            columns:
              - name: order_id
                data_tests: [unique, not_null]
          - name: order_totals
            config:
              meta: {primary_key: customer_id}
          - name: order_lines
            config:
              meta: {primary_key: [order_id, line_no]}
          - name: customers
            columns:
              - name: customer_id
                constraints: [{type: primary_key}]
          - name: dupes
            config:
              meta: {primary_key: customer_id}
          - name: widened
            config:
              meta: {primary_key: order_id}
        """,
    )
    write(repo / ".gitignore", "target/\nlogs/\n*.duckdb*\n")
    write(repo / "profiles.yml", profile)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "base", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo)
    write(models / "orders.sql", ORDERS_V2)
    write(models / "widened.sql", "select order_id, cast(amount as bigint) as amount, status from {{ ref('raw_orders') }}\n")
    (models / "old_model.sql").unlink()
    write(models / "new_model.sql", "select customer_id from {{ ref('raw_customers') }}\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "head", cwd=repo)
    second = git("rev-parse", "HEAD", cwd=repo)
    return Project(repo, repo, first, second)


DUCKDB_PROFILE = """
    shop:
      target: dev
      outputs:
        dev: {type: duckdb, path: warehouse.duckdb, schema: dev, threads: 2}
        prod: {type: duckdb, path: warehouse.duckdb, schema: analytics, threads: 2}
        other: {type: duckdb, path: other.duckdb, schema: dev, threads: 2}
    """


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Project, dict]]:
    """The project with both commits built (by the first diff, which builds missing sides)."""
    adapter = request.param
    root = tmp_path_factory.mktemp(f"diff-{adapter}")
    cleanup = None
    if adapter == "postgres":
        conn = pg_connect_or_skip()
        base = "dd_" + uuid.uuid4().hex[:8]
        dev = postgres_profile(base)
        dev_output = dev.split("outputs:\n", 1)[1]
        prod = dev_output.replace("dev:", "prod:", 1).replace(f"schema: {base}", f"schema: {base}p")
        # A second database on the same server, for the two-database path.
        other_db = base + "_other"
        with conn.cursor() as cur:
            cur.execute(f'create database "{other_db}"')
        dbname = dev_output.split("dbname: ", 1)[1].split()[0]
        other = dev_output.replace("dev:", "other:", 1).replace(f"dbname: {dbname}", f"dbname: {other_db}")
        profile = dev.rstrip(" ") + prod.rstrip(" ") + other

        def cleanup() -> None:
            with conn.cursor() as cur:
                cur.execute("select nspname from pg_namespace where nspname like %s", (base + "%",))
                for (name,) in cur.fetchall():
                    cur.execute(f'drop schema "{name}" cascade')
                cur.execute(f'drop database if exists "{other_db}" with (force)')
            conn.close()
    else:
        profile = DUCKDB_PROFILE
    with pytest.MonkeyPatch.context() as mp:
        make_hermetic(mp, root / "home")
        project = make_diff_project(root, profile)
        # The first diff finds neither side built and builds both, as `run` would.
        result = project.run("diff", project.first, project.second, "--json")
        try:
            assert result.code == 1, result.stderr
            assert "building it as `dot-tasks run dev@" in result.stderr
            yield adapter, project, json.loads(result.stdout)
        finally:
            if cleanup:
                cleanup()


def nodes(diff: dict) -> dict[str, dict]:
    return {n["name"]: n for n in diff["nodes"]}


def relations(adapter: str, project: Project) -> set[tuple[str, str]]:
    """Every relation in the builds' schemas, and every schema of the build's naming."""
    if adapter == "duckdb":
        import duckdb

        with duckdb.connect(str(project.project_dir / "warehouse.duckdb"), read_only=True) as con:
            return set(con.execute("select table_schema, table_name from information_schema.tables").fetchall())
    import psycopg2

    schema = json.loads((project.build_dir(project.second) / "dev" / "build.json").read_text())["schema"]
    prefix = schema.rsplit("_", 1)[0]
    with psycopg2.connect(PG_DSN) as conn, conn.cursor() as cur:
        cur.execute(
            "select n.nspname, coalesce(c.relname, '') from pg_namespace n left join pg_class c "
            "on c.relnamespace = n.oid where n.nspname like %s",
            (prefix + "%",),
        )
        return set(cur.fetchall())


def test_every_level_is_counted_exactly(built) -> None:
    _, project, diff = built
    assert diff["differs"] is True and diff["errors"] == 0
    assert diff["base"]["commit"] == project.first and diff["head"]["commit"] == project.second
    assert diff["base"]["context"] == diff["head"]["context"] == "dev"
    assert diff["base"]["schema"].endswith("_" + project.first[:8])
    by = nodes(diff)
    assert set(by) == {
        "orders",
        "order_totals",
        "order_lines",
        "customers",
        "dupes",
        "widened",
        "old_model",
        "new_model",
        "eph",
        "raw_orders",
        "raw_customers",
    }

    orders = by["orders"]
    assert (orders["code"], orders["impacted"]) == ("modified", False)
    assert orders["columns"] == {"added": [], "removed": [], "type_changed": [], "order_changed": False}
    assert orders["rows"] == {"base": 10, "head": 10}
    v = orders["values"]
    assert (v["key"], v["added"], v["removed"], v["changed"], v["unchanged"]) == (["order_id"], 0, 0, 3, 7)
    # note is NULL on both sides in 7 rows, status in one: none of them counts as changed.
    assert v["columns"] == {"customer_id": 0, "amount": 3, "status": 0, "note": 0}
    assert [(s["kind"], s["key"], s["base"]["amount"], s["head"]["amount"], s["changed"]) for s in v["sample"]] == [
        ("changed", {"order_id": 2}, 20, 0, ["amount"]),
        ("changed", {"order_id": 4}, 40, 0, ["amount"]),
        ("changed", {"order_id": 7}, 70, 0, ["amount"]),
    ]
    assert orders["key_source"] == "unique and not_null tests"

    totals = by["order_totals"]
    assert (totals["code"], totals["impacted"], totals["differs"]) == ("unchanged", True, True)
    assert totals["rows"] == {"base": 5, "head": 5}
    tv = totals["values"]
    assert (tv["key"], tv["added"], tv["removed"], tv["changed"], tv["unchanged"]) == (["customer_id"], 0, 0, 3, 2)
    assert tv["columns"] == {"total": 3, "n": 0}
    assert totals["key_source"] == "meta.primary_key"

    lines = by["order_lines"]  # a composite key from meta
    assert (lines["code"], lines["impacted"]) == ("unchanged", True)
    lv = lines["values"]
    assert (lv["key"], lv["added"], lv["removed"], lv["changed"], lv["unchanged"]) == (["order_id", "line_no"], 0, 0, 6, 14)
    assert lv["columns"] == {"qty": 6}
    assert [s["key"] for s in lv["sample"]] == [
        {"order_id": 2, "line_no": 1},
        {"order_id": 2, "line_no": 2},
        {"order_id": 4, "line_no": 1},
        {"order_id": 4, "line_no": 2},
        {"order_id": 7, "line_no": 1},
    ]  # --sample default 5

    widened = by["widened"]
    assert widened["code"] == "modified"
    assert widened["columns"]["added"] == ["status"] and widened["columns"]["removed"] == []
    assert [(t["name"], t["base"].lower(), t["head"].lower()) for t in widened["columns"]["type_changed"]] == [
        ("amount", "integer", "bigint")
    ]
    wv = widened["values"]  # status is on one side only: left out of the value comparison
    assert (wv["added"], wv["removed"], wv["changed"], wv["unchanged"], wv["columns"]) == (0, 0, 0, 10, {"amount": 0})

    assert (by["old_model"]["code"], by["old_model"]["rows"]) == ("removed", {"base": 10, "head": None})
    assert (by["new_model"]["code"], by["new_model"]["rows"]) == ("added", {"base": None, "head": 5})
    assert by["old_model"]["values"] is None and by["old_model"]["values_skipped"] == "only in base"
    assert by["new_model"]["values"] is None and by["new_model"]["values_skipped"] == "only in head"

    customers = by["customers"]  # untouched and unaffected
    assert (customers["code"], customers["impacted"], customers["differs"]) == ("unchanged", False, False)
    cv = customers["values"]
    assert (cv["added"], cv["removed"], cv["changed"], cv["unchanged"], cv["sample"]) == (0, 0, 0, 5, [])
    assert customers["key_source"] == "primary_key constraint"

    dupes = by["dupes"]  # a duplicated key stops this model's value diff, and only this one
    assert dupes["values"] is None and dupes["rows"] == {"base": 10, "head": 10}
    assert "duplicate" in dupes["values_skipped"]
    assert dupes["key_problems"] == {"base": {"duplicate_keys": 5, "null_key_rows": 0}, "head": {"duplicate_keys": 5, "null_key_rows": 0}}
    assert dupes["differs"] is False

    assert by["raw_orders"]["values_skipped"] == "no key" and by["raw_orders"]["rows"] == {"base": 10, "head": 10}
    assert by["eph"]["values_skipped"] == "ephemeral" and by["eph"]["rows"] == {"base": None, "head": None}

    assert {n["name"] for n in diff["nodes"] if n["differs"]} == {
        "orders",
        "order_totals",
        "order_lines",
        "widened",
        "old_model",
        "new_model",
    }
    graph = diff["lineage"]
    assert graph["nodes"]["model.shop.order_totals"]["impacted"] is True
    assert ["model.shop.orders", "model.shop.order_totals"] in graph["edges"]
    assert ["seed.shop.raw_orders", "model.shop.orders"] in graph["edges"]


def test_same_build_is_empty_and_reads_only(built) -> None:
    adapter, project, _ = built
    before = relations(adapter, project)
    result = project.run("diff", project.second, project.second, "--no-build")
    assert result.code == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["10 node(s) unchanged (1 ephemeral, not compared)"]
    result = project.run("diff", project.first, project.second, "--no-build", "--format", "markdown")
    assert result.code == 1, result.stderr
    assert relations(adapter, project) == before  # the diffs created nothing in either schema
    md = result.stdout
    assert md.startswith(f"**dot-tasks diff** `dev@{project.first[:8]}` → `dev@{project.second[:8]}`: 6 node(s) differ")
    table = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(table) == 6 and "| `orders` | modified |  | 10 → 10 | +0 −0 ~3<br>amount: 3 |" in table
    assert "```mermaid\nflowchart LR\n" in md and md.count("```") == 2
    assert ":::impacted" in md and "classDef impacted" in md
    assert "<details><summary>Samples</summary>" in md and md.rstrip().endswith("</details>")
    assert "| changed | 2 | 20 → 0 |" in md


def test_select_state_modified_and_keys(built) -> None:
    _, project, _ = built
    result = project.run("diff", project.first, project.second, "--no-build", "--json", "--select", "state:modified+")
    assert result.code == 1, result.stderr
    selected = {n["name"] for n in json.loads(result.stdout)["nodes"]}
    # modified, their descendants, and what was removed; not customers, dupes or the seeds.
    assert selected == {"orders", "order_totals", "order_lines", "widened", "new_model", "old_model"}

    # With no BASE, a deferred head build (the slim-CI contract in build.json) names its base.
    record_path = project.build_dir(project.second) / "dev" / "build.json"
    saved = record_path.read_text()
    record = json.loads(saved)
    record["deferred_to"] = {"commit": project.first, "context": "dev", "schema": "unused"}
    record_path.write_text(json.dumps(record))
    try:
        result = project.run(
            "diff",
            "--head",
            f"dev@{project.second}",
            "--no-build",
            "--json",
            "--select",
            "dupes orders",
            "--key",
            "dupes=customer_id,amount",
            "--key",
            "orders=amount",
            "--sample",
            "0",
        )
    finally:
        record_path.write_text(saved)
    assert result.code == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["base"]["commit"] == project.first
    dupes, orders = data["nodes"]
    # amount as the key of orders: head has 0 three times, all unmatched in base, so only the
    # multiplicity among one side's unmatched rows can show it.
    assert orders["values"] is None and "not unique" in orders["values_skipped"]
    assert orders["key_problems"] == {"base": {"duplicate_keys": 0, "null_key_rows": 0}, "head": {"duplicate_keys": 1, "null_key_rows": 0}}
    assert dupes["key_source"] == "--key"
    v = dupes["values"]
    assert (v["key"], v["added"], v["removed"], v["changed"], v["unchanged"]) == (["customer_id", "amount"], 0, 0, 0, 10)


def test_missing_side_with_no_build_names_the_command(built) -> None:
    _, project, _ = built
    result = project.run("diff", f"dev@{project.first}", "prod@HEAD", "--no-build")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert "run `dot-tasks run prod@HEAD`" in result.stderr, result.stderr
    assert not (project.build_dir(project.second) / "prod" / "build.json").exists()
    result = project.run("diff", project.first, "--key", "nope")
    assert result.code == 2 and "--key 'nope' is not MODEL=COL" in result.stderr


def test_two_databases_give_the_same_counts(built) -> None:
    """Head built again into another database (another DuckDB file, another PostgreSQL database)."""
    _, project, same = built
    result = project.run("diff", f"dev@{project.first}", f"other@{project.second}", "--json")
    assert result.code == 1, result.stderr
    apart = json.loads(result.stdout)
    assert apart["same_database"] is False and apart["errors"] == 0
    for name, node in nodes(same).items():
        other = nodes(apart)[name]
        assert (other["code"], other["impacted"], other["rows"], other["values_skipped"]) == (
            node["code"],
            node["impacted"],
            node["rows"],
            node["values_skipped"],
        ), name
        assert other["columns"] == node["columns"], name
        if node["values"] is None:
            assert other["values"] is None, name
            continue
        counts = ("key", "added", "removed", "changed", "unchanged", "columns")
        assert {k: other["values"][k] for k in counts} == {k: node["values"][k] for k in counts}, name
        assert [(s["kind"], s.get("changed")) for s in other["values"]["sample"]] == [
            (s["kind"], s.get("changed")) for s in node["values"]["sample"]
        ], name
    # Only rows of differing key ranges left the warehouse: the changed ones and a few neighbours.
    assert (
        0
        < apart["rows_transferred"]
        <= 2 * sum(n["rows"]["base"] + n["rows"]["head"] for n in same["nodes"] if n["values"] and n["differs"])
    )
    transfer = nodes(apart)["customers"]["values"]["transfer"]
    assert transfer["rows"] == 0 and transfer["buckets"] == 0  # equal checksums: nothing fetched


FAMILY_MODEL = """
{% set number = 'double' if target.type == 'duckdb' else 'numeric(12, 2)' %}
select id, cast(v as {{ number }}) as v, cast(w as {{ 'integer' if target.type == 'duckdb' else 'bigint' }}) as w
from (values (1, 10, 1), (2, 10.5, 2), (3, 3, 3), (4, null, 4)) as t(id, v, w)
"""


def test_a_type_changed_within_its_family_across_engines_compares_by_value(tmp_path: Path, monkeypatch) -> None:
    """DuckDB's DOUBLE 10.0 against PostgreSQL's numeric 10.00: no value changed; a real change counts.

    Two engines hash alike only through the portable (md5) text, so this is that path too.
    """
    conn = pg_connect_or_skip()
    schema = "dx_" + uuid.uuid4().hex[:8]
    make_hermetic(monkeypatch, tmp_path / "home")
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    write(repo / "dbt_project.yml", "name: fam\nprofile: fam\nconfig-version: 2\nmodels:\n  fam:\n    +materialized: table\n")
    fields = "\n".join("      " + line for line in pg_output_fields().splitlines())
    write(
        repo / "profiles.yml",
        "fam:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: warehouse.duckdb, schema: dev, threads: 1}\n"
        f"    pg:\n      type: postgres\n{fields}\n      password: x\n      schema: {schema}\n      threads: 1\n",
    )
    write(repo / "models" / "family.sql", FAMILY_MODEL)
    write(repo / "models" / "schema.yml", "version: 2\nmodels:\n  - name: family\n    config:\n      meta: {primary_key: id}\n")
    write(repo / ".gitignore", "*.duckdb*\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "one", cwd=repo)
    commit = git("rev-parse", "HEAD", cwd=repo)
    write(repo / "models" / "family.sql", FAMILY_MODEL.replace("(3, 3, 3)", "(3, 3.25, 3)"))
    git("commit", "-q", "-am", "two", cwd=repo)
    changed = git("rev-parse", "HEAD", cwd=repo)
    project = Project(repo, repo, commit, changed)
    try:
        for side in (f"dev@{commit}", f"pg@{commit}", f"pg@{changed}"):
            result = project.run("run", side)
            assert result.code == 0, result.stderr
        for head, expected in ((commit, (0, 4, {"v": 0, "w": 0})), (changed, (1, 3, {"v": 1, "w": 0}))):
            result = project.run("diff", f"dev@{commit}", f"pg@{head}", "--json")
            assert result.code == 1, result.stdout + result.stderr  # the types differ (level b) in both
            (node,) = json.loads(result.stdout)["nodes"]
            assert {t["name"] for t in node["columns"]["type_changed"]} == {"v", "w"}
            values = node["values"]
            assert (values["changed"], values["unchanged"], values["columns"]) == expected, head
        assert [s["key"] for s in values["sample"]] == [{"id": "3"}]  # across databases: normalised text
    finally:
        with conn.cursor() as cur:
            cur.execute("select nspname from pg_namespace where nspname like %s", (schema + "%",))
            for (name,) in cur.fetchall():
                cur.execute(f'drop schema "{name}" cascade')
        conn.close()


DEV_DUCKDB = "    dev: {type: duckdb, path: warehouse.duckdb, schema: dev, threads: 1}\n"


def two_commit_project(
    tmp_path: Path, monkeypatch, keys: dict[str, str], base: dict[str, str], head: dict[str, str], outputs: str = DEV_DUCKDB
) -> Project:
    """A DuckDB project in a real repository: models `base` (name: SQL) at its first commit, with
    `head`'s replacing them at its second; `keys` gives each model's primary_key meta."""
    make_hermetic(monkeypatch, tmp_path / "home")
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    write(repo / "dbt_project.yml", "name: keys\nprofile: keys\nconfig-version: 2\nmodels:\n  keys:\n    +materialized: table\n")
    write(repo / "profiles.yml", f"keys:\n  target: dev\n  outputs:\n{outputs}")
    entries = "\n".join(f"  - name: {m}\n    config:\n      meta: {{primary_key: {k}}}" for m, k in keys.items())
    write(repo / "models" / "schema.yml", f"version: 2\nmodels:\n{entries}\n")
    write(repo / ".gitignore", "*.duckdb*\n")
    commits = []
    for models in (base, head):
        for name, sql in models.items():
            write(repo / "models" / f"{name}.sql", sql)
        git("add", "-A", cwd=repo)
        git("commit", "-q", "-m", "head" if commits else "base", cwd=repo)
        commits.append(git("rev-parse", "HEAD", cwd=repo))
    return Project(repo, repo, *commits)


def test_a_null_key_and_a_repeated_key_that_cancel_out_still_stop_the_value_diff(tmp_path: Path, monkeypatch) -> None:
    """Base holds a row whose key is NULL, head a second row of a matched key.

    In the join each side's presence then still adds up to its row count (the NULL-keyed row
    is on neither side, the repeated key's match counts the base row twice), and every matched
    row is equal: only the join's count of rows with a NULL key shows that the key is bad.
    """
    project = two_commit_project(
        tmp_path,
        monkeypatch,
        {"t": "id"},
        {"t": "select * from (values (1, 'a'), (2, 'b'), (null, 'c')) as t(id, v)\n"},
        {"t": "select * from (values (1, 'a'), (2, 'b'), (2, 'b')) as t(id, v)\n"},
    )
    result = project.run("diff", f"dev@{project.first}", f"dev@{project.second}", "--json")
    assert result.code == 1, result.stdout + result.stderr
    (node,) = json.loads(result.stdout)["nodes"]
    assert node["values"] is None and "not unique and not null" in node["values_skipped"], node
    assert node["key_problems"] == {"base": {"duplicate_keys": 0, "null_key_rows": 1}, "head": {"duplicate_keys": 1, "null_key_rows": 0}}
    assert node["rows"] == {"base": 3, "head": 3}


def test_a_null_in_a_later_key_column_and_sides_of_different_sizes(tmp_path: Path, monkeypatch) -> None:
    """A composite key is present only when none of its columns is NULL; each side's row count
    is its own (base 3 rows, head 5), and the values of a growing model are still compared."""
    lines = "select * from (values (1, 1, 'a'), (1, 2, 'b'), (2, null, 'c')) as t(order_id, line_no, v)\n"
    grow = "select * from (values (1, 'a'), (2, 'b'), (3, 'c')) as t(id, v)\n"
    project = two_commit_project(
        tmp_path,
        monkeypatch,
        {"lines": "[order_id, line_no]", "grow": "id"},
        {"lines": lines, "grow": grow},
        {"lines": lines.replace("'a'", "'z'"), "grow": grow.replace("'b'", "'x'").replace("(3, 'c')", "(3, 'c'), (4, 'd'), (5, 'e')")},
    )
    result = project.run("diff", f"dev@{project.first}", f"dev@{project.second}", "--json")
    assert result.code == 1, result.stdout + result.stderr
    nodes = {n["name"]: n for n in json.loads(result.stdout)["nodes"]}
    assert nodes["lines"]["values"] is None and "not null" in nodes["lines"]["values_skipped"]
    assert nodes["lines"]["key_problems"] == {
        "base": {"duplicate_keys": 0, "null_key_rows": 1},
        "head": {"duplicate_keys": 0, "null_key_rows": 1},
    }
    grow = nodes["grow"]
    assert grow["rows"] == {"base": 3, "head": 5} and grow["values_skipped"] is None
    assert (grow["values"]["added"], grow["values"]["removed"], grow["values"]["changed"], grow["values"]["unchanged"]) == (2, 0, 1, 2)


WIDE_BASE = "select i as id, repeat('x', 2000) || cast(i as varchar) as t, i % 97 as n from range(50000) r(i)\n"
WIDE_HEAD = WIDE_BASE.replace(
    "repeat('x', 2000) || cast(i as varchar) as t",
    "case when i % 5 = 0 then 'changed' else '' end || repeat('x', 2000) || cast(i as varchar) as t",
)


def test_two_duckdb_files_with_wide_rows_and_a_failing_model(tmp_path: Path, monkeypatch) -> None:
    """Across two DuckDB files the diff's sessions run DuckDB under a small memory limit.

    Rows of 2 KB (50,000 of them, 20% changed) need more than that limit to sort or even scan:
    the query is run again with more memory rather than failing. And a model whose query fails
    (a view that cannot be read) is that model's error only: the session goes on, and the
    models compared after it are complete.
    """
    bad = "{{ config(materialized='view') }}\nselect 1 as id, cast('abc' as integer) as x\n"
    ok = "select * from (values (1, 'a'), (2, 'b')) as t(id, v)\n"
    project = two_commit_project(
        tmp_path,
        monkeypatch,
        {"a_wide": "id", "b_bad": "id", "c_ok": "id"},
        {"a_wide": WIDE_BASE, "b_bad": bad, "c_ok": ok},
        {"a_wide": WIDE_HEAD, "c_ok": ok.replace("'b'", "'c'")},
        DEV_DUCKDB + "    other: {type: duckdb, path: other.duckdb, schema: dev, threads: 1}\n",
    )
    repo, base, head = project.repo_dir, project.first, project.second
    for side in (f"dev@{base}", f"other@{head}"):
        assert project.run("run", side).code == 0
    result = project.run("diff", f"dev@{base}", f"other@{head}", "--json")
    assert result.code == 2, result.stdout + result.stderr  # b_bad cannot be read
    nodes = {n["name"]: n for n in json.loads(result.stdout)["nodes"]}
    wide = nodes["a_wide"]["values"]
    assert wide is not None, nodes["a_wide"]["values_skipped"]
    assert (wide["changed"], wide["unchanged"], wide["columns"]) == (10_000, 40_000, {"t": 10_000, "n": 0})
    assert "error" in (nodes["b_bad"]["values_skipped"] or "")
    ok = nodes["c_ok"]["values"]
    assert ok is not None, nodes["c_ok"]["values_skipped"]
    assert (ok["changed"], ok["unchanged"]) == (1, 1)
    leftovers = [p.name for p in repo.iterdir() if p.name.endswith(".tmp")] + [p.name for p in (repo / ".dot").iterdir()]
    assert sorted(leftovers) == ["isolated_builds", "locks"]


def test_pure_parts() -> None:
    from dot_tasks.cli_grammar import accept_diff_sides
    from dot_tasks.diffing import code_state, column_changes, parse_side, plan

    assert accept_diff_sides(["diff", "--select", "a+", "prod@main", "-o", "x", "HEAD", "--json"]) == [
        "diff",
        "--select",
        "a+",
        "--base",
        "prod@main",
        "--output",
        "x",
        "--head",
        "HEAD",
        "--json",
    ]
    # Only the task name turns bare words into sides: a ref named "diff" is left alone.
    assert accept_diff_sides(["dot-tasks", "run", "--ref", "diff", "dev@x"]) == ["dot-tasks", "run", "--ref", "diff", "dev@x"]
    assert parse_side("main") == (None, "main") and parse_side("prod@v1") == ("prod", "v1")
    node = {"checksum": {"checksum": "a"}, "config": {"materialized": "table"}}
    assert code_state(node, dict(node)) == "unchanged"
    assert code_state(node, {**node, "config": {"materialized": "view"}}) == "modified"

    def manifest(sql: dict[str, str]) -> dict:
        parents = {"model.p.a": [], "model.p.b": ["model.p.a"], "model.p.c": ["model.p.b"], "model.p.d": []}
        return {
            "nodes": {
                uid: {
                    "unique_id": uid,
                    "name": uid.split(".")[-1],
                    "resource_type": "model",
                    "checksum": {"checksum": sql[uid]},
                    "config": {"materialized": "table"},
                    "depends_on": {"nodes": parents[uid]},
                }
                for uid in sql
            },
            "parent_map": {uid: parents[uid] for uid in sql},
        }

    same = {"model.p.a": "1", "model.p.b": "2", "model.p.c": "3", "model.p.d": "4"}
    planned = {p.name: (p.code, p.impacted) for p in plan(manifest(same), manifest({**same, "model.p.a": "9"}), {})}
    assert planned == {"a": ("modified", False), "b": ("unchanged", True), "c": ("unchanged", True), "d": ("unchanged", False)}
    changes = column_changes(
        [{"name": "a", "type": "int"}, {"name": "b", "type": "int"}], [{"name": "b", "type": "int"}, {"name": "a", "type": "int"}]
    )
    assert changes == {"added": [], "removed": [], "type_changed": [], "order_changed": True}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
