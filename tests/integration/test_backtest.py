"""``chainwatch backtest`` as a subprocess against recorded mainnet JSON-RPC (no Kafka needed).

The replay server (tests/support/rpc_replay.py) serves Erigon's recording of block 18,000,000
(full transactions + ``eth_getBlockReceipts``) and ethereum-etl's recorded blocks
1,755,634..1,755,635 (full blocks + per-transaction receipts, no ``eth_getBlockReceipts``: the
connector's fallback). Every alert is checked against the raw recorded logs and transactions,
decoded here independently of the connector.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.records import alert_id
from tests.support.rpc_replay import FIXTURES, RpcReplay

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
BLOCK = 18_000_000
CONFIRMATIONS = 12
# In block 18,000,000: Binance 14 sends 337.095759 USDT (log 52), an address sends 8,000 USDC
# (log 66), and the Uniswap universal router receives ether in 8 transactions.
USDT_SENDER = "0x28c6c06298d514db089934071355e5743bf21d60"
USDC_SENDER = "0x98c23e9d8f34fefb1b7bd6a91b7ff122f4e16f5c"
NATIVE_RECIPIENT = "0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad"
WATCHED = {USDT_SENDER: "CASE-USD", USDC_SENDER: "CASE-USD", NATIVE_RECIPIENT: "CASE-ETH"}


def load_result(name: str) -> Any:
    with gzip.open(FIXTURES / "mainnet-rpc" / name, "rt", encoding="utf-8") as fh:
        return json.load(fh)[0]["response"]["result"]


def expected_transfers(block: dict[str, Any], receipts: list[dict[str, Any]],
                       watched: dict[str, str]) -> set[tuple[Any, ...]]:
    """``(tx, log index, kind, from, to, amount, direction, case)`` of watched transfers."""
    found: set[tuple[Any, ...]] = set()

    def add(tx: str, log_index: int | None, kind: str, frm: str, to: str, amount: int) -> None:
        for address, direction in ((frm, "out"), (to, "in")):
            if address in watched:
                found.add((tx, log_index, kind, frm, to, str(amount), direction,
                           watched[address]))

    by_hash = {r["transactionHash"]: r for r in receipts}
    for tx in block["transactions"]:
        receipt = by_hash[tx["hash"]]
        ok = receipt.get("status", "0x1") == "0x1"
        if ok and int(tx["value"], 16) > 0:
            add(tx["hash"], None, "native", tx["from"].lower(), tx["to"].lower(),
                int(tx["value"], 16))
        for log in receipt["logs"] if ok else ():
            topics = log["topics"]
            if len(topics) == 3 and topics[0] == TRANSFER_TOPIC and len(log["data"]) == 66:
                add(tx["hash"], int(log["logIndex"], 16), "erc20", "0x" + topics[1][-40:],
                    "0x" + topics[2][-40:], int(log["data"], 16))
    return found


def alert_facts(alert: dict[str, Any]) -> tuple[Any, ...]:
    return (alert["tx_hash"], alert.get("log_index"), alert["transfer_kind"], alert["from"],
            alert["to"], alert["amount"], alert["direction"], alert["watch"]["case_id"])


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINWATCH_")}
    env["CHAINWATCH_LOG_LEVEL"] = "warning"
    return env


def chainwatch(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=REPO, env=cli_env(),
                          timeout=timeout, check=False)


def write_config(path: Path, rpc_url: str, **chain: Any) -> Path:
    settings = {"name": "mainnet", "chain_id": 1, "rpc_urls": [rpc_url],
                "confirmations": CONFIRMATIONS, "traces": "none", "batch_size": 50,
                "max_retries": 0, "request_timeout_seconds": 10}
    taint = chain.pop("taint", False)
    settings.update(chain)
    # follow-the-money off unless asked: these tests check each watched transfer's facts
    path.write_text(yaml.safe_dump({"chains": [settings],
                                    "rules": [{"name": "watched-address"}],
                                    "taint": {"enabled": taint}}, sort_keys=False))
    return path


def write_watchlist(path: Path, watched: dict[str, str]) -> Path:
    rows = ["address,case_id,label,category"]
    rows += [f"{address},{case},recorded mainnet address,suspect"
             for address, case in watched.items()]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def rpc() -> Iterator[RpcReplay]:
    """Recorded answers; the head sits 12 blocks above block 18,000,000 so that it is final."""
    with RpcReplay.from_fixtures(head=BLOCK + CONFIRMATIONS) as server:
        yield server


def test_follow_the_money_backtest_is_reproducible(rpc: RpcReplay, tmp_path: Path) -> None:
    """With taint on, hops inside the block add alerts, and two runs are still identical."""
    config = write_config(tmp_path / "chainwatch.yaml", rpc.url, taint=True)
    watchlist = write_watchlist(tmp_path / "watch.csv", WATCHED)
    outputs = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.jsonl"
        done = chainwatch(config, "backtest", "--chain", "mainnet", "--from", str(BLOCK),
                          "--to", str(BLOCK), "--watchlist", str(watchlist), "--output",
                          str(out), "--no-progress")
        assert done.returncode == 0, done.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    alerts = [json.loads(line) for line in outputs[0].decode().splitlines()]
    block = load_result("eth_getBlockByNumber_18000000_fulltx.json.gz")
    receipts = load_result("eth_getBlockReceipts_18000000.json.gz")
    direct = expected_transfers(block, receipts, WATCHED)
    assert direct <= {alert_facts(a) for a in alerts}
    hops = [a for a in alerts if a["watch"]["category"] == "tainted"]
    assert all(a["watch"]["taint"]["hop"] >= 1 for a in hops)


def test_block_18m_is_reproducible_and_matches_the_recording(rpc: RpcReplay,
                                                             tmp_path: Path) -> None:
    config = write_config(tmp_path / "chainwatch.yaml", rpc.url)
    watchlist = write_watchlist(tmp_path / "watch.csv", WATCHED)
    outputs = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.jsonl"
        done = chainwatch(config, "backtest", "--chain", "mainnet", "--from", str(BLOCK),
                          "--to", str(BLOCK), "--watchlist", str(watchlist), "--output",
                          str(out), "--no-progress")
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert "backtest mainnet blocks 18000000..18000000: 1 block(s)" in done.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]  # byte for byte
    alerts = [json.loads(line) for line in outputs[0].decode().splitlines()]
    assert alerts

    block = load_result("eth_getBlockByNumber_18000000_fulltx.json.gz")
    receipts = load_result("eth_getBlockReceipts_18000000.json.gz")
    expected = expected_transfers(block, receipts, WATCHED)
    assert {alert_facts(a) for a in alerts} == expected
    assert len(alerts) == len(expected)
    kinds = {a["transfer_kind"] for a in alerts}
    assert kinds == {"erc20", "native"}
    usdt = [a for a in alerts if a["from"] == USDT_SENDER]
    assert [(a["log_index"], a["amount"], a["asset"]["address"]) for a in usdt] == [
        (52, "337095759", "0xdac17f958d2ee523a2206206994597c13d831ec7")]
    for a in alerts:
        assert a["block_number"] == BLOCK and a["block_hash"] == block["hash"]
        assert a["block_time"] == int(block["timestamp"], 16)
        assert a["detected_at"] == a["block_time"]
        assert (a["status"], a["confirmations"]) == ("confirmed", CONFIRMATIONS)
        assert a["id"] == alert_id(a["rule"], a["transfer_id"], a["watch"]["case_id"])
    tx_order = {tx["hash"]: i for i, tx in enumerate(block["transactions"])}
    positions = [(tx_order[a["tx_hash"]], -1 if a.get("log_index") is None else a["log_index"],
                  a["watch"]["case_id"]) for a in alerts]
    assert positions == sorted(positions)
    methods = set(rpc.methods())
    assert "eth_getBlockReceipts" in methods
    assert not methods & {"trace_block", "debug_traceBlockByNumber"}


def test_block_not_yet_final_gives_provisional_alerts(tmp_path: Path) -> None:
    with RpcReplay.from_fixtures() as shallow:  # head = 18,000,000, the highest recorded block
        config = write_config(tmp_path / "chainwatch.yaml", shallow.url)
        watchlist = write_watchlist(tmp_path / "watch.csv", {USDT_SENDER: "CASE-USD"})
        done = chainwatch(config, "backtest", "--chain", "mainnet", "--from", str(BLOCK),
                          "--to", str(BLOCK), "--watchlist", str(watchlist), "--no-progress")
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(a["status"], a["confirmations"], a["log_index"]) for a in alerts] == [
        ("provisional", 0, 52)]
    assert "alerts are provisional" in done.stderr


def test_etl_blocks_1755634_1755635_with_per_transaction_receipts(rpc: RpcReplay,
                                                                  tmp_path: Path) -> None:
    directory = FIXTURES / "ethereum-etl" / "test_stream" / "blocks_1755634_1755635"
    tokens = [json.loads(x) for x in (directory / "expected_token_transfers.json").open()]
    txs = [json.loads(x) for x in (directory / "expected_transactions.json").open()]
    token_sender = tokens[0]["from_address"]
    paid = next(t for t in txs if t["value"] > 0)
    config = write_config(tmp_path / "chainwatch.yaml", rpc.url, batch_size=1)
    watchlist = tmp_path / "case.txt"
    watchlist.write_text(f"{token_sender}\n{paid['to_address']}  # native recipient\n")
    before = len(rpc.requests)
    outputs = []
    for _ in range(2):
        done = chainwatch(config, "backtest", "--chain", "mainnet", "--from", "1755634",
                          "--to", "1755635", "--watchlist", str(watchlist), "--case",
                          "CASE-ETL", "--no-progress")
        assert done.returncode == 0, done.stderr
        assert "2 block(s)" in done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    alerts = [json.loads(line) for line in outputs[0].splitlines()]
    assert [(a["transfer_kind"], a["tx_hash"], a.get("log_index"), a["from"], a["to"],
             a["amount"], a["direction"], a["watch"]["case_id"]) for a in alerts] == [
        ("erc20", tokens[0]["transaction_hash"], tokens[0]["log_index"], token_sender,
         tokens[0]["to_address"], str(tokens[0]["value"]), "out", "CASE-ETL"),
        ("native", paid["hash"], None, paid["from_address"], paid["to_address"],
         str(paid["value"]), "in", "CASE-ETL"),
    ]
    assert all(a["block_number"] == 1755635 and a["detected_at"] == 1_466_669_562
               for a in alerts)
    assert alerts[0]["asset"] == {"kind": "erc20", "address": tokens[0]["token_address"]}
    methods = [m for m, _ in rpc.requests[before:]]
    assert "eth_getBlockReceipts" in methods and "eth_getTransactionReceipt" in methods


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("chainwatch: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_range_and_chain_errors(rpc: RpcReplay, tmp_path: Path) -> None:
    config = write_config(tmp_path / "chainwatch.yaml", rpc.url)
    watchlist = write_watchlist(tmp_path / "watch.csv", WATCHED)
    out = tmp_path / "out.jsonl"
    common = ["--watchlist", str(watchlist), "--output", str(out), "--no-progress"]
    reversed_range = chainwatch(config, "backtest", "--chain", "mainnet", "--from", "18000001",
                                "--to", "18000000", *common)
    assert reversed_range.stderr.strip() == _one_error_line(reversed_range) == (
        "chainwatch: --from 18000001 is after --to 18000000: give an ascending, inclusive "
        "range")
    unknown = chainwatch(config, "backtest", "--chain", "polygon", "--from", "1", "--to", "2",
                         *common)
    assert unknown.stderr.strip() == _one_error_line(unknown) == (
        "chainwatch: unknown chain 'polygon'; configured chains: mainnet")
    beyond = chainwatch(config, "backtest", "--chain", "mainnet", "--from", str(BLOCK),
                        "--to", str(BLOCK + 100), *common)
    assert "is beyond the head of chain 'mainnet' (block 18000012)" in _one_error_line(beyond)
    missing = chainwatch(config, "backtest", "--chain", "mainnet", "--from", "17999999",
                         "--to", str(BLOCK), *common)  # 17,999,999 was not recorded
    assert "blocks 17999999..18000000" in _one_error_line(missing)
    assert not out.exists()


def test_unreachable_node_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_config(tmp_path / "chainwatch.yaml", f"http://127.0.0.1:{port}/",
                          request_timeout_seconds=2)
    watchlist = write_watchlist(tmp_path / "watch.csv", WATCHED)
    done = chainwatch(config, "backtest", "--chain", "mainnet", "--from", "1", "--to", "1",
                      "--watchlist", str(watchlist), "--no-progress")
    line = _one_error_line(done)
    assert line.startswith("chainwatch: cannot read the head of chain 'mainnet': JSON-RPC "
                           "failed after 1 attempt(s)")
    assert "connection error" in line
