"""Deferral: a partial build that reads its unchanged nodes from another, successful build.

`--defer-to CTX@REF` names the base. Whether a build can serve as one is the
record's rule (`BuildRecord.unusable_as_base`); this module finds the base,
and checks it again where a build depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DeferralError, DotError
from .naming import check_context_name, parse_spec
from .profile_step import context_name, read_generated_profile
from .profiles import duckdb_file
from .records import BuildRecord, DeferredTo
from .workspace import Workspace, resolve


@dataclass(frozen=True)
class Deferral:
    """A successful build of another commit, whose relations a partial build reads."""

    commit: str
    context: str
    schema: str
    #: The base's target directory: its manifest.json is dbt's --state.
    state_dir: Path

    def as_record(self) -> dict[str, str]:
        """The base as `build.json`'s `deferred_to` and the `run --json` summary carry it."""
        return self.deferred_to().to_json()

    def deferred_to(self) -> DeferredTo:
        """The base, as a build record names it."""
        return DeferredTo(self.commit, self.context, self.schema)


@dataclass(frozen=True)
class BaseLookup:
    """The build a `--defer-to` spec names, and whether a build can defer to it."""

    commit: str
    context: str
    #: The deferral, when the build is usable as a base; None otherwise.
    base: Deferral | None
    #: Why it is not usable ('has not been built', ...); '' when it is.
    problem: str


def parse_base_spec(spec: str) -> tuple[str | None, str]:
    """(context or None, ref) of a `--defer-to CTX@REF`, its errors named as the flag's."""
    try:
        return parse_spec(spec)
    except DotError as exc:
        raise DeferralError(f"--defer-to: {exc}") from None


def find_base(ws: Workspace, spec: str) -> BaseLookup:
    """The base `spec` (CTX@REF) names, usable or not (and why not)."""
    context, ref = parse_base_spec(spec)
    commit = resolve(ws, ref)
    if context is None:
        context = context_name(ws, commit, None)
    check_context_name(context)
    ctx = ws.paths(commit).context(context)
    record = BuildRecord.load(ctx)
    manifest = ctx.target_dir / "manifest.json"
    problem = "has not been built" if record is None else record.unusable_as_base(manifest)
    if record is None or problem:
        return BaseLookup(commit, context, None, problem or "")
    return BaseLookup(commit, context, Deferral(commit, context, str(record.schema), ctx.target_dir), "")


def check_same_warehouse(ws: Workspace, base: Deferral, context: str, output: Mapping[str, Any]) -> None:
    """dbt resolves a deferred ref by name in the head's own connection: the base must be reachable there."""
    base_profile = ws.paths(base.commit).context(base.context).profiles_yml
    if not base_profile.is_file():
        return  # a base restored from a cache may carry only its target/ and build.json
    base_output = read_generated_profile(base_profile).output
    mine, theirs = (str(output.get("type", "")), duckdb_file(output)), (str(base_output.get("type", "")), duckdb_file(base_output))
    if mine != theirs:
        raise DeferralError(
            f"{context} and the base {base.context}@{base.commit[:12]} are in different warehouses "
            f"({mine[0]} {mine[1] or ''} vs {theirs[0]} {theirs[1] or ''}): defer to a context of the same one"
        )


def recheck_base(ws: Workspace, base: Deferral) -> None:
    """The base, checked again once its lock is held: a rebuild may have failed in between."""
    record = BuildRecord.load(ws.paths(base.commit).context(base.context))
    if record is None or not record.succeeded or record.schema != base.schema:
        raise DeferralError(
            f"the base {base.context}@{base.commit[:12]} changed while this build waited for it "
            f"(status {record.status if record else None}): rerun it with `dot-tasks run {base.context}@{base.commit[:12]}`"
        )
