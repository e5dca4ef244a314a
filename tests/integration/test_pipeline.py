"""End to end: a transfer mined on anvil reaches a webhook receiver as a signed alert.

Real Apache Kafka broker, real anvil node, the real ``chainwatch connector`` and
``chainwatch worker`` processes, and a real HTTP receiver on loopback that verifies the HMAC
signature of every request.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.demo.devnet import DevnetDriver
from monitor.records import BLOCK_DECODER
from monitor.topics import block_topic
from tests.integration.harness import API_TOKEN, Pipeline, read_topic
from tests.support.receivers import ThreadedWebhookReceiver

pytestmark = pytest.mark.integration
ETHER = 10**18


def test_native_erc20_and_internal_transfers_arrive_as_signed_alerts(
        tmp_path: Path, kafka_bootstrap: str, anvil, unique_prefix: str) -> None:
    driver = DevnetDriver(anvil.http_url)
    deployer = driver.new_wallet("deployer")
    seized = driver.new_wallet("seized")
    mule = driver.new_wallet("mule")
    others = [driver.new_wallet(f"other-{i}") for i in range(3)]
    driver.fund(deployer, 100 * ETHER)
    driver.fund(seized, 10 * ETHER)
    token = driver.deploy_token(deployer, symbol="tUSD", decimals=6)
    splitter = driver.deploy_splitter(deployer)

    with ThreadedWebhookReceiver("whsec-test-secret") as receiver:
        # follow-the-money is off here: this test is about the facts of each transfer kind
        pipeline = Pipeline(tmp_path, kafka_bootstrap, unique_prefix, anvil.http_url,
                            webhook_url=receiver.url, extra={"taint": {"enabled": False}})
        try:
            pipeline.start("worker")
            pipeline.start("connector")
            pipeline.wait_ready()
            pipeline.watch([
                {"chain": "devnet", "address": seized, "case_id": "CASE-7", "label": "seized"},
                {"chain": "devnet", "address": mule, "case_id": "CASE-7",
                 "label": "mule", "category": "suspect"},
            ])
            funding = driver.send_token(token, deployer, seized, 5_000 * 10**6)
            native = driver.send_native(seized, others[0], 3 * ETHER // 2)
            erc20 = driver.send_token(token, seized, others[1], 2_500 * 10**6)
            payouts = driver.split(splitter, seized, [others[2], mule], 2 * ETHER)
            to_splitter = driver.tx_value_transfer(payouts[0].tx_hash)
            internal = next(p for p in payouts if p.to_address == mule)
            expected = [funding, native, erc20, to_splitter, internal]
            try:
                receiver.wait_for(len(expected), timeout=90)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{pipeline.logs()}") from None
            time.sleep(1.0)  # anything extra (a duplicate) would arrive now
            by_transfer = {r.alert.transfer_id: r for r in receiver.alerts}
            assert receiver.rejected_signatures == 0
            assert len(receiver.alerts) == len(expected), receiver.ids()
            for fact in expected:
                got = by_transfer[fact.record_id("devnet")]
                alert = got.alert
                assert got.headers["Idempotency-Key"] == f"{alert.id}:0:{alert.status}"
                assert got.headers["X-Chainwatch-Alert-Id"] == alert.id
                assert (alert.tx_hash, alert.block_hash, alert.block_number) == (
                    fact.tx_hash, fact.block_hash, fact.block_number)
                assert (alert.from_address, alert.to_address) == (fact.from_address,
                                                                  fact.to_address)
                assert alert.amount == str(fact.amount)
                assert alert.transfer_kind == fact.kind
                assert alert.watch.case_id == "CASE-7"
            erc20_alert = by_transfer[erc20.record_id("devnet")].alert
            assert erc20_alert.asset.address == token
            assert (erc20_alert.asset.decimals, erc20_alert.asset.symbol) == (6, "tUSD")
            assert erc20_alert.log_index == erc20.log_index
            internal_alert = by_transfer[internal.record_id("devnet")].alert
            assert internal_alert.trace_address == internal.trace_address
            assert internal_alert.direction == "in"
            assert internal_alert.watch.label == "mule"
            assert by_transfer[native.record_id("devnet")].alert.asset.symbol == "ETH"
            assert by_transfer[funding.record_id("devnet")].alert.direction == "in"

            worker_metrics = pipeline.metrics()
            assert 'chainwatch_alerts_raised_total{rule="watched-address",severity="high"} 5.0' \
                in worker_metrics
            assert 'chainwatch_sink_deliveries_total{sink="hook"} 5.0' in worker_metrics
            connector_metrics = pipeline.metrics(pipeline.metrics_port)
            assert 'chainwatch_blocks_ingested_total{chain="devnet"}' in connector_metrics
            logs = pipeline.logs()
            assert API_TOKEN not in logs and "whsec-test-secret" not in logs
        finally:
            pipeline.stop()


def test_writes_need_the_read_write_token(tmp_path: Path, kafka_bootstrap: str, anvil,
                                          unique_prefix: str) -> None:
    pipeline = Pipeline(tmp_path, kafka_bootstrap, unique_prefix, anvil.http_url)
    try:
        pipeline.start("worker")
        pipeline.wait_ready()
        entry = {"chain": "devnet", "address": "0x" + "12" * 20, "case_id": "C"}
        assert pipeline.request("POST", "/watchlist", entry, token=None)[0] == 401
        assert pipeline.request("POST", "/watchlist", entry, token="wrong")[0] == 401
        assert pipeline.request("DELETE", f"/watchlist/devnet/{entry['address']}/C",
                                token=None)[0] == 401
        status, body = pipeline.request("POST", "/watchlist", {**entry, "address": "0x12"})
        assert status == 400 and "address" in body["error"]
        status, body = pipeline.request("POST", "/watchlist", {**entry, "chain": "nochain"})
        assert status == 400 and "unknown chain" in body["error"]
        assert pipeline.request("POST", "/watchlist", entry)[0] == 201
        assert pipeline.request("DELETE", f"/watchlist/devnet/{entry['address']}/C")[0] == 200
    finally:
        pipeline.stop()


def test_connector_killed_mid_stream_publishes_every_block_once(
        tmp_path: Path, kafka_bootstrap: str, anvil, unique_prefix: str) -> None:
    driver = DevnetDriver(anvil.http_url)
    seized = driver.new_wallet("seized")
    driver.fund(seized, 100 * ETHER)
    sent = []
    for i in range(30):
        sent.append(driver.send_native(seized, driver.new_wallet(f"r{i}"), ETHER // 10 + i))
        driver.mine(9)  # spread the transfers over ~300 blocks
    head = driver.head()

    with ThreadedWebhookReceiver("whsec-test-secret") as receiver:
        pipeline = Pipeline(tmp_path, kafka_bootstrap, unique_prefix, anvil.http_url,
                            webhook_url=receiver.url, chain={"batch_size": 3})
        topic = block_topic(unique_prefix, "devnet")
        try:
            pipeline.start("worker")
            pipeline.wait_ready()
            pipeline.watch([{"chain": "devnet", "address": seized, "case_id": "C-1"}])
            pipeline.start("connector")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                published = len(read_topic(kafka_bootstrap, topic))
                if published >= 60:
                    break
                time.sleep(0.2)
            assert 0 < published < head, "the connector must be killed mid-stream"
            pipeline.kill("connector")
            pipeline.start("connector")
            try:
                receiver.wait_for(len(sent), timeout=120)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{pipeline.logs()}") from None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                blocks = [BLOCK_DECODER.decode(v) for v in read_topic(kafka_bootstrap, topic)]
                if blocks and blocks[-1].number >= head:
                    break
                time.sleep(0.3)
            numbers = [b.number for b in blocks]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            assert numbers[0] == 0 and numbers[-1] >= head
            assert all(b.kind == "block" for b in blocks)
            time.sleep(1.0)
            ids = receiver.ids()
            per_transfer: dict[str, set[str]] = {}
            for r in receiver.alerts:
                per_transfer.setdefault(r.alert.transfer_id, set()).add(r.alert.id)
            assert set(per_transfer) == {s.record_id("devnet") for s in sent}
            assert all(len(v) == 1 for v in per_transfer.values())
            assert len(ids) == len(set(ids)), "an alert was delivered twice"
        finally:
            pipeline.stop()
