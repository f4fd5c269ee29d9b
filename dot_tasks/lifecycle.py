"""Listing and cleaning isolated builds: files, worktree registrations and schemas.

A build is found from what is on disk (build directories and git's worktree
registrations), never from a list we keep. Records say what happened in the
past (when, which schemas); paths are always derived again.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import gitrepo
from .builds import Workspace, built_commits, generated_profile, warehouse_locks
from .errors import DeferralError, DotError, LockTimeout, WarehouseError
from .files import read_json, remove_tree, tree_size
from .layout import COMMIT_DIR_NAME, BuildPaths, builds_root, dot_dir, ops_logs_dir
from .locks import hold, is_held
from .naming import RESERVED_CONTEXTS

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


@dataclass
class BuildRow:
    """One (commit, context) build, or one commit with no context built yet."""

    commit: str
    short: str
    context: str | None
    schema: str | None
    status: str
    #: Unix time of the last build (or of the directory, when never built).
    built_at: float
    #: The context's own files; the worktree, shared by a commit's contexts, is counted apart.
    size_bytes: int
    worktree_bytes: int
    refs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: The build this one deferred to ({commit, context, schema}), or None for a full build.
    deferred_to: dict[str, str] | None = None
    partial: bool = False
    cloned: bool = False

    @property
    def base(self) -> tuple[str, str] | None:
        """(commit, context) of the build this one reads from, if it deferred."""
        base = self.deferred_to
        if isinstance(base, dict) and base.get("commit") and base.get("context"):
            return str(base["commit"]), str(base["context"])
        return None

    @property
    def label(self) -> str:
        return f"{self.context}@{self.short}"

    #: 'live' or 'rollback' (target) for its context, as last seen from this machine; '' otherwise.
    live: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["age_seconds"] = round(time.time() - self.built_at)
        return data


def _timestamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _our_registrations(ws: Workspace) -> dict[str, str]:
    """commit → registration name, for git worktrees that point into our builds."""
    root = builds_root(ws.project_dir)
    return {
        worktree.parent.name: name
        for worktree, name in gitrepo.registrations_under(ws.repo, root).items()
        if worktree.name == "worktree" and worktree.parent.parent == root and COMMIT_DIR_NAME.fullmatch(worktree.parent.name)
    }


def _contexts_of(paths: BuildPaths) -> list[str]:
    if not paths.build_dir.is_dir():
        return []
    return sorted(
        p.name for p in paths.build_dir.iterdir() if p.is_dir() and p.name not in RESERVED_CONTEXTS and not p.name.startswith(".")
    )


def list_builds(ws: Workspace) -> list[BuildRow]:
    from .deploy import live_marks  # reads .dot/live only: `list` must not reach the warehouse

    marks = live_marks(ws)
    refs = gitrepo.refs_pointing_at(ws.repo)
    registrations = _our_registrations(ws)
    rows: list[BuildRow] = []
    for commit in sorted(set(built_commits(ws.project_dir)) | set(registrations)):
        paths = ws.paths(commit)
        record = read_json(paths.commit_record) or {}
        short = record.get("short") or commit[: ws.settings.short_hash_length]
        problems = []
        registered = commit in registrations
        has_dir = paths.worktree_dir.is_dir()
        if registered and not has_dir:
            problems.append("worktree missing" if paths.build_dir.is_dir() else "registration without directory")
        elif has_dir and not registered:
            problems.append("directory without registration")
        elif not has_dir and paths.worktree_marker.exists():
            problems.append("worktree missing")  # made once, then deleted and pruned by hand
        worktree_size = tree_size(paths.worktree_dir) if has_dir else 0
        try:
            dir_time = paths.build_dir.stat().st_mtime
        except OSError:
            dir_time = time.time()
        contexts = _contexts_of(paths)
        if not contexts:
            rows.append(BuildRow(commit, short, None, None, "no build", dir_time, 0, worktree_size, refs.get(commit, []), problems))
        for context in contexts:
            ctx = paths.context(context)
            rec = read_json(ctx.record) or {}
            built = _timestamp(rec.get("finished") or rec.get("started") or "") or dir_time
            status = rec.get("status", "not built")
            if status == "running" and not is_held(paths.context_lock(context)):
                status = "interrupted"
            deferred_to = rec.get("deferred_to") if isinstance(rec.get("deferred_to"), dict) else None
            rows.append(
                BuildRow(
                    commit,
                    short,
                    context,
                    rec.get("schema"),
                    status,
                    built,
                    tree_size(ctx.context_dir),
                    worktree_size,
                    refs.get(commit, []),
                    list(problems),
                    deferred_to,
                    bool(rec.get("partial")),
                    bool(rec.get("cloned")),
                    live=marks.get((commit, context), ""),
                )
            )
    built_contexts = {(r.commit, r.context) for r in rows if r.context}
    for row in rows:
        if row.base and row.base not in built_contexts:
            row.problems.append(f"base {row.base[1]}@{row.base[0][:12]} is gone")
    return rows


def base_label(row: BuildRow, rows: list[BuildRow]) -> str:
    """`CTX@SHORT` of the build `row` deferred to, `+clone` when it filled the rest from it."""
    if row.base is None:
        return "-"
    shorts = {r.commit: r.short for r in rows}
    commit, context = row.base
    return f"{context}@{shorts.get(commit, commit[:8])}" + ("+clone" if row.cloned else "")


def dependants(rows: list[BuildRow], base: BuildRow) -> list[BuildRow]:
    """The builds among `rows` that defer to (or cloned from) `base`."""
    return [r for r in rows if r.base is not None and r.base == (base.commit, base.context)]


def _human_size(size: int) -> str:
    value, unit = float(size), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"


def human_age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{int(seconds // span)}{unit}"
    return f"{int(seconds)}s"


def format_table(rows: list[BuildRow]) -> str:
    if not rows:
        return "no isolated builds"
    header = ("SHORT", "REFS", "CONTEXT", "SCHEMA", "BASE", "STATUS", "LIVE", "AGE", "SIZE", "WORKTREE", "PROBLEMS")
    now = time.time()
    table = [header] + [
        (
            r.short,
            ",".join(r.refs) or "-",
            r.context or "-",
            r.schema or "-",
            base_label(r, rows),
            r.status,
            r.live or "-",
            human_age(now - r.built_at),
            _human_size(r.size_bytes),
            _human_size(r.worktree_bytes),
            "; ".join(r.problems) or "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip() for row in table)


# --- clean ---------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    commit: str | None = None
    context: str | None = None
    everything: bool = False
    keep: int | None = None
    older_than: float | None = None
    unreachable: bool = False

    def chooses_anything(self) -> bool:
        return bool(self.commit or self.everything or self.keep is not None or self.older_than is not None or self.unreachable)


def check_selection(selection: Selection) -> None:
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


def owned_schemas(record: dict[str, Any], short: str) -> list[str]:
    """The schemas a build may drop: its own `<schema>_<short>` and `<schema>_<short>_*` only.

    Anything else in the record (a decoy, a schema the user's project wrote
    with --allow-shared-schemas) is never dropped.
    """
    schema = record.get("schema")
    if not isinstance(schema, str) or not schema.lower().endswith("_" + short.lower()):
        return []
    prefix = schema.lower() + "_"
    candidates = {schema, *[s for s in record.get("schemas", []) if isinstance(s, str)]}
    return sorted(s for s in candidates if s.lower() == schema.lower() or s.lower().startswith(prefix))


def _manifest_schemas(ctx_target: Path) -> list[str]:
    manifest = read_json(ctx_target / "manifest.json") or {}
    return sorted(
        {
            str(node.get("schema"))
            for node in (manifest.get("nodes") or {}).values()
            if isinstance(node, dict) and node.get("schema") and node.get("resource_type") in ("model", "seed", "snapshot")
        }
    )


@dataclass
class Drop:
    """One build's schemas to drop through `dot_clean_build`, which decides from the warehouse first."""

    label: str
    commit: str
    context: str
    target: Any  # dbt.protocol.OpsTarget
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
    from .registry import now_text

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
        schemas = ", ".join(drop.plan["schemas"])
        value = outcome.value if isinstance(outcome.value, dict) else {}
        if outcome.error:
            failures.append(f"{drop.label}: could not drop {schemas} ({outcome.error}); its files are kept so the clean can be retried")
            kept.add((drop.commit, drop.context))
            continue
        reasons = [str(r) for r in value.get("reasons") or []]
        if value.get("refusal") == "dependants":
            names = [str(d) for d in value.get("dependants") or []]
            failures.append(
                f"refusing to drop {schemas} of {drop.label}: {len(names)} relation(s) that dot-tasks did not make "
                f"read it: {', '.join(names)}. Drop or repoint them first: dot-tasks never drops what it did not "
                "make, not even with --force"
            )
            kept.add((drop.commit, drop.context))
            continue
        if value.get("refusal") == "protected":
            say(f"kept {drop.plan['short']} {drop.context}: {'; '.join(reasons)} (--force cleans it anyway)")
            kept.add((drop.commit, drop.context))
            continue
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
    return failures, kept


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
    from .dbt.protocol import OpsTarget
    from .deploy import protected_commits
    from .registry import live_base, who

    everything = list_builds(ws)
    protected = protected_commits(ws)
    rows = select(ws, everything, selection, protected)
    if not force and not drop_schemas:
        for row in [r for r in rows if r.commit in protected]:
            say(f"kept {row.short} {row.context or '(worktree only)'}: {protected[row.commit]} (--force cleans it anyway)")
        rows = [r for r in rows if r.commit not in protected]
    rows, broken = _spare_bases(everything, rows, selection, force, progress)
    if not rows:
        say("nothing to clean")
        return
    by_commit: dict[str, list[BuildRow]] = {}
    for row in rows:
        by_commit.setdefault(row.commit, []).append(row)

    def schemas_of(row: BuildRow) -> list[str]:
        if row.context is None:
            return []
        ctx = ws.paths(row.commit).context(row.context)
        record = dict(read_json(ctx.record) or {})
        record["schemas"] = list(record.get("schemas", [])) + _manifest_schemas(ctx.target_dir)
        return owned_schemas(record, row.short)

    # Contexts mapped to one target share a schema: one that stays keeps it.
    leaving = {(r.commit, r.context) for r in rows}
    still_used = {s for r in everything if (r.commit, r.context) not in leaving for s in schemas_of(r)}
    plans: list[tuple[BuildRow, list[str]]] = []
    for row in rows:
        owned = schemas_of(row) if drop_schemas else []
        kept = [s for s in owned if s in still_used]
        if kept:
            progress(f"keeping {', '.join(kept)}: another context of {row.short} still builds into it")
        plans.append((row, [s for s in owned if s not in still_used]))

    failures: list[str] = []
    with ExitStack() as stack:
        keep_files = set() if dry_run else _hold_builds(stack, ws, by_commit)  # builds running now
        failures += [
            f"{c[:12]} is in use right now (being built, or read by a deferred build): rerun the clean when it is done"
            for c in sorted(keep_files)
        ]
        drops: list[Drop] = []
        cleaned_by = who(ws)
        for row, schemas in plans:
            if row.commit in keep_files or not schemas or row.context is None:
                continue
            ctx = ws.paths(row.commit).context(row.context)
            try:
                profile_name, target, output = generated_profile(ws, row.commit, row.context)
                project = _project_name(ws, row.commit)
            except DotError as exc:
                failures.append(f"{row.short} {row.context}: cannot reach its warehouse ({exc})")
                keep_files.add(row.commit)
                continue
            plan = drop_plan(
                schemas=schemas,
                short=row.short,
                live_schema=live_base(row.schema or schemas[0], row.short),
                key={"project": project, "commit_sha": row.commit, "context": row.context},
                leaving=[[c, x] for c, x in sorted(leaving) if x],
                force=force,
                dry_run=dry_run,
                cleaned_by=cleaned_by,
            )
            plan["defers"] = row.base is not None
            drops.append(
                Drop(
                    row.label,
                    row.commit,
                    row.context,
                    OpsTarget(str(ctx.context_dir), profile_name, target, str(ops_logs_dir(ws.project_dir))),
                    output,
                    plan,
                )
            )
        drop_failures, stayed = run_drops(ws, drops, dry_run=dry_run, force=force, say=say, progress=progress)
        failures += drop_failures
        keep_files |= {commit for commit, _context in stayed}
        if dry_run:
            for row, _schemas in plans:
                if row.commit not in keep_files:
                    say(f"would clean {row.short} {row.context or '(worktree only)'}")
            for commit in by_commit:
                if commit not in keep_files and _whole_commit_goes(ws, commit, by_commit[commit], selection):
                    say(f"would remove worktree and files of {commit[:12]}")
            for base, users in broken:
                say(f"would break {', '.join(u.label for u in users)}: deferred to {base.label}")
            if failures:
                raise WarehouseError("; ".join(failures))
            return
        for commit, commit_rows in by_commit.items():
            if commit in keep_files:
                continue
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


def _project_name(ws: Workspace, commit: str) -> str:
    from .builds import _project_config_at

    return _project_config_at(ws, commit).name


def remove_local(ws: Workspace, commit: str, contexts: list[str | None], selection: Selection, say: Callable[[str], None]) -> None:
    """Remove this machine's files of `contexts` of `commit`, and its worktree once no context is left."""
    paths = ws.paths(commit)
    short = (read_json(paths.commit_record) or {}).get("short") or commit[: ws.settings.short_hash_length]
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
    remaining = set(_contexts_of(ws.paths(commit))) - {r.context for r in rows}
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
