"""Sinks: exact amount formatting, the console line, the registry, and the signed webhook sink
delivering to a real receiver on loopback (retries, Retry-After, permanent failures, metrics).
"""

from __future__ import annotations

import asyncio
import doctest
import io
import json
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

import monitor.sinks.base
import monitor.sinks.console
import monitor.sinks.signing
import monitor.sinks.webhook
from monitor.errors import ConfigError, SinkError
from monitor.records import Alert, Asset, WatchEntry, alert_id, encode
from monitor.settings import SinkConfig
from monitor.sinks import (
    SINK_TYPES,
    ConsoleSink,
    Secret,
    WebhookSink,
    build_sinks,
    format_alert,
    format_amount,
)
from monitor.sinks.signing import sign, verify
from monitor.sinks.webhook import backoff_delay, parse_retry_after, safe_url
from tests.support.receivers import ThreadedWebhookReceiver, WebhookReceiver

SECRET = b"whsec-test-7d1f0c"
WATCHED = "0x8589427373d6d84e98730d7795d8f6f8731fda16"  # Tornado Cash (OFAC 2022 listing)
OTHER = "0x742d35cc6634c0532925a3b844bc454e4438f44e"


def make_alert(**overrides: Any) -> Alert:
    """An alert about a 1.5 ETH transfer out of a watched wallet."""
    tx = "0x" + uuid.uuid4().hex * 2
    transfer_id = f"ethereum:{tx}:tx"
    fields: dict[str, Any] = dict(
        id=alert_id("watched-address", transfer_id, "CASE-2024-017"),
        rule="watched-address", severity="high", status="confirmed", chain="ethereum",
        block_number=19_000_000, block_hash="0x" + "ab" * 32, block_time=1_705_000_000,
        tx_hash=tx, transfer_id=transfer_id, transfer_kind="native",
        from_address=WATCHED, to_address=OTHER,
        asset=Asset(kind="native", symbol="ETH", decimals=18),
        amount=str(1_500_000_000_000_000_000), direction="out",
        watch=WatchEntry(chain="ethereum", address=WATCHED, case_id="CASE-2024-017",
                         label="Seized wallet A"),
        confirmations=12, detected_at=1_705_000_030.5,
    )
    fields.update(overrides)
    return Alert(**fields)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def failures(sink: str, reason: str) -> float:
    return metric("chainwatch_sink_failures_total", sink=sink, reason=reason)


def deliveries(sink: str) -> float:
    return metric("chainwatch_sink_deliveries_total", sink=sink)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def webhook(url: str, *, name: str | None = None, secret: bytes = SECRET,
            **options: Any) -> WebhookSink:
    options.setdefault("backoff_initial_seconds", 0.01)
    options.setdefault("backoff_max_seconds", 0.05)
    options.setdefault("timeout_seconds", 5.0)
    return WebhookSink(name or unique("hook"), url, secret, **options)


# --------------------------------------------------------------------------- amounts
@pytest.mark.parametrize(("amount", "decimals", "symbol", "expected"), [
    (0, 18, "ETH", "0 ETH"),
    ("0", 18, "ETH", "0 ETH"),
    (1, 18, "ETH", "0.000000000000000001 ETH"),
    (1_500_000_000_000_000_000, 18, "ETH", "1.5 ETH"),
    ("1500000000000000000", 18, "ETH", "1.5 ETH"),
    (10**18, 18, "ETH", "1 ETH"),
    (2_500_000_000, 6, "tUSD", "2,500 tUSD"),
    (1_234_567_891, 6, "USDC", "1,234.567891 USDC"),
    (1, 6, "USDT", "0.000001 USDT"),
    (999_999, 6, "USDT", "0.999999 USDT"),
    (12_345, 0, "NFT", "12,345 NFT"),
    (2**256 - 1, 18, "ETH",
     "115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457"
     ".584007913129639935 ETH"),
    (2**256 - 1, 0, None,
     "115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457,584,007,"
     "913,129,639,935"),
    (1_234_567, None, "XYZ", "1,234,567 base units of XYZ"),
    (1_234_567, None, None, "1,234,567 base units"),
    (5, -1, "BAD", "5 base units of BAD"),
    (5, 10**9, "BAD", "5 base units of BAD"),  # absurd decimals: no 10**(10**9)
    (1_500_000, 6, None, "1.5"),
    (-1_500_000, 6, "USDC", "-1.5 USDC"),
])
def test_format_amount(amount: int | str, decimals: int | None, symbol: str | None,
                       expected: str) -> None:
    assert format_amount(amount, decimals, symbol) == expected


