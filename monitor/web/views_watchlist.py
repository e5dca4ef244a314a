"""Watchlist endpoints: list, add (one or many), remove, and bulk import of files."""

from __future__ import annotations

import re
import time
from typing import Any, Final

import msgspec
from aiohttp import web

from monitor.errors import InputError
from monitor.records import WatchEntry, normalize_address
from monitor.settings import NAME_PATTERN
from monitor.watchlist_io import WatchDefaults, parse_watchlist
from monitor.web.http import (
    IMPORT_BODY_LIMIT,
    ApiError,
    json_response,
    query_params,
    read_body,
    read_json,
)
from monitor.web.routes import Call, Route

MAX_ENTRIES_PER_REQUEST: Final = 10_000
WATCHLIST_BODY_LIMIT: Final = 1024 * 1024
IMPORT_FORMATS: Final = ("csv", "json", "jsonl", "txt")
_NAME: Final = re.compile(NAME_PATTERN)


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


async def list_entries(call: Call) -> web.StreamResponse:
    """``GET /api/v1/watchlist`` (and ``/watchlist``): entries, by chain and case."""
    params = query_params(call.request)
    unknown = sorted(set(params) - {"chain", "case_id", "category"})
    if unknown:
        raise ApiError(400, f"{unknown[0][:40]}: unknown parameter; allowed: case_id, "
                            "category, chain")
    chain, case_id, category = params.get("chain"), params.get("case_id"), \
        params.get("category")
    entries = [msgspec.to_builtins(e) for e in call.ctx.watchlist.entries()
               if (chain is None or e.chain == chain)
               and (case_id is None or e.case_id == case_id)
               and (category is None or e.category == category)]
    entries.sort(key=lambda e: (e["case_id"], e["chain"], e["address"]))
    return json_response({"entries": entries, "count": len(entries)})


async def add_entries(call: Call) -> web.StreamResponse:
    """``POST /api/v1/watchlist``: one entry (object) or many (``{"entries": [...]}``)."""
    body = await read_json(call.request, WATCHLIST_BODY_LIMIT)
    items = body.get("entries") if isinstance(body, dict) and "entries" in body else [body]
    if not isinstance(items, list) or not items:
        raise ApiError(400, "entries: must be a non-empty list")
    if len(items) > MAX_ENTRIES_PER_REQUEST:
        raise ApiError(413, f"entries: at most {MAX_ENTRIES_PER_REQUEST} per request")
    try:
        entries = [entry_from_body(item, i) for i, item in enumerate(items)]
    except InputError as exc:
        raise ApiError(400, str(exc)) from None
    unknown = sorted({e.chain for e in entries} - call.ctx.chains)
    if unknown:
        raise ApiError(400, f"chain: unknown chain(s): {', '.join(unknown)}")
    await call.ctx.writer.put_many(entries)
    return json_response({"added": [e.key for e in entries]}, status=201)


async def remove_entry(call: Call) -> web.StreamResponse:
    """``DELETE /api/v1/watchlist/{chain}/{address}/{case_id}``: publish a removal."""
    chain, case_id = call.params["chain"], call.params["case_id"]
    try:
        address = normalize_address(call.params["address"])
    except ValueError as exc:
        raise ApiError(400, f"address: {exc}") from None
    if chain not in call.ctx.chains:
        raise ApiError(400, f"chain: unknown chain {chain[:64]!r}")
    await call.ctx.writer.remove(chain, address, case_id)
    return json_response({"removed": f"{chain}:{address}:{case_id}"})


async def import_entries(call: Call) -> web.StreamResponse:
    """``POST /api/v1/watchlist/import``: a raw CSV/JSON/JSONL/TXT file; bad rows reported."""
    params = query_params(call.request)
    unknown = sorted(set(params) - {"format", "chain", "case_id", "category", "label"})
    if unknown:
        raise ApiError(400, f"{unknown[0][:40]}: unknown parameter; allowed: case_id, "
                            "category, chain, format, label")
    fmt = params.get("format")
    if fmt not in IMPORT_FORMATS:
        raise ApiError(400, f"format: must be one of {', '.join(IMPORT_FORMATS)}")
    chain = params.get("chain")
    if chain is not None and chain not in call.ctx.chains:
        raise ApiError(400, f"chain: unknown chain {chain[:64]!r}; configured: "
                            f"{', '.join(sorted(call.ctx.chains))}")
    defaults: WatchDefaults = {}
    for key in ("chain", "case_id", "category", "label"):
        if params.get(key):
            defaults[key] = params[key]
    data = await read_body(call.request, IMPORT_BODY_LIMIT)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ApiError(400, f"body: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                            f"{exc.start}, line {line})") from None
    try:
        result = parse_watchlist(text, fmt, "api-import", defaults)
    except InputError as exc:
        raise ApiError(400, f"body: {exc}") from None
    errors: list[dict[str, Any]] = [{"line": e.line, "field": e.field, "message": e.message}
                                    for e in result.errors]
    kept = []
    for entry in result.entries:
        if entry.chain in call.ctx.chains:
            kept.append(msgspec.structs.replace(entry, added_at=int(time.time())))
        else:
            errors.append({"line": None, "field": "chain",
                           "message": f"unknown chain {entry.chain!r} for {entry.address}"})
    if kept:
        await call.ctx.writer.put_many(kept)
    return json_response({"added": len(kept), "errors": errors,
                          "duplicates": result.duplicates,
                          "suppressed_errors": result.suppressed_errors})


ROUTES: Final = [
    Route("GET", "/api/v1/watchlist", "read", list_entries, "list watch entries"),
    Route("POST", "/api/v1/watchlist", "write", add_entries, "add watch entries"),
    Route("POST", "/api/v1/watchlist/import", "write", import_entries, "import a file"),
    Route("DELETE", "/api/v1/watchlist/{chain}/{address}/{case_id}", "write", remove_entry,
          "remove a watch entry"),
    Route("GET", "/watchlist", "read", list_entries, "list watch entries (legacy)"),
    Route("POST", "/watchlist", "write", add_entries, "add watch entries (legacy)"),
    Route("DELETE", "/watchlist/{chain}/{address}/{case_id}", "write", remove_entry,
          "remove a watch entry (legacy)"),
]
