r"""Import watch entries from files investigators hand over: CSV, JSON, JSON lines, plain text.

Outside input is never trusted: every row is validated on its own, bad rows are reported with
their line number and skipped, good rows are kept, duplicates are collapsed. Only input that
cannot be read at all (not UTF-8, unknown format, no ``address`` column, JSON that breaks
before its first element) raises :class:`InputError`, which names the file.

Formats:

* ``csv`` -- a header row naming ``address`` and optionally ``chain``, ``case_id``, ``label``,
  ``category`` (any order, case-insensitive). Empty cells take the defaults. A record must sit
  on one line (values may not contain line breaks).
* ``json`` -- an array of objects with the same keys (or of plain address strings).
* ``jsonl`` -- one such object (or address string) per line.
* ``txt`` -- one address per line; ``#`` starts a comment; blank lines are ignored.

>>> result = parse_watchlist("address,label\n0x" + "ab" * 20 + ",Seized wallet\nnope,x\n",
...                          "csv", "case.csv", {"chain": "ethereum", "case_id": "CASE-1"})
>>> [(e.address[:6], e.label) for e in result.entries]
[('0xabab', 'Seized wallet')]
>>> print(result.errors[0])
case.csv:3: address: not a 20-byte 0x address: 'nope'
"""

from __future__ import annotations

import bisect
import csv
import json
import os
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, TypedDict

from monitor.errors import InputError
from monitor.records import WatchEntry, normalize_address

WatchlistFormat = Literal["csv", "json", "jsonl", "txt"]
FORMATS: Final[tuple[str, ...]] = ("csv", "json", "jsonl", "txt")
EXTENSIONS: Final[dict[str, WatchlistFormat]] = {
    ".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt",
}
COLUMNS: Final[tuple[str, ...]] = ("address", "chain", "case_id", "label", "category")

NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}", re.ASCII)
ADDRESS_RE: Final = re.compile(r"0x[0-9a-f]{40}", re.ASCII)
MAX_CASE_ID: Final = 128
MAX_LABEL: Final = 256
DEFAULT_CATEGORY: Final = "seized"
DEFAULT_MAX_ERRORS: Final = 1000
_PREVIEW: Final = 60
_NUMERIC_OK: Final = frozenset({"case_id", "label"})
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


class WatchDefaults(TypedDict, total=False):
    """Values for fields a file leaves out (a TXT file gives only addresses)."""

    chain: str
    case_id: str
    category: str
    label: str


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row (or a file-level remark): where it is, which field, what is wrong."""

    source: str
    line: int  # 1-based line in the file where the row starts
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.source}:{self.line}: {where}{self.message}"


@dataclass
class ImportResult:
    """Valid entries (first occurrence of each chain/address/case) and the rejected rows."""

    entries: list[WatchEntry] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    duplicates: int = 0  # rows collapsed into an earlier identical key
    suppressed_errors: int = 0  # errors beyond ``max_errors`` that were counted, not kept

    @property
    def error_count(self) -> int:
        """All errors found, kept or suppressed."""
        return len(self.errors) + self.suppressed_errors


class _RowInvalid(Exception):
    """A row failed validation (internal: becomes a RowError)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _preview(value: str) -> str:
    """Short, escaped rendering of outside text for an error message."""
    shown = value if len(value) <= _PREVIEW else value[:_PREVIEW] + "…"
    return repr(shown)


def _has_control(value: str) -> bool:
    if value.isprintable():  # fast path: no Cc/Cf/Zl/Zp (nor other non-printables)
        return False
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)


