"""Turn a block's transfers into alerts, activity updates and follow-the-money taint.

Pure with respect to Kafka and the node: the screening agent reads the state (watchlist
replica, per-address activity, address lists, node facts), hands it in, and writes back what
comes out. The same block and the same state always give the same alerts (ids included), the
same activity and the same new taint entries, so replays are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from connectors.evm.facts import AddressFact
from monitor.lists import ListHit, ListIndex
from monitor.records import (
    BLOCK_DIGEST_DECODER,
    DATED_BLOCK_DIGEST_DECODER,
    Alert,
    AlertKind,
    Approval,
    Asset,
    Block,
    BlockDigest,
    DatedBlockDigest,
    TaintMark,
    Transfer,
    WatchEntry,
    alert_id,
)
from monitor.taint import TaintPolicy, propagate
from monitor.watchlist import Watchlist
from rules.base import Finding, Rule
from rules.state import (
    AddressActivity,
    RuleContext,
    Side,
    record_approval,
    rewind_block,
    update_activity,
)

_NO_HITS: tuple[ListHit, ...] = ()
_FROM_OF = attrgetter("from_address")
_TO_OF = attrgetter("to_address")
_OWNER_OF = attrgetter("owner")


@dataclass(frozen=True, slots=True)
class ChainPolicy:
    """What the screening needs to know about a chain."""

    confirmations: int


@dataclass(frozen=True, slots=True)
class ScopedRule:
    """A configured rule, optionally limited to watch-entry categories or cases."""

    rule: Rule
    categories: frozenset[str] = frozenset()
    cases: frozenset[str] = frozenset()

    def admits(self, finding: Finding) -> bool:
        """Whether the finding's case and category are in this rule's scope."""
        return ((not self.categories or finding.watch.category in self.categories)
                and (not self.cases or finding.watch.case_id in self.cases))


@dataclass
class BlockOutcome:
    """What screening a block produced: alerts, activity to store, new taint entries."""

    alerts: list[Alert] = field(default_factory=list)
    activity: dict[str, AddressActivity] = field(default_factory=dict)
    new_entries: list[WatchEntry] = field(default_factory=list)


def activity_key(chain: str, address: str) -> str:
    """Key of an address's activity in the activity table."""
    return f"{chain}:{address}"


def build_alert(transfer: Transfer, finding: Finding, block: Block, policy: ChainPolicy,
                detected_at: float) -> Alert:
    """Build the alert for one finding, carrying every on-chain fact needed to verify it."""
    return _alert(finding, block, policy, detected_at, transfer.id, transfer.kind, transfer,
                  transfer.from_address, transfer.to_address, transfer.asset, transfer.amount,
                  transfer.log_index, transfer.trace_address)


def build_approval_alert(approval: Approval, finding: Finding, block: Block,
                         policy: ChainPolicy, detected_at: float) -> Alert:
    """Build the alert for a finding about an approval: owner as ``from``, spender as ``to``."""
    return _alert(finding, block, policy, detected_at, approval.id, "approval", approval,
                  approval.owner, approval.spender, approval.token, approval.amount,
                  approval.log_index, None)


def _alert(finding: Finding, block: Block, policy: ChainPolicy, detected_at: float,
           fact_id: str, kind: AlertKind, where: Transfer | Approval, from_address: str,
           to_address: str, asset: Asset, amount: int, log_index: int | None,
           trace_address: tuple[int, ...] | None) -> Alert:
    depth = max(0, block.head - block.number) if block.head else 0
    confirmed = policy.confirmations > 0 and depth >= policy.confirmations
    return Alert(
        id=alert_id(finding.rule, fact_id, finding.watch.case_id),
        rule=finding.rule,
        severity=finding.severity,
        status="confirmed" if confirmed else "provisional",
        chain=where.chain,
        block_number=where.block_number,
        block_hash=where.block_hash,
        block_time=where.block_time,
        tx_hash=where.tx_hash,
        transfer_id=fact_id,
        transfer_kind=kind,
        from_address=from_address,
        to_address=to_address,
        asset=asset,
        amount=str(amount),
        direction=finding.direction,
        watch=finding.watch,
        confirmations=depth,
        detected_at=detected_at,
        title=finding.title,
        log_index=log_index,
        trace_address=trace_address,
        evidence=dict(finding.evidence),
    )


