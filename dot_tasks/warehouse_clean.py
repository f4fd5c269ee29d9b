"""`clean --warehouse`: sweeping the builds every machine's registry rows name, from any machine.

It reads the registry (`registry.py`) and drops through the same planned, one-by-one drops as a
local `clean` (`schema_drops.py`); the selection rules are `lifecycle.select`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import WarehouseError
from .lifecycle import remove_local, select
from .listing import BuildRow
from .records import owned_schemas
from .registry import RegisteredBuild, live_base, read, warehouses, who
from .schema_drops import Drop, drop_plan, run_drops
from .workspace import Workspace


def clean_warehouse(
    ws: Workspace, selection: Any, *, dry_run: bool, force: bool, say: Callable[[str], None], progress: Callable[[str], None]
) -> None:
    """Apply `selection` to every build the registries hold, whichever machine made it.

    Only schemas a registry names are dropped, and only those carrying the
    build's own suffix (`records.owned_schemas`); each goes through `dot_clean_build`,
    which keeps what is live, a rollback target, a base, or read by anything.
    The local files of the builds this machine also has go too.
    """
    chosen = _chosen_builds(ws, selection, say, progress)
    if not chosen:
        say("nothing to clean")
        return
    drops = _registry_drops(ws, chosen, selection, dry_run=dry_run, force=force, progress=progress)
    failures, stayed = run_drops(ws, drops, dry_run=dry_run, force=force, say=say, progress=progress)
    dropped = {(d.commit, d.context) for d in drops}
    for build in chosen:
        if (build.commit, build.context) in stayed or (build.commit, build.context) not in dropped:
            continue
        if dry_run:
            say(f"would forget {build.label} ({build.built_by or '?'} on {build.host or '?'})")
            continue
        say(f"forgot {build.label} ({build.built_by or '?'} on {build.host or '?'})")
        if build.local:
            remove_local(ws, build.commit, [build.context], selection, say)
    if failures:
        raise WarehouseError("; ".join(failures))


def _chosen_builds(ws: Workspace, selection: Any, say: Callable[[str], None], progress: Callable[[str], None]) -> list[RegisteredBuild]:
    """The registered builds `selection` picks, less those being built right now."""
    everything = read(ws, selection.context, progress)
    by_key = {(b.commit, b.context): b for b in everything}
    rows = [BuildRow(b.commit, b.short, b.context, b.schema, b.status, b.built_at, 0, 0) for b in everything]
    if selection.unreachable:
        unknown = sorted({r.commit for r in rows if r.commit not in ws.repo})
        if unknown:
            progress(
                f"{len(unknown)} registered commit(s) are not in this clone, so --unreachable cannot tell: "
                "left alone (fetch them, or clean them with --ref)"
            )
        rows = [r for r in rows if r.commit in ws.repo]
    chosen = [by_key[(r.commit, str(r.context))] for r in select(ws, rows, selection, {})]
    for build in [b for b in chosen if b.status == "running"]:
        say(f"kept {build.label}: it is being built right now ({build.built_by or '?'} on {build.host or '?'})")
    return [b for b in chosen if b.status != "running"]


def _registry_drops(
    ws: Workspace, chosen: list[RegisteredBuild], selection: Any, *, dry_run: bool, force: bool, progress: Callable[[str], None]
) -> list[Drop]:
    """A `schema_drops.Drop` for each chosen build whose warehouse this machine reaches."""
    places = {w.name: w for w in warehouses(ws, selection.context, progress)}
    leaving = sorted([b.commit, b.context] for b in chosen)
    cleaned_by = who(ws)
    drops: list[Drop] = []
    for build in chosen:
        place = places.get(build.warehouse)
        schemas = owned_schemas(build.schema, build.schemas, build.short)
        if place is None or not schemas:
            progress(f"{build.label}: its registered schema {build.schema} does not carry its suffix: only its registry row goes")
        plan = drop_plan(
            schemas=schemas,
            short=build.short,
            live_schema=live_base(build.schema, build.short),
            key=build.key,
            leaving=leaving,
            force=force,
            dry_run=dry_run,
            cleaned_by=cleaned_by,
        )
        plan["defers"] = build.deferred_to is not None
        if place is not None:
            drops.append(Drop(build.label, build.commit, build.context, place.target, place.output, plan))
    return drops
