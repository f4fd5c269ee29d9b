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
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from conftest import Project, git, make_hermetic, make_project, write

pytestmark = pytest.mark.spark_cluster

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import spark_cluster  # noqa: E402 - the cluster script of the benchmarks, not an installed package


def _available() -> None:
    missing = [
        what
        for what, ok in (
            ("java", shutil.which("java")),
            ("pyspark", importlib.util.find_spec("pyspark")),
            ("pyhive", importlib.util.find_spec("pyhive")),
        )
        if not ok
    ]
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
    return subprocess.Popen(
        [sys.executable, "-m", "dot_tasks", *args], cwd=project_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


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
                windows.append(
                    (
                        datetime.fromisoformat(timing["started_at"].rstrip("Z")).timestamp(),
                        datetime.fromisoformat(timing["completed_at"].rstrip("Z")).timestamp(),
                    )
                )
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
        assert "warning" not in err, err  # the registry included: both rows of both builds were written
        # Only this machine's suffix claim (a file, held for milliseconds) may be waited on.
        assert not [line for line in err.splitlines() if "waiting for" in line and "schema-suffix registry" not in line], err
    assert [json.loads(out)["schema"] for _c, out, _e in results] == [f"{base}_{first[:8]}", f"{base}_{second[:8]}"]
    # They really ran concurrently: some query of one build ran while one of the other did.
    one, other = _node_windows(project, first), _node_windows(project, second)
    assert one and other
    assert any(a0 < b1 and b0 < a1 for a0, a1 in one for b0, b1 in other), (one, other)
    # Each build's start and end are in the warehouse's registry, written through dbt's own adapter.
    assert sorted(spark.rows(f"select commit_sha, status from {base}_dot.dot_builds")) == sorted(
        (commit, status) for commit in (first, second) for status in ("running", "success")
    )

    listed = [
        json.loads(line)
        for line in subprocess.run(
            [sys.executable, "-m", "dot_tasks", "list", "--json"], cwd=project.project_dir, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    ]
    assert {(r["commit"], r["schema"], r["status"]) for r in listed if r["context"]} == {
        (first, f"{base}_{first[:8]}", "success"),
        (second, f"{base}_{second[:8]}", "success"),
    }

    # Another session sees both builds, each with its commit's rows.
    assert spark.rows(f"select count(*), sum(amount) from {base}_{first[:8]}.orders") == [(3, 60)]
    assert spark.rows(f"select count(*), sum(amount) from {base}_{second[:8]}.orders") == [(2, 100)]
    spark.rows(f"create schema if not exists {base}")  # the user's own schema: clean must spare it

    clean = project.run("clean", "--all")
    assert clean.code == 0, clean.stderr
    # What Spark cannot check is said, not pretended: nothing records which views read the schemas.
    assert f"Spark records no dependencies between views: a view over {base}_{first[:8]} " in clean.stderr, clean.stderr
    assert f"dropped {base}_{first[:8]}" in clean.stdout and f"dropped {base}_{second[:8]}" in clean.stdout
    assert spark.schemas(base) == {base, f"{base}_dot"}  # the user's, and the registry that outlives builds
    assert not (cluster.warehouse / f"{base}_{first[:8]}.db").exists()
    assert not project.build_dir(first).exists()


# --- diff --------------------------------------------------------------------------


def make_spark_diff_project(root: Path, profile: str) -> Project:
    """The PostgreSQL diff test's project, its seed types in Spark SQL (a bare `varchar` needs a length there)."""
    import test_diff

    def spark_types(path: Path, text: str) -> None:
        test_diff_write(path, text.replace("varchar", "string"))

    test_diff_write = test_diff.write
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(test_diff, "write", spark_types)
        return test_diff.make_diff_project(root, profile)


@pytest.fixture(scope="module")
def shop(cluster: spark_cluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, str, dict]]:
    """The diff project with both commits built in `dev` (by the first diff), shared by diff, promote and slim."""
    root = tmp_path_factory.mktemp("spark-shop")
    base = unique_base()
    with pytest.MonkeyPatch.context() as mp:
        make_hermetic(mp, root / "home")
        project = make_spark_diff_project(root, thrift_profile(cluster, {"dev": base, "ci": base + "ci"}))
        result = project.run("diff", project.first, project.second, "--json")  # builds both sides first
        assert result.code == 1, result.stderr[-3000:]
        yield project, base, json.loads(result.stdout)


def test_diff_counts_every_level_exactly(shop: tuple[Project, str, dict], spark: Spark) -> None:
    project, base, diff = shop
    assert diff["differs"] is True and diff["errors"] == 0 and diff["same_database"] is True
    by = {n["name"]: n for n in diff["nodes"]}
    counts = {
        name: (
            n["code"],
            n["impacted"],
            n["differs"],
            n["rows"],
            n["values_skipped"],
            None if n["values"] is None else tuple(n["values"][k] for k in ("key", "added", "removed", "changed", "unchanged", "columns")),
        )
        for name, n in by.items()
    }
    # The same counts as on DuckDB and PostgreSQL (tests/test_diff.py).
    ten, five = {"base": 10, "head": 10}, {"base": 5, "head": 5}
    assert counts == {
        "orders": ("modified", False, True, ten, None, (["order_id"], 0, 0, 3, 7, {"customer_id": 0, "amount": 3, "status": 0, "note": 0})),
        "order_totals": ("unchanged", True, True, five, None, (["customer_id"], 0, 0, 3, 2, {"total": 3, "n": 0})),
        "order_lines": ("unchanged", True, True, {"base": 20, "head": 20}, None, (["order_id", "line_no"], 0, 0, 6, 14, {"qty": 6})),
        "customers": ("unchanged", False, False, five, None, (["customer_id"], 0, 0, 0, 5, {"name": 0})),
        "dupes": ("unchanged", False, False, ten, by["dupes"]["values_skipped"], None),
        "widened": ("modified", False, True, ten, None, (["order_id"], 0, 0, 0, 10, {"amount": 0})),
        "old_model": ("removed", False, True, {"base": 10, "head": None}, "only in base", None),
        "new_model": ("added", False, True, {"base": None, "head": 5}, "only in head", None),
        "eph": ("unchanged", False, False, {"base": None, "head": None}, "ephemeral", None),
        "raw_orders": ("unchanged", False, False, ten, "no key", None),
        "raw_customers": ("unchanged", False, False, five, "no key", None),
    }
    assert "duplicate" in by["dupes"]["values_skipped"]
    assert by["dupes"]["key_problems"]["head"] == {"duplicate_keys": 5, "null_key_rows": 0}
    assert [(s["key"], s["base"]["amount"], s["head"]["amount"]) for s in by["orders"]["values"]["sample"]] == [
        ({"order_id": 2}, 20, 0),
        ({"order_id": 4}, 40, 0),
        ({"order_id": 7}, 70, 0),
    ]
    assert by["widened"]["columns"]["added"] == ["status"]
    assert [(t["name"], t["base"].lower(), t["head"].lower()) for t in by["widened"]["columns"]["type_changed"]] == [
        ("amount", "int", "bigint")
    ]

    # A diff of a build with itself is empty, and reads only.
    schemas = spark.schemas(base)
    before = {s: spark.rows(f"show tables in {s}") for s in schemas}
    same = project.run("diff", project.second, project.second, "--no-build", "--select", "orders order_lines")
    assert same.code == 0, same.stderr
    assert same.stdout.strip().splitlines() == ["2 node(s) unchanged"]
    assert {s: spark.rows(f"show tables in {s}") for s in spark.schemas(base)} == before


def _wide_model(c1: str) -> str:
    """Ten columns over 20 rows, in Spark SQL; `c1` is the one that changes."""
    return (
        f"select id, {c1} as c1, id % 101 as c2, cast(id as double) / 7 as c3, concat('name ', cast(id % 10 as string)) as c4,"
        " case when id % 3 = 0 then null else id % 5 end as c5, id % 2 = 0 as c6, cast(id * 3 as bigint) as c7, 'x' as c8,"
        " id % 13 as c9 from range(1, 21)\n"
    )


def test_diff_of_a_wide_model_plans_within_a_small_driver(cluster: spark_cluster.Cluster, tmp_path: Path) -> None:
    # Spark's constraint propagation over ten columns' 0/1 flags ran the 768 MiB driver out of heap
    # while planning the samples query (after about 100 s, at any row count); each diff session turns it off.
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    write(
        repo / "dbt_project.yml",
        "name: wide\nprofile: shop\nconfig-version: 2\nversion: '1.0'\nmodels:\n  wide:\n    +materialized: table\n",
    )
    write(repo / "models" / "schema.yml", "version: 2\nmodels:\n  - name: wide\n    config:\n      meta: {primary_key: id}\n")
    write(repo / "profiles.yml", thrift_profile(cluster, {"dev": unique_base()}))
    write(repo / ".gitignore", "target/\nlogs/\n")
    write(repo / "models" / "wide.sql", _wide_model("id % 97"))
    project = Project(repo, repo, "", "")
    first = project.commit("base")
    write(repo / "models" / "wide.sql", _wide_model("case when id % 5 = 0 then -1 else id % 97 end"))
    second = project.commit("head")
    started = time.monotonic()
    result = project.run("diff", first, second, "--json")
    assert result.code == 1, result.stderr[-3000:]
    [node] = json.loads(result.stdout)["nodes"]
    values = node["values"]
    assert values is not None, node
    assert (values["added"], values["removed"], values["changed"], values["unchanged"]) == (0, 0, 4, 16)
    assert values["columns"] == {"c1": 4, **{f"c{i}": 0 for i in range(2, 10)}}
    assert [s["key"]["id"] for s in values["sample"]] == [5, 10, 15, 20]
    print(f"\nspark wide diff: built both sides and compared them in {time.monotonic() - started:.1f}s")


# --- promote, rollback, live ---------------------------------------------------------

# One query over three live views that differ between the builds: which build each one shows.
FINGERPRINT = (
    "select (select sum(amount) from {s}.orders), (select sum(total) from {s}.order_totals), (select sum(qty) from {s}.order_lines)"
)
BASE_ROWS, HEAD_ROWS = (550, 550, 1650), (420, 420, 1260)  # head: returned orders 2, 4, 7 at amount 0


def _reader(cluster: spark_cluster.Cluster, schema: str, stop: threading.Event, seen: list[tuple[float, str]]) -> None:
    reader = Spark(cluster)
    try:
        while not stop.is_set():
            try:
                row = reader.rows(FINGERPRINT.format(s=schema))[0]
            except Exception as error:  # noqa: BLE001 - a failed read is what the test looks for
                # Kept, not raised: a view that was missing for a moment must fail the test, not the thread.
                seen.append((time.monotonic(), f"error {str(error)[:300]}"))
                continue
            state = {BASE_ROWS: "base", HEAD_ROWS: "head"}.get(tuple(int(v) for v in row), f"mix {row}")
            seen.append((time.monotonic(), state))
    finally:
        reader.close()


def test_promote_rollback_live_and_the_window_a_reader_sees(
    shop: tuple[Project, str, dict], cluster: spark_cluster.Cluster, spark: Spark
) -> None:
    project, base, _ = shop
    # A plain `dbt build` left a table where a live view must go: refused, in words true of Spark.
    spark.rows(f"create schema if not exists {base}")
    spark.rows(f"create table {base}.customers as select 1 as customer_id")
    theirs = project.run("promote", f"dev@{project.first}")
    assert theirs.code == 2 and f"{base}.customers (table)" in theirs.stderr, theirs.stderr[-3000:]
    assert "with no transaction: each is dropped, then its view made, one statement at a time" in theirs.stderr
    assert "same transaction" not in theirs.stderr and "dependency order" not in theirs.stderr
    first = project.run("promote", f"dev@{project.first}", "--replace-existing", "--json")
    assert first.code == 0, first.stderr[-3000:]
    assert "Spark has no locks or transactions: the switch is not atomic" in first.stderr
    assert "and none at all for the 1 relation(s) dropped first" in first.stderr, first.stderr[-3000:]
    assert json.loads(first.stdout)["replaced_existing"] == [f"{base}.customers"]
    assert spark.rows(FINGERPRINT.format(s=base)) == [BASE_ROWS]

    # A reader polls the live views while the next promotion switches them.
    stop, seen = threading.Event(), []
    polling = threading.Thread(target=_reader, args=(cluster, base, stop, seen), daemon=True)
    polling.start()
    while not seen:
        time.sleep(0.1)
    started = time.monotonic()
    second = project.run("promote", f"dev@{project.second}", "--json")
    finished = time.monotonic()
    time.sleep(1.5)
    stop.set()
    polling.join(timeout=60)
    assert second.code == 0, second.stderr[-3000:]
    switched = json.loads(second.stdout)
    assert (switched["previous_commit"], switched["dropped"], switched["created"]) == (project.first, [f"{base}.old_model"], 1)
    window = re.search(r"(\d+) view\(s\) were switched one at a time in ([\d.]+)s", second.stderr)
    assert window and int(window.group(1)) == 9, second.stderr[-3000:]
    assert "Spark records no dependencies between views" in second.stderr  # old_model's view was dropped
    states = [state for _t, state in seen]
    # Each view is altered in place (ALTER VIEW ... AS), never dropped and made again: no read fails.
    assert not [s for s in states if s.startswith("error")], states
    assert states[0] == "base" and states[-1] == "head", states
    # Once every view shows head, no reader sees base again: each view is replaced in place, never missing.
    assert "base" not in states[states.index("head") :] and not any(s.startswith("mix") for s in states[states.index("head") :])
    mixed = [t for t, state in seen if state.startswith("mix")]
    print(
        f"\nspark promote: {window.group(1)} views switched in {window.group(2)}s (logged); promote took "
        f"{finished - started:.1f}s; the reader took {len(seen)} samples, {len(mixed)} of them a mix"
        + (f" over {mixed[-1] - mixed[0]:.2f}s" if mixed else "")
    )

    on_head = {r[1] for r in spark.rows(f"show tables in {base}")}
    rolled = project.run("rollback", "--json")
    assert rolled.code == 0, rolled.stderr[-3000:]
    assert json.loads(rolled.stdout)["commit"] == project.first
    assert spark.rows(FINGERPRINT.format(s=base)) == [BASE_ROWS]
    live = project.run("live", "--json")
    assert live.code == 0, live.stderr[-3000:]
    report = json.loads(live.stdout)
    assert (report["commit"], report["drift"]) == (project.first, [])
    assert [(h["action"], h["commit"]) for h in report["history"]] == [
        ("rollback", project.first),
        ("promote", project.second),
        ("promote", project.first),
    ]

    # A live view replaced by hand is drift, read from Spark's own view text.
    spark.rows(f"create or replace view {base}.customers as select 1 as customer_id")
    drifted = json.loads(project.run("live", "--json").stdout)["drift"]
    assert drifted == [{"relation": f"{base}.customers", "problem": f"no longer a view over {base}_{project.first[:8]}.customers"}]

    # A promotion killed in its switch, after it made a new view and before its history row: what it
    # left is exactly a switch's view, so promoting again takes it as its own and finishes.
    # A view of the user's under that name is not taken: it reads something else.
    [new_view] = on_head - {r[1] for r in spark.rows(f"show tables in {base}")}
    spark.rows(f"create view {base}.{new_view} as select 1 as mine")
    refused = project.run("promote", f"dev@{project.second}")
    assert refused.code == 2 and f"{base}.{new_view}" in refused.stderr, refused.stderr[-3000:]
    assert "--replace-existing to replace them (with no transaction" in refused.stderr
    assert spark.rows(f"select * from {base}.{new_view}") == [(1,)]
    spark.rows(f"create or replace view {base}.{new_view} as select * from {base}_{project.second[:8]}.{new_view}")
    again = project.run("promote", f"dev@{project.second}", "--json")
    assert again.code == 0, again.stderr[-3000:]
    assert spark.rows(FINGERPRINT.format(s=base)) == [HEAD_ROWS]


# --- slim: --defer-to, --clone --------------------------------------------------------


def test_defer_builds_only_what_changed_and_clone_says_what_spark_lacks(shop: tuple[Project, str, dict], spark: Spark) -> None:
    project, base, _ = shop
    result = project.run("run", f"ci@{project.second}", "--defer-to", f"dev@{project.first}", "--clone", "--json")
    # The deferred build succeeded; dbt clone then refused every node, and the command says why in one line.
    assert result.code == 1, result.stderr[-3000:]
    refusal = [line for line in result.stderr.splitlines() if line.startswith("dot-tasks: dbt clone failed")]
    assert len(refusal) == 1 and "On Spark, dbt clone copies only Delta tables" in refusal[0], result.stderr[-3000:]
    record = json.loads((project.build_dir(project.second) / "ci" / "build.json").read_text())
    assert (record["partial"], record["cloned"], record["deferred_to"]["commit"]) == (True, False, project.first)
    ci = f"{base}ci_{project.second[:8]}"
    built = {row[1] for row in spark.rows(f"show tables in {ci}")}
    # state:modified+ only: orders, widened and new_model changed, order_totals and order_lines read orders.
    assert built == {"orders", "widened", "new_model", "order_totals", "order_lines"}
    # What was not built was read from the base: orders read the base's seed raw_orders, order_totals head's orders.
    assert spark.rows(f"select sum(total) from {ci}.order_totals") == [(420,)]
