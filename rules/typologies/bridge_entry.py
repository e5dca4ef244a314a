"""Rule ``bridge-entry``: a case's funds enter a cross-chain bridge."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context
from rules.typologies.common import LabelRule


@register
class BridgeEntry(LabelRule):
    """The receiver carries the ``label`` (default ``bridge``) and the sender is a case's.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "anonymity"; Targeted Update
    2023 on chain-hopping): funds moved to another chain through a bridge, where the trail
    must be picked up again. One finding per case of the sender (watched, or tainted in any
    asset), with the path from the case's origin as evidence.
    """

    name = "bridge-entry"
    severity = "high"
    params_schema = {"label": str}
    params_defaults = {"label": "bridge"}

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for the sender's cases when the receiver is a labelled bridge."""
        ctx = as_rule_context(context)
        if self.params["label"] not in ctx.to_labels:
            return []
        return self.sender_findings(transfer, ctx, "case funds sent to a bridge")
