"""What the API's views need from a worker, behind small interfaces so tests can supply fakes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr

from monitor.lists.index import ListIndex
from monitor.records import WatchEntry
from monitor.settings import ChainwatchConfig
from monitor.watchlist import Watchlist
from monitor.web.audit import AuditRecord
from monitor.web.index import AlertIndex


class EntryWriter(Protocol):
    """Publishes watch entries and removals (``monitor.watchlist.WatchlistWriter``)."""

    async def put_many(self, entries: Iterable[WatchEntry]) -> int:
        """Publish entries; return how many."""
        ...

    async def remove(self, chain: str, address: str, case_id: str) -> None:
        """Publish a removal."""
        ...


class AuditSink(Protocol):
    """Appends audit records (``monitor.web.audit.AuditPublisher``)."""

    async def publish(self, record: AuditRecord) -> tuple[int, int]:
        """Append a record; return partition and offset."""
        ...


@dataclass
class ApiContext:
    """Everything the views read or write."""

    config: ChainwatchConfig
    index: AlertIndex
    watchlist: Watchlist
    writer: EntryWriter
    audit: AuditSink
    rw_token: SecretStr | None
    read_token: SecretStr | None
    lists: ListIndex | None = None
    ready: Any = None  # an asyncio.Event set once the watchlist replica caught up
    audit_wait_seconds: float = 15.0
    chains: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        """Derive the configured chain names."""
        self.chains = frozenset(c.name for c in self.config.chains)

    def native_assets(self) -> dict[str, tuple[str, int]]:
        """Native symbol and decimals of every configured chain."""
        return {c.name: (c.native_symbol, c.native_decimals) for c in self.config.chains}

    def labels(self, chain: str, address: str, at: int) -> list[tuple[str, str]]:
        """``(category, label)`` of the list entries in force for an address at ``at``."""
        if self.lists is None:
            return []
        return [(hit.category, hit.entry.label) for hit in self.lists.hits(address, at)]

    def list_versions(self) -> list[dict[str, Any]]:
        """Every list version loaded: name, version, category, dates, source and digest."""
        out: list[dict[str, Any]] = []
        if self.lists is None:
            return out
        for name in self.lists.names():
            for version in self.lists.versions(name):
                out.append({"name": version.name, "version": version.version,
                            "category": version.category, "published": version.published,
                            "source": version.source, "digest": version.digest,
                            "valid_from": version.valid_from, "valid_to": version.valid_to})
        return out

    def case_entries(self, case_id: str) -> list[WatchEntry]:
        """The case's watch entries, sorted."""
        return sorted((e for e in self.watchlist.entries() if e.case_id == case_id),
                      key=lambda e: (e.chain, e.address))
