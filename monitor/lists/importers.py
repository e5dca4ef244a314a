r"""Importers for published address lists: OFAC SDN files, Etherscan and Forta labels, others.

Every importer reads outside text row by row: a bad row becomes a :class:`RowError` (file,
line, field, message) in ``errors`` and is skipped, the valid rows are kept. Rows that are kept
but deserve a look (a mixed-case address whose EIP-55 checksum fails, a label with control
characters, an empty line, an unknown column) are reported in ``warnings``. The same address
twice in one file is kept once (``duplicates`` counts the rest).

:class:`InputError`, naming the file, is raised only when nothing usable can be read: text
that is not UTF-8, a CSV without the needed columns, JSON that is not an array or breaks before
its first element, or a file without a single valid address. The last rule is deliberate: an
empty version of a sanctions list would, once in force, clear every hit of the version before.

Formats (``FORMATS``; :func:`load_list` chooses the parser by name):

* ``ofac-txt`` -- one address a line (0xB10C/ofac-sanctioned-digital-currency-addresses,
  bitnob/ofac-address-feed); ``#`` starts a comment.
* ``ofac-json`` -- a JSON array of address strings (same publishers).
* ``ofac-entities-csv`` -- ``address,sdn_name,program[,chain]`` (bitnob/ofac-address-feed).
  A row whose ``chain`` is not one of the list's assets (``ETH``) is rejected with an error.
* ``etherscan-labels-csv`` -- ``index,Address,Name Tag,Balance,Txn Count`` (scraped Etherscan
  labels); the category is the list's (see :func:`etherscan_category` for file names).
* ``forta-csv`` -- forta-network/labelled-datasets: ``banned_address,wallet_tag,data_source``,
  ``address,etherscan_tag,etherscan_labels,is_contract`` or ``contract_address,contract_tag,
  ...``; the variant is told by the header and the category by the row where it says so.
* ``lazarus-txt`` -- addresses written as Postgres byte literals, ``'\x098b…',`` (read as
  ``0x098b…``), one a line; entries get no label (the list's name and source attribute them).
* ``label-json`` -- a JSON array of ``{"address", "name", "category"?, "programme"?}``.

A CSV record must sit on one line (values may contain commas inside quotes, not line breaks).

>>> from monitor.lists.model import sanctions_list
>>> meta = sanctions_list("ofac-sdn-eth", "example", "2024-09-27")
>>> result = parse_list("0x" + "ab" * 20 + "\n123WBUDmSJv4GctdVEz6Qq6z8nXSKrJ4KX\n",
...                     "ofac-txt", meta, "eth.txt")
>>> [a.address[:6] for a in result.addresses]
['0xabab']
>>> print(result.errors[0])
eth.txt:2: address: looks like a Bitcoin address; this EVM list takes 0x addresses only
"""

from __future__ import annotations

import builtins
import csv
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec
from eth_utils import is_checksum_address

from monitor.errors import InputError
from monitor.lists.model import CATEGORIES, AddressList, Category, ListedAddress
from monitor.records import normalize_address
from monitor.watchlist_io import ADDRESS_RE, RowError

DEFAULT_MAX_ERRORS: Final = 1000
MAX_LABEL: Final = 256
MAX_JSON_DEPTH: Final = 32
EVM_ASSETS: Final[frozenset[str]] = frozenset({"ETH"})
_PREVIEW: Final = 60
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")
_HEX40: Final = re.compile(r"[0-9a-fA-F]{40}", re.ASCII)
_BASE58: Final = re.compile(r"[1-9A-HJ-NP-Za-km-z]+", re.ASCII)
_BECH32: Final = re.compile(r"(bc1|tb1)[02-9ac-hj-np-z]{8,87}", re.ASCII | re.IGNORECASE)

# Etherscan label-cloud file names (brianleect/etherscan-labels) and the category they imply.
ETHERSCAN_CATEGORIES: Final[Mapping[str, Category]] = {
    "tornado-cash": "mixer", "ethereum-mixer": "mixer", "bridge": "bridge",
    "binance-deposit": "exchange-deposit", "binance": "exchange", "coinbase": "exchange",
    "kraken": "exchange", "okx": "exchange", "huobi": "exchange", "kucoin": "exchange",
    "changenow": "exchange", "crypto-com": "exchange", "ftx": "exchange",
    "fiat-gateway": "exchange", "blocked": "other",
}
# Forta's source columns and the category each value implies.
FORTA_CATEGORIES: Final[Mapping[str, Category]] = {
    "etherscan-phish-hack-list": "phishing", "etherscan-heist-list": "heist",
    "etherscan-exploit-list": "heist", "phish-hack": "phishing", "heist": "heist",
    "exploit": "heist",
}


