"""Start a real ``chainwatch worker`` process for the benchmark, read its metrics and its RSS."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from monitor.devservices import free_port, process


def proc_status(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` of a process in MB, from ``/proc/<pid>/status``."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024.0
    return out


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a process and of its main thread, from ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")

    def read(path: str) -> float:
        try:
            fields = Path(path).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15)

    return read(f"/proc/{pid}/stat"), read(f"/proc/{pid}/task/{pid}/stat")


def metric_value(text: str, name: str, labels: str = "") -> float:
    """Sum of the samples of ``name`` whose label text contains ``labels``."""
    total = 0.0
    for match in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M):
        if labels in (match.group(1) or ""):
            total += float(match.group(2))
    return total


class WorkerProcess:
    """One ``python -m monitor.cli worker`` with its own configuration file and log."""

    def __init__(self, workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None,
                 name: str = "worker") -> None:
        self.workdir = workdir.resolve()  # the process runs there: its paths must not be relative
        workdir = self.workdir
        self.name = name
        self.port = free_port()
        config = dict(config, api={"host": "127.0.0.1", "port": self.port})
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"{name}.log"
        self.env = dict(os.environ, CHAINWATCH_LOG_LEVEL="warning", **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, command: tuple[str, ...] = ("worker",)) -> None:
        """Spawn the process."""
        self.proc = process.spawn([sys.executable, "-m", "monitor.cli", "--config",
                                   str(self.config_path), *command], log_path=self.log_path,
                                  env=self.env, cwd=self.workdir)

    @property
    def pid(self) -> int:
        """Process id."""
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise RuntimeError with the log tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: "
                               f"{process.log_tail(self.log_path, 15)}")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET a path of the worker's API."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Wait for ``/health`` to answer 200 (replica caught up); return the seconds waited."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            self.check_alive()
            try:
                status, body = self.get("/health", 2.0)
                if status == 200 and json.loads(body).get("watchlist_ready"):
                    return time.monotonic() - began
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s: "
                           f"{process.log_tail(self.log_path, 15)}")

    def metrics(self) -> str:
        """Prometheus text of the worker."""
        return self.get("/metrics")[1].decode()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        if self.proc is not None:
            process.terminate(self.proc, 20)
            self.proc = None
