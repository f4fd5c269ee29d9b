"""The isolation guard, one test per way a build could write where it must not."""

from __future__ import annotations

import pytest
from conftest import Project, duckdb_rows, write
from gates import Run

from dot_tasks.dbt.guard import RESERVED_FLAGS, check_extra_args
from dot_tasks.errors import IsolationError
from dot_tasks.layout import BuildPaths
from dot_tasks.locks import hold

# dbt writes a custom schema verbatim (a common override), so `+schema` can leave the build.
VERBATIM_SCHEMAS = """
{% macro generate_schema_name(custom_schema_name, node) %}
  {%- if custom_schema_name -%}{{ custom_schema_name }}{%- else -%}{{ target.schema }}{%- endif -%}
{% endmacro %}
"""


def _schemas(project: Project) -> set[str]:
    database = project.project_dir / "warehouse.duckdb"
    if not database.exists():
        return set()
    return {r[0] for r in duckdb_rows(database, "select schema_name from information_schema.schemata")}


def _refused(result, *needles: str) -> str:
    assert result.code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("dot-tasks: refusing")]
    assert lines, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


ALL_SEVEN = ["--project-dir", "--profiles-dir", "--profile", "--target", "-t", "--target-path", "--log-path"]


def test_the_seven_reserved_flags_are_all_refused() -> None:
    assert RESERVED_FLAGS == frozenset(ALL_SEVEN)
    for flag in ALL_SEVEN:
        for args in ([flag, "x"], [f"{flag}=x"], ["--select", "orders", flag, "x"]):
            with pytest.raises(IsolationError, match="would override what isolates the build"):
                check_extra_args(args)
    check_extra_args(["--select", "orders", "--vars", "{target: x}", "--full-refresh"])


def test_every_reserved_flag_is_refused_before_dbt_runs(project: Project) -> None:
    # An uncommitted edit in the user's checkout: `--project-dir .` would build it
    # into the commit's schema.
    (project.project_dir / "models" / "uncommitted.sql").write_text("select 1 as edited\n")
    assert project.run("worktree").code == 0 and project.run("profile").code == 0
    values = {
        "--project-dir": str(project.project_dir),
        "--profiles-dir": str(project.project_dir),
        "--profile": "shop",
        "--target": "prod",
        "-t": "prod",
        "--target-path": "elsewhere",
        "--log-path": "elsewhere",
    }
    for flag in ALL_SEVEN:
        result = project.run("build", "--command", "seed", "--", flag, values[flag])
        assert result.code == 2, (flag, result.stderr)
        assert f"dot-tasks: {flag} after -- would override what isolates the build" in result.stderr
    assert _schemas(project) == set()
    assert not (project.build_dir(project.second) / "dev" / "build.json").exists()


def _project_with_tests_config(project: Project, *lines: str) -> None:
    config = "".join(f"\n    {line}" for line in lines)
    (project.project_dir / "dbt_project.yml").write_text(
        "name: shop\nprofile: shop\nconfig-version: 2\nversion: '1.0'\n"
        f"models:\n  shop:\n    +materialized: table\ndata_tests:\n  shop:{config}\n"
    )


def test_failure_storing_tests_outside_the_build_are_refused(project: Project) -> None:
    write(project.project_dir / "macros" / "generate_schema_name.sql", VERBATIM_SCHEMAS)
    _project_with_tests_config(project, "+schema: audit_shared")
    project.commit("test failures go to a shared audit schema")
    # Tests that store nothing write nothing: the build goes ahead.
    plain = project.run("run")
    assert plain.code == 0, plain.stderr
    assert "audit_shared" not in _schemas(project)
    # With --store-failures every test would write into audit_shared.
    _refused(project.run("build", "--", "--store-failures"), "test.shop.unique_orders_order_id", "→ warehouse.audit_shared")
    # And so with store_failures set in the project.
    _project_with_tests_config(project, "+schema: audit_shared", "+store_failures: true")
    project.commit("store failures in the project")
    _refused(project.run("run"), "test.shop.not_null_orders_order_id", "→ warehouse.audit_shared")
    assert "audit_shared" not in _schemas(project)


def test_seed_only_and_snapshot_only_commands_are_guarded(project: Project) -> None:
    write(
        project.project_dir / "macros" / "generate_schema_name.sql",
        """
        {% macro generate_schema_name(custom_schema_name, node) %}analytics{% endmacro %}
        """,
    )
    write(
        project.project_dir / "snapshots" / "orders_snapshot.sql",
        """
        {% snapshot orders_snapshot %}
        {{ config(unique_key='order_id', strategy='check', check_cols='all') }}
        select * from {{ ref('raw_orders') }}
        {% endsnapshot %}
        """,
    )
    project.commit("everything into the shared schema analytics")
    assert project.run("worktree").code == 0 and project.run("profile").code == 0
    line = _refused(project.run("build", "--command", "seed"), "seed.shop.raw_orders → warehouse.analytics")
    assert "snapshot" not in line and "model" not in line  # exactly what `dbt seed` selected
    _refused(project.run("build", "--command", "snapshot"), "snapshot.shop.orders_snapshot → warehouse.analytics")
    assert _schemas(project) == set()


def test_a_profile_changed_behind_the_builds_back_is_refused(project: Project) -> None:
    """dbt must build into the schema the build was prepared for, whatever the profile says by then."""
    assert project.run("worktree").code == 0 and project.run("profile").code == 0
    generated = project.build_dir(project.second) / "dev" / "profiles.yml"
    lock = BuildPaths(project.project_dir, project.second).context_lock("dev")
    with hold(lock, "test", timeout=5):
        run = Run(project, "build")
        run.wait_for_line("waiting for the dev build")
        # The build has read the profile and waits for its lock; now the profile
        # sends dbt to the user's own schema.
        text = generated.read_text()
        assert f"schema: dev_{project.second[:8]}\n" in text
        generated.write_text(text.replace(f"schema: dev_{project.second[:8]}\n", "schema: dev\n"))
    assert run.wait() == 2, run.stderr
    assert f"dbt's target schema is dev, not this build's dev_{project.second[:8]}" in run.stderr
    assert "Traceback" not in run.stderr
    assert "dev" not in _schemas(project)


def test_a_schema_written_with_a_jinja_block_is_not_taken_for_an_override(tmp_path) -> None:
    from conftest import make_project

    profile = """
        shop:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: warehouse.duckdb
              schema: "{% if env_var('DOT_TEST_SECRET') %}dev{% else %}other{% endif %}"
              threads: 2
        """
    project = make_project(tmp_path, profile=profile)
    result = project.run("run", "--json")
    assert result.code == 0, result.stderr
    assert f"dev_{project.second[:8]}" in _schemas(project) and "dev" not in _schemas(project)
