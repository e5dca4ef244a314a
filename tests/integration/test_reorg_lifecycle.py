"""Alert lifecycle across a real reorg on anvil (``anvil_reorg``), through Kafka and the worker.

A provisional alert whose transfer is reorged out is retracted; a transfer that the reorg moved
into a different block is re-announced there and confirmed exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from web3.exceptions import TransactionNotFound

from monitor.demo.devnet import DevnetDriver
from tests.integration.harness import Pipeline
from tests.support.receivers import ThreadedWebhookReceiver

pytestmark = pytest.mark.integration
ETHER = 10**18


def _events(receiver: ThreadedWebhookReceiver, tx_hash: str) -> list[tuple[int, str, int]]:
    return sorted((r.alert.revision, r.alert.status, r.alert.block_number)
                  for r in receiver.alerts if r.alert.tx_hash == tx_hash)


def _wait(predicate, what: str, pipeline: Pipeline, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{pipeline.logs()[-4000:]}")
        time.sleep(0.2)


def test_reorged_out_alert_is_retracted_and_moved_one_confirmed_once(
        tmp_path: Path, kafka_bootstrap: str, anvil, unique_prefix: str) -> None:
    driver = DevnetDriver(anvil.http_url)
    seized, other, first, second = (driver.new_wallet(n)
                                    for n in ("seized", "seized-2", "first", "second"))
    driver.fund(seized, 10 * ETHER)
    driver.fund(other, 10 * ETHER)
    with ThreadedWebhookReceiver("whsec-test-secret") as receiver:
        pipeline = Pipeline(tmp_path, kafka_bootstrap, unique_prefix, anvil.http_url,
                            webhook_url=receiver.url,
                            chain={"confirmations": 0, "alert_confirmations": 3},
                            extra={"taint": {"enabled": False}})
        try:
            pipeline.start("worker")
            pipeline.start("connector")
            pipeline.wait_ready()
            pipeline.watch([{"chain": "devnet", "address": seized, "case_id": "CASE-R"},
                            {"chain": "devnet", "address": other, "case_id": "CASE-R"}])
            raw_a = driver.sign_native(seized, first, ETHER, 0)
            tx_a = driver.w3.eth.send_raw_transaction(raw_a).to_0x_hex()
            raw_b = driver.sign_native(other, second, 2 * ETHER, 0)
            tx_b = driver.w3.eth.send_raw_transaction(raw_b).to_0x_hex()
            block_a = driver.w3.eth.wait_for_transaction_receipt(tx_a)["blockNumber"]
            block_b = driver.w3.eth.wait_for_transaction_receipt(tx_b)["blockNumber"]
            assert block_b == block_a + 1
            _wait(lambda: _events(receiver, tx_a) and _events(receiver, tx_b),
                  "the provisional alerts", pipeline)
            assert _events(receiver, tx_a) == [(0, "provisional", block_a)]
            assert _events(receiver, tx_b) == [(0, "provisional", block_b)]

            # Replace both blocks: A is dropped, B is put back into the first new block
            # (a different block number and hash). A and B come from different wallets.
            driver.rpc("anvil_reorg", [2, [[raw_b, 0]]])
            receipt_b = driver.w3.eth.get_transaction_receipt(tx_b)
            assert receipt_b["blockNumber"] == block_a
            with pytest.raises(TransactionNotFound):
                driver.w3.eth.get_transaction_receipt(tx_a)
            driver.mine(4)  # deep enough for alert_confirmations=3

            _wait(lambda: any(s == "confirmed" for _, s, _ in _events(receiver, tx_b)),
                  "the moved alert to be confirmed", pipeline)
            _wait(lambda: any(s == "retracted" for _, s, _ in _events(receiver, tx_a)),
                  "the orphaned alert to be retracted", pipeline)
            time.sleep(1.5)  # a duplicate or a late confirmation would arrive now
            a_events = _events(receiver, tx_a)
            b_events = _events(receiver, tx_b)
            assert [s for _, s, _ in a_events] == ["provisional", "retracted"]
            statuses_b = [s for _, s, _ in b_events]
            assert statuses_b.count("confirmed") == 1
            assert statuses_b[-1] == "confirmed" and b_events[-1][2] == block_a
            moved = [r.alert for r in receiver.alerts
                     if r.alert.tx_hash == tx_b and r.alert.block_number == block_a]
            assert all(a.block_hash == receipt_b["blockHash"].to_0x_hex() for a in moved)
            assert any(a.moved_from for a in moved)
            assert len({r.alert.id for r in receiver.alerts if r.alert.tx_hash == tx_b}) == 1
            revisions = [rev for rev, _, _ in b_events]
            assert revisions == list(range(len(revisions)))  # each event once, in order
        finally:
            pipeline.stop()
