"""``chainwatch backtest``: screen a historical block range straight from a chain's nodes.

A backtest fetches blocks ``start..end`` with the live connector's pool and decoder
(:class:`~connectors.evm.extract.EvmBlockSource`, same batches, receipts, traces and token
metadata as configured), screens them with the configured rules against a watchlist read from
files, and writes one JSON line per alert. It touches no broker and notifies nobody.

Reproducibility (alerts may end up in court files): the same blocks, watchlist and rules give
byte-identical output.

- ``detected_at`` is the **block time** (not the wall clock) in backtest mode.
- ``confirmations``/``status``: a block that is at least the chain's ``confirmations`` deep
  below the node's head when the backtest runs is screened as if seen exactly that deep
  (``status: confirmed``, ``confirmations: <configured depth>``, the guaranteed minimum);
  a shallower block is screened as ``provisional`` with ``confirmations: 0`` and a warning.
- Alerts are sorted by block, transfer order within the block, rule, case and id; JSON
  objects inside alerts (evidence) are written with sorted keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import click
import msgspec

from connectors.evm.facts import AddressFacts
from monitor.app import build_screener
from monitor.errors import ConfigError, ConnectorError, InputError, RuleError
from monitor.records import Alert, Block, WatchEntry
from monitor.screening import ScopedRule, Screener
from monitor.settings import ChainConfig, ChainwatchConfig
from monitor.watchlist import Watchlist
from rules.base import Rule
from rules.state import AddressActivity

log = logging.getLogger(__name__)

ALERT_ENCODER = msgspec.json.Encoder(order="deterministic")
"""Encodes alerts for backtest output: struct fields in order, dict keys sorted."""


class BlockFeed(Protocol):
    """Where a backtest reads blocks: a chain's nodes through the live connector's decoder."""

    async def head(self) -> int:
        """Latest block number of the node."""

    async def chain_id(self) -> int | None:
        """The node's ``eth_chainId``, or ``None`` if it does not say."""

    async def fetch(self, numbers: list[int], head: int) -> list[Block]:
        """Fetch and decode ``numbers`` (ascending)."""

    def facts(self) -> AddressFacts | None:
        """Node facts about addresses (freshness, balances), or None if unavailable."""

    async def close(self) -> None:
        """Release connections."""


class _RpcFeed:
    """:class:`BlockFeed` over the connector's :class:`RpcPool` and :class:`EvmBlockSource`."""

    def __init__(self, chain_cfg: ChainConfig) -> None:
        from connectors.evm.extract import EvmBlockSource
        from connectors.rpc import RpcPool
        from connectors.runner import rpc_policy

        self.pool = RpcPool(chain_cfg.name, list(chain_cfg.rpc_urls),
                            chain_cfg.request_timeout_seconds, rpc_policy(chain_cfg))
        self.source = EvmBlockSource(self.pool, chain_cfg)

    async def head(self) -> int:
        """Latest block number of the node."""
        return await self.source.head()

    async def chain_id(self) -> int | None:
        """The node's ``eth_chainId``, or ``None`` if the node lacks the method."""
        from connectors.evm.mapping import parse_quantity
        from connectors.rpc import RpcMethodNotFound

        try:
            result = await self.pool.call("eth_chainId", [], nullable=False)
        except RpcMethodNotFound:
            return None
        return parse_quantity(result, "eth_chainId")

    async def fetch(self, numbers: list[int], head: int) -> list[Block]:
        """Fetch and decode ``numbers`` exactly as the live connector does."""
        return await self.source.fetch(numbers, head)

    def facts(self) -> AddressFacts | None:
        """Node facts through the same pool, as the live worker asks them."""
        return AddressFacts(self.pool)

    async def close(self) -> None:
        """Close the pool's HTTP sessions."""
        await self.pool.close()


def open_feed(chain_cfg: ChainConfig) -> BlockFeed:
    """Open the block feed of a chain (tests replace this function)."""
    return _RpcFeed(chain_cfg)


