"""The self-contained HTML evidence report of a case.

One file, inline CSS, no scripts, no external resources (nothing to load from the network, so
it renders the same offline and years later); every value from outside is HTML-escaped.
It states the case, when and by which chainwatch version it was generated, the address list
versions used, the fund-flow edges, and per alert the path from the case's origin with tx
hashes, block numbers and hashes, amounts in base units and human form, lifecycle status with
confirmations, list hits and the analysts' audit trail.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any, Final

from monitor.sinks.console import format_amount
from monitor.web.export import facts_digest, iso_utc

_CSS: Final = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1b1f24;
margin:2rem auto;max-width:1200px;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:2px solid
#d0d7de;padding-bottom:.2rem}h3{font-size:1.05rem;margin:1.5rem 0 .4rem}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem;font-size:12.5px}
th,td{border:1px solid #d0d7de;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
word-break:break-all}.meta td:first-child{width:14rem;font-weight:600}
.sev-critical{color:#a40e26;font-weight:700}.sev-high{color:#bc4c00;font-weight:700}
.alert{border:1px solid #d0d7de;border-radius:6px;padding:.2rem 1rem 1rem;margin:1rem 0;
page-break-inside:avoid}.note{color:#57606a;font-size:12.5px}
@media print{body{margin:0}.alert{border-color:#999}}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _code(value: Any) -> str:
    return f"<code>{_e(value)}</code>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _amount(amount: Any, asset: dict[str, Any] | None) -> tuple[str, str]:
    asset = asset or {}
    base = _code(amount)
    if asset.get("decimals") is None:
        return base, _e(f"{amount} base units (asset unknown)")
    return base, _e(format_amount(str(amount), asset.get("decimals"), asset.get("symbol")))


def _edges_by_transfer(graph: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {(e["tx_hash"], e["from"], e["to"], e["amount"]): e for e in graph["edges"]}


def _path_rows(alert: dict[str, Any], edges: dict[tuple[str, str, str, str], dict[str, Any]]
               ) -> list[list[str]]:
    raw = alert.get("evidence", {}).get("path")
    if not isinstance(raw, list):
        taint = alert.get("watch", {}).get("taint") or {}
        raw = taint.get("path") or []
    hops = [h for h in raw if isinstance(h, list) and len(h) == 5]
    own = [alert["tx_hash"], alert["from"], alert["to"], alert["amount"], alert["block_number"]]
    if not hops or (hops[-1][0], hops[-1][1], hops[-1][2]) != (own[0], own[1], own[2]):
        hops = [*hops, own]
    rows = []
    for number, (tx, frm, to, amount, block) in enumerate(hops, start=1):
        edge = edges.get((tx, frm, to, str(amount)))
        asset = edge["asset"] if edge else None
        if (tx, frm, to) == (own[0], own[1], own[2]):
            asset = alert["asset"]
        base, human = _amount(amount, asset)
        rows.append([_e(number), _e(block), _code(tx), _code(frm), _code(to), base, human])
    return rows


def _alert_section(alert: dict[str, Any], edges: dict[tuple[str, str, str, str],
                                                      dict[str, Any]]) -> str:
    base, human = _amount(alert["amount"], alert["asset"])
    where = []
    if alert.get("log_index") is not None:
        where.append(f"log index {alert['log_index']}")
    if alert.get("trace_address") is not None:
        where.append(f"trace address {alert['trace_address']}")
    watch = alert["watch"]
    meta = [
        ("Alert id", _code(alert["id"])),
        ("Rule / severity", f"{_e(alert['rule'])} / <span class=\"sev-{_e(alert['severity'])}\">"
                            f"{_e(alert['severity'])}</span>"),
        ("Status", _e(f"{alert['status']} (revision {alert.get('revision', 0)}, "
                      f"{alert['confirmations']} confirmations when reported)")
         + (f"; moved from block {_code(alert['moved_from'])}" if alert.get("moved_from")
            else "")),
        ("Disposition", _e(alert["disposition"])),
        ("Chain", _e(alert["chain"])),
        ("Block", f"{_e(alert['block_number'])} {_code(alert['block_hash'])}"),
        ("Block time", _e(f"{iso_utc(alert['block_time'])} ({alert['block_time']})")),
        ("Transaction", _code(alert["tx_hash"]) + (f" ({_e(', '.join(where))})" if where
                                                   else "")),
        ("Transfer id", _code(alert["transfer_id"])),
        ("From", _code(alert["from"])),
        ("To", _code(alert["to"])),
        ("Amount", f"{base} base units = {human}"),
        ("Asset", _e(alert["asset"].get("symbol") or alert["asset"]["kind"])
         + (f" {_code(alert['asset']['address'])}" if alert["asset"].get("address") else "")),
        ("Watched", f"{_code(watch['address'])} {_e(watch.get('category'))} "
                    f"{_e(watch.get('label'))}"),
        ("Detected", _e(iso_utc(alert["detected_at"]))),
    ]
    parts = [f"<section class=\"alert\" id=\"alert-{_e(alert['id'])}\">",
             f"<h3>{_e(alert.get('title') or alert['rule'])}</h3>",
             "<table class=\"meta\"><tbody>"
             + "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in meta)
             + "</tbody></table>",
             "<h4>Fund-flow path from the case's origin</h4>",
             _table(["Hop", "Block", "Tx hash", "From", "To", "Amount (base units)", "Amount"],
                    _path_rows(alert, edges))]
    hits = alert.get("evidence", {}).get("list_hits") or []
    if hits:
        parts.append("<h4>List hits (version in force at block time)</h4><ul>"
                     + "".join(f"<li>{_e(h.get('citation'))}</li>" for h in hits
                               if isinstance(h, dict)) + "</ul>")
    audit = alert.get("audit") or []
    parts.append("<h4>Audit trail</h4>")
    if audit:
        parts.append(_table(["At (UTC)", "Action", "Actor", "Token role", "Note"],
                            [[_e(iso_utc(r["at"])), _e(r["action"]), _e(r["actor"]),
                              _e(r["role"]), _e(r["note"])] for r in audit]))
    else:
        parts.append("<p class=\"note\">No analyst action recorded.</p>")
    parts.append("</section>")
    return "".join(parts)


def render_report(facts: dict[str, Any], generated_at: float) -> str:
    """The HTML evidence report of a case from :func:`monitor.web.export.case_facts`."""
    case_id = facts["case_id"]
    alerts: list[dict[str, Any]] = facts["alerts"]
    graph = facts["graph"]
    edges = _edges_by_transfer(graph)
    lists = facts["lists"]
    nodes = {n["id"]: n for n in graph["nodes"]}

    def who(address: str) -> str:
        node = nodes.get(address)
        role = f" <span class=\"note\">{_e(node['role'])} {_e(node['label'])}</span>" \
            if node else ""
        return _code(address) + role

    body = [
        f"<h1>Case {_e(case_id)}: evidence report</h1>",
        "<table class=\"meta\"><tbody>",
        f"<tr><td>Case</td><td>{_e(case_id)}</td></tr>",
        f"<tr><td>Generated (UTC)</td><td>{_e(iso_utc(generated_at))}</td></tr>",
        f"<tr><td>Generated by</td><td>chainwatch {_e(facts['chainwatch_version'])}</td></tr>",
        f"<tr><td>Alerts</td><td>{len(alerts)}</td></tr>",
        f"<tr><td>Facts digest</td><td>{_code(facts_digest(facts))} (SHA-256 of the JSON "
        "export's facts, generation time excluded)</td></tr>",
        "</tbody></table>",
        "<p class=\"note\">Amounts are integers in the asset's base units (exact) with the "
        "human form beside them. Block times come from block headers. List hits are judged "
        "against the list version in force at block time. Each alert id is "
        "sha256(\"v1|rule|transfer_id|case_id\")[:32] and can be recomputed.</p>",
        "<h2>Address lists used</h2>",
    ]
    if lists:
        body.append(_table(["List", "Version", "Category", "Published", "Source", "Digest"],
                           [[_e(x["name"]), _e(x["version"]), _e(x["category"]),
                             _e(x["published"]), _e(x["source"]), _code(x["digest"])]
                            for x in lists]))
    else:
        body.append("<p class=\"note\">No address lists were loaded by this worker.</p>")
    body.append("<h2>Watched addresses</h2>")
    body.append(_table(["Chain", "Address", "Category", "Label", "Source", "Hop"],
                       [[_e(w["chain"]), _code(w["address"]), _e(w["category"]), _e(w["label"]),
                         _e(w["source"]), _e((w.get("taint") or {}).get("hop", ""))]
                        for w in facts["watch_entries"]]))
    body.append("<h2>Fund flow</h2>")
    rows = []
    for edge in graph["edges"]:
        base, human = _amount(edge["amount"], edge["asset"])
        rows.append([_e(edge["hop"] if edge["hop"] is not None else ""),
                     _e(edge["block_number"]), _code(edge["tx_hash"]), who(edge["from"]),
                     who(edge["to"]), base, human, _e(", ".join(edge["alert_ids"]))])
    body.append(_table(["Hop", "Block", "Tx hash", "From", "To", "Amount (base units)",
                        "Amount", "Alerts"], rows))
    body.append("<h2>Alerts</h2>")
    body.extend(_alert_section(a, edges) for a in alerts)
    if not alerts:
        body.append("<p class=\"note\">No alerts held for this case.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Case {_e(case_id)} - chainwatch evidence report</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")