def etherscan_category(file_stem: str) -> Category:
    """Category implied by an Etherscan label file name (``tornado-cash`` -> ``mixer``)."""
    return ETHERSCAN_CATEGORIES.get(file_stem.strip().lower(), "other")


@dataclass
class ListImport:
    """One imported list version: its metadata, the valid entries and the rejected rows."""

    list: AddressList
    addresses: builtins.list[ListedAddress] = field(default_factory=builtins.list)
    errors: builtins.list[RowError] = field(default_factory=builtins.list)
    warnings: builtins.list[RowError] = field(default_factory=builtins.list)
    duplicates: int = 0  # rows repeating an address already kept from this file
    suppressed_errors: int = 0  # errors and warnings beyond ``max_errors``, counted only

    @property
    def error_count(self) -> int:
        """Rejected rows, kept or suppressed."""
        return len(self.errors) + self.suppressed_errors


class _RowInvalid(Exception):
    """A row failed validation (internal: becomes a RowError)."""

    def __init__(self, field_name: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def _preview(value: str) -> str:
    """Short, escaped rendering of outside text for a message."""
    return repr(value if len(value) <= _PREVIEW else value[:_PREVIEW] + "…")


def _address_problem(text: str) -> str:
    """Why ``text`` is not an EVM address, naming the chain it seems to belong to."""
    if not text:
        return "missing"
    if text[:2] in ("0x", "0X"):
        body = text[2:]
        if not body.isascii() or not all(c in "0123456789abcdefABCDEF" for c in body):
            return f"not hexadecimal: {_preview(text)}"
        return f"{len(body)} hex digits, 40 expected: {_preview(text)}"
    if _BECH32.fullmatch(text) or (text[0] in "13" and 25 <= len(text) <= 35
                                   and _BASE58.fullmatch(text)):
        return "looks like a Bitcoin address; this EVM list takes 0x addresses only"
    if text[0] == "T" and len(text) == 34 and _BASE58.fullmatch(text):
        return "looks like a Tron address; this EVM list takes 0x addresses only"
    if _HEX40.fullmatch(text):
        return f"no 0x prefix: {_preview(text)}"
    return f"not a 20-byte 0x address: {_preview(text)}"


def _evm_address(raw: str) -> tuple[str, bool]:
    """Return (lower-case address, EIP-55 checksum failed) or raise _RowInvalid."""
    text = raw.strip()
    try:
        address = normalize_address(text)
    except ValueError:
        raise _RowInvalid("address", _address_problem(text)) from None
    # normalize_address relies on int(x, 16), which also takes '_', signs and non-ASCII digits.
    if not ADDRESS_RE.fullmatch(address):
        raise _RowInvalid("address", _address_problem(text))
    body = text[2:]
    mixed = body != body.lower() and body != body.upper()
    return address, mixed and not is_checksum_address("0x" + body)


def _clean_label(field_name: str, raw: str, warn: Callable[[str, str], None]) -> str:
    """Strip a label; replace control characters and cut overlong text, with a warning."""
    text = raw.strip()
    if not text.isprintable() and any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
                                      for c in text):
        text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
                       for c in text).strip()
        warn(field_name, "control characters replaced by spaces")
    if len(text) > MAX_LABEL:
        text = text[:MAX_LABEL - 1] + "…"
        warn(field_name, f"longer than {MAX_LABEL} characters: cut")
    return text


