"""The devnet driver against a real anvil: receipts, logs and both trace formats agree with it."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from monitor.demo.devnet import (
    ERC20_TRANSFER_TOPIC,
    DevnetDriver,
    SentTransfer,
    TransactionReverted,
)
from monitor.demo.scenario import (
    DEMO_CASE_ID,
    ETHER,
    SEIZED_WALLET_LABEL,
    TUSD,
    run_demo_scenario,
)

pytestmark = pytest.mark.integration

Fact = tuple[str, tuple[int, ...], str, str, int]  # tx hash, trace address, from, to, value


@pytest.fixture
def driver(anvil: Any) -> DevnetDriver:
    return DevnetDriver(anvil.http_url)


@pytest.fixture
def deployer(driver: DevnetDriver, request: pytest.FixtureRequest) -> str:
    address = driver.new_wallet(f"deployer:{request.node.name}")
    driver.fund(address, 1_000 * ETHER)
    return address


def fresh(driver: DevnetDriver, request: pytest.FixtureRequest, label: str) -> str:
    return driver.new_wallet(f"{request.node.name}:{label}")


# -- reading the node's traces independently of the driver ---------------------------------


def parity_traces(driver: DevnetDriver, block: int) -> list[dict[str, Any]]:
    traces: list[dict[str, Any]] = driver.rpc("trace_block", [hex(block)])
    return [t for t in traces if t["type"] == "call"]


def parity_value_transfers(driver: DevnetDriver, block: int) -> set[Fact]:
    """Internal value transfers in ``trace_block`` that really moved value."""
    traces = parity_traces(driver, block)
    failed = {(t["transactionHash"], tuple(t["traceAddress"])) for t in traces if t.get("error")}
    out = set()
    for t in traces:
        path = tuple(t["traceAddress"])
        value = int(t["action"].get("value", "0x0"), 16)
        undone = any((t["transactionHash"], path[:i]) in failed for i in range(len(path) + 1))
        if path and value and not undone:
            action = t["action"]
            out.add((t["transactionHash"], path, action["from"], action["to"], value))
    return out


def geth_frames(driver: DevnetDriver, block: int) -> list[tuple[str, tuple[int, ...], dict]]:
    """Every callTracer frame with its position in the call tree, depth first."""
    result = driver.rpc("debug_traceBlockByNumber", [hex(block), {"tracer": "callTracer"}])
    frames: list[tuple[str, tuple[int, ...], dict]] = []

    def walk(tx_hash: str, path: tuple[int, ...], frame: dict) -> None:
        frames.append((tx_hash, path, frame))
        for i, child in enumerate(frame.get("calls", [])):
            walk(tx_hash, (*path, i), child)

    for entry in result:
        walk(entry["txHash"], (), entry["result"])
    return frames


def geth_value_transfers(driver: DevnetDriver, block: int) -> set[Fact]:
    """Internal value transfers in the callTracer output that really moved value."""
    frames = geth_frames(driver, block)
    failed = {(tx, path) for tx, path, f in frames if f.get("error")}
    out = set()
    for tx, path, f in frames:
        value = int(f.get("value", "0x0"), 16)
        undone = any((tx, path[:i]) in failed for i in range(len(path) + 1))
        if path and value and not undone:
            out.add((tx, path, f["from"], f["to"], value))
    return out


def as_facts(transfers: list[SentTransfer]) -> set[Fact]:
    return {
        (t.tx_hash, t.trace_address or (), t.from_address, t.to_address, t.amount)
        for t in transfers
        if t.kind == "internal"
    }


def assert_in_block(driver: DevnetDriver, t: SentTransfer) -> None:
    block = driver.w3.eth.get_block(t.block_number)
    assert block["hash"].to_0x_hex() == t.block_hash
    assert t.tx_hash in {h.to_0x_hex() for h in block["transactions"]}
    assert t.tx_hash == t.tx_hash.lower() and t.block_hash == t.block_hash.lower()


# -- tests ---------------------------------------------------------------------------------


def test_new_wallet_key_is_keccak_of_label(driver: DevnetDriver) -> None:
    address = driver.new_wallet(SEIZED_WALLET_LABEL)
    assert address == driver.new_wallet(SEIZED_WALLET_LABEL)
    assert address == Account.from_key(keccak(text=SEIZED_WALLET_LABEL)).address.lower()
    assert address != driver.new_wallet(SEIZED_WALLET_LABEL + "x")


def test_fund_sets_balance(driver: DevnetDriver, request: pytest.FixtureRequest) -> None:
    wallet = fresh(driver, request, "w")
    driver.fund(wallet, 7 * ETHER)
    assert driver.balance(wallet) == 7 * ETHER


def test_send_native(driver: DevnetDriver, deployer: str, request: pytest.FixtureRequest) -> None:
    to = fresh(driver, request, "to")
    head = driver.head()
    t = driver.send_native(deployer, to, 3 * ETHER // 2)
    assert (t.kind, t.from_address, t.to_address, t.amount) == ("native", deployer, to, 15 * 10**17)
    assert (t.token, t.decimals, t.symbol, t.log_index, t.trace_address) == (
        None,
        18,
        "ETH",
        None,
        None,
    )
    assert t.block_number == driver.head() == head + 1
    assert_in_block(driver, t)
    tx = driver.w3.eth.get_transaction(t.tx_hash)
    assert (tx["from"].lower(), tx["to"].lower(), tx["value"]) == (deployer, to, t.amount)
    assert driver.w3.eth.get_transaction_receipt(t.tx_hash)["status"] == 1
    assert driver.balance(to) == t.amount
    assert driver.tx_value_transfer(t.tx_hash) == t
    # a plain transfer is a single top-level call in both trace formats: nothing internal
    assert [tuple(x["traceAddress"]) for x in parity_traces(driver, t.block_number)] == [()]
    assert parity_value_transfers(driver, t.block_number) == set()
    assert geth_value_transfers(driver, t.block_number) == set()
    assert t.record_id("devnet") == f"devnet:{t.tx_hash}:tx"


def test_impersonated_sender(driver: DevnetDriver, request: pytest.FixtureRequest) -> None:
    seized = "0x00000000000000000000000000000000C0FFEE01"
    to = fresh(driver, request, "to")
    driver.fund(seized, 2 * ETHER)
    t = driver.send_native(seized, to, ETHER)
    assert t.from_address == seized.lower()
    assert driver.w3.eth.get_transaction(t.tx_hash)["from"].lower() == seized.lower()
    assert driver.balance(to) == ETHER


def test_deploy_and_send_token(
    driver: DevnetDriver, deployer: str, request: pytest.FixtureRequest
) -> None:
    token = driver.deploy_token(deployer)
    token_contract = driver.w3.eth.contract(
        address=Web3.to_checksum_address(token), abi=driver._artifacts["Token"]["abi"]
    )
    assert token_contract.functions.name().call() == "Tether-like USD"
    assert token_contract.functions.symbol().call() == "tUSD"
    assert token_contract.functions.decimals().call() == 6
    assert driver.token_balance(token, deployer) == 10**9 * TUSD
    to = fresh(driver, request, "to")
    t = driver.send_token(token, deployer, to, 2_500 * TUSD)
    assert (t.kind, t.token, t.symbol, t.decimals) == ("erc20", token, "tUSD", 6)
    assert (t.from_address, t.to_address, t.amount, t.trace_address) == (
        deployer,
        to,
        2_500 * TUSD,
        None,
    )
    assert_in_block(driver, t)
    assert driver.token_balance(token, to) == 2_500 * TUSD
    assert driver.tx_value_transfer(t.tx_hash) is None
    logs = driver.w3.eth.get_logs(
        {
            "fromBlock": t.block_number,
            "toBlock": t.block_number,
            "address": Web3.to_checksum_address(token),
        }
    )
    (log,) = logs
    assert log["logIndex"] == t.log_index
    assert log["transactionHash"].to_0x_hex() == t.tx_hash
    assert log["topics"][0].to_0x_hex() == ERC20_TRANSFER_TOPIC
    assert "0x" + log["topics"][1].hex()[-40:] == deployer
    assert "0x" + log["topics"][2].hex()[-40:] == to
    assert int.from_bytes(log["data"], "big") == t.amount
    receipts = driver.w3.eth.get_block_receipts(t.block_number)
    assert [r["logs"][0]["logIndex"] for r in receipts] == [t.log_index]
    assert t.record_id("devnet") == f"devnet:{t.tx_hash}:log:{t.log_index}"


def test_token_deploy_mints_to_deployer(driver: DevnetDriver, deployer: str) -> None:
    head = driver.head()
    token = driver.deploy_token(deployer, symbol="tEUR", decimals=2, supply=12_345)
    (log,) = driver.w3.eth.get_logs(
        {"fromBlock": head + 1, "toBlock": "latest", "address": Web3.to_checksum_address(token)}
    )
    assert log["topics"][1].hex()[-40:] == "0" * 40
    assert "0x" + log["topics"][2].hex()[-40:] == deployer
    assert int.from_bytes(log["data"], "big") == 12_345


def test_send_token_without_balance_raises(
    driver: DevnetDriver, deployer: str, request: pytest.FixtureRequest
) -> None:
    token = driver.deploy_token(deployer)
    poor = fresh(driver, request, "poor")
    driver.fund(poor, ETHER)
    with pytest.raises(TransactionReverted, match="Token: balance too low"):
        driver.send_token(token, poor, deployer, 1)


def test_split_internal_transfers_match_both_tracers(
    driver: DevnetDriver, deployer: str, request: pytest.FixtureRequest
) -> None:
    splitter = driver.deploy_splitter(deployer)
    recipients = [fresh(driver, request, f"r{i}") for i in range(3)]
    payouts = driver.split(splitter, deployer, recipients, 3 * ETHER)
    assert [p.trace_address for p in payouts] == [(0,), (1,), (2,)]
    assert all(p.kind == "internal" and p.from_address == splitter for p in payouts)
    assert [p.to_address for p in payouts] == recipients
    assert [driver.balance(r) for r in recipients] == [ETHER] * 3
    block = payouts[0].block_number
    assert_in_block(driver, payouts[0])
    assert parity_value_transfers(driver, block) == as_facts(payouts)
    assert geth_value_transfers(driver, block) == as_facts(payouts)
    (root,) = [t for t in parity_traces(driver, block) if not t["traceAddress"]]
    assert root["subtraces"] == 3
    funding = driver.tx_value_transfer(payouts[0].tx_hash)
    assert funding is not None
    assert (funding.from_address, funding.to_address, funding.amount) == (
        deployer,
        splitter,
        3 * ETHER,
    )
    assert payouts[1].record_id("devnet") == f"devnet:{payouts[1].tx_hash}:trace:1"


def test_split_with_failure_marks_reverted_call_and_moves_no_value(
    driver: DevnetDriver, deployer: str, request: pytest.FixtureRequest
) -> None:
    splitter = driver.deploy_splitter(deployer)
    recipients = [fresh(driver, request, f"r{i}") for i in range(3)]
    before = driver.balance(deployer)
    outcome = driver.split_with_failure(splitter, deployer, recipients, 3 * ETHER)
    receipt = driver.w3.eth.get_transaction_receipt(outcome.tx_hash)
    assert receipt["status"] == 1
    assert [t.trace_address for t in outcome.transfers] == [(0,), (1,), (3,)]
    assert outcome.transfers[-1].to_address == deployer
    assert outcome.reverted_trace_addresses == ((2,), (2, 0))
    assert [driver.balance(r) for r in recipients] == [ETHER, ETHER, 0]
    assert driver.balance(splitter) == 0
    gas_cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert driver.balance(deployer) == before - 2 * ETHER - gas_cost

    block = receipt["blockNumber"]
    parity = {tuple(t["traceAddress"]): t for t in parity_traces(driver, block)}
    assert sorted(parity) == [(), (0,), (1,), (2,), (2, 0), (3,)]
    assert parity[(2,)]["error"] == "Reverted"
    assert int(parity[(2,)]["action"]["value"], 16) == ETHER  # value shown, but rolled back
    assert "error" not in parity[(2, 0)]  # only its parent is marked
    assert parity[(2, 0)]["action"]["to"] == recipients[2]
    assert "error" not in parity[()]
    geth = {path: f for _, path, f in geth_frames(driver, block)}
    assert sorted(geth) == sorted(parity)
    assert geth[(2,)]["error"] == "execution reverted"
    assert geth[(2,)]["revertReason"] == "Splitter: simulated failure"
    assert "error" not in geth[(2, 0)]
    assert "error" not in geth[()]
    assert parity_value_transfers(driver, block) == as_facts(outcome.transfers)
    assert geth_value_transfers(driver, block) == as_facts(outcome.transfers)


def test_mixer_deposit_and_withdraw(
    driver: DevnetDriver, deployer: str, request: pytest.FixtureRequest
) -> None:
    mixer = driver.deploy_mixer(deployer, denomination=ETHER // 10)
    depositor = fresh(driver, request, "depositor")
    driver.fund(depositor, ETHER)
    deposit = driver.mixer_deposit(mixer, depositor, commitment=b"\x01" * 32)
    assert (deposit.kind, deposit.from_address, deposit.to_address, deposit.amount) == (
        "native",
        depositor,
        mixer,
        ETHER // 10,
    )
    assert driver.balance(mixer) == ETHER // 10
    (log,) = driver.w3.eth.get_transaction_receipt(deposit.tx_hash)["logs"]
    assert log["topics"][1] == b"\x01" * 32
    with pytest.raises(TransactionReverted, match="commitment exists"):
        driver.mixer_deposit(mixer, depositor, commitment=b"\x01" * 32)

    out = fresh(driver, request, "fresh-out")
    withdrawal = driver.mixer_withdraw(mixer, out, nullifier=b"\x02" * 32)
    assert (withdrawal.kind, withdrawal.trace_address) == ("internal", (0,))
    assert (withdrawal.from_address, withdrawal.to_address, withdrawal.amount) == (
        mixer,
        out,
        ETHER // 10,
    )
    assert driver.balance(out) == ETHER // 10
    assert driver.balance(mixer) == 0
    block = withdrawal.block_number
    assert parity_value_transfers(driver, block) == as_facts([withdrawal])
    assert geth_value_transfers(driver, block) == as_facts([withdrawal])
    assert driver.tx_value_transfer(withdrawal.tx_hash) is None

    driver.mixer_deposit(mixer, depositor)
    with pytest.raises(TransactionReverted, match="nullifier spent"):
        driver.mixer_withdraw(mixer, out, nullifier=b"\x02" * 32)
    with pytest.raises(TransactionReverted, match="only operator"):
        driver.transact(
            depositor,
            mixer,
            data=driver._contract("Mixer", mixer).encode_abi(
                "withdraw", args=[Web3.to_checksum_address(out), b"\x03" * 32]
            ),
        )


def test_reverted_receipt_raises_with_tx_hash(
    driver: DevnetDriver, deployer: str, request: pytest.FixtureRequest
) -> None:
    mixer = driver.deploy_mixer(deployer)
    stranger = fresh(driver, request, "stranger")
    driver.fund(stranger, ETHER)
    data = driver._contract("Mixer", mixer).encode_abi(
        "withdraw", args=[Web3.to_checksum_address(stranger), b"\x04" * 32]
    )
    head = driver.head()
    with pytest.raises(TransactionReverted, match="transaction reverted") as info:
        driver.transact(stranger, mixer, data=data, gas=100_000)  # skip estimation: mined
    assert driver.head() == head + 1
    tx_hash = info.value.context["tx_hash"]
    assert driver.w3.eth.get_transaction_receipt(tx_hash)["status"] == 0


def test_mine_and_head(driver: DevnetDriver) -> None:
    head = driver.head()
    driver.mine(3)
    assert driver.head() == head + 3


def test_works_without_automine(
    driver: DevnetDriver, deployer: str, request: pytest.FixtureRequest
) -> None:
    driver.rpc("evm_setAutomine", [False])
    try:
        to = fresh(driver, request, "to")
        t = driver.send_native(deployer, to, ETHER)
        assert driver.balance(to) == ETHER
        assert t.block_number == driver.head()
    finally:
        driver.rpc("evm_setAutomine", [True])


def test_demo_scenario_facts_are_on_chain(driver: DevnetDriver) -> None:
    scenario = run_demo_scenario(driver)
    assert scenario.case_id == DEMO_CASE_ID == "CASE-2026-001"
    assert scenario.seized == driver.new_wallet(SEIZED_WALLET_LABEL)
    kinds = [(t.kind, t.amount) for t in scenario.transfers]
    assert kinds == [
        ("native", 15 * 10**17),
        ("erc20", 2_500 * TUSD),
        ("native", 3 * ETHER),
        ("internal", ETHER),
        ("internal", ETHER),
        ("internal", ETHER),
    ]
    assert [t.from_address for t in scenario.transfers[:3]] == [scenario.seized] * 3
    assert scenario.transfers[2].to_address == scenario.splitter
    assert scenario.transfers[1].token == scenario.token
    receivers = {t.to_address for t in scenario.transfers} - {scenario.splitter}
    assert len(receivers) == 5 and scenario.seized not in receivers
    for t in scenario.transfers + scenario.setup_transfers:
        assert_in_block(driver, t)
    internal = [t for t in scenario.transfers if t.kind == "internal"]
    block = internal[0].block_number
    assert parity_value_transfers(driver, block) == as_facts(internal)
    assert geth_value_transfers(driver, block) == as_facts(internal)
    assert driver.token_balance(scenario.token, scenario.seized) == 7_500 * TUSD
    ids = {t.record_id("devnet") for t in scenario.transfers}
    assert len(ids) == len(scenario.transfers)


def test_demo_scenario_with_given_seized_address(driver: DevnetDriver) -> None:
    seized = "0x00000000000000000000000000000000000CA5E1"
    scenario = run_demo_scenario(driver, seized=seized)
    assert scenario.seized == seized.lower()
    assert scenario.transfers[0].from_address == seized.lower()
