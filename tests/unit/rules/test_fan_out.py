"""fan-out: N distinct new receivers within W (closed window), novelty look-back, params."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import RuleError
from rules.typologies.fan_out import FanOut
from tests.unit.rules.builders import SEIZED, T0, addr, ctx, transfer, watched

W = 100
RULE = FanOut(min_counterparties=3, window_seconds=W, novelty_seconds=1000)


def _history() -> list:
    return [transfer(SEIZED, addr(0x101), at=T0), transfer(SEIZED, addr(0x102), at=T0 + 50)]


def test_third_new_receiver_exactly_w_after_the_first_fires() -> None:
    t = transfer(SEIZED, addr(0x103), at=T0 + W)
    (f,) = RULE.evaluate(t, watched(t, _history()))
    assert (f.rule, f.direction, f.watch.case_id) == ("fan-out", "out", "CASE-1")


def test_one_second_past_the_window_does_not_fire() -> None:
    t = transfer(SEIZED, addr(0x103), at=T0 + W + 1)
    assert RULE.evaluate(t, watched(t, _history())) == []


def test_receiver_paid_before_the_window_is_not_new() -> None:
    history = [transfer(SEIZED, addr(0x103), at=T0 - 500), *_history()]
    t = transfer(SEIZED, addr(0x103), at=T0 + 60)
    assert RULE.evaluate(t, watched(t, history)) == []
    older = [transfer(SEIZED, addr(0x101), at=T0 - 500), *_history()]
    t2 = transfer(SEIZED, addr(0x103), at=T0 + 60)
    assert RULE.evaluate(t2, watched(t2, older)) == []  # addr(0x101) no longer new


def test_receiver_paid_before_the_novelty_look_back_is_new_again() -> None:
    history = [transfer(SEIZED, addr(0x101), at=T0 - W - 1001), *_history()]
    t = transfer(SEIZED, addr(0x103), at=T0 + 60)
    assert RULE.evaluate(t, watched(t, history))


def test_repeat_receiver_and_further_receivers_do_not_fire_again() -> None:
    t = transfer(SEIZED, addr(0x102), at=T0 + 60)
    assert RULE.evaluate(t, watched(t, _history())) == []
    third = transfer(SEIZED, addr(0x103), at=T0 + 70)
    fourth = transfer(SEIZED, addr(0x104), at=T0 + 80)
    assert RULE.evaluate(fourth, watched(fourth, [*_history(), third])) == []


def test_unwatched_sender_does_not_fire() -> None:
    t = transfer(SEIZED, addr(0x103), at=T0 + 60)
    assert RULE.evaluate(t, ctx(t, _history())) == []


def test_horizon_covers_window_and_look_back() -> None:
    assert RULE.horizon_seconds == W + 1000


@pytest.mark.parametrize(("key", "value"), [("window_seconds", 0), ("min_counterparties", -1),
                                            ("novelty_seconds", 1.5), ("min_counterparties", "5"),
                                            ("window_seconds", True)])
def test_bad_params_name_rule_and_parameter(key: str, value: Any) -> None:
    with pytest.raises(RuleError, match=key) as info:
        FanOut(**{key: value})
    assert info.value.context["rule"] == "fan-out"
