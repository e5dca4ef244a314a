"""Turn a block's transfers into alerts: watchlist look-up, rule evaluation, alert building.

Pure with respect to Kafka: the screening agent hands in the block, the watchlist and the
configured rules; the same inputs always give the same alerts (ids included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.records import Alert, Block, Transfer, alert_id
from monitor.watchlist import Watchlist
from rules.base import Finding, Rule, ScreeningContext


@dataclass(frozen=True, slots=True)
class ChainPolicy:
    """What the screening needs to know about a chain."""

    confirmations: int


def build_alert(transfer: Transfer, finding: Finding, block: Block, policy: ChainPolicy,
                detected_at: float) -> Alert:
    """Build the alert for one finding, carrying every on-chain fact needed to verify it."""
    depth = max(0, block.head - block.number) if block.head else 0
    confirmed = policy.confirmations > 0 and depth >= policy.confirmations
    return Alert(
        id=alert_id(finding.rule, transfer.id, finding.watch.case_id),
        rule=finding.rule,
        severity=finding.severity,
        status="confirmed" if confirmed else "provisional",
        chain=transfer.chain,
        block_number=transfer.block_number,
        block_hash=transfer.block_hash,
        block_time=transfer.block_time,
        tx_hash=transfer.tx_hash,
        transfer_id=transfer.id,
        transfer_kind=transfer.kind,
        from_address=transfer.from_address,
        to_address=transfer.to_address,
        asset=transfer.asset,
        amount=str(transfer.amount),
        direction=finding.direction,
        watch=finding.watch,
        confirmations=depth,
        detected_at=detected_at,
        title=finding.title,
        log_index=transfer.log_index,
        trace_address=transfer.trace_address,
        evidence=dict(finding.evidence),
    )


def screen_block(block: Block, watchlist: Watchlist, rules: Sequence[Rule], policy: ChainPolicy,
                 detected_at: float) -> list[Alert]:
    """Screen every transfer of a block; return alerts in transfer order, without duplicates."""
    alerts: list[Alert] = []
    seen: set[str] = set()
    lookup = watchlist.lookup
    for transfer in block.transfers:
        from_entries = lookup(transfer.chain, transfer.from_address)
        to_entries = lookup(transfer.chain, transfer.to_address)
        if not from_entries and not to_entries:
            continue
        context = ScreeningContext(from_entries, to_entries)
        for rule in rules:
            for finding in rule.evaluate(transfer, context):
                alert = build_alert(transfer, finding, block, policy, detected_at)
                if alert.id not in seen:
                    seen.add(alert.id)
                    alerts.append(alert)
    return alerts
