"""large-value: threshold boundary (>= fires), per-asset and per-chain keys, cases, params."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import RuleError
from rules.base import ScreeningContext
from rules.typologies.large_value import LargeValue
from tests.unit.rules.builders import (
    MAX_UINT256,
    OTHER,
    SEIZED,
    USDT,
    ctx,
    entry,
    hop,
    mark,
    transfer,
)

RULE = LargeValue(thresholds={"native": 1000, USDT.address: 50, "other:native": 1})


def test_at_threshold_fires_for_sender_and_receiver_cases() -> None:
    t = transfer(SEIZED, OTHER, 1000)
    found = RULE.evaluate(t, ctx(from_entries=[entry()], to_entries=[entry(OTHER, "CASE-2")]))
    assert [(f.rule, f.direction, f.watch.case_id, f.severity) for f in found] == [
        ("large-value", "out", "CASE-1", "medium"), ("large-value", "in", "CASE-2", "medium")]


def test_one_below_threshold_does_not_fire() -> None:
    assert RULE.evaluate(transfer(amount=999), ctx(from_entries=[entry()])) == []


def test_unwatched_untainted_transfer_does_not_fire() -> None:
    assert RULE.evaluate(transfer(amount=10**30), ctx()) == []


def test_self_transfer_is_reported_once() -> None:
    t = transfer(SEIZED, SEIZED, 1000)
    found = RULE.evaluate(t, ScreeningContext((entry(),), (entry(),)))
    assert [f.direction for f in found] == ["self"]


def test_token_threshold_and_asset_without_threshold() -> None:
    assert RULE.evaluate(transfer(amount=50, asset=USDT), ctx(from_entries=[entry()]))
    assert not RULE.evaluate(transfer(amount=49, asset=USDT), ctx(from_entries=[entry()]))
    rule = LargeValue(thresholds={USDT.address: 50})
    assert rule.evaluate(transfer(amount=MAX_UINT256), ctx(from_entries=[entry()])) == []


def test_chain_specific_threshold_wins() -> None:
    rule = LargeValue(thresholds={"native": 1, "devnet:native": 100})
    assert not rule.evaluate(transfer(amount=99), ctx(from_entries=[entry()]))


def test_tainted_receiver_is_reported_under_the_taint_case() -> None:
    m = mark([hop("0x" + "99" * 20, OTHER, 5)], case_id="CASE-7")
    (f,) = RULE.evaluate(transfer(SEIZED, OTHER, MAX_UINT256), ctx(to_taint=[m]))
    assert (f.direction, f.watch.case_id, f.watch.category, f.watch.address) == (
        "in", "CASE-7", "tainted", OTHER)


def test_default_thresholds() -> None:
    rule = LargeValue()
    assert rule.evaluate(transfer(amount=10**19), ctx(from_entries=[entry()]))
    assert not rule.evaluate(transfer(amount=10**19 - 1), ctx(from_entries=[entry()]))
    assert rule.evaluate(transfer(amount=10**11, asset=USDT), ctx(from_entries=[entry()]))


@pytest.mark.parametrize("bad", [[1000], {"native": 1e19}, {"native": 0}, {"native": True},
                                 {"": 5}, {"native": "100"}])
def test_bad_thresholds_name_rule_and_parameter(bad: Any) -> None:
    with pytest.raises(RuleError, match="thresholds") as info:
        LargeValue(thresholds=bad)
    assert info.value.context["rule"] == "large-value"
