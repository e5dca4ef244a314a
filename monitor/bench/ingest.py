"""Ingest benchmark: the connector against the node's raw batch-fetch rate and ethereum-etl.

All three read the same prepared block range from the same anvil node; the connector and
ethereum-etl write it to the same Kafka broker. Rates are taken over every batch but the first
(the first one also pays for start-up: imports, connections, topic creation), with the same
batch size for all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from monitor.bench.data import ChainData
from monitor.devservices import process
from monitor.metrics import LAST_PUBLISHED_BLOCK
from monitor.settings import parse_config

log = logging.getLogger(__name__)

ETL_VERSION = "2.4.2"
# The [streaming] extra also pulls google-cloud-pubsub and grpcio 1.46, which has no wheel for
# current Pythons; the Kafka exporter only needs kafka-python, pinned to the extra's version.
ETL_PACKAGES = (f"ethereum-etl=={ETL_VERSION}", "kafka-python==2.0.2")
ETL_ENTITIES = "block,transaction,token_transfer,trace"
ETL_TOPICS = ("blocks", "transactions", "token_transfers", "traces")


@dataclass
class RateResult:
    """One ingest measurement: a rate, or the reason there is none."""

    name: str
    blocks: int = 0
    seconds: float = 0.0  # steady window: end of the first batch to the end of the last
    wall_seconds: float = 0.0  # start to end, start-up included
    blocks_per_second: float | None = None
    transfers_per_second: float | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def rate(self, blocks: int, seconds: float, transfers_per_block: float) -> None:
        """Fill in the rates from a steady window of ``blocks`` in ``seconds``."""
        self.blocks = blocks
        self.seconds = seconds
        if seconds > 0 and blocks > 0:
            self.blocks_per_second = blocks / seconds
            self.transfers_per_second = self.blocks_per_second * transfers_per_block


def _batches(first: int, last: int, size: int) -> list[list[int]]:
    numbers = list(range(first, last + 1))
    return [numbers[i:i + size] for i in range(0, len(numbers), size)]


async def raw_fetch(chain: ChainData, batch_size: int, traces: bool = True,
                    pipelined: bool = True) -> RateResult:
    """Tight loop: the same JSON-RPC batches as the connector, bodies read, nothing parsed.

    ``pipelined`` asks the node the way the connector does: a batch's blocks, receipts and
    traces at once, and the next batch while the current one is read (two in flight).
    Without it, one request after the other: the node limit of a strictly sequential client.
    """
    result = RateResult("raw batch fetch (node limit)" if pipelined
                        else "raw batch fetch, sequential")
    batches = _batches(chain.first_block, chain.last_block, batch_size)
    body_bytes = 0
    async with aiohttp.ClientSession() as session:

        async def post(calls: list[tuple[str, list[Any]]]) -> int:
            payload = orjson.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                                    for i, (m, p) in enumerate(calls)])
            async with session.post(chain.rpc_url, data=payload,
                                    headers={"Content-Type": "application/json"}) as resp:
                return len(await resp.read())

        def requests(numbers: list[int]) -> list[list[tuple[str, list[Any]]]]:
            calls: list[list[tuple[str, list[Any]]]] = [
                [("eth_getBlockByNumber", [hex(n), True]) for n in numbers],
                [("eth_getBlockReceipts", [hex(n)]) for n in numbers]]
            if traces:
                calls.append([("trace_block", [hex(n)]) for n in numbers])
            return calls

        async def one_batch(numbers: list[int]) -> int:
            if pipelined:
                return sum(await asyncio.gather(*(post(c) for c in requests(numbers))))
            return sum([await post(c) for c in requests(numbers)])

        began = time.perf_counter()
        first_done = began
        ahead: asyncio.Task[int] | None = None
        for i, numbers in enumerate(batches):
            current = ahead or asyncio.ensure_future(one_batch(numbers))
            ahead = (asyncio.ensure_future(one_batch(batches[i + 1]))
                     if pipelined and i + 1 < len(batches) else None)
            body_bytes += await current
            if i == 0:
                first_done = time.perf_counter()
        ended = time.perf_counter()
    result.wall_seconds = ended - began
    steady_blocks = chain.blocks - len(batches[0]) if len(batches) > 1 else chain.blocks
    steady = ended - first_done if len(batches) > 1 else ended - began
    result.rate(steady_blocks, steady, chain.transfers / chain.blocks)
    result.details = {"response_megabytes": round(body_bytes / 1e6, 1),
                      "megabytes_per_second": round(body_bytes / 1e6 / result.wall_seconds, 1),
                      "pipelined": pipelined}
    return result


def connector_config(chain: ChainData, bootstrap: str, prefix: str, batch_size: int,
                     chain_name: str = "bench", **extra: Any) -> dict[str, Any]:
    """The YAML configuration (as a dict) of a connector over the prepared chain."""
    chain_cfg: dict[str, Any] = {
        "name": chain_name, "chain_id": 31337, "rpc_urls": [chain.rpc_url], "confirmations": 0,
        "start_block": chain.first_block, "traces": "parity", "batch_size": batch_size,
        "poll_interval_seconds": 0.5}
    chain_cfg.update(extra)
    return {"app_id": prefix.rstrip("."), "chains": [chain_cfg],
            "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix}, "sinks": []}


async def run_connector_once(chain: ChainData, bootstrap: str, prefix: str,
                             batch_size: int) -> RateResult:
    """Run the real connector (in this process) over the range; time each acknowledged batch."""
    from connectors.runner import run_connector

    result = RateResult("chainwatch connector")
    config = parse_config(connector_config(chain, bootstrap, prefix, batch_size), "bench")
    gauge = LAST_PUBLISHED_BLOCK.labels("bench")
    gauge.set(-1)
    stop = asyncio.Event()
    marks: list[tuple[float, float]] = []

    async def watch() -> None:
        last_seen = -1.0
        while not stop.is_set():
            value = gauge._value.get()
            if value != last_seen:
                marks.append((time.perf_counter(), value))
                last_seen = value
                if value >= chain.last_block:
                    stop.set()
                    return
            await asyncio.sleep(0.002)

    began = time.perf_counter()
    cpu_began = time.process_time()
    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait_for(run_connector(config, "bench", bootstrap, stop), 900)
    finally:
        stop.set()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    cpu = time.process_time() - cpu_began
    published = [(t, v) for t, v in marks if v >= chain.first_block]
    if not published or published[-1][1] < chain.last_block:
        result.error = "the connector did not publish the whole range"
        return result
    result.details = {"cpu_seconds": round(cpu, 2)}
    t_first, v_first = published[0]
    t_last = published[-1][0]
    result.wall_seconds = t_last - began
    if len(published) > 1:
        result.rate(int(chain.last_block - v_first), t_last - t_first,
                    chain.transfers / chain.blocks)
    else:
        result.rate(chain.blocks, t_last - began, chain.transfers / chain.blocks)
    return result


# --- ethereum-etl ---------------------------------------------------------------------------

def _python_candidates() -> list[str]:
    found: list[str] = []
    for name in ("python3.10", "python3.9", "python3.8"):
        path = shutil.which(name)
        if path:
            found.append(path)
    home = Path.home()
    for pattern in (".pyenv/versions/3.10*/bin/python3.10", ".pyenv/versions/3.9*/bin/python3.9"):
        found.extend(sorted(glob.glob(str(home / pattern))))
    found.extend(p for p in ("/usr/bin/python3.10", "/usr/bin/python3.9") if os.path.exists(p))
    return found


def _works(python: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import venv, sys; print(sys.version)"],  # noqa: S603
                              capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_etl(cache_dir: Path) -> Path:
    """Install ethereum-etl in its own virtual environment once; return its ``ethereumetl``.

    ethereum-etl 2.4.2 pins eth-abi 2 / parsimonious 0.8, which import ``inspect.getargspec``
    (gone in Python 3.11): the environment is made with a Python 3.10 or older found on the
    machine. Raises RuntimeError with the reason when that or the install fails.
    """
    venv = cache_dir / "bench" / f"ethereum-etl-{ETL_VERSION}"
    binary = venv / "bin" / "ethereumetl"
    marker = venv / "installed.ok"
    if marker.is_file() and binary.is_file():
        return binary
    python = next((p for p in _python_candidates() if _works(p)), None)
    if python is None:
        raise RuntimeError(f"ethereum-etl {ETL_VERSION} needs Python <= 3.10 (its eth-abi 2 "
                           "uses inspect.getargspec); none found on this machine")
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [[python, "-m", "venv", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
              "--disable-pip-version-check", *ETL_PACKAGES]]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900,  # noqa: S603
                              check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise RuntimeError(f"installing ethereum-etl failed ({' '.join(argv[-3:])}): "
                               + " | ".join(tail))
    check = subprocess.run([str(binary), "stream", "--help"], capture_output=True,  # noqa: S603
                           text=True, timeout=60, check=False)
    if check.returncode != 0 or "kafka" not in check.stdout:
        tail = (check.stdout + check.stderr).strip().splitlines()[-2:]
        raise RuntimeError("ethereumetl stream does not run: " + " | ".join(tail))
    marker.write_text(" ".join(ETL_PACKAGES) + f"\npython {python}\n")
    return binary


async def _topic_counts(bootstrap: str, topics: tuple[str, ...]) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        counts: dict[str, int] = {}
        existing = await consumer.topics()
        for topic in topics:
            if topic not in existing:
                counts[topic] = 0
                continue
            parts = consumer.partitions_for_topic(topic) or {0}
            tps = [TopicPartition(topic, p) for p in parts]
            ends = await consumer.end_offsets(tps)
            counts[topic] = sum(ends.values())
        return counts
    finally:
        await consumer.stop()


def _fresh(workdir: Path) -> tuple[Path, Path]:
    """Make the (absolute) work directory; return it and an absent progress file in it."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    synced = workdir / "last_synced_block.txt"
    synced.unlink(missing_ok=True)
    return workdir, synced


