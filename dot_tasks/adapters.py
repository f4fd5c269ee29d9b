"""What isolation means adapter by adapter: the profile key suffixed, the database the guard checks.

Pure data and functions over a profile output (as written in profiles.yml),
so each rule is unit-tested on the generated profile without the adapter
installed. The identifier limits live in `naming.IDENTIFIER_LIMITS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AdapterRules:
    """How one adapter's profile names where a build lands."""

    #: Profile keys naming the schema, first match wins; the first is the one
    #: named in messages when none is set.
    schema_keys: tuple[str, ...] = ("schema",)
    #: Profile keys naming the database (catalog, project) dbt puts in
    #: `credentials.database`: the guard also refuses nodes sent to another one.
    #: Empty when the adapter has no level above the schema.
    database_keys: tuple[str, ...] = ()
    #: The adapter's "schema" is itself a database (Spark, MySQL, ClickHouse): a
    #: `database` key, if written, must equal the schema, so it is suffixed with it.
    database_is_schema: bool = False
    #: DDL runs inside a transaction, so a promotion's switch is one commit. Spark has
    #: none: each statement takes effect as it ends, and refusals must not promise otherwise.
    transactional_ddl: bool = True


#: The adapters dot-tasks knows. Sources: each adapter's profile documentation
#: on docs.getdbt.com and its Credentials class (aliases such as BigQuery's
#: dataset→schema, project→database; Databricks' and Trino's catalog→database).
ADAPTERS: dict[str, AdapterRules] = {
    "duckdb": AdapterRules(database_keys=("database",)),
    "postgres": AdapterRules(database_keys=("dbname", "database")),
    "redshift": AdapterRules(database_keys=("dbname", "database")),
    "snowflake": AdapterRules(database_keys=("database",)),
    # A target may say `schema:` or `dataset:`; the GCP project is the database.
    "bigquery": AdapterRules(schema_keys=("schema", "dataset"), database_keys=("project", "database")),
    # Unity Catalog: catalog.schema.table.
    "databricks": AdapterRules(database_keys=("catalog", "database")),
    "trino": AdapterRules(database_keys=("catalog", "database")),
    "sqlserver": AdapterRules(database_keys=("database",)),
    "fabric": AdapterRules(database_keys=("database",)),
    # Two levels only: dbt's `schema` is the engine's database, and the
    # adapter rejects a `database:` that differs from it.
    "spark": AdapterRules(database_is_schema=True, transactional_ddl=False),
    "mysql": AdapterRules(database_is_schema=True),
    "clickhouse": AdapterRules(database_is_schema=True),
}

UNKNOWN = AdapterRules()


def rules_for(adapter_type: str) -> AdapterRules:
    """What dot-tasks knows about an adapter type; an unknown one gets the cautious defaults."""
    return ADAPTERS.get(adapter_type, UNKNOWN)


def is_known(adapter_type: str) -> bool:
    """Whether dot-tasks has rules of its own for this adapter type."""
    return adapter_type in ADAPTERS


def schema_key(output: Mapping[str, Any]) -> str:
    """The profile key that names this output's schema (the one a build suffixes)."""
    keys = rules_for(str(output.get("type", ""))).schema_keys
    return next((k for k in keys if output.get(k)), keys[0])


def database_of(output: Mapping[str, Any]) -> str | None:
    """The database (catalog, project) this output builds in, as the guard compares it.

    None means the guard checks the schema alone: the adapter has no level
    above the schema, or the target leaves it to the adapter's default.
    """
    for key in rules_for(str(output.get("type", ""))).database_keys:
        if output.get(key):
            return str(output[key])
    return None


def unchecked_warning(adapter_type: str, key: str, schema: str) -> str | None:
    """One line for an adapter dot-tasks has not been checked against, else None."""
    if is_known(adapter_type):
        return None
    return (
        f"warning: the {adapter_type or 'unnamed'} adapter has not been checked with dot-tasks: "
        f"building into its `{key}` key ({schema}); check that its models land there"
    )
