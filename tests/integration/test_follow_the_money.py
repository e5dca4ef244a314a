"""Issue 3's scenario on anvil through real Kafka and the worker: follow the money.

A watched wallet sends funds along a peel chain of five hops (each hop forwards most of the
value to a fresh address and peels a little off), the last hop fans out to five addresses, one
branch deposits into a stand-in mixer contract and another reaches an address labelled as an
exchange deposit. The test asserts the exact set of alerts (rule, tx hash, hop number, path)
and that taint stops at the services.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from monitor.demo.devnet import DevnetDriver, SentTransfer
from tests.integration.harness import Pipeline
from tests.support.receivers import ThreadedWebhookReceiver

pytestmark = pytest.mark.integration
ETHER = 10**18
RULES = ["watched-address", "peel-chain", "fan-out", "mixer-deposit", "exchange-deposit"]


def test_peel_chain_fan_out_mixer_and_exchange_deposit(tmp_path: Path, kafka_bootstrap: str,
                                                       anvil, unique_prefix: str) -> None:
    driver = DevnetDriver(anvil.http_url)
    deployer, seized = driver.new_wallet("deployer"), driver.new_wallet("seized")
    hops = [driver.new_wallet(f"hop-{i}") for i in range(1, 6)]
    peels = [driver.new_wallet(f"peel-{i}") for i in range(1, 5)]
    fans = [driver.new_wallet(f"fan-{i}") for i in range(1, 6)]
    deposit = driver.new_wallet("exchange-deposit")
    driver.fund(deployer, 10 * ETHER)
    driver.fund(seized, 20 * ETHER)
    mixer = driver.deploy_mixer(deployer, denomination=ETHER)
    lists = []
    for name, category, address in (("mixers", "mixer", mixer),
                                    ("deposits", "exchange-deposit", deposit)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps([{"address": address, "name": f"test {category}"}]))
        lists.append({"name": name, "path": str(path), "format": "label-json",
                      "category": category, "source": "test", "published": "2026-01-01"})

    with ThreadedWebhookReceiver("whsec-test-secret") as receiver:
        pipeline = Pipeline(tmp_path / "run", kafka_bootstrap, unique_prefix, anvil.http_url,
                            webhook_url=receiver.url,
                            extra={"rules": [{"name": r} for r in RULES], "lists": lists})
        try:
            pipeline.start("worker")
            pipeline.start("connector")
            pipeline.wait_ready()
            pipeline.watch([{"chain": "devnet", "address": seized, "case_id": "CASE-9",
                             "label": "seized"}])
            sent: list[SentTransfer] = []
            amount = 10 * ETHER
            sender = seized
            chain_hops = []
            for i, hop in enumerate(hops):
                forward = driver.send_native(sender, hop, amount)
                sent.append(forward)
                chain_hops.append(forward)
                if sender != seized:
                    sent.append(driver.send_native(sender, peels[i - 1], ETHER // 4))
                sender, amount = hop, amount * 19 // 20  # forward 95 % at the next hop
            last = hops[-1]
            fan_sent = [driver.send_native(last, fan, 3 * ETHER // 2) for fan in fans]
            sent += fan_sent
            to_mixer = driver.mixer_deposit(mixer, fans[0])
            to_exchange = driver.send_native(fans[1], deposit, ETHER)
            sent += [to_mixer, to_exchange]

            expected = {("watched-address", t.tx_hash) for t in sent}
            peel_txs = {(t.tx_hash, n) for n, t in enumerate(chain_hops, start=1) if n >= 4}
            expected |= {("peel-chain", tx) for tx, _ in peel_txs}
            expected |= {("fan-out", fan_sent[-1].tx_hash), ("mixer-deposit", to_mixer.tx_hash),
                         ("exchange-deposit", to_exchange.tx_hash)}
            try:
                receiver.wait_for(len(expected), timeout=120)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{pipeline.logs()}") from None
            time.sleep(1.5)  # an unexpected extra alert would arrive now
            got = [(r.alert.rule, r.alert.tx_hash) for r in receiver.alerts]
            assert sorted(got) == sorted(expected), pipeline.logs()[-3000:]
            by_rule = {(r.alert.rule, r.alert.tx_hash): r.alert for r in receiver.alerts}

            freeze = by_rule[("exchange-deposit", to_exchange.tx_hash)]
            assert freeze.severity == "critical" and freeze.watch.case_id == "CASE-9"
            path = freeze.evidence["path"]
            assert [p[0] for p in path] == [t.tx_hash for t in chain_hops] + [
                fan_sent[1].tx_hash, to_exchange.tx_hash]
            assert freeze.evidence["hops"] == 7 and freeze.evidence["origin"] == seized
            assert [p[3] for p in path][-1] == str(ETHER)
            for tx, n in peel_txs:
                assert by_rule[("peel-chain", tx)].evidence["peel_hops"] == n - 1
            assert by_rule[("mixer-deposit", to_mixer.tx_hash)].evidence["hops"] == 7

            _, listed = pipeline.request("GET", "/watchlist?case_id=CASE-9")
            tainted = {e["address"]: e["taint"] for e in listed["entries"]
                       if e["category"] == "tainted"}
            assert set(tainted) == set(hops) | set(peels) | set(fans)
            assert mixer not in tainted and deposit not in tainted  # taint stops at services
            assert [tainted[h]["hop"] for h in hops] == [1, 2, 3, 4, 5]
            assert tainted[fans[4]]["hop"] == 6
            assert [p[0] for p in tainted[hops[2]]["path"]] == [t.tx_hash
                                                                for t in chain_hops[:3]]
        finally:
            pipeline.stop()
