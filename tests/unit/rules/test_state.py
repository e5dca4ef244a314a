"""Per-address state: update_activity (block-time pruning, caps, idempotence), marks, context."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.base import ScreeningContext
from rules.state import (
    ACTIVITY_DECODER,
    TAINT_DECODER,
    AddressActivity,
    RuleContext,
    as_rule_context,
    is_fresh,
    rewind_block,
    update_activity,
)
from rules.watched_address import WatchedAddressMoved
from tests.unit.rules.builders import (
    MAX_UINT256,
    OTHER,
    SEIZED,
    T0,
    USDT,
    activity_of,
    addr,
    entry,
    hop,
    mark,
    transfer,
)

H = 1_000  # horizon in these tests


def test_first_transfer_sets_times_movement_and_balance() -> None:
    t = transfer(SEIZED, OTHER, amount=7, at=T0)
    a = update_activity(None, t, "in", H, 10)
    assert (a.first_seen, a.last_active, a.last_out) == (T0, T0, None)
    assert a.balances == {"native": 7} and a.outflows == ()
    (m,) = a.inflows
    assert (m.counterparty, m.amount, m.transfer_id, m.asset_key) == (SEIZED, 7, t.id, "native")
    b = update_activity(None, t, "out", H, 10)
    assert (b.last_out, b.balances, b.outflows[0].counterparty) == (T0, {"native": -7}, OTHER)
    assert b.known_balance("native") == 0


def test_redelivered_transfer_is_not_counted_twice() -> None:
    t1, t2 = transfer(OTHER, SEIZED, 5, at=T0), transfer(SEIZED, OTHER, 2, at=T0 + 1)
    a = update_activity(update_activity(None, t1, "in", H, 10), t2, "out", H, 10)
    assert update_activity(a, t1, "in", H, 10) == a
    assert update_activity(a, t2, "out", H, 10) == a
    assert a.balances == {"native": 3}


def test_self_transfer_nets_to_zero_in_either_order() -> None:
    t = transfer(SEIZED, SEIZED, 9, at=T0)
    start = update_activity(None, transfer(OTHER, SEIZED, 10, at=T0 - 1), "in", H, 10)
    out_in = update_activity(update_activity(start, t, "out", H, 10), t, "in", H, 10)
    in_out = update_activity(update_activity(start, t, "in", H, 10), t, "out", H, 10)
    assert out_in.balances == in_out.balances == {"native": 10}


def test_pruning_by_block_time_keeps_exactly_horizon_and_drops_one_more() -> None:
    old = transfer(OTHER, SEIZED, 1, at=T0)
    a = update_activity(None, old, "in", H, 10)
    at_edge = update_activity(a, transfer(OTHER, SEIZED, 1, at=T0 + H), "in", H, 10)
    assert [m.block_time for m in at_edge.inflows] == [T0, T0 + H]
    past_edge = update_activity(a, transfer(OTHER, SEIZED, 1, at=T0 + H + 1), "in", H, 10)
    assert [m.block_time for m in past_edge.inflows] == [T0 + H + 1]
    assert past_edge.balances == {"native": 2}  # balances are not windowed
    assert past_edge.first_seen == T0 and past_edge.last_active == T0 + H + 1


def test_an_outflow_advances_pruning_of_inflows_too() -> None:
    a = activity_of(SEIZED, [transfer(OTHER, SEIZED, 1, at=T0),
                             transfer(SEIZED, OTHER, 1, at=T0 + H + 1)], horizon=H)
    assert a is not None and a.inflows == () and len(a.outflows) == 1


def test_transfer_older_than_horizon_is_a_redelivery_and_ignored() -> None:
    a = update_activity(None, transfer(OTHER, SEIZED, 1, at=T0 + H + 1), "in", H, 10)
    assert update_activity(a, transfer(OTHER, SEIZED, 1, at=T0), "in", H, 10) == a
    late_ok = update_activity(a, transfer(OTHER, SEIZED, 1, at=T0 + 1), "in", H, 10)
    assert len(late_ok.inflows) == 2 and late_ok.last_active == T0 + H + 1


def test_movements_and_balances_are_capped() -> None:
    a = activity_of(SEIZED, [transfer(addr(0x100 + i), SEIZED, i + 1, at=T0 + i)
                             for i in range(5)], max_movements=3)
    assert a is not None and [m.amount for m in a.inflows] == [3, 4, 5]
    tokens = [msgspec.structs.replace(USDT, address=addr(0x200 + i)) for i in range(4)]
    b = activity_of(SEIZED, [transfer(OTHER, SEIZED, 1, at=T0 + i, asset=tok)
                             for i, tok in enumerate(tokens)], max_movements=2)
    assert b is not None and list(b.balances) == [addr(0x202), addr(0x203)]


def test_amounts_stay_exact_big_ints_through_json() -> None:
    t = transfer(OTHER, SEIZED, MAX_UINT256, at=T0)
    a = update_activity(None, t, "in", H, 10)
    assert a.balances["native"] == MAX_UINT256 and isinstance(a.balances["native"], int)
    decoded = ACTIVITY_DECODER.decode(msgspec.json.encode(a))
    assert decoded == a and type(decoded.inflows[0].amount) is int
    assert b"115792089237316195423570985008687907853269984665640564039457584007913129639935" in (
        msgspec.json.encode(a))


def test_bad_arguments_raise() -> None:
    t = transfer()
    with pytest.raises(ValueError, match="side"):
        update_activity(None, t, "self", H, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_movements"):
        update_activity(None, t, "in", H, 0)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2_000), st.integers(0, 2**256 - 1),
                          st.booleans()), max_size=25),
       st.integers(1, 8))
def test_redelivering_every_transfer_changes_nothing(steps: list[tuple[int, int, int, bool]],
                                                     cap: int) -> None:
    transfers = []
    at = T0
    for peer, gap, amount, incoming in steps:
        at += gap
        frm, to = (addr(0x100 + peer), SEIZED) if incoming else (SEIZED, addr(0x100 + peer))
        transfers.append(transfer(frm, to, amount, at=at))
    once = activity_of(SEIZED, transfers, horizon=H, max_movements=cap)
    twice = activity_of(SEIZED, [t for t in transfers for _ in (0, 1)], horizon=H,
                        max_movements=cap)
    assert once == twice
    if once is not None:
        assert len(once.inflows) <= cap and len(once.outflows) <= cap


def test_taint_mark_path_encodes_as_arrays_and_round_trips() -> None:
    m = mark([hop(SEIZED, OTHER, MAX_UINT256, 5)])
    raw = msgspec.json.encode((m,))
    assert b'"path":[["0x' in raw
    assert TAINT_DECODER.decode(raw) == (m,)
    assert (m.origin, m.hop, m.path[0].amount) == (SEIZED, 1, MAX_UINT256)


def test_rule_context_extends_screening_context() -> None:
    t = transfer()
    rc = RuleContext(from_entries=(entry(),), from_labels=frozenset({"mixer"}))
    assert isinstance(rc, ScreeningContext)
    assert [f.direction for f in WatchedAddressMoved().evaluate(t, rc)] == ["out"]
    assert as_rule_context(rc) is rc
    plain = as_rule_context(ScreeningContext(to_entries=(entry(OTHER),)))
    assert plain.to_entries == (entry(OTHER),) and plain.from_activity is None
    assert plain.labels("in") == frozenset() and plain.taint("out") == ()


def test_fresh_means_nothing_observed() -> None:
    assert is_fresh(None) and is_fresh(AddressActivity())
    assert not is_fresh(AddressActivity(first_seen=0))
    assert not is_fresh(activity_of(SEIZED, [transfer()]))


def _seen(a: AddressActivity | None) -> tuple:
    """The fields rules read (balances compared as values, not key order)."""
    if a is None:
        return ()
    return (a.first_seen, a.last_active, a.last_out, a.inflows, a.outflows, a.balances)


def test_rewinding_the_latest_block_restores_what_rules_read() -> None:
    earlier = [transfer(OTHER, SEIZED, 10, at=T0, number=1),
               transfer(SEIZED, OTHER, 3, at=T0 + 5, number=2)]
    block3 = [transfer(OTHER, SEIZED, 7, at=T0 + 9, number=3),
              transfer(SEIZED, addr(0x101), 4, at=T0 + 9, number=3)]
    before = activity_of(SEIZED, earlier, horizon=H)
    after = activity_of(SEIZED, [*earlier, *block3], horizon=H)
    rewound = rewind_block(after, 3)
    assert _seen(rewound) == _seen(before)
    assert rewind_block(rewound, 3) == rewound  # idempotent
    reapplied = rewound
    for t in block3:
        reapplied = update_activity(reapplied, t, "in" if t.to_address == SEIZED else "out",
                                    H, 1_000)
    assert _seen(reapplied) == _seen(after)


def test_rewinding_a_block_not_yet_applied_changes_nothing() -> None:
    a = activity_of(SEIZED, [transfer(OTHER, SEIZED, 10, at=T0, number=1)])
    assert rewind_block(a, 2) == a and rewind_block(None, 2) is None


def test_rewinding_the_only_block_leaves_a_fresh_address() -> None:
    a = activity_of(SEIZED, [transfer(OTHER, SEIZED, 10, at=T0, number=1)])
    assert is_fresh(rewind_block(a, 1))


@given(st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 10**30), st.booleans()),
                         min_size=1, max_size=4), min_size=1, max_size=8),
       st.integers(0, 400))
def test_rewind_of_the_last_block_equals_the_state_before_it(
        blocks: list[list[tuple[int, int, bool]]], gap: int) -> None:
    transfers = []
    for number, block in enumerate(blocks, start=1):
        for peer, amount, incoming in block:
            frm, to = (addr(0x100 + peer), SEIZED) if incoming else (SEIZED, addr(0x100 + peer))
            transfers.append(transfer(frm, to, amount, at=T0 + number * gap, number=number))
    last = len(blocks)
    before = activity_of(SEIZED, [t for t in transfers if t.block_number < last], horizon=H)
    after = activity_of(SEIZED, transfers, horizon=H)
    rewound = rewind_block(after, last)
    if before is None:
        assert is_fresh(rewound)
    else:
        assert rewound is not None
        kept = {m.transfer_id for m in (*rewound.inflows, *rewound.outflows)}
        assert rewound.inflows == tuple(m for m in before.inflows if m.transfer_id in kept)
        assert rewound.outflows == tuple(m for m in before.outflows if m.transfer_id in kept)
        assert (rewound.first_seen, rewound.last_active, rewound.last_out, rewound.balances) == (
            before.first_seen, before.last_active, before.last_out, before.balances)
