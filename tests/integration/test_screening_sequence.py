"""A worker never skips a block or an alert: one out of order makes it read the partition again.

Whatever makes a consumer hand over a later event first (a committed offset past events that
were never handled, a prefetch after a seek), the screening agent notices that a block does not
follow its tip, and the delivery agent that an alert's offset is not the next one, and they
read the partition again (monitor/agents/sequence.py). These tests put the worker's committed
offsets past unscreened blocks and undelivered alerts on the real broker, and publish a chain
with a block missing, and check what arrives at a real webhook receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from monitor.records import ALERT_DECODER, Block, Transfer, encode, native_transfer_id
from monitor.topics import Topics, block_topic, read_partition
from tests.integration.harness import Pipeline
from tests.plugins.services import LocalAnvil
from tests.support.receivers import ThreadedWebhookReceiver
from tests.unit.builders import ETH, OTHER, SEIZED
from tests.unit.web.builders import make_alert

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


async def read_values(bootstrap: str, topic: str) -> list[bytes]:
    """Every value of partition 0 of ``topic``."""
    return await read_partition(bootstrap, topic)


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


def counter(text: str, kind: str, topic_suffix: str = "blocks.devnet") -> float:
    """``chainwatch_rereads_total`` of the topic ending in ``topic_suffix`` for ``kind``."""
    match = re.search(r'chainwatch_rereads_total\{kind="' + kind + r'",topic="[^"]*'
                      + re.escape(topic_suffix) + r'"\} ([0-9.e+]+)', text)
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


def test_a_committed_offset_past_undelivered_alerts_is_read_again(
        tmp_path: Path, kafka_bootstrap: str, unique_prefix: str, anvil: LocalAnvil) -> None:
    alerts_topic = Topics(unique_prefix, (CHAIN,), 1, 1).alerts
    with watching_worker(tmp_path, kafka_bootstrap, unique_prefix, anvil) as (
            pipeline, receiver):
        asyncio.run(publish(kafka_bootstrap, block_topic(unique_prefix, CHAIN),
                            [chain_block(n, paid=n == 2) for n in range(1, 6)]))
        (first,) = receiver.wait_for(1, timeout=60)
        pipeline.stop()

        # three more alert events, never delivered; the group's offset says two of them were
        template = ALERT_DECODER.decode(asyncio.run(read_values(kafka_bootstrap,
                                                                alerts_topic))[0])
        more = [msgspec.structs.replace(template, id=hashlib.sha256(f"seq-{i}".encode())
                                        .hexdigest()[:32]) for i in range(3)]
        offsets = asyncio.run(publish_raw(kafka_bootstrap, alerts_topic,
                                          [(a.id.encode(), encode(a)) for a in more]))
        asyncio.run(commit_group_offset(kafka_bootstrap, unique_prefix.rstrip("."),
                                        alerts_topic, offsets[2]))
        pipeline.start("worker")
        wait_ids(receiver, {first.alert.id, *(a.id for a in more)}, pipeline)
        metrics = pipeline.metrics()
        assert counter(metrics, "reread", topic_suffix="alerts") >= 1, metrics
        assert counter(metrics, "break", topic_suffix="alerts") == 0, metrics
        assert sorted(receiver.ids()) == sorted({first.alert.id, *(a.id for a in more)})


def test_alerts_before_the_first_delivery_are_not_skipped(
        tmp_path: Path, kafka_bootstrap: str, unique_prefix: str, anvil: LocalAnvil) -> None:
    """No alert handled yet in the partition, and the group's offset already past two."""
    alerts_topic = Topics(unique_prefix, (CHAIN,), 1, 1).alerts
    with watching_worker(tmp_path, kafka_bootstrap, unique_prefix, anvil) as (
            pipeline, receiver):
        pipeline.stop()
        alerts = [make_alert(n, chain=CHAIN) for n in range(1, 4)]
        offsets = asyncio.run(publish_raw(kafka_bootstrap, alerts_topic,
                                          [(a.id.encode(), encode(a)) for a in alerts]))
        asyncio.run(commit_group_offset(kafka_bootstrap, unique_prefix.rstrip("."),
                                        alerts_topic, offsets[2]))
        pipeline.start("worker")
        wait_ids(receiver, {a.id for a in alerts}, pipeline)
        metrics = pipeline.metrics()
        assert counter(metrics, "reread", topic_suffix="alerts") >= 1, metrics
        assert sorted(receiver.ids()) == sorted(a.id for a in alerts)


async def publish_raw(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]
                      ) -> list[int]:
    """Publish keyed records to partition 0; returns their offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, value, key=key, partition=0)).offset
                for key, value in records]
    finally:
        await producer.stop()


def wait_ids(receiver: ThreadedWebhookReceiver, ids: set[str], pipeline: Pipeline,
             timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ids <= set(receiver.ids()):
            return
        time.sleep(0.2)
    raise AssertionError(f"alerts {sorted(ids)} expected, got {receiver.ids()}\n"
                         f"{pipeline.logs()}")
