"""Issue #5, must show: a 3-broker KRaft cluster loses a broker, the active connector and a worker.

A private 3-node cluster (official jars, loopback) carries every chainwatch topic with
replication factor 3 and ``min.insync.replicas=2``. Two ``chainwatch connector`` processes
(one active, one standby) and two ``chainwatch worker`` processes run against it while anvil
blocks with transfers from watched addresses stream in. Mid-stream, ``kill -9``: the broker
leading the block topic, the active connector, then one worker. None of these is restarted: the
survivors must carry on. A survivor that exits on its own (the recovery watchdog's code 75) is
started again, as ``chainwatch up`` or the orchestrator would, and the table counts it. At the
end:

* every alert the fault suite's independent backtest expects (the node's final receipts,
  transactions and traces, alert ids recomputed from the README's formula) was delivered to
  a signing webhook receiver, none under two different ids for the same facts, none
  unexpected (:class:`tests.faults.scenarios.Outcome`);
* the block topic (read committed) holds every block once, in order, linked by parent hash;
* the standby connector logged its takeover, and every topic chainwatch created, faust's
  changelogs included, has 3 replicas and ``min.insync.replicas=2``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from monitor.demo.devnet import DevnetDriver
from monitor.devservices import LocalAnvil
from monitor.devservices.cluster import LocalKafkaCluster
from monitor.topics import block_topic
from tests.faults.scenarios import (
    SECRET,
    FaultPipeline,
    Outcome,
    Workload,
    _LiveTraffic,
    explain_missing,
)
from tests.integration.test_connector_ha import _metric, assert_no_gap_no_duplicate, read_committed
from tests.plugins.cluster import kafka_cluster, kafka_cluster_factory  # noqa: F401 - fixtures
from tests.support.receivers import ThreadedWebhookReceiver

pytestmark = pytest.mark.integration


async def _topic_layout(bootstrap: str, prefix: str, app_id: str
                        ) -> dict[str, tuple[int, str | None]]:
    """Replica count and ``min.insync.replicas`` of every topic of this pipeline."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics()
                 if t.startswith(prefix) or t.startswith(f"{app_id}-")]
        described = await admin.describe_topics(names)
        replicas = {t["topic"]: min(len(p["replicas"]) for p in t["partitions"])
                    for t in described}
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
        isr: dict[str, str | None] = {}
        for response in configs:
            for resource in response.resources:
                values = {entry[0]: entry[1] for entry in resource[4]}
                isr[resource[3]] = values.get("min.insync.replicas")
        return {name: (replicas[name], isr.get(name)) for name in names}
    finally:
        await admin.close()


