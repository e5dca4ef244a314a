"""The API's views on a plain aiohttp server with an in-memory index and fake Kafka writers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from monitor.api import all_routes
from monitor.web.context import ApiContext
from monitor.web.openapi import openapi_document
from monitor.web.routes import mount_aiohttp
from tests.unit.web.builders import RO, RW, SEIZED, context, make_alert, path_alerts

ACTOR = {"X-Chainwatch-Actor": "Ana Analyst"}


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest_asyncio.fixture()
async def api() -> AsyncIterator[tuple[TestClient, ApiContext]]:
    ctx = context()
    for offset, alert in enumerate(path_alerts()):
        ctx.index.apply_alert(alert, 0, offset)
    app = web.Application()
    mount_aiohttp(app, all_routes(), ctx)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, ctx
    finally:
        ctx.index.close()
        await client.close()


async def test_reads_need_a_token_writes_need_the_read_write_one(api) -> None:
    client, _ = api
    assert (await client.get("/health")).status == 200
    assert (await client.get("/api/v1/alerts")).status == 401
    assert (await client.get("/api/v1/alerts", headers=auth("bad"))).status == 401
    assert (await client.get("/api/v1/alerts", headers=auth(RO))).status == 200
    alert_id = path_alerts()[0].id
    url = f"/api/v1/alerts/{alert_id}/acknowledge"
    no_token = await client.post(url, json={"note": "x"}, headers=ACTOR)
    assert no_token.status == 401 and no_token.headers["WWW-Authenticate"] == "Bearer"
    read_only = await client.post(url, json={"note": "x"}, headers={**ACTOR, **auth(RO)})
    assert read_only.status == 403 and "read-only" in (await read_only.json())["error"]
    entry = {"chain": "devnet", "address": SEIZED, "case_id": "C"}
    assert (await client.post("/api/v1/watchlist", json=entry, headers=auth(RO))).status == 403
    assert (await client.post("/watchlist", json=entry)).status == 401
    assert (await client.post("/api/v1/watchlist/import?format=txt&chain=devnet&case_id=C",
                              data=SEIZED, headers=auth(RO))).status == 403


async def test_writes_are_refused_when_no_read_write_token_is_configured() -> None:
    ctx = context(rw=None, ro=None)
    app = web.Application()
    mount_aiohttp(app, all_routes(), ctx)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.get("/api/v1/alerts")).status == 200
        resp = await client.post("/api/v1/watchlist",
                                 json={"chain": "devnet", "address": SEIZED, "case_id": "C"})
        assert resp.status == 403 and "CHAINWATCH_API_TOKEN" in (await resp.json())["error"]


async def test_acknowledge_records_actor_role_and_note(api) -> None:
    client, _ctx = api
    alert_id = path_alerts()[2].id
    resp = await client.post(f"/api/v1/alerts/{alert_id}/acknowledge",
                             json={"note": "freeze request sent to the exchange"},
                             headers={**ACTOR, **auth(RW)})
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert view["disposition"] == "acknowledged"
    assert view["audit"][0] | {"at": 0, "id": ""} == {
        "alert_id": alert_id, "action": "acknowledge", "actor": "Ana Analyst",
        "role": "read-write", "note": "freeze request sent to the exchange", "at": 0, "id": ""}
    resp = await client.post(f"/api/v1/alerts/{alert_id}/false-positive", json={},
                             headers={**ACTOR, **auth(RW)})
    assert (await resp.json())["disposition"] == "false_positive"
    listed = await (await client.get("/api/v1/alerts?status=false_positive",
                                     headers=auth(RO))).json()
    assert [a["id"] for a in listed["alerts"]] == [alert_id]


@pytest.mark.parametrize(("headers", "body", "status", "names"), [
    ({}, {"note": "x"}, 400, "X-Chainwatch-Actor"),
    ({"X-Chainwatch-Actor": "a" * 65}, {"note": "x"}, 400, "X-Chainwatch-Actor"),
    (ACTOR, {"note": "x" * 2001}, 400, "body.note"),
    (ACTOR, {"note": 5}, 400, "body.note"),
    (ACTOR, {"notes": "x"}, 400, "body.notes"),
    (ACTOR, ["x"], 400, "body"),
])
async def test_bad_actions_are_refused_naming_what(api, headers, body, status, names) -> None:
    client, _ = api
    resp = await client.post(f"/api/v1/alerts/{path_alerts()[0].id}/resolve", json=body,
                             headers={**headers, **auth(RW)})
    assert resp.status == status
    assert (await resp.json())["error"].startswith(names)


async def test_unknown_alert_is_404_and_bad_query_is_400(api) -> None:
    client, _ = api
    assert (await client.get("/api/v1/alerts/nope", headers=auth(RO))).status == 404
    resp = await client.post("/api/v1/alerts/nope/resolve", json={"note": ""},
                             headers={**ACTOR, **auth(RW)})
    assert resp.status == 404
    for query, param in (("limit=0", "limit"), ("since=x", "since"), ("cursor=zz", "cursor"),
                         ("limit=1&limit=2", "limit")):
        resp = await client.get(f"/api/v1/alerts?{query}", headers=auth(RO))
        assert resp.status == 400 and (await resp.json())["error"].startswith(param)


async def test_pagination_over_http(api) -> None:
    client, _ = api
    seen: list[str] = []
    cursor = None
    while True:
        url = "/api/v1/alerts?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(url, headers=auth(RO))).json()
        seen += [a["id"] for a in page["alerts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(a.id for a in path_alerts()) and len(seen) == 3


async def test_body_limits_answer_413(api) -> None:
    client, _ = api
    big = {"note": "x" * (70 * 1024)}
    resp = await client.post(f"/api/v1/alerts/{path_alerts()[0].id}/resolve", json=big,
                             headers={**ACTOR, **auth(RW)})
    assert resp.status == 413
    huge = b"0x" + b"ab" * 20 + b"\n"
    resp = await client.post("/api/v1/watchlist/import?format=txt&chain=devnet&case_id=C",
                             data=huge * (11 * 1024 * 1024 // len(huge)), headers=auth(RW))
    assert resp.status == 413


async def test_csv_import_reports_broken_rows_and_keeps_the_rest(api) -> None:
    client, _ctx = api
    good = ["0x" + f"{i:040x}" for i in range(1, 4)]
    text = ("address,label,case_id\n"
            f"{good[0]},first,\n"
            "0x1234,short,\n"
            f"{good[1]},second,\n"
            f"{good[2]},,{'x' * 200}\n"
            f"{good[2]},third,\n")
    resp = await client.post("/api/v1/watchlist/import?format=csv&chain=devnet&case_id=CASE-9",
                             data=text.encode(), headers=auth(RW))
    assert resp.status == 200
    result = await resp.json()
    assert result["added"] == 3
    assert [(e["line"], e["field"]) for e in result["errors"]] == [(3, "address"),
                                                                  (5, "case_id")]
    listed = await (await client.get("/api/v1/watchlist?case_id=CASE-9",
                                     headers=auth(RO))).json()
    assert sorted(e["address"] for e in listed["entries"]) == good
    resp = await client.post("/api/v1/watchlist/import?format=xls", data=b"",
                             headers=auth(RW))
    assert resp.status == 400 and (await resp.json())["error"].startswith("format")
    resp = await client.post("/api/v1/watchlist/import?format=txt&chain=mars", data=b"",
                             headers=auth(RW))
    assert resp.status == 400 and (await resp.json())["error"].startswith("chain")


async def test_cases_case_view_and_exports(api) -> None:
    client, _ctx = api
    cases = (await (await client.get("/api/v1/cases", headers=auth(RO))).json())["cases"]
    assert cases == [{"case_id": "CASE-1", "watched": 0, "tainted": 0, "alerts": 3, "open": 3,
                      "last_alert_at": max(a.detected_at for a in path_alerts())}]
    case = await (await client.get("/api/v1/cases/CASE-1", headers=auth(RO))).json()
    assert len(case["alerts"]) == 3 and len(case["graph"]["edges"]) == 2
    assert (await client.get("/api/v1/cases/NOPE", headers=auth(RO))).status == 404
    for fmt, ctype in (("json", "application/json"), ("csv", "text/csv"),
                       ("html", "text/html")):
        resp = await client.get(f"/api/v1/cases/CASE-1/export?format={fmt}", headers=auth(RO))
        assert resp.status == 200 and resp.content_type == ctype
        assert resp.headers["Content-Disposition"].startswith('attachment; filename="case-CASE-1-')
        assert resp.headers["Content-Disposition"].endswith(f'.{fmt}"')
    assert (await client.get("/api/v1/cases/CASE-1/export?format=pdf",
                             headers=auth(RO))).status == 400


async def test_sse_replays_from_a_cursor_and_streams_live(api) -> None:
    client, ctx = api
    resp = await client.get("/api/v1/alerts/stream?since_cursor=" + "czF8",  # "s1|": from 0
                            headers=auth(RO))
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    events = await read_events(resp, 3)
    assert [e["event"] for e in events] == ["alert"] * 3
    new = make_alert(50)
    ctx.index.apply_alert(new, 0, 50)
    (live,) = await read_events(resp, 1)
    assert live["event"] == "alert" and f'"id":"{new.id}"' in live["data"]
    resp.close()
    # reconnecting with the last id replays nothing already seen
    resp = await client.get("/api/v1/alerts/stream",
                            headers={**auth(RO), "Last-Event-ID": live["id"]})
    ctx.index.apply_alert(make_alert(51), 0, 51)
    (next_one,) = await read_events(resp, 1)
    assert make_alert(51).id in next_one["data"]
    resp.close()
    bad = await client.get("/api/v1/alerts/stream", headers={**auth(RO),
                                                              "Last-Event-ID": "garbage!"})
    assert bad.status == 400 and "Last-Event-ID" in (await bad.json())["error"]


async def read_events(resp: Any, count: int) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    while len(events) < count:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
        if not line:
            if "data" in current:
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            current[key] = value
    return events


def test_openapi_validates_and_documents_every_route() -> None:
    document = openapi_document()
    validate(document)
    for route in all_routes():
        assert route.path in document["paths"], route.path
        assert route.method.lower() in document["paths"][route.path], route
