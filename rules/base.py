"""The rule model: typologies as small classes with a pure ``evaluate``.

A rule reads a transfer and the state the agent hands to it and returns findings. It does no
I/O, no Kafka and no table writes, so every rule is testable with plain values and replays are
deterministic. The agent turns findings into alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from monitor.errors import RuleError
from monitor.records import Approval, Direction, Severity, Transfer, WatchEntry


@dataclass(frozen=True, slots=True)
class Finding:
    """What a rule found about one transfer, for one watch entry (the case it concerns)."""

    rule: str
    severity: Severity
    watch: WatchEntry
    direction: Direction
    title: str
    evidence: Mapping[str, Any] = field(default_factory=dict)  # JSON-ready, amounts as strings


@dataclass(frozen=True, slots=True)
class ScreeningContext:
    """State handed to rules: the watch entries that match the transfer's endpoints."""

    from_entries: Sequence[WatchEntry] = ()
    to_entries: Sequence[WatchEntry] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class Rule:
    """Base class of every typology.

    Subclasses declare ``name``, a default ``severity`` and the parameters they accept, and
    implement :meth:`evaluate`. Example::

        from rules.base import Finding, Rule, ScreeningContext, register

        @register
        class LargeValue(Rule):
            name = "large-value"
            severity = "medium"
            params_schema = {"min_amount": int}

            def evaluate(self, transfer, context):
                if transfer.amount < self.params["min_amount"]:
                    return []
                return [Finding(self.name, self.severity, entry, "out", "large transfer")
                        for entry in context.from_entries]
    """

    name: ClassVar[str] = ""
    severity: Severity = "medium"
    params_schema: ClassVar[Mapping[str, type]] = {}
    # Also evaluated on zero-value calls (``Block.interactions``), e.g. sanctions screening.
    screens_interactions: ClassVar[bool] = False
    # Also evaluated on ERC-20 approvals (``Block.approvals``) through :meth:`evaluate_approval`.
    screens_approvals: ClassVar[bool] = False

    def __init__(self, severity: Severity | None = None, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params_schema))
        if unknown:
            raise RuleError(f"unknown parameter(s) {', '.join(unknown)}", rule=self.name)
        for key, value in params.items():
            expected = self.params_schema[key]
            if not isinstance(value, expected) or isinstance(value, bool) is not (expected is bool):
                raise RuleError(f"parameter {key!r} must be {expected.__name__}, got {value!r}",
                                rule=self.name)
        self.params: dict[str, Any] = dict(params)
        if severity is not None:
            self.severity = severity

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """Return the findings for ``transfer``; must be pure and deterministic."""
        raise NotImplementedError

    def evaluate_approval(self, approval: Approval, context: ScreeningContext) -> list[Finding]:
        """Return the findings for an approval (owner as ``from``, spender as ``to``); pure."""
        return []


RULES: dict[str, type[Rule]] = {}


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator adding a rule to the registry under its ``name``."""
    if not cls.name:
        raise RuleError(f"{cls.__qualname__} has no name")
    if cls.name in RULES and RULES[cls.name] is not cls:
        raise RuleError("two rules share a name", rule=cls.name)
    RULES[cls.name] = cls
    return cls


def build_rule(name: str, severity: Severity | None, params: Mapping[str, Any]) -> Rule:
    """Instantiate a registered rule, or raise RuleError listing the known names."""
    factory: Callable[..., Rule] | None = RULES.get(name)
    if factory is None:
        known = ", ".join(sorted(RULES))
        raise RuleError(f"unknown rule {name!r}; known rules: {known}")
    return factory(severity=severity, **params)
