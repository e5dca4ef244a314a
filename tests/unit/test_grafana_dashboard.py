"""deploy/grafana and deploy/prometheus: structure, coverage of the issue's list, known metrics."""

from __future__ import annotations

import re

import yaml
from prometheus_client import REGISTRY

import monitor.metrics  # noqa: F401 - registers the metrics
from tests.support.grafana import (
    DEPLOY,
    alert_rules,
    dashboard,
    dashboard_queries,
    metric_names,
    panels,
    queried_metrics,
)


def _declared_series() -> set[str]:
    names = set()
    for collector in REGISTRY.collect():
        if not collector.name.startswith("chainwatch_"):
            continue
        names.add(collector.name)
        if collector.type == "counter":
            names.add(collector.name + "_total")
        if collector.type == "histogram":
            names |= {collector.name + s for s in ("_bucket", "_sum", "_count")}
    return names


def _balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for ch in re.sub(r'"[^"]*"', '""', expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def test_dashboard_parses_with_unique_ids_and_a_datasource_variable() -> None:
    dash = dashboard()
    assert dash["uid"] == "chainwatch" and dash["title"]
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in panels(dash):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"], panel["title"]


def test_dashboard_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels(dashboard()):
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                 for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    used = metric_names(dashboard_queries(dashboard()))
    for name in ("chainwatch_blocks_ingested_total", "chainwatch_head_lag_blocks",
                 "chainwatch_head_lag_seconds", "chainwatch_rpc_latency_seconds_bucket",
                 "chainwatch_rpc_errors_total", "chainwatch_transfers_screened_total",
                 "chainwatch_alerts_raised_total", "chainwatch_alert_events_total",
                 "chainwatch_sink_deliveries_total", "chainwatch_sink_failures_total",
                 "chainwatch_sink_delivery_seconds_bucket", "chainwatch_consumer_lag_messages",
                 "chainwatch_dead_letters_total"):
        assert name in used, name
    p95 = [e for e in dashboard_queries(dashboard()) if "histogram_quantile(0.95" in e]
    assert any("endpoint" in e for e in p95), "RPC latency p95 per endpoint"


def test_every_query_is_balanced_and_names_a_declared_metric() -> None:
    exprs = dashboard_queries(dashboard()) + [r["expr"] for r in alert_rules()]
    for expr in exprs:
        assert _balanced(expr), expr
    declared = _declared_series()
    assert queried_metrics() <= declared, queried_metrics() - declared


def test_alert_rules_have_the_three_the_issue_names() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    for name in ("ChainwatchConnectorStalled", "ChainwatchHeadLagGrowing",
                 "ChainwatchConsumerLagGrowing", "ChainwatchDeliveriesFailing"):
        assert name in rules, name
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
    # failures carry a reason label that deliveries lack: matching needs by (sink)
    failing = rules["ChainwatchDeliveriesFailing"]["expr"]
    assert failing.count("by (sink)") == 2


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((prov / "datasources" / "chainwatch.yml").read_text())
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((prov / "dashboards" / "chainwatch.yml").read_text())
    assert providers["providers"][0]["type"] == "file"
    assert providers["providers"][0]["options"]["path"]
