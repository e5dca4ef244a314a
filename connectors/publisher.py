"""Publish block events to the chain's Kafka topic, which is also the connector's checkpoint.

With a ``transactional_id`` (one per chain, shared by every connector instance of the chain)
each batch of blocks is one Kafka transaction, and starting the producer fences every earlier
producer with that id: the broker aborts its open transaction and refuses its later writes. The
checkpoint is then read *after* that fencing, with ``read_committed``, so what a new active
instance continues from can no longer change under it: a paused or zombie ex-leader cannot
add a block after the takeover, and what it left uncommitted is never seen by anyone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from monitor.errors import ConnectorError
from monitor.records import BLOCK_DECODER, Block, encode
from monitor.settings import kafka_codec

log = logging.getLogger(__name__)

BLOCK_PARTITION = 0  # every block event of a chain goes to one partition: order is the contract
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_TOPIC_ALREADY_EXISTS = 36
_FENCE_ERRORS = (ProducerFenced, InvalidProducerEpoch)
TRANSACTION_TIMEOUT_MS = 30_000  # an instance that died mid-batch holds readers back this long
INIT_TIMEOUT_SECONDS = 60.0
CLOSE_TIMEOUT_SECONDS = 5.0


class ConnectorFenced(ConnectorError):
    """Another instance started the chain's transactional producer: this one must stop writing."""


def is_fenced(exc: BaseException) -> bool:
    """Tell whether ``exc`` (or an exception it was raised from) says the producer was fenced."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (*_FENCE_ERRORS, ConnectorFenced)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class BlockSink(Protocol):
    """Where the streamer writes block events and reads its checkpoint back from."""

    async def publish(self, blocks: Sequence[Block]) -> None:
        """Write ``blocks`` in order and return once every one is acknowledged."""

    async def read_tail(self, max_messages: int) -> list[Block]:
        """Return up to the last ``max_messages`` events, oldest first."""


class KafkaBlockPublisher:
    """``acks=all`` producer of :class:`Block` events keyed by block number.

    Idempotent always; transactional (and fencing) when given a ``transactional_id``. In that
    mode :meth:`read_tail` starts the producer (fencing the others) before it reads, and
    :meth:`publish` refuses to write until the checkpoint was read after the producer started.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int = 1,
        replication_factor: int = 1,
        client_id: str = "chainwatch-connector",
        min_insync_replicas: int = 1,
        transactional_id: str | None = None,
        transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS,
        compression: str = "none",
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.min_insync_replicas = min_insync_replicas
        self.client_id = client_id
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self.compression = compression  # "none" or a Kafka codec (kafka.compression)
        self.fenced = asyncio.Event()
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
                topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES),
                               "min.insync.replicas": str(self.min_insync_replicas)},
            )])
            for error in getattr(response, "topic_errors", ()):
                code = error[1]
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise ConnectorError(f"cannot create topic {self.topic!r}: error code {code}",
                                         topic=self.topic)
            log.info("created topic %s (%d partition(s))", self.topic, self.partitions)
        finally:
            await admin.close()

    def rearm(self) -> None:
        """Allow writing again after a fence (a new term of this instance as the active one)."""
        self.fenced.clear()

    def _check_not_fenced(self) -> None:
        if self.fenced.is_set():
            raise ConnectorFenced("this connector instance was fenced by another one",
                                  topic=self.topic, transactional_id=self.transactional_id)

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            max_request_size=MAX_MESSAGE_BYTES,
            linger_ms=5,
            transactional_id=self.transactional_id,
            transaction_timeout_ms=self.transaction_timeout_ms,
            compression_type=kafka_codec(self.compression),
        )

    async def fence(self) -> None:
        """Start a new transactional producer, fencing every earlier one with the same id.

        Returns once the broker gave this producer its epoch, i.e. once the open transaction
        of any earlier holder of the id is aborted and its writes are refused.
        """
        self._check_not_fenced()
        await self.close()
        producer = self._new_producer()
        try:
            await producer.start()
            async with asyncio.timeout(INIT_TIMEOUT_SECONDS):
                await producer.begin_transaction()  # waits for InitProducerId (the fence)
                await producer.commit_transaction()  # empty: nothing reaches the topic
        except BaseException as exc:
            await producer.stop()
            if is_fenced(exc):
                self.fenced.set()
                raise ConnectorFenced("fenced while starting the producer", topic=self.topic,
                                      transactional_id=self.transactional_id) from exc
            if isinstance(exc, TimeoutError):
                raise ConnectorError("the transaction coordinator did not answer in time",
                                     topic=self.topic, seconds=INIT_TIMEOUT_SECONDS) from None
            raise
        self._producer = producer
        log.info("topic %s: transactional producer %s started (earlier holders fenced)",
                 self.topic, self.transactional_id)

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            if self.transactional_id is not None:
                raise ConnectorError("the checkpoint must be read (after fencing) before "
                                     "publishing", topic=self.topic)
            producer = self._new_producer()
            await producer.start()
            self._producer = producer
        return self._producer

    async def publish(self, blocks: Sequence[Block]) -> None:
        """Send every block in order and await every acknowledgement (one transaction).

        On any failure the producer is stopped (letting in-flight requests settle) before the
        error is raised, so that a following :meth:`read_tail` shows exactly what landed. A
        fence raises :class:`ConnectorFenced` and leaves this publisher refusing to write.
        """
        if not blocks:
            return
        self._check_not_fenced()
        producer = await self._ready_producer()
        transactional = self.transactional_id is not None
        try:
            if transactional:
                await producer.begin_transaction()
            pending = [
                await producer.send(self.topic, value=encode(block),
                                    key=str(block.number).encode("ascii"),
                                    partition=BLOCK_PARTITION)
                for block in blocks
            ]
            await asyncio.gather(*pending)
            if transactional:
                await producer.commit_transaction()
        except BaseException as exc:
            await self.close()
            if is_fenced(exc):
                self.fenced.set()
                raise ConnectorFenced("another connector instance took over; this one stops "
                                      "writing", topic=self.topic,
                                      transactional_id=self.transactional_id) from exc
            raise

    async def close(self) -> None:
        """Flush and stop the producer (an open transaction is left to the next fence).

        Bounded: a producer still waiting for a dead broker is given up after
        ``CLOSE_TIMEOUT_SECONDS``; whatever it might still send belongs to a transaction the
        next fence aborts.
        """
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await producer.stop()
        except TimeoutError:
            log.warning("topic %s: producer did not stop within %.0f s; abandoned", self.topic,
                        CLOSE_TIMEOUT_SECONDS)

    async def read_tail(self, max_messages: int) -> list[Block]:
        """Read the last ``max_messages`` committed events of the block partition, oldest first.

        In transactional mode the producer is started (fencing the others) first, unless it
        already runs since the last read. Offsets also hold transaction markers and aborted
        records, so the range read back grows until it holds ``max_messages`` events.
        """
        self._check_not_fenced()
        if self.transactional_id is not None and self._producer is None:
            await self.fence()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, client_id=self.client_id, group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, BLOCK_PARTITION)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]  # the last stable offset
            begin = (await consumer.beginning_offsets([tp]))[tp]
            want = max(0, max_messages)
            span = want
            while True:
                start = max(begin, end - span)
                out = await _read_range(consumer, tp, start, end)
                if len(out) >= want or start <= begin:
                    return out[len(out) - want:] if want else []
                span *= 2
        finally:
            await consumer.stop()


async def _read_range(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int,
                      end: int) -> list[Block]:
    """Decode the committed block events between offsets ``start`` and ``end``."""
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
