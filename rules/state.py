"""Per-address state handed to stateful rules: activity windows, taint marks and the context.

Everything here is pure. The screening agent keeps one :class:`AddressActivity` per
``chain:address`` in a plain Faust table (JSON via msgspec), hands the state *before* a
transfer to the rules in a :class:`RuleContext`, then stores the result of
:func:`update_activity`. Windows are measured in **block time** (the block header's unix
seconds), never wall-clock time, so a replay of the same blocks gives the same state and the
same alerts. Amounts are integers in base units, never floats.

Example::

    >>> from monitor.records import Asset, Transfer
    >>> t = Transfer(id="devnet:0xaa:tx", chain="devnet", block_number=1, block_hash="0xbb",
    ...              block_time=1_000, tx_hash="0xaa", tx_index=0, kind="native",
    ...              from_address="0x" + "11" * 20, to_address="0x" + "22" * 20,
    ...              asset=Asset(kind="native"), amount=5)
    >>> a = update_activity(None, t, "in", horizon_seconds=3600, max_movements=100)
    >>> (a.first_seen, a.last_active, a.balances, len(a.inflows))
    (1000, 1000, {'native': 5}, 1)
    >>> update_activity(a, t, "in", horizon_seconds=3600, max_movements=100) == a  # redelivery
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from monitor.records import Approval, Asset, TaintMark, Transfer, WatchEntry
from rules.base import ScreeningContext

Side = Literal["in", "out"]
"""Which end of a transfer an address is on: ``in`` = receiver, ``out`` = sender."""

NATIVE_ASSET_KEY = "native"
"""Asset key of a chain's native coin (ETH, MATIC, ...)."""


def asset_key(asset: Asset) -> str:
    """Key of an asset within its chain: ``native`` or the token contract (lower-case).

    >>> asset_key(Asset(kind="erc20", address="0xDAC17F958D2EE523A2206206994597C13D831EC7"))
    '0xdac17f958d2ee523a2206206994597c13d831ec7'
    """
    if asset.kind == "native" or not asset.address:
        return NATIVE_ASSET_KEY
    return asset.address.lower()


class Movement(msgspec.Struct, frozen=True, kw_only=True):
    """One transfer as seen from one address: when, which transfer, with whom, what, how much."""

    block_time: int
    block_number: int
    tx_hash: str
    transfer_id: str
    counterparty: str  # the other end of the transfer
    asset_key: str
    amount: int  # base units; never a float


class ApprovedSpender(msgspec.Struct, frozen=True, array_like=True):
    """A spender an owner has approved; encodes as ``[spender, block_number]``."""

    spender: str  # lower-case 0x hex
    block_number: int  # block of the first approval observed (what a rewind undoes)


class AddressActivity(msgspec.Struct, frozen=True, kw_only=True):
    """What chainwatch has observed about one address, bounded in time and in size.

    ``inflows``/``outflows`` hold the movements within the configured horizon (block time),
    in processing order, at most ``max_movements`` each. ``balances`` is the net observed flow
    per asset key (in - out) since ``first_seen``; it is negative when more left than was seen
    arriving (history before ``first_seen`` is unknown). Its key order is least recently moved
    first, which is what bounds it. Treat every field as read-only.
    """

    first_seen: int | None = None  # block time of the first observed transfer
    last_active: int | None = None  # latest block time of a transfer in either direction
    last_out: int | None = None  # latest block time of an outgoing transfer
    inflows: tuple[Movement, ...] = ()
    outflows: tuple[Movement, ...] = ()
    balances: dict[str, int] = msgspec.field(default_factory=dict)
    last_block: int | None = None  # highest block number applied
    active_before: int | None = None  # last_active before the first transfer of last_block
    out_before: int | None = None  # last_out before the first transfer of last_block
    # Spenders this address has approved (ERC-20 ``Approval``), least recently approved first,
    # at most ``max_spenders`` (see :func:`record_approval`).
    spenders: tuple[ApprovedSpender, ...] = ()

    def has_approved(self, spender: str) -> bool:
        """Whether an approval of ``spender`` by this address has been observed (and retained)."""
        return any(s.spender == spender for s in self.spenders)

    def known_balance(self, key: str) -> int:
        """Observed balance of an asset, floored at zero (unknown history counts as nothing)."""
        return max(0, self.balances.get(key, 0))

    def movements(self, side: Side) -> tuple[Movement, ...]:
        """The retained inflows (``in``) or outflows (``out``)."""
        return self.inflows if side == "in" else self.outflows


def is_fresh(activity: AddressActivity | None) -> bool:
    """Whether an address has no observed activity at all before the transfer being screened."""
    return activity is None or (activity.first_seen is None and activity.last_active is None
                                and not activity.inflows and not activity.outflows)


