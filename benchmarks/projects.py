"""Every input the benchmarks generate: git repositories, dbt projects and their profiles, warehouse rows.

A `make_*` function returns a committed repository; a `write_*` function only writes files.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
import time
from pathlib import Path

from harness import Env, commit_all, write

# The big repository of (a) and (b).
DATA_DIRS, FILES_PER_DIR, FILE_BYTES = 200, 100, 300
ANALYTICS_MODELS = 190  # + a few project files: ~1% of the repository
#: The DuckDB project of (d) and (e).
DUCK_MODELS = 30

#: The diff benchmark's model: an id and nine columns of each kind a warehouse holds.
DIFF_COLUMNS = 10

#: The Spark benchmark's chain of models on one seed.
SPARK_MODELS = 3

#: The slim CI project: one seed, 20 models on it, the rest each joining two earlier ones.
SLIM_MODELS = 200
SLIM_ROOTS = 20


# --- profiles and project files ------------------------------------------------


def write_dbt_project(directory: Path, name: str, profile: str | None = None, materialized: str | None = None, extra: str = "") -> None:
    """`dbt_project.yml`: name, profile, `extra` lines, and every model's materialization."""
    text = f"name: {name}\n" + (f"profile: {profile}\n" if profile else "") + "config-version: 2\n" + extra
    if materialized:
        text += f"models:\n  {name}:\n    +materialized: {materialized}\n"
    write(directory / "dbt_project.yml", text)


def duckdb_profiles(profile: str, path: str = "warehouse.duckdb", threads: int = 4, schema: str = "dev") -> str:
    """A profiles.yml with one DuckDB output, `dev`."""
    return f"""
        {profile}:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: {path}
              schema: {schema}
              threads: {threads}
        """


def postgres_profile(profile: str, dsn: str, schema: str, target: str = "prod") -> str:
    """A profiles.yml whose one output, `target`, is the PostgreSQL server named by a postgresql:// URL."""
    url = dsn.replace("postgresql://", "").replace("postgres://", "")
    user_host, _, dbname = url.partition("/")
    user, _, hostport = user_host.rpartition("@")
    host, _, port = hostport.partition(":")
    return textwrap.dedent(f"""
        {profile}:
          target: {target}
          outputs:
            {target}:
              type: postgres
              host: {host}
              port: {port or 5432}
              user: {user.split(":")[0] or "postgres"}
              password: ""
              dbname: {dbname.split("?")[0] or "postgres"}
              schema: {schema}
              threads: 4
        """).lstrip()


def spark_output(schema: str, server_side_parameters: dict[str, str] | None = None) -> str:
    """A session-mode Spark target, as a user writes it (Spark's defaults for the metastore)."""
    lines = [
        "type: spark",
        "method: session",
        "host: NA",
        f"schema: {schema}",
        "threads: 1",
    ]
    if server_side_parameters:
        lines.append("server_side_parameters:")
        lines += [f"  {key}: '{value}'" for key, value in server_side_parameters.items()]
    return "\n".join(" " * 6 + line for line in lines)


def spark_profiles(schema: str, server_side_parameters: dict[str, str] | None = None) -> str:
    """The Spark project's profiles.yml: one session-mode output, `dev`."""
    return "sparky:\n  target: dev\n  outputs:\n    dev:\n" + spark_output(schema, server_side_parameters) + "\n"


# --- (a) to (e): worktrees, latency, run, memory -------------------------------


