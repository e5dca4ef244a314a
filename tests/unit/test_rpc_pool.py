"""RpcPool against real aiohttp JSON-RPC servers on 127.0.0.1 that misbehave on purpose."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from connectors.evm.extract import TRANSFER_TOPIC, EvmBlockSource, decode_decimals, decode_symbol
from connectors.retry import RetryPolicy
from connectors.rpc import RpcMethodNotFound, RpcPool, redact_url
from monitor.errors import ConnectorError
from monitor.metrics import RPC_ERRORS, RPC_REQUESTS
from monitor.settings import ChainConfig

SECRET = "s3cr3tKEY"
FAST = RetryPolicy(base_seconds=0.001, cap_seconds=0.01, max_attempts=4)


class NodeServer:
    """A JSON-RPC server; ``mode`` decides how it answers."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.hits = 0
        self.batch_sizes: list[int] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, params, rid = request["method"], request.get("params", []), request["id"]
        if self.mode == "rpc-error":
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "boom"}}
        if self.mode == "not-found" or (self.mode == "call-reverts" and method == "eth_call"):
            code = -32601 if self.mode == "not-found" else 3
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": "nope"}}
        if self.mode == "missing-id":
            return {"jsonrpc": "2.0", "result": "0x1"}
        if self.mode == "null" or method == "eth_getNothing":
            return {"jsonrpc": "2.0", "id": rid, "result": None}
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": rid, "result": "0x10"}
        return {"jsonrpc": "2.0", "id": rid, "result": {"method": method, "params": params}}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        body = await request.json()
        if self.mode in ("429", "500", "503"):
            return web.Response(status=int(self.mode), text="slow down")
        if self.mode == "garbage":
            return web.Response(text="<html>bad gateway</html>", content_type="text/html")
        if self.mode == "timeout":
            await asyncio.sleep(1.5)
        if isinstance(body, list):
            self.batch_sizes.append(len(body))
            answers = [self.answer(r) for r in body]
            if self.mode == "short":
                answers = answers[:-1]
            answers.reverse()  # JSON-RPC does not promise order: the pool must sort by id
            return web.json_response(answers)
        return web.json_response(self.answer(body))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def url(self, with_key: bool = True) -> str:
        key = f"/v3/{SECRET}?apikey={SECRET}" if with_key else "/"
        return f"http://127.0.0.1:{self.port}{key}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest_asyncio.fixture()
async def servers() -> AsyncIterator[tuple[NodeServer, NodeServer]]:
    first, second = NodeServer(), NodeServer()
    await first.start()
    await second.start()
    yield first, second
    await first.stop()
    await second.stop()


def errors(chain: str, label: str, reason: str) -> float:
    return RPC_ERRORS.labels(chain, label, reason)._value.get()


