"""The whole diff, in the parent: resolve both sides, plan, compare every node, assemble the result.

On one database the comparisons run on a pool of threads in one dbt child
(`dbt.client.run_macro_jobs`, each job through `driver.compare_node`); across two
databases they run node after node through one session per side (`apart`).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DotError
from .apart import compare_node_apart
from .driver import DRIVER
from .options import DiffError, DiffOptions
from .planning import NodePlan, lineage, plan
from .result import ColumnChanges, DiffResult, KeyProblem, NodeDiff, Relation, RowCounts, ValueDiff
from .sides import Side, SideProfile, deferred_relations, deferred_to, load_manifest, resolve_side, same_database

if TYPE_CHECKING:  # builds imports git and the profile code: loaded only when a diff runs
    from ..builds import Workspace
    from ..dbt.protocol import Listing

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class NodeJob:
    """One node to compare, as the keyword arguments of `compare_node` (sent to the dbt child as JSON)."""

    unique_id: str
    label: str
    base: dict[str, Any] | None
    head: dict[str, Any] | None
    key: list[str] | None
    sample: int
    adapter_type: str
    tolerance: float | None


@dataclass(frozen=True)
class Sides:
    """Both sides of a diff, with the profile each reaches its warehouse with."""

    base: Side
    head: Side
    base_profile: SideProfile
    head_profile: SideProfile

    @property
    def adapter_type(self) -> str:
        """The head's adapter: its rules for names and types apply to the result."""
        return str(self.head_profile.output.get("type", ""))

    @property
    def same_database(self) -> bool:
        """Whether one query can join both sides."""
        return same_database(self.base_profile, self.head_profile)

    @property
    def names(self) -> str:
        """`CTX@REF and CTX@REF`, for progress lines."""
        return f"{self.base.context}@{self.base.ref} and {self.head.context}@{self.head.ref}"


def diff_builds(ws: Workspace, options: DiffOptions) -> DiffResult:
    """Compare two builds; the result is what `dot-tasks diff` reports (`to_json()` for --json)."""
    sides = _resolve_sides(ws, options)
    manifests = load_manifest(sides.base), load_manifest(sides.head)
    plans = plan(*manifests, options.keys, deferred_relations(ws, sides.head))
    jobs = [_job(p, options, sides.adapter_type) for p in plans if not p.ephemeral]
    listing = None
    by_name = _selected_by_name(options.select, options.exclude, plans)
    if by_name is not None:
        plans = [p for p in plans if p.unique_id in by_name]
        jobs = [j for j in jobs if j.unique_id in by_name]
    elif options.select or options.exclude:
        listing = _listing(ws, sides, options)
    started = time.monotonic()
    if not sides.same_database:
        if listing is not None:
            raise _selection_apart(options)
        options.progress(f"diff: {sides.names} are in different databases: comparing checksums of key ranges on each side")
        compared, errors = _compare_apart(ws, jobs, sides, options)
    else:
        compared, errors, selected = _compare_in_one_database(ws, jobs, sides, listing, options)
        if selected is not None:
            plans = _keep_selected(plans, selected, options)
    nodes = tuple(_node_diff(p, compared.get(p.unique_id) or {}, errors.get(p.unique_id)) for p in plans)
    return DiffResult(
        base=sides.base.describe(),
        head=sides.head.describe(),
        errors=len(errors),
        same_database=sides.same_database,
        adapter_type=sides.adapter_type,
        seconds=round(time.monotonic() - started, 3),
        nodes=nodes,
        lineage=lineage(*manifests, plans),
    )


def _resolve_sides(ws: Workspace, options: DiffOptions) -> Sides:
    """Head first: with no BASE, the head build's `deferred_to` names it."""
    head = resolve_side(ws, options.head, None, options)
    deferred = None
    if options.base is None:
        deferred = deferred_to(ws, head)
        if not deferred:
            raise DiffError(
                f"no BASE given and the build of {head.context}@{head.ref} is not deferred: "
                "name the base, e.g. `dot-tasks diff prod@main dev@HEAD`"
            )
    base = resolve_side(ws, options.base, deferred, options)
    return Sides(base, head, SideProfile.of(ws, base), SideProfile.of(ws, head))


