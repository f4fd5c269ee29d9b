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
only when a measurement could not be taken. Each measure is a function in a
module of its own (MEASURES below names them); README.md shows the layout.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_diff import measure_diff
from bench_diff_apart import measure_diff_apart
from bench_latency import measure_c
from bench_memory import measure_e
from bench_promote import measure_promote
from bench_report_table import measure_report
from bench_run import measure_d
from bench_slim import measure_slim
from bench_spark import measure_spark
from bench_worktree import measure_a, measure_b
from harness import DBT, PG_DSN, PY, REPO_ROOT, BenchError, Env, Result, print_table, say
from machine import busy_warning, load_average, machine_info

#: Every measure, by the name `--only` takes, in the order they run.
MEASURES: dict[str, Callable[[Env, argparse.Namespace], list[Result]]] = {
    "a": measure_a,
    "b": measure_b,
    "c": measure_c,
    "d": measure_d,
    "e": measure_e,
    "report": measure_report,
    "slim": measure_slim,
    "diff": measure_diff,
    "diff-apart": measure_diff_apart,
    "promote": measure_promote,
    "spark": measure_spark,
}
MEASUREMENTS = ["a", "b", "c", "d", "e"]
#: Asked for by name (`bench.py slim`, or `--only slim`), not part of the default run: they need PostgreSQL, Chromium or the spark extra.
EXTRA_MEASUREMENTS = [name for name in MEASURES if name not in MEASUREMENTS]
#: The measures that start the venv's dbt executable themselves.
NEED_DBT = ("d", "e", "slim", "diff", "promote", "spark")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The options, and the measures chosen (by name or `--only`, default a to e), checked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the median is reported (>= 3)")
    parser.add_argument("names", nargs="*", help="measurements to take (the same as --only), e.g. diff or slim")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(MEASURES)} (default: a to e)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the diff benchmark's model")
    parser.add_argument("--pg-dsn", default=PG_DSN, help="PostgreSQL for `promote` (default: DOT_TASKS_TEST_PG_DSN or the test server)")
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
    unknown = [m for m in only if m not in MEASURES]
    if unknown:
        parser.error(f"unknown measurement(s) {unknown}: choose from {', '.join(MEASURES)}")
    if "spark" in only and not shutil.which("java"):
        parser.error("spark needs java on the PATH (and pip install -e '.[spark]')")
    if not Path(DBT).exists() and any(m in only for m in NEED_DBT):
        parser.error(f"no dbt executable at {DBT}: run this with the venv's python")
    return args, only


def print_header(info: dict[str, str], reproduce: str, repeat: int) -> None:
    """The machine, the load, and the command that reproduces the figures."""
    print("dot-tasks benchmarks")
    for label, value in info.items():
        print(f"  {label + ':':<11} {value}")
    busy = busy_warning()
    if busy:
        print(f"  {'WARNING:':<11} {busy}")
    print(f"  {'reproduce:':<11} {reproduce}")
    print(f"  {'repeat:':<11} {repeat} runs per side, median shown")
    print(flush=True)


def take(env: Env, args: argparse.Namespace, only: list[str]) -> list[Result]:
    """Each chosen measure in MEASURES' order; one that could not be taken becomes an ERROR row."""
    results: list[Result] = []
    for name, measure in MEASURES.items():
        if name not in only:
            continue
        t0 = time.perf_counter()
        say(f"measuring ({name}) ...")
        try:
            results += measure(env, args)
        except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
            results.append(Result(name, "(could not measure)", "s", error=str(exc)))
        say(f"({name}) took {time.perf_counter() - t0:.1f} s")
    return results


def main(argv: list[str] | None = None) -> int:
    """Take the chosen measures in a temporary directory and print them; exit 1 if one could not be taken."""
    args, only = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="dot-bench-", dir=args.tmp_dir)).resolve()
    env = Env(tmp)
    info = machine_info(tmp)
    reproduce = f"cd {shlex.quote(str(REPO_ROOT))} && {shlex.join([PY, 'benchmarks/bench.py', *sys.argv[1:]])}"
    if not args.json:
        print_header(info, reproduce, args.repeat)
    started = time.perf_counter()
    try:
        results = take(env, args, only)
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - started
    if args.json:
        summary = {
            "machine": info,
            "reproduce": reproduce,
            "repeat": args.repeat,
            "load_end": load_average(),
            "warning": busy_warning(),
            "total_seconds": round(total, 1),
            "kept": str(tmp) if args.keep else None,
            "results": [r.as_dict() for r in results],
        }
        print(json.dumps(summary, indent=2))
    else:
        print_table(results)
        print(f"\ntotal {total:.0f} s; load average at the end: {load_average()}" + (f"; inputs kept in {tmp}" if args.keep else ""))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
