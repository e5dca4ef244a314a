"""Address lists: real OFAC and label files, per-row errors, and which list version applies when."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import InputError
from monitor.lists import (
    AddressList,
    ListedAddress,
    ListImport,
    ListIndex,
    day_start,
    etherscan_category,
    label_list,
    load_list,
    parse_list,
    sanctions_list,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SANCTIONS = FIXTURES / "sanctions"
LABELS = FIXTURES / "labels"

OFAC_2024_SOURCE = "0xB10C/ofac-sanctioned-digital-currency-addresses@f2aee226 (lists branch)"
OFAC_2026_SOURCE = "bitnob/ofac-address-feed, generated 2026-10-02"

# Tornado Cash pools and routing contracts, as Etherscan names them (tornado-cash.csv).
TORNADO_POOLS = {
    "0x12d66f87a04a9e220743712ce6d9bb1b5616b8fc": "Tornado.Cash: 0.1 ETH",
    "0x47ce0c6ed5b0ce3d3a51fdb1c52dc66a7c3c2936": "Tornado.Cash: 1 ETH",
    "0x910cbd523d972eb0a6f4cae4618ad62622b39dbf": "Tornado.Cash: 10 ETH",
    "0xa160cdab225685da1d56aa342ad8841c3b53f291": "Tornado.Cash: 100 ETH",
    "0xd90e2f925da726b50c4ed8d0fb90ad053324f31b": "Tornado.Cash: Router",
    "0x722122df12d4e14e13ac3b6895a86e84145b6967": "Tornado.Cash: Proxy",
}
POOL_1_ETH = "0x47ce0c6ed5b0ce3d3a51fdb1c52dc66a7c3c2936"
# Listed 2026 but not 2024: AMNOKGANG TECHNOLOGY DEVELOPMENT COMPANY (DPRK4).
ONLY_2026 = "0x0330070fd38ec3bb94f58fa55d40368271e9e54a"
LAZARUS = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"  # Ronin theft; SDN "Lazarus Group"
XBT = "123WBUDmSJv4GctdVEz6Qq6z8nXSKrJ4KX"  # first line of the 2024 XBT list
TRX = "TBHTJqAy4DhHhmT3dNceJYNRz4SdLofLre"  # first line of the 2024 TRX list


def unix(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


NOV_2024 = unix("2024-11-01")
NOV_2026 = unix("2026-11-01")


def ofac_2024() -> ListImport:
    return load_list(SANCTIONS / "ofac-2024-09" / "sanctioned_addresses_ETH.txt", "ofac-txt",
                     sanctions_list("ofac-sdn-eth", OFAC_2024_SOURCE, "2024-09-27"))


def ofac_2026() -> ListImport:
    return load_list(SANCTIONS / "ofac-2026-10" / "sanctioned_addresses_ETH_entities.csv",
                     "ofac-entities-csv",
                     sanctions_list("ofac-sdn-eth", OFAC_2026_SOURCE, "2026-10-02"))


def tornado_labels() -> ListImport:
    return load_list(LABELS / "etherscan-2023-06" / "tornado-cash.csv", "etherscan-labels-csv",
                     label_list("etherscan-tornado-cash", etherscan_category("tornado-cash"),
                                "brianleect/etherscan-labels@923aba72", "2023-06-01"))


def addresses(result: ListImport) -> list[str]:
    return [a.address for a in result.addresses]


def where(result: ListImport) -> list[tuple[int, str | None]]:
    return [(e.line, e.field) for e in result.errors]


def meta_2024() -> AddressList:
    return sanctions_list("ofac-sdn-eth", "test", "2024-09-27")


# ------------------------------------------------------------------------- real OFAC files
def test_ofac_2024_txt_and_json_are_the_same_152_addresses() -> None:
    txt = ofac_2024()
    path = SANCTIONS / "ofac-2024-09" / "sanctioned_addresses_ETH.json"
    js = load_list(path, "ofac-json", meta_2024())
    assert len(txt.addresses) == 152 and not txt.errors and not txt.warnings
    assert addresses(txt) == addresses(js)
    assert all(a == a.lower() and a.startswith("0x") for a in addresses(txt))
    assert js.list.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert txt.list.valid_from == unix("2024-09-27") and txt.list.version == "2024-09-27"
    assert {a.category for a in txt.addresses} == {"sanctioned"}


def test_2024_list_holds_tornado_cash_and_2026_does_not() -> None:
    tornado = {a.address: a.label for a in tornado_labels().addresses}
    assert len(tornado) == 63
    listed_2024 = set(addresses(ofac_2024()))
    listed_2026 = {a.address: a for a in ofac_2026().addresses}
    assert set(TORNADO_POOLS) <= set(tornado)
    assert set(TORNADO_POOLS) <= listed_2024
    assert len(listed_2024 & set(tornado)) == 55
    assert not set(TORNADO_POOLS) & set(listed_2026)
    # The one Tornado-labelled address still listed in 2026 is a team vesting contract, listed
    # under a person's SDN entry (co-founder Roman Semenov, DPRK3), not as Tornado Cash.
    (left,) = set(tornado) & set(listed_2026)
    assert tornado[left] == "Tornado.Cash: Team 1 Vesting"
    assert (listed_2026[left].label, listed_2026[left].programme) == ("Semenov Roman", "DPRK3")


def test_entities_csv_gives_sdn_names_and_programmes() -> None:
    result = ofac_2026()
    assert len(result.addresses) == 120 and not result.errors and not result.warnings
    txt = load_list(SANCTIONS / "ofac-2026-10" / "sanctioned_addresses_ETH.txt", "ofac-txt",
                    sanctions_list("ofac-sdn-eth", OFAC_2026_SOURCE, "2026-10-02"))
    assert set(addresses(result)) == set(addresses(txt))
    by_address = {a.address: a for a in result.addresses}
    assert (by_address[LAZARUS].label, by_address[LAZARUS].programme) == \
        ("Lazarus Group", "DPRK3")
    suex = by_address["0x19aa5fe80d33a56d56c78e82ea5e50e5d80b4dff"]  # quoted comma in the CSV
    assert (suex.label, suex.programme) == ("SUEX OTC, S.R.O.", "CYBER2")
    assert by_address[ONLY_2026].label == "AMNOKGANG TECHNOLOGY DEVELOPMENT COMPANY"
    multi = by_address["0x038989cbb1710c72b9920dc4fa529158f463e72c"]
    assert multi.programme == "ILLICIT-DRUGS-EO14059; SDGT"


# ------------------------------------------------------------------------- validity
def both_versions(*, newest_first: bool = False) -> ListIndex:
    index = ListIndex()
    versions = [ofac_2024(), ofac_2026()]
    index.add_all(reversed(versions) if newest_first else versions)
    return index


@pytest.mark.parametrize("newest_first", [False, True])
def test_tornado_pool_is_a_sanctions_hit_in_2024_and_not_in_2026(newest_first: bool) -> None:
    index = both_versions(newest_first=newest_first)
    (hit,) = index.hits(POOL_1_ETH, NOV_2024)
    assert hit.entry.category == "sanctioned" and hit.list.name == "ofac-sdn-eth"
    assert (hit.list.published, hit.list.source) == ("2024-09-27", OFAC_2024_SOURCE)
    assert (hit.in_force_from, hit.in_force_to) == (unix("2024-09-27"), unix("2026-10-02"))
    assert hit.list.digest.startswith("sha256:")
    assert index.hits(POOL_1_ETH, NOV_2026) == []
    assert index.hits(POOL_1_ETH.upper().replace("0X", "0x"), NOV_2024)  # case-insensitive


def test_address_only_in_the_2026_list_is_a_hit_only_in_2026() -> None:
    index = both_versions()
    assert index.hits(ONLY_2026, NOV_2024) == []
    (hit,) = index.hits(ONLY_2026, NOV_2026)
    assert hit.list.version == "2026-10-02" and hit.in_force_to is None
    assert hit.entry.label == "AMNOKGANG TECHNOLOGY DEVELOPMENT COMPANY"
    assert "ofac-sdn-eth version 2026-10-02" in hit.cite() and OFAC_2026_SOURCE in hit.cite()


def test_version_boundaries_are_midnight_utc_and_nothing_before_the_first() -> None:
    index = both_versions()
    switch = day_start("2026-10-02")
    assert [h.list.version for h in index.hits(POOL_1_ETH, switch - 1)] == ["2024-09-27"]
    assert index.hits(POOL_1_ETH, switch) == []
    assert index.hits(LAZARUS, unix("2024-09-26")) == []  # before the first version held
    assert [h.list.version for h in index.hits(LAZARUS, unix("2024-09-27"))] == ["2024-09-27"]
    assert index.in_force("ofac-sdn-eth", switch).version == "2026-10-02"  # type: ignore[union-attr]
    assert index.in_force("ofac-sdn-eth", 0) is None
    assert [v.version for v in index.versions("ofac-sdn-eth")] == ["2024-09-27", "2026-10-02"]


def test_labels_apply_at_every_time_beside_the_sanctions_version_in_force() -> None:
    index = both_versions()
    index.add(tornado_labels())
    in_2024 = sorted(h.entry.category for h in index.hits(POOL_1_ETH, NOV_2024))
    assert in_2024 == ["mixer", "sanctioned"]
    (label,) = index.hits(POOL_1_ETH, NOV_2026)
    assert (label.entry.category, label.entry.label) == ("mixer", "Tornado.Cash: 1 ETH")
    assert index.hits(POOL_1_ETH, 0)[0].entry.category == "mixer"
    assert len(index) == 152 + 120 + 63


def test_valid_to_ends_a_version_without_falling_back() -> None:
    address = "0x" + "ab" * 20
    index = ListIndex()
    for day, end in (("2024-01-01", None), ("2024-06-01", unix("2024-07-01"))):
        meta = sanctions_list("eu-list", "test", day, valid_to=end)
        index.add(ListImport(list=meta, addresses=[ListedAddress(
            chain_family="evm", address=address, list_name="eu-list", category="sanctioned")]))
    assert [h.list.version for h in index.hits(address, unix("2024-06-15"))] == ["2024-06-01"]
    assert index.hits(address, unix("2024-07-01")) == []  # expired; the older one stays ended


def test_index_refuses_ambiguous_or_empty_versions() -> None:
    index = ListIndex()
    index.add(ofac_2024())
    with pytest.raises(InputError, match="already holds version 2024-09-27"):
        index.add(ofac_2024())
    empty = ListImport(list=sanctions_list("ofac-sdn-eth", "test", "2027-01-01"))
    with pytest.raises(InputError, match="empty list version"):
        index.add(empty)
    index.add(empty, allow_empty=True)
    assert index.hits(LAZARUS, unix("2027-02-01")) == []
    wrong = ListImport(list=sanctions_list("other", "t", "2024-01-01"), addresses=[ListedAddress(
        chain_family="evm", address=LAZARUS, list_name="ofac-sdn-eth", category="sanctioned")])
    with pytest.raises(InputError, match="names list"):
        index.add(wrong)
    assert index.names() == ["ofac-sdn-eth"]


def test_list_metadata_is_validated() -> None:
    with pytest.raises(ValueError, match="ISO date"):
        sanctions_list("ofac-sdn-eth", "t", "27.09.2024")
    with pytest.raises(ValueError, match="unknown category"):
        label_list("x", "casino", "t", "2024-01-01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid_to"):
        sanctions_list("x", "t", "2024-01-01", valid_to=0)


# ------------------------------------------------------------------------- broken rows
def test_txt_broken_rows_are_reported_with_line_numbers_and_the_rest_kept() -> None:
    good = ["0x01e2919679362dFBC9ee1644Ba9C6da6D6245BB1",
            "0x03893a7c7463AE47D46bc7f091665f1893656003",
            "  0x04DBA1194ee10112fE6C3207C0687DEf0e78baCf  "]
    text = "\n".join([
        good[0],                                        # 1 ok
        "0x123",                                        # 2 too short
        "",                                             # 3 empty line
        "0xZZe2919679362dFBC9ee1644Ba9C6da6D6245BB1",   # 4 non-hex
        XBT,                                            # 5 Bitcoin
        TRX,                                            # 6 Tron
        good[1],                                        # 7 ok
        "01e2919679362dfbc9ee1644ba9c6da6d6245bb1",     # 8 no 0x
        good[2],                                        # 9 ok, whitespace
        good[0].lower(),                                # 10 duplicate of 1
        "0x1_e2919679362dfbc9ee1644ba9c6da6d6245bb1",   # 11 int() would take '_'
    ]) + "\n"
    result = parse_list(text, "ofac-txt", meta_2024(), "eth.txt")
    assert addresses(result) == [g.strip().lower() for g in good]
    assert where(result) == [(2, "address"), (4, "address"), (5, "address"), (6, "address"),
                             (8, "address"), (11, "address")]
    messages = [e.message for e in result.errors]
    assert "hex digits, 40 expected" in messages[0]
    assert "not hexadecimal" in messages[1]
    assert "Bitcoin" in messages[2] and "Tron" in messages[3] and "no 0x prefix" in messages[4]
    assert [(w.line, w.message) for w in result.warnings] == [(3, "empty line skipped")]
    assert result.duplicates == 1
    assert str(result.errors[0]).startswith("eth.txt:2: address:")


def test_entities_csv_broken_rows() -> None:
    text = "\r\n".join([
        "address,sdn_name,program,chain",                                           # 1
        f"{LAZARUS},Lazarus Group,DPRK3,ETH",                                        # 2 ok
        "0x0330070fd38ec3bb94f58fa55d40368271e9e54a,AMNOKGANG,DPRK4",                # 3 3 cols
        "0x0330070fd38ec3bb94f58fa55d40368271e9e54a,AMNOKGANG,DPRK4,ETH,extra",      # 4 5 cols
        "",                                                                          # 5 empty
        "0xnothex0fd38ec3bb94f58fa55d40368271e9e54a,X,CYBER2,ETH",                   # 6 non-hex
        f"{XBT},Somebody,CYBER2,XBT",                                                # 7 XBT row
        f"{XBT},Somebody,CYBER2,ETH",                                                # 8 XBT addr
        '"0x19aa5fe80d33a56d56c78e82ea5e50e5d80b4dff","SUEX OTC, S.R.O.",CYBER2,eth',  # 9 ok
        '0x19aa5fe80d33a56d56c78e82ea5e50e5d80b4dff,"unterminated,CYBER2,ETH',         # 10 syntax
    ]) + "\r\n"
    result = parse_list(text, "ofac-entities-csv", meta_2024(), "sdn.csv")
    assert addresses(result) == [LAZARUS, "0x19aa5fe80d33a56d56c78e82ea5e50e5d80b4dff"]
    assert where(result) == [(3, None), (4, None), (6, "address"), (7, "chain"),
                             (8, "address"), (10, None)]
    assert "3 fields, but the header (line 1) names 4" in result.errors[0].message
    assert "'XBT' is not taken by this EVM list" in result.errors[3].message
    assert "Bitcoin" in result.errors[4].message
    assert [w.line for w in result.warnings] == [5]


def test_json_broken_elements() -> None:
    text = '[\n "0x01e2919679362dFBC9ee1644Ba9C6da6D6245BB1",\n 42,\n "0x12",\n null,\n' \
           f' "{TRX}",\n "0x03893a7c7463AE47D46bc7f091665f1893656003"\n]\n'
    result = parse_list(text, "ofac-json", meta_2024(), "eth.json")
    assert addresses(result) == ["0x01e2919679362dfbc9ee1644ba9c6da6d6245bb1",
                                 "0x03893a7c7463ae47d46bc7f091665f1893656003"]
    assert where(result) == [(3, "address"), (4, "address"), (5, "address"), (6, "address")]
    truncated = parse_list('["0x01e2919679362dFBC9ee1644Ba9C6da6D6245BB1", "0x03', "ofac-json",
                           meta_2024(), "cut.json")
    assert len(truncated.addresses) == 1 and "rest of the file" in truncated.errors[0].message


def test_checksum_typo_is_kept_with_a_warning() -> None:
    typo = "0x01E2919679362dFBC9ee1644Ba9C6da6D6245BB1"  # one letter's case flipped
    result = parse_list(typo + "\n", "ofac-txt", meta_2024(), "eth.txt")
    assert addresses(result) == [typo.lower()]
    assert "EIP-55" in result.warnings[0].message


def test_nothing_readable_raises_input_error_naming_the_file() -> None:
    trx = SANCTIONS / "ofac-2024-09" / "sanctioned_addresses_TRX.txt"
    with pytest.raises(InputError, match="no valid EVM address") as caught:
        load_list(trx, "ofac-txt", meta_2024())
    assert caught.value.context["source"] == str(trx)
    assert "Tron" in str(caught.value)
    with pytest.raises(InputError, match="lacks address"):
        parse_list("wallet,name\n0xab,x\n", "etherscan-labels-csv", meta_2024(), "l.csv")
    with pytest.raises(InputError, match="expected a JSON array"):
        parse_list('{"address": "0x"}', "label-json", meta_2024(), "l.json")
    with pytest.raises(InputError, match="unknown list format"):
        parse_list("", "xlsx", meta_2024(), "l.xlsx")
    with pytest.raises(InputError, match="no valid EVM address"):
        parse_list("", "ofac-txt", meta_2024(), "empty.txt")


def test_not_utf8_raises_input_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"0x01e2919679362dfbc9ee1644ba9c6da6d6245bb1\n\xe9\n")
    with pytest.raises(InputError, match="not UTF-8 text: byte 0xe9") as caught:
        load_list(path, "ofac-txt", meta_2024())
    assert caught.value.context["source"] == str(path)


# ------------------------------------------------------------------------- labels
@pytest.mark.parametrize(("stem", "category", "count"), [
    ("tornado-cash", "mixer", 63), ("bridge", "bridge", 20),
    ("binance", "exchange", 57), ("binance-deposit", "exchange-deposit", 1),
])
def test_etherscan_label_csv_gets_the_callers_category(stem: str, category: str,
                                                       count: int) -> None:
    meta = label_list(f"etherscan-{stem}", etherscan_category(stem),
                      "brianleect/etherscan-labels@923aba72", "2023-06-01")
    result = load_list(LABELS / "etherscan-2023-06" / f"{stem}.csv", "etherscan-labels-csv",
                       meta)
    assert len(result.addresses) == count and not result.errors
    assert {a.category for a in result.addresses} == {category}
    assert result.list.valid_from == 0


def test_etherscan_labels_keep_name_tags_with_commas_and_empty_tags() -> None:
    result = tornado_labels()
    by_address = {a.address: a.label for a in result.addresses}
    assert by_address["0x0836222f2b2b24a3f36f98668ed8f0b38d1a872f"] == "Tornado.Cash: 1,000 USDT"
    deposit = load_list(LABELS / "etherscan-2023-06" / "binance-deposit.csv",
                        "etherscan-labels-csv",
                        label_list("binance-deposit", "exchange-deposit", "t", "2023-06-01"))
    assert deposit.addresses[0].label == ""


def test_forta_variants_and_categories() -> None:
    folder = LABELS / "forta-2023-01"
    meta = label_list("forta-malicious", "phishing", "forta-network@40a9c2f2", "2023-01-01")
    labels = load_list(folder / "etherscan_malicious_labels.csv", "forta-csv", meta)
    assert len(labels.addresses) == 28 and labels.duplicates == 1 and not labels.errors
    by_address = {a.address: a for a in labels.addresses}
    ronin = by_address["0x036587e77eabe6a7e181886a5a6ed10dc25654f9"]
    assert (ronin.label, ronin.category) == ("Ronin Bridge Exploiter 3", "heist")
    assert by_address["0xc5d88efc558762a53b5e9924c1e7ab995281c2f6"].label == \
        "Amazon.com, Inc. - Common Token (AMZN)"
    assert {a.category for a in labels.addresses} == {"phishing", "heist"}

    phishing = load_list(folder / "phishing_scams.csv", "forta-csv", meta)
    assert len(phishing.addresses) == 20
    assert {a.category for a in phishing.addresses} == {"phishing"}
    assert phishing.addresses[0].label == "Fake_Phishing3901"

    contracts = load_list(folder / "malicious_smart_contracts.csv", "forta-csv",
                          label_list("forta-contracts", "malicious-contract", "f", "2023-01-01"))
    assert len(contracts.addresses) + contracts.duplicates == 20 and not contracts.errors
    assert {a.category for a in contracts.addresses} == {"malicious-contract"}
    first = contracts.addresses[0]
    assert (first.address, first.label) == \
        ("0x04ae3226c80e8c04d35e6e56089345bdd06da6de", "Multichain Exploiter 10")
    assert contracts.addresses[1].label == "created by xToken Exploiter"


def test_lazarus_backslash_x_form_parses() -> None:
    result = load_list(LABELS / "lazarus-ronin-2022" / "LazarusGroup.txt", "lazarus-txt",
                       label_list("lazarus-ronin", "heist", "dspytdao/Eth_Data@3c66dcba",
                                  "2022-09-30"))
    assert len(result.addresses) == 8 and result.duplicates == 4 and not result.errors
    assert addresses(result)[0] == LAZARUS
    assert "0x08723392ed15743cc38513c4925f5e6be5c17243" in addresses(result)  # last, no comma
    assert LAZARUS in addresses(ofac_2024())  # the same wallet is on OFAC's list
    bad = parse_list("'\\x098B716B8Aaf21512996dC57EB0615e2383E2f96',\n'\\xnope',\n",
                     "lazarus-txt", result.list, "l.txt")
    assert where(bad) == [(2, "address")]


def test_label_json() -> None:
    text = """[
  {"address": "0x722122DF12D4E14E13AC3B6895A86E84145B6967", "name": "Tornado.Cash: Proxy",
   "category": "mixer"},
  {"address": "0x3f5ce5fbfe3e9af3971dd833d26ba9b5c936f0be", "name": "Binance",
   "category": "exchange", "source": "manual"},
  {"address": "0x49812738c5c5c3f05622fcbfd192a330ba46a7d5", "category": "casino"},
  {"name": "no address"},
  "0x49812738c5c5c3f05622fcbfd192a330ba46a7d5",
  {"address": "0x49812738c5c5c3f05622fcbfd192a330ba46a7d5", "name": "dep\\u0000osit"}
]"""
    result = parse_list(text, "label-json",
                        label_list("analyst-labels", "other", "case notes", "2025-01-10"),
                        "labels.json")
    assert [(a.category, a.label) for a in result.addresses] == [
        ("mixer", "Tornado.Cash: Proxy"), ("exchange", "Binance"), ("other", "dep osit")]
    assert where(result) == [(6, "category"), (7, "address"), (8, None)]
    assert [(w.line, w.field) for w in result.warnings] == [(4, "source"), (9, "label")]
