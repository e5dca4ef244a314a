"""Decode raw EVM JSON-RPC answers (block, receipts, traces) into normalized transfer records.

Pure functions, no I/O. The input is what a node returns, unchanged:

* ``block``: ``eth_getBlockByNumber(n, true)`` (hydrated transactions);
* ``receipts``: the block's receipts in transaction order (``eth_getBlockReceipts`` or one
  ``eth_getTransactionReceipt`` per transaction);
* ``traces`` (optional): ``trace_block`` (parity, a flat list with ``traceAddress``) or
  ``debug_traceBlockByNumber(n, {"tracer": "callTracer"})`` (geth, one nested call frame per
  transaction).

Decoding rules (an alert may end up in a court file, so every rule is deliberate):

Native
    A transaction with ``value > 0`` whose receipt ``status`` is not 0 moves ``value`` wei from
    ``from`` to ``to``; a contract creation (``to`` null) pays the receipt's ``contractAddress``.
    Pre-Byzantium receipts have no ``status``: the transaction counts as successful unless traces
    are given and its top-level frame carries an ``error`` (then nothing in it moved).

ERC-20
    A log whose ``topics[0]`` is ``keccak("Transfer(address,address,uint256)")``, with exactly
    three topics and exactly 32 bytes of data: from/to are the last 20 bytes of topics 1 and 2,
    the amount is the data as a big-endian unsigned integer (zero amounts are kept). Logs with
    ``removed: true`` and logs of failed transactions are skipped. Everything else with that
    topic is *not* a fungible transfer and is skipped:

    * four topics: ERC-721 (the token id is indexed);
    * one topic + 96 bytes or two topics + 64 bytes (non-indexed ``Transfer`` events): the same
      layout is used by early NFTs (CryptoKitties), so fungible and non-fungible cannot be told
      apart from the log;
    * three topics with data other than 32 bytes: not an ABI encoding of ``uint256``.

    ethereum-etl (``token_transfer_extractor.py``) splits the data into 32-byte words (the last
    one may be short) and accepts any log whose topics + words number exactly 4. It therefore
    also emits ERC-721 and non-indexed transfers, and reads 1..31 bytes of data (and odd hex
    lengths) as the value; it drops empty data and data over 32 bytes, as we do. We agree with it
    on every log with three topics and 32 bytes of data.

ERC-20 approvals
    A log whose ``topics[0]`` is ``keccak("Approval(address,address,uint256)")`` with the same
    shape as a fungible transfer (three topics, 32 bytes of data) becomes an
    :class:`~monitor.records.Approval` in ``Block.approvals``: owner and spender from topics 1
    and 2, the allowance from the data (``2**256 - 1`` is "unlimited"). EIP-2612 ``permit`` emits
    the same event. ERC-721 ``Approval`` (four topics: the token id is indexed) and other shapes
    are skipped, as are removed logs and logs of failed transactions.

Internal (traces)
    Value moved by a frame below the top level (the top-level value is the native transfer):
    parity ``call`` with ``callType == "call"``, ``create`` (``create2`` too) paying
    ``result.address``, ``suicide`` paying ``balance`` to ``refundAddress``; geth frames
    ``CALL``, ``CREATE``, ``CREATE2`` and ``SELFDESTRUCT`` with ``value > 0``.
    ``delegatecall``/``staticcall`` move nothing (a delegatecall's value is the parent's
    ``msg.value``, not a new payment). ``callcode`` is skipped too: it runs the callee's code in
    the caller's context and credits the value back to the caller itself, so no balance changes
    hands (parity even reports ``to == from``; geth reports the code address as ``to``, which
    would be a false payment). A frame with an ``error`` moves nothing, and neither does any
    frame below it; nothing in a failed transaction moves value. ``reward`` traces are skipped.
    ``trace_address`` is the path of child indices (parity ``traceAddress``; for geth computed
    from the nesting). A geth ``SELFDESTRUCT`` frame without ``to`` or ``value`` (the legacy JS
    callTracer) raises: the balance it moved is unknown, and zero would be a false fact.

Output
    Addresses and hashes lower-case ``0x`` hex, amounts Python ints, ``tx_index`` from the
    transaction, ``block_time`` the header timestamp. Transfers are ordered by transaction; within
    a transaction: native, then internal (call-tree pre-order), then ERC-20 (log order).

Consistency
    Answers fetched by separate calls can straddle a reorg or come from different nodes, so they
    are cross-checked: one receipt per transaction (matched by position, else by hash), each
    receipt's and parity trace's ``blockHash`` equal to the block's, ``transactionIndex`` equal to
    the position, parity top-level traces for every transaction, geth results one per transaction
    (``txHash`` checked when present), and a failed top-level frame never paired with a receipt
    saying success.

Malformed input (null block, missing fields, non-hex strings, wrong types, receipts or traces that
do not match the block's transactions) raises :class:`~monitor.errors.RpcResponseError` with
``chain``, ``block``, ``tx`` and ``field`` context; no other exception escapes :func:`map_block`.
Hex is validated strictly (``int(x, 16)`` alone would accept ``" 0x1_0"`` or Arabic-Indic
digits); addresses are taken as the last 20 bytes of a topic, as ethereum-etl does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from monitor.errors import RpcResponseError
from monitor.records import (
    Approval,
    Asset,
    Block,
    Transfer,
    log_approval_id,
    log_transfer_id,
    native_transfer_id,
    trace_transfer_id,
)

__all__ = [
    "APPROVAL_TOPIC",
    "NATIVE_ETH",
    "TRANSFER_TOPIC",
    "TraceFormat",
    "map_block",
    "parse_address",
    "parse_hash",
    "parse_quantity",
]

TraceFormat = Literal["parity", "geth"]

#: ``keccak("Transfer(address,address,uint256)")``: shared by ERC-20 and ERC-721.
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

#: ``keccak("Approval(address,address,uint256)")``: shared by ERC-20 (incl. EIP-2612 permit)
#: and ERC-721.
APPROVAL_TOPIC = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"

#: The default native asset (Ethereum mainnet).
NATIVE_ETH = Asset(kind="native", symbol="ETH", decimals=18)

# Strict shapes. ``int(x, 16)`` alone is too lenient for outside input: it accepts surrounding
# whitespace, underscores, signs and non-ASCII digits ("0x\u0661" == 1). Character classes in
# these patterns are ASCII only, and ``fullmatch`` anchors both ends. A quantity has at most 64
# hex digits: no EVM value exceeds 2**256 - 1.
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}").fullmatch
_WORD = re.compile(r"0x[0-9a-fA-F]{64}").fullmatch
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}").fullmatch
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*").fullmatch

_SEQUENCES = (list, tuple)
_GETH_VALUE_FRAMES = frozenset({"CALL", "CREATE", "CREATE2"})
_GETH_INERT_FRAMES = frozenset({"DELEGATECALL", "STATICCALL", "CALLCODE"})
_PARITY_INERT_CALLS = frozenset({"delegatecall", "staticcall", "callcode"})
_EXPECTED_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)

_NO_CALLS: Mapping[str, Any] = {}

_Candidate = tuple[tuple[int, ...], str, str, int]  # trace address, from, to, amount


class _Malformed(Exception):
    """Internal: a field failed validation; :func:`map_block` adds where it happened."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class _Where:
    """Internal: the position being decoded, for error context."""

    __slots__ = ("block", "tx")

    def __init__(self) -> None:
        self.block: int | None = None
        self.tx: str | int | None = None


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bad(field: str, value: object, expected: str) -> _Malformed:
    return _Malformed(field, f"{field} is not {expected}: {_describe(value)}")


