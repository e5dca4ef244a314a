"""The API's routes in one table, and how they are mounted on Faust's (aiohttp) web server.

Each :class:`Route` names its method, path, the access it needs and its handler; the table
is what the OpenAPI test compares with the document, so no route goes undocumented.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from aiohttp import web
from faust.web import View

from monitor.web.audit import TokenRole
from monitor.web.context import ApiContext
from monitor.web.http import Access, ApiError, authorize, error_response


@dataclass
class Call:
    """One request as a handler sees it: request, path parameters, context and token role."""

    request: web.Request
    params: dict[str, str]
    ctx: ApiContext
    role: TokenRole = "none"
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path."""

    method: str
    path: str
    access: Access
    handler: Handler
    name: str


async def dispatch(route: Route, ctx: ApiContext, request: web.Request,
                   params: dict[str, str]) -> web.StreamResponse:
    """Check access, run the handler, turn an ApiError into its JSON answer."""
    try:
        role = authorize(request, route.access, ctx.rw_token, ctx.read_token)
        return await route.handler(Call(request, params, ctx, role))
    except ApiError as exc:
        return error_response(exc)


def _grouped(routes: list[Route]) -> dict[str, list[Route]]:
    paths: dict[str, list[Route]] = {}
    for route in routes:
        paths.setdefault(route.path, []).append(route)
    return paths


def mount_faust(app: faust.App, routes: list[Route], ctx: ApiContext) -> None:
    """Register every route as a Faust view (one View class per path, in table order)."""
    for i, (path, same_path) in enumerate(_grouped(routes).items()):
        methods: dict[str, Any] = {"__doc__": f"Routes of {path}."}
        for route in same_path:
            methods[route.method.lower()] = _faust_method(route, ctx)
        view = type(f"ApiView{i}", (View,), methods)
        app.page(path, name=f"chainwatch-api-{i}")(view)


def _faust_method(route: Route, ctx: ApiContext) -> Callable[..., Awaitable[Any]]:
    async def method(self: View, request: Any, **params: str) -> web.StreamResponse:
        return await dispatch(route, ctx, request, dict(params))

    method.__doc__ = route.name
    return method


def mount_aiohttp(web_app: web.Application, routes: list[Route], ctx: ApiContext) -> None:
    """Register every route on a plain aiohttp application (used by unit tests)."""
    for route in routes:
        web_app.router.add_route(route.method, route.path, _aiohttp_handler(route, ctx))


def _aiohttp_handler(route: Route, ctx: ApiContext
                     ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await dispatch(route, ctx, request, dict(request.match_info))

    return handler
