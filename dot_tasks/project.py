"""Finding the user's dbt project and reading its `dbt_project.yml`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ProjectError

PROJECT_FILE = "dbt_project.yml"
PACKAGE_FILES = ("packages.yml", "dependencies.yml")


def find_project_dir(start: Path, explicit: str | None = None) -> Path:
    """The dbt project root: `explicit` if given, else the nearest one upward of `start`."""
    if explicit:
        candidate = (start / explicit).resolve()
        if not (candidate / PROJECT_FILE).is_file():
            raise ProjectError(f"no {PROJECT_FILE} in {candidate}: point --project-dir (or dot.project_dir) at your dbt project's root")
        return candidate
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / PROJECT_FILE).is_file():
            return directory
    raise ProjectError(f"no {PROJECT_FILE} in {start} or any parent: run inside a dbt project or pass --project-dir")


@dataclass(frozen=True)
class ProjectConfig:
    """What dot-tasks needs from a commit's `dbt_project.yml`."""

    name: str
    profile: str


def parse_project_config(text: bytes | str, where: str) -> ProjectConfig:
    """The parts of a dbt_project.yml dot-tasks reads; `where` names the file in errors."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProjectError(f"{where} is not valid YAML ({exc.__class__.__name__}): fix it and retry") from exc
    if not isinstance(data, dict) or not data.get("name"):
        raise ProjectError(f"{where} has no `name:`: it is not a dbt project file")
    # dbt falls back to the project name when `profile:` is absent.
    return ProjectConfig(name=str(data["name"]), profile=str(data.get("profile") or data["name"]))


def declares_packages(text: bytes | str | None) -> bool:
    """Whether a packages.yml / dependencies.yml lists any package to install."""
    if text is None:
        return False
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return True  # let `dbt deps` report the syntax error in its own words
    return isinstance(data, dict) and bool(data.get("packages"))


def local_packages(text: bytes | str | None) -> list[str]:
    """The `local:` package paths a packages.yml / dependencies.yml declares."""
    if text is None:
        return []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    packages = data.get("packages") if isinstance(data, dict) else None
    return [str(p["local"]) for p in packages or [] if isinstance(p, dict) and p.get("local")]
