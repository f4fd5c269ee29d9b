"""Inputs the benchmarks generate: small dbt projects in git repositories.

Kept apart from bench.py so that each measurement there reads as a short
function of its input.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

SPARK_MODELS = 3


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def spark_output(schema: str, server_side_parameters: dict[str, str] | None = None) -> str:
    """A session-mode Spark target, as a user writes it (Spark's defaults for the metastore)."""
    lines = [
        "type: spark", "method: session", "host: NA", f"schema: {schema}", "threads: 1",
    ]
    if server_side_parameters:
        lines.append("server_side_parameters:")
        lines += [f"  {key}: '{value}'" for key, value in server_side_parameters.items()]
    return "\n".join(" " * 6 + line for line in lines)


def make_spark_repo(tmp: Path, commit_all: Callable[[Path], None]) -> Path:
    """1 seed and a chain of SPARK_MODELS table models, on Spark in session mode."""
    repo = tmp / "spark"
    _write(repo / "dbt_project.yml", """
        name: sparky
        profile: sparky
        config-version: 2
        models:
          sparky:
            +materialized: table
        """)
    (repo / "profiles.yml").write_text(
        "sparky:\n  target: dev\n  outputs:\n    dev:\n" + spark_output("dev") + "\n")
    _write(repo / "seeds" / "raw.csv", "id,amount\n" + "".join(f"{i},{i * 7 % 101}\n" for i in range(1, 101)))
    previous = "ref('raw')"
    for i in range(1, SPARK_MODELS + 1):
        _write(repo / "models" / f"s{i}.sql", f"select id, amount + {i} as amount from {{{{ {previous} }}}}\n")
        previous = f"ref('s{i}')"
    _write(repo / ".gitignore", "target/\nlogs/\nmetastore_db/\nspark-warehouse/\nderby.log\n")
    commit_all(repo)
    return repo
