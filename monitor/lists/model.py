"""Address lists and their entries: which list, of which date, from which source, says what.

An :class:`AddressList` is one *version* of a named list (the OFAC SDN ETH addresses as
published on one date, one scrape of exchange labels). A :class:`ListedAddress` is one address
on it. A :class:`ListHit` is what a lookup returns: the entry together with the list version
that was in force, so that an alert can cite list, date, source and file digest.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Final, Literal, get_args

import msgspec

Category = Literal[
    "sanctioned", "mixer", "bridge", "exchange", "exchange-deposit", "scam", "heist",
    "phishing", "malicious-contract", "other",
]
CATEGORIES: Final[frozenset[str]] = frozenset(get_args(Category))

ChainFamily = Literal["evm", "bitcoin", "tron"]
CHAIN_FAMILIES: Final[frozenset[str]] = frozenset(get_args(ChainFamily))

_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}", re.ASCII)


def day_start(published: str) -> int:
    """Unix seconds of 00:00 UTC on an ISO ``YYYY-MM-DD`` date; ``ValueError`` if malformed."""
    if not _ISO_DATE.fullmatch(published):
        raise ValueError(f"not an ISO date YYYY-MM-DD: {published!r}")
    day = date.fromisoformat(published)
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


class AddressList(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a named address list, valid from ``valid_from`` until superseded.

    ``valid_to`` (exclusive) ends a version early even if no newer version exists; ``None``
    means "until the next version of the same name". ``digest`` is ``sha256:<hex>`` of the
    imported bytes, so that the exact file behind a hit can be produced later.
    """

    name: str  # e.g. "ofac-sdn-eth"; lower-case
    category: Category
    source: str  # where it came from: publisher, repository @ commit, path
    published: str  # ISO date YYYY-MM-DD of the publication or snapshot
    valid_from: int  # unix seconds; 00:00 UTC of ``published`` for dated lists, 0 for labels
    valid_to: int | None = None
    version: str
    digest: str = ""

    def __post_init__(self) -> None:
        """Reject names, categories, dates and windows that cannot be used."""
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"list name must match ^[a-z0-9][a-z0-9._-]{{0,62}}$: "
                             f"{self.name!r}")
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}; "
                             f"use one of {', '.join(sorted(CATEGORIES))}")
        day_start(self.published)
        if not self.version.strip():
            raise ValueError("version must not be empty")
        if self.valid_from < 0:
            raise ValueError(f"valid_from must be >= 0, got {self.valid_from}")
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError(f"valid_to ({self.valid_to}) must be after valid_from "
                             f"({self.valid_from})")

    def cite(self) -> str:
        """One line naming the list version for an alert or a report."""
        text = f"{self.name} version {self.version} (published {self.published}; {self.source}"
        return text + (f"; {self.digest})" if self.digest else ")")


class ListedAddress(msgspec.Struct, frozen=True, kw_only=True):
    """One address on a list, with the name, label or SDN entry it is listed under."""

    chain_family: ChainFamily
    address: str  # lower-case 0x hex for "evm"
    list_name: str
    category: Category
    label: str = ""  # SDN name, Etherscan name tag, scam tag
    programme: str | None = None  # sanctions programme(s) as published, e.g. "CYBER2; HRIT-IR"


class ListHit(msgspec.Struct, frozen=True, kw_only=True):
    """An entry of the list version in force at the looked-up time, with that version's window.

    ``in_force_to`` is the exclusive end known to the index at lookup time: the start of the
    next version held (or the version's own ``valid_to``); ``None`` while it is the newest.
    """

    entry: ListedAddress
    list: AddressList
    in_force_from: int
    in_force_to: int | None

    @property
    def category(self) -> Category:
        """The entry's category (a list may mix categories, e.g. phishing and heist)."""
        return self.entry.category

    def cite(self) -> str:
        """One line for an alert: address, label, programme, list version and source."""
        label = f" {self.entry.label!r}" if self.entry.label else ""
        programme = f" [{self.entry.programme}]" if self.entry.programme else ""
        return f"{self.entry.address}{label}{programme} on {self.list.cite()}"


def sanctions_list(name: str, source: str, published: str, *, version: str | None = None,
                   valid_to: int | None = None) -> AddressList:
    """A dated sanctions list version, applied from 00:00 UTC of ``published``."""
    return AddressList(name=name, category="sanctioned", source=source, published=published,
                       valid_from=day_start(published), valid_to=valid_to,
                       version=version or published)


def label_list(name: str, category: Category, source: str, published: str, *,
               version: str | None = None) -> AddressList:
    """A label set (who an address belongs to): not time-bound, valid from 0."""
    return AddressList(name=name, category=category, source=source, published=published,
                       valid_from=0, version=version or published)
