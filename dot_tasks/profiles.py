"""Choosing the user's profile output and rewriting it for an isolated build.

The user's values are copied as text. dbt's own Jinja in them (such as
`{{ env_var('DBT_PASSWORD') }}`) is never rendered here, so no secret is ever
written to disk; dbt renders it when it reads the generated file.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from .adapters import rules_for, schema_key
from .errors import ContextError, ProfileError
from .naming import suffixed_schema

PROFILES_FILE = "profiles.yml"

# What an adapter builds into when a target names no schema.
ADAPTER_DEFAULT_SCHEMA = {"duckdb": "main"}

# DuckDB paths that do not name a local file.
_NON_FILE_DUCKDB = (":memory:", "md:", "motherduck:")


def find_profiles_file(flag_dir: str | None, env: Mapping[str, str], project_dir: Path, home: Path, cwd: Path | None = None) -> Path:
    """The profiles.yml dbt itself would read, in dbt's order of precedence.

    dbt looks in the current directory; users of dot-tasks may run it from
    anywhere in the project, so the project directory is looked in next.
    """
    candidates: list[tuple[str, Path]] = []
    if flag_dir:
        candidates.append(("--profiles-dir", Path(flag_dir).expanduser()))
    elif env.get("DBT_PROFILES_DIR"):
        candidates.append(("DBT_PROFILES_DIR", Path(env["DBT_PROFILES_DIR"]).expanduser()))
    else:
        if cwd is not None and cwd.resolve() != project_dir.resolve():
            candidates.append(("the current directory", cwd))
        candidates.append(("the project directory", project_dir))
        candidates.append(("~/.dbt", home / ".dbt"))
    for _origin, directory in candidates:
        if (directory / PROFILES_FILE).is_file():
            return (directory / PROFILES_FILE).resolve()
    looked = ", ".join(f"{directory} ({origin})" for origin, directory in candidates)
    raise ProfileError(f"no {PROFILES_FILE} found in {looked}: create one or pass --profiles-dir")


@dataclass(frozen=True)
class ChosenOutput:
    """One output of the user's profile, as written in their profiles.yml."""

    source: Path
    profile_name: str
    target_name: str
    output: dict[str, Any]
    #: The file's top-level `config:` block (dbt's user config), if any.
    user_config: dict[str, Any] | None


