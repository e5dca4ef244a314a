"""The HTTP API of a real worker process on the real broker.

Alerts are produced to the worker's alerts topic (as the screening agent would), then read
back through the API: query, filters, pagination, acknowledge with an audit trail that a second
index replaying the topics sees too, the live SSE stream, authentication, a CSV import with
broken rows, the OpenAPI document and the HTML evidence report.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from openapi_spec_validator import validate

from monitor.follower import TopicFollower
from monitor.records import Alert, encode
from monitor.web.audit import AUDIT_DECODER
from monitor.web.index import AlertIndex
from tests.integration.harness import API_TOKEN, Pipeline, read_topic
from tests.unit.web.builders import make_alert, path_alerts, tx

pytestmark = pytest.mark.integration
READ_TOKEN = "test-read-token-0123456789"
RW = {"Authorization": f"Bearer {API_TOKEN}"}
RO = {"Authorization": f"Bearer {READ_TOKEN}"}
ACTOR = {"X-Chainwatch-Actor": "DI Jane Roe (ARO)"}


async def produce(bootstrap: str, topic: str, alerts: list[Alert]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for alert in alerts:
            await producer.send_and_wait(topic, key=alert.id.encode(), value=encode(alert))
    finally:
        await producer.stop()


async def until(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def next_event(stream: aiohttp.ClientResponse) -> dict[str, str]:
    event: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(stream.content.readline(), 30)).decode().rstrip("\n")
        if not line and "data" in event:
            return event
        if line and not line.startswith(":"):
            key, _, value = line.partition(": ")
            event[key] = value


async def test_api_on_a_real_worker(tmp_path: Path, kafka_bootstrap: str, unique_prefix: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINWATCH_API_READ_TOKEN", READ_TOKEN)
    # the node is never asked: no block is screened here, alerts are produced directly
    pipeline = Pipeline(tmp_path, kafka_bootstrap, unique_prefix, "http://127.0.0.1:9")
    alerts_topic = f"{unique_prefix}alerts"
    case_alerts = path_alerts()
    others = [make_alert(10 + i, case_id="CASE-2", severity="low" if i % 2 else "medium")
              for i in range(7)]
    try:
        pipeline.start("worker")
        await asyncio.to_thread(pipeline.wait_ready)
        api = pipeline.api
        await produce(kafka_bootstrap, alerts_topic, case_alerts + others)
        async with aiohttp.ClientSession() as http:
            async def get(path: str, headers: dict[str, str] = RO) -> tuple[int, Any]:
                async with http.get(api + path, headers=headers) as resp:
                    return resp.status, await resp.json()

            async def all_indexed() -> bool:
                return len((await get("/api/v1/alerts?limit=500"))[1]["alerts"]) == 10

            await until(all_indexed, "10 alerts in the index")

            # query, filters, pagination
            status, page = await get("/api/v1/alerts?case_id=CASE-2&severity=low&limit=2")
            assert status == 200 and len(page["alerts"]) == 2 and page["next_cursor"]
            status, rest = await get("/api/v1/alerts?case_id=CASE-2&severity=low&limit=2"
                                     f"&cursor={page['next_cursor']}")
            assert len(rest["alerts"]) == 1 and rest["next_cursor"] is None
            assert {a["severity"] for a in page["alerts"] + rest["alerts"]} == {"low"}
            status, body = await get("/api/v1/alerts?limit=1000")
            assert status == 400 and body["error"].startswith("limit")
            assert (await get("/api/v1/alerts", headers={}))[0] == 401

            # the live stream: connect, then a new alert arrives
            async with http.get(api + "/api/v1/alerts/stream?case_id=CASE-1",
                                headers=RO) as stream:
                assert stream.status == 200
                assert stream.headers["Content-Type"].startswith("text/event-stream")
                await asyncio.wait_for(stream.content.readuntil(b"connected"), 30)
                late = make_alert(40, to="0x" + "88" * 20)
                await produce(kafka_bootstrap, alerts_topic, [late])
                event = await next_event(stream)
                assert event["event"] == "alert"
                assert json.loads(event["data"])["id"] == late.id

                # acknowledge: refused without the read-write token, recorded with it
                target = case_alerts[2]  # the exchange-deposit alert
                url = f"{api}/api/v1/alerts/{target.id}/acknowledge"
                note = {"note": "freeze request sent to the exchange"}
                async with http.post(url, json=note, headers=ACTOR) as resp:
                    assert resp.status == 401
                async with http.post(url, json=note, headers={**ACTOR, **RO}) as resp:
                    assert resp.status == 403
                async with http.post(url, json=note, headers={**ACTOR, **RW}) as resp:
                    assert resp.status == 200, await resp.text()
                    acked = await resp.json()
                assert acked["disposition"] == "acknowledged"
                assert acked["audit"][-1]["actor"] == "DI Jane Roe (ARO)"
                event = await next_event(stream)
                assert event["event"] == "audit"
                assert json.loads(event["data"])["disposition"] == "acknowledged"

            # a second index replaying both topics shows the same trail
            replay = AlertIndex()
            followers = [TopicFollower(kafka_bootstrap, alerts_topic, replay.apply_alert_record),
                         TopicFollower(kafka_bootstrap, f"{unique_prefix}alert-audit",
                                       replay.apply_audit_record)]
            for follower in followers:
                await follower.start()
            try:
                for follower in followers:
                    await asyncio.wait_for(follower.ready.wait(), 30)
                item = replay.get(target.id)
                assert item is not None and item.disposition == "acknowledged"
                assert item.view()["audit"] == acked["audit"]
            finally:
                for follower in followers:
                    await follower.stop()
            (raw,) = await asyncio.to_thread(read_topic, kafka_bootstrap,
                                             f"{unique_prefix}alert-audit")
            record = AUDIT_DECODER.decode(raw)
            assert (record.alert_id, record.action, record.role) == (target.id, "acknowledge",
                                                                     "read-write")

            # CSV import: broken rows are reported, the rest kept
            good = [f"0x{i:040x}" for i in range(1, 4)]
            csv_text = ("address,label\n"
                        f"{good[0]},one\n"
                        "0xnot-an-address,two\n"
                        f"{good[1]},three\n"
                        f"{good[2]},{'x' * 300}\n"
                        f"{good[2]},four\n")
            async with http.post(f"{api}/api/v1/watchlist/import?format=csv&chain=devnet"
                                 "&case_id=CASE-IMPORT", data=csv_text, headers=RO) as resp:
                assert resp.status == 403
            async with http.post(f"{api}/api/v1/watchlist/import?format=csv&chain=devnet"
                                 "&case_id=CASE-IMPORT", data=csv_text) as resp:
                assert resp.status == 401
            async with http.post(f"{api}/api/v1/watchlist/import?format=csv&chain=devnet"
                                 "&case_id=CASE-IMPORT", data=csv_text, headers=RW) as resp:
                assert resp.status == 200
                result = await resp.json()
            assert result["added"] == 3  # line 6 repeats line 5's address with a good label
            assert [(e["line"], e["field"]) for e in result["errors"]] == [(3, "address"),
                                                                          (5, "label")]

            async def imported() -> bool:
                _, body = await get("/api/v1/watchlist?case_id=CASE-IMPORT")
                return body["count"] == 3

            await until(imported, "the imported entries in the replica")

            # OpenAPI document of the running worker
            status, document = await get("/openapi.json", headers={})
            assert status == 200
            validate(document)

            # HTML evidence report: the path's tx hashes, nothing to load from elsewhere
            async with http.get(f"{api}/api/v1/cases/CASE-1/export?format=html",
                                headers=RO) as resp:
                assert resp.status == 200
                assert "attachment" in resp.headers["Content-Disposition"]
                page = await resp.text()
            assert tx(1) in page and tx(2) in page
            assert not re.search(r"https?://", page)
            assert not re.search(r"(src|href)\s*=", page, re.I)
            status, case = await get("/api/v1/cases/CASE-1")
            assert [(e["from"], e["to"]) for e in case["graph"]["edges"]][:2] == [
                (case_alerts[0].from_address, case_alerts[0].to_address),
                (case_alerts[1].from_address, case_alerts[1].to_address)]

            # the old paths and the metrics still answer
            assert (await get("/alerts/recent?limit=3"))[0] == 200
            async with http.get(api + "/metrics") as resp:
                assert resp.status == 200
        logs = pipeline.logs()
        assert API_TOKEN not in logs and READ_TOKEN not in logs
    finally:
        pipeline.stop()
