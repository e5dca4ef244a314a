"""mixer-deposit: a case's funds (watched or tainted sender) paid to a mixer-labelled address."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import RuleError
from rules.typologies.common import EvidencedFinding
from rules.typologies.mixer_deposit import MixerDeposit
from tests.unit.rules.builders import (
    MAX_UINT256,
    MIXER,
    OTHER,
    SEIZED,
    ctx,
    entry,
    hop,
    mark,
    transfer,
)

RULE = MixerDeposit()


def test_watched_sender_paying_a_mixer_fires() -> None:
    t = transfer(SEIZED, MIXER, MAX_UINT256)
    (f,) = RULE.evaluate(t, ctx(t, from_entries=[entry()], to_labels=["mixer"]))
    assert (f.rule, f.direction, f.severity) == ("mixer-deposit", "out", "high")
    assert isinstance(f, EvidencedFinding) and f.evidence["path"][0][3] == str(MAX_UINT256)


def test_tainted_sender_fires_per_case() -> None:
    marks = [mark([hop("0x" + "99" * 20, OTHER, 5)], case_id=c) for c in ("C-1", "C-2")]
    t = transfer(OTHER, MIXER, 5)
    found = RULE.evaluate(t, ctx(t, from_taint=marks, to_labels=["mixer", "sanctioned"]))
    assert [f.watch.case_id for f in found] == ["C-1", "C-2"]


def test_unlabelled_receiver_or_unrelated_sender_does_not_fire() -> None:
    t = transfer(SEIZED, MIXER, 5)
    assert RULE.evaluate(t, ctx(t, from_entries=[entry()], to_labels=["exchange-deposit"])) == []
    assert RULE.evaluate(t, ctx(t, to_labels=["mixer"], to_entries=[entry(MIXER)])) == []


def test_custom_label() -> None:
    t = transfer(SEIZED, MIXER, 5)
    assert MixerDeposit(label="tumbler").evaluate(
        t, ctx(t, from_entries=[entry()], to_labels=["tumbler"]))


@pytest.mark.parametrize("value", ["", "  ", 5])
def test_bad_label_names_rule_and_parameter(value: Any) -> None:
    with pytest.raises(RuleError, match="label") as info:
        MixerDeposit(label=value)
    assert info.value.context["rule"] == "mixer-deposit"
