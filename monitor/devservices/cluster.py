"""A local multi-node Apache Kafka cluster (KRaft, combined broker+controller nodes) on loopback.

Every node runs from the same official jars as :class:`~monitor.devservices.kafka.LocalKafka`,
with its own ports, state directory and log directory; the nodes form one controller quorum
(``controller.quorum.voters`` lists all of them), so a majority must be up for the cluster to
work. Internal topics (consumer offsets, transaction state) are replicated to every node with a
minimum ISR of a majority, as a production cluster would have them.

Run one in the foreground with ``python -m monitor.devservices.cluster --state-dir DIR``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import TracebackType

from monitor.devservices import process
from monitor.devservices.kafka import KAFKA_VERSION, LocalKafka, new_cluster_id
from monitor.devservices.ports import LOOPBACK, free_ports
from monitor.errors import ServiceError


def cluster_properties(size: int) -> dict[str, str]:
    """Broker settings shared by every node of a ``size``-node cluster."""
    majority = size // 2 + 1
    return {
        "default.replication.factor": str(size),
        "offsets.topic.replication.factor": str(size),
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": str(size),
        "transaction.state.log.min.isr": str(majority),
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": str(size),
        "share.coordinator.state.topic.min.isr": str(majority),
        "unclean.leader.election.enable": "false",
    }


class LocalKafkaCluster:
    """``size`` local Kafka nodes forming one KRaft cluster; start, stop and kill single nodes."""

    def __init__(self, state_dir: Path, size: int = 3, heap: str = "384m",
                 version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> None:
        if size < 1:
            raise ServiceError("a Kafka cluster needs at least one node", size=size)
        self.state_dir = Path(state_dir).resolve()
        self.size = size
        self.cluster_id = new_cluster_id()
        self.startup_seconds: float | None = None
        ports = free_ports(2 * size)
        client, controller = ports[:size], ports[size:]
        voters = ",".join(f"{i + 1}@{LOOPBACK}:{controller[i]}" for i in range(size))
        self.nodes: list[LocalKafka] = [
            LocalKafka(self.state_dir / f"node-{i + 1}", port=client[i],
                       controller_port=controller[i], version=version, heap=heap,
                       cache_dir=cache_dir, extra_properties=cluster_properties(size),
                       node_id=i + 1, quorum_voters=voters, cluster_id=self.cluster_id)
            for i in range(size)
        ]

    @property
    def bootstrap(self) -> str:
        """Comma-separated addresses of every node (clients find the others from any one)."""
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> LocalKafka:
        """Return the node with ``node_id`` (1-based, as in ``node.id``)."""
        if not 1 <= node_id <= self.size:
            raise ServiceError(f"no node {node_id} in a {self.size}-node cluster",
                               node_id=node_id)
        return self.nodes[node_id - 1]

    @property
    def running(self) -> list[int]:
        """Ids of the nodes whose process is alive."""
        return [n.node_id for n in self.nodes if n.running]

    def start(self, timeout: float = 180.0) -> None:
        """Launch every node together and return once each one sees all of them live."""
        began = time.monotonic()
        self.nodes[0].ensure_jars()  # resolve once, before the nodes race for the lock
        try:
            for node in self.nodes:
                node.launch()
            for node in self.nodes:
                node.wait_ready(timeout - (time.monotonic() - began), brokers=self.size)
        except ServiceError:
            self.stop(timeout=10.0)
            raise
        self.startup_seconds = time.monotonic() - began

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Start one stopped or killed node again on its ports and data; wait until it rejoined."""
        node = self.node(node_id)
        node.launch()
        node.wait_ready(timeout, brokers=len(self.running))

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """Stop one node cleanly (controlled shutdown: its partitions move first)."""
        self.node(node_id).stop(timeout)

    def kill_node(self, node_id: int) -> None:
        """Kill one node with SIGKILL, as a crash would."""
        self.node(node_id).kill()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node: SIGTERM to all at once (a lone last node cannot reach a quorum)."""
        for node in self.nodes:
            node.request_stop()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.stop(max(0.1, deadline - time.monotonic()))

    def log_tail(self, lines: int = 20) -> str:
        """Return the end of every node's logs."""
        return "\n".join(f"=== node {n.node_id}\n{n.log_tail(lines)}" for n in self.nodes)

    def __enter__(self) -> LocalKafkaCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run a local cluster in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m monitor.devservices.cluster",
                                     description=main.__doc__)
    parser.add_argument("--state-dir", type=Path, required=True, help="data, config and logs")
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument("--heap", default="384m", help="JVM heap per node")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cluster = LocalKafkaCluster(args.state_dir, size=args.nodes, heap=args.heap)

    def wait() -> int:
        while cluster.running:
            time.sleep(1.0)
        return 1  # a node ended on its own

    return process.run_in_foreground(
        cluster.start,
        lambda: (f"Kafka cluster of {cluster.size} ready at {cluster.bootstrap} in "
                 f"{cluster.startup_seconds:.1f}s; Ctrl-C stops it"),
        wait, cluster.stop)


if __name__ == "__main__":
    sys.exit(main())
