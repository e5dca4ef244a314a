"""The worker's HTTP API: health, watchlist add/list/remove, recent alerts, metrics.

Served by Faust's web server. Every write needs the read-write bearer token
(``CHAINWATCH_API_TOKEN``); reads need either token once any token is configured. Tokens are
compared in constant time. The server binds to 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

import faust
import msgspec
from faust.web import Request, Response, View
from pydantic import SecretStr

from monitor.errors import InputError
from monitor.records import WatchEntry, normalize_address
from monitor.runtime import WorkerRuntime
from monitor.settings import NAME_PATTERN

MAX_ENTRIES_PER_REQUEST = 10_000
_NAME = re.compile(NAME_PATTERN)


def _token_ok(header: str | None, *tokens: SecretStr | None) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    given = header[len("Bearer "):].encode()
    ok = False
    for token in tokens:
        if token is not None:
            ok |= hmac.compare_digest(given, token.get_secret_value().encode())
    return ok


def entry_from_body(item: Any, index: int) -> WatchEntry:
    """Validate one watch entry from an API body; errors name the item and field."""
    if not isinstance(item, dict):
        raise InputError(f"entries[{index}]: must be an object")
    unknown = set(item) - {"address", "chain", "case_id", "label", "category"}
    if unknown:
        raise InputError(f"entries[{index}]: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        address = normalize_address(str(item.get("address", "")))
    except ValueError as exc:
        raise InputError(f"entries[{index}].address: {exc}") from None
    chain = item.get("chain")
    if not isinstance(chain, str) or not _NAME.match(chain):
        raise InputError(f"entries[{index}].chain: must be a configured chain name")
    case_id = item.get("case_id")
    if not isinstance(case_id, str) or not 0 < len(case_id) <= 128 or ":" in case_id:
        raise InputError(f"entries[{index}].case_id: 1-128 characters, no ':'")
    label = item.get("label", "")
    category = item.get("category", "seized")
    if not isinstance(label, str) or len(label) > 256:
        raise InputError(f"entries[{index}].label: a string of at most 256 characters")
    if not isinstance(category, str) or not _NAME.match(category):
        raise InputError(f"entries[{index}].category: lower-case word, e.g. seized, suspect")
    return WatchEntry(chain=chain, address=address, case_id=case_id, label=label,
                      category=category, source="api", added_at=int(time.time()))


def register(app: faust.App, runtime: WorkerRuntime) -> None:
    """Define the API's views on ``app``."""
    env = runtime.env
    chains = set(runtime.topics.chains)

    def can_read(request: Request) -> bool:
        if env.api_token is None and env.api_read_token is None:
            return True
        return _token_ok(request.headers.get("Authorization"), env.api_token, env.api_read_token)

    def can_write(request: Request) -> bool:
        return _token_ok(request.headers.get("Authorization"), env.api_token)

    def guarded(view: View, request: Request, write: bool) -> Response | None:
        if write and env.api_token is None:
            return view.json({"error": "writes are disabled: set CHAINWATCH_API_TOKEN"},
                             status=403)
        allowed = can_write(request) if write else can_read(request)
        if not allowed:
            return view.json({"error": "missing or invalid bearer token"}, status=401,
                             headers={"WWW-Authenticate": "Bearer"})
        return None

    @app.page("/health")
    class Health(View):
        """Liveness and readiness."""

        async def get(self, request: Request) -> Response:
            """Report whether the watchlist replica has caught up."""
            ready = runtime.replica.ready.is_set()
            return self.json({"status": "ok" if ready else "starting",
                              "watchlist_ready": ready,
                              "watch_entries": len(runtime.replica)},
                             status=200 if ready else 503)

    @app.page("/watchlist")
    class WatchlistView(View):
        """List or add watch entries."""

        async def get(self, request: Request) -> Response:
            """List entries, optionally filtered by chain and case."""
            if (denied := guarded(self, request, write=False)) is not None:
                return denied
            chain = request.query.get("chain")
            case_id = request.query.get("case_id")
            entries = [msgspec.to_builtins(e) for e in runtime.replica.entries()
                       if (chain is None or e.chain == chain)
                       and (case_id is None or e.case_id == case_id)]
            return self.json({"entries": entries, "count": len(entries)})

        async def post(self, request: Request) -> Response:
            """Add one entry (object) or many (``{"entries": [...]}``)."""
            if (denied := guarded(self, request, write=True)) is not None:
                return denied
            try:
                body = await request.json()
            except ValueError:
                return self.json({"error": "body is not valid JSON"}, status=400)
            items = body.get("entries") if isinstance(body, dict) and "entries" in body \
                else [body]
            if not isinstance(items, list) or not items:
                return self.json({"error": "'entries' must be a non-empty list"}, status=400)
            if len(items) > MAX_ENTRIES_PER_REQUEST:
                return self.json({"error": f"at most {MAX_ENTRIES_PER_REQUEST} entries "
                                           "per request"}, status=413)
            try:
                entries = [entry_from_body(item, i) for i, item in enumerate(items)]
            except InputError as exc:
                return self.json({"error": str(exc)}, status=400)
            unknown = sorted({e.chain for e in entries} - chains)
            if unknown:
                return self.json({"error": f"unknown chain(s): {', '.join(unknown)}"},
                                 status=400)
            await runtime.writer.put_many(entries)
            return self.json({"added": [e.key for e in entries]}, status=201)

    @app.page("/watchlist/{chain}/{address}/{case_id}")
    class WatchEntryView(View):
        """Remove one watch entry."""

        async def delete(self, request: Request, chain: str, address: str,
                         case_id: str) -> Response:
            """Publish a removal (tombstone) for the entry."""
            if (denied := guarded(self, request, write=True)) is not None:
                return denied
            try:
                normalized = normalize_address(address)
            except ValueError as exc:
                return self.json({"error": f"address: {exc}"}, status=400)
            await runtime.writer.remove(chain, normalized, case_id)
            return self.json({"removed": f"{chain}:{normalized}:{case_id}"})

    @app.page("/alerts/recent")
    class RecentAlerts(View):
        """The most recent alerts, newest first."""

        async def get(self, request: Request) -> Response:
            """Return up to ``limit`` (default 100, max 1000) recent alerts."""
            if (denied := guarded(self, request, write=False)) is not None:
                return denied
            try:
                limit = min(1000, max(1, int(request.query.get("limit", "100"))))
            except ValueError:
                return self.json({"error": "limit must be an integer"}, status=400)
            alerts = list(runtime.recent_alerts.values())[-limit:][::-1]
            return self.json({"alerts": [msgspec.to_builtins(a) for a in alerts]})

