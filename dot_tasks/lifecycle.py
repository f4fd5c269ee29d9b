"""`clean`: removing isolated builds, their worktree registrations and their schemas.

What to clean is chosen from `list`'s rows (`listing`); which schemas may go
is decided in the warehouse (`schema_drops`). Records say what happened in the
past (when, which schemas); paths are always derived again. `list_builds` and
`format_table` are imported from here too, as the `list` command does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from . import gitrepo
from .errors import DeferralError, DotError, LockTimeout, WarehouseError
from .files import read_json, remove_tree
from .layout import ops_logs_dir
from .listing import BuildRow, base_label, contexts_of, dependants, format_table, human_age, list_builds
from .locks import hold
from .profile_step import ensure_generated_profile, project_config_at
from .records import BuildRecord, CommitRecord, protected_commits
from .schema_drops import Drop, drop_plan, run_drops
from .workspace import Workspace

__all__ = [
    "BuildRow",
    "Drop",
    "Selection",
    "base_label",
    "check_selection",
    "clean",
    "dependants",
    "drop_plan",
    "format_table",
    "human_age",
    "list_builds",
    "parse_age",
    "parse_count",
    "remove_local",
    "run_drops",
    "select",
]

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """Seconds in an age such as `90m`, `36h`, `7d` or `2w`."""
    match = _AGE.fullmatch(text.strip())
    if not match:
        raise DotError(f"--older-than {text!r} is not an age: write a number and a unit, e.g. 12h, 7d, 2w")
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def parse_count(text: str | int) -> int:
    """A `--keep` count: a whole number, zero or more."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise DotError(f"--keep {text!r} is not a count: give how many builds to keep, e.g. --keep 3")
    return count


@dataclass(frozen=True)
class Selection:
    """Which builds `clean` removes: every criterion given must hold."""

    commit: str | None = None
    context: str | None = None
    everything: bool = False
    keep: int | None = None
    older_than: float | None = None
    unreachable: bool = False

    def chooses_anything(self) -> bool:
        """Some criterion was given: `clean` never cleans everything unasked."""
        return bool(self.commit or self.everything or self.keep is not None or self.older_than is not None or self.unreachable)


def check_selection(selection: Selection) -> None:
    """Refuse a clean that names nothing to clean."""
    if not selection.chooses_anything():
        raise DotError("say what to clean: --ref REF, --all, --keep N, --older-than AGE or --unreachable")


def select(ws: Workspace, rows: list[BuildRow], selection: Selection, protected: Mapping[str, str] | None = None) -> list[BuildRow]:
    """The rows `selection` picks: every given criterion must hold.

    `protected` builds (live, or a rollback target) count among the `--keep N`
    kept, ahead of newer ones.
    """
    protected = protected or {}
    check_selection(selection)
    chosen = [r for r in rows if selection.commit is None or r.commit == selection.commit]
    if selection.context is not None:
        chosen = [r for r in chosen if r.context == selection.context]
    if selection.older_than is not None:
        cutoff = time.time() - selection.older_than
        chosen = [r for r in chosen if r.built_at < cutoff]
    if selection.unreachable:
        reachable = gitrepo.reachable_from_refs(ws.repo, sorted({r.commit for r in chosen}))
        chosen = [r for r in chosen if r.commit not in reachable]
    if selection.keep is not None:
        newest_first = sorted(rows, key=lambda r: (r.commit in protected, r.built_at), reverse=True)
        kept: set[tuple[str, str | None]] = set()
        per_context: dict[str | None, int] = {}
        for row in newest_first:
            if per_context.get(row.context, 0) < selection.keep:
                kept.add((row.commit, row.context))
                per_context[row.context] = per_context.get(row.context, 0) + 1
        chosen = [r for r in chosen if (r.commit, r.context) not in kept]
    return chosen


def _manifest_schemas(ctx_target: Path) -> list[str]:
    manifest = read_json(ctx_target / "manifest.json") or {}
    return sorted(
        {
            str(node.get("schema"))
            for node in (manifest.get("nodes") or {}).values()
            if isinstance(node, dict) and node.get("schema") and node.get("resource_type") in ("model", "seed", "snapshot")
        }
    )


