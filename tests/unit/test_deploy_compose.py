"""deploy/docker-compose.yml validates and refers only to what exists.

`docker-compose config` (Debian's docker-compose package: it checks the file against the
Compose Specification schema and resolves variables, no engine needed) runs for the default
single-broker setup and for the 3-broker `cluster` profile. The rest reads the file itself:
mounted files exist, `depends_on` targets exist, every command is a real `chainwatch` command
line, every variable is one chainwatch reads, the mounted configurations pass
`chainwatch config check`, and the Kafka topology is what the profile promises.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.settings import ChainwatchConfig, load_config
from tests.unit.deploy_support import (
    DEPLOY,
    app_variables,
    assert_cli_accepts,
    assert_config_checks,
    required_tool,
)

COMPOSE = DEPLOY / "docker-compose.yml"
CLUSTER_ENV = DEPLOY / "compose-cluster.env"
ENV_EXAMPLE = DEPLOY / "chainwatch.env.example"
CONFIGS = {"single": DEPLOY / "chainwatch.compose.yaml",
           "cluster": DEPLOY / "chainwatch.compose-cluster.yaml"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _mode_variables(mode: str) -> dict[str, str]:
    return _env_file(CLUSTER_ENV) if mode == "cluster" else {}


def _resolved(mode: str) -> dict[str, Any]:
    """The compose file with its ${VAR:-default} variables resolved as compose would."""
    variables = _mode_variables(mode)
    text = _VARIABLE.sub(lambda m: variables.get(m[1], m[2] or ""), COMPOSE.read_text())
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _active(data: dict[str, Any], mode: str) -> dict[str, dict[str, Any]]:
    profiles = set(_mode_variables(mode).get("COMPOSE_PROFILES", "").split(",")) - {""}
    return {name: svc for name, svc in data["services"].items()
            if not svc.get("profiles") or set(svc["profiles"]) & profiles}


def _is_chainwatch(service: dict[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("chainwatch:")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _config_of(service: dict[str, Any]) -> ChainwatchConfig:
    container_path = _environment(service)["CHAINWATCH_CONFIG"]
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == container_path:
            return load_config(DEPLOY / source)
    raise AssertionError(f"CHAINWATCH_CONFIG={container_path} is not a mounted file")


@pytest.mark.parametrize("mode", ["single", "cluster"])
def test_docker_compose_config_validates(mode: str, tmp_path: Path) -> None:
    docker_compose = required_tool("docker-compose")
    argv = [docker_compose, "-f", str(COMPOSE)]
    if mode == "cluster":
        argv += ["--env-file", str(CLUSTER_ENV), "--profile", "cluster"]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CW_", "COMPOSE_"))}
    env["CW_ENV_FILE"] = str(ENV_EXAMPLE)
    done = subprocess.run([*argv, "config"], capture_output=True, text=True, timeout=120,
                          check=False, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    expected = _resolved(mode)
    assert set(rendered["services"]) == set(expected["services"])
    for name, service in _active(expected, mode).items():
        if name.startswith("kafka-"):
            assert rendered["services"][name]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] \
                == service["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]


def test_an_invalid_key_is_refused_by_docker_compose(tmp_path: Path) -> None:
    """The validation has teeth: a misspelt key fails `docker-compose config`."""
    docker_compose = required_tool("docker-compose")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("mem_limit: 2g", "mem_limt: 2g"))
    env = dict(os.environ, CW_ENV_FILE=str(ENV_EXAMPLE))
    done = subprocess.run([docker_compose, "-f", str(broken), "config"], capture_output=True,
                          text=True, timeout=120, check=False, env=env, cwd=tmp_path)
    assert done.returncode != 0
    assert "mem_limt" in done.stderr


@pytest.mark.parametrize("mode", ["single", "cluster"])
def test_mounted_files_and_dependencies_exist(mode: str) -> None:
    data = _resolved(mode)
    services = _active(data, mode)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in data["volumes"], f"{name}: undeclared volume {source}"
        for target in service.get("depends_on", []):
            assert target in services, f"{name} depends on {target}, not started in {mode}"
        for secret in service.get("secrets", []):
            assert secret in data["secrets"], f"{name}: undeclared secret {secret}"
    for env_file in {f for s in services.values() for f in s.get("env_file", [])}:
        assert env_file == "chainwatch.env", "services read the operator's env file"
    assert ENV_EXAMPLE.exists()


@pytest.mark.parametrize("mode", ["single", "cluster"])
def test_chainwatch_services_use_real_commands_variables_and_configs(mode: str) -> None:
    services = {n: s for n, s in _active(_resolved(mode), mode).items() if _is_chainwatch(s)}
    assert services
    for name, service in services.items():
        assert_cli_accepts(service["command"], f"{name}.command")
        config = _config_of(service)
        real = app_variables(config)
        for key in _environment(service):
            assert key in real, f"{name}.environment.{key}: chainwatch reads no such variable"
        assert service["read_only"] is True and service["user"] == "10001:10001"
        assert service["cap_drop"] == ["ALL"]
    kafka = {(_config_of(s).kafka.replication_factor, _config_of(s).kafka.min_insync_replicas)
             for s in services.values()}
    assert kafka == {(3, 2) if mode == "cluster" else (1, 1)}


def test_env_example_names_only_real_variables() -> None:
    configs = [load_config(path) for path in CONFIGS.values()]
    real = app_variables(*configs)
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?([A-Z][A-Z0-9_]*)=", line)
        if match:
            assert match[1] in real, f"{ENV_EXAMPLE.name}: {match[1]} is not read by chainwatch"
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            assert not re.search(r"TOKEN|SECRET|PASSWORD", key) or not value, \
                f"{ENV_EXAMPLE.name}: {key} must not carry a value in the example"


@pytest.mark.parametrize("mode", sorted(CONFIGS))
def test_mounted_configuration_passes_config_check(mode: str) -> None:
    config = load_config(CONFIGS[mode])
    assert_config_checks(CONFIGS[mode], app_variables(config) - {"CHAINWATCH_CONFIG"})


def test_the_two_configurations_differ_only_in_kafka() -> None:
    single, cluster = (yaml.safe_load(CONFIGS[m].read_text()) for m in ("single", "cluster"))
    assert {k: v for k, v in single.items() if k != "kafka"} == \
        {k: v for k, v in cluster.items() if k != "kafka"}
    assert single["kafka"]["bootstrap"] == "kafka-1:9092"
    assert cluster["kafka"]["bootstrap"].split(",") == ["kafka-1:9092", "kafka-2:9092",
                                                       "kafka-3:9092"]


@pytest.mark.parametrize(("mode", "brokers", "replication", "min_isr"),
                         [("single", 1, 1, 1), ("cluster", 3, 3, 2)])
def test_kafka_topology(mode: str, brokers: int, replication: int, min_isr: int) -> None:
    services = _active(_resolved(mode), mode)
    kafka = {n: s for n, s in services.items() if n.startswith("kafka-")}
    assert len(kafka) == brokers
    cluster_ids = set()
    for name, service in kafka.items():
        assert re.match(r"^apache/kafka:4\.\d+\.\d+@sha256:[0-9a-f]{64}$", service["image"])
        env = service["environment"]
        voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        assert voters == [f"{i}@kafka-{i}:9093" for i in range(1, brokers + 1)]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert name == f"kafka-{env['KAFKA_NODE_ID']}"
        for key in ("KAFKA_DEFAULT_REPLICATION_FACTOR", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
            assert int(env[key]) == replication, key
        for key in ("KAFKA_MIN_INSYNC_REPLICAS", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
            assert int(env[key]) == min_isr, key
        cluster_ids.add(env["CLUSTER_ID"])
        assert any(v.endswith(":/var/lib/kafka/data") for v in service["volumes"])
    assert len(cluster_ids) == 1


def test_workers_connectors_and_published_ports() -> None:
    data = _resolved("single")
    services = _active(data, "single")
    workers = {n: s for n, s in services.items()
               if _is_chainwatch(s) and s["command"][0] == "worker"}
    assert len(workers) >= 2
    states = [v.split(":")[0] for s in workers.values() for v in s["volumes"]
              if v.endswith(":/var/lib/chainwatch")]
    assert len(set(states)) == len(workers), "each worker keeps its own state volume"
    config = load_config(CONFIGS["single"])
    for chain in config.chains:
        connectors = [s for s in services.values()
                      if _is_chainwatch(s) and s["command"] == ["connector", "--chain", chain.name]]
        assert len(connectors) >= 2, f"chain {chain.name}: two connector instances (HA)"
        for connector in connectors:
            assert f"127.0.0.1:{chain.metrics_port}/metrics" in " ".join(
                connector["healthcheck"]["test"])
    for name, service in data["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: publish {port} on loopback only"


def test_prometheus_and_grafana_are_provisioned_from_deploy() -> None:
    services = _resolved("single")["services"]
    config = load_config(CONFIGS["single"])
    prometheus = services["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    scrape_file = DEPLOY / mounted["/etc/prometheus"] / Path(config_flag.split("=")[1]).name
    scrape = yaml.safe_load(scrape_file.read_text())
    for rule_file in scrape["rule_files"]:
        assert (scrape_file.parent / rule_file).exists()
    targets = {job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
               for job in scrape["scrape_configs"]}
    workers = {n for n, s in services.items() if _is_chainwatch(s) and s["command"] == ["worker"]}
    assert targets["chainwatch-worker"] == {f"{w}:{config.api.port}" for w in workers}
    assert targets["chainwatch-connector"] == _connector_targets(services, config)
    grafana = services["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert (DEPLOY / "grafana/provisioning/datasources").is_dir()
    assert (DEPLOY / "grafana/provisioning/dashboards").is_dir()
    provider = yaml.safe_load(next((DEPLOY / "grafana/provisioning/dashboards").glob("*.y*ml"))
                              .read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert mounts[dashboards_path] == "./grafana/dashboards"
    assert grafana["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"], "a file secret instead"


def _connector_targets(services: dict[str, dict[str, Any]],
                       config: ChainwatchConfig) -> set[str]:
    """``service:metrics_port`` of every connector service whose chain serves metrics."""
    targets = set()
    for name, service in services.items():
        command = service.get("command") or []
        if _is_chainwatch(service) and command[:1] == ["connector"]:
            port = config.chain(command[command.index("--chain") + 1]).metrics_port
            assert port is not None, f"{name}: its chain has no metrics_port to scrape"
            targets.add(f"{name}:{port}")
    return targets


@pytest.mark.parametrize("mode", ["single", "cluster"])
def test_connectors_bind_metrics_where_prometheus_reaches_them(mode: str) -> None:
    config = load_config(CONFIGS[mode])
    for chain in config.chains:
        host = ipaddress.ip_address(chain.metrics_host)
        assert host.is_unspecified, f"{CONFIGS[mode].name}: chains[{chain.name}].metrics_host " \
                                    f"{host} is not reachable from the prometheus service"
    services = _active(_resolved(mode), mode)
    assert _connector_targets(services, config), "no connector to scrape"
    for name, service in services.items():
        if _is_chainwatch(service) and service["command"][:1] == ["connector"]:
            assert "ports" not in service, f"{name}: the metrics port stays unpublished"


def test_no_secret_values_in_the_compose_file() -> None:
    for name, service in _resolved("single")["services"].items():
        for key, value in _environment(service).items():
            if re.search(r"TOKEN|SECRET|PASSWORD", key) and not key.endswith("__FILE"):
                pytest.fail(f"{name}.environment.{key}={value}: secrets go in chainwatch.env")


def test_every_chainwatch_service_in_any_profile_runs_a_real_command() -> None:
    for name, service in _resolved("single")["services"].items():
        if _is_chainwatch(service):
            assert_cli_accepts(service["command"], f"{name}.command")
