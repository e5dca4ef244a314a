"""fan-in: N distinct senders within W before the first outflow after them, params."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import RuleError
from rules.typologies.fan_in import FanIn
from tests.unit.rules.builders import OTHER, SEIZED, T0, addr, ctx, transfer, watched

W = 100
RULE = FanIn(min_senders=3, window_seconds=W)


def _deposits(start: int = T0) -> list:
    return [transfer(addr(0x101), SEIZED, 5, at=start), transfer(addr(0x102), SEIZED, 5,
                                                                   at=start + 10),
            transfer(addr(0x103), SEIZED, 5, at=start + 20)]


def test_outflow_exactly_w_after_the_first_deposit_fires() -> None:
    t = transfer(SEIZED, OTHER, 15, at=T0 + W)
    (f,) = RULE.evaluate(t, watched(t, _deposits()))
    assert (f.rule, f.direction, f.watch.address) == ("fan-in", "out", SEIZED)


def test_outflow_one_second_later_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 15, at=T0 + W + 1)
    assert RULE.evaluate(t, watched(t, _deposits())) == []


def test_only_the_first_outflow_after_the_consolidation_fires() -> None:
    first = transfer(SEIZED, OTHER, 10, at=T0 + 30)
    t = transfer(SEIZED, OTHER, 5, at=T0 + 40)
    assert RULE.evaluate(t, watched(t, [*_deposits(), first])) == []
    again = [*_deposits(), first, *_deposits(T0 + 50)]
    t2 = transfer(SEIZED, OTHER, 15, at=T0 + 80)
    assert RULE.evaluate(t2, watched(t2, again))


def test_repeat_and_self_senders_count_once_or_not_at_all() -> None:
    history = [transfer(addr(0x101), SEIZED, 5, at=T0), transfer(addr(0x101), SEIZED, 5,
                                                                  at=T0 + 1),
               transfer(SEIZED, SEIZED, 5, at=T0 + 2), transfer(addr(0x102), SEIZED, 5,
                                                                at=T0 + 3)]
    t = transfer(SEIZED, OTHER, 15, at=T0 + 10)
    assert RULE.evaluate(t, watched(t, history)) == []


def test_unwatched_or_stateless_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 15, at=T0 + 50)
    assert RULE.evaluate(t, ctx(t, _deposits())) == []
    assert RULE.evaluate(t, watched(t)) == []


@pytest.mark.parametrize(("key", "value"), [("min_senders", 0), ("window_seconds", "1h")])
def test_bad_params_name_rule_and_parameter(key: str, value: Any) -> None:
    with pytest.raises(RuleError, match=key) as info:
        FanIn(**{key: value})
    assert info.value.context["rule"] == "fan-in"
