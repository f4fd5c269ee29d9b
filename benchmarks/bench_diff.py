"""diff: `dot-tasks diff --no-build --select big` of a 1,000,000-row, 10-column model (1% changed,
0.5% added, 0.5% removed) vs `dbt show --inline` with one full-outer-join count query, on DuckDB and
PostgreSQL; and the orchestrator's peak memory at 10,000 vs 1,000,000 rows."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from harness import (
    DOT,
    PG_DSN,
    PY,
    BenchError,
    Env,
    Result,
    build_record,
    dbt_command,
    drop_pg_schemas,
    forked_from_shell,
    interleave,
    pg_answers,
    rss_marker,
    say,
)
from projects import by_hand_query, duckdb_profiles, make_diff_repo, postgres_profile

#: Runs `dot-tasks diff <argv>` in-process and prints its peak RSS on a `BENCH_RSS` line.
DIFF_MEMORY = """
import json, resource, sys
from dot_tasks.main import program
program.run(["dot-tasks", "diff", *sys.argv[1:]], exit=False)
sys.stdout.flush()
print("BENCH_RSS " + json.dumps({"self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
DIFF_BIG = ["--no-build", "--select", "big", "--json"]


def diff_setup(env: Env, name: str, rows: int, profile: str, head_context: str = "dev", **model: Any) -> tuple[Path, str, str]:
    """The diff repository (`model` as `make_diff_repo` takes it), base built as dev and head as `head_context`."""
    repo, base, head = make_diff_repo(env, env.tmp / name, rows, profile, **model)
    for context, commit in (("dev", base), (head_context, head)):
        env.run([*DOT, "run", f"{context}@{commit}"], repo)
    return repo, base, head


def by_hand_diff(repo: Path, base: str, head: str, scratch: Path) -> list[str]:
    """`dbt show --inline` of the one full-outer-join query over the dev builds of `base` and `head`."""
    relations = [f"{build_record(repo, commit, 'dev')['schema']}.big" for commit in (base, head)]
    builds = repo / ".dot" / "isolated_builds" / head
    return dbt_command(["show", "--inline", by_hand_query(*relations)], builds / "worktree", builds / "dev", scratch)


def diff_found(values: dict[str, Any]) -> str:
    """The note that says what a diff found."""
    return (
        f"diff found: +{values['added']} -{values['removed']} ~{values['changed']} "
        f"={values['unchanged']} (c1: {values['columns'].get('c1')})"
    )


def _one_adapter(env: Env, adapter: str, profile: str | None, repeat: int, rows: int) -> Result:
    """Ours against the query by hand, on one adapter (no profile: no server, the row says skipped)."""
    result = Result(
        "diff",
        f"diff of {rows:,} rows x 10 columns, {adapter}",
        "s",
        target_kind="ratio",
        target=1.2,
        baseline_label="`dbt show --inline` with one full-outer-join count query",
    )
    if profile is None:
        result.error = "no PostgreSQL server answered: skipped"
        return result
    say(f"diff: building the {rows:,}-row model twice on {adapter} ...")
    repo, base, head = diff_setup(env, f"diff-{adapter}", rows, profile)
    seen: dict[str, Any] = {}

    def ours() -> float:
        seconds, proc = env.run([*DOT, "diff", base, head, *DIFF_BIG], repo, check=False)
        if proc.returncode != 1:
            raise BenchError(f"diff exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
        seen["diff"] = json.loads(proc.stdout)
        return seconds

    by_hand = by_hand_diff(repo, base, head, env.tmp / "by-hand")
    interleave(repeat, ours, lambda: env.run(by_hand, repo)[0], result)
    result.notes.append(diff_found(seen["diff"]["nodes"][0]["values"]))
    return result


def _memory(env: Env, repeat: int, duckdb: str) -> Result:
    """The orchestrator's peak RSS diffing the big DuckDB build against diffing a 10,000-row one."""
    mem = Result(
        "diff",
        "orchestrator peak RSS, diff of 1M vs 10k rows (DuckDB)",
        "MB",
        target_kind="diff",
        target=10.0,
        baseline_label="the same diff of a 10,000-row model",
    )
    small = diff_setup(env, "diff-small", 10_000, duckdb)
    big_repo = env.tmp / "diff-duckdb"
    big = (big_repo, env.git("rev-parse", "HEAD~1", cwd=big_repo), env.git("rev-parse", "HEAD", cwd=big_repo))
    for bucket, (repo, base, head) in ((mem.ours, big), (mem.baseline, small)):
        for _ in range(repeat):
            _, proc = env.run(forked_from_shell([PY, "-c", DIFF_MEMORY, base, head, *DIFF_BIG]), repo, check=False)
            bucket.append(rss_marker(proc)["self_kb"] / 1024)
    return mem


def measure_diff(env: Env, args: argparse.Namespace) -> list[Result]:
    """diff: DuckDB and PostgreSQL side by side with the query by hand, then the memory of the orchestrator."""
    pg_prefix = "bench_" + os.urandom(4).hex()
    profiles = {
        "duckdb": duckdb_profiles("bench", threads=4),
        "postgres": postgres_profile("bench", PG_DSN, pg_prefix, target="dev") if pg_answers() else None,
    }
    results = []
    try:
        for adapter, profile in profiles.items():
            results.append(_one_adapter(env, adapter, profile, args.repeat, args.rows))
        # Memory of the orchestrator does not grow with the table: 10,000 rows against `rows`.
        results.append(_memory(env, args.repeat, profiles["duckdb"]))
    finally:
        if profiles["postgres"] is not None:
            drop_pg_schemas(pg_prefix + "\\_%")
    return results
