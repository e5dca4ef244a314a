"""Kafka client behaviour of the Faust worker that faust 0.15 has no setting for.

* **read_committed**: connectors write blocks in Kafka transactions (each instance fencing
  the one before it), so a worker must not see what an aborted transaction left in the block
  topic: a crashed or fenced connector's half-written batch. Faust reads ``read_committed``
  only with ``processing_guarantee="exactly_once"`` (deliberately not used, see README); here
  the worker consumer is created ``read_committed`` without it.
* **replicated internal topics**: ``topic_replication_factor`` reaches faust's own topics, but
  topic configs only come from each table's ``extra_topic_configs``;
  :func:`apply_topic_configs` gives every table's changelog ``min.insync.replicas``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

READ_COMMITTED = "read_committed"


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, with a ``read_committed`` worker consumer."""

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport
                                ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads the level when start() builds its fetcher, which comes after this.
        consumer._isolation_level = READ_COMMITTED  # no public setter in aiokafka 0.14
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer using :class:`ReadCommittedConsumerThread`."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ReadCommittedTransport(faust_aiokafka.Transport):
    """Faust's ``kafka://`` transport whose consumer reads only committed records."""

    Consumer = ReadCommittedConsumer


class ChainwatchApp(faust.App):
    """A Faust app on :class:`ReadCommittedTransport`."""

    def _new_transport(self) -> TransportT:
        return ReadCommittedTransport(self.conf.broker_consumer, self)


def apply_topic_configs(app: faust.App, configs: Mapping[str, Any]) -> None:
    """Add ``configs`` to faust's own topics (table changelogs, leader topic) before start."""
    for table in app.tables.values():
        table.extra_topic_configs = {**configs, **(table.extra_topic_configs or {})}
        topic = table.changelog_topic
        topic.config = {**configs, **(topic.config or {})}
    # The leader-election topic (``<app id>-__assignor-__leader``) has no public handle.
    leader = getattr(getattr(app, "_leader_assignor", None), "_leader_topic", None)
    if leader is not None:
        leader.config = {**configs, **(leader.config or {})}
