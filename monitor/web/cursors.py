"""Opaque cursors: a page position in the alert list, and a position in the change stream.

*Page cursor* -- the sort key ``(first_detected_at, alert id)`` of the last alert of a page;
the next page holds the alerts sorted strictly below it (newest first), so pages stay stable
while new alerts arrive.

*Stream cursor* -- for each partition of the alerts topic (``a<n>``) and of the audit topic
(``u<n>``) the next Kafka offset not yet covered. It is the SSE event id: a client that
reconnects with ``Last-Event-ID`` gets every alert event and audit record at or after those
offsets, from any worker, since all follow the same topics.

Both are URL-safe base64 without padding; anything else is refused with ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Final

_ID: Final = re.compile(r"[0-9a-zA-Z_-]{1,128}")
_KEY: Final = re.compile(r"[au][0-9]{1,5}")
_OFFSET: Final = re.compile(r"[0-9]{1,19}")
MAX_CURSOR: Final = 4096


def _b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _b64decode(value: str) -> str:
    if not value or len(value) > MAX_CURSOR or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ValueError("not a cursor returned by this API")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not a cursor returned by this API") from None


def encode_page_cursor(key: tuple[float, str]) -> str:
    """Cursor after the alert with sort key ``key``."""
    return _b64encode(f"p1|{key[0]!r}|{key[1]}")


def parse_page_cursor(value: str) -> tuple[float, str]:
    """The sort key inside a page cursor."""
    parts = _b64decode(value).split("|")
    if len(parts) != 3 or parts[0] != "p1" or not _ID.fullmatch(parts[2]):
        raise ValueError("not a page cursor returned by this API")
    try:
        at = float(parts[1])
    except ValueError:
        raise ValueError("not a page cursor returned by this API") from None
    if not math.isfinite(at):
        raise ValueError("not a page cursor returned by this API")
    return at, parts[2]


def encode_stream_cursor(positions: Mapping[str, int]) -> str:
    """Cursor for a set of next offsets keyed ``a<partition>`` / ``u<partition>``."""
    body = ";".join(f"{key}={positions[key]}" for key in sorted(positions))
    return _b64encode(f"s1|{body}")


def parse_stream_cursor(value: str) -> dict[str, int]:
    """The next offsets inside a stream cursor."""
    text = _b64decode(value)
    if not text.startswith("s1|"):
        raise ValueError("not a stream cursor returned by this API")
    positions: dict[str, int] = {}
    body = text[3:]
    for part in body.split(";") if body else ():
        key, sep, number = part.partition("=")
        if not sep or not _KEY.fullmatch(key) or not _OFFSET.fullmatch(number):
            raise ValueError("not a stream cursor returned by this API")
        positions[key] = int(number)
    return positions
