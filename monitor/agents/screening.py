"""Screening agent: reads block events, screens every transfer, emits alerts."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import msgspec

from monitor.deadletter import dead_letter
from monitor.metrics import (
    ALERT_LATENCY,
    ALERTS_RAISED,
    BLOCKS_SCREENED,
    DEAD_LETTERS,
    TRANSFERS_SCREENED,
)
from monitor.records import BLOCK_DECODER, encode
from monitor.runtime import WorkerRuntime
from monitor.screening import ChainPolicy, screen_block

log = logging.getLogger(__name__)


def register(app: faust.App, runtime: WorkerRuntime) -> Any:
    """Define the screening agent on ``app``; returns the agent."""
    block_topics = app.topic(*(runtime.topics.blocks(c) for c in runtime.topics.chains),
                             value_serializer="raw", key_serializer="raw")
    alerts_topic = app.topic(runtime.topics.alerts, value_serializer="raw",
                             key_serializer="raw")
    deadletter_topic = app.topic(runtime.topics.deadletter, value_serializer="raw",
                                 key_serializer="raw")

    @app.agent(block_topics, name="screen-blocks")
    async def screen(stream: faust.StreamT[bytes]) -> None:
        await runtime.replica.ready.wait()
        async for event in stream.events():
            raw: bytes = event.value
            try:
                block = BLOCK_DECODER.decode(raw)
                BLOCKS_SCREENED.labels(block.chain).inc()
                if block.kind == "revert":
                    log.warning("block %s %s on %s was reorged out", block.number, block.hash,
                                block.chain)
                    continue
                policy = runtime.policies.get(block.chain, ChainPolicy(confirmations=0))
                now = time.time()
                alerts = screen_block(block, runtime.replica, runtime.rules, policy, now)
                TRANSFERS_SCREENED.labels(block.chain).inc(len(block.transfers))
                for alert in alerts:
                    await alerts_topic.send(key=alert.id.encode(), value=encode(alert))
                    ALERTS_RAISED.labels(alert.rule, alert.severity).inc()
                    ALERT_LATENCY.labels(alert.chain).observe(max(0.0, now - alert.block_time))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await _to_deadletter(deadletter_topic, "screening", exc, event)
            except Exception as exc:  # a poison message must never stall the partition
                log.exception("screening failed; record sent to the dead-letter topic")
                await _to_deadletter(deadletter_topic, "screening", exc, event)

    return screen


async def _to_deadletter(topic: faust.TopicT, stage: str, exc: BaseException,
                         event: faust.EventT) -> None:
    message = event.message
    await topic.send(key=message.key, value=dead_letter(
        stage, exc, event.value, topic=message.topic, partition=message.partition,
        offset=message.offset))
    DEAD_LETTERS.labels(stage).inc()
