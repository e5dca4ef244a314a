"""Per-sink filters: severity, rule, case and chain lists (empty = all), applied by
``Sink.accepts`` together with ``min_severity``, built from the YAML ``filters:`` mapping.
"""

from __future__ import annotations

import doctest
import io
from typing import Any

import pytest

import monitor.sinks.chat
import monitor.sinks.email
import monitor.sinks.filters
import monitor.sinks.kafka_topic
import monitor.sinks.retrying
from monitor.errors import ConfigError
from monitor.records import WatchEntry
from monitor.settings import SinkConfig, SinkFilters, parse_config
from monitor.sinks import AlertFilter, ConsoleSink, build_sinks
from monitor.sinks.filters import MATCH_ALL
from tests.unit.test_sinks import WATCHED, make_alert


def alert(severity: str = "high", rule: str = "watched-address", case: str = "C-1",
          chain: str = "ethereum") -> Any:
    return make_alert(severity=severity, rule=rule, chain=chain,
                      watch=WatchEntry(chain=chain, address=WATCHED, case_id=case))


def test_empty_filter_matches_everything() -> None:
    assert MATCH_ALL.is_match_all and MATCH_ALL.describe() == "all"
    for a in (alert(), alert("info", "r", "X", "bsc")):
        assert MATCH_ALL.matches(a)


@pytest.mark.parametrize(("filters", "matching", "other"), [
    ({"severities": ["high", "critical"]}, alert("critical"), alert("medium")),
    ({"rules": ["exchange-deposit", "mixer-deposit"]}, alert(rule="mixer-deposit"),
     alert(rule="watched-address")),
    ({"cases": ["C-1", "C-2"]}, alert(case="C-2"), alert(case="C-3")),
    ({"chains": ["ethereum"]}, alert(chain="ethereum"), alert(chain="polygon")),
])
def test_each_list_filters(filters: dict[str, list[str]], matching: Any, other: Any) -> None:
    f = AlertFilter(**{k: frozenset(v) for k, v in filters.items()})
    assert f.matches(matching) and not f.matches(other)


def test_lists_combine_with_and() -> None:
    f = AlertFilter(severities=frozenset({"high"}), cases=frozenset({"C-1"}),
                    chains=frozenset({"ethereum"}), rules=frozenset({"watched-address"}))
    assert f.matches(alert())
    assert not f.matches(alert(severity="low"))
    assert not f.matches(alert(case="C-9"))
    assert not f.matches(alert(chain="bsc"))
    assert not f.matches(alert(rule="peel-chain"))
    assert f.describe() == ("severities=high rules=watched-address cases=C-1 "
                            "chains=ethereum")


def test_build_sinks_applies_filters_and_min_severity() -> None:
    config = SinkConfig(name="unit", type="console", min_severity="medium",
                        filters=SinkFilters(cases=["C-1"], severities=["low", "high"]))
    [sink] = build_sinks([config], {})
    assert sink.accepts(alert("high", case="C-1"))
    assert not sink.accepts(alert("low", case="C-1"))  # below min_severity
    assert not sink.accepts(alert("critical", case="C-1"))  # not in severities
    assert not sink.accepts(alert("high", case="C-2"))


async def test_a_filtered_out_alert_is_not_delivered() -> None:
    stream = io.StringIO()
    sink = ConsoleSink("c", stream=stream)
    sink.alert_filter = AlertFilter(chains=frozenset({"polygon"}))
    for a in (alert(chain="ethereum"), alert(chain="polygon")):
        if sink.accepts(a):
            await sink.deliver(a)
    assert stream.getvalue().count("\n") == 1 and "chain=polygon" in stream.getvalue()


def test_default_filters_accept_all() -> None:
    [sink] = build_sinks([SinkConfig(name="c", type="console")], {})
    assert sink.alert_filter.is_match_all and sink.accepts(alert("info", "x", "y", "z"))


def _config(filters: Any) -> dict[str, Any]:
    return {"chains": [{"name": "ethereum", "chain_id": 1,
                        "rpc_urls": ["http://127.0.0.1:8545"]}],
            "sinks": [{"name": "c", "type": "console", "filters": filters}]}


@pytest.mark.parametrize(("filters", "message"), [
    ({"severities": ["urgent"]}, "sinks[0].filters.severities[0]"),
    ({"case": ["C-1"]}, "sinks[0].filters.case: Extra inputs are not permitted"),
    ({"chains": "ethereum"}, "sinks[0].filters.chains"),
    ({"chains": ["etherum"]}, "sinks[0].filters.chains: unknown chain 'etherum'"),
])
def test_filter_config_errors_name_the_key(filters: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(filters), "chainwatch.yaml")
    assert message in str(info.value)


def test_filters_parse_from_yaml_data() -> None:
    config = parse_config(_config({"severities": ["high"], "chains": ["ethereum"],
                                   "cases": ["C-1"], "rules": []}), "chainwatch.yaml")
    sink = config.sinks[0]
    assert sink.filters.severities == ["high"] and sink.filters.rules == []


def test_docstring_examples_of_the_new_sink_modules_run() -> None:
    for module in (monitor.sinks.filters, monitor.sinks.chat, monitor.sinks.email,
                   monitor.sinks.retrying, monitor.sinks.kafka_topic):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