def make_big_repo(env: Env) -> Path:
    """20,000 small files, a dbt project at the root and another in analytics/ (~1%)."""
    repo = env.tmp / "big"
    blob = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 10)[:FILE_BYTES]
    for d in range(DATA_DIRS):
        directory = repo / "data" / f"d{d:03d}"
        directory.mkdir(parents=True)
        for f in range(FILES_PER_DIR):
            # Distinct contents, so git stores 20k blobs, not one.
            (directory / f"f{f:03d}.txt").write_text(f"{d}/{f}\n{blob}\n")
    # (a): a small dbt project at the root.
    write_dbt_project(repo, "root_project", "bench")
    write(repo / "profiles.yml", duckdb_profiles("bench"))
    write(repo / "models" / "root_a.sql", "select 1 as id\n")
    write(repo / "models" / "root_b.sql", "select * from {{ ref('root_a') }}\n")
    write(repo / ".gitignore", "warehouse.duckdb\ntarget/\nlogs/\ndbt_packages/\n")
    # (b): the dbt project in analytics/, with a local package outside it.
    an = repo / "analytics"
    write_dbt_project(an, "analytics", "analytics", materialized="view")
    write(an / "packages.yml", "packages:\n  - local: ../packages/macros_pkg\n")
    write(an / "profiles.yml", duckdb_profiles("analytics"))
    write(an / "models" / "schema.yml", "version: 2\nmodels:\n  - name: m000\n    description: first\n")
    for i in range(ANALYTICS_MODELS):
        source = "select 1 as id" if i == 0 else f"select * from {{{{ ref('m{i - 1:03d}') }}}}"
        write(an / "models" / f"g{i // 50}" / f"m{i:03d}.sql", source + "\n")
    pkg = repo / "packages" / "macros_pkg"
    write_dbt_project(pkg, "macros_pkg")
    write(pkg / "macros" / "cents.sql", "{% macro cents(column) %}({{ column }} * 100){% endmacro %}\n")
    commit_all(env, repo)
    return repo


def make_small_repo(env: Env) -> Path:
    """A seed and three table models, for the latency of commands that do not build."""
    repo = env.tmp / "small"
    write_dbt_project(repo, "small", "small", materialized="table")
    write(repo / "profiles.yml", duckdb_profiles("small"))
    write(repo / "seeds" / "raw.csv", "id,amount\n1,10\n2,20\n3,30\n")
    write(repo / "models" / "a.sql", "select * from {{ ref('raw') }}\n")
    write(repo / "models" / "b.sql", "select id, amount * 2 as amount from {{ ref('a') }}\n")
    write(repo / "models" / "c.sql", "select count(*) as n from {{ ref('b') }}\n")
    write(repo / ".gitignore", "warehouse.duckdb\ntarget/\nlogs/\n")
    commit_all(env, repo)
    return repo


def _raw_events(repo: Path) -> None:
    rows = "\n".join(f"{i},{'abcde'[i % 5]},{i * 7 % 101}" for i in range(1, 501))
    write(repo / "seeds" / "raw_events.csv", "id,grp,amount\n" + rows + "\n")


def make_duck_repo(env: Env) -> Path:
    """1 seed and 30 table models: five fanned out from the seed, the rest joining two earlier ones."""
    repo = env.tmp / "duck"
    write_dbt_project(repo, "duck", "duck", materialized="table")
    write(repo / "profiles.yml", duckdb_profiles("duck", threads=4))
    _raw_events(repo)
    for i in range(1, DUCK_MODELS + 1):
        if i <= 5:
            sql = f"select id, grp, amount + {i} as amount from {{{{ ref('raw_events') }}}}\n"
        else:
            first, second = f"m{i - 5:02d}", f"m{i - 3:02d}"
            sql = (
                f"select a.id, a.grp, a.amount + b.amount as amount\n"
                f"from {{{{ ref('{first}') }}}} a\njoin {{{{ ref('{second}') }}}} b using (id)\n"
            )
        write(repo / "models" / f"m{i:02d}.sql", sql)
    write(repo / ".gitignore", "warehouse.duckdb\ntarget/\nlogs/\n")
    commit_all(env, repo)
    return repo


# --- slim: deferral -------------------------------------------------------------


