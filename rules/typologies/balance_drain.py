"""Rule ``balance-drain``: (nearly) all of a watched or tainted address's balance leaves."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context, asset_key, within_window
from rules.typologies.common import BPS, TypologyRule, endpoint_findings


@register
class BalanceDrain(TypologyRule):
    """Outflows within the window take at least ``min_drain_bps`` of the known balance.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "transaction patterns"): an
    account emptied at once or in a quick series, typical right after a theft or before a
    seizure takes effect.

    Semantics, on an outgoing transfer ``t`` of asset ``X`` by a watched or tainted address:
    ``B`` is the sender's known balance of ``X`` before ``t`` (observed net flow, floored at
    zero) and ``O`` the sum of its retained outflows of ``X`` with ``t.block_time - block_time
    <= window_seconds`` (closed window). The balance before the drain began is ``B + O``; the
    rule fires when ``t`` makes the drained share ``(O + t.amount) / (B + O)`` reach
    ``min_drain_bps / 10000`` (it was below before ``t``). With ``B == 0`` (nothing known) it
    does not fire.
    """

    name = "balance-drain"
    severity = "high"
    params_schema = {"min_drain_bps": int, "window_seconds": int}
    params_defaults = {"min_drain_bps": 9500, "window_seconds": 86_400}

    @property
    def horizon_seconds(self) -> int:
        """The draining window."""
        return int(self.params["window_seconds"])

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for the sender's cases on the outflow that completes the drain."""
        ctx = as_rule_context(context)
        activity = ctx.from_activity
        if activity is None or transfer.from_address == transfer.to_address:
            return []
        key = asset_key(transfer.asset)
        balance = activity.known_balance(key)
        if balance <= 0:
            return []
        drained = sum(m.amount for m in activity.outflows if m.asset_key == key
                      and within_window(transfer.block_time, m.block_time,
                                        self.params["window_seconds"]))
        start = balance + drained
        need = self.params["min_drain_bps"] * start
        if not drained * BPS < need <= (drained + transfer.amount) * BPS:
            return []
        return endpoint_findings(self, transfer, ctx, ("out",),
                                 f"balance drained: {drained + transfer.amount} of {start} base "
                                 f"units within {self.params['window_seconds']} s")
