"""The fund-flow graph: seized wallet -> hops -> services, one edge per transfer."""

from __future__ import annotations

from monitor.web.graph import build_graph
from tests.unit.web.builders import (
    EXCHANGE,
    SEIZED,
    SPLITTER,
    case_entries,
    make_alert,
    path_alerts,
    tx,
)


def test_path_from_seized_wallet_through_a_hop_to_an_exchange() -> None:
    graph = build_graph(path_alerts(), case_entries(), native={"devnet": ("ETH", 18)})
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[SEIZED]["role"] == "seized" and nodes[SEIZED]["label"] == "seized wallet"
    assert nodes[SPLITTER]["role"] == "tainted"
    assert nodes[EXCHANGE]["role"] == "exchange-deposit"
    edges = graph["edges"]
    assert [(e["from"], e["to"], e["hop"]) for e in edges] == [(SEIZED, SPLITTER, 1),
                                                              (SPLITTER, EXCHANGE, 2)]
    last = edges[1]
    assert last["tx_hash"] == tx(2) and last["block_number"] == 102
    assert last["amount"] == str(10**18)
    assert last["asset"] == {"symbol": "ETH", "decimals": 18, "address": None}
    assert len(last["alert_ids"]) == 2  # watched-address and exchange-deposit: one transfer


def test_path_hops_without_their_own_alert_still_appear() -> None:
    only_exchange = [a for a in path_alerts() if a.rule == "exchange-deposit"]
    graph = build_graph(only_exchange, case_entries(), native={"devnet": ("ETH", 18)})
    edges = graph["edges"]
    assert [e["hop"] for e in edges] == [1, 2]
    assert edges[0]["asset"]["symbol"] == "ETH"  # from the tainted entry's mark
    assert edges[0]["transfer_id"] is None and edges[1]["transfer_id"] is not None


def test_labels_from_lists_and_determinism() -> None:
    other = "0x" + "99" * 20
    alerts = [*path_alerts(), make_alert(5, to=other)]

    def labels(chain: str, address: str, at: int) -> list[tuple[str, str]]:
        return [("sanctioned", "SDN entry")] if address == other else []

    first = build_graph(alerts, case_entries(), labels)
    again = build_graph(list(reversed(alerts)), list(reversed(case_entries())), labels)
    assert first == again
    nodes = {n["id"]: n for n in first["nodes"]}
    assert nodes[other]["role"] == "sanctioned" and nodes[other]["label"] == "SDN entry"


def test_inflow_into_the_seized_wallet_is_not_a_taint_hop() -> None:
    inflow = make_alert(7, frm="0x" + "77" * 20, to=SEIZED, direction="in")
    graph = build_graph([inflow])
    assert graph["edges"][0]["hop"] is None
    roles = {n["id"]: n["role"] for n in graph["nodes"]}
    assert roles == {SEIZED: "seized", "0x" + "77" * 20: "counterparty"}
