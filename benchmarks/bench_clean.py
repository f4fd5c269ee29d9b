#!/usr/bin/env python3
"""The warehouse registry: `list --warehouse` and `clean --warehouse --older-than` over N registered builds.

    python benchmarks/bench_clean.py [--builds 200] [--json]

In a DuckDB warehouse it registers N builds (N schemas `dev_<short>` with one
table each, and their registry events in `dev_dot.dot_builds`), half of them
older than a week, and prints, side by side with the same work by hand:

  list --warehouse          vs one `select` of the registry's newest rows (duckdb's Python client)
  clean --warehouse --older-than 7d --dry-run, then the real clean
                            vs a hand-written `drop schema ... cascade` loop over the same schemas
  list (no --warehouse)     which must stay dbt-free and under 0.3 s

A plain script, not a test: it reports, it does not assert.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import DOT, Env, commit_all, duckdb_profiles, load_average, say, write  # noqa: E402

COLUMNS = (
    "project",
    "commit_sha",
    "short",
    "context",
    "build_schema",
    "schemas",
    "status",
    "started_at",
    "finished_at",
    "recorded_at",
    "dbt_version",
    "dot_version",
    "built_by",
    "host",
    "workdir",
    "command",
    "deferred_commit",
    "deferred_context",
    "deferred_schema",
)


def make_repo(env: Env) -> Path:
    repo = env.tmp / "registry"
    write(
        repo / "dbt_project.yml",
        """
        name: small
        profile: small
        config-version: 2
        """,
    )
    write(repo / "profiles.yml", duckdb_profiles("small"))
    write(repo / "models" / "a.sql", "select 1 as x\n")
    write(repo / ".gitignore", "warehouse.duckdb\n")
    commit_all(env, repo)
    return repo


def register(repo: Path, builds: int) -> list[str]:
    """N builds from 'other machines' in the registry, half of them two weeks old; the old schemas."""
    import duckdb

    old = "2020-01-01T00:00:00.000000Z"
    new = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    rows, stale = [], []
    with duckdb.connect(str(repo / "warehouse.duckdb")) as con:
        con.execute("create schema if not exists dev_dot")
        con.execute(f"create table if not exists dev_dot.dot_builds ({', '.join(c + ' varchar' for c in COLUMNS)})")
        for i in range(builds):
            commit = hashlib.sha1(f"bench {i}".encode()).hexdigest()
            short, schema = commit[:8], f"dev_{commit[:8]}"
            when = old if i % 2 == 0 else new
            con.execute(f'create schema "{schema}"')
            con.execute(f'create table "{schema}".a as select 1 as x')
            for status in ("running", "success"):
                rows.append(
                    (
                        "small",
                        commit,
                        short,
                        "dev",
                        schema,
                        json.dumps([schema]),
                        status,
                        when,
                        when,
                        when[:-2] + ("1Z" if status == "success" else "0Z"),
                        None,
                        None,
                        "ci@example.com",
                        f"runner-{i % 7}",
                        f"/runner/{i}",
                        "build",
                        None,
                        None,
                        None,
                    )
                )
            if when == old:
                stale.append(schema)
        con.executemany(f"insert into dev_dot.dot_builds values ({', '.join('?' for _ in COLUMNS)})", rows)
    return stale


def by_hand_list(repo: Path) -> float:
    import duckdb

    started = time.perf_counter()
    with duckdb.connect(str(repo / "warehouse.duckdb"), read_only=True) as con:
        con.execute(
            "select * from (select *, row_number() over (partition by project, commit_sha, context "
            "order by recorded_at desc) as rn from dev_dot.dot_builds) where rn = 1"
        ).fetchall()
    return time.perf_counter() - started


def by_hand_clean(repo: Path, schemas: list[str]) -> float:
    import duckdb

    started = time.perf_counter()
    with duckdb.connect(str(repo / "warehouse.duckdb")) as con:
        for schema in schemas:
            con.execute(f'drop schema "{schema}" cascade')
        con.execute("delete from dev_dot.dot_builds where started_at < '2021'")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    figures: dict[str, float | int | str] = {"builds": options.builds, "load": load_average()}
    with tempfile.TemporaryDirectory(prefix="bench-clean-") as tmp:
        env = Env(Path(tmp))
        repo = make_repo(env)
        say(f"registering {options.builds} builds")
        stale = register(repo, options.builds)
        figures["list_warehouse_s"], listed = env.run([*DOT, "list", "--warehouse", "--json"], repo)
        figures["listed"] = len(listed.stdout.splitlines())
        figures["by_hand_list_s"] = by_hand_list(repo)
        figures["list_local_s"], _ = env.run([*DOT, "list"], repo)
        figures["clean_dry_run_s"], dry = env.run([*DOT, "clean", "--warehouse", "--older-than", "7d", "--dry-run"], repo)
        figures["would_drop"] = sum(1 for line in dry.stdout.splitlines() if line.startswith("would drop "))
        figures["clean_s"], real = env.run([*DOT, "clean", "--warehouse", "--older-than", "7d"], repo)
        figures["dropped"] = sum(1 for line in real.stdout.splitlines() if line.startswith("dropped "))
        # The same drops by hand, on a fresh copy of the same registry.
        again = env.tmp / "again"
        again.mkdir()
        register(again, options.builds)
        figures["by_hand_clean_s"] = by_hand_clean(again, stale)
    if options.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{options.builds} registered builds, half older than 7d (load {figures['load']})")
    print(
        f"  list --warehouse                  {figures['list_warehouse_s']:.2f}s ({figures['listed']} rows)"
        f"   by hand (one select): {figures['by_hand_list_s']:.3f}s"
    )
    print(f"  clean --warehouse --older-than 7d --dry-run  {figures['clean_dry_run_s']:.2f}s ({figures['would_drop']} would go)")
    print(
        f"  clean --warehouse --older-than 7d            {figures['clean_s']:.2f}s ({figures['dropped']} dropped)"
        f"   by hand (drop ... cascade loop): {figures['by_hand_clean_s']:.3f}s"
    )
    print(f"  list (this machine only, no dbt)  {figures['list_local_s']:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
