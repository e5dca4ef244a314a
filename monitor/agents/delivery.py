"""Delivery agent: reads alerts and hands each to every sink that accepts it, once.

The ``delivered`` table records, per sink, which alert events were delivered, and per alerts
partition the offset of the last event handled (``@offset:<partition>``). An event whose offset
is not the next one is delivered only after the ones in between, read from the broker
(:mod:`monitor.agents.sequence`), so an offset committed past alerts never delivered cannot make
the worker skip them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import msgspec

from monitor.agents.durable import durable_table, settle_while_broker_away, while_broker_away
from monitor.agents.sequence import Record, read_between, report_fill
from monitor.deadletter import dead_letter
from monitor.lifecycle import delivery_key
from monitor.metrics import DEAD_LETTERS
from monitor.records import ALERT_DECODER, Alert
from monitor.runtime import WorkerRuntime
from monitor.sinks.base import Sink

log = logging.getLogger(__name__)


def register(app: faust.App, runtime: WorkerRuntime) -> Any:
    """Define the delivery agent and its ``delivered`` table on ``app``."""
    alerts_topic = app.topic(runtime.topics.alerts, value_serializer="raw",
                             key_serializer="raw")
    deadletter_topic = app.topic(runtime.topics.deadletter, value_serializer="raw",
                                 key_serializer="raw")
    # Which (sink, alert id) pairs were delivered: co-partitioned with the alerts topic (both
    # keyed by alert id), so a restarted or rebalanced worker does not notify twice.
    # No value_type: faust cannot decode a changelog value into ``bool`` (it calls
    # ``bool.from_data``), so recovery never finished and a restarted worker stayed idle.
    # Its writes are settled before the next alert is taken (so before this one's offset can
    # be committed): a worker killed after a delivery does not notify again on restart.
    delivered = durable_table(app, "delivered", default=bool,
                              partitions=runtime.config.kafka.partitions, key_type=str)

    async def deliver_one(sink: Sink, alert: Alert, raw: bytes) -> None:
        key = f"{sink.name}:{delivery_key(alert)}"  # each lifecycle event once per sink
        if delivered[key]:
            return
        try:
            await sink.deliver(alert)
        except Exception as exc:  # SinkError after retries, or a bug: never lose the alert
            log.error("alert %s could not be delivered to %s: %s", alert.id, sink.name, exc)
            sent = await deadletter_topic.send(key=alert.id.encode(), value=dead_letter(
                "delivery", exc, raw, sink=sink.name, key=alert.id))
            await sent  # in the dead-letter topic before it counts as handled
            DEAD_LETTERS.labels("delivery").inc()
        delivered[key] = True

    async def deliver_record(record: Record) -> None:
        """Hand one alert event to every sink that accepts it, and note it handled."""
        try:
            alert = ALERT_DECODER.decode(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            sent = await deadletter_topic.send(key=record.key, value=dead_letter(
                "delivery-decode", exc, record.value, topic=record.topic))
            await sent
            DEAD_LETTERS.labels("delivery-decode").inc()
        else:
            sinks = [s for s in runtime.sinks if s.accepts(alert)]
            results = await asyncio.gather(*(deliver_one(s, alert, record.value)
                                             for s in sinks), return_exceptions=True)
            for sink, result in zip(sinks, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("delivery to %s raised %r", sink.name, result)
        delivered[f"@offset:{record.partition}"] = record.offset  # the event's partition
        await settle_while_broker_away(delivered)

    resumed: set[int] = set()

    async def catch_up(record: Record) -> bool:
        """Deliver what a consumer skipped before ``record``; False if it was handled already."""
        mark = f"@offset:{record.partition}"
        last = int(delivered[mark]) if mark in delivered else None
        if record.partition not in resumed:
            resumed.add(record.partition)
            log.info("delivering %s[%s] from offset %s: handled through offset %s",
                     record.topic, record.partition, record.offset, last)
        # Nothing handled yet in this partition: everything from its start is still to
        # deliver (faust can hand over a later event first, and commit past earlier ones).
        after = -1 if last is None else last
        if record.offset == after + 1:
            return True
        if record.offset <= after:
            return False  # handled before a restart: its deliveries are recorded
        skipped = await while_broker_away("reading skipped alerts", lambda: read_between(
            runtime.bootstrap, record.topic, record.partition, after + 1, record.offset))
        if last is None and not skipped:
            return True  # the partition starts here (earlier records removed, or markers)
        report_fill("delivery", record.topic, f"alert event at offset {record.offset} does not "
                    f"follow offset {after}", after + 1, record.offset, len(skipped))
        for found in skipped:
            await deliver_record(Record.of_consumer(found))
        return True

    @app.agent(alerts_topic, name="deliver-alerts")
    async def deliver(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            record = Record.of_event(event)
            if await catch_up(record):
                await deliver_record(record)

    return deliver

