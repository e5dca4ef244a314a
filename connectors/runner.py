"""Run the connector of one chain: RPC pool, block source, heads, Kafka publisher and streamer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

from prometheus_client import start_http_server

from connectors.evm.extract import EvmBlockSource
from connectors.evm.heads import HeadTracker
from connectors.publisher import KafkaBlockPublisher
from connectors.retry import RetryPolicy
from connectors.rpc import RpcPool
from connectors.streamer import Streamer
from monitor.settings import ChainConfig, ChainwatchConfig
from monitor.topics import block_topic

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


async def run_connector(
    config: ChainwatchConfig,
    chain_name: str,
    bootstrap: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Stream ``chain_name`` into its block topic until ``stop`` is set or SIGTERM/SIGINT."""
    chain_cfg = config.chain(chain_name)
    stop = stop or asyncio.Event()
    topic = block_topic(config.kafka.topic_prefix, chain_cfg.name)
    pool = RpcPool(chain_cfg.name, list(chain_cfg.rpc_urls), chain_cfg.request_timeout_seconds,
                   rpc_policy(chain_cfg))
    source = EvmBlockSource(pool, chain_cfg)
    heads = HeadTracker(chain_cfg.name, source.head, chain_cfg.poll_interval_seconds,
                        ws_url=chain_cfg.ws_url)
    publisher = KafkaBlockPublisher(bootstrap, topic, partitions=1,
                                    replication_factor=config.kafka.replication_factor)
    streamer = Streamer(
        chain_cfg.name, source, publisher,
        confirmations=chain_cfg.confirmations, start_block=chain_cfg.start_block,
        batch_size=chain_cfg.batch_size, reorg_window=chain_cfg.reorg_window, heads=heads,
    )
    metrics_server = None
    if chain_cfg.metrics_port is not None:
        metrics_server, _ = start_http_server(chain_cfg.metrics_port, addr="127.0.0.1")
    log.info("chain %s: connector starting; endpoints %s; topic %s", chain_cfg.name,
             ", ".join(pool.endpoints), topic)
    try:
        with _signals_set(stop):
            await publisher.ensure_topic()
            await heads.start()
            await streamer.run(stop)
    finally:
        await heads.stop()
        await publisher.close()
        await pool.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        log.info("chain %s: connector stopped at block %s", chain_cfg.name,
                 None if streamer.next_block is None else streamer.next_block - 1)
