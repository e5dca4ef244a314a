"""Everything a worker holds besides the Faust app: replica, rules, sinks, recent alerts."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import mode
from aiokafka import ConsumerRecord

from connectors.evm.facts import AddressFacts
from connectors.rpc import RpcPool
from connectors.runner import rpc_policy
from monitor.errors import ConfigError
from monitor.follower import TopicFollower
from monitor.lifecycle import LifecyclePolicy
from monitor.records import ALERT_DECODER, Alert
from monitor.screening import ChainPolicy, Screener
from monitor.settings import ChainwatchConfig, EnvSettings
from monitor.sinks.base import Sink
from monitor.topics import Topics
from monitor.watchlist import WatchlistReplica, WatchlistWriter

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    """State shared by a worker's agents and web views."""

    config: ChainwatchConfig
    env: EnvSettings
    bootstrap: str
    topics: Topics
    screener: Screener
    sinks: list[Sink]
    policies: dict[str, ChainPolicy]
    lifecycle: dict[str, LifecyclePolicy]
    replica: WatchlistReplica
    writer: WatchlistWriter
    # Latest event per alert id, oldest first (a lifecycle sends several events per id).
    recent_alerts: OrderedDict[str, Alert] = field(default_factory=OrderedDict)
    recent_limit: int = 1000
    _facts: dict[str, AddressFacts] = field(default_factory=dict)

    def address_facts(self, chain: str) -> AddressFacts | None:
        """The node-facts oracle of ``chain`` (created on first use), or None if disabled."""
        if chain not in self._facts:
            try:
                cfg = self.config.chain(chain)
            except ConfigError:
                return None
            if not cfg.address_facts:
                return None
            pool = RpcPool(chain, list(cfg.rpc_urls), cfg.request_timeout_seconds,
                           rpc_policy(cfg))
            self._facts[chain] = AddressFacts(pool)
        return self._facts[chain]

    async def close(self) -> None:
        """Close the RPC pools opened for node facts."""
        for facts in self._facts.values():
            await facts.pool.close()
        self._facts.clear()

    def remember(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Keep an alert read from the alerts topic for the API's recent-alerts view."""
        if record.value is not None:
            alert = ALERT_DECODER.decode(record.value)
            known = self.recent_alerts.get(alert.id)
            if known is not None and known.revision > alert.revision:
                return  # an older event read late: keep the newer state
            self.recent_alerts.pop(alert.id, None)
            self.recent_alerts[alert.id] = alert
            while len(self.recent_alerts) > self.recent_limit:
                self.recent_alerts.popitem(last=False)


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
        log.info("worker runtime started: %d rule(s), %d sink(s)",
                 len(self.runtime.screener.rules), len(self.runtime.sinks))

    async def on_stop(self) -> None:
        """Close everything opened in :meth:`on_start`."""
        for sink in self.runtime.sinks:
            await sink.close()
        await self._alerts_follower.stop()
        await self.runtime.writer.stop()
        await self.runtime.replica.stop()
        await self.runtime.close()