def _qty(value: object, field: str) -> int:
    if type(value) is str and _QUANTITY(value):
        return int(value, 16)
    raise _bad(field, value, "a hex quantity")


def _hash(value: object, field: str) -> str:
    if type(value) is str and _WORD(value):
        return value.lower()
    raise _bad(field, value, "a 32-byte 0x hash")


def _addr(value: object, field: str) -> str:
    if type(value) is str and _ADDRESS(value):
        return value.lower()
    raise _bad(field, value, "a 20-byte 0x address")


def parse_quantity(value: object, what: str, **context: object) -> int:
    """Parse a JSON-RPC hex quantity (``"0x1b4"``) into an int, or raise ``RpcResponseError``."""
    try:
        return _qty(value, what)
    except _Malformed as exc:
        raise RpcResponseError(str(exc), field=what, **context) from None


def parse_hash(value: object, what: str, **context: object) -> str:
    """Validate a 32-byte ``0x`` hash and return it lower-case, or raise ``RpcResponseError``."""
    try:
        return _hash(value, what)
    except _Malformed as exc:
        raise RpcResponseError(str(exc), field=what, **context) from None


def parse_address(value: object, what: str, **context: object) -> str:
    """Validate a 20-byte ``0x`` address and return it lower-case, or raise ``RpcResponseError``."""
    try:
        return _addr(value, what)
    except _Malformed as exc:
        raise RpcResponseError(str(exc), field=what, **context) from None