def load_profiles(path: Path) -> dict[str, Any]:
    """The profiles in a profiles.yml, as text (dbt's Jinja unrendered); a one-line error if it is not YAML."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path} is not valid YAML: fix it and retry ({exc})") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{path} holds no profiles: it should map profile names to outputs")
    return data


def render_default_target(value: str) -> str:
    """Resolve a `target:` written with dbt's env_var(), to learn the default name.

    The name chooses the output and becomes the context, so it is written
    (as the context directory's name): a secret variable is refused.
    """
    if "{{" not in value and "{%" not in value:
        return value
    import jinja2.sandbox  # only for this rare case: keeps `profile` fast otherwise

    def env_var(name: str, default: str | None = None) -> str:
        if name.startswith("DBT_ENV_SECRET"):
            raise ProfileError(
                f"the profile's default target comes from the secret env_var({name!r}), and would be "
                "written as the context's name: pass --context instead"
            )
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ProfileError(f"the profile's default target uses env_var({name!r}), which is not set: set it or pass --context")
        return default

    env = jinja2.sandbox.SandboxedEnvironment()
    for name, cast in (("as_text", str), ("as_native", lambda v: v), ("as_bool", lambda v: v), ("as_number", lambda v: v)):
        env.filters[name] = cast
    try:
        return env.from_string(value).render(env_var=env_var).strip()
    except jinja2.TemplateError as exc:
        raise ProfileError(f"the profile's default target {value!r} cannot be worked out here ({exc}): pass --context") from None


def choose_output(profiles: Mapping[str, Any], source: Path, profile_name: str, target_name: str | None) -> ChosenOutput:
    """The output `target_name` (default: the profile's `target:`) of `profile_name`."""
    profile_names = sorted(k for k in profiles if k != "config")
    profile = profiles.get(profile_name)
    if not isinstance(profile, dict):
        raise ProfileError(
            f"profile {profile_name!r} (named in dbt_project.yml) is not in {source}; it has: {', '.join(profile_names) or 'no profiles'}"
        )
    outputs = profile.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        raise ProfileError(f"profile {profile_name!r} in {source} has no outputs: add one")
    if target_name is None:
        default = profile.get("target")
        if not default:
            raise ContextError(
                f"profile {profile_name!r} in {source} sets no default `target:`: pass --context (one of: {', '.join(sorted(outputs))})"
            )
        target_name = render_default_target(str(default))
    output = outputs.get(target_name)
    if not isinstance(output, dict):
        raise ContextError(
            f"target {target_name!r} is not an output of profile {profile_name!r} in {source}; choose one of: {', '.join(sorted(outputs))}"
        )
    user_config = profiles.get("config") if isinstance(profiles.get("config"), dict) else None
    return ChosenOutput(source, profile_name, target_name, output, user_config)


def _is_local_file(path: Any) -> TypeGuard[str]:
    """Whether a DuckDB `path` names a file here (not memory, MotherDuck, a URL or a template)."""
    return isinstance(path, str) and bool(path) and "{{" not in path and "://" not in path and not path.startswith(_NON_FILE_DUCKDB)


def _absolute_duckdb_path(value: Any, project_dir: Path) -> Any:
    if not _is_local_file(value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (project_dir / path).resolve())


def isolate_output(output: Mapping[str, Any], short: str, project_dir: Path) -> tuple[dict[str, Any], str]:
    """A copy of `output` that builds into `<schema>_<short>`, and that schema.

    `project_dir` is the user's project: relative DuckDB paths, and a Spark
    session's metastore and warehouse, are made absolute against it, so
    isolated schemas land beside the user's normal builds.
    """
    isolated = copy.deepcopy(dict(output))
    adapter = str(isolated.get("type", ""))
    key = schema_key(isolated)
    base = isolated.get(key) or ADAPTER_DEFAULT_SCHEMA.get(adapter)
    if not base:
        raise ProfileError(
            f"this output (type {adapter or 'unknown'}) sets no `{key}:`: add one, so the isolated build has a schema to suffix"
        )
    schema = suffixed_schema(str(base), short)
    if rules_for(adapter).database_is_schema and isolated.get("database") == isolated.get(key):
        # Spark, MySQL and ClickHouse reject a `database` that differs from the schema.
        isolated["database"] = schema
    isolated[key] = schema
    if adapter == "duckdb":
        isolated["path"] = _absolute_duckdb_path(isolated.get("path"), project_dir)
        for attachment in isolated.get("attach") or []:
            if isinstance(attachment, dict) and "path" in attachment:
                attachment["path"] = _absolute_duckdb_path(attachment["path"], project_dir)
    if adapter == "spark" and isolated.get("method") == "session":
        isolated["server_side_parameters"] = _pinned_spark_session(isolated.get("server_side_parameters"), project_dir)
    return isolated, schema


# --- Spark in session mode -------------------------------------------------------
#
# A session-mode Spark keeps its Hive metastore (embedded Derby), its warehouse
# and derby.log in the JVM's working directory. An isolated build runs in its
# worktree, so it would get a private metastore that nobody else sees. They are
# pinned to the user's project dir, where their own `dbt build` puts them.

SPARK_WAREHOUSE = "spark.sql.warehouse.dir"
SPARK_METASTORE_URL = "spark.hadoop.javax.jdo.option.ConnectionURL"
SPARK_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
_DERBY = "jdbc:derby:"
_DERBY_LOG = re.compile(r"(-Dderby\.stream\.error\.file=)(\S+)")


def _is_relative_local(value: str) -> bool:
    """A plain relative path: not absolute, not a URI (s3a://, file:/...), not a template."""
    return (
        bool(value)
        and "{{" not in value
        and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value)
        and not Path(value).expanduser().is_absolute()
    )


def _absolute_local(value: str, project_dir: Path) -> str:
    return str((project_dir / value).resolve()) if _is_relative_local(value) else value


def _derby_parts(url: str) -> tuple[str, list[str]] | None:
    """(database path, the other `;` attributes) of an embedded Derby URL, else None.

    `jdbc:derby:<path>;create=true` and `jdbc:derby:;databaseName=<path>` both
    name it; `jdbc:derby://host/...` is a network server, shared by design.
    """
    if not url.startswith(_DERBY) or url.startswith(_DERBY + "//"):
        return None
    head, *attributes = url[len(_DERBY) :].split(";")
    named = [a for a in attributes if a.startswith("databaseName=")]
    path = named[-1].partition("=")[2] if named else head
    return path, [a for a in attributes if a and not a.startswith("databaseName=")]


def derby_url(database: str, attributes: list[str] | None = None) -> str:
    """A JDBC URL of an embedded Derby metastore database."""
    return f"{_DERBY};databaseName={database};" + ";".join(attributes if attributes is not None else ["create=true"])


def _metastore_key(params: Mapping[str, Any]) -> str:
    """The key the user pinned the metastore with; Spark also passes the bare Hive one through."""
    return next((k for k in (SPARK_METASTORE_URL, SPARK_METASTORE_URL.removeprefix("spark.hadoop.")) if params.get(k)), SPARK_METASTORE_URL)


def _pinned_spark_session(parameters: Any, project_dir: Path) -> dict[str, Any]:
    params = dict(parameters) if isinstance(parameters, Mapping) else {}
    params[SPARK_WAREHOUSE] = _absolute_local(str(params.get(SPARK_WAREHOUSE) or "spark-warehouse"), project_dir)
    key = _metastore_key(params)
    parts = _derby_parts(str(params[key])) if params.get(key) else ("metastore_db", ["create=true"])
    if parts is not None and _is_relative_local(parts[0]):
        params[key] = derby_url(_absolute_local(parts[0], project_dir), parts[1])
    options = str(params.get(SPARK_JAVA_OPTIONS) or "")
    if _DERBY_LOG.search(options):
        options = _DERBY_LOG.sub(lambda m: m.group(1) + _absolute_local(m.group(2), project_dir), options)
    else:
        options = f"{options} -Dderby.stream.error.file={project_dir.resolve() / 'derby.log'}".strip()
    params[SPARK_JAVA_OPTIONS] = options
    return params


def spark_metastore(output: Mapping[str, Any]) -> Path | None:
    """The embedded Derby metastore a session-mode Spark output opens, if it is one.

    Derby admits one JVM at a time, so builds sharing it must take turns.
    """
    if output.get("type") != "spark" or output.get("method") != "session":
        return None
    params = output.get("server_side_parameters")
    params = params if isinstance(params, Mapping) else {}
    url = params.get(_metastore_key(params))
    parts = _derby_parts(str(url)) if url else None
    if parts is None or parts[0].startswith(("memory:", "{{")) or not parts[0]:
        return None
    path = parts[0].removeprefix("directory:")
    return Path(path) if Path(path).is_absolute() else None


def duckdb_file(output: Mapping[str, Any]) -> Path | None:
    """The local database file a DuckDB output writes to, if it is one, as its real path.

    One file can be named many ways (a symlink, `a/../b`, relative or absolute):
    whatever compares DuckDB files (the one-writer lock, diff's "same database")
    compares this, or it takes one file for two.
    """
    if output.get("type") != "duckdb":
        return None
    path = output.get("path")
    # No path at all is dbt-duckdb's in-memory default.
    return Path(os.path.realpath(Path(path).expanduser())) if _is_local_file(path) else None


def connection_identity(output: Mapping[str, Any]) -> tuple[str, ...]:
    """What identifies the database an output connects to (schema and threads aside)."""
    database_file = duckdb_file(output)
    return tuple(
        str(database_file) if k == "path" and database_file else str(output.get(k))
        for k in ("type", "host", "port", "dbname", "database", "path", "account", "project", "catalog", "server", "http_path")
    )
