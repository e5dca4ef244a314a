"""The connector against a real Kafka broker and a real anvil node: exactly once, no gap, reorgs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
import uuid
from typing import Any

import pytest

from connectors.evm.extract import EvmBlockSource
from connectors.evm.heads import HeadTracker
from connectors.retry import RetryPolicy
from connectors.rpc import RpcPool
from connectors.runner import run_connector
from monitor.devservices import LocalAnvil, LocalKafka
from monitor.records import BLOCK_DECODER, Block
from monitor.settings import ChainwatchConfig
from monitor.topics import block_topic, read_partition

pytestmark = pytest.mark.integration

# --- helpers ---

def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    """One synchronous JSON-RPC call (test driver side)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": params or []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert "error" not in answer, answer
    return answer["result"]


async def arpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    """``rpc`` off the event loop."""
    return await asyncio.to_thread(rpc, url, method, params)


def send_transfers(url: str, count: int) -> None:
    """Send ``count`` native transfers between anvil's dev accounts (automine: a block each)."""
    accounts = rpc(url, "eth_accounts")
    for i in range(count):
        rpc(url, "eth_sendTransaction", [{"from": accounts[i % 3], "to": accounts[3 + i % 5],
                                          "value": hex(10**15 * (i + 1))}])


def mine(url: str, blocks: int) -> None:
    """Mine empty blocks."""
    rpc(url, "anvil_mine", [hex(blocks)])


def node_hashes(url: str, upto: int) -> list[str]:
    """Canonical hashes 0..upto."""
    return [rpc(url, "eth_getBlockByNumber", [hex(n), False])["hash"] for n in range(upto + 1)]


def make_config(node: LocalAnvil, *, confirmations: int = 0, batch_size: int = 10,
                ws: bool = False, poll: float = 0.2, prefix: str | None = None) -> ChainwatchConfig:
    """A one-chain configuration for anvil with a unique topic prefix."""
    return ChainwatchConfig.model_validate({
        "chains": [{
            "name": "anvil", "chain_id": 31337, "rpc_urls": [node.http_url],
            "ws_url": node.ws_url if ws else None, "confirmations": confirmations,
            "start_block": 0, "batch_size": batch_size, "poll_interval_seconds": poll,
            "request_timeout_seconds": 5, "max_retries": 3, "reorg_window": 16,
        }],
        "kafka": {"topic_prefix": prefix or f"t{uuid.uuid4().hex[:10]}."},
    })


async def read_topic(bootstrap: str, topic: str) -> list[Block]:
    """Every committed event of the block topic, in order."""
    return [BLOCK_DECODER.decode(v) for v in await read_partition(bootstrap, topic)]


async def wait_published(bootstrap: str, topic: str, predicate: Any, seconds: float = 30
                         ) -> list[Block]:
    """Poll the topic until ``predicate(events)`` holds."""
    deadline = time.monotonic() + seconds
    events: list[Block] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            events = await read_topic(bootstrap, topic)
            if predicate(events):
                return events
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met; {len(events)} events: "
                         f"{[(e.kind, e.number) for e in events[-12:]]}")


def canonical(events: list[Block]) -> dict[int, str]:
    """Replay events (reverts applied) into number -> hash."""
    chain: dict[int, str] = {}
    for event in events:
        if event.kind == "block":
            chain[event.number] = event.hash
        else:
            assert chain.pop(event.number) == event.hash
    return chain


def assert_exactly_once(events: list[Block], hashes: list[str]) -> None:
    """Blocks 0..len(hashes)-1 each exactly once, in order, with the node's hashes."""
    blocks = [e for e in events if e.kind == "block"]
    assert [b.number for b in blocks] == list(range(len(hashes)))
    assert [b.hash for b in blocks] == hashes


