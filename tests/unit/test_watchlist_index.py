"""The compact watchlist index: same answers as a dict of entries, counts kept, exact matching."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.records import TaintHop, TaintMark, WatchEntry
from monitor.watchlist import Watchlist

A = "0x" + "11" * 20
B = "0x" + "ab" * 20
ORIGIN = "0x" + "99" * 20


def taint(case: str = "C-1", hop: int = 1) -> TaintMark:
    return TaintMark(origin=ORIGIN, case_id=case, hop=hop, amount=10**18, asset_key="native",
                     path=(TaintHop("0x" + "01" * 32, ORIGIN, A, 10**18, 7),))


def entry(address: str = A, case: str = "C-1", **kw: object) -> WatchEntry:
    return WatchEntry(chain="devnet", address=address, case_id=case, **kw)  # type: ignore[arg-type]


def test_entries_round_trip_with_every_field() -> None:
    wl = Watchlist()
    full = entry(label="seized by order 12/2026", category="tainted", source="follow-the-money",
                 added_at=1_700_000_123, taint=taint())
    wl.put(full)
    wl.put(entry(B))
    assert wl.lookup("devnet", A) == (full,)
    assert wl.lookup("devnet", B) == (entry(B),)
    assert wl.lookup("other-chain", A) == ()
    assert wl.lookup("devnet", "0x" + "22" * 20) == ()
    assert sorted(list(wl.entries()), key=lambda e: e.address) == [full, entry(B)]
    assert len(wl) == 2


def test_taint_amounts_beyond_64_bits_are_kept_exactly() -> None:
    huge = 2**256 - 1  # an ERC-20 amount may use the whole uint256 range
    mark = TaintMark(origin=ORIGIN, case_id="C-1", hop=1, amount=huge, asset_key="erc20:x",
                     path=(TaintHop("0x" + "01" * 32, ORIGIN, A, huge, 7),))
    wl = Watchlist()
    wl.put(entry(taint=mark))
    assert wl.lookup("devnet", A)[0].taint == mark
    assert wl.tainted_count("C-1", ORIGIN) == 1


def test_several_cases_per_address_keep_their_order_and_replace_in_place() -> None:
    wl = Watchlist()
    for case in ("C-1", "C-2", "C-3"):
        wl.put(entry(case=case))
    wl.put(entry(case="C-2", label="updated"))
    assert [(e.case_id, e.label) for e in wl.lookup("devnet", A)] == [
        ("C-1", ""), ("C-2", "updated"), ("C-3", "")]
    assert len(wl) == 3
    wl.remove("devnet", A, "C-1")
    wl.remove("devnet", A, "C-unknown")
    wl.remove("devnet", B, "C-2")
    wl.remove("nowhere", A, "C-2")
    assert [e.case_id for e in wl.lookup("devnet", A)] == ["C-2", "C-3"]
    assert len(wl) == 2
    wl.remove("devnet", A, "C-2")
    wl.remove("devnet", A, "C-3")
    assert wl.lookup("devnet", A) == () and len(wl) == 0 and list(wl.entries()) == []


def test_taint_counts_follow_puts_replacements_and_removals() -> None:
    wl = Watchlist()
    wl.put(entry(A, taint=taint()))
    wl.put(entry(A, taint=taint()))  # redelivery: not counted twice
    wl.put(entry(B, taint=taint()))
    wl.put(entry(B, case="C-2", taint=taint("C-2")))
    assert wl.tainted_count("C-1", ORIGIN) == 2 and wl.tainted_count("C-2", ORIGIN) == 1
    wl.put(entry(A))  # replaced by a plain entry: no longer tainted
    assert wl.tainted_count("C-1", ORIGIN) == 1
    wl.remove("devnet", B, "C-1")
    assert wl.tainted_count("C-1", ORIGIN) == 0 and wl.tainted_count("C-2", ORIGIN) == 1


def test_addresses_that_are_not_canonical_are_kept_exactly() -> None:
    wl = Watchlist()
    odd = ["0xseized", B.upper().replace("0X", "0x"), "", "0x" + "1" * 41]
    for address in odd:
        wl.put(entry(address))
    for address in odd:
        assert [e.address for e in wl.lookup("devnet", address)] == [address]
    assert wl.lookup("devnet", B) == ()  # exact match, as before: no case folding


def test_addresses_sharing_a_key_are_told_apart() -> None:
    wl = Watchlist()
    wl._hash = lambda address: 0  # every address on the same bits and in the same bucket
    wl.put(entry(A, case="X"))
    wl.put(entry(B, case="X"))
    wl.put(entry("0xodd", case="X"))
    assert [e.address for e in wl.lookup("devnet", A)] == [A]
    assert [e.address for e in wl.lookup("devnet", B)] == [B]
    wl.remove("devnet", A, "X")
    assert wl.lookup("devnet", A) == () and [e.address for e in wl.lookup("devnet", B)] == [B]
    assert len(wl) == 2 and {e.address for e in wl.entries()} == {B, "0xodd"}


_addresses = st.sampled_from([A, B, "0x" + "cd" * 20, "0xnot-hex"])
_ops = st.lists(st.tuples(st.booleans(), _addresses, st.sampled_from(["C-1", "C-2"]),
                          st.booleans()), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=_ops, collide=st.booleans())
def test_same_answers_as_a_plain_dict(ops: list[tuple[bool, str, str, bool]],
                                      collide: bool) -> None:
    wl = Watchlist()
    if collide:
        wl._hash = lambda address: 1
    model: dict[tuple[str, str], WatchEntry] = {}
    for add, address, case, tainted in ops:
        if add:
            e = entry(address, case, taint=taint(case) if tainted else None,
                      label=str(random.Random(len(model)).random()))
            wl.put(e)
            model[(address, case)] = e
        else:
            wl.remove("devnet", address, case)
            model.pop((address, case), None)
    assert len(wl) == len(model)
    for address in {a for a, _ in model} | {A}:
        assert sorted(wl.lookup("devnet", address), key=lambda e: e.case_id) == sorted(
            (e for (a, _), e in model.items() if a == address), key=lambda e: e.case_id)
    for case in ("C-1", "C-2"):
        assert wl.tainted_count(case, ORIGIN) == sum(
            1 for e in model.values() if e.taint is not None and e.case_id == case)


def test_growing_past_the_first_sizes_keeps_every_entry_and_drops_removed_bits() -> None:
    wl = Watchlist()
    addresses = ["0x" + random.Random(i).randbytes(20).hex() for i in range(5000)]
    for i, address in enumerate(addresses):
        wl.put(entry(address, case=f"C-{i % 3}"))
    for address in addresses[::2]:
        wl.remove("devnet", address, f"C-{addresses.index(address) % 3}")
    wl.put(entry(addresses[0], case="C-late"))  # a resize after removals rebuilds the bits
    for i, address in enumerate(addresses):
        cases = [e.case_id for e in wl.lookup("devnet", address)]
        assert cases == (["C-late"] if i == 0 else [] if i % 2 == 0 else [f"C-{i % 3}"])
    assert len(wl) == 2501 == len(list(wl.entries()))
    assert wl.watches_any("devnet", addresses[1:2]) and not wl.watches_any("devnet", addresses[2:3])
    strangers = ["0x" + random.Random(f"s{i}").randbytes(20).hex() for i in range(20000)]
    assert not wl.watches_any("devnet", strangers)
