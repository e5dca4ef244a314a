"""Fixtures of the fault suite: a :class:`Services` built from the real-service fixtures."""

from __future__ import annotations

import os
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
    """The session broker, fresh anvil nodes and private brokers for one scenario.

    ``CHAINWATCH_FAULT_SEED`` picks other random kill points, reorgs and faults (default 7).
    """
    yield Services(bootstrap=kafka_bootstrap, workdir=tmp_path, new_anvil=anvil_factory,
                   new_kafka=kafka_factory,
                   seed=int(os.environ.get("CHAINWATCH_FAULT_SEED", "7")), say=lambda text: None)


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
