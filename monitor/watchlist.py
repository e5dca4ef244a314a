"""The replicated watchlist: a compacted Kafka topic, a full in-memory copy in every worker.

Writers (API, CLI, follow-the-money) publish :class:`WatchEntry` records keyed by
``chain:address:case`` and tombstones (``None``) to remove them. Every worker's
:class:`WatchlistReplica` reads the topic from the beginning and keeps following it, so each
worker screens against the full list and sees additions within milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence

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
_SLOT_DECODER = msgspec.msgpack.Decoder(list[_Stored])
_TAINT_ENCODER = msgspec.json.Encoder()
_TAINT_DECODER = msgspec.json.Decoder(TaintMark)
_BITS_PER_ENTRY = 64
"""Bitmap bits per entry: with two bits per address, about 1 miss in 1,000 reads a bucket."""
_BUCKETS = 1 << 16
"""Buckets per chain: one entry each for small lists, about fifteen per million entries."""
_MIN_BITMAP_BITS = 1 << 13


def _taint_of(stored: _Stored) -> TaintMark | None:
    return _TAINT_DECODER.decode(stored.taint) if stored.taint else None


def _canonical(address: str) -> bool:
    return (len(address) == 42 and address.startswith("0x")
            and _ADDRESS_CHARS.issuperset(address[2:]))


def _bucket(count: int, encoded: bytes) -> bytes:
    """A bucket: ``count`` encoded entries as a msgpack array with a 16-bit length."""
    return b"\xdc" + count.to_bytes(2, "big") + encoded


def _address(stored: _Stored) -> str:
    return "0x" + stored.address.hex() if stored.address else stored.text


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


class _ChainIndex:
    """One chain's entries: a bitmap of address hashes, and the entries in buckets.

    An address sets two bits of the bitmap (from the low and the high half of its hash): an
    address with either bit clear has no entry, which is the answer for nearly every address
    a block holds, found without touching the buckets. Otherwise its bucket (msgpack-encoded
    entries, each with its address) is decoded and searched exactly. The bitmap grows with the
    entries, rebuilt one bucket at a time; removals leave their bits set until then (a clear
    bit is always exact, a set one is only a hint).
    """

    __slots__ = ("bit_mask", "bits", "buckets", "entries", "hash_of")

    def __init__(self, hash_of: Callable[[str], int], capacity: int = 0) -> None:
        self.hash_of = hash_of
        self.entries = 0
        bits = _MIN_BITMAP_BITS
        while bits < capacity * _BITS_PER_ENTRY:
            bits <<= 1
        self.bits = bytearray(bits >> 3)
        self.bit_mask = bits - 1
        self.buckets: dict[int, bytes] = {}

    @staticmethod
    def bucket_of(code: int) -> int:
        return (code >> 40) & (_BUCKETS - 1)

    def mark(self, code: int) -> None:
        low, high = code & self.bit_mask, (code >> 32) & self.bit_mask
        self.bits[low >> 3] |= 1 << (low & 7)
        self.bits[high >> 3] |= 1 << (high & 7)

    def may_hold(self, address: str) -> bool:
        code = self.hash_of(address)
        low = code & self.bit_mask
        if not self.bits[low >> 3] >> (low & 7) & 1:
            return False
        high = (code >> 32) & self.bit_mask
        return bool(self.bits[high >> 3] >> (high & 7) & 1)

    def stored(self, address: str) -> list[_Stored]:
        """The decoded bucket ``address`` falls in (every entry in it, of any address)."""
        raw = self.buckets.get(self.bucket_of(self.hash_of(address)))
        return _SLOT_DECODER.decode(raw) if raw is not None else []

    def save(self, address: str, stored: list[_Stored]) -> None:
        key = self.bucket_of(self.hash_of(address))
        if stored:
            self.buckets[key] = _bucket(len(stored), b"".join(map(_SLOT_ENCODER.encode, stored)))
        else:
            self.buckets.pop(key, None)

    def append(self, address: str, new: _Stored) -> bool:
        """Add ``new`` to the bucket without decoding it if its address is surely not in it.

        A bucket is a msgpack array with a 16-bit length, so an entry is appended by copying:
        the fast path of loading a large list. False (nothing done) when the bucket may hold
        the address already (its 20 bytes occur in it) or the address is not canonical.
        """
        key = self.bucket_of(self.hash_of(address))
        raw = self.buckets.get(key)
        if raw is None:
            self.buckets[key] = _bucket(1, _SLOT_ENCODER.encode(new))
            return True
        count = int.from_bytes(raw[1:3], "big")
        if not new.address or new.address in raw or count == 0xFFFF:
            return False
        self.buckets[key] = _bucket(count + 1, raw[3:] + _SLOT_ENCODER.encode(new))
        return True

    def all_stored(self) -> Iterator[_Stored]:
        for raw in list(self.buckets.values()):
            yield from _SLOT_DECODER.decode(raw)

    def grow(self) -> None:
        """Size the bitmap for the entries, at least doubling it (removed entries' bits go)."""
        grown = _ChainIndex(self.hash_of, self.entries + 1)
        for raw in self.buckets.values():  # one bucket decoded at a time
            for stored in _SLOT_DECODER.decode(raw):
                grown.mark(self.hash_of(_address(stored)))
        self.bits, self.bit_mask = grown.bits, grown.bit_mask

    @property
    def full(self) -> bool:
        return self.entries * _BITS_PER_ENTRY > self.bit_mask + 1


class Watchlist:
    """An in-memory index of watch entries by ``(chain, address)``, compact enough for millions.

    Per chain, a bitmap answers "no entry" for almost every address at the cost of two bit
    tests on the string's own cached hash (nothing is converted or decoded), and the entries
    themselves are kept msgpack-encoded in buckets (65,536 per chain), decoded only on a hit:
    about 100 bytes of RSS per entry at a million (about 900 as :class:`WatchEntry` objects). Counts
    (entries, tainted addresses per case and origin) are kept as entries come and go.
    """

    def __init__(self) -> None:
        self._chains: dict[str, _ChainIndex] = {}
        self._hash: Callable[[str], int] = hash  # tests make addresses collide through it
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

    def put(self, entry: WatchEntry) -> None:
        """Add or replace the entry for its chain, address and case."""
        index = self._chains.get(entry.chain)
        if index is None:
            index = self._chains[entry.chain] = _ChainIndex(self._hash)
        new = self._store(entry)
        if index.append(entry.address, new):
            index.entries += 1
            self._size += 1
        else:
            stored = index.stored(entry.address)
            for i, old in enumerate(stored):
                if old.case == new.case and _address(old) == entry.address:
                    self._count(_taint_of(old), -1)
                    stored[i] = new
                    break
            else:
                stored.append(new)
                index.entries += 1
                self._size += 1
            index.save(entry.address, stored)
        self._count(entry.taint, +1)
        index.mark(self._hash(entry.address))
        if index.full:
            index.grow()

    def remove(self, chain: str, address: str, case_id: str) -> None:
        """Remove one entry if present."""
        index = self._chains.get(chain)
        case = self._words.index.get(case_id)
        if index is None or case is None or not index.may_hold(address):
            return
        stored = index.stored(address)
        kept = [s for s in stored if s.case != case or _address(s) != address]
        if len(kept) == len(stored):
            return
        for gone in stored:
            if gone.case == case and _address(gone) == address:
                self._count(_taint_of(gone), -1)
        removed = len(stored) - len(kept)
        self._size -= removed
        index.entries -= removed
        index.save(address, kept)
        if not index.entries:
            del self._chains[chain]

    def tainted_count(self, case_id: str, origin: str) -> int:
        """How many addresses the case's funds from ``origin`` have tainted so far."""
        return self._tainted.get((case_id, origin), 0)

    def lookup(self, chain: str, address: str) -> Sequence[WatchEntry]:
        """Entries watching ``address`` on ``chain`` (empty tuple when none)."""
        index = self._chains.get(chain)
        if index is None or not index.may_hold(address):  # the common case: a bit test
            return _EMPTY
        return self._found(index, chain, address)

    def _found(self, index: _ChainIndex, chain: str, address: str) -> tuple[WatchEntry, ...]:
        """The entries of ``address`` in its bucket (once the bitmap said it may have some)."""
        return tuple(self._entry(chain, address, s) for s in index.stored(address)
                     if _address(s) == address)

    def watches_any(self, chain: str, addresses: Iterable[str]) -> bool:
        """Whether any of ``addresses`` has an entry on ``chain`` (exact, decodes only on a hit).

        The quick test of a whole block: two bit tests per address (inlined: this is the hot
        path), and the bucket searched only when both bits are set (the address, or rarely
        another with the same bits).
        """
        index = self._chains.get(chain)
        if index is None:
            return False
        bits, mask, hash_of = index.bits, index.bit_mask, self._hash
        for address in addresses:
            code = hash_of(address)
            low = code & mask
            if bits[low >> 3] >> (low & 7) & 1:
                high = (code >> 32) & mask
                if bits[high >> 3] >> (high & 7) & 1 and self._found(index, chain, address):
                    return True
        return False

    def entries(self) -> Iterable[WatchEntry]:
        """Every entry, in no particular order."""
        for chain, index in list(self._chains.items()):
            for stored in index.all_stored():
                yield self._entry(chain, _address(stored), stored)

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
