"""Names, creation and reading back of chainwatch's Kafka topics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from monitor.errors import ServiceError
from monitor.settings import ChainwatchConfig

log = logging.getLogger(__name__)


def block_topic(prefix: str, chain: str) -> str:
    """Topic holding one message per block (or revert) of ``chain``."""
    return f"{prefix}blocks.{chain}"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic chainwatch owns, with its partitions and configs."""

    name: str
    partitions: int
    configs: dict[str, str]


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic name derived from a configuration."""

    prefix: str
    chains: tuple[str, ...]
    partitions: int
    replication_factor: int
    min_insync_replicas: int = 1

    @classmethod
    def from_config(cls, config: ChainwatchConfig) -> Topics:
        """Derive topic names from the YAML configuration."""
        return cls(config.kafka.topic_prefix, tuple(c.name for c in config.chains),
                   config.kafka.partitions, config.kafka.replication_factor,
                   config.kafka.min_insync_replicas)

    def blocks(self, chain: str) -> str:
        """Block topic of ``chain``."""
        return block_topic(self.prefix, chain)

    @property
    def alerts(self) -> str:
        """Alerts raised by the screening agent, keyed by alert id."""
        return f"{self.prefix}alerts"

    @property
    def watchlist(self) -> str:
        """Compacted topic of watch entries, keyed by ``chain:address:case``."""
        return f"{self.prefix}watchlist"

    @property
    def alert_audit(self) -> str:
        """Append-only audit trail of analyst actions on alerts, keyed by alert id."""
        return f"{self.prefix}alert-audit"

    @property
    def deadletter(self) -> str:
        """Messages that could not be processed or delivered, with the error."""
        return f"{self.prefix}deadletter"

    def specs(self) -> list[TopicSpec]:
        """Every topic with the settings it must be created with."""
        specs = [TopicSpec(self.blocks(c), 1, {}) for c in self.chains]
        specs.append(TopicSpec(self.alerts, self.partitions, {}))
        specs.append(TopicSpec(self.watchlist, 1, {"cleanup.policy": "compact",
                                                    "min.compaction.lag.ms": "0"}))
        specs.append(TopicSpec(self.deadletter, 1, {}))
        # one partition: one order of the trail for every reader; kept forever (evidence)
        specs.append(TopicSpec(self.alert_audit, 1, {"cleanup.policy": "delete",
                                                     "retention.ms": "-1",
                                                     "retention.bytes": "-1"}))
        return [with_replication(s, self.min_insync_replicas) for s in specs]


def replication_configs(min_insync_replicas: int) -> dict[str, str]:
    """Topic configs every chainwatch topic gets: ``min.insync.replicas`` (acks=all needs it)."""
    return {"min.insync.replicas": str(min_insync_replicas)}


def with_replication(spec: TopicSpec, min_insync_replicas: int) -> TopicSpec:
    """``spec`` with :func:`replication_configs` added (its own configs win)."""
    return TopicSpec(spec.name, spec.partitions,
                     {**replication_configs(min_insync_replicas), **spec.configs})


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], replication_factor: int = 1,
                        timeout: float = 60.0) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise ServiceError(f"Kafka at {bootstrap} is not reachable: {exc}") from None
            await asyncio.sleep(1.0)
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.configs)
                   for s in specs if s.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile elsewhere
                await admin.create_topics(missing)
            log.info("created topics: %s", ", ".join(t.name for t in missing))
    finally:
        await admin.close()


async def read_partition(bootstrap: str, topic: str, partition: int = 0,
                         max_fetch_bytes: int = 1024 * 1024) -> list[bytes]:
    """Every committed value of one partition, from the beginning up to its end when called.

    Reads ``read_committed``: blocks are written in transactions, and what an aborted one left
    (a killed or fenced connector's batch) is not part of the topic's history. Tombstones
    (``None`` values) are skipped.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed",
                                max_partition_fetch_bytes=max_fetch_bytes)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            values.extend(r.value for r in batch.get(tp, ())
                          if r.value is not None and r.offset < end)
        return values
    finally:
        await consumer.stop()
