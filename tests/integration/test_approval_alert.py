"""End to end on anvil: a seized wallet's ERC-20 ``approve`` to a new spender is an alert.

Real Apache Kafka broker, real anvil node, the real connector and worker processes; the
webhook receiver gets one ``approval-to-new-spender`` alert per new spender, none for a
repeated approval of a known spender.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector

from monitor.demo.devnet import DevnetDriver
from monitor.records import UNLIMITED_ALLOWANCE, alert_id, log_approval_id
from tests.integration.harness import Pipeline
from tests.support.receivers import ThreadedWebhookReceiver

pytestmark = pytest.mark.integration
ETHER = 10**18
RULE = "approval-to-new-spender"
APPROVE = function_signature_to_4byte_selector("approve(address,uint256)")


def approve(driver: DevnetDriver, token: str, owner: str, spender: str,
            amount: int) -> tuple[str, str, int]:
    """Call ``approve(spender, amount)`` from ``owner``; return tx hash, block hash, log index."""
    data = "0x" + (APPROVE + abi_encode(["address", "uint256"], [spender, amount])).hex()
    receipt = driver.transact(owner, token, data=data)
    (log,) = receipt["logs"]
    return ("0x" + bytes(receipt["transactionHash"]).hex(),
            "0x" + bytes(receipt["blockHash"]).hex(), log["logIndex"])


def test_approval_to_new_spender_reaches_the_webhook(tmp_path: Path, kafka_bootstrap: str,
                                                     anvil, unique_prefix: str) -> None:
    driver = DevnetDriver(anvil.http_url)
    deployer = driver.new_wallet("deployer")
    seized = driver.new_wallet("seized")
    spender, drainer = driver.new_wallet("spender"), driver.new_wallet("drainer")
    driver.fund(deployer, 100 * ETHER)
    driver.fund(seized, 10 * ETHER)  # gas only: anvil_setBalance, not a transfer
    token = driver.deploy_token(deployer, symbol="tUSD", decimals=6)

    with ThreadedWebhookReceiver("whsec-test-secret") as receiver:
        pipeline = Pipeline(tmp_path, kafka_bootstrap, unique_prefix, anvil.http_url,
                            webhook_url=receiver.url,
                            extra={"taint": {"enabled": False},
                                   "rules": [{"name": "watched-address"}, {"name": RULE}]})
        try:
            pipeline.start("worker")
            pipeline.start("connector")
            pipeline.wait_ready()
            pipeline.watch([{"chain": "devnet", "address": seized, "case_id": "CASE-3",
                             "label": "seized"}])
            first = approve(driver, token, seized, spender, UNLIMITED_ALLOWANCE)
            approve(driver, token, seized, spender, 5)  # known spender: no alert
            approve(driver, token, deployer, drainer, 7)  # unwatched owner: no alert
            second = approve(driver, token, seized, drainer, 10**6)
            try:
                receiver.wait_for(2, timeout=90)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{pipeline.logs()}") from None
            time.sleep(1.5)  # anything extra (a repeat) would arrive now
            alerts = sorted((r.alert for r in receiver.alerts), key=lambda a: a.block_number)
            assert receiver.rejected_signatures == 0
            assert [(a.rule, a.to_address) for a in alerts] == [(RULE, spender), (RULE, drainer)]
            for alert, (tx, block_hash, log_index) in zip(alerts, (first, second), strict=True):
                approval_id = log_approval_id("devnet", tx, log_index)
                assert alert.id == alert_id(RULE, approval_id, "CASE-3")
                assert (alert.transfer_id, alert.transfer_kind) == (approval_id, "approval")
                assert (alert.tx_hash, alert.block_hash, alert.log_index) == (tx, block_hash,
                                                                              log_index)
                assert (alert.from_address, alert.severity) == (seized, "high")
                assert (alert.asset.address, alert.asset.symbol, alert.asset.decimals) == (
                    token, "tUSD", 6)
            assert alerts[0].amount == str(UNLIMITED_ALLOWANCE)
            assert alerts[0].evidence["unlimited"] is True
            assert (alerts[1].amount, alerts[1].evidence["unlimited"]) == (str(10**6), False)
        finally:
            pipeline.stop()
