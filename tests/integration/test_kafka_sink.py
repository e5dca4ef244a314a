"""The Kafka topic sink on the real broker: a consumer of the alert topic reads every alert,
keyed by alert id, in the versioned envelope, each message valid against
``docs/alert-schema-v1.json``; an unreachable broker ends in SinkError after bounded retries.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer

from monitor.devservices.ports import free_port
from monitor.errors import SinkError
from monitor.records import Asset, TaintHop, TaintMark, WatchEntry
from monitor.settings import SinkConfig
from monitor.sinks import KafkaTopicSink, SinkContext, build_sinks
from monitor.sinks.kafka_topic import ENVELOPE_DECODER, SCHEMA_HEADER, SCHEMA_V1
from tests.unit.test_sinks import WATCHED, deliveries, failures, make_alert

pytestmark = pytest.mark.integration

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "alert-schema-v1.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _alerts() -> list[Any]:
    mule = "0x" + "22" * 20
    taint = TaintMark(origin=WATCHED, case_id="CASE-2024-017", hop=1, amount=10**18,
                      asset_key="native",
                      path=(TaintHop("0x" + "aa" * 32, WATCHED, mule, 10**18, 18_999_990),))
    return [
        make_alert(),  # native, 1.5 ETH
        make_alert(transfer_kind="erc20", log_index=7, severity="critical",
                   asset=Asset(kind="erc20", address="0x" + "5f" * 20, symbol="tUSD",
                               decimals=6),
                   amount=str(2**256 - 1), title="case funds reached an exchange",
                   evidence={"hops": 2, "path": [["0x" + "bb" * 32, WATCHED, mule, "5", 1]]}),
        make_alert(transfer_kind="internal", trace_address=(0, 2), direction="in",
                   to_address=mule, status="provisional", confirmations=0,
                   watch=WatchEntry(chain="ethereum", address=mule, case_id="CASE-2024-017",
                                    label="mule", category="tainted", source="taint",
                                    taint=taint)),
    ]


async def _consume(bootstrap: str, topic: str, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                group_id=f"g-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        for _ in range(30):
            batch = await consumer.getmany(timeout_ms=1000)
            for partition_records in batch.values():
                records.extend(partition_records)
            if len(records) >= n:
                break
    finally:
        await consumer.stop()
    return records


async def test_alerts_reach_the_topic_in_the_v1_schema(
        kafka_bootstrap: str, unique_prefix: str,
        validator: jsonschema.protocols.Validator) -> None:
    topic = f"{unique_prefix}downstream.alerts"
    config = SinkConfig(name=f"k{uuid.uuid4().hex[:6]}", type="kafka", topic=topic)
    [sink] = build_sinks([config], {}, SinkContext(kafka_bootstrap=kafka_bootstrap))
    assert isinstance(sink, KafkaTopicSink) and sink.bootstrap == kafka_bootstrap
    alerts = _alerts()
    async with sink:
        for alert in alerts:
            await sink.deliver(alert)
    assert deliveries(sink.name) == len(alerts)

    records = await _consume(kafka_bootstrap, topic, len(alerts))
    assert len(records) == len(alerts)
    by_key = {r.key.decode(): r for r in records}
    for alert in alerts:
        record = by_key[alert.id]
        assert dict(record.headers)[SCHEMA_HEADER] == SCHEMA_V1.encode()
        message = json.loads(record.value)
        validator.validate(message)
        assert message["schema"] == "chainwatch.alert/v1"
        assert message["alert"]["amount"] == alert.amount  # exact, a string
        assert message["alert"]["from"] == alert.from_address
        assert ENVELOPE_DECODER.decode(record.value).alert == alert
    assert json.loads(by_key[alerts[1].id].value)["alert"]["amount"] == str(2**256 - 1)


def test_the_schema_refuses_what_v1_forbids(validator: jsonschema.protocols.Validator) -> None:
    from monitor.sinks.kafka_topic import encode_envelope

    good = json.loads(encode_envelope(make_alert()))
    validator.validate(good)
    for broken in (
        {**good, "schema": "chainwatch.alert/v2"},
        {**good, "alert": {**good["alert"], "amount": 1.5e18}},  # a float amount
        {**good, "alert": {k: v for k, v in good["alert"].items() if k != "tx_hash"}},
        {**good, "alert": {**good["alert"], "severity": "urgent"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(broken)
    validator.validate({**good, "alert": {**good["alert"], "new_optional": 1}})  # additive


async def test_unreachable_broker_gives_up() -> None:
    sink = KafkaTopicSink("k-down", "t", bootstrap=f"127.0.0.1:{free_port()}",
                          timeout_seconds=1.0, max_attempts=2, backoff_initial_seconds=0.01,
                          backoff_max_seconds=0.05)
    async with sink:
        with pytest.raises(SinkError, match="gave up after 2 attempt"):
            await sink.deliver(make_alert())
    assert failures("k-down", "connection") + failures("k-down", "timeout") == 2
