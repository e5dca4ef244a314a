"""Parse and validate the query string of ``GET /api/v1/alerts`` (and the stream's filters).

Every problem raises :class:`QueryError` naming the parameter. Filters take one value or a
comma-separated list (``severity=high,critical``); ``status`` takes lifecycle statuses
(provisional, confirmed, retracted) and analyst dispositions (open, acknowledged, resolved,
false_positive) -- an alert must match one of each kind given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from monitor.sinks.filters import AlertFilter as SinkFilter
from monitor.web.audit import DISPOSITIONS
from monitor.web.cursors import parse_page_cursor

LIFECYCLE: Final[frozenset[str]] = frozenset({"provisional", "confirmed", "retracted"})
SEVERITIES: Final[frozenset[str]] = frozenset({"info", "low", "medium", "high", "critical"})
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 500
MAX_VALUE: Final = 256
TimeField = Literal["detected_at", "block_time"]
FILTER_PARAMS: Final = ("case_id", "rule", "severity", "chain", "status")
LIST_PARAMS: Final = frozenset({*FILTER_PARAMS, "since", "until", "time_field", "limit",
                                "cursor"})
STREAM_PARAMS: Final = frozenset({"case_id", "rule", "severity", "chain", "since_cursor"})


class QueryError(ValueError):
    """A query parameter is invalid; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts match: each non-empty set must contain the alert's value."""

    case_ids: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()
    severities: frozenset[str] = frozenset()
    chains: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()  # lifecycle statuses
    dispositions: frozenset[str] = frozenset()
    since: float | None = None  # inclusive
    until: float | None = None  # exclusive
    time_field: TimeField = "detected_at"
    # The four sets a sink's filter has too, checked by that filter (derived, built once).
    fields: SinkFilter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", SinkFilter(
            severities=self.severities, rules=self.rules, cases=self.case_ids,
            chains=self.chains))


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """A filter plus the page wanted."""

    filter: AlertFilter
    limit: int = DEFAULT_LIMIT
    after: tuple[float, str] | None = None  # page cursor: sort key of the last alert seen


def _values(query: Mapping[str, str], name: str) -> frozenset[str]:
    raw = query.get(name)
    if raw is None:
        return frozenset()
    if len(raw) > 16 * MAX_VALUE:
        raise QueryError(name, "too long")
    values = [v.strip() for v in raw.split(",")]
    if not all(values):
        raise QueryError(name, "empty value")
    for value in values:
        if len(value) > MAX_VALUE or not value.isprintable():
            raise QueryError(name, f"values must be 1-{MAX_VALUE} printable characters")
    return frozenset(values)


def _time(query: Mapping[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise QueryError(name, f"must be unix seconds, got {raw[:40]!r}") from None
    if not math.isfinite(value) or value < 0 or value > 2**40:
        raise QueryError(name, f"must be unix seconds, got {raw[:40]!r}")
    return value


def check_known(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    """Refuse parameters the endpoint does not take (a typo would silently match everything)."""
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise QueryError(unknown[0][:40],
                         f"unknown parameter; allowed: {', '.join(sorted(allowed))}")


def parse_filter(query: Mapping[str, str]) -> AlertFilter:
    """The filter part of a query string."""
    severities = _values(query, "severity")
    bad = sorted(severities - SEVERITIES)
    if bad:
        raise QueryError("severity", f"unknown severity {bad[0][:40]!r}; use "
                                     f"{', '.join(sorted(SEVERITIES))}")
    statuses = _values(query, "status")
    bad = sorted(statuses - LIFECYCLE - set(DISPOSITIONS))
    if bad:
        raise QueryError("status", f"unknown status {bad[0][:40]!r}; use "
                                   f"{', '.join(sorted(LIFECYCLE | set(DISPOSITIONS)))}")
    time_field = query.get("time_field", "detected_at")
    if time_field not in ("detected_at", "block_time"):
        raise QueryError("time_field", "must be detected_at or block_time")
    since, until = _time(query, "since"), _time(query, "until")
    if since is not None and until is not None and until < since:
        raise QueryError("until", "must not be before since")
    return AlertFilter(
        case_ids=_values(query, "case_id"), rules=_values(query, "rule"),
        severities=severities, chains=_values(query, "chain"),
        statuses=statuses & LIFECYCLE, dispositions=statuses - LIFECYCLE,
        since=since, until=until,
        time_field="block_time" if time_field == "block_time" else "detected_at")


def parse_limit(query: Mapping[str, str]) -> int:
    """``limit``: 1..500, default 100."""
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= MAX_LIMIT:
        raise QueryError("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {raw[:40]!r}")
    return int(raw)


def parse_alert_query(query: Mapping[str, str]) -> AlertQuery:
    """Validate the whole query string of the alert list."""
    check_known(query, LIST_PARAMS)
    after = None
    if "cursor" in query:
        try:
            after = parse_page_cursor(query["cursor"])
        except ValueError as exc:
            raise QueryError("cursor", str(exc)) from None
    return AlertQuery(filter=parse_filter(query), limit=parse_limit(query), after=after)
