"""Where every file of an isolated build lives, derived from (project, commit, context).

Nothing here touches the disk: each step recomputes the same paths from the
same three inputs, which is what lets steps run alone and chain in a shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .naming import check_context_name

DOT_DIR = ".dot"
#: A build directory's name: a full SHA-1 (or SHA-256) commit hash.
COMMIT_DIR_NAME = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
BUILDS_DIR = "isolated_builds"


def dot_dir(project_dir: Path) -> Path:
    """`.dot/` in the project: everything dot-tasks keeps on this machine."""
    return project_dir / DOT_DIR


def builds_root(project_dir: Path) -> Path:
    """`.dot/isolated_builds/`: one directory per built commit."""
    return dot_dir(project_dir) / BUILDS_DIR


def locks_dir(project_dir: Path) -> Path:
    """`.dot/locks/`: the lock files of builds, warehouses and names."""
    # Locks live outside the build directories so that `clean` can delete a
    # build while another process is still waiting on its lock file.
    return dot_dir(project_dir) / "locks"


def live_notes_dir(project_dir: Path) -> Path:
    """This machine's note of each context's last switch (`list`'s LIVE; the warehouse is the truth)."""
    return dot_dir(project_dir) / "live"


def ops_dir(project_dir: Path) -> Path:
    """dbt's own files for the shipped ops project, kept so its next start parses partially."""
    return dot_dir(project_dir) / "ops"


def registry_profile_dir(project_dir: Path, context: str) -> Path:
    """A generated profile into `context`'s warehouse that names no build (`list`/`clean --warehouse`)."""
    return ops_dir(project_dir) / "registry" / check_context_name(context)


def ops_logs_dir(project_dir: Path) -> Path:
    """dbt's log of operations that belong to no one build (clean's drops, promotions)."""
    return dot_dir(project_dir) / "logs"


@dataclass(frozen=True)
class ContextPaths:
    """The files of one (commit, context) pair."""

    context_dir: Path

    @property
    def profiles_yml(self) -> Path:
        return self.context_dir / "profiles.yml"

    @property
    def target_dir(self) -> Path:
        return self.context_dir / "target"

    @property
    def logs_dir(self) -> Path:
        return self.context_dir / "logs"

    @property
    def clone_target_dir(self) -> Path:
        """dbt's --target-path for `--clone`'s `dbt clone`, beside the build's own target."""
        return self.context_dir / "clone"

    @property
    def diff_ops_target(self) -> Path:
        """dbt's --target-path for diffs whose head is this build, kept for partial parsing."""
        return self.context_dir / "diff-ops-target"

    @property
    def record(self) -> Path:
        return self.context_dir / "build.json"


@dataclass(frozen=True)
class BuildPaths:
    """The files of one commit's isolated build inside one dbt project."""

    project_dir: Path
    commit: str
    #: The dbt project's directory relative to the git work tree ('' at the root).
    project_subdir: str = ""

    @property
    def build_dir(self) -> Path:
        return builds_root(self.project_dir) / self.commit

    @property
    def worktree_dir(self) -> Path:
        return self.build_dir / "worktree"

    @property
    def worktree_project_dir(self) -> Path:
        """Where dbt runs: the dbt project inside the checkout."""
        return self.worktree_dir / self.project_subdir if self.project_subdir else self.worktree_dir

    @property
    def commit_record(self) -> Path:
        return self.build_dir / "commit.json"

    @property
    def deps_marker(self) -> Path:
        # Written once `dbt deps` has succeeded for this checkout.
        return self.build_dir / ".deps-installed"

    @property
    def worktree_marker(self) -> Path:
        # Written once the checkout is complete, so a half-made worktree left
        # by a killed run is told apart from one the user edited.
        return self.build_dir / ".worktree-complete"

    def context(self, name: str) -> ContextPaths:
        return ContextPaths(self.build_dir / check_context_name(name))

    def commit_lock(self) -> Path:
        return locks_dir(self.project_dir) / f"{self.commit}.lock"

    def context_lock(self, name: str) -> Path:
        return locks_dir(self.project_dir) / f"{self.commit}.{check_context_name(name)}.lock"