async def run_until(config: ChainwatchConfig, bootstrap: str, predicate: Any,
                    seconds: float = 90) -> list[Block]:
    """Run the connector until the topic satisfies ``predicate``, then stop it gracefully."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_connector(config, "anvil", bootstrap, stop))
    topic = block_topic(config.kafka.topic_prefix, "anvil")
    try:
        return await wait_published(bootstrap, topic, predicate, seconds)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


# --- tests ---

async def test_backfill_exactly_once_in_order(kafka_bootstrap: str, anvil: LocalAnvil) -> None:
    send_transfers(anvil.http_url, 12)
    mine(anvil.http_url, 30)
    head = int(rpc(anvil.http_url, "eth_blockNumber"), 16)
    config = make_config(anvil, batch_size=7)
    events = await run_until(config, kafka_bootstrap,
                             lambda ev: ev and ev[-1].number >= head)
    assert_exactly_once(events, node_hashes(anvil.http_url, head))
    natives = [t for e in events for t in e.transfers if t.kind == "native"]
    assert len(natives) == 12
    assert sorted(t.amount for t in natives) == [10**15 * (i + 1) for i in range(12)]


async def test_confirmations_hold_back_the_tip(kafka_bootstrap: str, anvil: LocalAnvil) -> None:
    mine(anvil.http_url, 20)
    config = make_config(anvil, confirmations=5)
    events = await run_until(config, kafka_bootstrap, lambda ev: ev and ev[-1].number >= 15)
    await asyncio.sleep(0.5)
    assert events[-1].number == 15
    assert all(e.head == 20 for e in events)


async def test_cancel_mid_stream_and_restart_no_gap_no_dup(
    kafka_bootstrap: str, anvil: LocalAnvil
) -> None:
    send_transfers(anvil.http_url, 5)
    mine(anvil.http_url, 400)
    head = int(rpc(anvil.http_url, "eth_blockNumber"), 16)
    config = make_config(anvil, batch_size=5)
    topic = block_topic(config.kafka.topic_prefix, "anvil")
    for _ in range(3):  # cancel while batches are in flight, three times
        task = asyncio.create_task(run_connector(config, "anvil", kafka_bootstrap))
        before = len(await read_topic(kafka_bootstrap, topic)) if _ else 0
        await wait_published(kafka_bootstrap, topic, lambda ev, b=before: len(ev) > b + 20)
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    events = await run_until(config, kafka_bootstrap, lambda ev: ev and ev[-1].number >= head,
                             seconds=60)
    assert_exactly_once(events, node_hashes(anvil.http_url, head))


async def test_reorg_depth_2_while_following(kafka_bootstrap: str, anvil: LocalAnvil) -> None:
    mine(anvil.http_url, 10)
    config = make_config(anvil, confirmations=0)
    topic = block_topic(config.kafka.topic_prefix, "anvil")
    stop = asyncio.Event()
    task = asyncio.create_task(run_connector(config, "anvil", kafka_bootstrap, stop))
    try:
        await wait_published(kafka_bootstrap, topic, lambda ev: ev and ev[-1].number >= 10)
        old = node_hashes(anvil.http_url, 10)
        await arpc(anvil.http_url, "anvil_reorg", [2, []])
        new = node_hashes(anvil.http_url, 10)
        assert new[:9] == old[:9] and new[9] != old[9] and new[10] != old[10]
        events = await wait_published(
            kafka_bootstrap, topic, lambda ev: len(ev) >= 15 and canonical(ev).get(10) == new[10])
        await arpc(anvil.http_url, "anvil_mine", ["0x2"])
        final = node_hashes(anvil.http_url, 12)
        events = await wait_published(kafka_bootstrap, topic,
                                      lambda ev: canonical(ev).get(12) == final[12])
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    tail = [(e.kind, e.number, e.hash) for e in events[11:]]
    assert tail[:4] == [("revert", 10, old[10]), ("revert", 9, old[9]),
                        ("block", 9, new[9]), ("block", 10, new[10])]
    assert canonical(events) == dict(enumerate(final))


async def test_ws_heads_subscription(anvil: LocalAnvil) -> None:
    pool = RpcPool("anvil", [anvil.http_url], 5, RetryPolicy(0.05, 0.2, 3))
    chain_cfg = make_config(anvil, ws=True, poll=30).chains[0]
    source = EvmBlockSource(pool, chain_cfg)
    heads = HeadTracker("anvil", source.head, poll_interval=30, ws_url=anvil.ws_url)
    await heads.start()
    try:
        deadline = time.monotonic() + 10
        while not heads.ws_connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert heads.ws_connected
        for expected in (1, 2, 3):
            await arpc(anvil.http_url, "evm_mine")
            started = time.monotonic()
            assert await asyncio.wait_for(heads.wait_for_head(expected - 1), 5) == expected
            assert time.monotonic() - started < 5  # from the socket, not the 30 s poll
        assert heads.ws_heads >= 3
        assert heads.latest_hash == rpc(anvil.http_url, "eth_getBlockByNumber",
                                        ["latest", False])["hash"]
    finally:
        await heads.stop()
        await pool.close()


async def test_block_messages_are_compressed_on_the_broker(kafka_broker: LocalKafka,
                                                           anvil: LocalAnvil) -> None:
    """kafka.compression (zstd by default) shrinks the block topic; consumers read it as is."""
    rpc(anvil.http_url, "evm_setAutomine", [False])
    try:
        for _ in range(2):  # two blocks of 60 transfers: repeated keys and hashes, like mainnet
            send_transfers(anvil.http_url, 60)
            rpc(anvil.http_url, "evm_mine")
    finally:
        rpc(anvil.http_url, "evm_setAutomine", [True])
    head = int(rpc(anvil.http_url, "eth_blockNumber"), 16)
    sizes: dict[str, int] = {}
    read: dict[str, list[Block]] = {}
    for compression in ("none", "zstd"):
        config = make_config(anvil)
        if compression == "none":
            config = config.model_copy(update={"kafka": config.kafka.model_copy(
                update={"compression": "none"})})
        assert config.kafka.compression == compression  # zstd: the default
        read[compression] = await run_until(config, kafka_broker.bootstrap,
                                            lambda ev: ev and ev[-1].number >= head)
        topic = block_topic(config.kafka.topic_prefix, "anvil")
        sizes[compression] = sum(f.stat().st_size
                                 for f in (kafka_broker.data_dir / f"{topic}-0").glob("*.log"))
    assert read["zstd"] == read["none"]  # the same messages, decoded the same way
    assert sum(len(b.transfers) for b in read["zstd"]) >= 120
    assert sizes["zstd"] * 3 < sizes["none"], sizes