def _job(p: NodePlan, options: DiffOptions, adapter_type: str) -> NodeJob:
    return NodeJob(
        unique_id=p.unique_id,
        label=f"{p.resource_type} {p.name}",
        base=p.base,
        head=p.head,
        key=p.key,
        sample=max(0, int(options.sample)),
        adapter_type=adapter_type,
        tolerance=options.float_tolerance or None,
    )


# --- the selection --------------------------------------------------------------------------


def _selected_by_name(select: list[str], exclude: list[str], plans: list[NodePlan]) -> set[str] | None:
    """The unique ids a selection of plain node names picks, or None when dbt must evaluate it.

    `--select orders customers` means those nodes to dbt too; answering it here
    spares the child a parse of the head project. Anything else (graph
    operators, methods, paths, a name that is not a node) goes to `dbt ls`.
    """
    if not select or exclude or not all(_PLAIN_NAME.match(word) for word in select):
        return None
    chosen = {p.unique_id for p in plans if p.name in select and p.code != "removed"}
    named = {p.name for p in plans if p.unique_id in chosen}
    return chosen if named == set(select) else None


def _listing(ws: Workspace, sides: Sides, options: DiffOptions) -> Listing:
    """A `dbt ls` of the selection over the head build, with the base build as its state."""
    from ..dbt.protocol import Listing

    return Listing(
        project_dir=str(ws.paths(sides.head.commit).worktree_project_dir),
        profiles_dir=str(sides.head.profiles_dir),
        target=sides.head_profile.target,
        select=list(options.select),
        exclude=list(options.exclude),
        state=str(sides.base.target_dir),
        parsed_in=str(sides.head.target_dir),
    )


def _keep_selected(plans: list[NodePlan], selected: list[str], options: DiffOptions) -> list[NodePlan]:
    """The plans `dbt ls` selected; `state:` selections keep what the head removed, too."""
    chosen = set(selected)
    uses_state = any("state:" in s for s in options.select)
    kept = [p for p in plans if p.unique_id in chosen or (uses_state and p.code == "removed")]
    if not kept:
        raise _nothing_selected(options)
    return kept


def _nothing_selected(options: DiffOptions) -> DiffError:
    words = ([f"--select {' '.join(options.select)}"] if options.select else []) + (
        [f"--exclude {' '.join(options.exclude)}"] if options.exclude else []
    )
    return DiffError(
        f"{' '.join(words)} matches no model, seed or snapshot of either build: "
        "check the names (`dot-tasks diff` without --select lists every node)"
    )


def _selection_apart(options: DiffOptions) -> DiffError:
    """Why a selection that needs `dbt ls` cannot be made across two databases."""
    if all(_PLAIN_NAME.match(word) for word in options.select) and not options.exclude:
        return _nothing_selected(options)
    return DiffError(
        "--select with graph operators or methods is not supported across two databases yet: "
        "name the models, e.g. --select orders customers"
    )


# --- comparing --------------------------------------------------------------------------------


