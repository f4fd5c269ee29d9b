"""The gate: whether a build may go live, judged from its record and manifest (pure).

The rules themselves are the record's (`BuildRecord.promotion_problems`,
`BuildRecord.partial_problem`), written once; this module adds what only
deploy says: that there is no build to judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..records import BuildRecord


def gate_problems(
    record: BuildRecord | None,
    manifest: Mapping[str, Any] | None,
    commit: str,
    context: str,
    fail_on_warn: bool = False,
) -> list[str]:
    """Why a build may not go live, by the gate (see `BuildRecord.promotion_problems`); empty when it may."""
    if record is None:
        return [f"there is no build of {context} at {commit[:12]} on this machine"]
    return record.promotion_problems(manifest, commit, context, fail_on_warn)
