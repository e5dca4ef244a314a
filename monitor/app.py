"""Build the Faust worker app from settings: topics, agents, API views and metrics."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP

import rules  # noqa: F401 - registers the built-in rules
from monitor import api, lag, watchdog
from monitor.agents import delivery, screening
from monitor.dashboard import views as dashboard
from monitor.errors import ConfigError, RuleError
from monitor.kafka_client import ChainwatchApp, apply_topic_configs
from monitor.lifecycle import LifecyclePolicy
from monitor.lists.loader import build_index
from monitor.runtime import RuntimeService, WorkerRuntime
from monitor.screening import ChainPolicy, ScopedRule, Screener
from monitor.settings import ChainwatchConfig, EnvSettings
from monitor.sinks.base import SinkContext, build_sinks
from monitor.statestore import prepare_state_store
from monitor.taint import TaintPolicy
from monitor.topics import Topics, replication_configs
from monitor.watchlist import WatchlistReplica, WatchlistWriter
from rules.base import build_rule
from rules.typologies import required_horizon

log = logging.getLogger(__name__)


def build_screener(config: ChainwatchConfig, base_dir: Path) -> Screener:
    """Rules (with their scopes), address lists and the taint policy, validated."""
    scoped = []
    for i, rc in enumerate(config.rules):
        try:
            rule = build_rule(rc.name, rc.severity, rc.params)
        except RuleError as exc:
            raise ConfigError(f"rules[{i}]: {exc}") from None
        scoped.append(ScopedRule(rule, frozenset(rc.categories), frozenset(rc.cases)))
    return Screener(
        rules=scoped,
        lists=build_index(config.lists, base_dir) if config.lists else None,
        taint=TaintPolicy.from_config(config.taint) if config.taint.enabled else None,
        horizon_seconds=required_horizon(s.rule for s in scoped),
    )


def lifecycle_policy(config: ChainwatchConfig, chain: str) -> LifecyclePolicy:
    """Confirmation depth, cooldowns and state bound of the alert lifecycle of ``chain``."""
    cfg = config.chain(chain)
    depth = cfg.confirmations if cfg.alert_confirmations is None else cfg.alert_confirmations
    return LifecyclePolicy(
        confirm_depth=depth, max_members=cfg.alert_state_max,
        rule_cooldowns={r.name: r.cooldown_seconds for r in config.rules if r.cooldown_seconds})


def build_runtime(config: ChainwatchConfig, env: EnvSettings, bootstrap: str,
                  environ: dict[str, str], base_dir: Path | None = None) -> WorkerRuntime:
    """Validate rules, lists and sinks and assemble the worker's runtime (no I/O yet)."""
    topics = Topics.from_config(config)
    return WorkerRuntime(
        config=config,
        env=env,
        bootstrap=bootstrap,
        topics=topics,
        screener=build_screener(config, base_dir or Path.cwd()),
        sinks=build_sinks(config.sinks, environ, SinkContext.from_config(config, bootstrap)),
        policies={c.name: ChainPolicy(confirmations=c.confirmations) for c in config.chains},
        lifecycle={c.name: lifecycle_policy(config, c.name) for c in config.chains},
        replica=WatchlistReplica(bootstrap, topics.watchlist),
        writer=WatchlistWriter(bootstrap, topics.watchlist),
    )


def log_assignments(app: faust.App) -> None:
    """Log the partitions this worker holds after every rebalance (which worker does what)."""

    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else set()  # faust sends the assigned partitions
        held = sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned
                      if not tp.topic.endswith("-changelog"))
        log.info("partitions assigned to this worker: %s", ", ".join(held) or "none")


def fetch_size(compression: str) -> int:
    """Bytes a worker fetches per partition: about 40 block messages either way.

    Measured with ``monitor.bench.compare``: uncompressed, 8 MiB gave 1.6-1.9x the rate of
    1 MiB; zstd-compressed, 1 MiB matched or beat 8 MiB's rate with 100-120 MB less RSS
    (8 MiB of zstd is some 70 MB of JSON held at once).
    """
    return 8 * 1024 * 1024 if compression == "none" else 1024 * 1024


def create_app(runtime: WorkerRuntime, metrics: bool = True) -> faust.App:
    """Construct the Faust app for ``runtime``; pass ``metrics=False`` in unit tests."""
    config = runtime.config
    state = prepare_state_store(config.worker, runtime.env, config.app_id)
    app = ChainwatchApp(  # faust.App consuming read_committed (connectors write transactions)
        config.app_id,
        broker=f"kafka://{runtime.bootstrap}",
        store=state.url,  # memory:// or rocksdb:// (worker.store)
        datadir=str(state.datadir),  # tables in <datadir>/v1/tables (worker.state_dir)
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
        # Block messages are 0.2-1 MB of JSON: fetch dozens of blocks at a time (faust's
        # 1 MiB held about four uncompressed ones). faust's own variable still sets it.
        consumer_max_fetch_size=int(os.environ.get("CONSUMER_MAX_FETCH_SIZE",
                                                   fetch_size(config.kafka.compression))),
        # Events an agent may have waiting: faust's 4,096 block messages of 0.2-1 MB could
        # hold gigabytes while a worker catches up; 128 keeps two batches ahead of the
        # screening agent (measured: same rate, 70 MB less RSS after a 1 M-watched backlog).
        # faust's own variable still sets it.
        stream_buffer_maxsize=int(os.environ.get("STREAM_BUFFER_MAXSIZE", 128)),
        # A killed worker's partitions move on after 10 s instead of faust's 60 s default.
        broker_session_timeout=10.0,
    )
    app.add_dependency(RuntimeService(runtime))
    screening.register(app, runtime)
    delivery.register(app, runtime)
    apply_topic_configs(app, replication_configs(config.kafka.min_insync_replicas))
    log_assignments(app)
    watchdog.register(app, config.worker.recovery_stall_seconds)
    api.register(app, runtime)
    dashboard.register(app)
    lag.register(app, runtime.bootstrap, [*map(runtime.topics.blocks, runtime.topics.chains),
                                          runtime.topics.alerts])
    if metrics:
        setup_prometheus_sensors(app, name_prefix="faust")
    return app
