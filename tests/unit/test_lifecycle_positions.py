"""Applied positions survive out-of-order delivery: nothing after a gap is dropped as a replay."""

from __future__ import annotations

from monitor.lifecycle import (
    MAX_AHEAD,
    LifecycleState,
    applied_through,
    is_applied,
    mark_applied,
)


def test_in_order_positions_move_the_mark() -> None:
    state = LifecycleState()
    for p in (5, 6, 7):
        state = mark_applied(state, p)
    assert (state.position, state.ahead) == (7, ())
    assert is_applied(state, 6) and not is_applied(state, 8)


def test_an_early_later_event_does_not_swallow_the_ones_before_it() -> None:
    state = mark_applied(LifecycleState(), 1326)
    state = mark_applied(state, 1353)  # faust hands over a prefetched event first
    assert (state.position, state.ahead) == (1326, (1353,))
    assert not is_applied(state, 1327)  # still to be screened, not a replay
    for p in range(1327, 1353):
        state = mark_applied(state, p)
    assert (state.position, state.ahead) == (1353, ())
    assert is_applied(state, 1353)


def test_a_gap_that_never_fills_is_bounded() -> None:
    state = mark_applied(LifecycleState(), 0)
    mark, ahead = state.position, state.ahead
    for p in range(2, MAX_AHEAD + 3):
        mark, ahead = applied_through(LifecycleState(position=mark, ahead=ahead), p)
    assert len(ahead) == 0 and mark == MAX_AHEAD + 2
