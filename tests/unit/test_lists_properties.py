"""Properties of the list importers and the index: any text, garbage mixed in, versions in force."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import InputError
from monitor.lists import (
    FORMATS,
    AddressList,
    ListedAddress,
    ListImport,
    ListIndex,
    label_list,
    parse_list,
    sanctions_list,
)

META = sanctions_list("ofac-sdn-eth", "property test", "2024-09-27")
LABELS = label_list("labels", "other", "property test", "2023-06-01")
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
# Garbage cannot hold a valid address: no 'x' (so no 0x prefix) and no line breaks.
garbage_line = st.text(
    alphabet=st.characters(blacklist_characters="xX\r\n", blacklist_categories=["Cs"]),
    max_size=60)
header = {
    "ofac-entities-csv": "address,sdn_name,program,chain",
    "etherscan-labels-csv": ",Address,Name Tag,Balance,Txn Count",
    "forta-csv": "banned_address,wallet_tag,data_source",
}


def render(fmt: str, address: str, i: int) -> str:
    """One valid line of ``fmt`` for ``address`` (``i`` varies names and case)."""
    shown = address.upper().replace("0X", "0x") if i % 3 == 1 else address
    if fmt == "ofac-entities-csv":
        return f'{shown},"Name {i}, Ltd",CYBER2,ETH'
    if fmt == "etherscan-labels-csv":
        return f'{i},{shown},Tag {i},"1,000 ETH",{i}'
    if fmt == "forta-csv":
        return f"{shown},Fake_Phishing{i},etherscan-phish-hack-list"
    if fmt == "lazarus-txt":
        return f"'\\x{shown[2:]}',"
    return f"  {shown}  "


def parse_or_input_error(text: str, fmt: str) -> ListImport | None:
    try:
        return parse_list(text, fmt, LABELS if fmt in ("label-json", "forta-csv") else META,
                          "fuzz")
    except InputError:
        return None


@FAST
@given(text=st.text(max_size=400), fmt=st.sampled_from(sorted(FORMATS)))
def test_any_text_gives_a_result_or_input_error(text: str, fmt: str) -> None:
    result = parse_or_input_error(text, fmt)
    if result is not None:
        assert result.addresses
        assert all(e.line >= 1 for e in result.errors + result.warnings)


@FAST
@given(body=st.lists(st.one_of(garbage_line, addresses.map(lambda a: a[2:])), max_size=12),
       fmt=st.sampled_from(sorted(FORMATS)))
def test_any_lines_in_a_known_shape_give_a_result_or_input_error(body: list[str],
                                                                 fmt: str) -> None:
    lines = ([header[fmt]] if fmt in header else []) + [f"0x{line}," for line in body]
    parse_or_input_error("\n".join(lines), fmt)


@FAST
@given(json_value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | addresses,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["address", "name", "category", "x"]), inner, max_size=4),
    max_leaves=20))
def test_any_json_gives_a_result_or_input_error(json_value: object) -> None:
    for fmt in ("ofac-json", "label-json"):
        parse_or_input_error(json.dumps(json_value), fmt)
        parse_or_input_error(json.dumps([json_value]), fmt)


def test_deep_json_is_refused_not_recursed() -> None:
    deep = '["0x' + "ab" * 20 + '", ' + "[" * 100_000 + "]" * 100_000 + "]"
    result = parse_list(deep, "ofac-json", META, "deep.json")
    assert len(result.addresses) == 1 and "deeper than" in result.errors[0].message


LINE_FORMATS = ["ofac-txt", "ofac-entities-csv", "etherscan-labels-csv", "forta-csv",
                "lazarus-txt"]


@FAST
@given(valid=st.lists(addresses, min_size=1, max_size=15, unique=True),
       garbage=st.lists(garbage_line, max_size=15), fmt=st.sampled_from(LINE_FORMATS),
       data=st.data())
def test_valid_rows_mixed_with_garbage_are_all_kept(valid: list[str], garbage: list[str],
                                                    fmt: str, data: st.DataObject) -> None:
    rows: list[tuple[str | None, str]] = [(a, render(fmt, a, i)) for i, a in enumerate(valid)]
    rows += [(None, g) for g in garbage]
    rows = data.draw(st.permutations(rows))
    first = 2 if fmt in header else 1
    lines = ([header[fmt]] if fmt in header else []) + [text for _, text in rows]
    result = parse_list("\r\n".join(lines), fmt, LABELS if fmt == "forta-csv" else META, "mix")
    assert [a.address for a in result.addresses] == [a for a, _ in rows if a is not None]
    good_lines = {first + i for i, (a, _) in enumerate(rows) if a is not None}
    assert not {e.line for e in result.errors} & good_lines
    assert result.duplicates == 0


@FAST
@given(valid=st.lists(addresses, min_size=1, max_size=10, unique=True),
       junk=st.lists(st.one_of(st.integers(), st.none(), st.text(max_size=10).filter(
           lambda t: "x" not in t.lower()), st.dictionaries(st.just("name"), st.text())),
           max_size=10),
       data=st.data())
def test_json_valid_elements_mixed_with_junk_elements_are_all_kept(
        valid: list[str], junk: list[object], data: st.DataObject) -> None:
    ofac = data.draw(st.permutations([*valid, *junk]))
    result = parse_list(json.dumps(ofac, indent=1), "ofac-json", META, "mix.json")
    assert [a.address for a in result.addresses] == [v for v in ofac if v in valid]
    labels = [{"address": v, "name": f"n{i}", "category": "exchange"} if v in valid else v
              for i, v in enumerate(ofac)]
    result = parse_list(json.dumps(labels), "label-json", LABELS, "mix.json")
    assert [a.address for a in result.addresses] == [v for v in ofac if v in valid]
    assert {a.category for a in result.addresses} == {"exchange"}


# ------------------------------------------------------------------------- index semantics
POOL = ["0x" + f"{i:02x}" * 20 for i in range(4)]


@FAST
@given(versions=st.lists(
    st.tuples(st.integers(0, 10_000), st.sets(st.sampled_from(POOL), min_size=1)),
    min_size=1, max_size=5, unique_by=lambda v: v[0]),
    at=st.integers(-10, 10_100), address=st.sampled_from(POOL), data=st.data())
def test_hits_come_from_the_version_with_the_greatest_start_not_after_at(
        versions: list[tuple[int, set[str]]], at: int, address: str,
        data: st.DataObject) -> None:
    index = ListIndex()
    for start, members in data.draw(st.permutations(versions)):
        meta = AddressList(name="l", category="sanctioned", source="s", published="2024-01-01",
                          valid_from=start, version=str(start))
        index.add(ListImport(list=meta, addresses=[ListedAddress(
            chain_family="evm", address=m, list_name="l", category="sanctioned")
            for m in sorted(members)]))
    started = [v for v in versions if v[0] <= at]
    expected = []
    if started:
        start, members = max(started)
        expected = [str(start)] if address in members else []
    assert [h.list.version for h in index.hits(address, at)] == expected
