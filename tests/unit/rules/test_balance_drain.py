"""balance-drain: >= 95 % of the known balance leaves within W (closed window), once."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import RuleError
from rules.typologies.balance_drain import BalanceDrain
from tests.unit.rules.builders import MAX_UINT256, OTHER, SEIZED, T0, USDT, ctx, transfer, watched

W = 100
RULE = BalanceDrain(min_drain_bps=9500, window_seconds=W)
FUNDED = [transfer(OTHER, SEIZED, 1000, at=T0 - 1000)]


def test_single_outflow_of_exactly_95_percent_fires() -> None:
    t = transfer(SEIZED, OTHER, 950, at=T0)
    (f,) = RULE.evaluate(t, watched(t, FUNDED))
    assert (f.rule, f.direction) == ("balance-drain", "out") and "950 of 1000" in f.title


def test_just_under_95_percent_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 949, at=T0)
    assert RULE.evaluate(t, watched(t, FUNDED)) == []


def test_series_exactly_w_apart_fires_and_one_second_more_does_not() -> None:
    first = transfer(SEIZED, OTHER, 500, at=T0)
    t = transfer(SEIZED, OTHER, 450, at=T0 + W)
    assert RULE.evaluate(t, watched(t, [*FUNDED, first]))
    late = transfer(SEIZED, OTHER, 450, at=T0 + W + 1)
    assert RULE.evaluate(late, watched(late, [*FUNDED, first])) == []


def test_does_not_fire_again_after_the_drain() -> None:
    first = transfer(SEIZED, OTHER, 960, at=T0)
    t = transfer(SEIZED, OTHER, 40, at=T0 + 1)
    assert RULE.evaluate(t, watched(t, [*FUNDED, first])) == []


def test_unknown_balance_or_other_asset_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 10, at=T0)
    assert RULE.evaluate(t, watched(t)) == []
    token = transfer(SEIZED, OTHER, 1000, at=T0, asset=USDT)
    assert RULE.evaluate(token, watched(token, FUNDED)) == []


def test_big_int_balance() -> None:
    funded = [transfer(OTHER, SEIZED, MAX_UINT256, at=T0 - 1)]
    t = transfer(SEIZED, OTHER, MAX_UINT256, at=T0)
    assert RULE.evaluate(t, watched(t, funded))
    assert RULE.evaluate(t, ctx(t, funded)) == []


@pytest.mark.parametrize(("key", "value"), [("min_drain_bps", 0), ("min_drain_bps", 0.95),
                                            ("window_seconds", 0)])
def test_bad_params_name_rule_and_parameter(key: str, value: Any) -> None:
    with pytest.raises(RuleError, match=key) as info:
        BalanceDrain(**{key: value})
    assert info.value.context["rule"] == "balance-drain"