def slim_model(i: int) -> str:
    """The SQL of model `m<i>` (1-based): a root on the seed, or a join of m<i-20> and m<i-7>."""
    if i <= SLIM_ROOTS:
        return f"select id, grp, amount + {i} as amount from {{{{ ref('raw_events') }}}}\n"
    first, second = f"m{i - SLIM_ROOTS:03d}", f"m{i - 7:03d}"
    return (
        f"select a.id, a.grp, a.amount + b.amount as amount\nfrom {{{{ ref('{first}') }}}} a\njoin {{{{ ref('{second}') }}}} b using (id)\n"
    )


def slim_leaf() -> str:
    """A model nothing depends on: the last one (children of m<i> are m<i+7> and m<i+20>)."""
    return f"m{SLIM_MODELS:03d}"


def make_slim_project(repo: Path) -> None:
    """A 200-model DuckDB project with `prod` and `dev` outputs in one warehouse file."""
    write_dbt_project(repo, "slim", "slim", materialized="table")
    write(
        repo / "profiles.yml",
        """
        slim:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: warehouse.duckdb
              schema: dev
              threads: 4
            prod:
              type: duckdb
              path: warehouse.duckdb
              schema: analytics
              threads: 4
        """,
    )
    _raw_events(repo)
    for i in range(1, SLIM_MODELS + 1):
        write(repo / "models" / f"m{i:03d}.sql", slim_model(i))
    write(repo / ".gitignore", "warehouse.duckdb*\ntarget/\nlogs/\n")


def change_slim_leaf(repo: Path, note: str) -> None:
    """Change the leaf model's SQL (a new column), as a pull request would."""
    path = repo / "models" / f"{slim_leaf()}.sql"
    path.write_text(path.read_text().replace("as amount\n", f"as amount, '{note}' as note\n", 1))


def make_slim_repo(env: Env) -> Path:
    """main, and two PR commits off it with the same one-leaf change (one per kind of deferred run)."""
    repo = env.tmp / "slim"
    make_slim_project(repo)
    commit_all(env, repo)
    for branch in ("pr", "pr-clone"):
        env.git("checkout", "-q", "-b", branch, "main", cwd=repo)
        change_slim_leaf(repo, branch)
        env.git("commit", "-q", "-am", f"{branch}: change the leaf", cwd=repo)
    env.git("checkout", "-q", "main", cwd=repo)
    return repo


# --- diff -----------------------------------------------------------------------


def big_model(rows: int, head: bool, changed_every: int = 100, add_and_remove: bool = True) -> str:
    """`big`: `rows` rows in base; in head c1 changes in every `changed_every`-th row.

    With `add_and_remove`, head also removes the ids with i % 200 = 1 (0.5%) and adds
    ids rows+1 .. rows*1.005.
    """
    reshaped = head and add_and_remove
    last = rows + rows // 200 if reshaped else rows
    c1 = f"case when i % {changed_every} = 0 then (i % 97) + 1 else i % 97 end" if head else "i % 97"
    keep = "where i % 200 <> 1" if reshaped else ""
    return textwrap.dedent(f"""
        {{% if target.type == 'duckdb' %}}
          {{% set series = "(select range as i from range(1, " ~ {last} ~ " + 1)) g" %}}
        {{% elif target.type == 'spark' %}}
          {{% set series = "(select id as i from range(1, " ~ {last} ~ " + 1)) g" %}}
        {{% else %}}
          {{% set series = "generate_series(1, " ~ {last} ~ ") as g(i)" %}}
        {{% endif %}}
        select i as id,
               {c1} as c1,
               i % 101 as c2,
               cast(i as {{{{ dbt.type_float() }}}}) / 7 as c3,
               'name ' || cast(i % 1000 as {{{{ dbt.type_string() }}}}) as c4,
               case when i % 3 = 0 then null else i % 5 end as c5,
               i % 2 = 0 as c6,
               cast(i * 3 as {{{{ dbt.type_bigint() }}}}) as c7,
               'x' as c8,
               i % 13 as c9
        from {{{{ series }}}}
        {keep}
        """).lstrip()


