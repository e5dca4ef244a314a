"""exchange-deposit: a case's funds reach an exchange deposit address; full path as evidence."""

from __future__ import annotations

import pytest

from monitor.errors import RuleError
from rules.typologies.common import EvidencedFinding
from rules.typologies.exchange_deposit import ExchangeDeposit
from tests.unit.rules.builders import (
    EXCHANGE,
    MAX_UINT256,
    OTHER,
    SEIZED,
    addr,
    ctx,
    entry,
    hop,
    mark,
    transfer,
)

RULE = ExchangeDeposit()
A1, A2 = addr(0xA1), addr(0xA2)


def test_tainted_funds_at_an_exchange_carry_the_full_path_from_the_origin() -> None:
    m = mark([hop(SEIZED, A1, MAX_UINT256, 10, 1), hop(A1, A2, 900, 11, 2)], amount=900)
    t = transfer(A2, EXCHANGE, 850)
    (f,) = RULE.evaluate(t, ctx(t, from_taint=[m], to_labels=["exchange-deposit"]))
    assert isinstance(f, EvidencedFinding)
    assert (f.rule, f.severity, f.direction, f.watch.case_id) == (
        "exchange-deposit", "critical", "out", "CASE-9")
    assert f.evidence == {
        "case_id": "CASE-9", "origin": SEIZED, "hops": 3, "tainted_amount": "900",
        "tainted_asset": "native",
        "path": [[m.path[0].tx_hash, SEIZED, A1, str(MAX_UINT256), 10],
                 [m.path[1].tx_hash, A1, A2, "900", 11],
                 [t.tx_hash, A2, EXCHANGE, "850", t.block_number]]}


def test_watched_sender_is_its_own_origin() -> None:
    t = transfer(SEIZED, EXCHANGE, 5)
    (f,) = RULE.evaluate(t, ctx(t, from_entries=[entry()], to_labels=["exchange-deposit"]))
    assert isinstance(f, EvidencedFinding)
    assert f.watch == entry() and f.evidence["origin"] == SEIZED and f.evidence["hops"] == 1


def test_watched_and_tainted_for_the_same_case_is_one_finding() -> None:
    m = mark([hop(A1, SEIZED, 5)], case_id="CASE-1")
    t = transfer(SEIZED, EXCHANGE, 5)
    (f,) = RULE.evaluate(t, ctx(t, from_entries=[entry()], from_taint=[m],
                                to_labels=["exchange-deposit"]))
    assert isinstance(f, EvidencedFinding)
    assert f.watch == entry() and f.evidence["origin"] == A1


def test_unlabelled_receiver_or_clean_sender_does_not_fire() -> None:
    t = transfer(OTHER, EXCHANGE, 5)
    assert RULE.evaluate(t, ctx(t, to_labels=["exchange-deposit"])) == []
    assert RULE.evaluate(t, ctx(t, from_entries=[entry(OTHER)], to_labels=["exchange"])) == []


def test_bad_label_names_rule_and_parameter() -> None:
    with pytest.raises(RuleError, match="label") as info:
        ExchangeDeposit(label=" ")
    assert info.value.context == {"rule": "exchange-deposit", "parameter": "label"}
