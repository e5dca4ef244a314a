"""Case exports: JSON facts with a digest, CSV rows, and a self-contained escaped HTML report."""

from __future__ import annotations

import csv
import io
import json
import re

from monitor.records import WatchEntry
from monitor.web.audit import new_record
from monitor.web.export import CSV_COLUMNS, case_facts, export_csv, export_json
from monitor.web.index import AlertIndex
from monitor.web.report import render_report
from tests.unit.web.builders import case_entries, context, make_alert, path_alerts, tx


def case_context():
    index = AlertIndex()
    for offset, alert in enumerate(path_alerts()):
        index.apply_alert(alert, 0, offset)
    ctx = context(index)
    for entry in case_entries():
        ctx.watchlist.put(entry)
    index.apply_audit(new_record(path_alerts()[2].id, "acknowledge", "freeze request sent",
                                 "<script>alert(1)</script>", "read-write", 1_800_000_100.0),
                      0, 0)
    return ctx


def test_json_export_is_deterministic_except_generation_time() -> None:
    ctx = case_context()
    one = json.loads(export_json(case_facts(ctx, "CASE-1"), 1.0))
    two = json.loads(export_json(case_facts(ctx, "CASE-1"), 2.0))
    assert one.pop("generated_at") != two.pop("generated_at")
    assert one == two
    assert one["facts_sha256"].startswith("sha256:")
    assert len(one["alerts"]) == 3
    assert one["chainwatch_version"] and one["graph"]["edges"]


def test_csv_has_a_header_and_one_row_per_alert_with_formulas_defused() -> None:
    ctx = case_context()
    evil = WatchEntry(chain="devnet", address="0x" + "66" * 20, case_id="CASE-1",
                      label="=HYPERLINK(\"http://x\")", category="seized")
    ctx.index.apply_alert(make_alert(9, frm=evil.address, watch=evil), 0, 9)
    rows = list(csv.reader(io.StringIO(export_csv(ctx.index.case_alerts("CASE-1")).decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 5
    by_id = {r[0]: dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]}
    exchange = by_id[path_alerts()[2].id]
    assert exchange["amount_base_units"] == str(10**18) and exchange["amount"] == "1 ETH"
    assert exchange["path_tx_hashes"] == f"{tx(1)} {tx(2)}"
    assert exchange["disposition"] == "acknowledged"
    assert by_id[make_alert(9, frm=evil.address, watch=evil).id]["watch_label"].startswith("'=")


def test_html_report_is_self_contained_and_escaped() -> None:
    ctx = case_context()
    page = render_report(case_facts(ctx, "CASE-1"), 1_800_000_200.0)
    assert tx(1) in page and tx(2) in page
    assert "1 ETH" in page and str(3 * 10**18) in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"(src|href)\s*=", page, re.I)
    assert not re.search(r"https?://", page)
    assert "freeze request sent" in page and "chainwatch" in page