def map_block(
    chain: str,
    block: Mapping[str, Any],
    receipts: Sequence[Mapping[str, Any]],
    traces: Sequence[Mapping[str, Any]] | None = None,
    trace_format: TraceFormat | None = None,
    tokens: Mapping[str, Asset] | None = None,
    native: Asset = NATIVE_ETH,
    head: int = 0,
) -> Block:
    """Decode one block's native, ERC-20 and internal transfers and ERC-20 approvals.

    ``trace_format`` None means: detect it from the first trace (``traceAddress`` -> parity,
    ``result`` -> geth). Without ``traces`` no internal transfers are produced. ``tokens`` maps
    lower-case token addresses to known assets; other tokens get ``Asset(kind="erc20",
    address=...)``. Raises ``RpcResponseError`` (with chain/block/tx/field) on malformed input.
    """
    if trace_format not in (None, "parity", "geth"):
        raise ValueError(f"unknown trace_format {trace_format!r}: 'parity' or 'geth'")
    where = _Where()
    try:
        return _map_block(where, chain, block, receipts, traces, trace_format, tokens, native, head)
    except _Malformed as exc:
        raise RpcResponseError(
            str(exc), chain=chain, block=where.block, tx=where.tx, field=exc.field
        ) from None
    except _EXPECTED_ERRORS as exc:
        field = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
        message = f"missing field {field!r}" if field is not None else "malformed answer"
        raise RpcResponseError(
            f"{message}: {type(exc).__name__}: {exc}",
            chain=chain,
            block=where.block,
            tx=where.tx,
            field=field,
        ) from exc