def _check_name(field_name: str, value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise _RowInvalid(field_name, f"{_preview(value)} must match "
                                      "^[a-z0-9][a-z0-9_-]{0,62}$ (lower-case name)")
    return value


def _check_address(value: str) -> str:
    try:
        address = normalize_address(value)
    except ValueError:
        raise _RowInvalid("address", f"not a 20-byte 0x address: {_preview(value)}") from None
    # normalize_address relies on int(x, 16), which also accepts '_', signs, inner spaces and
    # non-ASCII digits: insist on exactly 40 ASCII hex digits.
    if not ADDRESS_RE.fullmatch(address):
        raise _RowInvalid("address", f"not a 20-byte 0x address: {_preview(value)}")
    return address


def _check_case_id(value: str) -> str:
    if not value:
        raise _RowInvalid("case_id", "missing (and no default case_id given)")
    if len(value) > MAX_CASE_ID:
        raise _RowInvalid("case_id", f"longer than {MAX_CASE_ID} characters")
    if _has_control(value):
        raise _RowInvalid("case_id", "contains control characters")
    return value


def _check_label(value: str) -> str:
    if len(value) > MAX_LABEL:
        raise _RowInvalid("label", f"longer than {MAX_LABEL} characters")
    if _has_control(value):
        raise _RowInvalid("label", "contains control characters")
    return value


def _text_value(field_name: str, raw: object) -> str | None:
    """Return a cell or JSON value as stripped text, or None when empty (take the default)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw
    elif (field_name in _NUMERIC_OK and isinstance(raw, int) and not isinstance(raw, bool)
          and abs(raw) < 10**64):
        text = str(raw)  # a numeric case id or label in JSON
    else:
        raise _RowInvalid(field_name, f"must be a string, got {type(raw).__name__}")
    return text.strip() or None


class _Builder:
    """Validates rows against the defaults and collects entries and errors."""

    def __init__(self, source: str, defaults: WatchDefaults | Mapping[str, str],
                 max_errors: int) -> None:
        self.source = source
        self.max_errors = max_errors
        self.result = ImportResult()
        self._seen: dict[str, tuple[int, WatchEntry]] = {}
        self.defaults: dict[str, str] = {}
        for key in ("chain", "case_id", "category", "label"):
            value: object = defaults.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise InputError(f"default {key} must be a string", source=source)
            self.defaults[key] = value.strip()
        try:
            if "chain" in self.defaults:
                _check_name("chain", self.defaults["chain"])
            if "case_id" in self.defaults:
                _check_case_id(self.defaults["case_id"])
            if "category" in self.defaults:
                _check_name("category", self.defaults["category"])
            if "label" in self.defaults:
                _check_label(self.defaults["label"])
        except _RowInvalid as exc:
            raise InputError(f"invalid default {exc.field}: {exc.message}",
                             source=source) from None

    def error(self, line: int, field_name: str | None, message: str) -> None:
        """Record a RowError (or count it once ``max_errors`` are kept)."""
        if len(self.result.errors) < self.max_errors:
            self.result.errors.append(RowError(self.source, line, field_name, message))
        else:
            self.result.suppressed_errors += 1

    def row(self, line: int, values: Mapping[str, object]) -> None:
        """Validate one row of raw values (keys from COLUMNS) and keep it if valid."""
        try:
            entry = self._entry(values)
        except _RowInvalid as exc:
            self.error(line, exc.field, exc.message)
            return
        key = entry.key
        earlier = self._seen.get(key)
        if earlier is None:
            self._seen[key] = (line, entry)
            self.result.entries.append(entry)
            return
        self.result.duplicates += 1
        first_line, first = earlier
        if (first.label, first.category) != (entry.label, entry.category):
            self.error(line, None, f"duplicate of line {first_line} with a different label or "
                                   f"category; line {first_line} was kept")

    def _entry(self, values: Mapping[str, object]) -> WatchEntry:
        raw_address = _text_value("address", values.get("address"))
        if raw_address is None:
            raise _RowInvalid("address", "missing")
        address = _check_address(raw_address)
        chain = _text_value("chain", values.get("chain")) or self.defaults.get("chain")
        if not chain:
            raise _RowInvalid("chain", "missing (and no default chain given)")
        _check_name("chain", chain)
        case_id = _text_value("case_id", values.get("case_id")) or self.defaults.get("case_id", "")
        _check_case_id(case_id)
        label = _text_value("label", values.get("label")) or self.defaults.get("label", "")
        _check_label(label)
        category = (_text_value("category", values.get("category"))
                    or self.defaults.get("category") or DEFAULT_CATEGORY)
        _check_name("category", category)
        return WatchEntry(chain=chain, address=address, case_id=case_id, label=label,
                          category=category, source=self.source)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield physical lines with 1-based numbers; CR LF, CR and LF all end a line."""
    yield from enumerate(_LINE_BREAK.split(text), start=1)


def _parse_txt(text: str, build: _Builder) -> None:
    if not build.defaults.get("chain") or not build.defaults.get("case_id"):
        raise InputError("a TXT watchlist holds addresses only: give a default chain and "
                         "case_id", source=build.source)
    for number, line in _lines(text):
        address = line.split("#", 1)[0].strip()
        if address:
            build.row(number, {"address": address})


def _parse_csv(text: str, build: _Builder) -> None:
    lines = _lines(text)
    header: list[str] | None = None
    header_line = 0
    for number, line in lines:
        if line.strip():
            header_line = number
            try:
                header = next(csv.reader([line], strict=True))
            except csv.Error as exc:
                raise InputError(f"unreadable CSV header at line {number}: {exc}",
                                 source=build.source) from None
            break
    if header is None:
        return  # empty file: nothing to import
    names = [name.strip().lower() for name in header]
    if "address" not in names:
        raise InputError(f"the CSV header (line {header_line}) has no 'address' column; "
                         f"found: {', '.join(_preview(n) for n in names[:10]) or '(nothing)'}",
                         source=build.source)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"the CSV header (line {header_line}) repeats column "
                             f"{_preview(name)}", source=build.source)
        seen.add(name)
    unknown = [name for name in names if name not in COLUMNS]
    for name in unknown:
        build.error(header_line, name or None,
                    f"unknown column {_preview(name)} ignored; known: {', '.join(COLUMNS)}")
    for number, line in lines:
        if not line.strip():
            continue
        try:
            cells = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            build.error(number, None, f"CSV syntax: {exc} (a record must fit on one line)")
            continue
        if len(cells) > len(names):
            build.error(number, None, f"{len(cells)} fields but the header names {len(names)}")
            continue
        build.row(number, {name: cell for name, cell in zip(names, cells, strict=False)
                           if name in COLUMNS})


