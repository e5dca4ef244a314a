"""The email sink against a real SMTP server (aiosmtpd) on loopback: plain SMTP, STARTTLS with
AUTH, implicit TLS; headers (subject, Message-ID from the alert id), plain-text and HTML
bodies; retries on 4xx, permanent 5xx and authentication failures; the password never shown.
"""

from __future__ import annotations

import email
import email.policy
import logging
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from monitor.devservices.ports import free_port
from monitor.errors import ConfigError, SinkError
from monitor.settings import SinkConfig, SinkFilters, parse_config
from monitor.sinks import EmailSink, SinkContext, build_sinks
from monitor.sinks.base import Secret
from monitor.sinks.email import message_id
from tests.unit.test_sinks import WATCHED, deliveries, failures, make_alert, unique

USER = "alerts-bot"
PASSWORD = "smtp-pw-5d2e9a"
SENDER = "chainwatch@recovery.example"
RECIPIENTS = ["duty@recovery.example", "prosecutor@justice.example"]
FAST: dict[str, Any] = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


@dataclass
class Mailbox:
    """An aiosmtpd handler that stores mails and can be scripted to answer 4xx/5xx first."""

    mails: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    script: list[str] = field(default_factory=list)  # replies to DATA before accepting
    attempts: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.script:
            return self.script.pop(0)
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append((envelope, message))
        return "250 2.0.0 queued"


