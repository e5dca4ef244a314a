"""A worker never skips a block: one that does not follow the screened tip makes it read again.

Whatever makes a consumer hand over a later event first (a committed offset past events that
were never screened, a prefetch after a seek), the screening agent notices that the block does
not follow its tip and reads the topic again from the event after the tip. These tests put the
worker's committed offset past unscreened blocks on the real broker, and publish a chain with a
block missing, and check what arrives at a real webhook receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from monitor.records import Block, Transfer, encode, native_transfer_id
from monitor.topics import block_topic
from tests.integration.harness import Pipeline
from tests.plugins.services import LocalAnvil
from tests.support.receivers import ThreadedWebhookReceiver
from tests.unit.builders import ETH, OTHER, SEIZED

pytestmark = pytest.mark.integration

CHAIN = "devnet"
SECRET = "whsec-test-secret"


def block_hash(number: int) -> str:
    return f"0x{number + 0xB10C:064x}"


def chain_block(number: int, *, paid: bool, parent: int | None = None) -> Block:
    """Block ``number`` of a synthetic chain; ``paid``: the seized wallet sends funds in it."""
    transfers: tuple[Transfer, ...] = ()
    if paid:
        tx = f"0x{number:064x}"
        transfers = (Transfer(id=native_transfer_id(CHAIN, tx), chain=CHAIN, block_number=number,
                              block_hash=block_hash(number), block_time=1_700_000_000 + number,
                              tx_hash=tx, tx_index=0, kind="native", from_address=SEIZED,
                              to_address=OTHER, asset=ETH, amount=10**18 + number),)
    return Block(chain=CHAIN, number=number, hash=block_hash(number),
                 parent_hash=block_hash(number - 1 if parent is None else parent),
                 timestamp=1_700_000_000 + number, head=number, transfers=transfers)


async def publish(bootstrap: str, topic: str, blocks: list[Block]) -> list[int]:
    """Publish ``blocks`` in order; returns their offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, encode(b), partition=0)).offset
                for b in blocks]
    finally:
        await producer.stop()


async def commit_group_offset(bootstrap: str, group: str, topic: str, offset: int) -> None:
    """Commit ``offset`` for the (stopped) worker group, as a consumer that skipped would."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


def wait_blocks(receiver: ThreadedWebhookReceiver, numbers: set[int], pipeline: Pipeline,
                timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if numbers <= {r.alert.block_number for r in receiver.alerts}:
            return
        time.sleep(0.2)
    got = sorted(r.alert.block_number for r in receiver.alerts)
    raise AssertionError(f"alerts for blocks {sorted(numbers)} expected, got {got}\n"
                         f"{pipeline.logs()}")


def counter(text: str, kind: str) -> float:
    match = re.search(r'chainwatch_block_rereads_total\{chain="devnet",kind="' + kind
                      + r'"\} ([0-9.e+]+)', text)
    return float(match.group(1)) if match else 0.0


@contextlib.contextmanager
def watching_worker(tmp_path: Path, kafka_bootstrap: str, prefix: str, anvil: LocalAnvil
                    ) -> Iterator[tuple[Pipeline, ThreadedWebhookReceiver]]:
    """A worker (no connector) watching the seized wallet, and the receiver of its alerts."""
    with ThreadedWebhookReceiver(SECRET) as receiver:
        pipeline = Pipeline(tmp_path, kafka_bootstrap, prefix, anvil.http_url,
                            webhook_url=receiver.url, extra={"taint": {"enabled": False}})
        try:
            pipeline.start("worker")
            pipeline.wait_ready()
            pipeline.watch([{"chain": CHAIN, "address": SEIZED, "case_id": "C-SEQ"}])
            yield pipeline, receiver
        finally:
            pipeline.stop()


def test_a_committed_offset_past_unscreened_blocks_is_read_again(
        tmp_path: Path, kafka_bootstrap: str, unique_prefix: str, anvil: LocalAnvil) -> None:
    topic = block_topic(unique_prefix, CHAIN)
    with watching_worker(tmp_path, kafka_bootstrap, unique_prefix, anvil) as (pipeline,
                                                                          receiver):
        asyncio.run(publish(kafka_bootstrap, topic,
                            [chain_block(n, paid=n == 3) for n in range(1, 11)]))
        wait_blocks(receiver, {3}, pipeline)
        pipeline.stop()

        paid = {12, 15, 18}
        offsets = asyncio.run(publish(kafka_bootstrap, topic, [
            chain_block(n, paid=n in paid) for n in range(11, 21)]))
        # the group's offset now says blocks 11..16 were handled; they were not
        asyncio.run(commit_group_offset(kafka_bootstrap, unique_prefix.rstrip("."), topic,
                                        offsets[17 - 11]))
        pipeline.start("worker")
        wait_blocks(receiver, {3, *paid}, pipeline)
        metrics = pipeline.metrics()
        assert counter(metrics, "reread") >= 1, metrics
        assert counter(metrics, "break") == 0, metrics
        numbers = [r.alert.block_number for r in receiver.alerts]
        assert sorted(numbers) == [3, 12, 15, 18], numbers  # each once


def test_a_block_missing_from_the_topic_is_screened_after_one_reread_and_reported(
        tmp_path: Path, kafka_bootstrap: str, unique_prefix: str, anvil: LocalAnvil) -> None:
    topic = block_topic(unique_prefix, CHAIN)
    with watching_worker(tmp_path, kafka_bootstrap, unique_prefix, anvil) as (pipeline,
                                                                          receiver):
        blocks = [chain_block(n, paid=n in (2, 7, 9)) for n in range(1, 11) if n != 5]
        asyncio.run(publish(kafka_bootstrap, topic, blocks))
        wait_blocks(receiver, {2, 7, 9}, pipeline)
        metrics = pipeline.metrics()
        assert counter(metrics, "break") == 1, metrics
        assert "does not follow the screened tip 4" in pipeline.logs()
