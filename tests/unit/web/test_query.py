"""Query strings and cursors: valid ones parse, anything else is a QueryError naming the param."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.web.cursors import (
    encode_page_cursor,
    encode_stream_cursor,
    parse_page_cursor,
    parse_stream_cursor,
)
from monitor.web.query import LIST_PARAMS, QueryError, parse_alert_query


@pytest.mark.parametrize(("query", "param"), [
    ({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"limit": "\uff11"}, "limit"), ({"since": "yesterday"}, "since"), ({"until": "nan"}, "until"),
    ({"since": "-1"}, "since"), ({"since": "10", "until": "5"}, "until"),
    ({"cursor": "nope"}, "cursor"), ({"severity": "urgent"}, "severity"),
    ({"status": "closed"}, "status"), ({"time_field": "mined_at"}, "time_field"),
    ({"rule": "a,,b"}, "rule"), ({"colour": "red"}, "colour"),
])
def test_bad_parameters_are_named(query: dict[str, str], param: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_alert_query(query)
    assert info.value.param == param
    assert str(info.value).startswith(f"{param}: ")


def test_a_full_query() -> None:
    q = parse_alert_query({"case_id": "C-1,C-2", "severity": "high,critical",
                           "status": "confirmed,open", "since": "1700000000", "limit": "500",
                           "time_field": "block_time"})
    assert q.filter.case_ids == {"C-1", "C-2"} and q.limit == 500
    assert q.filter.statuses == {"confirmed"} and q.filter.dispositions == {"open"}
    assert q.filter.since == 1_700_000_000 and q.filter.time_field == "block_time"


@given(st.dictionaries(st.sampled_from([*sorted(LIST_PARAMS), "x", "limit"]),
                       st.text(max_size=80), max_size=6))
def test_any_query_string_parses_or_names_a_parameter(query: dict[str, str]) -> None:
    try:
        parse_alert_query(query)
    except QueryError as exc:
        assert exc.param in query


@given(st.floats(min_value=0, max_value=2e9), st.text("0123456789abcdef", min_size=1,
                                                       max_size=64))
def test_page_cursor_round_trip(at: float, alert_id: str) -> None:
    assert parse_page_cursor(encode_page_cursor((at, alert_id))) == (at, alert_id)


@given(st.dictionaries(st.builds(lambda k, p: f"{k}{p}", st.sampled_from("au"),
                                 st.integers(0, 99)), st.integers(0, 2**62), max_size=5))
def test_stream_cursor_round_trip(positions: dict[str, int]) -> None:
    assert parse_stream_cursor(encode_stream_cursor(positions)) == positions


@given(st.text(max_size=200))
def test_any_cursor_text_parses_or_raises_value_error(text: str) -> None:
    for parse in (parse_page_cursor, parse_stream_cursor):
        with contextlib.suppress(ValueError):
            parse(text)
