"""Configuration: validation errors name the file and key; secrets are masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.settings import EnvSettings, dump_config, load_config

GOOD = """
chains:
  - name: devnet
    chain_id: 31337
    rpc_urls: ["http://127.0.0.1:8545"]
    ws_url: ws://127.0.0.1:8545
    confirmations: 0
    traces: parity
sinks:
  - {name: console, type: console}
  - {name: ops, type: webhook, url: "http://127.0.0.1:9000/hook", secret_env: OPS_SECRET}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chainwatch.yaml"
    path.write_text(text)
    return path


def test_good_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.chain("devnet").traces == "parity"
    assert [s.name for s in config.sinks] == ["console", "ops"]
    assert config.rules[0].name == "watched-address"


@pytest.mark.parametrize(("text", "expected"), [
    ("chains: [", "invalid YAML at line 1"),
    ("- a\n- b\n", "top level must be a mapping"),
    (GOOD.replace("confirmations: 0", "confirmatons: 0"), "chains[0].confirmatons: Extra"),
    (GOOD.replace('"http://127.0.0.1:8545"', '"ftp://x"'), "chains[0].rpc_urls[0]"),
    (GOOD.replace("ws://127.0.0.1:8545", "http://127.0.0.1:8545"), "chains[0].ws_url"),
    (GOOD.replace("url: \"http://127.0.0.1:9000/hook\", ", ""), "a webhook sink needs 'url'"),
    (GOOD + "watchlists: [{path: x.csv, chain: nochain}]\n", "unknown chain 'nochain'"),
    (GOOD.replace("name: console, type: console", "name: ops, type: console"),
     "duplicate sinks name(s): ops"),
    (GOOD + "kafka: {compression: brotli}\n", "kafka.compression: Input should be 'none'"),
])
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "absent.yaml")


def test_unknown_chain_lookup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown chain 'x'; configured chains: devnet"):
        load_config(write(tmp_path, GOOD)).chain("x")


def test_secrets_are_masked_when_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINWATCH_API_TOKEN", "super-secret-token-value")
    env = EnvSettings()
    text = dump_config(load_config(write(tmp_path, GOOD)), env)
    assert "super-secret-token-value" not in text
    assert "**********" in text
    assert "super-secret-token-value" not in repr(env)


def test_connector_metrics_bind_loopback_by_default(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).chain("devnet").metrics_host == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "::1", "10.1.2.3"])
def test_connector_metrics_host_takes_ip_literals(tmp_path: Path, host: str) -> None:
    text = GOOD.replace("traces: parity", f'traces: parity\n    metrics_host: "{host}"')
    assert load_config(write(tmp_path, text)).chain("devnet").metrics_host == host


@pytest.mark.parametrize("host", ["localhost", "prometheus.example", "256.0.0.1", "",
                                  "0.0.0.0:9464"])
def test_connector_metrics_host_refuses_other_values(tmp_path: Path, host: str) -> None:
    path = write(tmp_path, GOOD.replace("traces: parity",
                                        f'traces: parity\n    metrics_host: "{host}"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "chains[0].metrics_host" in message
    assert "IPv4 or IPv6 address literal" in message
    assert str(path) in message


def test_block_compression_defaults_to_zstd_and_sizes_the_worker_fetch(tmp_path: Path) -> None:
    from monitor.app import fetch_size

    assert load_config(write(tmp_path, GOOD)).kafka.compression == "zstd"
    plain = load_config(write(tmp_path, GOOD + "kafka: {compression: none}\n"))
    assert plain.kafka.compression == "none"
    assert fetch_size("none") == 8 * 1024 * 1024  # about 40 blocks of JSON either way
    assert fetch_size("zstd") == 1024 * 1024
