"""A local anvil node (Foundry's Ethereum devnet) from npm ``@foundry-rs/anvil``, on 127.0.0.1.

The platform binary is run directly: killing the ``npx``/``bin.mjs`` wrapper would leave the real
server listening. Install it with ``npm ci --ignore-scripts`` in the repository root.

Run one in the foreground with ``python -m monitor.devservices.anvil [--port N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from monitor.devservices import process
from monitor.devservices.ports import LOOPBACK, free_port, port_is_free
from monitor.errors import ServiceError

ANVIL_ENV = "CHAINWATCH_ANVIL_BIN"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def repository_root() -> Path:
    """Return the directory that holds the ``monitor`` package (the repository in a checkout)."""
    return Path(__file__).resolve().parents[2]


def npm_binary_relpath() -> Path:
    """Return ``node_modules/@foundry-rs/anvil-<os>-<arch>/bin/anvil`` for this platform."""
    system = sys.platform  # linux, darwin, win32: the names npm packages use
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    name = "anvil.exe" if system == "win32" else "anvil"
    return Path("node_modules", "@foundry-rs", f"anvil-{system}-{arch}", "bin", name)


def _upward(start: Path) -> Iterator[Path]:
    """Yield ``start`` and each of its parents."""
    start = start.resolve()
    yield start
    yield from start.parents


def find_anvil() -> Path:
    """Locate the anvil binary: $CHAINWATCH_ANVIL_BIN, then node_modules, then PATH.

    ``node_modules`` is searched upward from the current directory and from the repository root.
    """
    configured = os.environ.get(ANVIL_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServiceError(f"${ANVIL_ENV} points to {path}, which is not an executable file")
        return path
    rel = npm_binary_relpath()
    for start in (Path.cwd(), repository_root()):
        for folder in _upward(start):
            candidate = folder / rel
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise ServiceError(
        f"anvil not found: run `npm ci --ignore-scripts` in {repository_root()} (installs {rel}),"
        f" put anvil on PATH, or set ${ANVIL_ENV} to the binary")


def _format_seconds(value: float) -> str:
    """Format a duration for anvil's command line (``1`` rather than ``1.0``)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def rpc_call(port: int, method: str, params: Sequence[object] = (), timeout: float = 2.0) -> object:
    """Send one JSON-RPC request to 127.0.0.1:``port`` and return its ``result``."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("POST", "/", body, {"Content-Type": "application/json"})
        reply = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    if "error" in reply:
        raise ServiceError(f"anvil answered {method} with an error: {reply['error']}", port=port)
    return reply.get("result")


class LocalAnvil:
    """One anvil node listening on 127.0.0.1 (HTTP and WebSocket on the same port)."""

    def __init__(self, port: int | None = None, block_time: float | None = None,
                 chain_id: int = 31337, accounts: int = 10, extra_args: Sequence[str] = (),
                 log_path: Path | None = None) -> None:
        self.port: int = port if port is not None else free_port()
        self.block_time = block_time
        self.chain_id = chain_id
        self.accounts = accounts
        self.extra_args = tuple(extra_args)
        self._own_log = log_path is None
        self.log_path: Path = log_path or self._temp_log()
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        """Return the JSON-RPC HTTP endpoint, ``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Return the JSON-RPC WebSocket endpoint, ``ws://127.0.0.1:<port>``."""
        return f"ws://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        """Tell whether the anvil process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def argv(self, binary: Path) -> list[str]:
        """Return the command line that starts this node."""
        args = [str(binary), "--host", LOOPBACK, "--port", str(self.port),
                "--chain-id", str(self.chain_id), "--accounts", str(self.accounts)]
        if self.block_time is not None:
            args += ["--block-time", _format_seconds(self.block_time)]
        return [*args, *self.extra_args]

    def start(self, timeout: float = 30.0) -> None:
        """Start anvil and return once it answers ``eth_chainId``; else raise ServiceError."""
        if self.running:
            return
        began = time.monotonic()
        binary = find_anvil()
        if not port_is_free(self.port):
            raise ServiceError(f"cannot start anvil: 127.0.0.1:{self.port} is already in use",
                               port=self.port)
        self._proc = process.spawn(self.argv(binary), log_path=self.log_path)
        self._wait_ready(began + timeout)
        self.startup_seconds = time.monotonic() - began

    def stop(self, timeout: float = 10.0) -> None:
        """Stop anvil (SIGTERM, then SIGKILL after ``timeout`` seconds); safe to repeat."""
        if self._proc is not None:
            process.terminate(self._proc, timeout)
            self._proc = None
        self._drop_own_log()

    def kill(self) -> None:
        """Kill anvil at once with SIGKILL (its chain state is lost)."""
        if self._proc is not None:
            process.kill(self._proc)
            self._proc = None

    def wait(self) -> int:
        """Block until anvil exits; return its exit code."""
        if self._proc is None:
            raise ServiceError("anvil is not running", port=self.port)
        return self._proc.wait()

    def __enter__(self) -> LocalAnvil:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @staticmethod
    def _temp_log() -> Path:
        """Create a temporary log file for a node started without ``log_path``."""
        fd, name = tempfile.mkstemp(prefix="chainwatch-anvil-", suffix=".log")
        os.close(fd)
        return Path(name)

    def _drop_own_log(self) -> None:
        """Remove the temporary log file once the node is stopped."""
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def _wait_ready(self, deadline: float) -> None:
        """Poll ``eth_chainId`` until it answers; raise ServiceError if anvil dies or hangs."""
        assert self._proc is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise ServiceError(f"anvil exited with code {code} during start-up:\n"
                                   f"{process.log_tail(self.log_path)}", port=self.port)
            with contextlib.suppress(OSError, ValueError):
                if rpc_call(self.port, "eth_chainId") == hex(self.chain_id):
                    return
            if time.monotonic() > deadline:
                tail = process.log_tail(self.log_path)
                self.kill()
                raise ServiceError(f"anvil did not answer eth_chainId in time:\n{tail}",
                                   url=self.http_url)
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """Run an anvil node in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m monitor.devservices.anvil",
                                     description=main.__doc__)
    parser.add_argument("--port", type=int, default=8545)
    parser.add_argument("--block-time", type=float, default=None, help="seconds; default automine")
    parser.add_argument("--chain-id", type=int, default=31337)
    parser.add_argument("--log", type=Path, default=Path(".chainwatch/anvil.log"))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    node = LocalAnvil(port=args.port, block_time=args.block_time, chain_id=args.chain_id,
                      log_path=args.log)
    return process.run_in_foreground(
        node.start,
        lambda: (f"anvil ready at {node.http_url} / {node.ws_url} (log: {node.log_path});"
                 " Ctrl-C stops it"),
        node.wait, node.stop)


if __name__ == "__main__":
    sys.exit(main())
