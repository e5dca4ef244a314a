"""A JSON-RPC fault proxy on 127.0.0.1 in front of a node, injecting a fraction of faults.

Every HTTP request the proxy receives is, with probability ``fault_rate``, answered with one
fault among the kinds that apply to it (the least injected so far, ties drawn at random, so
every kind gets its turn); otherwise it is forwarded unchanged. The two kinds that apply only
to some requests (``null_block``, ``behind``) are injected into the first request they apply
to, whatever the draw, so a short run with few such requests still sees each of them:

``timeout``       no answer for ``timeout_seconds`` (longer than the client's timeout)
``429``           HTTP 429 with ``Retry-After: 1``
``5xx``           HTTP 500, 502 or 503
``truncated``     the node's real answer cut in half (invalid JSON)
``invalid_json``  an HTML error page or broken JSON with status 200
``null_block``    ``null`` for every ``eth_getBlockByNumber`` in the request (a node missing the
                  block); only for requests that ask for a block
``behind``        ``eth_blockNumber`` answered with a head ``behind_blocks`` old (a node that
                  fell behind); only for requests that ask for the head

It counts what it injected per kind (:attr:`RpcFaultProxy.injected`) and how many requests it
saw. The proxy runs an aiohttp server in a background thread with its own event loop, so both
synchronous tests and a connector subprocess can use it::

    with RpcFaultProxy(anvil.http_url, fault_rate=0.2, seed=7) as proxy:
        config["rpc_urls"] = [proxy.url, anvil.http_url]
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from tests.support.loopback import LoopThread, serve_in_thread

FAULT_KINDS: tuple[str, ...] = ("timeout", "429", "5xx", "truncated", "invalid_json",
                                "null_block", "behind")
_BAD_BODIES = (b"<html><body>502 Bad Gateway</body></html>",
               b'{"jsonrpc": "2.0", "id": 1, "result": 0x1',
               b"\x00\xff\xfe not json")


_SELECTIVE = ("null_block", "behind")
"""Kinds that apply only to requests asking for a block or for the head."""

class RpcFaultProxy:
    """Forwards JSON-RPC to ``upstream`` and injects faults into ``fault_rate`` of requests."""

    def __init__(self, upstream: str, fault_rate: float, *, kinds: Iterable[str] = FAULT_KINDS,
                 seed: int = 0, timeout_seconds: float = 3.0, behind_blocks: int = 20) -> None:
        self.upstream = upstream
        self.fault_rate = fault_rate
        self.kinds = tuple(kinds)
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.timeout_seconds = timeout_seconds
        self.behind_blocks = behind_blocks
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._injected: Counter[str] = Counter()
        self._requests = 0
        self._serving: LoopThread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port: int | None = None

    # -- what tests read -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The proxy's endpoint, e.g. ``http://127.0.0.1:41234``."""
        if self._port is None:
            raise RuntimeError("proxy not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def injected(self) -> Counter[str]:
        """Faults injected so far, by kind (a copy)."""
        with self._lock:
            return Counter(self._injected)

    @property
    def requests(self) -> int:
        """HTTP requests received so far."""
        with self._lock:
            return self._requests

    def set_fault_rate(self, rate: float) -> None:
        """Change the fraction of faulty answers (0 turns the proxy into a plain forwarder)."""
        with self._lock:
            self.fault_rate = rate

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the loop thread and bind an ephemeral loopback port."""
        self._serving = serve_in_thread("rpc-fault-proxy", self._start)

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop(self._close)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- the endpoint ----------------------------------------------------------------------
    def _pick(self, methods: set[str]) -> str | None:
        """Decide whether this request gets a fault, and which one."""
        applicable = [k for k in self.kinds
                      if (k != "null_block" or "eth_getBlockByNumber" in methods)
                      and (k != "behind" or "eth_blockNumber" in methods)]
        with self._lock:
            self._requests += 1
            first = [k for k in applicable if k in _SELECTIVE and self._injected[k] == 0]
            if first:
                self._injected[first[0]] += 1
                return first[0]
            if not applicable or self._rng.random() >= self.fault_rate:
                return None
            fewest = min(self._injected[k] for k in applicable)  # every kind gets its turn
            kind = self._rng.choice([k for k in applicable if self._injected[k] == fewest])
            self._injected[kind] += 1
            return kind

    async def _forward(self, body: bytes) -> tuple[int, bytes]:
        assert self._session is not None
        async with self._session.post(self.upstream, data=body,
                                      headers={"Content-Type": "application/json"}) as resp:
            return resp.status, await resp.read()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        calls = parsed if isinstance(parsed, list) else [parsed]
        methods = {c.get("method") for c in calls if isinstance(c, dict)}
        kind = self._pick({m for m in methods if isinstance(m, str)})
        if kind == "timeout":
            await asyncio.sleep(self.timeout_seconds)
            return web.Response(status=504, text="gateway timeout")
        if kind == "429":
            return web.Response(status=429, headers={"Retry-After": "1"}, text="rate limited")
        if kind == "5xx":
            return web.Response(status=self._rng.choice((500, 502, 503)), text="node error")
        if kind == "invalid_json":
            return web.Response(status=200, body=self._rng.choice(_BAD_BODIES),
                                content_type="application/json")
        status, answer = await self._forward(body)
        if kind == "truncated":
            answer = answer[: max(1, len(answer) // 2)]
        elif kind in ("null_block", "behind"):
            answer = self._rewrite(kind, calls, answer)
        return web.Response(status=status, body=answer, content_type="application/json")

    def _rewrite(self, kind: str, calls: list[Any], answer: bytes) -> bytes:
        """Null the blocks, or age the head, in a real answer."""
        try:
            decoded: Any = json.loads(answer)
        except ValueError:
            return answer
        responses = decoded if isinstance(decoded, list) else [decoded]
        method_of = {c.get("id"): c.get("method") for c in calls if isinstance(c, dict)}
        for response in responses:
            if not isinstance(response, dict) or "result" not in response:
                continue
            method = method_of.get(response.get("id"))
            if kind == "null_block" and method == "eth_getBlockByNumber":
                response["result"] = None
            elif kind == "behind" and method == "eth_blockNumber":
                head = int(response["result"], 16)
                response["result"] = hex(max(0, head - self.behind_blocks))
        return json.dumps(decoded).encode()
