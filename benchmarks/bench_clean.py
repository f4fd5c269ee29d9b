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
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import DOT, Env, say  # noqa: E402
from machine import load_average  # noqa: E402
from projects import make_registry_repo, register_builds  # noqa: E402


def by_hand_list(repo: Path) -> float:
    """The same listing by hand: one select of each build's newest registry row; its seconds."""
    import duckdb

    started = time.perf_counter()
    with duckdb.connect(str(repo / "warehouse.duckdb"), read_only=True) as con:
        con.execute(
            "select * from (select *, row_number() over (partition by project, commit_sha, context "
            "order by recorded_at desc) as rn from dev_dot.dot_builds) where rn = 1"
        ).fetchall()
    return time.perf_counter() - started


def by_hand_clean(repo: Path, schemas: list[str]) -> float:
    """The same clean by hand: a `drop schema ... cascade` loop and one delete from the registry; its seconds."""
    import duckdb

    started = time.perf_counter()
    with duckdb.connect(str(repo / "warehouse.duckdb")) as con:
        for schema in schemas:
            con.execute(f'drop schema "{schema}" cascade')
        con.execute("delete from dev_dot.dot_builds where started_at < '2021'")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Register --builds builds, then time list and clean beside the same by hand, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    figures: dict[str, float | int | str] = {"builds": options.builds, "load": load_average()}
    with tempfile.TemporaryDirectory(prefix="bench-clean-") as tmp:
        env = Env(Path(tmp))
        repo = make_registry_repo(env)
        say(f"registering {options.builds} builds")
        stale = register_builds(repo, options.builds)
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
        register_builds(again, options.builds)
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
