"""Run chainwatch's real processes (connector, worker) against the test's broker and anvil."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor.devservices import free_ports

API_TOKEN = "test-write-token-0123456789"
WEBHOOK_SECRET_ENV = "CHAINWATCH_TEST_WEBHOOK_SECRET"


@dataclass
class Pipeline:
    """A configuration file plus the connector and worker processes started from it."""

    workdir: Path
    bootstrap: str
    prefix: str
    rpc_url: str
    webhook_url: str | None = None
    webhook_secret: str = "whsec-test-secret"
    chain: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # more top-level config keys
    api_port: int = 0
    metrics_port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api_port, self.metrics_port = free_ports(2)
        chain = {"name": "devnet", "chain_id": 31337, "rpc_urls": [self.rpc_url],
                 "confirmations": 0, "start_block": 0, "traces": "parity", "batch_size": 10,
                 "poll_interval_seconds": 0.2, "metrics_port": self.metrics_port}
        chain.update(self.chain)
        sinks: list[dict[str, Any]] = [{"name": "console", "type": "console"}]
        if self.webhook_url:
            sinks.append({"name": "hook", "type": "webhook", "url": self.webhook_url,
                          "secret_env": WEBHOOK_SECRET_ENV, "max_attempts": 8})
        config = {"app_id": self.prefix.rstrip("."), "chains": [chain],
                  "kafka": {"bootstrap": self.bootstrap, "topic_prefix": self.prefix},
                  "sinks": sinks, "api": {"host": "127.0.0.1", "port": self.api_port},
                  **self.extra}
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config))

    @property
    def config_path(self) -> Path:
        """The YAML file the processes run with."""
        return self.workdir / "chainwatch.yaml"

    @property
    def api(self) -> str:
        """Base URL of the worker's API."""
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        """Environment of the child processes."""
        return dict(os.environ, CHAINWATCH_API_TOKEN=API_TOKEN,
                    **{WEBHOOK_SECRET_ENV: self.webhook_secret}, CHAINWATCH_LOG_LEVEL="info")

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``worker`` or ``connector`` (logs go to the work directory)."""
        command = ["worker"] if name == "worker" else ["connector", "--chain", "devnet"]
        count = self.restarts.get(name, 0)
        log = (self.workdir / f"{name}-{count}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--config",
                                 str(self.config_path), *command], env=self.env(),
                                stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = proc
        self.restarts[name] = count + 1
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL a process, as a crash would."""
        proc = self.processes[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate every process (SIGTERM, then SIGKILL)."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        """Everything the processes printed, for failure messages."""
        return "\n".join(f"===== {p.name}\n{p.read_text(errors='replace')[-6000:]}"
                         for p in sorted(self.workdir.glob("*.log")))

    def request(self, method: str, path: str, body: Any = None,
                token: str | None = API_TOKEN) -> tuple[int, Any]:
        """Call the API; returns status and parsed JSON."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the worker's API reports the watchlist replica ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}\n{self.logs()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not ready after {timeout} s\n{self.logs()}")

    def watch(self, entries: list[dict[str, str]], timeout: float = 30.0) -> None:
        """Add watch entries through the API and wait until the worker's replica has them."""
        status, body = self.request("POST", "/watchlist", {"entries": entries})
        assert status == 201, body
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, listed = self.request("GET", "/watchlist")
            if listed["count"] >= len(entries):
                return
            time.sleep(0.2)
        raise AssertionError("watch entries did not reach the worker")

    def metrics(self, port: int | None = None) -> str:
        """The Prometheus text of the worker (default) or of the connector."""
        url = f"http://127.0.0.1:{port}/metrics" if port else f"{self.api}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[bytes]:
    """Every committed value currently in a single-partition topic, from the beginning."""
    import asyncio

    from monitor.topics import read_partition

    return asyncio.run(asyncio.wait_for(read_partition(bootstrap, topic), timeout))
