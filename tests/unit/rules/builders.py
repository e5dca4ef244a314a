"""Small builders for rule tests: transfers at given block times, watch entries, state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from monitor.records import Asset, TaintHop, TaintMark, Transfer, WatchEntry, native_transfer_id
from rules.state import AddressActivity, RuleContext, update_activity

CHAIN = "devnet"
T0 = 1_700_000_000
SEIZED = "0x" + "11" * 20
OTHER = "0x" + "22" * 20
MIXER = "0x" + "33" * 20
EXCHANGE = "0x" + "44" * 20
BRIDGE = "0x" + "55" * 20
ETH = Asset(kind="native", symbol="ETH", decimals=18)
USDT = Asset(kind="erc20", address="0xdac17f958d2ee523a2206206994597c13d831ec7",
             symbol="USDT", decimals=6)
HORIZON = 90 * 86_400
MAX_MOVEMENTS = 1_000
MAX_UINT256 = 2**256 - 1


def addr(n: int) -> str:
    """A distinct address per number (never one of the named ones above for n >= 0x100)."""
    return "0x" + f"{n:040x}"


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


_counter = iter(range(1, 10**9))


def transfer(frm: str = SEIZED, to: str = OTHER, amount: int = 10**18, at: int = T0,
             number: int | None = None, tx_hash: str | None = None,
             asset: Asset = ETH) -> Transfer:
    """A native (or token) transfer at block time ``at``; a fresh tx hash unless given."""
    tx_hash = tx_hash or tx(next(_counter))
    return Transfer(id=native_transfer_id(CHAIN, tx_hash), chain=CHAIN,
                    block_number=number if number is not None else at - T0 + 10**6,
                    block_hash="0x" + "cd" * 32, block_time=at, tx_hash=tx_hash, tx_index=0,
                    kind="native" if asset.kind == "native" else "erc20", from_address=frm,
                    to_address=to, asset=asset, amount=amount)


def entry(address: str = SEIZED, case_id: str = "CASE-1") -> WatchEntry:
    return WatchEntry(chain=CHAIN, address=address, case_id=case_id, label="seized wallet")


def activity_of(address: str, transfers: Iterable[Transfer], horizon: int = HORIZON,
                max_movements: int = MAX_MOVEMENTS) -> AddressActivity | None:
    """The activity of ``address`` after these transfers, as the agent would have stored it."""
    state: AddressActivity | None = None
    for t in transfers:
        if t.to_address == address:
            state = update_activity(state, t, "in", horizon, max_movements)
        if t.from_address == address:
            state = update_activity(state, t, "out", horizon, max_movements)
    return state


def ctx(t: Transfer | None = None, history: Sequence[Transfer] = (),
        from_entries: Sequence[WatchEntry] = (), to_entries: Sequence[WatchEntry] = (),
        from_labels: Iterable[str] = (), to_labels: Iterable[str] = (),
        from_taint: Sequence[TaintMark] = (), to_taint: Sequence[TaintMark] = ()
        ) -> RuleContext:
    """A rule context; with ``t``, both endpoints' activity is built from ``history``."""
    return RuleContext(
        from_entries=tuple(from_entries), to_entries=tuple(to_entries),
        from_activity=activity_of(t.from_address, history) if t else None,
        to_activity=activity_of(t.to_address, history) if t else None,
        from_labels=frozenset(from_labels), to_labels=frozenset(to_labels),
        from_taint=tuple(from_taint), to_taint=tuple(to_taint))


def watched(t: Transfer, history: Sequence[Transfer] = (), **kw: object) -> RuleContext:
    """Context where the sender of ``t`` is watched for CASE-1."""
    return ctx(t, history, from_entries=[entry(t.from_address)], **kw)  # type: ignore[arg-type]


def hop(frm: str, to: str, amount: int, number: int = 1, n: int = 0) -> TaintHop:
    return TaintHop(tx(0xF000 + n), frm, to, amount, number)


def mark(path: Sequence[TaintHop], case_id: str = "CASE-9", asset_key: str = "native",
         amount: int | None = None) -> TaintMark:
    """A taint mark at ``path[-1].to_address`` for funds that left ``path[0].from_address``."""
    return TaintMark(origin=path[0].from_address, case_id=case_id, hop=len(path),
                     amount=path[-1].amount if amount is None else amount,
                     asset_key=asset_key, path=tuple(path))
