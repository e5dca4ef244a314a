"""Rule ``fan-out``: a watched or tainted address pays many new counterparties in a short time."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context, within_window
from rules.typologies.common import DAY_SECONDS, TypologyRule, endpoint_findings


@register
class FanOut(TypologyRule):
    """The sender reaches ``min_counterparties`` distinct new receivers within the window.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "transaction patterns"): funds
    split and sent to many addresses (layering by dispersion, "smurfing" outwards).

    Semantics, on an outgoing transfer ``t`` of a watched or tainted sender: the *window* is
    the outflows with ``t.block_time - m.block_time <= window_seconds`` (closed: exactly
    ``window_seconds`` earlier is in, one second more is out), plus ``t`` itself. A receiver is
    *new* when the sender paid it nothing in the ``novelty_seconds`` of block time before the
    window. The rule fires on the transfer that makes the number of distinct new receivers in
    the window reach ``min_counterparties`` (it does not fire again while the count stays at or
    above it). Self-transfers are ignored. Assets are not distinguished.
    """

    name = "fan-out"
    severity = "medium"
    params_schema = {"min_counterparties": int, "window_seconds": int, "novelty_seconds": int}
    params_defaults = {"min_counterparties": 5, "window_seconds": 3600,
                       "novelty_seconds": 30 * DAY_SECONDS}

    @property
    def horizon_seconds(self) -> int:
        """The window plus the look-back that decides whether a receiver is new."""
        return int(self.params["window_seconds"] + self.params["novelty_seconds"])

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for the sender's cases on the transfer that completes the fan-out."""
        if transfer.from_address == transfer.to_address:
            return []
        ctx = as_rule_context(context)
        now, window = transfer.block_time, self.params["window_seconds"]
        outflows = ctx.from_activity.outflows if ctx.from_activity else ()
        older: set[str] = set()
        recent: set[str] = set()
        for m in outflows:
            if within_window(now, m.block_time, window):
                recent.add(m.counterparty)
            elif within_window(now, m.block_time, window + self.params["novelty_seconds"]):
                older.add(m.counterparty)
        recent.discard(transfer.from_address)
        before = recent - older
        if transfer.to_address in older or transfer.to_address in before:
            return []
        if len(before) + 1 != self.params["min_counterparties"]:
            return []
        return endpoint_findings(self, transfer, ctx, ("out",),
                                 f"fan-out: {len(before) + 1} new receivers within "
                                 f"{window} s of block time")
