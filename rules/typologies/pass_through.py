"""Rule ``pass-through``: most of an inflow leaves a watched or tainted address soon after."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import Movement, as_rule_context, asset_key, within_window
from rules.typologies.common import BPS, TypologyRule, endpoint_findings


@register
class PassThrough(TypologyRule):
    """At least ``min_forward_bps`` of one inflow is forwarded within the window.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "transaction patterns"): funds
    received and sent on immediately, the address serving only as a pass-through.

    Semantics, on an outgoing transfer ``t`` of a watched or tainted address ``A``: for each
    retained inflow ``I`` of the same asset with ``t.block_time - I.block_time <=
    window_seconds`` (closed window), the forwarded amount is the sum of ``A``'s outflows of
    that asset in ``I``'s block or later, plus ``t``. The rule fires when, for some inflow,
    ``t`` makes the forwarded amount cross ``min_forward_bps / 10000 * I.amount`` (it was below
    before ``t``, at or above with it). Outflows in the same block as ``I`` count as after it.
    """

    name = "pass-through"
    severity = "medium"
    params_schema = {"min_forward_bps": int, "window_seconds": int}
    params_defaults = {"min_forward_bps": 9000, "window_seconds": 86_400}

    @property
    def horizon_seconds(self) -> int:
        """The forwarding window."""
        return int(self.params["window_seconds"])

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for the forwarding address's cases when ``t`` completes a pass-through."""
        ctx = as_rule_context(context)
        activity = ctx.from_activity
        if activity is None or transfer.from_address == transfer.to_address:
            return []
        key, now, bps = asset_key(transfer.asset), transfer.block_time, self.params[
            "min_forward_bps"]
        crossed: Movement | None = None
        for inflow in activity.inflows:
            if inflow.asset_key != key or inflow.amount <= 0 or not within_window(
                    now, inflow.block_time, self.params["window_seconds"]):
                continue
            before = sum(m.amount for m in activity.outflows
                         if m.asset_key == key and m.block_number >= inflow.block_number)
            need = bps * inflow.amount
            if before * BPS < need <= (before + transfer.amount) * BPS:
                crossed = inflow  # the latest crossing inflow names the finding
        if crossed is None:
            return []
        return endpoint_findings(self, transfer, ctx, ("out",),
                                 f"pass-through: >= {bps / 100:g} % of {crossed.amount} received "
                                 f"in {crossed.tx_hash} forwarded within "
                                 f"{self.params['window_seconds']} s")
