"""Generated dbt projects for the benchmarks: files only; bench.py commits them and times the runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

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
    return (f"select a.id, a.grp, a.amount + b.amount as amount\n"
            f"from {{{{ ref('{first}') }}}} a\njoin {{{{ ref('{second}') }}}} b using (id)\n")


def slim_leaf() -> str:
    """A model nothing depends on: the last one (children of m<i> are m<i+7> and m<i+20>)."""
    return f"m{SLIM_MODELS:03d}"


def make_slim_project(repo: Path) -> None:
    """A 200-model DuckDB project with `prod` and `dev` outputs in one warehouse file."""
    write(repo / "dbt_project.yml", """
        name: slim
        profile: slim
        config-version: 2
        models:
          slim:
            +materialized: table
        """)
    write(repo / "profiles.yml", """
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
        """)
    rows = "\n".join(f"{i},{'abcde'[i % 5]},{i * 7 % 101}" for i in range(1, 501))
    write(repo / "seeds" / "raw_events.csv", "id,grp,amount\n" + rows + "\n")
    for i in range(1, SLIM_MODELS + 1):
        write(repo / "models" / f"m{i:03d}.sql", slim_model(i))
    write(repo / ".gitignore", "warehouse.duckdb*\ntarget/\nlogs/\n")


def change_slim_leaf(repo: Path, note: str) -> None:
    """Change the leaf model's SQL (a new column), as a pull request would."""
    path = repo / "models" / f"{slim_leaf()}.sql"
    path.write_text(path.read_text().replace("as amount\n", f"as amount, '{note}' as note\n", 1))
