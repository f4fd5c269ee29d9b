"""(d): `dot-tasks run` vs the same steps by hand (git worktree add + profiles.yml + dbt build),
30-model DuckDB project: cold, then a warm re-run of the same commit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness import DOT, BenchError, Env, Result, build_by_hand, dbt_command, interleave, reset_ours
from projects import DUCK_MODELS, duckdb_profiles, make_duck_repo

PARTIAL_PARSE_MISS = "Unable to do partial parsing"
RUN = [*DOT, "run", "--context", "dev", "--ref", "HEAD"]


def _results() -> tuple[Result, Result]:
    cold = Result(
        "d",
        f"cold run, {DUCK_MODELS}-model DuckDB project",
        "s",
        baseline_label="by hand: git rev-parse + git worktree add --detach + write profiles.yml + "
        "dbt build (fresh warehouse, no partial parse)",
        target_kind="ratio",
        target=1.05,
    )
    warm = Result(
        "d",
        "warm re-run, same commit",
        "s",
        baseline_label="by hand: dbt build again with the same flags (partial parse present)",
        target_kind="diff",
        target=0.2,
    )
    return cold, warm


def _cold(env: Env, repo: Path, hand: Path, repeat: int, cold: Result) -> None:
    database = repo / "warehouse.duckdb"

    def ours() -> float:
        reset_ours(env, repo)
        return env.run(RUN, repo)[0]

    def by_hand() -> float:
        for leftover in repo.glob("warehouse.duckdb*"):
            leftover.unlink()
        return build_by_hand(env, repo, hand, lambda short: duckdb_profiles("duck", path=str(database), schema=f"dev_{short}"))

    interleave(repeat, ours, by_hand, cold)


def _warm(env: Env, repo: Path, hand: Path, repeat: int, warm: Result) -> None:
    wt, conf = hand / "worktree", hand / "dbt"
    dbt_cmd = dbt_command(["build"], wt, conf, conf)
    misses = {"ours": 0, "by hand": 0}

    def timed(side: str, cmd: list[str], cwd: Path) -> float:
        seconds, proc = env.run(cmd, cwd)
        misses[side] += PARTIAL_PARSE_MISS in proc.stderr + proc.stdout
        return seconds

    # Both sides now hold a finished build of HEAD: one untimed re-run each settles caches.
    timed("ours", RUN, repo)
    timed("by hand", dbt_cmd, wt)
    misses.update({"ours": 0, "by hand": 0})
    interleave(repeat, lambda: timed("ours", RUN, repo), lambda: timed("by hand", dbt_cmd, wt), warm)
    warm.notes.append(
        f"runs whose dbt output said '{PARTIAL_PARSE_MISS}': ours {misses['ours']}/{repeat}, by hand {misses['by hand']}/{repeat}"
    )
    _, proc = env.run([*RUN, "--json"], repo)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    steps = [line.split("dot-tasks: ", 1)[1] for line in proc.stderr.splitlines() if line.startswith("dot-tasks: ")]
    warm.notes.append(
        "dot-tasks' own step times in a warm run: "
        + " | ".join(" ".join(s.split()[:1] + [s.rsplit("(", 1)[-1].rstrip(")")]) for s in steps)
    )
    warm.notes.append(f"schema {summary.get('schema')}, status {summary.get('status')}")


def measure_d(env: Env, args: argparse.Namespace) -> list[Result]:
    """(d): cold runs of both sides in turn, then warm re-runs of the same commit."""
    repo = env.reuse("duck", make_duck_repo)  # made once for (d) and (e)
    cold, warm = _results()
    hand = env.tmp / "byhand"
    try:
        _cold(env, repo, hand, args.repeat, cold)
    except BenchError as exc:
        cold.error = str(exc)
        warm.error = "skipped: the cold runs failed"
        return [cold, warm]
    try:
        _warm(env, repo, hand, args.repeat, warm)
    except (BenchError, ValueError, IndexError) as exc:
        warm.error = str(exc)
    return [cold, warm]
