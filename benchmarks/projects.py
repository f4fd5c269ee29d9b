"""Generators of the benchmark inputs that more than a line or two of bench.py would need."""

from __future__ import annotations

import textwrap
from pathlib import Path


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


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
              user: {user.split(':')[0] or 'postgres'}
              password: ""
              dbname: {dbname.split('?')[0] or 'postgres'}
              schema: {schema}
              threads: 4
        """


def write_promote_project(repo: Path, dsn: str, schema: str, models: int, rows: int) -> None:
    """`models` table models of `rows` rows each, in one dbt project at the repository's root."""
    _write(repo / "dbt_project.yml", """
        name: promote_bench
        profile: promote_bench
        config-version: 2
        models:
          promote_bench:
            +materialized: table
        """)
    _write(repo / "profiles.yml", postgres_profile("promote_bench", dsn, schema))
    _write(repo / ".gitignore", "target/\nlogs/\n")
    for i in range(models):
        _write(repo / "models" / f"g{i // 50}" / f"m{i:03d}.sql",
               f"select g as id, g * {i} as amount from generate_series(1, {rows}) as g\n")


def write_switch_macro_project(directory: Path) -> None:
    """A dbt project whose one macro runs the hand-written switch, for the same-dbt-start baseline."""
    _write(directory / "dbt_project.yml", """
        name: bench_switch
        profile: promote_bench
        config-version: 2
        macro-paths: ["macros"]
        model-paths: []
        """)
    _write(directory / "macros" / "switch.sql", """
        {% macro bench_switch(sql) %}
          {% call statement('bench_switch', auto_begin=True) %}{{ sql }}{% endcall %}
          {% do adapter.commit() %}
        {% endmacro %}
        """)