@pytest.mark.parametrize("amount", ["1e18", "1.5", "", "0x10", "١٢", "12 34", "9" * 5000])
def test_format_amount_never_raises_on_bad_text(amount: str) -> None:
    shown = format_amount(amount, 18, "ETH")
    assert "not an integer amount" in shown
    assert len(shown) < 200


def test_format_amount_escapes_hostile_symbols() -> None:
    shown = format_amount(1, 0, "EVIL\n[CRITICAL] fake alert\u202e")
    assert "\n" not in shown and "\u202e" not in shown


@given(amount=st.integers(min_value=0, max_value=2**256), decimals=st.integers(0, 60))
def test_property_format_amount_is_exact(amount: int, decimals: int) -> None:
    text = format_amount(amount, decimals, None).replace(",", "")
    whole, _, fraction = text.partition(".")
    assert not fraction.endswith("0")
    assert int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0") == amount


# --------------------------------------------------------------------------- console
async def test_console_sink_prints_one_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    sink = ConsoleSink(unique("console"))
    alert = make_alert()
    before = deliveries(sink.name)
    async with sink:
        await sink.deliver(alert)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    for part in ("[HIGH]", "watched-address", "chain=ethereum", "block=19000000",
                 f"tx={alert.tx_hash}", "direction=out", "amount='1.5 ETH'",
                 "case='CASE-2024-017'", "label='Seized wallet A'", f"id={alert.id}"):
        assert part in out
    assert deliveries(sink.name) == before + 1


def test_console_line_cannot_be_split_by_a_hostile_label() -> None:
    alert = make_alert(watch=WatchEntry(chain="ethereum", address=WATCHED, case_id="C-1",
                                        label="x\n[CRITICAL] forged line\r\x1b[2J"))
    line = format_alert(alert)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "\\u000a" in line


def test_console_line_for_a_token_without_metadata() -> None:
    token = "0xdac17f958d2ee523a2206206994597c13d831ec7"
    alert = make_alert(asset=Asset(kind="erc20", address=token), amount="2500000000",
                       transfer_kind="erc20")
    assert f"amount='2,500,000,000 base units of {token}'" in format_alert(alert)


async def test_console_sink_reports_a_broken_stream() -> None:
    stream = io.StringIO()
    stream.close()
    sink = ConsoleSink(unique("console"), stream=stream)
    with pytest.raises(SinkError, match="cannot write"):
        await sink.deliver(make_alert())
    assert failures(sink.name, "io") == 1


def test_min_severity_filters() -> None:
    sink = ConsoleSink("c", min_severity="high")
    assert sink.accepts(make_alert(severity="high"))
    assert sink.accepts(make_alert(severity="critical"))
    assert not sink.accepts(make_alert(severity="medium"))
    assert ConsoleSink("c").accepts(make_alert(severity="info"))


# --------------------------------------------------------------------------- registry
def test_registry_lists_the_built_in_types() -> None:
    assert SINK_TYPES["console"] is ConsoleSink
    assert SINK_TYPES["webhook"] is WebhookSink


