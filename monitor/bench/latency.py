"""Latency benchmark: block mined to signed webhook received, on anvil with 1-second blocks.

A connector (WebSocket heads, 0 confirmations) and a worker run as real processes; a steady
load sends, every block, a few transactions to watched addresses (one alert each) among
unwatched ones. An observer polls ``eth_blockNumber`` every 10 ms and notes when each block
became visible on the node; a loopback receiver verifies each webhook's signature and notes
when it arrived. Latency = arrival - visibility of the alert's block.

Baselines measured in the same run: the observer's own fetch of each block with its receipts
and traces (the node's part of the path), and a Kafka produce -> consume round trip with
``acks=all`` (one broker hop; the pipeline has three).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from monitor.bench.data import GWEI, JsonRpc
from monitor.bench.worker import WorkerProcess
from monitor.records import WatchEntry
from monitor.sinks.signing import HEADER_SIGNATURE, HEADER_TIMESTAMP, verify
from monitor.watchlist import WatchlistWriter

SECRET_ENV = "CHAINWATCH_BENCH_WEBHOOK_SECRET"  # noqa: S105 - a variable name
SECRET = "bench-webhook-secret"  # noqa: S105 - loopback benchmark only


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    return {"count": len(values), "p50_ms": percentile(values, 50) * 1000,
            "p95_ms": percentile(values, 95) * 1000, "p99_ms": percentile(values, 99) * 1000,
            "max_ms": max(values) * 1000 if values else float("nan")}


class Receiver:
    """A signing-checking webhook endpoint on 127.0.0.1 in a thread of its own."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.arrivals: list[tuple[float, int, str]] = []  # (wall time, block, alert id)
        self.rejected = 0
        self.lock = threading.Lock()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bench-receiver", daemon=True)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        if not verify(self.secret, request.headers.get(HEADER_TIMESTAMP, ""),
                      request.headers.get(HEADER_SIGNATURE, ""), body):
            with self.lock:
                self.rejected += 1
            return web.Response(status=401)
        payload = orjson.loads(body)
        with self.lock:
            self.arrivals.append((now, int(payload["block_number"]), str(payload["id"])))
        return web.Response(status=200)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        server: Any = site._server
        assert server is not None and server.sockets
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()

    @property
    def url(self) -> str:
        """The endpoint URL."""
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        """Start serving."""
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class Observer(threading.Thread):
    """Polls the head every 10 ms; notes when each block became visible and fetches it."""

    def __init__(self, rpc_url: str, fetch: bool = True) -> None:
        super().__init__(name="bench-observer", daemon=True)
        self.rpc = JsonRpc(rpc_url, timeout=10)
        self.fetch_rpc = JsonRpc(rpc_url, timeout=10)
        self.fetch = fetch
        self.seen: dict[int, float] = {}
        self.fetch_seconds: list[float] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Poll until stopped."""
        head = -1
        while not self.stop_event.is_set():
            try:
                number = int(self.rpc.call("eth_blockNumber"), 16)
            except Exception:  # noqa: S112 - a missed poll is retried 10 ms later
                continue
            now = time.time()
            if head < 0:
                head = number
            elif number > head:
                for n in range(head + 1, number + 1):
                    self.seen[n] = now
                head = number
                if self.fetch:
                    began = time.perf_counter()
                    self.fetch_rpc.batch([("eth_getBlockByNumber", [hex(number), True]),
                                          ("eth_getBlockReceipts", [hex(number)]),
                                          ("trace_block", [hex(number)])])
                    self.fetch_seconds.append(time.perf_counter() - began)
            self.stop_event.wait(0.01)


class Load(threading.Thread):
    """Sends, each second, ``alerts`` transactions to watched addresses and ``noise`` others."""

    def __init__(self, rpc_url: str, senders: list[str], watched: list[str], alerts: int,
                 noise: int) -> None:
        super().__init__(name="bench-load", daemon=True)
        self.rpc = JsonRpc(rpc_url, timeout=10)
        self.senders = senders
        self.watched = watched
        self.alerts = alerts
        self.noise = noise
        self.nonces = {s: 0 for s in senders}
        self.sent_watched = 0
        self.stop_event = threading.Event()
        self.error: str | None = None

    def _tx(self, sender: str, to: str) -> tuple[str, list[Any]]:
        nonce = self.nonces[sender]
        self.nonces[sender] = nonce + 1
        return ("eth_sendTransaction", [{
            "from": sender, "to": to, "value": hex(10**15), "gas": hex(21_000),
            "nonce": hex(nonce), "type": "0x2", "maxFeePerGas": hex(200 * GWEI),
            "maxPriorityFeePerGas": hex(GWEI)}])

    def run(self) -> None:
        """Send in four slices per second until stopped."""
        senders = itertools.cycle(self.senders)
        targets = itertools.cycle(self.watched)
        noise_to = itertools.cycle(f"0x{i:040x}" for i in range(1, 10_000))
        slices = 4
        tick = 0
        began = time.monotonic()
        while not self.stop_event.is_set():
            calls = [self._tx(next(senders), next(targets))
                     for _ in range(self.alerts // slices + (tick % slices < self.alerts % slices))]
            watched = len(calls)
            calls += [self._tx(next(senders), next(noise_to)) for _ in range(self.noise // slices)]
            try:
                self.rpc.batch(calls)
            except Exception as exc:
                self.error = str(exc)
                return
            self.sent_watched += watched
            tick += 1
            self.stop_event.wait(max(0.0, began + tick / slices - time.monotonic()))


async def kafka_round_trip(bootstrap: str, topic: str, count: int) -> list[float]:
    """Produce ``count`` small messages one at a time (acks=all) and time each to consumption."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=500)
    await producer.start()
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        await producer.send_and_wait(topic, b"warm-up", partition=0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        out: list[float] = []
        for i in range(count):
            began = time.perf_counter()
            await producer.send(topic, str(i).encode(), partition=0)
            while True:
                got = await consumer.getone()
                if got.value == str(i).encode():
                    break
            out.append(time.perf_counter() - began)
            await asyncio.sleep(0.01)
        return out
    finally:
        await consumer.stop()
        await producer.stop()


@dataclass
class LatencyResult:
    """Alert latencies and their baselines."""

    alerts: int = 0
    latency: dict[str, float] = field(default_factory=dict)
    node_fetch: dict[str, float] = field(default_factory=dict)
    kafka_round_trip: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    rejected_signatures: int = 0
    seconds: float = 0.0
    error: str | None = None


def run_latency(rpc_url: str, ws_url: str, bootstrap: str, prefix: str, workdir: Path,
                senders: list[str], target: int, alerts_per_block: int, noise_per_block: int,
                timeout: float) -> LatencyResult:
    """Run the pipeline on a 1-second-block anvil until ``target`` alerts arrived."""
    result = LatencyResult()
    watched = ["0x" + f"{0xB0000000 + i:040x}" for i in range(50)]
    receiver = Receiver(SECRET)
    receiver.start()
    chain = {"name": "lat", "chain_id": 31337, "rpc_urls": [rpc_url], "ws_url": ws_url,
             "confirmations": 0, "start_block": "latest", "traces": "parity",
             "batch_size": 10, "poll_interval_seconds": 1.0, "address_facts": True}
    config = {"app_id": prefix.rstrip("."), "chains": [chain],
              "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix},
              "sinks": [{"name": "hook", "type": "webhook", "url": receiver.url,
                         "secret_env": SECRET_ENV, "max_attempts": 3}]}
    env = {SECRET_ENV: SECRET}
    worker = WorkerProcess(workdir, config, env, name="latency-worker")
    connector = WorkerProcess(workdir, config, env, name="latency-connector")
    observer = Observer(rpc_url)
    load = Load(rpc_url, senders, watched, alerts_per_block, noise_per_block)
    try:
        asyncio.run(_watch(bootstrap, f"{prefix}watchlist", watched))
        worker.start()
        worker.wait_ready(120)
        connector.start(("connector", "--chain", "lat"))
        observer.start()
        time.sleep(1.5)  # let the connector subscribe to heads
        connector.check_alive()
        start_block = max(observer.seen, default=0) + 2
        began = time.monotonic()
        load.start()
        kafka_rtt = asyncio.run(kafka_round_trip(bootstrap, f"{prefix}rtt", 100))
        while time.monotonic() - began < timeout:
            worker.check_alive()
            connector.check_alive()
            with receiver.lock:
                counted = sum(1 for _, b, _ in receiver.arrivals if b >= start_block)
            if counted >= target or load.error:
                break
            time.sleep(0.2)
        load.stop_event.set()
        load.join(10)
        time.sleep(1.0)
        result.seconds = time.monotonic() - began
        with receiver.lock:
            arrivals = [(t, b) for t, b, _ in receiver.arrivals if b >= start_block]
            result.rejected_signatures = receiver.rejected
        latencies = [t - observer.seen[b] for t, b in arrivals if b in observer.seen]
        result.alerts = len(latencies)
        result.sent = load.sent_watched
        result.latency = summary(latencies)
        result.node_fetch = summary(observer.fetch_seconds)
        result.kafka_round_trip = summary(kafka_rtt)
        if load.error:
            result.error = f"load failed: {load.error}"
        elif result.alerts < target:
            result.error = f"only {result.alerts} of {target} alerts arrived in {timeout:.0f} s"
    except RuntimeError as exc:
        result.error = str(exc)
    finally:
        load.stop_event.set()
        observer.stop_event.set()
        connector.stop()
        worker.stop()
        receiver.stop()
    return result


async def _watch(bootstrap: str, topic: str, addresses: list[str]) -> None:
    from monitor.topics import TopicSpec, ensure_topics

    await ensure_topics(bootstrap, [TopicSpec(topic, 1, {"cleanup.policy": "compact"}),
                                    TopicSpec(topic.replace("watchlist", "rtt"), 1, {})])
    writer = WatchlistWriter(bootstrap, topic)
    await writer.start()
    try:
        await writer.put_many([WatchEntry(chain="lat", address=a, case_id="BENCH-LATENCY",
                                          label="latency target", category="seized",
                                          source="bench") for a in addresses])
    finally:
        await writer.stop()
