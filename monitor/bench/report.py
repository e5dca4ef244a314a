"""The benchmark's table and JSON: each figure beside its baseline, targets met or not."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MB = "MB"


def num(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators, or ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return a / b


def _verdict(ok: bool | None, quick: bool) -> str:
    if quick:
        return "(quick: not judged)"
    if ok is None:
        return "not measured"
    return "met" if ok else "NOT met"


def evaluate(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets with the measured ratio or value, met or not (never asserted)."""
    quick = doc.get("mode") == "quick"
    ing = doc.get("ingest", {})
    conn = ing.get("connector", {}).get("blocks_per_second")
    raw = ing.get("raw", {}).get("blocks_per_second")
    etl = ing.get("ethereum_etl", {}).get("blocks_per_second")
    scr = doc.get("screening", {}).get("runs", {})
    sizes = [int(k) for k in scr]
    small = str(min((s for s in sizes if s > 0), default=0))
    large = str(max(sizes, default=0))
    rate_small = scr.get(small, {}).get("transfers_per_second")
    rate_large = scr.get(large, {}).get("transfers_per_second")
    # Per worker at every watchlist size: the slowest size is the one judged.
    slowest = min((r.get("transfers_per_second") or 0.0 for r in scr.values()), default=0.0)
    lat = doc.get("latency", {}).get("latency", {})
    mem = doc.get("memory", {}).get("rss_mb", {})
    rss_large = mem.get(large) or None  # idle worker holding the watchlist; 0: never ran
    rss_after = doc.get("memory", {}).get("after_screening_mb", {}).get(large) or None
    targets = []

    def add(name: str, value: float | None, limit: float, higher: bool, unit: str) -> None:
        ok = None if value is None else (value >= limit if higher else value <= limit)
        targets.append({"target": name, "value": value, "limit": limit, "unit": unit,
                        "met": ok, "verdict": _verdict(ok, quick),
                        "factor": None if value in (None, 0) else (value / limit)})

    add("ingest >= 0.8 x raw batch fetch", _ratio(conn, raw), 0.8, True, "x")
    add("ingest >= 5 x ethereum-etl", _ratio(conn, etl), 5.0, True, "x")
    add("screening >= 200,000 /s per worker, slowest size", slowest or None, 200_000, True,
        "/s")
    add(f"screening at {int(large):,} >= 0.9 x rate at {int(small):,}",
        _ratio(rate_large, rate_small), 0.9, True, "x")
    add("latency p50 <= 250 ms", lat.get("p50_ms"), 250, False, "ms")
    add("latency p99 <= 1 s", lat.get("p99_ms"), 1000, False, "ms")
    add(f"memory <= 300 MB at {int(large):,} watched", rss_large, 300, False, MB)
    add(f"  and after screening at {int(large):,} watched", rss_after, 300, False, MB)
    return targets