def test_build_sinks_from_config() -> None:
    configs = [
        SinkConfig(name="console", type="console", min_severity="medium"),
        SinkConfig(name="aru-hook", type="webhook", url="https://aru.example/hook?token=t0p",
                   secret_env="ARU_WEBHOOK_SECRET", max_attempts=3, timeout_seconds=2),
    ]
    sinks = build_sinks(configs, {"ARU_WEBHOOK_SECRET": "s3cr3t-value"})
    assert [type(s) for s in sinks] == [ConsoleSink, WebhookSink]
    console, hook = sinks
    assert console.min_severity == "medium"
    assert isinstance(hook, WebhookSink)
    assert (hook.name, hook.max_attempts, hook.timeout_seconds) == ("aru-hook", 3, 2)
    assert "s3cr3t-value" not in repr(hook) and "t0p" not in repr(hook)
    assert repr(hook) == ("WebhookSink(name='aru-hook', url='https://aru.example/hook', "
                          "min_severity='info', max_attempts=3)")


@pytest.mark.parametrize("environ", [{}, {"ARU_WEBHOOK_SECRET": ""},
                                     {"ARU_WEBHOOK_SECRET": "   "}])
def test_build_sinks_names_sink_and_variable_when_secret_missing(
        environ: dict[str, str]) -> None:
    config = SinkConfig(name="aru-hook", type="webhook", url="https://aru.example/hook",
                        secret_env="ARU_WEBHOOK_SECRET")
    with pytest.raises(ConfigError) as info:
        build_sinks([config], environ)
    assert "aru-hook" in str(info.value) and "ARU_WEBHOOK_SECRET" in str(info.value)