def clean(
    ws: Workspace,
    selection: Selection,
    *,
    dry_run: bool,
    drop_schemas: bool,
    say: Callable[[str], None],
    progress: Callable[[str], None],
    force: bool = False,
) -> None:
    """Remove the selected builds; report what went, raise if anything had to stay.

    Whether a schema may go is decided in the warehouse, by the dbt child that
    drops it (`run_drops`): a build live or a rollback target for its context,
    a base that another machine's build defers to, a schema another relation
    reads. This machine's note of what is live only orders `--keep`, and keeps
    the files of a live build when the schemas are left alone.
    """
    everything = list_builds(ws)
    rows, broken = _rows_to_clean(ws, everything, selection, force=force, drop_schemas=drop_schemas, say=say, progress=progress)
    if not rows:
        say("nothing to clean")
        return
    by_commit: dict[str, list[BuildRow]] = {}
    for row in rows:
        by_commit.setdefault(row.commit, []).append(row)
    plans = _schemas_to_drop(ws, everything, rows, drop_schemas, progress)
    failures: list[str] = []
    with ExitStack() as stack:
        keep_files = set() if dry_run else _hold_builds(stack, ws, by_commit)  # builds running now
        failures += [
            f"{c[:12]} is in use right now (being built, or read by a deferred build): rerun the clean when it is done"
            for c in sorted(keep_files)
        ]
        drops = _local_drops(ws, plans, keep_files, failures, force=force, dry_run=dry_run)
        drop_failures, stayed = run_drops(ws, drops, dry_run=dry_run, force=force, say=say, progress=progress)
        failures += drop_failures
        keep_files |= {commit for commit, _context in stayed}
        if dry_run:
            _say_what_would_go(ws, plans, by_commit, keep_files, broken, selection, say)
            if failures:
                raise WarehouseError("; ".join(failures))
            return
        for commit, commit_rows in by_commit.items():
            if commit not in keep_files:
                remove_local(ws, commit, [r.context for r in commit_rows], selection, say)
    for base, users in broken:
        if base.commit in keep_files:
            continue
        for user in users:
            say(
                f"now broken: {user.label} deferred to {base.label}, which is gone "
                f"(rebuild it with `dot-tasks run {base.context}@{base.commit[:12]}`, or clean {user.label})"
            )
    if failures:
        raise WarehouseError("; ".join(failures))


def _rows_to_clean(
    ws: Workspace,
    everything: list[BuildRow],
    selection: Selection,
    *,
    force: bool,
    drop_schemas: bool,
    say: Callable[[str], None],
    progress: Callable[[str], None],
) -> tuple[list[BuildRow], list[tuple[BuildRow, list[BuildRow]]]]:
    """The rows `selection` picks, less the live builds and bases kept; and what --force breaks."""
    protected = protected_commits(ws.project_dir)
    rows = select(ws, everything, selection, protected)
    if not force and not drop_schemas:
        for row in [r for r in rows if r.commit in protected]:
            say(f"kept {row.short} {row.context or '(worktree only)'}: {protected[row.commit]} (--force cleans it anyway)")
        rows = [r for r in rows if r.commit not in protected]
    return _spare_bases(everything, rows, selection, force, progress)


def _owned_schemas_of(ws: Workspace, row: BuildRow) -> list[str]:
    """The schemas of a local build that `clean` may drop: from its record and its manifest."""
    if row.context is None:
        return []
    ctx = ws.paths(row.commit).context(row.context)
    record = BuildRecord.load(ctx)
    return record.owned_schemas(row.short, _manifest_schemas(ctx.target_dir)) if record else []


def _schemas_to_drop(
    ws: Workspace, everything: list[BuildRow], rows: list[BuildRow], drop_schemas: bool, progress: Callable[[str], None]
) -> list[tuple[BuildRow, list[str]]]:
    """Each row to clean, with the schemas it may drop (none when the schemas are kept)."""
    # Contexts mapped to one target share a schema: one that stays keeps it.
    leaving = {(r.commit, r.context) for r in rows}
    still_used = {s for r in everything if (r.commit, r.context) not in leaving for s in _owned_schemas_of(ws, r)}
    plans: list[tuple[BuildRow, list[str]]] = []
    for row in rows:
        owned = _owned_schemas_of(ws, row) if drop_schemas else []
        kept = [s for s in owned if s in still_used]
        if kept:
            progress(f"keeping {', '.join(kept)}: another context of {row.short} still builds into it")
        plans.append((row, [s for s in owned if s not in still_used]))
    return plans


def _local_drops(
    ws: Workspace,
    plans: list[tuple[BuildRow, list[str]]],
    keep_files: set[str],
    failures: list[str],
    *,
    force: bool,
    dry_run: bool,
) -> list[Drop]:
    """A `Drop` for each build with schemas to drop; one whose warehouse is out of reach keeps its files."""
    from .dbt.protocol import OpsTarget
    from .registry import live_base, who

    leaving = sorted({(r.commit, r.context) for r, _schemas in plans})
    cleaned_by = who(ws)
    drops: list[Drop] = []
    for row, schemas in plans:
        if row.commit in keep_files or not schemas or row.context is None:
            continue
        ctx = ws.paths(row.commit).context(row.context)
        try:
            profile = ensure_generated_profile(ws, row.commit, row.context)
            project = project_config_at(ws, row.commit).name
        except DotError as exc:
            failures.append(f"{row.short} {row.context}: cannot reach its warehouse ({exc})")
            keep_files.add(row.commit)
            continue
        plan = drop_plan(
            schemas=schemas,
            short=row.short,
            live_schema=live_base(row.schema or schemas[0], row.short),
            key={"project": project, "commit_sha": row.commit, "context": row.context},
            leaving=[[c, x] for c, x in leaving if x],
            force=force,
            dry_run=dry_run,
            cleaned_by=cleaned_by,
        )
        plan["defers"] = row.base is not None
        target = OpsTarget(str(ctx.context_dir), profile.profile_name, profile.target, str(ops_logs_dir(ws.project_dir)))
        drops.append(Drop(row.label, row.commit, row.context, target, profile.output, plan))
    return drops