def _map_block(
    where: _Where,
    chain: str,
    block: Mapping[str, Any],
    receipts: Sequence[Mapping[str, Any]],
    traces: Sequence[Mapping[str, Any]] | None,
    trace_format: TraceFormat | None,
    tokens: Mapping[str, Asset] | None,
    native: Asset,
    head: int,
) -> Block:
    if not isinstance(block, Mapping):
        raise _bad("block", block, "a block object (block not found?)")
    number = _qty(block["number"], "number")
    where.block = number
    block_hash = _hash(block["hash"], "hash")
    parent_hash = _hash(block["parentHash"], "parentHash")
    timestamp = _qty(block["timestamp"], "timestamp")
    txs = block["transactions"]
    if type(txs) not in _SEQUENCES:
        raise _bad("transactions", txs, "a list")
    if type(receipts) not in _SEQUENCES:
        raise _bad("receipts", receipts, "a list")
    n_txs = len(txs)
    if len(receipts) != n_txs:
        raise _Malformed(
            "receipts", f"{len(receipts)} receipts for {n_txs} transactions in the block"
        )

    tx_hashes: list[str] = []
    tx_status: list[bool | None] = []  # True success, False failed, None pre-Byzantium
    natives: list[Transfer | None] = []
    calls: dict[int, Transfer] = {}
    erc20s: list[list[Transfer] | None] = []
    approvals: dict[int, list[Approval]] = {}  # position -> approvals, in log order
    receipt_by_hash: dict[str, Mapping[str, Any]] | None = None
    known_tokens: Mapping[str, Asset] = tokens if tokens is not None else {}
    token_cache: dict[str, Asset] = {}  # log address as sent -> asset

    for position, tx in enumerate(txs):
        where.tx = position
        if type(tx) is str:
            raise _Malformed(
                "transactions", "transactions are hashes: fetch the block with full txs (true)"
            )
        tx_hash = _hash(tx["hash"], "hash")
        where.tx = tx_hash
        tx_index = _qty(tx["transactionIndex"], "transactionIndex")
        if tx_index != position:
            raise _Malformed(
                "transactionIndex", f"transactionIndex {tx_index} at position {position}"
            )
        receipt = receipts[position]
        # Equality with an already validated string proves validity: skip the pattern match.
        receipt_hash = receipt["transactionHash"]
        if receipt_hash != tx_hash and _hash(receipt_hash, "receipt.transactionHash") != tx_hash:
            # Receipts fetched one by one may come back in any order: match them by hash.
            if receipt_by_hash is None:
                receipt_by_hash = {}
                for other in receipts:
                    other_hash = _hash(other["transactionHash"], "receipt.transactionHash")
                    receipt_by_hash[other_hash] = other
            matched = receipt_by_hash.get(tx_hash)
            if matched is None:
                raise _Malformed("receipt.transactionHash", "no receipt for this transaction")
            receipt = matched
        receipt_block = receipt.get("blockHash")
        if (
            receipt_block is not None
            and receipt_block != block_hash
            and _hash(receipt_block, "receipt.blockHash") != block_hash
        ):
            raise _Malformed(
                "receipt.blockHash",
                f"receipt from block {receipt_block}, not {block_hash} (reorg between calls?)",
            )
        status_field = receipt.get("status")
        status: bool | None
        if status_field is None:
            status = None
        elif status_field == "0x1":
            status = True
        elif status_field == "0x0":
            status = False
        else:
            status_value = _qty(status_field, "receipt.status")
            if status_value > 1:
                raise _bad("receipt.status", status_field, "0x0 or 0x1")
            status = status_value == 1
        tx_hashes.append(tx_hash)
        tx_status.append(status)

        # Native value.
        raw_value = tx["value"]
        value = 0 if raw_value == "0x0" else _qty(raw_value, "value")
        if value and status is not False:
            to = tx.get("to")
            if to is None:
                to_address = _addr(receipt.get("contractAddress"), "receipt.contractAddress")
            else:
                to_address = _addr(to, "to")
            natives.append(
                Transfer(
                    id=native_transfer_id(chain, tx_hash),
                    chain=chain,
                    block_number=number,
                    block_hash=block_hash,
                    block_time=timestamp,
                    tx_hash=tx_hash,
                    tx_index=tx_index,
                    kind="native",
                    from_address=_addr(tx["from"], "from"),
                    to_address=to_address,
                    asset=native,
                    amount=value,
                )
            )
        else:
            natives.append(None)
            to = tx.get("to")
            if status is not False and to is not None:
                # A zero-value call: no funds move, but it is an interaction with ``to``
                # (a sanctions rule must see a call to a sanctioned contract).
                calls[tx_index] = Transfer(
                    id=native_transfer_id(chain, tx_hash), chain=chain, block_number=number,
                    block_hash=block_hash, block_time=timestamp, tx_hash=tx_hash,
                    tx_index=tx_index, kind="native", from_address=_addr(tx["from"], "from"),
                    to_address=_addr(to, "to"), asset=native, amount=0)

        # ERC-20 Transfer and Approval logs.
        logs = receipt["logs"]
        if type(logs) not in _SEQUENCES:
            raise _bad("logs", logs, "a list")
        found_transfers: list[Transfer] | None = None
        if status is not False:
            for log in logs:
                topics = log["topics"]
                if type(topics) not in _SEQUENCES:
                    raise _bad("log.topics", topics, "a list")
                if len(topics) != 3:
                    continue  # 4 topics: ERC-721; 1-2 topics: non-indexed, ambiguous
                topic0 = topics[0]
                if topic0 == TRANSFER_TOPIC:
                    is_transfer = True
                elif topic0 == APPROVAL_TOPIC:
                    is_transfer = False
                elif type(topic0) is str:
                    topic0 = topic0.lower()
                    if topic0 == TRANSFER_TOPIC:
                        is_transfer = True
                    elif topic0 == APPROVAL_TOPIC:
                        is_transfer = False
                    else:
                        continue
                else:
                    continue
                removed = log.get("removed")
                if removed is not None and removed is not False:
                    if removed is True:
                        continue
                    raise _bad("log.removed", removed, "a boolean")
                data = log["data"]
                if type(data) is not str or not _WORD(data):
                    if type(data) is str and _DATA(data):
                        continue  # not 32 bytes: not an ABI-encoded uint256
                    raise _bad("log.data", data, "0x hex data")
                from_topic = topics[1]
                to_topic = topics[2]
                if type(from_topic) is not str or not _WORD(from_topic):
                    raise _bad("log.topics[1]", from_topic, "a 32-byte topic")
                if type(to_topic) is not str or not _WORD(to_topic):
                    raise _bad("log.topics[2]", to_topic, "a 32-byte topic")
                raw_token = log["address"]
                asset = token_cache.get(raw_token) if type(raw_token) is str else None
                if asset is None:
                    token = _addr(raw_token, "log.address")
                    asset = known_tokens.get(token)
                    if asset is None:
                        asset = Asset(kind="erc20", address=token)
                    token_cache[raw_token] = asset
                raw_index = log["logIndex"]
                if type(raw_index) is not str or not _QUANTITY(raw_index):
                    raise _bad("log.logIndex", raw_index, "a hex quantity")
                log_index = int(raw_index, 16)
                if not is_transfer:
                    approval = Approval(
                        id=log_approval_id(chain, tx_hash, log_index),
                        chain=chain,
                        block_number=number,
                        block_hash=block_hash,
                        block_time=timestamp,
                        tx_hash=tx_hash,
                        tx_index=tx_index,
                        log_index=log_index,
                        owner="0x" + from_topic[26:].lower(),
                        spender="0x" + to_topic[26:].lower(),
                        token=asset,
                        amount=int(data, 16),
                    )
                    found_approvals = approvals.get(position)
                    if found_approvals is None:
                        approvals[position] = [approval]
                    else:
                        found_approvals.append(approval)
                    continue
                transfer = Transfer(
                    id=log_transfer_id(chain, tx_hash, log_index),
                    chain=chain,
                    block_number=number,
                    block_hash=block_hash,
                    block_time=timestamp,
                    tx_hash=tx_hash,
                    tx_index=tx_index,
                    kind="erc20",
                    from_address="0x" + from_topic[26:].lower(),
                    to_address="0x" + to_topic[26:].lower(),
                    asset=asset,
                    amount=int(data, 16),
                    log_index=log_index,
                )
                if found_transfers is None:
                    found_transfers = [transfer]
                else:
                    found_transfers.append(transfer)
        erc20s.append(found_transfers)

    # Internal transfers from traces.
    internal: dict[int, list[_Candidate]] = {}
    top_failed: set[int] = set()
    if traces is not None:
        if type(traces) not in _SEQUENCES:
            raise _bad("traces", traces, "a list")
        if trace_format is None and traces:
            first = traces[0]
            if isinstance(first, Mapping) and "traceAddress" in first:
                trace_format = "parity"
            elif isinstance(first, Mapping) and "result" in first:
                trace_format = "geth"
            else:
                raise _bad("traces", first, "a parity trace or a geth callTracer result")
        if trace_format == "parity":
            _parity_internal(where, traces, block_hash, tx_hashes, tx_status, internal, top_failed)
        elif trace_format == "geth":
            _geth_internal(where, traces, tx_hashes, tx_status, internal, top_failed)

    out: list[Transfer] = []
    interactions: list[Transfer] = []
    approved: list[Approval] = []
    for position in range(n_txs):
        if tx_status[position] is False or position in top_failed:
            continue
        tx_approvals = approvals.get(position)
        if tx_approvals:
            approved.extend(tx_approvals)
        call = calls.get(position)
        if call is not None:
            interactions.append(call)
        native_transfer = natives[position]
        if native_transfer is not None:
            out.append(native_transfer)
        candidates = internal.get(position)
        if candidates:
            tx_hash = tx_hashes[position]
            for trace_address, from_address, to_address, amount in candidates:
                out.append(
                    Transfer(
                        id=trace_transfer_id(chain, tx_hash, trace_address),
                        chain=chain,
                        block_number=number,
                        block_hash=block_hash,
                        block_time=timestamp,
                        tx_hash=tx_hash,
                        tx_index=position,
                        kind="internal",
                        from_address=from_address,
                        to_address=to_address,
                        asset=native,
                        amount=amount,
                        trace_address=trace_address,
                    )
                )
        token_transfers = erc20s[position]
        if token_transfers:
            out.extend(token_transfers)

    return Block(
        chain=chain,
        number=number,
        hash=block_hash,
        parent_hash=parent_hash,
        timestamp=timestamp,
        head=head,
        transfers=tuple(out),
        interactions=tuple(interactions),
        approvals=tuple(approved),
    )


