"""Normalized records that travel through Kafka: transfers, blocks, watch entries and alerts.

Every record is a frozen :mod:`msgspec` struct. msgspec decodes a block message of a few
hundred transfers straight into typed objects (with validation) an order of magnitude faster
than ``faust.Record``, and it keeps 256-bit integers exact. Amounts are always integers in the
asset's base units; ids are deterministic so that replays and redeliveries are idempotent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

TransferKind = Literal["native", "erc20", "internal"]
AlertKind = Literal["native", "erc20", "internal", "approval"]
"""What an alert is about: a transfer of one of the ``TransferKind`` kinds, or an approval."""
AssetKind = Literal["native", "erc20"]
BlockEventKind = Literal["block", "revert"]
Direction = Literal["in", "out", "self"]
AlertStatus = Literal["provisional", "confirmed", "retracted"]
Severity = Literal["info", "low", "medium", "high", "critical"]

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
UNLIMITED_ALLOWANCE = 2**256 - 1
"""The allowance wallets and dapps use for "unlimited" (``type(uint256).max``)."""
_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")


class Asset(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """What moved: the chain's native coin or an ERC-20 token contract."""

    kind: AssetKind
    address: str | None = None  # token contract, lower-case 0x hex; None for native
    symbol: str | None = None
    decimals: int | None = None


