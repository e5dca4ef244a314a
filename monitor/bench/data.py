"""Prepare an anvil chain of realistic blocks for the benchmark.

Blocks hold a mix of native transfers, ERC-20 ``transfer`` calls and ``Splitter.split`` calls
(whose payouts are internal value transfers that only a trace shows). Transactions are sent in
JSON-RPC batches from anvil's own funded dev accounts (anvil signs them with their keys), with
automine off, and one ``evm_mine`` seals each block, so every block holds exactly the
transactions meant for it.
"""

from __future__ import annotations

import http.client
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from eth_abi import encode as abi_encode
from eth_utils import keccak

from monitor.demo.build_contracts import load_artifacts
from monitor.errors import ServiceError

GWEI = 10**9
MAX_FEE = 200 * GWEI
PRIORITY_FEE = GWEI
TRANSFER_SELECTOR = keccak(text="transfer(address,uint256)")[:4]
SPLIT_SELECTOR = keccak(text="split(address[])")[:4]
GAS = {"native": 21_000, "erc20": 70_000, "split": 160_000}


class JsonRpc:
    """A minimal synchronous JSON-RPC client with batches (one keep-alive connection)."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._ids = itertools.count(1)

    def _post(self, payload: Any) -> Any:
        body = orjson.dumps(payload)
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", "/", body, {"Content-Type": "application/json"})
                return orjson.loads(self._conn.getresponse().read())
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        """Call one method; an error object raises ServiceError."""
        reply = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                            "params": params or []})
        if reply.get("error"):
            raise ServiceError(f"{method} failed: {reply['error']}")
        return reply.get("result")

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Call several methods in one batch; any error object raises ServiceError."""
        if not calls:
            return []
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                   for i, (m, p) in enumerate(calls)]
        replies = sorted(self._post(payload), key=lambda r: r["id"])
        for reply in replies:
            if reply.get("error"):
                method = calls[reply["id"]][0]
                raise ServiceError(f"{method} failed: {reply['error']}")
        return [r.get("result") for r in replies]

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class ChainData:
    """What was prepared: the measured block range and what it holds."""

    rpc_url: str
    first_block: int
    last_block: int
    transactions: int
    expected: dict[str, int]  # transfers by kind the connector should find
    token: str
    splitter: str
    senders: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    prepare_seconds: float = 0.0

    @property
    def blocks(self) -> int:
        """Number of blocks in the measured range."""
        return self.last_block - self.first_block + 1

    @property
    def transfers(self) -> int:
        """Transfers the connector should find in the range."""
        return sum(self.expected.values())


def _addr_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def erc20_transfer_data(to: str, amount: int) -> str:
    """Calldata of ``transfer(to, amount)``."""
    return "0x" + (TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to, amount])).hex()


def split_data(recipients: list[str]) -> str:
    """Calldata of ``split(recipients)``."""
    return "0x" + (SPLIT_SELECTOR + abi_encode(["address[]"], [recipients])).hex()


def _deploy_code(name: str, types: list[str], args: list[Any]) -> str:
    artifact = load_artifacts()[name]
    return str(artifact["bytecode"]) + abi_encode(types, args).hex()


