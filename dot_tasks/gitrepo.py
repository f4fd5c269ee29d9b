"""Every git operation dot-tasks performs, through pygit2.

This is the only module that imports pygit2 or runs git. pygit2 resolves
refs, reads commits and manages registrations. The git program does the
checkouts: libgit2 has no sparse checkout, reports every file outside one as
deleted, and checks out 20,000 files about 4.5x slower than git (1.50 s
against 0.33 s on a RAM disk; benchmarks/bench.py, row a).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from .errors import ProjectError, RefError, WorktreeError
from .files import remove_tree, write_atomic
from .layout import BuildPaths


def open_repository(path: Path) -> pygit2.Repository:
    """The repository whose work tree contains `path`."""
    try:
        found = pygit2.discover_repository(str(path))
    except pygit2.GitError as exc:  # e.g. a checkout owned by another user
        raise ProjectError(
            f"git refuses to open the repository at {path} ({exc}); if it is yours, `git config --global --add safe.directory {path}`"
        ) from None
    if found is None:
        raise ProjectError(
            f"{path} is not inside a git repository: dot-tasks builds commits, so run it "
            "inside your dbt project's git checkout (or `git init` and commit first)"
        )
    try:
        repo = pygit2.Repository(found)
    except pygit2.GitError as exc:
        raise ProjectError(
            f"git refuses to open the repository at {found} ({exc}); if it is yours, `git config --global --add safe.directory {path}`"
        ) from None
    if repo.is_bare or repo.workdir is None:
        raise ProjectError(f"{found} is a bare repository: run dot-tasks inside a checkout")
    return repo


def work_tree(repo: pygit2.Repository) -> Path:
    """The resolved top directory of `repo`'s checkout."""
    return Path(repo.workdir).resolve()


def common_dir(repo: pygit2.Repository) -> Path:
    """The `.git` directory shared by all worktrees of `repo`.

    Opened from inside a linked worktree, `repo.path` is
    `.git/worktrees/<name>/`; git names the shared directory in `commondir`.
    """
    git_dir = Path(repo.path)
    pointer = git_dir / "commondir"
    if pointer.is_file():
        return (git_dir / pointer.read_text().strip()).resolve()
    return git_dir.resolve()


def _names_for_hint(repo: pygit2.Repository, limit: int = 8) -> str:
    branches = sorted(repo.branches.local)
    tags = sorted(r[len("refs/tags/") :] for r in repo.references if r.startswith("refs/tags/"))
    parts = []
    for label, names in (("branches", branches), ("tags", tags)):
        if names:
            shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts) if parts else "the repository has no branches or tags yet"


def resolve_commit(repo: pygit2.Repository, ref: str) -> str:
    """The full hash of the commit that `ref` names (branch, tag, `HEAD~2`, short hash...)."""
    if not ref or ref.startswith("-"):
        # Never let a ref reach git (or anything else) as an option.
        raise RefError(
            f"ref {ref!r} is not a valid ref: refs cannot be empty or begin with '-' (pass a branch, tag or commit, e.g. --ref main)"
        )
    try:
        obj = repo.revparse_single(ref)
    except (KeyError, pygit2.InvalidSpecError, pygit2.GitError) as exc:
        raise RefError(f"unknown ref {ref!r}: no commit by that name ({_names_for_hint(repo)})") from exc
    except ValueError as exc:  # pygit2 raises ValueError for ambiguous short hashes
        raise RefError(f"ref {ref!r} is ambiguous ({exc}): give more characters of the hash") from exc
    try:
        commit = obj.peel(pygit2.Commit)
    except (pygit2.InvalidSpecError, ValueError, TypeError) as exc:
        kind = type(obj).__name__.lower()
        raise RefError(f"ref {ref!r} names a {kind}, not a commit: pass a branch, tag or commit") from exc
    return str(commit.id)


def read_file_at(repo: pygit2.Repository, commit: str, relpath: str) -> bytes | None:
    """The contents of `relpath` in `commit`'s tree, or None if it is absent."""
    tree = repo[commit].peel(pygit2.Tree)
    try:
        entry = tree[relpath]
    except KeyError:
        return None
    obj = repo[entry.id]
    return obj.data if isinstance(obj, pygit2.Blob) else None


_REF_KINDS = ("refs/heads/", "refs/tags/", "refs/remotes/")


def _ref_tips(repo: pygit2.Repository) -> dict[str, pygit2.Oid]:
    """Short ref name (branch, tag, remote branch) → the commit it points at."""
    tips: dict[str, pygit2.Oid] = {}
    for refname in repo.references:
        kind = next((k for k in _REF_KINDS if refname.startswith(k)), None)
        if kind is None or refname.endswith("/HEAD"):
            continue
        try:
            tips[refname[len(kind) :]] = repo.references[refname].peel(pygit2.Commit).id
        except (pygit2.InvalidSpecError, ValueError, KeyError):
            continue  # a tag of a tree or blob
    return tips


def refs_pointing_at(repo: pygit2.Repository) -> dict[str, list[str]]:
    """Map commit hash → the branch and tag names that point at it now."""
    names: dict[str, list[str]] = {}
    for name, oid in _ref_tips(repo).items():
        names.setdefault(str(oid), []).append(name)
    return names


