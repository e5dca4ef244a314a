"""Everything a worker holds besides the Faust app: replica, rules, sinks, the alert index."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import mode

from connectors.evm.facts import AddressFacts
from connectors.rpc import RpcPool
from connectors.runner import rpc_policy
from monitor.errors import ConfigError
from monitor.follower import TopicFollower
from monitor.lifecycle import LifecyclePolicy
from monitor.screening import ChainPolicy, Screener
from monitor.settings import ChainwatchConfig, EnvSettings
from monitor.sinks.base import Sink
from monitor.topics import Topics
from monitor.watchlist import WatchlistReplica, WatchlistWriter
from monitor.web.audit import AuditPublisher
from monitor.web.index import AlertIndex

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
    # Latest event per alert id with its audit trail, fed from the alerts and audit topics.
    alert_index: AlertIndex = field(init=False)
    audit_publisher: AuditPublisher = field(init=False)
    _facts: dict[str, AddressFacts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Create the alert index (bounded by ``api.alert_index_max``) and audit publisher."""
        self.alert_index = AlertIndex(max_alerts=self.config.api.alert_index_max)
        self.audit_publisher = AuditPublisher(self.bootstrap, self.topics.alert_audit)

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

class RuntimeService(mode.Service):
    """Starts and stops the runtime's Kafka clients and sinks with the Faust app."""

    def __init__(self, runtime: WorkerRuntime, **kwargs: object) -> None:
        self.runtime = runtime
        index = runtime.alert_index
        self._alerts_follower = TopicFollower(runtime.bootstrap, runtime.topics.alerts,
                                              index.apply_alert_record, name="alert-index")
        self._audit_follower = TopicFollower(runtime.bootstrap, runtime.topics.alert_audit,
                                             index.apply_audit_record, name="alert-audit")
        super().__init__(**kwargs)  # type: ignore[arg-type]

    async def on_start(self) -> None:
        """Connect the watchlist replica and writer, the alert index's feeds and every sink."""
        await self.runtime.replica.start()
        await self.runtime.writer.start()
        await self.runtime.audit_publisher.start()
        await self._audit_follower.start()
        await self._alerts_follower.start()
        for sink in self.runtime.sinks:
            await sink.start()
        log.info("worker runtime started: %d rule(s), %d sink(s)",
                 len(self.runtime.screener.rules), len(self.runtime.sinks))

    async def on_stop(self) -> None:
        """Close everything opened in :meth:`on_start`."""
        for sink in self.runtime.sinks:
            await sink.close()
        self.runtime.alert_index.close()
        await self._alerts_follower.stop()
        await self._audit_follower.stop()
        await self.runtime.audit_publisher.stop()
        await self.runtime.writer.stop()
        await self.runtime.replica.stop()
        await self.runtime.close()