class ChainPreparer:
    """Fills an anvil node (started with many dev accounts) with realistic blocks."""

    def __init__(self, rpc_url: str, seed: int = 6) -> None:
        self.rpc_url = rpc_url
        self.rpc = JsonRpc(rpc_url)
        self.random = random.Random(seed)  # noqa: S311 - test data, not secrets
        self.accounts: list[str] = [a.lower() for a in self.rpc.call("eth_accounts")]
        self.nonces: dict[str, int] = {}

    def _tx(self, sender: str, to: str | None, *, value: int = 0, data: str = "0x",
            gas: int) -> tuple[str, list[Any]]:
        nonce = self.nonces.get(sender, 0)
        self.nonces[sender] = nonce + 1
        tx: dict[str, Any] = {"from": sender, "value": hex(value), "data": data,
                              "gas": hex(gas), "nonce": hex(nonce), "type": "0x2",
                              "maxFeePerGas": hex(MAX_FEE),
                              "maxPriorityFeePerGas": hex(PRIORITY_FEE)}
        if to is not None:
            tx["to"] = to
        return ("eth_sendTransaction", [tx])

    def _mine(self, calls: list[tuple[str, list[Any]]]) -> int:
        """Submit ``calls`` as one batch, mine one block, check it holds all of them."""
        hashes = []
        for i in range(0, len(calls), 500):
            hashes.extend(self.rpc.batch(calls[i:i + 500]))
        self.rpc.call("evm_mine")
        block = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        if len(block["transactions"]) != len(hashes):
            raise ServiceError(f"block {int(block['number'], 16)} holds "
                               f"{len(block['transactions'])} of {len(hashes)} transactions "
                               "(gas limit?)")
        return int(block["number"], 16)

    def _receipt_ok(self, tx_hash: str) -> dict[str, Any]:
        receipt = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
        if not receipt or receipt.get("status") != "0x1":
            raise ServiceError(f"set-up transaction {tx_hash} failed")
        return dict(receipt)

    def prepare(self, blocks: int, txs_per_block: int, recipients: int = 20_000) -> ChainData:
        """Deploy the contracts, fund the senders with tokens, then mine ``blocks`` blocks."""
        began = time.monotonic()
        self.rpc.call("evm_setAutomine", [False])
        deployer, senders = self.accounts[0], self.accounts[1:]
        if len(senders) < txs_per_block:
            raise ServiceError(f"need {txs_per_block + 1} dev accounts, anvil has "
                               f"{len(self.accounts)}")
        token_call = self._tx(deployer, None, gas=3_000_000, data=_deploy_code(
            "Token", ["string", "string", "uint8", "uint256"],
            ["Bench USD", "bUSD", 6, 10**15 * 10**6]))
        splitter_call = self._tx(deployer, None, gas=3_000_000,
                                 data=_deploy_code("Splitter", [], []))
        deploy_hashes = self.rpc.batch([token_call, splitter_call])
        self.rpc.call("evm_mine")
        token = str(self._receipt_ok(deploy_hashes[0])["contractAddress"]).lower()
        splitter = str(self._receipt_ok(deploy_hashes[1])["contractAddress"]).lower()
        # Set-up block(s): every sender gets tokens (outside the measured range).
        fund = [self._tx(deployer, token, gas=GAS["erc20"],
                         data=erc20_transfer_data(s, 10**12 * 10**6)) for s in senders]
        for i in range(0, len(fund), 300):
            self._mine(fund[i:i + 300])
        pool = ["0x" + self.random.randbytes(20).hex() for _ in range(recipients)]
        expected = {"native": 0, "erc20": 0, "internal": 0}
        first = last = -1
        count = 0
        for _ in range(blocks):
            calls = []
            for sender in self.random.sample(senders, txs_per_block):
                roll = self.random.random()
                if roll < 0.5:
                    to = self.random.choice(pool if roll < 0.4 else senders)
                    calls.append(self._tx(sender, to, value=self.random.randrange(1, 10**18),
                                          gas=GAS["native"]))
                    expected["native"] += 1
                elif roll < 0.85:
                    to = self.random.choice(pool)
                    amount = self.random.randrange(1, 10**9)
                    calls.append(self._tx(sender, token, gas=GAS["erc20"],
                                          data=erc20_transfer_data(to, amount)))
                    expected["erc20"] += 1
                else:
                    payees = self.random.sample(pool, 2)
                    calls.append(self._tx(sender, splitter, value=2 * 10**15,
                                          gas=GAS["split"], data=split_data(payees)))
                    expected["native"] += 1
                    expected["internal"] += 2
            number = self._mine(calls)
            first = number if first < 0 else first
            last = number
            count += len(calls)
        self.rpc.call("evm_setAutomine", [True])
        return ChainData(rpc_url=self.rpc_url, first_block=first, last_block=last,
                         transactions=count, expected=expected, token=token, splitter=splitter,
                         senders=senders, recipients=pool,
                         prepare_seconds=time.monotonic() - began)

    def close(self) -> None:
        """Close the RPC connection."""
        self.rpc.close()
