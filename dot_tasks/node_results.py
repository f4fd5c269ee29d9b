"""Each node's last status across a build's invocations: what promote's gate judges.

dbt's run_results.json says what one invocation ran. A build may take
several (`run`, then `test`, then a selected re-run of what failed): the
record's `nodes` folds them together, so the gate sees the build as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

#: The resource types each dbt command builds when it selects nothing: its results replace theirs.
_FULL_COVER = {
    "build": ("model", "seed", "snapshot", "test", "unit_test"),
    "run": ("model",),
    "test": ("test", "unit_test"),
    "seed": ("seed",),
    "snapshot": ("snapshot",),
}
#: Flags that narrow an invocation to some nodes: its results update the record rather than replace it.
_NARROWING = frozenset(
    {
        "-s",
        "--select",
        "-m",
        "--models",
        "--model",
        "--selector",
        "--exclude",
        "--resource-type",
        "--resource-types",
        "--exclude-resource-type",
    }
)


def node_statuses(
    previous: Mapping[str, str] | None,
    command: list[str],
    args: list[str],
    run_results: Mapping[str, Any] | None,
    manifest: Mapping[str, Any] | None,
    started: str,
) -> dict[str, str]:
    """Each node's last status, across the invocations since the last full one: what the gate judges.

    A full invocation (one that selects nothing) starts its resource types
    afresh; a selected one updates the nodes it ran. A model, seed or snapshot
    rebuilt without its tests makes those tests `stale`: they passed on data
    that is gone. run_results.json older than the invocation is not its own.
    """
    nodes = dict(previous or {})
    generated = str((run_results or {}).get("metadata", {}).get("generated_at") or "")
    if not run_results or _parsed(generated) < _parsed(started):
        return nodes
    which = command[0] if command else ""
    if which in _FULL_COVER and not any(a.split("=")[0] in _NARROWING for a in args):
        nodes = {uid: st for uid, st in nodes.items() if uid.split(".")[0] not in _FULL_COVER[which]}
    ran = {str(r.get("unique_id")): str(r.get("status")) for r in run_results.get("results") or []}
    nodes.update(ran)
    rebuilt = {uid for uid, st in ran.items() if st == "success" and not uid.startswith(("test.", "unit_test."))}
    for uid, node in ((manifest or {}).get("nodes") or {}).items():
        depends = set((node.get("depends_on") or {}).get("nodes") or [])
        if uid.startswith("test.") and uid not in ran and uid in nodes and depends & rebuilt:
            nodes[uid] = "stale"
    return nodes


def _parsed(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# --- the gate's reading of them ---------------------------------------------------

#: The resource types a promotion makes live views of.
PROMOTABLE = ("model", "seed", "snapshot")


def _short_name(uid: str) -> str:
    parts = uid.split(".")
    return parts[2] if len(parts) > 2 else uid


def _listing(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def node_problems(nodes: Mapping[str, str], manifest: Mapping[str, Any], fail_on_warn: bool) -> list[str]:
    """The gate's objections to the manifest's nodes, by each one's recorded status; empty when none."""
    found: dict[str, list[str]] = {kind: [] for kind in ("unbuilt", "never_built", "failed", "skipped", "never_ran", "stale", "warned")}
    for uid, node in sorted((manifest.get("nodes") or {}).items()):
        if not isinstance(node, dict):
            continue
        kind, state = node.get("resource_type"), nodes.get(uid)
        if kind in PROMOTABLE:
            if (node.get("config") or {}).get("materialized") == "ephemeral":
                continue
            if state is None or state != "success":
                found["never_built" if state is None else "unbuilt"].append(_short_name(uid))
        elif kind == "test":
            verdict = {None: "never_ran", "stale": "stale", "skipped": "skipped", "pass": None}.get(state, "failed")
            if state == "warn":
                verdict = "warned" if fail_on_warn else None
            if verdict:
                found[verdict].append(_short_name(uid))
    found["failed"] += [
        uid.split(".")[-1] for uid, state in sorted(nodes.items()) if uid.startswith("unit_test.") and state in ("fail", "error")
    ]
    return [
        f"{len(found[kind])} {what}: {_listing(found[kind])}"
        for kind, what in (
            ("unbuilt", "node(s) did not build"),
            ("never_built", "node(s) were never built"),
            ("failed", "test(s) failed"),
            ("skipped", "test(s) were skipped after an upstream failure"),
            ("never_ran", "test(s) never ran"),
            ("stale", "test(s) ran before the node they test was rebuilt, and have not run since"),
            ("warned", "test(s) warned (--fail-on-warn)"),
        )
        if found[kind]
    ]
