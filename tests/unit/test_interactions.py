"""Zero-value calls are kept apart from transfers, checked on mainnet block 18,000,000."""

from __future__ import annotations

from connectors.evm.mapping import map_block
from tests.unit.test_evm_mapping import recorded


def test_zero_value_successful_calls_become_interactions() -> None:
    block = recorded("mainnet-rpc/eth_getBlockByNumber_18000000_fulltx.json.gz")
    receipts = recorded("mainnet-rpc/eth_getBlockReceipts_18000000.json.gz")
    mapped = map_block("ethereum", block, receipts)
    status = {r["transactionHash"]: r["status"] for r in receipts}
    expected = [(tx["hash"], tx["from"].lower(), tx["to"].lower()) for tx in block["transactions"]
                if int(tx["value"], 16) == 0 and tx["to"] is not None
                and status[tx["hash"]] == "0x1"]
    assert [(c.tx_hash, c.from_address, c.to_address) for c in mapped.interactions] == expected
    assert all(c.amount == 0 and c.kind == "native" for c in mapped.interactions)
    assert not {c.id for c in mapped.interactions} & {t.id for t in mapped.transfers}
    assert len(expected) > 20
