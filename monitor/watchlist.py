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
from monitor.records import WATCH_DECODER, WatchEntry, encode, watch_key

log = logging.getLogger(__name__)

_EMPTY: tuple[WatchEntry, ...] = ()


class Watchlist:
    """An in-memory index of watch entries by ``(chain, address)``."""

    def __init__(self) -> None:
        self._by_address: dict[tuple[str, str], dict[str, WatchEntry]] = {}
        self._size = 0
        self._tainted: dict[tuple[str, str], int] = {}  # (case, origin) -> tainted addresses

    def _count(self, entry: WatchEntry | None, delta: int) -> None:
        if entry is not None and entry.taint is not None:
            key = (entry.taint.case_id, entry.taint.origin)
            self._tainted[key] = self._tainted.get(key, 0) + delta
            if self._tainted[key] <= 0:
                del self._tainted[key]

    def put(self, entry: WatchEntry) -> None:
        """Add or replace the entry for its chain, address and case."""
        cases = self._by_address.setdefault((entry.chain, entry.address), {})
        previous = cases.get(entry.case_id)
        if previous is None:
            self._size += 1
        self._count(previous, -1)
        self._count(entry, +1)
        cases[entry.case_id] = entry

    def remove(self, chain: str, address: str, case_id: str) -> None:
        """Remove one entry if present."""
        cases = self._by_address.get((chain, address))
        removed = cases.pop(case_id, None) if cases else None
        if removed is not None:
            self._size -= 1
            self._count(removed, -1)
            if not cases:
                del self._by_address[(chain, address)]

    def tainted_count(self, case_id: str, origin: str) -> int:
        """How many addresses the case's funds from ``origin`` have tainted so far."""
        return self._tainted.get((case_id, origin), 0)

    def lookup(self, chain: str, address: str) -> Sequence[WatchEntry]:
        """Entries watching ``address`` on ``chain`` (empty tuple when none)."""
        cases = self._by_address.get((chain, address))
        return tuple(cases.values()) if cases else _EMPTY

    def entries(self) -> Iterable[WatchEntry]:
        """Every entry, in no particular order."""
        for cases in self._by_address.values():
            yield from cases.values()

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
