"""The machine a benchmark ran on, as the header of its table (and its `--json`) describes it."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from harness import DBT, PY, REPO_ROOT


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _filesystem(path: Path) -> str:
    """The type of the filesystem `path` is on, and where it is mounted."""
    best, kind = "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) >= len(best):
                best, kind = parts[1], parts[2]
    except OSError:
        pass
    return f"{kind} (mounted at {best or '?'})"


def _proc_line(path: str, prefix: str) -> str | None:
    """The first line of a /proc file that starts with `prefix`, or None (no such line, or no /proc)."""
    try:
        return next((line for line in Path(path).read_text().splitlines() if line.startswith(prefix)), None)
    except OSError:
        return None


def _git_out(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout.strip()


def _checkout() -> str:
    """This checkout of dot-tasks: version, path, commit, and whether dot_tasks/ has changes not committed."""
    head = _git_out("-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD")
    dirty = _git_out("-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no", "--", "dot_tasks")
    return f"{_version('dot-tasks')} at {REPO_ROOT} commit {head}" + (" + uncommitted changes in dot_tasks/" if dirty else "")


def machine_info(tmp: Path) -> dict[str, str]:
    """What the figures depend on: CPU, memory, versions, the work directory's filesystem, the load."""
    cpu_line = _proc_line("/proc/cpuinfo", "model name")
    cpu = cpu_line.split(":", 1)[1].strip() if cpu_line else "?"
    ram_line = _proc_line("/proc/meminfo", "MemTotal:")
    ram = f"{int(ram_line.split()[1]) / 1024 / 1024:.1f} GiB" if ram_line else "?"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
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
        "git": _git_out("--version"),
        "dbt": f"dbt-core {_version('dbt-core')}, dbt-duckdb {_version('dbt-duckdb')} ({DBT})",
        "libs": f"{libgit2}, invoke {_version('invoke')}",
        "dot-tasks": _checkout(),
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
    """The 1, 5 and 15 minute load averages, as text."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3]) + " (1, 5, 15 min)"
    except OSError:
        return "?"
