"""What one switch asks for, and what the warehouse's refusals of it tell the user to do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import DotError
from .plan import BuildGone, PromotionRefused, listing


@dataclass(frozen=True)
class SwitchRequest:
    """One promote, rollback or retire of a context, with the flags that change what it may do."""

    commit: str
    context: str
    #: 'promote', 'rollback' or 'retire'.
    action: str
    allow_untested: bool = False
    replace_existing: bool = False
    fail_on_warn: bool = False
    #: 'previous' (must be the live row's previous commit) or 'was live' (must be in the history).
    rollback: str | None = None
    verbose: bool = False

    @property
    def refusing(self) -> str:
        """How a refusal begins, in the words of the command that was refused."""
        if self.action == "retire":
            return f"refusing to retire {self.context}"
        if self.action == "rollback":
            return f"refusing to roll {self.context} back to {self.commit[:12]}"
        return f"refusing to promote {self.commit[:12]} to {self.context}"

    @property
    def again(self) -> str:
        """How a refusal ends: the command to run once the user has cleared the way."""
        return {"rollback": "roll back again", "retire": "retire again"}.get(self.action, "promote again")


class Moved(PromotionRefused):
    """What was live changed since this machine last looked."""


def gone_message(commit: str, context: str) -> str:
    """Why a rollback cannot return to a cleaned build, and the two commands that bring it back."""
    return (
        f"the build of {commit[:12]} for {context} is not here any more (cleaned): `dot-tasks run "
        f"{context}@{commit}` builds it again, then `dot-tasks promote {context}@{commit}` brings it back"
    )


def refusal_error(kind: str, value: Mapping[str, Any], request: SwitchRequest, live_schema: str, transactional: bool = True) -> DotError:
    """The error for a refusal the `dot_promote` or `dot_retire` macro answered (nothing was changed).

    `transactional` is False where the warehouse has no transactional DDL
    (Spark): what `--replace-existing` would do is then said as it is.
    """
    names = value.get("relations") or []
    if kind == "missing":
        if request.action == "rollback":
            return BuildGone(gone_message(request.commit, request.context))
        return PromotionRefused(
            f"{request.refusing}: the build's relations are gone from the warehouse "
            f"({listing([str(n) for n in names])}): run `dot-tasks run {request.context}@{request.commit[:12]}`, "
            "then promote again"
        )
    if kind == "not ours":
        return PromotionRefused(
            f"{request.refusing}: {len(names)} relation(s) in the live schema were not made by a promotion and "
            f"would be replaced: {listing([f'{n} ({k})' for n, k in names], 10)}. Nothing was changed; pass "
            f"--replace-existing to replace them ({_how_replaced(transactional)})"
        )
    if kind == "dependants":
        return PromotionRefused(
            f"{request.refusing}: these views depend on live relations the switch must "
            f"drop and recreate: {listing([f'{d[0]}.{d[1]} (on {d[2]}.{d[3]})' for d in names], 10)}. Nothing was "
            f"changed; drop them (dot-tasks never uses CASCADE) and {request.again}"
        )
    if kind == "broken":
        return PromotionRefused(
            f"{request.refusing}: these views of the live schemas, which dot-tasks did not make, would no longer "
            f"work after the switch: {listing([str(n) for n in names], 10)}. Nothing was changed; change or drop "
            f"them and {request.again}"
        )
    return _history_refusal(kind, value, request, live_schema)


def _how_replaced(transactional: bool) -> str:
    """What `--replace-existing` does to the relations it replaces, in this warehouse's terms."""
    if transactional:
        return "in dependency order, in the same transaction"
    return (
        "with no transaction: each is dropped, then its view made, one statement at a time, so a reader in "
        "between finds it missing; and with no dependency check, so a view of yours on one of them breaks"
    )


def _history_refusal(kind: str, value: Mapping[str, Any], request: SwitchRequest, live_schema: str) -> DotError:
    """The refusals that come from the history: what is live, or was, is not what the request expects."""
    if kind == "moved":
        return Moved(
            f"{live_schema} changed since this machine last looked (now live: {str(value.get('live') or 'nothing')[:12]}): run it again"
        )
    if kind == "never live":
        return PromotionRefused(
            f"{request.refusing}: {request.commit[:12]} was never live in {live_schema}: --to takes a commit that was "
            f"(see `dot-tasks live {request.context}`)"
        )
    if kind == "already live":
        return PromotionRefused(f"{request.refusing}: {request.commit[:12]} is already live in {live_schema}")
    return PromotionRefused(f"{request.refusing}: the warehouse refused ({kind})")  # pragma: no cover
