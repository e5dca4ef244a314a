"""Email sink: one mail per alert over SMTP (STARTTLS, implicit TLS or plain; optional AUTH).

The mail has a plain-text and an HTML part with the same facts as the chat messages (exact
amount, rule, severity, case, chain and block, transaction, sender and receiver, with block
explorer links when configured), a subject ``[chainwatch] HIGH watched-address: 1.5 ETH out of
Seized wallet A (case C-1)``, and a ``Message-ID`` derived from the alert id
(``<alert-<id>@<sender domain>>``): a redelivered alert carries the same Message-ID, so mail
clients and archives recognise the duplicate. ``X-Chainwatch-Alert-Id`` carries the id too.

SMTP is spoken with the standard library's :mod:`smtplib` in a worker thread (no extra
dependency). Transient failures -- connection errors, timeouts, 4xx replies, a dropped
connection -- are retried with the shared policy of :mod:`monitor.sinks.retrying`; 5xx replies,
failed authentication and a server without STARTTLS (when it is required) are permanent.
The password is read from an environment variable and never logged or quoted in errors.
"""

from __future__ import annotations

import asyncio
import html
import logging
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal, Self

from monitor.egress import DestinationDenied, guarded_connection, host_problem
from monitor.errors import ConfigError
from monitor.records import Alert, Severity
from monitor.settings import SinkConfig
from monitor.sinks.base import Secret, Sink, SinkContext, register_sink
from monitor.sinks.chat import Part, alert_view, render_plain, render_value
from monitor.sinks.console import clean_text
from monitor.sinks.retrying import (
    DEFAULT_BACKOFF_INITIAL_SECONDS,
    DEFAULT_BACKOFF_MAX_SECONDS,
    DEFAULT_RETRY_AFTER_MAX_SECONDS,
    Outcome,
    RetryPolicy,
    deliver_with_retries,
    is_loopback,
)

log = logging.getLogger(__name__)

TlsMode = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
"""SMTP port used when ``smtp_port`` is not set, per ``smtp_tls`` mode."""

_SEVERITY_COLOURS = {"info": "#7f8c8d", "low": "#2980b9", "medium": "#b7950b",
                     "high": "#d35400", "critical": "#c0392b"}


def message_id(alert_id: str, sender: str) -> str:
    """The Message-ID of an alert's mail: the same alert always gets the same one.

    >>> message_id("3527a24c464d50d3f084a2236a98797c", "alerts@unit.example")
    '<alert-3527a24c464d50d3f084a2236a98797c@unit.example>'
    """
    domain = sender.rpartition("@")[2] or "chainwatch.invalid"
    safe = "".join(ch for ch in alert_id if ch.isascii() and ch.isalnum())[:64] or "unknown"
    return f"<alert-{safe}@{domain}>"


def _html_part(part: Part) -> str:
    text = html.escape(part.text)
    if part.code:
        text = f"<code>{text}</code>"
    if part.url:
        return f'<a href="{html.escape(part.url, quote=True)}">{text}</a>'
    return text


def build_message(alert: Alert, sender: str, recipients: list[str],
                  explorers: Mapping[str, str] | None = None) -> EmailMessage:
    """The mail for ``alert``: headers, plain-text body and HTML alternative."""
    view = alert_view(alert, explorers)
    message = EmailMessage()
    message["Subject"] = f"[chainwatch] {view.headline}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id(alert.id, sender)
    message["X-Chainwatch-Alert-Id"] = view.alert_id
    message["X-Chainwatch-Severity"] = alert.severity
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to alerts
    message.set_content(render_plain(view) + "\n\n-- \nchainwatch\n")
    rows = "\n".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0;vertical-align:top">'
        f"{html.escape(f.label)}</th><td>{render_value(f.parts, _html_part)}</td></tr>"
        for f in view.fields)
    colour = _SEVERITY_COLOURS.get(alert.severity, "#333333")
    message.add_alternative(
        "<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n"
        f'<h2 style="color:{colour}">{html.escape(view.headline)}</h2>\n'
        f"<table>\n{rows}\n</table>\n"
        "<p style=\"color:#777\">chainwatch</p>\n</body></html>\n",
        subtype="html")
    return message


