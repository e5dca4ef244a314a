"""Alert endpoints: query, one alert, acknowledge / resolve / false-positive, live stream."""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import msgspec
from aiohttp import web
from aiokafka.errors import KafkaError

from monitor.web.audit import (
    DISPOSITION_OF,
    MAX_NOTE,
    AuditAction,
    check_actor,
    new_record,
)
from monitor.web.cursors import encode_stream_cursor, parse_stream_cursor
from monitor.web.http import ApiError, json_response, query_params, read_json
from monitor.web.query import (
    STREAM_PARAMS,
    QueryError,
    check_known,
    parse_alert_query,
    parse_filter,
)
from monitor.web.routes import Call, Route
from monitor.web.sse import stream

log = logging.getLogger(__name__)

ACTOR_HEADER: Final = "X-Chainwatch-Actor"
RECENT_MAX: Final = 1000


def _query_error(exc: QueryError) -> ApiError:
    return ApiError(400, str(exc))


async def list_alerts(call: Call) -> web.StreamResponse:
    """``GET /api/v1/alerts``: a page of matching alerts, newest first."""
    try:
        query = parse_alert_query(query_params(call.request))
    except QueryError as exc:
        raise _query_error(exc) from None
    page, next_cursor = call.ctx.index.query(query)
    return json_response({"alerts": [item.view() for item in page],
                          "next_cursor": next_cursor,
                          "stream_cursor": encode_stream_cursor(call.ctx.index.positions)})


async def get_alert(call: Call) -> web.StreamResponse:
    """``GET /api/v1/alerts/{id}``."""
    item = call.ctx.index.get(call.params["id"])
    if item is None:
        raise ApiError(404, f"id: no alert {call.params['id'][:64]!r} is held")
    return json_response(item.view())


def _note(body: Any) -> str:
    if not isinstance(body, dict):
        raise ApiError(400, 'body: must be an object like {"note": "..."}')
    unknown = sorted(set(body) - {"note"})
    if unknown:
        raise ApiError(400, f"body.{unknown[0][:40]}: unknown field (only 'note')")
    note = body.get("note", "")
    if not isinstance(note, str):
        raise ApiError(400, "body.note: must be a string")
    if len(note) > MAX_NOTE:
        raise ApiError(400, f"body.note: longer than {MAX_NOTE} characters")
    if any(not ch.isprintable() and ch not in "\n\r\t" for ch in note):
        raise ApiError(400, "body.note: contains control characters")
    return note


def action_handler(action: AuditAction) -> Any:
    """The handler of ``POST /api/v1/alerts/{id}/<action>``."""

    async def handle(call: Call) -> web.StreamResponse:
        try:
            actor = check_actor(call.request.headers.get(ACTOR_HEADER))
        except ValueError as exc:
            raise ApiError(400, f"{ACTOR_HEADER} header: {exc}") from None
        note = _note(await read_json(call.request))
        alert_id = call.params["id"]
        index = call.ctx.index
        item = index.get(alert_id)
        if item is None:
            raise ApiError(404, f"id: no alert {alert_id[:64]!r} is held")
        record = new_record(alert_id, action, note, actor, call.role, time.time())
        try:
            partition, offset = await call.ctx.audit.publish(record)
        except KafkaError as exc:
            log.error("audit record for alert %s not written: %s", alert_id, exc)
            raise ApiError(503, "audit trail unavailable: the action was not recorded, "
                                "try again") from None
        if await index.wait_for(f"u{partition}", offset, call.ctx.audit_wait_seconds):
            view = item.view()
        else:  # recorded in Kafka; our replica is behind: show it as it will be
            view = item.view()
            view["audit"].append(msgspec.to_builtins(record))
            view["disposition"] = DISPOSITION_OF[action]
        return json_response(view)

    handle.__doc__ = f"``POST /api/v1/alerts/{{id}}/{action}``."
    return handle


async def alert_stream(call: Call) -> web.StreamResponse:
    """``GET /api/v1/alerts/stream``: Server-Sent Events."""
    params = query_params(call.request)
    try:
        check_known(params, STREAM_PARAMS)
        f = parse_filter({k: v for k, v in params.items() if k != "since_cursor"})
    except QueryError as exc:
        raise _query_error(exc) from None
    since = None
    for name, value in (("Last-Event-ID header", call.request.headers.get("Last-Event-ID")),
                        ("since_cursor", params.get("since_cursor"))):
        if value:
            try:
                since = parse_stream_cursor(value)
            except ValueError as exc:
                raise ApiError(400, f"{name}: {exc}") from None
            break
    return await stream(call.request, call.ctx.index, since, f)


async def recent_alerts(call: Call) -> web.StreamResponse:
    """``GET /alerts/recent`` (kept for older clients): the newest alerts."""
    raw = query_params(call.request).get("limit", "100")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 7:
        raise ApiError(400, "limit: must be an integer")
    limit = min(RECENT_MAX, max(1, int(raw)))
    alerts = []
    for item in call.ctx.index.newest():
        alerts.append(msgspec.to_builtins(item.alert))
        if len(alerts) >= limit:
            break
    return json_response({"alerts": alerts})


ROUTES: Final = [
    Route("GET", "/api/v1/alerts", "read", list_alerts, "list alerts"),
    Route("GET", "/api/v1/alerts/stream", "read", alert_stream, "alert stream (SSE)"),
    Route("GET", "/api/v1/alerts/{id}", "read", get_alert, "one alert"),
    Route("POST", "/api/v1/alerts/{id}/acknowledge", "write", action_handler("acknowledge"),
          "acknowledge an alert"),
    Route("POST", "/api/v1/alerts/{id}/resolve", "write", action_handler("resolve"),
          "resolve an alert"),
    Route("POST", "/api/v1/alerts/{id}/false-positive", "write",
          action_handler("false-positive"), "mark an alert a false positive"),
    Route("GET", "/alerts/recent", "read", recent_alerts, "recent alerts (legacy)"),
]
