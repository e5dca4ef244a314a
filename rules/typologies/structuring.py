"""Rule ``structuring``: repeated amounts just below a threshold, sent or received."""

from __future__ import annotations

from monitor.records import Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import Side, as_rule_context, asset_key, within_window
from rules.typologies.common import (
    BPS,
    TypologyRule,
    endpoint_findings,
    threshold_for,
)
from rules.typologies.large_value import USDT


@register
class Structuring(TypologyRule):
    """``min_count`` transfers within the window, each just below the asset's threshold.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "size and frequency"):
    structuring amounts just under record-keeping or reporting thresholds.

    A transfer is *near* the threshold ``T`` of its asset when
    ``lower_bps / 10000 * T <= amount < T`` (at ``T`` it is large-value, not structuring).
    For the sender (its outflows) and, separately, for the receiver (its inflows) of a near
    transfer ``t`` touching a watched or tainted endpoint: count the near movements of the same
    asset with ``t.block_time - block_time <= window_seconds`` (closed window) plus ``t``; fire
    on the transfer that makes the count reach ``min_count``.
    """

    name = "structuring"
    severity = "medium"
    params_schema = {"thresholds": dict, "lower_bps": int, "min_count": int,
                     "window_seconds": int}
    params_defaults = {"thresholds": {"native": 10**19, USDT: 10**10}, "lower_bps": 9000,
                       "min_count": 3, "window_seconds": 86_400}

    def check_params(self) -> None:
        """Thresholds positive; ``lower_bps`` in 1..9999; the others positive."""
        super().check_params()
        self.check_thresholds("thresholds")
        self.require("lower_bps", self.params["lower_bps"] < BPS, f"must be below {BPS}")

    @property
    def horizon_seconds(self) -> int:
        """The counting window."""
        return int(self.params["window_seconds"])

    def _near(self, amount: int, limit: int) -> bool:
        return amount < limit and amount * BPS >= self.params["lower_bps"] * limit

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for each endpoint whose near-threshold count reaches ``min_count`` now."""
        limit = threshold_for(self.params["thresholds"], transfer)
        if limit is None or not self._near(transfer.amount, limit):
            return []
        ctx = as_rule_context(context)
        key, now = asset_key(transfer.asset), transfer.block_time
        sides: list[Side] = []
        for side in ("out", "in"):
            activity = ctx.activity(side)
            movements = activity.movements(side) if activity else ()
            count = 1 + sum(1 for m in movements
                            if m.asset_key == key and self._near(m.amount, limit)
                            and within_window(now, m.block_time, self.params["window_seconds"]))
            if count == self.params["min_count"]:
                sides.append(side)
        return endpoint_findings(self, transfer, ctx, sides,
                                 f"structuring: {self.params['min_count']} transfers just below "
                                 f"{limit} base units within {self.params['window_seconds']} s")
