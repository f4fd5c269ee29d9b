"""Red/green deployment: `promote`, `rollback`, `retire` and `live`.

A build sits in `<schema>_<short>`; the schema that dashboards read is the
context's own `<schema>`, its live schema. Promoting makes, in the live
schema, one view per model, seed and snapshot of the build, selecting from
the build's relation (`analytics_<short>.orders` → `analytics.orders`,
`analytics_<short>_marts.x` → `analytics_marts.x`), so a switch moves no data
and a rollback is the same switch to an older build.

The rooms of this package, in the order they import each other:

- `results`: the typed results and their `--json` (pure);
- `plan`, `gate`: which relations go live, the macros' plan, drift, and
  whether a build passed its gate (pure, over the build's records);
- `notes`: what this machine remembers (`.dot/live/<context>.json`), for
  `list` and `clean`, which must not reach the warehouse;
- `warehouse`: the connection, the ops macros, the live lock;
- `refusals`, `switch`: `promote` and `rollback`; `retire`; `live`.

The switch itself is the `dot_promote` macro (dbt_ops/macros/dot_deploy.sql),
which takes its decisions about what the warehouse holds inside the one
transaction that makes the change. Team state (what is live, the history)
lives in the warehouse's `dot_promotions` table.
"""

from __future__ import annotations

from .gate import gate_problems
from .live import HISTORY_SHOWN, format_live, live
from .notes import live_marks, protected_commits, remembered
from .plan import (
    HISTORY_TABLE,
    PROMOTABLE,
    BuildGone,
    PromotePlan,
    PromotionRefused,
    drift,
    live_schema_for,
    live_schema_of,
    plan_relations,
    relation_key,
)
from .results import Drift, HistoryEntry, LiveReport, RetireResult, SwitchResult
from .retire import retire
from .switch import PromoteOptions, promote, rollback
from .warehouse import default_context

__all__ = [
    "HISTORY_SHOWN",
    "HISTORY_TABLE",
    "PROMOTABLE",
    "BuildGone",
    "Drift",
    "HistoryEntry",
    "LiveReport",
    "PromoteOptions",
    "PromotePlan",
    "PromotionRefused",
    "RetireResult",
    "SwitchResult",
    "default_context",
    "drift",
    "format_live",
    "gate_problems",
    "live",
    "live_marks",
    "live_schema_for",
    "live_schema_of",
    "plan_relations",
    "promote",
    "protected_commits",
    "relation_key",
    "remembered",
    "retire",
    "rollback",
]