class _TaintCounts:
    """Tainted addresses per (case, origin): the watchlist's counts plus this block's."""

    def __init__(self, watchlist: Watchlist) -> None:
        self.watchlist = watchlist
        self.added: dict[tuple[str, str], int] = {}

    def get(self, key: tuple[str, str], default: int = 0) -> int:
        """Tainted addresses of (case, origin), this block's new ones included."""
        return self.watchlist.tainted_count(*key) + self.added.get(key, 0)

    def __setitem__(self, key: tuple[str, str], value: int) -> None:
        self.added[key] = value - self.watchlist.tainted_count(*key)


class _Overlay:
    """The replica plus the taint entries created earlier in the same block."""

    def __init__(self, watchlist: Watchlist) -> None:
        self.watchlist = watchlist
        self.added: dict[tuple[str, str], list[WatchEntry]] = {}

    def lookup(self, chain: str, address: str) -> tuple[WatchEntry, ...]:
        base = tuple(self.watchlist.lookup(chain, address))
        extra = self.added.get((chain, address))
        return (*base, *extra) if extra else base

    def add(self, entry: WatchEntry) -> None:
        self.added.setdefault((entry.chain, entry.address), []).append(entry)


@dataclass
class Screener:
    """Screens blocks with the configured rules, address lists and taint policy."""

    rules: Sequence[ScopedRule]
    lists: ListIndex | None = None
    taint: TaintPolicy | None = None
    horizon_seconds: int = 0
    max_movements: int = 256

    def relevant_addresses(self, block: Block, watchlist: Watchlist) -> set[str]:
        """Endpoints of transfers that touch a watched address or one tainted in this block.

        The agent fetches stored activity and node facts for exactly these before screening.
        """
        tainted: set[str] = set()
        relevant: set[str] = set()
        for t in block.transfers:
            sender = t.from_address in tainted or bool(watchlist.lookup(t.chain,
                                                                          t.from_address))
            if sender or t.to_address in tainted or watchlist.lookup(t.chain, t.to_address):
                relevant.add(t.from_address)
                relevant.add(t.to_address)
            if sender and self.taint is not None:
                tainted.add(t.to_address)
        for a in block.approvals:  # owners whose known spenders approval rules read
            if a.owner in tainted or watchlist.lookup(a.chain, a.owner):
                relevant.add(a.owner)
        return relevant

    def digest(self, raw: bytes) -> BlockDigest:
        """Read a block message only as far as :meth:`needs_screening` needs.

        Block times are read only when address lists are configured. Raises
        ``msgspec.DecodeError`` or ``msgspec.ValidationError`` as the full decoder does.
        """
        if self.lists is None:
            return BLOCK_DIGEST_DECODER.decode(raw)
        return DATED_BLOCK_DIGEST_DECODER.decode(raw)

    def needs_screening(self, digest: BlockDigest, watchlist: Watchlist) -> bool:
        """Whether :meth:`screen` could find anything in the block: alerts, activity or taint.

        False exactly when no end of a transfer is watched or listed, no end of a zero-value
        call is listed (if interaction rules and lists are configured) and no approval owner
        is watched (if approval rules are configured): :meth:`screen` would then return an
        empty outcome, so the block is settled without decoding its transfers. A revert, or a
        block with items of another chain than its own, always needs the full event.
        """
        if digest.kind != "block":
            return True
        chain = digest.chain
        transfers = digest.transfers
        approvals = digest.approvals if self._approval_rules else ()
        if not (all(t.chain == chain for t in transfers)
                and all(a.chain == chain for a in approvals)):
            return True
        if (watchlist.watches_any(chain, map(_FROM_OF, transfers))
                or watchlist.watches_any(chain, map(_TO_OF, transfers))
                or watchlist.watches_any(chain, map(_OWNER_OF, approvals))):
            return True
        if self.lists is None:
            return False
        if not isinstance(digest, DatedBlockDigest):
            return True  # no block times to judge list hits by
        calls = digest.interactions if self._interaction_rules else ()
        hits = self._hits
        return any(hits(t.from_address, t.block_time) or hits(t.to_address, t.block_time)
                   for items in (digest.transfers, calls) for t in items)

    @property
    def _approval_rules(self) -> bool:
        return any(s.rule.screens_approvals for s in self.rules)

    @property
    def _interaction_rules(self) -> bool:
        return any(s.rule.screens_interactions for s in self.rules)

    def _hits(self, address: str, at: int) -> Sequence[ListHit]:
        return self.lists.hits(address, at) if self.lists is not None else _NO_HITS

    def screen(self, block: Block, watchlist: Watchlist, policy: ChainPolicy,
               detected_at: float, activity: Mapping[str, AddressActivity] | None = None,
               facts: Mapping[str, AddressFact | None] | None = None) -> BlockOutcome:
        """Screen every transfer of ``block`` in order; see the module docstring."""
        stored = activity or {}
        known_facts = facts or {}
        overlay = _Overlay(watchlist)
        outcome = BlockOutcome()
        seen: set[str] = set()
        current: dict[str, AddressActivity | None] = {}
        counts = _TaintCounts(watchlist)  # the watchlist keeps them: no scan per block

        def state_of(chain: str, address: str) -> AddressActivity | None:
            key = activity_key(chain, address)
            if key not in current:  # the state before this block, even on a replay
                before = rewind_block(stored.get(key), block.number)
                fact = known_facts.get(address)
                if before is None and fact is not None and fact.had_history:
                    before = AddressActivity(first_seen=0)  # history the node knows of
                current[key] = before
            return current[key]

        for transfer in block.transfers:
            chain = transfer.chain
            from_entries = overlay.lookup(chain, transfer.from_address)
            to_entries = overlay.lookup(chain, transfer.to_address)
            from_hits = self._hits(transfer.from_address, transfer.block_time)
            to_hits = self._hits(transfer.to_address, transfer.block_time)
            tracked = bool(from_entries or to_entries)
            if not tracked and not from_hits and not to_hits:
                continue
            to_labels = frozenset(h.category for h in to_hits)
            context = RuleContext(
                from_entries, to_entries,
                extra={"out_hits": from_hits, "in_hits": to_hits},
                from_activity=state_of(chain, transfer.from_address) if tracked else None,
                to_activity=state_of(chain, transfer.to_address) if tracked else None,
                from_labels=frozenset(h.category for h in from_hits), to_labels=to_labels,
                from_taint=_marks(from_entries), to_taint=_marks(to_entries))
            for scoped in self.rules:
                for finding in scoped.rule.evaluate(transfer, context):
                    if not scoped.admits(finding):
                        continue
                    alert = build_alert(transfer, finding, block, policy, detected_at)
                    if alert.id not in seen:
                        seen.add(alert.id)
                        outcome.alerts.append(alert)
            if not tracked:
                continue
            sides: tuple[tuple[str, Side], ...] = ((transfer.from_address, "out"),
                                                   (transfer.to_address, "in"))
            for address, side in sides:
                key = activity_key(chain, address)
                current[key] = update_activity(state_of(chain, address), transfer, side,
                                               self.horizon_seconds, self.max_movements)
            if self.taint is not None and from_entries:
                fact = known_facts.get(transfer.from_address)
                balance = fact.balance if fact and transfer.asset.kind == "native" else None
                to_fact = known_facts.get(transfer.to_address)
                for entry in propagate(transfer, from_entries, to_entries, to_labels,
                                       self.taint, counts, balance,
                                       bool(to_fact and to_fact.has_code)):
                    overlay.add(entry)
                    outcome.new_entries.append(entry)
                    assert entry.taint is not None
                    k = (entry.taint.case_id, entry.taint.origin)
                    counts[k] = counts.get(k, 0) + 1
        self._screen_interactions(block, overlay, policy, detected_at, outcome, seen)
        self._screen_approvals(block, overlay, policy, detected_at, outcome, seen, state_of,
                               current)
        outcome.activity = {k: v for k, v in current.items() if v is not None}
        return outcome

    def _screen_interactions(self, block: Block, overlay: _Overlay, policy: ChainPolicy,
                             detected_at: float, outcome: BlockOutcome, seen: set[str]) -> None:
        """Zero-value calls: only rules about counterparties, only where a list is hit."""
        rules = [s for s in self.rules if s.rule.screens_interactions]
        if not rules or self.lists is None:
            return
        for call in block.interactions:
            from_hits = self._hits(call.from_address, call.block_time)
            to_hits = self._hits(call.to_address, call.block_time)
            if not from_hits and not to_hits:
                continue
            from_entries = overlay.lookup(call.chain, call.from_address)
            to_entries = overlay.lookup(call.chain, call.to_address)
            context = RuleContext(
                from_entries, to_entries, extra={"out_hits": from_hits, "in_hits": to_hits},
                from_labels=frozenset(h.category for h in from_hits),
                to_labels=frozenset(h.category for h in to_hits),
                from_taint=_marks(from_entries), to_taint=_marks(to_entries))
            for scoped in rules:
                for finding in scoped.rule.evaluate(call, context):
                    alert = build_alert(call, finding, block, policy, detected_at)
                    if scoped.admits(finding) and alert.id not in seen:
                        seen.add(alert.id)
                        outcome.alerts.append(alert)

    def _screen_approvals(self, block: Block, overlay: _Overlay, policy: ChainPolicy,
                          detected_at: float, outcome: BlockOutcome, seen: set[str],
                          state_of: Callable[[str, str], AddressActivity | None],
                          current: dict[str, AddressActivity | None]) -> None:
        """ERC-20 approvals of watched or tainted owners: approval rules, then owner state."""
        rules = [s for s in self.rules if s.rule.screens_approvals]
        if not rules:
            return
        for approval in block.approvals:
            chain, owner, spender = approval.chain, approval.owner, approval.spender
            owner_entries = overlay.lookup(chain, owner)
            if not owner_entries:
                continue
            owner_hits = self._hits(owner, approval.block_time)
            spender_hits = self._hits(spender, approval.block_time)
            spender_entries = overlay.lookup(chain, spender)
            before = state_of(chain, owner)
            context = RuleContext(
                owner_entries, spender_entries,
                extra={"out_hits": owner_hits, "in_hits": spender_hits},
                from_activity=before,
                from_labels=frozenset(h.category for h in owner_hits),
                to_labels=frozenset(h.category for h in spender_hits),
                from_taint=_marks(owner_entries), to_taint=_marks(spender_entries))
            for scoped in rules:
                for finding in scoped.rule.evaluate_approval(approval, context):
                    alert = build_approval_alert(approval, finding, block, policy, detected_at)
                    if scoped.admits(finding) and alert.id not in seen:
                        seen.add(alert.id)
                        outcome.alerts.append(alert)
            current[activity_key(chain, owner)] = record_approval(before, approval,
                                                                  self.max_movements)


def _marks(entries: Iterable[WatchEntry]) -> tuple[TaintMark, ...]:
    return tuple(e.taint for e in entries if e.taint is not None)


def screen_block(block: Block, watchlist: Watchlist, rules: Sequence[Rule], policy: ChainPolicy,
                 detected_at: float) -> list[Alert]:
    """Screen a block without stored state, lists or taint (the stateless subset)."""
    screener = Screener([ScopedRule(rule) for rule in rules])
    return screener.screen(block, watchlist, policy, detected_at).alerts
