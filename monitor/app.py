"""Build the Faust worker app from settings: topics, agents, API views and metrics."""

from __future__ import annotations

import faust
from faust.sensors.prometheus import setup_prometheus_sensors

import rules  # noqa: F401 - registers the built-in rules
from monitor import api
from monitor.agents import delivery, screening
from monitor.runtime import RuntimeService, WorkerRuntime
from monitor.screening import ChainPolicy
from monitor.settings import ChainwatchConfig, EnvSettings
from monitor.sinks.base import build_sinks
from monitor.topics import Topics
from monitor.watchlist import WatchlistReplica, WatchlistWriter
from rules.base import build_rule


def build_runtime(config: ChainwatchConfig, env: EnvSettings, bootstrap: str,
                  environ: dict[str, str]) -> WorkerRuntime:
    """Validate rules and sinks and assemble the worker's runtime (no I/O yet)."""
    topics = Topics.from_config(config)
    return WorkerRuntime(
        config=config,
        env=env,
        bootstrap=bootstrap,
        topics=topics,
        rules=[build_rule(r.name, r.severity, r.params) for r in config.rules],
        sinks=build_sinks(config.sinks, environ),
        policies={c.name: ChainPolicy(confirmations=c.confirmations) for c in config.chains},
        replica=WatchlistReplica(bootstrap, topics.watchlist),
        writer=WatchlistWriter(bootstrap, topics.watchlist),
    )


def create_app(runtime: WorkerRuntime, metrics: bool = True) -> faust.App:
    """Construct the Faust app for ``runtime``; pass ``metrics=False`` in unit tests."""
    config = runtime.config
    app = faust.App(
        config.app_id,
        broker=f"kafka://{runtime.bootstrap}",
        store="memory://",
        autodiscover=False,
        web_enabled=True,
        web_bind=config.api.host,
        web_host=config.api.host,
        web_port=config.api.port,
        topic_partitions=config.kafka.partitions,
        topic_replication_factor=config.kafka.replication_factor,
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
    )
    app.add_dependency(RuntimeService(runtime))
    screening.register(app, runtime)
    delivery.register(app, runtime)
    api.register(app, runtime)
    if metrics:
        setup_prometheus_sensors(app, name_prefix="faust")
    return app
