"""The consumer-lag probe: end minus committed offset per probed partition, stale ones removed.

Unit tests with an offsets reader double; the probe itself never calls into faust's consumer
(beyond reading its assignment), which a consumer double without any async method proves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from faust.types import TP
from prometheus_client import REGISTRY

from monitor import lag
from monitor.lag import ConsumerLagProbe


class AssignmentOnly:
    """A consumer with nothing but ``assignment``: calling anything else fails the test."""

    def __init__(self, held: set[TP]) -> None:
        self.held = held

    def assignment(self) -> set[TP]:
        return set(self.held)


class FakeOffsets:
    def __init__(self, ends: dict[TP, int], committed: dict[TP, int]) -> None:
        self.end_offsets, self.committed_offsets = ends, committed
        self.closed = 0
        self.hang = False

    async def ends(self, tps: Iterable[TP]) -> dict[TP, int]:
        if self.hang:
            await asyncio.sleep(3600)
        return {tp: self.end_offsets[tp] for tp in tps if tp in self.end_offsets}

    async def committed(self, tps: Iterable[TP]) -> dict[TP, int]:
        return {tp: self.committed_offsets[tp] for tp in tps if tp in self.committed_offsets}

    async def close(self) -> None:
        self.closed += 1


class FakeApp:
    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer


def _probe(held: set[TP], offsets: FakeOffsets, topics: Iterable[str]) -> ConsumerLagProbe:
    return ConsumerLagProbe(FakeApp(AssignmentOnly(held)), topics, offsets)  # type: ignore[arg-type]


def _gauge(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("chainwatch_consumer_lag_messages",
                                     {"topic": topic, "partition": str(partition)})


async def test_lag_per_partition_and_revoked_partitions_disappear() -> None:
    a0, a1 = TP("lagtest-blocks", 0), TP("lagtest-blocks", 1)
    offsets = FakeOffsets({a0: 120, a1: 7}, {a0: 100, a1: 7})
    consumer = AssignmentOnly({a0, a1})
    probe = ConsumerLagProbe(FakeApp(consumer), ["lagtest-blocks"], offsets)  # type: ignore[arg-type]
    assert await probe.measure() == {a0: 20, a1: 0}
    assert _gauge("lagtest-blocks", 0) == 20 and _gauge("lagtest-blocks", 1) == 0

    consumer.held = {a1}  # a rebalance moved partition 0 elsewhere
    offsets.end_offsets, offsets.committed_offsets = {a1: 9}, {a1: 3}
    assert await probe.measure() == {a1: 6}
    assert _gauge("lagtest-blocks", 0) is None
    assert _gauge("lagtest-blocks", 1) == 6


async def test_changelogs_and_faust_internal_topics_are_not_probed() -> None:
    blocks, changelog = TP("lagtest2-blocks", 0), TP("app-screening-changelog", 0)
    leader = TP("app-__assignor-__leader", 0)
    offsets = FakeOffsets({blocks: 5, changelog: 500, leader: 1}, {})
    probe = _probe({blocks, changelog, leader}, offsets, ["lagtest2-blocks"])
    assert await probe.measure() == {blocks: 5}  # nothing committed yet: all of it
    assert _gauge("app-screening-changelog", 0) is None


async def test_an_unanswered_broker_keeps_the_last_figures_and_reopens(monkeypatch: Any) -> None:
    tp = TP("lagtest3-alerts", 0)
    offsets = FakeOffsets({tp: 10}, {tp: 4})
    probe = _probe({tp}, offsets, ["lagtest3-alerts"])
    assert await probe.measure() == {tp: 6}
    monkeypatch.setattr(lag, "REQUEST_TIMEOUT_SECONDS", 0.05)
    offsets.hang = True
    assert await probe.measure() == {}
    assert offsets.closed == 1
    assert _gauge("lagtest3-alerts", 0) == 6


async def test_no_end_offset_is_skipped_not_guessed() -> None:
    tp = TP("lagtest4-alerts", 0)
    probe = _probe({tp}, FakeOffsets({}, {}), ["lagtest4-alerts"])
    assert await probe.measure() == {}
    assert _gauge("lagtest4-alerts", 0) is None
