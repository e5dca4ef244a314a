"""pytest fixtures for a local 3-node Apache Kafka cluster (KRaft) on loopback.

Register with ``pytest_plugins = ["tests.plugins.services", "tests.plugins.cluster"]`` in the
top-level conftest (or import the fixtures into a test module). The cluster is private to the
test (tests kill its nodes) and stopped afterwards; one that cannot start makes the test error,
it is never skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.devservices.cluster import LocalKafkaCluster

ClusterFactory = Callable[..., LocalKafkaCluster]


@pytest.fixture()
def kafka_cluster_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterFactory]:
    """Return a function that starts private clusters (3 nodes by default), stopped afterwards."""
    started: list[LocalKafkaCluster] = []

    def make(state_dir: Path | None = None, **kwargs: Any) -> LocalKafkaCluster:
        cluster = LocalKafkaCluster(state_dir or tmp_path_factory.mktemp("kafka-cluster"),
                                    **kwargs)
        started.append(cluster)
        cluster.start(timeout=240.0)  # three JVMs on a loaded 2-core machine start slowly
        return cluster

    try:
        yield make
    finally:
        for cluster in started:
            cluster.stop()


@pytest.fixture()
def kafka_cluster(kafka_cluster_factory: ClusterFactory) -> LocalKafkaCluster:
    """Return a fresh 3-node KRaft cluster for this test."""
    return kafka_cluster_factory()
