"""Slim CI: `--defer-to` builds only what changed since a base build, `--clone` fills the rest.

One generated project of 23 models and a seed, a chain (c01 → ... → c12) and a
fan (hub → f01..f10), built once per adapter into `prod` at main; each test
then builds a branch into `dev` deferred to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PG_DSN, Result, dot, git, make_hermetic, pg_connect_or_skip, write, write_project_config

from dot_tasks.dbt.guard import check_extra_args

REPO_ROOT = Path(__file__).resolve().parent.parent
CHAIN = [f"c{i:02d}" for i in range(1, 13)]
FAN = [f"f{i:02d}" for i in range(1, 11)]
MODELS = {*CHAIN, "hub", *FAN}
RAW = [(1, 10), (2, 20), (3, 30), (4, 40)]


@dataclass
class Slim:
    """The generated project, its branches' commits and a view into its warehouse."""

    adapter: str
    repo: Path
    commits: dict[str, str]
    #: (schema) → {relation: row count}
    relations: Callable[[str], dict[str, int]]
    #: SQL → rows
    rows: Callable[[str], list[tuple]]

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return dot(*args, cwd=self.repo, env=env)

    def record(self, branch: str, context: str) -> dict:
        path = self.repo / ".dot" / "isolated_builds" / self.commits[branch] / context / "build.json"
        return json.loads(path.read_text())

    def run_results(self, branch: str, context: str = "dev") -> dict[str, dict]:
        path = self.repo / ".dot" / "isolated_builds" / self.commits[branch] / context / "target" / "run_results.json"
        return {r["unique_id"]: r for r in json.loads(path.read_text())["results"]}

    def schema(self, branch: str, context: str) -> str:
        return str(self.record(branch, context)["schema"])


def _profiles(adapter: str, prefix: str) -> str:
    if adapter == "duckdb":
        outputs = {
            ctx: {"type": "duckdb", "path": "warehouse.duckdb", "schema": schema, "threads": 2}
            for ctx, schema in (("dev", "dev"), ("prod", "analytics"))
        }
    else:
        url = PG_DSN.split("://", 1)[1]
        user_host, _, dbname = url.partition("/")
        user, _, hostport = user_host.rpartition("@")
        host, _, port = hostport.partition(":")
        outputs = {
            ctx: {
                "type": "postgres",
                "host": host,
                "port": int(port or 5432),
                "user": user.split(":")[0] or "postgres",
                "password": "",
                "dbname": dbname.split("?")[0] or "postgres",
                "schema": f"{prefix}_{ctx}",
                "threads": 2,
            }
            for ctx in ("dev", "prod")
        }
    return json.dumps({"shop": {"target": "dev", "outputs": outputs}}, indent=2)  # JSON is YAML


