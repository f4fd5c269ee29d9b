"""The gate: whether a build may go live, judged from its record and manifest (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .plan import PROMOTABLE, listing


def _short_name(uid: str) -> str:
    parts = uid.split(".")
    return parts[2] if len(parts) > 2 else uid


@dataclass
class _NodeVerdicts:
    """The names of the manifest's nodes that keep the gate shut, by why."""

    unbuilt: list[str] = field(default_factory=list)
    never_built: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    never_ran: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One line per reason, with how many nodes it names and the first of them."""
        found = []
        for names, what in (
            (self.unbuilt, "node(s) did not build"),
            (self.never_built, "node(s) were never built"),
            (self.failed, "test(s) failed"),
            (self.skipped, "test(s) were skipped after an upstream failure"),
            (self.never_ran, "test(s) never ran"),
            (self.stale, "test(s) ran before the node they test was rebuilt, and have not run since"),
            (self.warned, "test(s) warned (--fail-on-warn)"),
        ):
            if names:
                found.append(f"{len(names)} {what}: {listing(names)}")
        return found


def _record_problems(record: Mapping[str, Any], commit: str, context: str) -> list[str]:
    """What the record itself says against the build: another build's record, or a last invocation that failed."""
    problems: list[str] = []
    if record.get("commit") not in (None, commit) or record.get("context") not in (None, context):
        problems.append("its build record belongs to another commit or context")
    command = str(record.get("command") or "")
    status = record.get("status")
    if status == "running":
        problems.append("it is being built right now (or its build was interrupted)")
    elif status != "success" or record.get("exit_code") not in (0, None):
        problems.append(f"its last dbt {command or 'invocation'} failed (exit {record.get('exit_code')})")
    return problems


def _judge_nodes(manifest: Mapping[str, Any], nodes: Mapping[str, Any], fail_on_warn: bool) -> _NodeVerdicts:
    """Every model, seed and snapshot built, every test passed, by the per-node results."""
    verdicts = _NodeVerdicts()
    for uid, node in sorted((manifest.get("nodes") or {}).items()):
        if not isinstance(node, dict):
            continue
        kind = node.get("resource_type")
        state = nodes.get(uid)
        name = _short_name(uid)
        if kind in PROMOTABLE:
            if (node.get("config") or {}).get("materialized") == "ephemeral":
                continue
            if state is None:
                verdicts.never_built.append(name)
            elif state != "success":
                verdicts.unbuilt.append(name)
        elif kind == "test":
            if state is None:
                verdicts.never_ran.append(name)
            elif state == "stale":
                verdicts.stale.append(name)
            elif state == "skipped":
                verdicts.skipped.append(name)
            elif state == "warn":
                if fail_on_warn:
                    verdicts.warned.append(name)
            elif state != "pass":
                verdicts.failed.append(name)
    # Unit tests are no manifest node of a kind above; their results are in the record alone.
    verdicts.failed += [
        uid.split(".")[-1] for uid, state in sorted(nodes.items()) if uid.startswith("unit_test.") and state in ("fail", "error")
    ]
    return verdicts


def gate_problems(
    record: Mapping[str, Any] | None,
    manifest: Mapping[str, Any] | None,
    commit: str,
    context: str,
    fail_on_warn: bool = False,
) -> list[str]:
    """Why a build may not go live, by the gate; empty when it may.

    The gate judges the build, not its last invocation: every model, seed and
    snapshot of its manifest was built successfully, and every test passed
    (not warned, with `--fail-on-warn`), by the invocations since the last
    full one (`builds.node_statuses`). A selected re-run repairs a failed node
    only by passing it; the last invocation must have succeeded too.
    """
    if not record:
        return [f"there is no build of {context} at {commit[:12]} on this machine"]
    problems = _record_problems(record, commit, context)
    nodes = record.get("nodes")
    if not isinstance(nodes, dict):
        problems.append("its build record has no per-node results (made by an older dot-tasks)")
        return problems
    if not manifest:
        problems.append("its manifest.json is missing")
        return problems
    return problems + _judge_nodes(manifest, nodes, fail_on_warn).problems()


def partial_problem(record: Mapping[str, Any] | None) -> str | None:
    """The slim-CI contract: a deferred build that built only part of the project cannot go live."""
    if record and record.get("partial") and not record.get("cloned"):
        return (
            "it is a partial build deferred to another build (without --clone), so the live schema would "
            "be missing models: rebuild it in full, or with --clone"
        )
    return None
