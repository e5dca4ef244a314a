"""peel-chain: k consecutive peel hops (>= p % forwarded, < 100 %, to fresh addresses)."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import RuleError
from monitor.records import TaintMark
from rules.typologies.common import EvidencedFinding
from rules.typologies.peel_chain import PeelChain
from tests.unit.rules.builders import (
    MAX_UINT256,
    OTHER,
    SEIZED,
    T0,
    USDT,
    addr,
    ctx,
    entry,
    hop,
    mark,
    transfer,
)

RULE = PeelChain(min_hops=3, min_forward_bps=8000)
ORIGIN, A1, A2, A3, FRESH = SEIZED, addr(0xA1), addr(0xA2), addr(0xA3), addr(0xF1)


def _mark(amounts: tuple[int, int, int] = (1000, 900, 800)) -> TaintMark:
    return mark([hop(ORIGIN, A1, amounts[0], 1, 1), hop(A1, A2, amounts[1], 2, 2),
                 hop(A2, A3, amounts[2], 3, 3)])


def test_third_consecutive_peel_hop_fires_with_the_full_path() -> None:
    t = transfer(A3, FRESH, 700, at=T0)
    (f,) = RULE.evaluate(t, ctx(t, from_taint=[_mark()]))
    assert isinstance(f, EvidencedFinding)
    assert (f.rule, f.direction, f.watch.case_id, f.watch.category) == (
        "peel-chain", "out", "CASE-9", "tainted")
    assert f.evidence["peel_hops"] == 3 and f.evidence["origin"] == ORIGIN
    assert [p[2] for p in f.evidence["path"]] == [A1, A2, A3, FRESH]
    assert f.evidence["path"][-1] == [t.tx_hash, A3, FRESH, "700", t.block_number]


def test_forwarding_exactly_p_fires_and_one_unit_less_does_not() -> None:
    at_edge = transfer(A3, FRESH, 640, at=T0)  # 80 % of 800
    assert RULE.evaluate(at_edge, ctx(at_edge, from_taint=[_mark()]))
    below = transfer(A3, FRESH, 639, at=T0)
    assert RULE.evaluate(below, ctx(below, from_taint=[_mark()])) == []


def test_forwarding_everything_peels_nothing() -> None:
    t = transfer(A3, FRESH, 800, at=T0)
    assert RULE.evaluate(t, ctx(t, from_taint=[_mark()])) == []


def test_receiver_with_history_or_on_the_path_is_not_fresh() -> None:
    t = transfer(A3, OTHER, 700, at=T0)
    assert RULE.evaluate(t, ctx(t, [transfer(addr(0x101), OTHER, 1, at=T0 - 5)],
                                from_taint=[_mark()])) == []
    back = transfer(A3, A1, 700, at=T0)
    assert RULE.evaluate(back, ctx(back, from_taint=[_mark()])) == []


def test_a_broken_chain_is_too_short() -> None:
    t = transfer(A3, FRESH, 700, at=T0)
    whole_forward = _mark((1000, 1000, 800))  # hop 2 forwarded 100 %: not a peel hop
    assert RULE.evaluate(t, ctx(t, from_taint=[whole_forward])) == []
    assert PeelChain(min_hops=2).evaluate(t, ctx(t, from_taint=[whole_forward]))


def test_mark_in_another_asset_or_not_ending_here_is_ignored() -> None:
    t = transfer(A3, FRESH, 700, at=T0, asset=USDT)
    assert RULE.evaluate(t, ctx(t, from_taint=[_mark()])) == []
    elsewhere = transfer(A2, FRESH, 700, at=T0)
    assert RULE.evaluate(elsewhere, ctx(elsewhere, from_taint=[_mark()])) == []


def test_watched_address_reports_under_its_entry_and_big_ints_are_exact() -> None:
    m = mark([hop(ORIGIN, A1, MAX_UINT256, 1, 1), hop(A1, A2, MAX_UINT256 - 1, 2, 2),
              hop(A2, A3, MAX_UINT256 - 2, 3, 3)], case_id="CASE-1")
    t = transfer(A3, FRESH, MAX_UINT256 - 3, at=T0)
    (f,) = RULE.evaluate(t, ctx(t, from_entries=[entry(A3)], from_taint=[m]))
    assert f.watch == entry(A3)
    assert isinstance(f, EvidencedFinding) and f.evidence["path"][0][3] == str(MAX_UINT256)


def test_without_taint_it_does_not_fire() -> None:
    t = transfer(A3, FRESH, 700, at=T0)
    assert RULE.evaluate(t, ctx(t, from_entries=[entry(A3)])) == []


@pytest.mark.parametrize(("key", "value"), [("min_hops", 0), ("min_forward_bps", 10_001),
                                            ("min_forward_bps", 0.8)])
def test_bad_params_name_rule_and_parameter(key: str, value: Any) -> None:
    with pytest.raises(RuleError, match=key) as info:
        PeelChain(**{key: value})
    assert info.value.context["rule"] == "peel-chain"
