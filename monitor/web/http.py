"""HTTP plumbing of the API: errors, JSON responses, bearer tokens, bodies and query strings.

Reads need either token once any token is configured; writes need the read-write token (a
read-only token gets 403, no or a wrong token 401; with no read-write token configured every
write is refused with 403). Tokens are compared in constant time. Bodies are read with a size
limit (413 beyond it) without trusting ``Content-Length``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec
from aiohttp import web
from pydantic import SecretStr

from monitor.web.audit import TokenRole

Access = Literal["public", "read", "write"]
BODY_LIMIT: Final = 64 * 1024
IMPORT_BODY_LIMIT: Final = 10 * 1024 * 1024
_CHUNK: Final = 64 * 1024
_ENCODER: Final = msgspec.json.Encoder()


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def json_response(value: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response (msgspec: exact for integers of any size, e.g. taint amounts)."""
    return web.Response(body=_ENCODER.encode(value), status=status, headers=headers,
                        content_type="application/json", charset="utf-8")


def error_response(error: ApiError) -> web.Response:
    """The JSON body of an :class:`ApiError`."""
    return json_response({"error": error.message}, error.status, error.headers)


def token_ok(header: str | None, *tokens: SecretStr | None) -> bool:
    """Whether ``Authorization: Bearer <t>`` matches one of ``tokens`` (constant time)."""
    if not header or not header.startswith("Bearer "):
        return False
    given = header[len("Bearer "):].encode()
    ok = False
    for token in tokens:
        if token is not None:
            ok |= hmac.compare_digest(given, token.get_secret_value().encode())
    return ok


def authorize(request: web.Request, access: Access, rw_token: SecretStr | None,
              read_token: SecretStr | None) -> TokenRole:
    """The role the request's token grants, or raise ApiError 401/403 if not enough."""
    header = request.headers.get("Authorization")
    role: TokenRole = "none"
    if token_ok(header, rw_token):
        role = "read-write"
    elif token_ok(header, read_token):
        role = "read-only"
    if access == "public":
        return role
    if access == "write":
        if rw_token is None:
            raise ApiError(403, "writes are disabled: set CHAINWATCH_API_TOKEN")
        if role == "read-only":
            raise ApiError(403, "this token is read-only; writes need the read-write token")
        if role != "read-write":
            raise ApiError(401, "missing or invalid bearer token",
                           {"WWW-Authenticate": "Bearer"})
        return role
    if role == "none" and (rw_token is not None or read_token is not None):
        raise ApiError(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})
    return role


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"body: larger than {limit} bytes")
    data = bytearray()
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"body: larger than {limit} bytes")
    return bytes(data)


async def read_json(request: web.Request, limit: int = BODY_LIMIT) -> Any:
    """The request body parsed as JSON (400 naming the position when it is not)."""
    data = await read_body(request, limit)
    if not data.strip():
        raise ApiError(400, "body: empty; a JSON document is expected")
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"body: not valid JSON ({exc})") from None
    except RecursionError:
        raise ApiError(400, "body: JSON nested too deeply") from None


def query_params(request: web.Request) -> dict[str, str]:
    """The query string as a dict; a parameter given twice is refused."""
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key in params:
            raise ApiError(400, f"{key[:40]}: given more than once")
        params[key] = value
    return params