def _is_error(frame: Mapping[str, Any]) -> bool:
    error = frame.get("error")
    return error is not None and error != ""


def _parity_internal(
    where: _Where,
    traces: Sequence[Mapping[str, Any]],
    block_hash: str,
    tx_hashes: list[str],
    tx_status: list[bool | None],
    internal: dict[int, list[_Candidate]],
    top_failed: set[int],
) -> None:
    """Collect value-moving parity ``trace_block`` frames per transaction position."""
    position_of = {tx_hash: position for position, tx_hash in enumerate(tx_hashes)}
    failed_frames: dict[int, set[tuple[int, ...]]] = {}
    seen_top: set[int] = set()
    for trace in traces:
        where.tx = None
        trace_type = trace["type"]
        if trace_type == "reward":
            continue
        trace_block = trace.get("blockHash")
        if (
            trace_block is not None
            and trace_block != block_hash
            and _hash(trace_block, "trace.blockHash") != block_hash
        ):
            raise _Malformed("trace.blockHash", f"trace from block {trace_block}, not {block_hash}")
        tx_hash = trace["transactionHash"]
        position = position_of.get(tx_hash) if type(tx_hash) is str else None
        if position is None:
            tx_hash = _hash(tx_hash, "trace.transactionHash")
            position = position_of.get(tx_hash)
        where.tx = tx_hash
        if position is None:
            raise _Malformed("trace.transactionHash", "trace of a transaction not in the block")
        trace_position = trace.get("transactionPosition")
        if trace_position is not None and trace_position != position:
            raise _bad("trace.transactionPosition", trace_position, f"{position}")
        raw_address = trace["traceAddress"]
        if type(raw_address) not in _SEQUENCES:
            raise _bad("trace.traceAddress", raw_address, "a list")
        for step in raw_address:
            if type(step) is not int or step < 0:
                raise _bad("trace.traceAddress", raw_address, "a list of child indices")
        trace_address = tuple(raw_address)
        errored = _is_error(trace)
        if not trace_address:
            if position in seen_top:
                raise _Malformed("trace.traceAddress", "two top-level traces for one transaction")
            seen_top.add(position)
            if errored:
                if tx_status[position] is True:
                    raise _Malformed(
                        "trace.error", "top-level trace failed but the receipt says success"
                    )
                top_failed.add(position)
            continue
        if errored:
            failed_frames.setdefault(position, set()).add(trace_address)
            continue
        if tx_status[position] is False:
            continue
        action = trace["action"]
        if trace_type == "call":
            call_type = action["callType"]
            if call_type != "call":
                if call_type in _PARITY_INERT_CALLS:
                    continue
                raise _bad("trace.action.callType", call_type, "a known call type")
            amount = _qty(action["value"], "trace.action.value")
            if not amount:
                continue
            from_address = _addr(action["from"], "trace.action.from")
            to_address = _addr(action["to"], "trace.action.to")
        elif trace_type in ("create", "create2"):
            amount = _qty(action["value"], "trace.action.value")
            if not amount:
                continue
            from_address = _addr(action["from"], "trace.action.from")
            to_address = _addr(trace["result"]["address"], "trace.result.address")
        elif trace_type in ("suicide", "selfdestruct"):
            amount = _qty(action["balance"], "trace.action.balance")
            if not amount:
                continue
            from_address = _addr(action["address"], "trace.action.address")
            to_address = _addr(action["refundAddress"], "trace.action.refundAddress")
        else:
            raise _bad("trace.type", trace_type, "call, create, suicide or reward")
        candidates = internal.get(position)
        if candidates is None:
            internal[position] = [(trace_address, from_address, to_address, amount)]
        else:
            candidates.append((trace_address, from_address, to_address, amount))

    where.tx = None
    if len(seen_top) != len(tx_hashes):
        raise _Malformed(
            "traces", f"top-level traces for {len(seen_top)} of {len(tx_hashes)} transactions"
        )
    # A frame below a failed frame moved nothing, even if it reports no error of its own.
    for position, failed in failed_frames.items():
        candidates = internal.get(position)
        if candidates:
            internal[position] = [
                candidate
                for candidate in candidates
                if not any(candidate[0][:depth] in failed for depth in range(1, len(candidate[0])))
            ]
    # Nodes list traces in call-tree pre-order, which is trace-address order; sort anyway so the
    # result never depends on the order of the answer.
    for candidates in internal.values():
        if len(candidates) > 1:
            candidates.sort()


