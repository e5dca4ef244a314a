"""A local Apache Kafka broker (single KRaft node) run from the official jars, without Docker.

The jars are resolved once with Maven into ``$CHAINWATCH_CACHE_DIR`` (default
``~/.cache/chainwatch``) under ``kafka/<version>/libs``; the broker keeps its data, config and
logs in a state directory of its own, so a restart with the same directory keeps the topics.

Run one in the foreground with ``python -m monitor.devservices.kafka --state-dir DIR``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType

from monitor.devservices import process
from monitor.devservices.ports import LOOPBACK, free_ports, port_is_free
from monitor.errors import ServiceError

KAFKA_VERSION = "4.1.1"
_POM = "kafka-pom.xml"
_LOG4J = "log4j2.properties"
_MARKER = "resolved.ok"
_RESOLVE_TIMEOUT = 900.0


def default_cache_dir() -> Path:
    """Return ``$CHAINWATCH_CACHE_DIR`` or ``~/.cache/chainwatch``."""
    env = os.environ.get("CHAINWATCH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "chainwatch"


@contextlib.contextmanager
def _packaged_file(name: str) -> Iterator[Path]:
    """Yield a real filesystem path for a data file shipped in this package."""
    with resources.as_file(resources.files(__package__ or "monitor.devservices") / name) as p:
        yield p


def _which(tool: str, hint: str) -> str:
    """Return the path of ``tool`` on PATH or raise ServiceError with an install ``hint``."""
    found = shutil.which(tool)
    if found is None:
        raise ServiceError(f"'{tool}' was not found on PATH; {hint}", tool=tool)
    return found


def _java() -> str:
    """Return the java executable, preferring ``$JAVA_HOME/bin/java``."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return _which("java", "install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre)")


def _marker_text(version: str, pom: Path) -> str:
    """Return the text of the marker of a complete resolution of ``version`` with ``pom``."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    return f"kafka {version}\npom sha256 {digest}\n"


def _run_maven(pom: Path, version: str, libs: Path) -> None:
    """Copy the broker's runtime jars into ``libs`` with Maven; raise ServiceError on failure."""
    mvn = _which("mvn", "install Apache Maven (e.g. apt-get install maven)")
    argv = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}", f"-Dkafka.version={version}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True,  # noqa: S603
                              timeout=_RESOLVE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ServiceError("Maven did not resolve the Kafka jars in time",
                           version=version, seconds=_RESOLVE_TIMEOUT) from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise ServiceError(f"Maven could not resolve the Kafka jars:\n{tail}",
                           version=version, pom=pom)
    if not (libs / f"kafka_2.13-{version}.jar").is_file():
        raise ServiceError("Maven finished but the broker jar is missing",
                           version=version, libs=libs)