class Transfer(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """One movement of value: a native transaction value, an ERC-20 log or an internal call."""

    id: str
    chain: str
    block_number: int
    block_hash: str
    block_time: int  # unix seconds, from the block header
    tx_hash: str
    tx_index: int
    kind: TransferKind
    from_address: str = msgspec.field(name="from")
    to_address: str = msgspec.field(name="to")
    asset: Asset
    amount: int  # base units (wei, token units); never a float
    log_index: int | None = None
    trace_address: tuple[int, ...] | None = None


class Approval(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """An ERC-20 ``Approval`` log (``approve`` or EIP-2612 ``permit``): owner lets spender pull."""

    id: str
    chain: str
    block_number: int
    block_hash: str
    block_time: int  # unix seconds, from the block header
    tx_hash: str
    tx_index: int
    log_index: int
    owner: str
    spender: str
    token: Asset  # kind erc20
    amount: int  # allowance in base units; UNLIMITED_ALLOWANCE means "no limit"

    @property
    def unlimited(self) -> bool:
        """Whether the allowance is the conventional "infinite" ``2**256 - 1``."""
        return self.amount == UNLIMITED_ALLOWANCE


class Block(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """One message on ``blocks.<chain>``: a canonical block with its transfers, or a revert.

    A ``revert`` event says that the block with this number and hash left the canonical chain
    (a reorg); it carries no transfers. Consumers key their state by block hash.
    """

    chain: str
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    kind: BlockEventKind = "block"
    head: int = 0  # chain head seen by the connector when it fetched this block
    transfers: tuple[Transfer, ...] = ()
    # Successful zero-value transactions (amount 0): no funds move, so amount-based rules never
    # see them, but rules about counterparties (sanctions) do.
    interactions: tuple[Transfer, ...] = ()
    # ERC-20 ``Approval`` logs of successful transactions, in log order.
    approvals: tuple[Approval, ...] = ()


class TransferEnds(msgspec.Struct, frozen=True, gc=False):
    """The part of a transfer (or zero-value call) that decides whether a block needs screening.

    Decoded by :data:`BLOCK_DIGEST_DECODER` instead of the whole :class:`Transfer`: its chain
    and both ends; every other field is skipped unparsed.
    """

    chain: str
    from_address: str = msgspec.field(name="from")
    to_address: str = msgspec.field(name="to")


class DatedTransferEnds(TransferEnds, frozen=True, gc=False):
    """:class:`TransferEnds` with the block time, for screening against dated address lists."""

    block_time: int


class ApprovalEnds(msgspec.Struct, frozen=True, gc=False):
    """The part of an approval that decides whether a block needs screening: its owner."""

    chain: str
    owner: str


class BlockDigest(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A block message read only as far as deciding whether it needs screening.

    Header fields as in :class:`Block`, and only the ends of each transfer, interaction and
    approval: a block none of whose addresses is watched or listed is settled from this alone
    (``Screener.needs_screening``), without building a :class:`Transfer` per transfer. Only
    the fields read here are validated; a block that needs screening is decoded in full.
    """

    chain: str
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    kind: BlockEventKind = "block"
    head: int = 0
    transfers: Sequence[TransferEnds] = ()
    interactions: Sequence[TransferEnds] = ()
    approvals: Sequence[ApprovalEnds] = ()

    def header(self) -> Block:
        """The block event without its transfers (what the lifecycle reads of a quiet block)."""
        return Block(chain=self.chain, number=self.number, hash=self.hash,
                     parent_hash=self.parent_hash, timestamp=self.timestamp, kind=self.kind,
                     head=self.head)


class DatedBlockDigest(BlockDigest, frozen=True, gc=False, kw_only=True):
    """A :class:`BlockDigest` whose transfers and interactions carry their block time."""

    transfers: Sequence[DatedTransferEnds] = ()
    interactions: Sequence[DatedTransferEnds] = ()


class TaintHop(msgspec.Struct, frozen=True, array_like=True):
    """One transfer on a taint path; encodes as ``[tx_hash, from, to, amount, block_number]``."""

    tx_hash: str
    from_address: str
    to_address: str
    amount: int  # base units of the whole transfer
    block_number: int


class TaintMark(msgspec.Struct, frozen=True, kw_only=True):
    """Funds of a case that reached an address, and the path they took from the case's origin.

    Written by follow-the-money (not by the rules): ``origin`` is the watched address the case
    started from, ``hop`` the number of transfers between the origin and this address
    (``len(path)``; the origin itself is hop 0 with an empty path), ``amount`` the tainted part
    of the holdings in ``asset_key`` base units, and ``path`` the transfers from the origin, in
    order: ``path[0].from_address == origin`` and ``path[-1].to_address`` is the marked
    address.
    """

    origin: str
    case_id: str
    hop: int
    amount: int
    asset_key: str
    path: tuple[TaintHop, ...] = ()


class WatchEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An address an investigator watches, for one case (seized wallet, suspect, tainted hop)."""

    chain: str
    address: str  # lower-case 0x hex
    case_id: str
    label: str = ""
    category: str = "seized"
    source: str = "manual"
    added_at: int = 0  # unix seconds
    taint: TaintMark | None = None  # set on addresses reached by follow-the-money

    @property
    def key(self) -> str:
        """Compacted-topic key: one entry per chain, address and case."""
        return watch_key(self.chain, self.address, self.case_id)


class Alert(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """A finding about one transfer (or approval), with the on-chain facts needed to verify it.

    For an approval (``transfer_kind == "approval"``): ``from`` is the owner, ``to`` the
    spender, ``asset`` the token and ``amount`` the allowance.
    """

    id: str
    rule: str
    severity: Severity
    status: AlertStatus
    chain: str
    block_number: int
    block_hash: str
    block_time: int
    tx_hash: str
    transfer_id: str  # for an approval alert: the approval's id
    transfer_kind: AlertKind
    from_address: str = msgspec.field(name="from")
    to_address: str = msgspec.field(name="to")
    asset: Asset
    amount: str  # base units as a decimal string: exact for every JSON consumer
    direction: Direction
    watch: WatchEntry
    confirmations: int
    detected_at: float  # unix seconds, wall clock of the worker
    title: str = ""
    log_index: int | None = None
    trace_address: tuple[int, ...] | None = None
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)  # e.g. the taint path
    # Lifecycle (monitor/lifecycle.py): each event of an alert id has the next revision.
    revision: int = 0
    count: int = 1  # transfers folded into this alert within the rule's cooldown
    aggregated_transfer_ids: tuple[str, ...] = ()  # when count > 1: all of them, own first
    first_block: int | None = None  # when count > 1: lowest and highest block of them
    last_block: int | None = None
    moved_from: str | None = None  # block hash it was reported in before a reorg


def normalize_address(value: str) -> str:
    """Return a lower-case ``0x`` address, or raise ``ValueError`` naming the bad value.

    Surrounding white space is ignored; anything but exactly 40 ASCII hex digits is refused.
    """
    text = value.strip() if isinstance(value, str) else ""
    if not _ADDRESS.fullmatch(text):
        raise ValueError(f"not a 20-byte 0x address: {value!r}")
    return "0x" + text[2:].lower()


def watch_key(chain: str, address: str, case_id: str) -> str:
    """Deterministic key of a watch entry."""
    return f"{chain}:{address}:{case_id}"


def native_transfer_id(chain: str, tx_hash: str) -> str:
    """Id of the value carried by a transaction itself."""
    return f"{chain}:{tx_hash}:tx"


def log_transfer_id(chain: str, tx_hash: str, log_index: int) -> str:
    """Id of a token transfer log (log index is unique within the block)."""
    return f"{chain}:{tx_hash}:log:{log_index}"


def log_approval_id(chain: str, tx_hash: str, log_index: int) -> str:
    """Id of an ERC-20 ``Approval`` log (log index is unique within the block)."""
    return f"{chain}:{tx_hash}:approval:{log_index}"


def trace_transfer_id(chain: str, tx_hash: str, trace_address: tuple[int, ...]) -> str:
    """Id of an internal value transfer, by its position in the call tree."""
    return f"{chain}:{tx_hash}:trace:{'_'.join(str(i) for i in trace_address)}"


def alert_id(rule: str, transfer_id: str, case_id: str) -> str:
    """Deterministic alert id: ``sha256("v1|rule|transfer_id|case_id")``, first 32 hex digits.

    Anyone holding the alert can recompute it from its own fields.
    """
    digest = hashlib.sha256(f"v1|{rule}|{transfer_id}|{case_id}".encode()).hexdigest()
    return digest[:32]


BLOCK_ENCODER = msgspec.json.Encoder()
BLOCK_DECODER = msgspec.json.Decoder(Block)
BLOCK_DIGEST_DECODER = msgspec.json.Decoder(BlockDigest)
"""Decodes a block message into a :class:`BlockDigest` (ends only), several times faster."""
DATED_BLOCK_DIGEST_DECODER = msgspec.json.Decoder(DatedBlockDigest)
"""As :data:`BLOCK_DIGEST_DECODER`, with block times (for screening against address lists)."""
ALERT_DECODER = msgspec.json.Decoder(Alert)
WATCH_DECODER = msgspec.json.Decoder(WatchEntry)


def encode(record: msgspec.Struct) -> bytes:
    """Serialize a record to compact JSON bytes."""
    return BLOCK_ENCODER.encode(record)
