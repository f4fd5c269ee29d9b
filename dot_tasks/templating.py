"""Rendering the generated profile from `dot_tasks/templates/profiles.yml.j2`; the only module that imports Jinja."""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jinja2
import yaml

from . import __version__

TEMPLATE = "profiles.yml.j2"


def template_dir() -> Traversable:
    """The package's `templates` folder, wherever dot-tasks is installed (a checkout, a wheel, an editable install).

    The top-level `templates` of a checkout is a symlink to it, so there is one file to edit.
    """
    return resources.files(__package__ or "dot_tasks") / "templates"


def template_text(name: str = TEMPLATE) -> str:
    """The text of one of the package's templates."""
    source = template_dir() / name
    if not source.is_file():
        raise FileNotFoundError(f"{name} is missing from this installation of dot-tasks")
    return source.read_text(encoding="utf-8")


def _yaml_scalar(value: Any) -> str:
    # JSON strings are valid YAML, and quoting every key keeps names such as
    # `on`, `yes` or `123` from being read back as booleans or numbers.
    return json.dumps(str(value), ensure_ascii=False)


def _yaml_block(value: Any, indent: int) -> str:
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1000)
    pad = " " * indent
    return "\n".join(pad + line if line else line for line in text.rstrip("\n").split("\n"))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["yaml_scalar"] = _yaml_scalar
    env.filters["yaml_block"] = _yaml_block
    return env


def render_profiles(
    *,
    commit: str,
    context: str,
    profile_name: str,
    target_name: str,
    output: dict[str, Any],
    user_config: dict[str, Any] | None,
    source: Path,
) -> str:
    """The text of a generated profiles.yml: one profile with one output (and the user's `config:`), under a header naming its commit and source."""
    text = (
        _environment()
        .from_string(template_text())
        .render(
            version=__version__,
            commit=commit,
            context=context,
            profile_name=profile_name,
            target_name=target_name,
            output=output,
            user_config=user_config,
            source=str(source),
        )
    )
    return text if text.endswith("\n") else text + "\n"