def resolve_jars(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Return the directory of the Kafka ``version`` jars, resolving them once under a file lock."""
    home = (cache_dir or default_cache_dir()) / "kafka" / version
    libs, marker = home / "libs", home / _MARKER
    with _packaged_file(_POM) as pom:
        expected = _marker_text(version, pom)
        if marker.is_file() and marker.read_text() == expected:
            return libs
        home.mkdir(parents=True, exist_ok=True)
        with (home / "resolve.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be resolving right now
            if marker.is_file() and marker.read_text() == expected:
                return libs
            marker.unlink(missing_ok=True)
            shutil.rmtree(libs, ignore_errors=True)
            _run_maven(pom, version, libs)
            marker.write_text(expected)
    return libs


def new_cluster_id() -> str:
    """Return a random Kafka cluster id (22-character URL-safe base64, as StorageTool makes)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def server_properties(*, port: int, controller_port: int, data_dir: Path,
                      extra: Mapping[str, str] | None = None, node_id: int = 1,
                      quorum_voters: str | None = None) -> dict[str, str]:
    """Return the settings of a combined broker+controller node on 127.0.0.1.

    Alone by default (a one-voter quorum); a cluster passes its ``node_id`` and the
    ``quorum_voters`` of every node (``id@host:controller_port,...``).
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": quorum_voters or f"{node_id}@{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        # After a SIGKILL the controller waits out the old registration; keep that short.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "500",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
    }
    props.update(extra or {})
    return props


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes or raise ConnectionError."""
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


def live_broker_count(host: str, port: int, timeout: float = 2.0) -> int:
    """Ask the broker for metadata (Metadata v4, no topics); return the number of live brokers.

    A KRaft broker lists itself only once it is registered and unfenced, so a count of at least
    one means clients can produce, consume and create topics.
    """
    client_id = b"chainwatch-probe"
    header = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    request = header + struct.pack(">ib", 0, 0)  # empty topic list, no auto-creation
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        payload = _recv_exact(sock, size)
    _correlation, _throttle, brokers = struct.unpack_from(">iii", payload)
    return int(brokers)


class LocalKafka:
    """One local Kafka broker in KRaft mode (broker and controller in one JVM) on 127.0.0.1."""

    def __init__(self, state_dir: Path, port: int | None = None,
                 controller_port: int | None = None, version: str = KAFKA_VERSION,
                 heap: str = "512m", cache_dir: Path | None = None,
                 extra_properties: Mapping[str, str] | None = None, node_id: int = 1,
                 quorum_voters: str | None = None, cluster_id: str | None = None) -> None:
        self.node_id = node_id
        self.quorum_voters = quorum_voters
        self.cluster_id = cluster_id
        self.state_dir = Path(state_dir).resolve()
        if port is None or controller_port is None:
            picked = iter(free_ports(2))
            port = port if port is not None else next(picked)
            controller_port = controller_port if controller_port is not None else next(picked)
        self.port: int = port
        self.controller_port: int = controller_port
        self.version = version
        self.heap = heap
        self.cache_dir = cache_dir
        self.extra_properties = dict(extra_properties or {})
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """Return the bootstrap address, ``127.0.0.1:<port>``."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def logs_dir(self) -> Path:
        """Return the directory of the broker's logs (``kafka.out`` and ``server.log``)."""
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        """Return the broker's log directory (topic data and the KRaft metadata log)."""
        return self.state_dir / "data"

    @property
    def config_path(self) -> Path:
        """Return the path of the generated ``server.properties``."""
        return self.state_dir / "config" / "server.properties"

    @property
    def running(self) -> bool:
        """Tell whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Return the broker's process id while it runs."""
        return self._proc.pid if self.running and self._proc else None

    def ensure_jars(self) -> Path:
        """Resolve the broker jars into the cache if needed; return the ``libs`` directory."""
        return resolve_jars(self.version, self.cache_dir)

    def start(self, timeout: float = 90.0) -> None:
        """Start the broker and return once it answers metadata requests; else ServiceError."""
        if self.running:
            return
        began = time.monotonic()
        self.launch()
        self.wait_ready(timeout - (time.monotonic() - began))
        self.startup_seconds = time.monotonic() - began

    def launch(self) -> None:
        """Format the storage if new and start the JVM without waiting for it to be ready.

        The nodes of a cluster are launched together: none is ready before a quorum is.
        """
        if self.running:
            return
        libs = self.ensure_jars()
        self._check_ports_free()
        self._write_config()
        self._format_storage(libs)
        argv = [*self._jvm_argv(libs), "kafka.Kafka", str(self.config_path)]
        self._proc = process.spawn(argv, log_path=self.logs_dir / "kafka.out", cwd=self.state_dir)

    def wait_ready(self, timeout: float = 90.0, brokers: int = 1) -> None:
        """Wait until the launched node lists ``brokers`` live brokers; else ServiceError."""
        self._wait_ready(time.monotonic() + max(0.0, timeout), brokers)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout`` seconds); safe to repeat."""
        if self._proc is not None:
            process.terminate(self._proc, timeout)
            self._proc = None

    def request_stop(self) -> None:
        """Send SIGTERM without waiting; a following :meth:`stop` waits for the exit."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the broker at once with SIGKILL, as a crash would."""
        if self._proc is not None:
            process.kill(self._proc)
            self._proc = None

    def restart(self, timeout: float = 90.0, stop_timeout: float = 30.0) -> None:
        """Stop and start again on the same ports with the same data."""
        self.stop(stop_timeout)
        self.start(timeout)

    def wait(self) -> int:
        """Block until the broker process exits; return its exit code."""
        if self._proc is None:
            raise ServiceError("the Kafka broker is not running", state_dir=self.state_dir)
        return self._proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of the broker's stdout and of its ``server.log``."""
        return "\n".join([
            f"--- {self.logs_dir / 'kafka.out'} ---",
            process.log_tail(self.logs_dir / "kafka.out", lines),
            f"--- {self.logs_dir / 'server.log'} ---",
            process.log_tail(self.logs_dir / "server.log", lines),
        ])

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _check_ports_free(self) -> None:
        """Refuse to start when something already listens on our ports (it could answer for us)."""
        for name, port in (("port", self.port), ("controller_port", self.controller_port)):
            if not port_is_free(port):
                raise ServiceError(f"cannot start Kafka: 127.0.0.1:{port} is already in use",
                                   **{name: port}, state_dir=self.state_dir)

    def _write_config(self) -> None:
        """Write ``server.properties`` and the Log4j configuration into ``state_dir/config``."""
        props = server_properties(port=self.port, controller_port=self.controller_port,
                                  data_dir=self.data_dir, extra=self.extra_properties,
                                  node_id=self.node_id, quorum_voters=self.quorum_voters)
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{key}={value}\n" for key, value in props.items())
        self.config_path.write_text("# written by chainwatch LocalKafka\n" + text)
        log4j = resources.files(__package__ or "monitor.devservices").joinpath(_LOG4J)
        self.config_path.with_name(_LOG4J).write_text(log4j.read_text(encoding="utf-8"))

    def _jvm_argv(self, libs: Path) -> list[str]:
        """Return the java command line up to (not including) the main class."""
        log4j = self.config_path.with_name(_LOG4J)
        return [
            _java(), f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.logs_dir}", f"-Dlog4j2.configurationFile={log4j}",
            "-cp", f"{libs}{os.sep}*",
        ]

    def _format_storage(self, libs: Path) -> None:
        """Format the data directory once (KRaft needs a cluster id before the first start)."""
        if (self.data_dir / "meta.properties").is_file():
            return
        argv = [*self._jvm_argv(libs), "kafka.tools.StorageTool", "format",
                "-t", self.cluster_id or new_cluster_id(), "-c", str(self.config_path)]
        done = subprocess.run(argv, capture_output=True, text=True,  # noqa: S603
                              timeout=120, check=False)
        if done.returncode != 0:
            raise ServiceError(f"Kafka storage format failed:\n{done.stdout}{done.stderr}",
                               state_dir=self.state_dir)

    def _wait_ready(self, deadline: float, brokers: int = 1) -> None:
        """Poll the broker until it lists ``brokers`` live ones; raise ServiceError if it dies."""
        if self._proc is None:
            raise ServiceError("the Kafka broker was not launched", state_dir=self.state_dir)
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise ServiceError(f"the Kafka broker exited with code {code} during start-up:\n"
                                   f"{self.log_tail()}", state_dir=self.state_dir)
            with contextlib.suppress(OSError, struct.error):
                if live_broker_count(LOOPBACK, self.port) >= brokers:
                    return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.kill()
                raise ServiceError(f"the Kafka broker did not become ready in time:\n{tail}",
                                   bootstrap=self.bootstrap, state_dir=self.state_dir)
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """Run a local broker in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m monitor.devservices.kafka",
                                     description=main.__doc__)
    parser.add_argument("--state-dir", type=Path, required=True, help="data, config and logs")
    parser.add_argument("--port", type=int, default=None, help="client port (default: free)")
    parser.add_argument("--controller-port", type=int, default=None)
    parser.add_argument("--heap", default="512m", help="JVM heap, e.g. 512m or 1g")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    broker = LocalKafka(args.state_dir, port=args.port, controller_port=args.controller_port,
                        heap=args.heap)
    return process.run_in_foreground(
        broker.start,
        lambda: (f"Kafka {broker.version} ready at {broker.bootstrap} in "
                 f"{broker.startup_seconds:.1f}s (logs: {broker.logs_dir}); Ctrl-C stops it"),
        broker.wait, broker.stop)


if __name__ == "__main__":
    sys.exit(main())
