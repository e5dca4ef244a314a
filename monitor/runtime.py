"""Everything a worker holds besides the Faust app: replica, rules, sinks, recent alerts."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import mode
from aiokafka import ConsumerRecord

from monitor.follower import TopicFollower
from monitor.records import ALERT_DECODER, Alert
from monitor.screening import ChainPolicy
from monitor.settings import ChainwatchConfig, EnvSettings
from monitor.sinks.base import Sink
from monitor.topics import Topics
from monitor.watchlist import WatchlistReplica, WatchlistWriter
from rules.base import Rule

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    """State shared by a worker's agents and web views."""

    config: ChainwatchConfig
    env: EnvSettings
    bootstrap: str
    topics: Topics
    rules: list[Rule]
    sinks: list[Sink]
    policies: dict[str, ChainPolicy]
    replica: WatchlistReplica
    writer: WatchlistWriter
    recent_alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=1000))

    def remember(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Keep an alert read from the alerts topic for the API's recent-alerts view."""
        if record.value is not None:
            self.recent_alerts.append(ALERT_DECODER.decode(record.value))


class RuntimeService(mode.Service):
    """Starts and stops the runtime's Kafka clients and sinks with the Faust app."""

    def __init__(self, runtime: WorkerRuntime, **kwargs: object) -> None:
        self.runtime = runtime
        self._alerts_follower = TopicFollower(runtime.bootstrap, runtime.topics.alerts,
                                              runtime.remember, tail=1000, name="recent-alerts")
        super().__init__(**kwargs)  # type: ignore[arg-type]

    async def on_start(self) -> None:
        """Connect the watchlist replica and writer, the alert tail and every sink."""
        await self.runtime.replica.start()
        await self.runtime.writer.start()
        await self._alerts_follower.start()
        for sink in self.runtime.sinks:
            await sink.start()
        log.info("worker runtime started: %d rule(s), %d sink(s)", len(self.runtime.rules),
                 len(self.runtime.sinks))

    async def on_stop(self) -> None:
        """Close everything opened in :meth:`on_start`."""
        for sink in self.runtime.sinks:
            await sink.close()
        await self._alerts_follower.stop()
        await self.runtime.writer.stop()
        await self.runtime.replica.stop()
