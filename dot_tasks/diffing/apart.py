"""Two databases: checksums of key-hash buckets on each side, split only where they differ.

Each row's key hashes to an integer below 2^60 (the warehouse's own hash: PostgreSQL
hashtextextended, DuckDB hash; md5 where the two sides' engines differ). A level groups
the rows by the low bits of that hash, within the buckets of the level before that
differed, and returns one row per bucket (count, sum of row hashes): one aggregate query
per side per level, both sides at once, streamed and compared as they arrive. Only the
rows of the buckets that still differ leave either database.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .columns import shown_name
from .driver import compare_node, sample_entry


class SideSession(Protocol):
    """One side's warehouse session (`dbt.client.MacroSession`): runs ops macros there."""

    def call(self, macro: str, **kwargs: Any) -> Any:
        """Run `macro` and return its value."""
        ...

    def stream(self, macro: str, **kwargs: Any) -> Iterator[list[Any]]:
        """Run `macro` and yield the rows it writes, as they come."""
        ...


#: Bits of the key hash added per level: a differing bucket splits 256 ways.
SPLIT_BITS = 8
#: A differing bucket with at most this many rows (on either side) is fetched, not split again.
LEAF_ROWS = 4
#: The most buckets one query names; when more differ, their parents' rows are fetched instead.
MAX_BUCKETS = 4096
#: The key hash's width (see the dot_hash_int macro).
HASH_BITS = 60
#: Rows one side's stream of differing rows is read in at most (by ranges of the key hash):
#: what the warehouse sorts, and DuckDB's embedded engine holds, at once.
RANGE_ROWS = 50_000


#: Rows per bucket the first level aims at: one level more then reaches single rows.
FIRST_LEVEL_ROWS = 64


def first_level_bits(rows: int) -> int:
    """Bits of the first level: about FIRST_LEVEL_ROWS rows a bucket, 256 to 65,536 buckets.

    A table that matches is then one query a side; one with few differences two
    (the second level splits each differing bucket into single rows).
    """
    return min(2 * SPLIT_BITS, max(SPLIT_BITS, math.ceil(math.log2(max(rows, 1) / FIRST_LEVEL_ROWS))))


def _merged(base_rows: Iterator[list[Any]], head_rows: Iterator[list[Any]]) -> Iterator[tuple[Any, list[Any] | None, list[Any] | None]]:
    """Two streams ordered by their first value, side by side; both are read to their end."""
    b, h = next(base_rows, None), next(head_rows, None)
    while b is not None or h is not None:
        if h is None or (b is not None and b[0] < h[0]):
            yield b[0], b, None  # type: ignore[index]
            b = next(base_rows, None)
        elif b is None or h[0] < b[0]:
            yield h[0], None, h
            h = next(head_rows, None)
        else:
            yield b[0], b, h
            b, h = next(base_rows, None), next(head_rows, None)


def _grouped(rows: Iterator[list[Any]]) -> Iterator[list[Any]]:
    """Rows ordered by key hash as [hash, [rows with that hash]]: keys whose hashes collide stay together."""
    group: list[Any] | None = None
    for row in rows:
        if group is not None and group[0] == row[0]:
            group[1].append(row[1:])
            continue
        if group is not None:
            yield group
        group = [row[0], [row[1:]]]
    if group is not None:
        yield group


@dataclass
class ApartPlan:
    """What both sides of a two-database comparison hash, and how."""

    base: dict[str, Any]
    head: dict[str, Any]
    key: list[dict[str, Any]]
    columns: list[dict[str, Any]]
    tolerance: float | None
    portable: bool

    def args(self, which: str) -> dict[str, Any]:
        """The macro arguments that name side `which` ("base" or "head") and what it hashes."""
        return {"side": getattr(self, which), "which": which, "key": self.key, "columns": self.columns, "portable": self.portable}


def differing_buckets(base_side: SideSession, head_side: SideSession, p: ApartPlan, rows: int) -> tuple[int, list[int] | None, int, int]:
    """The buckets whose rows differ, narrowed level by level: (bits, buckets or None for all rows,
    how many bucket checksums were read, how many rows the larger side holds in those buckets)."""
    bits, parent_bits, parents, parent_rows = first_level_bits(rows), 0, None, rows
    checksums = 0
    while True:
        level = {"bits": bits, "parent_bits": parent_bits, "parents": parents, "tolerance": p.tolerance}
        streams = [s.stream("dot_bucket_checksums", **p.args(w), **level) for s, w in ((base_side, "base"), (head_side, "head"))]
        differing: list[int] = []
        largest, held, overflow = 0, [0, 0], False
        for bucket, b, h in _merged(*streams):
            checksums += 1
            if b is not None and h is not None and b[1:] == h[1:]:
                continue
            if len(differing) >= MAX_BUCKETS:
                overflow = True
                continue
            differing.append(int(bucket))
            sizes = (int((b or [0, 0])[1]), int((h or [0, 0])[1]))
            largest, held = max(largest, *sizes), [held[0] + sizes[0], held[1] + sizes[1]]
        if overflow:
            return parent_bits, parents, checksums, parent_rows
        if not differing or largest <= LEAF_ROWS or bits + SPLIT_BITS > HASH_BITS:
            return bits, differing, checksums, max(held)
        parent_bits, parents, parent_rows, bits = bits, differing, max(held), bits + SPLIT_BITS


