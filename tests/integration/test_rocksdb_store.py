"""A worker with ``worker.store: rocksdb`` restarts from its local RocksDB state.

Real Apache Kafka broker, real anvil node, the real ``chainwatch connector`` and
``chainwatch worker`` processes and a real signing webhook receiver. The worker is stopped with
SIGTERM, restarted, then killed with SIGKILL while transfers keep coming, and restarted again.
Every transfer to or from the watched wallet must be alerted exactly once, and each restarted
worker must resume its tables from the offsets its RocksDB files remember (faust's "Reading
Starts At" table shows an offset above -1, near the changelog's end) instead of reading the
whole changelog again as a worker with the memory store does.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from monitor.demo.devnet import DevnetDriver, SentTransfer
from tests.integration.harness import Pipeline, read_topic
from tests.support.receivers import ThreadedWebhookReceiver

pytestmark = pytest.mark.integration
ETHER = 10**18
SECRET = "whsec-test-secret"
TABLES = ("screening", "delivered")


def start_offsets(log: str) -> dict[str, int]:
    """Offsets per table changelog in the worker's "Reading Starts At - Active" table."""
    _, found, tail = log.partition("Reading Starts At - Active")
    assert found, "the worker logged no recovery start offsets"
    tail = tail[:2000]  # the table itself (ASCII borders when not on a terminal)
    offsets = {}
    for table in TABLES:
        row = re.search(rf"-{table}-changelog\s*[|│]\s*0\s*[|│]\s*(-?\d+)\s*[|│]", tail)
        assert row, f"no start offset for the {table} changelog in:\n{tail}"
        offsets[table] = int(row.group(1))
    return offsets


def changelog_records(pipeline: Pipeline, table: str) -> int:
    """Records in a table's changelog topic (one partition, never compacted this soon)."""
    return len(read_topic(pipeline.bootstrap, f"{pipeline.prefix.rstrip('.')}-{table}-changelog"))


def worker_log(pipeline: Pipeline, run: int) -> str:
    """What the worker printed in its ``run``-th start (0 = first)."""
    return (pipeline.workdir / f"worker-{run}.log").read_text(errors="replace")


def wait_for_alerts(pipeline: Pipeline, receiver: ThreadedWebhookReceiver, n: int) -> None:
    """Wait until the receiver accepted ``n`` alerts; fail with every process's log."""
    try:
        receiver.wait_for(n, timeout=120)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{pipeline.logs()}") from None


def redeliveries(receiver: ThreadedWebhookReceiver) -> dict[str, int]:
    """Idempotency keys the receiver got more than once (one key per alert event)."""
    keys = Counter(r.headers["Idempotency-Key"] for r in receiver.alerts)
    return {key: n for key, n in keys.items() if n > 1}


def stop_worker(pipeline: Pipeline, how: str) -> None:
    """SIGTERM (waiting for a clean exit) or SIGKILL the worker."""
    if how == "kill":
        pipeline.kill("worker")
        return
    proc = pipeline.processes["worker"]
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except Exception:
        proc.kill()
        raise AssertionError(f"the worker did not stop on SIGTERM\n{pipeline.logs()}") from None


