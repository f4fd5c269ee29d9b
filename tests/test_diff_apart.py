"""The two-database comparison's narrowing and counting, against sides that compute what the macros do.

The macros' SQL runs against real warehouses in test_diff_values.py and test_diff.py; here the
same contract (bucket checksums in bucket order, rows in key-hash order) is served from Python
lists, so the narrowing can be driven where a real test cannot cheaply go: thousands of
differing buckets, keys whose hashes collide, a sample far smaller than the differences.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from dot_tasks import diffing


def spread(key: str) -> int:
    return int(hashlib.md5(key.encode()).hexdigest()[:15], 16)


class FakeSide:
    """A side's rows, answering dot_bucket_checksums and dot_bucket_rows as the macros do."""

    def __init__(self, rows: dict[str, tuple[Any, ...]], key_hash: Callable[[str], int]) -> None:
        self.rows = [(key_hash(k), k, values) for k, values in rows.items()]
        self.streamed = 0
        self.row_reads: list[int] = []  # rows returned by each dot_bucket_rows query

    def stream(self, macro: str, **args: Any) -> Iterator[list[Any]]:
        if macro == "dot_bucket_checksums":
            mask, parent_mask = 2 ** args["bits"], 2 ** args["parent_bits"]
            buckets: dict[int, list[int]] = {}
            for kh, k, values in self.rows:
                if args["parents"] is None or kh % parent_mask in args["parents"]:
                    total = buckets.setdefault(kh % mask, [0, 0])
                    total[0] += 1
                    total[1] += spread(repr((k, values)))
            out = [[b, n, s] for b, (n, s) in sorted(buckets.items())]
        else:
            mask, low, high = 2 ** args["bits"], *(args.get("hash_range") or (0, 2**60))
            out = [
                [kh, k, *values]
                for kh, k, values in sorted(self.rows, key=lambda r: r[0])
                if (args["buckets"] is None or kh % mask in args["buckets"]) and low <= kh < high
            ]
            self.row_reads.append(len(out))
        self.streamed += len(out)
        return iter(out)


def truth(base: dict[str, tuple[Any, ...]], head: dict[str, tuple[Any, ...]], tolerance: float | None) -> dict:
    changed = [
        k
        for k in base.keys() & head.keys()
        if any(not diffing.apart._same("float", b, h, tolerance) for b, h in zip(base[k], head[k], strict=False))
    ]
    return {
        "added": len(head.keys() - base.keys()),
        "removed": len(base.keys() - head.keys()),
        "changed": len(changed),
        "unchanged": len(base.keys() & head.keys()) - len(changed),
    }


def compare(
    base: dict, head: dict, key_hash: Callable[[str], int], tolerance: float | None = None, sample: int = 3
) -> tuple[dict, FakeSide, FakeSide]:
    b, h = FakeSide(base, key_hash), FakeSide(head, key_hash)
    spec = [{"base": "v", "head": "v", "kind": "float", "cast": None}]
    plan = diffing.ApartPlan({}, {}, [{"base": "id", "head": "id", "kind": "text", "cast": None}], spec, tolerance, False)
    values = diffing.compare_values_apart(b, h, plan, sample, {"base": len(base), "head": len(head)})
    return values, b, h


def test_many_differing_buckets_fall_back_to_their_parents_and_count_exactly(monkeypatch) -> None:
    with monkeypatch.context() as mp:
        mp.setattr(diffing.apart, "MAX_BUCKETS", 100)
        everything, _, _ = compare({f"{i}": ("1",) for i in range(5_000)}, {f"{i}": ("2",) for i in range(5_000)}, spread)
    # More first-level buckets differ than one query may name: the whole table is read, unfiltered.
    assert everything["changed"] == 5_000 and everything["transfer"]["buckets"] is None
    base = {f"{i:06d}": (str(i / 7),) for i in range(20_000)}
    head = {k: ((str(float(v[0]) + 1),) if int(k) % 3 == 0 else v) for k, v in base.items() if int(k) % 50}
    head.update({f"9{i:05d}": ("1",) for i in range(40)})
    values, b, h = compare(base, head, spread)
    assert {k: values[k] for k in ("added", "removed", "changed", "unchanged")} == truth(base, head, None)
    # Every first-level bucket differs, and more second-level ones than one query may name: the rows of
    # the first level's buckets (here all of them) are read once, in one stream per side.
    first = diffing.first_level_bits(len(base))
    assert (values["transfer"]["bits"], values["transfer"]["buckets"]) == (first, 2**first)
    assert values["transfer"]["rows"] == len(base) + len(head)
    # The sample is the first keys of each kind, in key order, however many differ.
    assert [s["key"]["id"] for s in values["sample"] if s["kind"] == "changed"] == ["000003", "000006", "000009"]
    assert [s["key"]["id"] for s in values["sample"] if s["kind"] == "added"] == ["900000", "900001", "900002"]
    assert values["columns"] == {"v": values["changed"]}


def test_few_differences_narrow_to_the_differing_rows() -> None:
    base = {f"{i:06d}": (str(i),) for i in range(10_000)}
    head = {**base, "000100": ("-1",), "002000": ("-2",)}
    values, b, h = compare(base, head, spread)
    assert (values["changed"], values["unchanged"]) == (2, 9_998)
    assert values["transfer"]["rows"] <= 2 * 2 * diffing.LEAF_ROWS
    assert values["transfer"]["bits"] > diffing.first_level_bits(10_000)


def test_colliding_key_hashes_are_matched_by_key_and_tolerance_applies() -> None:
    base = {f"k{i}": (str(1.0 + i),) for i in range(40)}
    head = {k: (str(float(v[0]) * (1 + 1e-9)),) if k != "k5" else ("99",) for k, v in base.items()}
    head["k40"] = (None,)
    del head["k7"]
    values, _, _ = compare(base, head, lambda k: len(k) % 2, tolerance=1e-6)  # two hashes for 41 keys
    assert (
        {k: values[k] for k in ("added", "removed", "changed", "unchanged")}
        == truth(base, head, 1e-6)
        == {"added": 1, "removed": 1, "changed": 1, "unchanged": 38}
    )
    exact, _, _ = compare(base, head, spread)
    assert exact["changed"] == 39


def test_a_large_set_of_differing_rows_is_read_in_ranges_of_the_key_hash(monkeypatch) -> None:
    """Whatever share differs, no one read of rows (what the warehouse sorts) is much over RANGE_ROWS."""
    monkeypatch.setattr(diffing.apart, "RANGE_ROWS", 40)
    base = {f"k{i}": (float(i),) for i in range(2000)}
    head = {f"k{i}": (float(i) + (1 if i % 2 else 0),) for i in range(100, 2100)}
    values, b, h = compare(base, head, spread)
    assert {k: values[k] for k in ("added", "removed", "changed", "unchanged")} == truth(base, head, None)
    for side in (b, h):
        assert len(side.row_reads) >= 32 and max(side.row_reads) <= 3 * 40, side.row_reads
    assert values["transfer"]["rows"] == sum(b.row_reads) + sum(h.row_reads)
    assert diffing.apart.hash_ranges(10) == [None]