def within_window(now: int, then: int, window_seconds: int) -> bool:
    """Whether block time ``then`` lies in the window of ``window_seconds`` ending at ``now``.

    The window is closed at both ends: exactly ``window_seconds`` before ``now`` is inside,
    one second more is outside. Times after ``now`` (out-of-order input) are inside.

    >>> within_window(1_000, 400, 600), within_window(1_000, 399, 600)
    (True, False)
    """
    return now - then <= window_seconds


def update_activity(activity: AddressActivity | None, transfer: Transfer, side: Side,
                    horizon_seconds: int, max_movements: int) -> AddressActivity:
    """Return the activity after ``transfer`` moved value into (``in``) or out of the address.

    Pure and idempotent: a transfer whose id is already among the retained movements of that
    side returns ``activity`` unchanged, so a redelivered block does not double-count. A
    transfer older than ``horizon_seconds`` before the address's latest activity is also
    returned unchanged: under in-order processing only a redelivery can be that old, and it
    could no longer fall in any window. Movements are pruned by block time relative to the
    latest block time seen (never the wall clock) and capped at ``max_movements`` per side
    (the oldest go first); ``balances`` keeps at most ``max_movements`` assets (the least
    recently moved go first). Deduplication is exact while an address has at most
    ``max_movements`` movements per side within the horizon.

    Call it once for the sender (``out``) and once for the receiver (``in``); the order does
    not matter, and a self-transfer nets to zero. Rules must see the state *before* a
    transfer: on a redelivered block, evaluate against :func:`rewind_block` of the stored state.
    """
    if side not in ("in", "out"):
        raise ValueError(f"side must be 'in' or 'out', got {side!r}")
    if horizon_seconds < 0 or max_movements < 1:
        raise ValueError(f"need horizon_seconds >= 0 and max_movements >= 1, got "
                         f"{horizon_seconds} and {max_movements}")
    current = activity if activity is not None else AddressActivity()
    own = current.movements(side)
    if any(m.transfer_id == transfer.id for m in own):
        return current
    now = transfer.block_time
    latest = now if current.last_active is None else max(current.last_active, now)
    if latest - now > horizon_seconds:
        return current

    counterparty = transfer.from_address if side == "in" else transfer.to_address
    key = asset_key(transfer.asset)
    movement = Movement(block_time=now, block_number=transfer.block_number,
                        tx_hash=transfer.tx_hash, transfer_id=transfer.id,
                        counterparty=counterparty, asset_key=key, amount=transfer.amount)

    def keep(movements: tuple[Movement, ...]) -> tuple[Movement, ...]:
        recent = tuple(m for m in movements if within_window(latest, m.block_time,
                                                              horizon_seconds))
        return recent[-max_movements:]

    inflows = keep((*current.inflows, movement) if side == "in" else current.inflows)
    outflows = keep((*current.outflows, movement) if side == "out" else current.outflows)

    balances = dict(current.balances)
    value = balances.pop(key, 0) + (transfer.amount if side == "in" else -transfer.amount)
    if value:
        balances[key] = value  # re-inserted last: key order is recency of movement
    while len(balances) > max_movements:
        del balances[next(iter(balances))]

    first_seen = now if current.first_seen is None else min(current.first_seen, now)
    last_out = current.last_out
    if side == "out":
        last_out = now if last_out is None else max(last_out, now)
    last_block, active_before, out_before = (current.last_block, current.active_before,
                                             current.out_before)
    if last_block is None or transfer.block_number > last_block:
        last_block, active_before, out_before = (transfer.block_number, current.last_active,
                                                 current.last_out)
    return AddressActivity(first_seen=first_seen, last_active=latest, last_out=last_out,
                           inflows=inflows, outflows=outflows, balances=balances,
                           last_block=last_block, active_before=active_before,
                           out_before=out_before, spenders=current.spenders)


def record_approval(activity: AddressActivity | None, approval: Approval,
                    max_spenders: int) -> AddressActivity:
    """Return the owner's activity after ``approval``: its spender is known from now on.

    Pure and idempotent: re-approving a known spender only moves it to the most recent end
    (keeping the block of its first approval), so a redelivery changes nothing. At most
    ``max_spenders`` are kept; the least recently approved go first (approving one of those
    again counts as new). A zero allowance (a revocation) records nothing. Transfers' times
    and movements are untouched: an approval moves no value. ``last_block`` advances like a
    transfer's would, so :func:`rewind_block` can undo the approvals of a redelivered block.
    """
    if max_spenders < 1:
        raise ValueError(f"need max_spenders >= 1, got {max_spenders}")
    current = activity if activity is not None else AddressActivity()
    spenders = current.spenders
    if approval.amount == 0 or (spenders and spenders[-1].spender == approval.spender):
        return current
    known = next((s for s in spenders if s.spender == approval.spender), None)
    entry = known or ApprovedSpender(approval.spender, approval.block_number)
    kept = (*(s for s in spenders if s.spender != approval.spender), entry)[-max_spenders:]
    last_block, active_before, out_before = (current.last_block, current.active_before,
                                             current.out_before)
    if last_block is None or approval.block_number > last_block:
        last_block, active_before, out_before = (approval.block_number, current.last_active,
                                                 current.last_out)
    return msgspec.structs.replace(current, spenders=kept, last_block=last_block,
                                   active_before=active_before, out_before=out_before)


