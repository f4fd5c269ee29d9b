"""The isolation guard: nothing is written when any node would land outside the build's schema."""

from __future__ import annotations

import pytest
from conftest import Project, duckdb_rows, make_project, pg_schemas, postgres_profile, write, write_project_config

from dot_tasks.dbt.guard import names_too_long, writes_outside


def _schemas(project: Project) -> set[str]:
    database = project.project_dir / "warehouse.duckdb"
    if not database.exists():
        return set()
    return {r[0] for r in duckdb_rows(database, "select schema_name from information_schema.schemata")}


def _refused(result, *needles: str) -> None:
    assert result.code == 2, result.stderr
    line = [each for each in result.stderr.splitlines() if each.startswith("dot-tasks: refusing")]
    assert line, result.stderr
    for needle in needles:
        assert needle in line[0]
    assert "Traceback" not in result.stderr


def test_generate_schema_name_that_ignores_the_target_is_refused(project: Project) -> None:
    write(
        project.project_dir / "macros" / "generate_schema_name.sql",
        """
        {% macro generate_schema_name(custom_schema_name, node) %}analytics{% endmacro %}
        """,
    )
    commit = project.commit("hard-code the schema")
    before = _schemas(project)
    _refused(
        project.run("run"),
        "model.shop.orders → warehouse.analytics",
        "seed.shop.raw_orders",
        f"outside dev_{commit[:8]}",
        "--allow-shared-schemas",
    )
    assert _schemas(project) == before  # nothing was written, not even the build's own schema


def test_snapshot_target_schema_is_refused(project: Project) -> None:
    write(
        project.project_dir / "snapshots" / "orders_snapshot.sql",
        """
        {% snapshot orders_snapshot %}
        {{ config(target_schema='snapshots', unique_key='order_id', strategy='check', check_cols='all') }}
        select * from {{ ref('raw_orders') }}
        {% endsnapshot %}
        """,
    )
    project.commit("a snapshot with a fixed schema")
    _refused(project.run("run"), "snapshot.shop.orders_snapshot → warehouse.snapshots")
    # The guard checks what dbt itself selected: leaving the snapshot out is allowed,
    # and so is `dbt run`, which never runs snapshots.
    ok = project.run("run", "--select", "raw_orders orders")
    assert ok.code == 0, ok.stderr
    seeded = project.run("build", "--command", "seed")
    assert seeded.code == 0, seeded.stderr
    models_only = project.run("build", "--command", "run")
    assert models_only.code == 0, models_only.stderr
    compiled = project.run("build", "--command", "compile")  # writes nothing: not guarded
    assert compiled.code == 0, compiled.stderr


def test_database_override_is_refused(project: Project) -> None:
    write_project_config(project.project_dir, "+database: elsewhere")
    project.commit("write models to another database")
    _refused(project.run("run"), "model.shop.orders → elsewhere.")


def test_custom_schemas_inside_the_suffix_are_allowed(project: Project) -> None:
    write_project_config(project.project_dir, "+schema: marts")
    commit = project.commit("custom schema, dbt's default naming")
    result = project.run("run", "--", "--store-failures")
    assert result.code == 0, result.stderr
    assert {f"dev_{commit[:8]}", f"dev_{commit[:8]}_marts", f"dev_{commit[:8]}_dbt_test__audit"} <= _schemas(project)


def test_allow_shared_schemas_builds_with_a_warning(project: Project) -> None:
    write(
        project.project_dir / "macros" / "generate_schema_name.sql",
        """
        {% macro generate_schema_name(custom_schema_name, node) %}shared_{{ target.name }}{% endmacro %}
        """,
    )
    project.commit("shared schema")
    result = project.run("run", "--allow-shared-schemas")
    assert result.code == 0, result.stderr
    assert "warning: --allow-shared-schemas" in result.stderr
    assert "shared_dev" in _schemas(project)


@pytest.mark.postgres
def test_over_long_names_are_refused_before_any_ddl(tmp_path, pg, pg_schema) -> None:
    long_base = pg_schema + "_" + "x" * (63 - len(pg_schema) - 1 - 9 + 1)  # one byte too many with _<8>
    project = make_project(tmp_path, profile=postgres_profile(long_base))
    result = project.run("run")
    assert result.code != 0 and "cuts names at 63" in result.stderr, result.stderr
    assert pg_schemas(pg, pg_schema) == set()
    # A custom variant too long for PostgreSQL is caught from the manifest, before any DDL.
    project = make_project(tmp_path / "two", profile=postgres_profile(pg_schema))
    write_project_config(project.project_dir, "+schema: a_custom_schema_name_that_is_far_too_long_for_postgres")
    project.commit("long custom schema")
    result = project.run("run")
    assert result.code == 2 and "cuts names at 63 bytes" in result.stderr, result.stderr
    assert pg_schemas(pg, pg_schema) == set()


def test_writes_outside_matches_the_suffix_exactly() -> None:
    nodes = [
        {"unique_id": "in", "schema": "dev_1234abcd", "database": "db"},
        {"unique_id": "custom", "schema": "dev_1234abcd_marts", "database": "db"},
        {"unique_id": "lookalike", "schema": "dev_1234abcdef", "database": "db"},
        {"unique_id": "user", "schema": "dev", "database": "db"},
        {"unique_id": "otherdb", "schema": "dev_1234abcd", "database": "other"},
    ]
    assert [uid for uid, _ in writes_outside(nodes, "dev_1234abcd", "db")] == ["lookalike", "user", "otherdb"]


def test_names_too_long_counts_bytes() -> None:
    nodes = [{"schema": "s" * 63, "identifier": "é" * 32}]  # 64 bytes in UTF-8
    assert names_too_long(nodes, 63) == ["é" * 32]


def test_flags_that_would_escape_the_build_are_refused(project: Project) -> None:
    write(
        project.project_dir / "macros" / "generate_schema_name.sql",
        """
        {% macro generate_schema_name(custom_schema_name, node) %}analytics{% endmacro %}
        """,
    )
    project.commit("hard-code the schema")
    assert project.run("worktree").code == 0 and project.run("profile").code == 0
    before = _schemas(project)
    sneaky = project.run("build", "--command", "--debug seed")
    assert sneaky.code == 2 and "is not a dbt command" in sneaky.stderr
    for extra in (["--profiles-dir", str(project.project_dir)], ["--target", "prod"], ["--target-path=/tmp/x"]):
        result = project.run("build", "--command", "seed", "--", *extra)
        assert result.code == 2 and "would override what isolates the build" in result.stderr, result.stderr
    assert _schemas(project) == before
