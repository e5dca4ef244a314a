"""structuring: N near-threshold transfers within W (closed window), both ends, params."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import RuleError
from rules.typologies.structuring import Structuring
from tests.unit.rules.builders import (
    MAX_UINT256,
    OTHER,
    SEIZED,
    T0,
    USDT,
    addr,
    ctx,
    entry,
    transfer,
    watched,
)

W = 100
RULE = Structuring(thresholds={"native": 1000}, lower_bps=9000, min_count=3, window_seconds=W)


def _sent(*amounts_at: tuple[int, int]) -> list:
    return [transfer(SEIZED, addr(0x100 + i), amount, at=at)
            for i, (amount, at) in enumerate(amounts_at)]


def test_third_near_transfer_exactly_w_after_the_first_fires() -> None:
    t = transfer(SEIZED, OTHER, 999, at=T0 + W)
    (f,) = RULE.evaluate(t, watched(t, _sent((900, T0), (950, T0 + 50))))
    assert (f.rule, f.direction) == ("structuring", "out")


def test_one_second_past_the_window_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 999, at=T0 + W + 1)
    assert RULE.evaluate(t, watched(t, _sent((900, T0), (950, T0 + 50)))) == []


def test_amounts_outside_90_to_100_percent_do_not_count() -> None:
    history = _sent((899, T0), (1000, T0 + 1), (950, T0 + 2))
    t = transfer(SEIZED, OTHER, 900, at=T0 + 3)
    assert RULE.evaluate(t, watched(t, history)) == []
    big = transfer(SEIZED, OTHER, 1000, at=T0 + 3)
    assert RULE.evaluate(big, watched(big, _sent((900, T0), (950, T0 + 1)))) == []


def test_fires_once_when_the_count_is_reached() -> None:
    t = transfer(SEIZED, OTHER, 920, at=T0 + 3)
    assert RULE.evaluate(t, watched(t, _sent((900, T0), (950, T0 + 1), (960, T0 + 2)))) == []


def test_receiver_collecting_near_deposits_is_reported_inbound() -> None:
    history = [transfer(addr(0x101), SEIZED, 901, at=T0), transfer(addr(0x102), SEIZED, 902,
                                                                    at=T0 + 1)]
    t = transfer(addr(0x103), SEIZED, 903, at=T0 + 2)
    (f,) = RULE.evaluate(t, ctx(t, history, to_entries=[entry()]))
    assert (f.direction, f.watch.address) == ("in", SEIZED)


def test_other_assets_do_not_count_and_big_thresholds_are_exact() -> None:
    rule = Structuring(thresholds={"native": 1000, USDT.address: MAX_UINT256}, min_count=2,
                       window_seconds=W)
    history = [transfer(SEIZED, OTHER, 950, at=T0, asset=USDT)]
    t = transfer(SEIZED, OTHER, 950, at=T0 + 1)
    assert rule.evaluate(t, watched(t, history)) == []
    near = MAX_UINT256 - MAX_UINT256 // 10  # 90.000...% of 2**256-1
    big = [transfer(SEIZED, OTHER, near, at=T0, asset=USDT)]
    t2 = transfer(SEIZED, OTHER, MAX_UINT256 - 1, at=T0 + 1, asset=USDT)
    assert rule.evaluate(t2, watched(t2, big))
    below = [transfer(SEIZED, OTHER, near - 1, at=T0, asset=USDT)]
    assert rule.evaluate(t2, watched(t2, below)) == []


@pytest.mark.parametrize(("key", "value"), [("lower_bps", 10_000), ("lower_bps", 0),
                                            ("min_count", 0), ("thresholds", {"native": -1}),
                                            ("lower_bps", 0.9)])
def test_bad_params_name_rule_and_parameter(key: str, value: Any) -> None:
    with pytest.raises(RuleError, match=key) as info:
        Structuring(**{key: value})
    assert info.value.context["rule"] == "structuring"
