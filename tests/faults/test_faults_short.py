"""The CI-sized fault suite: every scenario ends with 0 missing alerts and one id per fact.

Each test prints (at the end of the run) a table: faults injected, alerts expected, delivered,
missing, duplicated by id, the same facts under two ids. Duplicates by the same id are allowed
(the receiver's idempotency key absorbs them) and only reported. The long version is
``python -m tests.faults.soak`` (see README, "Fault tests").
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults import scenarios
from tests.faults.rpc_proxy import FAULT_KINDS
from tests.faults.scenarios import Outcome, Services

pytestmark = pytest.mark.integration

Report = Callable[[Outcome], None]


def _passed(outcome: Outcome) -> None:
    assert not outcome.problems(), outcome.table()


def test_kill_9_connector_and_worker_during_replay(services: Services, report: Report) -> None:
    outcome = scenarios.kill_points(services, blocks=300, transfers=30, kills=4)
    report(outcome)
    assert outcome.faults["connector kill -9"] >= 1 and outcome.faults["worker kill -9"] >= 1
    _passed(outcome)


def test_reorgs_depth_1_to_5_while_streaming(services: Services, report: Report) -> None:
    outcomes = scenarios.reorgs(services, count=4, max_depth=5, deep_confirmations=6)
    for outcome in outcomes:
        report(outcome)
    assert sum(outcomes[0].faults.values()) == 4
    for outcome in outcomes:  # at 0 confirmations orphaned alerts are allowed, not missing
        _passed(outcome)


def test_rpc_faults_with_failover(services: Services, report: Report) -> None:
    outcome = scenarios.rpc_faults(services, rate=0.2, transfers=20)
    report(outcome)
    assert set(FAULT_KINDS) <= set(outcome.faults), outcome.table()  # every kind injected
    _passed(outcome)


def test_broker_stopped_and_restarted(services: Services, report: Report) -> None:
    outcome = scenarios.broker_outage(services, outage_seconds=10, transfers=24)
    report(outcome)
    _passed(outcome)


def test_sink_down_then_recovering_and_dead_sink(services: Services, report: Report) -> None:
    outcome = scenarios.sink_outage(services, error_seconds=10, refused_seconds=10,
                                    transfers=6)
    report(outcome)
    _passed(outcome)
