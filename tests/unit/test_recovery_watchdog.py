"""The recovery watchdog exits a worker whose table recovery stopped moving, and only then."""

from __future__ import annotations

from collections import Counter
from typing import Any

from faust.types import TP

from monitor.watchdog import EXIT_RECOVERY_STALLED, RecoveryWatchdog

CHANGELOG = TP("app-screening-changelog", 0)


class FakeRecovery:
    def __init__(self) -> None:
        self.remaining: Counter[TP] = Counter()

    def active_remaining(self) -> Counter[TP]:
        return self.remaining

    def active_remaining_total(self) -> int:
        return sum(self.remaining.values())


class FakeApp:
    def __init__(self) -> None:
        self.in_recovery = False
        self.recovery = FakeRecovery()
        self.tables = self


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _watchdog(stall: float = 60.0) -> tuple[RecoveryWatchdog, FakeApp, Clock, list[int]]:
    app, clock, exits = FakeApp(), Clock(), []
    dog = RecoveryWatchdog(app, stall, exit_process=exits.append, clock=clock)  # type: ignore[arg-type]
    return dog, app, clock, exits


def test_a_recovery_that_reads_nothing_exits_after_the_stall_time(caplog: Any) -> None:
    dog, app, clock, exits = _watchdog()
    app.in_recovery = True
    app.recovery.remaining[CHANGELOG] = 98
    assert not dog.check()
    clock.now += 59
    assert not dog.check()
    clock.now += 1
    assert dog.check()
    assert exits == [EXIT_RECOVERY_STALLED]
    assert "app-screening-changelog[0]" in caplog.text and "98" in caplog.text


def test_a_recovery_that_moves_is_left_alone() -> None:
    dog, app, clock, exits = _watchdog()
    app.in_recovery = True
    for remaining in range(500, 0, -10):  # slow but moving: ten changes per 50 s
        app.recovery.remaining[CHANGELOG] = remaining
        assert not dog.check()
        clock.now += 50
    assert exits == []


def test_outside_recovery_and_when_caught_up_nothing_is_timed() -> None:
    dog, app, clock, exits = _watchdog()
    app.recovery.remaining[CHANGELOG] = 98  # stale figures of a finished recovery
    for _ in range(5):
        assert not dog.check()
        clock.now += 100
    app.in_recovery = True
    app.recovery.remaining[CHANGELOG] = 0
    for _ in range(5):
        assert not dog.check()
        clock.now += 100
    assert exits == []


def test_each_recovery_is_timed_from_its_own_start() -> None:
    dog, app, clock, exits = _watchdog()
    app.in_recovery = True
    app.recovery.remaining[CHANGELOG] = 40
    dog.check()
    clock.now += 50
    app.in_recovery = False  # that recovery finished
    dog.check()
    clock.now += 5
    app.in_recovery = True  # the next rebalance happens to leave the same count
    assert not dog.check()
    clock.now += 30
    assert not dog.check()
    assert exits == []
