"""Rule ``peel-chain``: tainted funds hop through fresh addresses, a little peeled off each time."""

from __future__ import annotations

from monitor.records import TaintHop, TaintMark, Transfer
from rules.base import Finding, ScreeningContext, register
from rules.state import as_rule_context, asset_key, is_fresh
from rules.typologies.common import BPS, TypologyRule, finding, path_evidence, side_cases


@register
class PeelChain(TypologyRule):
    """The transfer is at least the ``min_hops``-th consecutive peel hop on a taint path.

    FATF red flag (Virtual Assets Red Flag Indicators, 2020, "anonymity" / layering): a
    "peel chain", where a large amount moves through a series of new addresses and at each hop
    a small part is peeled off (to an exchange, a mixer, a payee) while most moves on.

    Definitions, with ``p = min_forward_bps / 10000``. A hop ``h`` that follows a hop ``g``
    (``h.from_address == g.to_address``) is a *peel hop* when ``p * g.amount <= h.amount <
    g.amount`` (most forwarded, something peeled or kept) and ``h.to_address`` is fresh. For
    the transfer ``t`` from tainted ``A`` to ``R``, evaluated per taint mark ``M`` of ``A`` in
    the same asset whose path ends at ``A``: ``t`` follows ``M.path[-1]`` and ``R`` is fresh
    when chainwatch has seen no activity of ``R`` and ``R`` is not on the path. Earlier hops
    ``path[i]`` (``i >= 1``) follow ``path[i-1]`` and count as fresh when their receiver does
    not occur earlier on the path (their activity at the time is not in the mark). The chain
    length is the number of consecutive peel hops ending with ``t``; the rule fires when it
    is at least ``min_hops`` (so every further hop of a running chain is reported, each with
    its new address). ``path[0]`` (out of the origin) is never a peel hop. The finding carries
    the full path from the origin, ``t`` included, as evidence.
    """

    name = "peel-chain"
    severity = "high"
    params_schema = {"min_hops": int, "min_forward_bps": int}
    params_defaults = {"min_hops": 3, "min_forward_bps": 8000}

    def _peels(self, previous: TaintHop, amount: int) -> bool:
        return self.params["min_forward_bps"] * previous.amount <= amount * BPS and (
            amount < previous.amount)

    def chain_length(self, mark: TaintMark, transfer: Transfer, receiver_fresh: bool) -> int:
        """Count the consecutive peel hops ending with ``transfer`` (0 if it is not one)."""
        path = mark.path
        if not path or path[-1].to_address != transfer.from_address:
            return 0
        on_path = {path[0].from_address} | {h.to_address for h in path}
        if not receiver_fresh or transfer.to_address in on_path:
            return 0
        if not self._peels(path[-1], transfer.amount):
            return 0
        length = 1
        for i in range(len(path) - 1, 0, -1):
            hop, previous = path[i], path[i - 1]
            earlier = {path[0].from_address} | {h.to_address for h in path[:i]}
            if (hop.from_address != previous.to_address or hop.to_address in earlier
                    or not self._peels(previous, hop.amount)):
                break
            length += 1
        return length

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        """One finding per case whose taint path this transfer extends as a peel chain."""
        ctx = as_rule_context(context)
        key = asset_key(transfer.asset)
        fresh = is_fresh(ctx.to_activity)
        findings: list[Finding] = []
        for entry, mark in side_cases(transfer, ctx, "out"):
            if mark is None or mark.asset_key != key:
                continue
            length = self.chain_length(mark, transfer, fresh)
            if length < self.params["min_hops"]:
                continue
            evidence = {**path_evidence(transfer, entry, mark), "peel_hops": length}
            findings.append(finding(self, entry, "out",
                                    f"peel chain: hop {length} forwards {transfer.amount} to a "
                                    f"fresh address", evidence))
        return findings
