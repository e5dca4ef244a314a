"""Kafka topic sink: alerts for downstream systems, in a documented, versioned JSON envelope.

Each alert becomes one record on the configured topic:

* key: the alert id (UTF-8), so a compacted topic keeps one record per alert and consumers
  deduplicate redeliveries on it;
* value: ``{"schema": "chainwatch.alert/v1", "alert": {...}}`` -- the alert exactly as on
  chainwatch's own alerts topic (``amount`` a decimal string of base units), described by
  ``docs/alert-schema-v1.json`` (JSON Schema 2020-12);
* headers: ``chainwatch-schema: chainwatch.alert/v1`` and
  ``content-type: application/json``.

Versioning: within ``v1`` changes are additive only -- new *optional* fields may appear in
``alert`` (consumers must ignore fields they do not know), and no field is removed, renamed
or changes type or meaning. Anything else is a new version (``chainwatch.alert/v2``, a new
schema file); a sink then writes the version it is configured for, so consumers migrate on
their own schedule.

The producer uses ``acks=all`` and idempotence (no duplicates from the producer's own
retries); sends that still fail (broker unreachable, timeouts) are retried with the shared
policy of :mod:`monitor.sinks.retrying`. A retry after an unanswered send may write the same
alert twice: the key makes that harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Final, Self

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from monitor.errors import ConfigError
from monitor.records import Alert, Severity
from monitor.settings import SinkConfig
from monitor.sinks.base import Sink, SinkContext, register_sink
from monitor.sinks.retrying import (
    DEFAULT_BACKOFF_INITIAL_SECONDS,
    DEFAULT_BACKOFF_MAX_SECONDS,
    Outcome,
    RetryPolicy,
    deliver_with_retries,
)

log = logging.getLogger(__name__)

SCHEMA_V1: Final = "chainwatch.alert/v1"
"""Identifier of the envelope version this sink writes (``schema`` field and header)."""
SCHEMA_HEADER: Final = "chainwatch-schema"

_ENCODER = msgspec.json.Encoder()


class AlertEnvelope(msgspec.Struct, frozen=True):
    """The value of a record on the alert topic: schema identifier plus the alert."""

    schema: str
    alert: Alert


def encode_envelope(alert: Alert) -> bytes:
    """The record value for ``alert`` in the v1 envelope (compact JSON, exact amounts)."""
    return _ENCODER.encode(AlertEnvelope(SCHEMA_V1, alert))


ENVELOPE_DECODER = msgspec.json.Decoder(AlertEnvelope)
"""Decodes (and type-checks) a v1 record value back into an :class:`AlertEnvelope`."""


@register_sink
class KafkaTopicSink(Sink):
    """Produce each alert to a Kafka topic, keyed by alert id, as a versioned JSON envelope."""

    type_name = "kafka"

    def __init__(
        self,
        name: str,
        topic: str,
        *,
        bootstrap: str | None = None,
        min_severity: Severity = "info",
        timeout_seconds: float = 10.0,
        max_attempts: int = 6,
        backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS,
    ) -> None:
        super().__init__(name, min_severity=min_severity)
        if not topic:
            raise ValueError(f"kafka sink {name!r}: needs a topic")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.topic = topic
        self.bootstrap = bootstrap
        self.timeout_seconds = timeout_seconds
        self.policy = RetryPolicy(max_attempts, backoff_initial_seconds, backoff_max_seconds)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, config: SinkConfig, environ: Mapping[str, str]) -> Self:
        """Build from configuration (``topic``; ``bootstrap`` defaults to the worker's)."""
        if not config.topic:
            raise ConfigError(f"sink {config.name!r}: a kafka sink needs 'topic'",
                              sink=config.name)
        return cls(config.name, config.topic, bootstrap=config.bootstrap,
                   min_severity=config.min_severity, timeout_seconds=config.timeout_seconds,
                   max_attempts=config.max_attempts)

    def bind(self, context: SinkContext) -> None:
        """Default to the worker's own broker when no ``bootstrap`` is configured."""
        if self.bootstrap is None:
            self.bootstrap = context.kafka_bootstrap

    def __repr__(self) -> str:
        return (f"KafkaTopicSink(name={self.name!r}, topic={self.topic!r}, "
                f"min_severity={self.min_severity!r})")

    async def start(self) -> None:
        """Connect the producer; if the broker is not reachable yet, deliveries retry it."""
        try:
            await self._ensure_producer()
        except (KafkaError, OSError) as exc:
            log.warning("kafka sink %s: broker not reachable yet (%s); will retry on delivery",
                        self.name, type(exc).__name__)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            if not self.bootstrap:
                raise ConfigError(f"kafka sink {self.name!r}: no bootstrap servers (set "
                                  "'bootstrap' or run it in a worker)", sink=self.name)
            timeout_ms = int(self.timeout_seconds * 1000)
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=f"chainwatch-sink-{self.name}",
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=timeout_ms,
                linger_ms=5,
            )
            try:
                await asyncio.wait_for(producer.start(), self.timeout_seconds)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
            return producer

    async def close(self) -> None:
        """Flush and stop the producer (idempotent)."""
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def deliver(self, alert: Alert) -> None:
        """Produce the alert and wait for the broker's acknowledgement (all in-sync replicas)."""
        value = encode_envelope(alert)
        key = alert.id.encode("utf-8")
        headers = [(SCHEMA_HEADER, SCHEMA_V1.encode()),
                   ("content-type", b"application/json")]

        async def attempt() -> Outcome:
            try:
                producer = await self._ensure_producer()
                await asyncio.wait_for(
                    producer.send_and_wait(self.topic, value=value, key=key, headers=headers),
                    self.timeout_seconds)
            except ConfigError as exc:
                return Outcome(ok=False, reason="misconfigured", retryable=False,
                               detail=exc.message)
            except (TimeoutError, KafkaTimeoutError):
                return Outcome(ok=False, reason="timeout", retryable=True,
                               detail=f"no acknowledgement within {self.timeout_seconds:g}s")
            except (KafkaConnectionError, OSError) as exc:
                return Outcome(ok=False, reason="connection", retryable=True,
                               detail=type(exc).__name__)
            except KafkaError as exc:
                return Outcome(ok=False, reason="rejected" if not exc.retriable else
                               "server_error", retryable=bool(exc.retriable),
                               detail=type(exc).__name__)
            return Outcome(ok=True)

        await deliver_with_retries(attempt, self.policy, sink=self.name, alert_id=alert.id,
                                   kind="kafka", where=f"topic {self.topic}")
