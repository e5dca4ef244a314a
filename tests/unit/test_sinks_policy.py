"""Outbound sink URLs: scheme, credentials and the private-network deny-list, at start and send."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import yaml

import monitor.egress
from monitor.egress import (
    DestinationDenied,
    GuardedResolver,
    guarded_connection,
    is_denied_ip,
    url_problem,
)
from monitor.errors import ConfigError, SinkError
from monitor.settings import SinkConfig, SinksPolicy, parse_config
from monitor.sinks import EmailSink, WebhookSink, build_sinks
from monitor.sinks.base import SinkContext
from monitor.sinks.chat import SlackSink
from tests.support.receivers import WebhookReceiver
from tests.unit.test_sinks import make_alert

SECRET = b"whsec-policy-test"
CHAINS = [{"name": "ethereum", "chain_id": 1, "rpc_urls": ["https://rpc.example.org/KEY"]}]


def config_with(sink: dict[str, Any], policy: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {"chains": CHAINS, "sinks": [sink]}
    if policy is not None:
        data["sinks_policy"] = policy
    return parse_config(yaml.safe_load(yaml.safe_dump(data)), "policy.yaml")


def webhook(url: str) -> dict[str, Any]:
    return {"name": "hook", "type": "webhook", "url": url, "secret_env": "HOOK_SECRET"}


@pytest.mark.parametrize(("url", "policy", "expected"), [
    ("http://alerts.example.org/hook", None, "plain http to alerts.example.org is refused"),
    ("https://user:hunter2@alerts.example.org/hook", None, "credentials in the URL"),
    ("https://:hunter2@alerts.example.org/hook", None, "credentials in the URL"),
    ("https://10.1.2.3/hook", {"deny_private_networks": True}, "10.1.2.3 is not a public"),
    ("https://169.254.169.254/latest", {"deny_private_networks": True}, "not a public"),
    ("https://[::ffff:127.0.0.1]/x", {"deny_private_networks": True}, "not a public"),
    ("http://localhost:8080/x", {"deny_private_networks": True}, "localhost is loopback"),
    ("http://127.0.0.1:8080/x", {"deny_private_networks": True}, "not a public"),
])
def test_refused_webhook_urls_name_the_key_and_never_the_credentials(
        url: str, policy: dict[str, Any] | None, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_with(webhook(url), policy)
    message = str(info.value)
    assert "policy.yaml: (top level)" in message and "sinks[0].url:" in message
    assert expected in message
    assert "hunter2" not in message


@pytest.mark.parametrize(("url", "policy"), [
    ("https://alerts.example.org/hook?token=1", None),
    ("http://127.0.0.1:9/hook", None),  # loopback may use http: the tests' receivers do
    ("http://localhost:9/hook", None),
    ("http://[::1]:9/hook", None),
    ("http://alerts.example.org/hook", {"allow_http": True}),
    ("https://alerts.example.org/hook", {"deny_private_networks": True}),  # checked at send
    ("https://8.8.8.8/hook", {"deny_private_networks": True}),
])
def test_accepted_webhook_urls(url: str, policy: dict[str, Any] | None) -> None:
    config_with(webhook(url), policy)


def test_telegram_api_url_and_smtp_host_are_checked_too() -> None:
    telegram = {"name": "tg", "type": "telegram", "bot_token_env": "TG_TOKEN", "chat_id": 1,
                "api_url": "http://telegram-proxy.example.org"}
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.api_url: plain http"):
        config_with(telegram)
    mail = {"name": "mail", "type": "email", "smtp_host": "192.168.1.10",
            "mail_from": "cw@example.org", "mail_to": ["unit@example.org"]}
    config_with(mail)
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.smtp_host: 192\.168\.1\.10 is not"):
        config_with(mail, {"deny_private_networks": True})


def test_unknown_policy_key_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"sinks_policy\.deny_private: Extra inputs"):
        config_with(webhook("https://a.example.org/"), {"deny_private": True})


@pytest.mark.parametrize(("address", "denied"), [
    ("8.8.8.8", False), ("1.1.1.1", False), ("2606:4700:4700::1111", False),
    ("10.0.0.1", True), ("172.16.5.4", True), ("192.168.0.1", True), ("127.0.0.1", True),
    ("169.254.169.254", True), ("100.64.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True),
    ("255.255.255.255", True), ("::1", True), ("fe80::1%eth0", True), ("fc00::1", True),
    ("::ffff:10.0.0.1", True), ("64:ff9b::a00:1", True), ("2002:7f00:1::1", True),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", True),  # Teredo, client 127.0.0.1
    ("not an address", True),
])
def test_denied_ranges(address: str, denied: bool) -> None:
    assert is_denied_ip(address) is denied


def test_url_problem_never_quotes_path_query_or_user_info() -> None:
    for url in ("ftp://u:hidden-pw@h/hidden-path?k=hidden-q", "https://h:99999/hidden-path",
                "http://u:hidden-pw@remote.example/hidden-path?k=hidden-q"):
        problem = url_problem(url, allow_http=False, deny_private_networks=True)
        assert problem is not None and "hidden" not in problem


def test_slack_url_from_the_environment_is_checked_when_bound() -> None:
    config = SinkConfig(name="slack", type="slack", url_env="SLACK_URL")
    environ = {"SLACK_URL": "http://hooks.example.org/services/T0/B0/secret-part"}
    with pytest.raises(ConfigError) as info:
        build_sinks([config], environ, SinkContext())
    assert "plain http to hooks.example.org" in str(info.value)
    assert "secret-part" not in str(info.value)
    environ = {"SLACK_URL": "https://10.0.0.7/services/T0/B0/secret-part"}
    with pytest.raises(ConfigError, match="not a public address"):
        build_sinks([config], environ,
                    SinkContext(policy=SinksPolicy(deny_private_networks=True)))
    (sink,) = build_sinks([config], {"SLACK_URL": "https://hooks.example.org/services/x"},
                          SinkContext(policy=SinksPolicy(deny_private_networks=True)))
    assert isinstance(sink, SlackSink)


class _FixedResolver:
    """Stands in for the system resolver: ``rebind.test`` answers a loopback address."""

    def __init__(self) -> None:
        self.calls = 0

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[dict[str, Any]]:
        self.calls += 1
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


async def test_guarded_resolver_refuses_a_name_that_resolves_to_loopback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor.egress, "DefaultResolver", _FixedResolver)
    resolver = GuardedResolver()
    with pytest.raises(DestinationDenied, match=r"rebind\.test resolves to 127\.0\.0\.1"):
        await resolver.resolve("rebind.test", 443)
    await resolver.close()


async def test_webhook_send_time_check_catches_dns_rebinding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL passed the start-up check (a name); at send time it resolves to loopback."""
    monkeypatch.setattr(monitor.egress, "DefaultResolver", _FixedResolver)
    async with WebhookReceiver(SECRET) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        url = f"http://rebind.test:{port}/hook"
        policy = SinksPolicy(allow_http=True, deny_private_networks=True)
        assert policy.url_problem(url) is None
        sink = WebhookSink("hook", url, SECRET, max_attempts=3, backoff_initial_seconds=0.01)
        sink.bind(SinkContext(policy=policy))
        async with sink:
            with pytest.raises(SinkError) as info:
                await sink.deliver(make_alert())
        assert "permanent failure after 1 attempt(s): denied_destination" in str(info.value)
        assert receiver.attempts == []
        # Without the deny-list the same resolution reaches the receiver.
        sink = WebhookSink("hook2", receiver.url, SECRET)
        sink.bind(SinkContext(policy=SinksPolicy()))
        async with sink:
            await sink.deliver(make_alert())
        assert len(receiver.alerts) == 1


def test_guarded_smtp_connection_refuses_loopback() -> None:
    with pytest.raises(DestinationDenied, match="localhost resolves to"):
        guarded_connection("localhost", 25, 1.0)


def test_email_sink_denies_a_private_host_when_bound() -> None:
    sink = EmailSink("mail", host="10.9.8.7", sender="cw@example.org",
                     recipients=["unit@example.org"])
    with pytest.raises(ConfigError, match=r"smtp_host: 10\.9\.8\.7 is not a public address"):
        sink.bind(SinkContext(policy=SinksPolicy(deny_private_networks=True)))
    sink.bind(SinkContext())
