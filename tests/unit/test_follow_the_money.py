"""Follow the money and stateful screening: taint spreads hop by hop and stops at services."""

from __future__ import annotations

from pathlib import Path

import rules  # noqa: F401
from monitor.lists.loader import build_index
from monitor.records import Asset, Block, Transfer, WatchEntry, native_transfer_id
from monitor.screening import ChainPolicy, ScopedRule, Screener, screen_block
from monitor.settings import ListConfig
from monitor.taint import TaintPolicy, propagate
from monitor.watchlist import Watchlist
from rules.base import build_rule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ETH = Asset(kind="native", symbol="ETH", decimals=18)
SEIZED = "0x" + "11" * 20
HOP1, HOP2, HOP3 = ("0x" + c * 40 for c in "abc")
EXCHANGE = "0x" + "ee" * 20
TORNADO_01 = "0x12d66f87a04a9e220743712ce6d9bb1b5616b8fc"
T2024 = 1_730_419_200  # 2024-11-01
T2026 = 1_793_491_200  # 2026-11-01


def tx(n: int, frm: str, to: str, amount: int, block_time: int = T2024, number: int = 10
       ) -> Transfer:
    h = f"0x{n:064x}"
    return Transfer(id=native_transfer_id("devnet", h), chain="devnet", block_number=number,
                    block_hash=f"0x{number:064x}", block_time=block_time, tx_hash=h,
                    tx_index=n, kind="native", from_address=frm, to_address=to, asset=ETH,
                    amount=amount)


def block(*transfers: Transfer, number: int = 10, block_time: int = T2024) -> Block:
    return Block(chain="devnet", number=number, hash=f"0x{number:064x}",
                 parent_hash=f"0x{number - 1:064x}", timestamp=block_time, head=number + 20,
                 transfers=tuple(transfers))


def watchlist() -> Watchlist:
    wl = Watchlist()
    wl.put(WatchEntry(chain="devnet", address=SEIZED, case_id="C-1", label="seized"))
    return wl


def screener(**kw) -> Screener:
    names = kw.pop("rules", ["watched-address"])
    return Screener([ScopedRule(build_rule(n, None, {})) for n in names], **kw)


def test_taint_follows_hops_in_one_block_and_records_the_path() -> None:
    b = block(tx(1, SEIZED, HOP1, 10 * 10**18), tx(2, HOP1, HOP2, 9 * 10**18),
              tx(3, HOP2, HOP3, 8 * 10**18))
    out = screener(taint=TaintPolicy()).screen(b, watchlist(), ChainPolicy(1), 0.0)
    marks = {e.address: e.taint for e in out.new_entries}
    assert set(marks) == {HOP1, HOP2, HOP3}
    assert [marks[a].hop for a in (HOP1, HOP2, HOP3)] == [1, 2, 3]
    assert [h.tx_hash for h in marks[HOP3].path] == [f"0x{n:064x}" for n in (1, 2, 3)]
    assert all(m.origin == SEIZED and m.case_id == "C-1" for m in marks.values())
    # every hop's movement is an alert for the case (the tainted sender is watched now)
    assert {(a.from_address, a.direction) for a in out.alerts} == {
        (SEIZED, "out"), (HOP1, "out"), (HOP2, "out")}
    assert all(e.category == "tainted" and e.source == "taint" for e in out.new_entries)


def test_taint_is_bounded_by_hops_amount_and_fanout() -> None:
    b = block(tx(1, SEIZED, HOP1, 10**18), tx(2, HOP1, HOP2, 10**18), tx(3, HOP2, HOP3, 10**18))
    out = screener(taint=TaintPolicy(max_hops=2)).screen(b, watchlist(), ChainPolicy(1), 0.0)
    assert {e.address for e in out.new_entries} == {HOP1, HOP2}
    dust = block(tx(1, SEIZED, HOP1, 10**12))
    assert screener(taint=TaintPolicy()).screen(dust, watchlist(), ChainPolicy(1),
                                                0.0).new_entries == []
    fan = block(*(tx(i, SEIZED, f"0x{i:040x}", 10**18) for i in range(1, 11)))
    out = screener(taint=TaintPolicy(max_addresses_per_origin=4)).screen(
        fan, watchlist(), ChainPolicy(1), 0.0)
    assert len(out.new_entries) == 4