def make_slim_project(root: Path, adapter: str, prefix: str) -> tuple[Path, dict[str, str]]:
    """main, and branches off it: leaf (f05 changed), root (hub changed), broken (a model fails)."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    write_project_config(repo, "+materialized: table")
    write(repo / "profiles.yml", _profiles(adapter, prefix))
    write(repo / "seeds" / "raw.csv", "id,amount\n" + "".join(f"{i},{a}\n" for i, a in RAW))
    write(repo / "models" / "c01.sql", "select id, amount from {{ ref('raw') }}\n")
    for i in range(2, 13):
        write(repo / "models" / f"c{i:02d}.sql", f"select id, amount + 1 as amount from {{{{ ref('c{i - 1:02d}') }}}}\n")
    write(repo / "models" / "hub.sql", "select id, amount * 10 as amount from {{ ref('raw') }}\n")
    for i in range(1, 11):
        write(repo / "models" / f"f{i:02d}.sql", f"select id, amount + {i} as amount from {{{{ ref('hub') }}}}\n")
    write(repo / ".gitignore", "*.duckdb*\ntarget/\nlogs/\n")
    commits = {"main": _commit(repo, "base")}
    changes = {
        "leaf": ("f05.sql", "select id, amount + 5 as amount, 1 as extra from {{ ref('hub') }}\n"),
        "root": ("hub.sql", "select id, amount * 100 as amount from {{ ref('raw') }}\n"),
        "broken": ("c03.sql", "select no_such_column from {{ ref('c02') }}\n"),
    }
    for branch, (name, sql) in changes.items():
        git("checkout", "-q", "-b", branch, "main", cwd=repo)
        write(repo / "models" / name, sql)
        commits[branch] = _commit(repo, f"{branch}: change {name}")
    # leaf2: on top of leaf, one more leaf changed (its base is leaf, never built in prod).
    write(repo / "models" / "f07.sql", "select id, amount + 70 as amount from {{ ref('hub') }}\n")
    git("checkout", "-q", "-b", "leaf2", "leaf", cwd=repo)
    commits["leaf2"] = _commit(repo, "leaf2: change f07 too")
    git("checkout", "-q", "main", cwd=repo)
    return repo, commits


def _commit(repo: Path, message: str) -> str:
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def _duckdb_view(repo: Path) -> tuple[Callable[[str], dict[str, int]], Callable[[str], list[tuple]]]:
    import duckdb

    def rows(sql: str) -> list[tuple]:
        with duckdb.connect(str(repo / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(sql).fetchall()

    def relations(schema: str) -> dict[str, int]:
        with duckdb.connect(str(repo / "warehouse.duckdb"), read_only=True) as con:
            names = [
                r[0] for r in con.execute("select table_name from information_schema.tables where table_schema = ?", [schema]).fetchall()
            ]
            return {n: con.execute(f'select count(*) from "{schema}"."{n}"').fetchone()[0] for n in names}

    return relations, rows


def _postgres_view(conn) -> tuple[Callable[[str], dict[str, int]], Callable[[str], list[tuple]]]:
    def rows(sql: str) -> list[tuple]:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    def relations(schema: str) -> dict[str, int]:
        names = [r[0] for r in rows(f"select table_name from information_schema.tables where table_schema = '{schema}'")]
        return {n: rows(f'select count(*) from "{schema}"."{n}"')[0][0] for n in names}

    return relations, rows


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def slim(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slim]:
    adapter = request.param
    prefix = "dts_" + uuid.uuid4().hex[:8]
    conn = None
    with pytest.MonkeyPatch.context() as mp:
        make_hermetic(mp, tmp_path_factory.mktemp("home"))
        if adapter == "postgres":
            conn = pg_connect_or_skip()
        repo, commits = make_slim_project(tmp_path_factory.mktemp(f"slim-{adapter}"), adapter, prefix)
        relations, rows = _postgres_view(conn) if conn else _duckdb_view(repo)
        project = Slim(adapter, repo, commits, relations, rows)
        try:
            base = project.run("run", "prod@main")
            assert base.code == 0, base.stderr
            yield project
        finally:
            if conn is not None:
                for (name,) in _postgres_view(conn)[1](f"select nspname from pg_namespace where nspname like '{prefix}%'"):
                    conn.cursor().execute(f'drop schema "{name}" cascade')
                conn.close()


@pytest.fixture(scope="module")
def base_before(slim: Slim) -> dict[str, int]:
    """The base schema's relations and row counts, before any deferred build."""
    counts = slim.relations(slim.schema("main", "prod"))
    assert set(counts) == MODELS | {"raw"} and all(n == len(RAW) for n in counts.values()), counts
    return counts


def test_one_leaf_changed_builds_exactly_one_model(slim: Slim, base_before: dict[str, int]) -> None:
    result = slim.run("run", "dev@leaf", "--defer-to", "prod@main", "--json")
    assert result.code == 0, result.stderr
    base_schema, head_schema = slim.schema("main", "prod"), slim.schema("leaf", "dev")
    summary = json.loads(result.stdout)
    assert summary["partial"] is True and summary["cloned"] is False
    assert summary["deferred_to"] == {"commit": slim.commits["main"], "context": "prod", "schema": base_schema}

    built = slim.run_results("leaf")
    assert set(built) == {"model.shop.f05"}, sorted(built)
    # The unchanged parent was read from the base's schema, not the head's.
    compiled = built["model.shop.f05"]["compiled_code"]
    assert base_schema in compiled and head_schema not in compiled, compiled

    record = slim.record("leaf", "dev")
    assert record["deferred_to"] == summary["deferred_to"]
    assert record["partial"] is True and record["cloned"] is False and record["status"] == "success"
    assert slim.relations(head_schema) == {"f05": len(RAW)}
    assert sorted(slim.rows(f'select id, amount, extra from "{head_schema}"."f05" order by id')) == [(i, a * 10 + 5, 1) for i, a in RAW]
    assert slim.relations(base_schema) == base_before  # nothing was written to the base


