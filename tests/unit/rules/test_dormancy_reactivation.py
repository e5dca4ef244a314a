"""dormancy-reactivation: idle >= D days of block time (exactly D fires, D - 1 s does not)."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import RuleError
from rules.state import RuleContext, rewind_block, update_activity
from rules.typologies.dormancy_reactivation import DormancyReactivation
from tests.unit.rules.builders import OTHER, SEIZED, T0, ctx, entry, transfer, watched

D = 180 * 86_400
RULE = DormancyReactivation(min_idle_days=180)
LAST = [transfer(OTHER, SEIZED, 5, at=T0)]


def test_outflow_exactly_d_days_after_last_activity_fires() -> None:
    t = transfer(SEIZED, OTHER, 5, at=T0 + D)
    (f,) = RULE.evaluate(t, watched(t, LAST))
    assert (f.rule, f.direction, f.severity) == ("dormancy-reactivation", "out", "high")
    assert "180 days" in f.title


def test_one_second_short_of_d_days_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 5, at=T0 + D - 1)
    assert RULE.evaluate(t, watched(t, LAST)) == []


def test_any_activity_resets_idle_time_and_inflows_do_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 5, at=T0 + D)
    assert RULE.evaluate(t, watched(t, [*LAST, transfer(OTHER, SEIZED, 1, at=T0 + 1)])) == []
    incoming = transfer(OTHER, SEIZED, 5, at=T0 + D)
    assert RULE.evaluate(incoming, ctx(incoming, LAST, to_entries=[entry()])) == []


def test_redelivery_after_state_was_stored_gives_the_same_finding() -> None:
    t = transfer(SEIZED, OTHER, 5, at=T0 + D)
    first = watched(t, LAST)
    stored = update_activity(first.from_activity, t, "out", 10**9, 100)
    assert RULE.evaluate(t, RuleContext(from_entries=first.from_entries,
                                        from_activity=stored)) == []  # naive: state is after t
    again = RuleContext(from_entries=first.from_entries,
                        from_activity=rewind_block(stored, t.block_number))
    assert RULE.evaluate(t, again) == RULE.evaluate(t, first)


def test_never_seen_address_does_not_fire() -> None:
    t = transfer(SEIZED, OTHER, 5, at=T0 + D)
    assert RULE.evaluate(t, watched(t)) == []


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_bad_params_name_rule_and_parameter(value: Any) -> None:
    with pytest.raises(RuleError, match="min_idle_days") as info:
        DormancyReactivation(min_idle_days=value)
    assert info.value.context["rule"] == "dormancy-reactivation"