def _say_what_would_go(
    ws: Workspace,
    plans: list[tuple[BuildRow, list[str]]],
    by_commit: dict[str, list[BuildRow]],
    keep_files: set[str],
    broken: list[tuple[BuildRow, list[BuildRow]]],
    selection: Selection,
    say: Callable[[str], None],
) -> None:
    """--dry-run: the builds, worktrees and dependants a clean would remove or break."""
    for row, _schemas in plans:
        if row.commit not in keep_files:
            say(f"would clean {row.short} {row.context or '(worktree only)'}")
    for commit in by_commit:
        if commit not in keep_files and _whole_commit_goes(ws, commit, by_commit[commit], selection):
            say(f"would remove worktree and files of {commit[:12]}")
    for base, users in broken:
        say(f"would break {', '.join(u.label for u in users)}: deferred to {base.label}")


def remove_local(ws: Workspace, commit: str, contexts: list[str | None], selection: Selection, say: Callable[[str], None]) -> None:
    """Remove this machine's files of `contexts` of `commit`, and its worktree once no context is left."""
    paths = ws.paths(commit)
    short = CommitRecord.short_of(paths) or commit[: ws.settings.short_hash_length]
    for context in contexts:
        if context is not None and paths.context(context).context_dir.exists():
            remove_tree(paths.context(context).context_dir)
            say(f"removed {short} {context}")
    if _whole_commit_goes(ws, commit, [], selection):
        gitrepo.remove_worktree(ws.repo, paths)
        remove_tree(paths.build_dir)
        say(f"removed worktree {commit[:12]}")


def _spare_bases(
    everything: list[BuildRow],
    rows: list[BuildRow],
    selection: Selection,
    force: bool,
    progress: Callable[[str], None],
) -> tuple[list[BuildRow], list[tuple[BuildRow, list[BuildRow]]]]:
    """Keep the builds that a remaining build defers to; return what goes and what --force breaks.

    A deferred build reads its unchanged parents from the base's schema (and a
    cloned one holds views onto it), so dropping the base breaks it. A clean
    that names the base (`--ref`) is refused outright; a sweep (`--keep`,
    `--older-than`, `--all`, ...) keeps such bases and cleans the rest.
    """

    def needed_by_the_rest(going: list[BuildRow]) -> list[tuple[BuildRow, list[BuildRow]]]:
        leaving = {(r.commit, r.context) for r in going}
        remaining = [r for r in everything if (r.commit, r.context) not in leaving]
        return [(row, users) for row in going if row.context and (users := dependants(remaining, row))]

    needed = needed_by_the_rest(rows)
    if not needed or force:
        return rows, needed

    def why(row: BuildRow, users: list[BuildRow]) -> str:
        verbs = ", ".join(f"{u.label} {'clones from' if u.cloned else 'defers to'} it" for u in users)
        return f"{row.label} ({verbs})"

    if selection.commit is not None:
        raise DeferralError(
            "refusing to clean " + "; ".join(why(r, u) for r, u in needed) + ": clean the dependants first, or pass --force to break them"
        )
    # A kept build keeps its own base in turn (a chain of deferrals), until nothing changes.
    going = rows
    while needed:
        for row, users in needed:
            progress(f"keeping {why(row, users)}; --force drops it anyway")
        spared = {(r.commit, r.context) for r, _ in needed}
        going = [r for r in going if (r.commit, r.context) not in spared]
        needed = needed_by_the_rest(going)
    return going, []


def _whole_commit_goes(ws: Workspace, commit: str, rows: list[BuildRow], selection: Selection) -> bool:
    """A commit's worktree goes when none of its contexts is left and no context was singled out."""
    if selection.context is not None:
        return False
    remaining = set(contexts_of(ws.paths(commit))) - {r.context for r in rows}
    return not remaining


def _hold_builds(stack: ExitStack, ws: Workspace, by_commit: dict[str, list[BuildRow]]) -> set[str]:
    """Take the commit and context locks of the builds to clean; return the commits in use.

    A build that is running right now is skipped, not waited for: a clean
    should never stall behind a long dbt run.
    """
    busy: set[str] = set()
    for commit, rows in by_commit.items():
        paths = ws.paths(commit)
        locks = [paths.commit_lock()] + [paths.context_lock(c) for c in sorted({r.context for r in rows if r.context})]
        for lock in locks:
            try:
                stack.enter_context(hold(lock, f"build {commit[:12]}", timeout=0))
            except LockTimeout:
                busy.add(commit)
                break
    return busy