def test_one_root_changed_builds_it_and_its_descendants_only(slim: Slim, base_before: dict[str, int]) -> None:
    result = slim.run("run", "dev@root", "--defer-to", "prod@main")
    assert result.code == 0, result.stderr
    expected = {"hub", *FAN}
    assert set(slim.run_results("root")) == {f"model.shop.{m}" for m in expected}
    head_schema = slim.schema("root", "dev")
    assert set(slim.relations(head_schema)) == expected
    # The descendants read the head's new hub, which read the base's seed.
    assert sorted(slim.rows(f'select id, amount from "{head_schema}"."f03" order by id')) == [(i, a * 100 + 3) for i, a in RAW]
    assert slim.schema("main", "prod") in slim.run_results("root")["model.shop.hub"]["compiled_code"]
    assert slim.relations(slim.schema("main", "prod")) == base_before


def test_clone_makes_the_head_schema_complete(slim: Slim, base_before: dict[str, int]) -> None:
    result = slim.run("run", "dev@leaf", "--defer-to", "prod@main", "--clone", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["cloned"] is True
    head_schema, base_schema = slim.schema("leaf", "dev"), slim.schema("main", "prod")
    record = slim.record("leaf", "dev")
    assert record["cloned"] is True and record["partial"] is True
    assert set(slim.relations(head_schema)) == MODELS | {"raw"}
    # Cloned relations hold the base's rows; the changed model keeps the head's.
    assert slim.rows(f'select * from "{head_schema}"."c12" order by id') == slim.rows(f'select * from "{base_schema}"."c12" order by id')
    assert len(slim.rows(f'select extra from "{head_schema}"."f05"')) == len(RAW)
    # The build's own run_results still say what was built; the clone's are kept apart.
    assert set(slim.run_results("leaf")) == {"model.shop.f05"}
    assert slim.relations(base_schema) == base_before


def test_list_shows_the_base_of_each_deferred_build(slim: Slim) -> None:
    result = slim.run("list", "--json")
    assert result.code == 0, result.stderr
    rows = {(r["commit"], r["context"]): r for r in map(json.loads, result.stdout.splitlines())}
    leaf = rows[(slim.commits["leaf"], "dev")]
    assert leaf["deferred_to"]["commit"] == slim.commits["main"] and leaf["cloned"] is True
    assert rows[(slim.commits["main"], "prod")]["deferred_to"] is None
    table = slim.run("list").out.splitlines()
    assert table[0].split()[4] == "BASE"
    leaf_line = next(line for line in table if line.startswith(slim.commits["leaf"][:8]))
    assert f"prod@{slim.commits['main'][:8]}+clone" in leaf_line.split()


def test_a_missing_base_is_named_with_the_command_that_builds_it(slim: Slim) -> None:
    result = slim.run("run", "dev@leaf2", "--defer-to", "prod@leaf")
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in result.stderr, result.stderr  # resolve's line, then ours
    assert f"`dot-tasks run prod@{slim.commits['leaf'][:12]}`" in lines[-1] and "--build-base" in lines[-1]
    # Nothing half-made: the head's checkout was never started.
    assert not (slim.repo / ".dot" / "isolated_builds" / slim.commits["leaf2"]).exists()


def test_build_base_builds_a_missing_base_first(slim: Slim) -> None:
    if slim.adapter != "duckdb":
        pytest.skip("--build-base runs the same steps on any adapter; shown once, on DuckDB, to save a full build")
    result = slim.run("run", "dev@leaf2", "--defer-to", "prod@leaf", "--build-base")
    assert result.code == 0, result.stderr
    assert "base: build    dbt build succeeded" in result.stderr
    assert slim.record("leaf", "prod")["status"] == "success" and slim.record("leaf", "prod")["partial"] is False
    assert set(slim.run_results("leaf2")) == {"model.shop.f07"}


def test_a_failed_base_is_refused(slim: Slim) -> None:
    failed = slim.run("run", "prod@broken", "--select", "c03")
    assert failed.code == 1 and slim.record("broken", "prod")["status"] == "failed"
    result = slim.run("run", "dev@leaf", "--defer-to", "prod@broken")
    assert result.code == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "did not succeed (status failed)" in line and f"dot-tasks run prod@{slim.commits['broken'][:12]}" in line


def test_clean_keeps_a_base_while_a_build_defers_to_it(slim: Slim, base_before: dict[str, int]) -> None:
    base_schema = slim.schema("main", "prod")
    leaf, root = slim.commits["leaf"][:8], slim.commits["root"][:8]
    refused = slim.run("clean", "--ref", "main", "--context", "prod")
    assert refused.code == 2 and "Traceback" not in refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert f"dev@{leaf} clones from it" in line and f"dev@{root} defers to it" in line and "--force" in line
    assert slim.relations(base_schema) == base_before and slim.record("main", "prod")["status"] == "success"

    # A sweep keeps the base, says why, and cleans the rest (the failed prod build, if there).
    swept = slim.run("clean", "--context", "prod", "--older-than", "0s")
    assert swept.code == 0, swept.stderr
    assert f"keeping prod@{slim.commits['main'][:8]}" in swept.stderr
    assert slim.relations(base_schema) == base_before

    # While a deferred build reads the base (it holds the base's lock, shared), even --force waits.
    from dot_tasks.layout import locks_dir
    from dot_tasks.locks import hold

    base_lock = locks_dir(slim.repo) / f"{slim.commits['main']}.prod.lock"
    with hold(base_lock, "a reader", timeout=1, shared=True):
        busy = slim.run("clean", "--ref", "main", "--context", "prod", "--force")
    assert busy.code == 2 and "in use right now" in busy.stderr, busy.stderr
    assert slim.relations(base_schema) == base_before

    forced = slim.run("clean", "--ref", "main", "--context", "prod", "--force")
    assert forced.code == 0, forced.stderr
    assert f"now broken: dev@{leaf}" in forced.stdout and f"now broken: dev@{root}" in forced.stdout
    assert slim.relations(base_schema) == {}
    listed = [json.loads(line) for line in slim.run("list", "--json").stdout.splitlines()]
    leaf_row = next(r for r in listed if r["commit"] == slim.commits["leaf"] and r["context"] == "dev")
    assert any("is gone" in p for p in leaf_row["problems"]), leaf_row


# --- flags -----------------------------------------------------------------------


def test_deferral_flags_after_dashes_are_refused() -> None:
    from dot_tasks.errors import IsolationError

    for args, deferred in (
        (["--defer"], False),
        (["--favor-state"], False),
        (["--state", "x"], True),
        (["--state=x"], True),
        (["--defer-state", "x"], True),
    ):
        with pytest.raises(IsolationError, match="use --defer-to CTX@REF"):
            check_extra_args(args, deferred=deferred)
    check_extra_args(["--state", "some/manifest/dir"], deferred=False)  # state selection alone reads files


def test_deferral_flags_are_refused_before_anything_is_built(tmp_path: Path) -> None:
    from conftest import make_project

    project = make_project(tmp_path)
    for args in (
        ["run", "--defer-to", "prod@HEAD~1", "--", "--state", "elsewhere"],
        ["run", "--", "--defer"],
        ["run", "--clone"],
        ["build", "--build-base"],
    ):
        result = project.run(*args)
        assert result.code == 2 and "Traceback" not in result.stderr, (args, result.stderr)
        assert "--defer-to CTX@REF" in result.stderr.strip().splitlines()[-1], (args, result.stderr)
    assert not (project.project_dir / ".dot" / "isolated_builds").exists()


# --- the CI recipe ------------------------------------------------------------------


def test_ci_shell_recipe_on_the_bundled_example(tmp_path: Path) -> None:
    """examples/ci/slim-ci.sh on a copy of examples/shop: a main commit, then a PR commit."""
    repo = tmp_path / "shop"
    shutil.copytree(
        REPO_ROOT / "examples" / "shop", repo, ignore=shutil.ignore_patterns("*.duckdb*", ".dot", "target", "logs", "dbt_packages")
    )
    write(repo / ".gitignore", "*.duckdb*\ntarget/\nlogs/\n")
    git("init", "-q", "-b", "main", cwd=repo)
    main_sha = _commit(repo, "main")
    git("checkout", "-q", "-b", "feature", cwd=repo)
    orders = repo / "models" / "marts" / "orders.sql"
    orders.write_text(orders.read_text().rstrip() + "\n-- a PR's change\n")
    pr_sha = _commit(repo, "pr: touch orders")
    script = REPO_ROOT / "examples" / "ci" / "slim-ci.sh"
    bindir = tmp_path / "bin"  # `dot-tasks` on PATH, as pip installs it
    bindir.mkdir()
    (bindir / "dot-tasks").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dot_tasks "$@"\n')
    (bindir / "dot-tasks").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "MAIN_SHA": main_sha,
        "PR_SHA": pr_sha,
        "DOT_CACHE_DIR": str(tmp_path / "cache"),
        "COMMENT_FILE": str(tmp_path / "comment.md"),
    }

    pr = subprocess.run(["sh", str(script), "pr"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert pr.returncode == 0, pr.stderr
    builds = repo / ".dot" / "isolated_builds"
    head = json.loads((builds / pr_sha / "dev" / "build.json").read_text())
    assert head["status"] == "success" and head["cloned"] is True
    assert head["deferred_to"]["commit"] == main_sha and head["deferred_to"]["context"] == "prod"
    assert (tmp_path / "cache" / f"dot-prod-{main_sha}.tar.gz").is_file()  # main's build, cached for the next run
    # The changed model and the one model that depends on it were built; nothing else.
    results = json.loads((builds / pr_sha / "dev" / "target" / "run_results.json").read_text())["results"]
    assert {r["unique_id"] for r in results if r["unique_id"].startswith("model.")} == {"model.shop.orders", "model.shop.customers"}
    # The PR comment is diff's markdown: the changed model is in its table and its chart.
    comment = (tmp_path / "comment.md").read_text()
    assert "```mermaid" in comment and "orders" in comment and "modified" in comment, comment

    # The next PR run, on a fresh checkout, restores main's build from the cache (the warehouse,
    # here a DuckDB file, keeps its schemas between CI runs, as a real warehouse does).
    shutil.rmtree(repo / ".dot")
    again = subprocess.run(["sh", str(script), "pr"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "restored" in again.stderr

    git("checkout", "-q", "main", cwd=repo)
    main = subprocess.run(["sh", str(script), "main"], cwd=repo, env={**env, "SHA": main_sha}, capture_output=True, text=True, timeout=600)
    assert main.returncode == 0, main.stderr
    assert json.loads((builds / main_sha / "prod" / "build.json").read_text())["status"] == "success"
    # ... and promoted: the live schema `analytics` reads main's build through views.
    import duckdb

    with duckdb.connect(str(repo / "shop.duckdb"), read_only=True) as con:
        live_orders = con.execute("select count(*) from analytics.orders").fetchall()
        built_orders = con.execute(f"select count(*) from analytics_{main_sha[:8]}.orders").fetchall()
        kind = con.execute(
            "select table_type from information_schema.tables where table_schema = 'analytics' and table_name = 'orders'"
        ).fetchall()
    assert live_orders == built_orders and live_orders[0][0] > 0 and kind == [("VIEW",)]


def test_a_sweep_keeps_a_chain_of_bases() -> None:
    """A defers to B, which cloned from C (its views read C): sweeping B and C keeps both."""
    from dot_tasks.errors import DeferralError
    from dot_tasks.lifecycle import BuildRow, Selection, _spare_bases

    def row(commit: str, context: str, base: tuple[str, str] | None = None, cloned: bool = False) -> BuildRow:
        deferred = {"commit": base[0], "context": base[1], "schema": "s"} if base else None
        return BuildRow(
            commit * 40, commit * 8, context, "s", "success", 0.0, 0, 0, deferred_to=deferred, partial=bool(base), cloned=cloned
        )

    a, b, c = row("a", "dev", ("b" * 40, "ci")), row("b", "ci", ("c" * 40, "prod"), cloned=True), row("c", "prod")
    said: list[str] = []
    going, broken = _spare_bases([a, b, c], [b, c], Selection(older_than=0), False, said.append)
    assert going == [] and broken == []
    assert [line.split()[1] for line in said] == ["ci@bbbbbbbb", "prod@cccccccc"]
    going, broken = _spare_bases([a, b, c], [c], Selection(older_than=0), True, said.append)
    assert going == [c] and broken == [(c, [b])]
    with pytest.raises(DeferralError, match=r"refusing to clean prod@cccccccc \(ci@bbbbbbbb clones from it\)"):
        _spare_bases([a, b, c], [c], Selection(commit="c" * 40), False, said.append)


def test_the_guard_covers_the_clone_step(tmp_path: Path) -> None:
    """An unchanged node that escapes the schema is not rebuilt, but `--clone` would write it: refused."""
    from conftest import duckdb_rows, make_project

    project = make_project(tmp_path)
    write(
        project.project_dir / "macros" / "generate_schema_name.sql",
        """
        {% macro generate_schema_name(custom_schema_name, node) -%}
          {%- if node.name == 'escape' -%}elsewhere{%- else -%}{{ target.schema }}{%- endif -%}
        {%- endmacro %}
        """,
    )
    write(project.project_dir / "models" / "escape.sql", "select 1 as x\n")
    base = project.commit("a model that escapes the build's schema")
    (project.project_dir / "models" / "orders.sql").write_text("select order_id from {{ ref('raw_orders') }}\n")
    head = project.commit("change orders")
    built = project.run("run", f"prod@{base}", "--allow-shared-schemas")
    assert built.code == 0, built.stderr

    result = project.run("run", f"dev@{head}", "--defer-to", f"prod@{base}", "--clone")
    assert result.code == 2 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "refusing to build" in line and "model.shop.escape → warehouse.elsewhere" in line, line
    record = json.loads((project.build_dir(head) / "dev" / "build.json").read_text())
    assert record["status"] == "failed" and record["cloned"] is False
    # The deferred build itself ran (orders, in the head's schema); the clone wrote nothing anywhere.
    schemas = {r[0] for r in duckdb_rows(project.project_dir / "warehouse.duckdb", "select table_schema from information_schema.tables")}
    head_tables = {
        r[0]
        for r in duckdb_rows(
            project.project_dir / "warehouse.duckdb",
            f"select table_name from information_schema.tables where table_schema = 'dev_{head[:8]}'",
        )
    }
    assert head_tables == {"orders"} and "elsewhere" in schemas  # elsewhere: the base's, built on purpose
    assert duckdb_rows(project.project_dir / "warehouse.duckdb", "select count(*) from elsewhere.escape") == [(1,)]


def test_readers_of_a_base_share_its_lock_and_exclude_a_rebuild_or_clean(tmp_path: Path) -> None:
    from dot_tasks.errors import LockTimeout
    from dot_tasks.locks import hold

    lock = tmp_path / "base.lock"
    with hold(lock, "reader 1", timeout=1, shared=True), hold(lock, "reader 2", timeout=1, shared=True):
        with pytest.raises(LockTimeout):
            with hold(lock, "a rebuild", timeout=0.2):
                pass
    with hold(lock, "a rebuild", timeout=1):
        with pytest.raises(LockTimeout):
            with hold(lock, "a reader", timeout=0.2, shared=True):
                pass
