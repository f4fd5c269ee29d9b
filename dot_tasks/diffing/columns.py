"""How columns compare (pure): which changed between the sides, and how each one's values are compared.

Runs in the dbt child, inside the per-node driver, and in the parent for two databases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Adapters that fold unquoted names to upper case; their column names are reported lower-cased.
UPPER_FOLDING = frozenset({"snowflake", "oracle", "db2", "exasol"})


def by_name(columns: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """A relation's columns by lower-cased name (the warehouse's case is kept inside)."""
    return {str(c["name"]).lower(): c for c in columns or []}


def shown_name(name: str, adapter_type: str) -> str:
    """A column's name as the result reports it: lower case where the warehouse folds names."""
    return name.lower() if adapter_type in UPPER_FOLDING or adapter_type == "postgres" else name


_INTEGER_TYPES = frozenset(
    {
        "int",
        "integer",
        "bigint",
        "smallint",
        "tinyint",
        "hugeint",
        "int2",
        "int4",
        "int8",
        "int16",
        "int32",
        "int64",
        "int128",
        "long",
        "short",
        "byte",
        "ubigint",
        "uinteger",
        "usmallint",
        "utinyint",
        "uhugeint",
        "serial",
        "bigserial",
        "smallserial",
    }
)
_FLOAT_TYPES = frozenset({"double precision", "double", "float", "float4", "float8", "float64", "real"})
_DECIMAL_TYPES = frozenset({"numeric", "decimal", "number", "dec", "bignumeric"})
_TEXT_TYPES = frozenset({"text", "varchar", "character varying", "char", "character", "string", "bpchar", "nvarchar", "nchar", "name"})
_TIMESTAMPTZ_TYPES = frozenset(
    {"timestamp with time zone", "timestamptz", "timestamp_tz", "timestamp_ltz", "timestamp with local time zone"}
)
#: Kinds that compare with one another by value when a column's type changes between the sides.
_FAMILY = {"integer": "number", "decimal": "number", "float": "number"}


def value_kind(data_type: str) -> str:
    """How values of a warehouse type are compared (see the dot_text macro for what each means)."""
    name = re.sub(r"\(.*?\)", "", str(data_type).lower()).strip()
    if "json" in name:
        return "json"
    if name in _TIMESTAMPTZ_TYPES:
        return "timestamptz"
    if name.startswith(("timestamp", "datetime")):
        return "timestamp"
    if name == "date":
        return "date"
    if name in ("boolean", "bool"):
        return "boolean"
    for kind, names in (("integer", _INTEGER_TYPES), ("float", _FLOAT_TYPES), ("decimal", _DECIMAL_TYPES), ("text", _TEXT_TYPES)):
        if name in names:
            return kind
    return "other"


def compare_spec(base_column: Mapping[str, Any], head_column: Mapping[str, Any]) -> dict[str, Any]:
    """How one column (or key column) is compared: its name on each side, its kind and any cast.

    Within a family (integer, decimal, float) a changed type is compared by value: as a
    double when either side is a float, as the warehouse compares the two; across families
    both sides are compared as text. `same_type` says the two sides' types are one, so the
    two-database path may hash the values as they are.
    """
    base_kind, head_kind = value_kind(base_column["type"]), value_kind(head_column["type"])
    if base_kind == head_kind:
        kind, cast = base_kind, None
    elif _FAMILY.get(base_kind) == _FAMILY.get(head_kind) == "number":
        kind, cast = ("float", "double") if "float" in (base_kind, head_kind) else ("decimal", None)
    else:
        kind, cast = "text", "string"
    same_type = str(base_column["type"]).lower() == str(head_column["type"]).lower()
    return {"base": str(base_column["name"]), "head": str(head_column["name"]), "kind": kind, "cast": cast, "same_type": same_type}


def column_changes(base: list[dict[str, Any]] | None, head: list[dict[str, Any]] | None, adapter_type: str = "") -> dict[str, Any]:
    """Columns added, removed and retyped; a change of order alone is reported apart."""
    b, h = by_name(base), by_name(head)
    if base is None or head is None:
        return {"added": [], "removed": [], "type_changed": [], "order_changed": False}
    common_b = [n for n in b if n in h]
    common_h = [n for n in h if n in b]
    return {
        "added": [shown_name(h[n]["name"], adapter_type) for n in h if n not in b],
        "removed": [shown_name(b[n]["name"], adapter_type) for n in b if n not in h],
        "type_changed": [
            {"name": shown_name(h[n]["name"], adapter_type), "base": b[n]["type"], "head": h[n]["type"]}
            for n in common_h
            if str(b[n]["type"]).lower() != str(h[n]["type"]).lower()
        ],
        "order_changed": common_b != common_h,
    }
