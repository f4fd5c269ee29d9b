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
  (`pip install 'reladiff[duckdb,postgresql]'`; not a dependency of dot-tasks).
`--memory`: the peak RSS of the orchestrator and of its dbt children, for 10,000 rows and for
`--rows` rows with 20% changed (#18's target: within 50 MB of each other).
`--matching N`: N matching rows across two DuckDB files (and PostgreSQL databases), warehouse
time of the two-database diff (data-diff publishes "25M+ rows in under 10 s").

The figures are printed; nothing is asserted. On a shared machine, read them with the load
average printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import DIFF_MEMORY, DOT, Env, _pg_profile, load_average, say  # noqa: E402
from projects import make_diff_repo  # noqa: E402

PG_DSN = os.environ.get("DOT_TASKS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
COLUMNS = [f"c{i}" for i in range(1, 10)]


def changed_model(rows: int, head: bool, every: int) -> str:
    """`big` with `rows` rows; in head, c1 changes in every `every`-th row (no rows added or removed)."""
    c1 = f"case when i % {every} = 0 then (i % 97) + 1 else i % 97 end" if head else "i % 97"
    return textwrap.dedent(f"""
        {{% if target.type == 'duckdb' %}}
          {{% set series = "(select range as i from range(1, " ~ {rows} ~ " + 1)) g" %}}
        {{% else %}}
          {{% set series = "generate_series(1, " ~ {rows} ~ ") as g(i)" %}}
        {{% endif %}}
        select i as id, {c1} as c1, i % 101 as c2, cast(i as {{{{ dbt.type_float() }}}}) / 7 as c3,
               'name ' || cast(i % 1000 as {{{{ dbt.type_string() }}}}) as c4,
               case when i % 3 = 0 then null else i % 5 end as c5, i % 2 = 0 as c6,
               cast(i * 3 as {{{{ dbt.type_bigint() }}}}) as c7, 'x' as c8, i % 13 as c9
        from {{{{ series }}}}
        """).lstrip()


def duckdb_profile() -> str:
    return (
        "bench:\n  target: dev\n  outputs:\n"
        "    dev: {type: duckdb, path: warehouse.duckdb, schema: dev, threads: 4}\n"
        "    other: {type: duckdb, path: other.duckdb, schema: dev, threads: 4}\n"
    )


def postgres_profile(prefix: str, other_db: str) -> str | None:
    profile = _pg_profile(prefix)
    if profile is None:
        return None
    dev = profile.split("outputs:\n", 1)[1]
    dbname = dev.split("dbname: ", 1)[1].split()[0]
    return profile + dev.replace("dev:", "other:", 1).replace(f"dbname: {dbname}", f"dbname: {other_db}")


def build(env: Env, name: str, rows: int, every: int, profile: str) -> tuple[Path, str, str]:
    repo, base, head = make_diff_repo(env, env.tmp / name, rows, profile)
    (repo / "models" / "big.sql").write_text(changed_model(rows, head=False, every=every))
    env.git("commit", "-q", "-am", "base", cwd=repo)
    base = env.git("rev-parse", "HEAD", cwd=repo)
    (repo / "models" / "big.sql").write_text(changed_model(rows, head=True, every=every))
    env.git("commit", "-q", "-am", "head", cwd=repo)
    head = env.git("rev-parse", "HEAD", cwd=repo)
    for spec in (f"dev@{base}", f"dev@{head}", f"other@{head}"):
        env.run([*DOT, "run", spec], repo)
    return repo, base, head


def run_diff(env: Env, repo: Path, base: str, head: str) -> dict[str, Any]:
    """One diff under the memory wrapper: seconds, peak RSS of this process and of its children, the JSON."""
    started = time.monotonic()
    _, proc = env.run(
        [sys.executable, "-c", DIFF_MEMORY + CHILDREN_RSS, base, head, "--no-build", "--select", "big", "--json"], repo, check=False
    )
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


def schema_of(repo: Path, commit: str, context: str) -> str:
    return json.loads((repo / ".dot" / "isolated_builds" / commit / context / "build.json").read_text())["schema"]


def one_engine(env: Env, engine: str, rows: int, every: int) -> dict[str, Any]:
    other_db = "dd_bench_" + uuid.uuid4().hex[:8]
    conn = None
    if engine == "postgres":
        import psycopg2

        profile = postgres_profile(other_db + "_s", other_db)
        if profile is None:
            return {"engine": engine, "error": "no PostgreSQL server"}
        conn = psycopg2.connect(PG_DSN)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'create database "{other_db}"')
    else:
        profile = duckdb_profile()
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
        out["reladiff"] = reladiff_seconds(engine, *uris, schema_of(repo, base, "dev"), schema_of(repo, head, "other"))
        return out
    finally:
        if conn is not None:
            with conn.cursor() as cur:
                cur.execute(f'drop database if exists "{other_db}" with (force)')
                cur.execute("select nspname from pg_namespace where nspname like %s", (other_db + "\\_s%",))
                for (name,) in cur.fetchall():
                    cur.execute(f'drop schema "{name}" cascade')
            conn.close()


def report(result: dict[str, Any]) -> None:
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
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.001, help="share of rows whose c1 changes")
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--memory", action="store_true", help="10,000 rows against --rows, 20%% changed")
    parser.add_argument("--matching", type=int, default=0, help="also N matching rows (no change)")
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-apart-") as tmp:
        env = Env(Path(tmp))
        for engine in args.engines.split(","):
            if args.memory:
                small = one_engine(env, engine, 10_000, 5)
                large = one_engine(env, engine, args.rows, 5)
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
                report(one_engine(env, engine, args.matching, args.matching + 1))
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
