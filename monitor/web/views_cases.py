"""Case endpoints: the list of cases, one case with its fund-flow graph, and case exports."""

from __future__ import annotations

import re
import time
from typing import Any, Final

from aiohttp import web

from monitor.web.export import case_facts, entry_json, export_csv, export_json
from monitor.web.graph import build_graph
from monitor.web.http import ApiError, json_response, query_params
from monitor.web.report import render_report
from monitor.web.routes import Call, Route

EXPORT_FORMATS: Final = {"json": ("application/json", "json"),
                         "csv": ("text/csv", "csv"),
                         "html": ("text/html", "html")}
_UNSAFE_FILENAME: Final = re.compile(r"[^A-Za-z0-9._-]")


async def list_cases(call: Call) -> web.StreamResponse:
    """``GET /api/v1/cases``: every case with watched addresses or alerts, latest first."""
    if query_params(call.request):
        raise ApiError(400, "this endpoint takes no query parameters")
    ctx = call.ctx
    summary: dict[str, dict[str, Any]] = {}

    def case(case_id: str) -> dict[str, Any]:
        return summary.setdefault(case_id, {"case_id": case_id, "watched": 0, "tainted": 0,
                                            "alerts": 0, "open": 0, "last_alert_at": None})

    for entry in ctx.watchlist.entries():
        row = case(entry.case_id)
        row["tainted" if entry.category == "tainted" else "watched"] += 1
    for case_id in ctx.index.case_ids():
        row = case(case_id)
        for item in ctx.index.case_alerts(case_id):
            row["alerts"] += 1
            row["open"] += item.disposition == "open"
            last = row["last_alert_at"]
            row["last_alert_at"] = item.first_detected_at if last is None else max(
                last, item.first_detected_at)
    cases = sorted(summary.values(), key=lambda r: (-(r["last_alert_at"] or 0), r["case_id"]))
    return json_response({"cases": cases})


async def get_case(call: Call) -> web.StreamResponse:
    """``GET /api/v1/cases/{case_id}``: watch entries, alerts (newest first) and graph."""
    ctx = call.ctx
    case_id = call.params["case_id"]
    items = ctx.index.case_alerts(case_id)
    entries = ctx.case_entries(case_id)
    if not items and not entries:
        raise ApiError(404, f"case_id: no case {case_id[:128]!r} (no watch entries, no alerts)")
    graph = build_graph([i.alert for i in items], entries, ctx.labels, ctx.native_assets())
    return json_response({"case_id": case_id,
                          "watch_entries": [entry_json(e) for e in entries],
                          "alerts": [i.view() for i in items], "graph": graph})


def export_filename(case_id: str, generated_at: float, extension: str) -> str:
    """``case-<id>-<UTC time>.<ext>`` with anything unsafe in a file name replaced."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(generated_at))
    return f"case-{_UNSAFE_FILENAME.sub('_', case_id)[:100]}-{stamp}.{extension}"


async def export_case(call: Call) -> web.StreamResponse:
    """``GET /api/v1/cases/{case_id}/export?format=json|csv|html``: a download."""
    params = query_params(call.request)
    unknown = sorted(set(params) - {"format"})
    if unknown:
        raise ApiError(400, f"{unknown[0][:40]}: unknown parameter; allowed: format")
    fmt = params.get("format", "json")
    if fmt not in EXPORT_FORMATS:
        raise ApiError(400, "format: must be json, csv or html")
    ctx = call.ctx
    case_id = call.params["case_id"]
    facts = case_facts(ctx, case_id)
    if not facts["alerts"] and not facts["watch_entries"]:
        raise ApiError(404, f"case_id: no case {case_id[:128]!r} (no watch entries, no alerts)")
    generated_at = time.time()
    if fmt == "json":
        body = export_json(facts, generated_at)
    elif fmt == "csv":
        body = export_csv(ctx.index.case_alerts(case_id))
    else:
        body = render_report(facts, generated_at).encode()
    content_type, extension = EXPORT_FORMATS[fmt]
    headers = {
        "Content-Disposition": f'attachment; filename="'
                               f'{export_filename(case_id, generated_at, extension)}"',
        "X-Content-Type-Options": "nosniff",
    }
    if fmt == "html":
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return web.Response(body=body, headers=headers, content_type=content_type,
                        charset="utf-8")


ROUTES: Final = [
    Route("GET", "/api/v1/cases", "read", list_cases, "list cases"),
    Route("GET", "/api/v1/cases/{case_id}", "read", get_case, "one case with its graph"),
    Route("GET", "/api/v1/cases/{case_id}/export", "read", export_case, "export a case"),
]
