"""Typology rules: importing this package registers every built-in rule."""

from rules import typologies, watched_address
from rules.base import RULES, Finding, Rule, ScreeningContext, build_rule, register

__all__ = ["RULES", "Finding", "Rule", "ScreeningContext", "build_rule", "register",
           "typologies", "watched_address"]
