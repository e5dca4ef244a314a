"""Consumer lag of the worker: end offset minus fetch position of every assigned partition.

A Faust timer reads the consumer's assignment, asks the broker for the end offsets
(``Consumer.highwaters``) and the consumer for its position (``Consumer.position``), and sets
``chainwatch_consumer_lag_messages{topic,partition}``. Partitions that moved to another worker
in a rebalance are removed from the gauge so that a stale figure never lingers.
"""

from __future__ import annotations

import contextlib
import logging

import faust
from faust.types import TP

from monitor.metrics import CONSUMER_LAG

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 5.0


class ConsumerLagProbe:
    """Measures the lag of one Faust app's consumer and keeps the gauge in step."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._labelled: set[tuple[str, str]] = set()

    async def measure(self) -> dict[TP, int]:
        """Update the gauge for every assigned partition and return the figures."""
        consumer = self.app.consumer
        try:
            assigned = sorted(consumer.assignment())
        except Exception as exc:  # the consumer is not started or is rebalancing
            log.debug("consumer lag skipped: no assignment (%s)", exc)
            return {}
        lags: dict[TP, int] = {}
        if assigned:
            try:
                ends = await consumer.highwaters(*assigned)
            except Exception as exc:  # broker unreachable: keep the last figures
                log.debug("consumer lag skipped: end offsets unavailable (%s)", exc)
                return {}
            for tp in assigned:
                end = ends.get(tp)
                try:
                    position = await consumer.position(tp)
                except Exception as exc:  # revoked between assignment() and position()
                    log.debug("consumer lag of %s skipped: %s", tp, exc)
                    continue
                if end is None or position is None:
                    continue
                lags[tp] = max(0, end - position)
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


def register(app: faust.App, interval: float = LAG_INTERVAL_SECONDS) -> ConsumerLagProbe:
    """Add a timer to ``app`` that refreshes the consumer-lag gauge every ``interval`` s."""
    probe = ConsumerLagProbe(app)

    @app.timer(interval=interval, name="consumer-lag")
    async def consumer_lag() -> None:
        await probe.measure()

    return probe
