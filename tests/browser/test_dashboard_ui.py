"""The dashboard in real headless Chromium against a stand-in API (the real one: integration)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.chromium import chromium, collect_console, screenshot
from tests.browser.fake_api import EXCHANGE, HOP, RO_TOKEN, RW_TOKEN, FakeApi, make_alert

WAIT = 15_000  # ms: generous, this only bounds how long a failure takes to show


@pytest.fixture()
def api() -> Iterator[FakeApi]:
    with FakeApi() as server:
        yield server


@pytest.fixture()
def page(api: FakeApi) -> Iterator[Page]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.dialogs = []  # type: ignore[attr-defined]
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.accept()))  # type: ignore[attr-defined]
        yield page
        context.close()


def sign_in(page: Page, api: FakeApi, token: str = RW_TOKEN) -> None:
    page.goto(api.url + "/")
    expect(page.locator("#login")).to_be_visible(timeout=WAIT)
    page.fill("#login input[name=token]", token)
    page.fill("#login input[name=actor]", "Det. Insp. Rivera")
    page.click("#login button[type=submit]")
    expect(page.locator("#login")).to_be_hidden(timeout=WAIT)


def test_token_entry_feed_live_update_and_action(page: Page, api: FakeApi) -> None:
    errors = collect_console(page)
    response = page.goto(api.url + "/")
    assert response is not None and response.url.endswith("/ui/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page.fill("#login input[name=token]", "wrong")
    page.fill("#login input[name=actor]", "someone")
    page.click("#login button[type=submit]")
    expect(page.locator("#login .error")).to_contain_text("refused", timeout=WAIT)
    errors.clear()  # the browser logs the refused request itself

    page.fill("#login input[name=token]", RW_TOKEN)
    page.fill("#login input[name=actor]", "Det. Insp. Rivera")
    page.click("#login button[type=submit]")
    rows = page.locator("tr.alert-row")
    expect(rows).to_have_count(3, timeout=WAIT)
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=WAIT)
    # hostile text from an alert is shown as text, never run
    expect(page.locator("tr.alert-row").first.locator("td").nth(2)).to_have_attribute(
        "title", "watched-address <script>alert('x')</script> #1")

    new = make_alert(9, severity="critical", rule="exchange-deposit", to=EXCHANGE)
    api.push("alert", new)
    expect(rows.first).to_have_attribute("data-id", new["id"], timeout=WAIT)
    expect(rows.first.locator(".badge.sev-critical")).to_have_text("critical")
    expect(rows.first).to_contain_text("1.5 ETH")
    expect(rows.first).to_contain_text("0x0000…0ac5")  # shortened tx hash

    rows.first.click()  # select and expand
    expect(page.locator("tr.details pre.evidence")).to_contain_text("<img src=x onerror=alert(1)>")
    page.keyboard.press("a")
    expect(page.locator("#action-dialog")).to_be_visible(timeout=WAIT)
    page.fill("#action-dialog textarea", "Freeze request sent to the exchange")
    screenshot(page, "ui-action-dialog")
    page.click("#action-confirm")
    expect(rows.first.locator(".badge.disp-acknowledged")).to_be_visible(timeout=WAIT)
    path, actor, body = api.writes[-1]
    assert path == f"/api/v1/alerts/{new['id']}/acknowledge"
    assert actor == "Det. Insp. Rivera" and body == {"note": "Freeze request sent to the exchange"}
    expect(page.locator("tr.details ol.audit")).to_contain_text("Freeze request sent")
    screenshot(page, "ui-alert-feed")

    page.keyboard.press("j")
    expect(page.locator("tr.alert-row.selected")).to_have_attribute("data-id", f"{1:032x}")
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert errors == []


def test_case_graph_draws_the_path_and_grows_live(page: Page, api: FakeApi) -> None:
    errors = collect_console(page)
    sign_in(page, api)
    page.click("nav a[data-view=cases]")
    expect(page.locator("tr.link-row")).to_have_count(1, timeout=WAIT)
    page.click("tr.link-row a")
    graph = page.locator("#case-graph svg.flow")
    expect(graph.locator("g.node")).to_have_count(2, timeout=WAIT)
    expect(graph.locator("g.node.role-seized")).to_have_count(1)
    tx = api.edges[0]["tx_hash"]
    expect(graph.locator(f'g.edge-label[data-tx="{tx}"]')).to_contain_text("0x0000…0abd")

    alert = make_alert(12, rule="exchange-deposit", severity="critical", sender=HOP, to=EXCHANGE)
    api.push("alert", alert, node={"id": EXCHANGE, "label": "Exchange X deposit",
                                   "role": "exchange", "chain": "devnet"},
             graph_edge={"from": HOP, "to": EXCHANGE, "tx_hash": alert["tx_hash"],
                         "block_number": 112, "amount": "1000000000000000000",
                         "asset": {"symbol": "ETH", "decimals": 18}, "alert_id": alert["id"],
                         "hop": 2})
    expect(graph.locator("g.node.role-exchange")).to_have_count(1, timeout=WAIT)
    expect(graph.locator(f'g.edge-label[data-tx="{alert["tx_hash"]}"]')).to_contain_text("1 ETH")
    graph.locator("g.node.role-exchange").click()
    expect(page.locator("aside.selection")).to_contain_text(EXCHANGE)
    graph.locator(f'g.edge-label[data-tx="{alert["tx_hash"]}"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator("aside.selection")).to_contain_text(alert["tx_hash"])
    screenshot(page, "ui-case-graph")
    with page.expect_download() as download:
        page.click("button[data-export=html]")
    assert download.value.suggested_filename == "CASE-7.html"
    assert errors == []


def test_watchlist_add_and_csv_import_with_a_broken_row(page: Page, api: FakeApi,
                                                        tmp_path: Path) -> None:
    sign_in(page, api)
    page.keyboard.press("3")
    expect(page.locator("#watch-add")).to_be_visible(timeout=WAIT)
    page.fill("#watch-add input[name=chain]", "devnet")
    page.fill("#watch-add input[name=address]", "0x" + "12" * 20)
    page.fill("#watch-add input[name=case_id]", "CASE-8")
    page.click("#watch-add button[type=submit]")
    expect(page.locator(f'tr[data-address="0x{"12" * 20}"]')).to_be_visible(timeout=WAIT)
    csv = tmp_path / "watch.csv"
    csv.write_text("chain,address,case_id\n"
                   f"devnet,0x{'34' * 20},CASE-8\ndevnet,0xnope,CASE-8\n")
    page.set_input_files("#watch-import input[type=file]", str(csv))
    page.click("#watch-import button[type=submit]")
    report = page.locator(".import-report")
    expect(report).to_contain_text("Imported 1 entry", timeout=WAIT)
    expect(report).to_contain_text("row 3 address:")
    expect(page.locator(f'tr[data-address="0x{"34" * 20}"]')).to_be_visible(timeout=WAIT)
    screenshot(page, "ui-watchlist")


def test_read_only_token_cannot_act(page: Page, api: FakeApi) -> None:
    sign_in(page, api, token=RO_TOKEN)
    rows = page.locator("tr.alert-row")
    expect(rows).to_have_count(3, timeout=WAIT)
    rows.first.locator("button", has_text="Resolve").click()
    page.click("#action-confirm")
    expect(page.locator("#toast")).to_contain_text("read-write token and actor needed",
                                                   timeout=WAIT)
    assert api.writes == []
