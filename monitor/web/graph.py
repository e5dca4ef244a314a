"""The fund-flow graph of a case: addresses as nodes, transfers as edges, built from alerts.

Edges come from each alert's own transfer and from the taint path it carries (the rule's
``evidence.path`` or the watch entry's ``taint.path``: ``[tx_hash, from, to, amount, block]``
hops from the case's origin). The same transfer seen by several alerts is one edge (keyed by
chain, tx hash, sender, recipient and amount) listing every alert id. ``hop`` is the position
on the path from the origin (1 = first transfer out of the seized wallet); ``null`` when the
transfer is not on a taint path.

Node roles, strongest first: the watch category of a watched address (``seized``,
``suspect``, ...); a service or list category (``sanctioned``, ``mixer``, ``bridge``,
``exchange-deposit``, ``exchange``, ...) from the address lists or from the rule that fired
(an ``exchange-deposit`` alert names its recipient an exchange deposit); ``tainted``;
``counterparty``. Pure and deterministic: the same alerts give the same graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from monitor.records import Alert, TaintHop, WatchEntry

LabelLookup = Callable[[str, str, int], list[tuple[str, str]]]
"""``(chain, address, block_time) -> [(category, label), ...]`` from the address lists."""

SERVICE_RANK: Final[tuple[str, ...]] = (
    "sanctioned", "mixer", "bridge", "exchange-deposit", "exchange", "heist", "scam",
    "phishing", "malicious-contract", "other")
RULE_ROLES: Final[dict[str, tuple[str, str]]] = {
    "exchange-deposit": ("to", "exchange-deposit"),
    "mixer-deposit": ("to", "mixer"),
    "bridge-entry": ("to", "bridge"),
    "mixer-withdrawal-to-fresh": ("from", "mixer"),
}
"""Rules whose firing says what one end of the transfer is."""


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """Symbol, decimals and contract of an asset (None where unknown)."""

    symbol: str | None
    decimals: int | None
    address: str | None

    def as_json(self) -> dict[str, Any]:
        """The edge's ``asset`` object."""
        return {"symbol": self.symbol, "decimals": self.decimals, "address": self.address}


UNKNOWN_ASSET: Final = AssetInfo(None, None, None)


@dataclass
class _Edge:
    chain: str
    from_address: str
    to_address: str
    tx_hash: str
    block_number: int
    amount: str
    asset: AssetInfo
    hop: int | None
    alert_ids: list[str] = field(default_factory=list)
    transfer_id: str | None = None


@dataclass
class _Node:
    chain: str
    address: str
    watch: str | None = None  # non-tainted watch category
    watch_label: str = ""
    services: set[str] = field(default_factory=set)
    service_label: str = ""
    tainted: bool = False
    seen_at: int = 0


def path_of(alert: Alert) -> list[TaintHop]:
    """The taint path an alert carries: the rule's evidence path, else the watch entry's mark."""
    raw = alert.evidence.get("path") if isinstance(alert.evidence, Mapping) else None
    hops: list[TaintHop] = []
    if isinstance(raw, list):
        for item in raw:
            if (isinstance(item, list) and len(item) == 5
                    and all(isinstance(v, str) for v in item[:3])
                    and isinstance(item[4], int) and str(item[3]).isdigit()):
                hops.append(TaintHop(item[0], item[1], item[2], int(item[3]), item[4]))
            else:
                return []  # not a path this version understands: show none rather than a wrong one
        return hops
    if alert.watch.taint is not None:
        return list(alert.watch.taint.path)
    return []


def _own_hop(alert: Alert, path: list[TaintHop]) -> int | None:
    """Hop number of the alert's own transfer on its case's path, when it is on one."""
    if path and (path[-1].tx_hash, path[-1].from_address, path[-1].to_address) == (
            alert.tx_hash, alert.from_address, alert.to_address):
        return len(path)
    mark = alert.watch.taint
    if alert.watch.category == "tainted" and mark is None:
        return None
    depth = mark.hop if mark is not None else 0
    if alert.direction == "out":
        return depth + 1
    if alert.direction == "in" and mark is not None and mark.path and \
            mark.path[-1].tx_hash == alert.tx_hash:
        return depth
    return None


def _asset_of(alert: Alert) -> AssetInfo:
    return AssetInfo(alert.asset.symbol, alert.asset.decimals, alert.asset.address)