def _object_row(build: _Builder, line: int, value: object, unknown: set[str]) -> None:
    """One JSON element: an object with known keys, or a bare address string."""
    if isinstance(value, str):
        build.row(line, {"address": value})
        return
    if not isinstance(value, dict):
        build.error(line, None, f"expected an object or an address string, "
                                f"got {type(value).__name__}")
        return
    for key in value:
        if key not in COLUMNS and key not in unknown:
            unknown.add(key)
            build.error(line, str(key), f"unknown key {_preview(str(key))} ignored; "
                                        f"known: {', '.join(COLUMNS)}")
    build.row(line, {k: v for k, v in value.items() if k in COLUMNS})


def _parse_jsonl(text: str, build: _Builder) -> None:
    unknown: set[str] = set()
    for number, line in _lines(text):
        if not line.strip():
            continue
        if _too_deep(line) is not None:
            build.error(number, None, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            build.error(number, None, f"JSON syntax at column {exc.colno}: {exc.msg}")
            continue
        except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
            build.error(number, None, f"unreadable JSON: {type(exc).__name__}")
            continue
        _object_row(build, number, value, unknown)


_WS: Final = " \t\n\r"
MAX_JSON_DEPTH: Final = 64
# A JSON string (possibly unterminated: it then runs to the end, so scanning stays linear) or a
# bracket. Used to measure nesting before the C decoder sees the text.
_JSON_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.?)*+"?|[\[\]{}]', re.DOTALL)


