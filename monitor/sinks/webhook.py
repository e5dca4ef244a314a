"""Webhook sink: POST each alert as signed JSON, retrying transient failures with backoff.

Each request carries ``Content-Type: application/json``, ``Idempotency-Key`` and
``X-Chainwatch-Alert-Id`` (the idempotency key is ``<alert id>:<revision>:<status>``: one per
lifecycle event, so a receiver drops redeliveries but not a confirmation or a retraction),
``X-Chainwatch-Timestamp`` and ``X-Chainwatch-Signature`` (see :mod:`monitor.sinks.signing`).
Connection errors, timeouts, 408, 429 and 5xx are retried up to ``max_attempts`` times with
bounded exponential backoff and jitter, or after the ``Retry-After`` the receiver asked for
(capped). Other 4xx answers and redirects are permanent: retrying cannot fix them. Redirects
are never followed, so a signed alert never goes to a host nobody configured.

Every failed attempt increments ``chainwatch_sink_failures_total{sink, reason}`` with reason
one of ``timeout`` (including HTTP 408), ``connection``, ``rate_limited`` (429),
``server_error`` (5xx), ``rejected`` (other 4xx), ``redirect`` (3xx), ``invalid_url`` or
``unexpected_status``. The secret, and the URL's user info and query string, never appear in
logs, ``repr`` or error messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Self
from urllib.parse import urlsplit

import aiohttp

from monitor.egress import GuardedResolver
from monitor.errors import ConfigError
from monitor.lifecycle import delivery_key
from monitor.records import Alert, Severity, encode
from monitor.settings import SinkConfig, SinksPolicy
from monitor.sinks.base import Secret, Sink, SinkContext, register_sink, secret_from_env
from monitor.sinks.retrying import (
    DEFAULT_BACKOFF_INITIAL_SECONDS,
    DEFAULT_BACKOFF_MAX_SECONDS,
    DEFAULT_RETRY_AFTER_MAX_SECONDS,
    Outcome,
    RetryPolicy,
    backoff_delay,
    deliver_with_retries,
    is_loopback,
    parse_retry_after,
    post_json,
)
from monitor.sinks.signing import (
    HEADER_ALERT_ID,
    HEADER_IDEMPOTENCY_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    sign,
)

__all__ = ["USER_AGENT", "WebhookSink", "backoff_delay", "parse_retry_after", "safe_url"]

log = logging.getLogger(__name__)

USER_AGENT = "chainwatch-webhook/1"


def safe_url(url: str) -> str:
    """Return ``url`` without user info, query string or fragment (fit for logs and errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}"


@register_sink
class WebhookSink(Sink):
    """POST alerts as HMAC-signed JSON to one URL; one aiohttp session per sink."""

    type_name = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        secret: Secret | bytes,
        *,
        min_severity: Severity = "info",
        timeout_seconds: float = 5.0,
        max_attempts: int = 6,
        backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS,
        retry_after_max_seconds: float = DEFAULT_RETRY_AFTER_MAX_SECONDS,
    ) -> None:
        super().__init__(name, min_severity=min_severity)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook sink {name!r}: URL must be http(s) with a host, "
                             f"got {safe_url(url)!r}")
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
        if not self._secret.reveal():
            raise ValueError(f"webhook sink {name!r}: the secret is empty")
        self.policy = RetryPolicy(max_attempts, backoff_initial_seconds, backoff_max_seconds,
                                  retry_after_max_seconds)
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self._url = url
        self.safe_url = safe_url(url)
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.retry_after_max_seconds = retry_after_max_seconds
        self._session: aiohttp.ClientSession | None = None
        self.policy_of_destinations = SinksPolicy(allow_http=True)  # set by bind()

    def bind(self, context: SinkContext) -> None:
        """Check the URL against ``sinks_policy`` and keep the policy for connecting."""
        problem = context.policy.url_problem(self._url)
        if problem:
            raise ConfigError(f"webhook sink {self.name!r}: url: {problem}", sink=self.name)
        self.policy_of_destinations = context.policy

    @classmethod
    def from_config(cls, config: SinkConfig, environ: Mapping[str, str]) -> Self:
        """Build from configuration, reading the HMAC secret from ``environ[secret_env]``."""
        if not config.url:
            raise ConfigError(f"sink {config.name!r}: a webhook sink needs 'url'",
                              sink=config.name)
        secret = secret_from_env(config, environ)
        return cls(config.name, config.url, secret, min_severity=config.min_severity,
                   timeout_seconds=config.timeout_seconds, max_attempts=config.max_attempts)

    def __repr__(self) -> str:
        return (f"WebhookSink(name={self.name!r}, url={self.safe_url!r}, "
                f"min_severity={self.min_severity!r}, max_attempts={self.max_attempts})")

    async def start(self) -> None:
        """Open the HTTP session (idempotent)."""
        await self._open_session()

    async def _open_session(self) -> aiohttp.ClientSession:
        if self._session is not None and not self._session.closed:
            return self._session
        guarded = self.policy_of_destinations.deny_private_networks
        session = self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            headers={"User-Agent": USER_AGENT},
            connector=aiohttp.TCPConnector(resolver=GuardedResolver()) if guarded else None,
        )
        parts = urlsplit(self._url)
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            log.warning("webhook sink %s posts alerts over plain http to %s: alert contents "
                        "travel unencrypted (the signature still protects integrity)",
                        self.name, self.safe_url)
        return session

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def deliver(self, alert: Alert) -> None:
        """POST ``alert``; retry transient failures; raise SinkError when out of attempts."""
        session = await self._open_session()
        body = encode(alert)
        await deliver_with_retries(lambda: self._attempt(session, alert, body), self.policy,
                                   sink=self.name, alert_id=alert.id, kind="webhook",
                                   where=self.safe_url)

    async def _attempt(self, session: aiohttp.ClientSession, alert: Alert,
                       body: bytes) -> Outcome:
        timestamp = int(time.time())  # fresh per attempt: retries stay in the replay window
        headers = {
            "Content-Type": "application/json",
            HEADER_IDEMPOTENCY_KEY: delivery_key(alert),
            HEADER_ALERT_ID: alert.id,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_SIGNATURE: sign(self._secret.reveal(), timestamp, body),
        }
        return await post_json(session, self._url, body, headers,
                               timeout_seconds=self.timeout_seconds)
