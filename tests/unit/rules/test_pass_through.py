"""pass-through: >= x % of one inflow forwarded within W (closed window), crossing once."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import RuleError
from rules.typologies.pass_through import PassThrough
from tests.unit.rules.builders import MAX_UINT256, OTHER, SEIZED, T0, USDT, ctx, transfer, watched

W = 100
RULE = PassThrough(min_forward_bps=9000, window_seconds=W)
IN = transfer(OTHER, SEIZED, 1000, at=T0)


def test_forwarding_90_percent_exactly_w_later_fires() -> None:
    t = transfer(SEIZED, OTHER, 900, at=T0 + W)
    (f,) = RULE.evaluate(t, watched(t, [IN]))
    assert (f.rule, f.direction, f.watch.case_id) == ("pass-through", "out", "CASE-1")
    assert IN.tx_hash in f.title


def test_one_second_past_the_window_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 900, at=T0 + W + 1)
    assert RULE.evaluate(t, watched(t, [IN])) == []


def test_forwarding_just_under_the_share_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 899, at=T0 + 1)
    assert RULE.evaluate(t, watched(t, [IN])) == []


def test_fires_on_the_outflow_that_crosses_and_not_after() -> None:
    first = transfer(SEIZED, OTHER, 500, at=T0 + 1)
    assert RULE.evaluate(first, watched(first, [IN])) == []
    second = transfer(SEIZED, OTHER, 400, at=T0 + 2)
    assert RULE.evaluate(second, watched(second, [IN, first]))
    third = transfer(SEIZED, OTHER, 100, at=T0 + 3)
    assert RULE.evaluate(third, watched(third, [IN, first, second])) == []


def test_other_assets_and_earlier_outflows_do_not_count() -> None:
    early = transfer(SEIZED, OTHER, 800, at=T0 - 10)
    token = transfer(SEIZED, OTHER, 800, at=T0 + 1, asset=USDT)
    t = transfer(SEIZED, OTHER, 100, at=T0 + 2)
    assert RULE.evaluate(t, watched(t, [early, IN, token])) == []


def test_big_int_inflow_forwarded_whole_fires() -> None:
    inflow = transfer(OTHER, SEIZED, MAX_UINT256, at=T0)
    t = transfer(SEIZED, OTHER, MAX_UINT256 - MAX_UINT256 // 10, at=T0 + 1)
    assert RULE.evaluate(t, watched(t, [inflow]))
    t2 = transfer(SEIZED, OTHER, MAX_UINT256 - MAX_UINT256 // 10 - 1, at=T0 + 1)
    assert RULE.evaluate(t2, watched(t2, [inflow])) == []


def test_unwatched_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 1000, at=T0 + 1)
    assert RULE.evaluate(t, ctx(t, [IN])) == []


@pytest.mark.parametrize(("key", "value"), [("min_forward_bps", 10_001), ("min_forward_bps", 0),
                                            ("window_seconds", -5)])
def test_bad_params_name_rule_and_parameter(key: str, value: Any) -> None:
    with pytest.raises(RuleError, match=key) as info:
        PassThrough(**{key: value})
    assert info.value.context == {"rule": "pass-through", "parameter": key}
