#!/usr/bin/env python3
"""Benchmarks on a Spark cluster: dot-tasks through a Thrift server, side by side with doing it by hand.

    python benchmarks/bench_spark_cluster.py [--repeat 3] [--rows 1000000] [--only start,run,diff] [--json]

It starts its own cluster (benchmarks/spark_cluster.py: a master, two workers, a Thrift server, all on
127.0.0.1) in a temporary directory, stops it at the end, and prints a table of medians:

  start  how long the cluster takes to answer on its Thrift port, and the resident memory of each JVM
  run    cold `dot-tasks run` of the bench project (1 seed + 3 models) through the Thrift server vs the
         same steps by hand (git worktree add --detach + profiles.yml + dbt build)       target <= 1.05x
  diff   `dot-tasks diff --no-build --select big` of a ROWS-row, 10-column model (1% changed, 0.5% added,
         0.5% removed) vs `dbt show --inline` with one full-outer-join count query, through the same
         server                                                                            target <= 1.2x

A plain script, not a test: it reports, it does not assert. It exits 1 only when a measurement could
not be taken.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spark_cluster  # noqa: E402
from bench_diff import by_hand_diff, diff_found, diff_setup  # noqa: E402
from harness import DBT, DOT, BenchError, Env, Result, build_by_hand, interleave, print_table, say  # noqa: E402
from machine import load_average  # noqa: E402
from projects import SPARK_MODELS, make_spark_repo  # noqa: E402

MEASUREMENTS = ["start", "run", "diff"]


def thrift_profile(cluster: spark_cluster.Cluster, profile: str, schema: str) -> str:
    """A profiles.yml whose one output, `dev`, is the cluster's Thrift server."""
    output = cluster.dbt_output(schema, threads=2)
    return json.dumps({profile: {"target": "dev", "outputs": {"dev": output}}}, indent=2)  # JSON is YAML


def measure_start(cluster: spark_cluster.Cluster) -> list[Result]:
    """start: how long the cluster took to answer, and each JVM's resident memory."""
    result = Result("start", "cluster start: master + 2 workers + Thrift server, until the port answers", "s")
    result.ours.append(cluster.started_seconds)
    memory = cluster.memory_mib()
    result.notes.append(
        "resident memory, MiB: "
        + ", ".join(f"{k} {v}" for k, v in memory.items())
        + f" (total {sum(memory.values())}; a worker's executor counts with it)"
    )
    return [result]


def measure_run(env: Env, cluster: spark_cluster.Cluster, repeat: int) -> list[Result]:
    """run: cold `dot-tasks run` through the Thrift server against the same steps by hand."""
    result = Result(
        "run",
        f"cold run through Thrift, 1 seed + {SPARK_MODELS} models",
        "s",
        target_kind="ratio",
        target=1.05,
        baseline_label="by hand: git rev-parse + git worktree add --detach + write profiles.yml + dbt build",
    )
    repo = make_spark_repo(env)
    # The session profile the repository was committed with, replaced by the cluster's (a working-copy edit).
    (repo / "profiles.yml").write_text(thrift_profile(cluster, "sparky", "dev"))

    def ours() -> float:
        shutil.rmtree(repo / ".dot", ignore_errors=True)
        env.git("worktree", "prune", cwd=repo)
        return env.run([*DOT, "run", "--context", "dev", "--ref", "HEAD"], repo)[0]

    def by_hand() -> float:
        return build_by_hand(env, repo, env.tmp / "byhand-spark", lambda short: thrift_profile(cluster, "sparky", f"dev_{short}"))

    say("run: warming the executors (untimed) ...")
    ours()
    interleave(repeat, ours, by_hand, result)
    result.notes.append("each side writes the same dev_<short> schema in turn, through the one Thrift server")
    return [result]


def measure_diff(env: Env, cluster: spark_cluster.Cluster, repeat: int, rows: int) -> list[Result]:
    """diff: `dot-tasks diff` of the ROWS-row model through the Thrift server against the query by hand."""
    result = Result(
        "diff",
        f"diff of {rows:,} rows x 10 columns through Thrift",
        "s",
        target_kind="ratio",
        target=1.2,
        baseline_label="`dbt show --inline` with one full-outer-join count query",
    )
    say(f"diff: building the {rows:,}-row model twice on the cluster ...")
    repo, base, head = diff_setup(env, "diff-spark", rows, thrift_profile(cluster, "bench", "dev"))
    seen: dict[str, Any] = {}

    def ours() -> float:
        seconds, proc = env.run([*DOT, "diff", base, head, "--no-build", "--select", "big", "--json"], repo, check=False)
        if proc.returncode not in (1, 2) or not proc.stdout.strip():
            raise BenchError(f"diff exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
        seen["diff"] = json.loads(proc.stdout)
        return seconds

    by_hand = by_hand_diff(repo, base, head, env.tmp / "by-hand-diff")

    def baseline() -> float:
        return env.run(by_hand, repo)[0]

    interleave(repeat, ours, baseline, result)
    node = seen["diff"]["nodes"][0]
    values = node["values"]
    if values is None:
        raise BenchError(f"diff could not compare big: {node.get('values_skipped')}")
    result.notes.append(diff_found(values))
    return [result]


def main(argv: list[str] | None = None) -> int:
    """Start the cluster, take the chosen measures, stop it, and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", default=",".join(MEASUREMENTS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    only = [m for m in args.only.split(",") if m]
    if unknown := sorted(set(only) - set(MEASUREMENTS)):
        parser.error(f"unknown measurement(s): {', '.join(unknown)} (choose from {', '.join(MEASUREMENTS)})")
    if not shutil.which("java") or not Path(DBT).exists():
        parser.error("needs java on the PATH and dbt in this Python's environment (pip install -e '.[spark]')")
    tmp = Path(tempfile.mkdtemp(prefix="dot-bench-spark-"))
    env = Env(tmp)
    results: list[Result] = []
    load_before = load_average()
    cluster = None
    try:
        say(f"starting the cluster in {tmp / 'cluster'} ...")
        cluster = spark_cluster.start(tmp / "cluster")
        for name in only:
            load_at_start = load_average()
            try:
                if name == "start":
                    measured = measure_start(cluster)
                elif name == "run":
                    measured = measure_run(env, cluster, args.repeat)
                else:
                    measured = measure_diff(env, cluster, args.repeat, args.rows)
            except BenchError as exc:
                measured = [Result(name, name, "s", error=str(exc))]
            # The machine may be shared: each figure says how loaded it was while it was taken.
            for result in measured:
                result.notes.append(f"load average before: {load_at_start}; after: {load_average()}")
            results += measured
    finally:
        if cluster is not None:
            cluster.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"load_before": load_before, "load_after": load_average(), "results": [r.as_dict() for r in results]}, indent=2))
    else:
        print_table(results)
        print(f"\nload average before: {load_before}; after: {load_average()}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
