"""Hostile configuration, API bodies, imports and sink URLs: only chainwatch errors, and clear.

Each property feeds outside input that is garbled on purpose to a parser and checks that it
either gives a valid result or raises the project's own error naming what and where (key path,
``entries[i].field``, file and line), and that valid data next to the garbage is kept.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.api import entry_from_body
from monitor.errors import ConfigError, InputError
from monitor.lists.loader import build_index
from monitor.records import WatchEntry
from monitor.settings import (
    ChainwatchConfig,
    EnvSettings,
    ListConfig,
    SinksPolicy,
    dump_config,
    load_config,
    load_config_text,
    parse_config,
)
from monitor.watchlist_io import parse_watchlist

HOSTILE = settings(derandomize=True, database=None, deadline=None, max_examples=200,
                   suppress_health_check=[HealthCheck.too_slow])
KEY = "s3cret-api-key"

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**300), max_value=2**300),
                    st.floats(allow_nan=False), st.text(max_size=30),
                    st.sampled_from(["", "latest", "0x", "-1", "1e400", "\x00", "ethereum"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=10)

BASE: dict[str, Any] = {
    "chains": [{"name": "ethereum", "chain_id": 1, "confirmations": 12,
                "rpc_urls": [f"https://mainnet.example.org/v3/{KEY}",
                             f"https://rpc.example.net/?apikey={KEY}"]}],
    "kafka": {"topic_prefix": "cw."},
    "sinks": [{"name": "hook", "type": "webhook", "url": "https://alerts.example.org/hook",
               "secret_env": "HOOK_SECRET", "filters": {"severities": ["high"]}}],
    "rules": [{"name": "watched-address"}],
    "taint": {"max_hops": 4},
    "api": {"port": 6066},
    "sinks_policy": {"deny_private_networks": True},
}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a nested dict/list, e.g. ``("chains", 0, "rpc_urls", 1)``."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            out += paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            out += paths(inner, (*prefix, index))
    return out


BASE_PATHS = paths(BASE)


def shown(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --------------------------------------------------------------------------- YAML configuration
def test_the_base_configuration_is_valid() -> None:
    config = parse_config(copy.deepcopy(BASE), "base.yaml")
    dumped = dump_config(config, EnvSettings())
    assert KEY not in dumped


@HOSTILE
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: b.decode("latin-1"))))
def test_any_text_loads_or_raises_config_error(text: str) -> None:
    try:
        config = load_config_text(text, "fuzz.yaml")
    except ConfigError as exc:
        assert "fuzz.yaml" in str(exc)
    else:
        assert isinstance(config, ChainwatchConfig)


@HOSTILE
@given(path=st.sampled_from(BASE_PATHS), value=json_values)
def test_a_wrong_value_anywhere_is_named_by_its_key_path(path: tuple[Any, ...],
                                                         value: Any) -> None:
    data = copy.deepcopy(BASE)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    text = yaml.safe_dump(data)
    try:
        config = load_config_text(text, "mutated.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert "mutated.yaml" in message
        assert KEY not in message  # URLs are never echoed with their path or query
        # The error points at the mutated key or one of its parents (or a cross-reference).
        prefixes = [shown(path[:i]) for i in range(len(path), 0, -1)]
        assert any(p in message for p in prefixes) or "(top level)" in message, message
    else:
        dumped = dump_config(config, EnvSettings())
        assert KEY not in dumped


@HOSTILE
@given(path=st.sampled_from([p for p in BASE_PATHS if not isinstance(p[-1], int)]),
       key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_unknown_keys_are_refused_by_name(path: tuple[Any, ...], key: str) -> None:
    data = copy.deepcopy(BASE)
    target = data
    for part in path[:-1]:
        target = target[part]
    if not isinstance(target, dict) or key in target or path[-2:-1] == ("params",):
        return
    target[key] = 1
    try:
        parse_config(data, "extra.yaml")
    except ConfigError as exc:
        assert key in str(exc)
    else:
        pytest.fail(f"unknown key {key!r} at {shown(path[:-1])} was accepted")


@pytest.mark.parametrize(("text", "expected"), [
    ("chains: [", "invalid YAML at line 1"),
    ("chains:\n  - name: a\n\tchain_id: 1", "invalid YAML at line 3"),
    ("- just\n- a list", "the top level must be a mapping"),
    ("!!python/object/apply:os.system ['true']", "invalid YAML"),
    ("a: &a [*a]", "aliases are expanded"),  # recursive alias
    ("a: " + "[" * 200 + "]" * 200, "chains"),
    ("x" * 1_000_001, "larger than"),
])
def test_invalid_yaml_documents(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        load_config_text(text, "bad.yaml")


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ["chains: [{name: a, chain_id: 1, rpc_urls: ['https://x.example']}]",
             "rules:", "- name: watched-address", "  params:",
             "    x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"    x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 9) + "]" for i in range(1, 9)]
    with pytest.raises(ConfigError, match="aliases are expanded"):
        load_config_text("\n".join(lines), "laughs.yaml")


def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"chains: []\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


@HOSTILE
@given(port=st.integers(min_value=65536, max_value=10**30) | st.text(
    alphabet="0123456789abc-", min_size=1, max_size=8))
def test_rpc_urls_with_impossible_ports_are_config_errors(port: object) -> None:
    data = copy.deepcopy(BASE)
    data["chains"][0]["rpc_urls"] = [f"https://node.example:{port}/{KEY}"]
    try:
        config = parse_config(data, "ports.yaml")
    except ConfigError as exc:
        assert "chains[0].rpc_urls[0]" in str(exc) and KEY not in str(exc)
    else:
        assert KEY not in dump_config(config, EnvSettings())


# --------------------------------------------------------------------------- sink URLs
url_parts = st.text(alphabet="abcAZ09-._~:/?#[]@!$&'()*+,;=% \\\t\n\x00é", max_size=25)


@HOSTILE
@given(scheme=st.sampled_from(["http", "https", "ftp", "javascript", "", "HTTPS", "file"]),
       host=url_parts, rest=url_parts, policy=st.builds(SinksPolicy))
def test_any_sink_url_is_accepted_or_refused_without_leaking_credentials(
        scheme: str, host: str, rest: str, policy: SinksPolicy) -> None:
    url = f"{scheme}://user:pw-{KEY}@{host}/{rest}?token={KEY}"
    data = copy.deepcopy(BASE)
    data["sinks"][0]["url"] = url
    data["sinks_policy"] = policy.model_dump()
    with pytest.raises(ConfigError) as info:
        parse_config(data, "urls.yaml")
    assert "sinks[0].url" in str(info.value)
    assert KEY not in str(info.value)
    assert policy.url_problem(url) is not None


# --------------------------------------------------------------------------- API bodies
api_keys = st.sampled_from(["address", "chain", "case_id", "label", "category", "extra"])
ADDRESS = "0x" + "ab" * 20


@HOSTILE
@given(item=st.one_of(json_values, st.dictionaries(api_keys, st.one_of(
    json_values, st.just(ADDRESS), st.just("ethereum")), max_size=6)),
       index=st.integers(0, 10_000))
def test_any_api_entry_is_a_watch_entry_or_an_input_error_naming_the_item(
        item: Any, index: int) -> None:
    try:
        entry = entry_from_body(item, index)
    except InputError as exc:
        assert str(exc).startswith(f"entries[{index}]")
    else:
        assert isinstance(entry, WatchEntry)
        assert entry.address.startswith("0x") and len(entry.address) == 42


@HOSTILE
@given(body=st.lists(st.one_of(json_values, st.just(
    {"address": ADDRESS, "chain": "ethereum", "case_id": "CASE-1"})), max_size=6))
def test_api_body_errors_point_at_the_first_bad_entry(body: list[Any]) -> None:
    good = {"address": ADDRESS, "chain": "ethereum", "case_id": "CASE-1"}
    entries = []
    for i, item in enumerate(body):
        try:
            entries.append(entry_from_body(json.loads(json.dumps(item)), i))
        except InputError as exc:
            assert str(exc).startswith(f"entries[{i}]")
            assert item != good
    assert len(entries) >= body.count(good)


# --------------------------------------------------------------------------- imports
watch_rows = st.lists(st.one_of(
    st.just({"address": ADDRESS, "label": "kept"}),
    st.dictionaries(api_keys, json_values, max_size=4),
    json_values), max_size=8)


@HOSTILE
@given(rows=watch_rows, fmt=st.sampled_from(["json", "jsonl"]))
def test_watchlist_json_keeps_every_valid_row_among_hostile_ones(rows: list[Any],
                                                                 fmt: str) -> None:
    text = (json.dumps(rows, indent=1) if fmt == "json"
            else "\n".join(json.dumps(r) for r in rows))
    result = parse_watchlist(text, fmt, "hostile." + fmt,
                             {"chain": "ethereum", "case_id": "CASE-1"})
    kept = [e for e in result.entries if e.label == "kept"]
    assert len(kept) == (1 if {"address": ADDRESS, "label": "kept"} in rows else 0)
    for error in result.errors:
        assert error.source == "hostile." + fmt and error.line >= 1


@pytest.mark.parametrize("content", [b"", b"\xff\xfe garbage", b"not,an,address\n" * 3,
                                     b"[" * 100_000, b"0x" + b"ab" * 20 + b"\x00\n"])
def test_an_unusable_list_file_stops_start_with_the_list_named(tmp_path: Path,
                                                               content: bytes) -> None:
    path = tmp_path / "hostile.txt"
    path.write_bytes(content)
    config = ListConfig(name="ofac-eth", path=str(path), format="ofac-txt",
                        category="sanctioned", source="fuzz", published="2024-01-01")
    try:
        index = build_index([config], tmp_path)
    except ConfigError as exc:
        assert str(exc).startswith("lists[0] (ofac-eth): ")
    else:
        assert index is not None
