"""Which list entries applied to an address at a given block time: versions of dated lists.

What "in force" means
---------------------
A named list (``ofac-sdn-eth``) is held as one or more *versions*, each an imported snapshot
(:class:`~monitor.lists.model.AddressList`) with its entries. Version *v* is in force on the
half-open interval ``[v.valid_from, end)`` where ``end`` is the smallest of ``v.valid_to`` (if
set) and the ``valid_from`` of the next version of the same name held by the index (if any).
:meth:`ListIndex.hits` answers with the entries of the version in force at block time ``at``:
the version with the greatest ``valid_from <= at``, unless its own ``valid_to`` has passed.
Before a list's first version nothing of it applies; a newer version replaces the older one
wholly, so an address dropped from the newer snapshot (Tornado Cash, delisted by OFAC on
2025-03-21) stops being a hit from the newer snapshot's start, and one added to it is not a
hit before.

Limits, to be stated wherever a hit is used as evidence:

* Dates, not instants. A list published on date D is applied from D 00:00 UTC
  (:func:`~monitor.lists.model.sanctions_list`); the hour of publication is not known, so a
  transfer on D itself, before the publication, is judged by the new version.
* Snapshots, not the register. The index knows only the snapshots it holds. A designation or
  a delisting that happened between two snapshots is seen only from the later snapshot's date:
  a transfer between an OFAC designation and the next snapshot we hold is judged by the older
  snapshot (no hit yet); one between a delisting and the next snapshot is still a hit. The
  precise legal dates come from the SDN entries and Treasury notices, not from this index.
* Block time is the block header's timestamp (set by the block producer, seconds).
* Labels (who an address belongs to) are not time-bound: they are valid from 0
  (:func:`~monitor.lists.model.label_list`) and apply to every block time.
* ``in_force_to`` of a hit reflects the versions held at lookup time; loading a newer
  version later shortens the window of the one before.

Lookups are a dict access plus a scan of the few entries one address has across all
versions: each entry refers to its version's window, which is updated in place when a
newer version arrives, so adding a version never rewrites the entries of older ones.

>>> from monitor.lists.model import ListedAddress, sanctions_list
>>> from monitor.lists.importers import ListImport
>>> pool = "0x" + "12" * 20
>>> def version(day: str, *addresses: str) -> ListImport:
...     meta = sanctions_list("ofac-sdn-eth", "example", day)
...     return ListImport(list=meta, addresses=[ListedAddress(
...         chain_family="evm", address=a, list_name=meta.name, category=meta.category)
...         for a in addresses])
>>> index = ListIndex()
>>> index.add(version("2024-09-27", pool, "0x" + "34" * 20))
>>> index.add(version("2026-10-02", "0x" + "34" * 20))
>>> [hit.list.version for hit in index.hits(pool, 1730419200)]  # 2024-11-01
['2024-09-27']
>>> index.hits(pool, 1793491200)  # 2026-11-01
[]
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Final

from monitor.errors import InputError
from monitor.lists.importers import ListImport
from monitor.lists.model import AddressList, ListedAddress, ListHit

_FOREVER: Final = 2**63


class _Window:
    """The interval in which one list version is in force (mutable: a newer version ends it)."""

    __slots__ = ("end", "list", "start")

    def __init__(self, version: AddressList) -> None:
        self.list = version
        self.start = version.valid_from
        self.end = _FOREVER if version.valid_to is None else version.valid_to


class ListIndex:
    """In-memory index of list versions keyed by (chain family, address)."""

    def __init__(self) -> None:
        self._by_address: dict[tuple[str, str], list[tuple[_Window, ListedAddress]]] = {}
        self._versions: dict[str, list[_Window]] = {}

    def add(self, imported: ListImport, *, allow_empty: bool = False) -> None:
        """Add one list version with its entries.

        Raises :class:`InputError` if the list already has a version with the same
        ``version`` string or the same ``valid_from`` (which would be ambiguous), if an entry
        names another list, or if the version is empty and ``allow_empty`` is not set (an
        empty version would silently end every hit of the version before it).
        """
        meta = imported.list
        if not imported.addresses and not allow_empty:
            raise InputError("refusing an empty list version (pass allow_empty=True if the "
                             "list really became empty)", list=meta.name, version=meta.version)
        windows = self._versions.get(meta.name, [])
        for window in windows:
            if window.list.version == meta.version or window.start == meta.valid_from:
                raise InputError(f"list already holds version {window.list.version} valid "
                                 f"from {window.start}", list=meta.name, version=meta.version)
        for entry in imported.addresses:
            if entry.list_name != meta.name:
                raise InputError(f"entry {entry.address} names list {entry.list_name!r}",
                                 list=meta.name, version=meta.version)
        new = _Window(meta)
        windows = self._versions.setdefault(meta.name, windows)
        bisect.insort(windows, new, key=lambda w: w.start)
        self._recompute(windows)
        for entry in imported.addresses:
            self._by_address.setdefault((entry.chain_family, entry.address), []).append(
                (new, entry))

    def add_all(self, imports: Iterable[ListImport]) -> None:
        """Add several list versions (any order)."""
        for imported in imports:
            self.add(imported)

    @staticmethod
    def _recompute(windows: list[_Window]) -> None:
        """Set each version's end: its own valid_to, or the next version's start if earlier."""
        for i, window in enumerate(windows):
            own = _FOREVER if window.list.valid_to is None else window.list.valid_to
            following = windows[i + 1].start if i + 1 < len(windows) else _FOREVER
            window.end = min(own, following)

    def hits(self, address: str, at: int, chain_family: str = "evm") -> list[ListHit]:
        """Entries for ``address`` in the list versions in force at unix time ``at``.

        EVM addresses are compared in lower case. Hits come in the order the versions
        were added.
        """
        key = (chain_family, address.lower() if chain_family == "evm" else address)
        bucket = self._by_address.get(key)
        if not bucket:
            return []
        return [ListHit(entry=entry, list=window.list, in_force_from=window.start,
                        in_force_to=None if window.end == _FOREVER else window.end)
                for window, entry in bucket if window.start <= at < window.end]

    def in_force(self, name: str, at: int) -> AddressList | None:
        """The version of list ``name`` in force at ``at``, or None."""
        windows = self._versions.get(name, [])
        i = bisect.bisect_right(windows, at, key=lambda w: w.start) - 1
        if i < 0 or at >= windows[i].end:
            return None
        return windows[i].list

    def versions(self, name: str) -> list[AddressList]:
        """All versions held of list ``name``, oldest first."""
        return [window.list for window in self._versions.get(name, [])]

    def names(self) -> list[str]:
        """Names of the lists held, sorted."""
        return sorted(self._versions)

    def __len__(self) -> int:
        """Number of (address, list version) entries held."""
        return sum(len(bucket) for bucket in self._by_address.values())