def user_email(repo: pygit2.Repository) -> str | None:
    """git's `user.email` for this repository (its config, then the user's), if set."""
    try:
        value = repo.config["user.email"]
    except (KeyError, pygit2.GitError):
        return None
    return str(value) or None


def reachable_from_refs(repo: pygit2.Repository, commits: list[str]) -> set[str]:
    """Those of `commits` reachable from some branch or tag (local or remote)."""
    wanted = set(commits)
    found: set[str] = set()
    tips = list(set(_ref_tips(repo).values()))
    if not tips or not wanted:
        return found
    walker = repo.walk(tips[0], pygit2.enums.SortMode.NONE)
    for tip in tips[1:]:
        walker.push(tip)
    for commit in walker:
        if str(commit.id) in wanted:
            found.add(str(commit.id))
            if found == wanted:
                break
    return found


def ensure_excluded(repo: pygit2.Repository, pattern: str) -> None:
    """Add `pattern` to `.git/info/exclude`, never to the user's tracked `.gitignore`."""
    exclude = common_dir(repo) / "info" / "exclude"
    text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    if pattern in text.splitlines():
        return
    if text and not text.endswith("\n"):
        text += "\n"
    write_atomic(exclude, text + f"# isolated dbt builds (dot-tasks)\n{pattern}\n")


# --- worktrees ---------------------------------------------------------------


@dataclass(frozen=True)
class WorktreeState:
    """What is on disk for one build's worktree."""

    registered: bool
    directory: bool
    complete: bool
    #: Set only for a complete worktree: where HEAD points, and tracked files changed.
    head: str | None = None
    changes: list[str] = field(default_factory=list)

    def intact_at(self, commit: str) -> bool:
        return self.registered and self.directory and self.complete and self.head == commit and not self.changes


def _registration_dir(repo: pygit2.Repository, paths: BuildPaths) -> Path | None:
    """Git's record of the build's worktree (`.git/worktrees/<name>`), if there is one.

    It is found from the worktree's own `.git` file, or, when the directory
    is gone, by the path each registration names: never from a remembered name.
    """
    pointer = paths.worktree_dir / ".git"
    if pointer.is_file():
        text = pointer.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            candidate = Path(text[len("gitdir:") :].strip())
            if candidate.is_dir():
                return candidate
    registry = common_dir(repo) / "worktrees"
    for entry in registry.iterdir() if registry.is_dir() else []:
        try:
            if Path((entry / "gitdir").read_text().strip()) == pointer:
                return entry
        except OSError:
            continue
    return None


def _clean_env() -> dict[str, str]:
    # Run git as if from a plain shell: a GIT_DIR inherited from a hook or
    # alias would point these commands at the wrong repository.
    return {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}


def _git(args: list[str], cwd: Path, stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, env=_clean_env())
    except FileNotFoundError as exc:
        raise WorktreeError("git is not installed or not on PATH: install git and retry") from exc
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise WorktreeError(f"`git {args[0]}` failed in {cwd}: {reason}")
    return proc.stdout


def tracked_changes(worktree: Path) -> list[str]:
    """Tracked files changed in `worktree`, as git itself (sparse-aware) sees them."""
    out = _git(["status", "--porcelain=v1", "-z", "--untracked-files=no", "--ignore-submodules=all"], worktree)
    return sorted(entry[3:] for entry in out.split("\0") if len(entry) > 3)


def inspect_worktree(repo: pygit2.Repository, paths: BuildPaths) -> WorktreeState:
    """What git and the disk say of a build's worktree: registered, present, complete, its HEAD and edits."""
    registered = _registration_dir(repo, paths) is not None
    directory = paths.worktree_dir.exists()
    complete = paths.worktree_marker.exists()
    if not (registered and directory and complete):
        return WorktreeState(registered, directory, complete)
    try:
        checkout = pygit2.Repository(str(paths.worktree_dir))
        head = None if not checkout.head_is_detached else str(checkout.head.target)
        # Untracked files are dbt's own (dbt_packages/, package-lock.yml), not edits.
        changes = tracked_changes(paths.worktree_dir)
    except (pygit2.GitError, KeyError, WorktreeError):
        return WorktreeState(registered, directory, complete=False)
    return WorktreeState(registered, directory, complete, head, changes)


def repair_worktree(repo: pygit2.Repository, paths: BuildPaths) -> None:
    """Re-link a worktree and its registration after the repository was moved."""
    try:
        _git(["worktree", "repair", str(paths.worktree_dir)], work_tree(repo))
    except WorktreeError:
        pass  # nothing to repair from: the caller sees it still unregistered


