"""A real webhook receiver on 127.0.0.1 that checks chainwatch's signatures and records alerts.

``WebhookReceiver`` runs inside the test's event loop; ``ThreadedWebhookReceiver`` runs one in
a background thread with its own loop, for synchronous tests and for worker subprocesses that
post to it. Both verify every request with :func:`monitor.sinks.signing.verify` (401 and a
counter for bad signatures), can be scripted to fail before succeeding, and record each
accepted alert with its headers and the time it arrived.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import msgspec
from aiohttp import web

from monitor.records import ALERT_DECODER, Alert
from monitor.sinks.signing import HEADER_SIGNATURE, HEADER_TIMESTAMP, verify
from tests.support.loopback import LoopThread, serve_in_thread

T = TypeVar("T")

# One scripted answer: a status, a status with a Retry-After value, or a status with headers.
Scripted = int | tuple[int, str] | tuple[int, Mapping[str, str]]


@dataclass(frozen=True)
class ReceivedAlert:
    """One accepted delivery: the parsed JSON, the decoded Alert, headers and arrival time."""

    payload: dict[str, Any]
    alert: Alert
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.monotonic()


@dataclass(frozen=True)
class Attempt:
    """Any request that reached the receiver, whatever was answered."""

    status: int
    alert_id: str | None
    received_at: float  # time.monotonic()


@dataclass
class _State:
    """Recorded traffic, shared between the server's loop and other threads."""

    lock: threading.Condition = field(default_factory=threading.Condition)
    alerts: list[ReceivedAlert] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    rejected_signatures: int = 0
    malformed: int = 0


class WebhookReceiver:
    """A webhook endpoint on an ephemeral loopback port, for the test's own event loop."""

    def __init__(
        self,
        secret: bytes | str,
        *,
        fail_with: Iterable[Scripted] = (),
        always_fail: int | None = None,
        respond_after: float = 0.0,
        path: str = "/hook",
        tolerance_seconds: float = 300,
    ) -> None:
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.fail_with: list[Scripted] = list(fail_with)
        self.always_fail = always_fail
        self.respond_after = respond_after
        self.path = path
        self.tolerance_seconds = tolerance_seconds
        self._state = _State()
        self._event: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind 127.0.0.1 on an ephemeral port and start serving."""
        self._event = asyncio.Event()
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        _host, port = self._runner.addresses[0][:2]
        self._port = int(port)

    async def close(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- what tests read -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The endpoint URL, e.g. ``http://127.0.0.1:43121/hook``."""
        if self._port is None:
            raise RuntimeError("receiver not started")
        return f"http://127.0.0.1:{self._port}{self.path}"

    @property
    def alerts(self) -> list[ReceivedAlert]:
        """Accepted deliveries, in arrival order (a copy)."""
        with self._state.lock:
            return list(self._state.alerts)

    @property
    def attempts(self) -> list[Attempt]:
        """Every request, accepted or not, in arrival order (a copy)."""
        with self._state.lock:
            return list(self._state.attempts)

    @property
    def rejected_signatures(self) -> int:
        """How many requests were refused with 401 for a missing, bad or stale signature."""
        with self._state.lock:
            return self._state.rejected_signatures

    @property
    def malformed(self) -> int:
        """How many signed requests carried a body that is not a valid Alert (answered 400)."""
        with self._state.lock:
            return self._state.malformed

    def ids(self) -> list[str]:
        """Alert ids of the accepted deliveries, in arrival order (duplicates kept)."""
        return [received.alert.id for received in self.alerts]

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedAlert]:
        """Wait until at least ``n`` alerts were accepted; TimeoutError says what arrived."""
        if self._event is None:
            raise RuntimeError("receiver not started")
        deadline = time.monotonic() + timeout
        while True:
            self._event.clear()
            alerts = self.alerts
            if len(alerts) >= n:
                return alerts
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(self._shortfall(n, timeout))
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                raise TimeoutError(self._shortfall(n, timeout)) from None

    def wait_for_sync(self, n: int, timeout: float = 10.0) -> list[ReceivedAlert]:
        """Block the calling thread (not the server's) until ``n`` alerts were accepted."""
        deadline = time.monotonic() + timeout
        with self._state.lock:
            while len(self._state.alerts) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._shortfall(n, timeout))
                self._state.lock.wait(remaining)
            return list(self._state.alerts)

    def _shortfall(self, n: int, timeout: float) -> str:
        with self._state.lock:
            return (f"webhook receiver: {len(self._state.alerts)} of {n} alert(s) accepted "
                    f"within {timeout:g}s ({len(self._state.attempts)} request(s), "
                    f"{self._state.rejected_signatures} bad signature(s), "
                    f"{self._state.malformed} malformed)")

    # -- the endpoint ----------------------------------------------------------------------
    def _record(self, status: int, alert_id: str | None,
                accepted: ReceivedAlert | None = None, *, bad_signature: bool = False,
                malformed: bool = False) -> None:
        with self._state.lock:
            self._state.attempts.append(Attempt(status, alert_id, time.monotonic()))
            if accepted is not None:
                self._state.alerts.append(accepted)
            self._state.rejected_signatures += bad_signature
            self._state.malformed += malformed
            self._state.lock.notify_all()
        if self._event is not None:
            self._event.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        alert_id = request.headers.get("X-Chainwatch-Alert-Id")
        if self.respond_after:
            await asyncio.sleep(self.respond_after)
        if not verify(self.secret, request.headers.get(HEADER_TIMESTAMP),
                      request.headers.get(HEADER_SIGNATURE), body,
                      tolerance_seconds=self.tolerance_seconds):
            self._record(401, alert_id, bad_signature=True)
            return web.Response(status=401, text="bad signature")
        if self.fail_with or self.always_fail is not None:
            scripted: Scripted = (self.fail_with.pop(0) if self.fail_with
                                  else int(self.always_fail or 500))
            status, extra = (scripted, None) if isinstance(scripted, int) else scripted
            headers = {"Retry-After": extra} if isinstance(extra, str) else dict(extra or {})
            self._record(status, alert_id)
            return web.Response(status=status, headers=headers, text=f"scripted {status}")
        try:
            alert = ALERT_DECODER.decode(body)
            payload = json.loads(body)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            self._record(400, alert_id, malformed=True)
            return web.Response(status=400, text="not an alert")
        received = ReceivedAlert(payload=payload, alert=alert, headers=dict(request.headers),
                                 body=body, received_at=time.monotonic())
        self._record(200, alert_id, received)
        return web.json_response({"accepted": alert.id})


