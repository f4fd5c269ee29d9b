"""Rendering `templates/profiles.yml.j2`; the only module that imports Jinja."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import yaml

from . import __version__

TEMPLATE = "profiles.yml.j2"


def template_dir() -> Path:
    """`dot_tasks/templates` in a wheel; the top-level `templates/` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / TEMPLATE).is_file():
            return candidate
    raise FileNotFoundError(f"{TEMPLATE} is missing from this installation of dot-tasks")


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
        loader=jinja2.FileSystemLoader(str(template_dir())),
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
    text = (
        _environment()
        .get_template(TEMPLATE)
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
