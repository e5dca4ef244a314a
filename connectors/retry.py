"""One shared retry policy for I/O edges: exponential backoff with full jitter, bounded."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

_JITTER = random.Random()  # noqa: S311 - jitter spreads retries; it is not a secret


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt k waits uniform(0, min(cap, base * 2**k))."""

    base_seconds: float = 0.25
    cap_seconds: float = 10.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_seconds < 0 or self.cap_seconds < 0:
            raise ValueError("base_seconds and cap_seconds must be >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** min(attempt, 62)))
        return _JITTER.uniform(0.0, ceiling)


OnError = Callable[[BaseException, int], None]


async def retry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_error: OnError | None = None,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Await ``fn()`` until it succeeds or ``policy.max_attempts`` is spent; re-raise the last.

    ``on_error(exc, attempt)`` is called after every failed attempt (before the pause); it may
    raise to stop retrying early, for example on an error that no retry can fix.
    """
    for attempt in range(policy.max_attempts):
        try:
            return await fn()
        except retry_on as exc:
            if on_error is not None:
                on_error(exc, attempt)
            if attempt + 1 >= policy.max_attempts:
                raise
            await asyncio.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
