"""Screening benchmark: transfers/s through Kafka and one worker process per watchlist size.

The block messages the connector published during the ingest benchmark are copied (renumbered)
into a screening topic until it holds enough transfers; the compacted watchlist topic is filled
with a raw producer. For each size a fresh worker (a new consumer group) reads the whole block
topic; the rate is taken from its ``chainwatch_transfers_screened_total`` between the first
and the last sample that moved. The baseline is ``screen_block`` alone, in this process, on the
already-decoded blocks with a watchlist of the same size, plus decode + screen.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from monitor.bench.worker import WorkerProcess, metric_value, proc_status
from monitor.records import BLOCK_DECODER, Block, WatchEntry, encode
from monitor.topics import TopicSpec, ensure_topics

CHAIN = "bench"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


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


async def produce_raw(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> float:
    """Write (key, value) pairs in big batches; return the seconds it took."""
    began = time.perf_counter()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                max_batch_size=1024 * 1024, max_request_size=MAX_MESSAGE_BYTES)
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


async def read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every value of partition 0 of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                max_partition_fetch_bytes=MAX_MESSAGE_BYTES)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            values.extend(r.value for r in batch.get(tp, []) if r.value is not None)
        return values
    finally:
        await consumer.stop()


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
    error: str | None = None


@dataclass
class ScreeningBench:
    """Prepared topics and the runs made on them."""

    bootstrap: str
    prefix: str
    workdir: Path
    rpc_url: str
    blocks: list[Block] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    hits: list[str] = field(default_factory=list)
    written: int = 0  # watch entries written so far
    populate_seconds: dict[int, float] = field(default_factory=dict)

    @property
    def block_topic(self) -> str:
        """Topic of the replicated blocks."""
        return f"{self.prefix}blocks.{CHAIN}"

    @property
    def watchlist_topic(self) -> str:
        """The compacted watchlist topic of the screening runs."""
        return f"{self.prefix}watchlist"

    @property
    def transfers(self) -> int:
        """Transfers in the block topic."""
        return sum(len(b.transfers) for b in self.blocks)

    async def prepare(self, source_topic: str, count: int, hits: list[str]) -> None:
        """Copy the ingested blocks into the screening topic, ``count`` block events in all."""
        from monitor.settings import parse_config
        from monitor.topics import Topics

        config = parse_config(self.config("bench-prepare"), "bench")
        specs = Topics.from_config(config).specs()
        specs = [TopicSpec(s.name, s.partitions, dict(s.configs, **{
            "max.message.bytes": str(MAX_MESSAGE_BYTES)})) for s in specs]
        await ensure_topics(self.bootstrap, specs)
        source = [BLOCK_DECODER.decode(v) for v in await read_all(self.bootstrap, source_topic)]
        source = [b for b in source if b.kind == "block"]
        if not source:
            raise RuntimeError(f"no blocks in {source_topic}")
        self.blocks = replicate_blocks(source, count)
        self.raw = [encode(b) for b in self.blocks]
        self.hits = hits
        await produce_raw(self.bootstrap, self.block_topic,
                          [(str(b.number).encode(), v) for b, v in zip(self.blocks, self.raw,
                                                                      strict=True)])

    async def grow_watchlist(self, size: int) -> None:
        """Write entries until the watchlist topic holds ``size`` of them."""
        if size <= self.written:
            return
        entries = watch_entries(self.written, size, self.hits)
        items = [(e.key.encode(), encode(e)) for e in entries]
        self.populate_seconds[size] = await produce_raw(self.bootstrap, self.watchlist_topic,
                                                        items)
        self.written = size

    def config(self, app_id: str) -> dict[str, Any]:
        """Worker configuration for one run (its own consumer group), defaults otherwise.

        The blocks are renumbered copies, so the node cannot answer facts about them:
        ``address_facts`` is off; everything else (rules, taint, lifecycle) is the default.
        """
        return {"app_id": app_id, "kafka": {"bootstrap": self.bootstrap,
                                            "topic_prefix": self.prefix},
                "chains": [{"name": CHAIN, "chain_id": 31337, "rpc_urls": [self.rpc_url],
                            "confirmations": 0, "address_facts": False}],
                "sinks": []}

    def run_worker(self, size: int, run_id: str, poll: float = 0.1,
                   window: float = 60.0) -> ScreeningRun:
        """Start a worker, sample its rate and RSS until it screened every transfer.

        A slow run is cut ``window`` seconds after its first screened block: the rate is
        then the one of that window (``complete`` is False).
        """
        result = ScreeningRun(watched=size)
        worker = WorkerProcess(self.workdir, self.config(f"bench-screen-{run_id}-{size}"),
                               name=f"screen-{size}")
        total = self.transfers
        worker.start()
        try:
            began = time.monotonic()
            marks: list[tuple[float, float]] = []
            ready_at: float | None = None
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
                if ready_at is None and metric_value(text, "chainwatch_watchlist_entries") \
                        >= size:
                    ready_at = now
                    result.rss_ready_mb = proc_status(worker.pid).get("VmRSS", 0.0)
                if not marks or value != marks[-1][1]:
                    marks.append((now, value))
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
            result.ready_seconds = (ready_at or began) - began
            moving = [(t, v) for t, v in marks if v > 0]
            idle = [(t, v) for t, v in marks if v == 0]
            # Start at the last sample before screening began: a small run can finish
            # between two samples, and one moving sample alone gives no duration.
            t0, v0 = idle[-1] if idle else moving[0]
            t1, v1 = moving[-1]
            result.transfers = int(v1 - v0)
            result.seconds = t1 - t0
            if result.seconds > 0:
                result.transfers_per_second = result.transfers / result.seconds
        except RuntimeError as exc:
            result.error = str(exc)
        finally:
            worker.stop()
        return result


def in_process_rate(raw: list[bytes], entries: list[WatchEntry], config: dict[str, Any],
                    repeat_seconds: float = 2.0) -> dict[str, float]:
    """Rates of ``screen_block``, the configured ``Screener`` and decoding, in this process.

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

    return {"screen_block": timed(screen_only), "screener": timed(configured_screener),
            "decode": timed(decode_only)}
