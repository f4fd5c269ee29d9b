"""No secret reaches disk: env_var() and DBT_ENV_SECRET_* values stay out of every file under .dot."""

from __future__ import annotations

import stat
import uuid

import yaml
from conftest import SECRET, Project, duckdb_rows, make_project, write

TOKEN = "tok-" + uuid.uuid4().hex[:16]

# Fields dbt renders but never validates: DuckDB `settings:` (passed to the
# database as they are) and a key dbt-duckdb does not know.
PROFILE = """
shop:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: warehouse.duckdb
      schema: dev
      threads: 2
      settings:
        home_directory: "/nonexistent/{{ env_var('DOT_TEST_SECRET') }}"
      api_token: "{{ env_var('DBT_ENV_SECRET_TOKEN') }}"
      password: "{{ env_var('DOT_TEST_SECRET') }}"
"""


def test_no_secret_is_written_under_dot_on_duckdb(tmp_path) -> None:
    project: Project = make_project(tmp_path, profile=PROFILE)
    # The model reads the setting back, which proves dbt received the resolved secret.
    write(project.project_dir / "models" / "seen.sql", "select current_setting('home_directory') as home\n")
    commit = project.commit("a model that shows the setting dbt was given")
    env = {"DBT_ENV_SECRET_TOKEN": TOKEN}
    result = project.run("run", "--json", env=env)
    assert result.code == 0, result.stderr
    seen = duckdb_rows(project.project_dir / "warehouse.duckdb", f"select home from dev_{commit[:8]}.seen")
    assert seen == [(f"/nonexistent/{SECRET}",)]
    assert SECRET not in result.stdout + result.stderr and TOKEN not in result.stdout + result.stderr
    files = [p for p in (project.project_dir / ".dot").rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(files) > 20  # the profile, the records, dbt's manifest, run results and logs
    assert {"profiles.yml", "build.json", "commit.json", "manifest.json", "run_results.json", "dbt.log"} <= {p.name for p in files}
    leaked = [str(p) for p in files if SECRET.encode() in p.read_bytes() or TOKEN.encode() in p.read_bytes()]
    assert leaked == []
    generated = project.build_dir(commit) / "dev" / "profiles.yml"
    output = yaml.safe_load(generated.read_text())["shop"]["outputs"]["dev"]
    assert output["settings"]["home_directory"] == "/nonexistent/{{ env_var('DOT_TEST_SECRET') }}"
    assert output["api_token"] == "{{ env_var('DBT_ENV_SECRET_TOKEN') }}"
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    # Without the token, dbt fails: it does read the value from the environment.
    missing = project.run("build", "--command", "compile")
    assert missing.code != 0 and "DBT_ENV_SECRET_TOKEN" in missing.stderr