async def _block_topic_leader(bootstrap: str, topic: str) -> int:
    """Node id leading partition 0 of ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return int(described["partitions"][0]["leader"])
    finally:
        await admin.close()


def _wait(condition: object, timeout: float, what: str, fail: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    if fail:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_broker_active_connector_and_worker_killed_mid_stream(
        tmp_path: Path, kafka_cluster: LocalKafkaCluster, anvil: LocalAnvil) -> None:  # noqa: F811
    started = time.monotonic()
    rng = random.Random(55)
    prefix = f"ha{rng.getrandbits(32):08x}."
    app_id = prefix.rstrip(".")
    bootstrap = kafka_cluster.bootstrap
    driver = DevnetDriver(anvil.http_url)
    faults: Counter[str] = Counter()
    exits: Counter[str] = Counter()
    kafka = {"bootstrap": bootstrap, "topic_prefix": prefix, "replication_factor": 3,
             "min_insync_replicas": 2, "connector_session_timeout_seconds": 6}
    with ThreadedWebhookReceiver(SECRET) as receiver:
        pipelines = {name: FaultPipeline(tmp_path / name, bootstrap, prefix, anvil.http_url,
                                         webhook_url=receiver.url, chain={"confirmations": 1},
                                         extra={"kafka": kafka})
                     for name in ("a", "b")}

        def logs() -> str:
            return "\n".join(p.logs() for p in pipelines.values())

        def active_connectors() -> list[str]:
            return [n for n, p in pipelines.items()
                    if _metric(p.metrics_port, "chainwatch_connector_active") == 1]

        try:
            for pipeline in pipelines.values():
                pipeline.start("worker")
            work = Workload(driver, rng)
            for pipeline in pipelines.values():
                pipeline.wait_ready(timeout=150)
            pipelines["a"].watch(work.entries())
            _wait(lambda: all(p.request("GET", "/watchlist")[1]["count"] >= 3
                              for p in pipelines.values()), 30, "both workers' watchlists")
            for pipeline in pipelines.values():
                pipeline.start("connector")
            _wait(lambda: len(active_connectors()) == 1, 90, "one active connector")
            time.sleep(2.0)  # the second instance joined: the group settled on one
            with _LiveTraffic(work, interval=0.8, limit=36, gap=1, rng=rng):
                receiver.wait_for(3, timeout=90)
                leader = asyncio.run(_block_topic_leader(bootstrap, block_topic(prefix,
                                                                                "devnet")))
                kafka_cluster.kill_node(leader)
                faults[f"broker {leader} (block topic leader) kill -9"] += 1
                time.sleep(3.0)
                _wait(lambda: len(active_connectors()) == 1, 60, "one active connector")
                (active,) = active_connectors()
                standby = "b" if active == "a" else "a"
                pipelines[active].kill("connector")
                faults["active connector kill -9"] += 1
                time.sleep(3.0)
                pipelines[standby].kill("worker")
                faults["worker kill -9"] += 1
            driver.mine(3)  # the last transfer one confirmation deep, and then some
            head = driver.head()
            expected = work.expected()
            killed = {(active, "connector"), (standby, "worker")}

            def supervise_survivors() -> None:
                """Start again a survivor that exited on its own, as ``chainwatch up`` would."""
                for name, pipeline in pipelines.items():
                    for process, proc in list(pipeline.processes.items()):
                        if (name, process) not in killed and proc.poll() is not None:
                            exits[f"{name} {process} (code {proc.returncode})"] += 1
                            pipeline.start(process)

            def all_delivered() -> bool:
                supervise_survivors()
                return set(expected) <= set(receiver.ids())

            _wait(all_delivered, 150, "every expected alert", fail=False)
            time.sleep(2.0)  # a duplicate or a late update would arrive now
            _wait(lambda: _metric(pipelines[standby].metrics_port,
                                  "chainwatch_last_published_block") == head - 1, 60,
                  "the standby connector to publish the last confirmed block")
            blocks = asyncio.run(read_committed(bootstrap, block_topic(prefix, "devnet")))
            layout = asyncio.run(_topic_layout(bootstrap, prefix, app_id))
        except BaseException:
            print(logs())
            raise
        finally:
            for pipeline in pipelines.values():
                pipeline.stop()
    outcome = Outcome("3-broker cluster: broker, active connector and worker kill -9", faults,
                      expected, receiver.alerts, seconds=time.monotonic() - started,
                      info={"blocks": head, "transfers sent": len(work.sent),
                            "broker nodes still running": kafka_cluster.running,
                            "survivors that exited (started again)": ", ".join(
                                f"{k} x{v}" for k, v in sorted(exits.items())) or "none"})
    if outcome.problems():
        explain_missing(outcome, list(pipelines.values()), logs="*-*.log")
    print(outcome.table())
    assert not outcome.problems(), outcome.table()
    assert_no_gap_no_duplicate(blocks, head - 1)
    assert "is now the active instance" in pipelines[standby].logs()
    assert any(name.endswith("-changelog") for name in layout), layout
    wrong = {name: got for name, got in layout.items() if got != (3, "2")}
    assert not wrong, f"topics without 3 replicas and min.insync.replicas=2: {wrong}"
