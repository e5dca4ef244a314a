"""``chainwatch up``: one process tree with the broker, a connector per chain and a worker.

The launcher starts the embedded Kafka broker when no bootstrap is configured, creates the
topics, loads the configured watchlist files, then runs each connector and the worker as child
processes and restarts any that dies (bounded backoff) until it is told to stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

from monitor.errors import ServiceError
from monitor.settings import ChainwatchConfig, EnvSettings
from monitor.topics import Topics, ensure_topics

if TYPE_CHECKING:
    from monitor.devservices.kafka import LocalKafka

log = logging.getLogger(__name__)


@dataclass
class Child:
    """A supervised child process."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    log_file: IO[bytes] | None = field(default=None, repr=False)


class Launcher:
    """Starts and supervises the whole pipeline for one configuration file."""

    def __init__(self, config_path: str, config: ChainwatchConfig, env: EnvSettings,
                 log_dir: Path | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.config = config
        self.env = env
        self.log_dir = log_dir
        self.extra_env = dict(extra_env or {})
        self.broker: LocalKafka | None = None  # when embedded
        self.bootstrap = env.kafka_bootstrap or config.kafka.bootstrap or ""
        self.children: list[Child] = []
        self._stopping = False

    def start(self) -> None:
        """Start the broker if embedded, prepare topics and watchlists, spawn the children."""
        if not self.bootstrap:
            from monitor.devservices.kafka import LocalKafka

            broker = LocalKafka(self.env.state_dir / "kafka")
            broker.start()
            self.broker = broker
            self.bootstrap = broker.bootstrap
            log.info("embedded Kafka broker listening on %s", self.bootstrap)
        asyncio.run(ensure_topics(self.bootstrap, Topics.from_config(self.config).specs(),
                                  self.config.kafka.replication_factor))
        self._load_watchlists()
        base = [sys.executable, "-m", "monitor.cli", "--config", self.config_path]
        for chain in self.config.chains:
            self.children.append(Child(f"connector-{chain.name}",
                                       [*base, "connector", "--chain", chain.name]))
        self.children.append(Child("worker", [*base, "worker"]))
        for child in self.children:
            self._spawn(child)

    def _load_watchlists(self) -> None:
        if not self.config.watchlists:
            return
        from monitor.watchlist import WatchlistWriter
        from monitor.watchlist_io import load_watchlist_file

        entries = []
        for wl in self.config.watchlists:
            defaults = {k: v for k, v in {"chain": wl.chain, "case_id": wl.case_id}.items() if v}
            path = Path(wl.path)
            if not path.is_absolute():
                path = Path(self.config_path).parent / path
            result = load_watchlist_file(path, defaults)
            for err in result.errors:
                log.warning("watchlist %s", err)
            known = {c.name for c in self.config.chains}
            for entry in result.entries:
                if entry.chain in known:
                    entries.append(entry)
                else:
                    log.warning("watchlist %s: %s: unknown chain %r, entry skipped", path,
                                entry.address, entry.chain)

        async def write() -> None:
            writer = WatchlistWriter(self.bootstrap, Topics.from_config(self.config).watchlist)
            await writer.start()
            try:
                await writer.put_many(entries)
            finally:
                await writer.stop()

        asyncio.run(write())
        log.info("loaded %d watch entr(ies) from %d file(s)", len(entries),
                 len(self.config.watchlists))

    def _spawn(self, child: Child) -> None:
        env = dict(os.environ, **self.extra_env, CHAINWATCH_KAFKA_BOOTSTRAP=self.bootstrap)
        stdout: int | IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if child.log_file is None:
                child.log_file = (self.log_dir / f"{child.name}.log").open("ab")
            stdout = child.log_file
        child.process = subprocess.Popen(child.argv, env=env, stdout=stdout,  # noqa: S603
                                         stderr=subprocess.STDOUT if stdout else None)
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def supervise_once(self) -> None:
        """Restart children that exited, with exponential backoff capped at 30 s."""
        now = time.monotonic()
        for child in self.children:
            proc = child.process
            if proc is None or proc.poll() is None:
                continue
            if child.next_start == 0.0:
                delay = min(30.0, 0.5 * 2 ** min(child.restarts, 6))
                child.next_start = now + delay
                log.error("%s exited with code %s; restarting in %.1f s", child.name,
                          proc.returncode, delay)
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                self._spawn(child)

    def stop(self) -> None:
        """Stop the children (SIGTERM, then SIGKILL after 20 s) and the embedded broker."""
        self._stopping = True
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + 20
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            if child.log_file is not None:
                child.log_file.close()
        if self.broker is not None:
            self.broker.stop()

    def run_forever(self) -> None:
        """Start, supervise until SIGINT/SIGTERM, then stop everything."""

        def handle(signum: int, frame: FrameType | None) -> None:
            self._stopping = True

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        try:
            self.start()
            while not self._stopping:
                self.supervise_once()
                time.sleep(0.5)
        except ServiceError:
            raise
        finally:
            self.stop()
