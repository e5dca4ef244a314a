"""Screening benchmark: transfers/s through Kafka and one worker process per watchlist size.

The block messages the connector published during the ingest benchmark are copied (renumbered)
into a screening topic until it holds enough transfers; the compacted watchlist topic is filled
with a raw producer. For each size a fresh worker (a new consumer group) reads the whole block
topic; the rate is taken from its ``chainwatch_transfers_screened_total`` between two samples
taken while it screened (the first and the last; a scrape costs the worker CPU, so it is
sampled five times a second). The baseline is ``screen_block`` alone, in this process, on the
already-decoded blocks with a watchlist of the same size, plus decode + screen.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from monitor.bench.worker import WorkerProcess, cpu_seconds, metric_value, proc_status
from monitor.records import BLOCK_DECODER, Block, WatchEntry, encode
from monitor.settings import kafka_codec
from monitor.topics import TopicSpec, ensure_topics, read_partition

CHAIN = "bench"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
SKIP_SHARE = 0.3
"""Share of the backlog left out of the rate: what a worker buffers while it starts."""


def watch_entry(i: int, address: str | None = None) -> WatchEntry:
    """The ``i``-th benchmark watch entry (a random-looking address unless one is given)."""
    if address is None:
        address = "0x" + random.Random(i).randbytes(20).hex()  # noqa: S311
    return WatchEntry(chain=CHAIN, address=address, case_id=f"BENCH-{i // 1000:05d}",
                      label=f"bench entry {i}", category="seized", source="bench",
                      added_at=1_700_000_000)


def watch_entries(start: int, stop: int, hits: list[str]) -> list[WatchEntry]:
    """Entries ``start``..``stop-1``; the first ones watch real addresses of the chain."""
    return [watch_entry(i, hits[i] if i < len(hits) else None) for i in range(start, stop)]


async def produce_raw(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]],
                      compression: str = "none") -> float:
    """Write (key, value) pairs in big batches; return the seconds it took."""
    began = time.perf_counter()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                max_batch_size=1024 * 1024, max_request_size=MAX_MESSAGE_BYTES,
                                compression_type=kafka_codec(compression))
    await producer.start()
    try:
        pending = []
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(batch, topic, partition=0))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise RuntimeError(f"a message of {len(value)} bytes does not fit a batch")
            if len(pending) >= 64:
                await asyncio.gather(*pending)
                pending = []
        if batch.record_count():
            pending.append(await producer.send_batch(batch, topic, partition=0))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - began


def replicate_blocks(source: list[Block], count: int) -> list[Block]:
    """``count`` block events made of the source blocks, renumbered and re-linked."""
    out: list[Block] = []
    parent = "0x" + "00" * 32
    for n in range(count):
        block = source[n % len(source)]
        hsh = "0x" + random.Random(n).randbytes(32).hex()  # noqa: S311
        transfers = tuple(msgspec.structs.replace(t, chain=CHAIN, block_number=n + 1,
                                                  block_hash=hsh) for t in block.transfers)
        out.append(msgspec.structs.replace(block, chain=CHAIN, number=n + 1, hash=hsh,
                                           parent_hash=parent, head=count,
                                           transfers=transfers))
        parent = hsh
    return out


@dataclass
class ScreeningRun:
    """One worker run over the whole block topic with ``watched`` entries."""

    watched: int
    transfers: int = 0
    seconds: float = 0.0
    transfers_per_second: float | None = None
    ready_seconds: float = 0.0  # start to replica caught up (includes reading the watchlist)
    rss_ready_mb: float = 0.0
    rss_after_mb: float = 0.0
    hwm_mb: float = 0.0
    alerts: float = 0.0
    complete: bool = False
    steady: bool = False  # rate taken between samples inside the run (not start to end)
    publish_seconds: float = 0.0  # writing the block messages, before the worker started
    # CPU time the worker spent per screened transfer over the same window as the rate (all
    # threads, and the main thread that runs the agents): steadier than the rate on a busy host.
    cpu_us_per_transfer: float | None = None
    main_cpu_us_per_transfer: float | None = None
    error: str | None = None


@dataclass
class ScreeningBench:
    """The prepared block messages, and one set of topics per watchlist size.

    Each size gets its own topic prefix: its watchlist topic holds exactly that many entries,
    and its block topic holds every block message before a worker starts (a backlog, as after
    an outage or in a backfill), so the rate is the worker's own, not that of a producer
    writing while it reads. A worker buffers part of the backlog while it reads its watchlist
    (``stream_buffer_maxsize`` events and one fetch): the rate leaves out the first
    :data:`SKIP_SHARE` of the transfers, which that buffer holds.
    """

    bootstrap: str
    prefix: str
    workdir: Path
    rpc_url: str
    raw: list[bytes] = field(default_factory=list)
    block_count: int = 0
    transfer_count: int = 0
    hits: list[str] = field(default_factory=list)
    populate_seconds: dict[int, float] = field(default_factory=dict)
    publish_seconds: dict[int, float] = field(default_factory=dict)
    _items: list[tuple[bytes, bytes]] = field(default_factory=list)

    def run_prefix(self, size: int) -> str:
        """Topic prefix of the runs with ``size`` watched addresses."""
        return f"{self.prefix}w{size}."

    @property
    def transfers(self) -> int:
        """Transfers in the block messages."""
        return self.transfer_count

    async def prepare(self, source_topic: str, count: int, hits: list[str]) -> None:
        """Make ``count`` block messages out of the ingested blocks (renumbered copies)."""
        raw = await read_partition(self.bootstrap, source_topic, max_fetch_bytes=MAX_MESSAGE_BYTES)
        source = [BLOCK_DECODER.decode(v) for v in raw]
        source = [b for b in source if b.kind == "block"]
        if not source:
            raise RuntimeError(f"no blocks in {source_topic}")
        blocks = replicate_blocks(source, count)
        self.raw = [encode(b) for b in blocks]
        self.block_count = len(blocks)
        self.transfer_count = sum(len(b.transfers) for b in blocks)
        self.hits = hits
        self._items = [(str(b.number).encode(), v) for b, v in zip(blocks, self.raw,
                                                                   strict=True)]

    async def _prepare_run(self, size: int) -> None:
        """Create the topics of ``size`` and write its watchlist (once)."""
        if size in self.populate_seconds:
            return
        from monitor.settings import parse_config
        from monitor.topics import Topics

        config = parse_config(self.config("bench-prepare", size), "bench")
        specs = [TopicSpec(s.name, s.partitions, dict(s.configs, **{
            "max.message.bytes": str(MAX_MESSAGE_BYTES)}))
            for s in Topics.from_config(config).specs()]
        await ensure_topics(self.bootstrap, specs)
        items = [(e.key.encode(), encode(e)) for e in watch_entries(0, size, self.hits)]
        self.populate_seconds[size] = (await produce_raw(
            self.bootstrap, f"{self.run_prefix(size)}watchlist", items) if items else 0.0)
        self.publish_seconds[size] = await produce_raw(  # compressed as connectors write them
            self.bootstrap, f"{self.run_prefix(size)}blocks.{CHAIN}", self._items,
            config.kafka.compression)

    def config(self, app_id: str, size: int = 0) -> dict[str, Any]:
        """Worker configuration for one run (its own consumer group), defaults otherwise.

        The blocks are renumbered copies, so the node cannot answer facts about them:
        ``address_facts`` is off; everything else (rules, taint, lifecycle) is the default.
        """
        return {"app_id": app_id, "kafka": {"bootstrap": self.bootstrap,
                                            "topic_prefix": self.run_prefix(size)},
                "chains": [{"name": CHAIN, "chain_id": 31337, "rpc_urls": [self.rpc_url],
                            "confirmations": 0, "address_facts": False}],
                "sinks": []}

    def idle_rss(self, size: int, run_id: str, settle: float = 3.0,
                 timeout: float = 300.0) -> dict[str, float]:
        """RSS of a worker holding the watchlist (``size`` entries) with no blocks to screen.

        After a screening run a worker's RSS also holds what its consumers buffered and the
        allocator kept; this worker follows a chain without blocks, so its RSS is the worker
        itself plus the watchlist.
        """
        asyncio.run(self._prepare_run(size))
        config = self.config(f"bench-idle-{run_id}-{size}", size)
        config["chains"][0]["name"] = "idle"
        asyncio.run(self._ensure_topics(config))
        worker = WorkerProcess(self.workdir, config, name=f"idle-{size}")
        worker.start()
        try:
            ready = worker.wait_ready(timeout)  # /health: the replica caught up
            time.sleep(settle)
            held = metric_value(worker.metrics(), "chainwatch_watchlist_entries")
            if held != size:
                raise RuntimeError(f"idle worker holds {held:,.0f} entries, not {size:,}")
            status = proc_status(worker.pid)
            return {"rss_mb": status.get("VmRSS", 0.0), "hwm_mb": status.get("VmHWM", 0.0),
                    "ready_seconds": round(ready, 1)}
        finally:
            worker.stop()

    async def _ensure_topics(self, config: dict[str, Any]) -> None:
        from monitor.settings import parse_config
        from monitor.topics import Topics

        await ensure_topics(self.bootstrap, Topics.from_config(parse_config(config, "bench"))
                            .specs())

    def run_worker(self, size: int, run_id: str, poll: float = 0.1,
                   window: float = 60.0, env: dict[str, str] | None = None,
                   on_ready: Callable[[int], object] | None = None) -> ScreeningRun:
        """Start a worker, sample its rate and RSS until it screened every transfer.

        A slow run is cut ``window`` seconds after its first screened block: the rate is
        then the one of that window (``complete`` is False). ``env`` is added to the worker's
        environment; ``on_ready`` gets the worker's pid once it is ready (e.g. to profile it).
        """
        result = ScreeningRun(watched=size)
        asyncio.run(self._prepare_run(size))
        worker = WorkerProcess(self.workdir, self.config(f"bench-screen-{run_id}-{size}", size),
                               env=env, name=f"screen-{size}-{run_id}")
        total = self.transfers
        worker.start()
        try:
            began = time.monotonic()
            result.ready_seconds = worker.wait_ready(600)
            result.rss_ready_mb = proc_status(worker.pid).get("VmRSS", 0.0)
            if on_ready is not None:
                on_ready(worker.pid)
            ready_at = time.monotonic()
            result.publish_seconds = self.publish_seconds[size]
            marks: list[tuple[float, float]] = [(ready_at, 0.0)]
            cpu: dict[float, tuple[float, float]] = {ready_at: cpu_seconds(worker.pid)}
            while time.monotonic() - began < 900:
                worker.check_alive()
                try:
                    text = worker.metrics()
                except OSError:
                    time.sleep(poll)
                    continue
                now = time.monotonic()
                value = metric_value(text, "chainwatch_transfers_screened_total",
                                     f'chain="{CHAIN}"')
                if not marks or value != marks[-1][1]:
                    marks.append((now, value))
                    cpu[now] = cpu_seconds(worker.pid)
                moved = [t for t, v in marks if v > 0]
                if value >= total or (moved and now - moved[0] >= window):
                    result.alerts = metric_value(text, "chainwatch_alerts_raised_total")
                    result.complete = value >= total
                    break
                time.sleep(poll)
            else:
                result.error = "the worker did not screen every transfer in 900 s"
                return result
            status = proc_status(worker.pid)
            result.rss_after_mb = status.get("VmRSS", 0.0)
            result.hwm_mb = status.get("VmHWM", 0.0)
            moving = [(t, v) for t, v in marks if v > 0]
            idle = [(t, v) for t, v in marks if v == 0]
            inside = [(t, v) for t, v in moving if SKIP_SHARE * total <= v < total]
            if len(inside) >= 3:
                # Steady state: between two samples taken while screening went on, after what
                # was buffered during start-up, so the start-up ramp, the buffer, the tail and
                # the polling interval do not enter the figure.
                (t0, v0), (t1, v1) = inside[0], inside[-1]
            else:
                # A small run can finish between two samples: from the last sample before
                # screening began to the first one after it ended (a lower bound).
                t0, v0 = idle[-1] if idle else moving[0]
                t1, v1 = moving[-1]
            result.steady = len(inside) >= 3
            result.transfers = int(v1 - v0)
            result.seconds = t1 - t0
            if result.transfers > 0:
                result.cpu_us_per_transfer = (cpu[t1][0] - cpu[t0][0]) * 1e6 / result.transfers
                result.main_cpu_us_per_transfer = ((cpu[t1][1] - cpu[t0][1]) * 1e6
                                                   / result.transfers)
            if result.seconds > 0:
                result.transfers_per_second = result.transfers / result.seconds
        except RuntimeError as exc:
            result.error = str(exc)
        finally:
            worker.stop()
        return result


def in_process_rate(raw: list[bytes], entries: list[WatchEntry], config: dict[str, Any],
                    repeat_seconds: float = 2.0) -> dict[str, float]:
    """Rates of ``screen_block``, the configured ``Screener``, decoding and the quiet check.

    The quiet check (``digest``) is the digest decode and ``Screener.needs_screening``: all the
    agent does per transfer of a block in which nothing is watched.

    No Kafka, no tables, no faust: the floor that the worker's figure is compared with.
    """
    import rules  # noqa: F401 - registers the built-in rules
    from monitor.app import build_screener
    from monitor.screening import ChainPolicy, screen_block
    from monitor.settings import parse_config
    from monitor.watchlist import Watchlist
    from rules.base import build_rule

    screener = build_screener(parse_config(config, "bench"), Path.cwd())
    watchlist = Watchlist()
    for entry in entries:
        watchlist.put(entry)
    rule_list = [build_rule("watched-address", None, {})]
    policy = ChainPolicy(confirmations=0)
    blocks = [BLOCK_DECODER.decode(r) for r in raw]
    transfers = sum(len(b.transfers) for b in blocks)

    def timed(work: Any) -> float:
        done = 0
        began = time.perf_counter()
        while True:
            work()
            done += transfers
            elapsed = time.perf_counter() - began
            if elapsed >= repeat_seconds:
                return done / elapsed

    def screen_only() -> None:
        for block in blocks:
            screen_block(block, watchlist, rule_list, policy, 0.0)

    def configured_screener() -> None:
        for block in blocks:
            screener.screen(block, watchlist, policy, 0.0)

    def decode_only() -> None:
        for r in raw:
            BLOCK_DECODER.decode(r)

    def quiet_check() -> None:  # what the agent does with a block nothing in it is watched
        for r in raw:
            screener.needs_screening(screener.digest(r), watchlist)

    return {"screen_block": timed(screen_only), "screener": timed(configured_screener),
            "decode": timed(decode_only), "digest": timed(quiet_check)}
