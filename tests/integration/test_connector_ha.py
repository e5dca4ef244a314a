"""Connector high availability on the real broker: fencing, and a standby taking over.

* Two publishers sharing a chain's transactional id: the second one's start fences the first,
  whose later writes fail; what the first left uncommitted is never read back.
* Two real ``chainwatch connector`` processes for one chain: exactly one is active; after a
  kill -9 of the active one the standby takes over from the checkpoint, and the block topic
  ends with every block once, in order, with no gap.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import urllib.request
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from connectors.leadership import chain_transactional_id
from connectors.publisher import ConnectorFenced, KafkaBlockPublisher
from monitor.devservices import LocalAnvil
from monitor.records import BLOCK_DECODER, Block, encode
from monitor.topics import block_topic
from tests.integration.harness import Pipeline

pytestmark = pytest.mark.integration


def _block(number: int) -> Block:
    return Block(chain="devnet", number=number, hash=f"0x{number + 1:064x}",
                 parent_hash=f"0x{number:064x}", timestamp=1_700_000_000 + number, head=number)


async def offsets(bootstrap: str, topic: str) -> dict[str, int]:
    """High watermark and last stable offset of partition 0 (for failure messages)."""
    found = {}
    for level in ("read_uncommitted", "read_committed"):
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=level)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            found[level] = (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
    return found


async def read_committed(bootstrap: str, topic: str) -> list[Block]:
    """Every committed block event of a single-partition topic, in order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, (await consumer.beginning_offsets([tp]))[tp])
        out: list[Block] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            out += [BLOCK_DECODER.decode(r.value) for r in batch.get(tp, []) if r.value]
        return out
    finally:
        await consumer.stop()


def assert_no_gap_no_duplicate(blocks: list[Block], upto: int) -> None:
    """Blocks 0..``upto`` each exactly once, in order, each linked to the one before."""
    numbers = [b.number for b in blocks if b.kind == "block"]
    assert numbers[: upto + 1] == list(range(upto + 1)), (
        f"{len(blocks)} events up to block {max(numbers, default=None)}; "
        f"gaps {sorted(set(range(upto + 1)) - set(numbers))[:10]}, "
        f"duplicates {len(numbers) - len(set(numbers))}")
    assert len(numbers) == len(set(numbers))
    for before, after in itertools.pairwise(blocks):
        assert after.parent_hash.lower() == before.hash.lower(), after.number


async def test_a_new_holder_fences_the_old_and_aborted_writes_stay_unread(
        kafka_bootstrap: str, unique_prefix: str) -> None:
    topic = block_topic(unique_prefix, "devnet")
    txn_id = chain_transactional_id(unique_prefix, "devnet")
    old = KafkaBlockPublisher(kafka_bootstrap, topic, transactional_id=txn_id)
    new = KafkaBlockPublisher(kafka_bootstrap, topic, transactional_id=txn_id)
    await old.ensure_topic()
    try:
        assert await old.read_tail(10) == []
        await old.publish([_block(0), _block(1), _block(2)])
        # a half-written batch of another holder of the id, left open as by a kill -9
        zombie = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=txn_id)
        await zombie.start()  # fences ``old`` already
        await zombie.begin_transaction()
        await (await zombie.send(topic, encode(_block(3)), partition=0))
        tail = await new.read_tail(10)  # fences the zombie, aborting its open transaction
        assert [b.number for b in tail] == [0, 1, 2]
        with pytest.raises(ConnectorFenced):
            await old.publish([_block(3)])
        with pytest.raises(ConnectorFenced):  # and it stays fenced: no re-init behind our back
            await old.read_tail(10)
        await new.publish([_block(3), _block(4)])
        # three records back, although the offsets also hold transaction markers
        assert [b.number for b in await new.read_tail(3)] == [2, 3, 4]
        with pytest.raises(Exception):  # noqa: B017 - the zombie's commit is refused
            await zombie.commit_transaction()
        await zombie.stop()
    finally:
        await old.close()
        await new.close()
    assert [b.number for b in await read_committed(kafka_bootstrap, topic)] == [0, 1, 2, 3, 4]


def _metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    match = re.search(rf'^{name}\{{chain="devnet"\}} ([0-9.e+-]+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


def _wait(condition: object, timeout: float, what: str, logs: object) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")  # type: ignore[operator]


def test_two_connectors_one_active_kill_9_standby_takes_over(
        tmp_path: Path, kafka_bootstrap: str, anvil: LocalAnvil, unique_prefix: str) -> None:
    anvil_rpc = anvil.http_url
    instances = {name: Pipeline(tmp_path / name, kafka_bootstrap, unique_prefix, anvil_rpc,
                                chain={"batch_size": 5, "confirmations": 1},
                                extra={"kafka": {"bootstrap": kafka_bootstrap,
                                                 "topic_prefix": unique_prefix,
                                                 "connector_session_timeout_seconds": 6}})
                 for name in ("a", "b")}

    def logs() -> str:
        return "\n".join(p.logs() for p in instances.values())

    def active() -> list[str]:
        return [n for n, p in instances.items()
                if _metric(p.metrics_port, "chainwatch_connector_active") == 1]

    def published(name: str) -> float:
        return _metric(instances[name].metrics_port, "chainwatch_last_published_block") or -1

    from monitor.demo.devnet import DevnetDriver
    driver = DevnetDriver(anvil_rpc)
    driver.mine(30)
    try:
        for pipeline in instances.values():
            pipeline.start("connector")
        _wait(lambda: len(active()) == 1 and published(active()[0]) >= 29, 90,
              "one active connector that published block 29", logs)
        time.sleep(2.0)
        leader = active()
        assert len(leader) == 1, leader  # still exactly one after the standby settled
        standby = "b" if leader[0] == "a" else "a"
        assert _metric(instances[standby].metrics_port, "chainwatch_connector_active") == 0
        driver.mine(20)
        _wait(lambda: published(leader[0]) >= 40, 60, "the active one at block 40", logs)
        instances[leader[0]].kill("connector")
        for _ in range(20):  # blocks keep coming during the takeover
            driver.mine(1)
            time.sleep(0.3)
        head = driver.head()
        _wait(lambda: published(standby) >= head - 1, 90,
              f"the standby to take over and reach block {head - 1}", logs)
        topic = block_topic(unique_prefix, "devnet")
        blocks = asyncio.run(read_committed(kafka_bootstrap, topic))
        ends = asyncio.run(offsets(kafka_bootstrap, topic))
    finally:
        for pipeline in instances.values():
            pipeline.stop()
    try:
        assert_no_gap_no_duplicate(blocks, head - 1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nend offsets {ends}\n{logs()}") from None
    taken_over = instances[standby].logs()
    assert "is now the active instance" in taken_over and "resuming at block" in taken_over
