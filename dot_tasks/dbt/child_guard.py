"""The isolation guard inside the dbt child, and the build's 'running' row it writes once it has passed.

dbt is imported here, in the child only. The guard runs at the moment dbt
has parsed the project and chosen its nodes but before it creates a schema
or runs a hook, so it checks exactly what dbt is about to build; the rules
themselves are the pure ones of `guard`.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..errors import DotError, IsolationError
from .child_common import OPS_PROJECT_NAME, one_line, patch
from .guard import WRITING_NODES, check_nodes
from .protocol import DbtOutcome, DbtRequest, RegistryEvent


@dataclass
class PendingStart:
    """The build's registry rows: the 'running' one the guard writes once it has passed, and how to write the end.

    `macros` (the ops project's macros, see `child_common.ops_macros`) and
    `adapter` are set by the guard when it writes the start, so the end is
    written through the same adapter with no second dbt start or parse.
    """

    event: RegistryEvent
    row: dict[str, Any]
    macros: Any = None
    adapter: Any = None


def registry_unwritable(schema: str, error: str) -> None:
    """Warn, once, that this build goes unregistered."""
    print(
        f"dot-tasks: warning: the build registry {schema}.dot_builds could not be written "
        f"({error}); building anyway, but `list --warehouse` and `clean --warehouse` will not see this build",
        file=sys.stderr,
        flush=True,
    )


def prepare_start(event: RegistryEvent | None) -> PendingStart | None:
    """The 'running' row the guard will write; None when the build is not registered."""
    if event is None:
        return None
    return PendingStart(event=event, row=dict(event.row, status="running"))


def _refusal_types() -> tuple[type[Exception], type[Exception]]:
    """dbt exceptions that carry the guard's refusal, and a registry collision, out of dbt's run."""
    from dbt.exceptions import DbtRuntimeError

    class GuardRefusal(DbtRuntimeError):
        # A dbt exception, so dbt reports it in one line rather than a stack
        # trace; our own message follows from the parent.
        def __init__(self, refusal: DotError) -> None:
            super().__init__("dot-tasks refused to build (see below); nothing was written")
            self.refusal = refusal

    class RegistryCollision(DbtRuntimeError):
        def __init__(self) -> None:
            super().__init__("dot-tasks stopped the build (see below); nothing was written")
            self.collision = True

    return GuardRefusal, RegistryCollision


def _stores_failures(node: Any) -> bool:
    """Whether a test node creates a relation of its failures (so it writes, and is guarded)."""
    from dbt.flags import get_flags

    if node.config.get("store_failures_as") in ("table", "view"):
        return True
    flag = getattr(get_flags(), "STORE_FAILURES", False)
    return bool(node.config.store_failures if node.config.store_failures is not None else flag)


def _writing_nodes(task: Any, selected_uids: Any) -> list[dict[str, Any]]:
    """The selected nodes that create a relation, as the pure guard reads them."""
    nodes = [task.manifest.nodes[uid] for uid in sorted(selected_uids) if uid in task.manifest.nodes]
    return [
        {"unique_id": n.unique_id, "schema": n.schema, "database": n.database, "identifier": n.alias or n.name}
        for n in nodes
        if n.resource_type in WRITING_NODES and n.config.materialized != "ephemeral" and (n.resource_type != "test" or _stores_failures(n))
    ]


def install_guard(request: DbtRequest, report: DbtOutcome, pending: PendingStart | None) -> None:
    """Check the selected nodes just before dbt creates schemas or runs hooks; then write `pending`.

    `execute_with_hooks` receives the nodes dbt selected, after parsing and
    before `before_run` creates schemas, so refusing here writes nothing and
    costs no second parse. dbt-core is pinned below 1.12, where this holds.
    """
    from dbt.task.runnable import GraphRunnableTask

    guard_refusal, registry_collision = _refusal_types()
    original = GraphRunnableTask.execute_with_hooks

    def guarded(task: Any, selected_uids: Any) -> Any:
        nonlocal pending
        credentials = task.config.credentials
        schema = str(credentials.schema)
        database = str(credentials.database) if getattr(credentials, "database", None) else None
        report.schema = schema
        writing = _writing_nodes(task, selected_uids)
        # A union: the clone step's nodes add to the build's.
        report.schemas = sorted({str(n["schema"]) for n in writing} | {schema} | set(report.schemas))
        refused = check_nodes(
            writing,
            schema=schema,
            database=database,
            adapter_type=credentials.type,
            expected_schema=request.expected_schema,
            check_isolation=request.check_isolation,
        )
        if refused is not None:
            raise guard_refusal(refused) from None
        if pending is not None and not report.registered:
            start, pending = pending, None  # written once, even when `then_command` runs the guard again
            live = _check_live_and_record_start(task, report, start, credentials.type)
            if live is not None:
                raise guard_refusal(live)
            if report.registry_collision:
                raise registry_collision()
        return original(task, selected_uids)

    # dbt offers no hook between selecting nodes and writing them: the method
    # that runs the selected nodes is wrapped, on the class, for this process.
    patch(GraphRunnableTask, "execute_with_hooks", guarded)


def _check_live_and_record_start(task: Any, report: DbtOutcome, start: PendingStart, adapter_type: str) -> DotError | None:
    """Refuse a commit the warehouse says is live, else write the build's 'running' row: one connection for both.

    On Spark each statement is a round trip to the metastore, and each
    connection a Thrift session: the two share one.
    """
    from dbt.adapters.factory import get_adapter

    from .child_common import ops_macros

    try:
        start.macros = ops_macros(task.manifest, adapter_type)
    except Exception as error:  # noqa: BLE001 - the registry is best effort, the build is not
        registry_unwritable(start.event.schema, one_line(error))
        return None
    start.adapter = get_adapter(task.config)
    with start.adapter.connection_named("dot_registry"):
        live = _live_in_the_warehouse(start)
        if live is None:
            _record_start(report, start)
    return live


def _live_in_the_warehouse(start: PendingStart) -> DotError | None:
    """A refusal when the warehouse says this commit is live for the context.

    The parent checked this machine's notes; another machine may have
    promoted the commit since, and rebuilding it would replace the tables its
    live views read. A history that cannot be read refuses nothing: the
    build's own schema is all that dbt is about to write.
    """
    if not start.event.live_refusal:
        return None
    try:
        latest = start.adapter.execute_macro(
            "dot_reg_promotion",
            macro_resolver=start.macros,
            project=OPS_PROJECT_NAME,
            kwargs={"live_schema": start.event.live_schema},
        )
    except Exception:  # noqa: BLE001 - see the docstring
        start.adapter.connections.rollback_if_open()  # the start is written on this connection next
        return None
    if isinstance(latest, dict) and latest.get("commit") == start.row["commit_sha"]:
        return IsolationError(start.event.live_refusal)
    return None


#: Attempts at one registry write where tables are files with no transactions (Spark). Two
#: builds inserting at once share the table's `_temporary/0`, and the first to commit removes
#: it from under the other (`FileNotFoundException: .../dot_builds/_temporary/0`): seen with
#: two commits built at once on a loaded machine. The loser writes again after a short pause.
FILE_TABLE_ATTEMPTS = 4


def _write_registry(start: PendingStart, row: dict[str, Any], ensure: bool = True) -> Any:
    """`dot_registry_record` of `row`, written again after a failure where that is what it takes (see above)."""
    from ..adapters import rules_for

    attempts = 1 if rules_for(str(start.adapter.type())).transactional_ddl else FILE_TABLE_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return start.adapter.execute_macro(
                "dot_registry_record",
                macro_resolver=start.macros,
                project=OPS_PROJECT_NAME,
                kwargs={"registry_schema": start.event.schema, "row": row, "ensure": ensure},
            )
        except Exception:
            if attempt == attempts:
                raise
            start.adapter.connections.rollback_if_open()
            time.sleep(random.uniform(0.2, 0.6) * attempt)
    return None  # pragma: no cover - the loop returns or raises


def _record_start(report: DbtOutcome, start: PendingStart) -> None:
    """Write the build's 'running' event on dbt's own adapter, once the guard has passed.

    Written here, not before dbt starts, so that a build the guard refuses
    creates nothing, not even the registry schema or the DuckDB file; and
    before `before_run` creates the build's schemas, so that a clean on
    another machine sees this build running before it has written a thing.
    The macro is the ops project's `dot_registry_record` (see
    `child_common.ops_macros`), so there is one registry SQL for every path.
    """
    try:
        value = _write_registry(start, start.row)
    except Exception as error:  # noqa: BLE001 - the registry is best effort, the build is not
        registry_unwritable(start.event.schema, one_line(error))
        return
    if isinstance(value, dict) and value.get("collision"):
        report.registry_collision = dict(value["collision"])
        return
    report.registered = True


def record_end(start: PendingStart, row: dict[str, Any]) -> str | None:
    """Append the build's end event through the adapter the start was written with; None, or the error.

    dbt has returned, and closed its connections; the adapter opens one
    more. The registry's table is there (the start made it), so it is not
    created again.
    """
    try:
        with start.adapter.connection_named("dot_registry_end"):
            _write_registry(start, row, ensure=False)
    except Exception as error:  # noqa: BLE001 - the registry is best effort, the build is not
        return one_line(error)
    return None
