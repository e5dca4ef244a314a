"""Rule ``watched-address``: funds moved from or to a watched address."""

from __future__ import annotations

from monitor.records import Direction, Transfer
from rules.base import Finding, Rule, ScreeningContext, register


@register
class WatchedAddressMoved(Rule):
    """Raise one finding per watch entry whose address sent or received the transfer."""

    name = "watched-address"
    severity = "high"

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for every matching entry; a self-transfer gives direction ``self``."""
        findings: list[Finding] = []
        to_cases = {e.case_id for e in context.to_entries}
        for entry in context.from_entries:
            direction: Direction = "self" if entry.case_id in to_cases and (
                transfer.from_address == transfer.to_address) else "out"
            findings.append(Finding(self.name, self.severity, entry, direction,
                                    f"watched {entry.category} wallet sent funds"))
        from_cases = {e.case_id for e in context.from_entries}
        for entry in context.to_entries:
            if entry.case_id in from_cases and transfer.from_address == transfer.to_address:
                continue  # already reported as a self-transfer
            findings.append(Finding(self.name, self.severity, entry, "in",
                                    f"watched {entry.category} wallet received funds"))
        return findings
