"""FATF-style typologies as pure rules; importing this package registers all of them.

Every rule reads the transfer and a :class:`rules.state.RuleContext` (the state *before* the
transfer) and returns findings; windows are in block time. Example::

    >>> from monitor.records import Asset, Transfer, WatchEntry
    >>> from rules.base import build_rule
    >>> from rules.state import RuleContext
    >>> seized = "0x" + "11" * 20
    >>> t = Transfer(id="devnet:0xaa:tx", chain="devnet", block_number=1, block_hash="0xbb",
    ...              block_time=1_000, tx_hash="0xaa", tx_index=0, kind="native",
    ...              from_address=seized, to_address="0x" + "22" * 20,
    ...              asset=Asset(kind="native"), amount=10**19)
    >>> ctx = RuleContext(from_entries=(WatchEntry(chain="devnet", address=seized,
    ...                                            case_id="C-1"),))
    >>> [(f.rule, f.direction, f.watch.case_id)
    ...  for f in build_rule("large-value", None, {}).evaluate(t, ctx)]
    [('large-value', 'out', 'C-1')]
"""

from __future__ import annotations

from collections.abc import Iterable

from rules.base import Rule
from rules.typologies import (
    approval,
    balance_drain,
    bridge_entry,
    dormancy_reactivation,
    exchange_deposit,
    fan_in,
    fan_out,
    large_value,
    mixer_deposit,
    mixer_withdrawal,
    pass_through,
    peel_chain,
    sanctioned,
    structuring,
)
from rules.typologies.common import TypologyRule

__all__ = ["TypologyRule", "approval", "balance_drain", "bridge_entry", "dormancy_reactivation",
           "exchange_deposit", "fan_in", "fan_out", "large_value", "mixer_deposit",
           "mixer_withdrawal", "pass_through", "peel_chain", "required_horizon", "sanctioned",
           "structuring"]


def required_horizon(rules: Iterable[Rule]) -> int:
    """Block-time horizon the agent must retain activity for: the largest over the rules."""
    return max((r.horizon_seconds for r in rules if isinstance(r, TypologyRule)), default=0)
