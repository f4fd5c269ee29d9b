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
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import DOT, PG_DSN, BenchError, Env, Result, commit_all, dbt_command, drop_pg_schemas, interleave, psql_script, say  # noqa: E402
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


def switch_sql(schema: str, build: str, models: int) -> str:
    """The hand-written switch: every live view of `schema` replaced by one onto the build's schema."""
    return ";\n".join(f'create or replace view "{schema}"."m{i:03d}" as select * from "{build}"."m{i:03d}"' for i in range(models))


def switch_command(macro_project: Path, profiles_dir: Path, scratch: Path, sql: str, quiet: bool = False) -> list[str]:
    """`dbt run-operation` of the switch macro (write_switch_macro_project) running `sql`, against the prod target."""
    verb = [*(["--quiet"] if quiet else []), "run-operation", "bench_switch"]
    return [*dbt_command(verb, macro_project, profiles_dir, scratch, target="prod"), "--args", json.dumps({"sql": sql})]


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


def _under_readers(env: Env, args: argparse.Namespace, repo: Path, schema: str, second: str) -> tuple[list[tuple], list[dict], list[dict]]:
    """--switches promotions and rollbacks while --readers readers run: each switch's figures, each reader's report, the mixed ones."""
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
    return switches, reports, mixed


def _whole_process(env: Env, args: argparse.Namespace, repo: Path, schema: str, second: str) -> dict[str, list[float]]:
    """Whole-process times of promote and live, against psql's one transaction and dbt's own start."""
    sql = switch_sql(schema, f"{schema}_{second[:8]}", args.models)
    times: dict[str, list[float]] = {"promote": [], "psql": [], "live": [], "floor": []}
    macro_project = env.tmp / "noop-macro"
    write_switch_macro_project(macro_project)
    ctx_dir = repo / ".dot" / "isolated_builds" / second / "prod"
    floor = switch_command(macro_project, ctx_dir, env.tmp / "noop", "select 1", quiet=True)
    env.run(floor, macro_project)  # warm its partial parse
    for _ in range(args.repeat):
        times["promote"].append(env.run([*DOT, "promote", f"prod@{second}"], repo)[0])
        times["psql"].append(env.run(psql_script(args.pg_dsn, sql), env.tmp)[0])
        times["live"].append(env.run([*DOT, "live", "prod", "--exit-zero"], repo)[0])
        times["floor"].append(env.run(floor, macro_project)[0])
    return times


def _print(args: argparse.Namespace, switches: list[tuple], reports: list[dict], mixed: list[dict], times: dict[str, list[float]]) -> None:
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
    print(f"  dot-tasks promote      {_median(times['promote'])}")
    print(f"  psql -1 (baseline)     {_median(times['psql'])}")
    print(f"  dot-tasks live         {_median(times['live'])}")
    print(f"  dbt start (the floor)  {_median(times['floor'])}  (dbt run-operation of a one-statement macro)")


# --- bench.py promote: rows of its table -------------------------------------------


def _promote_build(env: Env, dsn: str, models: int, rows: int) -> tuple[Path, str, str]:
    """A repository whose HEAD is built (and tested) into `<schema>_<short>`; its path, schema and commit."""
    schema = f"bench_{os.getpid()}_{rows}"
    repo = env.tmp / f"promote-{rows}"
    write_promote_project(repo, dsn, schema, models, rows)
    commit_all(env, repo)
    commit = env.git("rev-parse", "HEAD", cwd=repo)
    say(f"building {models} models x {rows} rows into {schema}_{commit[:8]} ...")
    env.run([*DOT, "run", f"prod@{commit}"], repo)
    return repo, schema, commit


def _promote_results(models: int, rows: int) -> tuple[Result, Result, Result]:
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
    return versus_psql, versus_dbt, by_rows


def _compare(env: Env, args: argparse.Namespace, schemas: list[str], results: tuple[Result, Result, Result]) -> None:
    """Promote a 10-row build and a --promote-rows one; time the first against psql and dbt, and against the second."""
    versus_psql, versus_dbt, by_rows = results
    dsn, models, repeat = args.pg_dsn, args.promote_models, args.repeat
    small, small_schema, small_commit = _promote_build(env, dsn, models, 10)
    schemas.append(small_schema)
    big, big_schema, big_commit = _promote_build(env, dsn, models, args.promote_rows)
    schemas.append(big_schema)
    sql = switch_sql(small_schema, f"{small_schema}_{small_commit[:8]}", models)
    ours_cmd = [*DOT, "promote", f"prod@{small_commit}"]
    env.run(ours_cmd, small)  # the first promotion creates the live schema and its views
    env.run([*DOT, "promote", f"prod@{big_commit}"], big)
    macro_project = env.tmp / "switch-macro"
    write_switch_macro_project(macro_project)
    dbt_cmd = switch_command(macro_project, small / ".dot" / "isolated_builds" / small_commit / "prod", env.tmp / "switch", sql)
    env.run(dbt_cmd, macro_project)  # warm its partial parse, as ours is warm
    interleave(repeat, lambda: env.run(ours_cmd, small)[0], lambda: env.run(psql_script(dsn, sql), env.tmp)[0], versus_psql)
    versus_dbt.ours = list(versus_psql.ours)
    for _ in range(repeat):
        versus_dbt.baseline.append(env.run(dbt_cmd, macro_project)[0])
    interleave(repeat, lambda: env.run([*DOT, "promote", f"prod@{big_commit}"], big)[0], lambda: env.run(ours_cmd, small)[0], by_rows)
    versus_psql.notes.append("ours includes starting Python and dbt (~2.5 s of imports) and the gate; psql starts in milliseconds")
    versus_dbt.notes.append("both sides pay one dbt start; the difference is the checks, locks and history row")


def measure_promote(env: Env, args: argparse.Namespace) -> list[Result]:
    """promote: of --promote-models models, against a hand-written transaction, and with --promote-rows rows per model."""
    if not shutil.which("psql"):
        raise BenchError("promote needs psql for the hand-written baseline")
    results = _promote_results(args.promote_models, args.promote_rows)
    schemas: list[str] = []
    try:
        _compare(env, args, schemas, results)
    finally:
        for schema in schemas:
            drop_pg_schemas(schema + "%", args.pg_dsn)
    return list(results)


def main(argv: list[str] | None = None) -> int:
    """Promotion under readers, then whole-process times; exit 1 when a reader erred or saw two commits at once."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-dsn", default=PG_DSN)
    args = parser.parse_args(argv)
    env = Env(Path(tempfile.mkdtemp(prefix="dot-bench-promote-")))
    schema = f"bench_promote_{os.getpid()}"
    try:
        repo, commits = _build(env, args.pg_dsn, args.models, schema, 7)
        first, second = commits.split()
        env.run([*DOT, "promote", f"prod@{first}"], repo)
        switches, reports, mixed = _under_readers(env, args, repo, schema, second)
        times = _whole_process(env, args, repo, schema, second)
    finally:
        drop_pg_schemas(schema + "%", args.pg_dsn)
    _print(args, switches, reports, mixed, times)
    return 1 if mixed or any(r.get("errors") for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
