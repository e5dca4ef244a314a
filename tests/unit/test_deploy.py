"""The files in deploy/ stay valid and only refer to metrics chainwatch exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import monitor.metrics  # noqa: F401 - registers the metrics
from monitor.settings import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _exported_names() -> set[str]:
    names = set()
    for collector in REGISTRY.collect():
        for sample in collector.samples:
            names.add(sample.name)
        names.add(collector.name)
        names.add(collector.name + "_total")
    return names


def test_example_config_is_valid() -> None:
    config = load_config(DEPLOY / "chainwatch.example.yaml")
    assert config.chain("ethereum").confirmations == 12


def test_prometheus_alert_rules_use_existing_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exported = _exported_names()
    used = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"chainwatch_[a-z_]+", rule["expr"]))
    assert used, "no chainwatch metric referenced"
    assert used <= exported, used - exported


def test_prometheus_config_parses() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"chainwatch-worker", "chainwatch-connector"}
