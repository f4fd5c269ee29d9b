"""The profile step: which context a build uses, and the profiles.yml generated for it.

A context is a name for one output (target) of the user's profile; its
generated `<commit>/<context>/profiles.yml` is that output pointed at
`<schema>_<short>`. The file is derived, so any step may write it again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from . import gitrepo
from .adapters import schema_key, unchecked_warning
from .errors import ProfileError, ProjectError
from .files import write_atomic
from .naming import check_context_name, check_identifier_length, is_template
from .profiles import ChosenOutput, choose_output, find_profiles_file, isolate_output, load_profiles
from .project import PROJECT_FILE, ProjectConfig, parse_project_config
from .workspace import Workspace, claim_suffix


@dataclass(frozen=True)
class ContextChoice:
    """A context, the profile output (target) it builds with, and the profile that holds it."""

    context: str
    target: str
    profile_name: str


def project_config_at(ws: Workspace, commit: str) -> ProjectConfig:
    """The commit's dbt_project.yml, read from git (no checkout needed)."""
    where = ws.in_repo(PROJECT_FILE)
    text = gitrepo.read_file_at(ws.repo, commit, where)
    if text is None:
        raise ProjectError(f"commit {commit[:12]} has no {where}: the dbt project did not exist there yet (pick a later ref)")
    return parse_project_config(text, f"{where} at {commit[:12]}")


def user_profiles(ws: Workspace) -> tuple[Path, dict[str, Any]]:
    """The user's profiles.yml (where dbt would find it) and its contents."""
    source = find_profiles_file(ws.settings.profiles_dir, os.environ, ws.project_dir, Path.home(), Path.cwd())
    return source, load_profiles(source)


def choose_context(ws: Workspace, commit: str, context: str | None) -> tuple[ContextChoice, ChosenOutput]:
    """The context (default: the profile's default target) and the output it builds with."""
    if context is not None:
        check_context_name(context)
    project = project_config_at(ws, commit)
    source, profiles = user_profiles(ws)
    target = ws.settings.contexts.get(context, context) if context else None
    chosen = choose_output(profiles, source, project.profile, target)
    name = context or chosen.target_name
    check_context_name(name)
    return ContextChoice(name, chosen.target_name, project.profile), chosen


def context_name(ws: Workspace, commit: str, context: str | None) -> str:
    """The context a build of `commit` uses: `context` (checked), or the profile's default target."""
    return choose_context(ws, commit, context)[0].context


@dataclass(frozen=True)
class ProfileResult:
    """What the profile step wrote, and for which context and schema."""

    context: str
    target: str
    schema: str
    profiles_dir: Path
    short: str
    #: One line for the user when the adapter is one dot-tasks has not been checked with.
    warning: str | None = None


def write_rendered_profile(path: Path, commit: str, context: str, chosen: ChosenOutput, output: dict[str, Any]) -> None:
    """Render the template for `output` (the chosen output, isolated) and write it owner-only.

    The one writer of a generated profiles.yml: a build's and the registry's (see `registry_target`).
    """
    from .templating import render_profiles  # Jinja is only needed here

    text = render_profiles(
        commit=commit,
        context=context,
        profile_name=chosen.profile_name,
        target_name=chosen.target_name,
        output=output,
        user_config=chosen.user_config,
        source=chosen.source,
    )
    write_atomic(path, text, mode=0o600)


def write_profile(ws: Workspace, commit: str, context: str | None, ref: str | None = None) -> ProfileResult:
    """Write `<commit>/<context>/profiles.yml`, pointing the context at `<schema>_<short>`."""
    choice, chosen = choose_context(ws, commit, context)
    suffix = claim_suffix(ws, commit, ref)
    output, schema = isolate_output(chosen.output, suffix, ws.project_dir)
    check_identifier_length(schema, str(output.get("type", "")))
    ctx = ws.paths(commit).context(choice.context)
    write_rendered_profile(ctx.profiles_yml, commit, choice.context, chosen, output)
    adapter = str(output.get("type", ""))
    return ProfileResult(
        choice.context, choice.target, schema, ctx.context_dir, suffix, unchecked_warning(adapter, schema_key(output), schema)
    )


class GeneratedProfile(NamedTuple):
    """A generated profiles.yml, read back: how a build reaches its warehouse.

    A tuple, so `profile_name, target, output = ...` reads as it always has.
    """

    profile_name: str
    target: str
    #: The output (connection) the build uses, its schema already `<schema>_<short>`.
    output: dict[str, Any]


def ensure_generated_profile(ws: Workspace, commit: str, context: str) -> GeneratedProfile:
    """The generated profile of `commit` in `context`, written first when it is missing.

    The profile is derived, so it is written again when missing: a build
    restored from a CI cache carries only its records and dbt's artifacts.
    """
    ctx = ws.paths(commit).context(context)
    if not ctx.profiles_yml.is_file():
        write_profile(ws, commit, context)
    return read_generated_profile(ctx.profiles_yml)


def read_generated_profile(path: Path) -> GeneratedProfile:
    """The profile name, target name and output of a profiles.yml that `write_profile` wrote."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    name, profile = next((k, v) for k, v in data.items() if k != "config")
    return GeneratedProfile(str(name), str(profile["target"]), profile["outputs"][profile["target"]])


def preflight(ws: Workspace, commit: str, context: str | None) -> None:
    """What a build needs and can be checked without writing anything: the context and its adapter."""
    from .dbt.client import require_dbt  # no dbt import here: dbt runs in a child

    require_dbt()
    choice, chosen = choose_context(ws, commit, context)
    require_adapter(choice.context, str(chosen.output.get("type", "")))


def require_adapter(context: str, adapter: str) -> None:
    """Refuse a context whose dbt adapter is not installed, saying what to install."""
    from .dbt.client import adapter_available

    if adapter and not is_template(adapter) and not adapter_available(adapter):
        raise ProfileError(f"context {context!r} uses the {adapter} adapter, which is not installed: pip install dbt-{adapter}")
