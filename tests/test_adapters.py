"""The adapter matrix, on generated profiles: the key suffixed, the identifier limit, what the guard checks.

Only DuckDB, PostgreSQL and Spark run for real here; for the others the
generated profile is all there is to check without their warehouse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project

from dot_tasks.adapters import ADAPTERS, database_of, schema_key, unchecked_warning
from dot_tasks.dbt.guard import writes_outside
from dot_tasks.errors import DotError, ProfileError
from dot_tasks.naming import IDENTIFIER_LIMITS, check_identifier_length
from dot_tasks.profiles import isolate_output
from dot_tasks.templating import render_profiles

SHORT = "abc12345"

# adapter → (output as a user writes it, key suffixed, database the guard also checks, limit)
MATRIX: dict[str, tuple[dict[str, Any], str, str | None, int | None]] = {
    "snowflake": (
        {
            "account": "xy12345",
            "user": "u",
            "password": "{{ env_var('SF_PW') }}",
            "role": "transformer",
            "database": "ANALYTICS",
            "warehouse": "wh",
            "schema": "dev",
        },
        "schema",
        "ANALYTICS",
        255,
    ),
    "bigquery": ({"method": "oauth", "project": "my-gcp", "dataset": "dev", "location": "EU"}, "dataset", "my-gcp", 1024),
    "databricks": (
        {
            "host": "x.cloud.databricks.com",
            "http_path": "/sql/1.0/warehouses/1",
            "token": "{{ env_var('T') }}",
            "catalog": "main",
            "schema": "dev",
        },
        "schema",
        "main",
        255,
    ),
    "trino": ({"method": "ldap", "host": "trino", "port": 443, "user": "u", "catalog": "hive", "schema": "dev"}, "schema", "hive", None),
    "redshift": ({"host": "r.example.com", "port": 5439, "user": "u", "dbname": "warehouse", "schema": "dev"}, "schema", "warehouse", 127),
    "clickhouse": ({"host": "ch", "port": 8123, "schema": "dev"}, "schema", None, None),
    "sqlserver": (
        {"driver": "ODBC Driver 18 for SQL Server", "server": "sql", "port": 1433, "database": "dw", "schema": "dev"},
        "schema",
        "dw",
        128,
    ),
    "fabric": (
        {
            "driver": "ODBC Driver 18 for SQL Server",
            "server": "x.datawarehouse.fabric.microsoft.com",
            "database": "dw",
            "schema": "dev",
            "authentication": "CLI",
        },
        "schema",
        "dw",
        128,
    ),
    "mysql": ({"server": "mysql", "port": 3306, "username": "u", "schema": "dev"}, "schema", None, 64),
    "postgres": ({"host": "pg", "user": "u", "dbname": "dw", "schema": "dev"}, "schema", "dw", 63),
    "duckdb": ({"path": "/abs/w.duckdb", "schema": "dev"}, "schema", None, None),
    "spark": ({"method": "thrift", "host": "spark", "port": 10000, "schema": "dev"}, "schema", None, 128),
}


def _generated(output: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The output as the generated profiles.yml gives it back to dbt."""
    isolated, _schema = isolate_output(output, SHORT, tmp_path)
    text = render_profiles(
        commit="a" * 40, context="dev", profile_name="shop", target_name="dev", output=isolated, user_config=None, source=tmp_path
    )
    return yaml.safe_load(text)["shop"]["outputs"]["dev"]


def test_every_known_adapter_is_in_the_matrix() -> None:
    assert set(MATRIX) == set(ADAPTERS)


@pytest.mark.parametrize("adapter", sorted(MATRIX))
def test_generated_profile_suffixes_the_adapters_schema_key(adapter: str, tmp_path: Path) -> None:
    written, key, database, limit = MATRIX[adapter]
    output = {"type": adapter, **written}
    generated = _generated(output, tmp_path)
    assert schema_key(output) == key
    assert generated[key] == f"{written[key]}_{SHORT}"
    # Everything else, secrets' env_var() included, reaches dbt exactly as written.
    assert {k: v for k, v in generated.items() if k != key} == {k: v for k, v in output.items() if k != key}
    assert database_of(generated) == database
    assert IDENTIFIER_LIMITS.get(adapter) == limit
    assert unchecked_warning(adapter, key, generated[key]) is None


@pytest.mark.parametrize("adapter", sorted(a for a, (_o, _k, db, _l) in MATRIX.items() if db))
def test_guard_checks_the_database_or_catalog_where_there_is_one(adapter: str, tmp_path: Path) -> None:
    written, key, database, _limit = MATRIX[adapter]
    generated = _generated({"type": adapter, **written}, tmp_path)
    schema = generated[key]
    nodes = [
        {"unique_id": "model.shop.ok", "schema": schema, "database": database},
        {"unique_id": "model.shop.custom", "schema": f"{schema}_marts", "database": database},
        {"unique_id": "model.shop.other_catalog", "schema": schema, "database": "elsewhere"},
        {"unique_id": "model.shop.shared", "schema": "dev", "database": database},
    ]
    assert writes_outside(nodes, schema, database_of(generated)) == [
        ("model.shop.other_catalog", f"elsewhere.{schema}"),
        ("model.shop.shared", f"{database}.dev"),
    ]


@pytest.mark.parametrize("adapter", ["spark", "mysql", "clickhouse"])
def test_where_the_schema_is_a_database_a_matching_database_key_follows_it(adapter: str, tmp_path: Path) -> None:
    # These adapters reject `database` unless it equals `schema`: both get the suffix.
    generated = _generated({"type": adapter, "schema": "dev", "database": "dev"}, tmp_path)
    assert generated["schema"] == generated["database"] == f"dev_{SHORT}"
    assert database_of(generated) is None  # the guard checks the schema alone
    nodes = [{"unique_id": "model.shop.other", "schema": "analytics", "database": None}]
    assert writes_outside(nodes, generated["schema"], None) == [("model.shop.other", "analytics")]


def test_bigquery_schema_key_wins_over_dataset(tmp_path: Path) -> None:
    generated = _generated({"type": "bigquery", "project": "p", "schema": "dev"}, tmp_path)
    assert generated["schema"] == f"dev_{SHORT}" and "dataset" not in generated
    with pytest.raises(ProfileError, match="sets no `schema:`"):
        isolate_output({"type": "bigquery", "project": "p"}, SHORT, tmp_path)


@pytest.mark.parametrize("adapter,limit", sorted(IDENTIFIER_LIMITS.items()))
def test_identifier_limits_are_enforced_per_adapter(adapter: str, limit: int) -> None:
    check_identifier_length("s" * limit, adapter)
    with pytest.raises(DotError, match=f"{adapter} cuts names at {limit}"):
        check_identifier_length("s" * (limit + 1), adapter)


def test_unknown_adapter_builds_into_schema_with_one_warning_line(project: Project) -> None:
    known = project.run("profile")
    assert known.code == 0 and "warning" not in known.stderr
    (project.project_dir / "profiles.yml").write_text(
        "shop:\n  target: dev\n  outputs:\n    dev:\n      type: exasol\n      dsn: x\n      schema: dev\n"
    )
    result = project.run("profile")
    assert result.code == 0, result.stderr
    generated = yaml.safe_load((Path(result.out) / "profiles.yml").read_text())
    assert generated["shop"]["outputs"]["dev"]["schema"] == f"dev_{project.second[:8]}"
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"dot-tasks: warning: the exasol adapter has not been checked with dot-tasks: building "
        f"into its `schema` key (dev_{project.second[:8]}); check that its models land there"
    ]
