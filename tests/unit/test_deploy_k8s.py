"""The Kubernetes manifests in deploy/k8s validate and fit together.

Every manifest is validated in strict mode (unknown fields refused) against the Kubernetes
schemas that PyPI's kubernetes-validate ships, for 1.34 and for the newest version it knows.
Then our own checks: selectors match pod labels, every ConfigMap and Secret reference exists,
every command is a real `chainwatch` command line, every variable is one chainwatch reads, the
ConfigMap's configuration passes `chainwatch config check`, each chain has a connector
Deployment with two replicas, and every container is locked down and sized.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.settings import ChainwatchConfig, parse_config
from tests.unit.deploy_support import (
    DEPLOY,
    app_variables,
    assert_cli_accepts,
    assert_config_checks,
    required_module,
)

K8S = DEPLOY / "k8s"
SECRET_TEMPLATE = K8S / "secret.example.yaml"
OLDEST_VERSION = "1.34.0"
WORKLOADS = ("Deployment", "StatefulSet")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _all() -> list[dict[str, Any]]:
    return [doc for path in _manifest_files() for doc in _documents(path)]


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _all() if d["kind"] == kind]


def _workloads() -> list[dict[str, Any]]:
    return [d for d in _all() if d["kind"] in WORKLOADS]


def _containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for workload in _workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            yield workload, container


def _config() -> ChainwatchConfig:
    (configmap,) = [d for d in _kind("ConfigMap") if d["metadata"]["name"] == "chainwatch-config"]
    return parse_config(yaml.safe_load(configmap["data"]["chainwatch.yaml"]), "configmap.yaml")


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _versions() -> list[str]:
    kv: Any = required_module("kubernetes_validate")
    return sorted({OLDEST_VERSION, kv.latest_version()})


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: p.name)
def test_manifests_validate_strictly(path: Path) -> None:
    kv: Any = required_module("kubernetes_validate")
    for version in _versions():
        for doc in _documents(path):
            kv.validate(doc, version, strict=True)


def test_strict_validation_refuses_an_unknown_field() -> None:
    kv: Any = required_module("kubernetes_validate")
    statefulset = copy.deepcopy(_kind("StatefulSet")[0])
    statefulset["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(statefulset, OLDEST_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    for name in listed:
        assert (K8S / name).is_file(), f"kustomization.yaml lists missing {name}"
    assert listed == {p.name for p in _manifest_files()} - {SECRET_TEMPLATE.name}
    namespaces = {d["metadata"].get("namespace") for d in _all() if d["kind"] != "Namespace"}
    assert namespaces == {kustomization["namespace"]}
    assert [d["metadata"]["name"] for d in _kind("Namespace")] == [kustomization["namespace"]]
    images = {c["image"].split(":")[0] for _, c in _containers()}
    assert images == {i["name"] for i in kustomization["images"]}


def test_secret_template_holds_no_values() -> None:
    (secret,) = _documents(SECRET_TEMPLATE)
    assert secret["kind"] == "Secret"
    assert "data" not in secret
    assert all(value == "" for value in secret["stringData"].values())


def test_selectors_match_the_pods() -> None:
    pods = [w["spec"]["template"]["metadata"]["labels"] for w in _workloads()]
    for workload in _workloads():
        selector = workload["spec"]["selector"]["matchLabels"]
        assert _matches(selector, workload["spec"]["template"]["metadata"]["labels"]), \
            workload["metadata"]["name"]
    for kind, path in (("Service", ("spec", "selector")),
                       ("PodDisruptionBudget", ("spec", "selector", "matchLabels")),
                       ("NetworkPolicy", ("spec", "podSelector", "matchLabels"))):
        for doc in _kind(kind):
            chosen: Any = doc
            for key in path:
                chosen = chosen.get(key) or {}
            if kind == "NetworkPolicy" and not chosen:
                continue  # {} selects every pod of the namespace
            assert any(_matches(chosen, labels) for labels in pods), \
                f"{kind} {doc['metadata']['name']} selects no pod"
    for statefulset in _kind("StatefulSet"):
        services = {s["metadata"]["name"]: s for s in _kind("Service")}
        governing = services[statefulset["spec"]["serviceName"]]
        assert governing["spec"]["clusterIP"] == "None"


def test_every_configmap_secret_and_account_reference_exists() -> None:
    configmaps = {d["metadata"]["name"]: d for d in _kind("ConfigMap")}
    (secret,) = _documents(SECRET_TEMPLATE)
    accounts = {d["metadata"]["name"] for d in _kind("ServiceAccount")}
    for workload, container in _containers():
        spec = workload["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] in accounts
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes or mount["name"] in claims, mount
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in secret["stringData"], ref
        assert "envFrom" not in container, "name each variable: they are checked one by one"


def test_commands_and_variables_are_real() -> None:
    config = _config()
    real = app_variables(config)
    for workload, container in _containers():
        assert "command" not in container, "keep the image's `chainwatch` entry point"
        assert_cli_accepts(container["args"], f"{workload['metadata']['name']}.args")
        for name in _env(container):
            assert name in real, f"{workload['metadata']['name']}: {name} is not read"
        assert _env(container)["CHAINWATCH_CONFIG"]["value"] == "/etc/chainwatch/chainwatch.yaml"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert volumes[mounts["/etc/chainwatch"]]["configMap"]["name"] == "chainwatch-config"


def test_configmap_configuration_passes_config_check(tmp_path: Path) -> None:
    (configmap,) = [d for d in _kind("ConfigMap") if d["metadata"]["name"] == "chainwatch-config"]
    path = tmp_path / "chainwatch.yaml"
    path.write_text(configmap["data"]["chainwatch.yaml"])
    config = assert_config_checks(path, app_variables(_config()))
    assert config.api.host == "0.0.0.0", "probes and the Service reach the pod's address"
    assert (config.kafka.replication_factor, config.kafka.min_insync_replicas) == (3, 2)


def test_each_chain_has_a_connector_deployment_with_two_replicas() -> None:
    config = _config()
    connectors = {}
    for deployment in _kind("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        if container["args"][0] == "connector":
            chain = container["args"][container["args"].index("--chain") + 1]
            connectors[chain] = (deployment, container)
    assert set(connectors) == {c.name for c in config.chains}
    for chain, (deployment, container) in connectors.items():
        assert deployment["spec"]["replicas"] >= 2, chain
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["chainwatch.io/chain"] == chain
        port = config.chain(chain).metrics_port
        for probe in ("livenessProbe", "readinessProbe"):
            assert f"127.0.0.1:{port}/metrics" in " ".join(container[probe]["exec"]["command"])
        budgets = [p for p in _kind("PodDisruptionBudget")
                   if _matches(p["spec"]["selector"]["matchLabels"], labels)]
        assert budgets, f"chain {chain}: no PodDisruptionBudget"


def test_workers_are_a_statefulset_with_state_probes_and_the_api_service() -> None:
    config = _config()
    (statefulset,) = _kind("StatefulSet")
    assert statefulset["spec"]["replicas"] >= 2
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == config.api.port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/chainwatch"
    assert _env(container)["CHAINWATCH_STATE_DIR"]["value"] == "/var/lib/chainwatch"
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(config.api.port)
    assert annotations["prometheus.io/path"] == "/metrics"
    api = next(s for s in _kind("Service") if s["metadata"]["name"] == "chainwatch-api")
    assert api["spec"]["ports"][0]["targetPort"] == "http"
    assert _matches(api["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"])


def test_every_pod_is_locked_down_and_sized() -> None:
    for workload, container in _containers():
        name = workload["metadata"]["name"]
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name} {kind}"
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert {"/tmp", "/var/lib/chainwatch"} <= writable, name


def _connector_deployments() -> list[dict[str, Any]]:
    return [d for d in _kind("Deployment")
            if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
            == "connector"]


def _scrape_jobs() -> dict[str, dict[str, Any]]:
    scrape = yaml.safe_load((K8S / "prometheus-scrape-config.yml").read_text())
    return {job["job_name"]: job for job in scrape["scrape_configs"]}


@pytest.mark.parametrize(("job_name", "component"), [("chainwatch-worker", "worker"),
                                                     ("chainwatch-connector", "connector")])
def test_prometheus_scrape_config_keeps_the_annotated_pods(job_name: str, component: str) -> None:
    job = _scrape_jobs()[job_name]
    keeps = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"]
             if r.get("action") == "keep"}
    workloads = [w for w in _workloads()
                 if w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
                 == component]
    assert workloads, f"no {component} workload to scrape"
    for workload in workloads:
        template = workload["spec"]["template"]["metadata"]
        assert keeps[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)] == \
            template["annotations"]["prometheus.io/scrape"], workload["metadata"]["name"]
        assert keeps[("__meta_kubernetes_pod_label_app_kubernetes_io_component",)] == \
            template["labels"]["app.kubernetes.io/component"]
        assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == \
            [workload["metadata"]["namespace"]]


def test_connectors_are_scraped_on_their_metrics_port() -> None:
    config = _config()
    policies = [p for p in _kind("NetworkPolicy") if "Ingress" in p["spec"]["policyTypes"]]
    for deployment in _connector_deployments():
        name = deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        chain = config.chain(template["metadata"]["labels"]["chainwatch.io/chain"])
        assert chain.metrics_port is not None, f"{name}: chain {chain.name} has no metrics_port"
        assert ipaddress.ip_address(chain.metrics_host).is_unspecified, \
            f"configmap.yaml: chain {chain.name} metrics_host must be the pod's addresses"
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(chain.metrics_port), name
        assert annotations["prometheus.io/path"] == "/metrics", name
        (container,) = template["spec"]["containers"]
        assert {p["containerPort"] for p in container["ports"]} == {chain.metrics_port}, name
        admitted = [
            rule for policy in policies
            if _matches(policy["spec"]["podSelector"].get("matchLabels", {}),
                        template["metadata"]["labels"])
            for rule in policy["spec"].get("ingress", [])
            if {"protocol": "TCP", "port": chain.metrics_port} in rule.get("ports", [])
            and any(peer.get("namespaceSelector", {}).get("matchLabels", {})
                    .get("kubernetes.io/metadata.name") == "monitoring"
                    for peer in rule.get("from", []))]
        assert admitted, f"{name}: no NetworkPolicy lets Prometheus (monitoring) reach " \
                         f"port {chain.metrics_port}"
