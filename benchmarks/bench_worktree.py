"""(a) and (b): `dot-tasks worktree` vs `git worktree add --detach` in a 20,000-file repository,
with the dbt project at the root (a) and in analytics/, checked out sparsely (b)."""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness import DOT, BenchError, Env, Result, count_files, forget_worktree, interleave, registered_worktrees, say
from projects import DATA_DIRS, FILES_PER_DIR, make_big_repo


def big_repo(env: Env) -> Path:
    """The 20k-file repository, made once for (a) and (b)."""

    def make(env: Env) -> Path:
        say(f"generating a {DATA_DIRS * FILES_PER_DIR}-file repository ...")
        return make_big_repo(env)

    return env.reuse("big", make)


def measure_a(env: Env, args: argparse.Namespace) -> list[Result]:
    """(a): the project at the repository's root, so the whole repository is checked out."""
    big = big_repo(env)
    return [worktree_comparison(env, big, big, "a", "worktree, 20k files, project at root", 1.25, args.repeat, False)]


def measure_b(env: Env, args: argparse.Namespace) -> list[Result]:
    """(b): the project in analytics/, so ours checks out ~1% of the files."""
    big = big_repo(env)
    return [worktree_comparison(env, big, big / "analytics", "b", "worktree, project in analytics/ (sparse)", 0.2, args.repeat, True)]


@dataclass
class Seen:
    """What the first of our worktrees held, and how long each `clean` took."""

    files: int | None = None
    project_ok: bool = False
    package_ok: bool = False
    git_status: subprocess.CompletedProcess | None = None
    baseline_files: int | None = None
    clean_times: list[float] = field(default_factory=list)


def dot_worktree_path(out: str) -> Path:
    """The path `dot-tasks worktree` printed last."""
    lines = [line for line in out.strip().splitlines() if line.strip()]
    if not lines:
        raise BenchError("`dot-tasks worktree` printed no path")
    return Path(lines[-1].strip())


def _ours(env: Env, repo: Path, project: Path, seen: Seen, result: Result) -> float:
    """One `dot-tasks worktree`, timed; then the tool's own clean (untimed, checked, with a fallback by hand)."""
    seconds, proc = env.run([*DOT, "worktree", "--ref", "HEAD"], project)
    path = dot_worktree_path(proc.stdout)
    if not path.is_dir():
        raise BenchError(f"`dot-tasks worktree` printed {path}, which is not a directory")
    if seen.files is None:
        seen.files = count_files(path)
        rel = project.relative_to(repo)
        seen.project_ok = (path / rel / "dbt_project.yml").is_file() if str(rel) != "." else (path / "dbt_project.yml").is_file()
        seen.package_ok = (path / "packages" / "macros_pkg" / "dbt_project.yml").is_file()
        seen.git_status = env.run(["git", "status", "--porcelain"], path, check=False)[1]
    took, cleaned = env.run([*DOT, "clean", "--ref", "HEAD", "--keep-schemas"], project, check=False)
    seen.clean_times.append(took)
    leftovers = [w for w in registered_worktrees(env, repo) if Path(w) != repo]
    if cleaned.returncode != 0 or path.exists() or leftovers:
        result.notes.append(
            f"`dot-tasks clean --ref HEAD --keep-schemas` left things behind (exit {cleaned.returncode}, "
            f"dir exists: {path.exists()}, registered: {leftovers}): {cleaned.stderr.strip()[-300:]}"
        )
        forget_worktree(env, repo, path)
        shutil.rmtree(project / ".dot", ignore_errors=True)
    return seconds


def _baseline(env: Env, repo: Path, base_path: Path, seen: Seen) -> float:
    """One `git worktree add --detach`, timed, removed again."""
    forget_worktree(env, repo, base_path)
    seconds, _ = env.run(["git", "worktree", "add", "--detach", str(base_path), "HEAD"], repo)
    if seen.baseline_files is None:
        seen.baseline_files = count_files(base_path)
    forget_worktree(env, repo, base_path)
    return seconds


def _notes(result: Result, seen: Seen, repo: Path, project: Path, sparse_check: bool) -> None:
    result.notes.append(
        f"files checked out: ours {seen.files}, baseline {seen.baseline_files} "
        f"(repo has {DATA_DIRS * FILES_PER_DIR} data files + dbt projects)"
    )
    if sparse_check:
        result.notes.append(
            f"ours has {project.relative_to(repo)}/dbt_project.yml: {'yes' if seen.project_ok else 'NO'}; "
            f"packages/macros_pkg (local package outside the project): {'yes' if seen.package_ok else 'NO'}"
        )
    status = seen.git_status
    if status is not None:
        changed = [line for line in status.stdout.splitlines() if line.strip()]
        result.notes.append(
            f"`git status` in our worktree: {'clean' if not changed and status.returncode == 0 else f'{len(changed)} changes, exit {status.returncode}: ' + '; '.join(changed[:3])}"
        )
    if seen.clean_times:
        result.notes.append(
            f"`dot-tasks clean --ref HEAD --keep-schemas` (not timed above): median {statistics.median(seen.clean_times):.3f} s"
        )


def worktree_comparison(env: Env, repo: Path, project: Path, key: str, name: str, target: float, repeat: int, sparse_check: bool) -> Result:
    """Our worktree of HEAD for `project` against git's full checkout of `repo`, `repeat` times each."""
    result = Result(
        key, name, "s", baseline_label="`git worktree add --detach <path> HEAD` (full checkout)", target_kind="ratio", target=target
    )
    base_path = env.tmp / f"baseline-wt-{key}"
    seen = Seen()
    interleave(repeat, lambda: _ours(env, repo, project, seen, result), lambda: _baseline(env, repo, base_path, seen), result)
    _notes(result, seen, repo, project, sparse_check)
    return result
