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
