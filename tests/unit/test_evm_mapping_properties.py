"""Property tests for the EVM decoder: garbled input only ever raises RpcResponseError."""

from __future__ import annotations

import contextlib
import copy
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.evm.mapping import TRANSFER_TOPIC, map_block, parse_hash, parse_quantity
from monitor.errors import RpcResponseError
from monitor.records import BLOCK_DECODER, Block, encode

CHAIN = "ethereum"
BLOCK_HASH = "0x" + "ab" * 32
DETERMINISTIC = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- strategies

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.floats(),
    st.text(max_size=70),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
hexish = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["0x", "0X", "", " 0x", "0x0"]),
    st.text(alphabet="0123456789abcdefABCDEF_ xg\u0661-+\n", max_size=70),
)
special: st.SearchStrategy[Any] = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        2**300,
        1.5,
        "",
        "0x",
        "0x0",
        "0x1",
        [],
        {},
        [[]],
        TRANSFER_TOPIC,
        TRANSFER_TOPIC.upper(),
        "0x" + "00" * 32,
        "0x" + "00" * 20,
        "0x" + "ff" * 32,
        "0x" + "f" * 65,
        "call",
        "create",
        "suicide",
        "reward",
        "delegatecall",
        "CALL",
        "SELFDESTRUCT",
        "CREATE2",
        "Reverted",
    ]
)
garbage = st.one_of(special, hexish, json_values)


def tx_hash(i: int) -> str:
    return "0x" + f"{i + 1:064x}"


def address(n: int) -> str:
    return "0x" + f"{n:040x}"


def word(addr: str) -> str:
    return "0x" + "00" * 12 + addr[2:]


def base_case() -> dict[str, Any]:
    """A small valid block: native, ERC-20, ERC-721 logs, parity and geth traces."""
    txs = [
        {
            "hash": tx_hash(i),
            "transactionIndex": hex(i),
            "from": address(1),
            "to": address(2) if i else None,
            "value": hex(i + 1),
        }
        for i in range(2)
    ]
    receipts = [
        {
            "transactionHash": tx_hash(i),
            "blockHash": BLOCK_HASH,
            "status": "0x1",
            "contractAddress": address(9) if i == 0 else None,
            "logs": [
                {
                    "address": address(7),
                    "topics": [TRANSFER_TOPIC, word(address(1)), word(address(2))],
                    "data": "0x" + f"{1000 + i:064x}",
                    "logIndex": hex(2 * i),
                    "removed": False,
                },
                {
                    "address": address(8),
                    "topics": [
                        TRANSFER_TOPIC,
                        word(address(1)),
                        word(address(2)),
                        word(address(3)),
                    ],
                    "data": "0x",
                    "logIndex": hex(2 * i + 1),
                },
            ],
        }
        for i in range(2)
    ]
    parity = []
    for i in range(2):
        parity.append(
            {
                "type": "call",
                "action": {
                    "callType": "call",
                    "from": address(1),
                    "to": address(2),
                    "value": "0x1",
                },
                "result": {"gasUsed": "0x0", "output": "0x"},
                "traceAddress": [],
                "transactionHash": tx_hash(i),
                "transactionPosition": i,
                "blockHash": BLOCK_HASH,
            }
        )
        parity.append(
            {
                "type": "suicide",
                "action": {"address": address(2), "refundAddress": address(3), "balance": "0x5"},
                "result": None,
                "traceAddress": [0],
                "transactionHash": tx_hash(i),
                "transactionPosition": i,
                "blockHash": BLOCK_HASH,
            }
        )
    parity.append(
        {"type": "reward", "action": {"author": address(4), "value": "0x1"}, "traceAddress": []}
    )
    geth = [
        {
            "txHash": tx_hash(i),
            "result": {
                "type": "CALL",
                "from": address(1),
                "to": address(2),
                "value": "0x1",
                "calls": [
                    {"type": "CALL", "from": address(2), "to": address(3), "value": "0x2"},
                    {
                        "type": "CREATE",
                        "from": address(2),
                        "to": address(5),
                        "value": "0x3",
                        "calls": [
                            {
                                "type": "SELFDESTRUCT",
                                "from": address(5),
                                "to": address(6),
                                "value": "0x4",
                            }
                        ],
                    },
                ],
            },
        }
        for i in range(2)
    ]
    block = {
        "number": "0x64",
        "hash": BLOCK_HASH,
        "parentHash": "0x" + "cd" * 32,
        "timestamp": "0x5",
        "transactions": txs,
    }
    return {"block": block, "receipts": receipts, "parity": parity, "geth": geth}


def slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) pair in a JSON tree, containers themselves included."""
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((node, key))
            slots(value, out)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.append((node, index))
            slots(value, out)
    return out


def decode_or_rpc_error(case: dict[str, Any], which: str) -> Block | None:
    traces = None if which == "none" else case[which]
    trace_format = None if which == "none" else which
    try:
        block = map_block(CHAIN, case["block"], case["receipts"], traces, trace_format)  # type: ignore[arg-type]
    except RpcResponseError as exc:
        assert exc.context["chain"] == CHAIN
        return None
    # Whatever decodes must be well-formed and serializable.
    for t in block.transfers:
        assert type(t.amount) is int and 0 <= t.amount < 2**256
        assert t.from_address == t.from_address.lower() and len(t.from_address) == 42
        assert t.to_address == t.to_address.lower() and len(t.to_address) == 42
    assert BLOCK_DECODER.decode(encode(block)) == block
    return block


def test_base_case_is_valid() -> None:
    case = base_case()
    plain = decode_or_rpc_error(case, "none")
    assert plain is not None
    assert [t.kind for t in plain.transfers] == ["native", "erc20", "native", "erc20"]
    parity = decode_or_rpc_error(base_case(), "parity")
    geth = decode_or_rpc_error(base_case(), "geth")
    assert parity is not None and geth is not None
    assert sum(t.kind == "internal" for t in parity.transfers) == 2
    assert sum(t.kind == "internal" for t in geth.transfers) == 6


@DETERMINISTIC
@given(data=st.data(), which=st.sampled_from(["none", "parity", "geth"]))
def test_garbled_fields_raise_only_rpc_errors(data: st.DataObject, which: str) -> None:
    case = base_case()
    roots = ["block", "receipts"] + ([] if which == "none" else [which])
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        root = data.draw(st.sampled_from(roots), label="root")
        targets = slots(case[root], [])
        container, key = data.draw(st.sampled_from(targets), label="slot")
        if isinstance(container, dict) and data.draw(st.booleans(), label="delete"):
            del container[key]
        else:
            container[key] = data.draw(garbage, label="value")
    decode_or_rpc_error(case, which)


@DETERMINISTIC
@given(
    block=json_values,
    receipts=json_values,
    traces=json_values,
    trace_format=st.sampled_from([None, "parity", "geth"]),
)
def test_arbitrary_json_raises_only_rpc_errors(
    block: Any, receipts: Any, traces: Any, trace_format: Any
) -> None:
    with contextlib.suppress(RpcResponseError):
        map_block(CHAIN, block, receipts, traces, trace_format)


@settings(DETERMINISTIC, max_examples=150)
@given(
    receipts=st.lists(json_values, max_size=3),
    geth=st.lists(json_values, max_size=3),
    logs=st.lists(
        st.dictionaries(
            st.sampled_from(["topics", "data", "address", "logIndex", "removed"]), garbage
        ),
        max_size=3,
    ),
)
def test_arbitrary_receipts_logs_and_traces_for_a_valid_block(
    receipts: list[Any], geth: list[Any], logs: list[Any]
) -> None:
    case = base_case()
    case["receipts"][0]["logs"] = logs
    for target, garbled in (("receipts", receipts), ("geth", geth)):
        for index, value in enumerate(garbled[:2]):
            case[target][index] = value
    decode_or_rpc_error(case, "geth")


# --- round trips


@DETERMINISTIC
@given(
    amount=st.integers(min_value=0, max_value=2**256 - 1),
    src=st.binary(min_size=20, max_size=20),
    dst=st.binary(min_size=20, max_size=20),
    token=st.binary(min_size=20, max_size=20),
    log_index=st.integers(min_value=0, max_value=2**32),
    upper=st.booleans(),
)
def test_valid_transfer_logs_round_trip(
    amount: int, src: bytes, dst: bytes, token: bytes, log_index: int, upper: bool
) -> None:
    def hexed(raw: bytes) -> str:
        body = raw.hex()
        return "0x" + (body.upper() if upper else body)

    case = base_case()
    case["receipts"][1]["logs"] = [
        {
            "address": hexed(token),
            "topics": [TRANSFER_TOPIC, hexed(bytes(12) + src), hexed(bytes(12) + dst)],
            "data": hexed(amount.to_bytes(32, "big")),
            "logIndex": hex(log_index),
            "removed": False,
        }
    ]
    block = map_block(CHAIN, case["block"], case["receipts"])
    (t,) = [t for t in block.transfers if t.tx_hash == tx_hash(1) and t.kind == "erc20"]
    assert t.amount == amount
    assert t.from_address == "0x" + src.hex()
    assert t.to_address == "0x" + dst.hex()
    assert t.asset.address == "0x" + token.hex()
    assert t.log_index == log_index
    assert t.id == f"{CHAIN}:{tx_hash(1)}:log:{log_index}"
    assert BLOCK_DECODER.decode(encode(block)).transfers == block.transfers


_REFERENCE_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")


@DETERMINISTIC
@given(text=st.one_of(hexish, st.text(max_size=70), json_scalars))
def test_parse_quantity_matches_reference(text: Any) -> None:
    valid = isinstance(text, str) and _REFERENCE_QUANTITY.fullmatch(text) is not None
    try:
        value = parse_quantity(text, "q")
    except RpcResponseError:
        assert not valid
    else:
        assert valid and value == int(text[2:], 16)


@DETERMINISTIC
@given(value=st.integers(min_value=0, max_value=2**256 - 1))
def test_parse_quantity_round_trips(value: int) -> None:
    assert parse_quantity(hex(value), "q") == value


@DETERMINISTIC
@given(raw=st.binary(min_size=32, max_size=32))
def test_parse_hash_round_trips(raw: bytes) -> None:
    assert parse_hash("0x" + raw.hex().upper(), "h") == "0x" + raw.hex()


# --- traces: model check

FRAME_TYPES = [
    "CALL",
    "DELEGATECALL",
    "STATICCALL",
    "CALLCODE",
    "CREATE",
    "CREATE2",
    "SELFDESTRUCT",
]
PARITY_OF = {
    "CALL": ("call", "call"),
    "DELEGATECALL": ("call", "delegatecall"),
    "STATICCALL": ("call", "staticcall"),
    "CALLCODE": ("call", "callcode"),
    "CREATE": ("create", None),
    "CREATE2": ("create", None),
    "SELFDESTRUCT": ("suicide", None),
}


@st.composite
def call_tree(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    kind = draw(st.sampled_from(FRAME_TYPES)) if depth else "CALL"
    value = draw(st.sampled_from([0, 0, 1, 10**18, 2**256 - 1]))
    node: dict[str, Any] = {
        "type": kind,
        "from": address(draw(st.integers(1, 5))),
        "to": address(draw(st.integers(1, 5))),
        "value": value,
        "error": kind != "SELFDESTRUCT" and draw(st.integers(0, 5)) == 0,
        "calls": [],
    }
    if kind != "SELFDESTRUCT" and depth < 3:
        node["calls"] = draw(st.lists(call_tree(depth + 1), max_size=3))
    return node


def to_geth(node: dict[str, Any]) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": node["type"],
        "from": node["from"],
        "to": node["to"],
        "value": hex(node["value"]),
    }
    if node["error"]:
        frame["error"] = "execution reverted"
    if node["calls"]:
        frame["calls"] = [to_geth(child) for child in node["calls"]]
    return frame


def to_parity(node: dict[str, Any], i: int, path: list[int], out: list[dict[str, Any]]) -> None:
    kind, call_type = PARITY_OF[node["type"]]
    if kind == "suicide":
        action: dict[str, Any] = {
            "address": node["from"],
            "refundAddress": node["to"],
            "balance": hex(node["value"]),
        }
    elif kind == "create":
        action = {"from": node["from"], "value": hex(node["value"])}
    else:
        action = {
            "callType": call_type,
            "from": node["from"],
            "to": node["to"],
            "value": hex(node["value"]),
        }
    trace: dict[str, Any] = {
        "type": kind,
        "action": action,
        "result": None if node["error"] or kind == "suicide" else {"address": node["to"]},
        "traceAddress": path,
        "transactionHash": tx_hash(i),
        "blockHash": BLOCK_HASH,
    }
    if node["error"]:
        trace["error"] = "Reverted"
    out.append(trace)
    for index, child in enumerate(node["calls"]):
        to_parity(child, i, [*path, index], out)


def model(node: dict[str, Any], path: tuple[int, ...], out: list[tuple[Any, ...]]) -> None:
    if node["error"]:
        return
    moves = node["type"] in ("CALL", "CREATE", "CREATE2", "SELFDESTRUCT")
    if path and moves and node["value"]:
        out.append((path, node["from"], node["to"], node["value"]))
    for index, child in enumerate(node["calls"]):
        model(child, (*path, index), out)


@settings(DETERMINISTIC, max_examples=120)
@given(
    trees=st.lists(call_tree(), min_size=1, max_size=3), shuffle=st.randoms(use_true_random=False)
)
def test_parity_and_geth_agree_with_model(trees: list[dict[str, Any]], shuffle: Any) -> None:
    txs = [
        {
            "hash": tx_hash(i),
            "transactionIndex": hex(i),
            "from": tree["from"],
            "to": tree["to"],
            "value": hex(tree["value"]),
        }
        for i, tree in enumerate(trees)
    ]
    receipts: list[dict[str, Any]] = [
        {"transactionHash": tx_hash(i), "status": "0x0" if tree["error"] else "0x1", "logs": []}
        for i, tree in enumerate(trees)
    ]
    block = {
        "number": "0x1",
        "hash": BLOCK_HASH,
        "parentHash": BLOCK_HASH,
        "timestamp": "0x1",
        "transactions": txs,
    }
    parity: list[dict[str, Any]] = []
    for i, tree in enumerate(trees):
        to_parity(tree, i, [], parity)
    geth = [{"result": to_geth(tree)} for tree in trees]

    expected: list[tuple[Any, ...]] = []
    for i, tree in enumerate(trees):
        found: list[tuple[Any, ...]] = []
        model(tree, (), found)
        expected.extend((tx_hash(i), *item) for item in found)

    from_geth = map_block(CHAIN, block, receipts, geth, "geth")
    from_parity = map_block(CHAIN, copy.deepcopy(block), receipts, parity, "parity")
    got = [
        (t.tx_hash, t.trace_address, t.from_address, t.to_address, t.amount)
        for t in from_geth.transfers
        if t.kind == "internal"
    ]
    assert got == expected
    assert from_parity == from_geth
    # The order of parity traces in the answer does not matter for the result.
    shuffled = list(parity)
    shuffle.shuffle(shuffled)
    assert map_block(CHAIN, block, receipts, shuffled, "parity") == from_parity
