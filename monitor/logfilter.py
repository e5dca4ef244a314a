"""Collapse floods of identical log lines (aiokafka while the broker is down) into one per interval.

While the broker is unreachable, aiokafka logs the same connection error thousands of times
in a few seconds. :class:`RepeatCollapser` lets the first of a run of identical records through,
swallows the repeats for ``interval_seconds`` and, with the next identical record after that,
says how many were swallowed::

    Unable connect to node with id 1: ... [47 identical messages suppressed in the last 10s]

Records are identical when logger, level and rendered message are. Only records at WARNING or
above are collapsed; debug logs stay complete. Filters set on a logger are not consulted for
records of its child loggers, so :func:`install_repeat_collapser` puts the same instance on
every aiokafka module logger; faust's later logging set-up replaces handlers, not these.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DEFAULT_INTERVAL_SECONDS = 10.0
MAX_TRACKED = 1024  # distinct messages remembered at once (oldest forgotten first)

AIOKAFKA_LOGGERS: tuple[str, ...] = (
    "aiokafka",
    "aiokafka.admin.client",
    "aiokafka.cluster",
    "aiokafka.conn",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.consumer.subscription_state",
    "aiokafka.coordinator.assignors.abstract",
    "aiokafka.coordinator.assignors.range",
    "aiokafka.coordinator.assignors.roundrobin",
    "aiokafka.coordinator.assignors.sticky.partition_movements",
    "aiokafka.coordinator.assignors.sticky.sticky_assignor",
    "aiokafka.helpers",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)
"""The loggers aiokafka 0.14 logs to (``aiokafka`` itself and one per module)."""


@dataclass(slots=True)
class _Run:
    """A run of identical records: when its window started and how many were swallowed."""

    window_start: float
    suppressed: int = 0


class RepeatCollapser(logging.Filter):
    """Let one of each identical WARNING+ record through per interval, with a repeat count."""

    def __init__(self, interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 min_level: int = logging.WARNING) -> None:
        super().__init__()
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.interval_seconds = interval_seconds
        self.min_level = min_level
        self._clock = clock
        self._runs: OrderedDict[tuple[str, int, str], _Run] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for a repeat inside the interval; annotate the first one after it."""
        if record.levelno < self.min_level:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's to report
            return True
        key = (record.name, record.levelno, message)
        now = self._clock()
        run = self._runs.get(key)
        if run is None:
            self._runs[key] = _Run(window_start=now)
            while len(self._runs) > MAX_TRACKED:
                self._runs.popitem(last=False)
            return True
        self._runs.move_to_end(key)
        if now - run.window_start < self.interval_seconds:
            run.suppressed += 1
            return False
        if run.suppressed:
            record.msg = (f"{message} [{run.suppressed} identical message(s) suppressed in the "
                          f"last {now - run.window_start:.0f}s]")
            record.args = None
        run.window_start = now
        run.suppressed = 0
        return True


def install_repeat_collapser(names: Iterable[str] = AIOKAFKA_LOGGERS,
                             interval_seconds: float = DEFAULT_INTERVAL_SECONDS
                             ) -> RepeatCollapser:
    """Attach one shared :class:`RepeatCollapser` to each named logger (idempotent)."""
    collapser = RepeatCollapser(interval_seconds)
    for name in names:
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, RepeatCollapser)]:
            logger.removeFilter(existing)
        logger.addFilter(collapser)
    return collapser
