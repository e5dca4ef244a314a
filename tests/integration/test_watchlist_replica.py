"""The replicated watchlist on the real broker: every worker holds every entry.

This is the proof that the compacted-topic replica is an adequate stand-in for a Faust
GlobalTable: several replicas (as in several workers) see every addition and removal, a replica
started later catches up before it reports ready, and two real worker processes answer the same
watchlist whichever one was written to.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from monitor.records import WatchEntry
from monitor.topics import Topics, TopicSpec, ensure_topics
from monitor.watchlist import WatchlistReplica, WatchlistWriter
from tests.integration.harness import Pipeline

pytestmark = pytest.mark.integration


def _entry(i: int, case: str = "C") -> WatchEntry:
    return WatchEntry(chain="devnet", address=f"0x{i:040x}", case_id=case, label=f"w{i}")


async def _until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_replicas_see_additions_removals_and_catch_up(kafka_bootstrap: str,
                                                            unique_prefix: str) -> None:
    topic = f"{unique_prefix}watchlist"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1, {"cleanup.policy": "compact"})])
    writer = WatchlistWriter(kafka_bootstrap, topic)
    first, second = (WatchlistReplica(kafka_bootstrap, topic) for _ in range(2))
    await writer.start()
    await first.start()
    await second.start()
    try:
        await asyncio.wait_for(first.ready.wait(), 30)
        await asyncio.wait_for(second.ready.wait(), 30)
        assert len(first) == len(second) == 0
        await writer.put_many([_entry(i) for i in range(2000)] + [_entry(1, case="D")])
        await _until(lambda: len(first) == len(second) == 2001)
        assert {e.case_id for e in second.lookup("devnet", f"0x{1:040x}")} == {"C", "D"}
        await writer.remove("devnet", f"0x{1:040x}", "C")
        await _until(lambda: len(first) == len(second) == 2000)
        assert [e.case_id for e in first.lookup("devnet", f"0x{1:040x}")] == ["D"]

        late = WatchlistReplica(kafka_bootstrap, topic)
        await late.start()
        try:
            await asyncio.wait_for(late.ready.wait(), 30)
            # ready means: everything written before it started has been applied
            assert len(late) == 2000
            assert late.lookup("devnet", f"0x{1:040x}") == first.lookup("devnet",
                                                                         f"0x{1:040x}")
        finally:
            await late.stop()
    finally:
        await first.stop()
        await second.stop()
        await writer.stop()


def test_two_worker_processes_share_the_watchlist(tmp_path: Path, kafka_bootstrap: str, anvil,
                                                  unique_prefix: str) -> None:
    a = Pipeline(tmp_path / "a", kafka_bootstrap, unique_prefix, anvil.http_url)
    b = Pipeline(tmp_path / "b", kafka_bootstrap, unique_prefix, anvil.http_url)
    try:
        a.start("worker")
        b.start("worker")
        a.wait_ready()
        b.wait_ready()
        address = "0x" + "ab" * 20
        a.watch([{"chain": "devnet", "address": address, "case_id": "CASE-X"}])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if b.request("GET", "/watchlist")[1]["count"] == 1:
                break
            time.sleep(0.2)
        listed = b.request("GET", "/watchlist?case_id=CASE-X")[1]["entries"]
        assert [e["address"] for e in listed] == [address]
        assert b.request("DELETE", f"/watchlist/devnet/{address}/CASE-X")[0] == 200
        deadline = time.monotonic() + 20
        while a.request("GET", "/watchlist")[1]["count"] != 0:
            assert time.monotonic() < deadline, a.logs()
            time.sleep(0.2)
    finally:
        a.stop()
        b.stop()


def test_topic_names_follow_the_prefix() -> None:
    topics = Topics("p.", ("eth", "devnet"), 3, 1)
    names = {s.name: s for s in topics.specs()}
    assert set(names) == {"p.blocks.eth", "p.blocks.devnet", "p.alerts", "p.watchlist",
                          "p.deadletter", "p.alert-audit"}
    assert names["p.blocks.eth"].partitions == 1 and names["p.alerts"].partitions == 3
    assert names["p.watchlist"].configs["cleanup.policy"] == "compact"
