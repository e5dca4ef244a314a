"""mixer-withdrawal-to-fresh: a watched mixer pays an address with no observed activity."""

from __future__ import annotations

import pytest

from monitor.errors import RuleError
from rules.typologies.mixer_withdrawal import MixerWithdrawalToFresh
from tests.unit.rules.builders import MIXER, OTHER, T0, addr, ctx, entry, transfer

RULE = MixerWithdrawalToFresh()


def test_watched_mixer_paying_a_fresh_address_fires() -> None:
    t = transfer(MIXER, OTHER, 10**17, at=T0)
    (f,) = RULE.evaluate(t, ctx(t, from_entries=[entry(MIXER)], from_labels=["mixer"]))
    assert (f.rule, f.direction, f.watch.address) == ("mixer-withdrawal-to-fresh", "out", MIXER)


def test_watched_fresh_receiver_is_reported_inbound() -> None:
    t = transfer(MIXER, OTHER, 10**17, at=T0)
    (f,) = RULE.evaluate(t, ctx(t, to_entries=[entry(OTHER)], from_labels=["mixer"]))
    assert f.direction == "in"


def test_receiver_with_any_earlier_activity_is_not_fresh() -> None:
    t = transfer(MIXER, OTHER, 10**17, at=T0)
    seen = [transfer(addr(0x101), OTHER, 1, at=T0 - 10**7)]
    assert RULE.evaluate(t, ctx(t, seen, from_entries=[entry(MIXER)],
                                from_labels=["mixer"])) == []


def test_unlabelled_or_unwatched_sender_does_not_fire() -> None:
    t = transfer(MIXER, OTHER, 10**17, at=T0)
    assert RULE.evaluate(t, ctx(t, from_entries=[entry(MIXER)])) == []
    assert RULE.evaluate(t, ctx(t, from_labels=["mixer"])) == []


def test_bad_label_names_rule_and_parameter() -> None:
    with pytest.raises(RuleError, match="label") as info:
        MixerWithdrawalToFresh(label="")
    assert info.value.context["rule"] == "mixer-withdrawal-to-fresh"
