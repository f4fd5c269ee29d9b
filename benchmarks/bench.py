#!/usr/bin/env python3
"""Benchmarks for dot-tasks: each figure side by side with doing the same by hand.

    python benchmarks/bench.py [--repeat 3] [--only a,b,c,d,e] [--json] [--keep]
    python benchmarks/bench.py spark        # only what is named (spark is never run by default)

It builds its own inputs (git repositories, dbt projects, a DuckDB warehouse)
in a temporary directory, with git and dbt cut off from the user's settings,
and prints a table of medians:

  a  `dot-tasks worktree` vs `git worktree add --detach`, 20k-file repo, dbt project at the root
  b  the same with the dbt project in a subdirectory (~1% of the files): sparse checkout
  c  latency of resolve / worktree (reused) / profile / list / --help, and whether they import dbt
  d  `dot-tasks run` vs the same steps by hand (git worktree add + profiles.yml + dbt build),
     30-model DuckDB project: cold, then a warm re-run of the same commit
  e  peak memory (ru_maxrss) of the orchestrating process of a `dot-tasks run`
  report  the lineage report of a generated 200-model diff with 20 changes: size, write time,
     time to show in headless Chromium (bench_report.py, which also runs alone)
  slim  `run --defer-to` with one leaf changed vs the full `run` of the base, 200-model DuckDB
     project; and the same with `--clone` (`bench.py slim` runs only this one)
  diff  `dot-tasks diff --no-build --select big` of a 1,000,000-row, 10-column model (1% changed,
     0.5% added, 0.5% removed) vs `dbt show --inline` with one full-outer-join count query, on
     DuckDB and PostgreSQL; and the orchestrator's peak memory at 10,000 vs 1,000,000 rows
  diff-apart  the same model in two PostgreSQL databases with 0.1% of rows changed: rows transferred
  promote  `dot-tasks promote` of a 200-model PostgreSQL build vs a hand-written transaction
     replacing the same 200 views (psql, and the same transaction run by one dbt start), and
     the same promotion when every model holds 10 rows or 1,000,000 (`--promote-rows`)
  spark  `dot-tasks run` vs the same steps by hand on Spark in session mode (needs java and
     the spark extra): cold, into one shared Derby metastore

This is a plain script, not a test: it reports, it does not assert. It exits 1
only when a measurement could not be taken.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
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
MEASUREMENTS = ["a", "b", "c", "d", "e"]
#: Asked for by name (`bench.py slim`, or `--only slim`), not part of the default run: they need PostgreSQL, Chromium or the spark extra.
EXTRA_MEASUREMENTS = ["report", "slim", "diff", "diff-apart", "promote", "spark"]
TIMEOUT = 900

# The big repository of (a) and (b).
DATA_DIRS, FILES_PER_DIR, FILE_BYTES = 200, 100, 300
ANALYTICS_MODELS = 190  # + a few project files: ~1% of the repository
# The DuckDB project of (d) and (e).
DUCK_MODELS = 30


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


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

    def run(self, cmd: list[str], cwd: Path, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=self.vars, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        seconds = time.perf_counter() - started
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise BenchError(f"`{shlex.join(cmd)}` (in {cwd}) exited {proc.returncode}:\n{tail}")
        return seconds, proc

    def git(self, *args: str, cwd: Path) -> str:
        return self.run(["git", *args], cwd)[1].stdout.strip()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def count_files(root: Path) -> int:
    total = 0
    for _dir, dirs, files in os.walk(root):
        if ".git" in dirs:
            dirs.remove(".git")
        total += sum(1 for f in files if f != ".git")
    return total


def commit_all(env: Env, repo: Path) -> None:
    env.git("init", "-q", "-b", "main", cwd=repo)
    env.git("config", "gc.auto", "0", cwd=repo)  # no background gc during the timings
    env.git("add", "-A", cwd=repo)
    env.git("commit", "-q", "-m", "bench input", cwd=repo)
    env.git("repack", "-a", "-d", "-q", cwd=repo)  # as a real repository would be


# --- inputs --------------------------------------------------------------------


def duckdb_profiles(profile: str, path: str = "warehouse.duckdb", threads: int = 4) -> str:
    return f"""
        {profile}:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: {path}
              schema: dev
              threads: {threads}
        """


def make_big_repo(env: Env) -> Path:
    """20,000 small files, a dbt project at the root and another in analytics/ (~1%)."""
    repo = env.tmp / "big"
    blob = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 10)[:FILE_BYTES]
    for d in range(DATA_DIRS):
        directory = repo / "data" / f"d{d:03d}"
        directory.mkdir(parents=True)
        for f in range(FILES_PER_DIR):
            # Distinct contents, so git stores 20k blobs, not one.
            (directory / f"f{f:03d}.txt").write_text(f"{d}/{f}\n{blob}\n")
    # (a): a small dbt project at the root.
    write(
        repo / "dbt_project.yml",
        """
        name: root_project
        profile: bench
        config-version: 2
        """,
    )
    write(repo / "profiles.yml", duckdb_profiles("bench"))
    write(repo / "models" / "root_a.sql", "select 1 as id\n")
    write(repo / "models" / "root_b.sql", "select * from {{ ref('root_a') }}\n")
    write(repo / ".gitignore", "warehouse.duckdb\ntarget/\nlogs/\ndbt_packages/\n")
    # (b): the dbt project in analytics/, with a local package outside it.
    an = repo / "analytics"
    write(
        an / "dbt_project.yml",
        """
        name: analytics
        profile: analytics
        config-version: 2
        models:
          analytics:
            +materialized: view
        """,
    )
    write(
        an / "packages.yml",
        """
        packages:
          - local: ../packages/macros_pkg
        """,
    )
    write(an / "profiles.yml", duckdb_profiles("analytics"))
    write(an / "models" / "schema.yml", "version: 2\nmodels:\n  - name: m000\n    description: first\n")
    for i in range(ANALYTICS_MODELS):
        source = "select 1 as id" if i == 0 else f"select * from {{{{ ref('m{i - 1:03d}') }}}}"
        write(an / "models" / f"g{i // 50}" / f"m{i:03d}.sql", source + "\n")
    pkg = repo / "packages" / "macros_pkg"
    write(
        pkg / "dbt_project.yml",
        """
        name: macros_pkg
        config-version: 2
        """,
    )
    write(
        pkg / "macros" / "cents.sql",
        """
        {% macro cents(column) %}({{ column }} * 100){% endmacro %}
        """,
    )
    commit_all(env, repo)
    return repo


def make_small_repo(env: Env) -> Path:
    repo = env.tmp / "small"
    write(
        repo / "dbt_project.yml",
        """
        name: small
        profile: small
        config-version: 2
        models:
          small:
            +materialized: table
        """,
    )
    write(repo / "profiles.yml", duckdb_profiles("small"))
    write(repo / "seeds" / "raw.csv", "id,amount\n1,10\n2,20\n3,30\n")
    write(repo / "models" / "a.sql", "select * from {{ ref('raw') }}\n")
    write(repo / "models" / "b.sql", "select id, amount * 2 as amount from {{ ref('a') }}\n")
    write(repo / "models" / "c.sql", "select count(*) as n from {{ ref('b') }}\n")
    write(repo / ".gitignore", "warehouse.duckdb\ntarget/\nlogs/\n")
    commit_all(env, repo)
    return repo


def make_duck_repo(env: Env) -> Path:
    """1 seed and 30 table models: five fanned out from the seed, the rest joining two earlier ones."""
    repo = env.tmp / "duck"
    write(
        repo / "dbt_project.yml",
        """
        name: duck
        profile: duck
        config-version: 2
        models:
          duck:
            +materialized: table
        """,
    )
    write(repo / "profiles.yml", duckdb_profiles("duck", threads=4))
    rows = "\n".join(f"{i},{'abcde'[i % 5]},{i * 7 % 101}" for i in range(1, 501))
    write(repo / "seeds" / "raw_events.csv", "id,grp,amount\n" + rows + "\n")
    for i in range(1, DUCK_MODELS + 1):
        if i <= 5:
            sql = f"select id, grp, amount + {i} as amount from {{{{ ref('raw_events') }}}}\n"
        else:
            first, second = f"m{i - 5:02d}", f"m{i - 3:02d}"
            sql = (
                f"select a.id, a.grp, a.amount + b.amount as amount\n"
                f"from {{{{ ref('{first}') }}}} a\njoin {{{{ ref('{second}') }}}} b using (id)\n"
            )
        write(repo / "models" / f"m{i:02d}.sql", sql)
    write(repo / ".gitignore", "warehouse.duckdb\ntarget/\nlogs/\n")
    commit_all(env, repo)
    return repo


# --- results -------------------------------------------------------------------


@dataclass
class Result:
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
        return statistics.median(self.ours) if self.ours else None

    @property
    def baseline_median(self) -> float | None:
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        o, b = self.ours_median, self.baseline_median
        return o / b if o is not None and b else None

    @property
    def measured(self) -> float | None:
        if self.target_kind == "ratio":
            return self.ratio
        if self.target_kind == "abs":
            return self.ours_median
        if self.target_kind == "diff" and self.ours_median is not None and self.baseline_median is not None:
            return self.ours_median - self.baseline_median
        return None

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        if self.failed_checks:
            return "MISS"
        if self.target_kind is None or self.measured is None:
            return "INFO"
        return "PASS" if self.measured <= self.target else "MISS"

    @property
    def target_text(self) -> str:
        if self.target_kind == "ratio":
            return f"ratio <= {self.target:g}"
        if self.target_kind == "abs":
            return f"ours <= {self.target:g} {self.unit}"
        if self.target_kind == "diff":
            return f"ours-base <= {self.target:g} {self.unit}"
        return "-"

    def as_dict(self) -> dict[str, Any]:
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
    if value is None:
        return "-"
    return f"{value:.3f} s" if unit == "s" else f"{value:.1f} {unit}"


def print_table(results: list[Result]) -> None:
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


# --- machine -------------------------------------------------------------------


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _filesystem(path: Path) -> str:
    best, kind = "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) >= len(best):
                best, kind = parts[1], parts[2]
    except OSError:
        pass
    return f"{kind} (mounted at {best or '?'})"


def machine_info(tmp: Path) -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no", "--", "dot_tasks"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    try:
        import pygit2

        libgit2 = f"pygit2 {pygit2.__version__} (libgit2 {pygit2.LIBGIT2_VERSION})"
    except ImportError:
        libgit2 = "pygit2 not importable"
    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} (usable: {usable})",
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_version()} ({PY})",
        "git": git,
        "dbt": f"dbt-core {_version('dbt-core')}, dbt-duckdb {_version('dbt-duckdb')} ({DBT})",
        "libs": f"{libgit2}, invoke {_version('invoke')}",
        "dot-tasks": f"{_version('dot-tasks')} at {REPO_ROOT} commit {head}" + (" + uncommitted changes in dot_tasks/" if dirty else ""),
        "work dir": f"{tmp} on {_filesystem(tmp)}",
        "load": load_average(),
        "bytecode": (
            "PYTHONDONTWRITEBYTECODE is set: modules without a .pyc (e.g. an editable dot_tasks) are compiled on every start"
            if os.environ.get("PYTHONDONTWRITEBYTECODE")
            else "normal"
        ),
    }


def busy_warning() -> str | None:
    """A warning when other processes already keep the CPUs busy."""
    try:
        one_minute = float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    cpus = os.cpu_count() or 1
    if one_minute >= 0.5 * cpus:
        return f"load average {one_minute:.2f} on {cpus} CPUs before starting: other processes compete, so the figures are noisy"
    return None


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3]) + " (1, 5, 15 min)"
    except OSError:
        return "?"


# --- measurements --------------------------------------------------------------


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


def dot_worktree_path(out: str) -> Path:
    lines = [line for line in out.strip().splitlines() if line.strip()]
    if not lines:
        raise BenchError("`dot-tasks worktree` printed no path")
    return Path(lines[-1].strip())


def registered_worktrees(env: Env, repo: Path) -> list[str]:
    text = env.git("worktree", "list", "--porcelain", cwd=repo)
    return [line[len("worktree ") :] for line in text.splitlines() if line.startswith("worktree ")]


def forget_worktree(env: Env, repo: Path, path: Path) -> None:
    """Remove a worktree however it was left: registered or not, directory or not."""
    if str(path) in registered_worktrees(env, repo) or path.exists():
        env.run(["git", "worktree", "remove", "--force", str(path)], repo, check=False)
    shutil.rmtree(path, ignore_errors=True)
    env.git("worktree", "prune", cwd=repo)


def worktree_comparison(env: Env, repo: Path, project: Path, key: str, name: str, target: float, repeat: int, sparse_check: bool) -> Result:
    result = Result(
        key, name, "s", baseline_label="`git worktree add --detach <path> HEAD` (full checkout)", target_kind="ratio", target=target
    )
    base_path = env.tmp / f"baseline-wt-{key}"
    clean_times: list[float] = []
    seen: dict[str, Any] = {}

    def ours() -> float:
        seconds, proc = env.run([*DOT, "worktree", "--ref", "HEAD"], project)
        path = dot_worktree_path(proc.stdout)
        if not path.is_dir():
            raise BenchError(f"`dot-tasks worktree` printed {path}, which is not a directory")
        if "files" not in seen:
            seen["files"] = count_files(path)
            seen["path"] = path
            rel = project.relative_to(repo)
            seen["project_ok"] = (path / rel / "dbt_project.yml").is_file() if str(rel) != "." else (path / "dbt_project.yml").is_file()
            seen["package_ok"] = (path / "packages" / "macros_pkg" / "dbt_project.yml").is_file()
            seen["git_status"] = env.run(["git", "status", "--porcelain"], path, check=False)[1]
        # Fresh for the next run: the tool's own clean, checked, with a fallback by hand.
        took, cleaned = env.run([*DOT, "clean", "--ref", "HEAD", "--keep-schemas"], project, check=False)
        clean_times.append(took)
        leftovers = [w for w in registered_worktrees(env, repo) if Path(w) != repo]
        if cleaned.returncode != 0 or path.exists() or leftovers:
            result.notes.append(
                f"`dot-tasks clean --ref HEAD --keep-schemas` left things behind (exit {cleaned.returncode}, "
                f"dir exists: {path.exists()}, registered: {leftovers}): {cleaned.stderr.strip()[-300:]}"
            )
            forget_worktree(env, repo, path)
            shutil.rmtree(project / ".dot", ignore_errors=True)
        return seconds

    def baseline() -> float:
        forget_worktree(env, repo, base_path)
        seconds, _ = env.run(["git", "worktree", "add", "--detach", str(base_path), "HEAD"], repo)
        if "files" not in seen.setdefault("base", {}):
            seen["base"]["files"] = count_files(base_path)
        forget_worktree(env, repo, base_path)
        return seconds

    interleave(repeat, ours, baseline, result)
    result.notes.append(
        f"files checked out: ours {seen.get('files')}, baseline {seen['base'].get('files')} "
        f"(repo has {DATA_DIRS * FILES_PER_DIR} data files + dbt projects)"
    )
    if sparse_check:
        result.notes.append(
            f"ours has {project.relative_to(repo)}/dbt_project.yml: {'yes' if seen.get('project_ok') else 'NO'}; "
            f"packages/macros_pkg (local package outside the project): {'yes' if seen.get('package_ok') else 'NO'}"
        )
    status = seen.get("git_status")
    if status is not None:
        changed = [line for line in status.stdout.splitlines() if line.strip()]
        result.notes.append(
            f"`git status` in our worktree: {'clean' if not changed and status.returncode == 0 else f'{len(changed)} changes, exit {status.returncode}: ' + '; '.join(changed[:3])}"
        )
    if clean_times:
        result.notes.append(f"`dot-tasks clean --ref HEAD --keep-schemas` (not timed above): median {statistics.median(clean_times):.3f} s")
    return result


def measure_a(env: Env, repeat: int, big: Path) -> list[Result]:
    return [worktree_comparison(env, big, big, "a", "worktree, 20k files, project at root", 1.25, repeat, False)]


def measure_b(env: Env, repeat: int, big: Path) -> list[Result]:
    return [worktree_comparison(env, big, big / "analytics", "b", "worktree, project in analytics/ (sparse)", 0.2, repeat, True)]


FORBIDDEN_PREFIXES = ("dbt.cli", "dbt.task", "dbt.config")
FORBIDDEN_MODULES = ("dbt.version", "dbt.adapters.factory")


def import_report(stderr: str) -> tuple[list[str], bool, list[tuple[str, int]]]:
    """(forbidden dbt modules imported, whether `dbt` itself was, slowest package imports in µs)."""
    forbidden, top = [], []
    saw_dbt = False
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        raw = parts[2]
        module = raw.strip()
        if module == "dbt" or module.startswith("dbt."):
            saw_dbt = True
        if module.startswith(FORBIDDEN_PREFIXES) or module in FORBIDDEN_MODULES:
            forbidden.append(module)
        # Third-party and stdlib packages (not submodules, not our own), wherever first imported.
        if "." not in module and module not in ("dot_tasks", "site", "runpy", "encodings"):
            top.append((module, int(parts[1].strip())))
    top.sort(key=lambda item: -item[1])
    return forbidden, saw_dbt, top[:5]


def measure_c(env: Env, repeat: int) -> list[Result]:
    repo = make_small_repo(env)
    env.run([*DOT, "worktree", "--ref", "HEAD"], repo)  # so that `worktree` below is the reused case
    commands = {
        "resolve": ["resolve", "--ref", "HEAD"],
        "worktree (reused)": ["worktree", "--ref", "HEAD"],
        "profile": ["profile", "--ref", "HEAD", "--context", "dev"],
        "list": ["list"],
        "--help": ["--help"],
    }
    results = []
    for label, args in commands.items():
        result = Result(
            "c", f"latency `{label}`", "s", baseline_label="`python -c pass` (interpreter start)", target_kind="abs", target=0.3
        )
        try:
            interleave(repeat, lambda args=args: env.run([*DOT, *args], repo)[0], lambda: env.run([PY, "-c", "pass"], repo)[0], result)
            _, proc = env.run([PY, "-X", "importtime", "-m", "dot_tasks", *args], repo)
            forbidden, saw_dbt, top = import_report(proc.stderr)
            shown = ", ".join(sorted(set(forbidden))[:6]) + (" ..." if len(set(forbidden)) > 6 else "")
            result.notes.append(
                f"imports dbt: {'yes (' + shown + ')' if forbidden else 'no'}"
                + ("" if forbidden else f" (the `dbt` namespace itself: {'yes' if saw_dbt else 'no'})")
            )
            result.notes.append(
                "slowest package imports (cumulative): " + ", ".join(f"{name} {micro / 1000:.0f} ms" for name, micro in top)
            )
            if forbidden:
                result.failed_checks.append("imports dbt")
        except BenchError as exc:
            result.error = str(exc)
        results.append(result)
    return results


def reset_ours(env: Env, repo: Path) -> None:
    shutil.rmtree(repo / ".dot", ignore_errors=True)
    env.git("worktree", "prune", cwd=repo)
    for leftover in repo.glob("warehouse.duckdb*"):
        leftover.unlink()


def by_hand_profile(directory: Path, schema: str, database: Path) -> None:
    write(
        directory / "profiles.yml",
        f"""
        duck:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: {database}
              schema: {schema}
              threads: 4
        """,
    )


PARTIAL_PARSE_MISS = "Unable to do partial parsing"


def measure_d(env: Env, repeat: int, repo: Path) -> list[Result]:
    cold = Result(
        "d",
        f"cold run, {DUCK_MODELS}-model DuckDB project",
        "s",
        baseline_label="by hand: git rev-parse + git worktree add --detach + write profiles.yml + "
        "dbt build (fresh warehouse, no partial parse)",
        target_kind="ratio",
        target=1.05,
    )
    warm = Result(
        "d",
        "warm re-run, same commit",
        "s",
        baseline_label="by hand: dbt build again with the same flags (partial parse present)",
        target_kind="diff",
        target=0.2,
    )
    hand = env.tmp / "byhand"
    wt, conf = hand / "worktree", hand / "dbt"
    database = repo / "warehouse.duckdb"
    run_cmd = [*DOT, "run", "--context", "dev", "--ref", "HEAD"]
    dbt_cmd = [
        DBT,
        "build",
        "--project-dir",
        str(wt),
        "--profiles-dir",
        str(conf),
        "--target",
        "dev",
        "--target-path",
        str(conf / "target"),
        "--log-path",
        str(conf / "logs"),
    ]
    partial_misses = {"ours": 0, "by hand": 0}

    def ours_cold() -> float:
        reset_ours(env, repo)
        return env.run(run_cmd, repo)[0]

    def hand_cold() -> float:
        forget_worktree(env, repo, wt)
        shutil.rmtree(hand, ignore_errors=True)
        for leftover in repo.glob("warehouse.duckdb*"):
            leftover.unlink()
        started = time.perf_counter()
        short = env.git("rev-parse", "--short=8", "HEAD", cwd=repo)
        env.run(["git", "worktree", "add", "--detach", str(wt), "HEAD"], repo)
        by_hand_profile(conf, f"dev_{short}", database)
        env.run(dbt_cmd, wt)
        return time.perf_counter() - started

    def ours_warm() -> float:
        seconds, proc = env.run(run_cmd, repo)
        partial_misses["ours"] += PARTIAL_PARSE_MISS in proc.stderr + proc.stdout
        return seconds

    def hand_warm() -> float:
        seconds, proc = env.run(dbt_cmd, wt)
        partial_misses["by hand"] += PARTIAL_PARSE_MISS in proc.stderr + proc.stdout
        return seconds

    try:
        interleave(repeat, ours_cold, hand_cold, cold)
    except BenchError as exc:
        cold.error = str(exc)
        warm.error = "skipped: the cold runs failed"
        return [cold, warm]
    try:
        # Both sides now hold a finished build of HEAD: one untimed re-run each settles caches.
        ours_warm()
        hand_warm()
        partial_misses.update({"ours": 0, "by hand": 0})
        interleave(repeat, ours_warm, hand_warm, warm)
        warm.notes.append(
            f"runs whose dbt output said '{PARTIAL_PARSE_MISS}': ours {partial_misses['ours']}/"
            f"{repeat}, by hand {partial_misses['by hand']}/{repeat}"
        )
        _, proc = env.run([*run_cmd, "--json"], repo)
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        steps = [line.split("dot-tasks: ", 1)[1] for line in proc.stderr.splitlines() if line.startswith("dot-tasks: ")]
        warm.notes.append(
            "dot-tasks' own step times in a warm run: "
            + " | ".join(" ".join(s.split()[:1] + [s.rsplit("(", 1)[-1].rstrip(")")]) for s in steps)
        )
        warm.notes.append(f"schema {summary.get('schema')}, status {summary.get('status')}")
    except (BenchError, ValueError, IndexError) as exc:
        warm.error = str(exc)
    return [cold, warm]


MEMORY_WRAPPER = """
import json, resource, sys
from dot_tasks.main import program
program.run(["dot-tasks", "run", "--context", "dev", "--ref", "HEAD", "--json"], exit=False)
sys.stdout.flush()
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("BENCH_RSS " + json.dumps({"self_kb": me, "children_kb": children, "hwm_kb": hwm}))
"""
MAXRSS = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def forked_from_shell(cmd: list[str]) -> list[str]:
    """`cmd`, started by a small shell rather than by this script.

    Linux carries a process's ru_maxrss across exec, so a child forked from
    this (large) script would report at least this script's size. `sh` forks
    the command (it cannot exec it: another command follows).
    """
    return ["sh", "-c", shlex.join(cmd) + "; rc=$?; exit $rc"]


def make_slim_repo(env: Env) -> Path:
    """main, and two PR commits off it with the same one-leaf change (one per kind of deferred run)."""
    from projects import change_slim_leaf, make_slim_project

    repo = env.tmp / "slim"
    make_slim_project(repo)
    commit_all(env, repo)
    for branch in ("pr", "pr-clone"):
        env.git("checkout", "-q", "-b", branch, "main", cwd=repo)
        change_slim_leaf(repo, branch)
        env.git("commit", "-q", "-am", f"{branch}: change the leaf", cwd=repo)
    env.git("checkout", "-q", "main", cwd=repo)
    return repo


def measure_slim(env: Env, repeat: int, repo: Path) -> list[Result]:
    from projects import SLIM_MODELS, slim_leaf

    deferred = Result(
        "slim",
        f"deferred run, one leaf changed, {SLIM_MODELS}-model DuckDB project",
        "s",
        baseline_label=f"the full `run prod@main` of the same project (all {SLIM_MODELS} models, "
        "cold: new worktree, full parse), in the same repeat",
        target_kind="ratio",
        target=0.15,
    )
    cloned = Result("slim", "the same deferred run with --clone", "s", baseline_label="the same full run")
    built: list[str] = []
    executing: list[float] = []
    for _ in range(repeat):
        reset_ours(env, repo)
        os.sync()
        full, _ = env.run([*DOT, "run", "prod@main"], repo)
        os.sync()
        slim, proc = env.run([*DOT, "run", "dev@pr", "--defer-to", "prod@main", "--json"], repo)
        os.sync()
        with_clone, _ = env.run([*DOT, "run", "dev@pr-clone", "--defer-to", "prod@main", "--clone"], repo)
        deferred.ours.append(slim)
        cloned.ours.append(with_clone)
        deferred.baseline.append(full)
        cloned.baseline.append(full)
        target = Path(json.loads(proc.stdout.strip().splitlines()[-1])["target_path"])
        run_results = json.loads((target / "run_results.json").read_text())
        built.append(",".join(sorted(r["unique_id"].rsplit(".", 1)[-1] for r in run_results["results"])))
        executing.append(float(run_results.get("elapsed_time") or 0))
    deferred.notes.append(f"models built by each deferred run: {'; '.join(built)} (expected: {slim_leaf()})")
    deferred.notes.append(
        f"of each deferred run, dbt executing its one model: {', '.join(f'{v:.2f} s' for v in executing)}; "
        "the rest is the fixed cost every run pays: Python and dbt starting, and dbt's full parse of all "
        f"{SLIM_MODELS} models (a new commit has no partial parse to reuse: its schema differs, and dbt "
        "renders schemas while parsing)"
    )
    if any(b != slim_leaf() for b in built):
        deferred.failed_checks.append("the deferred run built more than the changed leaf")
    cloned.notes.append("--clone: dbt clone of the other 199 models and the seed, views onto the base on DuckDB")
    return [deferred, cloned]


def measure_e(env: Env, repeat: int, repo: Path) -> list[Result]:
    result = Result(
        "e",
        "peak RSS of the orchestrator, cold run",
        "MB",
        baseline_label="peak RSS of dbt's child process in the same run (RUSAGE_CHILDREN), for context",
    )
    statuses, hwm = [], []
    for _ in range(repeat):
        reset_ours(env, repo)
        _, proc = env.run(forked_from_shell([PY, "-c", MEMORY_WRAPPER]), repo)
        lines = proc.stdout.strip().splitlines()
        marker = [line for line in lines if line.startswith("BENCH_RSS ")]
        if not marker:
            raise BenchError(f"the memory wrapper printed no BENCH_RSS line: {proc.stderr.strip()[-500:]}")
        data = json.loads(marker[-1][len("BENCH_RSS ") :])
        try:
            summary = json.loads(next(line for line in lines if line.startswith("{")))
            statuses.append(summary.get("status"))
        except (StopIteration, ValueError):
            statuses.append("no summary")
        result.ours.append(data["self_kb"] / 1024)
        result.baseline.append(data["children_kb"] / 1024)
        hwm.append(data["hwm_kb"] / 1024)
    result.notes.append(f"run statuses: {', '.join(str(s) for s in statuses)}; no target was set for (e)")
    result.notes.append(f"cross-check, VmHWM of the orchestrator: {', '.join(f'{v:.1f} MB' for v in hwm)}")
    if any(s != "success" for s in statuses):
        result.error = f"not every run succeeded: {statuses}"
    _, bare = env.run(forked_from_shell([PY, "-c", MAXRSS]), repo)
    _, deps = env.run(forked_from_shell([PY, "-c", "import dot_tasks.main, dot_tasks.lifecycle; " + MAXRSS]), repo)
    result.notes.append(
        f"for scale: bare interpreter {int(bare.stdout) / 1024:.1f} MB; after importing dot_tasks' CLI {int(deps.stdout) / 1024:.1f} MB"
    )
    return [result]


def measure_report(repeat: int) -> list[Result]:
    import bench_report

    got = bench_report.measure(models=200, changes=20, repeat=repeat)
    label = "200-model diff, 20 changes"
    size = Result("report", f"{label}: size", "MB", ours=[got["bytes"] / 1e6], target_kind="abs", target=2.0)
    size.notes.append(f"{got['nodes_drawn_collapsed']} nodes and {got['groups_collapsed']} collapsed groups drawn")
    write = Result("report", f"{label}: write (Python)", "s", ours=got["write_seconds"])
    shown = Result("report", f"{label}: shown in Chromium", "s", ours=got["shown_seconds"], target_kind="abs", target=1.0)
    shown.notes.append("navigation start to the second frame after load, fresh tab each run")
    if got.get("browser_error"):
        shown.error = got["browser_error"]
    if got["console_errors"] or got["requests"]:
        shown.failed_checks.append(f"{len(got['console_errors'])} console errors, requests {got['requests']}")
    return [size, write, shown]


# --- diff ----------------------------------------------------------------------

DIFF_MEMORY = """
import json, resource, sys
from dot_tasks.main import program
program.run(["dot-tasks", "diff", *sys.argv[1:]], exit=False)
sys.stdout.flush()
print("BENCH_RSS " + json.dumps({"self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _pg_profile(schema: str) -> str | None:
    dsn = os.environ.get("DOT_TASKS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg2

        psycopg2.connect(dsn, connect_timeout=3).close()
    except Exception:  # noqa: BLE001 - no server: the PostgreSQL rows are skipped
        return None
    url = dsn.split("://", 1)[1]
    user_host, _, dbname = url.partition("/")
    user, _, hostport = user_host.rpartition("@")
    host, _, port = hostport.partition(":")
    return (
        f"bench:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n      host: {host}\n"
        f"      port: {port or 5432}\n      user: {user.split(':')[0] or 'postgres'}\n      password: ''\n"
        f"      dbname: {dbname.split('?')[0] or 'postgres'}\n      schema: {schema}\n      threads: 4\n"
    )


def _drop_pg_schemas(prefix: str) -> None:
    import psycopg2

    dsn = os.environ.get("DOT_TASKS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select nspname from pg_namespace where nspname like %s", (prefix + "\\_%",))
        for (name,) in cur.fetchall():
            cur.execute(f'drop schema "{name}" cascade')


def _diff_setup(env: Env, name: str, rows: int, profile: str, sparse: bool = False, head_context: str = "dev") -> tuple[Path, str, str]:
    from projects import make_diff_repo

    repo, base, head = make_diff_repo(env, env.tmp / name, rows, profile, sparse=sparse)
    for context, commit in (("dev", base), (head_context, head)):
        env.run([*DOT, "run", f"{context}@{commit}"], repo)
    return repo, base, head


def measure_diff_apart(env: Env, repeat: int, rows: int, pg_prefix: str) -> Result:
    """Two PostgreSQL databases, 0.1% of rows changed: how many rows leave the warehouses."""
    import psycopg2

    result = Result(
        "diff",
        f"diff across two PostgreSQL databases, {rows:,} rows, 0.1% changed",
        "s",
        baseline_label="(no by-hand equivalent: no single query can join two databases)",
    )
    dsn = os.environ.get("DOT_TASKS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    other_db = pg_prefix + "_other"
    if _pg_profile(pg_prefix) is None:
        result.error = "no PostgreSQL server answered: skipped"
        return result
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'create database "{other_db}"')
        profile = _pg_profile(pg_prefix) or ""
        dev = profile.split("outputs:\n", 1)[1]
        dbname = dev.split("dbname: ", 1)[1].split()[0]
        profile += dev.replace("dev:", "other:", 1).replace(f"dbname: {dbname}", f"dbname: {other_db}")
        say(f"diff: building {rows:,} rows into two PostgreSQL databases ...")
        repo, base, head = _diff_setup(env, "diff-apart", rows, profile, sparse=True, head_context="other")
        transferred = []
        for _ in range(repeat):
            seconds, proc = env.run(
                [*DOT, "diff", f"dev@{base}", f"other@{head}", "--no-build", "--select", "big", "--json"], repo, check=False
            )
            if proc.returncode != 1:
                raise BenchError(f"diff exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
            data = json.loads(proc.stdout)
            result.ours.append(seconds)
            transferred.append(data["rows_transferred"])
            values = data["nodes"][0]["values"]
        share = statistics.median(transferred) / rows
        result.notes.append(
            f"rows transferred (both sides together): {statistics.median(transferred):,} "
            f"= {share:.2%} of the table's {rows:,} (target <= 5%); found ~{values['changed']} "
            f"(c1: {values['columns'].get('c1')}), +{values['added']} -{values['removed']}; "
            f"{values['transfer']['checksums']:,} range checksums"
        )
        if share > 0.05:
            result.failed_checks.append("more than 5% of the rows transferred")
    finally:
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{other_db}" with (force)')
        conn.close()
    return result


def _by_hand(env: Env, repo: Path, base: str, head: str) -> list[str]:
    from projects import by_hand_query

    def relation(commit: str) -> str:
        record = json.loads((repo / ".dot" / "isolated_builds" / commit / "dev" / "build.json").read_text())
        return f"{record['schema']}.big"

    ctx = repo / ".dot" / "isolated_builds" / head / "dev"
    scratch = env.tmp / "by-hand"
    return [
        DBT,
        "show",
        "--inline",
        by_hand_query(relation(base), relation(head)),
        "--project-dir",
        str(repo / ".dot" / "isolated_builds" / head / "worktree"),
        "--profiles-dir",
        str(ctx),
        "--target",
        "dev",
        "--target-path",
        str(scratch / "target"),
        "--log-path",
        str(scratch / "logs"),
    ]


def measure_diff(env: Env, repeat: int, rows: int) -> list[Result]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    results = []
    pg_prefix = "bench_" + os.urandom(4).hex()
    profiles = {"duckdb": duckdb_profiles("bench", threads=4), "postgres": _pg_profile(pg_prefix)}
    try:
        for adapter, profile in profiles.items():
            result = Result(
                "diff",
                f"diff of {rows:,} rows x 10 columns, {adapter}",
                "s",
                target_kind="ratio",
                target=1.2,
                baseline_label="`dbt show --inline` with one full-outer-join count query",
            )
            results.append(result)
            if profile is None:
                result.error = "no PostgreSQL server answered: skipped"
                continue
            say(f"diff: building the {rows:,}-row model twice on {adapter} ...")
            repo, base, head = _diff_setup(env, f"diff-{adapter}", rows, profile)
            ours_cmd = [*DOT, "diff", base, head, "--no-build", "--select", "big", "--json"]
            seen: dict[str, Any] = {}

            def ours(repo: Path = repo, cmd: list[str] = ours_cmd, seen: dict[str, Any] = seen) -> float:
                seconds, proc = env.run(cmd, repo, check=False)
                if proc.returncode != 1:
                    raise BenchError(f"diff exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
                seen["diff"] = json.loads(proc.stdout)
                return seconds

            by_hand = _by_hand(env, repo, base, head)

            def baseline(cmd: list[str] = by_hand, repo: Path = repo) -> float:
                return env.run(cmd, repo)[0]

            interleave(repeat, ours, baseline, result)
            values = seen["diff"]["nodes"][0]["values"]
            result.notes.append(
                f"diff found: +{values['added']} -{values['removed']} ~{values['changed']} "
                f"={values['unchanged']} (c1: {values['columns'].get('c1')})"
            )
        # Memory of the orchestrator does not grow with the table: 10,000 rows against `rows`.
        mem = Result(
            "diff",
            "orchestrator peak RSS, diff of 1M vs 10k rows (DuckDB)",
            "MB",
            target_kind="diff",
            target=10.0,
            baseline_label="the same diff of a 10,000-row model",
        )
        results.append(mem)
        small = _diff_setup(env, "diff-small", 10_000, profiles["duckdb"])
        big = (env.tmp / "diff-duckdb", *_commits(env, env.tmp / "diff-duckdb"))
        for bucket, (repo, base, head) in ((mem.ours, big), (mem.baseline, small)):
            for _ in range(repeat):
                _, proc = env.run(
                    forked_from_shell([PY, "-c", DIFF_MEMORY, base, head, "--no-build", "--select", "big", "--json"]), repo, check=False
                )
                marker = [line for line in proc.stdout.splitlines() if line.startswith("BENCH_RSS ")]
                if not marker:
                    raise BenchError(f"the memory wrapper printed no BENCH_RSS line: {proc.stderr.strip()[-500:]}")
                bucket.append(json.loads(marker[-1][len("BENCH_RSS ") :])["self_kb"] / 1024)
    finally:
        if profiles["postgres"] is not None:
            _drop_pg_schemas(pg_prefix)
    return results


def _commits(env: Env, repo: Path) -> tuple[str, str]:
    head = env.git("rev-parse", "HEAD", cwd=repo)
    return env.git("rev-parse", "HEAD~1", cwd=repo), head


# --- spark ---------------------------------------------------------------------


def measure_spark(env: Env, repeat: int) -> list[Result]:
    from projects import SPARK_MODELS, make_spark_repo, spark_output

    result = Result(
        "spark",
        f"cold run, Spark session, 1 seed + {SPARK_MODELS} models",
        "s",
        baseline_label="by hand: git rev-parse + git worktree add --detach + write profiles.yml (metastore pinned) + dbt build",
        target_kind="ratio",
        target=1.05,
    )
    repo = make_spark_repo(env.tmp, lambda r: commit_all(env, r))
    env.vars.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    hand = env.tmp / "byhand-spark"
    wt, conf = hand / "worktree", hand / "dbt"
    run_cmd = [*DOT, "run", "--context", "dev", "--ref", "HEAD"]
    pinned = {
        "spark.sql.warehouse.dir": str(repo / "spark-warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={repo / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.stream.error.file={repo / 'derby.log'}",
    }
    dbt_cmd = [
        DBT,
        "build",
        "--project-dir",
        str(wt),
        "--profiles-dir",
        str(conf),
        "--target",
        "dev",
        "--target-path",
        str(conf / "target"),
        "--log-path",
        str(conf / "logs"),
    ]

    def ours() -> float:
        shutil.rmtree(repo / ".dot", ignore_errors=True)
        env.git("worktree", "prune", cwd=repo)
        return env.run(run_cmd, repo)[0]

    def by_hand() -> float:
        forget_worktree(env, repo, wt)
        shutil.rmtree(hand, ignore_errors=True)
        started = time.perf_counter()
        short = env.git("rev-parse", "--short=8", "HEAD", cwd=repo)
        env.run(["git", "worktree", "add", "--detach", str(wt), "HEAD"], repo)
        conf.mkdir(parents=True)
        (conf / "profiles.yml").write_text("sparky:\n  target: dev\n  outputs:\n    dev:\n" + spark_output(f"dev_{short}", pinned) + "\n")
        env.run(dbt_cmd, wt)
        return time.perf_counter() - started

    # The first start creates the Derby metastore (much slower); both sides then share it.
    say("spark: creating the metastore (untimed) ...")
    ours()
    interleave(repeat, ours, by_hand, result)
    result.notes.append("each side reuses the one metastore and writes the same dev_<short> schema in turn")
    return [result]


# --- main ----------------------------------------------------------------------


def _psql_script(dsn: str, sql: str) -> list[str]:
    return ["psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-1", "-c", sql]


def _promote_build(env: Env, dsn: str, models: int, rows: int) -> tuple[Path, str, str]:
    """A repository whose HEAD is built (and tested) into `<schema>_<short>`; its path, schema and commit."""
    from projects import write_promote_project

    schema = f"bench_{os.getpid()}_{rows}"
    repo = env.tmp / f"promote-{rows}"
    write_promote_project(repo, dsn, schema, models, rows)
    commit_all(env, repo)
    commit = env.git("rev-parse", "HEAD", cwd=repo)
    say(f"building {models} models x {rows} rows into {schema}_{commit[:8]} ...")
    env.run([*DOT, "run", f"prod@{commit}"], repo)
    return repo, schema, commit


def _drop_bench_schemas(env: Env, dsn: str, schemas: list[str]) -> None:
    for schema in schemas:
        env.run(
            [
                "psql",
                dsn,
                "-q",
                "-c",
                "do $$ declare s text; begin for s in select nspname from pg_namespace where nspname like "
                f"'{schema}%' loop execute format('drop schema %I cascade', s); end loop; end $$",
            ],
            env.tmp,
            check=False,
        )


def measure_promote(env: Env, repeat: int, dsn: str, models: int, rows: int) -> list[Result]:
    from projects import write_switch_macro_project

    if not shutil.which("psql"):
        raise BenchError("promote needs psql for the hand-written baseline")
    versus_psql = Result(
        "promote",
        f"promote of {models} models vs a hand-written transaction (psql)",
        "s",
        baseline_label="psql -1 -c 'create or replace view ...' x 200",
        target_kind="ratio",
        target=1.2,
    )
    versus_dbt = Result(
        "promote",
        "the same, vs that transaction run by one dbt start",
        "s",
        baseline_label="dbt run-operation of a macro running the same transaction",
        target_kind="ratio",
        target=1.2,
    )
    by_rows = Result(
        "promote",
        f"promote with {rows:,} rows per model vs 10",
        "s",
        baseline_label=f"the same promote of {models} models x 10 rows",
        target_kind="ratio",
        target=1.2,
    )
    schemas = []
    try:
        small, small_schema, small_commit = _promote_build(env, dsn, models, 10)
        schemas.append(small_schema)
        big, big_schema, big_commit = _promote_build(env, dsn, models, rows)
        schemas.append(big_schema)
        build = f"{small_schema}_{small_commit[:8]}"
        sql = ";\n".join(f'create or replace view "{small_schema}"."m{i:03d}" as select * from "{build}"."m{i:03d}"' for i in range(models))
        ours_cmd = [*DOT, "promote", f"prod@{small_commit}"]
        env.run(ours_cmd, small)  # the first promotion creates the live schema and its views
        env.run([*DOT, "promote", f"prod@{big_commit}"], big)
        macro_project = env.tmp / "switch-macro"
        write_switch_macro_project(macro_project)
        ctx_dir = small / ".dot" / "isolated_builds" / small_commit / "prod"
        dbt_cmd = [
            DBT,
            "run-operation",
            "bench_switch",
            "--project-dir",
            str(macro_project),
            "--profiles-dir",
            str(ctx_dir),
            "--target",
            "prod",
            "--target-path",
            str(env.tmp / "switch-target"),
            "--log-path",
            str(env.tmp / "switch-logs"),
            "--args",
            json.dumps({"sql": sql}),
        ]
        env.run(dbt_cmd, macro_project)  # warm its partial parse, as ours is warm
        interleave(repeat, lambda: env.run(ours_cmd, small)[0], lambda: env.run(_psql_script(dsn, sql), env.tmp)[0], versus_psql)
        versus_dbt.ours = list(versus_psql.ours)
        for _ in range(repeat):
            versus_dbt.baseline.append(env.run(dbt_cmd, macro_project)[0])
        interleave(repeat, lambda: env.run([*DOT, "promote", f"prod@{big_commit}"], big)[0], lambda: env.run(ours_cmd, small)[0], by_rows)
        versus_psql.notes.append("ours includes starting Python and dbt (~2.5 s of imports) and the gate; psql starts in milliseconds")
        versus_dbt.notes.append("both sides pay one dbt start; the difference is the checks, locks and history row")
    finally:
        _drop_bench_schemas(env, dsn, schemas)
    return [versus_psql, versus_dbt, by_rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the median is reported (>= 3)")
    parser.add_argument("names", nargs="*", help="measurements to take (the same as --only), e.g. diff or slim")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of {','.join(MEASUREMENTS + EXTRA_MEASUREMENTS)} (default: a to e)"
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the diff benchmark's model")
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get("DOT_TASKS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL for `promote` (default: DOT_TASKS_TEST_PG_DSN or the test server)",
    )
    parser.add_argument("--promote-models", type=int, default=200, help="models in the `promote` builds")
    parser.add_argument("--promote-rows", type=int, default=1_000_000, help="rows per model in the large `promote` build")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    parser.add_argument("--tmp-dir", default=None, help="where to make the temporary directory")
    args = parser.parse_args(argv)
    if args.repeat < 3:
        parser.error("--repeat must be at least 3")
    chosen = args.only or ",".join(args.names) or ",".join(MEASUREMENTS)
    only = [part.strip() for part in chosen.split(",") if part.strip()]
    unknown = [m for m in only if m not in MEASUREMENTS + EXTRA_MEASUREMENTS]
    if unknown:
        parser.error(f"unknown measurement(s) {unknown}: choose from {', '.join(MEASUREMENTS + EXTRA_MEASUREMENTS)}")
    if "spark" in only and not shutil.which("java"):
        parser.error("spark needs java on the PATH (and pip install -e '.[spark]')")
    if not Path(DBT).exists() and any(m in only for m in ("d", "e", "slim", "diff", "promote", "spark")):
        parser.error(f"no dbt executable at {DBT}: run this with the venv's python")

    tmp = Path(tempfile.mkdtemp(prefix="dot-bench-", dir=args.tmp_dir)).resolve()
    env = Env(tmp)
    info = machine_info(tmp)
    reproduce = f"cd {shlex.quote(str(REPO_ROOT))} && {shlex.join([PY, 'benchmarks/bench.py', *sys.argv[1:]])}"
    if not args.json:
        print("dot-tasks benchmarks")
        for label, value in info.items():
            print(f"  {label + ':':<11} {value}")
        busy = busy_warning()
        if busy:
            print(f"  {'WARNING:':<11} {busy}")
        print(f"  {'reproduce:':<11} {reproduce}")
        print(f"  {'repeat:':<11} {args.repeat} runs per side, median shown")
        print(flush=True)

    results: list[Result] = []
    started = time.perf_counter()
    try:
        big = duck = None
        for letter in MEASUREMENTS + EXTRA_MEASUREMENTS:
            if letter not in only:
                continue
            t0 = time.perf_counter()
            say(f"measuring ({letter}) ...")
            try:
                if letter in ("a", "b") and big is None:
                    say(f"generating a {DATA_DIRS * FILES_PER_DIR}-file repository ...")
                    big = make_big_repo(env)
                if letter in ("d", "e") and duck is None:
                    duck = make_duck_repo(env)
                if letter == "a":
                    results += measure_a(env, args.repeat, big)
                elif letter == "b":
                    results += measure_b(env, args.repeat, big)
                elif letter == "c":
                    results += measure_c(env, args.repeat)
                elif letter == "d":
                    results += measure_d(env, args.repeat, duck)
                elif letter == "e":
                    results += measure_e(env, args.repeat, duck)
                elif letter == "report":
                    results += measure_report(args.repeat)
                elif letter == "slim":
                    results += measure_slim(env, args.repeat, make_slim_repo(env))
                elif letter == "diff":
                    results += measure_diff(env, args.repeat, args.rows)
                elif letter == "diff-apart":
                    prefix = "bench_" + os.urandom(4).hex()
                    try:
                        results.append(measure_diff_apart(env, args.repeat, args.rows, prefix))
                    finally:
                        _drop_pg_schemas(prefix)
                elif letter == "promote":
                    results += measure_promote(env, args.repeat, args.pg_dsn, args.promote_models, args.promote_rows)
                elif letter == "spark":
                    results += measure_spark(env, args.repeat)
            except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
                results.append(Result(letter, "(could not measure)", "s", error=str(exc)))
            say(f"({letter}) took {time.perf_counter() - t0:.1f} s")
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "machine": info,
                    "reproduce": reproduce,
                    "repeat": args.repeat,
                    "load_end": load_average(),
                    "warning": busy_warning(),
                    "total_seconds": round(total, 1),
                    "kept": str(tmp) if args.keep else None,
                    "results": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
    else:
        print_table(results)
        print(f"\ntotal {total:.0f} s; load average at the end: {load_average()}" + (f"; inputs kept in {tmp}" if args.keep else ""))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
