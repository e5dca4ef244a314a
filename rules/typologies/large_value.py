"""Rule ``large-value``: a watched or tainted address sends or receives a large amount."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context
from rules.typologies.common import TypologyRule, endpoint_findings, threshold_for

USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"


@register
class LargeValue(TypologyRule):
    """Amount at or above the asset's threshold, touching a watched or tainted address.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "size and frequency"):
    transactions of a large value, or of a value out of line with the customer's profile.
    Boundary: ``amount >= threshold`` fires, ``threshold - 1`` does not. Thresholds map an
    asset key (``native`` or a lower-case token contract) or ``chain:asset key`` (which wins)
    to base units; an asset without a threshold never fires. Stateless.
    """

    name = "large-value"
    severity = "medium"
    params_schema = {"thresholds": dict}
    params_defaults = {"thresholds": {"native": 10**19, USDT: 10**11}}

    def check_params(self) -> None:
        """Every threshold is a positive integer keyed by an asset key."""
        self.check_thresholds("thresholds")

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """One finding per case on either end when the amount reaches the threshold."""
        limit = threshold_for(self.params["thresholds"], transfer)
        if limit is None or transfer.amount < limit:
            return []
        return endpoint_findings(self, transfer, as_rule_context(context), ("out", "in"),
                                 f"large transfer: {transfer.amount} >= {limit} base units")
