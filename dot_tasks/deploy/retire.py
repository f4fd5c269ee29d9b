"""`retire`: take a context out of red/green, back to plain dbt."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timezone

from ..builds import Workspace, warehouse_locks
from ..locks import hold
from ..registry import who
from .notes import remember
from .plan import PromotionRefused, RetirePlan
from .refusals import SwitchRequest, refusal_error
from .results import RetireResult
from .warehouse import any_connection, call_macro, live_lock


def retire(ws: Workspace, context: str, progress: Callable[[str], None], verbose: bool = False) -> RetireResult:
    """Take a context out of red/green: drop the views promotions made, in one transaction, and record it.

    Everything else in the live schemas stays (the user's views, dbt's own
    relations, the history). Afterwards nothing is live for the context, so
    `clean` protects nothing for it, and a plain `dbt build` owns the schema again.
    """
    conn = any_connection(ws, context)
    plan = RetirePlan(
        live_schema=conn.live_schema,
        context=context,
        promoted_by=who(ws),
        promoted_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
    )
    request = SwitchRequest("", context, "retire", verbose=verbose)
    with ExitStack() as locks:
        fds = [locks.enter_context(hold(live_lock(ws, conn), f"the live schema {conn.live_schema}", ws.settings.lock_timeout))]
        fds.extend(locks.enter_context(warehouse_locks(ws, [conn.output])))
        progress(f"retire: dropping the views promotions made in {conn.live_schema}")
        value = call_macro(ws, conn.target, "dot_retire", {"plan": plan.to_dict()}, tuple(fds), verbose=verbose) or {}
        refusal = value.get("refusal")
        if refusal == "nothing live":
            raise PromotionRefused(f"nothing is live in {conn.live_schema} for {context}: there is nothing to retire")
        if refusal:
            raise refusal_error(refusal, value, request, conn.live_schema, transactional=conn.transactional)
        remember(ws, context, None)
    return RetireResult(
        context=context,
        live_schema=conn.live_schema,
        retired=value["retired"],
        short=value["short"],
        dropped=tuple(value.get("dropped", [])),
        transaction=value.get("transaction"),
    )
