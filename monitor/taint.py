"""Follow the money: which recipients become tainted when a case's funds move.

When a watched or tainted address sends funds, the recipient becomes tainted for the same case:
it gets a watch entry (category ``tainted``) carrying a :class:`TaintMark` with the case's
origin, the hop number, the tainted amount and the path of transfers from the origin. The entry
goes to the same replicated watchlist as every other, so every worker screens against it at
once, and the next movement of those funds is seen like any watched movement.

Bounds: a maximum number of hops, a minimum amount per asset, a cap on tainted addresses per
origin, and a stop at services (exchanges, bridges, mixers: their labelled categories), where
the service's own rule raises the alert instead (exchange deposit = freeze-request trigger),
and optionally at every contract (``stop_at_contracts``: routers, pools and other busy
contracts would spread taint to everyone trading through them).

Taint models: ``poison`` taints the whole transfer; ``haircut`` taints the share of the
transfer equal to the share of tainted funds in the sender's balance before it (needs the
balance; when it is unknown the poison amount is used and the evidence says so).

Pure and deterministic: the same block and the same watchlist give the same new entries. The
first tainted transfer to reach an address defines its mark (path, hop, amount); later tainted
inflows raise alerts like any other movement but do not rewrite the mark, so a replayed block
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from monitor.records import TaintHop, TaintMark, Transfer, WatchEntry
from monitor.settings import TaintConfig
from rules.state import asset_key


@dataclass(frozen=True, slots=True)
class TaintPolicy:
    """The bounds of taint propagation (see :class:`monitor.settings.TaintConfig`)."""

    max_hops: int = 8
    min_amounts: Mapping[str, int] = field(default_factory=lambda: {"native": 10**15})
    default_min_amount: int = 1
    max_addresses_per_origin: int = 200
    model: str = "poison"
    stop_categories: frozenset[str] = frozenset({"exchange", "exchange-deposit", "bridge",
                                                  "mixer"})
    stop_at_contracts: bool = False

    @classmethod
    def from_config(cls, config: TaintConfig) -> TaintPolicy:
        """Build the policy from the YAML ``taint:`` section."""
        return cls(max_hops=config.max_hops, min_amounts=dict(config.min_amounts),
                   default_min_amount=config.default_min_amount,
                   max_addresses_per_origin=config.max_addresses_per_origin,
                   model=config.model, stop_categories=frozenset(config.stop_categories),
                   stop_at_contracts=config.stop_at_contracts)

    def min_amount(self, key: str) -> int:
        """Smallest transfer (base units) of asset ``key`` that spreads taint."""
        return self.min_amounts.get(key, self.default_min_amount)


class TaintCounter(Protocol):
    """Anything that tells how many addresses a (case, origin) has tainted so far."""

    def get(self, key: tuple[str, str], default: int = 0, /) -> int:
        """Count for ``(case_id, origin)``."""
        ...


def origin_mark(entry: WatchEntry) -> TaintMark:
    """The mark a case's own watched address stands for: hop 0, empty path."""
    return TaintMark(origin=entry.address, case_id=entry.case_id, hop=0, amount=0,
                     asset_key="native")


def tainted_amount(transfer: Transfer, mark: TaintMark, model: str,
                   sender_balance: int | None) -> tuple[int, str]:
    """Tainted part of ``transfer`` under ``model``, and the model actually applied."""
    if model != "haircut" or mark.hop == 0:
        return transfer.amount, "poison"
    if sender_balance is None or sender_balance <= 0 or mark.asset_key != asset_key(
            transfer.asset):
        return transfer.amount, "poison (balance unknown)"
    share = min(transfer.amount, transfer.amount * min(mark.amount, sender_balance)
                // sender_balance)
    return share, "haircut"


def propagate(transfer: Transfer, sender_entries: Sequence[WatchEntry],
              recipient_entries: Sequence[WatchEntry], recipient_labels: Iterable[str],
              policy: TaintPolicy, tainted_per_origin: TaintCounter,
              sender_balance: int | None = None,
              recipient_is_contract: bool = False) -> list[WatchEntry]:
    """New watch entries for the recipient of ``transfer``, one per case that taints it.

    ``sender_balance`` is the sender's balance of the transferred asset before the transfer
    (for the haircut model), when known; ``recipient_is_contract`` whether the node showed
    code at the recipient (for ``stop_at_contracts``).
    """
    key = asset_key(transfer.asset)
    if transfer.amount < policy.min_amount(key) or transfer.amount <= 0:
        return []
    if transfer.from_address == transfer.to_address:
        return []
    if policy.stop_categories.intersection(recipient_labels):
        return []
    if policy.stop_at_contracts and recipient_is_contract:
        return []
    covered = {e.case_id for e in recipient_entries}
    new: list[WatchEntry] = []
    for entry in sender_entries:
        if entry.case_id in covered:
            continue
        mark = entry.taint or origin_mark(entry)
        if mark.hop + 1 > policy.max_hops:
            continue
        if tainted_per_origin.get((mark.case_id, mark.origin), 0) >= \
                policy.max_addresses_per_origin:
            continue
        amount, _applied = tainted_amount(transfer, mark, policy.model, sender_balance)
        if amount <= 0:
            continue
        hop = TaintHop(transfer.tx_hash, transfer.from_address, transfer.to_address,
                       transfer.amount, transfer.block_number)
        new.append(WatchEntry(
            chain=transfer.chain, address=transfer.to_address, case_id=entry.case_id,
            label=f"hop {mark.hop + 1} from {mark.origin}", category="tainted",
            source="taint", added_at=transfer.block_time,
            taint=TaintMark(origin=mark.origin, case_id=entry.case_id, hop=mark.hop + 1,
                            amount=amount, asset_key=key, path=(*mark.path, hop))))
        covered.add(entry.case_id)
    return new
