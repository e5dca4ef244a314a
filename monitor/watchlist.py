"""The replicated watchlist: a compacted Kafka topic, a full in-memory copy in every worker.

Writers (API, CLI, follow-the-money) publish :class:`WatchEntry` records keyed by
``chain:address:case`` and tombstones (``None``) to remove them. Every worker's
:class:`WatchlistReplica` reads the topic from the beginning and keeps following it, so each
worker screens against the full list and sees additions within milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

import msgspec
from aiokafka import AIOKafkaProducer, ConsumerRecord

from monitor.follower import TopicFollower
from monitor.metrics import WATCHLIST_ENTRIES
from monitor.records import WATCH_DECODER, TaintMark, WatchEntry, encode, watch_key

log = logging.getLogger(__name__)

_EMPTY: tuple[WatchEntry, ...] = ()
_ADDRESS_CHARS = frozenset("0123456789abcdef")


class _Stored(msgspec.Struct, array_like=True, omit_defaults=True):
    """One entry as the index holds it: the address as 20 bytes, repeated strings as numbers.

    ``address`` is empty and ``text`` holds the address when it is not a lower-case ``0x``
    address of 40 hex digits (kept exactly as given, so lookups stay exact-match).
    """

    address: bytes
    case: int  # index into the vocabulary
    label: str
    category: int  # index into the vocabulary
    source: int  # index into the vocabulary
    added_at: int
    taint: bytes = b""  # the TaintMark as JSON: msgpack cannot hold amounts above 2**64
    text: str = ""


_SLOT_ENCODER = msgspec.msgpack.Encoder()
_KEY_MASK = (1 << 30) - 1  # 30-bit keys are the smallest ints Python allocates (28 bytes)
_SLOT_DECODER = msgspec.msgpack.Decoder(list[_Stored])
_TAINT_ENCODER = msgspec.json.Encoder()
_TAINT_DECODER = msgspec.json.Decoder(TaintMark)


def _taint_of(stored: _Stored) -> TaintMark | None:
    return _TAINT_DECODER.decode(stored.taint) if stored.taint else None


def _canonical(address: str) -> bool:
    return (len(address) == 42 and address.startswith("0x")
            and _ADDRESS_CHARS.issuperset(address[2:]))


class _Vocabulary:
    """Strings that repeat across entries (case ids, categories, sources), stored once."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.index: dict[str, int] = {}

    def id(self, word: str) -> int:
        known = self.index.get(word)
        if known is None:
            known = self.index[word] = len(self.words)
            self.words.append(word)
        return known