def _compare_in_one_database(
    ws: Workspace, jobs: list[NodeJob], sides: Sides, listing: Listing | None, options: DiffOptions
) -> tuple[dict[str, Any], dict[str, str], list[str] | None]:
    """Every job in one dbt child, on the head's threads; and what its listing selected."""
    from .. import builds
    from ..dbt.client import run_macro_jobs
    from ..dbt.protocol import MacroJobs, OpsTarget
    from ..layout import dot_dir, locks_dir
    from ..locks import hold

    head, profile = sides.head, sides.head_profile
    threads = int(profile.output.get("threads") or 1)
    options.progress(f"diff: comparing {len(jobs)} node(s) of {sides.names} on {threads} thread(s)")
    with ExitStack() as stack:
        fds: tuple[int, ...] = stack.enter_context(builds.warehouse_locks(ws, [profile.output]))
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diff-", dir=dot_dir(ws.project_dir))))
        # The ops project's parse is kept per head context, so a second diff parses partially;
        # its lock keeps two diffs from writing that parse at once.
        ops_target = ws.paths(head.commit).context(head.context).diff_ops_target
        lock = locks_dir(ws.project_dir) / f"{head.commit}.{head.context}.diff.lock"
        fds += (stack.enter_context(hold(lock, "another diff of this build", ws.settings.lock_timeout)),)
        request = MacroJobs(
            target=OpsTarget(str(head.profiles_dir), profile.profile, profile.target, str(scratch)),
            driver=DRIVER,
            jobs=[asdict(j) for j in jobs],
            threads=threads,
            listing=listing,
            ops_target_path=str(ops_target),
        )
        outcome = run_macro_jobs(request, scratch, lock_fds=fds)
    if outcome.error:
        raise DiffError(f"the comparison failed: {outcome.error}")
    compared, errors = {}, {}
    for job, result in zip(jobs, outcome.results, strict=False):
        if result is None:
            continue
        if result.error:
            errors[job.unique_id] = result.error
        else:
            compared[job.unique_id] = result.value
    return compared, errors, outcome.selected


def _compare_apart(ws: Workspace, jobs: list[NodeJob], sides: Sides, options: DiffOptions) -> tuple[dict[str, Any], dict[str, str]]:
    """Every job through two sessions, one per database, node after node."""
    from .. import builds
    from ..dbt.client import MacroSession
    from ..dbt.protocol import OpsTarget
    from ..layout import dot_dir

    compared: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diff-", dir=dot_dir(ws.project_dir))))
        sessions = []
        for name, side, profile in (("base", sides.base, sides.base_profile), ("head", sides.head, sides.head_profile)):
            fds = stack.enter_context(builds.warehouse_locks(ws, [profile.output]))
            target = OpsTarget(str(side.profiles_dir), profile.profile, profile.target, str(scratch / name))
            sessions.append(stack.enter_context(MacroSession(target, scratch / name, lock_fds=fds)))
        # Two engines hash alike only through the portable (md5) hash.
        portable = str(sides.base_profile.output.get("type")) != str(sides.head_profile.output.get("type"))
        for job in jobs:
            job_started = time.monotonic()
            try:
                compared[job.unique_id] = compare_node_apart(sessions[0], sessions[1], **asdict(job), portable=portable)
            except DotError as exc:
                errors[job.unique_id] = str(exc)
            options.progress(f"compared {job.label} ({time.monotonic() - job_started:.1f}s)")
    return compared, errors


# --- the result ---------------------------------------------------------------------------------


def _node_diff(p: NodePlan, result: Mapping[str, Any], error: str | None) -> NodeDiff:
    """One planned node and what comparing it found (`result` is empty when it was not compared)."""
    skipped = result.get("values_skipped")
    if p.ephemeral:
        skipped, error = "ephemeral", None
    elif error is not None:
        skipped = f"error: {error}"
    problems = result.get("key_problems")
    return NodeDiff(
        name=p.name,
        unique_id=p.unique_id,
        resource_type=p.resource_type,
        code=p.code,
        impacted=p.impacted,
        columns=ColumnChanges.from_dict(result.get("columns")),
        rows=RowCounts.from_dict(result.get("rows")),
        values=ValueDiff.from_dict(result.get("values")),
        values_skipped=skipped,
        key_source=p.key_source if result.get("values") else None,
        base_relation=Relation.from_dict(p.base),
        head_relation=Relation.from_dict(p.head),
        key_problems=None if problems is None else {side: KeyProblem(**kp) for side, kp in problems.items()},
        error=error,
    )
