"""Screening: watched-address rule, alert facts and deterministic ids."""

from __future__ import annotations

import pytest

import rules  # noqa: F401
from monitor.errors import RuleError
from monitor.records import alert_id
from monitor.screening import ChainPolicy, screen_block
from monitor.watchlist import Watchlist
from rules.base import build_rule
from tests.unit.builders import OTHER, SEIZED, THIRD, block, entry, transfer

RULE = [build_rule("watched-address", None, {})]


def _watchlist(*entries):
    wl = Watchlist()
    for e in entries:
        wl.put(e)
    return wl


def test_outgoing_transfer_from_watched_wallet_raises_alert_with_facts() -> None:
    t = transfer(amount=2**256 - 1)
    alerts = screen_block(block(t), _watchlist(entry()), RULE, ChainPolicy(2), 123.0)
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.rule, a.direction, a.status, a.confirmations) == ("watched-address", "out",
                                                                "confirmed", 2)
    assert (a.tx_hash, a.block_hash, a.block_number, a.amount) == (
        t.tx_hash, t.block_hash, 7, str(2**256 - 1))
    assert a.watch.case_id == "CASE-1" and a.from_address == SEIZED and a.to_address == OTHER
    assert a.id == alert_id("watched-address", t.id, "CASE-1")


def test_incoming_and_unrelated_transfers() -> None:
    wl = _watchlist(entry(OTHER))
    alerts = screen_block(block(transfer(), transfer(THIRD, SEIZED, tx="0x" + "01" * 32)), wl,
                          RULE, ChainPolicy(0), 1.0)
    assert [a.direction for a in alerts] == ["in"]
    assert alerts[0].status == "provisional"


def test_each_case_gets_its_own_alert_and_ids_are_stable() -> None:
    wl = _watchlist(entry(case_id="A"), entry(case_id="B"))
    first = screen_block(block(transfer()), wl, RULE, ChainPolicy(1), 1.0)
    again = screen_block(block(transfer()), wl, RULE, ChainPolicy(1), 99.0)
    assert sorted(a.watch.case_id for a in first) == ["A", "B"]
    assert [a.id for a in first] == [a.id for a in again]
    assert len({a.id for a in first}) == 2


def test_self_transfer_is_one_alert() -> None:
    alerts = screen_block(block(transfer(SEIZED, SEIZED)), _watchlist(entry()), RULE,
                          ChainPolicy(1), 1.0)
    assert [a.direction for a in alerts] == ["self"]


def test_other_chain_is_not_matched() -> None:
    alerts = screen_block(block(transfer()), _watchlist(entry(chain="ethereum")), RULE,
                          ChainPolicy(1), 1.0)
    assert alerts == []


def test_watchlist_remove_and_len() -> None:
    wl = _watchlist(entry(case_id="A"), entry(case_id="B"), entry(case_id="A"))
    assert len(wl) == 2
    wl.remove("devnet", SEIZED, "A")
    assert [e.case_id for e in wl.lookup("devnet", SEIZED)] == ["B"]
    wl.remove("devnet", SEIZED, "B")
    assert len(wl) == 0 and wl.lookup("devnet", SEIZED) == ()


def test_unknown_rule_and_bad_parameters_are_clear() -> None:
    with pytest.raises(RuleError, match=r"unknown rule 'nope'; known rules: .*watched-address"):
        build_rule("nope", None, {})
    with pytest.raises(RuleError, match="unknown parameter"):
        build_rule("watched-address", None, {"x": 1})
