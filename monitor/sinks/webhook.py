"""Webhook sink: POST each alert as signed JSON, retrying transient failures with backoff.

Each request carries ``Content-Type: application/json``, ``Idempotency-Key`` and
``X-Chainwatch-Alert-Id`` (both the alert id, so a receiver can drop redeliveries),
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

import asyncio
import email.utils
import ipaddress
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

import aiohttp

from monitor.errors import ConfigError, SinkError
from monitor.metrics import SINK_DELIVERIES, SINK_FAILURES, SINK_LATENCY
from monitor.records import Alert, Severity, encode
from monitor.settings import SinkConfig
from monitor.sinks.base import Secret, Sink, register_sink, secret_from_env
from monitor.sinks.console import clean_text
from monitor.sinks.signing import (
    HEADER_ALERT_ID,
    HEADER_IDEMPOTENCY_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    sign,
)

log = logging.getLogger(__name__)

USER_AGENT = "chainwatch-webhook/1"
DEFAULT_BACKOFF_INITIAL_SECONDS = 0.5
DEFAULT_BACKOFF_MAX_SECONDS = 30.0
DEFAULT_RETRY_AFTER_MAX_SECONDS = 60.0
_DETAIL_BYTES = 256  # how much of an error response body is quoted in the SinkError

_jitter = random.Random()  # noqa: S311 - jitter spreads retries; it guards no secret


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


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or HTTP date), or None.

    Negative results are clamped to 0; a malformed value gives None (fall back to backoff).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text[:12]))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" dates: RFC 9110 dates are always GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Delay after failed attempt ``attempt`` (1-based): capped exponential, equal jitter."""
    ceiling = min(maximum, initial * 2.0 ** min(attempt - 1, 62))
    return _jitter.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one HTTP attempt came to."""

    ok: bool
    reason: str = ""
    retryable: bool = False
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


def _classify(status: int) -> tuple[str, bool]:
    """Failure reason label and whether to retry, for a non-2xx status."""
    if status == 408:
        return "timeout", True
    if status == 429:
        return "rate_limited", True
    if 500 <= status <= 599:
        return "server_error", True
    if 300 <= status <= 399:
        return "redirect", False
    if 400 <= status <= 499:
        return "rejected", False
    return "unexpected_status", False


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
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
        session = self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            headers={"User-Agent": USER_AGENT},
        )
        parts = urlsplit(self._url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
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
        started = time.monotonic()
        outcome = _Outcome(ok=False)
        attempt = 0
        for attempt in range(1, self.max_attempts + 1):
            outcome = await self._attempt(session, alert, body)
            if outcome.ok:
                SINK_DELIVERIES.labels(self.name).inc()
                SINK_LATENCY.labels(self.name).observe(time.monotonic() - started)
                if attempt > 1:
                    log.info("webhook sink %s delivered alert %s on attempt %d",
                             self.name, alert.id, attempt)
                return
            SINK_FAILURES.labels(self.name, outcome.reason).inc()
            if not outcome.retryable or attempt == self.max_attempts:
                break
            if outcome.retry_after is not None:
                delay = min(outcome.retry_after, self.retry_after_max_seconds)
            else:
                delay = backoff_delay(attempt, self.backoff_initial_seconds,
                                      self.backoff_max_seconds)
            log.warning("webhook sink %s: alert %s attempt %d/%d to %s failed (%s%s); "
                        "retrying in %.2fs", self.name, alert.id, attempt, self.max_attempts,
                        self.safe_url, outcome.reason,
                        f", HTTP {outcome.status}" if outcome.status else "", delay)
            await asyncio.sleep(delay)
        what = "permanent failure" if not outcome.retryable else "gave up"
        detail = f": {outcome.detail}" if outcome.detail else ""
        raise SinkError(
            f"webhook delivery {what} after {attempt} attempt(s): {outcome.reason}{detail}",
            sink=self.name, alert=alert.id, url=self.safe_url, status=outcome.status,
        )

    async def _attempt(self, session: aiohttp.ClientSession, alert: Alert,
                       body: bytes) -> _Outcome:
        timestamp = int(time.time())  # fresh per attempt: retries stay in the replay window
        headers = {
            "Content-Type": "application/json",
            HEADER_IDEMPOTENCY_KEY: alert.id,
            HEADER_ALERT_ID: alert.id,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_SIGNATURE: sign(self._secret.reveal(), timestamp, body),
        }
        try:
            async with session.post(self._url, data=body, headers=headers,
                                    allow_redirects=False) as response:
                status = response.status
                if 200 <= status <= 299:
                    return _Outcome(ok=True, status=status)
                reason, retryable = _classify(status)
                retry_after = None
                if retryable:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                detail = f"HTTP {status}"
                try:
                    snippet = await response.content.read(_DETAIL_BYTES)
                except (aiohttp.ClientError, TimeoutError):
                    snippet = b""
                if snippet:
                    detail += " " + clean_text(snippet.decode("utf-8", "replace"), _DETAIL_BYTES)
                return _Outcome(ok=False, reason=reason, retryable=retryable, status=status,
                                retry_after=retry_after, detail=detail)
        except TimeoutError:
            return _Outcome(ok=False, reason="timeout", retryable=True,
                            detail=f"no answer within {self.timeout_seconds:g}s")
        except aiohttp.InvalidURL:
            return _Outcome(ok=False, reason="invalid_url", retryable=False,
                            detail="the configured URL is invalid")
        except (aiohttp.ClientError, OSError) as exc:
            # Only the exception type: some aiohttp messages embed the full URL (and its query).
            return _Outcome(ok=False, reason="connection", retryable=True,
                            detail=type(exc).__name__)
