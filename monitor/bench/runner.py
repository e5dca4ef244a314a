"""Run the whole benchmark: local services, prepared chain, the four measurements, report."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import platform
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from monitor.bench import ingest, latency, report, screening
from monitor.bench.data import ChainPreparer
from monitor.bench.report import num

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sizes:
    """How big each part of the benchmark is."""

    blocks: int
    txs_per_block: int
    batch_size: int
    screening_blocks: int
    watched: tuple[int, ...]
    latency_alerts: int
    alerts_per_block: int
    noise_per_block: int
    latency_timeout: float
    connector_runs: int
    screening_window: float
    screening_rounds: int = 1
    etl_timeout: float = 600.0  # ethereumetl stream never ends by itself: stopped after this


FULL = Sizes(blocks=100, txs_per_block=250, batch_size=10, screening_blocks=2500,
             watched=(0, 1_000, 100_000, 1_000_000), latency_alerts=500, alerts_per_block=10,
             noise_per_block=40, latency_timeout=180, connector_runs=2,
             screening_window=45, screening_rounds=2)
QUICK = Sizes(blocks=20, txs_per_block=50, batch_size=5, screening_blocks=40,
              watched=(0, 1_000, 10_000), latency_alerts=50, alerts_per_block=10,
              noise_per_block=10, latency_timeout=60, connector_runs=1,
              screening_window=20, etl_timeout=180)


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform()}


def run_bench(quick: bool, state_dir: Path, cache_dir: Path, bootstrap: str | None,
              json_out: Path | None) -> dict[str, Any]:
    """Run every measurement and print the table; return the JSON document."""
    from monitor.devservices import LocalAnvil, LocalKafka

    sizes = QUICK if quick else FULL
    began = time.monotonic()
    run_id = uuid.uuid4().hex[:8]
    # Absolute: workers and ethereumetl run with this as their working directory, and a
    # relative state directory (the default ``.chainwatch``) would then point elsewhere.
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=_ensure(state_dir))).resolve()
    broker: LocalKafka | None = None
    nodes: list[LocalAnvil] = []
    doc: dict[str, Any] = {"mode": "quick" if quick else "full", "machine": machine(),
                           "sizes": asdict(sizes), "run_id": run_id}
    # ethereum-etl's environment installs (once) while the broker starts and the chain fills.
    etl_install = concurrent.futures.ThreadPoolExecutor(1).submit(_install_etl, cache_dir)
    try:
        if bootstrap is None:
            _say("starting a local Kafka broker")
            broker = LocalKafka(workdir / "kafka", cache_dir=cache_dir)
            broker.start()
            bootstrap = broker.bootstrap
        doc["kafka"] = {"bootstrap": bootstrap, "local": broker is not None}
        node = LocalAnvil(accounts=sizes.txs_per_block + 1, log_path=workdir / "anvil.log")
        nodes.append(node)
        node.start()
        _say(f"preparing {sizes.blocks} blocks x {sizes.txs_per_block} transactions on anvil")
        chain = ChainPreparer(node.http_url).prepare(sizes.blocks, sizes.txs_per_block)
        doc["chain"] = {"blocks": chain.blocks, "transactions": chain.transactions,
                        "transfers": chain.transfers, "by_kind": chain.expected,
                        "first_block": chain.first_block, "last_block": chain.last_block,
                        "prepare_seconds": round(chain.prepare_seconds, 1)}
        prefix = f"bench-{run_id}."
        etl_install.result()
        doc["ingest"] = asyncio.run(_ingest(chain, bootstrap, prefix, sizes, workdir, cache_dir))
        _say("screening: copying blocks and filling the watchlist")
        doc["screening"], doc["memory"] = _screening(chain, bootstrap, prefix, sizes, workdir)
        node.stop()
        nodes.remove(node)
        _say(f"latency: 1-second blocks until {sizes.latency_alerts} alerts arrived")
        lat_node = LocalAnvil(accounts=40, block_time=1, log_path=workdir / "anvil-1s.log")
        nodes.append(lat_node)
        lat_node.start()
        senders = [a.lower() for a in ChainPreparer(lat_node.http_url).accounts]
        result = latency.run_latency(lat_node.http_url, lat_node.ws_url, bootstrap,
                                     f"bench-{run_id}-lat.", workdir / "latency", senders,
                                     sizes.latency_alerts, sizes.alerts_per_block,
                                     sizes.noise_per_block, sizes.latency_timeout)
        doc["latency"] = asdict(result)
        _say(f"  {result.alerts} alerts; {result.latency}"
             + (f"; {result.error}" if result.error else ""))
    finally:
        for n in nodes:
            n.stop()
        if broker is not None:
            broker.stop()
    doc["seconds"] = round(time.monotonic() - began, 1)
    doc["targets"] = report.evaluate(doc)
    print(report.render(doc), flush=True)
    if json_out is not None:
        report.write_json(doc, json_out)
        _say(f"JSON written to {json_out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return doc


def _install_etl(cache_dir: Path) -> str | None:
    try:
        ingest.ensure_etl(cache_dir)
    except Exception as exc:
        return str(exc)
    return None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _ingest(chain: Any, bootstrap: str, prefix: str, sizes: Sizes, workdir: Path,
                  cache_dir: Path) -> dict[str, Any]:
    raws: list[ingest.RateResult] = []
    connectors: list[ingest.RateResult] = []
    _say("ingest: raw batch fetch, one request after the other (for reference)")
    sequential = await ingest.raw_fetch(chain, sizes.batch_size, pipelined=False)
    _say(f"  {num(sequential.blocks_per_second, 1)} blocks/s")
    for i in range(sizes.connector_runs):
        _say(f"ingest: raw batch fetch ({i + 1}/{sizes.connector_runs})")
        raws.append(await ingest.raw_fetch(chain, sizes.batch_size))
        _say(f"  {num(raws[-1].blocks_per_second, 1)} blocks/s")
        _say(f"ingest: connector ({i + 1}/{sizes.connector_runs})")
        connectors.append(await ingest.run_connector_once(
            chain, bootstrap, f"{prefix}ing{i}.", sizes.batch_size))
        _say(f"  {connectors[-1].error or num(connectors[-1].blocks_per_second, 1)} blocks/s")
    _say("ingest: ethereum-etl stream (installed on first use)")
    etl = await ingest.run_etl(chain, bootstrap, workdir / "etl", cache_dir, sizes.batch_size,
                               timeout=sizes.etl_timeout)
    _say(f"  {etl.error or num(etl.blocks_per_second, 1)} blocks/s")
    best_raw = max(raws, key=lambda r: r.blocks_per_second or 0.0)
    ok = [c for c in connectors if c.blocks_per_second]
    best_conn = max(ok, key=lambda r: r.blocks_per_second or 0.0) if ok else connectors[0]
    return {"connector": asdict(best_conn), "raw": asdict(best_raw),
            "ethereum_etl": asdict(etl), "connector_runs": [asdict(c) for c in connectors],
            "raw_runs": [asdict(r) for r in raws], "batch_size": sizes.batch_size,
            "raw_sequential": asdict(sequential),
            "block_topic": f"{prefix}ing{connectors.index(best_conn)}.blocks.bench"}


def _faster(kept: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any]:
    """The faster of two runs of one size, with the higher RSS and peak RSS of the two."""
    if kept is None:
        return run
    best = run if ((run["transfers_per_second"] or 0.0)
                   > (kept["transfers_per_second"] or 0.0)) else kept
    return dict(best, rss_after_mb=max(kept["rss_after_mb"], run["rss_after_mb"]),
                hwm_mb=max(kept["hwm_mb"], run["hwm_mb"]))


def _screening(chain: Any, bootstrap: str, prefix: str, sizes: Sizes,
               workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    bench = screening.ScreeningBench(bootstrap, f"{prefix}scr.", workdir / "screening",
                                     chain.rpc_url)
    asyncio.run(bench.prepare(f"{prefix}ing0.blocks.bench", sizes.screening_blocks, hits=[]))
    runs: dict[str, Any] = {}
    in_process: dict[str, Any] = {}
    sample = bench.raw[: min(len(bench.raw), 40)]
    idle: dict[str, dict[str, float]] = {}

    def idle_worker(size: int) -> None:
        _say(f"memory: idle worker holding {size:,} watched addresses")
        try:
            idle[str(size)] = bench.idle_rss(size, uuid.uuid4().hex[:6])
            _say(f"  RSS {idle[str(size)]['rss_mb']:.0f} MB")
        except RuntimeError as exc:
            _say(f"  {exc}")

    idle_worker(0)
    # Each size runs once per round, the sizes interleaved; the fastest run of a size counts
    # (a moment of load elsewhere only slows), its RSS after screening the highest of them.
    for round_no, size in ((r, s) for r in range(sizes.screening_rounds)
                           for s in sizes.watched):
        _say(f"screening: worker with {size:,} watched addresses, round {round_no + 1} "
             f"({bench.transfers:,} transfers in {bench.block_count} blocks)")
        run = bench.run_worker(size, uuid.uuid4().hex[:6], window=sizes.screening_window)
        _say(f"  {num(run.transfers_per_second)} transfers/s over {run.transfers:,} transfers"
             f"{'' if run.complete else ' (window cut)'}; ready after {run.ready_seconds:.1f} s;"
             f" RSS {run.rss_after_mb:.0f} MB{'; ' + run.error if run.error else ''}")
        runs[str(size)] = _faster(runs.get(str(size)), asdict(run))
        if round_no == 0 and size in (sizes.watched[1], sizes.watched[-1]):
            _say(f"screening: in-process baseline with {size:,} watched addresses")
            entries = screening.watch_entries(0, size, [])
            in_process[str(size)] = screening.in_process_rate(sample, entries,
                                                              bench.config("in-process"))
            _say("  " + ", ".join(f"{k} {num(v)}/s" for k, v in in_process[str(size)].items()))
    idle_worker(sizes.watched[-1])
    memory = {"rss_mb": {k: v["rss_mb"] for k, v in idle.items()},
              "idle": idle,
              "after_screening_mb": {k: v["rss_after_mb"] for k, v in runs.items()},
              "hwm_mb": {k: v["hwm_mb"] for k, v in runs.items()},
              "rss_ready_mb": {k: v["rss_ready_mb"] for k, v in runs.items()},
              "largest": str(sizes.watched[-1])}
    return ({"runs": runs, "in_process": in_process, "transfers": bench.transfers,
             "blocks": bench.block_count,
             "populate_seconds": {str(k): round(v, 2)
                                  for k, v in bench.populate_seconds.items()}}, memory)