def rewind_block(activity: AddressActivity | None, block_number: int) -> AddressActivity | None:
    """Return the activity as it was before block ``block_number`` and later ones were applied.

    The agent calls it when a block arrives that the stored state already contains (a
    redelivery after the table's changelog got ahead of the committed offset, or a replay),
    and for a ``revert`` event, so the rules see the same state *before* the transfer as the
    first time. Exact for the latest applied block of the address (the common case),
    provided no movement of the address was dropped by the ``max_movements`` cap; for older
    blocks the times fall back to the retained movements.
    """
    if activity is None or activity.last_block is None or activity.last_block < block_number:
        return activity
    inflows = tuple(m for m in activity.inflows if m.block_number < block_number)
    outflows = tuple(m for m in activity.outflows if m.block_number < block_number)
    balances = dict(activity.balances)
    undone = [(m, -1) for m in activity.inflows if m.block_number >= block_number]
    undone += [(m, 1) for m in activity.outflows if m.block_number >= block_number]
    for movement, sign in undone:
        value = balances.pop(movement.asset_key, 0) + sign * movement.amount
        if value:
            balances[movement.asset_key] = value
    if activity.last_block == block_number:
        last_active, last_out = activity.active_before, activity.out_before
    else:
        last_active = max((m.block_time for m in (*inflows, *outflows)), default=None)
        last_out = max((m.block_time for m in outflows), default=None)
    spenders = tuple(s for s in activity.spenders if s.block_number < block_number)
    last_block = max((*(m.block_number for m in (*inflows, *outflows)),
                      *(s.block_number for s in spenders)), default=None)
    return AddressActivity(first_seen=activity.first_seen if last_active is not None else None,
                           last_active=last_active, last_out=last_out, inflows=inflows,
                           outflows=outflows, balances=balances, last_block=last_block,
                           spenders=spenders)


ACTIVITY_DECODER = msgspec.json.Decoder(AddressActivity)
"""Decoder of a stored :class:`AddressActivity` (the Faust table value)."""

TAINT_DECODER = msgspec.json.Decoder(tuple[TaintMark, ...])
"""Decoder of the stored taint marks of one address."""


@dataclass(frozen=True, slots=True)
class RuleContext(ScreeningContext):
    """A :class:`ScreeningContext` plus the state of both endpoints *before* the transfer.

    A subclass, so every rule written against ``ScreeningContext`` (``watched-address``) keeps
    working unchanged, and stateful rules accept a plain ``ScreeningContext`` too (see
    :func:`as_rule_context`: no state, no labels, no taint). Labels are list-hit categories
    such as ``mixer``, ``exchange-deposit``, ``bridge``, ``sanctioned``. An activity of
    ``None`` means chainwatch has observed nothing for that address (it counts as fresh).
    """

    from_activity: AddressActivity | None = None
    to_activity: AddressActivity | None = None
    from_labels: frozenset[str] = frozenset()
    to_labels: frozenset[str] = frozenset()
    from_taint: tuple[TaintMark, ...] = ()
    to_taint: tuple[TaintMark, ...] = ()

    def entries(self, side: Side) -> tuple[WatchEntry, ...]:
        """Watch entries of the sender (``out``) or the receiver (``in``)."""
        return tuple(self.from_entries if side == "out" else self.to_entries)

    def activity(self, side: Side) -> AddressActivity | None:
        """Activity of the sender (``out``) or the receiver (``in``) before the transfer."""
        return self.from_activity if side == "out" else self.to_activity

    def labels(self, side: Side) -> frozenset[str]:
        """Labels of the sender (``out``) or the receiver (``in``)."""
        return self.from_labels if side == "out" else self.to_labels

    def taint(self, side: Side) -> tuple[TaintMark, ...]:
        """Taint marks of the sender (``out``) or the receiver (``in``) before the transfer."""
        return self.from_taint if side == "out" else self.to_taint


def as_rule_context(context: ScreeningContext) -> RuleContext:
    """Return ``context`` itself if it is a :class:`RuleContext`, else one without state."""
    if isinstance(context, RuleContext):
        return context
    return RuleContext(from_entries=context.from_entries, to_entries=context.to_entries,
                       extra=context.extra)