def _authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made with the openssl CLI."""
    directory = tmp_path_factory.mktemp("smtp-tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def _client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture()
def plain_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture()
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            tls_context=_server_context(certificate), require_starttls=True,
                            authenticator=_authenticator, auth_required=True,
                            auth_require_tls=True)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def sink_for(port: int, **options: Any) -> EmailSink:
    for key, value in FAST.items():
        options.setdefault(key, value)
    options.setdefault("tls", "none")
    return EmailSink(unique("mail"), host="127.0.0.1", port=port, sender=SENDER,
                     recipients=RECIPIENTS, **options)


def _bodies(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


# --------------------------------------------------------------------------- delivery
async def test_mail_headers_and_bodies(plain_server: tuple[Mailbox, int]) -> None:
    mailbox, port = plain_server
    sink = sink_for(port, explorers={"ethereum": "https://etherscan.io"})
    alert = make_alert()
    await sink.deliver(alert)
    [(envelope, message)] = mailbox.mails
    assert envelope.mail_from == SENDER and envelope.rcpt_tos == RECIPIENTS
    subject = str(message["Subject"])
    assert subject.startswith("[chainwatch] HIGH watched-address: 1.5 ETH")
    assert "CASE-2024-017" in subject
    assert message["From"] == SENDER and message["To"] == ", ".join(RECIPIENTS)
    assert message["Message-ID"] == f"<alert-{alert.id}@recovery.example>"
    assert message["X-Chainwatch-Alert-Id"] == alert.id
    assert message.get_content_type() == "multipart/alternative"
    plain, html = _bodies(message)
    for body in (plain, html):
        assert "1.5 ETH" in body and "CASE-2024-017" in body and alert.id in body
        assert f"https://etherscan.io/tx/{alert.tx_hash}" in body
    assert f'<a href="https://etherscan.io/address/{WATCHED}">' in html
    assert deliveries(sink.name) == 1


async def test_message_id_is_idempotent(plain_server: tuple[Mailbox, int]) -> None:
    mailbox, port = plain_server
    sink = sink_for(port)
    alert = make_alert()
    await sink.deliver(alert)
    await sink.deliver(alert)  # a redelivery
    await sink.deliver(make_alert())
    ids = [str(m["Message-ID"]) for _, m in mailbox.mails]
    assert ids[0] == ids[1] != ids[2]
    assert message_id(alert.id, SENDER) == ids[0]


async def test_label_cannot_inject_headers_or_html(plain_server: tuple[Mailbox, int]) -> None:
    from monitor.records import WatchEntry
    mailbox, port = plain_server
    label = "evil\r\nBcc: thief@evil.example <script>x</script>"
    await sink_for(port).deliver(make_alert(watch=WatchEntry(
        chain="ethereum", address=WATCHED, case_id="C-1", label=label)))
    [(envelope, message)] = mailbox.mails
    assert message["Bcc"] is None and envelope.rcpt_tos == RECIPIENTS
    _plain, html = _bodies(message)
    assert "<script>" not in html and "&lt;script&gt;" in html


async def test_starttls_with_auth(starttls_server: tuple[Mailbox, int],
                                  certificate: tuple[Path, Path],
                                  caplog: pytest.LogCaptureFixture) -> None:
    mailbox, port = starttls_server
    caplog.set_level(logging.DEBUG)
    sink = sink_for(port, tls="starttls", username=USER, password=Secret(PASSWORD.encode()),
                    ssl_context=_client_context(certificate))
    await sink.deliver(make_alert())
    assert len(mailbox.mails) == 1
    assert PASSWORD not in caplog.text and PASSWORD not in repr(sink)


async def test_wrong_password_is_permanent_and_not_shown(
        starttls_server: tuple[Mailbox, int], certificate: tuple[Path, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    mailbox, port = starttls_server
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-pw-77aa"
    sink = sink_for(port, tls="starttls", username=USER, password=Secret(wrong.encode()),
                    ssl_context=_client_context(certificate), max_attempts=4)
    with pytest.raises(SinkError, match=r"permanent failure after 1 attempt.*auth") as info:
        await sink.deliver(make_alert())
    assert mailbox.mails == []
    assert failures(sink.name, "auth") == 1
    for text in (str(info.value), caplog.text):
        assert wrong not in text and PASSWORD not in text


async def test_untrusted_certificate_is_refused(starttls_server: tuple[Mailbox, int]) -> None:
    _mailbox, port = starttls_server
    sink = sink_for(port, tls="starttls", username=USER, password=Secret(PASSWORD.encode()))
    with pytest.raises(SinkError, match="tls"):
        await sink.deliver(make_alert())


async def test_starttls_required_but_not_offered(plain_server: tuple[Mailbox, int]) -> None:
    _mailbox, port = plain_server
    sink = sink_for(port, tls="starttls", max_attempts=3)
    with pytest.raises(SinkError, match=r"permanent failure.*STARTTLS"):
        await sink.deliver(make_alert())


async def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            ssl_context=_server_context(certificate))
    controller.start()
    try:
        sink = sink_for(port, tls="tls", ssl_context=_client_context(certificate))
        await sink.deliver(make_alert())
    finally:
        controller.stop()
    assert len(mailbox.mails) == 1


async def test_transient_4xx_is_retried_then_delivered_once(
        plain_server: tuple[Mailbox, int]) -> None:
    mailbox, port = plain_server
    mailbox.script = ["451 4.3.0 try again later", "421 4.7.0 busy"]
    sink = sink_for(port)
    await sink.deliver(make_alert())
    assert mailbox.attempts == 3 and len(mailbox.mails) == 1
    assert failures(sink.name, "deferred") == 2
    assert deliveries(sink.name) == 1


async def test_5xx_is_permanent(plain_server: tuple[Mailbox, int]) -> None:
    mailbox, port = plain_server
    mailbox.script = ["554 5.7.1 rejected by policy"]
    sink = sink_for(port, max_attempts=5)
    with pytest.raises(SinkError, match=r"permanent failure after 1 attempt.*554"):
        await sink.deliver(make_alert())
    assert mailbox.attempts == 1


async def test_unreachable_server_gives_up() -> None:
    sink = sink_for(free_port(), max_attempts=2, timeout_seconds=2)
    with pytest.raises(SinkError, match=r"gave up after 2 attempt.*connection"):
        await sink.deliver(make_alert())
    assert failures(sink.name, "connection") == 2


# --------------------------------------------------------------------------- configuration
async def test_build_from_config(plain_server: tuple[Mailbox, int]) -> None:
    mailbox, port = plain_server
    config = SinkConfig(name="unit-mail", type="email", smtp_host="127.0.0.1", smtp_port=port,
                        smtp_tls="none", mail_from=SENDER, mail_to=RECIPIENTS[:1],
                        filters=SinkFilters.model_validate({"severities": ["high", "critical"]}))
    [sink] = build_sinks([config], {}, SinkContext(explorers={"ethereum": "https://x.example"}))
    assert sink.accepts(make_alert()) and not sink.accepts(make_alert(severity="medium"))
    await sink.deliver(make_alert())
    [(_envelope, message)] = mailbox.mails
    assert "https://x.example/tx/" in _bodies(message)[0]


def test_password_env_and_plaintext_guard() -> None:
    base: dict[str, Any] = dict(name="m", type="email", smtp_host="mail.example", mail_from=SENDER,
                mail_to=RECIPIENTS, smtp_username=USER, smtp_password_env="SMTP_PW")
    with pytest.raises(ConfigError, match=r"SMTP_PW.*not set"):
        build_sinks([SinkConfig(**base)], {})
    [sink] = build_sinks([SinkConfig(**base)], {"SMTP_PW": PASSWORD})
    assert isinstance(sink, EmailSink) and sink.port == 587 and PASSWORD not in repr(sink)
    with pytest.raises(ConfigError, match="unencrypted") as info:
        build_sinks([SinkConfig(**{**base, "smtp_tls": "none"})], {"SMTP_PW": PASSWORD})
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(("sink", "message"), [
    ({"smtp_host": "h", "mail_from": SENDER}, "an email sink needs 'mail_to'"),
    ({"smtp_host": "h", "mail_from": "not-an-address", "mail_to": RECIPIENTS}, "mail_from"),
    ({"smtp_host": "h", "mail_from": SENDER, "mail_to": ["a@b.example\r\nBcc: x@y"]},
     "mail_to"),
    ({"smtp_host": "h", "mail_from": SENDER, "mail_to": RECIPIENTS, "smtp_tls": "ssl"},
     "smtp_tls"),
    ({"smtp_host": "h", "mail_from": SENDER, "mail_to": RECIPIENTS,
      "smtp_password_env": "PW"}, "needs 'smtp_username'"),
    ({"smtp_host": "h", "mail_from": SENDER, "mail_to": RECIPIENTS, "topic": "t"},
     "'topic' not used by an email sink"),
])
def test_email_config_errors_name_the_key(sink: dict[str, Any], message: str) -> None:
    data = {"chains": [{"name": "ethereum", "chain_id": 1,
                        "rpc_urls": ["http://127.0.0.1:8545"]}],
            "sinks": [{"name": "mail", "type": "email", **sink}]}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "chainwatch.yaml")
    assert "chainwatch.yaml: sinks[0]" in str(info.value) and message in str(info.value)
