"""`diff` across two databases: time, rows transferred and peak memory, beside the same-database diff
and reladiff (data-diff's maintained fork) on the same data.

    python benchmarks/bench_diff_apart.py [--rows 1000000] [--changed 0.001] [--engines duckdb,postgres]
                                          [--memory] [--matching 0]

For each engine it builds one model (`big`, 10 columns) at a base and a head commit, the
head into two contexts: `dev` (the base's database) and `other` (a second DuckDB file or
a second PostgreSQL database, created with a random suffix and dropped after). Then:
- `dot-tasks diff dev@base dev@head` (one database: one full outer join);
- `dot-tasks diff dev@base other@head` (two databases: checksums of key-hash buckets);
- reladiff's `diff_tables` on the same two relations, when reladiff is installed
  (`pip install 'reladiff[duckdb,postgresql]'`; not a dependency of dot-tasks); on PostgreSQL
  again after an index on the key is made, since reladiff reads a key range at a time and
  dbt builds tables without one.
`--memory`: the peak RSS of the orchestrator and of its dbt children, for 10,000 rows and for
`--rows` rows with 20% changed (#18's target: within 50 MB of each other).
`--matching N`: N matching rows across two DuckDB files (and PostgreSQL databases), warehouse
time of the two-database diff beyond the same diff of 10 rows (data-diff publishes "25M+ rows in
under 10 s"); `--no-reladiff` leaves reladiff out of that run.

The figures are printed; nothing is asserted. On a shared machine, read them with the load
average printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_diff import DIFF_BIG, DIFF_MEMORY, diff_setup  # noqa: E402
from harness import DOT, PG_DSN, BenchError, Env, Result, build_record, drop_pg_schemas, forked_from_shell, pg_answers, say  # noqa: E402
from machine import load_average  # noqa: E402
from projects import duckdb_two_files_profile, postgres_two_databases_profile  # noqa: E402

COLUMNS = [f"c{i}" for i in range(1, 10)]


def build(env: Env, name: str, rows: int, every: int, profile: str) -> tuple[Path, str, str]:
    """`big` with `rows` rows, c1 changed in one row of `every` at head; base built as dev, head as dev and other."""
    repo, base, head = diff_setup(env, name, rows, profile, changed_every=every, add_and_remove=False)
    env.run([*DOT, "run", f"other@{head}"], repo)
    return repo, base, head


def run_diff(env: Env, repo: Path, base: str, head: str) -> dict[str, Any]:
    """One diff under the memory wrapper: seconds, peak RSS of this process and of its children, the JSON."""
    started = time.monotonic()
    # Started by a small shell: Linux carries ru_maxrss across exec, so a wrapper forked from this
    # script (large once reladiff has run in it) would report at least this script's size.
    wrapper = [sys.executable, "-c", DIFF_MEMORY + CHILDREN_RSS, base, head, "--no-build", "--select", "big", "--json"]
    _, proc = env.run(forked_from_shell(wrapper), repo, check=False)
    seconds = time.monotonic() - started
    lines = proc.stdout.splitlines()
    rss = json.loads(next(line for line in lines if line.startswith("BENCH_RSS "))[10:])
    children = json.loads(next(line for line in lines if line.startswith("BENCH_CHILDREN "))[15:])
    data = json.loads("\n".join(line for line in lines if not line.startswith("BENCH_")))
    return {"seconds": seconds, "self_mb": rss["self_kb"] / 1024, "children_mb": children["kb"] / 1024, "data": data}


CHILDREN_RSS = """
print("BENCH_CHILDREN " + json.dumps({"kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def reladiff_seconds(engine: str, base_uri: str, head_uri: str, schema_base: str, schema_head: str) -> float | None:
    """Seconds of reladiff's `diff_tables` over the two relations, or None when reladiff is not installed."""
    try:
        from reladiff import connect_to_table, diff_tables
    except ImportError:
        return None
    started = time.monotonic()
    t1 = connect_to_table(base_uri, (schema_base, "big"), "id", extra_columns=tuple(COLUMNS))
    t2 = connect_to_table(head_uri, (schema_head, "big"), "id", extra_columns=tuple(COLUMNS))
    differences = sum(1 for _ in diff_tables(t1, t2))
    seconds = time.monotonic() - started
    for table in (t1, t2):  # an open reladiff transaction would block dropping the benchmark's schemas
        table.database.close()
    say(f"{engine}: reladiff found {differences:,} differing rows (+/- pairs) in {seconds:.1f}s")
    return seconds


def one_engine(env: Env, engine: str, rows: int, every: int, reladiff: bool = True) -> dict[str, Any]:
    """Build, diff in one database and across two, and run reladiff, on one engine; the figures (or an error)."""
    other_db = "dd_bench_" + uuid.uuid4().hex[:8]
    conn = None
    if engine == "postgres":
        import psycopg2

        if not pg_answers():
            return {"engine": engine, "error": "no PostgreSQL server"}
        profile = postgres_two_databases_profile(PG_DSN, other_db + "_s", other_db)
        conn = psycopg2.connect(PG_DSN)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'create database "{other_db}"')
    else:
        profile = duckdb_two_files_profile()
    try:
        say(f"{engine}: building {rows:,} rows, one in {every} changed, into two databases ...")
        repo, base, head = build(env, f"apart-{engine}-{rows}-{every}", rows, every, profile)
        same = run_diff(env, repo, f"dev@{base}", f"dev@{head}")
        apart = run_diff(env, repo, f"dev@{base}", f"other@{head}")
        out = {"engine": engine, "rows": rows, "changed_share": 1 / every, "same": same, "apart": apart}
        if engine == "duckdb":
            uris = (f"duckdb://{repo / 'warehouse.duckdb'}", f"duckdb://{repo / 'other.duckdb'}")
        else:
            uris = (PG_DSN, PG_DSN.rsplit("/", 1)[0] + "/" + other_db)
        if reladiff:
            schemas = (build_record(repo, base, "dev")["schema"], build_record(repo, head, "other")["schema"])
            out["reladiff"] = reladiff_seconds(engine, *uris, *schemas)
            if engine == "postgres":
                # reladiff reads a key range at a time and expects an index on the key; dbt builds
                # tables without one, so each of its range queries scans the whole table. Its time
                # with an index (made only now: our diff above read the tables as dbt built them).
                for uri, schema in zip(uris, schemas, strict=True):
                    index = psycopg2.connect(uri)
                    index.autocommit = True
                    with index.cursor() as cur:
                        cur.execute(f'create index on "{schema}".big (id)')
                        cur.execute(f'analyze "{schema}".big')
                    index.close()
                out["reladiff_indexed"] = reladiff_seconds(engine, *uris, *schemas)
        return out
    finally:
        if conn is not None:
            with conn.cursor() as cur:
                cur.execute(f'drop database if exists "{other_db}" with (force)')
            conn.close()
            drop_pg_schemas(other_db + "\\_s%")


def report(result: dict[str, Any]) -> None:
    """One engine's figures, on one line."""
    if "error" in result:
        print(f"{result['engine']}: {result['error']}")
        return
    same, apart = result["same"], result["apart"]
    values = apart["data"]["nodes"][0]["values"]
    transfer = values.get("transfer", {})
    share = apart["data"]["rows_transferred"] / result["rows"]
    print(
        f"{result['engine']:<8} {result['rows']:>10,} rows, {result['changed_share']:.2%} changed: "
        f"one database {same['seconds']:.1f}s; two {apart['seconds']:.1f}s "
        f"({apart['seconds'] / same['seconds']:.2f}x); rows transferred {apart['data']['rows_transferred']:,} "
        f"({share:.2%}), {transfer.get('checksums', 0):,} bucket checksums; changed found {values['changed']:,}; "
        f"peak RSS orchestrator {apart['self_mb']:.0f} MB, dbt children {apart['children_mb']:.0f} MB"
        + (f"; reladiff {result['reladiff']:.1f}s ({apart['seconds'] / result['reladiff']:.2f}x)" if result.get("reladiff") else "")
        + (
            f"; reladiff with an index on id {result['reladiff_indexed']:.1f}s ({apart['seconds'] / result['reladiff_indexed']:.2f}x)"
            if result.get("reladiff_indexed")
            else ""
        )
    )


# --- bench.py diff-apart: one row of its table -----------------------------------


def _transfers(env: Env, repo: Path, base: str, head: str, repeat: int, result: Result) -> tuple[list[int], dict[str, Any]]:
    """`repeat` timed diffs of dev@base against other@head: rows transferred by each, and the last one's values."""
    transferred, values = [], {}
    for _ in range(repeat):
        seconds, proc = env.run([*DOT, "diff", f"dev@{base}", f"other@{head}", *DIFF_BIG], repo, check=False)
        if proc.returncode != 1:
            raise BenchError(f"diff exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
        data = json.loads(proc.stdout)
        result.ours.append(seconds)
        transferred.append(data["rows_transferred"])
        values = data["nodes"][0]["values"]
    return transferred, values


def _apart(env: Env, repeat: int, rows: int, pg_prefix: str, result: Result) -> None:
    """Build `big` into a second database made for the purpose, diff across the two, drop that database."""
    import psycopg2

    other_db = pg_prefix + "_other"
    conn = psycopg2.connect(PG_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'create database "{other_db}"')
        profile = postgres_two_databases_profile(PG_DSN, pg_prefix, other_db)
        say(f"diff: building {rows:,} rows into two PostgreSQL databases ...")
        repo, base, head = diff_setup(env, "diff-apart", rows, profile, "other", changed_every=1000, add_and_remove=False)
        transferred, values = _transfers(env, repo, base, head, repeat, result)
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


def measure_diff_apart(env: Env, args: argparse.Namespace) -> list[Result]:
    """diff-apart: the same model in two PostgreSQL databases with 0.1% of rows changed: how many rows leave the warehouses."""
    result = Result(
        "diff",
        f"diff across two PostgreSQL databases, {args.rows:,} rows, 0.1% changed",
        "s",
        baseline_label="(no by-hand equivalent: no single query can join two databases)",
    )
    pg_prefix = "bench_" + os.urandom(4).hex()
    try:
        if pg_answers():
            _apart(env, args.repeat, args.rows, pg_prefix, result)
        else:
            result.error = "no PostgreSQL server answered: skipped"
    finally:
        drop_pg_schemas(pg_prefix + "\\_%")
    return [result]


def main() -> int:
    """Each engine at --rows (and --matching), or with --memory at 10,000 rows against --rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.001, help="share of rows whose c1 changes")
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--memory", action="store_true", help="10,000 rows against --rows, 20%% changed")
    parser.add_argument("--matching", type=int, default=0, help="also N matching rows (no change)")
    parser.add_argument("--no-reladiff", action="store_true", help="skip reladiff on the --matching run (minutes at 25M rows)")
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-apart-") as tmp:
        env = Env(Path(tmp))
        for engine in args.engines.split(","):
            if args.memory:
                small = one_engine(env, engine, 10_000, 5, reladiff=False)
                large = one_engine(env, engine, args.rows, 5, reladiff=False)
                report(small)
                report(large)
                if "error" not in large:
                    grew = (
                        large["apart"]["self_mb"]
                        + large["apart"]["children_mb"]
                        - small["apart"]["self_mb"]
                        - small["apart"]["children_mb"]
                    )
                    print(f"{engine}: peak memory grew {grew:.0f} MB from 10,000 to {args.rows:,} rows (target: within 50 MB)")
                continue
            report(one_engine(env, engine, args.rows, max(1, round(1 / args.changed))))
            if args.matching:
                large = one_engine(env, engine, args.matching, args.matching + 1, reladiff=not args.no_reladiff)
                tiny = one_engine(env, engine, 10, 11, reladiff=False)
                report(large)
                report(tiny)
                if "error" not in large and "error" not in tiny:
                    # What the same diff of 10 rows takes is the fixed cost: two dbt sessions and the plan.
                    warehouse = large["apart"]["seconds"] - tiny["apart"]["seconds"]
                    print(f"{engine}: {args.matching:,} matching rows across two databases: {warehouse:.1f}s beyond the 10-row diff's")
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
