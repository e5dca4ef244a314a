"""Rule ``dormancy-reactivation``: a long-idle watched or tainted address moves funds again."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context
from rules.typologies.common import DAY_SECONDS, TypologyRule, endpoint_findings


@register
class DormancyReactivation(TypologyRule):
    """An outgoing transfer after at least ``min_idle_days`` of block time without activity.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "transaction patterns"): a
    dormant wallet suddenly active again; for seized or stolen funds, the thief moving the
    proceeds once attention has faded.

    Idle time is ``t.block_time - last_active`` of the sender before ``t`` (activity in either
    direction resets it). Boundary: exactly ``min_idle_days * 86400`` seconds fires, one second
    less does not. An address never seen before has no idle time and does not fire.
    """

    name = "dormancy-reactivation"
    severity = "high"
    params_schema = {"min_idle_days": int}
    params_defaults = {"min_idle_days": 180}

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for the sender's cases when it was idle long enough."""
        ctx = as_rule_context(context)
        activity = ctx.from_activity
        if activity is None or activity.last_active is None:
            return []
        idle = transfer.block_time - activity.last_active
        if idle < self.params["min_idle_days"] * DAY_SECONDS:
            return []
        return endpoint_findings(self, transfer, ctx, ("out",),
                                 f"dormant address moved funds after {idle // DAY_SECONDS} days "
                                 f"idle")
