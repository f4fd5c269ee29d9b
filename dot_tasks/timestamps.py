"""Times as the registry and the records keep them: fixed-width ISO text in UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def now_text() -> str:
    """A UTC time as fixed-width ISO text: it sorts as time does, on every engine."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: Any) -> float | None:
    """Seconds since the epoch of a registry time (ISO text, UTC when no zone), or None if it is not one."""
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
