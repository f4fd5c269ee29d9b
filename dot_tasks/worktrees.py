"""The worktree step: a clean checkout of the commit, sparse when the project sits in a subdirectory.

The checkout is made once per commit and shared by its contexts. A run killed
half-way leaves something `ensure_worktree` recognises and makes anew; a
checkout the user changed is never overwritten, only named.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from . import gitrepo
from .errors import WorktreeError
from .layout import BuildPaths
from .locks import hold
from .project import PACKAGE_FILES, local_packages
from .workspace import Workspace


@dataclass(frozen=True)
class WorktreeResult:
    """Where the commit is checked out, and whether an intact checkout was reused."""

    path: Path
    project_path: Path
    reused: bool


def ensure_worktree(ws: Workspace, commit: str) -> WorktreeResult:
    """A clean checkout of `commit`, reused when intact, repaired when a run died mid-way."""
    paths = ws.paths(commit)
    gitrepo.ensure_excluded(ws.repo, f"/{ws.in_repo('.dot/')}")
    with hold(paths.commit_lock(), f"the worktree of {commit[:12]}", ws.settings.lock_timeout):
        state = gitrepo.inspect_worktree(ws.repo, paths)
        if state.complete and state.directory and not state.registered:
            # The repository was moved (or its registration pruned): re-link
            # rather than recreate, so edits in the worktree are not lost.
            gitrepo.repair_worktree(ws.repo, paths)
            state = gitrepo.inspect_worktree(ws.repo, paths)
        if state.intact_at(commit):
            return WorktreeResult(paths.worktree_dir, paths.worktree_project_dir, reused=True)
        if state.complete and state.registered and state.directory:
            if state.changes:
                shown = ", ".join(state.changes[:5]) + (" ..." if len(state.changes) > 5 else "")
                raise WorktreeError(
                    f"the worktree {paths.worktree_dir} has changes to tracked files ({shown}): "
                    f"save what you need, then `dot-tasks clean --ref {commit[:12]} --keep-schemas` and rerun"
                )
            raise WorktreeError(
                f"the worktree {paths.worktree_dir} is no longer at {commit[:12]} (HEAD is "
                f"{(state.head or 'a branch')[:12]}): `dot-tasks clean --ref {commit[:12]} --keep-schemas` and rerun"
            )
        # Absent, or left half-made by a killed run (or deleted by hand): make it anew.
        gitrepo.create_worktree(ws.repo, paths, sparse_dirs(ws, commit), local_package_dirs(ws, commit))
    return WorktreeResult(paths.worktree_dir, paths.worktree_project_dir, reused=False)


def local_package_dirs(ws: Workspace, commit: str) -> list[str]:
    """The commit's `local:` packages, as paths in the repository ('.' for its root)."""
    dirs = set()
    for name in PACKAGE_FILES:
        for local in local_packages(gitrepo.read_file_at(ws.repo, commit, ws.in_repo(name))):
            resolved = posixpath.normpath(posixpath.join(ws.subdir, local))
            if not resolved.startswith("../"):
                dirs.add(resolved)
    return sorted(dirs)


def sparse_dirs(ws: Workspace, commit: str) -> list[str] | None:
    """What a sparse checkout needs: the project and its in-repo `local:` packages.

    None means a full checkout: the project is at the repository root, or
    `dot.sparse_checkout` is off for projects that read files elsewhere.
    """
    if not ws.subdir or not ws.settings.sparse_checkout:
        return None
    packages = local_package_dirs(ws, commit)
    if "." in packages:
        return None  # the package is the whole repository
    return sorted({ws.subdir, *packages})


def require_worktree(ws: Workspace, commit: str) -> BuildPaths:
    """The commit's paths, once its worktree is known to be intact at it (for a step run alone)."""
    paths = ws.paths(commit)
    state = gitrepo.inspect_worktree(ws.repo, paths)
    if not state.intact_at(commit):
        problem = "has changes to tracked files" if state.changes else "is missing or incomplete"
        raise WorktreeError(
            f"the worktree for {commit[:12]} {problem}: run `dot-tasks worktree --ref {commit[:12]}` first (or `dot-tasks run`)"
        )
    return paths
