"""Fixtures of the fault suite: a :class:`Services` built from the real-service fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.scenarios import Outcome, Services
from tests.plugins.services import AnvilFactory, KafkaFactory

_OUTCOMES: list[Outcome] = []


@pytest.fixture()
def services(tmp_path: Path, kafka_bootstrap: str, anvil_factory: AnvilFactory,
             kafka_factory: KafkaFactory) -> Iterator[Services]:
    """The session broker, fresh anvil nodes and private brokers for one scenario."""
    yield Services(bootstrap=kafka_bootstrap, workdir=tmp_path, new_anvil=anvil_factory,
                   new_kafka=kafka_factory, seed=7, say=lambda text: None)


@pytest.fixture()
def report() -> Any:
    """Record outcomes; their tables are printed at the end of the run."""
    return _OUTCOMES.append


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print each scenario's table, pass or fail."""
    if _OUTCOMES:
        terminalreporter.section("chainwatch fault scenarios")
        for outcome in _OUTCOMES:
            terminalreporter.write_line(outcome.table())
