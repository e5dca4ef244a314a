"""Dead-letter records: what could not be processed or delivered, with the error."""

from __future__ import annotations

import time

import msgspec


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message that failed at ``stage`` and was set aside, with the reason."""

    stage: str
    error: str
    topic: str = ""
    partition: int = -1
    offset: int = -1
    key: str | None = None
    payload: str = ""  # the original bytes, decoded as UTF-8 with replacement
    sink: str | None = None
    failed_at: float = msgspec.field(default_factory=time.time)


def dead_letter(stage: str, error: BaseException | str, payload: bytes | None, **where: object
                ) -> bytes:
    """Encode a dead-letter record for the dead-letter topic."""
    text = payload.decode("utf-8", "replace") if payload else ""
    record = DeadLetter(stage=stage, error=str(error)[:2000], payload=text[:1_000_000],
                        **where)  # type: ignore[arg-type]
    return msgspec.json.encode(record)
