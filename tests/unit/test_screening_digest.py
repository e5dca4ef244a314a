"""The block digest and ``Screener.needs_screening``: a block it lets pass unscreened is quiet.

The screening agent settles a block from its digest (header and the ends of each transfer)
when ``needs_screening`` says no; these tests check that such a block, screened in full with
every rule, address lists and taint, gives no alert, no activity and no taint entry.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

import rules  # noqa: F401 - registers the built-in rules
from monitor.lists import ListedAddress, ListImport, ListIndex, sanctions_list
from monitor.records import (
    BLOCK_DIGEST_DECODER,
    DATED_BLOCK_DIGEST_DECODER,
    Approval,
    Asset,
    Block,
    DatedBlockDigest,
    Transfer,
    WatchEntry,
    encode,
    log_approval_id,
    native_transfer_id,
)
from monitor.screening import ChainPolicy, ScopedRule, Screener
from monitor.taint import TaintPolicy
from monitor.watchlist import Watchlist
from rules.base import RULES, build_rule

CHAIN = "devnet"
POOL = ["0x" + f"{i:02x}" * 20 for i in range(1, 9)]
LISTED = POOL[6]
TOKEN = Asset(kind="erc20", address="0x" + "ee" * 20, symbol="T", decimals=6)
ETH = Asset(kind="native", symbol="ETH", decimals=18)
TIME = 1_700_000_000


def _transfer(i: int, frm: str, to: str, amount: int, chain: str = CHAIN) -> Transfer:
    tx = "0x" + f"{i:064x}"
    return Transfer(id=native_transfer_id(chain, tx), chain=chain, block_number=7,
                    block_hash="0x" + "cd" * 32, block_time=TIME, tx_hash=tx, tx_index=i,
                    kind="native", from_address=frm, to_address=to,
                    asset=ETH if i % 2 else TOKEN, amount=amount)


def _approval(i: int, owner: str, spender: str) -> Approval:
    tx = "0x" + f"{i + 1000:064x}"
    return Approval(id=log_approval_id(CHAIN, tx, i), chain=CHAIN, block_number=7,
                    block_hash="0x" + "cd" * 32, block_time=TIME, tx_hash=tx, tx_index=i,
                    log_index=i, owner=owner, spender=spender, token=TOKEN, amount=10**9)


def _lists() -> ListIndex:
    index = ListIndex()
    meta = sanctions_list("test-sanctions", "test", "2020-01-01")
    index.add(ListImport(list=meta, addresses=[ListedAddress(
        chain_family="evm", address=LISTED, list_name="test-sanctions",
        category="sanctioned")]))
    return index


def _screener(with_lists: bool) -> Screener:
    """Every rule with its defaults, plus sanctions screening of every transfer and call."""
    every_rule = [ScopedRule(build_rule(name, None, {})) for name in sorted(RULES)]
    every_rule.append(ScopedRule(build_rule("sanctioned-counterparty", None, {"scope": "all"})))
    return Screener(every_rule, lists=_lists() if with_lists else None, taint=TaintPolicy(),
                    horizon_seconds=86_400)


ends = st.tuples(st.sampled_from(POOL), st.sampled_from(POOL))


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    """Blocks of transfers, zero-value calls and approvals among a small pool of addresses."""
    moves = draw(st.lists(st.tuples(ends, st.integers(1, 10**19), st.booleans()), max_size=8))
    calls = draw(st.lists(ends, max_size=3))
    approvals = draw(st.lists(ends, max_size=3))
    return Block(
        chain=CHAIN, number=7, hash="0x" + "cd" * 32, parent_hash="0x" + "ab" * 32,
        timestamp=TIME, head=9,
        transfers=tuple(_transfer(i, f, t, amount, CHAIN if same else "otherchain")
                        for i, ((f, t), amount, same) in enumerate(moves)),
        interactions=tuple(_transfer(100 + i, f, t, 0) for i, (f, t) in enumerate(calls)),
        approvals=tuple(_approval(i, o, s) for i, (o, s) in enumerate(approvals)))


@settings(max_examples=300, deadline=None)
@given(block=blocks(), watched=st.sets(st.sampled_from(POOL), max_size=3),
       with_lists=st.booleans(), collide=st.booleans())
def test_a_block_that_needs_no_screening_is_quiet(block: Block, watched: set[str],
                                                  with_lists: bool, collide: bool) -> None:
    watchlist = Watchlist()
    if collide:
        watchlist._hash = lambda address: 0  # every address on the same bits and bucket
    for address in sorted(watched):
        watchlist.put(WatchEntry(chain=CHAIN, address=address, case_id="CASE-1"))
    screener = _screener(with_lists)
    digest = screener.digest(encode(block))
    outcome = screener.screen(block, watchlist, ChainPolicy(confirmations=0), 0.0)
    if not screener.needs_screening(digest, watchlist):
        assert outcome.alerts == []
        assert outcome.activity == {}
        assert outcome.new_entries == []


def test_quiet_and_busy_blocks() -> None:
    block = Block(chain=CHAIN, number=7, hash="0x" + "cd" * 32, parent_hash="0x" + "ab" * 32,
                  timestamp=TIME, transfers=(_transfer(1, POOL[0], POOL[1], 5),),
                  interactions=(_transfer(2, POOL[2], LISTED, 0),),
                  approvals=(_approval(3, POOL[3], POOL[4]),))
    raw = encode(block)
    plain, listed = _screener(False), _screener(True)
    empty = Watchlist()
    assert not plain.needs_screening(plain.digest(raw), empty)
    assert listed.needs_screening(listed.digest(raw), empty)  # a call to a sanctioned address
    for address in (POOL[0], POOL[1], POOL[3]):  # either end of a transfer, an approval owner
        watchlist = Watchlist()
        watchlist.put(WatchEntry(chain=CHAIN, address=address, case_id="CASE-1"))
        assert plain.needs_screening(plain.digest(raw), watchlist), address
    other_chain = Watchlist()
    other_chain.put(WatchEntry(chain="otherchain", address=POOL[0], case_id="CASE-1"))
    assert not plain.needs_screening(plain.digest(raw), other_chain)
    revert = msgspec.structs.replace(block, kind="revert", transfers=(), interactions=(),
                                     approvals=())
    assert plain.needs_screening(plain.digest(encode(revert)), empty)


def test_digest_reads_the_header_and_the_ends() -> None:
    block = Block(chain=CHAIN, number=7, hash="0x" + "cd" * 32, parent_hash="0x" + "ab" * 32,
                  timestamp=TIME, head=12, transfers=(_transfer(1, POOL[0], POOL[1], 5),),
                  approvals=(_approval(3, POOL[3], POOL[4]),))
    digest = BLOCK_DIGEST_DECODER.decode(encode(block))
    assert digest.header() == msgspec.structs.replace(block, transfers=(), approvals=())
    assert [(t.chain, t.from_address, t.to_address) for t in digest.transfers] == [
        (CHAIN, POOL[0], POOL[1])]
    assert [(a.chain, a.owner) for a in digest.approvals] == [(CHAIN, POOL[3])]
    dated = DATED_BLOCK_DIGEST_DECODER.decode(encode(block))
    assert isinstance(dated, DatedBlockDigest)
    assert [t.block_time for t in dated.transfers] == [TIME]


def test_watches_any_is_exact_on_shared_index_keys() -> None:
    watchlist = Watchlist()
    watchlist._hash = lambda address: 0
    watchlist.put(WatchEntry(chain=CHAIN, address=POOL[0], case_id="CASE-1"))
    assert watchlist.watches_any(CHAIN, [POOL[1], POOL[0]])
    assert not watchlist.watches_any(CHAIN, [POOL[1], POOL[2]])
    assert not watchlist.watches_any("otherchain", [POOL[0]])
    assert not Watchlist().watches_any(CHAIN, [POOL[0]])