@dataclass
class BacktestSummary:
    """What a backtest covered and found; ``elapsed_seconds`` is the only wall-clock value."""

    chain: str
    start: int
    end: int
    watch_entries: int = 0
    blocks: int = 0
    transfers: int = 0
    provisional_blocks: int = 0
    alerts_by_rule: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    @property
    def alerts(self) -> int:
        """Total number of alerts written."""
        return sum(self.alerts_by_rule.values())

    def describe(self) -> str:
        """Human-readable summary, several lines."""
        rate = self.blocks / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0
        lines = [
            f"backtest {self.chain} blocks {self.start}..{self.end}: {self.blocks} block(s), "
            f"{self.transfers} transfer(s), {self.alerts} alert(s) against "
            f"{self.watch_entries} watch entr{'y' if self.watch_entries == 1 else 'ies'}; "
            f"{self.elapsed_seconds:.2f}s ({rate:.1f} blocks/s)",
        ]
        lines += [f"  {rule}: {count}" for rule, count in sorted(self.alerts_by_rule.items())]
        if self.provisional_blocks:
            lines.append(f"  {self.provisional_blocks} block(s) were not yet final: their "
                         "alerts are provisional")
        return "\n".join(lines)


# --- inputs -----------------------------------------------------------------------------------

def check_range(start: int, end: int) -> None:
    """Refuse a negative or descending block range with a clear message."""
    if start < 0 or end < 0:
        raise InputError(f"block numbers must be >= 0 (got --from {start} --to {end})")
    if start > end:
        raise InputError(f"--from {start} is after --to {end}: give an ascending, inclusive "
                         "range")


def build_rules(config: ChainwatchConfig, source: str = "configuration") -> list[Rule]:
    """Instantiate the configured rules; a bad rule is a ConfigError naming its key."""
    import rules  # noqa: F401 - registers the built-in rules
    from rules.base import RULES, build_rule

    built: list[Rule] = []
    for i, rule in enumerate(config.rules):
        try:
            built.append(build_rule(rule.name, rule.severity, rule.params))
        except RuleError as exc:
            key = "name" if rule.name not in RULES else "params"
            raise ConfigError(f"{source}: rules[{i}].{key}: {exc}") from None
    return built


def load_watch_entries(config: ChainwatchConfig, config_path: str | os.PathLike[str],
                       chain_name: str, files: Sequence[str], case_id: str | None
                       ) -> list[WatchEntry]:
    """Watch entries of ``chain_name`` from the config's ``watchlists:`` and ``files``.

    ``files`` rows without a chain get ``chain_name``; rows without a case get ``case_id``.
    With ``case_id`` only that case's entries are kept. Any row error stops the backtest: a
    silently skipped address would make it miss alerts.
    """
    from monitor.watchlist_io import load_watchlist_file

    sources: list[tuple[Path, dict[str, str]]] = []
    base = Path(config_path).parent
    for wl in config.watchlists:
        path = Path(wl.path)
        sources.append((path if path.is_absolute() else base / path,
                        {k: v for k, v in {"chain": wl.chain, "case_id": wl.case_id}.items()
                         if v}))
    for file in files:
        defaults = {"chain": chain_name}
        if case_id:
            defaults["case_id"] = case_id
        sources.append((Path(file), defaults))
    entries: dict[str, WatchEntry] = {}
    for path, defaults in sources:
        result = load_watchlist_file(path, defaults)
        if result.error_count:
            shown = "; ".join(str(e) for e in result.errors[:5])
            more = result.error_count - min(5, len(result.errors))
            raise InputError(f"{result.error_count} bad row(s): {shown}"
                             + (f"; and {more} more" if more > 0 else "")
                             + "; fix or remove them, a backtest does not skip rows")
        for entry in result.entries:
            if entry.chain == chain_name and (case_id is None or entry.case_id == case_id):
                entries.setdefault(entry.key, entry)
    if not entries:
        where = f" of case {case_id!r}" if case_id else ""
        raise InputError(f"no watch entries{where} for chain {chain_name!r}: give "
                         "--watchlist FILE or configure watchlists: in the configuration")
    return sorted(entries.values(), key=lambda e: e.key)


