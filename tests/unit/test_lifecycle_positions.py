"""Applied positions: the highest applied offset, whatever gaps transaction markers leave."""

from __future__ import annotations

from monitor.lifecycle import LifecycleState, applied_through, is_applied, mark_applied


def test_in_order_positions_move_the_mark() -> None:
    state = LifecycleState()
    for p in (5, 6, 7):
        state = mark_applied(state, p)
    assert (state.position, state.ahead) == (7, ())
    assert is_applied(state, 6) and not is_applied(state, 8)


def test_offsets_taken_by_transaction_markers_leave_no_state_behind() -> None:
    # a connector commits a transaction per batch: every sixth offset is a commit marker
    state = LifecycleState()
    for p in (p for p in range(600) if p % 6 != 5):
        state = mark_applied(state, p)
    assert (state.position, state.ahead) == (598, ())
    assert is_applied(state, 597) and not is_applied(state, 599)


def test_a_state_of_an_earlier_version_keeps_its_out_of_order_positions() -> None:
    legacy = LifecycleState(position=1326, ahead=(1353, 1400))
    assert is_applied(legacy, 1353) and not is_applied(legacy, 1327)
    assert applied_through(legacy, 1327) == (1327, (1353, 1400))
    assert applied_through(legacy, 1353) == (1353, (1400,))
    assert applied_through(legacy, 1400) == (1400, ())
