"""The worker's HTTP API: registers the routes of :mod:`monitor.web` on the Faust app.

Served by Faust's web server (``/metrics`` is added by the Prometheus sensor). Every write
needs the read-write bearer token (``CHAINWATCH_API_TOKEN``); reads need either token once any
token is configured (``CHAINWATCH_API_READ_TOKEN`` is read-only). Tokens are compared in
constant time. The server binds to 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

from typing import cast

import faust
from aiohttp import web
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from monitor.runtime import WorkerRuntime
from monitor.web import views_alerts, views_cases, views_system, views_watchlist
from monitor.web.context import ApiContext
from monitor.web.routes import Route, mount_faust
from monitor.web.views_watchlist import MAX_ENTRIES_PER_REQUEST, entry_from_body

__all__ = ["MAX_ENTRIES_PER_REQUEST", "all_routes", "api_context", "entry_from_body",
           "register"]


def all_routes() -> list[Route]:
    """Every route of the API, in matching order (fixed paths before parameters)."""
    return [*views_system.ROUTES, *views_alerts.ROUTES, *views_cases.ROUTES,
            *views_watchlist.ROUTES]


def api_context(runtime: WorkerRuntime) -> ApiContext:
    """The views' context drawn from a worker's runtime."""
    return ApiContext(config=runtime.config, index=runtime.alert_index,
                      watchlist=runtime.replica, writer=runtime.writer,
                      audit=runtime.audit_publisher, rw_token=runtime.env.api_token,
                      read_token=runtime.env.api_read_token, lists=runtime.screener.lists,
                      ready=runtime.replica.ready)


def register(app: faust.App, runtime: WorkerRuntime) -> None:
    """Define the API's views on ``app``; open SSE streams end when the server shuts down."""
    ctx = api_context(runtime)
    mount_faust(app, all_routes(), ctx)

    async def close_streams(_app: web.Application) -> None:
        runtime.alert_index.close()

    cast(AiohttpWeb, app.web).web_app.on_shutdown.append(close_streams)