def test_secret_never_shows() -> None:
    secret = Secret(b"hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
    assert secret.reveal() == b"hunter2"


def test_sink_docstring_examples_run() -> None:
    for module in (monitor.sinks.base, monitor.sinks.console, monitor.sinks.signing,
                   monitor.sinks.webhook):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
    assert "memory" not in SINK_TYPES  # the example cleaned up after itself


# --------------------------------------------------------------------------- helpers
def test_parse_retry_after() -> None:
    now = 1_760_000_000.0
    assert parse_retry_after("1", now) == 1.0
    assert parse_retry_after(" 120 ", now) == 120.0
    date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(30.0)
    past = format_datetime(datetime.fromtimestamp(now - 30, UTC), usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    for bad in (None, "", "soon", "-1", "1.5", "Wed, 99 Foo 2025 99:99:99 GMT"):
        assert parse_retry_after(bad, now) is None


def test_backoff_is_bounded_and_grows() -> None:
    for attempt in range(1, 80):
        delay = backoff_delay(attempt, 0.5, 30.0)
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_safe_url_drops_credentials_query_and_fragment() -> None:
    assert safe_url("https://user:pw@hooks.example:8443/a/b?token=x#frag") == \
        "https://hooks.example:8443/a/b"
    assert safe_url("http://[::1]:9000/h?k=v") == "http://[::1]:9000/h"


# --------------------------------------------------------------------------- webhook
@pytest.fixture
async def receiver() -> Any:
    async with WebhookReceiver(SECRET) as server:
        yield server


async def test_webhook_delivers_once_signed_with_idempotency_key(
        receiver: WebhookReceiver) -> None:
    alert = make_alert()
    async with webhook(receiver.url) as sink:
        before = deliveries(sink.name)
        latency_before = metric("chainwatch_sink_delivery_seconds_count", sink=sink.name)
        await sink.deliver(alert)
    [received] = await receiver.wait_for(1, timeout=5)
    assert receiver.ids() == [alert.id]
    assert len(receiver.attempts) == 1
    headers = received.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == f"{alert.id}:0:{alert.status}"
    assert headers["X-Chainwatch-Alert-Id"] == alert.id
    assert abs(int(headers["X-Chainwatch-Timestamp"]) - time.time()) < 60
    assert headers["X-Chainwatch-Signature"].startswith("v1=")
    assert verify(SECRET, headers["X-Chainwatch-Timestamp"], headers["X-Chainwatch-Signature"],
                  received.body)
    assert received.body == encode(alert)
    assert received.alert == alert
    assert received.payload["amount"] == "1500000000000000000"
    assert received.payload["from"] == WATCHED
    assert deliveries(sink.name) == before + 1
    assert metric("chainwatch_sink_delivery_seconds_count", sink=sink.name) == latency_before + 1
    assert receiver.rejected_signatures == 0


async def test_webhook_retries_server_errors_then_succeeds(receiver: WebhookReceiver) -> None:
    receiver.fail_with = [500, 500]
    alert = make_alert()
    async with webhook(receiver.url, max_attempts=4) as sink:
        await sink.deliver(alert)
    assert receiver.ids() == [alert.id]
    assert [a.status for a in receiver.attempts] == [500, 500, 200]
    assert {a.alert_id for a in receiver.attempts} == {alert.id}  # same idempotency key
    assert failures(sink.name, "server_error") == 2
    assert deliveries(sink.name) == 1


async def test_webhook_honours_retry_after_seconds(receiver: WebhookReceiver) -> None:
    receiver.fail_with = [(429, "1")]
    async with webhook(receiver.url) as sink:  # backoff alone would wait <= 0.05 s
        await sink.deliver(make_alert())
    first, second = receiver.attempts
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 0.9
    assert failures(sink.name, "rate_limited") == 1


async def test_webhook_honours_retry_after_http_date(receiver: WebhookReceiver) -> None:
    when = format_datetime(datetime.fromtimestamp(time.time() + 2, UTC), usegmt=True)
    receiver.fail_with = [(503, when)]
    async with webhook(receiver.url) as sink:
        await sink.deliver(make_alert())
    first, second = receiver.attempts
    # The date has one-second resolution, so the wait asked for is 1-2 s; backoff alone would
    # be <= 0.05 s. A generous floor keeps this robust on a loaded machine.
    assert second.received_at - first.received_at >= 0.5


async def test_webhook_caps_retry_after(receiver: WebhookReceiver) -> None:
    receiver.fail_with = [(429, "3600")]
    async with webhook(receiver.url, retry_after_max_seconds=0.1) as sink:
        started = time.monotonic()
        await sink.deliver(make_alert())
    assert time.monotonic() - started < 5
    assert len(receiver.alerts) == 1


async def test_webhook_gives_up_after_max_attempts(receiver: WebhookReceiver,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    receiver.always_fail = 503
    url = receiver.url + "?token=query-secret"
    sink = webhook(url, max_attempts=3)
    caplog.set_level(logging.DEBUG)
    async with sink:
        with pytest.raises(SinkError) as info:
            await sink.deliver(make_alert())
    assert len(receiver.attempts) == 3 and receiver.alerts == []
    assert failures(sink.name, "server_error") == 3
    assert deliveries(sink.name) == 0
    message = str(info.value)
    assert "after 3 attempt(s)" in message and sink.name in message and "503" in message
    for text in (message, caplog.text):
        assert SECRET.decode() not in text and "query-secret" not in text


async def test_webhook_does_not_retry_a_client_error(receiver: WebhookReceiver) -> None:
    receiver.fail_with = [400]
    sink = webhook(receiver.url, max_attempts=5)
    async with sink:
        with pytest.raises(SinkError, match="permanent failure after 1 attempt"):
            await sink.deliver(make_alert())
    assert len(receiver.attempts) == 1
    assert failures(sink.name, "rejected") == 1


async def test_webhook_retries_request_timeout_408(receiver: WebhookReceiver) -> None:
    receiver.fail_with = [408]
    async with webhook(receiver.url) as sink:
        await sink.deliver(make_alert())
    assert [a.status for a in receiver.attempts] == [408, 200]
    assert failures(sink.name, "timeout") == 1


async def test_webhook_does_not_follow_redirects(receiver: WebhookReceiver) -> None:
    receiver.fail_with = [(307, {"Location": receiver.url})]
    sink = webhook(receiver.url)
    async with sink:
        with pytest.raises(SinkError, match="redirect"):
            await sink.deliver(make_alert())
    assert len(receiver.attempts) == 1 and receiver.alerts == []
    assert failures(sink.name, "redirect") == 1


async def test_webhook_with_wrong_secret_is_refused_and_not_retried(
        receiver: WebhookReceiver) -> None:
    sink = webhook(receiver.url, secret=b"not-the-shared-secret")
    async with sink:
        with pytest.raises(SinkError, match="401"):
            await sink.deliver(make_alert())
    assert receiver.rejected_signatures == 1 and receiver.alerts == []
    assert failures(sink.name, "rejected") == 1


async def test_webhook_retries_refused_connections() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = webhook(f"http://127.0.0.1:{port}/hook", max_attempts=3)
    async with sink:
        with pytest.raises(SinkError, match="connection"):
            await sink.deliver(make_alert())
    assert failures(sink.name, "connection") == 3


async def test_webhook_times_out_slow_receivers(receiver: WebhookReceiver) -> None:
    receiver.respond_after = 1.0
    sink = webhook(receiver.url, timeout_seconds=0.2, max_attempts=2)
    async with sink:
        with pytest.raises(SinkError, match="timeout"):
            await sink.deliver(make_alert())
    assert failures(sink.name, "timeout") == 2


async def test_webhook_concurrent_deliveries_share_one_session(
        receiver: WebhookReceiver) -> None:
    alerts = [make_alert() for _ in range(25)]
    async with webhook(receiver.url) as sink:
        session = sink._session
        await asyncio.gather(*(sink.deliver(a) for a in alerts))
        assert sink._session is session
    await receiver.wait_for(25, timeout=5)
    assert sorted(receiver.ids()) == sorted(a.id for a in alerts)


async def test_webhook_close_is_idempotent_and_sink_reopens() -> None:
    async with WebhookReceiver(SECRET) as server:
        sink = webhook(server.url)
        await sink.deliver(make_alert())  # opens its session lazily
        await sink.close()
        await sink.close()
        await sink.deliver(make_alert())
        await sink.close()
        assert len(server.alerts) == 2


# --------------------------------------------------------------------------- receivers
async def test_receiver_wait_for_reports_what_arrived(receiver: WebhookReceiver) -> None:
    with pytest.raises(TimeoutError, match="0 of 1 alert"):
        await receiver.wait_for(1, timeout=0.1)


async def test_receiver_rejects_unsigned_and_malformed_posts(receiver: WebhookReceiver) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(receiver.url, data=b"{}") as response:
            assert response.status == 401
        ts = int(time.time())
        headers = {"X-Chainwatch-Timestamp": str(ts),
                   "X-Chainwatch-Signature": sign(SECRET, ts, b"{}")}
        async with session.post(receiver.url, data=b"{}", headers=headers) as response:
            assert response.status == 400
    assert receiver.rejected_signatures == 1 and receiver.malformed == 1


def _post_signed(url: str, body: bytes, secret: bytes = SECRET) -> int:
    ts = int(time.time())
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Chainwatch-Timestamp": str(ts),
        "X-Chainwatch-Signature": sign(secret, ts, body)})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_threaded_receiver_from_synchronous_code() -> None:
    alert = make_alert()
    with ThreadedWebhookReceiver(SECRET, fail_with=[502]) as server:
        assert _post_signed(server.url, encode(alert)) == 502
        assert _post_signed(server.url, encode(alert)) == 200
        assert _post_signed(server.url, encode(alert), secret=b"wrong") == 401
        [received] = server.wait_for(1, timeout=5)
        assert received.payload["id"] == alert.id
        assert server.ids() == [alert.id] and server.rejected_signatures == 1
        with pytest.raises(TimeoutError, match="1 of 2"):
            server.wait_for(2, timeout=0.1)
    server.stop()  # idempotent


async def test_threaded_receiver_from_a_sink_in_another_loop() -> None:
    with ThreadedWebhookReceiver(SECRET, fail_with=[500]) as server:
        async with webhook(server.url) as sink:
            await sink.deliver(make_alert())
        assert len(await asyncio.to_thread(server.wait_for, 1, 5)) == 1
        assert json.loads(server.alerts[0].body)["rule"] == "watched-address"
