"""`clean` under every selector, with decoys in the very places it reads.

The decoys are real schemas that real builds made: a lookalike named in another
build's record and manifest, the schema of another context, and the build of a
second dbt project in the same repository. Every clean must drop exactly the
schemas of the builds it selects, and nothing else.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from conftest import Project, dot, duckdb_rows, git, make_project, write

# Custom schemas named `verbatim_<name>` are written as <name>; `lookalike` becomes <target schema>x.
SCHEMA_MACRO = """
{% macro generate_schema_name(custom_schema_name, node) %}
  {%- if custom_schema_name and custom_schema_name.startswith('verbatim_') -%}{{ custom_schema_name[9:] }}
  {%- elif custom_schema_name == 'lookalike' -%}{{ target.schema }}x
  {%- else -%}{{ default__generate_schema_name(custom_schema_name, node) }}{%- endif -%}
{% endmacro %}
"""


def _schemas(project: Project) -> set[str]:
    return {r[0] for r in duckdb_rows(project.project_dir / "warehouse.duckdb", "select schema_name from information_schema.schemata")}


def _ok(result) -> None:
    assert result.code == 0, result.stderr


def _clean(project: Project, before: set[str], dropped: set[str], *selector: str) -> set[str]:
    result = project.run("clean", *selector)
    _ok(result)
    after = _schemas(project)
    assert before - after == dropped, (selector, result.stdout)
    assert after - before == set()
    for schema in dropped:
        assert f"dropped {schema}" in result.stdout or schema in result.stdout, result.stdout
    return after


def test_clean_drops_exactly_the_selected_builds_under_every_selector(tmp_path) -> None:
    project = make_project(tmp_path)
    repo = project.repo_dir
    a, b = project.first, project.second
    git("checkout", "-q", "-b", "feature", cwd=repo)
    write(project.project_dir / "models" / "orders.sql", "select order_id from {{ ref('raw_orders') }}\n")
    f = project.commit("feature work")
    git("checkout", "-q", "main", cwd=repo)
    # Commit C writes, with --allow-shared-schemas, into the user's `dev`, into a
    # lookalike of A's schema, and into a lookalike of its own.
    write(project.project_dir / "macros" / "generate_schema_name.sql", SCHEMA_MACRO)
    write(project.project_dir / "models" / "shared.sql", "{{ config(schema='verbatim_dev') }}\nselect 1 as x\n")
    write(project.project_dir / "models" / "a_lookalike.sql", f"{{{{ config(schema='verbatim_dev_{a[:8]}_c') }}}}\nselect 1 as x\n")
    write(project.project_dir / "models" / "own_lookalike.sql", "{{ config(schema='lookalike') }}\nselect 1 as x\n")
    write(project.project_dir / "models" / "marts.sql", "{{ config(schema='marts') }}\nselect 1 as x\n")
    # A second dbt project in the same repository, same database file, same base schema.
    write(
        repo / "other" / "dbt_project.yml",
        """
        name: other
        profile: shop
        config-version: 2
        version: "1.0"
        models:
          other:
            +materialized: table
            +schema: other
        """,
    )
    write(repo / "other" / "models" / "o.sql", "select 1 as x\n")
    write(
        repo / "other" / "profiles.yml",
        """
        shop:
          target: dev
          outputs:
            dev: {type: duckdb, path: ../warehouse.duckdb, schema: dev, threads: 1}
        """,
    )
    c = project.commit("shared writes, lookalikes, and a second project")

    for args in (
        ["--ref", a],
        ["--ref", b],
        ["--ref", b, "--context", "prod"],
        ["--ref", "feature"],
        ["--ref", "HEAD", "--allow-shared-schemas"],
    ):
        _ok(project.run("run", *args))
    _ok(dot("run", cwd=repo / "other"))
    decoys = {"dev", f"dev_{a[:8]}_c", f"dev_{c[:8]}x", f"dev_{c[:8]}_other"}
    schemas = _schemas(project)
    assert decoys | {f"dev_{x[:8]}" for x in (a, b, c, f)} | {f"analytics_{b[:8]}", f"dev_{c[:8]}_marts"} <= schemas
    # The decoys are where clean looks: C's record and manifest name two of them.
    record = json.loads((project.build_dir(c) / "dev" / "build.json").read_text())
    assert {"dev", f"dev_{a[:8]}_c", f"dev_{c[:8]}x"} <= set(record["schemas"])
    manifest = (project.build_dir(c) / "dev" / "target" / "manifest.json").read_text()
    assert f'"dev_{a[:8]}_c"' in manifest and f'"dev_{c[:8]}x"' in manifest

    git("branch", "-D", "feature", cwd=repo)
    schemas = _clean(project, schemas, {f"dev_{f[:8]}"}, "--unreachable")
    assert not project.build_dir(f).exists() and project.build_dir(a).exists()

    a_record = project.build_dir(a) / "dev" / "build.json"
    data = json.loads(a_record.read_text())
    data["started"] = data["finished"] = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat(timespec="seconds")
    a_record.write_text(json.dumps(data))
    schemas = _clean(project, schemas, {f"dev_{a[:8]}"}, "--older-than", "1d")
    assert not project.build_dir(a).exists()

    schemas = _clean(project, schemas, {f"analytics_{b[:8]}"}, "--all", "--context", "prod")
    assert (project.build_dir(b) / "dev").is_dir() and (project.build_dir(b) / "worktree").is_dir()

    schemas = _clean(project, schemas, {f"dev_{b[:8]}"}, "--keep", "1")
    assert not project.build_dir(b).exists() and project.build_dir(c).exists()

    schemas = _clean(project, schemas, {f"dev_{c[:8]}", f"dev_{c[:8]}_marts"}, "--ref", "HEAD")
    assert decoys <= schemas
    assert not (project.project_dir / ".dot" / "isolated_builds").exists() or not any(
        (project.project_dir / ".dot" / "isolated_builds").iterdir()
    )
    # The second project's build is untouched, files and schema.
    assert (repo / "other" / ".dot" / "isolated_builds" / c / "dev" / "build.json").is_file()
