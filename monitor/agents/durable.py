"""Faust tables whose changelog writes an agent can wait for before it moves on.

Faust writes a table change to its changelog topic through a buffer and commits the source
offset later; its pre-commit flush gives up after 0.1 s per message, so an offset can be
committed while the state it stands for is still in the buffer. A worker killed then restarts
with state older than its offset, and the events in between are neither screened again nor
remembered. :meth:`DurableTable.settle` closes that gap: an agent calls it before taking the
next event, so every change of an event is acknowledged by the broker before the event can be
committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
from aiokafka.errors import KafkaError
from faust.types import FutureMessage

log = logging.getLogger(__name__)

T = TypeVar("T")


class DurableTable(faust.Table):
    """A :class:`faust.Table` that remembers its unacknowledged changelog writes."""

    def __init__(self, app: faust.App, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._unsettled: list[FutureMessage] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        """Send a change as faust does, keeping its future until :meth:`settle`."""
        future: FutureMessage = super().send_changelog(*args, **kwargs)
        self._unsettled.append(future)
        return future

    @property
    def unsettled(self) -> int:
        """Changelog writes not yet acknowledged by the broker."""
        return len(self._unsettled)

    async def settle(self) -> None:
        """Wait until every change so far is acknowledged; resend and raise on failure.

        A write the producer gave up on (the broker was away too long) is sent again with the
        same key and value, and the error is raised so the caller retries ``settle`` later.
        """
        while self._unsettled:
            pending, self._unsettled = self._unsettled, []
            results = await asyncio.gather(*pending, return_exceptions=True)
            failed = [(future, result) for future, result in zip(pending, results, strict=True)
                      if isinstance(result, BaseException)]
            if failed:
                for future, _ in failed:
                    message = future.message
                    # key and value were serialized when first sent: pass the bytes through
                    self.send_changelog(message.partition, message.key, message.value,
                                        key_serializer="raw", value_serializer="raw")
                raise failed[0][1]


def durable_table(app: faust.App, name: str, **kwargs: Any) -> DurableTable:
    """Define a :class:`DurableTable` on ``app`` (as ``app.Table`` does for plain tables)."""
    table = DurableTable(app, name=name, beacon=app.tables.beacon, **kwargs)
    app.tables.add(table)
    return table


async def while_broker_away(what: str, step: Callable[[], Awaitable[T]],
                            cap_seconds: float = 30.0) -> T:
    """Await ``step()`` until it succeeds, retrying with bounded backoff on broker errors.

    Nothing may be acknowledged meanwhile, so the agent's partition waits: that is the point.
    """
    delay = 0.5
    while True:
        try:
            return await step()
        except KafkaError as exc:
            log.warning("%s: broker error (%r); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(cap_seconds, delay * 2)


async def settle_while_broker_away(table: DurableTable, cap_seconds: float = 30.0) -> None:
    """Settle ``table``, retrying with bounded backoff while the broker is away."""
    await while_broker_away(f"table {table.name}: writes not acknowledged", table.settle,
                            cap_seconds)
