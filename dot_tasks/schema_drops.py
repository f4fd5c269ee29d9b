"""Dropping builds' schemas: one `dot_clean_build` per build, all in one dbt start.

The macro decides from the warehouse, not from this machine's notes, whether
a schema may go: live, a rollback target, a base of another machine's build,
or read by a relation dot-tasks did not make. `clean` and `clean --warehouse`
both plan their drops here and report what the macro did.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .layout import dot_dir
from .warehouse_locks import warehouse_locks
from .workspace import Workspace

if TYPE_CHECKING:
    from .dbt.protocol import MacroOutcome, OpsTarget


@dataclass
class Drop:
    """One build's schemas to drop through `dot_clean_build`, which decides from the warehouse first."""

    label: str
    commit: str
    context: str
    target: OpsTarget
    output: dict[str, Any]
    plan: dict[str, Any]


def drop_plan(
    *,
    schemas: list[str],
    short: str,
    live_schema: str | None,
    key: Mapping[str, str],
    leaving: list[list[str]],
    force: bool,
    dry_run: bool,
    cleaned_by: str,
) -> dict[str, Any]:
    """The argument of `dot_clean_build` (see dbt_ops/macros/dot_registry.sql)."""
    from .timestamps import now_text

    return {
        "schemas": schemas,
        "short": short,
        "live_schema": live_schema,
        "row": {**key, "recorded_at": now_text()},
        "leaving": leaving,
        "force": force,
        "dry_run": dry_run,
        "cleaned_by": cleaned_by,
    }


def run_drops(
    ws: Workspace, drops: list[Drop], *, dry_run: bool, force: bool, say: Callable[[str], None], progress: Callable[[str], None]
) -> tuple[list[str], set[tuple[str, str]]]:
    """Run every drop in one dbt start; (failures, the (commit, context) builds whose schemas stay).

    Builds that defer go first, so a base and its dependants cleaned together
    are dropped in an order the warehouse accepts.
    """
    from .dbt.client import call_macros
    from .dbt.protocol import MacroCall

    if not drops:
        return [], set()
    drops = sorted(drops, key=lambda d: not d.plan.get("defers"))
    what = "checking" if dry_run else "dropping"
    progress(f"{what} {sum(len(d.plan['schemas']) for d in drops)} schema(s) of {len(drops)} build(s)")
    # dbt's own scratch files, private to this clean so two cleans cannot collide.
    # One writer per DuckDB file, one Spark process per Derby metastore, as for builds.
    with (
        warehouse_locks(ws, [d.output for d in drops]) as fds,
        tempfile.TemporaryDirectory(prefix="clean-", dir=dot_dir(ws.project_dir)) as scratch,
    ):
        outcomes = call_macros([MacroCall(d.target, "dot_clean_build", {"plan": d.plan}) for d in drops], Path(scratch), lock_fds=fds)
    failures: list[str] = []
    kept: set[tuple[str, str]] = set()
    for drop, outcome in zip(drops, outcomes, strict=False):
        failure, stays = _drop_outcome(drop, outcome, dry_run=dry_run, say=say, progress=progress)
        if failure:
            failures.append(failure)
        if stays:
            kept.add((drop.commit, drop.context))
    return failures, kept


def _drop_outcome(
    drop: Drop, outcome: MacroOutcome, *, dry_run: bool, say: Callable[[str], None], progress: Callable[[str], None]
) -> tuple[str | None, bool]:
    """Say what `dot_clean_build` did (or would do) for one build; (its failure, whether its schemas stay)."""
    schemas = ", ".join(drop.plan["schemas"])
    value = outcome.value if isinstance(outcome.value, dict) else {}
    if outcome.error:
        return f"{drop.label}: could not drop {schemas} ({outcome.error}); its files are kept so the clean can be retried", True
    reasons = [str(r) for r in value.get("reasons") or []]
    if value.get("refusal") == "dependants":
        names = [str(d) for d in value.get("dependants") or []]
        return (
            f"refusing to drop {schemas} of {drop.label}: {len(names)} relation(s) that dot-tasks did not make "
            f"read it: {', '.join(names)}. Drop or repoint them first: dot-tasks never drops what it did not "
            "make, not even with --force"
        ), True
    if value.get("refusal") == "protected":
        say(f"kept {drop.plan['short']} {drop.context}: {'; '.join(reasons)} (--force cleans it anyway)")
        return None, True
    broken = [str(b) for b in value.get("broken") or []]
    if reasons:
        progress(f"{'would clean' if dry_run else 'cleaning'} {drop.label} anyway (--force): {'; '.join(reasons)}")
    for view in broken:
        say(
            f"would break the live view {view}"
            if dry_run
            else f"broke the live view {view} (--force: recorded in {drop.plan['live_schema']}.dot_promotions)"
        )
    for view in value.get("broken_builds") or []:
        say(
            f"would drop the view {view}, which reads it"
            if dry_run
            else f"dropped the view {view} of a build that deferred to it (--force)"
        )
    for schema in value.get("dropped") or []:
        say(f"would drop {schema}" if dry_run else f"dropped {schema}")
    return None, False
