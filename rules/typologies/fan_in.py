"""Rule ``fan-in``: many senders consolidate into a watched or tainted address, then it pays out."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context, within_window
from rules.typologies.common import TypologyRule, endpoint_findings


@register
class FanIn(TypologyRule):
    """An outflow after ``min_senders`` distinct senders paid the address within the window.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "transaction patterns"): funds
    from many sources pooled into one address and then moved on (consolidation before
    cash-out).

    Semantics, on an outgoing transfer ``t`` of a watched or tainted address ``A``: count the
    distinct senders (other than ``A``) of ``A``'s inflows with ``t.block_time - block_time <=
    window_seconds`` (closed window) that arrived in a block *after* ``A``'s previous retained
    outflow. The rule fires when that count is at least ``min_senders``, so only the first
    outflow after a consolidation fires; a further outflow in the same block as that first one
    does not. An inflow in the same block as the previous outflow is not counted (order within
    a block is not kept in the state).
    """

    name = "fan-in"
    severity = "medium"
    params_schema = {"min_senders": int, "window_seconds": int}
    params_defaults = {"min_senders": 5, "window_seconds": 3600}

    @property
    def horizon_seconds(self) -> int:
        """The consolidation window."""
        return int(self.params["window_seconds"])

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for the consolidating address's cases on its first outflow afterwards."""
        ctx = as_rule_context(context)
        activity = ctx.from_activity
        if activity is None:
            return []
        address, now = transfer.from_address, transfer.block_time
        after = max((m.block_number for m in activity.outflows), default=-1)
        senders = {m.counterparty for m in activity.inflows
                   if m.block_number > after and m.counterparty != address
                   and within_window(now, m.block_time, self.params["window_seconds"])}
        if len(senders) < self.params["min_senders"]:
            return []
        return endpoint_findings(self, transfer, ctx, ("out",),
                                 f"fan-in: {len(senders)} senders consolidated within "
                                 f"{self.params['window_seconds']} s, then an outflow")