def test_rocksdb_worker_resumes_from_local_state_after_sigterm_and_kill_9(
        tmp_path: Path, kafka_bootstrap: str, anvil, unique_prefix: str) -> None:
    driver = DevnetDriver(anvil.http_url)
    seized = driver.new_wallet("seized")
    driver.fund(seized, 1_000 * ETHER)
    state_dir = tmp_path / "worker-state"
    sent: list[SentTransfer] = []

    def send(count: int, tag: str, pause: float = 0.0) -> None:
        for i in range(count):
            sent.append(driver.send_native(seized, driver.new_wallet(f"{tag}-{i}"),
                                           ETHER // 100 + len(sent)))
            driver.mine(2)
            time.sleep(pause)

    with ThreadedWebhookReceiver(SECRET) as receiver:
        pipeline = Pipeline(tmp_path / "run", kafka_bootstrap, unique_prefix, anvil.http_url,
                            webhook_url=receiver.url, webhook_secret=SECRET,
                            extra={"taint": {"enabled": False},
                                   "worker": {"store": "rocksdb", "state_dir": str(state_dir)}})
        try:
            pipeline.start("worker")
            pipeline.start("connector")
            pipeline.wait_ready()
            pipeline.watch([{"chain": "devnet", "address": seized, "case_id": "CASE-R"}])
            send(6, "first")
            wait_for_alerts(pipeline, receiver, len(sent))
            first = start_offsets(worker_log(pipeline, 0))
            assert first == {"screening": -1, "delivered": -1}, first  # a new, empty store
            assert (state_dir / "v1" / "tables" / "screening-0.db").is_dir()

            # 1. SIGTERM; transfers mined while the worker is away; restart.
            stop_worker(pipeline, "term")
            held = {t: changelog_records(pipeline, t) for t in TABLES}
            send(6, "while-down")
            pipeline.start("worker")
            pipeline.wait_ready()
            wait_for_alerts(pipeline, receiver, len(sent))
            after_term = start_offsets(worker_log(pipeline, 1))
            print(f"after SIGTERM: changelog records held {held}, reading starts at {after_term}")
            for table in TABLES:
                # the last record it held: it reads only what it has not got
                assert after_term[table] == held[table] - 1, (table, after_term, held)

            assert not redeliveries(receiver), "a clean stop must not deliver anything twice"

            # 2. SIGKILL while transfers keep coming (timed by the chain, not by a delivery);
            # restart.
            before_kill = len(sent)
            traffic = threading.Thread(target=send, args=(10, "live", 0.3), daemon=True)
            traffic.start()
            while len(sent) < before_kill + 3 and traffic.is_alive():
                time.sleep(0.05)
            time.sleep(0.1)
            stop_worker(pipeline, "kill")
            held = {t: changelog_records(pipeline, t) for t in TABLES}
            pipeline.start("worker")
            traffic.join(timeout=120)
            assert not traffic.is_alive()
            pipeline.wait_ready()
            wait_for_alerts(pipeline, receiver, len(sent))
            after_kill = start_offsets(worker_log(pipeline, 2))
            print(f"after SIGKILL: changelog records {held}, reading starts at {after_kill}")
            for table in TABLES:
                # never from scratch; at most the writes whose acknowledgement it did not see
                assert 0 <= after_kill[table] <= held[table] - 1, (table, after_kill, held)
            assert after_kill["screening"] >= after_term["screening"]

            time.sleep(2.0)  # a duplicate would arrive now
            assert receiver.rejected_signatures == 0
            # A kill -9 between the receiver's answer and the worker's note of it can repeat
            # that one delivery (at-least-once towards an outside receiver): with the same
            # Idempotency-Key, so the receiver drops it. Anything more is a bug.
            again = redeliveries(receiver)
            print(f"redelivered after kill -9 (same Idempotency-Key): {again}")
            assert len(again) <= 1 and all(n == 2 for n in again.values()), again
            alerted = {r.alert.transfer_id for r in receiver.alerts}
            missing = {s.record_id("devnet") for s in sent} - alerted
            assert not missing, f"never alerted: {sorted(missing)}\n{pipeline.logs()}"
            assert len(alerted) == len(sent)
        finally:
            pipeline.stop()


def test_two_workers_cannot_share_a_rocksdb_state_dir(
        tmp_path: Path, kafka_bootstrap: str, anvil, unique_prefix: str) -> None:
    state_dir = tmp_path / "shared-state"
    extra = {"worker": {"store": "rocksdb", "state_dir": str(state_dir)}}
    first = Pipeline(tmp_path / "a", kafka_bootstrap, unique_prefix, anvil.http_url, extra=extra)
    second = Pipeline(tmp_path / "b", kafka_bootstrap, unique_prefix, anvil.http_url,
                      extra=extra)
    try:
        first.start("worker")
        first.wait_ready()
        proc = second.start("worker")
        assert proc.wait(timeout=60) != 0
        log = (second.workdir / "worker-0.log").read_text()
        assert "worker.state_dir" in log and "in use by another worker" in log, log
    finally:
        first.stop()
        second.stop()
