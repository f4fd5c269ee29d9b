"""Apache Spark in session mode: builds side by side in one Derby metastore, queueing on it, clean, the guard.

Each dbt start on Spark costs ~20 s (a JVM and the Hive metastore), so these
tests are few and each one covers several guarantees.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Project, make_project, write

pytestmark = pytest.mark.spark

# What the user would see if two JVMs opened one embedded Derby metastore.
DERBY_FAILURES = ("XSDB6", "Another instance of Derby", "SessionHiveMetaStoreClient", "Traceback")


@pytest.fixture(autouse=True)
def spark_available() -> None:
    missing = [what for what, ok in (("java", shutil.which("java")), ("dbt-spark[session]", importlib.util.find_spec("pyspark"))) if not ok]
    if missing and os.environ.get("CI"):
        pytest.fail(f"{' and '.join(missing)} missing under CI: the spark tests must run there")
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (pip install -e '.[spark]')")


def spark_profile(schema: str = "dev") -> str:
    return f"""
        shop:
          target: dev
          outputs:
            dev:
              type: spark
              method: session
              host: NA
              schema: {schema}
              threads: 1
        """


def spark_project(root: Path) -> Project:
    return make_project(root, profile=spark_profile())


# A third process, as the user would open one: pyspark with Spark's defaults,
# started from the project directory, so it finds the metastore where their own
# dbt would. It prints what it sees, then holds the metastore until told to go.
READER = """
import json, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.enableHiveSupport().getOrCreate()
spark.sql("create schema if not exists dev")  # the user's own schema: clean must spare it
seen = {"schemas": sorted(r[0] for r in spark.sql("show schemas").collect())}
for schema in sys.argv[1:]:
    seen[schema] = [list(r) for r in spark.sql(
        f"select count(*), sum(amount) from {schema}.orders").collect()]
print(json.dumps(seen), flush=True)
sys.stdin.readline()
"""


def _start(project: Project, command: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["bash", "-c", command],
        cwd=project.project_dir,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
    )


def _dot(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "dot_tasks", *args])


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _stream(proc: subprocess.Popen, lines: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    thread.start()
    return thread


def _no_derby_noise(*outputs: str) -> None:
    for output in outputs:
        for needle in DERBY_FAILURES:
            assert needle not in output, output[-3000:]


def test_two_commits_side_by_side_then_clean(tmp_path: Path) -> None:
    project = spark_project(tmp_path)
    first, second = project.first, project.second
    # Two builds at once into one embedded Derby metastore: `run` for one
    # commit, and each step alone for the other. The second queues on the lock.
    # dbt's data tests are left out: each query costs seconds on Spark, and
    # they prove nothing about isolation that the rows below do not.
    no_tests = ["--exclude", "resource_type:test"]
    by_run = _start(project, _dot("run", "--ref", first, "--json", *no_tests))
    by_steps = _start(
        project,
        " && ".join([_dot("worktree", "--ref", second), _dot("profile", "--ref", second), _dot("build", "--ref", second, *no_tests)]),
    )
    # communicate, not wait: a child blocked on a full pipe would never finish.
    results = [_finish(p) for p in (by_run, by_steps)]
    for code, _out, err in results:
        assert code == 0, err[-3000:]
    _no_derby_noise(*(out + err for _c, out, err in results))
    assert any("waiting for the Spark metastore" in err for _c, _o, err in results)
    assert json.loads(results[0][1])["schema"] == f"dev_{first[:8]}"

    listed = [
        json.loads(line)
        for line in subprocess.run(
            [sys.executable, "-m", "dot_tasks", "list", "--json"], cwd=project.project_dir, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    ]
    assert {(r["commit"], r["schema"], r["status"]) for r in listed if r["context"]} == {
        (first, f"dev_{first[:8]}", "success"),
        (second, f"dev_{second[:8]}", "success"),
    }

    # A third process sees both builds in one metastore, with each commit's rows.
    reader = _start(project, shlex.join([sys.executable, "-c", READER, f"dev_{first[:8]}", f"dev_{second[:8]}"]))
    reader_err: list[str] = []
    _stream(reader, reader_err)
    seen = json.loads(reader.stdout.readline() or "{}")
    assert seen, "".join(reader_err)[-3000:]
    assert seen[f"dev_{first[:8]}"] == [[3, 60]]  # first: orders 1..3
    assert seen[f"dev_{second[:8]}"] == [[2, 100]]  # second: order 1 dropped, amounts doubled

    # `clean` waits while the user's own Spark process holds the metastore.
    clean = _start(project, _dot("clean", "--all"))
    clean_err: list[str] = []
    streaming = _stream(clean, clean_err)
    deadline = time.monotonic() + 120
    while not any("waiting for the Spark metastore" in line for line in clean_err) and time.monotonic() < deadline:
        assert clean.poll() is None, "".join(clean_err)
        time.sleep(0.2)
    reader.stdin.write("go\n")  # the user closes their session
    reader.stdin.close()
    reader.wait(timeout=120)  # not communicate(): a thread is reading its stderr
    clean_out = clean.stdout.read()
    assert clean.wait(timeout=600) == 0, "".join(clean_err)
    streaming.join()
    assert f"dropped dev_{first[:8]}" in clean_out and f"dropped dev_{second[:8]}" in clean_out
    _no_derby_noise(clean_out, "".join(clean_err))

    # `drop schema ... cascade` took each build's tables and directory; the user's schema stays.
    warehouse = project.project_dir / "spark-warehouse"
    assert (warehouse / "dev.db").is_dir()
    assert not (warehouse / f"dev_{first[:8]}.db").exists() and not (warehouse / f"dev_{second[:8]}.db").exists()
    assert not (project.project_dir / ".dot" / "isolated_builds" / first).exists()


def test_guard_refuses_a_model_outside_the_build(tmp_path: Path) -> None:
    project = spark_project(tmp_path)
    write(
        project.project_dir / "macros" / "generate_schema_name.sql",
        """
        {% macro generate_schema_name(custom_schema_name, node) %}analytics{% endmacro %}
        """,
    )
    commit = project.commit("hard-code the schema")
    result = project.run("run")
    assert result.code == 2, result.stderr
    refusal = [line for line in result.stderr.splitlines() if line.startswith("dot-tasks: refusing")]
    assert refusal and "model.shop.orders → analytics" in refusal[0] and f"outside dev_{commit[:8]}" in refusal[0]
    _no_derby_noise(result.stdout, result.stderr)
    # Refused before a schema was made (before Spark was even started).
    assert not (project.project_dir / "spark-warehouse" / "analytics.db").exists()
