"""Consumer lag of the worker group: end offset minus committed offset, per partition.

A Faust timer asks the broker, with clients of its own, for the end offsets of the partitions
this worker's agents read (block topics and the alerts topic) and for the offsets the worker
group committed there, and sets ``chainwatch_consumer_lag_messages{topic,partition}`` (the
figure ``kafka-consumer-groups --describe`` shows). Partitions that moved to another worker in a
rebalance are removed from the gauge so that a stale figure never lingers.

The probe never calls into faust's consumer: that consumer runs in a thread of its own whose
method queue has two workers, and an awaited call there (``position`` waits until the
partition has a position, without end) would take one of the workers the fetch loop needs.
Every broker request here has a timeout; a probe that cannot reach the broker keeps the last
figures and tries again at the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import TP

from monitor.metrics import CONSUMER_LAG

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 4.0
"""Longest a probe waits for one broker answer (less than the interval)."""


class OffsetsReader:
    """End offsets of partitions and a group's committed offsets, read with its own clients."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        if self._consumer is None or self._admin is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                        enable_auto_commit=False,
                                        isolation_level="read_committed")
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                await consumer.start()
                await admin.start()
            except BaseException:
                await _quietly_close(consumer, admin)
                raise
            self._consumer, self._admin = consumer, admin
        return self._consumer, self._admin

    async def ends(self, tps: Iterable[TP]) -> dict[TP, int]:
        """End offsets (last stable offsets: the worker reads committed records only)."""
        consumer, _ = await self._clients()
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        found = await consumer.end_offsets(wanted)
        return {TP(tp.topic, tp.partition): offset for tp, offset in found.items()}

    async def committed(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Offsets the group committed for ``tps`` (partitions without one are left out)."""
        _, admin = await self._clients()
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        found = await admin.list_consumer_group_offsets(self.group_id, partitions=wanted)
        return {TP(tp.topic, tp.partition): meta.offset for tp, meta in found.items()
                if meta is not None and meta.offset >= 0}

    async def close(self) -> None:
        """Close both clients (a later call opens them again)."""
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        await _quietly_close(consumer, admin)


async def _quietly_close(consumer: AIOKafkaConsumer | None,
                         admin: AIOKafkaAdminClient | None) -> None:
    with contextlib.suppress(Exception):
        if consumer is not None:
            await consumer.stop()
    with contextlib.suppress(Exception):
        if admin is not None:
            await admin.close()


class ConsumerLagProbe:
    """Measures the lag of one Faust app's partitions and keeps the gauge in step."""

    def __init__(self, app: faust.App, topics: Iterable[str], offsets: OffsetsReader) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.offsets = offsets
        self._labelled: set[tuple[str, str]] = set()

    def assigned(self) -> list[TP]:
        """Partitions of the probed topics this worker holds now (no call into the consumer)."""
        try:
            held = self.app.consumer.assignment()  # a read of the consumer's state
        except Exception as exc:  # the consumer is not started yet
            log.debug("consumer lag skipped: no assignment (%s)", exc)
            return []
        return sorted(tp for tp in held if tp.topic in self.topics)

    async def measure(self) -> dict[TP, int]:
        """Update the gauge for every probed partition held here and return the figures."""
        assigned = self.assigned()
        lags: dict[TP, int] = {}
        if assigned:
            try:
                ends = await asyncio.wait_for(self.offsets.ends(assigned),
                                              REQUEST_TIMEOUT_SECONDS)
                committed = await asyncio.wait_for(self.offsets.committed(assigned),
                                                   REQUEST_TIMEOUT_SECONDS)
            except Exception as exc:  # broker unreachable or slow: keep the last figures
                log.debug("consumer lag skipped: offsets unavailable (%r)", exc)
                await self.offsets.close()  # a half-broken client is opened anew next time
                return {}
            for tp in assigned:
                end = ends.get(tp)
                if end is None:
                    continue
                lags[tp] = max(0, end - committed.get(tp, 0))
        self._publish(lags)
        return lags

    def _publish(self, lags: dict[TP, int]) -> None:
        current = {(tp.topic, str(tp.partition)): lag for tp, lag in lags.items()}
        for labels in self._labelled - set(current):
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(*labels)
        for labels, lag in current.items():
            CONSUMER_LAG.labels(*labels).set(lag)
        self._labelled = set(current)


def register(app: faust.App, bootstrap: str, topics: Iterable[str],
             interval: float = LAG_INTERVAL_SECONDS) -> ConsumerLagProbe:
    """Add a timer to ``app`` that refreshes the consumer-lag gauge every ``interval`` s."""
    offsets = OffsetsReader(bootstrap, app.conf.id)
    probe = ConsumerLagProbe(app, topics, offsets)

    @app.timer(interval=interval, name="consumer-lag")
    async def consumer_lag() -> None:
        await probe.measure()

    @app.on_before_shutdown.connect
    async def _close_offsets(sender: object, /, *args: object, **kwargs: object) -> None:
        await offsets.close()

    return probe