def build_graph(alerts: Iterable[Alert], watch_entries: Iterable[WatchEntry] = (),
                labels: LabelLookup | None = None,
                native: Mapping[str, tuple[str, int]] | None = None) -> dict[str, Any]:
    """Nodes and edges of the fund flow shown by ``alerts`` (one case's, usually).

    ``watch_entries`` are the case's current entries (roles, labels, assets of taint hops);
    ``native`` maps a chain to its native symbol and decimals.
    """
    ordered = sorted(alerts, key=lambda a: (a.chain, a.block_number, a.id))
    entries = sorted(watch_entries, key=lambda e: (e.chain, e.address, e.case_id))
    native = native or {}
    assets: dict[tuple[str, str], AssetInfo] = {}
    for chain, (symbol, decimals) in native.items():
        assets[(chain, "native")] = AssetInfo(symbol, decimals, None)
    for alert in ordered:
        if alert.transfer_kind != "approval":
            key = alert.asset.address or "native"
            assets.setdefault((alert.chain, key), _asset_of(alert))
    hop_asset: dict[tuple[str, str, str], str] = {}  # (chain, to, tx) -> asset key of the mark
    for entry in entries:
        if entry.taint is not None and entry.taint.path:
            last = entry.taint.path[-1]
            hop_asset[(entry.chain, last.to_address, last.tx_hash)] = entry.taint.asset_key

    edges: dict[tuple[str, str, str, str, str], _Edge] = {}
    nodes: dict[str, _Node] = {}

    def node(chain: str, address: str, at: int) -> _Node:
        found = nodes.get(address)
        if found is None:
            found = nodes[address] = _Node(chain, address)
        found.seen_at = max(found.seen_at, at)
        return found

    def add_edge(chain: str, hop: TaintHop, asset: AssetInfo, number: int | None,
                 alert_id: str, transfer_id: str | None, at: int) -> None:
        key = (chain, hop.tx_hash, hop.from_address, hop.to_address, str(hop.amount))
        edge = edges.get(key)
        if edge is None:
            edge = edges[key] = _Edge(chain, hop.from_address, hop.to_address, hop.tx_hash,
                                      hop.block_number, str(hop.amount), asset, number)
        if edge.hop is None:
            edge.hop = number
        if edge.asset == UNKNOWN_ASSET:
            edge.asset = asset
        if edge.transfer_id is None:
            edge.transfer_id = transfer_id
        if alert_id not in edge.alert_ids:
            edge.alert_ids.append(alert_id)
        node(chain, hop.from_address, at)
        node(chain, hop.to_address, at).tainted |= number is not None and number > 0

    for alert in ordered:
        path = path_of(alert)
        for i, hop in enumerate(path, start=1):
            mark_key = hop_asset.get((alert.chain, hop.to_address, hop.tx_hash))
            asset = assets.get((alert.chain, mark_key), UNKNOWN_ASSET) if mark_key else \
                UNKNOWN_ASSET
            add_edge(alert.chain, hop, asset, i, alert.id, None, alert.block_time)
        sender = node(alert.chain, alert.from_address, alert.block_time)
        recipient = node(alert.chain, alert.to_address, alert.block_time)
        if alert.transfer_kind != "approval":
            own = TaintHop(alert.tx_hash, alert.from_address, alert.to_address,
                           int(alert.amount), alert.block_number)
            add_edge(alert.chain, own, _asset_of(alert), _own_hop(alert, path), alert.id,
                     alert.transfer_id, alert.block_time)
        if alert.rule in RULE_ROLES:
            side, role = RULE_ROLES[alert.rule]
            (recipient if side == "to" else sender).services.add(role)
        for hit in alert.evidence.get("list_hits", ()) if isinstance(alert.evidence,
                                                                      Mapping) else ():
            if isinstance(hit, Mapping) and isinstance(hit.get("address"), str):
                target = nodes.get(hit["address"])
                if target is not None:
                    target.services.add("sanctioned")
                    target.service_label = target.service_label or str(hit.get("label") or "")
        origin = alert.evidence.get("origin") if isinstance(alert.evidence, Mapping) else None
        watched = alert.watch
        if watched.category != "tainted" and watched.address in nodes:
            target = nodes[watched.address]
            target.watch = target.watch or watched.category
            target.watch_label = target.watch_label or watched.label
        elif isinstance(origin, str) and origin in nodes and nodes[origin].watch is None:
            nodes[origin].watch = "seized"

    for entry in entries:
        target = nodes.get(entry.address)
        if target is None:
            target = node(entry.chain, entry.address, 0)
        if entry.category == "tainted":
            target.tainted = True
            target.watch_label = target.watch_label or entry.label
        else:
            target.watch = entry.category
            target.watch_label = entry.label or target.watch_label

    if labels is not None:
        for item in nodes.values():
            for category, label in labels(item.chain, item.address, item.seen_at):
                item.services.add(category)
                item.service_label = item.service_label or label

    return {"nodes": [_node_json(nodes[a]) for a in sorted(nodes)],
            "edges": [_edge_json(e) for e in sorted(edges.values(), key=_edge_order)]}


def _edge_order(edge: _Edge) -> tuple[Any, ...]:
    return (edge.block_number, edge.hop if edge.hop is not None else 1 << 30, edge.tx_hash,
            edge.from_address, edge.to_address, edge.amount)


def _role(item: _Node) -> str:
    if item.watch is not None:
        return item.watch
    for service in SERVICE_RANK:
        if service in item.services:
            return service
    if item.services:
        return sorted(item.services)[0]
    return "tainted" if item.tainted else "counterparty"


def _node_json(item: _Node) -> dict[str, Any]:
    role = _role(item)
    label = item.watch_label if item.watch is not None or role == "tainted" else \
        item.service_label
    return {"id": item.address, "label": label or (item.watch_label or item.service_label),
            "role": role, "chain": item.chain,
            "categories": sorted(item.services | ({item.watch} if item.watch else set())
                                 | ({"tainted"} if item.tainted else set()))}


def _edge_json(edge: _Edge) -> dict[str, Any]:
    return {"from": edge.from_address, "to": edge.to_address, "tx_hash": edge.tx_hash,
            "block_number": edge.block_number, "amount": edge.amount,
            "asset": edge.asset.as_json(), "alert_id": edge.alert_ids[0],
            "alert_ids": edge.alert_ids, "hop": edge.hop, "chain": edge.chain,
            "transfer_id": edge.transfer_id}
