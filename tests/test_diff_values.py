"""`diff` counts alike on one database and across two, on data built to trap it.

Model `t` has one row per trap, base (first commit) against head (second):
- 1: 'x|','y' -> 'x','|y' (a separator between values must not collide);
- 2: NULL -> the text '\\N', 9: NULL -> '~' (NULL spelled apart from every string);
- 3: 0 -> -0 (float) and 4: 1.0 -> 1.00 (decimal): equal as numbers;
- 5: a timestamptz; the `other` database runs in Asia/Tokyo: equal instants;
- 7: NaN -> NaN (equal) while b changes; 8: NULL -> 5 (a NULL to a value is a change);
- 10: json whose text changes but not its value (jsonb says equal on PostgreSQL; DuckDB's
  json compares as text); 12: 1.0 -> 1.0000000001 (changed, unless --float-tolerance);
- 13 removed, 14 added, 15: 'z' -> NULL; 16: NULL -> 0.0 (float) and 17: NULL -> 0 (decimal), which
  PostgreSQL's own hashes give the hash of NULL with seed 0 and 1; columns named `dot__in` and `we"ird`.
Model `retyped` changes its key's type (integer -> text) and has a json column and a
column named like an internal alias. On PostgreSQL, model `hostile` has a column whose
name would call nextval() if it reached the SQL unescaped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PG_DSN, Project, git, make_hermetic, pg_connect_or_skip, pg_output_fields, write

COLUMNS = ["id", "a", "b", "f", "n", "ts", "j", "dot__in", 'we"ird']
TS = "2024-05-01 12:00:00+00"
BASE_ROWS = {
    1: ("x|", "y", 1.0, "1.5", TS, '{"a": 1}', 1, "w"),
    2: (None, "b2", 2.0, "2.0", TS, '{"a": 2}', 1, "w"),
    3: ("c3", "b3", "0", "3.0", TS, '{"a": 3}', 1, "w"),
    4: ("c4", "b4", 4.0, "1.0", TS, '{"a": 4}', 1, "w"),
    5: ("c5", "b5", 5.0, "5.0", TS, '{"a": 5}', 1, "w"),
    6: ("c6", "p", 6.0, "6.0", TS, '{"a": 6}', 1, "w"),
    7: ("c7", "v7", "NaN", "7.0", TS, '{"a": 7}', 1, "w"),
    8: ("c8", "b8", None, "8.0", TS, '{"a": 8}', 1, "w"),
    9: (None, "b9", 9.0, "9.0", TS, '{"a": 9}', 1, "w"),
    10: ("c10", "b10", 10.0, "10.0", TS, '{"a":1,"b":2}', 1, "w"),
    11: ("c11", "b11", 1.5, "11.0", TS, '{"a": 11}', 1, "w"),
    12: ("c12", "b12", 1.0, "12.0", TS, '{"a": 12}', 1, "w"),
    13: ("c13", "b13", 13.0, "13.0", TS, '{"a": 13}', 1, "w"),
    15: ("c15", "z", 15.0, "15.0", TS, '{"a": 15}', 1, "w"),
    16: ("c16", "b16", None, "16.0", TS, '{"a": 16}', 1, "w"),
    17: ("c17", "b17", 17.0, None, TS, '{"a": 17}', 1, "w"),
}
HEAD_ROWS = {
    **BASE_ROWS,
    1: ("x", "|y", 1.0, "1.5", TS, '{"a": 1}', 1, "w"),
    2: ("\\N", "b2", 2.0, "2.0", TS, '{"a": 2}', 1, "w"),
    3: ("c3", "b3", "-0", "3.0", TS, '{"a": 3}', 1, "w"),
    4: ("c4", "b4", 4.0, "1.00", TS, '{"a": 4}', 1, "w"),
    6: ("c6", "q", 6.0, "6.0", TS, '{"a": 6}', 1, "w2"),
    7: ("c7", "w7", "NaN", "7.0", TS, '{"a": 7}', 1, "w"),
    8: ("c8", "b8", 5.0, "8.0", TS, '{"a": 8}', 1, "w"),
    9: ("~", "b9", 9.0, "9.0", TS, '{"a": 9}', 1, "w"),
    10: ("c10", "b10", 10.0, "10.0", TS, '{ "b": 2, "a": 1 }', 1, "w"),
    11: ("c11", "b11", 2.5, "11.0", TS, '{"a": 11}', 1, "w"),
    12: ("c12", "b12", 1.0000000001, "12.0", TS, '{"a": 12}', 1, "w"),
    14: ("c14", "b14", 14.0, "14.0", TS, '{"a": 14}', 1, "w"),
    15: ("c15", None, 15.0, "15.0", TS, '{"a": 15}', 1, "w"),
    16: ("c16", "b16", "0", "16.0", TS, '{"a": 16}', 1, "w"),
    17: ("c17", "b17", 17.0, "0", TS, '{"a": 17}', 1, "w"),
}
HEAD_ROWS.pop(13)


def literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def model_sql(rows: dict[int, tuple], decimal_type: str) -> str:
    """A model from literals, every column cast to its type (the decimal's scale differs by commit on DuckDB)."""
    # Floats travel as text, so that -0 reaches the cast as -0 (a numeric literal would make it 0).
    values = ",\n  ".join(
        "(" + ", ".join(literal(str(v) if n == 3 and v is not None else v) for n, v in enumerate((i, *row))) + ")"
        for i, row in sorted(rows.items())
    )
    types = ["integer", "varchar", "varchar", "double precision", "{{ decimal }}", "timestamptz", "json", "integer", "varchar"]
    casts = ", ".join(
        f'cast(v.c{i} as {t}) as "{c.replace(chr(34), chr(34) * 2)}"' for i, (c, t) in enumerate(zip(COLUMNS, types, strict=False))
    )
    return (
        f"{{% set decimal = 'numeric' if target.type == 'postgres' else '{decimal_type}' %}}\n"
        f"select {casts}\nfrom (values\n  {values}\n) as v({', '.join(f'c{i}' for i in range(len(COLUMNS)))})\n"
    )


RETYPED_V1 = (
    "select cast(id as integer) as k, cast('{\"x\": 1}' as json) as j, 7 as dot__kh, "
    "cast(id * 10 as numeric) as m, cast(id as integer) as w, cast('2024-01-02' as date) as d, "
    "cast('2024-01-02 03:04:05.5' as timestamp) as tsn, id > 1 as flag, "
    "{{ 'array[id, 2]' if target.type == 'postgres' else '[id, 2]' }} as arr "
    "from (values (1), (2), (3)) as v(id)\n"
)
# The key becomes text (joined as text); m becomes a double and w a decimal (compared by value).
RETYPED_V2 = (
    RETYPED_V1.replace("cast(id as integer) as k", "cast(id as varchar) as k")
    .replace("cast(id * 10 as numeric)", "cast(id * 10 as double precision)")
    .replace("cast(id as integer) as w", "cast(id as numeric) as w")
)
# Unescaped, the third column's name would select nextval() of the sequence.
HOSTILE = '{{ config(enabled=target.type == \'postgres\') }}\nselect 1 as id, 2 as k, VALUE as "k"", nextval(\'dd_seq\'), ""k"\n'


def make_trap_project(root: Path, profile: str) -> Project:
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
        """,
    )
    models = repo / "models"
    write(models / "t.sql", model_sql(BASE_ROWS, "decimal(10,1)"))
    write(models / "retyped.sql", RETYPED_V1)
    write(models / "hostile.sql", HOSTILE.replace("VALUE", "3"))
    write(models / "steady.sql", "select 1 as id, 'same' as v\n")
    write(
        models / "schema.yml",
        """
        version: 2
        models:
          - name: t
            config: {meta: {primary_key: id}}
          - name: retyped
            config: {meta: {primary_key: k}}
          - name: hostile
            config: {meta: {primary_key: id}}
          - name: steady
            config: {meta: {primary_key: id}}
        """,
    )
    write(repo / ".gitignore", "target/\nlogs/\n*.duckdb*\n")
    write(repo / "profiles.yml", profile)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "base", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo)
    write(models / "t.sql", model_sql(HEAD_ROWS, "decimal(10,2)"))
    write(models / "retyped.sql", RETYPED_V2)
    write(models / "hostile.sql", HOSTILE.replace("VALUE", "4"))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "head", cwd=repo)
    return Project(repo, repo, first, git("rev-parse", "HEAD", cwd=repo))


DUCKDB_PROFILE = """
    shop:
      target: dev
      outputs:
        dev: {type: duckdb, path: warehouse.duckdb, schema: dev, threads: 2}
        slim: {type: duckdb, path: warehouse.duckdb, schema: slim, threads: 2}
        other: {type: duckdb, path: other.duckdb, schema: dev, threads: 2, settings: {TimeZone: Asia/Tokyo}}
    """


def _pg_output(name: str, dbname: str, schema: str) -> str:
    fields = [line for line in pg_output_fields().splitlines() if not line.startswith("dbname:")]
    lines = "\n".join("      " + line for line in [*fields, f"dbname: {dbname}", f"schema: {schema}", "threads: 2"])
    return f"    {name}:\n      type: postgres\n      password: \"{{{{ env_var('DOT_TEST_SECRET') }}}}\"\n{lines}\n"


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def traps(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Project]]:
    """The trap project, both commits buildable into two databases (two DuckDB files, two PostgreSQL databases)."""
    adapter = request.param
    root = tmp_path_factory.mktemp(f"traps-{adapter}")
    conn = None
    databases: list[str] = []
    if adapter == "postgres":
        conn = pg_connect_or_skip()
        suffix = uuid.uuid4().hex[:8]
        databases = [f"dd_{suffix}_a", f"dd_{suffix}_b"]
        with conn.cursor() as cur:
            for name in databases:
                cur.execute(f'create database "{name}"')
            # The head's database runs in another time zone: timestamptz must compare as instants.
            cur.execute(f"alter database \"{databases[1]}\" set timezone = 'Asia/Tokyo'")
        import psycopg2

        seq = psycopg2.connect(PG_DSN.rsplit("/", 1)[0] + "/" + databases[0])
        with seq, seq.cursor() as cur:
            cur.execute("create sequence dd_seq")
        seq.close()
        profile = (
            "shop:\n  target: dev\n  outputs:\n"
            + _pg_output("dev", databases[0], "dev")
            + _pg_output("slim", databases[0], "slim")
            + _pg_output("other", databases[1], "dev")
        )
    else:
        profile = DUCKDB_PROFILE
    try:
        with pytest.MonkeyPatch.context() as mp:
            make_hermetic(mp, root / "home")
            yield adapter, make_trap_project(root, profile)
    finally:
        if conn is not None:
            with conn.cursor() as cur:
                for name in databases:
                    cur.execute(f'drop database if exists "{name}" with (force)')
            conn.close()


def by_name(diff: dict) -> dict[str, dict]:
    return {n["name"]: n for n in diff["nodes"]}


def no_bare_nan(text: str) -> dict:
    """JSON as a strict parser (JavaScript's) reads it: NaN or Infinity unquoted is an error."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def expected_t(adapter: str, tolerance: bool = False) -> dict:
    changed = {"a": 3, "b": 4, "f": 3 if tolerance else 4, "n": 1, "ts": 0, "j": 1 if adapter == "duckdb" else 0, "dot__in": 0, 'we"ird': 1}
    rows = 11 - tolerance + (adapter == "duckdb")
    return {"added": 1, "removed": 1, "changed": rows, "unchanged": 15 - rows, "columns": changed}


def counts(node: dict) -> dict:
    return {k: node["values"][k] for k in ("added", "removed", "changed", "unchanged", "columns")}


def test_one_database_and_two_count_every_trap_alike(traps) -> None:
    adapter, project = traps
    result = project.run("diff", f"dev@{project.first}", f"dev@{project.second}", "--json", "--sample", "20")
    if adapter == "postgres":  # first: had the hostile name run, that is the failure to report
        import psycopg2

        dsn = PG_DSN.rsplit("/", 1)[0] + "/" + project_database(project)
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("select is_called from dd_seq")
            assert cur.fetchone() == (False,), "a column name reached the SQL unescaped and ran"
        conn.close()
    assert result.code == 1, result.stderr
    same = no_bare_nan(result.stdout)
    result = project.run("diff", f"dev@{project.first}", f"other@{project.second}", "--json", "--sample", "20")
    assert result.code == 1, result.stderr
    apart = no_bare_nan(result.stdout)
    assert same["same_database"] is True and apart["same_database"] is False
    assert same["errors"] == apart["errors"] == 0
    for diff in (same, apart):
        t = by_name(diff)["t"]
        assert counts(t) == expected_t(adapter), diff["same_database"]
        # The NaN row changed in b only: its sample agrees with the counts, and NaN is a string.
        seven = next(s for s in t["values"]["sample"] if s["key"]["id"] in (7, "7"))
        assert seven["changed"] == ["b"] and str(seven["base"]["f"]).lower() == "nan"
        retyped = by_name(diff)["retyped"]
        assert [c["name"] for c in retyped["columns"]["type_changed"]] == ["k", "m", "w"]
        assert counts(retyped) == {
            "added": 0,
            "removed": 0,
            "changed": 0,
            "unchanged": 3,
            "columns": dict.fromkeys(["j", "dot__kh", "m", "w", "d", "tsn", "flag", "arr"], 0),
        }
    if adapter == "postgres":
        assert counts(by_name(same)["hostile"])["changed"] == 1 == counts(by_name(apart)["hostile"])["changed"]
    apart_t = by_name(apart)["t"]["values"]
    # Only the differing keys' buckets left either database: a few rows, not the table.
    assert apart_t["transfer"]["rows"] <= 2 * (apart_t["changed"] + 2) + 8

    tolerant = [
        no_bare_nan(
            project.run(
                "diff", f"dev@{project.first}", f"{ctx}@{project.second}", "--json", "--no-build", "--float-tolerance", "1e-6"
            ).stdout
        )
        for ctx in ("dev", "other")
    ]
    for diff in tolerant:
        assert counts(by_name(diff)["t"]) == expected_t(adapter, tolerance=True), diff["same_database"]


def project_database(project: Project) -> str:
    profile = (project.repo_dir / "profiles.yml").read_text()
    return profile.split("dbname: ", 1)[1].split()[0]


def test_markdown_prints_null_and_selections_are_checked(traps) -> None:
    adapter, project = traps
    if adapter != "duckdb":
        pytest.skip("output and argument checks do not depend on the adapter")
    # Each test builds what it needs (the first diff builds missing sides), so any one runs alone.
    result = project.run("diff", f"dev@{project.first}", f"dev@{project.second}", "--format", "markdown", "--sample", "20")
    assert result.code == 1, result.stderr
    assert "| changed | 8 | c8 | b8 | NULL → 5 |" in result.stdout, result.stdout
    assert "None" not in result.stdout
    for sides in ((f"dev@{project.first}", f"dev@{project.second}"), (f"dev@{project.first}", f"other@{project.second}")):
        result = project.run("diff", *sides, "--select", "nosuch_model")
        assert result.code == 2 and "--select nosuch_model matches no model" in result.stderr, result.stderr
    result = project.run("diff", f"dev@{project.first}", f"dev@{project.second}", "--no-build", "--select", "t", "--exclude", "t")
    assert result.code == 2 and "--select t --exclude t matches no model" in result.stderr, result.stderr
    missing = project.repo_dir / "no" / "such"
    result = project.run("diff", f"dev@{project.first}", f"dev@{project.second}", "--no-build", "-o", str(missing / "x.md"))
    assert result.code == 2 and "does not exist" in result.stderr and not missing.parent.exists()
    result = project.run("diff", f"dev@{project.first}", f"dev@{project.second}", "--float-tolerance", "2")
    assert result.code == 2 and "--float-tolerance 2" in result.stderr


def test_a_deferred_head_is_compared_as_the_build_dbt_would_have_made(traps) -> None:
    adapter, project = traps
    if adapter != "duckdb":
        pytest.skip("deferral is resolved from the build records, alike on every adapter")
    result = project.run("run", f"slim@{project.second}", "--defer-to", f"dev@{project.first}", "--build-base")
    assert result.code == 0, result.stderr
    result = project.run("diff", f"dev@{project.first}", f"slim@{project.second}", "--json", "--no-build")
    assert result.code == 1, result.stderr
    nodes = by_name(no_bare_nan(result.stdout))
    # steady was not built in slim: it is read from the base, as dbt's deferral read it.
    steady = nodes["steady"]
    assert steady["relations"]["head"] == steady["relations"]["base"]
    assert (steady["differs"], steady["values_skipped"], steady["rows"]) == (False, None, {"base": 1, "head": 1})
    assert counts(nodes["t"]) == expected_t(adapter)
    assert {n for n, node in nodes.items() if node["differs"]} == {"t", "retyped"}
