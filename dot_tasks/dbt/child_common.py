"""What every mode of the dbt child shares: the ops project, JSON-safe values, one-line errors, patches.

Child side only: imported by `child` and its modes, never by the parent.
"""

from __future__ import annotations

import datetime
import decimal
import os
from pathlib import Path
from typing import Any, cast

from .protocol import OpsTarget

#: The shipped dbt project whose macros hold every SQL statement dot-tasks runs.
OPS_PROJECT = Path(__file__).resolve().parent.parent / "dbt_ops"
#: Its name in dbt_project.yml: the package its macros are resolved in.
OPS_PROJECT_NAME = "dot_tasks_ops"


def ops_flags(target: OpsTarget, target_path: str) -> list[str]:
    """dbt's flags that run the ops project against `target`."""
    return [
        "--project-dir",
        str(OPS_PROJECT),
        "--profiles-dir",
        target.profiles_dir,
        "--profile",
        target.profile,
        "--target",
        target.target,
        "--target-path",
        target_path,
        "--log-path",
        target.log_path,
    ]


def json_safe(value: Any) -> Any:
    """A macro's return value as plain JSON: agate tables become lists of row dicts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if hasattr(value, "column_names") and hasattr(value, "rows"):  # agate.Table from run_query
        names = list(value.column_names)
        return [{n: json_safe(v) for n, v in zip(names, row, strict=False)} for row in value.rows]
    if isinstance(value, (list, tuple, set)) or hasattr(value, "__iter__"):
        return [json_safe(v) for v in value]
    return str(value)


def one_line(exc: BaseException) -> str:
    """dbt's multi-line error ("Database Error\\n  relation x does not exist") as one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return ": ".join(lines[:3])[:500] or type(exc).__name__


def why_it_failed(result: Any) -> str:
    """A failed dbtRunner result's error in one line, or a pointer to dbt's own output."""
    return one_line(result.exception) if result.exception else "see dbt's output above"


def patch(owner: Any, name: str, replacement: Any) -> None:
    """Replace `owner.name` (a method of a dbt class) with `replacement`.

    Every patch of dbt's internals goes through here, so they are found in
    one search; each caller says why dbt's own method is not enough.
    """
    setattr(owner, name, replacement)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (a pipe may take it in parts)."""
    while data:
        data = data[os.write(fd, data) :]


def ops_macros(manifest: Any, adapter_type: str) -> Any:
    """The ops project's macros over the adapter's own, as a macro resolver, without a `dbt parse`.

    A build's guard needs the registry macros while dbt is running the
    build. Parsing the ops project is a second full parse (about 1.5 s, most
    of it dbt's and the adapter's 500 macros again); the build's manifest
    already holds those, so only the ops project's files are parsed here.
    The user's own macros are left out, so the registry's SQL is the same
    on every project.
    """
    from types import SimpleNamespace

    from dbt.adapters.factory import get_adapter_package_names
    from dbt.contracts.graph.manifest import MacroManifest
    from dbt.contracts.graph.unparsed import UnparsedMacro
    from dbt.node_types import NodeType
    from dbt.parser.macros import MacroParser

    internal = set(get_adapter_package_names(adapter_type))
    macros = {uid: m for uid, m in manifest.macros.items() if m.package_name in internal}
    # MacroParser reads only the project's name (for unique ids); nothing is added to a manifest.
    parser = MacroParser(cast(Any, SimpleNamespace(project_name=OPS_PROJECT_NAME)), manifest)
    for path in sorted((OPS_PROJECT / "macros").glob("*.sql")):
        relative = str(path.relative_to(OPS_PROJECT))
        unparsed = UnparsedMacro(
            path=relative,
            original_file_path=relative,
            package_name=OPS_PROJECT_NAME,
            raw_code=path.read_text(encoding="utf-8"),
            resource_type=NodeType.Macro,
            language="sql",
        )
        macros.update((macro.unique_id, macro) for macro in parser.parse_unparsed_macros(unparsed))
    return MacroManifest(macros)
