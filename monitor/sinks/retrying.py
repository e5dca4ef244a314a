"""The one retry policy of every sink: bounded exponential backoff with jitter, Retry-After.

A sink describes one delivery attempt as a coroutine returning an :class:`Outcome`;
:func:`deliver_with_retries` runs it up to ``max_attempts`` times, waits what the receiver
asked for (``Retry-After``, capped) or a jittered backoff between attempts, counts every
failed attempt in ``chainwatch_sink_failures_total{sink, reason}`` and a success in
``chainwatch_sink_deliveries_total{sink}`` and ``chainwatch_sink_delivery_seconds``, and
raises :class:`SinkError` once the attempts are spent or the failure is permanent.

:func:`post_json` is the HTTP attempt shared by the webhook and chat sinks: 2xx is success;
408, 429 and 5xx, timeouts and connection errors are retried; other 4xx and 3xx (redirects
are never followed) are permanent.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from monitor.egress import DestinationDenied
from monitor.errors import SinkError
from monitor.metrics import SINK_DELIVERIES, SINK_FAILURES, SINK_LATENCY
from monitor.sinks.console import clean_text

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_INITIAL_SECONDS = 0.5
DEFAULT_BACKOFF_MAX_SECONDS = 30.0
DEFAULT_RETRY_AFTER_MAX_SECONDS = 60.0
DETAIL_BYTES = 256  # how much of an error response body is quoted in the SinkError
_BODY_BYTES = 4096  # how much of an error response body is read to find a retry hint

_jitter = random.Random()  # noqa: S311 - jitter spreads retries; it guards no secret


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


def classify_status(status: int) -> tuple[str, bool]:
    """Failure reason label and whether to retry, for a non-2xx HTTP status."""
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


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP address."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt came to."""

    ok: bool
    reason: str = ""
    retryable: bool = False
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a sink retries one alert."""

    max_attempts: int = 6
    backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS
    backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS
    retry_after_max_seconds: float = DEFAULT_RETRY_AFTER_MAX_SECONDS

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_initial_seconds < 0 or self.backoff_max_seconds < 0:
            raise ValueError("backoff delays must not be negative")
        if self.retry_after_max_seconds < 0:
            raise ValueError("retry_after_max_seconds must not be negative")

    def delay(self, attempt: int, outcome: Outcome) -> float:
        """Seconds to wait after failed attempt ``attempt``: the receiver's hint or backoff."""
        if outcome.retry_after is not None:
            return min(outcome.retry_after, self.retry_after_max_seconds)
        return backoff_delay(attempt, self.backoff_initial_seconds, self.backoff_max_seconds)


async def deliver_with_retries(
    attempt: Callable[[], Awaitable[Outcome]],
    policy: RetryPolicy,
    *,
    sink: str,
    alert_id: str,
    kind: str,
    where: str,
) -> int:
    """Run ``attempt`` until it succeeds; return the attempt count or raise SinkError.

    ``kind`` names the sink type in messages (``"slack"``) and ``where`` the destination as
    it may be shown (never a secret: a redacted URL, a host, a topic).
    """
    started = time.monotonic()
    outcome = Outcome(ok=False)
    number = 0
    for number in range(1, policy.max_attempts + 1):
        outcome = await attempt()
        if outcome.ok:
            SINK_DELIVERIES.labels(sink).inc()
            SINK_LATENCY.labels(sink).observe(time.monotonic() - started)
            if number > 1:
                log.info("%s sink %s delivered alert %s on attempt %d",
                         kind, sink, alert_id, number)
            return number
        SINK_FAILURES.labels(sink, outcome.reason).inc()
        if not outcome.retryable or number == policy.max_attempts:
            break
        delay = policy.delay(number, outcome)
        log.warning("%s sink %s: alert %s attempt %d/%d to %s failed (%s%s); retrying in "
                    "%.2fs", kind, sink, alert_id, number, policy.max_attempts, where,
                    outcome.reason, f", status {outcome.status}" if outcome.status else "", delay)
        await asyncio.sleep(delay)
    verdict = "permanent failure" if not outcome.retryable else "gave up"
    detail = f": {outcome.detail}" if outcome.detail else ""
    raise SinkError(f"{kind} delivery {verdict} after {number} attempt(s): "
                    f"{outcome.reason}{detail}",
                    sink=sink, alert=alert_id, url=where, status=outcome.status)


def _json_retry_after(body: bytes) -> float | None:
    """A retry hint in a JSON error body: Discord ``retry_after``, Telegram ``parameters``."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    for value in (data.get("retry_after"),
                  (data.get("parameters") or {}).get("retry_after")
                  if isinstance(data.get("parameters"), dict) else None):
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return None


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_seconds: float,
    redact: Callable[[str], str] = lambda text: text,
    accept: Callable[[int, bytes], str | None] | None = None,
) -> Outcome:
    """POST ``body`` once and classify the answer.

    ``Retry-After`` headers and JSON ``retry_after`` hints (Discord's body, Telegram's
    ``parameters``) are honoured on retryable answers. ``redact`` scrubs any text quoted from
    the answer; ``accept`` may refuse a 2xx answer by returning a reason (e.g. Telegram's
    ``"ok": false``). Exception texts are never quoted: some aiohttp messages embed the URL.
    """
    try:
        async with session.post(url, data=body, headers=dict(headers),
                                allow_redirects=False) as response:
            status = response.status
            if 200 <= status <= 299:
                if accept is None:
                    return Outcome(ok=True, status=status)
                payload = await response.content.read(_BODY_BYTES)
                refusal = accept(status, payload)
                if refusal is None:
                    return Outcome(ok=True, status=status)
                return Outcome(ok=False, reason="rejected", status=status,
                               detail=clean_text(redact(refusal), DETAIL_BYTES))
            reason, retryable = classify_status(status)
            try:
                payload = await response.content.read(_BODY_BYTES)
            except (aiohttp.ClientError, TimeoutError):
                payload = b""
            retry_after = None
            if retryable:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is None:
                    retry_after = _json_retry_after(payload)
            detail = f"HTTP {status}"
            if payload:
                text = redact(payload.decode("utf-8", "replace"))
                detail += " " + clean_text(text, DETAIL_BYTES)
            return Outcome(ok=False, reason=reason, retryable=retryable, status=status,
                           retry_after=retry_after, detail=detail)
    except TimeoutError:
        return Outcome(ok=False, reason="timeout", retryable=True,
                       detail=f"no answer within {timeout_seconds:g}s")
    except aiohttp.InvalidURL:
        return Outcome(ok=False, reason="invalid_url", retryable=False,
                       detail="the configured URL is invalid")
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, DestinationDenied):
            return Outcome(ok=False, reason="denied_destination", retryable=False,
                           detail=clean_text(redact(str(exc.os_error)), DETAIL_BYTES))
        return Outcome(ok=False, reason="connection", retryable=True,
                       detail=type(exc).__name__)
    except (aiohttp.ClientError, OSError) as exc:
        return Outcome(ok=False, reason="connection", retryable=True,
                       detail=type(exc).__name__)
