"""Issue 4's dashboard in real headless Chromium against a real worker, broker and anvil.

A transfer out of a watched (seized) wallet on anvil appears in the dashboard's live feed,
and the case page draws the path: seized wallet -> hop -> exchange deposit, each edge
labelled with its transaction hash. Screenshots go to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from monitor.demo.devnet import DevnetDriver
from tests.browser.chromium import chromium, collect_console, screenshot
from tests.integration.harness import API_TOKEN, Pipeline

pytestmark = pytest.mark.integration
ETHER = 10**18
WAIT = 90_000  # ms: bounds how long a failure takes to show on a loaded machine, no more
CASE = "CASE-UI-1"


def test_live_feed_and_case_graph_in_chromium(tmp_path: Path, kafka_bootstrap: str, anvil,
                                              unique_prefix: str) -> None:
    driver = DevnetDriver(anvil.http_url)
    seized, hop, deposit = (driver.new_wallet(n) for n in ("seized", "hop", "deposit"))
    driver.fund(seized, 10 * ETHER)
    labels = tmp_path / "deposits.json"
    labels.write_text(json.dumps([{"address": deposit, "name": "Exchange X deposit"}]))
    lists = [{"name": "deposits", "path": str(labels), "format": "label-json",
              "category": "exchange-deposit", "source": "test", "published": "2026-01-01"}]
    pipeline = Pipeline(tmp_path / "run", kafka_bootstrap, unique_prefix, anvil.http_url,
                        extra={"rules": [{"name": "watched-address"},
                                         {"name": "exchange-deposit"}], "lists": lists})
    try:
        pipeline.start("worker")
        pipeline.start("connector")
        pipeline.wait_ready()
        with urllib.request.urlopen(pipeline.api + "/ui/", timeout=10) as page_response:
            csp = page_response.headers["Content-Security-Policy"]
        assert csp.startswith("default-src 'self'")
        pipeline.watch([{"chain": "devnet", "address": seized, "case_id": CASE,
                         "label": "seized wallet"}])

        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            errors = collect_console(page)
            page.goto(pipeline.api + "/")
            page.fill("#login input[name=token]", API_TOKEN)
            page.fill("#login input[name=actor]", "integration test")
            page.click("#login button[type=submit]")
            expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=WAIT)

            out = driver.send_native(seized, hop, 3 * ETHER)
            row = page.locator(f'tr.alert-row[data-tx="{out.tx_hash}"]')
            try:
                expect(row.first).to_be_visible(timeout=WAIT)
            except AssertionError:
                screenshot(page, "dashboard-feed-failed")
                raise AssertionError(f"alert not in the feed\n{pipeline.logs()}") from None
            expect(row.first).to_contain_text("3 ETH")
            expect(row.first).to_contain_text(CASE)
            screenshot(page, "dashboard-live-feed")

            page.click(f'tr.alert-row[data-tx="{out.tx_hash}"] a[href^="#/cases/"]')
            graph = page.locator("#case-graph svg.flow")
            expect(graph.locator("g.node.role-seized")).to_have_count(1, timeout=WAIT)
            cashout = driver.send_native(hop, deposit, ETHER)  # the graph grows while open
            try:
                expect(graph.locator(f'g.node[data-id="{deposit}"]')).to_have_count(
                    1, timeout=WAIT)
            except AssertionError:
                screenshot(page, "dashboard-graph-failed")
                raise AssertionError(f"exchange node not drawn\n{pipeline.logs()}") from None
            expect(graph.locator(f'g.node[data-id="{deposit}"]')).to_have_attribute(
                "data-role", "exchange")
            expect(graph.locator(f'g.node[data-id="{seized}"]')).to_have_attribute(
                "data-role", "seized")
            expect(graph.locator(f'g.node[data-id="{hop}"]')).to_be_visible()
            for sent in (out, cashout):
                label = graph.locator(f'g.edge-label[data-tx="{sent.tx_hash}"]')
                expect(label).to_contain_text(sent.tx_hash[:6])
                expect(label).to_contain_text(sent.tx_hash[-4:])
            expect(graph.locator(f'g.edge-label[data-tx="{cashout.tx_hash}"]')).to_contain_text(
                "1 ETH")
            critical = page.locator(f'tr.alert-row[data-tx="{cashout.tx_hash}"]'
                                    '[data-severity="critical"]')
            expect(critical).to_be_visible(timeout=WAIT)
            screenshot(page, "dashboard-case-graph")
            assert errors == [], errors
            context.close()
    finally:
        pipeline.stop()
