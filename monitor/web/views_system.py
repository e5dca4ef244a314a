"""System endpoints: health (liveness, readiness) and the OpenAPI document."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from monitor.web.http import json_response
from monitor.web.openapi import openapi_document
from monitor.web.routes import Call, Route


async def health(call: Call) -> web.StreamResponse:
    """``GET /health``: 200 once the watchlist replica caught up, else 503."""
    ctx = call.ctx
    ready = bool(ctx.ready is None or ctx.ready.is_set())
    return json_response({"status": "ok" if ready else "starting", "watchlist_ready": ready,
                          "watch_entries": len(ctx.watchlist),
                          "alerts_indexed": len(ctx.index),
                          "alerts_evicted": ctx.index.evicted},
                         status=200 if ready else 503)


async def openapi(call: Call) -> web.StreamResponse:
    """``GET /openapi.json``."""
    return json_response(openapi_document())


ROUTES: Final = [
    Route("GET", "/health", "public", health, "health"),
    Route("GET", "/openapi.json", "public", openapi, "OpenAPI document"),
]