def _too_deep(text: str, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """Find nesting deeper than MAX_JSON_DEPTH: (its position, start of its top-level element).

    The C JSON decoder recurses once per level and relies on the interpreter's recursion limit;
    a process that raised that limit can crash on a hostile ``[[[[...`` instead of raising, so
    depth is checked up front.
    """
    depth = 0
    element_start = start
    for match in _JSON_TOKEN.finditer(text, start, len(text) if end is None else end):
        char = text[match.start()]
        if char == '"':
            continue
        if char in "[{":
            depth += 1
            if depth == 2:
                element_start = match.start()
            if depth > MAX_JSON_DEPTH:
                return match.start(), element_start
        elif depth:
            depth -= 1
    return None


def _parse_json(text: str, build: _Builder) -> None:
    # Walk the top-level array element by element (raw_decode) so that each element gets its
    # line number and a syntax error late in the file keeps the elements before it.
    newlines = [match.start() for match in re.finditer("\n", text)]

    def line_of(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    def column_of(pos: int) -> int:
        i = bisect.bisect_left(newlines, pos)
        return pos - (newlines[i - 1] + 1 if i else 0) + 1

    def where(pos: int) -> str:
        return f"line {line_of(pos)}, column {column_of(pos)}"

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in _WS:
            pos += 1
        return pos

    decoder = json.JSONDecoder()
    unknown: set[str] = set()
    pos = skip(0)
    if pos == len(text):
        return  # empty file: nothing to import
    if text[pos] != "[":
        raise InputError(f"a JSON watchlist must be an array of objects; found {text[pos]!r} at "
                         f"{where(pos)}", source=build.source)
    pos = skip(pos + 1)
    if pos < len(text) and text[pos] == "]":
        pos = skip(pos + 1)
        if pos < len(text):
            build.error(line_of(pos), None, f"extra data after the array at {where(pos)}")
        return
    deep = _too_deep(text)
    elements = 0
    while True:
        if deep is not None and pos >= deep[1]:
            problem = f"JSON nested deeper than {MAX_JSON_DEPTH} levels at {where(deep[0])}"
            if elements == 0:
                raise InputError(problem, source=build.source)
            build.error(line_of(pos), None, problem + "; the rest of the file was not read")
            return
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            problem = f"JSON syntax at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        except (ValueError, RecursionError) as exc:
            problem = f"unreadable JSON element at {where(pos)}: {type(exc).__name__}"
        else:
            problem = ""
        if problem:
            if elements == 0:
                raise InputError(problem, source=build.source)
            build.error(line_of(pos), None, problem + "; the rest of the file was not read")
            return
        elements += 1
        _object_row(build, line_of(pos), value, unknown)
        pos = skip(end)
        if pos >= len(text):
            build.error(line_of(len(text)), None,
                        "JSON syntax: the array is not closed with ']'")
            return
        if text[pos] == ",":
            pos = skip(pos + 1)
            if pos < len(text) and text[pos] == "]":
                build.error(line_of(pos), None, f"JSON syntax: trailing comma before ']' at "
                                                f"{where(pos)}")
                pos = skip(pos + 1)
                break
            continue
        if text[pos] == "]":
            pos = skip(pos + 1)
            break
        build.error(line_of(pos), None, f"JSON syntax: expected ',' or ']' at {where(pos)}; "
                                        "the rest of the file was not read")
        return
    if pos < len(text):
        build.error(line_of(pos), None, f"extra data after the array at {where(pos)}")


_PARSERS: Final = {"csv": _parse_csv, "json": _parse_json, "jsonl": _parse_jsonl,
                   "txt": _parse_txt}


def parse_watchlist(
    text: str,
    fmt: WatchlistFormat | str,
    source: str,
    defaults: WatchDefaults | Mapping[str, str] | None = None,
    *,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> ImportResult:
    """Parse watchlist ``text`` in format ``fmt``; ``source`` names it in errors and entries.

    ``defaults`` (keys ``chain``, ``case_id``, ``category``, ``label``) fill fields a row
    leaves empty. Returns the valid entries and one :class:`RowError` per rejected row; raises
    :class:`InputError` only when nothing can be read (see the module docstring) or a default
    is invalid. At most ``max_errors`` errors are kept; the rest are counted.
    """
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise InputError(f"unknown watchlist format {fmt!r}; use one of {', '.join(FORMATS)}",
                         source=source)
    build = _Builder(source, defaults or {}, max_errors)
    parser(text.removeprefix("\ufeff"), build)
    return build.result


def load_watchlist_file(
    path: str | os.PathLike[str],
    defaults: WatchDefaults | Mapping[str, str] | None = None,
    *,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> ImportResult:
    """Read a watchlist file, choosing the format by extension (.csv .json .jsonl .ndjson .txt)."""
    file = Path(path)
    fmt = EXTENSIONS.get(file.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot tell the watchlist format from the extension "
                         f"{file.suffix or '(none)'!r}; use one of "
                         f"{', '.join(sorted(EXTENSIONS))}", source=str(file))
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read watchlist: {exc.strerror or exc}",
                         source=str(file)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                         f"(line {line})", source=str(file)) from None
    return parse_watchlist(text, fmt, str(file), defaults, max_errors=max_errors)

