#!/usr/bin/env python3
"""Promotion under readers, and the whole-process cost of `promote` and `live`, on PostgreSQL.

    python benchmarks/bench_promote.py [--models 200] [--switches 10] [--readers 4] [--repeat 3]

  readers   `promote`/`rollback` of a --models build while --readers readers (half reading
            two live views in one order, half in the other, each in one repeatable-read
            transaction about 30 times a second) run: per switch, seconds, lock attempts and
            whole-transaction attempts; every reader's errors and whether one saw a mix
  promote   the whole-process time of `dot-tasks promote` against the one-transaction psql
            baseline (`psql -1` replacing the same views)
  live      the whole-process time of `dot-tasks live`
  floor     dbt's own start: `dbt run-operation` of a macro that does nothing, reported apart,
            since every dot-tasks command that reaches the warehouse pays it

A plain script that prints figures (the machine may be loaded: read them as such).
It builds its inputs with bench.py's and projects.py's helpers and drops its schemas.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import DBT, DOT, Env, _drop_bench_schemas, _psql_script, commit_all, say  # noqa: E402
from projects import write_promote_project, write_switch_macro_project  # noqa: E402

READER = r"""
import json, os, sys, time
import psycopg2, psycopg2.extensions
dsn, schema, stop, first, second = sys.argv[1:6]
con = psycopg2.connect(dsn)
con.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ)
seen, errors, reads = set(), [], 0
while not os.path.exists(stop):
    try:
        with con.cursor() as cur:
            values = {}
            for name in (first, second):
                cur.execute(f'select max(amount) / nullif(max(id), 0) from "{schema}"."{name}"')
                values[name] = cur.fetchone()[0]
        con.commit()
        seen.add(json.dumps(values, sort_keys=True))
        reads += 1
        time.sleep(0.03)
    except Exception as exc:  # noqa: BLE001 - every error is a finding
        errors.append(str(exc).strip()[:200])
        con.rollback()
print(json.dumps({"seen": sorted(seen), "errors": errors[:5], "reads": reads}))
"""


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})" if values else "-"


def _build(env: Env, dsn: str, models: int, schema: str, factor: int) -> tuple[Path, str]:
    """A repository whose two commits are built: the second multiplies every amount by `factor`."""
    repo = env.tmp / "promote-readers"
    write_promote_project(repo, dsn, schema, models, 10)
    commit_all(env, repo)
    first = env.git("rev-parse", "HEAD", cwd=repo)
    for path in sorted((repo / "models").rglob("m*.sql")):
        path.write_text(path.read_text().replace("as amount", f"* {factor} as amount"))
    env.git("commit", "-q", "-am", "second", cwd=repo)
    second = env.git("rev-parse", "HEAD", cwd=repo)
    for commit in (first, second):
        say(f"building {models} models at {commit[:8]} ...")
        env.run([*DOT, "run", f"prod@{commit}"], repo)
    return repo, f"{first} {second}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-dsn", default=os.environ.get("DOT_TASKS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args(argv)
    env = Env(Path(tempfile.mkdtemp(prefix="dot-bench-promote-")))
    schema = f"bench_promote_{os.getpid()}"
    try:
        repo, commits = _build(env, args.pg_dsn, args.models, schema, 7)
        first, second = commits.split()
        env.run([*DOT, "promote", f"prod@{first}"], repo)

        # Readers: two views far apart in the promotion's lock order, read in both orders.
        stop = env.tmp / "stop"
        last = f"m{args.models - 1:03d}"
        readers = [
            subprocess.Popen(
                [sys.executable, "-c", READER, args.pg_dsn, schema, str(stop), *(("m001", last) if i % 2 == 0 else (last, "m001"))],
                stdout=subprocess.PIPE,
                text=True,
                env=env.vars,
            )
            for i in range(args.readers)
        ]
        switches = []
        try:
            for i in range(args.switches):
                command = ["promote", f"prod@{second}"] if i % 2 == 0 else ["rollback", "prod"]
                seconds, proc = env.run([*DOT, *command, "--json"], repo)
                result = json.loads(proc.stdout)
                switches.append((seconds, result.get("lock_attempts"), result.get("switch_attempts")))
        finally:
            stop.touch()
            reports = [json.loads(r.communicate(timeout=60)[0] or "{}") for r in readers]

        # Each view's amount is its model number times the commit's factor (1 or 7): the factors must agree.
        def factors(seen: str) -> set[int]:
            values = json.loads(seen)
            return {values["m001"] // 1, values[last] // (args.models - 1)}

        mixed = [r for r in reports if any(len(factors(v)) > 1 for v in r.get("seen", []))]

        # Whole-process times, against psql's one transaction and dbt's own start.
        build = f"{schema}_{second[:8]}"
        sql = ";\n".join(f'create or replace view "{schema}"."m{i:03d}" as select * from "{build}"."m{i:03d}"' for i in range(args.models))
        promote_times, psql_times, live_times, floor_times = [], [], [], []
        macro_project = env.tmp / "noop-macro"
        write_switch_macro_project(macro_project)
        ctx_dir = repo / ".dot" / "isolated_builds" / second / "prod"
        floor = [
            DBT,
            "--quiet",
            "run-operation",
            "bench_switch",
            "--project-dir",
            str(macro_project),
            "--profiles-dir",
            str(ctx_dir),
            "--target",
            "prod",
            "--target-path",
            str(env.tmp / "noop-target"),
            "--log-path",
            str(env.tmp / "noop-logs"),
            "--args",
            json.dumps({"sql": "select 1"}),
        ]
        env.run(floor, macro_project)  # warm its partial parse
        for _ in range(args.repeat):
            promote_times.append(env.run([*DOT, "promote", f"prod@{second}"], repo)[0])
            psql_times.append(env.run(_psql_script(args.pg_dsn, sql), env.tmp)[0])
            live_times.append(env.run([*DOT, "live", "prod", "--exit-zero"], repo)[0])
            floor_times.append(env.run(floor, macro_project)[0])
    finally:
        _drop_bench_schemas(env, args.pg_dsn, [schema])

    print(
        f"promotion of {args.models} models with {args.readers} readers, {args.switches} switches "
        "(load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + ")"
    )
    for i, (seconds, locks, attempts) in enumerate(switches, 1):
        print(f"  switch {i:2}: {seconds:6.2f} s   lock attempts {locks}   transaction attempts {attempts}")
    print(
        f"  switches: {_median([s[0] for s in switches])}; lock attempts max {max(s[1] or 0 for s in switches)}; "
        f"transactions retried {sum((s[2] or 1) - 1 for s in switches)}"
    )
    for i, report in enumerate(reports, 1):
        print(
            f"  reader {i}: {report.get('reads', 0)} transactions, {len(report.get('errors', []))} error(s) {report.get('errors', [])[:1]}"
        )
    print(f"  readers that saw a mix of two commits: {len(mixed)}")
    print(f"whole-process times, median of {args.repeat}:")
    print(f"  dot-tasks promote      {_median(promote_times)}")
    print(f"  psql -1 (baseline)     {_median(psql_times)}")
    print(f"  dot-tasks live         {_median(live_times)}")
    print(f"  dbt start (the floor)  {_median(floor_times)}  (dbt run-operation of a one-statement macro)")
    return 1 if mixed or any(r.get("errors") for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
