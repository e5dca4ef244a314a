"""Small builders of alerts, taint paths and an API context for the web unit tests."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from monitor.records import Alert, Asset, TaintHop, TaintMark, WatchEntry, alert_id
from monitor.settings import ChainwatchConfig
from monitor.watchlist import Watchlist
from monitor.web.audit import AuditRecord
from monitor.web.context import ApiContext
from monitor.web.index import AlertIndex

SEIZED = "0x" + "11" * 20
SPLITTER = "0x" + "22" * 20
EXCHANGE = "0x" + "33" * 20
OTHER = "0x" + "44" * 20
TOKEN = "0x" + "55" * 20
RW = "rw-token-0123456789"
RO = "ro-token-0123456789"
ETH = Asset(kind="native", symbol="ETH", decimals=18)


def tx(n: int) -> str:
    """A transaction hash."""
    return "0x" + f"{n:064x}"


def make_alert(n: int = 1, *, rule: str = "watched-address", case_id: str = "CASE-1",
               frm: str = SEIZED, to: str = OTHER, amount: int = 10**18,
               severity: str = "high", status: str = "confirmed", chain: str = "devnet",
               detected_at: float | None = None, revision: int = 0, block: int | None = None,
               block_time: int | None = None, direction: str = "out",
               watch: WatchEntry | None = None, evidence: dict[str, Any] | None = None,
               asset: Asset = ETH, tx_hash: str | None = None) -> Alert:
    """An alert about a native transfer in block ``100 + n``."""
    tx_hash = tx_hash or tx(n)
    transfer_id = f"{chain}:{tx_hash}:tx"
    watch = watch or WatchEntry(chain=chain, address=frm if direction == "out" else to,
                                case_id=case_id, label="seized wallet", category="seized",
                                source="api")
    return Alert(
        id=alert_id(rule, transfer_id, case_id), rule=rule, severity=severity,  # type: ignore[arg-type]
        status=status, chain=chain, block_number=block or 100 + n,  # type: ignore[arg-type]
        block_hash="0x" + f"{n:064x}"[::-1], block_time=block_time or 1_700_000_000 + n,
        tx_hash=tx_hash, transfer_id=transfer_id, transfer_kind="native", from_address=frm,
        to_address=to, asset=asset, amount=str(amount), direction=direction,  # type: ignore[arg-type]
        watch=watch, confirmations=2, detected_at=detected_at or 1_800_000_000.0 + n,
        title="watched seized wallet sent funds", evidence=evidence or {}, revision=revision)


def path_alerts() -> list[Alert]:
    """Seized -> splitter (3 ETH), splitter -> exchange deposit (1 ETH): the demo's case."""
    hop1 = TaintHop(tx(1), SEIZED, SPLITTER, 3 * 10**18, 101)
    hop2 = TaintHop(tx(2), SPLITTER, EXCHANGE, 10**18, 102)
    mark = TaintMark(origin=SEIZED, case_id="CASE-1", hop=1, amount=3 * 10**18,
                     asset_key="native", path=(hop1,))
    tainted = WatchEntry(chain="devnet", address=SPLITTER, case_id="CASE-1",
                         label=f"hop 1 from {SEIZED}", category="tainted", source="taint",
                         taint=mark)
    path = [[h.tx_hash, h.from_address, h.to_address, str(h.amount), h.block_number]
            for h in (hop1, hop2)]
    return [
        make_alert(1, to=SPLITTER, amount=3 * 10**18),
        make_alert(2, frm=SPLITTER, to=EXCHANGE, watch=tainted),
        make_alert(2, rule="exchange-deposit", frm=SPLITTER, to=EXCHANGE, watch=tainted,
                   severity="critical",
                   evidence={"case_id": "CASE-1", "origin": SEIZED, "hops": 2,
                             "tainted_amount": str(3 * 10**18), "tainted_asset": "native",
                             "path": path}),
    ]


def case_entries() -> list[WatchEntry]:
    """The case's watch entries: the seized wallet and the tainted splitter."""
    seized = WatchEntry(chain="devnet", address=SEIZED, case_id="CASE-1",
                        label="seized wallet", category="seized", source="api")
    return [seized, path_alerts()[1].watch]


class FakeWriter:
    """Records what the API would publish to the watchlist topic."""

    def __init__(self, watchlist: Watchlist) -> None:
        self.watchlist = watchlist
        self.removed: list[tuple[str, str, str]] = []

    async def put_many(self, entries: Any) -> int:
        """Put entries straight into the watchlist."""
        entries = list(entries)
        for e in entries:
            self.watchlist.put(e)
        return len(entries)

    async def remove(self, chain: str, address: str, case_id: str) -> None:
        """Remove straight from the watchlist."""
        self.removed.append((chain, address, case_id))
        self.watchlist.remove(chain, address, case_id)


class FakeAudit:
    """An audit topic in memory: each record is applied to the index at the next offset."""

    def __init__(self, index: AlertIndex) -> None:
        self.index = index
        self.records: list[AuditRecord] = []

    async def publish(self, record: AuditRecord) -> tuple[int, int]:
        """Append and apply at once."""
        offset = len(self.records)
        self.records.append(record)
        self.index.apply_audit(record, 0, offset)
        return 0, offset


def context(index: AlertIndex | None = None, rw: str | None = RW,
            ro: str | None = RO) -> ApiContext:
    """An API context with one chain ``devnet``, an in-memory watchlist and fake writers."""
    index = index or AlertIndex()
    watchlist = Watchlist()
    config = ChainwatchConfig.model_validate(
        {"chains": [{"name": "devnet", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}]})
    return ApiContext(config=config, index=index, watchlist=watchlist,
                      writer=FakeWriter(watchlist), audit=FakeAudit(index),
                      rw_token=SecretStr(rw) if rw else None,
                      read_token=SecretStr(ro) if ro else None)
