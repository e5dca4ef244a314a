"""Issue #5, must show: a worker added while the stream runs takes partitions over.

One ``chainwatch worker`` screens and delivers while anvil blocks with transfers from watched
addresses stream in through a ``chainwatch connector``; the alerts topic has 4 partitions.
Mid-stream a second worker joins the same consumer group: Kafka rebalances, and the newcomer
takes over alert partitions together with their ``delivered`` table (so it does not notify
again what the first one delivered). At the end every alert the fault suite's independent
backtest expects reached a signing webhook receiver, none twice under different ids, none
unexpected, and the second worker delivered some of them itself.

What stays with one worker: the chain's block topic has one partition (blocks of a chain are
screened in order), so screening of a chain moves to another worker only when its worker
leaves (tests/faults and test_cluster_failover kill it); see the README's "Scaling".
"""

from __future__ import annotations

import random
import re
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from monitor.demo.devnet import DevnetDriver
from monitor.devservices import LocalAnvil
from tests.faults.scenarios import (
    SECRET,
    FaultPipeline,
    Outcome,
    Workload,
    _LiveTraffic,
    await_alerts,
)
from tests.integration.test_connector_ha import _wait
from tests.support.receivers import ThreadedWebhookReceiver

pytestmark = pytest.mark.integration

PARTITIONS = 4


def _deliveries(pipeline: FaultPipeline) -> float:
    """Alerts this worker handed to the webhook sink (its own /metrics)."""
    try:
        with urllib.request.urlopen(f"{pipeline.api}/metrics", timeout=3) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    match = re.search(r'^chainwatch_sink_deliveries_total\{sink="hook"\} ([0-9.e+]+)$', text,
                      re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_worker_added_mid_stream_takes_alert_partitions_over(
        tmp_path: Path, kafka_bootstrap: str, anvil: LocalAnvil) -> None:
    started = time.monotonic()
    rng = random.Random(505)
    prefix = f"so{rng.getrandbits(32):08x}."
    driver = DevnetDriver(anvil.http_url)
    kafka = {"bootstrap": kafka_bootstrap, "topic_prefix": prefix, "partitions": PARTITIONS}
    with ThreadedWebhookReceiver(SECRET) as receiver:
        first, second = (FaultPipeline(tmp_path / name, kafka_bootstrap, prefix, anvil.http_url,
                                       webhook_url=receiver.url, chain={"confirmations": 1},
                                       extra={"kafka": kafka}) for name in ("first", "second"))

        def logs() -> str:
            return first.logs() + "\n" + second.logs()

        try:
            first.start("worker")
            work = Workload(driver, rng)
            first.wait_ready(timeout=120)
            first.watch(work.entries())
            first.start("connector")
            with _LiveTraffic(work, interval=0.7, limit=60, gap=1, rng=rng):
                receiver.wait_for(4, timeout=90)
                before = len(receiver.alerts)
                second.start("worker")  # joins the group while blocks keep coming
                second.wait_ready(timeout=120)
                _wait(lambda: _deliveries(second) > 0, 120,
                      "the added worker to deliver alerts of partitions it took over", logs)
            driver.mine(3)  # the last transfer one confirmation deep, and then some
            expected = work.expected()
            await_alerts([first, second], receiver, set(expected), timeout=120)
            delivered_by = {"first": _deliveries(first), "second": _deliveries(second)}
        except BaseException:
            print(logs())
            raise
        finally:
            first.stop()
            second.stop()
    outcome = Outcome("a worker added mid-stream", Counter({"worker added": 1}), expected,
                      receiver.alerts, seconds=time.monotonic() - started,
                      info={"alerts before the second worker joined": before,
                            "delivered by (sink metric)": delivered_by,
                            "transfers sent": len(work.sent)})
    print(outcome.table())
    assert not outcome.problems(), outcome.table()
    assert delivered_by["second"] > 0 and delivered_by["first"] > 0, delivered_by
