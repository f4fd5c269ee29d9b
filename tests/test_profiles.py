"""Choosing and rewriting the user's profile output: pure functions, plus the rendered file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dot_tasks.errors import ContextError, ProfileError
from dot_tasks.profiles import choose_output, duckdb_file, find_profiles_file, isolate_output, spark_metastore
from dot_tasks.templating import render_profiles, template_dir


def _touch(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "profiles.yml").write_text("p: {}\n")
    return directory / "profiles.yml"


def test_profiles_file_follows_dbts_order(tmp_path: Path) -> None:
    project, home, flag, env_dir = tmp_path / "project", tmp_path / "home", tmp_path / "flag", tmp_path / "env"
    in_home = _touch(home / ".dbt")
    assert find_profiles_file(None, {}, project, home) == in_home.resolve()
    in_project = _touch(project)
    assert find_profiles_file(None, {}, project, home) == in_project.resolve()
    in_env = _touch(env_dir)
    assert find_profiles_file(None, {"DBT_PROFILES_DIR": str(env_dir)}, project, home) == in_env.resolve()
    in_flag = _touch(flag)
    assert find_profiles_file(str(flag), {"DBT_PROFILES_DIR": str(env_dir)}, project, home) == in_flag.resolve()
    with pytest.raises(ProfileError, match="DBT_PROFILES_DIR"):
        find_profiles_file(None, {"DBT_PROFILES_DIR": str(tmp_path / "nowhere")}, project, home)


def test_default_target_may_use_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    profiles = {"p": {"target": "{{ env_var('WHICH', 'dev') }}", "outputs": {"dev": {}, "ci": {}}}}
    assert choose_output(profiles, Path("x"), "p", None).target_name == "dev"
    monkeypatch.setenv("WHICH", "ci")
    assert choose_output(profiles, Path("x"), "p", None).target_name == "ci"
    with pytest.raises(ContextError, match="choose one of: ci, dev"):
        choose_output(profiles, Path("x"), "p", "prod")


def test_isolated_output_suffixes_schema_or_dataset(tmp_path: Path) -> None:
    out, schema = isolate_output({"type": "postgres", "schema": "dev", "password": "{{ env_var('P') }}"}, "abc12345", tmp_path)
    assert schema == "dev_abc12345" and out["schema"] == schema and out["password"] == "{{ env_var('P') }}"
    out, schema = isolate_output({"type": "bigquery", "dataset": "analytics"}, "abc12345", tmp_path)
    assert out["dataset"] == schema == "analytics_abc12345" and "schema" not in out
    out, schema = isolate_output({"type": "duckdb", "path": "w.duckdb"}, "abc12345", tmp_path)
    assert schema == "main_abc12345"
    with pytest.raises(ProfileError, match="sets no `schema:`"):
        isolate_output({"type": "postgres"}, "abc12345", tmp_path)
    templated, schema = isolate_output({"type": "postgres", "schema": "{{ env_var('S') }}"}, "abc12345", tmp_path)
    assert schema == "{{ env_var('S') }}_abc12345"


def test_duckdb_paths_become_absolute_against_the_users_project(tmp_path: Path) -> None:
    output = {
        "type": "duckdb",
        "path": "data/w.duckdb",
        "schema": "s",
        "attach": [{"path": "other.duckdb", "alias": "o"}, {"path": "s3://bucket/x.duckdb"}],
    }
    out, _ = isolate_output(output, "abc12345", tmp_path)
    assert out["path"] == str(tmp_path / "data" / "w.duckdb")
    assert out["attach"][0]["path"] == str(tmp_path / "other.duckdb")
    assert out["attach"][1]["path"] == "s3://bucket/x.duckdb"
    assert output["path"] == "data/w.duckdb"  # the user's dict is not changed
    for kept in (":memory:", "md:my_db", "{{ env_var('DB') }}", "/abs/w.duckdb"):
        assert isolate_output({"type": "duckdb", "path": kept, "schema": "s"}, "a1b2c3d4", tmp_path)[0]["path"] == kept
    assert duckdb_file(out) == tmp_path / "data" / "w.duckdb"
    assert duckdb_file({"type": "duckdb", "path": ":memory:"}) is None


def test_rendered_profile_round_trips_and_keeps_jinja_as_text(tmp_path: Path) -> None:
    output = {
        "type": "postgres",
        "schema": "dev_abc12345",
        "password": "{{ env_var('PW') }}",
        "port": 5432,
        "keepalives_idle": 0,
        "search_path": "yes",
        "role": "on",
    }
    text = render_profiles(
        commit="a" * 40,
        context="dev",
        profile_name="on",
        target_name="no",
        output=output,
        user_config={"send_anonymous_usage_stats": False},
        source=tmp_path,
    )
    data = yaml.safe_load(text)
    assert data["on"]["target"] == "no"
    assert data["on"]["outputs"]["no"] == output
    assert data["config"] == {"send_anonymous_usage_stats": False}


def test_template_is_found_in_a_checkout() -> None:
    assert (template_dir() / "profiles.yml.j2").is_file()


# --- Spark -------------------------------------------------------------------------

WAREHOUSE, METASTORE, JAVA = ("spark.sql.warehouse.dir", "spark.hadoop.javax.jdo.option.ConnectionURL", "spark.driver.extraJavaOptions")


def _session(**params: str) -> dict:
    output = {"type": "spark", "method": "session", "host": "NA", "schema": "dev"}
    return {**output, "server_side_parameters": params} if params else output


def test_spark_session_metastore_and_warehouse_are_pinned_to_the_project(tmp_path: Path) -> None:
    out, schema = isolate_output(_session(), "abc12345", tmp_path)
    assert schema == out["schema"] == "dev_abc12345"
    assert out["server_side_parameters"] == {
        WAREHOUSE: str(tmp_path / "spark-warehouse"),
        METASTORE: f"jdbc:derby:;databaseName={tmp_path / 'metastore_db'};create=true",
        JAVA: f"-Dderby.stream.error.file={tmp_path / 'derby.log'}",
    }
    assert spark_metastore(out) == tmp_path / "metastore_db"


def test_spark_session_relative_pins_become_absolute_and_absolute_ones_stay(tmp_path: Path) -> None:
    user = _session(
        **{
            WAREHOUSE: "data/wh",
            METASTORE: "jdbc:derby:meta/db;create=true",
            JAVA: "-Xss4m -Dderby.stream.error.file=logs/derby.log",
            "spark.executor.memory": "2g",
        }
    )
    out, _ = isolate_output(user, "abc12345", tmp_path)
    params = out["server_side_parameters"]
    assert params[WAREHOUSE] == str(tmp_path / "data" / "wh")
    assert params[METASTORE] == f"jdbc:derby:;databaseName={tmp_path / 'meta' / 'db'};create=true"
    assert params[JAVA] == f"-Xss4m -Dderby.stream.error.file={tmp_path / 'logs' / 'derby.log'}"
    assert params["spark.executor.memory"] == "2g"
    assert user["server_side_parameters"][WAREHOUSE] == "data/wh"  # the user's dict is not changed
    pinned = {
        WAREHOUSE: "s3a://lake/wh",
        METASTORE: "jdbc:derby:;databaseName=/srv/meta;create=true",
        JAVA: "-Dderby.stream.error.file=/var/log/derby.log",
    }
    assert isolate_output(_session(**pinned), "abc12345", tmp_path)[0]["server_side_parameters"] == pinned
    assert spark_metastore(_session(**pinned)) == Path("/srv/meta")
    # The bare Hive key is honoured too, and rewritten in place rather than shadowed.
    bare = isolate_output(_session(**{"javax.jdo.option.ConnectionURL": "jdbc:derby:;databaseName=m;create=true"}), "abc12345", tmp_path)[
        0
    ]["server_side_parameters"]
    assert bare["javax.jdo.option.ConnectionURL"] == f"jdbc:derby:;databaseName={tmp_path / 'm'};create=true"
    assert METASTORE not in bare


def test_spark_metastores_that_are_shared_by_design_need_no_lock(tmp_path: Path) -> None:
    for url in ("jdbc:derby://metastore:1527/db;create=true", "jdbc:mysql://metastore/hive", "jdbc:derby:memory:m;create=true"):
        out, _ = isolate_output(_session(**{METASTORE: url}), "abc12345", tmp_path)
        assert out["server_side_parameters"][METASTORE] == url
        assert spark_metastore(out) is None


@pytest.mark.parametrize("method", ["thrift", "http", "odbc"])
def test_spark_on_a_cluster_is_only_suffixed(method: str, tmp_path: Path) -> None:
    output = {
        "type": "spark",
        "method": method,
        "host": "spark.example.com",
        "port": 443,
        "schema": "dev",
        "token": "{{ env_var('SPARK_TOKEN') }}",
        "server_side_parameters": {WAREHOUSE: "wh"},
    }
    out, schema = isolate_output(output, "abc12345", tmp_path)
    assert out == {**output, "schema": "dev_abc12345"} and schema == "dev_abc12345"
    assert spark_metastore(out) is None