class ThreadedWebhookReceiver:
    """A :class:`WebhookReceiver` served from a background thread with its own event loop.

    Use it from synchronous tests or when a subprocess (a worker) posts to it::

        with ThreadedWebhookReceiver(b"secret") as receiver:
            start_worker(webhook_url=receiver.url)
            receiver.wait_for(1, timeout=30)
    """

    def __init__(self, secret: bytes | str, **options: Any) -> None:
        self.receiver = WebhookReceiver(secret, **options)
        self._serving: LoopThread | None = None

    def start(self) -> None:
        """Start the loop thread and the server; returns once the URL is known."""
        self._serving = serve_in_thread("webhook-receiver", self.receiver.start)

    def stop(self) -> None:
        """Stop the server and the loop thread (idempotent)."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop(self.receiver.close)

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the receiver's loop (e.g. to close or restart its server)."""
        if self._serving is None:
            raise RuntimeError("the receiver is not started")
        return self._serving.run(make)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint URL."""
        return self.receiver.url

    @property
    def alerts(self) -> list[ReceivedAlert]:
        """Accepted deliveries (a copy)."""
        return self.receiver.alerts

    @property
    def attempts(self) -> list[Attempt]:
        """Every request seen (a copy)."""
        return self.receiver.attempts

    @property
    def rejected_signatures(self) -> int:
        """Requests refused for their signature."""
        return self.receiver.rejected_signatures

    def ids(self) -> list[str]:
        """Alert ids of accepted deliveries, in arrival order."""
        return self.receiver.ids()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedAlert]:
        """Block until ``n`` alerts were accepted, or raise TimeoutError saying what arrived."""
        return self.receiver.wait_for_sync(n, timeout)
