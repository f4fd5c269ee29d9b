"""Comparing two builds: what a change does to the data, node by node.

Planning is pure: the two manifests say which nodes were added, removed, modified or
impacted, and which key each model is compared on. The counting happens in the warehouse,
through the `dot_diff` ops macros, on a pool of threads in one dbt child; only counts and
the samples come back, and the parent assembles them into a typed `DiffResult`.

| module | holds | runs in |
|---|---|---|
| `options` | `DiffOptions`, the sides' specs and `--key` flags | the parent |
| `planning` | code states, keys and lineage from the manifests (pure) | the parent |
| `columns` | which columns changed, and how each one's values compare (pure) | both |
| `driver` | `compare_node`, the per-node driver, through `call(macro, ...)` | the dbt child |
| `apart` | two databases: checksums of key-hash buckets, split where they differ | the parent |
| `sides` | which builds the sides are, built when missing, and their profiles | the parent |
| `orchestration` | `diff_builds`: the whole diff | the parent |
| `result` | `DiffResult`, `NodeDiff` and their parts, `to_json()` | anywhere |

The names below are what the rest of dot-tasks and its tests import from here.
"""

from __future__ import annotations

from .apart import LEAF_ROWS, ApartPlan, compare_node_apart, compare_values_apart, first_level_bits
from .columns import column_changes, compare_spec, value_kind
from .driver import DRIVER, compare_node
from .options import DiffError, DiffOptions, parse_keys, parse_side
from .orchestration import diff_builds
from .planning import DIFFED_TYPES, NodePlan, choose_key, code_state, lineage, plan
from .result import DiffResult, NodeDiff, finite
from .sides import _connection

__all__ = [
    "DIFFED_TYPES",
    "DRIVER",
    "LEAF_ROWS",
    "ApartPlan",
    "DiffError",
    "DiffOptions",
    "DiffResult",
    "NodeDiff",
    "NodePlan",
    "_connection",
    "choose_key",
    "code_state",
    "column_changes",
    "compare_node",
    "compare_node_apart",
    "compare_spec",
    "compare_values_apart",
    "diff_builds",
    "finite",
    "first_level_bits",
    "lineage",
    "parse_keys",
    "parse_side",
    "plan",
    "value_kind",
]
