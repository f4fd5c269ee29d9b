"""What every benchmark shares: where the tools are, the hermetic environment children run in,
a result and its table, timing and memory helpers, PostgreSQL clean-up (the machine's description is machine.py).

The measures (`bench_*.py`) build on this; they never import each other's harness code from `bench.py`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PY = sys.executable
DBT = str(Path(sys.executable).parent / "dbt")
REPO_ROOT = Path(__file__).resolve().parent.parent
DOT = [PY, "-m", "dot_tasks"]
TIMEOUT = 900
#: The PostgreSQL server of the tests, which the PostgreSQL measures use too.
PG_DSN = os.environ.get("DOT_TASKS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def say(message: str) -> None:
    """Progress, on stderr (stdout carries the figures)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A measurement could not be taken: its row shows the message as an ERROR."""


# --- processes -----------------------------------------------------------------


class Env:
    """Where everything lives, and the environment every child runs with."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        home = tmp / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DBT_", "INVOKE_"))}
        env.update(
            HOME=str(home),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL="/dev/null",
            GIT_AUTHOR_NAME="Bench",
            GIT_AUTHOR_EMAIL="bench@example.com",
            GIT_COMMITTER_NAME="Bench",
            GIT_COMMITTER_EMAIL="bench@example.com",
            GIT_AUTHOR_DATE="2024-01-01T00:00:00Z",
            GIT_COMMITTER_DATE="2024-01-01T00:00:00Z",
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        )
        self.vars = env
        self._inputs: dict[str, Path] = {}

    def run(self, cmd: list[str], cwd: Path, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
        """Run `cmd` in `cwd`: (seconds it took, the finished process); a failure raises BenchError unless `check` is off."""
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=self.vars, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        seconds = time.perf_counter() - started
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise BenchError(f"`{shlex.join(cmd)}` (in {cwd}) exited {proc.returncode}:\n{tail}")
        return seconds, proc

    def git(self, *args: str, cwd: Path) -> str:
        """The stripped stdout of `git args...`."""
        return self.run(["git", *args], cwd)[1].stdout.strip()

    def reuse(self, name: str, make: Callable[[Env], Path]) -> Path:
        """The input `name`, made by `make` the first time it is asked for: measures that share it, share one copy."""
        if name not in self._inputs:
            self._inputs[name] = make(self)
        return self._inputs[name]


def write(path: Path, text: str) -> None:
    """Write dedented `text` to `path`, making its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def count_files(root: Path) -> int:
    """Files below `root`, not counting `.git`."""
    total = 0
    for _dir, dirs, files in os.walk(root):
        if ".git" in dirs:
            dirs.remove(".git")
        total += sum(1 for f in files if f != ".git")
    return total


def commit_all(env: Env, repo: Path, message: str = "bench input", repack: bool = True) -> None:
    """Make `repo` a git repository with everything in it committed on `main`."""
    env.git("init", "-q", "-b", "main", cwd=repo)
    env.git("config", "gc.auto", "0", cwd=repo)  # no background gc during the timings
    env.git("add", "-A", cwd=repo)
    env.git("commit", "-q", "-m", message, cwd=repo)
    if repack:
        env.git("repack", "-a", "-d", "-q", cwd=repo)  # as a real repository would be


def registered_worktrees(env: Env, repo: Path) -> list[str]:
    """The paths git has registered as worktrees of `repo` (the main one included)."""
    text = env.git("worktree", "list", "--porcelain", cwd=repo)
    return [line[len("worktree ") :] for line in text.splitlines() if line.startswith("worktree ")]


def forget_worktree(env: Env, repo: Path, path: Path) -> None:
    """Remove a worktree however it was left: registered or not, directory or not."""
    if str(path) in registered_worktrees(env, repo) or path.exists():
        env.run(["git", "worktree", "remove", "--force", str(path)], repo, check=False)
    shutil.rmtree(path, ignore_errors=True)
    env.git("worktree", "prune", cwd=repo)


def reset_ours(env: Env, repo: Path) -> None:
    """Forget every dot-tasks build of `repo` and its DuckDB warehouse, for a cold run."""
    shutil.rmtree(repo / ".dot", ignore_errors=True)
    env.git("worktree", "prune", cwd=repo)
    for leftover in repo.glob("warehouse.duckdb*"):
        leftover.unlink()


def build_record(repo: Path, commit: str, context: str) -> dict[str, Any]:
    """The build.json dot-tasks wrote for `context@commit` in `repo`."""
    return json.loads((repo / ".dot" / "isolated_builds" / commit / context / "build.json").read_text())


# --- by hand: the baselines ----------------------------------------------------


def dbt_command(verb: list[str], project_dir: Path, profiles_dir: Path, scratch: Path, target: str = "dev") -> list[str]:
    """`dbt <verb...>` as a person runs it by hand: every path named, its target/ and logs/ in `scratch`."""
    return [
        DBT,
        *verb,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--target",
        target,
        "--target-path",
        str(scratch / "target"),
        "--log-path",
        str(scratch / "logs"),
    ]


def build_by_hand(env: Env, repo: Path, hand: Path, profiles_yml: Callable[[str], str]) -> float:
    """Seconds of what `dot-tasks run` does, by hand: git rev-parse + git worktree add + profiles.yml + dbt build.

    `profiles_yml(short)` is the profile's text for the commit's short hash; `hand` is emptied first.
    """
    wt, conf = hand / "worktree", hand / "dbt"
    forget_worktree(env, repo, wt)
    shutil.rmtree(hand, ignore_errors=True)
    started = time.perf_counter()
    short = env.git("rev-parse", "--short=8", "HEAD", cwd=repo)
    env.run(["git", "worktree", "add", "--detach", str(wt), "HEAD"], repo)
    write(conf / "profiles.yml", profiles_yml(short))
    env.run(dbt_command(["build"], wt, conf, conf), wt)
    return time.perf_counter() - started


def psql_script(dsn: str, sql: str) -> list[str]:
    """`psql` running `sql` as one transaction, stopping at the first error."""
    return ["psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-1", "-c", sql]


def pg_answers(dsn: str = PG_DSN) -> bool:
    """Whether a PostgreSQL server answers at `dsn` (the PostgreSQL rows are skipped when none does)."""
    try:
        import psycopg2

        psycopg2.connect(dsn, connect_timeout=3).close()
    except Exception:  # noqa: BLE001 - no server, or no driver: either way there is nothing to measure
        return False
    return True


def drop_pg_schemas(like: str, dsn: str = PG_DSN) -> None:
    """Drop, with what depends on them, the benchmark's schemas whose name is LIKE `like`."""
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select nspname from pg_namespace where nspname like %s", (like,))
        for (name,) in cur.fetchall():
            cur.execute(f'drop schema "{name}" cascade')


# --- timing and memory ---------------------------------------------------------


def interleave(repeat: int, ours: Callable[[], float], baseline: Callable[[], float], result: Result) -> None:
    """Alternate which side goes first, so neither always gets the warmer cache.

    Each sample starts with `sync`, so that writing back what the previous
    sample (or its cleanup) left dirty is not charged to the next one.
    """
    for i in range(repeat):
        order = [(ours, result.ours), (baseline, result.baseline)]
        for action, bucket in order if i % 2 == 0 else order[::-1]:
            os.sync()
            bucket.append(action())
    spread = [
        f"{label} {(max(v) - min(v)) / statistics.median(v) * 100:.0f}%"
        for label, v in (("ours", result.ours), ("baseline", result.baseline))
        if v and statistics.median(v)
    ]
    result.notes.append("spread (max-min)/median: " + ", ".join(spread))


def forked_from_shell(cmd: list[str]) -> list[str]:
    """`cmd`, started by a small shell rather than by this script.

    Linux carries a process's ru_maxrss across exec, so a child forked from
    this (large) script would report at least this script's size. `sh` forks
    the command (it cannot exec it: another command follows).
    """
    return ["sh", "-c", shlex.join(cmd) + "; rc=$?; exit $rc"]


def rss_marker(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The figures a memory wrapper printed on its `BENCH_RSS {...}` line."""
    marker = [line for line in proc.stdout.strip().splitlines() if line.startswith("BENCH_RSS ")]
    if not marker:
        raise BenchError(f"the memory wrapper printed no BENCH_RSS line: {proc.stderr.strip()[-500:]}")
    return json.loads(marker[-1][len("BENCH_RSS ") :])


# --- results -------------------------------------------------------------------


@dataclass
class Result:
    """One row of the table: our samples beside the baseline's, and the target they are held to."""

    key: str
    name: str
    unit: str  # "s" or "MB"
    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    baseline_label: str = ""
    #: "ratio" (ours/baseline <= target), "abs" (ours <= target) or "diff" (ours - baseline <= target).
    target_kind: str | None = None
    target: float | None = None
    notes: list[str] = field(default_factory=list)
    #: Checks besides the timing that failed (e.g. "imports dbt"): they turn PASS into MISS.
    failed_checks: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ours_median(self) -> float | None:
        """The median of our samples."""
        return statistics.median(self.ours) if self.ours else None

    @property
    def baseline_median(self) -> float | None:
        """The median of the baseline's samples."""
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        """Ours over the baseline, medians."""
        o, b = self.ours_median, self.baseline_median
        return o / b if o is not None and b else None

    @property
    def measured(self) -> float | None:
        """The figure the target is held to: the ratio, our median, or the difference."""
        if self.target_kind == "ratio":
            return self.ratio
        if self.target_kind == "abs":
            return self.ours_median
        if self.target_kind == "diff" and self.ours_median is not None and self.baseline_median is not None:
            return self.ours_median - self.baseline_median
        return None

    @property
    def status(self) -> str:
        """ERROR, MISS, PASS, or INFO for a row with no target."""
        if self.error:
            return "ERROR"
        if self.failed_checks:
            return "MISS"
        if self.target_kind is None or self.measured is None:
            return "INFO"
        return "PASS" if self.measured <= self.target else "MISS"

    @property
    def target_text(self) -> str:
        """The target, as the table shows it."""
        if self.target_kind == "ratio":
            return f"ratio <= {self.target:g}"
        if self.target_kind == "abs":
            return f"ours <= {self.target:g} {self.unit}"
        if self.target_kind == "diff":
            return f"ours-base <= {self.target:g} {self.unit}"
        return "-"

    def as_dict(self) -> dict[str, Any]:
        """The row for `--json`: its fields and every derived figure."""
        data = asdict(self)
        data.update(
            ours_median=self.ours_median,
            baseline_median=self.baseline_median,
            ratio=self.ratio,
            measured=self.measured,
            status=self.status,
            target_text=self.target_text,
        )
        return data


def fmt(value: float | None, unit: str) -> str:
    """A figure with its unit, or `-`."""
    if value is None:
        return "-"
    return f"{value:.3f} s" if unit == "s" else f"{value:.1f} {unit}"


def print_table(results: list[Result]) -> None:
    """The table of medians, then each row's samples and notes."""
    header = ("name", "ours (median)", "baseline (median)", "ratio", "target", "result")
    rows = [header]
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        if r.target_kind == "diff" and r.measured is not None:
            ratio += f" ({r.measured:+.3f} s)"
        rows.append((f"{r.key} {r.name}", fmt(r.ours_median, r.unit), fmt(r.baseline_median, r.unit), ratio, r.target_text, r.status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) if i in (0, 4, 5) else cell.rjust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for r in results:
        base = f"baseline = {r.baseline_label}" if r.baseline_label else ""
        runs = (
            f"ours runs: {', '.join(fmt(v, r.unit) for v in r.ours) or '-'}; "
            f"baseline runs: {', '.join(fmt(v, r.unit) for v in r.baseline) or '-'}"
        )
        print(f"{r.key} {r.name}: {base}")
        print(f"    {runs}")
        for note in r.notes:
            print(f"    {note}")
        if r.error:
            print("    ERROR: " + r.error.replace("\n", "\n      "))