class _Collector:
    """Validates rows of one file and gathers entries, errors and warnings."""

    def __init__(self, meta: AddressList, origin: str, max_errors: int) -> None:
        self.meta = meta
        self.origin = origin
        self.max_errors = max_errors
        self.result = ListImport(list=meta)
        self._seen: dict[str, tuple[int, ListedAddress]] = {}
        self.rows = 0

    def _note(self, into: list[RowError], line: int, field_name: str | None,
              message: str) -> None:
        if len(self.result.errors) + len(self.result.warnings) < self.max_errors:
            into.append(RowError(self.origin, line, field_name, message))
        else:
            self.result.suppressed_errors += 1

    def error(self, line: int, field_name: str | None, message: str) -> None:
        """Record a rejected row."""
        self._note(self.result.errors, line, field_name, message)

    def warn(self, line: int, field_name: str | None, message: str) -> None:
        """Record a remark about a row that was kept (or a harmless skipped line)."""
        self._note(self.result.warnings, line, field_name, message)

    def add(self, line: int, raw_address: object, label: object = "",
            programme: object = None, category: object = None) -> None:
        """Validate one row and keep it, or record why not."""
        self.rows += 1
        try:
            entry, bad_checksum = self._entry(line, raw_address, label, programme, category)
        except _RowInvalid as exc:
            self.error(line, exc.field, exc.message)
            return
        if bad_checksum:
            self.warn(line, "address", "mixed-case address fails its EIP-55 checksum (a typo "
                                       "in the source?); kept as listed")
        earlier = self._seen.get(entry.address)
        if earlier is None:
            self._seen[entry.address] = (line, entry)
            self.result.addresses.append(entry)
            return
        self.result.duplicates += 1
        first_line, first = earlier
        if (first.label, first.programme, first.category) != \
                (entry.label, entry.programme, entry.category):
            self.warn(line, None, f"repeats the address of line {first_line} with a different "
                                  f"name, programme or category; line {first_line} was kept")

    def _text(self, field_name: str, raw: object) -> str:
        if raw is None:
            return ""
        if not isinstance(raw, str):
            raise _RowInvalid(field_name, f"must be a string, got {type(raw).__name__}")
        return raw

    def _entry(self, line: int, raw_address: object, raw_label: object, raw_programme: object,
               raw_category: object) -> tuple[ListedAddress, bool]:
        address, bad_checksum = _evm_address(self._text("address", raw_address))
        category_text = self._text("category", raw_category).strip().lower()
        if category_text and category_text not in CATEGORIES:
            raise _RowInvalid("category", f"unknown category {_preview(category_text)}; use one "
                                          f"of {', '.join(sorted(CATEGORIES))}")
        category: Category = category_text or self.meta.category  # type: ignore[assignment]

        def warn(field_name: str, message: str) -> None:
            self.warn(line, field_name, message)

        label = _clean_label("label", self._text("label", raw_label), warn)
        programme = _clean_label("programme", self._text("programme", raw_programme), warn)
        return ListedAddress(chain_family="evm", address=address, list_name=self.meta.name,
                             category=category, label=label, programme=programme or None,
                             ), bad_checksum


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Physical lines, numbered from 1; the empty rest after a final line break is dropped."""
    parts = _LINE_BREAK.split(text)
    if parts and parts[-1] == "":
        parts.pop()
    yield from enumerate(parts, start=1)


def _parse_ofac_txt(text: str, col: _Collector) -> None:
    for number, line in _lines(text):
        value = line.split("#", 1)[0].strip()
        if value:
            col.add(number, value)
        elif not line.strip():
            col.warn(number, None, "empty line skipped")


def _parse_lazarus_txt(text: str, col: _Collector) -> None:
    for number, line in _lines(text):
        value = line.strip()
        if not value:
            col.warn(number, None, "empty line skipped")
            continue
        unquoted = value.rstrip(",").strip().strip("'\"")
        if unquoted[:2] in ("\\x", "\\X"):
            unquoted = "0x" + unquoted[2:]
        col.add(number, unquoted)  # the file names no one: the list's name and source do


class _CsvHeader:
    """A CSV header: lower-cased column names and the line it is on."""

    def __init__(self, names: list[str], line: int) -> None:
        self.names = names
        self.line = line

    def require(self, col: _Collector, *needed: str) -> None:
        """Raise InputError (naming the file) unless every needed column is present."""
        missing = [name for name in needed if name not in self.names]
        if missing:
            raise InputError(f"the CSV header (line {self.line}) lacks {', '.join(missing)}; "
                             f"found: {', '.join(_preview(n) for n in self.names[:10])}",
                             source=col.origin)


def _csv_header(lines: Iterator[tuple[int, str]], col: _Collector) -> _CsvHeader | None:
    """Read the first non-blank line as the header (None for an empty file)."""
    for number, line in lines:
        if not line.strip():
            continue
        try:
            cells = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            raise InputError(f"unreadable CSV header at line {number}: {exc}",
                             source=col.origin) from None
        return _CsvHeader([cell.strip().lower() for cell in cells], number)
    return None


def _csv_records(lines: Iterator[tuple[int, str]], header: _CsvHeader,
                 col: _Collector) -> Iterator[tuple[int, dict[str, str]]]:
    """Data rows as {column: cell}; blank lines, CSV syntax and column counts are reported."""
    width = len(header.names)
    for number, line in lines:
        if not line.strip():
            col.warn(number, None, "empty line skipped")
            continue
        try:
            cells = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            col.rows += 1
            col.error(number, None, f"CSV syntax: {exc} (a record must fit on one line)")
            continue
        if len(cells) != width:
            col.rows += 1
            col.error(number, None, f"{len(cells)} fields, but the header (line "
                                    f"{header.line}) names {width}")
            continue
        yield number, dict(zip(header.names, cells, strict=True))


def _first(record: Mapping[str, str], *names: str) -> str:
    """The first non-empty cell among ``names``."""
    for name in names:
        value = record.get(name, "").strip()
        if value:
            return value
    return ""


def _parse_ofac_entities_csv(text: str, col: _Collector, assets: frozenset[str]) -> None:
    lines = _lines(text)
    header = _csv_header(lines, col)
    if header is None:
        return
    header.require(col, "address")
    for number, record in _csv_records(lines, header, col):
        asset = _first(record, "chain", "asset").upper()
        if asset and asset not in assets:
            col.rows += 1
            col.error(number, "chain", f"asset {_preview(asset)} is not taken by this EVM list "
                                       f"(takes {', '.join(sorted(assets))})")
            continue
        col.add(number, record["address"], _first(record, "sdn_name", "name"),
                _first(record, "program", "programme", "programs"))


def _parse_etherscan_csv(text: str, col: _Collector) -> None:
    lines = _lines(text)
    header = _csv_header(lines, col)
    if header is None:
        return
    header.require(col, "address")
    for number, record in _csv_records(lines, header, col):
        col.add(number, record["address"], _first(record, "name tag", "label", "name"))


def _parse_forta_csv(text: str, col: _Collector) -> None:
    lines = _lines(text)
    header = _csv_header(lines, col)
    if header is None:
        return
    names = header.names
    if "banned_address" not in names and "contract_address" not in names:
        header.require(col, "address")
    for number, record in _csv_records(lines, header, col):
        if "banned_address" in names:  # etherscan_malicious_labels.csv
            col.add(number, record["banned_address"], record.get("wallet_tag", ""),
                    category=FORTA_CATEGORIES.get(record.get("data_source", "").strip()))
        elif "contract_address" in names:  # malicious_smart_contracts.csv
            creator = _first(record, "contract_creator_tag", "contract_creator_etherscan_label")
            label = _first(record, "contract_tag", "notes") or (
                f"created by {creator}" if creator else "")
            col.add(number, record["contract_address"], label)
        else:  # phishing_scams.csv
            col.add(number, record["address"], _first(record, "etherscan_tag"),
                    category=FORTA_CATEGORIES.get(_first(record, "etherscan_labels")))


_JSON_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.?)*+"?|[\[\]{}]', re.DOTALL)


def _deep_at(text: str) -> int | None:
    """Position where nesting first exceeds MAX_JSON_DEPTH (the C decoder recurses per level)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        char = text[match.start()]
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return match.start()
        elif char in "]}" and depth:
            depth -= 1
    return None


