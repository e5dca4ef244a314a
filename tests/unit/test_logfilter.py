"""The repeat collapser: a flood of identical aiokafka errors becomes one line per interval."""

from __future__ import annotations

import logging

import pytest

from monitor.logfilter import AIOKAFKA_LOGGERS, RepeatCollapser, install_repeat_collapser


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    """Keep every record that reaches the handler."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture()
def flood_logger() -> tuple[logging.Logger, Collect, FakeClock]:
    logger = logging.getLogger("test.logfilter.flood")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    for f in list(logger.filters):
        logger.removeFilter(f)
    handler = Collect()
    logger.handlers = [handler]
    clock = FakeClock()
    logger.addFilter(RepeatCollapser(10.0, clock=clock))
    return logger, handler, clock


def test_thousands_of_identical_errors_become_one_line_per_interval(
        flood_logger: tuple[logging.Logger, Collect, FakeClock]) -> None:
    logger, handler, clock = flood_logger
    for _second in range(30):  # 30 s of broker outage, 100 errors a second
        for _ in range(100):
            logger.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
        clock.now += 1
    logger.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
    assert handler.lines[0] == "Unable connect to node with id 1: Connect call failed"
    assert len(handler.lines) == 4
    assert handler.lines[1] == ("Unable connect to node with id 1: Connect call failed "
                                "[999 identical message(s) suppressed in the last 10s]")
    total = 1 + sum(int(line.split("[")[1].split()[0]) + 1 for line in handler.lines[1:])
    assert total == 30 * 100 + 1  # every record is either shown or counted


def test_different_messages_and_low_levels_are_not_collapsed(
        flood_logger: tuple[logging.Logger, Collect, FakeClock]) -> None:
    logger, handler, _ = flood_logger
    for _ in range(3):
        logger.error("Unable connect to node with id %s", 1)
        logger.error("Unable connect to node with id %s", 2)
        logger.warning("Unable connect to node with id %s", 1)
        logger.info("metadata refreshed")
        logger.debug("metadata refreshed")
    assert handler.lines.count("Unable connect to node with id 1") == 2  # error + warning
    assert handler.lines.count("Unable connect to node with id 2") == 1
    assert handler.lines.count("metadata refreshed") == 6


def test_a_single_repeat_after_the_interval_is_shown_plainly(
        flood_logger: tuple[logging.Logger, Collect, FakeClock]) -> None:
    logger, handler, clock = flood_logger
    logger.error("broker down")
    clock.now += 11
    logger.error("broker down")
    assert handler.lines == ["broker down", "broker down"]


def test_install_puts_one_shared_filter_on_every_aiokafka_logger() -> None:
    first = install_repeat_collapser()
    second = install_repeat_collapser()  # idempotent: replaces, never stacks
    for name in AIOKAFKA_LOGGERS:
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RepeatCollapser)]
        assert filters == [second]
    assert first is not second


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_seconds"):
        RepeatCollapser(0)
