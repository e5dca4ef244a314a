"""Fetch what a consumer skipped, instead of losing it: the records between two offsets.

faust (0.15) can hand an agent a later event first, right after a recovery seek, and can commit
an offset past events it never delivered. An agent that knows what must come next (the
screening agent: the block after its tip; the delivery agent: the offset after the last one it
handled) notices a jump and calls :func:`read_between` for the records it did not get; it
handles them, in order, before the event in hand. Seeking faust's own consumer back is not used:
faust's fetch loop drops records below the offset of the message it is delivering, so a seek
from an agent can lose the very records it asked for. If nothing lies in between (a block
missing from the topic, records removed by retention), the stream itself has a break: the event
is handled anyway and an error is logged.

Every fill and every break counts in ``chainwatch_rereads_total{topic,kind}``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from monitor.metrics import REREADS

log = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Record:
    """One message an agent handles, from faust's stream or read directly from the broker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @classmethod
    def of_event(cls, event: faust.EventT) -> Record:
        """The message of a faust stream event."""
        message = event.message
        return cls(message.topic, message.partition, message.offset, message.key, event.value)

    @classmethod
    def of_consumer(cls, record: ConsumerRecord[bytes, bytes]) -> Record:
        """A record read by :func:`read_between`."""
        return cls(record.topic, record.partition, record.offset, record.key,
                   record.value or b"")


async def read_between(bootstrap: str, topic: str, partition: int, start: int, end: int,
                       timeout: float = READ_TIMEOUT_SECONDS
                       ) -> list[ConsumerRecord[bytes, bytes]]:
    """Committed records of ``topic[partition]`` with ``start <= offset < end``, in order.

    A group-less ``read_committed`` consumer, so nothing of the worker's group changes. Raises
    :class:`KafkaTimeoutError` (a broker error: callers retry) if the range cannot be read in
    ``timeout`` seconds.
    """
    if start >= end:
        return []
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed",
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        found: list[ConsumerRecord[bytes, bytes]] = []

        async def read() -> None:
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=500)
                found.extend(r for r in batch.get(tp, []) if start <= r.offset < end)
                if not batch and await consumer.position(tp) >= (
                        await consumer.end_offsets([tp]))[tp]:
                    return  # the log ends (or was truncated) before ``end``

        try:
            await asyncio.wait_for(read(), timeout)
        except TimeoutError as exc:
            raise KafkaTimeoutError(f"reading {topic}[{partition}] offsets {start}..{end - 1} "
                                    f"took over {timeout:g} s") from exc
        return found
    finally:
        await consumer.stop()


def report_fill(agent: str, topic: str, what: str, start: int, end: int, found: int) -> None:
    """Log and count a fill of offsets ``start..end-1`` (``found`` records in between)."""
    if found:
        REREADS.labels(topic, "reread").inc()
        log.warning("%s: %s; read the %d record(s) of offsets %d..%d of %s that were skipped",
                    agent, what, found, start, end - 1, topic)
    else:
        REREADS.labels(topic, "break").inc()
        log.error("%s: %s, and nothing lies between offsets %d and %d of %s; handling it "
                  "anyway", agent, what, start, end - 1, topic)
