"""Read alerts back from the alerts topic: for ``chainwatch alerts`` and the demo."""

from __future__ import annotations

import asyncio

import click
from aiokafka import ConsumerRecord

from monitor.follower import TopicFollower
from monitor.records import ALERT_DECODER, Alert
from monitor.sinks.console import format_alert


async def print_alerts(bootstrap: str, topic: str, limit: int, follow: bool,
                       as_json: bool) -> None:
    """Print the last ``limit`` alerts per partition, then new ones while ``follow``."""

    def show(record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        if as_json:
            click.echo(record.value.decode())
        else:
            click.echo(format_alert(ALERT_DECODER.decode(record.value)))

    follower = TopicFollower(bootstrap, topic, show, tail=limit, name="alerts")
    await follower.start()
    try:
        await follower.ready.wait()
        if follow:
            await asyncio.Event().wait()
    finally:
        await follower.stop()


async def collect_alerts(bootstrap: str, topic: str, until: int, timeout: float,
                         on_alert: object = None) -> list[Alert]:
    """Read alerts from the start of the topic until ``until`` distinct ids or ``timeout``."""
    seen: dict[str, Alert] = {}
    done = asyncio.Event()

    def take(record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        alert = ALERT_DECODER.decode(record.value)
        if alert.id not in seen:
            seen[alert.id] = alert
            if callable(on_alert):
                on_alert(alert)
        if len(seen) >= until:
            done.set()

    follower = TopicFollower(bootstrap, topic, take, name="collect-alerts")
    await follower.start()
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        await follower.stop()
    return list(seen.values())
