"""HMAC-SHA256 signatures for webhook deliveries, with a replay window.

A delivery carries ``X-Chainwatch-Timestamp: <unix seconds>`` and
``X-Chainwatch-Signature: v1=<hex>``, where ``<hex>`` is
``HMAC-SHA256(secret, f"{timestamp}.".encode() + body)``. A receiver recomputes the HMAC over
the raw body it received and rejects timestamps outside its tolerance, so a captured request
cannot be replayed later. The secret is the UTF-8 bytes of the configured value, as given.

>>> header = sign(b"s3cret", 1_700_000_000, b'{"id":"a1"}')
>>> header.startswith("v1=") and len(header) == 67
True
>>> verify(b"s3cret", "1700000000", header, b'{"id":"a1"}', now=1_700_000_060)
True
>>> verify(b"s3cret", "1700000000", header, b'{"id":"a2"}', now=1_700_000_060)
False
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_SCHEME = "v1"
HEADER_TIMESTAMP = "X-Chainwatch-Timestamp"
HEADER_SIGNATURE = "X-Chainwatch-Signature"
HEADER_ALERT_ID = "X-Chainwatch-Alert-Id"
HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300

_MAX_TIMESTAMP_DIGITS = 12  # far beyond year 9999; keeps int() on header text cheap


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return mac.hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Return the signature header value ``v1=<hex HMAC-SHA256(secret, "<ts>." + body)>``."""
    if not secret:
        raise ValueError("refusing to sign with an empty secret")
    if timestamp < 0:
        raise ValueError("timestamp must be non-negative unix seconds")
    return f"{SIGNATURE_SCHEME}={_digest(secret, timestamp, body)}"


def parse_timestamp(value: str | None) -> int | None:
    """Parse a timestamp header (plain decimal unix seconds), or return None if malformed."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_TIMESTAMP_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def verify(
    secret: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Check a delivery's signature and that its timestamp is within ``tolerance_seconds``.

    The signature header may hold several comma-separated ``v1=`` values (secret rotation);
    one match is enough. Every comparison runs in constant time via ``hmac.compare_digest``.
    Timestamps too far in the past *or* the future are rejected (replay window).
    """
    if not secret or signature_header is None:
        return False
    timestamp = parse_timestamp(timestamp_header)
    if timestamp is None:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, timestamp, body).encode("ascii")
    matched = False
    for part in signature_header.split(","):
        scheme, sep, value = part.strip().partition("=")
        if not sep or scheme != SIGNATURE_SCHEME:
            continue
        # Header text may be arbitrary (non-ASCII) bytes: compare bytes, never str.
        candidate = value.strip().lower().encode("utf-8", "surrogateescape")
        matched |= hmac.compare_digest(expected, candidate)
    return matched
