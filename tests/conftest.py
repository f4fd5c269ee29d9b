"""Fixtures: hermetic git, small dbt projects in real repositories, the CLI, PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

PG_DSN = os.environ.get("DOT_TASKS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "s3cr3t-" + uuid.uuid4().hex[:12]


def make_hermetic(mp: pytest.MonkeyPatch, home: Path) -> None:
    """Keep the user's home, git config and dbt settings out: for fixtures of any scope."""
    mp.setenv("HOME", str(home))
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for name in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        mp.setenv(name, "Test")
    for name in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        mp.setenv(name, "test@example.com")
    for name in list(os.environ):
        if name.startswith(("DBT_", "INVOKE_")):
            mp.delenv(name)
    mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    mp.setenv("DOT_TEST_SECRET", SECRET)
    for level in (pygit2.enums.ConfigLevel.GLOBAL, pygit2.enums.ConfigLevel.XDG, pygit2.enums.ConfigLevel.SYSTEM):
        pygit2.settings.search_path[level] = str(home)


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's home, git config and dbt settings out of every test."""
    make_hermetic(monkeypatch, tmp_path_factory.mktemp("home"))


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.strip()


def dot(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
    """Run the real `dot-tasks` program."""
    proc = subprocess.run(
        [sys.executable, "-m", "dot_tasks", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def write_project_config(project_dir: Path, models_config: str) -> None:
    """The test project's dbt_project.yml, with one line of config for all its models."""
    write(
        project_dir / "dbt_project.yml",
        f"""
        name: shop
        profile: shop
        config-version: 2
        version: "1.0"
        models:
          shop:
            {models_config}
        """,
    )


def duckdb_profile(schema: str = "dev") -> str:
    return f"""
        shop:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: warehouse.duckdb
              schema: {schema}
              threads: 2
            prod:
              type: duckdb
              path: warehouse.duckdb
              schema: analytics
              threads: 2
        """


def pg_output_fields() -> str:
    """The connection fields of a dbt postgres output for PG_DSN, as YAML lines (host, port, user, dbname)."""
    url = PG_DSN.replace("postgresql://", "").replace("postgres://", "")
    user_host, _, dbname = url.partition("/")
    user, _, hostport = user_host.rpartition("@")
    host, _, port = hostport.partition(":")
    return f"host: {host}\nport: {port or 5432}\nuser: {user.split(':')[0] or 'postgres'}\ndbname: {dbname.split('?')[0] or 'postgres'}"


def postgres_profile(schema: str) -> str:
    fields = textwrap.indent(pg_output_fields(), " " * 14).lstrip()
    return f"""
        shop:
          target: dev
          outputs:
            dev:
              type: postgres
              {fields}
              password: "{{{{ env_var('DOT_TEST_SECRET') }}}}"
              schema: {schema}
              threads: 2
        """


@dataclass
class Project:
    """A dbt project in a real git repository, with two commits whose models differ."""

    repo_dir: Path
    project_dir: Path
    first: str
    second: str

    def commit(self, message: str) -> str:
        git("add", "-A", cwd=self.repo_dir)
        git("commit", "-q", "-m", message, cwd=self.repo_dir)
        return git("rev-parse", "HEAD", cwd=self.repo_dir)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return dot(*args, cwd=self.project_dir, env=env)

    def build_dir(self, commit: str) -> Path:
        return self.project_dir / ".dot" / "isolated_builds" / commit


def make_project(root: Path, subdir: str = "", profile: str | None = None) -> Project:
    repo_dir = root / "repo"
    project_dir = repo_dir / subdir if subdir else repo_dir
    repo_dir.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo_dir)
    write_project_config(project_dir, "+materialized: table")
    write(
        project_dir / "seeds" / "raw_orders.csv",
        """
        order_id,amount
        1,10
        2,20
        3,30
        """,
    )
    write(project_dir / "models" / "orders.sql", "select order_id, amount from {{ ref('raw_orders') }}\n")
    write(
        project_dir / "models" / "schema.yml",
        """
        version: 2
        models:
          - name: orders
            columns:
              - name: order_id
                data_tests: [unique, not_null]
        """,
    )
    write(project_dir / ".gitignore", "target/\nlogs/\ndbt_packages/\n*.duckdb*\n")
    write(project_dir / "profiles.yml", profile or duckdb_profile())
    git("add", "-A", cwd=repo_dir)
    git("commit", "-q", "-m", "first", cwd=repo_dir)
    first = git("rev-parse", "HEAD", cwd=repo_dir)
    write(project_dir / "models" / "orders.sql", "select order_id, amount * 2 as amount from {{ ref('raw_orders') }} where order_id > 1\n")
    git("commit", "-q", "-am", "second: double amounts, drop order 1", cwd=repo_dir)
    second = git("rev-parse", "HEAD", cwd=repo_dir)
    return Project(repo_dir, project_dir, first, second)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


def duckdb_rows(database: Path, sql: str) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql).fetchall()


# --- PostgreSQL ------------------------------------------------------------------


def pg_connect_or_skip():
    """An autocommit connection to the test PostgreSQL; a skip only when none answers and CI is unset."""
    import psycopg2

    try:
        conn = psycopg2.connect(PG_DSN, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no server"
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_DSN} is unreachable under CI: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_DSN}: {exc}")
    conn.autocommit = True
    return conn


@pytest.fixture
def pg():
    """A live connection to the test PostgreSQL; skipped only outside CI."""
    conn = pg_connect_or_skip()
    yield conn
    conn.close()


@pytest.fixture
def pg_schema(pg):
    """A unique base schema name; every schema starting with it is dropped afterwards."""
    base = "dt_" + uuid.uuid4().hex[:8]
    yield base
    with pg.cursor() as cur:
        cur.execute("select nspname from pg_namespace where nspname like %s", (base + "%",))
        for (name,) in cur.fetchall():
            cur.execute(f'drop schema "{name}" cascade')


def pg_schemas(pg, prefix: str) -> set[str]:
    with pg.cursor() as cur:
        cur.execute("select nspname from pg_namespace where nspname like %s", (prefix + "%",))
        return {row[0] for row in cur.fetchall()}


def pg_rows(pg, sql: str) -> list[tuple]:
    with pg.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def summary(result: Result) -> dict:
    return json.loads(result.stdout)
