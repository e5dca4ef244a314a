"""Case exports: the full facts as JSON, one CSV row per alert, and the facts behind the report.

Deterministic: for the same alerts, audit records, watch entries and lists the output is the
same byte for byte except ``generated_at``. The JSON carries ``facts_sha256``, the SHA-256 of
the canonical JSON of everything but the generation time, so a copy can be checked later.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from monitor import __version__
from monitor.records import WatchEntry
from monitor.sinks.console import format_amount
from monitor.web.context import ApiContext
from monitor.web.graph import build_graph, path_of
from monitor.web.index import IndexedAlert

EXPORT_FORMAT: Final = "chainwatch-case-export"
EXPORT_VERSION: Final = 1
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "alert_id", "rule", "severity", "title", "status", "disposition", "revision",
    "confirmations", "chain", "block_number", "block_hash", "block_time", "block_time_utc",
    "tx_hash", "transfer_id", "transfer_kind", "log_index", "trace_address", "from", "to",
    "direction", "asset_symbol", "asset_address", "asset_decimals", "amount_base_units",
    "amount", "case_id", "watched_address", "watch_category", "watch_label", "hops",
    "path_tx_hashes", "list_hits", "detected_at_utc", "audit_actions", "last_action_by",
    "last_note",
)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def iso_utc(seconds: float) -> str:
    """``2026-11-02T10:00:00Z`` for unix seconds (milliseconds kept when present)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    text = moment.isoformat(timespec="milliseconds" if seconds % 1 else "seconds")
    return text.replace("+00:00", "Z")


def ordered_alerts(items: Iterable[IndexedAlert]) -> list[IndexedAlert]:
    """Alerts in chain order: block number, then transfer id, then alert id."""
    return sorted(items, key=lambda i: (i.alert.chain, i.alert.block_number,
                                        i.alert.transfer_id, i.alert.id))


def case_facts(ctx: ApiContext, case_id: str) -> dict[str, Any]:
    """Everything known about a case, without the generation time."""
    items = ordered_alerts(ctx.index.case_alerts(case_id))
    entries = ctx.case_entries(case_id)
    graph = build_graph([i.alert for i in items], entries, ctx.labels, ctx.native_assets())
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "case_id": case_id,
        "chainwatch_version": __version__,
        "lists": ctx.list_versions(),
        "watch_entries": [msgspec.to_builtins(e) for e in entries],
        "alerts": [i.view() for i in items],
        "graph": graph,
    }


def facts_digest(facts: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical (sorted-key) JSON of the facts."""
    return "sha256:" + hashlib.sha256(msgspec.json.encode(facts, order="sorted")).hexdigest()


def export_json(facts: dict[str, Any], generated_at: float) -> bytes:
    """The JSON export: facts plus ``generated_at`` and ``facts_sha256``, keys sorted."""
    document = {**facts, "generated_at": iso_utc(generated_at),
                "facts_sha256": facts_digest(facts)}
    return msgspec.json.format(msgspec.json.encode(document, order="sorted"), indent=2) + b"\n"


def _cell(value: Any) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is prefixed with ``'``."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_row(item: IndexedAlert) -> list[str]:
    """One CSV row (see CSV_COLUMNS) for an alert."""
    a = item.alert
    path = path_of(a)
    hits = a.evidence.get("list_hits", []) if isinstance(a.evidence, dict) else []
    citations = "; ".join(str(h.get("citation", "")) for h in hits if isinstance(h, dict))
    last = item.audit[-1].record if item.audit else None
    values: list[Any] = [
        a.id, a.rule, a.severity, a.title, a.status, item.disposition, a.revision,
        a.confirmations, a.chain, a.block_number, a.block_hash, a.block_time,
        iso_utc(a.block_time), a.tx_hash, a.transfer_id, a.transfer_kind, a.log_index,
        "_".join(str(i) for i in a.trace_address) if a.trace_address is not None else None,
        a.from_address, a.to_address, a.direction, a.asset.symbol, a.asset.address,
        a.asset.decimals, a.amount, format_amount(a.amount, a.asset.decimals, a.asset.symbol),
        a.watch.case_id, a.watch.address, a.watch.category, a.watch.label,
        len(path) or None, " ".join(h.tx_hash for h in path), citations,
        iso_utc(a.detected_at),
        " ".join(f"{e.record.action}@{iso_utc(e.record.at)}" for e in item.audit),
        last.actor if last else None, last.note if last else None,
    ]
    return [_cell(v) for v in values]


def export_csv(items: Iterable[IndexedAlert]) -> bytes:
    """CSV (RFC 4180, UTF-8, header row) with one row per alert, in chain order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in ordered_alerts(items):
        writer.writerow(csv_row(item))
    return out.getvalue().encode()


def entry_json(entry: WatchEntry) -> dict[str, Any]:
    """A watch entry as JSON."""
    data: dict[str, Any] = msgspec.to_builtins(entry)
    return data
