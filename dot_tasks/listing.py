"""`list`: every isolated build on this machine, one row per (commit, context).

A build is found from what is on disk (build directories and git's worktree
registrations), never from a list we keep; its record says what happened
(when, which schema, which base), and this machine's live notes what is live.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from . import gitrepo
from .files import tree_size
from .layout import COMMIT_DIR_NAME, BuildPaths, builds_root
from .locks import is_held
from .naming import RESERVED_CONTEXTS
from .records import BuildRecord, CommitRecord, live_marks
from .workspace import Workspace, built_commits


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
        """`CTX@SHORT`, as messages name a build."""
        return f"{self.context}@{self.short}"

    #: 'live' or 'rollback' (target) for its context, as last seen from this machine; '' otherwise.
    live: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as `list --json` prints it, with its age in seconds."""
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


def contexts_of(paths: BuildPaths) -> list[str]:
    """The contexts built (or begun) for a commit on this machine."""
    if not paths.build_dir.is_dir():
        return []
    return sorted(
        p.name for p in paths.build_dir.iterdir() if p.is_dir() and p.name not in RESERVED_CONTEXTS and not p.name.startswith(".")
    )


def list_builds(ws: Workspace) -> list[BuildRow]:
    """Every build on this machine, one row per (commit, context), with what is wrong with it."""
    marks = live_marks(ws.project_dir)  # .dot/live only: `list` must not reach the warehouse
    refs = gitrepo.refs_pointing_at(ws.repo)
    registrations = _our_registrations(ws)
    rows: list[BuildRow] = []
    for commit in sorted(set(built_commits(ws.project_dir)) | set(registrations)):
        paths = ws.paths(commit)
        short = CommitRecord.short_of(paths) or commit[: ws.settings.short_hash_length]
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
        contexts = contexts_of(paths)
        if not contexts:
            rows.append(BuildRow(commit, short, None, None, "no build", dir_time, 0, worktree_size, refs.get(commit, []), problems))
        for context in contexts:
            ctx = paths.context(context)
            loaded = BuildRecord.load(ctx)
            # Only a `running` record asks its lock: a killed build left it free.
            lock_held = loaded is not None and loaded.status == "running" and is_held(paths.context_lock(context))
            status = loaded.shown_status(lock_held) if loaded else "not built"
            rec = loaded or BuildRecord()
            built = _timestamp(rec.finished or rec.started) or dir_time
            rows.append(
                BuildRow(
                    commit,
                    short,
                    context,
                    rec.schema,
                    status,
                    built,
                    tree_size(ctx.context_dir),
                    worktree_size,
                    refs.get(commit, []),
                    list(problems),
                    rec.deferred_to.to_json() if rec.deferred_to else None,
                    rec.partial,
                    rec.cloned,
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
    """An age as `list` shows it: `3d`, `5h`, `12m`, `40s`."""
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{int(seconds // span)}{unit}"
    return f"{int(seconds)}s"


def format_table(rows: list[BuildRow]) -> str:
    """The `list` table, one line per row, columns as wide as their widest cell."""
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
