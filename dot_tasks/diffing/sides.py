"""The two sides of a diff, in the parent: which builds they are, built first when missing, and how to reach them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..records import BuildRecord, DeferredTo
from .options import DiffError, DiffOptions, parse_side
from .planning import DIFFED_TYPES, manifest_nodes, relation_of
from .result import DiffSide

if TYPE_CHECKING:  # builds imports dbt's neighbours and git: the diff loads it only when it runs
    from ..builds import Workspace


@dataclass(frozen=True)
class Side:
    """One side's successful build: the ref it was named by, its commit and context, and its files."""

    ref: str
    commit: str
    context: str
    schema: str | None
    target_dir: Path
    profiles_dir: Path

    def describe(self) -> DiffSide:
        """The side as the result names it."""
        return DiffSide(self.ref, self.commit, self.context, self.schema)


class SideProfile(NamedTuple):
    """The generated profile a side's build reaches its warehouse with."""

    profile: str
    target: str
    output: dict[str, Any]

    @classmethod
    def of(cls, ws: Workspace, side: Side) -> SideProfile:
        """The profile of `side`'s build (written again if missing)."""
        from ..builds import ensure_generated_profile

        profile = ensure_generated_profile(ws, side.commit, side.context)
        return cls(profile.profile_name, profile.target, profile.output)


def _connection(output: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies the database a profile output connects to (schema and threads aside)."""
    from ..profiles import connection_identity  # a DuckDB file by its real path: a symlink is the same file

    return connection_identity(output)


def same_database(base: SideProfile, head: SideProfile) -> bool:
    """Whether both sides' builds are in one database, so one query can join them."""
    return _connection(base.output) == _connection(head.output)


def load_manifest(side: Side) -> dict[str, Any]:
    """The manifest.json of `side`'s build."""
    path = side.target_dir / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DiffError(
            f"the build of {side.context}@{side.ref} has no readable {path} ({exc}): "
            f"rebuild it with `dot-tasks run {side.context}@{side.commit[:12]}`"
        ) from None


def resolve_side(ws: Workspace, spec: str | None, deferred: DeferredTo | None, options: DiffOptions) -> Side:
    """The build `spec` names (None: the `deferred` base), built first if it has no successful build."""
    from .. import builds

    if spec is None:
        assert deferred is not None
        context: str | None
        ref, context = deferred.commit, deferred.context
    else:
        context, ref = parse_side(spec)
    commit = builds.resolve(ws, ref)
    chosen = builds.context_name(ws, commit, context)
    ctx = ws.paths(commit).context(chosen)
    record = BuildRecord.load(ctx)
    if record is None or not record.diffable(ctx.target_dir / "manifest.json"):
        command = f"dot-tasks run {chosen}@{ref}"
        if not options.build:
            why = "has failed" if record is not None and record.status == "failed" else "does not exist"
            raise DiffError(f"the build of {chosen}@{ref} ({commit[:12]}) {why}: run `{command}`, or drop --no-build")
        options.progress(f"diff: no successful build of {chosen}@{ref}: building it as `{command}` would")
        summary: dict[str, Any] = {}
        builds.run_steps(ws, builds.RunOptions(ref=ref, context=chosen), summary, options.progress)
        record = BuildRecord.load(ctx)
    return Side(ref, commit, chosen, record.schema if record else None, ctx.target_dir, ctx.context_dir)


def deferred_to(ws: Workspace, head: Side) -> DeferredTo | None:
    """The base the head build deferred to, as its record names it (None: not deferred)."""
    record = BuildRecord.load(ws.paths(head.commit).context(head.context))
    return record.deferred_to if record else None


def deferred_relations(ws: Workspace, head: Side) -> dict[str, dict[str, Any]]:
    """For a partial (deferred, not cloned) head build: each node it did not build, and the
    relation of its base build that dbt read instead. Empty for a complete build."""
    from ..files import read_json

    record = BuildRecord.load(ws.paths(head.commit).context(head.context))
    base = record.deferred_to if record and record.is_partial else None
    if base is None:
        return {}
    # dbt's own artifacts (run_results.json, manifest.json), not `.dot` records.
    results = read_json(head.target_dir / "run_results.json") or {}
    built = {r.get("unique_id") for r in results.get("results") or []}
    base_target = ws.paths(base.commit).context(base.context).target_dir
    base_nodes = manifest_nodes(read_json(base_target / "manifest.json") or {}, DIFFED_TYPES)
    return {uid: rel for uid, node in base_nodes.items() if uid not in built and (rel := relation_of(node))}
