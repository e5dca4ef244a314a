"""The consumer-lag probe: end offset minus position per assigned partition, stale ones removed."""

from __future__ import annotations

from typing import Any

from faust.types import TP
from prometheus_client import REGISTRY

from monitor.lag import ConsumerLagProbe


class FakeConsumer:
    def __init__(self, ends: dict[TP, int], positions: dict[TP, int | None]) -> None:
        self.ends, self.positions = ends, positions

    def assignment(self) -> set[TP]:
        return set(self.positions)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def position(self, tp: TP) -> int | None:
        if tp not in self.positions:
            raise AssertionError("not assigned")
        return self.positions[tp]


class FakeApp:
    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer


def _gauge(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("chainwatch_consumer_lag_messages",
                                     {"topic": topic, "partition": str(partition)})


async def test_lag_per_partition_and_revoked_partitions_disappear() -> None:
    a0, a1 = TP("lagtest-blocks", 0), TP("lagtest-blocks", 1)
    consumer = FakeConsumer({a0: 120, a1: 7}, {a0: 100, a1: 7})
    probe = ConsumerLagProbe(FakeApp(consumer))  # type: ignore[arg-type]
    assert await probe.measure() == {a0: 20, a1: 0}
    assert _gauge("lagtest-blocks", 0) == 20 and _gauge("lagtest-blocks", 1) == 0

    consumer.positions = {a1: 3}  # a rebalance moved partition 0 elsewhere
    consumer.ends = {a1: 9}
    assert await probe.measure() == {a1: 6}
    assert _gauge("lagtest-blocks", 0) is None
    assert _gauge("lagtest-blocks", 1) == 6


async def test_no_position_yet_is_skipped_not_guessed() -> None:
    tp = TP("lagtest-alerts", 0)
    probe = ConsumerLagProbe(FakeApp(FakeConsumer({tp: 5}, {tp: None})))  # type: ignore[arg-type]
    assert await probe.measure() == {}
    assert _gauge("lagtest-alerts", 0) is None
