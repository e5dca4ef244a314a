"""Per-sink alert filters: severity, rule, case and chain lists, where an empty list means all.

An alert passes a filter when it matches every non-empty list (AND across lists, OR within
one list). Filters work on fields every alert has, so they never raise on a valid alert:

>>> from types import SimpleNamespace as NS
>>> unit = AlertFilter(severities=frozenset({"high", "critical"}), cases=frozenset({"C-1"}))
>>> unit.matches(NS(severity="high", rule="r", chain="ethereum", watch=NS(case_id="C-1")))
True
>>> unit.matches(NS(severity="low", rule="r", chain="ethereum", watch=NS(case_id="C-1")))
False
>>> AlertFilter().matches(NS(severity="info"))  # the match-all filter reads nothing
True
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.records import Alert
from monitor.settings import SinkFilters


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a sink takes; each empty set means "any"."""

    severities: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()
    cases: frozenset[str] = frozenset()
    chains: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, filters: SinkFilters) -> AlertFilter:
        """Build from the ``filters:`` mapping of a sink's configuration."""
        return cls(severities=frozenset(filters.severities), rules=frozenset(filters.rules),
                   cases=frozenset(filters.cases), chains=frozenset(filters.chains))

    @property
    def is_match_all(self) -> bool:
        """True when no list restricts anything."""
        return not (self.severities or self.rules or self.cases or self.chains)

    def matches(self, alert: Alert) -> bool:
        """Whether ``alert`` matches every non-empty list of this filter."""
        if self.severities and alert.severity not in self.severities:
            return False
        if self.rules and alert.rule not in self.rules:
            return False
        if self.chains and alert.chain not in self.chains:
            return False
        return not self.cases or alert.watch.case_id in self.cases

    def describe(self) -> str:
        """A short text for logs and ``repr``, e.g. ``severities=high,critical cases=C-1``."""
        parts = [f"{name}={','.join(sorted(values))}"
                 for name, values in (("severities", self.severities), ("rules", self.rules),
                                      ("cases", self.cases), ("chains", self.chains))
                 if values]
        return " ".join(parts) or "all"


MATCH_ALL = AlertFilter()
"""The filter of a sink configured without ``filters:``."""