def hash_ranges(rows: int) -> list[tuple[int, int] | None]:
    """Ranges of the key hash to read `rows` rows in, each about RANGE_ROWS or fewer; [None] for one read."""
    parts = 1
    while rows / parts > RANGE_ROWS and parts < 1 << 16:
        parts *= 2
    if parts == 1:
        return [None]
    width = (1 << HASH_BITS) // parts
    return [(i * width, (i + 1) * width if i < parts - 1 else 1 << HASH_BITS) for i in range(parts)]


def _rows_in_ranges(
    side: SideSession, p: ApartPlan, which: str, args: dict[str, Any], ranges: list[tuple[int, int] | None]
) -> Iterator[list[Any]]:
    """One side's differing rows in key-hash order, read range after range (each query starts when the last ends)."""
    for hash_range in ranges:
        yield from side.stream("dot_bucket_rows", **p.args(which), **args, hash_range=hash_range)


def _same(kind: str, a: Any, b: Any, tolerance: float | None) -> bool:
    """Two normalised texts, as the same-database comparison would judge their values."""
    if a == b:
        return True
    if a is None or b is None or kind != "float" or not tolerance:
        return False
    x, y = float(a), float(b)
    return abs(x - y) <= tolerance * max(abs(x), abs(y))


def _key_order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, v if v is not None else "") for v in key)


def compare_values_apart(base_side: SideSession, head_side: SideSession, p: ApartPlan, sample: int, rows: dict[str, int]) -> dict[str, Any]:
    """Level d when the sides live in different databases: only differing buckets' rows leave either side.

    The rows are streamed in key-hash order from both sides, a range of key hashes at a time,
    and counted as they pass; only the sample (the first `sample` keys of each kind, in key
    order) is kept.
    """
    bits, buckets, checksums, held = differing_buckets(base_side, head_side, p, max(rows["base"], rows["head"]))
    names = [s["head"] for s in p.columns]
    kinds = [s["kind"] for s in p.columns]
    width = len(p.key)
    counts = {"added": 0, "removed": 0, "changed": 0}
    per_column = dict.fromkeys(names, 0)
    kept: dict[str, list[tuple[Any, ...]]] = {"added": [], "changed": [], "removed": []}
    transferred = 0

    def keep(kind: str, entry: tuple[Any, ...]) -> None:
        kept[kind].append(entry)
        if len(kept[kind]) > 2 * sample:
            kept[kind] = sorted(kept[kind], key=lambda e: _key_order(e[0]))[:sample]

    if buckets != []:
        args = {"bits": bits, "buckets": buckets}
        ranges = hash_ranges(held)
        streams = [_grouped(_rows_in_ranges(s, p, w, args, ranges)) for s, w in ((base_side, "base"), (head_side, "head"))]
        for _, b_group, h_group in _merged(*streams):
            b = {tuple(r[:width]): r[width:] for r in (b_group or [None, []])[1]}
            h = {tuple(r[:width]): r[width:] for r in (h_group or [None, []])[1]}
            transferred += len(b) + len(h)
            for k in b.keys() | h.keys():
                if k not in b:
                    counts["added"] += 1
                    keep("added", (k, None, h[k], []))
                elif k not in h:
                    counts["removed"] += 1
                    keep("removed", (k, b[k], None, []))
                else:
                    differs = [n for n, kind, bv, hv in zip(names, kinds, b[k], h[k], strict=False) if not _same(kind, bv, hv, p.tolerance)]
                    for n in differs:
                        per_column[n] += 1
                    if differs:
                        counts["changed"] += 1
                        keep("changed", (k, b[k], h[k], differs))
    samples = []
    for kind in ("added", "changed", "removed"):
        for k, bv, hv, differs in sorted(kept[kind], key=lambda e: _key_order(e[0]))[:sample]:
            samples.append(sample_entry(kind, [s["head"] for s in p.key], names, list(k), bv, hv, differs))
    matched = rows["base"] - counts["removed"]
    return {
        **counts,
        "unchanged": matched - counts["changed"],
        "columns": per_column,
        "sample": samples,
        "transfer": {"rows": transferred, "buckets": len(buckets) if buckets is not None else None, "bits": bits, "checksums": checksums},
    }


def compare_node_apart(
    base_side: SideSession,
    head_side: SideSession,
    *,
    unique_id: str,
    label: str,
    base: dict[str, Any] | None,
    head: dict[str, Any] | None,
    key: list[str] | None,
    sample: int,
    adapter_type: str = "",
    tolerance: float | None = None,
    portable: bool = False,
) -> dict[str, Any]:
    """`compare_node` for two databases: each side's macros run in that side's own session."""

    def call(macro: str, **kwargs: Any) -> Any:
        # Levels b and c are per side: send each to the side whose relation it names.
        if macro == "dot_value_diff":
            counts = {"added": 0, "removed": 0, "changed": 0, "unchanged": 0, "per_column": [0] * len(kwargs["columns"])}
            return {**counts, "rows": [], "max_multiplicity": 0}
        return (base_side if kwargs.get("side") is base else head_side).call(macro, **kwargs)

    out = compare_node(
        call,
        unique_id=unique_id,
        label=label,
        base=base,
        head=head,
        key=key,
        sample=0,
        adapter_type=adapter_type,
        exact_key_check=True,
        tolerance=tolerance,
    )
    if out["values"] is None:
        return out
    assert base is not None and head is not None  # values are compared only for a node on both sides
    compared = out.pop("compare")
    p = ApartPlan(base, head, compared["key"], compared["columns"], tolerance, portable)
    values = compare_values_apart(base_side, head_side, p, sample, out["rows"])
    values["columns"] = {shown_name(c, adapter_type): n for c, n in values["columns"].items()}
    values["key"] = out["values"]["key"]
    out["values"] = values
    return out
