"""Rule ``mixer-withdrawal-to-fresh``: a watched mixer pays out to a never-seen address."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context, is_fresh
from rules.typologies.common import LabelRule, endpoint_findings


@register
class MixerWithdrawalToFresh(LabelRule):
    """The sender carries the ``label`` (default ``mixer``) and the receiver is fresh.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "anonymity"): funds withdrawn
    from a mixer to new addresses with no history. A withdrawal cannot be linked to a deposit
    on-chain, so this rule fires when the mixer (pool) address is itself watched or tainted for
    a case (investigators add the pool their suspect used) or the receiver is watched. Fresh
    means chainwatch has observed no activity of the receiver before this transfer (the agent
    must hand in a non-empty activity for addresses it knows to have history).
    """

    name = "mixer-withdrawal-to-fresh"
    severity = "medium"
    params_schema = {"label": str}
    params_defaults = {"label": "mixer"}

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for the cases of either end of a mixer withdrawal to a fresh address."""
        ctx = as_rule_context(context)
        if self.params["label"] not in ctx.from_labels or not is_fresh(ctx.to_activity):
            return []
        if transfer.from_address == transfer.to_address:
            return []
        return endpoint_findings(self, transfer, ctx, ("out", "in"),
                                 "mixer withdrawal to a fresh address")