def test_taint_stops_at_services_and_the_service_rule_carries_the_path(tmp_path: Path) -> None:
    labels = tmp_path / "exchange.json"
    labels.write_text(f'[{{"address": "{EXCHANGE}", "name": "Exchange deposit 7"}}]')
    index = build_index([ListConfig(name="deposits", path=str(labels), format="label-json",
                                    category="exchange-deposit", source="test",
                                    published="2023-06-01")], tmp_path)
    b = block(tx(1, SEIZED, HOP1, 5 * 10**18), tx(2, HOP1, EXCHANGE, 5 * 10**18))
    out = screener(rules=["watched-address", "exchange-deposit"], lists=index,
                   taint=TaintPolicy()).screen(b, watchlist(), ChainPolicy(1), 0.0)
    assert [e.address for e in out.new_entries] == [HOP1]  # not the exchange
    freeze = [a for a in out.alerts if a.rule == "exchange-deposit"]
    assert len(freeze) == 1 and freeze[0].severity == "critical"
    path = freeze[0].evidence["path"]
    assert [p[0] for p in path] == [f"0x{1:064x}", f"0x{2:064x}"]
    assert freeze[0].evidence["origin"] == SEIZED and freeze[0].evidence["hops"] == 2


def test_replaying_a_block_gives_the_same_alerts_entries_and_activity() -> None:
    b = block(tx(1, SEIZED, HOP1, 10**18), tx(2, HOP1, HOP2, 10**18))
    s = screener(rules=["watched-address", "fan-out"], taint=TaintPolicy())
    first = s.screen(b, watchlist(), ChainPolicy(1), 0.0)
    wl = watchlist()
    for e in first.new_entries:
        wl.put(e)
    again = s.screen(b, wl, ChainPolicy(1), 0.0, activity=first.activity)
    assert [a.id for a in again.alerts] == [a.id for a in first.alerts]
    assert again.activity == first.activity
    assert again.new_entries == []  # marks exist already: nothing rewritten


def test_haircut_taints_the_tainted_share_only() -> None:
    wl = watchlist()
    first = propagate(tx(1, SEIZED, HOP1, 4 * 10**18), wl.lookup("devnet", SEIZED), (), (),
                      TaintPolicy(model="haircut"), {})
    assert first[0].taint is not None and first[0].taint.amount == 4 * 10**18
    hop_entry = first[0]
    second = propagate(tx(2, HOP1, HOP2, 2 * 10**18), (hop_entry,), (), (),
                       TaintPolicy(model="haircut"), {}, sender_balance=8 * 10**18)
    assert second[0].taint is not None and second[0].taint.amount == 10**18  # 4/8 of 2


def _ofac(tmp: Path) -> list[ListConfig]:
    base = FIXTURES / "sanctions"
    return [ListConfig(name="ofac-sdn-eth", path=str(base / "ofac-2024-09" /
                                                      "sanctioned_addresses_ETH.txt"),
                       format="ofac-txt", category="sanctioned",
                       source="OFAC SDN via 0xB10C", published="2024-09-27"),
            ListConfig(name="ofac-sdn-eth", path=str(base / "ofac-2026-10" /
                                                      "sanctioned_addresses_ETH.txt"),
                       format="ofac-txt", category="sanctioned",
                       source="OFAC SDN via bitnob", published="2026-10-02")]


def test_sanctions_are_judged_by_the_list_in_force_at_block_time(tmp_path: Path) -> None:
    index = build_index(_ofac(tmp_path), tmp_path)
    s = screener(rules=["sanctioned-counterparty"], lists=index)
    in_2024 = block(tx(1, SEIZED, TORNADO_01, 10**17, T2024), block_time=T2024)
    in_2026 = block(tx(2, SEIZED, TORNADO_01, 10**17, T2026), block_time=T2026)
    hits = s.screen(in_2024, watchlist(), ChainPolicy(1), 0.0).alerts
    assert [a.rule for a in hits] == ["sanctioned-counterparty"]
    cited = hits[0].evidence["list_hits"][0]
    assert (cited["list"], cited["published"]) == ("ofac-sdn-eth", "2024-09-27")
    assert cited["digest"].startswith("sha256:")
    assert s.screen(in_2026, watchlist(), ChainPolicy(1), 0.0).alerts == []


def test_zero_value_interaction_with_a_sanctioned_address_counts(tmp_path: Path) -> None:
    index = build_index(_ofac(tmp_path), tmp_path)
    s = screener(rules=["sanctioned-counterparty"], lists=index)
    alerts = s.screen(block(tx(1, SEIZED, TORNADO_01, 0)), watchlist(), ChainPolicy(1),
                      0.0).alerts
    assert len(alerts) == 1 and alerts[0].amount == "0"