class _GuardedSMTP(smtplib.SMTP):
    """SMTP that connects only to addresses ``sinks_policy`` allows, as resolved right now."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return guarded_connection(host, port, timeout, self.source_address)


class _GuardedSMTPSSL(smtplib.SMTP_SSL, _GuardedSMTP):
    """SMTP over TLS through the guarded connection (SMTP_SSL wraps what _GuardedSMTP opens)."""


@register_sink
class EmailSink(Sink):
    """Mail each alert to a fixed list of recipients through one SMTP server."""

    type_name = "email"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        recipients: list[str],
        port: int | None = None,
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: Secret | None = None,
        ssl_context: ssl.SSLContext | None = None,
        min_severity: Severity = "info",
        explorers: Mapping[str, str] | None = None,
        timeout_seconds: float = 10.0,
        max_attempts: int = 6,
        backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS,
        retry_after_max_seconds: float = DEFAULT_RETRY_AFTER_MAX_SECONDS,
    ) -> None:
        super().__init__(name, min_severity=min_severity)
        if not recipients:
            raise ValueError(f"email sink {name!r}: needs at least one recipient")
        if tls not in DEFAULT_PORTS:
            raise ValueError(f"email sink {name!r}: tls must be starttls, tls or none")
        if password is not None and not username:
            raise ValueError(f"email sink {name!r}: a password needs a username")
        if tls == "none" and password is not None and not is_loopback(host):
            raise ConfigError(f"email sink {name!r}: refusing to send the SMTP password "
                              f"unencrypted to {host}; use smtp_tls: starttls or tls",
                              sink=name)
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.host = host
        self.port = port or DEFAULT_PORTS[tls]
        self.tls: TlsMode = tls
        self.sender = sender
        self.recipients = list(recipients)
        self.username = username
        self._password = password
        self._ssl_context = ssl_context
        self.explorers: dict[str, str] = dict(explorers or {})
        self.timeout_seconds = timeout_seconds
        self.policy = RetryPolicy(max_attempts, backoff_initial_seconds, backoff_max_seconds,
                                  retry_after_max_seconds)
        self.deny_private_networks = False  # set by bind() from sinks_policy

    @classmethod
    def from_config(cls, config: SinkConfig, environ: Mapping[str, str]) -> Self:
        """Build from configuration; the password comes from ``environ[smtp_password_env]``."""
        if not config.smtp_host or not config.mail_from or not config.mail_to:
            raise ConfigError(f"sink {config.name!r}: an email sink needs 'smtp_host', "
                              "'mail_from' and 'mail_to'", sink=config.name)
        password = None
        if config.smtp_password_env:
            value = environ.get(config.smtp_password_env)
            if not value:
                state = "is not set" if value is None else "is empty"
                raise ConfigError(f"sink {config.name!r}: environment variable "
                                  f"{config.smtp_password_env} (its SMTP password) {state}",
                                  sink=config.name)
            password = Secret(value.encode("utf-8"))
        return cls(config.name, host=config.smtp_host, port=config.smtp_port,
                   tls=config.smtp_tls, username=config.smtp_username, password=password,
                   sender=config.mail_from, recipients=list(config.mail_to),
                   min_severity=config.min_severity, timeout_seconds=config.timeout_seconds,
                   max_attempts=config.max_attempts)

    def bind(self, context: SinkContext) -> None:
        """Check the host against ``sinks_policy``; use the chains' explorer URLs for links."""
        deny = context.policy.deny_private_networks
        problem = host_problem(self.host.strip("[]"), deny_private_networks=deny)
        if problem:
            raise ConfigError(f"email sink {self.name!r}: smtp_host: {problem}", sink=self.name)
        self.deny_private_networks = deny
        self.explorers = {**context.explorers, **self.explorers}

    @property
    def safe_target(self) -> str:
        """``smtp://host:port`` (or ``smtps://``), fit for logs."""
        return f"{'smtps' if self.tls == 'tls' else 'smtp'}://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return (f"EmailSink(name={self.name!r}, server={self.safe_target!r}, tls={self.tls!r}, "
                f"recipients={len(self.recipients)}, min_severity={self.min_severity!r})")

    async def deliver(self, alert: Alert) -> None:
        """Send the alert's mail; retry transient failures; raise SinkError when spent."""
        message = build_message(alert, self.sender, self.recipients, self.explorers)

        async def attempt() -> Outcome:
            return await asyncio.to_thread(self._send, message)

        await deliver_with_retries(attempt, self.policy, sink=self.name, alert_id=alert.id,
                                   kind="email", where=self.safe_target)

    # -- the blocking part, run in a worker thread -----------------------------------------
    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _redact(self, text: str) -> str:
        if self._password is not None:
            text = text.replace(self._password.reveal().decode("utf-8", "replace"), "***")
        return clean_text(text, 200)

    def _send(self, message: EmailMessage) -> Outcome:
        """One SMTP session: connect, (STARTTLS), (AUTH), send; classify what went wrong."""
        guarded = self.deny_private_networks
        try:
            client: smtplib.SMTP
            if self.tls == "tls":
                ssl_class = _GuardedSMTPSSL if guarded else smtplib.SMTP_SSL
                client = ssl_class(self.host, self.port, timeout=self.timeout_seconds,
                                   context=self._context())
            else:
                plain_class = _GuardedSMTP if guarded else smtplib.SMTP
                client = plain_class(self.host, self.port, timeout=self.timeout_seconds)
            with client:
                client.ehlo()
                if self.tls == "starttls":
                    if not client.has_extn("starttls"):
                        return Outcome(ok=False, reason="tls", retryable=False,
                                       detail="the server does not offer STARTTLS")
                    client.starttls(context=self._context())
                    client.ehlo()
                if self.username:
                    password = self._password.reveal().decode("utf-8") if self._password else ""
                    client.login(self.username, password)
                refused = client.send_message(message, from_addr=self.sender,
                                              to_addrs=self.recipients)
            if refused:
                log.warning("email sink %s: %d of %d recipient(s) refused the alert mail",
                            self.name, len(refused), len(self.recipients))
            return Outcome(ok=True)
        except DestinationDenied as exc:
            return Outcome(ok=False, reason="denied_destination", retryable=False,
                           detail=str(exc))
        except smtplib.SMTPAuthenticationError as exc:
            return Outcome(ok=False, reason="auth", retryable=False, status=exc.smtp_code,
                           detail=f"authentication failed (SMTP {exc.smtp_code})")
        except smtplib.SMTPNotSupportedError:
            return Outcome(ok=False, reason="rejected", retryable=False,
                           detail="the server does not support a required extension (AUTH?)")
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            transient = all(400 <= code <= 499 for code in codes)
            return Outcome(ok=False, reason="deferred" if transient else "rejected",
                           retryable=transient, status=codes[0] if codes else None,
                           detail=f"every recipient refused (SMTP {codes})")
        except smtplib.SMTPServerDisconnected:
            return Outcome(ok=False, reason="connection", retryable=True,
                           detail="the server closed the connection")
        except smtplib.SMTPResponseException as exc:
            transient = 400 <= exc.smtp_code <= 499
            error = exc.smtp_error.decode("utf-8", "replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            return Outcome(ok=False, reason="deferred" if transient else "rejected",
                           retryable=transient, status=exc.smtp_code,
                           detail=f"SMTP {exc.smtp_code} {self._redact(error)}")
        except ssl.SSLError as exc:
            return Outcome(ok=False, reason="tls", retryable=False,
                           detail=f"TLS failed: {type(exc).__name__}")
        except TimeoutError:
            return Outcome(ok=False, reason="timeout", retryable=True,
                           detail=f"no answer within {self.timeout_seconds:g}s")
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome(ok=False, reason="connection", retryable=True,
                           detail=type(exc).__name__)
