"""The alert index: latest event per id, filters, stable pages, bound, audit trail, changes."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from monitor.web.audit import new_record
from monitor.web.cursors import parse_stream_cursor
from monitor.web.index import AlertIndex
from monitor.web.query import AlertQuery, parse_alert_query
from tests.unit.web.builders import make_alert


def ids(items) -> list[str]:
    return [i.alert.id for i in items]


def test_latest_event_per_id_wins_and_late_older_events_are_ignored() -> None:
    index = AlertIndex()
    first = make_alert(1, status="provisional")
    confirmed = msgspec.structs.replace(first, status="confirmed", revision=1,
                                        detected_at=first.detected_at + 30)
    index.apply_alert(first, 0, 0)
    index.apply_alert(confirmed, 0, 1)
    assert index.apply_alert(first, 1, 0) is None  # read late from another partition
    item = index.get(first.id)
    assert item is not None and item.alert.status == "confirmed"
    assert item.first_detected_at == first.detected_at  # sort key kept from the first event
    assert len(index) == 1
    assert index.positions == {"a0": 2, "a1": 1}


def test_filters_and_newest_first() -> None:
    index = AlertIndex()
    alerts = [make_alert(1, severity="high"), make_alert(2, severity="critical", rule="x"),
              make_alert(3, case_id="CASE-2"), make_alert(4, status="retracted")]
    for offset, alert in enumerate(alerts):
        index.apply_alert(alert, 0, offset)
    page, cursor = index.query(parse_alert_query({}))
    assert ids(page) == [a.id for a in reversed(alerts)] and cursor is None
    assert ids(index.query(parse_alert_query({"severity": "critical"}))[0]) == [alerts[1].id]
    assert ids(index.query(parse_alert_query({"rule": "x"}))[0]) == [alerts[1].id]
    assert ids(index.query(parse_alert_query({"case_id": "CASE-2"}))[0]) == [alerts[2].id]
    assert ids(index.query(parse_alert_query({"status": "retracted"}))[0]) == [alerts[3].id]
    assert len(index.query(parse_alert_query({"status": "open"}))[0]) == 4
    assert ids(index.query(parse_alert_query({"since": str(alerts[2].detected_at)}))[0]) == \
        [alerts[3].id, alerts[2].id]
    assert ids(index.query(parse_alert_query(
        {"time_field": "block_time", "until": str(alerts[1].block_time)}))[0]) == [alerts[0].id]


def test_pages_are_stable_while_new_alerts_arrive() -> None:
    index = AlertIndex()
    for n in range(1, 11):
        index.apply_alert(make_alert(n), 0, n)
    first, cursor = index.query(AlertQuery(parse_alert_query({}).filter, limit=4))
    assert len(first) == 4 and cursor is not None
    index.apply_alert(make_alert(11), 0, 11)  # newer: must not shift the next page
    second, cursor2 = index.query(parse_alert_query({"limit": "4", "cursor": cursor}))
    third, cursor3 = index.query(parse_alert_query({"limit": "4", "cursor": cursor2}))
    assert cursor3 is None
    seen = ids(first) + ids(second) + ids(third)
    assert seen == [make_alert(n).id for n in range(10, 0, -1)]


def test_memory_is_bounded_oldest_dropped() -> None:
    index = AlertIndex(max_alerts=3)
    for n in range(1, 6):
        index.apply_alert(make_alert(n), 0, n)
    assert len(index) == 3 and index.evicted == 2
    assert index.get(make_alert(1).id) is None and index.get(make_alert(5).id) is not None
    assert index.case_alerts("CASE-1")[-1].alert.id == make_alert(3).id


def test_audit_trail_gives_the_disposition_and_waits_for_a_late_alert() -> None:
    index = AlertIndex()
    alert = make_alert(1)
    ack = new_record(alert.id, "acknowledge", "looking", "ana", "read-write", 1.0)
    index.apply_audit(ack, 0, 0)  # audit replayed before the alert arrived
    index.apply_alert(alert, 0, 0)
    item = index.get(alert.id)
    assert item is not None and item.disposition == "acknowledged"
    fp = new_record(alert.id, "false-positive", "known exchange sweep", "bo", "read-write", 2.0)
    index.apply_audit(fp, 0, 1)
    index.apply_audit(fp, 0, 1)  # read twice: kept once
    view = item.view()
    assert view["disposition"] == "false_positive"
    assert [r["actor"] for r in view["audit"]] == ["ana", "bo"]
    assert ids(index.query(parse_alert_query({"status": "false_positive"}))[0]) == [alert.id]
    assert ids(index.query(parse_alert_query({"status": "open"}))[0]) == []


def test_changes_since_a_cursor_replay_only_what_was_missed() -> None:
    index = AlertIndex()
    index.apply_alert(make_alert(1), 0, 0)
    seen = dict(index.positions)
    index.apply_alert(make_alert(2), 0, 1)
    index.apply_audit(new_record(make_alert(1).id, "resolve", "", "ana", "read-write", 3.0),
                      0, 0)
    changes = index.changes_since(seen)
    assert [(c.kind, c.alert_id) for c in changes] == [("alert", make_alert(2).id),
                                                       ("audit", make_alert(1).id)]
    assert changes[-1].positions == {"a0": 2, "u0": 1}
    assert index.changes_since(changes[-1].positions) == []
    assert len(index.changes_since({})) == 3


async def test_subscribers_get_changes_and_overflow_instead_of_blocking() -> None:
    index = AlertIndex()
    sub = index.subscribe(size=2)
    index.apply_alert(make_alert(1), 0, 0)
    change = await asyncio.wait_for(sub.queue.get(), 1)
    assert change is not None and change.kind == "alert"
    for n in range(2, 6):
        index.apply_alert(make_alert(n), 0, n)
    assert sub.overflowed
    later = index.subscribe()
    index.close()
    assert await asyncio.wait_for(later.queue.get(), 1) is None


async def test_wait_for_returns_once_the_offset_is_applied() -> None:
    index = AlertIndex()
    waiter = asyncio.create_task(index.wait_for("u0", 0, 5))
    await asyncio.sleep(0)
    index.apply_audit(new_record("x", "resolve", "", "a", "read-write", 1.0), 0, 0)
    assert await waiter
    assert not await index.wait_for("u0", 5, 0.01)


@pytest.mark.parametrize("value", ["", "abc", "czE=", "s1|a0=1"])
def test_bad_stream_cursors_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_stream_cursor(value)
