"""Fetch EVM blocks with receipts, traces and token metadata in JSON-RPC batches, then map them."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.evm import mapping
from connectors.retry import RetryPolicy, retry
from connectors.rpc import Call, RpcMethodNotFound, RpcPool
from monitor.errors import ConnectorError, RpcResponseError
from monitor.records import Asset, Block
from monitor.settings import ChainConfig

log = logging.getLogger(__name__)

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
_TOKEN_TOPICS = frozenset({TRANSFER_TOPIC, mapping.APPROVAL_TOPIC})  # logs whose token we name
SYMBOL_SELECTOR = "0x95d89b41"
DECIMALS_SELECTOR = "0x313ce567"
MAX_SYMBOL_CHARS = 64
_CONSISTENCY_POLICY = RetryPolicy(base_seconds=0.2, cap_seconds=2.0, max_attempts=4)


async def _nothing() -> None:
    """Stands in for a batch that is not asked for."""


class InconsistentResponse(RpcResponseError):
    """Receipts or traces belong to another block than the one fetched (a reorg in between)."""


def _hex_bytes(result: Any) -> bytes | None:
    if not isinstance(result, str) or not result.startswith(("0x", "0X")):
        return None
    try:
        return bytes.fromhex(result[2:])
    except ValueError:
        return None


def decode_symbol(result: Any) -> str | None:
    """Decode a ``symbol()`` answer, ABI ``string`` or ``bytes32``; ``None`` if it is garbage."""
    data = _hex_bytes(result)
    if data is None:
        return None
    if len(data) == 32:
        raw = data.rstrip(b"\x00")
    elif len(data) >= 64:
        offset = int.from_bytes(data[:32], "big")
        if offset > len(data) - 32:
            return None
        length = int.from_bytes(data[offset:offset + 32], "big")
        if length > 4 * MAX_SYMBOL_CHARS or offset + 32 + length > len(data):
            return None
        raw = data[offset + 32:offset + 32 + length]
    else:
        return None
    try:
        text = raw.decode("utf-8").strip("\x00").strip()
    except UnicodeDecodeError:
        return None
    if not text or len(text) > MAX_SYMBOL_CHARS or not text.isprintable():
        return None
    return text


def decode_decimals(result: Any) -> int | None:
    """Decode a ``decimals()`` answer (uint8 in a 32-byte word); ``None`` if out of range."""
    data = _hex_bytes(result)
    if data is None or len(data) != 32:
        return None
    value = int.from_bytes(data, "big")
    return value if value <= 255 else None


class TokenCache:
    """Least-recently-used cache of ERC-20 metadata by lower-case contract address."""

    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        self._items: OrderedDict[str, Asset] = OrderedDict()

    def get(self, address: str) -> Asset | None:
        """Return the cached asset and mark it recently used."""
        asset = self._items.get(address)
        if asset is not None:
            self._items.move_to_end(address)
        return asset

    def put(self, asset: Asset) -> None:
        """Store an asset, evicting the least recently used beyond ``max_size``."""
        if asset.address is None:
            return
        self._items[asset.address] = asset
        self._items.move_to_end(asset.address)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def token_addresses(receipts: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
    """Contracts that emitted an ERC-20 ``Transfer`` or ``Approval`` (3 topics), in order.

    Only a look-up list for token metadata: malformed receipts and logs are skipped here and
    reported with their location by the mapping, which validates them.
    """
    seen: dict[str, None] = {}
    for block_receipts in receipts:
        for receipt in block_receipts:
            logs = receipt.get("logs") if isinstance(receipt, dict) else None
            for entry in logs if isinstance(logs, list) else ():
                if not isinstance(entry, dict):
                    continue
                topics = entry.get("topics")
                if not isinstance(topics, list):
                    continue
                address = entry.get("address")
                if (len(topics) == 3 and isinstance(topics[0], str)
                        and topics[0].lower() in _TOKEN_TOPICS and isinstance(address, str)):
                    seen[address.lower()] = None
    return list(seen)


def _same_hash(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.lower() == b.lower()


class EvmBlockSource:
    """Blocks of one EVM chain from its JSON-RPC nodes, mapped to :class:`Block` records."""

    def __init__(self, pool: RpcPool, chain_cfg: ChainConfig, token_cache_size: int = 10_000):
        self.pool = pool
        self.cfg = chain_cfg
        self.native = Asset(
            kind="native", symbol=chain_cfg.native_symbol, decimals=chain_cfg.native_decimals
        )
        self.tokens = TokenCache(token_cache_size)
        self.block_receipts_supported = True

    async def head(self) -> int:
        """Latest block number of the node."""
        result = await self.pool.call("eth_blockNumber", [], nullable=False)
        return mapping.parse_quantity(result, "eth_blockNumber")

    async def block_header(self, number: int) -> tuple[str, str]:
        """Return ``(hash, parent_hash)`` of the node's canonical block at ``number``."""
        block = await self.pool.call("eth_getBlockByNumber", [hex(number), False], nullable=False)
        if not isinstance(block, dict) or not isinstance(block.get("hash"), str) \
                or not isinstance(block.get("parentHash"), str):
            raise RpcResponseError("block header without hash/parentHash",
                                   chain=self.cfg.name, block=number)
        return block["hash"].lower(), block["parentHash"].lower()

    async def fetch(self, numbers: list[int], head: int) -> list[Block]:
        """Fetch and map ``numbers`` (ascending) with a few JSON-RPC batches; retried if torn."""
        if not numbers:
            return []

        def give_up_on(exc: BaseException, attempt: int) -> None:
            if isinstance(exc, RpcMethodNotFound):
                raise exc
            log.warning("chain %s: blocks %d..%d: %s (attempt %d)",
                        self.cfg.name, numbers[0], numbers[-1], exc, attempt + 1)

        return await retry(lambda: self._fetch_once(numbers, head), _CONSISTENCY_POLICY,
                           on_error=give_up_on, retry_on=(RpcResponseError,))

    async def _fetch_once(self, numbers: list[int], head: int) -> list[Block]:
        # Blocks, receipts and traces are asked for at once (three batches in flight): each
        # answer is then checked against the block hashes, so a reorg in between is caught.
        quantities = [hex(n) for n in numbers]
        block_calls: list[Call] = [("eth_getBlockByNumber", [q, True]) for q in quantities]
        by_block = self.block_receipts_supported
        answers = await asyncio.gather(
            self.pool.batch(block_calls, nullable=False),
            self.pool.batch([("eth_getBlockReceipts", [q]) for q in quantities],
                            nullable=False) if by_block else _nothing(),
            self._trace_batch(quantities) if self.cfg.traces != "none" else _nothing(),
            return_exceptions=True,
        )
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, RpcMethodNotFound):
                raise answer
        raw_blocks, raw_receipts, raw_traces = answers
        if isinstance(raw_blocks, BaseException):
            raise raw_blocks
        blocks = [self._check_block(n, b) for n, b in zip(numbers, raw_blocks, strict=True)]
        if isinstance(raw_traces, BaseException):
            raise raw_traces
        if isinstance(raw_receipts, RpcMethodNotFound):
            log.warning("chain %s: node lacks eth_getBlockReceipts; using "
                        "eth_getTransactionReceipt from now on", self.cfg.name)
            self.block_receipts_supported = False
        if self.block_receipts_supported and isinstance(raw_receipts, list):
            receipts = self._group_block_receipts(blocks, raw_receipts)
        else:
            receipts = await self._receipts(blocks)
        traces = (self._group_traces(blocks, raw_traces) if isinstance(raw_traces, list)
                  else None)
        tokens = await self._token_assets(receipts) if self.cfg.token_metadata else None
        trace_format = None if self.cfg.traces == "none" else self.cfg.traces
        return [
            mapping.map_block(
                self.cfg.name, block, block_receipts,
                traces=traces[i] if traces is not None else None,
                trace_format=trace_format, tokens=tokens, native=self.native, head=head,
            )
            for i, (block, block_receipts) in enumerate(zip(blocks, receipts, strict=True))
        ]

    def _check_block(self, number: int, block: Any) -> dict[str, Any]:
        if not isinstance(block, dict) or not isinstance(block.get("hash"), str):
            raise RpcResponseError("eth_getBlockByNumber: not a block object",
                                   chain=self.cfg.name, block=number)
        if mapping.parse_quantity(block.get("number"), "block number") != number:
            raise RpcResponseError("eth_getBlockByNumber: answered another block number",
                                   chain=self.cfg.name, block=number)
        if not isinstance(block.get("transactions"), list):
            raise RpcResponseError("eth_getBlockByNumber: transactions missing",
                                   chain=self.cfg.name, block=number)
        return block

    def _group_block_receipts(self, blocks: list[dict[str, Any]],
                              result: list[Any]) -> list[list[dict[str, Any]]]:
        grouped = [r if isinstance(r, list) else [] for r in result]
        for block, receipts in zip(blocks, grouped, strict=True):
            self._check_receipts(block, receipts)
        return grouped

    async def _receipts(self, blocks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Receipts one transaction at a time (nodes without ``eth_getBlockReceipts``)."""
        calls: list[Call] = [
            ("eth_getTransactionReceipt", [self._tx_hash(block, tx)])
            for block in blocks for tx in block["transactions"]
        ]
        flat = await self.pool.batch(calls, nullable=False)
        grouped, at = [], 0
        for block in blocks:
            count = len(block["transactions"])
            receipts = list(flat[at:at + count])
            at += count
            self._check_receipts(block, receipts)
            grouped.append(receipts)
        return grouped

    def _tx_hash(self, block: dict[str, Any], tx: Any) -> str:
        if isinstance(tx, dict) and isinstance(tx.get("hash"), str):
            return str(tx["hash"])
        raise RpcResponseError("transaction without hash", chain=self.cfg.name,
                               block=block.get("number"))

    def _check_receipts(self, block: dict[str, Any], receipts: list[Any]) -> None:
        txs = block["transactions"]
        if len(receipts) != len(txs):
            raise InconsistentResponse(
                f"{len(receipts)} receipts for {len(txs)} transactions",
                chain=self.cfg.name, block=block.get("number"))
        for tx, receipt in zip(txs, receipts, strict=True):
            if not isinstance(receipt, dict) \
                    or not _same_hash(receipt.get("blockHash"), block["hash"]) \
                    or not _same_hash(receipt.get("transactionHash"), self._tx_hash(block, tx)):
                raise InconsistentResponse("receipt of another block or transaction",
                                           chain=self.cfg.name, block=block.get("number"))

    async def _trace_batch(self, quantities: list[str]) -> list[Any]:
        if self.cfg.traces == "parity":
            calls: list[Call] = [("trace_block", [q]) for q in quantities]
        else:
            calls = [("debug_traceBlockByNumber", [q, {"tracer": "callTracer"}])
                     for q in quantities]
        return await self.pool.batch(calls)

    def _group_traces(self, blocks: list[dict[str, Any]], result: list[Any]) -> list[list[Any]]:
        traces = [t if isinstance(t, list) else [] for t in result]
        for block, block_traces in zip(blocks, traces, strict=True):
            self._check_traces(block, block_traces)
        return traces

    def _check_traces(self, block: dict[str, Any], traces: list[Any]) -> None:
        if self.cfg.traces == "parity":
            torn = any(isinstance(t, dict) and t.get("blockHash") is not None
                       and not _same_hash(t.get("blockHash"), block["hash"]) for t in traces)
        else:
            txs = block["transactions"]
            torn = len(traces) != len(txs) or any(
                isinstance(t, dict) and t.get("txHash") is not None
                and not _same_hash(t.get("txHash"), self._tx_hash(block, tx))
                for t, tx in zip(traces, txs, strict=False)
            )
        if torn:
            raise InconsistentResponse("traces of another block", chain=self.cfg.name,
                                       block=block.get("number"))

    async def _token_assets(
        self, receipts: Sequence[Sequence[dict[str, Any]]]
    ) -> Mapping[str, Asset]:
        found: dict[str, Asset] = {}
        missing: list[str] = []
        for address in token_addresses(receipts):
            cached = self.tokens.get(address)
            if cached is not None:
                found[address] = cached
            else:
                missing.append(address)
        if missing:
            found.update(await self._fetch_metadata(missing))
        return found

    async def _fetch_metadata(self, addresses: list[str]) -> dict[str, Asset]:
        calls: list[Call] = []
        for address in addresses:
            calls.append(("eth_call", [{"to": address, "data": SYMBOL_SELECTOR}, "latest"]))
            calls.append(("eth_call", [{"to": address, "data": DECIMALS_SELECTOR}, "latest"]))
        try:
            results = await self.pool.batch(calls, errors_as_none=True)
        except ConnectorError as exc:
            log.warning("chain %s: token metadata unavailable for %d contract(s): %s",
                        self.cfg.name, len(addresses), exc)
            return {a: Asset(kind="erc20", address=a) for a in addresses}
        assets: dict[str, Asset] = {}
        for i, address in enumerate(addresses):
            asset = Asset(kind="erc20", address=address, symbol=decode_symbol(results[2 * i]),
                          decimals=decode_decimals(results[2 * i + 1]))
            self.tokens.put(asset)
            assets[address] = asset
        return assets
