"""Run the connector of one chain: RPC pool, block source, heads, Kafka publisher and streamer.

Start the same command more than once (on other machines) for high availability: the
instances elect one active connector per chain through Kafka (:mod:`connectors.leadership`)
and the others stand by, taking over from the checkpoint in the block topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator

from prometheus_client import start_http_server

from connectors.evm.extract import EvmBlockSource
from connectors.evm.heads import HeadTracker
from connectors.leadership import (
    ActiveStandby,
    KafkaElection,
    chain_transactional_id,
    control_topic,
    election_group,
)
from connectors.publisher import ConnectorFenced, KafkaBlockPublisher
from connectors.retry import RetryPolicy
from connectors.rpc import RpcPool
from connectors.streamer import Streamer
from monitor.metrics import CONNECTOR_ACTIVE
from monitor.settings import ChainConfig, ChainwatchConfig
from monitor.topics import TopicSpec, block_topic, ensure_topics, replication_configs

log = logging.getLogger(__name__)


def rpc_policy(chain_cfg: ChainConfig) -> RetryPolicy:
    """Return the JSON-RPC retry policy of a chain: ``max_retries`` after the first attempt."""
    return RetryPolicy(base_seconds=0.25, cap_seconds=10.0, max_attempts=chain_cfg.max_retries + 1)


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM/SIGINT while inside (main thread only; elsewhere a no-op)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def instance_name() -> str:
    """Name of this connector instance in logs and member ids: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def stream_until_fenced(streamer: Streamer, publisher: KafkaBlockPublisher,
                              stop: asyncio.Event) -> None:
    """Run ``streamer`` until ``stop``; raise ConnectorFenced as soon as the publisher is fenced."""
    streaming = asyncio.create_task(streamer.run(stop), name=f"streamer-{streamer.chain}")
    fenced = asyncio.create_task(publisher.fenced.wait())
    try:
        await asyncio.wait({streaming, fenced}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        fenced.cancel()
        if not streaming.done():
            streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectorFenced):
            await streaming
    if publisher.fenced.is_set():
        raise ConnectorFenced("another connector instance fenced this one", chain=streamer.chain)
    streaming.result()


async def run_connector(
    config: ChainwatchConfig,
    chain_name: str,
    bootstrap: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Stream ``chain_name`` into its block topic until ``stop`` is set or SIGTERM/SIGINT.

    Streams only while this instance is the chain's elected connector; stands by otherwise.
    """
    chain_cfg = config.chain(chain_name)
    kafka = config.kafka
    stop = stop or asyncio.Event()
    prefix = kafka.topic_prefix
    topic = block_topic(prefix, chain_cfg.name)
    instance = instance_name()
    pool = RpcPool(chain_cfg.name, list(chain_cfg.rpc_urls), chain_cfg.request_timeout_seconds,
                   rpc_policy(chain_cfg))
    source = EvmBlockSource(pool, chain_cfg)
    client_id = f"chainwatch-connector-{instance}"
    publisher = KafkaBlockPublisher(
        bootstrap, topic, partitions=1, replication_factor=kafka.replication_factor,
        min_insync_replicas=kafka.min_insync_replicas, client_id=client_id,
        transactional_id=chain_transactional_id(prefix, chain_cfg.name),
        compression=kafka.compression)
    election = KafkaElection(
        bootstrap, control_topic(prefix), election_group(prefix, chain_cfg.name),
        client_id=client_id,
        session_timeout_ms=int(kafka.connector_session_timeout_seconds * 1000))
    streamers: list[Streamer] = []

    async def term(term_stop: asyncio.Event) -> None:
        """One term as the active instance: fence, read the checkpoint, stream."""
        heads = HeadTracker(chain_cfg.name, source.head, chain_cfg.poll_interval_seconds,
                            ws_url=chain_cfg.ws_url)
        streamer = Streamer(
            chain_cfg.name, source, publisher,
            confirmations=chain_cfg.confirmations, start_block=chain_cfg.start_block,
            batch_size=chain_cfg.batch_size, reorg_window=chain_cfg.reorg_window, heads=heads,
        )
        streamers[:] = [streamer]
        publisher.rearm()
        try:
            await heads.start()
            await stream_until_fenced(streamer, publisher, term_stop)
        finally:
            await heads.stop()
            await publisher.close()

    metrics_server = None
    if chain_cfg.metrics_port is not None:
        metrics_server, _ = start_http_server(chain_cfg.metrics_port, addr=chain_cfg.metrics_host)
    CONNECTOR_ACTIVE.labels(chain_cfg.name).set(0)
    log.info("chain %s: connector %s starting; endpoints %s; topic %s", chain_cfg.name, instance,
             ", ".join(pool.endpoints), topic)
    try:
        with _signals_set(stop):
            await publisher.ensure_topic()
            await ensure_topics(bootstrap, [TopicSpec(
                control_topic(prefix), 1, replication_configs(kafka.min_insync_replicas))],
                kafka.replication_factor)
            await ActiveStandby(chain_cfg.name, election, term, instance).run(stop)
    finally:
        await publisher.close()
        await pool.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        last = streamers[-1].next_block if streamers else None
        log.info("chain %s: connector %s stopped at block %s", chain_cfg.name, instance,
                 None if last is None else last - 1)