# --- the backtest -----------------------------------------------------------------------------

async def screen_for_backtest(block: Block, watchlist: Watchlist, screener: Screener,
                              confirmations: int, activity: dict[str, AddressActivity],
                              facts: AddressFacts | None) -> list[Alert]:
    """The one place a backtest calls screening; ``detected_at`` is the block time.

    The same :class:`Screener` as the live worker (rules with scopes, lists, follow the
    money), with activity and taint kept in memory across the range, and node facts asked of
    the same node, so a backtest gives the alerts the live pipeline gave.
    """
    from monitor.screening import ChainPolicy

    known = {}
    relevant = screener.relevant_addresses(block, watchlist)
    contracts_matter = screener.taint is not None and screener.taint.stop_at_contracts
    unknown = sorted(a for a in relevant
                     if contracts_matter or f"{block.chain}:{a}" not in activity)
    if unknown and facts is not None:
        known = await facts.before_block(unknown, block.number)
    outcome = screener.screen(block, watchlist, ChainPolicy(confirmations=confirmations),
                              float(block.timestamp), activity, known)
    activity.update(outcome.activity)
    for entry in outcome.new_entries:
        watchlist.put(entry)
    return outcome.alerts


def order_alerts(block: Block, alerts: Iterable[Alert]) -> list[Alert]:
    """Sort one block's alerts by transfer order, rule, case and id."""
    position = {t.id: i for i, t in enumerate(block.transfers)}
    return sorted(alerts, key=lambda a: (a.block_number, position.get(a.transfer_id, -1),
                                         a.rule, a.watch.case_id, a.id))


def _batches(start: int, end: int, size: int) -> Iterator[list[int]]:
    for first in range(start, end + 1, size):
        yield list(range(first, min(first + size, end + 1)))


class _Progress:
    """A click progress bar on stderr with a blocks/s rate, or nothing."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.started = time.perf_counter()
        self.done = 0
        self._bar: Any = None
        if enabled:
            self._bar = click.progressbar(length=total, label=label, file=sys.stderr,
                                          show_eta=True, show_percent=True,
                                          item_show_func=self._rate)
            self._bar.__enter__()

    @staticmethod
    def _rate(rate: float | None) -> str | None:
        return None if rate is None else f"{rate:.1f} blocks/s"

    def advance(self, blocks: int) -> None:
        """Count ``blocks`` more as done."""
        self.done += blocks
        if self._bar is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self._bar.update(blocks, self.done / elapsed)

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


async def run_backtest(config: ChainwatchConfig, chain_name: str, start: int, end: int,
                       watch_entries: Iterable[WatchEntry], out: TextIO,
                       progress: bool, base_dir: Path | None = None) -> BacktestSummary:
    """Screen blocks ``start..end`` (inclusive) of a chain and write alerts as JSON lines."""
    started = time.perf_counter()
    check_range(start, end)
    chain_cfg = config.chain(chain_name)
    scopes = {rc.name: (frozenset(rc.categories), frozenset(rc.cases)) for rc in config.rules}
    screener = dataclasses.replace(
        build_screener(config, base_dir or Path.cwd()),
        rules=[ScopedRule(rule, *scopes.get(rule.name, (frozenset(), frozenset())))
               for rule in build_rules(config)])
    watchlist = Watchlist()
    for entry in watch_entries:
        if entry.chain == chain_name:
            watchlist.put(entry)
    summary = BacktestSummary(chain=chain_name, start=start, end=end,
                              watch_entries=len(watchlist))
    feed = open_feed(chain_cfg)
    try:
        head = await _node_head(feed, chain_cfg, end)
        final = head - chain_cfg.confirmations
        if end > final:
            log.warning("chain %s: blocks above %d are less than %d confirmation(s) deep "
                        "(head %d): their alerts are provisional", chain_name, final,
                        chain_cfg.confirmations, head)
        bar = _Progress(progress, end - start + 1, f"backtest {chain_name} {start}..{end}")
        try:
            await _screen_range(feed, chain_cfg, start, end, head, screener, watchlist, out,
                                summary, bar.advance)
        finally:
            bar.close()
    finally:
        await feed.close()
    summary.elapsed_seconds = time.perf_counter() - started
    return summary


async def _node_head(feed: BlockFeed, chain_cfg: ChainConfig, end: int) -> int:
    """The node's head after checking that it serves the configured chain and reaches ``end``."""
    name = chain_cfg.name
    try:
        head = await feed.head()
        chain_id = await feed.chain_id()
    except ConnectorError as exc:
        raise ConnectorError(f"cannot read the head of chain {name!r}: {exc.message}",
                             **exc.context) from None
    if chain_id is not None and chain_id != chain_cfg.chain_id:
        raise ConfigError(f"chain {name!r} is configured with chain_id {chain_cfg.chain_id} "
                          f"but its node answers eth_chainId {chain_id}")
    if end > head:
        raise InputError(f"--to {end} is beyond the head of chain {name!r} (block {head})")
    return head