def _geth_internal(
    where: _Where,
    traces: Sequence[Mapping[str, Any]],
    tx_hashes: list[str],
    tx_status: list[bool | None],
    internal: dict[int, list[_Candidate]],
    top_failed: set[int],
) -> None:
    """Collect value-moving geth ``callTracer`` frames per transaction position."""
    if len(traces) != len(tx_hashes):
        raise _Malformed("traces", f"{len(traces)} call traces for {len(tx_hashes)} transactions")
    for position, entry in enumerate(traces):
        tx_hash = tx_hashes[position]
        where.tx = tx_hash
        entry_hash = entry.get("txHash")
        if (
            entry_hash is not None
            and entry_hash != tx_hash
            and _hash(entry_hash, "trace.txHash") != tx_hash
        ):
            raise _Malformed("trace.txHash", f"call trace of {entry_hash} at this position")
        top = entry.get("result")
        if type(top) is not dict and not isinstance(top, Mapping):
            raise _Malformed("trace.result", f"no call trace: {_describe(entry.get('error', top))}")
        if _is_error(top):
            if tx_status[position] is True:
                raise _Malformed(
                    "trace.error", "top-level frame failed but the receipt says success"
                )
            top_failed.add(position)
            continue
        if tx_status[position] is False:
            continue
        found: list[_Candidate] = []
        # Explicit stack, children pushed in reverse: a pre-order walk without recursion (call
        # depth reaches 1024, beyond Python's recursion limit).
        stack: list[tuple[Mapping[str, Any], tuple[int, ...]]] = []
        frame: Mapping[str, Any] = top
        trace_address: tuple[int, ...] = ()
        while True:
            calls = frame.get("calls")
            if calls:
                if type(calls) not in _SEQUENCES:
                    raise _bad("trace.calls", calls, "a list")
                for index in range(len(calls) - 1, -1, -1):
                    child = calls[index]
                    if type(child) is not dict and not isinstance(child, Mapping):
                        raise _bad("trace.calls", child, "a call frame")
                    stack.append((child, (*trace_address, index)))
            if not stack:
                break
            frame, trace_address = stack.pop()
            error = frame.get("error")
            if error is not None and error != "":
                frame = _NO_CALLS  # this frame and all below it moved nothing
                continue
            frame_type = frame["type"]
            if frame_type in _GETH_VALUE_FRAMES:
                raw_value = frame.get("value")
                # Serializers omit a zero value; CALL/CREATE frames always carry it otherwise.
                if raw_value is not None and raw_value != "0x0":
                    amount = _qty(raw_value, "trace.value")
                    if amount:
                        found.append(
                            (
                                trace_address,
                                _addr(frame["from"], "trace.from"),
                                _addr(frame["to"], "trace.to"),
                                amount,
                            )
                        )
            elif frame_type == "SELFDESTRUCT":
                raw_value = frame.get("value")
                if raw_value is None or frame.get("to") is None:
                    raise _Malformed(
                        "trace.value",
                        "SELFDESTRUCT frame without to/value (legacy callTracer): the balance "
                        "it moved is unknown; use trace_block or a newer node",
                    )
                amount = _qty(raw_value, "trace.value")
                if amount:
                    found.append(
                        (
                            trace_address,
                            _addr(frame["from"], "trace.from"),
                            _addr(frame["to"], "trace.to"),
                            amount,
                        )
                    )
            elif frame_type not in _GETH_INERT_FRAMES:
                raise _bad("trace.type", frame_type, "a known call frame type")
        if found:
            internal[position] = found
    where.tx = None
