"""The locks every dbt start of ours takes before it opens a warehouse.

A DuckDB file takes one writer, and an embedded Derby metastore (Spark in
session mode) one JVM. Builds, `clean`, `diff` and `promote` all take these
locks, in one order, so that no two of them deadlock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from .layout import locks_dir
from .locks import describe_process, hold, posix_lock_holder, wait_while_locked
from .profiles import duckdb_file, spark_metastore
from .workspace import Workspace


def named_lock(ws: Workspace, kind: str, name: str) -> Path:
    """A lock for something named by a string (a schema, a database file), not by a path of ours."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:16]
    return locks_dir(ws.project_dir) / f"{kind}-{digest}.lock"


@contextmanager
def warehouse_locks(ws: Workspace, outputs: Iterable[Mapping[str, Any]]) -> Iterator[tuple[int, ...]]:
    """Hold what a process needs before it opens these outputs' warehouses; yield the lock fds.

    A DuckDB file takes one writer, and an embedded Derby metastore (Spark in
    session mode) one JVM: a second JVM fails after ~20 s with Derby's
    "Another instance of Derby may have already booted the database". Builds,
    `clean` and every other dbt start of ours take these locks, in one order.
    """
    # lock → (what it guards, a file another program may hold a POSIX lock on, and what that is)
    wanted: dict[Path, tuple[str, Path, str]] = {}
    for output in outputs:
        database = duckdb_file(output)
        if database is not None:
            wanted[named_lock(ws, "duckdb", str(database))] = (
                f"the DuckDB file {database} (one writer at a time)",
                database,
                f"the DuckDB file {database}, open in another process",
            )
        metastore = spark_metastore(output)
        if metastore is not None:
            wanted[named_lock(ws, "metastore", str(metastore))] = (
                f"the Spark metastore {metastore} (embedded Derby: one Spark process at a time)",
                metastore / "dbex.lck",
                f"the Spark metastore {metastore}, open in another Spark process",
            )
    with ExitStack() as stack:
        fds = []
        for lock in sorted(wanted):  # one order, so two holders of several never deadlock
            what, theirs, open_elsewhere = wanted[lock]
            fds.append(stack.enter_context(hold(lock, what, ws.settings.lock_timeout)))
            # Processes that are not ours (the user's own dbt, a notebook, a BI tool,
            # or our last build's JVM still exiting) hold DuckDB's or Derby's own lock:
            # wait here, naming them, rather than let dbt fail after its traceback.
            wait_while_locked(theirs, open_elsewhere, ws.settings.lock_timeout)
        yield tuple(fds)


def held_elsewhere(output: Mapping[str, Any]) -> str | None:
    """'the DuckDB file X is open in another process (pid N: ...)', if one holds it now."""
    database = duckdb_file(output)
    pid = posix_lock_holder(database) if database is not None else None
    return None if pid is None else f"the DuckDB file {database} is open in another process ({describe_process(pid)})"
