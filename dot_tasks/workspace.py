"""The place builds are made for, and the first step of each: resolving a ref, claiming a schema suffix.

A `Workspace` is a dbt project inside a git repository with the `dot.*`
settings Invoke resolved. Every path of a build derives from it and a commit
(`Workspace.paths`); the schema suffix is the one fact remembered, in the
commit's `CommitRecord`, so that a commit keeps its schemas when the
configured hash length changes or another commit comes to share its prefix.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pygit2

from . import gitrepo
from .errors import ProjectError
from .layout import COMMIT_DIR_NAME, BuildPaths, builds_root, locks_dir
from .locks import hold
from .naming import DEFAULT_SHORT_LENGTH, short_hash
from .project import find_project_dir
from .records import CommitRecord


@dataclass(frozen=True)
class Settings:
    """The `dot.*` configuration, as Invoke resolved it."""

    project_dir: str | None = None
    profiles_dir: str | None = None
    short_hash_length: int = DEFAULT_SHORT_LENGTH
    #: context name → profile output (target) name, for contexts not named after a target.
    contexts: Mapping[str, str] = field(default_factory=dict)
    lock_timeout: float = 600.0
    #: Check out only the dbt project and its local packages when it sits in a subdirectory.
    sparse_checkout: bool = True


@dataclass(frozen=True)
class Workspace:
    """A dbt project inside a git repository: the place builds are made for."""

    repo: pygit2.Repository
    project_dir: Path
    #: The project's directory relative to the git work tree, POSIX style ('' at the root).
    subdir: str
    settings: Settings

    @classmethod
    def open(cls, settings: Settings, cwd: Path | None = None) -> Workspace:
        """The workspace of the dbt project found from `cwd` (or `settings.project_dir`)."""
        project_dir = find_project_dir(cwd or Path.cwd(), settings.project_dir)
        repo = gitrepo.open_repository(project_dir)
        root = gitrepo.work_tree(repo)
        try:
            subdir = project_dir.relative_to(root).as_posix()
        except ValueError as exc:  # pragma: no cover - discover_repository walks upward
            raise ProjectError(f"{project_dir} is not inside the git work tree {root}") from exc
        return cls(repo, project_dir, "" if subdir == "." else subdir, settings)

    def paths(self, commit: str) -> BuildPaths:
        """Every file of the commit's build."""
        return BuildPaths(self.project_dir, commit, self.subdir)

    def in_repo(self, name: str) -> str:
        """`name` (a file of the dbt project) as a path in the commit's tree."""
        return f"{self.subdir}/{name}" if self.subdir else name


def now() -> str:
    """The time, as records note it (UTC, to the second)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve(ws: Workspace, ref: str) -> str:
    """The full hash of the commit `ref` names."""
    return gitrepo.resolve_commit(ws.repo, ref)


def built_commits(project_dir: Path) -> list[str]:
    """The commits that have a build directory in this project."""
    root = builds_root(project_dir)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and COMMIT_DIR_NAME.fullmatch(p.name)) if root.is_dir() else []


# --- the schema suffix -------------------------------------------------------------


def _suffix_lock(ws: Workspace) -> Path:
    return locks_dir(ws.project_dir) / "suffixes.lock"


def _computed_suffix(ws: Workspace, commit: str) -> str:
    """The configured-length prefix, lengthened while another build's commit shares it.

    Equal suffixes would mean a shared schema, and a suffix can only equal
    another build's if that build's commit starts with it.
    """
    others = [other for other in built_commits(ws.project_dir) if other != commit]
    length = ws.settings.short_hash_length
    while any(other.startswith(commit[:length]) for other in others):
        length += 1
    return short_hash(commit, length)


def schema_suffix(ws: Workspace, commit: str) -> str:
    """The suffix recorded for this commit's schemas, or the one it would get."""
    return CommitRecord.short_of(ws.paths(commit)) or _computed_suffix(ws, commit)


def claim_suffix(ws: Workspace, commit: str, ref: str | None = None) -> str:
    """Record the commit's schema suffix on its first build and reuse it afterwards."""
    paths = ws.paths(commit)
    record = CommitRecord.load(paths)
    if record and record.short and (ref is None or ref in record.refs):
        return record.short
    with hold(_suffix_lock(ws), "the schema-suffix registry", ws.settings.lock_timeout):
        record = CommitRecord.load(paths)
        claimed = CommitRecord(
            commit,
            (record.short if record else "") or _computed_suffix(ws, commit),
            record.refs if record else (),
            (record.created if record else "") or now(),
        ).with_ref(ref)
        claimed.save(paths)
    return claimed.short


def lengthen_suffix(ws: Workspace, commit: str, taken_by: str, holder: Mapping[str, Any]) -> str:
    """Give `commit` a suffix that `taken_by` (another machine's commit, in the registry) cannot share."""
    paths = ws.paths(commit)
    with hold(_suffix_lock(ws), "the schema-suffix registry", ws.settings.lock_timeout):
        record = CommitRecord.load(paths) or CommitRecord(commit, "")
        old = record.short or _computed_suffix(ws, commit)
        length = len(old) + 1
        while taken_by.startswith(commit[:length]) or any(
            other != commit and other.startswith(commit[:length]) for other in built_commits(ws.project_dir)
        ):
            length += 1
        suffix = short_hash(commit, length)
        CommitRecord(commit, suffix, record.refs, record.created or now(), extra=record.extra).save(paths)
    print(
        f"dot-tasks: the suffix {old} is taken in the warehouse by {taken_by[:12]} (built by "
        f"{holder.get('built_by') or '?'} on {holder.get('host') or '?'}): building {commit[:12]} as {suffix}",
        file=sys.stderr,
        flush=True,
    )
    return suffix