def _json_elements(text: str, col: _Collector) -> Iterator[tuple[int, object]]:
    """Elements of a top-level JSON array with their line numbers; stops at the first break."""
    line_starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]

    def line_of(pos: int) -> int:
        low, high = 0, len(line_starts)
        while high - low > 1:
            mid = (low + high) // 2
            if line_starts[mid] <= pos:
                low = mid
            else:
                high = mid
        return low + 1

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip(0)
    if pos == len(text):
        return
    if text[pos] != "[":
        raise InputError(f"expected a JSON array, found {text[pos]!r} at line {line_of(pos)}",
                         source=col.origin)
    deep = _deep_at(text)
    # Elements are decoded from the text cut before the first too-deep bracket, so the C
    # decoder never recurses past MAX_JSON_DEPTH; an element reaching the cut is reported.
    readable = text if deep is None else text[:deep]
    decoder = json.JSONDecoder()
    pos = skip(pos + 1)
    count = 0
    while pos < len(text) and text[pos] != "]":
        problem = ""
        try:
            value, end = decoder.raw_decode(readable, pos)
        except json.JSONDecodeError as exc:
            if deep is not None and exc.pos >= deep:
                problem = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            else:
                problem = f"JSON syntax at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        except (ValueError, RecursionError) as exc:
            problem = f"unreadable JSON element: {type(exc).__name__}"
        if problem:
            if count == 0:
                raise InputError(problem, source=col.origin)
            col.error(line_of(pos), None, problem + "; the rest of the file was not read")
            return
        count += 1
        yield line_of(pos), value
        pos = skip(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip(pos + 1)
            if pos < len(text) and text[pos] == "]":
                col.warn(line_of(pos), None, "trailing comma before ']'")
        elif pos < len(text) and text[pos] != "]":
            col.error(line_of(pos), None, "JSON syntax: expected ',' or ']'; the rest of the "
                                          "file was not read")
            return
    if pos >= len(text):
        col.warn(line_of(len(text)), None, "the JSON array is not closed with ']'")
        return
    pos = skip(pos + 1)
    if pos < len(text):
        col.warn(line_of(pos), None, "extra data after the JSON array ignored")


def _parse_ofac_json(text: str, col: _Collector) -> None:
    for number, value in _json_elements(text, col):
        if not isinstance(value, str):
            col.rows += 1
            col.error(number, "address", f"expected an address string, got "
                                         f"{type(value).__name__}")
            continue
        col.add(number, value)


_LABEL_KEYS: Final = ("address", "name", "label", "category", "programme", "program")


def _parse_label_json(text: str, col: _Collector) -> None:
    unknown: set[str] = set()
    for number, value in _json_elements(text, col):
        if not isinstance(value, dict):
            col.rows += 1
            col.error(number, None, f"expected an object, got {type(value).__name__}")
            continue
        for key in value:
            if key not in _LABEL_KEYS and key not in unknown:
                unknown.add(key)
                col.warn(number, str(key), f"unknown key {_preview(str(key))} ignored")
        name = value.get("name")
        col.add(number, value.get("address"), name if name is not None else value.get("label"),
                value.get("programme", value.get("program")), value.get("category"))


Parser = Callable[[str, "_Collector"], None]
FORMATS: Final[Mapping[str, Parser]] = {
    "ofac-txt": _parse_ofac_txt,
    "ofac-json": _parse_ofac_json,
    "ofac-entities-csv": lambda text, col: _parse_ofac_entities_csv(text, col, EVM_ASSETS),
    "etherscan-labels-csv": _parse_etherscan_csv,
    "forta-csv": _parse_forta_csv,
    "lazarus-txt": _parse_lazarus_txt,
    "label-json": _parse_label_json,
}


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_list(text: str, fmt: str, meta: AddressList, origin: str, *,
               max_errors: int = DEFAULT_MAX_ERRORS) -> ListImport:
    """Parse ``text`` in format ``fmt`` into a version of the list ``meta`` describes.

    ``origin`` names the input in errors (a file path). ``meta.digest`` is set to the SHA-256
    of the UTF-8 text unless it is already set. Raises :class:`InputError` only when nothing
    usable can be read (see the module docstring).
    """
    parser = FORMATS.get(fmt)
    if parser is None:
        raise InputError(f"unknown list format {fmt!r}; use one of {', '.join(FORMATS)}",
                         source=origin)
    if not meta.digest:
        meta = msgspec.structs.replace(meta, digest=_sha256(text.encode("utf-8", "replace")))
    col = _Collector(meta, origin, max_errors)
    parser(text.removeprefix("\ufeff"), col)
    result = col.result
    if not result.addresses:
        first = f"; first problem: {result.errors[0]}" if result.errors else ""
        raise InputError(f"no valid EVM address found ({col.rows} rows read, "
                         f"{result.error_count} rejected){first}", source=origin)
    return result


def load_list(path: str | os.PathLike[str], fmt: str, meta: AddressList, *,
              max_errors: int = DEFAULT_MAX_ERRORS) -> ListImport:
    """Read a list file (UTF-8) and parse it; the digest is that of the file's bytes."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read list file: {exc.strerror or exc}",
                         source=str(file)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                         f"(line {line})", source=str(file)) from None
    meta = msgspec.structs.replace(meta, digest=_sha256(data))
    return parse_list(text, fmt, meta, str(file), max_errors=max_errors)