class Watchlist:
    """An in-memory index of watch entries by ``(chain, address)``, compact enough for millions.

    Per chain, a dict maps 30 bits of ``hash(address)`` (the string's own cached hash, so a
    lookup converts nothing) to one msgpack-encoded slot: the entries of that address, one per
    case, and of any other address with the same key, told apart by the stored address.
    Entries are decoded only on a hit, which is rare: about 180 bytes per entry instead of ~900
    as :class:`WatchEntry` objects. Counts (entries, tainted addresses per case and origin) are
    kept as entries come and go.
    """

    def __init__(self) -> None:
        self._chains: dict[str, dict[int, bytes]] = {}
        self._mask = _KEY_MASK
        self._words = _Vocabulary()
        self._size = 0
        self._tainted: dict[tuple[str, str], int] = {}  # (case, origin) -> tainted addresses

    def _count(self, taint: TaintMark | None, delta: int) -> None:
        if taint is not None:
            key = (taint.case_id, taint.origin)
            self._tainted[key] = self._tainted.get(key, 0) + delta
            if self._tainted[key] <= 0:
                del self._tainted[key]

    def _store(self, entry: WatchEntry) -> _Stored:
        words = self._words
        canonical = _canonical(entry.address)
        return _Stored(bytes.fromhex(entry.address[2:]) if canonical else b"",
                       words.id(entry.case_id), entry.label, words.id(entry.category),
                       words.id(entry.source), entry.added_at,
                       _TAINT_ENCODER.encode(entry.taint) if entry.taint is not None else b"",
                       "" if canonical else entry.address)

    def _entry(self, chain: str, address: str, stored: _Stored) -> WatchEntry:
        words = self._words.words
        return WatchEntry(chain=chain, address=address, case_id=words[stored.case],
                          label=stored.label, category=words[stored.category],
                          source=words[stored.source], added_at=stored.added_at,
                          taint=_taint_of(stored))

    @staticmethod
    def _address(stored: _Stored) -> str:
        return "0x" + stored.address.hex() if stored.address else stored.text

    def put(self, entry: WatchEntry) -> None:
        """Add or replace the entry for its chain, address and case."""
        slots = self._chains.setdefault(entry.chain, {})
        key = hash(entry.address) & self._mask
        new = self._store(entry)
        raw = slots.get(key)
        stored = _SLOT_DECODER.decode(raw) if raw is not None else []
        for i, old in enumerate(stored):
            if old.case == new.case and self._address(old) == entry.address:
                self._count(_taint_of(old), -1)
                stored[i] = new
                break
        else:
            stored.append(new)
            self._size += 1
        self._count(entry.taint, +1)
        slots[key] = _SLOT_ENCODER.encode(stored)

    def remove(self, chain: str, address: str, case_id: str) -> None:
        """Remove one entry if present."""
        slots = self._chains.get(chain)
        case = self._words.index.get(case_id)
        raw = slots.get(hash(address) & self._mask) if slots is not None else None
        if raw is None or case is None or slots is None:
            return
        stored = _SLOT_DECODER.decode(raw)
        kept = [s for s in stored if s.case != case or self._address(s) != address]
        if len(kept) == len(stored):
            return
        for gone in stored:
            if gone.case == case and self._address(gone) == address:
                self._count(_taint_of(gone), -1)
        self._size -= len(stored) - len(kept)
        if kept:
            slots[hash(address) & self._mask] = _SLOT_ENCODER.encode(kept)
        else:
            del slots[hash(address) & self._mask]
            if not slots:
                del self._chains[chain]

    def tainted_count(self, case_id: str, origin: str) -> int:
        """How many addresses the case's funds from ``origin`` have tainted so far."""
        return self._tainted.get((case_id, origin), 0)

    def lookup(self, chain: str, address: str) -> Sequence[WatchEntry]:
        """Entries watching ``address`` on ``chain`` (empty tuple when none)."""
        slots = self._chains.get(chain)
        if slots is None:
            return _EMPTY
        raw = slots.get(hash(address) & self._mask)
        if raw is None:  # the common case: one dict probe, nothing decoded
            return _EMPTY
        return tuple(self._entry(chain, address, s) for s in _SLOT_DECODER.decode(raw)
                     if self._address(s) == address)

    def watches_any(self, chain: str, addresses: Iterable[str]) -> bool:
        """Whether any of ``addresses`` has an entry on ``chain`` (exact, decodes only on a hit).

        The quick test of a whole block: one probe of the chain's index per address, and a
        full :meth:`lookup` only when the probe finds a slot (the address or a hash neighbour).
        """
        slots = self._chains.get(chain)
        if not slots:
            return False
        mask = self._mask
        for address in addresses:
            if (hash(address) & mask) in slots and self.lookup(chain, address):
                return True
        return False

    def entries(self) -> Iterable[WatchEntry]:
        """Every entry, in no particular order."""
        for chain, slots in list(self._chains.items()):
            for raw in list(slots.values()):
                for stored in _SLOT_DECODER.decode(raw):
                    yield self._entry(chain, self._address(stored), stored)

    def __len__(self) -> int:
        return self._size


def _parse_key(key: bytes) -> tuple[str, str, str] | None:
    parts = key.decode("utf-8", "replace").split(":", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


class WatchlistReplica(Watchlist):
    """A :class:`Watchlist` kept equal to the compacted watchlist topic."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__()
        self._follower = TopicFollower(bootstrap, topic, self._apply, name="watchlist")

    @property
    def ready(self) -> asyncio.Event:
        """Set once the replica has read everything written before it started."""
        return self._follower.ready

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None:
            log.warning("watchlist record without key at offset %s ignored", record.offset)
            return
        if record.value is None:
            parsed = _parse_key(record.key)
            if parsed is not None:
                self.remove(*parsed)
        else:
            try:
                self.put(WATCH_DECODER.decode(record.value))
            except msgspec.DecodeError as exc:
                log.error("bad watchlist record at offset %s: %s", record.offset, exc)
        WATCHLIST_ENTRIES.set(len(self))

    async def start(self) -> None:
        """Start following the topic (returns at once; await ``ready`` to wait for catch-up)."""
        await self._follower.start()

    async def stop(self) -> None:
        """Stop following."""
        await self._follower.stop()


class WatchlistWriter:
    """Publishes watch entries and removals to the compacted topic."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.bootstrap = bootstrap
        self._producer_or_none: AIOKafkaProducer | None = None

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._producer_or_none is None:
            raise RuntimeError("WatchlistWriter used before start()")
        return self._producer_or_none

    async def start(self) -> None:
        """Connect the producer (inside the running event loop)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=5)
        await producer.start()
        self._producer_or_none = producer

    async def stop(self) -> None:
        """Flush and close."""
        if self._producer_or_none is not None:
            await self._producer_or_none.stop()
            self._producer_or_none = None

    async def put_many(self, entries: Iterable[WatchEntry]) -> int:
        """Publish entries and wait until the broker acknowledged every one."""
        futures = [await self._producer.send(self.topic, key=e.key.encode(), value=encode(e))
                   for e in entries]
        await asyncio.gather(*futures)
        return len(futures)

    async def remove(self, chain: str, address: str, case_id: str) -> None:
        """Publish a tombstone for one entry and wait for the acknowledgement."""
        key = watch_key(chain, address, case_id).encode()
        await (await self._producer.send(self.topic, key=key, value=None))
