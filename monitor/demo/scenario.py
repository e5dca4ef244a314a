"""The scripted demo story: a seized wallet moves funds out three ways, and what must be seen.

Run against a fresh anvil with ``python -m monitor.demo.scenario http://127.0.0.1:8545``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from monitor.demo.devnet import DevnetDriver, SentTransfer

DEMO_CASE_ID = "CASE-2026-001"
SEIZED_WALLET_LABEL = "seized-wallet-case-2026-001"
DEPLOYER_LABEL = "chainwatch-demo-deployer"
ETHER = 10**18
TUSD = 10**6  # one whole tUSD in base units (6 decimals)
SEIZED_FUNDING_WEI = 10 * ETHER
SEIZED_TOKEN_FUNDING = 10_000 * TUSD


@dataclass(frozen=True)
class DemoScenario:
    """Addresses and expected facts of one run of the demo scenario."""

    case_id: str
    seized: str
    token: str
    splitter: str
    deployer: str
    recipients: dict[str, str]
    setup_transfers: list[SentTransfer] = field(default_factory=list)
    transfers: list[SentTransfer] = field(default_factory=list)


def run_demo_scenario(driver: DevnetDriver, seized: str | None = None) -> DemoScenario:
    """Script the case: the seized wallet sends ether, tUSD and a 3-way split to fresh addresses.

    ``setup_transfers`` hold the token funding of the seized wallet (deployer -> seized, plus the
    mint); ``transfers`` hold the outgoing movements a monitor watching the seized wallet (and
    following the money one hop) must report, in chain order.
    """
    deployer = driver.new_wallet(DEPLOYER_LABEL)
    seized_address = seized.lower() if seized else driver.new_wallet(SEIZED_WALLET_LABEL)
    recipients = {
        label: driver.new_wallet(f"{DEMO_CASE_ID}:{label}")
        for label in ("cash-out", "token-sink", "split-1", "split-2", "split-3")
    }
    driver.fund(deployer, 100 * ETHER)
    driver.fund(seized_address, SEIZED_FUNDING_WEI)

    token = driver.deploy_token(deployer, symbol="tUSD", decimals=6)
    splitter = driver.deploy_splitter(deployer)
    setup = [driver.send_token(token, deployer, seized_address, SEIZED_TOKEN_FUNDING)]

    moves: list[SentTransfer] = []
    moves.append(driver.send_native(seized_address, recipients["cash-out"], 3 * ETHER // 2))
    moves.append(driver.send_token(token, seized_address, recipients["token-sink"], 2_500 * TUSD))
    split_to = [recipients["split-1"], recipients["split-2"], recipients["split-3"]]
    payouts = driver.split(splitter, seized_address, split_to, 3 * ETHER)
    funding_of_split = driver.tx_value_transfer(payouts[0].tx_hash)
    if funding_of_split is not None:
        moves.append(funding_of_split)
    moves.extend(payouts)
    return DemoScenario(
        case_id=DEMO_CASE_ID,
        seized=seized_address,
        token=token,
        splitter=splitter,
        deployer=deployer,
        recipients=recipients,
        setup_transfers=setup,
        transfers=moves,
    )


def main(argv: list[str]) -> int:
    """Run the scenario against the anvil at ``argv[0]`` and print the expected facts."""
    url = argv[0] if argv else "http://127.0.0.1:8545"
    scenario = run_demo_scenario(DevnetDriver(url))
    print(f"case {scenario.case_id}: seized wallet {scenario.seized}")
    for t in scenario.transfers:
        where = t.log_index if t.log_index is not None else t.trace_address
        print(
            f"  block {t.block_number} {t.kind:8} {t.from_address} -> {t.to_address} "
            f"{t.amount} {t.symbol} ({t.tx_hash} {where})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
