"""run_backtest with a fake block feed: order, determinism, finality, errors, watchlist input."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

import monitor.backtest as backtest
from monitor.errors import ConfigError, ConnectorError, InputError
from monitor.records import (
    Asset,
    Block,
    Transfer,
    WatchEntry,
    alert_id,
    log_transfer_id,
    native_transfer_id,
)
from monitor.settings import parse_config
from rules.base import Finding, Rule, ScreeningContext
from tests.unit.builders import OTHER, SEIZED, THIRD

CHAIN = "mainnet"
TOKEN = Asset(kind="erc20", address="0x" + "44" * 20, symbol="TOK", decimals=6)
ETH = Asset(kind="native", symbol="ETH", decimals=18)
BASE_TIME = 1_700_000_000


def tx_hash(number: int, i: int) -> str:
    return "0x" + f"{number:08x}{i:04x}".rjust(64, "0")


def native(number: int, i: int, frm: str, to: str, amount: int) -> Transfer:
    tx = tx_hash(number, i)
    return Transfer(id=native_transfer_id(CHAIN, tx), chain=CHAIN, block_number=number,
                    block_hash=block_hash(number), block_time=BASE_TIME + 12 * number,
                    tx_hash=tx, tx_index=i, kind="native", from_address=frm, to_address=to,
                    asset=ETH, amount=amount)


def erc20(number: int, i: int, log_index: int, frm: str, to: str, amount: int) -> Transfer:
    tx = tx_hash(number, i)
    return Transfer(id=log_transfer_id(CHAIN, tx, log_index), chain=CHAIN, block_number=number,
                    block_hash=block_hash(number), block_time=BASE_TIME + 12 * number,
                    tx_hash=tx, tx_index=i, kind="erc20", from_address=frm, to_address=to,
                    asset=TOKEN, amount=amount, log_index=log_index)


def block_hash(number: int) -> str:
    return "0x" + f"{number:064x}"


def make_block(number: int) -> Block:
    """A block whose transfers touch the watched addresses in a mixed order."""
    transfers = (
        native(number, 0, THIRD, SEIZED, 10**18 + number),
        erc20(number, 1, 0, SEIZED, OTHER, 2**256 - 1),
        native(number, 2, OTHER, THIRD, 5),  # only CASE-A watches OTHER
        erc20(number, 3, 4, OTHER, SEIZED, 7),
    )
    return Block(chain=CHAIN, number=number, hash=block_hash(number),
                 parent_hash=block_hash(number - 1), timestamp=BASE_TIME + 12 * number,
                 head=10**9, transfers=transfers)


class FakeFeed:
    """Serves made-up blocks; records every call."""

    def __init__(self, head: int = 1_000, chain_id: int | None = 1,
                 fail_head: bool = False) -> None:
        self._head = head
        self._chain_id = chain_id
        self.fail_head = fail_head
        self.fetched: list[list[int]] = []
        self.closed = False

    async def head(self) -> int:
        if self.fail_head:
            raise ConnectorError("JSON-RPC failed after 1 attempt(s); last error: connection "
                                 "error", chain=CHAIN)
        return self._head

    async def chain_id(self) -> int | None:
        return self._chain_id

    async def fetch(self, numbers: list[int], head: int) -> list[Block]:
        self.fetched.append(list(numbers))
        return [make_block(n) for n in numbers]

    def facts(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True


class EveryTransfer(Rule):
    """A second rule (not registered) that fires on every screened transfer, for every case."""

    name = "zz-every"
    severity = "low"

    def evaluate(self, transfer: Transfer, context: ScreeningContext) -> list[Finding]:
        entries = [*context.to_entries, *context.from_entries]
        return [Finding(self.name, self.severity, e, "in", "seen") for e in reversed(entries)]


def config(confirmations: int = 12, batch_size: int = 2, **extra: Any) -> Any:
    data: dict[str, Any] = {"chains": [{"name": CHAIN, "chain_id": 1,
                                        "rpc_urls": ["http://127.0.0.1:9/"],
                                        "confirmations": confirmations,
                                        "batch_size": batch_size}],
                            "taint": {"enabled": False}}  # rules only; taint is tested apart
    data.update(extra)
    return parse_config(data, "test.yaml")


def watch(address: str, case_id: str) -> WatchEntry:
    return WatchEntry(chain=CHAIN, address=address, case_id=case_id, label="x")


ENTRIES = [watch(SEIZED, "CASE-B"), watch(SEIZED, "CASE-A"), watch(OTHER, "CASE-A"),
           watch(SEIZED, "CASE-A")]


@pytest.fixture
def feed(monkeypatch: pytest.MonkeyPatch) -> FakeFeed:
    fake = FakeFeed()
    monkeypatch.setattr(backtest, "open_feed", lambda chain_cfg: fake)
    return fake


@pytest.fixture
def two_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    real = backtest.build_rules

    def build(cfg: Any, source: str = "configuration") -> list[Rule]:
        return [EveryTransfer(), *real(cfg, source)]

    monkeypatch.setattr(backtest, "build_rules", build)


async def run(cfg: Any, start: int, end: int, entries: list[WatchEntry] = ENTRIES
              ) -> tuple[str, backtest.BacktestSummary]:
    out = io.StringIO()
    summary = await backtest.run_backtest(cfg, CHAIN, start, end, entries, out, False)
    return out.getvalue(), summary


async def test_alerts_are_sorted_by_block_transfer_rule_and_case(feed: FakeFeed,
                                                                 two_rules: None) -> None:
    text, summary = await run(config(), 10, 14)
    alerts = [json.loads(line) for line in text.splitlines()]
    assert feed.fetched == [[10, 11], [12, 13], [14]]  # batch_size 2
    assert feed.closed
    keys = []
    for a in alerts:
        blk = make_block(a["block_number"])
        position = [t.id for t in blk.transfers].index(a["transfer_id"])
        keys.append((a["block_number"], position, a["rule"], a["watch"]["case_id"]))
    assert keys == sorted(keys)
    first_block = [(k[1], k[2], k[3]) for k in keys if k[0] == 10]
    assert first_block == [
        (0, "watched-address", "CASE-A"), (0, "watched-address", "CASE-B"),
        (0, "zz-every", "CASE-A"), (0, "zz-every", "CASE-B"),
        (1, "watched-address", "CASE-A"), (1, "watched-address", "CASE-B"),
        (1, "zz-every", "CASE-A"), (1, "zz-every", "CASE-B"),
        (2, "watched-address", "CASE-A"), (2, "zz-every", "CASE-A"),
        (3, "watched-address", "CASE-A"), (3, "watched-address", "CASE-B"),
        (3, "zz-every", "CASE-A"), (3, "zz-every", "CASE-B"),
    ]
    assert summary.blocks == 5 and summary.transfers == 20
    assert summary.alerts_by_rule == {"watched-address": 35, "zz-every": 35}
    assert summary.alerts == len(alerts) == 70
    assert summary.watch_entries == 3  # the duplicate entry counts once


async def test_output_is_byte_identical_and_detected_at_is_block_time(feed: FakeFeed) -> None:
    first, _ = await run(config(), 10, 13)
    again, _ = await run(config(batch_size=3), 10, 13)
    shuffled, _ = await run(config(), 10, 13, random.Random(1).sample(ENTRIES, len(ENTRIES)))
    assert first == again == shuffled
    for line in first.splitlines():
        alert = json.loads(line)
        assert alert["detected_at"] == alert["block_time"] == BASE_TIME + 12 * alert[
            "block_number"]
        assert alert["id"] == alert_id(alert["rule"], alert["transfer_id"],
                                       alert["watch"]["case_id"])
    big = [json.loads(line) for line in first.splitlines() if json.loads(line)["amount"]
           == str(2**256 - 1)]
    assert big and all(a["log_index"] == 0 for a in big)


def test_order_alerts_does_not_depend_on_input_order() -> None:
    from monitor.screening import ChainPolicy, screen_block

    blk = make_block(3)
    wl = backtest.Watchlist()
    for e in ENTRIES:
        wl.put(e)
    alerts = screen_block(blk, wl, [EveryTransfer(), *backtest.build_rules(config())],
                          ChainPolicy(1), 0.0)
    expected = backtest.order_alerts(blk, alerts)
    for seed in range(5):
        shuffled = random.Random(seed).sample(alerts, len(alerts))
        assert backtest.order_alerts(blk, shuffled) == expected


async def test_final_blocks_are_confirmed_at_the_configured_depth(feed: FakeFeed) -> None:
    feed._head = 30
    text, summary = await run(config(confirmations=12), 17, 19)
    by_block = {}
    for line in text.splitlines():
        a = json.loads(line)
        by_block.setdefault(a["block_number"], set()).add((a["status"], a["confirmations"]))
    assert by_block == {17: {("confirmed", 12)}, 18: {("confirmed", 12)},
                        19: {("provisional", 0)}}
    assert summary.provisional_blocks == 1
    assert "not yet final" in summary.describe()


async def test_zero_confirmations_gives_provisional_alerts(feed: FakeFeed) -> None:
    text, _ = await run(config(confirmations=0), 5, 5)
    assert {(json.loads(x)["status"], json.loads(x)["confirmations"])
            for x in text.splitlines()} == {("provisional", 0)}


async def test_range_and_chain_errors(feed: FakeFeed) -> None:
    with pytest.raises(InputError, match=r"--from 5 is after --to 4"):
        await run(config(), 5, 4)
    with pytest.raises(InputError, match=">= 0"):
        await run(config(), -1, 4)
    with pytest.raises(ConfigError, match="unknown chain 'nope'; configured chains: mainnet"):
        await backtest.run_backtest(config(), "nope", 1, 2, ENTRIES, io.StringIO(), False)
    with pytest.raises(InputError, match=r"--to 1001 is beyond the head of chain 'mainnet' "
                                         r"\(block 1000\)"):
        await run(config(), 1, 1001)
    assert feed.fetched == []
    assert feed.closed


async def test_unreachable_node_and_wrong_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = FakeFeed(fail_head=True)
    monkeypatch.setattr(backtest, "open_feed", lambda chain_cfg: dead)
    with pytest.raises(ConnectorError, match="cannot read the head of chain 'mainnet'"):
        await run(config(), 1, 2)
    assert dead.closed
    other = FakeFeed(chain_id=5)
    monkeypatch.setattr(backtest, "open_feed", lambda chain_cfg: other)
    with pytest.raises(ConfigError, match="chain_id 1 but its node answers eth_chainId 5"):
        await run(config(), 1, 2)


async def test_fetch_error_names_the_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(FakeFeed):
        async def fetch(self, numbers: list[int], head: int) -> list[Block]:
            if numbers[0] >= 12:
                raise ConnectorError("null result", chain=CHAIN)
            return await super().fetch(numbers, head)

    broken = Broken()
    monkeypatch.setattr(backtest, "open_feed", lambda chain_cfg: broken)
    with pytest.raises(ConnectorError, match=r"blocks 12\.\.13: null result"):
        await run(config(), 10, 15)
    assert broken.closed


async def test_backtest_to_file_appears_only_when_complete(feed: FakeFeed,
                                                           tmp_path: Path) -> None:
    target = tmp_path / "alerts.jsonl"
    summary = await backtest.backtest_to(config(), CHAIN, 10, 11, ENTRIES, str(target), False)
    assert len(target.read_text().splitlines()) == summary.alerts > 0
    failed = tmp_path / "failed.jsonl"
    feed._head = 5
    with pytest.raises(InputError):
        await backtest.backtest_to(config(), CHAIN, 10, 11, ENTRIES, str(failed), False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.jsonl"]


def test_load_watch_entries(tmp_path: Path) -> None:
    (tmp_path / "case.csv").write_text(f"address,case_id\n{SEIZED},CASE-A\n{OTHER},CASE-B\n"
                                       f"{THIRD},CASE-A\n")
    (tmp_path / "extra.txt").write_text(f"{THIRD.upper().replace('0X', '0x')}\n")
    (tmp_path / "other-chain.csv").write_text(f"address,chain,case_id\n{SEIZED},devnet,X\n")
    cfg = parse_config({"chains": [{"name": CHAIN, "chain_id": 1,
                                    "rpc_urls": ["http://127.0.0.1:9/"]},
                                   {"name": "devnet", "chain_id": 31337,
                                    "rpc_urls": ["http://127.0.0.1:9/"]}],
                        "watchlists": [{"path": "case.csv", "chain": CHAIN},
                                       {"path": "other-chain.csv"}]}, "x")
    config_path = tmp_path / "chainwatch.yaml"
    every = backtest.load_watch_entries(cfg, config_path, CHAIN, [], None)
    assert [(e.address, e.case_id) for e in every] == [
        (SEIZED, "CASE-A"), (OTHER, "CASE-B"), (THIRD, "CASE-A")]
    only_a = backtest.load_watch_entries(cfg, config_path, CHAIN,
                                         [str(tmp_path / "extra.txt")], "CASE-A")
    assert [(e.address, e.case_id) for e in only_a] == [(SEIZED, "CASE-A"), (THIRD, "CASE-A")]
    with pytest.raises(InputError, match="no watch entries of case 'NONE'"):
        backtest.load_watch_entries(cfg, config_path, CHAIN, [], "NONE")
    (tmp_path / "bad.csv").write_text(f"address,case_id\nnot-an-address,C\n{SEIZED},C\n")
    bad_row = r"1 bad row\(s\): .*bad\.csv:2: address: .*does not skip rows"
    with pytest.raises(InputError, match=bad_row):
        backtest.load_watch_entries(cfg, config_path, CHAIN, [str(tmp_path / "bad.csv")], None)
    with pytest.raises(InputError, match="give a default chain and case_id"):
        backtest.load_watch_entries(cfg, config_path, CHAIN, [str(tmp_path / "extra.txt")],
                                    None)


def test_build_rules_names_the_bad_key() -> None:
    with pytest.raises(ConfigError, match=r"rules\[0\]\.name: unknown rule 'nope'"):
        backtest.build_rules(config(rules=[{"name": "nope"}]))
