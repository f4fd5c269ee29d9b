"""Spark as a cluster: every command through a Thrift server over a standalone master and two workers.

The cluster (benchmarks/spark_cluster.py) starts once for this module, the only
one that needs it (pytest-xdist --dist loadfile keeps a module on one worker),
and is stopped by pid when the module ends, whether its tests passed or not.
Its metastore is Derby inside the Thrift server's JVM; every dbt process is a
Thrift session of that one server, so builds run side by side without a lock.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from conftest import Project, make_project

pytestmark = pytest.mark.spark_cluster

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import spark_cluster  # noqa: E402 - the cluster script of the benchmarks, not an installed package


def _available() -> None:
    missing = [what for what, ok in (("java", shutil.which("java")),
                                     ("pyspark", importlib.util.find_spec("pyspark")),
                                     ("pyhive", importlib.util.find_spec("pyhive"))) if not ok]
    if missing and os.environ.get("CI"):
        pytest.fail(f"{' and '.join(missing)} missing under CI: the spark_cluster tests must run there")
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (pip install -e '.[spark]')")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[spark_cluster.Cluster]:
    _available()
    started = spark_cluster.start(tmp_path_factory.mktemp("spark-cluster"))
    try:
        yield started
    finally:
        pids = dict(started.pids)
        started.stop()
        assert not [name for name, pid in pids.items() if spark_cluster._alive(pid)]


class Spark:
    """A Thrift session of the test's own, as a reader of the warehouse (not through dot-tasks)."""

    def __init__(self, cluster: spark_cluster.Cluster) -> None:
        from pyhive import hive

        self.connection = hive.connect(host=spark_cluster.HOST, port=cluster.thrift_port, username="reader")

    def rows(self, sql: str) -> list[tuple]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql)
            return [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def schemas(self, prefix: str) -> set[str]:
        return {r[0] for r in self.rows("show schemas") if r[0].startswith(prefix)}

    def close(self) -> None:
        self.connection.close()


@pytest.fixture(scope="module")
def spark(cluster: spark_cluster.Cluster) -> Iterator[Spark]:
    reader = Spark(cluster)
    yield reader
    reader.close()


def thrift_profile(cluster: spark_cluster.Cluster, schemas: dict[str, str]) -> str:
    """profiles.yml of the project `shop`: one output per context, each a schema on the cluster."""
    outputs = {ctx: cluster.dbt_output(schema) for ctx, schema in schemas.items()}
    return json.dumps({"shop": {"target": next(iter(schemas)), "outputs": outputs}}, indent=2)  # JSON is YAML


def unique_base() -> str:
    """A schema base of the test's own: commits of equal trees made in one second share a hash."""
    return "sc" + uuid.uuid4().hex[:6]


def _dot(project_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dot_tasks", *args], cwd=project_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _node_windows(project: Project, commit: str, context: str = "dev") -> list[tuple[float, float]]:
    """When each node of a build ran, from dbt's run_results.json (its `execute` timing)."""
    results = json.loads((project.build_dir(commit) / context / "target" / "run_results.json").read_text())
    windows = []
    for result in results["results"]:
        for timing in result["timing"]:
            if timing["name"] == "execute" and timing.get("started_at"):
                windows.append((datetime.fromisoformat(timing["started_at"].rstrip("Z")).timestamp(),
                                datetime.fromisoformat(timing["completed_at"].rstrip("Z")).timestamp()))
    return windows


def test_two_commits_at_once_then_list_and_clean(cluster: spark_cluster.Cluster, spark: Spark, tmp_path: Path) -> None:
    base = unique_base()
    project = make_project(tmp_path, profile=thrift_profile(cluster, {"dev": base}))
    first, second = project.first, project.second
    # Both at once, with no lock between them: two Thrift sessions of one server.
    procs = [_dot(project.project_dir, "run", "--ref", commit, "--json") for commit in (first, second)]
    results = [_finish(p) for p in procs]
    for code, _out, err in results:
        assert code == 0, err[-3000:]
        assert "waiting for" not in err, err
    assert [json.loads(out)["schema"] for _c, out, _e in results] == [f"{base}_{first[:8]}", f"{base}_{second[:8]}"]
    # They really ran concurrently: some query of one build ran while one of the other did.
    one, other = _node_windows(project, first), _node_windows(project, second)
    assert one and other
    assert any(a0 < b1 and b0 < a1 for a0, a1 in one for b0, b1 in other), (one, other)

    listed = [json.loads(line) for line in subprocess.run(
        [sys.executable, "-m", "dot_tasks", "list", "--json"], cwd=project.project_dir,
        capture_output=True, text=True, check=True).stdout.splitlines()]
    assert {(r["commit"], r["schema"], r["status"]) for r in listed if r["context"]} == {
        (first, f"{base}_{first[:8]}", "success"), (second, f"{base}_{second[:8]}", "success")}

    # Another session sees both builds, each with its commit's rows.
    assert spark.rows(f"select count(*), sum(amount) from {base}_{first[:8]}.orders") == [(3, 60)]
    assert spark.rows(f"select count(*), sum(amount) from {base}_{second[:8]}.orders") == [(2, 100)]
    spark.rows(f"create schema if not exists {base}")  # the user's own schema: clean must spare it

    clean = project.run("clean", "--all")
    assert clean.code == 0, clean.stderr
    assert f"dropped {base}_{first[:8]}" in clean.stdout and f"dropped {base}_{second[:8]}" in clean.stdout
    assert spark.schemas(base) == {base}
    assert not (cluster.warehouse / f"{base}_{first[:8]}.db").exists()
    assert not project.build_dir(first).exists()
