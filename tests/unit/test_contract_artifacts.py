"""The committed contract artifacts must equal a fresh solc-js compile of the sources."""

from __future__ import annotations

import pytest

from monitor.demo.build_contracts import (
    ARTIFACTS_PATH,
    CONTRACT_NAMES,
    compile_contracts,
    load_artifacts,
    render_artifacts,
)
from monitor.errors import ServiceError


@pytest.fixture(scope="module")
def fresh() -> dict:
    try:
        return compile_contracts()
    except ServiceError as exc:  # missing node / node_modules / solc is a failure, never a skip
        pytest.fail(f"cannot recompile the demo contracts: {exc}")


def test_committed_artifacts_equal_fresh_compile(fresh: dict) -> None:
    committed = ARTIFACTS_PATH.read_text(encoding="utf-8")
    assert committed == render_artifacts(fresh), (
        "monitor/demo/contracts/artifacts.json is stale: "
        "run `python -m monitor.demo.build_contracts` and commit the result"
    )


def test_artifacts_hold_every_contract_with_abi_and_bytecode() -> None:
    artifacts = load_artifacts()
    assert sorted(artifacts) == sorted(CONTRACT_NAMES)
    for name, artifact in artifacts.items():
        assert set(artifact) == {"abi", "bytecode"}, name
        assert artifact["bytecode"].startswith("0x60") and len(artifact["bytecode"]) > 1000, name
        int(artifact["bytecode"], 16)


@pytest.mark.parametrize(
    ("name", "functions", "events"),
    [
        (
            "Token",
            {
                "transfer",
                "approve",
                "transferFrom",
                "balanceOf",
                "allowance",
                "name",
                "symbol",
                "decimals",
                "totalSupply",
            },
            {"Transfer", "Approval"},
        ),
        ("Splitter", {"split", "splitWithFailure", "forwardThenRevert"}, {"Split", "HopFailed"}),
        (
            "Mixer",
            {"deposit", "withdraw", "denomination", "operator", "commitments", "nullifierSpent"},
            {"Deposit", "Withdrawal"},
        ),
    ],
)
def test_abi_exposes_the_documented_interface(name: str, functions: set, events: set) -> None:
    abi = load_artifacts()[name]["abi"]
    assert functions <= {e["name"] for e in abi if e["type"] == "function"}
    assert events <= {e["name"] for e in abi if e["type"] == "event"}


def test_erc20_transfer_event_has_two_indexed_addresses() -> None:
    abi = load_artifacts()["Token"]["abi"]
    (transfer,) = [e for e in abi if e["type"] == "event" and e["name"] == "Transfer"]
    assert [i["indexed"] for i in transfer["inputs"]] == [True, True, False]
