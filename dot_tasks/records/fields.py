"""What every record's loader shares: the version check, and lenient readers of JSON values."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DotError


def check_version(data: Mapping[str, Any], path: Path | None, known: int) -> int:
    """The record's `schema_version` (0 when it has none), refused when newer than `known`."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version > known:
        raise DotError(
            f"{path or 'a record'} was written by a newer dot-tasks (schema_version {version}, this one reads up to "
            f"{known}): upgrade dot-tasks, or remove the file and rebuild"
        )
    return version


def strings(value: Any) -> tuple[str, ...]:
    """A JSON list of strings as a tuple; () for anything else."""
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def optional_str(value: Any) -> str | None:
    """A JSON value as text, None staying None."""
    return None if value is None else str(value)
