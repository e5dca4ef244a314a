"""Watchlist import: mixed good and bad rows in every format, line numbers, and properties."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitor.watchlist_io
from monitor.errors import InputError
from monitor.records import WatchEntry
from monitor.watchlist_io import (
    ImportResult,
    RowError,
    load_watchlist_file,
    parse_watchlist,
)

# Real OFAC SDN digital-currency addresses (US Treasury public data, via
# 0xB10C/ofac-sanctioned-digital-currency-addresses @ f2aee226, MIT), in their mixed case.
OFAC = [
    "0x01e2919679362dFBC9ee1644Ba9C6da6D6245BB1",
    "0x03893a7c7463AE47D46bc7f091665f1893656003",
    "0x04DBA1194ee10112fE6C3207C0687DEf0e78baCf",
    "0x05E0b5B40B7b66098C2161A5EE11C5740A3A7C45",
    "0x07687e702b410Fa43f4cB4Af7FA097918ffD2730",
]
DEFAULTS = {"chain": "ethereum", "case_id": "CASE-2024-017"}


def addresses(result: ImportResult) -> list[str]:
    return [e.address for e in result.entries]


def where(result: ImportResult) -> list[tuple[int, str | None]]:
    return [(e.line, e.field) for e in result.errors]


# --------------------------------------------------------------------------- csv
def test_csv_mixed_rows() -> None:
    text = "\n".join([
        "address,chain,case_id,label,category",                     # 1
        f"{OFAC[0]},ethereum,CASE-1,OFAC SDN,sanctioned",           # 2 ok
        f"{OFAC[1]},,,,",                                           # 3 ok: defaults
        "0x123,ethereum,CASE-1,,",                                  # 4 bad address
        f"{OFAC[2]},Ethereum Mainnet,CASE-1,,",                     # 5 bad chain
        f"{OFAC[3]},ethereum,{'C' * 129},,",                        # 6 case id too long
        f"{OFAC[4]},ethereum,CASE-1,{'L' * 257},",                  # 7 label too long
        "",                                                         # 8 blank: fine
        f'"{OFAC[4]}",ethereum,CASE-1,"Mixer, deposit",suspect',    # 9 ok, quoted comma
        f'{OFAC[4]},ethereum,CASE-1,"unterminated',                 # 10 CSV syntax
        f"{OFAC[4]},ethereum,CASE-1,a,b,extra",                     # 11 too many fields
        f"{OFAC[0].lower()},ethereum,CASE-1,OFAC SDN,sanctioned",   # 12 duplicate of 2
    ])
    result = parse_watchlist(text, "csv", "case.csv", DEFAULTS)
    assert addresses(result) == [OFAC[0].lower(), OFAC[1].lower(), OFAC[4].lower()]
    assert where(result) == [(4, "address"), (5, "chain"), (6, "case_id"), (7, "label"),
                             (10, None), (11, None)]
    assert result.duplicates == 1
    first, defaulted, quoted = result.entries
    assert (first.case_id, first.label, first.category) == ("CASE-1", "OFAC SDN", "sanctioned")
    assert (defaulted.chain, defaulted.case_id, defaulted.category) == \
        ("ethereum", "CASE-2024-017", "seized")
    assert quoted.label == "Mixer, deposit"
    assert all(e.source == "case.csv" for e in result.entries)
    assert str(result.errors[0]).startswith("case.csv:4: address: not a 20-byte 0x address")


def test_csv_header_only_address_column_and_unknown_columns_reported_once() -> None:
    # The shape of bitnob/ofac-address-feed's entities CSV (MIT), header as published.
    text = ("Address,sdn_name,program\n"
            "0x08723392ed15743cc38513c4925f5e6be5c17243,Lazarus Group,DPRK3\n"
            "0x0330070fd38ec3bb94f58fa55d40368271e9e54a,AMNOKGANG TECHNOLOGY,DPRK4\n")
    result = parse_watchlist(text, "csv", "sdn.csv", DEFAULTS)
    assert len(result.entries) == 2
    assert [(e.line, e.field) for e in result.errors] == [(1, "sdn_name"), (1, "program")]


def test_csv_without_defaults_reports_missing_fields() -> None:
    text = f"address,chain\n{OFAC[0]},ethereum\n{OFAC[1]},\n"
    result = parse_watchlist(text, "csv", "x.csv", {})
    assert result.entries == []
    assert where(result) == [(2, "case_id"), (3, "chain")]


def test_csv_conflicting_duplicate_is_reported() -> None:
    text = f"address,label\n{OFAC[0]},first\n{OFAC[0]},second\n"
    result = parse_watchlist(text, "csv", "x.csv", DEFAULTS)
    assert [e.label for e in result.entries] == ["first"]
    assert result.errors[0].line == 3 and "line 2 was kept" in result.errors[0].message


@pytest.mark.parametrize("text", ["label,chain\nx,ethereum\n", "\n\n0xabc\n", "a,a,address\n"])
def test_csv_unusable_header_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match=r"bad\.csv"):
        parse_watchlist(text, "csv", "bad.csv", DEFAULTS)


def test_csv_crlf_bom_and_same_case_per_case() -> None:
    text = f"\ufeffaddress,case_id\r\n{OFAC[0]},A\r\n{OFAC[0]},B\r\n"
    result = parse_watchlist(text, "csv", "x.csv", DEFAULTS)
    assert [(e.address, e.case_id) for e in result.entries] == \
        [(OFAC[0].lower(), "A"), (OFAC[0].lower(), "B")]  # one address, two cases
    assert result.errors == []


def test_label_with_control_characters_is_rejected() -> None:
    text = f'address,label\n{OFAC[0]},"evil\x1b[2J"\n'
    result = parse_watchlist(text, "csv", "x.csv", DEFAULTS)
    assert where(result) == [(2, "label")]


@pytest.mark.parametrize("bad", [
    "0x" + "ab_c" * 10,              # int(..., 16) accepts underscores
    "0x-" + "a" * 39,                # ... and a sign
    "0x  " + "a" * 38,               # ... and inner spaces
    "0x" + "\u0663" * 40,            # ... and Arabic-Indic digits
    "0x" + "g" * 40, "0x" + "a" * 41, OFAC[0][2:],
])
def test_addresses_must_be_exactly_40_ascii_hex_digits(bad: str) -> None:
    result = parse_watchlist(bad + "\n", "txt", "x.txt", DEFAULTS)
    assert result.entries == [] and where(result) == [(1, "address")]


# --------------------------------------------------------------------------- json
def test_json_array_mixed_rows_with_line_numbers() -> None:
    text = f"""[
  {{"address": "{OFAC[0]}", "label": "OFAC SDN", "category": "sanctioned"}},
  {{"address": "not an address"}},
  "{OFAC[1]}",
  {{"address": "{OFAC[2]}", "chain": 7}},
  {{"address": "{OFAC[3]}", "case_id": 42, "note": "x"}},
  17,
  {{"address": "{OFAC[4]}", "case_id": null}}
]"""
    result = parse_watchlist(text, "json", "list.json", DEFAULTS)
    assert addresses(result) == [OFAC[i].lower() for i in (0, 1, 3, 4)]
    assert result.entries[2].case_id == "42"
    assert result.entries[3].case_id == "CASE-2024-017"
    assert where(result) == [(3, "address"), (5, "chain"), (6, "note"), (7, None)]


def test_json_syntax_error_keeps_the_rows_before_it() -> None:
    text = f'[\n  {{"address": "{OFAC[0]}"}},\n  {{"address": "{OFAC[1]}",, }}\n]'
    result = parse_watchlist(text, "json", "list.json", DEFAULTS)
    assert addresses(result) == [OFAC[0].lower()]
    [error] = result.errors
    assert error.line == 3 and "line 3" in error.message and "not read" in error.message


@pytest.mark.parametrize(("text", "line"), [
    (f'["{OFAC[0]}"', 1),
    (f'["{OFAC[0]}",\n]', 2),
    (f'["{OFAC[0]}"]\n{{"x": 1}}', 2),
    (f'["{OFAC[0]}" "{OFAC[1]}"]', 1),
])
def test_json_structure_errors_name_a_line(text: str, line: int) -> None:
    result = parse_watchlist(text, "json", "l.json", DEFAULTS)
    assert addresses(result) == [OFAC[0].lower()]
    assert [e.line for e in result.errors] == [line]


@pytest.mark.parametrize("text", ['{"address": "x"}', "[{", "nope", '"' + OFAC[0] + '"'])
def test_json_unreadable_from_the_start_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match=r"l\.json"):
        parse_watchlist(text, "json", "l.json", DEFAULTS)


@pytest.fixture
def high_recursion_limit() -> Any:
    """Raise the interpreter's recursion limit, as hypothesis and some libraries do.

    The C JSON decoder then recurses until the C stack overflows (a segfault, not an
    exception) on deep input: the parser must bound nesting before decoding.
    """
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    yield
    sys.setrecursionlimit(old)


@pytest.mark.usefixtures("high_recursion_limit")
def test_json_pathological_nesting_does_not_crash() -> None:
    deep = "[" * 200_000 + "]" * 200_000
    text = "[" + json.dumps(OFAC[0]) + ",\n" + deep + "," + json.dumps(OFAC[1]) + "]"
    result = parse_watchlist(text, "json", "deep.json", DEFAULTS)
    assert addresses(result) == [OFAC[0].lower()]
    [error] = result.errors
    assert error.line == 2 and "deeper than 64" in error.message
    with pytest.raises(InputError, match="deeper than 64"):
        parse_watchlist(deep, "json", "deep.json", DEFAULTS)
    lines = [json.dumps(OFAC[0]), '{"a":' * 200_000, json.dumps(OFAC[1])]
    result = parse_watchlist("\n".join(lines), "jsonl", "deep.jsonl", DEFAULTS)
    assert addresses(result) == [OFAC[0].lower(), OFAC[1].lower()]
    assert [e.line for e in result.errors] == [2]


def test_moderate_nesting_is_still_parsed() -> None:
    text = json.dumps([{"address": OFAC[0], "note": [[[[[["fine"]]]]]]}])
    result = parse_watchlist(text, "json", "x.json", DEFAULTS)
    assert addresses(result) == [OFAC[0].lower()]
    assert [e.field for e in result.errors] == ["note"]


# --------------------------------------------------------------------------- jsonl
def test_jsonl_mixed_rows() -> None:
    lines = [
        json.dumps({"address": OFAC[0], "label": "a"}),
        "",
        "{broken",
        json.dumps({"address": OFAC[1], "chain": "polygon-pos"}),
        json.dumps([OFAC[2]]),
        json.dumps(OFAC[3]),
        json.dumps({"address": OFAC[4], "label": None, "case_id": ""}),
        "1" * 5000,  # beyond Python's int-from-string limit
    ]
    result = parse_watchlist("\n".join(lines), "jsonl", "feed.jsonl", DEFAULTS)
    assert [(e.address, e.chain) for e in result.entries] == [
        (OFAC[0].lower(), "ethereum"), (OFAC[1].lower(), "polygon-pos"),
        (OFAC[3].lower(), "ethereum"), (OFAC[4].lower(), "ethereum")]
    assert [e.line for e in result.errors] == [3, 5, 8]
    assert "column" in result.errors[0].message


# --------------------------------------------------------------------------- txt
def test_txt_with_comments_and_blank_lines() -> None:
    text = f"# OFAC SDN, ETH\n\n{OFAC[0]}\n  {OFAC[1]}  # Lazarus\nnot-an-address\n{OFAC[0]}\n"
    result = parse_watchlist(text, "txt", "sdn.txt", {**DEFAULTS, "label": "OFAC SDN",
                                                      "category": "sanctioned"})
    assert addresses(result) == [OFAC[0].lower(), OFAC[1].lower()]
    assert {(e.label, e.category) for e in result.entries} == {("OFAC SDN", "sanctioned")}
    assert where(result) == [(5, "address")]
    assert result.duplicates == 1


def test_txt_needs_chain_and_case_defaults() -> None:
    with pytest.raises(InputError, match="default chain and case_id"):
        parse_watchlist(OFAC[0], "txt", "sdn.txt", {"chain": "ethereum"})


def test_invalid_defaults_and_unknown_format_are_input_errors() -> None:
    with pytest.raises(InputError, match="default chain"):
        parse_watchlist("", "csv", "x.csv", {"chain": "Ethereum!"})
    with pytest.raises(InputError, match="unknown watchlist format"):
        parse_watchlist("", "xlsx", "x.xlsx", DEFAULTS)


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "txt"])
def test_empty_input_is_an_empty_import(fmt: str) -> None:
    assert parse_watchlist("  \n", fmt, "empty", DEFAULTS) == ImportResult()


def test_errors_are_capped_but_counted() -> None:
    text = "\n".join(["junk"] * 50 + [OFAC[0]])
    result = parse_watchlist(text, "txt", "x.txt", DEFAULTS, max_errors=10)
    assert len(result.errors) == 10 and result.suppressed_errors == 40
    assert result.error_count == 50 and addresses(result) == [OFAC[0].lower()]


# --------------------------------------------------------------------------- files
def test_load_watchlist_file_picks_format_by_extension(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"{OFAC[0]}\n")
    (tmp_path / "b.CSV").write_text(f"address\n{OFAC[1]}\n")
    (tmp_path / "c.json").write_text(json.dumps([{"address": OFAC[2]}]))
    (tmp_path / "d.ndjson").write_text(json.dumps({"address": OFAC[3]}) + "\n")
    for name, index in (("a.txt", 0), ("b.CSV", 1), ("c.json", 2), ("d.ndjson", 3)):
        result = load_watchlist_file(tmp_path / name, DEFAULTS)
        assert addresses(result) == [OFAC[index].lower()]
        assert result.entries[0].source == str(tmp_path / name)


def test_load_watchlist_file_errors_name_the_file(tmp_path: Path) -> None:
    latin1 = tmp_path / "list.csv"
    latin1.write_bytes(b"address,label\n" + OFAC[0].encode() + b",Caf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8") as info:
        load_watchlist_file(latin1, DEFAULTS)
    assert "not UTF-8" in str(info.value) and str(latin1) in str(info.value)
    assert "line 2" in str(info.value)
    with pytest.raises(InputError, match="extension"):
        load_watchlist_file(tmp_path / "list.xlsx", DEFAULTS)
    with pytest.raises(InputError, match="cannot read") as missing:
        load_watchlist_file(tmp_path / "missing.txt", DEFAULTS)
    assert "missing.txt" in str(missing.value)


def test_module_docstring_example_runs() -> None:
    import doctest

    assert doctest.testmod(monitor.watchlist_io).failed == 0


# --------------------------------------------------------------------------- properties
PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FORMATS = ["csv", "json", "jsonl", "txt"]


# Text built from the characters that matter to the parsers finds structure bugs faster.
structured_text = st.lists(st.sampled_from(
    ['[', ']', '{', '}', '"', ',', ':', '\n', '\r', ' ', '#', '\\', 'null', '1', '-', 'e',
     '"address"', '"case_id"', '"chain"', "address,case_id,label", OFAC[0], "0x", "\ufeff"]),
    max_size=60).map("".join)


@PROPERTY
@given(text=st.one_of(st.text(max_size=400), structured_text), fmt=st.sampled_from(FORMATS))
def test_property_random_text_only_ever_raises_input_error(text: str, fmt: str) -> None:
    try:
        result = parse_watchlist(text, fmt, "fuzz", DEFAULTS)
    except InputError:
        return
    physical_lines = len(re.split(r"\r\n|\r|\n", text))
    for error in result.errors:
        assert isinstance(error, RowError) and 1 <= error.line <= physical_lines
    for entry in result.entries:
        assert isinstance(entry, WatchEntry) and entry.address.startswith("0x")


@PROPERTY
@given(text=st.binary(max_size=300))
def test_property_random_bytes_from_a_file(text: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for ext in (".csv", ".json", ".jsonl", ".txt"):
            path = Path(folder) / f"fuzz{ext}"
            path.write_bytes(text)
            try:
                load_watchlist_file(path, DEFAULTS)
            except InputError as exc:
                assert str(path) in str(exc)


hex_address = st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40).map(
    lambda body: "0x" + body)
label_text = st.text(st.characters(exclude_categories=("Cc", "Cf", "Zl", "Zp", "Cs")),
                     max_size=40)
valid_row = st.fixed_dictionaries({
    "address": hex_address,
    "case_id": st.from_regex(r"[A-Z]{2,5}-[0-9]{1,6}", fullmatch=True),
    "label": label_text,
})
LINE_BREAKS = "\r\n"  # the parsers split lines on CR LF, CR and LF only
garbage_line = st.text(st.characters(codec="utf-8", exclude_characters=LINE_BREAKS),
                       max_size=60)


def _csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _render(fmt: str, rows: list[tuple[bool, object]]) -> str:
    lines: list[str] = []
    if fmt == "csv":
        lines.append("address,case_id,label")
    for is_valid, row in rows:
        if not is_valid:
            lines.append(str(row))
        elif fmt == "csv":
            assert isinstance(row, dict)
            lines.append(",".join(_csv_cell(row[k]) for k in ("address", "case_id", "label")))
        elif fmt == "jsonl":
            lines.append(json.dumps(row))
        else:
            assert isinstance(row, dict)
            lines.append(row["address"])
    return "\n".join(lines)


@PROPERTY
@given(fmt=st.sampled_from(["csv", "jsonl", "txt"]),
       rows=st.lists(st.one_of(valid_row.map(lambda r: (True, r)),
                               garbage_line.map(lambda g: (False, g))), max_size=25))
def test_property_garbage_lines_never_drop_a_valid_row(
        fmt: str, rows: list[tuple[bool, object]]) -> None:
    result = parse_watchlist(_render(fmt, rows), fmt, "mixed", DEFAULTS)  # never InputError
    got = {(e.address, e.case_id) for e in result.entries}
    for is_valid, row in rows:
        if is_valid:
            assert isinstance(row, dict)
            case = row["case_id"] if fmt != "txt" else DEFAULTS["case_id"]
            assert (row["address"].lower(), case) in got


@PROPERTY
@given(rows=st.lists(st.one_of(valid_row.map(lambda r: (True, r)),
                               st.one_of(st.integers(), st.none(), st.booleans(),
                                         st.dictionaries(st.text(max_size=8),
                                                         st.text(max_size=20), max_size=3),
                                         st.text(max_size=30)).map(lambda g: (False, g))),
                     max_size=25))
def test_property_json_array_keeps_every_valid_object(rows: list[tuple[bool, object]]) -> None:
    text = json.dumps([row for _, row in rows], indent=1)
    result = parse_watchlist(text, "json", "mixed.json", DEFAULTS)
    got = {(e.address, e.case_id) for e in result.entries}
    for is_valid, row in rows:
        if is_valid:
            assert isinstance(row, dict)
            assert (row["address"].lower(), row["case_id"]) in got
