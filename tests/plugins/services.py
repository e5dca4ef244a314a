"""pytest fixtures for the real local services: an Apache Kafka broker and anvil nodes.

Register with ``pytest_plugins = ["tests.plugins.services"]`` in the top-level conftest (or
``-p tests.plugins.services``). A service that cannot start makes the test error; it is never
skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.devservices import LocalAnvil, LocalKafka

_startup_seconds: dict[str, float] = {}

AnvilFactory = Callable[..., LocalAnvil]
KafkaFactory = Callable[..., LocalKafka]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """Return the session's Kafka broker, started once and stopped at the end."""
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"))
    broker.start(timeout=180.0)  # generous: a loaded 2-core machine starts a JVM slowly
    _startup_seconds["kafka (session broker)"] = broker.startup_seconds or 0.0
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalKafka) -> str:
    """Return the bootstrap address of the session's Kafka broker."""
    return kafka_broker.bootstrap


@pytest.fixture()
def kafka_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaFactory]:
    """Return a function that starts private brokers (for restart and outage tests)."""
    started: list[LocalKafka] = []

    def make(state_dir: Path | None = None, **kwargs: Any) -> LocalKafka:
        broker = LocalKafka(state_dir or tmp_path_factory.mktemp("kafka-private"), **kwargs)
        started.append(broker)
        broker.start(timeout=180.0)  # generous: a loaded 2-core machine starts a JVM slowly
        return broker

    try:
        yield make
    finally:
        for broker in started:
            broker.stop()


@pytest.fixture()
def anvil_factory(tmp_path: Path) -> Iterator[AnvilFactory]:
    """Return a function that starts anvil nodes with custom arguments, stopped after the test."""
    started: list[LocalAnvil] = []

    def make(**kwargs: Any) -> LocalAnvil:
        kwargs.setdefault("log_path", tmp_path / f"anvil-{len(started)}.log")
        node = LocalAnvil(**kwargs)
        started.append(node)
        node.start()
        _startup_seconds.setdefault("anvil", node.startup_seconds or 0.0)
        return node

    try:
        yield make
    finally:
        for node in started:
            node.stop()


@pytest.fixture()
def anvil(anvil_factory: AnvilFactory) -> LocalAnvil:
    """Return a fresh anvil node for this test, mining a block per transaction."""
    return anvil_factory()


@pytest.fixture()
def unique_prefix() -> str:
    """Return a topic prefix / group id unique to this test, like ``t1a2b3c4d.``."""
    return f"t{uuid.uuid4().hex[:8]}."


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how long the local services took to start."""
    if _startup_seconds:
        terminalreporter.section("chainwatch local services")
        for name, seconds in _startup_seconds.items():
            terminalreporter.write_line(f"{name} started in {seconds:.2f}s")
