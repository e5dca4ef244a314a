"""Publish block events to the chain's Kafka topic, which is also the connector's checkpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from monitor.errors import ConnectorError
from monitor.records import BLOCK_DECODER, Block, encode

log = logging.getLogger(__name__)

BLOCK_PARTITION = 0  # every block event of a chain goes to one partition: order is the contract
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_TOPIC_ALREADY_EXISTS = 36


class BlockSink(Protocol):
    """Where the streamer writes block events and reads its checkpoint back from."""

    async def publish(self, blocks: Sequence[Block]) -> None:
        """Write ``blocks`` in order and return once every one is acknowledged."""

    async def read_tail(self, max_messages: int) -> list[Block]:
        """Return up to the last ``max_messages`` events, oldest first."""


class KafkaBlockPublisher:
    """Idempotent, ``acks=all`` producer of :class:`Block` events keyed by block number."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int = 1,
        replication_factor: int = 1,
        client_id: str = "chainwatch-connector",
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def ensure_topic(self) -> None:
        """Create the topic if it is missing (one partition unless configured otherwise)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self.client_id)
        await admin.start()
        try:
            if self.topic in await admin.list_topics():
                return
            response = await admin.create_topics([NewTopic(
                self.topic, self.partitions, self.replication_factor,
                topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
            )])
            for error in getattr(response, "topic_errors", ()):
                code = error[1]
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise ConnectorError(f"cannot create topic {self.topic!r}: error code {code}",
                                         topic=self.topic)
            log.info("created topic %s (%d partition(s))", self.topic, self.partitions)
        finally:
            await admin.close()

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=self.client_id,
                acks="all",
                enable_idempotence=True,
                max_request_size=MAX_MESSAGE_BYTES,
                linger_ms=5,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def publish(self, blocks: Sequence[Block]) -> None:
        """Send every block in order and await every acknowledgement.

        On any failure the producer is stopped (letting in-flight requests settle) before the
        error is raised, so that a following :meth:`read_tail` shows exactly what landed.
        """
        if not blocks:
            return
        producer = await self._ready_producer()
        try:
            pending = [
                await producer.send(self.topic, value=encode(block),
                                    key=str(block.number).encode("ascii"),
                                    partition=BLOCK_PARTITION)
                for block in blocks
            ]
            await asyncio.gather(*pending)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Flush and stop the producer (a later publish starts a new one)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def read_tail(self, max_messages: int) -> list[Block]:
        """Read the last ``max_messages`` events of the block partition, oldest first."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, client_id=self.client_id, group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, BLOCK_PARTITION)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            begin = (await consumer.beginning_offsets([tp]))[tp]
            start = max(begin, end - max(0, max_messages))
            if start >= end:
                return []
            consumer.seek(tp, start)
            out: list[Block] = []
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                for record in batches.get(tp, ()):
                    if record.offset < end and record.value is not None:
                        out.append(BLOCK_DECODER.decode(record.value))
            return out
        finally:
            await consumer.stop()
