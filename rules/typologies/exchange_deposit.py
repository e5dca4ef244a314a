"""Rule ``exchange-deposit``: a case's funds arrive at an exchange deposit address."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context
from rules.typologies.common import LabelRule


@register
class ExchangeDeposit(LabelRule):
    """The receiver carries the ``label`` (default ``exchange-deposit``); the sender is a case's.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "senders or recipients"): proceeds
    reaching a virtual asset service provider, the point where they can be frozen and the
    account holder identified. One finding per case of the sender (watched, or tainted in any
    asset). Its evidence holds the full path from the case's origin to the exchange, this
    transfer last: ``{"case_id", "origin", "hops", "tainted_amount", "tainted_asset",
    "path": [[tx_hash, from, to, amount, block_number], ...]}`` with amounts as decimal
    strings.
    """

    name = "exchange-deposit"
    severity = "critical"
    params_schema = {"label": str}
    params_defaults = {"label": "exchange-deposit"}

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings with the full path when a case's funds reach an exchange deposit address."""
        ctx = as_rule_context(context)
        if self.params["label"] not in ctx.to_labels:
            return []
        return self.sender_findings(transfer, ctx, "case funds arrived at an exchange deposit "
                                                   "address")
