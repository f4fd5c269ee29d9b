"""The isolation rules, pure: which extra dbt flags are refused, and which nodes may be built.

The parent checks a build's extra arguments here before it starts dbt; the
child's guard (`child_guard`) hands the nodes dbt selected to
`check_nodes` before dbt writes anything. Nothing here imports dbt, so every
rule is tested without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import IsolationError
from ..naming import IDENTIFIER_LIMITS, is_template, too_long

# Flags dot-tasks sets itself: given again after `--`, dbt would take the
# later one and build with another profile, target or schema.
RESERVED_FLAGS = frozenset(
    {
        "--project-dir",
        "--profiles-dir",
        "--profile",
        "--target",
        "-t",
        "--target-path",
        "--log-path",
    }
)

# Deferral goes through `--defer-to CTX@REF`, which records the base so that
# `clean` keeps it: a deferral given after `--` would read from a build that
# nothing records, and that a clean could drop under it.
DEFER_FLAGS = frozenset({"--defer", "--no-defer", "--defer-state", "--favor-state", "--no-favor-state"})
# `--state` alone (state:modified selection without deferral) reads files only;
# with --defer-to it would replace the base's manifest, so it is refused then.
STATE_FLAGS = frozenset({"--state"})
# The words that choose nodes; when one is given, a deferred build keeps it
# instead of selecting `state:modified+`.
SELECTION_FLAGS = frozenset({"-s", "--select", "-m", "--models", "--model", "--selector"})

# The dbt commands that write to the warehouse, and so are guarded.
WRITING_COMMANDS = frozenset({"build", "run", "seed", "snapshot", "test", "retry", "clone"})
#: The resource types that can create a relation (a test only when it stores its failures).
WRITING_NODES = ("model", "seed", "snapshot", "test")

#: A node as the guard sees it: "unique_id", "schema", "database", "identifier".
Node = Mapping[str, Any]


def _flags(args: list[str], names: frozenset[str]) -> list[str]:
    return sorted({a.partition("=")[0] for a in args if a.partition("=")[0] in names})


def check_extra_args(args: list[str], deferred: bool = False) -> None:
    """Refuse extra dbt args that would point the build at another profile, place or base."""
    clashes = _flags(args, RESERVED_FLAGS)
    if clashes:
        raise IsolationError(
            f"{', '.join(clashes)} after -- would override what isolates the build: drop it "
            "(choose the target with --context, the profile with --profiles-dir)"
        )
    deferring = _flags(args, DEFER_FLAGS | (STATE_FLAGS if deferred else frozenset()))
    if deferring:
        raise IsolationError(
            f"{', '.join(deferring)} after -- would defer to a base that dot-tasks does not record "
            "(and `clean` could drop it): use --defer-to CTX@REF instead"
        )


def selects_nodes(args: list[str]) -> bool:
    """Whether `args` already choose the nodes to build."""
    return bool(_flags(args, SELECTION_FLAGS))


def writes_outside(nodes: Sequence[Node], schema: str, database: str | None) -> list[tuple[str, str]]:
    """The nodes that would write outside `schema` (or its `<schema>_<custom>` variants)."""
    offenders = []
    for node in nodes:
        node_schema = str(node.get("schema") or "")
        node_db = node.get("database")
        inside = node_schema.lower() == schema.lower() or node_schema.lower().startswith(schema.lower() + "_")
        same_db = database is None or node_db is None or str(node_db).lower() == database.lower()
        if not (inside and same_db):
            where = f"{node_db}.{node_schema}" if node_db else node_schema
            offenders.append((str(node["unique_id"]), where))
    return offenders


def names_too_long(nodes: Sequence[Node], limit: int) -> list[str]:
    """The schema and relation names, among `nodes`, longer than `limit` bytes."""
    names = {name for node in nodes for name in (node.get("schema"), node.get("identifier"))}
    return sorted(name for name in names if isinstance(name, str) and too_long(name, limit))


def schema_overridden(schema: str, expected: str) -> IsolationError | None:
    """The refusal when dbt's target schema is not the one the generated profile gave."""
    if expected and not is_template(expected) and schema != expected:
        return IsolationError(
            f"refusing to build: dbt's target schema is {schema}, not this build's {expected}; something overrides the generated profile"
        )
    return None


def long_names_refusal(nodes: Sequence[Node], adapter_type: str) -> IsolationError | None:
    """The refusal when the warehouse would cut a name of `nodes` (PostgreSQL at 63 bytes)."""
    limit = IDENTIFIER_LIMITS.get(adapter_type)
    longer = names_too_long(nodes, limit) if limit else []
    if not longer:
        return None
    return IsolationError(
        f"refusing to build: {adapter_type} cuts names at {limit} bytes, and these are longer: "
        f"{', '.join(longer[:5])}{' ...' if len(longer) > 5 else ''}. Shorten the schema or "
        "alias (or dot.short_hash_length)"
    )


def shared_schemas_refusal(nodes: Sequence[Node], schema: str, database: str | None) -> IsolationError | None:
    """The refusal when nodes would write outside the build's own schemas."""
    offenders = writes_outside(nodes, schema, database)
    if not offenders:
        return None
    listing = ", ".join(f"{uid} → {where}" for uid, where in offenders[:10])
    more = f" and {len(offenders) - 10} more" if len(offenders) > 10 else ""
    return IsolationError(
        f"refusing to build: {len(offenders)} node(s) would write outside {schema}: "
        f"{listing}{more}. Fix generate_schema_name/target_schema/+database, "
        "or pass --allow-shared-schemas to build anyway"
    )


def check_nodes(
    writing: Sequence[Node],
    *,
    schema: str,
    database: str | None,
    adapter_type: str,
    expected_schema: str,
    check_isolation: bool,
) -> IsolationError | None:
    """The first refusal the guard gives for the nodes dbt is about to write, if any."""
    # Over-long names are refused even with --allow-shared-schemas: the
    # warehouse would silently cut them, and two builds could then collide.
    return (
        schema_overridden(schema, expected_schema)
        or long_names_refusal(writing, adapter_type)
        or (shared_schemas_refusal(writing, schema, database) if check_isolation else None)
    )
