"""The per-node driver: one node compared inside the dbt child, through the `dot_diff` ops macros.

The child imports `compare_node` by its dotted path (`DRIVER`, see `dbt.protocol.MacroJobs`) and
calls `compare_node(call, **job)` for each job, where `call(macro, **kwargs)` runs one macro
and returns what it returned. The driver decides, in plain Python, what to compare: level b,
the columns; c, the row counts (and the key's duplicates and NULLs, when needed); d, the values
matched by key, with samples. The two-database path runs it too, one session per side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .columns import by_name, column_changes, compare_spec, shown_name
from .result import finite

#: What the dbt child imports to run each job: `module:function`.
DRIVER = "dot_tasks.diffing.driver:compare_node"

#: `call(macro, **kwargs)`: runs one ops macro and returns its value.
MacroCall = Callable[..., Any]
SIDES = ("base", "head")


class _Comparison:
    """One node's comparison under way: what the macros have said so far."""

    def __init__(
        self,
        call: MacroCall,
        base: dict[str, Any] | None,
        head: dict[str, Any] | None,
        key: list[str] | None,
        sample: int,
        adapter_type: str,
        exact_key_check: bool,
        tolerance: float | None,
    ) -> None:
        self.call, self.base, self.head, self.key, self.sample = call, base, head, key or [], sample
        self.adapter_type, self.exact_key_check, self.tolerance = adapter_type, exact_key_check, tolerance
        self.relations = {"base": base, "head": head}
        self.columns = {side: call("dot_columns_of", side=rel) if rel else None for side, rel in self.relations.items()}
        self.b, self.h = by_name(self.columns["base"]), by_name(self.columns["head"])
        self.key_specs: list[dict[str, Any]] = []
        self.stats: dict[str, dict[str, int]] = {}
        self.out: dict[str, Any] = {
            "columns": column_changes(self.columns["base"], self.columns["head"], adapter_type),
            "rows": {"base": None, "head": None},
            "values": None,
            "values_skipped": None,
            "missing": [side for side in SIDES if self.relations[side] is not None and self.columns[side] is None],
        }

    def problem_before_counting(self) -> str | None:
        """Why the values cannot be compared, as far as the sides' columns tell."""
        if self.base is None or self.head is None:
            return "only in head" if self.base is None else "only in base"
        if self.out["missing"]:
            return f"not in the warehouse on the {' and '.join(self.out['missing'])} side"
        if not self.key:
            return "no key"
        absent = [k for k in self.key if k.lower() not in self.b or k.lower() not in self.h]
        if absent:
            return f"key column {', '.join(absent)} is not on both sides"
        self.key_specs = [compare_spec(self.b[k.lower()], self.h[k.lower()]) for k in self.key]
        return None

    def check_key(self) -> str | None:
        """Exact duplicate and NULL counts per side (a GROUP BY each): the problem, if any."""
        for side in SIDES:
            self.stats[side] = self.call("dot_side_stats", side=self.relations[side], key=self.key_specs, which=side)
        bad = [
            f"{side} has {s['duplicate_keys']} duplicate key value(s) and {s['null_key_rows']} row(s) with a NULL key"
            for side, s in self.stats.items()
            if s["duplicate_keys"] or s["null_key_rows"]
        ]
        if not bad:
            return None
        self.out["key_problems"] = {
            side: {"duplicate_keys": s["duplicate_keys"], "null_key_rows": s["null_key_rows"]} for side, s in self.stats.items()
        }
        return "key " + ", ".join(s["head"] for s in self.key_specs) + " is not unique and not null: " + "; ".join(bad)

    def count_rows(self) -> None:
        """Level c when the values are not compared (their statement counts the rows itself):
        each side's row count, from the key check's statistics where it ran."""
        for side in SIDES:
            if self.relations[side] is not None and self.columns[side] is not None:
                if side not in self.stats:
                    self.stats[side] = self.call("dot_side_stats", side=self.relations[side], key=[])
                self.out["rows"][side] = self.stats[side]["rows"]

    def skipped(self, problem: str) -> dict[str, Any]:
        """The result so far, with why the values were not compared."""
        self.out["values_skipped"] = problem
        return self.out

    def compare_values(self) -> dict[str, Any]:
        """Level d: the values matched by key, and samples; a key found repeated stops it."""
        keyset = {k.lower() for k in self.key}
        specs = [compare_spec(self.b[n], self.h[n]) for n in self.h if n in self.b and n not in keyset]
        names = [s["head"] for s in specs]
        compared = {"base": self.base, "head": self.head, "key": self.key_specs, "columns": specs, "tolerance": self.tolerance}
        values = self.call("dot_value_diff", **compared, sample=self.sample)
        counted = {side: values.pop(f"{side}_rows", None) for side in SIDES}
        if None in counted.values():
            self.count_rows()
        else:
            self.out["rows"] = counted
        values["columns"] = dict(zip(names, values.pop("per_column"), strict=False))
        sampled, most_repeated = values.pop("rows"), values.pop("max_multiplicity")
        suspect = self._key_suspect(values) or most_repeated > 1
        if suspect and not self.exact_key_check:
            return self.skipped(self.check_key() or "key columns are not unique")
        values["columns"] = {shown_name(c, self.adapter_type): n for c, n in values["columns"].items()}
        values["key"] = [shown_name(s["head"], self.adapter_type) for s in self.key_specs]
        values["sample"] = self._samples(sampled, names)
        self.out["values"] = values
        self.out["compare"] = {"key": self.key_specs, "columns": specs}
        return self.out

    def _key_suspect(self, values: dict[str, Any]) -> bool:
        """Whether the join's own counts hint at a bad key (the checks leave `values`)."""
        # The join itself shows most key trouble: a row whose key has a NULL (it is on neither side
        # of the join), or a repeated key that matched (a side's rows then appear more often in the
        # join than in the table). A key repeated among one side's unmatched rows shows in the
        # multiplicity the same query returns. Only then are exact counts taken.
        checks = {k: values.pop(k, None) for k in ("base_present", "head_present", "null_key_rows")}
        return bool(checks["null_key_rows"]) or any(checks[f"{side}_present"] not in (None, self.out["rows"][side]) for side in SIDES)

    def _samples(self, rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
        """The first `sample` rows of each kind the samples macro returned, as result entries."""
        samples: list[dict[str, Any]] = []
        per_kind: dict[str, int] = {}
        key_names = [s["head"] for s in self.key_specs]
        for row in rows:
            kind = {"matched": "changed"}.get(row["kind"], row["kind"])
            per_kind[kind] = per_kind.get(kind, 0) + 1
            if per_kind[kind] <= self.sample:
                changed = [n for n, d in zip(names, row["differs"], strict=False) if d]
                samples.append(sample_entry(kind, key_names, names, row["key"], row["base"], row["head"], changed))
        return samples


def compare_node(
    call: MacroCall,
    *,
    unique_id: str,
    label: str,
    base: dict[str, Any] | None,
    head: dict[str, Any] | None,
    key: list[str] | None,
    sample: int,
    adapter_type: str = "",
    exact_key_check: bool = False,
    tolerance: float | None = None,
) -> dict[str, Any]:
    """Levels b to d for one node: `call(macro, **kwargs)` runs one `dot_diff` macro.

    `unique_id` and `label` come with every job and name it; the comparison does not need them.
    """
    node = _Comparison(call, base, head, key, sample, adapter_type, exact_key_check, tolerance)
    problem = node.problem_before_counting()
    if problem is None and exact_key_check:
        problem = node.check_key()
    if problem is not None:
        node.count_rows()
        return node.skipped(problem)
    return node.compare_values()


def sample_entry(
    kind: str, key: list[str], columns: list[str], key_values: list[Any], base: list[Any] | None, head: list[Any] | None, changed: list[str]
) -> dict[str, Any]:
    """One sampled key as the result holds it: its key, each side's values, and what changed."""
    entry: dict[str, Any] = {"kind": kind, "key": {n: finite(v) for n, v in zip(key, key_values, strict=False)}}
    if kind != "added" and base is not None:
        entry["base"] = {c: finite(v) for c, v in zip(columns, base, strict=False)}
    if kind != "removed" and head is not None:
        entry["head"] = {c: finite(v) for c, v in zip(columns, head, strict=False)}
    if kind == "changed":
        entry["changed"] = changed
    return entry
