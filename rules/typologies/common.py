"""Shared pieces of the typology rules: parameter defaults and checks, cases, evidence."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from monitor.errors import RuleError
from monitor.records import Direction, Severity, TaintHop, TaintMark, Transfer, WatchEntry
from rules.base import Finding, Rule
from rules.state import RuleContext, Side, asset_key

DAY_SECONDS = 86_400
"""Seconds in a day of block time."""

BPS = 10_000
"""Basis points in 100 %: ratios are integer basis points so big amounts compare exactly."""


EvidencedFinding = Finding
"""Kept as a name for findings that carry evidence; every Finding has an ``evidence`` field."""


class TypologyRule(Rule):
    """A rule whose parameters have defaults and range checks beyond the type check of ``Rule``.

    Subclasses declare ``params_defaults`` (one per key of ``params_schema``) and may extend
    :meth:`check_params`; ``horizon_seconds`` tells the agent how much block time of activity
    the rule needs retained.
    """

    params_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, severity: Severity | None = None, **params: Any) -> None:
        super().__init__(severity, **params)
        merged = {key: _copy(value) for key, value in self.params_defaults.items()}
        merged.update(self.params)
        self.params = merged
        self.check_params()

    def check_params(self) -> None:
        """Raise RuleError naming the rule and the parameter when a value is out of range."""
        for key, expected in self.params_schema.items():
            value = self.params[key]
            if expected is int and key.endswith("_bps"):
                self.require(key, 0 < value <= BPS, f"must be in 1..{BPS} basis points")
            elif expected is int:
                self.require(key, value > 0, "must be a positive integer")

    def require(self, key: str, ok: bool, message: str) -> None:
        """Raise RuleError for parameter ``key`` unless ``ok``."""
        if not ok:
            raise RuleError(f"parameter {key!r} {message}, got {self.params[key]!r}",
                            rule=self.name, parameter=key)

    def check_thresholds(self, key: str) -> None:
        """Check a mapping of asset key (or ``chain:asset key``) to a positive int threshold."""
        value = self.params[key]
        for asset, limit in value.items():
            self.require(key, isinstance(asset, str) and bool(asset),
                         "keys must be asset keys ('native' or a token contract)")
            self.require(key, isinstance(limit, int) and not isinstance(limit, bool)
                         and limit > 0, f"threshold of {asset!r} must be a positive integer")

    @property
    def horizon_seconds(self) -> int:
        """Block time of activity this rule reads; the agent retains the maximum over rules."""
        return 0


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def threshold_for(thresholds: Mapping[str, int], transfer: Transfer) -> int | None:
    """Threshold for the transfer's asset: ``chain:asset_key`` first, then ``asset_key``."""
    key = asset_key(transfer.asset)
    found = thresholds.get(f"{transfer.chain}:{key}")
    return found if found is not None else thresholds.get(key)


def address_of(transfer: Transfer, side: Side) -> str:
    """The sender (``out``) or the receiver (``in``) of a transfer."""
    return transfer.from_address if side == "out" else transfer.to_address


def taint_entry(transfer: Transfer, side: Side, mark: TaintMark) -> WatchEntry:
    """The watch entry a finding about a tainted (not watched) address is reported under."""
    return tainted_entry(transfer.chain, address_of(transfer, side), mark)


def tainted_entry(chain: str, address: str, mark: TaintMark) -> WatchEntry:
    """The watch entry of a tainted (not watched) address, for the case of ``mark``."""
    return WatchEntry(chain=chain, address=address, case_id=mark.case_id, category="tainted",
                      source="taint", label=f"hop {mark.hop} from {mark.origin}")


def side_cases(transfer: Transfer, context: RuleContext, side: Side,
               watched: bool = True, tainted: bool = True) -> list[tuple[WatchEntry,
                                                                       TaintMark | None]]:
    """Cases concerning one endpoint: watch entries, then taint marks of other cases.

    One item per case id, in a deterministic order; a case that both watches and taints the
    address is reported under its watch entry, with the taint mark attached.
    """
    marks = {m.case_id: m for m in context.taint(side)} if tainted else {}
    cases: list[tuple[WatchEntry, TaintMark | None]] = []
    seen: set[str] = set()
    if watched:
        for entry in context.entries(side):
            if entry.case_id not in seen:
                seen.add(entry.case_id)
                cases.append((entry, marks.get(entry.case_id)))
    for mark in context.taint(side) if tainted else ():
        if mark.case_id not in seen:
            seen.add(mark.case_id)
            cases.append((taint_entry(transfer, side, mark), mark))
    return cases


def direction_of(transfer: Transfer, side: Side) -> Direction:
    """Direction of a finding about one endpoint; ``self`` for a self-transfer."""
    if transfer.from_address == transfer.to_address:
        return "self"
    return side


def endpoint_findings(rule: Rule, transfer: Transfer, context: RuleContext,
                      sides: Iterable[Side], title: str,
                      evidence: Mapping[str, Any] | None = None) -> list[Finding]:
    """One finding per case touching the given endpoints (a self-transfer is reported once)."""
    findings: list[Finding] = []
    reported: set[str] = set()
    for side in sides:
        for entry, _mark in side_cases(transfer, context, side):
            if direction_of(transfer, side) == "self" and entry.case_id in reported:
                continue
            reported.add(entry.case_id)
            findings.append(finding(rule, entry, direction_of(transfer, side), title, evidence))
    return findings


def finding(rule: Rule, entry: WatchEntry, direction: Direction, title: str,
            evidence: Mapping[str, Any] | None = None) -> Finding:
    """A plain finding, or an :class:`EvidencedFinding` when there is evidence."""
    if evidence:
        return EvidencedFinding(rule.name, rule.severity, entry, direction, title,
                                evidence=evidence)
    return Finding(rule.name, rule.severity, entry, direction, title)


def hop_evidence(hop: TaintHop) -> list[Any]:
    """A taint hop as a JSON-ready list ``[tx_hash, from, to, amount, block_number]``."""
    return [hop.tx_hash, hop.from_address, hop.to_address, str(hop.amount), hop.block_number]


def path_evidence(transfer: Transfer, entry: WatchEntry, mark: TaintMark | None) -> dict[str,
                                                                                       Any]:
    """Evidence of how a case's funds reached this transfer: origin, hops, full path.

    The path is the mark's path (if any) followed by the transfer itself, so it runs from the
    case's origin to the transfer's receiver. For a watched address without a mark, the
    address itself is the origin.
    """
    this_hop = TaintHop(transfer.tx_hash, transfer.from_address, transfer.to_address,
                        transfer.amount, transfer.block_number)
    path = (*mark.path, this_hop) if mark is not None else (this_hop,)
    return {
        "case_id": entry.case_id,
        "origin": mark.origin if mark is not None else transfer.from_address,
        "hops": len(path),
        "tainted_amount": str(mark.amount) if mark is not None else str(transfer.amount),
        "tainted_asset": mark.asset_key if mark is not None else asset_key(transfer.asset),
        "path": [hop_evidence(h) for h in path],
    }


class LabelRule(TypologyRule):
    """Base of rules about a case's funds meeting an address on a labelled list (``label``)."""

    def check_params(self) -> None:
        """The label is a non-empty list category."""
        super().check_params()
        self.require("label", bool(self.params["label"].strip()), "must be a non-empty label")

    def sender_findings(self, transfer: Transfer, context: RuleContext,
                        title: str) -> list[Finding]:
        """One finding per case of the sender, with the path from the case's origin."""
        return [finding(self, entry, "out", title, path_evidence(transfer, entry, mark))
                for entry, mark in side_cases(transfer, context, "out")]
