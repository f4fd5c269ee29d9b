"""Pure naming rules: contexts, short hashes, schema names, `CTX@REF` specs."""

from __future__ import annotations

import re

from .errors import ContextError, DotError

DEFAULT_SHORT_LENGTH = 8
MIN_SHORT_LENGTH = 4

# A context becomes a directory name beside `worktree/`, so it must be a plain
# name: no separators, no `..`, nothing hidden, and never our own entries.
_CONTEXT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED_CONTEXTS = frozenset({"worktree"})


def check_context_name(context: str) -> str:
    """Return `context` if it is safe as a directory name, else raise."""
    if not _CONTEXT_NAME.fullmatch(context) or ".." in context or context in RESERVED_CONTEXTS or len(context) > 100:
        raise ContextError(
            f"context {context!r} is not a plain name: use letters, digits, '_', '-' "
            "or '.', with no path separators or '..' (e.g. --context dev)"
        )
    return context


def short_hash(commit: str, length: int = DEFAULT_SHORT_LENGTH) -> str:
    """The commit prefix that suffixes schema names."""
    if not MIN_SHORT_LENGTH <= length <= len(commit):
        raise DotError(
            f"short-hash length {length} is out of range: set dot.short_hash_length between {MIN_SHORT_LENGTH} and {len(commit)}"
        )
    return commit[:length]


def suffixed_schema(schema: str, short: str) -> str:
    """`<schema>_<short>`: the schema an isolated build writes to."""
    return f"{schema}_{short}"


# The longest schema or relation name each warehouse takes. PostgreSQL and
# Redshift cut longer names without a word (two builds could then collide);
# the others refuse them, but only halfway through a build. Names are counted
# in UTF-8 bytes: where the limit is in characters, that errs on the safe side
# for non-ASCII names. An adapter missing here has no limit worth checking
# (DuckDB) or one that depends on where it stores data (Trino's connectors,
# ClickHouse's file names).
IDENTIFIER_LIMITS = {
    "postgres": 63,  # NAMEDATALEN - 1 bytes ("Identifiers and Key Words")
    "redshift": 127,  # bytes, UTF-8 ("Names and identifiers")
    "mysql": 64,  # characters, databases and tables ("Identifier Length Limits")
    "snowflake": 255,  # characters ("Identifier requirements")
    "bigquery": 1024,  # characters for a dataset, UTF-8 bytes for a table ("Datasets", "Tables")
    "databricks": 255,  # characters, Unity Catalog ("Names")
    "sqlserver": 128,  # characters, T-SQL sysname ("Database identifiers")
    "fabric": 128,  # characters, T-SQL sysname, as in SQL Server
    "spark": 128,  # the Hive 2.3 metastore schema Spark creates: DBS.NAME is VARCHAR(128)
}


def too_long(name: str, limit: int) -> bool:
    """Whether `name` is over `limit` bytes: warehouses count bytes, not characters."""
    return len(name.encode("utf-8")) > limit


def is_template(text: str) -> bool:
    """Whether dbt renders `text` (an expression or a block) before using it."""
    return "{{" in text or "{%" in text


def check_identifier_length(name: str, adapter_type: str) -> None:
    """Refuse a schema name the adapter would silently cut short."""
    limit = IDENTIFIER_LIMITS.get(adapter_type)
    if limit and not is_template(name) and too_long(name, limit):
        raise DotError(
            f"schema {name!r} is {len(name.encode('utf-8'))} bytes, but {adapter_type} cuts names at "
            f"{limit}: shorten the target's schema (or dot.short_hash_length)"
        )


def parse_spec(spec: str) -> tuple[str | None, str]:
    """Split the ADR's `CTX@REF` shorthand; `@REF` leaves the context unset.

    Only the first `@` splits, so reflog forms such as `dev@main@{1}` keep
    their own `@` in the ref.
    """
    context, sep, ref = spec.partition("@")
    if not sep or not ref:
        raise DotError(f"{spec!r} is not of the form CTX@REF or @REF (e.g. dev@main, @HEAD~1)")
    return (context or None), ref