def test_scope_all_reports_untracked_transfers_under_the_screening_case(tmp_path: Path) -> None:
    index = build_index(_ofac(tmp_path), tmp_path)
    rule = build_rule("sanctioned-counterparty", None, {"scope": "all"})
    s = Screener([ScopedRule(rule)], lists=index)
    alerts = s.screen(block(tx(1, HOP1, TORNADO_01, 10**17)), Watchlist(), ChainPolicy(1),
                      0.0).alerts
    assert [a.watch.case_id for a in alerts] == ["sanctions-screening"]
    # scope "watched" (the default) ignores them
    assert screener(rules=["sanctioned-counterparty"], lists=index).screen(
        block(tx(1, HOP1, TORNADO_01, 10**17)), Watchlist(), ChainPolicy(1), 0.0).alerts == []


def test_rule_scope_limits_findings_to_categories_and_cases() -> None:
    wl = watchlist()
    wl.put(WatchEntry(chain="devnet", address=SEIZED, case_id="C-2", category="suspect"))
    rule = build_rule("watched-address", None, {})
    b = block(tx(1, SEIZED, HOP1, 10**18))
    only_suspects = Screener([ScopedRule(rule, categories=frozenset({"suspect"}))])
    assert [a.watch.case_id for a in only_suspects.screen(b, wl, ChainPolicy(1), 0).alerts] \
        == ["C-2"]
    only_c1 = Screener([ScopedRule(rule, cases=frozenset({"C-1"}))])
    assert [a.watch.case_id for a in only_c1.screen(b, wl, ChainPolicy(1), 0).alerts] == ["C-1"]
    assert len(screen_block(b, wl, [rule], ChainPolicy(1), 0)) == 2


def test_relevant_addresses_follow_taint_within_the_block() -> None:
    b = block(tx(1, SEIZED, HOP1, 10**18), tx(2, HOP1, HOP2, 10**18), tx(3, HOP3, EXCHANGE, 1))
    assert screener(taint=TaintPolicy()).relevant_addresses(b, watchlist()) == {
        SEIZED, HOP1, HOP2}


def test_zero_value_calls_are_screened_for_sanctions_only(tmp_path: Path) -> None:
    index = build_index(_ofac(tmp_path), tmp_path)
    call = tx(5, SEIZED, TORNADO_01, 0)
    b = Block(chain="devnet", number=10, hash=f"0x{10:064x}", parent_hash=f"0x{9:064x}",
              timestamp=T2024, head=30, interactions=(call,))
    s = screener(rules=["watched-address", "sanctioned-counterparty", "fan-out"], lists=index,
                 taint=TaintPolicy())
    out = s.screen(b, watchlist(), ChainPolicy(1), 0.0)
    assert [a.rule for a in out.alerts] == ["sanctioned-counterparty"]
    assert out.new_entries == [] and out.activity == {}


def test_stop_at_contracts_keeps_taint_out_of_contracts() -> None:
    from connectors.evm.facts import AddressFact

    b = block(tx(1, SEIZED, HOP1, 10**18), tx(2, SEIZED, HOP2, 10**18))
    facts = {HOP1: AddressFact(HOP1, 9, 1, 0, True), HOP2: AddressFact(HOP2, 9, 0, 0, False)}
    out = screener(taint=TaintPolicy(stop_at_contracts=True)).screen(
        b, watchlist(), ChainPolicy(1), 0.0, facts=facts)
    assert [e.address for e in out.new_entries] == [HOP2]
    out = screener(taint=TaintPolicy()).screen(b, watchlist(), ChainPolicy(1), 0.0, facts=facts)
    assert [e.address for e in out.new_entries] == [HOP1, HOP2]


def test_watchlist_keeps_taint_counts_without_scanning() -> None:
    wl = watchlist()
    out = screener(taint=TaintPolicy()).screen(
        block(tx(1, SEIZED, HOP1, 10**18), tx(2, SEIZED, HOP2, 10**18)), wl, ChainPolicy(1), 0)
    for e in out.new_entries:
        wl.put(e)
        wl.put(e)  # a redelivered entry is not counted twice
    assert wl.tainted_count("C-1", SEIZED) == 2
    wl.remove("devnet", HOP1, "C-1")
    assert wl.tainted_count("C-1", SEIZED) == 1