ETL_STALL_SECONDS = 120.0


async def run_etl(chain: ChainData, bootstrap: str, workdir: Path, cache_dir: Path,
                  batch_size: int, timeout: float = 600.0,
                  stall_seconds: float = ETL_STALL_SECONDS) -> RateResult:
    """Run ``ethereumetl stream`` over the range into the same Kafka; time each synced batch.

    ``ethereumetl stream`` never ends by itself (it waits for new blocks): it is stopped once
    its last-synced-block file reaches the end of the range, or when ``timeout`` seconds have
    passed or the file has not moved for ``stall_seconds``; then the result carries the reason.
    """
    from monitor.topics import TopicSpec, ensure_topics

    result = RateResult(f"ethereum-etl {ETL_VERSION} stream")
    try:
        binary = await asyncio.to_thread(ensure_etl, cache_dir)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        result.error = f"not measured: {exc}"
        return result
    await ensure_topics(bootstrap, [TopicSpec(t, 1, {}) for t in ETL_TOPICS])
    before = await _topic_counts(bootstrap, ETL_TOPICS)
    # Absolute paths: ethereumetl runs in ``workdir`` and would resolve a relative file name
    # against it, writing its progress where this loop never looks (the old hang).
    workdir, synced = await asyncio.to_thread(_fresh, workdir)
    argv = [str(binary), "stream", "--provider-uri", chain.rpc_url, "--start-block",
            str(chain.first_block), "--output", f"kafka/{bootstrap}", "--entity-types",
            ETL_ENTITIES, "--block-batch-size", str(batch_size), "--batch-size",
            str(batch_size), "--max-workers", "5", "--period-seconds", "1",
            "--last-synced-block-file", str(synced)]
    began = time.perf_counter()
    proc = process.spawn(argv, log_path=workdir / "ethereumetl.log", cwd=workdir)
    marks: list[tuple[float, int]] = []
    try:
        last_value: int | None = None
        moved_at = began
        while True:
            now = time.perf_counter()
            if proc.poll() is not None:
                result.error = (f"ethereumetl exited with {proc.returncode}: "
                                + process.log_tail(workdir / "ethereumetl.log", 3))
                return result
            if now - began > timeout or now - moved_at > stall_seconds:
                why = (f"no progress for {stall_seconds:.0f} s" if now - began <= timeout
                       else f"range not finished in {timeout:.0f} s")
                result.error = (f"ethereumetl stopped: {why}; last synced block "
                                f"{last_value if last_value is not None else 'none'} of "
                                f"{chain.last_block}")
                return result
            with contextlib.suppress(OSError, ValueError):
                value = int(synced.read_text().strip())
                if value != last_value:
                    marks.append((now, value))
                    last_value = value
                    moved_at = now
                    if value >= chain.last_block:
                        break
            await asyncio.sleep(0.005)
    finally:
        process.terminate(proc, 10)
    published = [(t, v) for t, v in marks if v >= chain.first_block]
    t_first, v_first = published[0]
    t_last = published[-1][0]
    result.wall_seconds = t_last - began
    if len(published) > 1:
        result.rate(chain.last_block - v_first, t_last - t_first, chain.transfers / chain.blocks)
    else:
        result.rate(chain.blocks, t_last - began, chain.transfers / chain.blocks)
    after = await _topic_counts(bootstrap, ETL_TOPICS)
    result.details = {"messages": {t: after[t] - before.get(t, 0) for t in ETL_TOPICS},
                      "entity_types": ETL_ENTITIES,
                      "installed": (binary.parent.parent / "installed.ok").read_text().split("\n")}
    return result
