"""The local Kafka broker and anvil node start, answer, keep data and fail clearly."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from web3 import Web3

from monitor.devservices import LocalAnvil, LocalKafka
from monitor.devservices.kafka import live_broker_count
from monitor.errors import ServiceError
from tests.plugins.services import AnvilFactory, KafkaFactory

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send_and_wait(topic, value, key=str(i).encode())
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, group: str, count: int,
                   timeout: float = 30.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest")
    await consumer.start()
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            got += [m.value for msgs in batches.values() for m in msgs if m.value is not None]
    finally:
        await consumer.stop()
    return got


async def test_broker_answers_and_creates_topics(kafka_broker: LocalKafka,
                                                 unique_prefix: str) -> None:
    assert live_broker_count("127.0.0.1", kafka_broker.port) == 1
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        topic = f"{unique_prefix}created"
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        # CreateTopics answers once the controller has the topic; the broker's metadata cache
        # catches up asynchronously (seen in CI with many topics on the session broker)
        deadline = time.monotonic() + 30
        while topic not in (listed := await admin.list_topics()) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert topic in listed
    finally:
        await admin.close()


async def test_produce_consume_roundtrip(kafka_bootstrap: str, unique_prefix: str) -> None:
    topic = f"{unique_prefix}roundtrip"  # auto-created on first produce
    values = [f"message-{i}".encode() for i in range(10)]
    await _produce(kafka_bootstrap, topic, values)
    assert await _consume(kafka_bootstrap, topic, f"{unique_prefix}group", len(values)) == values


async def test_data_survives_restart_and_crash(kafka_factory: KafkaFactory,
                                               unique_prefix: str) -> None:
    broker = kafka_factory()
    topic = f"{unique_prefix}durable"
    await _produce(broker.bootstrap, topic, [b"before-restart"])
    port = broker.port

    await asyncio.to_thread(broker.restart)
    assert broker.port == port
    await _produce(broker.bootstrap, topic, [b"after-restart"])

    broker.kill()
    assert not broker.running
    await asyncio.to_thread(broker.start)
    got = await _consume(broker.bootstrap, topic, f"{unique_prefix}group", 2)
    assert got == [b"before-restart", b"after-restart"]

    broker.stop()
    broker.stop()
    broker.kill()
    assert not broker.running


def test_kafka_port_in_use_is_a_clear_error(tmp_path, kafka_broker: LocalKafka) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServiceError, match=f"127.0.0.1:{port} is already in use"):
            LocalKafka(tmp_path / "kafka", port=port).start()


def test_anvil_answers_and_mines_on_transaction(anvil: LocalAnvil) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.http_url))
    assert w3.eth.chain_id == 31337
    assert w3.eth.block_number == 0
    sender, receiver = w3.eth.accounts[:2]
    tx_hash = w3.eth.send_transaction({"from": sender, "to": receiver, "value": 12345})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1
    assert receipt["blockNumber"] == 1
    assert w3.eth.block_number == 1
    assert anvil.ws_url == f"ws://127.0.0.1:{anvil.port}"


def test_anvil_block_time_mines_empty_blocks(anvil_factory: AnvilFactory) -> None:
    node = anvil_factory(block_time=0.5, chain_id=1337)
    w3 = Web3(Web3.HTTPProvider(node.http_url))
    assert w3.eth.chain_id == 1337
    time.sleep(1.3)
    assert w3.eth.block_number >= 2


def test_anvil_stop_frees_the_port(anvil_factory: AnvilFactory) -> None:
    node = anvil_factory()
    node.stop()
    node.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", node.port)) != 0


def test_anvil_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path) -> None:
    missing = tmp_path / "no-such-anvil"
    monkeypatch.setenv("CHAINWATCH_ANVIL_BIN", str(missing))
    with pytest.raises(ServiceError, match="CHAINWATCH_ANVIL_BIN") as info:
        LocalAnvil().start()
    assert str(missing) in str(info.value)
