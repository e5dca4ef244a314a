"""The typologies register themselves with complete defaults and report their horizon."""

from __future__ import annotations

import pytest

import rules.typologies
from monitor.errors import RuleError
from rules.base import RULES, build_rule
from rules.typologies import TypologyRule, required_horizon

NAMES = ["large-value", "fan-out", "fan-in", "structuring", "pass-through",
         "dormancy-reactivation", "balance-drain", "peel-chain", "mixer-deposit",
         "mixer-withdrawal-to-fresh", "bridge-entry", "exchange-deposit"]


@pytest.mark.parametrize("name", NAMES)
def test_every_typology_builds_with_defaults(name: str) -> None:
    cls = RULES[name]
    assert issubclass(cls, TypologyRule) and cls.__doc__ and "FATF" in cls.__doc__
    assert set(cls.params_defaults) == set(cls.params_schema)
    rule = build_rule(name, None, {})
    assert rule.params.keys() == cls.params_schema.keys()


def test_unknown_parameter_names_the_rule() -> None:
    with pytest.raises(RuleError, match=r"unknown parameter\(s\) windw.*rule=fan-out"):
        build_rule("fan-out", None, {"windw": 3})


def test_defaults_are_not_shared_between_instances() -> None:
    a = build_rule("large-value", None, {})
    a.params["thresholds"]["native"] = 1
    assert build_rule("large-value", None, {}).params["thresholds"]["native"] == 10**19


def test_required_horizon_is_the_largest_window() -> None:
    built = [build_rule("fan-in", None, {"window_seconds": 50}),
             build_rule("balance-drain", None, {"window_seconds": 700}),
             build_rule("watched-address", None, {})]
    assert required_horizon(built) == 700
    assert required_horizon([]) == 0
    assert rules.typologies.__doc__