def make_diff_repo(
    env: Env, root: Path, rows: int, profile: str, changed_every: int = 100, add_and_remove: bool = True
) -> tuple[Path, str, str]:
    """A repository whose two commits build `big` (base, then head, as `big_model` says); returns (repo, base, head)."""
    repo = root
    repo.mkdir(parents=True, exist_ok=True)
    write_dbt_project(repo, "bench_diff", "bench", materialized="table", extra='version: "1.0"\n')
    write(
        repo / "models" / "schema.yml",
        """
        version: 2
        models:
          - name: big
            config:
              meta: {primary_key: id}
        """,
    )
    write(repo / "profiles.yml", profile)
    write(repo / ".gitignore", "*.duckdb*\ntarget/\nlogs/\n")
    (repo / "models" / "big.sql").write_text(big_model(rows, head=False))
    commit_all(env, repo, "base", repack=False)
    base = env.git("rev-parse", "HEAD", cwd=repo)
    (repo / "models" / "big.sql").write_text(big_model(rows, True, changed_every, add_and_remove))
    env.git("commit", "-q", "-am", "head", cwd=repo)
    head = env.git("rev-parse", "HEAD", cwd=repo)
    return repo, base, head


def by_hand_query(base_relation: str, head_relation: str) -> str:
    """The one full-outer-join query a person would write to count what `diff` counts."""
    cols = [f"c{i}" for i in range(1, DIFF_COLUMNS)]
    per_column = ",\n  ".join(
        f"sum(case when b.id is not null and h.id is not null and b.{c} is distinct from h.{c} then 1 else 0 end) as {c}" for c in cols
    )
    any_change = " or ".join(f"b.{c} is distinct from h.{c}" for c in cols)
    return (
        "select\n  sum(case when b.id is null then 1 else 0 end) as added,\n"
        "  sum(case when h.id is null then 1 else 0 end) as removed,\n"
        f"  sum(case when b.id is not null and h.id is not null and ({any_change}) then 1 else 0 end) as changed,\n"
        f"  {per_column}\n"
        f"from {base_relation} b full outer join {head_relation} h on b.id = h.id"
    )


def duckdb_two_files_profile() -> str:
    """The diff-apart profile on DuckDB: `dev` in warehouse.duckdb, `other` in other.duckdb."""
    return (
        "bench:\n  target: dev\n  outputs:\n"
        "    dev: {type: duckdb, path: warehouse.duckdb, schema: dev, threads: 4}\n"
        "    other: {type: duckdb, path: other.duckdb, schema: dev, threads: 4}\n"
    )


def postgres_two_databases_profile(dsn: str, schema: str, other_db: str) -> str:
    """The diff-apart profile on PostgreSQL: `dev` in the database of `dsn`, `other` in `other_db` on the same server."""
    profile = postgres_profile("bench", dsn, schema, target="dev")
    dev = profile.split("outputs:\n", 1)[1]
    dbname = dev.split("dbname: ", 1)[1].split()[0]
    return profile + dev.replace("dev:", "other:", 1).replace(f"dbname: {dbname}", f"dbname: {other_db}")


# --- promote, spark ---------------------------------------------------------------


def write_promote_project(repo: Path, dsn: str, schema: str, models: int, rows: int) -> None:
    """`models` table models of `rows` rows each, in one dbt project at the repository's root."""
    write_dbt_project(repo, "promote_bench", "promote_bench", materialized="table")
    write(repo / "profiles.yml", postgres_profile("promote_bench", dsn, schema))
    write(repo / ".gitignore", "target/\nlogs/\n")
    for i in range(models):
        write(
            repo / "models" / f"g{i // 50}" / f"m{i:03d}.sql", f"select g as id, g * {i} as amount from generate_series(1, {rows}) as g\n"
        )


