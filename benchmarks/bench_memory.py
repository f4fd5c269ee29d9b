"""(e): the peak memory (ru_maxrss) of the process that orchestrates a cold `dot-tasks run`,
beside that of dbt's child in the same run."""

from __future__ import annotations

import argparse
import json

from harness import PY, Env, Result, forked_from_shell, reset_ours, rss_marker
from projects import make_duck_repo

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


def measure_e(env: Env, args: argparse.Namespace) -> list[Result]:
    """(e): `repeat` cold runs under the memory wrapper; a bare interpreter and dot-tasks' imports for scale."""
    repo = env.reuse("duck", make_duck_repo)  # made once for (d) and (e)
    result = Result(
        "e",
        "peak RSS of the orchestrator, cold run",
        "MB",
        baseline_label="peak RSS of dbt's child process in the same run (RUSAGE_CHILDREN), for context",
    )
    statuses, hwm = [], []
    for _ in range(args.repeat):
        reset_ours(env, repo)
        _, proc = env.run(forked_from_shell([PY, "-c", MEMORY_WRAPPER]), repo)
        data = rss_marker(proc)
        try:
            summary = json.loads(next(line for line in proc.stdout.strip().splitlines() if line.startswith("{")))
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
