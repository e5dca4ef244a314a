"""Small builders for records used across unit tests."""

from __future__ import annotations

from monitor.records import Asset, Block, Transfer, WatchEntry, native_transfer_id

SEIZED = "0x" + "11" * 20
OTHER = "0x" + "22" * 20
THIRD = "0x" + "33" * 20
TX = "0x" + "ab" * 32
BLOCK_HASH = "0x" + "cd" * 32
ETH = Asset(kind="native", symbol="ETH", decimals=18)


def transfer(frm: str = SEIZED, to: str = OTHER, amount: int = 10**18, tx: str = TX,
             chain: str = "devnet", number: int = 7) -> Transfer:
    return Transfer(id=native_transfer_id(chain, tx), chain=chain, block_number=number,
                    block_hash=BLOCK_HASH, block_time=1_700_000_000, tx_hash=tx, tx_index=0,
                    kind="native", from_address=frm, to_address=to, asset=ETH, amount=amount)


def block(*transfers: Transfer, number: int = 7, head: int = 9) -> Block:
    return Block(chain="devnet", number=number, hash=BLOCK_HASH, parent_hash="0x" + "00" * 32,
                 timestamp=1_700_000_000, head=head, transfers=tuple(transfers))


def entry(address: str = SEIZED, case_id: str = "CASE-1", chain: str = "devnet") -> WatchEntry:
    return WatchEntry(chain=chain, address=address, case_id=case_id, label="seized wallet")
