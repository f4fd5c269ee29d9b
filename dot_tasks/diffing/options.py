"""What a diff is asked for: the two sides' specs, `--key` flags, and the options of one diff."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import DotError
from ..naming import parse_spec


class DiffError(DotError):
    """A diff that cannot be made: a missing build, a bad --key, a side that cannot be read."""


def parse_side(spec: str) -> tuple[str | None, str]:
    """`CTX@REF`, `@REF` or a bare ref (the default context), as (context or None, ref)."""
    if "@" not in spec:
        return None, spec
    try:
        return parse_spec(spec)
    except DotError:
        # A diff side may also be a bare ref, so its message names that form too.
        raise DiffError(f"{spec!r} is not of the form CTX@REF, @REF or REF (e.g. prod@main, @HEAD~1, main)") from None


def parse_keys(items: Iterable[str]) -> dict[str, list[str]]:
    """`--key MODEL=COL[,COL]` flags as {model: [columns]}."""
    keys: dict[str, list[str]] = {}
    for item in items:
        model, sep, columns = item.partition("=")
        names = [c.strip() for c in columns.split(",") if c.strip()]
        if not sep or not model.strip() or not names:
            raise DiffError(f"--key {item!r} is not MODEL=COL[,COL]: e.g. --key orders=order_id or --key order_lines=order_id,line_no")
        keys[model.strip()] = names
    return keys


@dataclass(frozen=True)
class DiffOptions:
    """One diff's sides, selection, keys and tolerances, as `dot-tasks diff` takes them."""

    #: CTX@REF of each side; base None means the head build's `deferred_to`.
    base: str | None = None
    head: str = "HEAD"
    select: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    keys: Mapping[str, list[str]] = field(default_factory=dict)
    sample: int = 5
    #: Floats within this relative difference of each other count as equal (0: exactly equal).
    float_tolerance: float = 0.0
    #: Build a side that has no successful build, as `run` would.
    build: bool = True
    progress: Callable[[str], None] = lambda message: None