BATCH = [("eth_getBlockByNumber", [hex(n), True]) for n in range(5)]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("mode,reason", [
    ("429", "http"), ("500", "http"), ("503", "http"), ("garbage", "malformed"),
    ("timeout", "timeout"), ("rpc-error", "rpc"), ("missing-id", "malformed"),
    ("short", "malformed"), ("null", "null"),
])
async def test_batch_fails_over_to_the_next_endpoint(
    servers: tuple[NodeServer, NodeServer], mode: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad, good = servers
    bad.mode = mode
    chain = f"fo-{mode}"
    pool = RpcPool(chain, [bad.url(), good.url()], timeout=0.5, policy=FAST)
    try:
        results = await pool.batch(BATCH, nullable=False)
        assert [r["params"][0] for r in results] == [hex(n) for n in range(5)]
        assert bad.hits == 1 and good.hits == 1
        label = redact_url(bad.url())
        assert errors(chain, label, reason) == 1
        assert RPC_REQUESTS.labels(chain, redact_url(good.url()))._value.get() == 1
        # sticky: the next call goes straight to the endpoint that works
        assert await pool.call("eth_blockNumber", []) == "0x10"
        assert bad.hits == 1 and good.hits == 2
    finally:
        await pool.close()
    assert SECRET not in caplog.text


async def test_exhaustion_raises_connector_error_without_the_key(
    servers: tuple[NodeServer, NodeServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first, second = servers
    first.mode, second.mode = "429", "500"
    pool = RpcPool("mainnet-x", [first.url(), second.url()], timeout=0.5, policy=FAST)
    try:
        with pytest.raises(ConnectorError) as info:
            await pool.batch(BATCH)
    finally:
        await pool.close()
    text = str(info.value)
    assert "mainnet-x" in text
    assert "eth_getBlockByNumber x5" in text
    assert f"http://127.0.0.1:{first.port}" in text and f"http://127.0.0.1:{second.port}" in text
    assert "4 attempt(s)" in text
    assert SECRET not in text and SECRET not in repr(info.value.context)
    assert SECRET not in caplog.text
    assert first.hits + second.hits == 4


async def test_exhaustion_on_connection_refused(servers: tuple[NodeServer, NodeServer]) -> None:
    first, _ = servers
    port = first.port
    await first.stop()
    pool = RpcPool("down", [f"http://127.0.0.1:{port}/{SECRET}"], timeout=0.5, policy=FAST)
    try:
        with pytest.raises(ConnectorError, match="connection error") as info:
            await pool.call("eth_blockNumber", [])
    finally:
        await pool.close()
    assert SECRET not in str(info.value)
    assert errors("down", f"http://127.0.0.1:{port}", "connection") == 4


async def test_method_not_found_is_not_retried(servers: tuple[NodeServer, NodeServer]) -> None:
    first, second = servers
    first.mode = "not-found"
    pool = RpcPool("nf", [first.url(), second.url()], timeout=0.5, policy=FAST)
    try:
        with pytest.raises(RpcMethodNotFound) as info:
            await pool.batch([("eth_getBlockReceipts", ["0x1"])])
    finally:
        await pool.close()
    assert first.hits == 1 and second.hits == 0
    assert "eth_getBlockReceipts" in str(info.value) and "nf" in str(info.value)


async def test_errors_as_none_and_nullable(servers: tuple[NodeServer, NodeServer]) -> None:
    node, _ = servers
    node.mode = "call-reverts"
    pool = RpcPool("lenient", [node.url()], timeout=0.5, policy=FAST)
    try:
        got = await pool.batch([("eth_call", [{}]), ("eth_blockNumber", []),
                                ("eth_getNothing", [])], errors_as_none=True)
        assert got == [None, "0x10", None]
        with pytest.raises(ConnectorError, match="null result"):
            await pool.batch([("eth_getNothing", [])], nullable=False)
    finally:
        await pool.close()


async def test_large_batches_are_chunked_and_kept_in_order(
    servers: tuple[NodeServer, NodeServer]
) -> None:
    node, _ = servers
    pool = RpcPool("chunks", [node.url()], timeout=2, policy=FAST, chunk_size=100)
    try:
        calls = [("eth_getBlockByNumber", [hex(n), False]) for n in range(250)]
        got = await pool.batch(calls)
    finally:
        await pool.close()
    assert [r["params"][0] for r in got] == [hex(n) for n in range(250)]
    assert sorted(node.batch_sizes) == [50, 100, 100]


async def test_single_call_and_empty_batch(servers: tuple[NodeServer, NodeServer]) -> None:
    node, _ = servers
    pool = RpcPool("one", [node.url(with_key=False)], timeout=2, policy=FAST)
    try:
        assert await pool.call("eth_blockNumber", []) == "0x10"
        assert await pool.batch([]) == []
        assert pool.endpoints == [f"http://127.0.0.1:{node.port}"]
    finally:
        await pool.close()


def test_redact_url_keeps_scheme_host_port_only() -> None:
    assert redact_url("https://mainnet.infura.io/v3/abcdef") == "https://mainnet.infura.io:443"
    assert redact_url("http://user:pw@10.0.0.1:8545/?key=x") == "http://10.0.0.1:8545"
    assert redact_url("wss://node.example/ws/KEY") == "wss://node.example:443"
    assert redact_url("http://[::1]:8545/k") == "http://[::1]:8545"
    assert redact_url("http://h:99999/") == "<invalid url>"


def test_duplicate_hosts_get_distinct_labels() -> None:
    pool = RpcPool("dup", ["https://a.example/k1", "https://a.example/k2"], 1, FAST)
    assert pool.endpoints == ["https://a.example:443#0", "https://a.example:443#1"]
    assert json.dumps(pool.endpoints).count("k1") == 0


# --- the EVM block source on top of the pool (token metadata, receipts fallback) ---
# (candidates for a tests/unit/test_extract.py of their own)


def abi_string(text: bytes) -> str:
    padded = text + b"\x00" * (-len(text) % 32)
    head = (32).to_bytes(32, "big") + len(text).to_bytes(32, "big")
    return "0x" + head.hex() + padded.hex()


def test_decode_symbol_string_bytes32_and_garbage() -> None:
    assert decode_symbol(abi_string(b"USDC")) == "USDC"
    assert decode_symbol("0x" + b"MKR".ljust(32, b"\x00").hex()) == "MKR"
    assert decode_symbol("0x") is None
    assert decode_symbol(None) is None
    assert decode_symbol("0xzz") is None
    assert decode_symbol(abi_string(b"\xff\xfe")) is None
    assert decode_symbol(abi_string(b"A\x07B")) is None
    assert decode_symbol("0x" + "00" * 32) is None
    assert decode_symbol("0x" + (2**200).to_bytes(32, "big").hex() + "00" * 64) is None
    assert decode_decimals("0x" + (6).to_bytes(32, "big").hex()) == 6
    assert decode_decimals("0x" + (256).to_bytes(32, "big").hex()) is None
    assert decode_decimals("0x") is None


@given(st.binary(max_size=300))
def test_decode_symbol_never_raises(data: bytes) -> None:
    result = decode_symbol("0x" + data.hex())
    assert result is None or (0 < len(result) <= 64 and result.isprintable())


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1,
               max_size=20).filter(str.isprintable))
def test_decode_symbol_round_trips_abi_strings(text: str) -> None:
    assert decode_symbol(abi_string(text.encode())) == text.strip()


class ScriptedPool:
    """Answers like a node without eth_getBlockReceipts; counts what was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def block(self, n: int) -> dict[str, Any]:
        tx = {"hash": f"0x{n:064x}", "from": "0x" + "11" * 20, "to": "0x" + "22" * 20,
              "value": "0x5", "transactionIndex": "0x0", "blockNumber": hex(n),
              "blockHash": f"0x{n + 1000:064x}", "input": "0x"}
        return {"number": hex(n), "hash": f"0x{n + 1000:064x}", "parentHash": f"0x{n + 999:064x}",
                "timestamp": hex(1_700_000_000 + n), "transactions": [tx]}

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        n = int(tx_hash, 16)
        log = {"address": "0x" + "ab" * 20, "logIndex": "0x0", "transactionHash": tx_hash,
               "topics": [TRANSFER_TOPIC, "0x" + "00" * 12 + "11" * 20,
                          "0x" + "00" * 12 + "22" * 20],
               "data": "0x" + (7).to_bytes(32, "big").hex(), "blockHash": f"0x{n + 1000:064x}",
               "blockNumber": hex(n), "transactionIndex": "0x0", "removed": False}
        return {"transactionHash": tx_hash, "blockHash": f"0x{n + 1000:064x}", "status": "0x1",
                "blockNumber": hex(n), "transactionIndex": "0x0", "logs": [log],
                "contractAddress": None, "from": "0x" + "11" * 20, "to": "0x" + "22" * 20}

    async def batch(self, calls: list[tuple[str, list[Any]]], **_: Any) -> list[Any]:
        self.asked += [m for m, _ in calls]
        out: list[Any] = []
        for method, params in calls:
            if method == "eth_getBlockReceipts":
                raise RpcMethodNotFound("no", method=method)
            if method == "eth_getBlockByNumber":
                out.append(self.block(int(params[0], 16)))
            elif method == "eth_getTransactionReceipt":
                out.append(self.receipt(params[0]))
            elif params[0]["data"] == "0x95d89b41":
                out.append(abi_string(b"TKN"))
            else:
                out.append("0x" + (6).to_bytes(32, "big").hex())
        return out


async def test_receipts_fall_back_per_transaction_and_tokens_are_cached() -> None:
    pool = ScriptedPool()
    cfg = ChainConfig(name="t", chain_id=1, rpc_urls=["http://127.0.0.1:1"])
    source = EvmBlockSource(pool, cfg)  # type: ignore[arg-type]
    blocks = await source.fetch([5, 6], head=9)
    assert not source.block_receipts_supported
    assert [b.number for b in blocks] == [5, 6] and all(b.head == 9 for b in blocks)
    erc20 = [t for b in blocks for t in b.transfers if t.kind == "erc20"]
    assert [(t.asset.symbol, t.asset.decimals, t.amount) for t in erc20] == [("TKN", 6, 7)] * 2
    assert pool.asked.count("eth_getBlockReceipts") == 2  # asked once (one batch), then never
    assert pool.asked.count("eth_call") == 2  # symbol + decimals, once for the token
    pool.asked.clear()
    await source.fetch([7], head=9)
    assert pool.asked == ["eth_getBlockByNumber", "eth_getTransactionReceipt"]
