"""Rule ``sanctioned-counterparty``: a transfer touches an address sanctioned at block time."""

from __future__ import annotations

from typing import Any

from monitor.records import Transfer, WatchEntry
from rules.base import Finding, ScreeningContext, register
from rules.state import Side, as_rule_context
from rules.typologies.common import TypologyRule, direction_of, side_cases

SANCTIONS_CASE = "sanctions-screening"
"""Case id of findings about transfers that touch no case of any investigator (scope ``all``)."""


@register
class SanctionedCounterparty(TypologyRule):
    """One end of the transfer is on a sanctions list version in force at the block's time.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "geographical risks"/sanctions):
    dealings with designated persons. Zero-value transactions count too (a call to a sanctioned
    contract is an interaction even when nothing moves). The list is judged at the block's
    timestamp: a 2024 transfer to a Tornado Cash pool hits the 2024 OFAC list, a 2026 one does
    not (delisted on 2025-03-21). With ``scope: watched`` (default) only transfers of a case's
    watched or tainted addresses are reported, under that case; with ``scope: all`` every
    transfer touching a sanctioned address is, under the case ``sanctions-screening``.
    Evidence: each hit's list name, version, publication date, source and file digest.
    """

    name = "sanctioned-counterparty"
    severity = "critical"
    screens_interactions = True
    params_schema = {"scope": str, "category": str}
    params_defaults = {"scope": "watched", "category": "sanctioned"}

    def check_params(self) -> None:
        """Scope is ``watched`` or ``all``."""
        super().check_params()
        self.require("scope", self.params["scope"] in ("watched", "all"),
                     "must be 'watched' or 'all'")

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Findings for the case(s) concerned when either end is sanctioned at block time."""
        ctx = as_rule_context(context)
        category = self.params["category"]
        hit_sides: list[Side] = []
        if category in ctx.from_labels:
            hit_sides.append("out")
        if category in ctx.to_labels:
            hit_sides.append("in")
        if not hit_sides:
            return []
        evidence = self._evidence(ctx.extra, hit_sides)
        findings: list[Finding] = []
        reported: set[str] = set()
        both: tuple[Side, Side] = ("out", "in")
        for side in both:
            for entry, _mark in side_cases(transfer, ctx, side):
                if entry.case_id in reported:
                    continue
                reported.add(entry.case_id)
                counterparty = "in" if side == "out" else "out"
                title = ("case wallet dealt with a sanctioned address"
                         if counterparty in hit_sides else "sanctioned address moved case funds")
                findings.append(Finding(self.name, self.severity, entry,
                                        direction_of(transfer, side), title, evidence))
        if not findings and self.params["scope"] == "all":
            side = hit_sides[0]
            address = transfer.from_address if side == "out" else transfer.to_address
            entry = WatchEntry(chain=transfer.chain, address=address, case_id=SANCTIONS_CASE,
                               label="sanctioned", category="sanctioned", source="lists",
                               added_at=transfer.block_time)
            findings.append(Finding(self.name, self.severity, entry,
                                    direction_of(transfer, side),
                                    "transfer with a sanctioned address", evidence))
        return findings

    @staticmethod
    def _evidence(extra: Any, sides: list[Side]) -> dict[str, Any]:
        hits = []
        for side in sides:
            for hit in (extra or {}).get(f"{side}_hits", ()):
                if hit.category == "sanctioned":
                    hits.append({"side": "from" if side == "out" else "to",
                                 "address": hit.entry.address, "label": hit.entry.label,
                                 "programme": hit.entry.programme, "list": hit.list.name,
                                 "version": hit.list.version,
                                 "published": hit.list.published, "source": hit.list.source,
                                 "digest": hit.list.digest, "citation": hit.cite()})
        return {"list_hits": hits}