def write_switch_macro_project(directory: Path) -> None:
    """A dbt project whose one macro runs the hand-written switch, for the same-dbt-start baseline."""
    write_dbt_project(directory, "bench_switch", "promote_bench", extra='macro-paths: ["macros"]\nmodel-paths: []\n')
    write(
        directory / "macros" / "switch.sql",
        """
        {% macro bench_switch(sql) %}
          {% call statement('bench_switch', auto_begin=True) %}{{ sql }}{% endcall %}
          {% do adapter.commit() %}
        {% endmacro %}
        """,
    )


def make_spark_repo(env: Env) -> Path:
    """1 seed and a chain of SPARK_MODELS table models, on Spark in session mode."""
    repo = env.tmp / "spark"
    write_dbt_project(repo, "sparky", "sparky", materialized="table")
    (repo / "profiles.yml").write_text(spark_profiles("dev"))
    write(repo / "seeds" / "raw.csv", "id,amount\n" + "".join(f"{i},{i * 7 % 101}\n" for i in range(1, 101)))
    previous = "ref('raw')"
    for i in range(1, SPARK_MODELS + 1):
        write(repo / "models" / f"s{i}.sql", f"select id, amount + {i} as amount from {{{{ {previous} }}}}\n")
        previous = f"ref('s{i}')"
    write(repo / ".gitignore", "target/\nlogs/\nmetastore_db/\nspark-warehouse/\nderby.log\n")
    commit_all(env, repo)
    return repo


# --- clean: the warehouse registry -----------------------------------------------

#: The registry table's columns, in the order dot-tasks writes them.
REGISTRY_COLUMNS = tuple(
    "project commit_sha short context build_schema schemas status started_at finished_at recorded_at "
    "dbt_version dot_version built_by host workdir command deferred_commit deferred_context deferred_schema".split()
)


def make_registry_repo(env: Env) -> Path:
    """One model in a DuckDB project, whose warehouse `register_builds` fills with other machines' builds."""
    repo = env.tmp / "registry"
    write_dbt_project(repo, "small", "small")
    write(repo / "profiles.yml", duckdb_profiles("small"))
    write(repo / "models" / "a.sql", "select 1 as x\n")
    write(repo / ".gitignore", "warehouse.duckdb\n")
    commit_all(env, repo)
    return repo


def _registry_rows(i: int, commit: str, when: str) -> list[tuple[str | None, ...]]:
    """Build `i`'s two registry events, running then success, as another machine recorded them."""
    short, schema = commit[:8], f"dev_{commit[:8]}"
    fields: dict[str, str] = dict(
        project="small", commit_sha=commit, short=short, context="dev", build_schema=schema, schemas=json.dumps([schema])
    )
    fields.update(started_at=when, finished_at=when, built_by="ci@example.com", host=f"runner-{i % 7}", workdir=f"/runner/{i}")
    events = []
    for status in ("running", "success"):
        row = {**fields, "status": status, "recorded_at": when[:-2] + ("1Z" if status == "success" else "0Z"), "command": "build"}
        events.append(tuple(row.get(column) for column in REGISTRY_COLUMNS))
    return events


def register_builds(repo: Path, builds: int) -> list[str]:
    """N builds from 'other machines' in the registry, half of them two weeks old; the old schemas."""
    import duckdb

    old = "2020-01-01T00:00:00.000000Z"
    new = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    rows, stale = [], []
    with duckdb.connect(str(repo / "warehouse.duckdb")) as con:
        con.execute("create schema if not exists dev_dot")
        con.execute(f"create table if not exists dev_dot.dot_builds ({', '.join(c + ' varchar' for c in REGISTRY_COLUMNS)})")
        for i in range(builds):
            commit = hashlib.sha1(f"bench {i}".encode()).hexdigest()
            schema = f"dev_{commit[:8]}"
            when = old if i % 2 == 0 else new
            con.execute(f'create schema "{schema}"')
            con.execute(f'create table "{schema}".a as select 1 as x')
            rows += _registry_rows(i, commit, when)
            if when == old:
                stale.append(schema)
        con.executemany(f"insert into dev_dot.dot_builds values ({', '.join('?' for _ in REGISTRY_COLUMNS)})", rows)
    return stale
