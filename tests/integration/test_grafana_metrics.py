"""Every metric the Grafana dashboard and the Prometheus rules query exists on a running system.

A real worker and a real connector run against anvil and the session broker; a little
traffic makes every labelled series appear: a watched transfer (alerts, lifecycle events,
deliveries), a webhook sink whose receiver is down (failures, dead letters), a first RPC URL
that refuses connections (RPC errors), and a one-block reorg (reorgs, reverted blocks).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.demo.devnet import DevnetDriver
from monitor.devservices import free_ports
from tests.integration.harness import WEBHOOK_SECRET_ENV, Pipeline
from tests.support.grafana import queried_metrics

pytestmark = pytest.mark.integration
ETHER = 10**18


def _series(url: str) -> set[str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return set()
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_every_queried_metric_is_exported(tmp_path: Path, kafka_bootstrap: str, anvil,
                                         unique_prefix: str) -> None:
    wanted = queried_metrics()
    assert len(wanted) >= 15, wanted
    dead_port, = free_ports(1)  # nothing listens here: refused connections
    driver = DevnetDriver(anvil.http_url)
    seized, receiver = driver.new_wallet("seized"), driver.new_wallet("receiver")
    driver.fund(seized, 10 * ETHER)
    pipeline = Pipeline(
        tmp_path, kafka_bootstrap, unique_prefix, anvil.http_url,
        chain={"rpc_urls": [f"http://127.0.0.1:{dead_port}/", anvil.http_url],
               "confirmations": 0},
        extra={"sinks": [{"name": "console", "type": "console"},
                         {"name": "down", "type": "webhook", "max_attempts": 1,
                          "url": f"http://127.0.0.1:{dead_port}/hook",
                          "secret_env": WEBHOOK_SECRET_ENV}],
               "taint": {"enabled": False}})
    try:
        pipeline.start("worker")
        pipeline.start("connector")
        pipeline.wait_ready()
        pipeline.watch([{"chain": "devnet", "address": seized, "case_id": "CASE-M"}])
        driver.send_native(seized, receiver, ETHER)
        driver.mine(2)

        worker_url = f"{pipeline.api}/metrics"
        connector_url = f"http://127.0.0.1:{pipeline.metrics_port}/metrics"
        reorged = False
        deadline = time.monotonic() + 120
        exported: set[str] = set()
        while time.monotonic() < deadline:
            exported = _series(worker_url) | _series(connector_url)
            if wanted <= exported:
                break
            if not reorged and "chainwatch_alerts_raised_total" in exported:
                driver.rpc("anvil_reorg", [1, []])  # after screening: the alert stays
                driver.mine(2)
                reorged = True
            time.sleep(1.0)
        missing = sorted(wanted - exported)
        assert not missing, f"not on /metrics of the worker or connector: {missing}\n" \
                            f"{pipeline.logs()[-4000:]}"
    finally:
        pipeline.stop()