def rows(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, figure, baseline, ratio) rows of the table."""
    out: list[tuple[str, str, str, str]] = []
    ing = doc.get("ingest", {})
    conn, raw, etl = (ing.get(k, {}) for k in ("connector", "raw", "ethereum_etl"))
    sequential = ing.get("raw_sequential", {})

    def rate(r: dict[str, Any], key: str) -> str:
        return r.get("error") or num(r.get(key), 1 if key == "blocks_per_second" else 0)

    for key, unit in (("blocks_per_second", "blocks/s"), ("transfers_per_second",
                                                           "transfers/s")):
        out.append((f"ingest: connector {unit}", rate(conn, key),
                    f"raw batch fetch (node): {rate(raw, key)}",
                    _fmt_ratio(_ratio(conn.get(key), raw.get(key)))))
        if sequential:
            out.append((f"ingest: connector {unit}", rate(conn, key),
                        f"raw fetch, one request at a time: {rate(sequential, key)}",
                        _fmt_ratio(_ratio(conn.get(key), sequential.get(key)))))
        out.append((f"ingest: connector {unit}", rate(conn, key),
                    f"ethereum-etl stream: {rate(etl, key)}",
                    _fmt_ratio(_ratio(conn.get(key), etl.get(key)))))
    scr = doc.get("screening", {})
    runs = scr.get("runs", {})
    in_proc = scr.get("in_process", {})
    first_rate = None
    for size, run in runs.items():
        fig = run.get("error") or (num(run.get("transfers_per_second"))
                                   + ("" if run.get("complete") else " (window cut)"))
        base = in_proc.get(size) or in_proc.get(_nearest(size, in_proc))
        base_key = size if size in in_proc else _nearest(size, in_proc)
        if base:
            text = (f"in-process screen_block ({int(base_key):,}): "
                    f"{num(base.get('screen_block'))}; Screener {num(base.get('screener'))};"
                    f" decode {num(base.get('decode'))}"
                    + (f"; digest {num(base['digest'])}" if base.get("digest") else ""))
            ratio = _fmt_ratio(_ratio(run.get("transfers_per_second"),
                                      base.get("screen_block")))
        else:
            text, ratio = "in-process: n/a", "n/a"
        out.append((f"screening: worker transfers/s, {int(size):,} watched", fig, text, ratio))
        if int(size) > 0 and first_rate is None:
            first_rate = run.get("transfers_per_second")
        elif int(size) > 0:
            out.append((f"screening: {int(size):,} vs first non-empty size", fig,
                        f"rate at smallest watchlist: {num(first_rate)}",
                        _fmt_ratio(_ratio(run.get("transfers_per_second"), first_rate))))
    lat = doc.get("latency", {})
    if lat:
        q = lat.get("latency", {})
        k = lat.get("kafka_round_trip", {})
        n = lat.get("node_fetch", {})
        fig = lat.get("error") or ""
        fig = (f"{num(q.get('p50_ms'))}/{num(q.get('p95_ms'))}/{num(q.get('p99_ms'))} ms"
               f" (n={lat.get('alerts', 0)})" + (f" [{fig}]" if fig else ""))
        out.append(("latency: mined -> webhook p50/p95/p99", fig,
                    f"Kafka round trip p50/p99: {num(k.get('p50_ms'), 1)}/"
                    f"{num(k.get('p99_ms'), 1)} ms; node fetch of a block p50/p99: "
                    f"{num(n.get('p50_ms'), 1)}/{num(n.get('p99_ms'), 1)} ms", ""))
    mem = doc.get("memory", {})
    if mem:
        rss = mem.get("rss_mb", {})
        large = mem.get("largest", "0")
        out.append((f"memory: worker RSS, {int(large):,} watched", f"{num(rss.get(large))} MB",
                    f"RSS with 0 watched: {num(rss.get('0'))} MB",
                    _fmt_ratio(_ratio(rss.get(large), rss.get("0")))))
        after = mem.get("after_screening_mb", {})
        if after:
            out.append((f"memory: RSS after screening, {int(large):,} watched",
                        f"{num(after.get(large))} MB",
                        f"after screening, 0 watched: {num(after.get('0'))} MB",
                        _fmt_ratio(_ratio(after.get(large), after.get("0")))))
    return out


def _nearest(size: str, table: dict[str, Any]) -> str:
    if not table:
        return size
    return min(table, key=lambda k: abs(int(k) - int(size)))


def _fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def render(doc: dict[str, Any]) -> str:
    """The text table printed at the end of a run."""
    chain = doc.get("chain", {})
    m = doc.get("machine", {})
    head = (f"chainwatch bench ({doc.get('mode')}) on {m.get('cpus')} CPU(s) "
            f"[{m.get('cpu_model', '')}], Python {m.get('python')}; chain: "
            f"{chain.get('blocks')} blocks, {chain.get('transactions', 0):,} txs, "
            f"{chain.get('transfers', 0):,} transfers {chain.get('by_kind', {})}; "
            f"{doc.get('seconds')} s")
    table = rows(doc)
    widths = [max(len(r[i]) for r in [("measure", "figure", "baseline (same run)", "ratio"),
                                      *table]) for i in range(4)]
    widths = [min(w, 80) for w in widths]

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    out = [head, "", line(("measure", "figure", "baseline (same run)", "ratio")),
           line(tuple("-" * w for w in widths))]
    out += [line(r) for r in table]
    out += ["", "targets:"]
    for t in doc.get("targets", []):
        value = t["value"]
        shown = "n/a" if value is None else (f"{value:.2f}x" if t["unit"] == "x"
                                             else f"{value:,.0f} {t['unit']}")
        factor = t.get("factor")
        how = "" if factor is None else f" ({factor:.2f} of the limit)"
        out.append(f"  {t['target']:<48} {shown:>16}  {t['verdict']}{how}")
    return "\n".join(out)


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Write the document (NaN as null)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(doc), indent=2) + "\n")
