"""slim: `run --defer-to` with one leaf changed vs the full `run` of the base, 200-model DuckDB
project; and the same deferred run with `--clone`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from harness import DOT, Env, Result, reset_ours
from projects import SLIM_MODELS, make_slim_repo, slim_leaf


def _results() -> tuple[Result, Result]:
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
    return deferred, cloned


def measure_slim(env: Env, args: argparse.Namespace) -> list[Result]:
    """slim: each repeat builds main in full, then both PR commits deferred to it (one with --clone)."""
    repo = make_slim_repo(env)
    deferred, cloned = _results()
    built: list[str] = []
    executing: list[float] = []
    for _ in range(args.repeat):
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
