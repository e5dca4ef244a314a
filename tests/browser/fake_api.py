"""A stand-in for the worker's /api/v1 (unit tests of the dashboard only) next to the real views.

The dashboard's own views are registered on a real faust app's web server, exactly as the
worker does; the API behind them is a small in-memory imitation of the documented contract.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import faust
from aiohttp import web

from monitor.dashboard import views

RW_TOKEN = "rw-token-for-tests"
RO_TOKEN = "ro-token-for-tests"
SEIZED = "0x" + "5e" * 20
HOP = "0x" + "a1" * 20
EXCHANGE = "0x" + "ec" * 20
MIXER = "0x" + "77" * 20


def make_alert(n: int, *, case: str = "CASE-7", rule: str = "watched-address",
               severity: str = "high", sender: str = SEIZED, to: str = HOP,
               amount: str = "1500000000000000000", block: int = 100) -> dict[str, Any]:
    """One AlertView as the API returns it."""
    return {
        "id": f"{n:032x}", "rule": rule, "severity": severity, "status": "confirmed",
        "chain": "devnet", "block_number": block + n, "block_hash": "0x" + f"{n:064x}",
        "block_time": 1_780_000_000 + 12 * n, "tx_hash": "0x" + f"{n + 0xabc:064x}",
        "transfer_id": f"devnet:0x{n:064x}:tx", "transfer_kind": "native",
        "from": sender, "to": to, "asset": {"kind": "native", "symbol": "ETH", "decimals": 18},
        "amount": amount, "direction": "out", "confirmations": 3, "detected_at": 1_780_000_100.5,
        "title": f"{rule} <script>alert('x')</script> #{n}",
        "watch": {"chain": "devnet", "address": sender, "case_id": case, "label": "seized",
                  "category": "seized", "source": "api", "added_at": 1_780_000_000},
        "evidence": {"note": "<img src=x onerror=alert(1)>"}, "revision": 1,
        "disposition": "open", "audit": [],
    }


class FakeApi:
    """In-memory alerts, watchlist and cases; ``push`` sends a live event to every stream."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = [make_alert(i) for i in range(1, 4)]
        self.watchlist: list[dict[str, Any]] = [
            {"chain": "devnet", "address": SEIZED, "case_id": "CASE-7", "label": "seized",
             "category": "seized", "source": "api", "added_at": 1_780_000_000}]
        self.edges: list[dict[str, Any]] = [
            {"from": SEIZED, "to": HOP, "tx_hash": self.alerts[0]["tx_hash"], "block_number": 101,
             "amount": "1500000000000000000", "asset": {"symbol": "ETH", "decimals": 18},
             "alert_id": self.alerts[0]["id"], "hop": 1}]
        self.nodes: list[dict[str, Any]] = [
            {"id": SEIZED, "label": "seized wallet", "role": "seized", "chain": "devnet"},
            {"id": HOP, "label": "hop 1", "role": "hop", "chain": "devnet"}]
        self.writes: list[tuple[str, str, Any]] = []  # (path, actor, body)
        self.streams: list[asyncio.Queue[str]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    # --- auth -------------------------------------------------------------------------
    @staticmethod
    def _role(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return {f"Bearer {RW_TOKEN}": "rw", f"Bearer {RO_TOKEN}": "ro"}.get(header)

    def _read(self, request: web.Request) -> None:
        if self._role(request) is None:
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "missing or invalid bearer token"}),
                content_type="application/json")

    def _write(self, request: web.Request) -> str:
        self._read(request)
        actor = request.headers.get("X-Chainwatch-Actor", "")
        if self._role(request) != "rw" or not actor:
            raise web.HTTPForbidden(text=json.dumps({"error": "read-write token and actor needed"}),
                                    content_type="application/json")
        return actor

    # --- handlers -----------------------------------------------------------------------
    async def list_alerts(self, request: web.Request) -> web.Response:
        self._read(request)
        q = request.query
        found = [a for a in self.alerts
                 if (not q.get("case_id") or a["watch"]["case_id"] == q["case_id"])
                 and (not q.get("severity") or a["severity"] == q["severity"])
                 and (not q.get("rule") or a["rule"] == q["rule"])]
        return web.json_response({"alerts": found, "next_cursor": None})

    async def act(self, request: web.Request) -> web.Response:
        actor = self._write(request)
        body = await request.json()
        alert = next(a for a in self.alerts if a["id"] == request.match_info["id"])
        action = request.match_info["action"]
        alert["disposition"] = {"acknowledge": "acknowledged", "resolve": "resolved",
                                "false-positive": "false_positive"}[action]
        entry = {"alert_id": alert["id"], "action": action, "note": body.get("note", ""),
                 "actor": actor, "role": "rw", "at": "2026-11-03T10:00:00Z"}
        alert["audit"].append(entry)
        self.writes.append((request.path, actor, body))
        return web.json_response(alert)

    async def cases(self, request: web.Request) -> web.Response:
        self._read(request)
        return web.json_response({"cases": [{"case_id": "CASE-7", "watched": len(self.watchlist),
                                             "alerts": len(self.alerts), "open": 2,
                                             "last_alert_at": 1_780_000_036}]})

    async def case(self, request: web.Request) -> web.Response:
        self._read(request)
        return web.json_response({"case_id": request.match_info["case_id"],
                                  "watch_entries": self.watchlist, "alerts": self.alerts,
                                  "graph": {"nodes": self.nodes, "edges": self.edges}})

    async def export(self, request: web.Request) -> web.Response:
        self._read(request)
        return web.Response(text="case export", content_type="text/plain")

    async def get_watchlist(self, request: web.Request) -> web.Response:
        self._read(request)
        return web.json_response({"entries": self.watchlist, "count": len(self.watchlist)})

    async def add_watch(self, request: web.Request) -> web.Response:
        actor = self._write(request)
        body = await request.json()
        self.writes.append((request.path, actor, body))
        for entry in body["entries"]:
            self.watchlist.append({**entry, "source": "api", "added_at": 1_780_000_500})
        return web.json_response({"added": len(body["entries"])}, status=201)

    async def import_watch(self, request: web.Request) -> web.Response:
        actor = self._write(request)
        text = await request.text()
        self.writes.append((request.path, actor, text))
        errors, imported = [], 0
        for i, line in enumerate(text.splitlines()[1:], start=2):
            cells = line.split(",")
            if len(cells) < 3 or not cells[1].startswith("0x") or len(cells[1]) != 42:
                errors.append({"row": i, "field": "address",
                               "error": f"not an address: {cells[1:2]}"})
                continue
            imported += 1
            self.watchlist.append({"chain": cells[0], "address": cells[1], "case_id": cells[2],
                                   "label": "", "category": "seized", "source": "csv"})
        return web.json_response({"imported": imported, "errors": errors})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self._read(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.streams.append(queue)
        try:
            await response.write(b": hello\n\n")
            while True:
                await response.write((await queue.get()).encode())
        finally:
            self.streams.remove(queue)

    # --- test side ------------------------------------------------------------------------
    def push(self, kind: str, data: dict[str, Any], *, graph_edge: dict[str, Any] | None = None,
             node: dict[str, Any] | None = None) -> None:
        """Send an SSE event (and grow the case graph) from the test's thread."""
        def send() -> None:
            if kind == "alert":
                self.alerts.insert(0, data)
            if graph_edge:
                self.edges.append(graph_edge)
            if node:
                self.nodes.append(node)
            # split the event over two writes, as a proxy might
            frame = f"event: {kind}\nid: {len(self.alerts)}\ndata: {json.dumps(data)}\n\n"
            for queue in self.streams:
                queue.put_nowait(frame[:25])
                queue.put_nowait(frame[25:])
        assert self.loop is not None
        self.loop.call_soon_threadsafe(send)

    def _app(self) -> web.Application:
        app = faust.App("dashboard-test", broker="memory://", store="memory://",
                        web_enabled=True, autodiscover=False)
        views.register(app)
        app.web.init_server()
        router = app.web.web_app.router
        router.add_get("/api/v1/alerts", self.list_alerts)
        router.add_get("/api/v1/alerts/stream", self.stream)
        router.add_post("/api/v1/alerts/{id}/{action}", self.act)
        router.add_get("/api/v1/cases", self.cases)
        router.add_get("/api/v1/cases/{case_id}", self.case)
        router.add_get("/api/v1/cases/{case_id}/export", self.export)
        router.add_get("/api/v1/watchlist", self.get_watchlist)
        router.add_post("/api/v1/watchlist", self.add_watch)
        router.add_post("/api/v1/watchlist/import", self.import_watch)
        return app.web.web_app

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()

        async def start() -> None:
            self._runner = web.AppRunner(self._app(), shutdown_timeout=1,
                                        handler_cancellation=True)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]
            self._started.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()
        self.loop.close()

    async def _shutdown(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __enter__(self) -> FakeApi:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._started.wait(30), "fake API did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self._thread is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"
