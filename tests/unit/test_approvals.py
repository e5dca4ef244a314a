"""ERC-20 approvals: decoding ``Approval`` logs, owner state and ``approval-to-new-spender``."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from web3 import Web3

import rules  # noqa: F401 - registers the built-in rules
from connectors.evm.mapping import APPROVAL_TOPIC, map_block
from monitor.errors import RpcResponseError, RuleError
from monitor.records import (
    ALERT_DECODER,
    BLOCK_DECODER,
    UNLIMITED_ALLOWANCE,
    Approval,
    Asset,
    Block,
    TaintMark,
    WatchEntry,
    alert_id,
    encode,
    log_approval_id,
)
from monitor.screening import ChainPolicy, ScopedRule, Screener, activity_key
from monitor.watchlist import Watchlist
from rules.base import build_rule
from rules.state import (
    ACTIVITY_DECODER,
    AddressActivity,
    ApprovedSpender,
    RuleContext,
    record_approval,
    rewind_block,
    update_activity,
)
from tests.unit.builders import BLOCK_HASH, OTHER, SEIZED, THIRD, entry, transfer
from tests.unit.test_evm_mapping import (
    ALICE,
    BOB,
    CAROL,
    CHAIN,
    TOKEN,
    make_block,
    make_log,
    make_receipt,
    make_tx,
    recorded,
    tx_hash,
    word,
)

SPENDER = "0x" + "5e" * 20
DRAINER = "0x" + "d0" * 20
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
RULE = "approval-to-new-spender"


# --- decoder


def approval_log(index: int, i: int = 0, amount: int = 1, owner: str = ALICE,
                 spender: str = BOB, **overrides: Any) -> dict[str, Any]:
    """A raw ERC-20 ``Approval`` log (3 topics, 32 bytes of data)."""
    fields: dict[str, Any] = {"topics": [APPROVAL_TOPIC, word(owner), word(spender)]}
    fields.update(overrides)
    return make_log(index, i, amount, **fields)


def test_approval_topic_is_keccak_of_signature() -> None:
    assert Web3.keccak(text="Approval(address,address,uint256)").to_0x_hex() == APPROVAL_TOPIC


def test_synthetic_block_erc20_approvals_only() -> None:
    nft_approval = make_log(1, 0, topics=[APPROVAL_TOPIC, word(ALICE), word(BOB),
                                          "0x" + f"{7:064x}"], data="0x")
    txs = [make_tx(0), make_tx(1), make_tx(2, sender=CAROL)]
    receipts = [
        make_receipt(0, [approval_log(0, 0, amount=5), nft_approval, make_log(2, 0, amount=9)]),
        make_receipt(1, [approval_log(3, 1, amount=11)], status="0x0"),
        make_receipt(2, [approval_log(4, 2, amount=UNLIMITED_ALLOWANCE, owner=CAROL,
                                      spender=ALICE,
                                      topics=[APPROVAL_TOPIC.upper().replace("0X", "0x"),
                                              word(CAROL), word(ALICE)])]),
    ]
    known = {TOKEN: Asset(kind="erc20", address=TOKEN, symbol="tUSD", decimals=6)}
    block = map_block(CHAIN, make_block(txs), receipts, tokens=known)

    assert [(a.tx_index, a.log_index, a.owner, a.spender, a.amount) for a in block.approvals] == [
        (0, 0, ALICE, BOB, 5), (2, 4, CAROL, ALICE, UNLIMITED_ALLOWANCE)]
    first, unlimited = block.approvals
    assert first.id == log_approval_id(CHAIN, tx_hash(0), 0) == f"{CHAIN}:{tx_hash(0)}:approval:0"
    assert (first.block_number, first.block_hash, first.block_time) == (100, block.hash,
                                                                        1_700_000_000)
    assert first.token == known[TOKEN] and unlimited.token == known[TOKEN]
    assert unlimited.unlimited and not first.unlimited
    # The Transfer log in the same receipt is still a transfer; approvals are not transfers.
    assert [(t.kind, t.log_index, t.amount) for t in block.transfers] == [("erc20", 2, 9)]


def test_removed_and_odd_shaped_approval_logs_are_skipped() -> None:
    logs = [approval_log(0, removed=True), approval_log(1, data="0x" + "00" * 31),
            approval_log(2, topics=[APPROVAL_TOPIC, word(ALICE)], data="0x" + "00" * 64)]
    block = map_block(CHAIN, make_block([make_tx(0)]), [make_receipt(0, logs)])
    assert block.approvals == ()


def test_approvals_of_a_tx_failed_per_traces_are_dropped() -> None:
    receipts = [make_receipt(0, [approval_log(0)], status=None)]  # pre-Byzantium: no status
    traces = [{"type": "call", "transactionHash": tx_hash(0), "traceAddress": [],
               "blockHash": "0x" + "ab" * 32, "error": "Reverted",
               "action": {"callType": "call", "from": ALICE, "to": BOB, "value": "0x0"}}]
    block = map_block(CHAIN, make_block([make_tx(0)]), receipts, traces=traces)
    assert block.approvals == ()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"topics": [APPROVAL_TOPIC, "0x12", word(BOB)]}, "log.topics[1]"),
    ({"topics": [APPROVAL_TOPIC, word(ALICE), None]}, "log.topics[2]"),
    ({"data": "0xzz"}, "log.data"),
    ({"logIndex": "12"}, "log.logIndex"),
    ({"address": "0x1234"}, "log.address"),
    ({"removed": "no"}, "log.removed"),
])
def test_malformed_approval_logs_raise(overrides: dict[str, Any], field: str) -> None:
    receipts = [make_receipt(0, [approval_log(0, **overrides)])]
    with pytest.raises(RpcResponseError) as info:
        map_block(CHAIN, make_block([make_tx(0)]), receipts)
    assert info.value.context["field"] == field
    assert info.value.context["tx"] == tx_hash(0)


def test_block_json_round_trip_and_backward_compatibility() -> None:
    block = map_block(CHAIN, make_block([make_tx(0)]),
                      [make_receipt(0, [approval_log(0, amount=UNLIMITED_ALLOWANCE)])])
    raw = encode(block)
    assert BLOCK_DECODER.decode(raw) == block
    assert msgspec.json.decode(raw)["approvals"][0]["amount"] == UNLIMITED_ALLOWANCE
    empty = map_block(CHAIN, make_block([make_tx(0)]), [make_receipt(0, [])])
    assert b"approvals" not in encode(empty)  # old consumers see the same message
    assert BLOCK_DECODER.decode(encode(empty)).approvals == ()


def test_block_18m_approvals_equal_independent_decoding() -> None:
    raw_block = recorded("mainnet-rpc/eth_getBlockByNumber_18000000_fulltx.json.gz")
    receipts = recorded("mainnet-rpc/eth_getBlockReceipts_18000000.json.gz")
    expected = []
    nft = 0
    for receipt in receipts:
        for log in receipt["logs"]:
            topics = log["topics"]
            if not topics or topics[0].lower() != APPROVAL_TOPIC:
                continue
            data = bytes.fromhex(log["data"][2:])
            if len(topics) != 3 or len(data) != 32:
                nft += 1
                continue
            if receipt["status"] != "0x1" or log.get("removed"):
                continue
            expected.append((receipt["transactionHash"], int(log["logIndex"], 16),
                             "0x" + topics[1][-40:].lower(), "0x" + topics[2][-40:].lower(),
                             log["address"].lower(), int.from_bytes(data, "big")))
    block = map_block(CHAIN, raw_block, receipts)
    got = [(a.tx_hash, a.log_index, a.owner, a.spender, a.token.address, a.amount)
           for a in block.approvals]
    assert got == expected
    assert len(expected) == 26 and nft == 1  # the recording holds one ERC-721 Approval
    assert len({a.id for a in block.approvals}) == len(expected)
    assert not {a.id for a in block.approvals} & {t.id for t in block.transfers}
    assert all(t.kind != "erc20" or t.log_index not in {e[1] for e in expected}
               for t in block.transfers)


# --- owner state


def approval(owner: str = SEIZED, spender: str = SPENDER, amount: int = 10**6,
             number: int = 7, log_index: int = 3, tx: str = "0x" + "ab" * 32,
             token: str = USDT, chain: str = "devnet") -> Approval:
    """An approval record as the decoder builds it."""
    return Approval(id=log_approval_id(chain, tx, log_index), chain=chain, block_number=number,
                    block_hash=BLOCK_HASH, block_time=1_700_000_000 + 12 * (number - 7),
                    tx_hash=tx, tx_index=0, log_index=log_index, owner=owner, spender=spender,
                    token=Asset(kind="erc20", address=token, symbol="USDT", decimals=6),
                    amount=amount)


def test_record_approval_is_pure_idempotent_and_bounded() -> None:
    a = record_approval(None, approval(), max_spenders=2)
    assert a.spenders == (ApprovedSpender(SPENDER, 7),) and a.has_approved(SPENDER)
    assert a.last_block == 7 and a.last_active is None and a.balances == {}
    assert record_approval(a, approval(), max_spenders=2) == a  # redelivery
    b = record_approval(a, approval(spender=OTHER, number=8), max_spenders=2)
    c = record_approval(b, approval(number=9), max_spenders=2)  # known: moves to the end
    assert [s.spender for s in c.spenders] == [OTHER, SPENDER]
    assert c.spenders[-1].block_number == 7
    d = record_approval(c, approval(spender=THIRD, number=10), max_spenders=2)
    assert [s.spender for s in d.spenders] == [SPENDER, THIRD]  # least recent dropped
    assert record_approval(d, approval(spender=DRAINER, amount=0), max_spenders=2) == d
    with pytest.raises(ValueError, match="max_spenders"):
        record_approval(None, approval(), max_spenders=0)
    assert ACTIVITY_DECODER.decode(encode(d)) == d


def test_transfers_keep_spenders_and_rewind_undoes_approvals() -> None:
    a = update_activity(None, transfer(number=5), "out", 3600, 10)
    a = record_approval(a, approval(number=6), max_spenders=10)
    a = update_activity(a, transfer(number=7, tx="0x" + "07" * 32), "out", 3600, 10)
    assert a.has_approved(SPENDER)
    b = record_approval(a, approval(spender=OTHER, number=8), max_spenders=10)
    before = rewind_block(b, 8)
    assert before is not None and before.has_approved(SPENDER)
    assert not before.has_approved(OTHER) and before.last_active == a.last_active
    earlier = rewind_block(b, 6)
    assert earlier is not None and earlier.spenders == ()


# --- the rule


def context(owner_entries: tuple[WatchEntry, ...] = (entry(),),
            activity: AddressActivity | None = None, **kwargs: Any) -> RuleContext:
    """The context screening hands over: owner as ``from``, spender as ``to``."""
    return RuleContext(from_entries=owner_entries, from_activity=activity, **kwargs)


def test_watched_owner_approving_a_new_spender_fires() -> None:
    rule = build_rule(RULE, None, {})
    unlimited = approval(amount=UNLIMITED_ALLOWANCE)
    findings = rule.evaluate_approval(unlimited, context(to_labels=frozenset({"drainer"})))
    assert len(findings) == 1
    f = findings[0]
    assert (f.rule, f.severity, f.direction, f.watch.case_id) == (RULE, "high", "out", "CASE-1")
    assert dict(f.evidence) == {"token": USDT, "owner": SEIZED, "spender": SPENDER,
                                "amount": str(UNLIMITED_ALLOWANCE), "unlimited": True,
                                "spender_labels": ["drainer"]}
    assert "unlimited USDT" in f.title and SPENDER in f.title
    limited = rule.evaluate_approval(approval(amount=5), context())[0]
    assert (limited.evidence["amount"], limited.evidence["unlimited"]) == ("5", False)
    assert rule.evaluate(transfer(), context()) == []  # transfers are not its concern


def test_known_spender_unwatched_owner_small_zero_and_ignored_do_not_fire() -> None:
    rule = build_rule(RULE, None, {"min_amount": 1_000,
                                   "ignore_spenders": [DRAINER.upper().replace("0X", "0x")]})
    known = record_approval(None, approval(number=5), max_spenders=8)
    assert rule.evaluate_approval(approval(), context(activity=known)) == []
    assert rule.evaluate_approval(approval(), context(owner_entries=())) == []
    assert rule.evaluate_approval(approval(amount=999), context()) == []
    assert rule.evaluate_approval(approval(amount=1_000), context()) != []
    assert rule.evaluate_approval(approval(spender=DRAINER), context()) == []
    assert build_rule(RULE, None, {}).evaluate_approval(approval(amount=0), context()) == []


def test_tainted_owner_fires_under_the_case_of_the_taint() -> None:
    mark = TaintMark(origin=OTHER, case_id="CASE-9", hop=2, amount=10**18, asset_key="native")
    findings = build_rule(RULE, None, {}).evaluate_approval(
        approval(), context(owner_entries=(), from_taint=(mark,)))
    assert [(f.watch.case_id, f.watch.category, f.watch.address) for f in findings] == [
        ("CASE-9", "tainted", SEIZED)]
    assert (findings[0].evidence["origin"], findings[0].evidence["hop"]) == (OTHER, 2)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(RuleError, match="min_amount"):
        build_rule(RULE, None, {"min_amount": -1})
    with pytest.raises(RuleError, match="ignore_spenders"):
        build_rule(RULE, None, {"ignore_spenders": ["0x12"]})
    with pytest.raises(RuleError, match="ignore_spenders"):
        build_rule(RULE, None, {"ignore_spenders": "0x" + "12" * 20})


# --- screening


def watchlist(*entries: WatchEntry) -> Watchlist:
    wl = Watchlist()
    for e in entries:
        wl.put(e)
    return wl


def approval_block(*approvals: Approval, number: int = 7) -> Block:
    return Block(chain="devnet", number=number, hash=BLOCK_HASH, parent_hash="0x" + "00" * 32,
                 timestamp=1_700_000_000 + 12 * (number - 7), head=number + 2,
                 approvals=approvals)


def screener(*names: str) -> Screener:
    return Screener([ScopedRule(build_rule(n, None, {})) for n in names])


def test_screener_alerts_once_per_new_spender_across_blocks() -> None:
    s = screener("watched-address", RULE)
    wl = watchlist(entry())
    first = approval_block(approval(amount=UNLIMITED_ALLOWANCE), approval(log_index=4),
                           approval(owner=OTHER, log_index=5))
    assert s.relevant_addresses(first, wl) == {SEIZED}
    out = s.screen(first, wl, ChainPolicy(2), 5.0)
    assert len(out.alerts) == 1
    alert = out.alerts[0]
    new = first.approvals[0]
    assert alert.id == alert_id(RULE, new.id, "CASE-1")
    assert (alert.rule, alert.severity, alert.status, alert.confirmations) == (
        RULE, "high", "confirmed", 2)
    assert (alert.transfer_id, alert.transfer_kind, alert.log_index) == (new.id, "approval", 3)
    assert (alert.from_address, alert.to_address, alert.asset, alert.amount) == (
        SEIZED, SPENDER, new.token, str(UNLIMITED_ALLOWANCE))
    assert (alert.tx_hash, alert.block_hash, alert.block_number) == (new.tx_hash, BLOCK_HASH, 7)
    assert alert.evidence["unlimited"] is True and alert.direction == "out"
    assert ALERT_DECODER.decode(encode(alert)) == alert
    stored = dict(out.activity)
    assert stored[activity_key("devnet", SEIZED)].has_approved(SPENDER)
    assert activity_key("devnet", OTHER) not in stored  # unwatched owner: no state

    again = approval_block(approval(number=8, tx="0x" + "08" * 32), number=8)
    assert s.screen(again, wl, ChainPolicy(2), 6.0, stored).alerts == []
    # A redelivery of the first block sees the state before it: same alert, same id.
    replay = s.screen(first, wl, ChainPolicy(2), 7.0, stored)
    assert [a.id for a in replay.alerts] == [alert.id]
    # A new spender in a later block fires again.
    other = approval_block(approval(spender=DRAINER, number=9, tx="0x" + "09" * 32), number=9)
    assert [a.to_address for a in s.screen(other, wl, ChainPolicy(2), 8.0, stored).alerts] == [
        DRAINER]


def test_screener_tainted_owner_and_no_rule_no_state() -> None:
    mark = TaintMark(origin=OTHER, case_id="CASE-9", hop=1, amount=10**18, asset_key="native")
    tainted = WatchEntry(chain="devnet", address=SEIZED, case_id="CASE-9", category="tainted",
                         source="taint", taint=mark)
    block = approval_block(approval())
    alerts = screener(RULE).screen(block, watchlist(tainted), ChainPolicy(0), 1.0).alerts
    assert [(a.watch.case_id, a.status, a.evidence["origin"]) for a in alerts] == [
        ("CASE-9", "provisional", OTHER)]
    # Without an approval rule, approvals change nothing (no alerts, no stored state).
    out = screener("watched-address").screen(block, watchlist(entry()), ChainPolicy(0), 1.0)
    assert out.alerts == [] and out.activity == {}
