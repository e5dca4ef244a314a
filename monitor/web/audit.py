"""Audit trail of analyst actions on alerts: records, their Kafka topic and the publisher.

Every acknowledge / resolve / false-positive is an :class:`AuditRecord` appended to the
``<prefix>alert-audit`` topic (keyed by alert id, never compacted, kept forever) and awaited
until the broker acknowledged it. Every worker replays that topic into its alert index, so all
workers show the same trail. Records are facts, never edited: the latest action of an alert
gives its disposition.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal, get_args

import msgspec
from aiokafka import AIOKafkaProducer

AuditAction = Literal["acknowledge", "resolve", "false-positive"]
ACTIONS: Final[tuple[str, ...]] = get_args(AuditAction)
Disposition = Literal["open", "acknowledged", "resolved", "false_positive"]
DISPOSITIONS: Final[tuple[str, ...]] = get_args(Disposition)
TokenRole = Literal["read-write", "read-only", "none"]

DISPOSITION_OF: Final[dict[str, Disposition]] = {
    "acknowledge": "acknowledged",
    "resolve": "resolved",
    "false-positive": "false_positive",
}
"""The disposition an alert has after each action."""

MAX_NOTE: Final = 2000
MAX_ACTOR: Final = 64


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One analyst action on one alert: who did what, when, with which token role and note."""

    id: str
    alert_id: str
    action: AuditAction
    note: str
    actor: str
    role: TokenRole
    at: float  # unix seconds (wall clock of the worker that took the request), ms precision


AUDIT_DECODER: Final = msgspec.json.Decoder(AuditRecord)
_ENCODER: Final = msgspec.json.Encoder()


def audit_record_id(alert_id: str, action: str, actor: str, at: float, note: str) -> str:
    """Deterministic id of an audit record: ``sha256("v1|alert|action|actor|at|note")[:32]``."""
    text = f"v1|{alert_id}|{action}|{actor}|{at:.3f}|{note}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def new_record(alert_id: str, action: AuditAction, note: str, actor: str, role: TokenRole,
               at: float) -> AuditRecord:
    """Build a record with its deterministic id (``at`` is rounded to milliseconds)."""
    at = round(at, 3)
    return AuditRecord(id=audit_record_id(alert_id, action, actor, at, note), alert_id=alert_id,
                       action=action, note=note, actor=actor, role=role, at=at)


def encode_record(record: AuditRecord) -> bytes:
    """JSON bytes of a record, as written to the audit topic."""
    return _ENCODER.encode(record)


def check_actor(value: str | None) -> str:
    """Return the actor named by the ``X-Chainwatch-Actor`` header or raise ``ValueError``."""
    if value is None or not value.strip():
        raise ValueError("missing: name who takes the action (1-64 printable characters)")
    if len(value) > MAX_ACTOR:
        raise ValueError(f"longer than {MAX_ACTOR} characters")
    if not value.isprintable():
        raise ValueError("must contain printable characters only")
    return value.strip()


class AuditPublisher:
    """Appends audit records to the audit topic and waits for the broker's acknowledgement."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect an idempotent producer (acks from all in-sync replicas)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                    enable_idempotence=True)
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        """Flush and close."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, record: AuditRecord) -> tuple[int, int]:
        """Append ``record``; return the partition and offset the broker acknowledged."""
        if self._producer is None:
            raise RuntimeError("AuditPublisher used before start()")
        meta = await self._producer.send_and_wait(self.topic, key=record.alert_id.encode(),
                                                  value=encode_record(record))
        return meta.partition, meta.offset