def remove_worktree(repo: pygit2.Repository, paths: BuildPaths) -> None:
    """Unregister the worktree and delete its files; safe to repeat."""
    paths.worktree_marker.unlink(missing_ok=True)
    paths.deps_marker.unlink(missing_ok=True)
    registration = _registration_dir(repo, paths)
    if registration is not None:
        try:
            repo.lookup_worktree(registration.name).prune(True)
        except (pygit2.GitError, KeyError):
            pass
        # prune() leaves the registration when libgit2 thinks it is locked or
        # valid in a way it cannot judge; it is ours, so remove it outright.
        remove_tree(registration)
    remove_tree(paths.worktree_dir)


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def submodules_at(repo: pygit2.Repository, commit: str) -> dict[str, str]:
    """Path → name of each git submodule `commit` declares in its `.gitmodules`."""
    if read_file_at(repo, commit, ".gitmodules") is None:
        return {}
    out = _git(["config", "--blob", f"{commit}:.gitmodules", "--get-regexp", r"^submodule\..*\.path$"], work_tree(repo))
    found = {}
    for line in out.splitlines():
        key, _, path = line.partition(" ")
        found[path.strip().strip("/")] = key[len("submodule.") : -len(".path")]
    return found


def _submodule_clone(repo: pygit2.Repository, name: str) -> Path | None:
    """The user's own clone of submodule `name` (`.git/modules/<name>`), if they initialised it."""
    clone = common_dir(repo) / "modules" / name
    return clone if (clone / "HEAD").is_file() else None


def _submodules_to_check_out(
    repo: pygit2.Repository, commit: str, sparse_dirs: list[str] | None, packages: list[str]
) -> dict[str, tuple[str, Path]]:
    """Submodule path → (name, the local clone to check it out from); refuses a package no clone can give.

    Submodules are checked out from the user's own clones, offline and at the
    commit the build's commit records. One the user never initialised is left
    empty, as in their checkout, unless a `local:` package lives in it.
    """
    wanted: dict[str, tuple[str, Path]] = {}
    for path, name in submodules_at(repo, commit).items():
        if sparse_dirs is not None and not any(_within(path, d) or _within(d, path) for d in sparse_dirs):
            continue
        clone = _submodule_clone(repo, name)
        if clone is not None:
            wanted[path] = (name, clone)
            continue
        needing = next((p for p in packages if _within(p, path)), None)
        if needing is not None:
            raise WorktreeError(
                f"the local package {needing} is in the git submodule {path}, which this repository has not "
                f"initialised: run `git submodule update --init {path}`, then rerun"
            )
    return wanted


def create_worktree(
    repo: pygit2.Repository, paths: BuildPaths, sparse_dirs: list[str] | None = None, packages: list[str] | None = None
) -> None:
    """Check out `paths.commit` at `paths.worktree_dir` with a detached HEAD.

    With `sparse_dirs`, only those directories (and files at the root) are
    checked out, in git's cone mode, so the worktree still reports clean.
    Submodules come from the user's own clones (`packages`, the repository
    paths of `local:` packages, must be there). The commit is a full hash and
    directories go through stdin, so nothing here can be read as an option.
    The user's hooks do not run: this is not their checkout.
    """
    submodules = _submodules_to_check_out(repo, paths.commit, sparse_dirs, packages or [])
    remove_worktree(repo, paths)  # whatever a killed run left behind
    paths.build_dir.mkdir(parents=True, exist_ok=True)
    no_hooks = ["-c", "core.hooksPath=/dev/null"]
    add = [*no_hooks, "worktree", "add", "--quiet", "--detach"]
    try:
        if sparse_dirs is None:
            _git([*add, str(paths.worktree_dir), paths.commit], work_tree(repo))
        else:
            _git([*add, "--no-checkout", str(paths.worktree_dir), paths.commit], work_tree(repo))
            _git([*no_hooks, "sparse-checkout", "set", "--cone", "--stdin"], paths.worktree_dir, stdin="\n".join(sparse_dirs) + "\n")
            # `set` only records the cone in a worktree with nothing checked out; this populates it.
            _git([*no_hooks, "read-tree", "-mu", "HEAD"], paths.worktree_dir)
        for path, (name, clone) in submodules.items():
            # The URL given on the command line is not written to the shared .git/config;
            # file:// clones need protocol.file.allow since git 2.38.
            _git(
                [
                    *no_hooks,
                    "-c",
                    "protocol.file.allow=always",
                    "-c",
                    f"submodule.{name}.url={clone}",
                    "submodule",
                    "update",
                    "--init",
                    "--quiet",
                    "--",
                    path,
                ],
                paths.worktree_dir,
            )
    except WorktreeError as exc:
        remove_worktree(repo, paths)
        raise WorktreeError(
            f"could not check out {paths.commit[:12]} at {paths.worktree_dir}: {exc}; nothing was left behind, so fix the cause and rerun"
        ) from exc
    write_atomic(paths.worktree_marker, paths.commit + "\n")


def registrations_under(repo: pygit2.Repository, root: Path) -> dict[Path, str]:
    """Worktree path → registration name, for registered worktrees below `root`."""
    found: dict[Path, str] = {}
    registry = common_dir(repo) / "worktrees"
    for entry in registry.iterdir() if registry.is_dir() else []:
        try:
            worktree = Path((entry / "gitdir").read_text().strip()).parent
        except OSError:
            continue
        if worktree.is_relative_to(root):
            found[worktree] = entry.name
    return found
