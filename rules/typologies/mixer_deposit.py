"""Rule ``mixer-deposit``: a watched or tainted address pays into a mixer."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context
from rules.typologies.common import LabelRule


@register
class MixerDeposit(LabelRule):
    """The receiver carries the ``label`` (default ``mixer``) and the sender is a case's.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "anonymity"): funds sent to a
    mixing or tumbling service, breaking the on-chain trail. One finding per case of the sender
    (watched, or tainted in any asset), with the path from the case's origin as evidence.
    """

    name = "mixer-deposit"
    severity = "high"
    params_schema = {"label": str}
    params_defaults = {"label": "mixer"}

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for the sender's cases when the receiver is a labelled mixer."""
        ctx = as_rule_context(context)
        if self.params["label"] not in ctx.to_labels:
            return []
        return self.sender_findings(transfer, ctx, "case funds deposited into a mixer")
