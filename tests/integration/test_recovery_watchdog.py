"""A worker whose table recovery cannot read exits with code 75 (``monitor.watchdog``).

Real Apache Kafka (a private broker, so that it can be frozen) and the real ``chainwatch
worker`` process. The ``screening`` changelog is filled beforehand with 200,000 records the
agents never look up, so that the worker's start-up recovery takes seconds; as soon as the
worker logs that it is restoring, the broker is frozen with SIGSTOP. The recovery then reads
nothing, and with ``worker.recovery_stall_seconds: 10`` the worker must log why and exit with
:data:`monitor.watchdog.EXIT_RECOVERY_STALLED` instead of idling on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from monitor.watchdog import EXIT_RECOVERY_STALLED
from tests.integration.harness import Pipeline

pytestmark = pytest.mark.integration
RECORDS = 200_000


async def _fill_changelog(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                            topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        pending = [await producer.send(topic, key=b"watchdog-test:%d" % i, value=b"x",
                                       partition=0) for i in range(RECORDS)]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def test_a_stalled_recovery_ends_the_worker_with_code_75(
        tmp_path: Path, kafka_factory: Any, anvil: Any, unique_prefix: str) -> None:
    broker = kafka_factory()
    app_id = unique_prefix.rstrip(".")
    asyncio.run(_fill_changelog(broker.bootstrap, f"{app_id}-screening-changelog"))
    pipeline = Pipeline(tmp_path, broker.bootstrap, unique_prefix, anvil.http_url,
                        extra={"worker": {"recovery_stall_seconds": 10}})
    frozen = False
    try:
        worker = pipeline.start("worker")
        log = tmp_path / "worker-0.log"
        deadline = time.monotonic() + 120
        while "Restoring state from changelog topics" not in log.read_text(errors="replace"):
            assert worker.poll() is None, pipeline.logs()
            assert time.monotonic() < deadline, f"no recovery began\n{pipeline.logs()}"
            time.sleep(0.05)
        os.kill(broker.pid, signal.SIGSTOP)
        frozen = True
        code = worker.wait(timeout=90)
        text = log.read_text(errors="replace")
        assert code == EXIT_RECOVERY_STALLED, f"exit code {code}\n{pipeline.logs()}"
        assert "table recovery has not moved" in text, pipeline.logs()
        assert f"{app_id}-screening-changelog[0]" in text
    finally:
        if frozen:
            os.kill(broker.pid, signal.SIGCONT)
        pipeline.stop()
