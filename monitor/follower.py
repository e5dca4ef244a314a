"""Read a whole topic (or its tail) outside any consumer group and keep following it.

This is how every worker holds a full replica of the watchlist: each worker reads the compacted
watchlist topic from the beginning with a group-less consumer assigned to every partition, then
keeps tailing it. Unlike a Faust GlobalTable (with known standby bugs) the behaviour is simple
to reason about: a worker is *ready* once it has read up to the end offsets it saw at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = logging.getLogger(__name__)

RecordHandler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None] | None]


class TopicFollower:
    """Consume every partition of one topic from the start (or the last ``tail`` records)."""

    def __init__(self, bootstrap: str, topic: str, handler: RecordHandler,
                 tail: int | None = None, name: str = "follower") -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.handler = handler
        self.tail = tail
        self.name = name
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, assign all partitions and start reading in the background."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        self._consumer = consumer
        partitions: set[int] | None = None
        for _ in range(60):
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.5)
        if not partitions:
            await consumer.stop()
            raise RuntimeError(f"topic {self.topic!r} does not exist")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        if self.tail is not None:
            begins = await consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(begins[tp], ends[tp] - self.tail))
        else:
            await consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run(ends), name=f"{self.name}:{self.topic}")

    async def _run(self, ends: dict[TopicPartition, int]) -> None:
        consumer = self._consumer
        assert consumer is not None
        pending = {tp: end for tp, end in ends.items() if end > 0}
        if not pending:
            self.ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    try:
                        result = self.handler(record)
                        if result is not None:
                            await result
                    except Exception:
                        log.exception("%s: cannot apply record at %s offset %s", self.name,
                                      tp, record.offset)
            if not self.ready.is_set():
                for tp in list(pending):
                    if await consumer.position(tp) >= pending[tp]:
                        del pending[tp]
                if not pending:
                    self.ready.set()
                    log.info("%s caught up with %s", self.name, self.topic)

    async def stop(self) -> None:
        """Stop reading and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
