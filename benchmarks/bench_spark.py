"""spark: `dot-tasks run` vs the same steps by hand on Spark in session mode (needs java and the
spark extra): cold, into one shared Derby metastore."""

from __future__ import annotations

import argparse
import shutil

from harness import DOT, Env, Result, build_by_hand, interleave, say
from projects import SPARK_MODELS, make_spark_repo, spark_profiles


def measure_spark(env: Env, args: argparse.Namespace) -> list[Result]:
    """spark: cold runs of both sides in turn, after one untimed start that creates the metastore."""
    result = Result(
        "spark",
        f"cold run, Spark session, 1 seed + {SPARK_MODELS} models",
        "s",
        baseline_label="by hand: git rev-parse + git worktree add --detach + write profiles.yml (metastore pinned) + dbt build",
        target_kind="ratio",
        target=1.05,
    )
    repo = make_spark_repo(env)
    env.vars.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # By hand, the metastore and warehouse are pinned to where dot-tasks puts them, so both sides share one.
    pinned = {
        "spark.sql.warehouse.dir": str(repo / "spark-warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={repo / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.stream.error.file={repo / 'derby.log'}",
    }

    def ours() -> float:
        shutil.rmtree(repo / ".dot", ignore_errors=True)
        env.git("worktree", "prune", cwd=repo)
        return env.run([*DOT, "run", "--context", "dev", "--ref", "HEAD"], repo)[0]

    def by_hand() -> float:
        return build_by_hand(env, repo, env.tmp / "byhand-spark", lambda short: spark_profiles(f"dev_{short}", pinned))

    # The first start creates the Derby metastore (much slower); both sides then share it.
    say("spark: creating the metastore (untimed) ...")
    ours()
    interleave(args.repeat, ours, by_hand, result)
    result.notes.append("each side reuses the one metastore and writes the same dev_<short> schema in turn")
    return [result]