async def _screen_range(feed: BlockFeed, chain_cfg: ChainConfig, start: int, end: int,
                        head: int, screener: Screener, watchlist: Watchlist, out: TextIO,
                        summary: BacktestSummary, advance: Callable[[int], None]) -> None:
    """Fetch batch by batch (one batch ahead) and screen each block in order."""
    depth = chain_cfg.confirmations
    final = head - depth
    activity: dict[str, AddressActivity] = {}
    facts = feed.facts() if chain_cfg.address_facts else None
    batches = _batches(start, end, chain_cfg.batch_size)
    first = next(batches)
    pending: asyncio.Future[list[Block]] | None = asyncio.ensure_future(
        feed.fetch(first, head))
    expected = first
    try:
        while pending is not None:
            try:
                blocks = await pending
            except ConnectorError as exc:
                pending = None
                raise ConnectorError(f"blocks {expected[0]}..{expected[-1]}: {exc.message}",
                                     **exc.context) from None
            following = next(batches, None)
            pending = (asyncio.ensure_future(feed.fetch(following, head))
                       if following is not None else None)
            numbers = [b.number for b in blocks]
            if numbers != expected or any(b.kind != "block" for b in blocks):
                raise ConnectorError(f"asked for blocks {expected[0]}..{expected[-1]}, got "
                                     f"{len(numbers)} other block(s)", chain=chain_cfg.name)
            for block in blocks:
                if block.number <= final:
                    block = msgspec.structs.replace(block, head=block.number + depth)
                else:
                    block = msgspec.structs.replace(block, head=0)
                    summary.provisional_blocks += 1
                alerts = order_alerts(block, await screen_for_backtest(
                    block, watchlist, screener, depth, activity, facts))
                for alert in alerts:
                    out.write(ALERT_ENCODER.encode(alert).decode() + "\n")
                    summary.alerts_by_rule[alert.rule] = summary.alerts_by_rule.get(
                        alert.rule, 0) + 1
                summary.blocks += 1
                summary.transfers += len(block.transfers)
            advance(len(blocks))
            if following is not None:
                expected = following
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def backtest_to(config: ChainwatchConfig, chain_name: str, start: int, end: int,
                      watch_entries: Iterable[WatchEntry], output: str,
                      progress: bool, base_dir: Path | None = None) -> BacktestSummary:
    """Run a backtest into ``output`` (``-`` for stdout); a file appears only when complete."""
    if output == "-":
        summary = await run_backtest(config, chain_name, start, end, watch_entries,
                                     sys.stdout, progress, base_dir)
        sys.stdout.flush()
        return summary
    target = Path(output)
    directory = target.parent if str(target.parent) else Path()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                   dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write output: {exc.strerror or exc}",
                         source=output) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            summary = await run_backtest(config, chain_name, start, end, watch_entries, fh,
                                         progress, base_dir)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return summary

