"""bridge-entry: a case's funds (watched or tainted sender) paid to a bridge-labelled address."""

from __future__ import annotations

import pytest

from monitor.errors import RuleError
from rules.typologies.bridge_entry import BridgeEntry
from rules.typologies.common import EvidencedFinding
from tests.unit.rules.builders import BRIDGE, OTHER, SEIZED, ctx, entry, hop, mark, transfer

RULE = BridgeEntry()


def test_tainted_funds_entering_a_bridge_fire_with_the_path() -> None:
    m = mark([hop(SEIZED, OTHER, 10, 1)])
    t = transfer(OTHER, BRIDGE, 10)
    (f,) = RULE.evaluate(t, ctx(t, from_taint=[m], to_labels=["bridge"]))
    assert isinstance(f, EvidencedFinding)
    assert (f.rule, f.direction, f.watch.case_id) == ("bridge-entry", "out", "CASE-9")
    assert f.evidence["origin"] == SEIZED and f.evidence["hops"] == 2


def test_watched_sender_without_taint_fires() -> None:
    t = transfer(SEIZED, BRIDGE, 10)
    assert RULE.evaluate(t, ctx(t, from_entries=[entry()], to_labels=["bridge"]))


def test_untainted_sender_or_unlabelled_receiver_does_not_fire() -> None:
    t = transfer(OTHER, BRIDGE, 10)
    assert RULE.evaluate(t, ctx(t, to_labels=["bridge"])) == []
    assert RULE.evaluate(t, ctx(t, from_entries=[entry(OTHER)], to_labels=["mixer"])) == []


def test_bad_label_names_rule_and_parameter() -> None:
    with pytest.raises(RuleError, match="label") as info:
        BridgeEntry(label=["bridge"])
    assert info.value.context["rule"] == "bridge-entry"
