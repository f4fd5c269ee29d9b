"""Inputs the benchmarks generate: dbt projects (files only; bench.py commits them and times the runs)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The diff benchmark's model: an id and nine columns of each kind a warehouse holds.
DIFF_COLUMNS = 10

#: The Spark benchmark's chain of models on one seed.
SPARK_MODELS = 3

#: The slim CI project: one seed, 20 models on it, the rest each joining two earlier ones.
SLIM_MODELS = 200
SLIM_ROOTS = 20


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


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
    write(
        repo / "dbt_project.yml",
        """
        name: slim
        profile: slim
        config-version: 2
        models:
          slim:
            +materialized: table
        """,
    )
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
    rows = "\n".join(f"{i},{'abcde'[i % 5]},{i * 7 % 101}" for i in range(1, 501))
    write(repo / "seeds" / "raw_events.csv", "id,grp,amount\n" + rows + "\n")
    for i in range(1, SLIM_MODELS + 1):
        write(repo / "models" / f"m{i:03d}.sql", slim_model(i))
    write(repo / ".gitignore", "warehouse.duckdb*\ntarget/\nlogs/\n")


def change_slim_leaf(repo: Path, note: str) -> None:
    """Change the leaf model's SQL (a new column), as a pull request would."""
    path = repo / "models" / f"{slim_leaf()}.sql"
    path.write_text(path.read_text().replace("as amount\n", f"as amount, '{note}' as note\n", 1))


def _big_model(rows: int, head: bool, sparse: bool = False) -> str:
    """`big`: `rows` rows in base; in head 1% changed (c1), 0.5% removed and 0.5% added.

    Head removes the ids with i % 200 = 1 and adds ids rows+1 .. rows*1.005.
    `sparse`: head only changes c1 in 0.1% of the rows (i % 1000 = 0).
    """
    last = rows + rows // 200 if head and not sparse else rows
    every = 1000 if sparse else 100
    c1 = f"case when i % {every} = 0 then (i % 97) + 1 else i % 97 end" if head else "i % 97"
    keep = "where i % 200 <> 1" if head and not sparse else ""
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


def make_diff_repo(env: Any, root: Path, rows: int, profile: str, sparse: bool = False) -> tuple[Path, str, str]:
    """A repository whose two commits build `big` (base, then head); returns (repo, base, head)."""
    repo = root
    repo.mkdir(parents=True, exist_ok=True)
    write(
        repo / "dbt_project.yml",
        """
        name: bench_diff
        profile: bench
        config-version: 2
        version: "1.0"
        models:
          bench_diff:
            +materialized: table
        """,
    )
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
    (repo / "models" / "big.sql").write_text(_big_model(rows, head=False))
    env.git("init", "-q", "-b", "main", cwd=repo)
    env.git("config", "gc.auto", "0", cwd=repo)
    env.git("add", "-A", cwd=repo)
    env.git("commit", "-q", "-m", "base", cwd=repo)
    base = env.git("rev-parse", "HEAD", cwd=repo)
    (repo / "models" / "big.sql").write_text(_big_model(rows, head=True, sparse=sparse))
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


def postgres_profile(profile: str, dsn: str, schema: str) -> str:
    """A profiles.yml for the PostgreSQL server named by a postgresql:// URL."""
    url = dsn.replace("postgresql://", "").replace("postgres://", "")
    user_host, _, dbname = url.partition("/")
    user, _, hostport = user_host.rpartition("@")
    host, _, port = hostport.partition(":")
    return f"""
        {profile}:
          target: prod
          outputs:
            prod:
              type: postgres
              host: {host}
              port: {port or 5432}
              user: {user.split(":")[0] or "postgres"}
              password: ""
              dbname: {dbname.split("?")[0] or "postgres"}
              schema: {schema}
              threads: 4
        """


def write_promote_project(repo: Path, dsn: str, schema: str, models: int, rows: int) -> None:
    """`models` table models of `rows` rows each, in one dbt project at the repository's root."""
    write(
        repo / "dbt_project.yml",
        """
        name: promote_bench
        profile: promote_bench
        config-version: 2
        models:
          promote_bench:
            +materialized: table
        """,
    )
    write(repo / "profiles.yml", postgres_profile("promote_bench", dsn, schema))
    write(repo / ".gitignore", "target/\nlogs/\n")
    for i in range(models):
        write(
            repo / "models" / f"g{i // 50}" / f"m{i:03d}.sql", f"select g as id, g * {i} as amount from generate_series(1, {rows}) as g\n"
        )


def write_switch_macro_project(directory: Path) -> None:
    """A dbt project whose one macro runs the hand-written switch, for the same-dbt-start baseline."""
    write(
        directory / "dbt_project.yml",
        """
        name: bench_switch
        profile: promote_bench
        config-version: 2
        macro-paths: ["macros"]
        model-paths: []
        """,
    )
    write(
        directory / "macros" / "switch.sql",
        """
        {% macro bench_switch(sql) %}
          {% call statement('bench_switch', auto_begin=True) %}{{ sql }}{% endcall %}
          {% do adapter.commit() %}
        {% endmacro %}
        """,
    )


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


def make_spark_repo(tmp: Path, commit_all: Callable[[Path], None]) -> Path:
    """1 seed and a chain of SPARK_MODELS table models, on Spark in session mode."""
    repo = tmp / "spark"
    write(
        repo / "dbt_project.yml",
        """
        name: sparky
        profile: sparky
        config-version: 2
        models:
          sparky:
            +materialized: table
        """,
    )
    (repo / "profiles.yml").write_text("sparky:\n  target: dev\n  outputs:\n    dev:\n" + spark_output("dev") + "\n")
    write(repo / "seeds" / "raw.csv", "id,amount\n" + "".join(f"{i},{i * 7 % 101}\n" for i in range(1, 101)))
    previous = "ref('raw')"
    for i in range(1, SPARK_MODELS + 1):
        write(repo / "models" / f"s{i}.sql", f"select id, amount + {i} as amount from {{{{ {previous} }}}}\n")
        previous = f"ref('s{i}')"
    write(repo / ".gitignore", "target/\nlogs/\nmetastore_db/\nspark-warehouse/\nderby.log\n")
    commit_all(repo)
    return repo
