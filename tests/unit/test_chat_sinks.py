"""Slack, Discord and Telegram sinks against real loopback receivers that check each service's
documented payload shape: readable text with exact amounts and explorer links, escaping,
429 with Retry-After (header or JSON hint) then exactly one delivery, permanent failures,
metrics, and credentials (webhook URLs, the bot token) never in logs, repr or errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.errors import ConfigError, SinkError
from monitor.records import Asset, WatchEntry
from monitor.settings import SinkConfig, SinkFilters, parse_config
from monitor.sinks import (
    DiscordSink,
    SinkContext,
    SlackSink,
    TelegramSink,
    build_sinks,
)
from monitor.sinks.chat import alert_view, explorer_link, mdv2_escape, render_plain
from tests.support.chat_receivers import (
    ChatReceiver,
    Reply,
    check_discord,
    check_slack,
    telegram_mdv2_text,
)
from tests.unit.test_sinks import WATCHED, deliveries, failures, make_alert, unique

EXPLORERS = {"ethereum": "https://etherscan.io"}
TRICKY_LABEL = "Mule <b>&co</b> _x*y_ [a](b) ~`>#+-=|{}.! @everyone \\ end"
FAST: dict[str, Any] = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


@pytest.fixture()
async def chat() -> AsyncIterator[ChatReceiver]:
    async with ChatReceiver() as receiver:
        yield receiver


def slack(receiver: ChatReceiver, **options: Any) -> SlackSink:
    for key, value in FAST.items():
        options.setdefault(key, value)
    return SlackSink(unique("slack"), receiver.slack_url, **options)


def discord(receiver: ChatReceiver, **options: Any) -> DiscordSink:
    for key, value in FAST.items():
        options.setdefault(key, value)
    return DiscordSink(unique("discord"), receiver.discord_url, **options)


def telegram(receiver: ChatReceiver, **options: Any) -> TelegramSink:
    for key, value in FAST.items():
        options.setdefault(key, value)
    return TelegramSink(unique("telegram"), receiver.telegram_token, -1001234567890,
                        api_url=receiver.base, **options)


def erc20_alert(**overrides: Any) -> Any:
    """A 2,500.5 tUSD ERC-20 transfer into the watched wallet, with a taint path."""
    fields: dict[str, Any] = dict(
        transfer_kind="erc20", log_index=3, direction="in", to_address=WATCHED,
        from_address="0x742d35cc6634c0532925a3b844bc454e4438f44e",
        asset=Asset(kind="erc20", address="0x" + "5f" * 20, symbol="tUSD", decimals=6),
        amount="2500500000", rule="exchange-deposit", severity="critical",
        title="case funds arrived at an exchange deposit address",
        evidence={"origin": WATCHED, "hops": 2, "path": [
            ["0x" + "aa" * 32, WATCHED, "0x" + "11" * 20, "5", 1],
            ["0x" + "bb" * 32, "0x" + "11" * 20, "0x" + "22" * 20, "5", 2]]},
    )
    fields.update(overrides)
    return make_alert(**fields)


# --------------------------------------------------------------------------- rendering
def test_view_has_what_an_investigator_needs() -> None:
    alert = make_alert()
    text = render_plain(alert_view(alert, EXPLORERS))
    for needle in ("1.5 ETH", "watched-address", "HIGH", "CASE-2024-017", "Seized wallet A",
                   f"https://etherscan.io/tx/{alert.tx_hash}",
                   f"https://etherscan.io/address/{WATCHED}",
                   "https://etherscan.io/block/19000000", alert.id):
        assert needle in text
    plain = render_plain(alert_view(alert, {}))
    assert "http" not in plain and alert.tx_hash in plain and WATCHED in plain


def test_amounts_are_exact_for_256_bit_values() -> None:
    alert = make_alert(amount=str(2**256 - 1))
    text = render_plain(alert_view(alert))
    assert "115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457" \
           ".584007913129639935 ETH" in text


def test_explorer_links_only_for_hex_values() -> None:
    assert explorer_link("https://x.example/", "tx", "0xAB") == "https://x.example/tx/0xAB"
    assert explorer_link("https://x.example", "tx", "0xab/../../evil") is None
    assert explorer_link("https://x.example", "block", "12") == "https://x.example/block/12"
    assert explorer_link("https://x.example", "address", "javascript:alert(1)") is None


def test_mdv2_escape_roundtrips_through_the_telegram_parser() -> None:
    assert telegram_mdv2_text(mdv2_escape(TRICKY_LABEL)) == TRICKY_LABEL


def test_shape_checkers_refuse_bad_payloads() -> None:
    with pytest.raises(ValueError, match="text"):
        check_slack({"blocks": []})
    with pytest.raises(ValueError, match="unescaped"):
        check_slack({"text": "x", "blocks": [{"type": "section",
                                              "text": {"type": "mrkdwn", "text": "a > b"}}]})
    with pytest.raises(ValueError, match="empty"):
        check_discord({"content": ""})
    with pytest.raises(ValueError, match="reserved"):
        telegram_mdv2_text("1.5 ETH")


# --------------------------------------------------------------------------- Slack
async def test_slack_message_shape_and_links(chat: ChatReceiver) -> None:
    sink = slack(chat, explorers=EXPLORERS)
    alert = make_alert(watch=WatchEntry(chain="ethereum", address=WATCHED,
                                        case_id="CASE-2024-017", label=TRICKY_LABEL))
    async with sink:
        await sink.deliver(alert)
    [message] = chat.of("slack")
    payload = message.payload
    assert "1.5 ETH" in payload["text"] and "CASE-2024-017" in payload["text"]
    assert [b["type"] for b in payload["blocks"]] == ["header", "section", "section", "context"]
    body = payload["blocks"][2]["text"]["text"]
    assert f"<https://etherscan.io/tx/{alert.tx_hash}|{alert.tx_hash}>" in body
    assert f"<https://etherscan.io/address/{WATCHED}|{WATCHED}>" in body
    fields = " ".join(f["text"] for f in payload["blocks"][1]["fields"])
    assert "&lt;b&gt;&amp;co&lt;/b&gt;" in fields  # the label cannot inject markup
    assert message.headers["Content-Type"].startswith("application/json")
    assert deliveries(sink.name) == 1


async def test_slack_429_retry_after_then_exactly_once(chat: ChatReceiver) -> None:
    chat.script["slack"] = [Reply(500), Reply.slack_rate_limited("1")]
    sink = slack(chat)
    started = time.monotonic()
    async with sink:
        await sink.deliver(make_alert())
    assert time.monotonic() - started >= 0.95  # the Retry-After: 1 was honoured
    assert [a.status for a in chat.tries("slack")] == [500, 429, 200]
    assert len(chat.of("slack")) == 1
    assert failures(sink.name, "server_error") == 1
    assert failures(sink.name, "rate_limited") == 1
    assert deliveries(sink.name) == 1


async def test_slack_gives_up_and_hides_the_webhook_url(chat: ChatReceiver,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    chat.always_fail["slack"] = Reply(503)
    caplog.set_level(logging.DEBUG)
    sink = slack(chat, max_attempts=3)
    async with sink:
        with pytest.raises(SinkError) as info:
            await sink.deliver(make_alert())
    assert len(chat.tries("slack")) == 3 and chat.of("slack") == []
    assert failures(sink.name, "server_error") == 3
    message = str(info.value)
    assert "gave up after 3 attempt(s)" in message
    for text in (message, caplog.text, repr(sink)):
        assert "slacksecretXYZ" not in text and "/services/" not in text


async def test_slack_client_error_is_permanent(chat: ChatReceiver) -> None:
    chat.script["slack"] = [Reply(404)]
    sink = slack(chat, max_attempts=5)
    async with sink:
        with pytest.raises(SinkError, match="permanent failure after 1 attempt"):
            await sink.deliver(make_alert())
    assert len(chat.tries("slack")) == 1


# --------------------------------------------------------------------------- Discord
async def test_discord_message_shape_and_no_mentions(chat: ChatReceiver) -> None:
    sink = discord(chat, explorers=EXPLORERS)
    alert = erc20_alert(watch=WatchEntry(chain="ethereum", address=WATCHED,
                                         case_id="CASE-2024-017", label=TRICKY_LABEL))
    async with sink:
        await sink.deliver(alert)
    [message] = chat.of("discord")
    payload = message.payload
    assert payload["allowed_mentions"] == {"parse": []}
    [embed] = payload["embeds"]
    assert embed["url"] == f"https://etherscan.io/tx/{alert.tx_hash}"
    assert embed["color"] == 0xE74C3C  # critical
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Amount"].startswith("2,500.5 tUSD")
    assert "exchange" in fields["Rule"]
    assert f"(https://etherscan.io/tx/{alert.tx_hash})" in fields["Transaction"]
    assert "(2 hops)" in fields["Path"].replace("\\", "")
    assert "\\_x\\*y\\_" in fields["Case"]  # markdown in the label is escaped
    assert alert.id in embed["footer"]["text"]


async def test_discord_honours_retry_after_in_the_json_body(chat: ChatReceiver) -> None:
    chat.script["discord"] = [Reply.discord_rate_limited(0.6)]
    sink = discord(chat)
    started = time.monotonic()
    async with sink:
        await sink.deliver(make_alert())
    assert time.monotonic() - started >= 0.55  # backoff alone would wait <= 0.05 s
    assert [a.status for a in chat.tries("discord")] == [429, 204]
    assert len(chat.of("discord")) == 1
    assert failures(sink.name, "rate_limited") == 1


# --------------------------------------------------------------------------- Telegram
@pytest.mark.parametrize("parse_mode", ["HTML", "MarkdownV2"])
async def test_telegram_send_message_parses(chat: ChatReceiver, parse_mode: str) -> None:
    sink = telegram(chat, parse_mode=parse_mode, explorers=EXPLORERS)
    alert = erc20_alert(watch=WatchEntry(chain="ethereum", address=WATCHED,
                                         case_id="CASE-2024-017", label=TRICKY_LABEL))
    async with sink:
        await sink.deliver(alert)
    assert chat.refusals == []
    [message] = chat.of("telegram")
    assert message.payload["chat_id"] == -1001234567890
    assert message.payload["parse_mode"] == parse_mode
    visible = message.payload["_visible_text"]
    for needle in ("2,500.5 tUSD", "exchange-deposit", "CRITICAL", "CASE-2024-017",
                   TRICKY_LABEL, alert.tx_hash, alert.id):
        assert needle in visible
    assert f"https://etherscan.io/tx/{alert.tx_hash}" in message.payload["text"]


async def test_telegram_honours_parameters_retry_after(chat: ChatReceiver) -> None:
    chat.script["telegram"] = [Reply.telegram_rate_limited(1)]
    sink = telegram(chat)
    started = time.monotonic()
    async with sink:
        await sink.deliver(make_alert())
    assert time.monotonic() - started >= 0.95
    assert [a.status for a in chat.tries("telegram")] == [429, 200]
    assert len(chat.of("telegram")) == 1


async def test_telegram_never_shows_the_token(chat: ChatReceiver,
                                              caplog: pytest.LogCaptureFixture) -> None:
    token = chat.telegram_token
    caplog.set_level(logging.DEBUG)
    # The receiver echoes the token in its error (worst case): it must still be redacted.
    chat.always_fail["telegram"] = Reply(502, body={"ok": False, "error_code": 502,
                                                    "description": f"bad gateway for {token}"})
    sink = telegram(chat, max_attempts=2)
    async with sink:
        with pytest.raises(SinkError) as info:
            await sink.deliver(make_alert())
    message = str(info.value)
    assert "bot***" in message and "bad gateway for ***" in message
    for text in (message, caplog.text, repr(sink), repr(info.value.context)):
        assert token not in text and token.split(":")[1] not in text


async def test_telegram_wrong_token_is_permanent(chat: ChatReceiver) -> None:
    sink = TelegramSink(unique("telegram"), "999:" + "W" * 30, 42, api_url=chat.base,
                        max_attempts=4, **FAST)
    async with sink:
        with pytest.raises(SinkError, match=r"permanent failure after 1 attempt.*401"):
            await sink.deliver(make_alert())


async def test_telegram_ok_false_is_a_failure(chat: ChatReceiver) -> None:
    chat.script["telegram"] = [Reply(200, body={"ok": False, "description": "odd"})]
    sink = telegram(chat, max_attempts=3)
    async with sink:
        with pytest.raises(SinkError, match="ok=false: odd"):
            await sink.deliver(make_alert())


# --------------------------------------------------------------------------- configuration
async def test_build_from_config_with_env_and_explorers(chat: ChatReceiver) -> None:
    environ = {"SLACK_URL": chat.slack_url, "DISCORD_URL": chat.discord_url,
               "TG_TOKEN": chat.telegram_token}
    configs = [
        SinkConfig(name="unit-slack", type="slack", url_env="SLACK_URL"),
        SinkConfig(name="unit-discord", type="discord", url_env="DISCORD_URL",
                   min_severity="critical"),
        SinkConfig(name="unit-telegram", type="telegram", bot_token_env="TG_TOKEN",
                   chat_id="@recovery_unit", parse_mode="MarkdownV2", api_url=chat.base,
                   filters=SinkFilters.model_validate({"cases": ["CASE-2024-017"]})),
    ]
    sinks = build_sinks(configs, environ, SinkContext(explorers=EXPLORERS))
    alert = make_alert()
    for sink in sinks:
        async with sink:
            if sink.accepts(alert):
                await sink.deliver(alert)
    assert len(chat.of("slack")) == 1 and chat.of("discord") == []  # high < critical
    [message] = chat.of("telegram")
    assert message.payload["chat_id"] == "@recovery_unit"
    assert "etherscan.io/tx/" in message.payload["text"]
    assert not sinks[2].accepts(make_alert(watch=WatchEntry(
        chain="ethereum", address=WATCHED, case_id="OTHER")))


def test_missing_or_empty_env_names_the_variable_not_the_value() -> None:
    config = SinkConfig(name="s", type="slack", url_env="SLACK_URL")
    with pytest.raises(ConfigError, match=r"SLACK_URL.*is not set"):
        build_sinks([config], {})
    with pytest.raises(ConfigError, match=r"SLACK_URL.*is empty"):
        build_sinks([config], {"SLACK_URL": "  "})
    with pytest.raises(ConfigError) as info:
        build_sinks([config], {"SLACK_URL": "ftp://hooks.example/secret-path"})
    assert "secret-path" not in str(info.value)
    tg = SinkConfig(name="t", type="telegram", bot_token_env="TG", chat_id=1)
    with pytest.raises(ConfigError) as info:
        build_sinks([tg], {"TG": "not-a-token-but-a-secret"})
    assert "not-a-token-but-a-secret" not in str(info.value)


@pytest.mark.parametrize(("sink", "message"), [
    ({"type": "slack"}, "a slack sink needs 'url_env'"),
    ({"type": "slack", "url_env": "X", "url": "https://hooks.slack.com/services/x"},
     "'url' not used by a slack sink"),
    ({"type": "telegram", "bot_token_env": "TG"}, "a telegram sink needs 'chat_id'"),
    ({"type": "telegram", "bot_token_env": "TG", "chat_id": "no spaces"}, "chat_id"),
    ({"type": "discord", "url_env": "lower"}, "url_env"),
    ({"type": "webhook", "url": "https://x.example/h", "secret_env": "S", "smtp_host": "h"},
     "'smtp_host' not used by a webhook sink"),
])
def test_chat_config_errors_name_the_key(sink: dict[str, Any], message: str) -> None:
    data = {"chains": [{"name": "ethereum", "chain_id": 1,
                        "rpc_urls": ["http://127.0.0.1:8545"]}],
            "sinks": [{"name": "chat", **sink}]}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "chainwatch.yaml")
    assert "chainwatch.yaml: sinks[0]" in str(info.value) and message in str(info.value)
