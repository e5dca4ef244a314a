"""Replication settings reach every topic chainwatch creates, and the worker reads committed."""

from __future__ import annotations

import faust
import pytest

from monitor.errors import ConfigError
from monitor.kafka_client import ChainwatchApp, ReadCommittedTransport, apply_topic_configs
from monitor.settings import parse_config
from monitor.topics import Topics

CHAIN = {"name": "devnet", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:8545"]}


def test_min_insync_replicas_defaults_to_1_and_may_not_exceed_the_replication_factor() -> None:
    assert parse_config({"chains": [CHAIN]}, "c.yaml").kafka.min_insync_replicas == 1
    with pytest.raises(ConfigError, match=r"c\.yaml: kafka: .*min_insync_replicas \(3\) must "
                                          r"not exceed replication_factor \(2\)"):
        parse_config({"chains": [CHAIN], "kafka": {"replication_factor": 2,
                                                    "min_insync_replicas": 3}}, "c.yaml")


def test_every_topic_spec_carries_min_insync_replicas() -> None:
    config = parse_config({"chains": [CHAIN], "kafka": {"replication_factor": 3,
                                                         "min_insync_replicas": 2}}, "c.yaml")
    specs = Topics.from_config(config).specs()
    assert specs and all(s.configs["min.insync.replicas"] == "2" for s in specs)
    watchlist = next(s for s in specs if s.name.endswith("watchlist"))
    assert watchlist.configs["cleanup.policy"] == "compact"  # own configs kept


async def test_changelog_topics_get_the_configs_and_the_worker_consumer_reads_committed() -> None:
    app = ChainwatchApp("cw-test", broker="kafka://127.0.0.1:1,127.0.0.1:2", store="memory://",
                        autodiscover=False, web_enabled=False)
    table = app.Table("activity", default=int, extra_topic_configs={"segment.ms": "1000"})
    apply_topic_configs(app, {"min.insync.replicas": "2"})
    assert table.changelog_topic.config == {"min.insync.replicas": "2", "segment.ms": "1000"}
    assert app._leader_assignor._leader_topic.config == {"min.insync.replicas": "2"}
    assert isinstance(app.transport, ReadCommittedTransport)
    made = app.consumer._thread._create_worker_consumer(app.transport)
    assert made._isolation_level == "read_committed"
    assert isinstance(app, faust.App)
