"""Read the metric names that deploy/'s Grafana dashboard and Prometheus rules query."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "chainwatch.json"
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
_METRIC = re.compile(r"\bchainwatch_[a-z0-9_]+")


def dashboard() -> dict[str, Any]:
    """The parsed Grafana dashboard."""
    return json.loads(DASHBOARD.read_text())


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dash["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dash: dict[str, Any]) -> list[str]:
    """The PromQL of every panel target and every query variable."""
    exprs = [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of deploy/prometheus/alerts.yml."""
    doc = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def metric_names(exprs: list[str]) -> set[str]:
    """The ``chainwatch_*`` series names referenced by PromQL expressions."""
    return {name for expr in exprs for name in _METRIC.findall(expr)}


def queried_metrics() -> set[str]:
    """Every ``chainwatch_*`` series the dashboard and the alert rules query."""
    return metric_names(dashboard_queries(dashboard()) + [r["expr"] for r in alert_rules()])
