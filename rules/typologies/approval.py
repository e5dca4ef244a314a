"""Rule ``approval-to-new-spender``: a watched or tainted owner approves a spender it never did."""

from __future__ import annotations

from typing import Any

from monitor.records import Approval, TaintMark, Transfer, WatchEntry, normalize_address
from rules.base import Finding, ScreeningContext, register
from rules.state import RuleContext, as_rule_context
from rules.typologies.common import TypologyRule, finding, tainted_entry


@register
class ApprovalToNewSpender(TypologyRule):
    """A case's address grants an ERC-20 allowance (``approve``/``permit``) to a new spender.

    Asset-recovery red flag: whoever holds a copy of a seized wallet's key usually grants an
    allowance first and drains with ``transferFrom`` later, so the approval is the last warning
    before the funds move. Fires when a watched or tainted owner approves a spender it has not
    approved before (the owner's :attr:`~rules.state.AddressActivity.spenders`, state before
    the block), with an allowance of at least ``min_amount`` base units of any token. A zero
    allowance is a revocation and never fires; spenders in ``ignore_spenders`` never fire. A
    spender first approved below ``min_amount`` counts as known afterwards. Evidence: token,
    owner, spender, allowance (string), ``unlimited`` (``2**256 - 1``), the spender's list
    labels and, for a tainted owner, the case's origin and hop.
    """

    name = "approval-to-new-spender"
    severity = "high"
    screens_approvals = True
    params_schema = {"min_amount": int, "ignore_spenders": list}
    params_defaults = {"min_amount": 0, "ignore_spenders": []}

    def check_params(self) -> None:
        """``min_amount`` is not negative; every ignored spender is a 20-byte address."""
        self.require("min_amount", self.params["min_amount"] >= 0,
                     "must be a non-negative integer")
        ignored: set[str] = set()
        for spender in self.params["ignore_spenders"]:
            try:
                ignored.add(normalize_address(spender))
            except ValueError:
                self.require("ignore_spenders", False, f"must hold 0x addresses ({spender!r})")
        self.ignored: frozenset[str] = frozenset(ignored)

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Transfers are not this rule's concern: no findings."""
        return []

    def evaluate_approval(self, approval: Approval, context: ScreeningContext) -> list[Finding]:
        """One finding per case of the owner when the spender is new to it."""
        if (approval.amount == 0 or approval.amount < self.params["min_amount"]
                or approval.spender in self.ignored):
            return []
        ctx = as_rule_context(context)
        owner = ctx.from_activity
        if owner is not None and owner.has_approved(approval.spender):
            return []
        amount = "unlimited" if approval.unlimited else str(approval.amount)
        token = approval.token.symbol or approval.token.address
        title = f"approval of {amount} {token} to new spender {approval.spender}"
        return [finding(self, entry, "out", title, _evidence(approval, ctx, mark))
                for entry, mark in _owner_cases(approval, ctx)]


def _owner_cases(approval: Approval,
                 ctx: RuleContext) -> list[tuple[WatchEntry, TaintMark | None]]:
    """The owner's cases: watch entries, then taint marks of other cases (one per case id)."""
    marks = {m.case_id: m for m in ctx.from_taint}
    cases: list[tuple[WatchEntry, TaintMark | None]] = []
    seen: set[str] = set()
    for entry in ctx.from_entries:
        if entry.case_id not in seen:
            seen.add(entry.case_id)
            cases.append((entry, marks.get(entry.case_id)))
    for mark in ctx.from_taint:
        if mark.case_id not in seen:
            seen.add(mark.case_id)
            cases.append((tainted_entry(approval.chain, approval.owner, mark), mark))
    return cases


def _evidence(approval: Approval, ctx: RuleContext, mark: TaintMark | None) -> dict[str, Any]:
    """JSON-ready facts of the approval (amount as a decimal string)."""
    evidence: dict[str, Any] = {
        "token": approval.token.address,
        "owner": approval.owner,
        "spender": approval.spender,
        "amount": str(approval.amount),
        "unlimited": approval.unlimited,
    }
    if ctx.to_labels:
        evidence["spender_labels"] = sorted(ctx.to_labels)
    if mark is not None:
        evidence["origin"] = mark.origin
        evidence["hop"] = mark.hop
    return evidence
