"""The OpenAPI 3.1 description of the API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any, Final

from monitor import __version__

_REF = "#/components/schemas/"
_BEARER: Final[list[dict[str, list[str]]]] = [{"bearerAuth": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid input; the message names the parameter or field",
            401: "Missing or invalid bearer token", 403: "Token may not do this",
            404: "Not found", 413: "Body too large", 503: "Kafka unavailable; nothing recorded"}
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


_ACTOR = {"name": "X-Chainwatch-Actor", "in": "header", "required": True,
          "description": "Who takes the action (1-64 printable characters), kept in the "
                         "audit trail", "schema": {"type": "string", "minLength": 1,
                                                   "maxLength": 64}}
_FILTERS = [
    _query("case_id", "Case id(s), comma-separated"),
    _query("rule", "Rule name(s), comma-separated"),
    _query("severity", "Severities, comma-separated: info, low, medium, high, critical"),
    _query("chain", "Chain name(s), comma-separated"),
]
_STATUS = _query("status", "Lifecycle status (provisional, confirmed, retracted) and/or "
                           "disposition (open, acknowledged, resolved, false_positive), "
                           "comma-separated")

_SCHEMAS: Final[dict[str, Any]] = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string"}}},
    "Asset": {"type": "object", "required": ["kind"], "properties": {
        "kind": {"enum": ["native", "erc20"]}, "address": {"type": ["string", "null"]},
        "symbol": {"type": ["string", "null"]}, "decimals": {"type": ["integer", "null"]}}},
    "WatchEntry": {"type": "object", "required": ["chain", "address", "case_id"],
                   "properties": {
                       "chain": {"type": "string"}, "address": {"type": "string"},
                       "case_id": {"type": "string"}, "label": {"type": "string"},
                       "category": {"type": "string"}, "source": {"type": "string"},
                       "added_at": {"type": "integer"},
                       "taint": {"type": ["object", "null"],
                                 "description": "Follow-the-money mark: origin, case_id, "
                                                "hop, amount, asset_key, path"}}},
    "NewWatchEntry": {"type": "object", "required": ["chain", "address", "case_id"],
                      "additionalProperties": False, "properties": {
                          "chain": {"type": "string"}, "address": {"type": "string"},
                          "case_id": {"type": "string", "maxLength": 128},
                          "label": {"type": "string", "maxLength": 256},
                          "category": {"type": "string"}}},
    "AuditRecord": {"type": "object",
                    "required": ["id", "alert_id", "action", "note", "actor", "role", "at"],
                    "properties": {
                        "id": {"type": "string"}, "alert_id": {"type": "string"},
                        "action": {"enum": ["acknowledge", "resolve", "false-positive"]},
                        "note": {"type": "string"}, "actor": {"type": "string"},
                        "role": {"enum": ["read-write", "read-only", "none"]},
                        "at": {"type": "number", "description": "unix seconds"}}},
    "AlertView": {
        "type": "object",
        "description": "An alert (latest lifecycle event of its id) as on the alerts topic, "
                       "plus the analysts' disposition and audit trail.",
        "required": ["id", "rule", "severity", "status", "chain", "block_number",
                     "block_hash", "block_time", "tx_hash", "transfer_id", "from", "to",
                     "asset", "amount", "watch", "disposition", "audit"],
        "properties": {
            "id": {"type": "string"}, "rule": {"type": "string"},
            "severity": {"enum": ["info", "low", "medium", "high", "critical"]},
            "status": {"enum": ["provisional", "confirmed", "retracted"]},
            "chain": {"type": "string"}, "block_number": {"type": "integer"},
            "block_hash": {"type": "string"}, "block_time": {"type": "integer"},
            "tx_hash": {"type": "string"}, "transfer_id": {"type": "string"},
            "transfer_kind": {"type": "string"}, "from": {"type": "string"},
            "to": {"type": "string"}, "asset": _ref("Asset"),
            "amount": {"type": "string", "description": "base units, decimal"},
            "direction": {"enum": ["in", "out", "self"]}, "watch": _ref("WatchEntry"),
            "confirmations": {"type": "integer"}, "detected_at": {"type": "number"},
            "first_detected_at": {"type": "number"}, "title": {"type": "string"},
            "log_index": {"type": ["integer", "null"]},
            "trace_address": {"type": ["array", "null"], "items": {"type": "integer"}},
            "evidence": {"type": "object"}, "revision": {"type": "integer"},
            "count": {"type": "integer"}, "moved_from": {"type": ["string", "null"]},
            "disposition": {"enum": ["open", "acknowledged", "resolved", "false_positive"]},
            "audit": {"type": "array", "items": _ref("AuditRecord")}}},
    "AlertPage": {"type": "object", "required": ["alerts", "next_cursor"], "properties": {
        "alerts": {"type": "array", "items": _ref("AlertView")},
        "next_cursor": {"type": ["string", "null"]},
        "stream_cursor": {"type": "string",
                          "description": "since_cursor for the stream, to miss nothing"}}},
    "Note": {"type": "object", "additionalProperties": False,
             "properties": {"note": {"type": "string", "maxLength": 2000}}},
    "CaseSummary": {"type": "object", "properties": {
        "case_id": {"type": "string"}, "watched": {"type": "integer"},
        "tainted": {"type": "integer"}, "alerts": {"type": "integer"},
        "open": {"type": "integer"}, "last_alert_at": {"type": ["number", "null"]}}},
    "GraphNode": {"type": "object", "required": ["id", "label", "role", "chain"],
                  "properties": {"id": {"type": "string"}, "label": {"type": "string"},
                                 "role": {"type": "string"}, "chain": {"type": "string"},
                                 "categories": {"type": "array",
                                                "items": {"type": "string"}}}},
    "GraphEdge": {"type": "object",
                  "required": ["from", "to", "tx_hash", "block_number", "amount", "asset",
                               "alert_id", "hop"],
                  "properties": {
                      "from": {"type": "string"}, "to": {"type": "string"},
                      "tx_hash": {"type": "string"}, "block_number": {"type": "integer"},
                      "amount": {"type": "string"},
                      "asset": {"type": "object", "properties": {
                          "symbol": {"type": ["string", "null"]},
                          "decimals": {"type": ["integer", "null"]},
                          "address": {"type": ["string", "null"]}}},
                      "alert_id": {"type": "string"},
                      "alert_ids": {"type": "array", "items": {"type": "string"}},
                      "hop": {"type": ["integer", "null"]}, "chain": {"type": "string"},
                      "transfer_id": {"type": ["string", "null"]}}},
    "Case": {"type": "object", "required": ["case_id", "watch_entries", "alerts", "graph"],
             "properties": {
                 "case_id": {"type": "string"},
                 "watch_entries": {"type": "array", "items": _ref("WatchEntry")},
                 "alerts": {"type": "array", "items": _ref("AlertView")},
                 "graph": {"type": "object", "properties": {
                     "nodes": {"type": "array", "items": _ref("GraphNode")},
                     "edges": {"type": "array", "items": _ref("GraphEdge")}}}}},
    "ImportResult": {"type": "object", "required": ["added", "errors"], "properties": {
        "added": {"type": "integer"}, "duplicates": {"type": "integer"},
        "suppressed_errors": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "line": {"type": ["integer", "null"]}, "field": {"type": ["string", "null"]},
            "message": {"type": "string"}}}}}},
    "WatchlistPage": {"type": "object", "properties": {
        "entries": {"type": "array", "items": _ref("WatchEntry")},
        "count": {"type": "integer"}}},
}


def _watchlist_ops(legacy: bool) -> dict[str, Any]:
    tag = ["legacy"] if legacy else ["watchlist"]
    return {
        "get": {"tags": tag, "summary": "List watch entries", "security": _BEARER,
                "parameters": [_query("chain", "Chain name"), _query("case_id", "Case id"),
                               _query("category", "Category")],
                "responses": {"200": _json(_ref("WatchlistPage"), "Entries"),
                              **_errors(400, 401)}},
        "post": {"tags": tag, "summary": "Add one entry or {\"entries\": [...]} (max 10,000)",
                 "security": _BEARER,
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"oneOf": [_ref("NewWatchEntry"), {
                         "type": "object", "required": ["entries"], "properties": {
                             "entries": {"type": "array",
                                         "items": _ref("NewWatchEntry")}}}]}}}},
                 "responses": {"201": _json({"type": "object", "properties": {
                     "added": {"type": "array", "items": {"type": "string"}}}}, "Added"),
                     **_errors(400, 401, 403, 413)}},
    }


def _delete_op(legacy: bool) -> dict[str, Any]:
    return {"delete": {
        "tags": ["legacy"] if legacy else ["watchlist"], "summary": "Remove a watch entry",
        "security": _BEARER,
        "parameters": [_path("chain", "Chain name"), _path("address", "0x address"),
                       _path("case_id", "Case id")],
        "responses": {"200": _json({"type": "object", "properties": {
            "removed": {"type": "string"}}}, "Removal published"), **_errors(400, 401, 403)}}}


def _action(verb: str, summary: str) -> dict[str, Any]:
    return {"post": {
        "tags": ["alerts"], "summary": summary, "security": _BEARER,
        "description": f"Appends an audit record (action `{verb}`) to the alert-audit topic "
                       "and answers once the broker acknowledged it. Needs the read-write "
                       "token and the X-Chainwatch-Actor header.",
        "parameters": [_path("id", "Alert id"), _ACTOR],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": _ref("Note")}}},
        "responses": {"200": _json(_ref("AlertView"), "The alert with its new audit trail"),
                      **_errors(400, 401, 403, 404, 413, 503)}}}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    paths: dict[str, Any] = {
        "/health": {"get": {"tags": ["system"], "summary": "Liveness and readiness",
                            "security": [], "responses": {
                                "200": _json({"type": "object"}, "Ready"),
                                "503": _json({"type": "object"}, "Starting")}}},
        "/metrics": {"get": {"tags": ["system"], "summary": "Prometheus metrics",
                             "security": [], "responses": {"200": {
                                 "description": "Prometheus text format",
                                 "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"tags": ["system"], "summary": "This document",
                                  "security": [], "responses": {
                                      "200": _json({"type": "object"}, "OpenAPI 3.1")}}},
        "/api/v1/alerts": {"get": {
            "tags": ["alerts"], "summary": "Query alerts, newest first", "security": _BEARER,
            "parameters": [*_FILTERS, _STATUS,
                           _query("since", "From this time (unix seconds, inclusive)",
                                  {"type": "number"}),
                           _query("until", "Before this time (unix seconds, exclusive)",
                                  {"type": "number"}),
                           _query("time_field", "Which time since/until apply to",
                                  {"enum": ["detected_at", "block_time"]}),
                           _query("limit", "Page size", {"type": "integer", "minimum": 1,
                                                         "maximum": 500, "default": 100}),
                           _query("cursor", "next_cursor of the previous page")],
            "responses": {"200": _json(_ref("AlertPage"), "A page of alerts"),
                          **_errors(400, 401)}}},
        "/api/v1/alerts/stream": {"get": {
            "tags": ["alerts"], "summary": "Live alerts as Server-Sent Events",
            "security": _BEARER,
            "description": "Events `alert` (new or updated alert) and `audit` (an analyst "
                           "action), each with `id` = stream cursor and `data` = AlertView "
                           "JSON; a comment every 15 s. Reconnect with Last-Event-ID or "
                           "since_cursor to get what was missed.",
            "parameters": [*_FILTERS,
                           _query("since_cursor", "Replay changes after this stream cursor"),
                           {"name": "Last-Event-ID", "in": "header", "required": False,
                            "description": "Same as since_cursor (sent by EventSource)",
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "text/event-stream", "content": {
                "text/event-stream": {"schema": {"type": "string"}}}},
                **_errors(400, 401)}}},
        "/api/v1/alerts/{id}": {"get": {
            "tags": ["alerts"], "summary": "One alert", "security": _BEARER,
            "parameters": [_path("id", "Alert id")],
            "responses": {"200": _json(_ref("AlertView"), "The alert"),
                          **_errors(401, 404)}}},
        "/api/v1/alerts/{id}/acknowledge": _action("acknowledge", "Acknowledge an alert"),
        "/api/v1/alerts/{id}/resolve": _action("resolve", "Resolve an alert"),
        "/api/v1/alerts/{id}/false-positive": _action("false-positive",
                                                      "Mark an alert a false positive"),
        "/api/v1/cases": {"get": {
            "tags": ["cases"], "summary": "Cases with watch entries or alerts",
            "security": _BEARER,
            "responses": {"200": _json({"type": "object", "properties": {
                "cases": {"type": "array", "items": _ref("CaseSummary")}}}, "Cases"),
                **_errors(400, 401)}}},
        "/api/v1/cases/{case_id}": {"get": {
            "tags": ["cases"], "summary": "A case: watch entries, alerts, fund-flow graph",
            "security": _BEARER, "parameters": [_path("case_id", "Case id")],
            "responses": {"200": _json(_ref("Case"), "The case"), **_errors(401, 404)}}},
        "/api/v1/cases/{case_id}/export": {"get": {
            "tags": ["cases"], "summary": "Download the case as JSON, CSV or an HTML report",
            "security": _BEARER,
            "parameters": [_path("case_id", "Case id"),
                           _query("format", "Export format",
                                  {"enum": ["json", "csv", "html"], "default": "json"})],
            "responses": {"200": {"description": "A download (Content-Disposition)",
                                  "content": {"application/json": {"schema": {
                                      "type": "object"}},
                                      "text/csv": {"schema": {"type": "string"}},
                                      "text/html": {"schema": {"type": "string"}}}},
                          **_errors(400, 401, 404)}}},
        "/api/v1/watchlist": _watchlist_ops(legacy=False),
        "/api/v1/watchlist/import": {"post": {
            "tags": ["watchlist"], "summary": "Import a CSV/JSON/JSONL/TXT file (max 10 MB)",
            "security": _BEARER,
            "parameters": [_query("format", "File format",
                                  {"enum": ["csv", "json", "jsonl", "txt"]}),
                           _query("chain", "Default chain"), _query("case_id", "Default case"),
                           _query("category", "Default category"),
                           _query("label", "Default label")],
            "requestBody": {"required": True, "content": {
                "text/plain": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {}}}},
            "responses": {"200": _json(_ref("ImportResult"), "Valid rows added; bad rows "
                                                             "reported"),
                          **_errors(400, 401, 403, 413)}}},
        "/api/v1/watchlist/{chain}/{address}/{case_id}": _delete_op(legacy=False),
        "/watchlist": _watchlist_ops(legacy=True),
        "/watchlist/{chain}/{address}/{case_id}": _delete_op(legacy=True),
        "/alerts/recent": {"get": {
            "tags": ["legacy"], "summary": "Newest alerts (use /api/v1/alerts)",
            "security": _BEARER,
            "parameters": [_query("limit", "At most 1000", {"type": "integer"})],
            "responses": {"200": _json({"type": "object"}, "Alerts"), **_errors(400, 401)}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "chainwatch API", "version": __version__,
                 "description": "Alerts, cases, audit trail and watchlist of a chainwatch "
                                "worker. Reads need a token (read-only or read-write) once "
                                "any is configured; writes need the read-write token.",
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "security": _BEARER,
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "CHAINWATCH_API_TOKEN (read-write) or "
                               "CHAINWATCH_API_READ_TOKEN (read-only)"}}},
    }
