"""Server-Sent Events: the live alert stream of ``GET /api/v1/alerts/stream``.

Each change of the alert index is one event: ``event: alert`` for a new or updated alert
(lifecycle event), ``event: audit`` for an analyst action; ``data`` is the AlertView JSON on
one line and ``id`` the stream cursor after it. A client that reconnects with
``Last-Event-ID`` (browsers do it by themselves) or ``?since_cursor=`` first gets what it
missed, then live events; a comment line every 15 s keeps proxies from closing the stream.
A client too slow to keep up has its stream ended (it reconnects and replays, nothing lost).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import msgspec
from aiohttp import web

from monitor.web.cursors import encode_stream_cursor
from monitor.web.index import AlertIndex, Change, Subscription, matches
from monitor.web.query import AlertFilter

HEARTBEAT_SECONDS: Final = 15.0
RETRY_MILLISECONDS: Final = 3000
_ENCODER: Final = msgspec.json.Encoder()


def format_event(kind: str, event_id: str, data: bytes) -> bytes:
    """One SSE event; ``data`` must be a single line (compact JSON is)."""
    return b"event: " + kind.encode() + b"\nid: " + event_id.encode() + b"\ndata: " + data \
        + b"\n\n"


def format_comment(text: str) -> bytes:
    """An SSE comment line (ignored by clients; used as heartbeat)."""
    return b": " + text.replace("\n", " ").encode() + b"\n\n"


def merge(client: dict[str, int], server: dict[str, int]) -> dict[str, int]:
    """The later of two stream positions, key by key."""
    out = dict(client)
    for key, value in server.items():
        out[key] = max(out.get(key, 0), value)
    return out


def render_change(index: AlertIndex, change: Change, base: dict[str, int],
                  f: AlertFilter) -> bytes | None:
    """The SSE bytes for a change, or None when filtered out or no longer held."""
    item = index.get(change.alert_id)
    if item is None or not matches(item, f):
        return None
    cursor = encode_stream_cursor(merge(base, change.positions))
    return format_event(change.kind, cursor, _ENCODER.encode(item.view()))


async def stream(request: web.Request, index: AlertIndex, since: dict[str, int] | None,
                 f: AlertFilter, heartbeat: float = HEARTBEAT_SECONDS) -> web.StreamResponse:
    """Serve the event stream until the client goes away or the index closes."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    sub: Subscription = index.subscribe()
    base = dict(since) if since is not None else dict(index.positions)
    backlog = index.changes_since(since) if since is not None else []
    try:
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MILLISECONDS}\n".encode()
                             + format_comment("connected " + encode_stream_cursor(base)))
        for missed in backlog:
            data = render_change(index, missed, base, f)
            if data is not None:
                await response.write(data)
        while not sub.overflowed:
            try:
                change: Change | None = await asyncio.wait_for(sub.queue.get(), heartbeat)
            except TimeoutError:
                await response.write(format_comment("heartbeat"))
                continue
            if change is None:
                break
            data = render_change(index, change, base, f)
            if data is not None:
                await response.write(data)
    except ConnectionResetError:
        return response  # the client went away
    finally:
        index.unsubscribe(sub)
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response
