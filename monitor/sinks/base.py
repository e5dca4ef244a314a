"""The sink model: a subscriber that alerts are delivered to, and the registry of sink types.

A sink type is a :class:`Sink` subclass registered under the ``type`` name used in the YAML
``sinks:`` section. :func:`build_sinks` turns validated :class:`SinkConfig` entries into
sink objects, reading any secrets from the environment mapping it is given, applying each
entry's ``filters:`` and handing every sink the :class:`SinkContext` (explorer links per chain,
the worker's Kafka bootstrap).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self, TypeVar, get_args

from monitor.errors import ConfigError
from monitor.records import Alert, Severity
from monitor.settings import ChainwatchConfig, SinkConfig, SinksPolicy
from monitor.sinks.filters import MATCH_ALL, AlertFilter

SEVERITY_ORDER: Final[dict[str, int]] = {name: rank for rank, name in
                                         enumerate(get_args(Severity))}
"""Severity names ranked from least (``info``) to most urgent (``critical``)."""


@dataclass(frozen=True)
class SinkContext:
    """What sinks may need from the rest of the configuration, handed over by build_sinks."""

    explorers: Mapping[str, str] = field(default_factory=dict)
    """Chain name -> block explorer base URL (``ChainConfig.explorer_url``), for links."""
    kafka_bootstrap: str | None = None
    """The worker's Kafka bootstrap servers (the default broker of the ``kafka`` sink)."""
    policy: SinksPolicy = field(default_factory=SinksPolicy)
    """Where sinks may send (``sinks_policy:``): http, private networks (monitor.egress)."""

    @classmethod
    def from_config(cls, config: ChainwatchConfig, kafka_bootstrap: str | None) -> SinkContext:
        """Collect the chains' explorer URLs and the broker the worker uses."""
        return cls(explorers={c.name: c.explorer_url for c in config.chains if c.explorer_url},
                   kafka_bootstrap=kafka_bootstrap, policy=config.sinks_policy)


class Secret:
    """A secret value that never shows itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        """Return the secret bytes (only where they are used, e.g. to compute an HMAC)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


class Sink(abc.ABC):
    """A subscriber that receives alerts; subclass it and register it to add a sink type.

    ``deliver`` either returns (the alert was handed over) or raises :class:`SinkError`
    once its own retries are exhausted; callers dead-letter the alert then. A sink must be
    safe to call concurrently for different alerts and must never put secrets into its
    ``repr``, its log lines or its error messages.

    Example -- adding a sink type (runnable as a doctest)::

        >>> import asyncio, types
        >>> from monitor.sinks.base import SINK_TYPES, Sink, register_sink
        >>> @register_sink
        ... class MemorySink(Sink):
        ...     '''Keep the ids of delivered alerts in a list.'''
        ...     type_name = "memory"  # the YAML ``type:``; add it to SinkConfig.type too
        ...     def __init__(self, name, *, min_severity="info"):
        ...         super().__init__(name, min_severity=min_severity)
        ...         self.delivered = []
        ...     @classmethod
        ...     def from_config(cls, config, environ):
        ...         return cls(config.name, min_severity=config.min_severity)
        ...     async def deliver(self, alert):
        ...         self.delivered.append(alert.id)
        >>> sink = MemorySink("inbox", min_severity="high")
        >>> sink
        MemorySink(name='inbox', min_severity='high')
        >>> async def run(*alerts):
        ...     async with sink:  # start() ... close()
        ...         for alert in alerts:
        ...             if sink.accepts(alert):
        ...                 await sink.deliver(alert)
        >>> asyncio.run(run(types.SimpleNamespace(id="a1", severity="critical"),
        ...                 types.SimpleNamespace(id="a2", severity="low")))
        >>> sink.delivered
        ['a1']
        >>> del SINK_TYPES["memory"]  # only to leave the registry as it was
    """

    type_name: str = ""
    """The ``type`` value in the YAML configuration that selects this class."""

    alert_filter: AlertFilter = MATCH_ALL
    """Severity/rule/case/chain lists from the sink's ``filters:`` (set by build_sinks)."""

    def __init__(self, name: str, *, min_severity: Severity = "info") -> None:
        if min_severity not in SEVERITY_ORDER:
            raise ValueError(f"unknown severity {min_severity!r}")
        self.name = name
        self.min_severity: Severity = min_severity

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config: SinkConfig, environ: Mapping[str, str]) -> Self:
        """Build the sink from its configuration; secrets come from ``environ``."""

    def accepts(self, alert: Alert) -> bool:
        """Whether this sink wants ``alert``: severity at least ``min_severity``, filters match."""
        rank = SEVERITY_ORDER.get(alert.severity)
        if rank is None or rank < SEVERITY_ORDER[self.min_severity]:
            return False
        return self.alert_filter.matches(alert)

    def bind(self, context: SinkContext) -> None:  # noqa: B027 - optional hook
        """Take what the sink needs from the rest of the configuration (explorers, broker)."""

    async def start(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Open connections or files; called once before the first delivery."""

    @abc.abstractmethod
    async def deliver(self, alert: Alert) -> None:
        """Hand ``alert`` over, retrying as the sink sees fit; raise SinkError if it cannot."""

    async def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release what :meth:`start` opened; safe to call more than once."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, min_severity={self.min_severity!r})"


SINK_TYPES: dict[str, type[Sink]] = {}
"""Registry: configuration ``type`` name -> sink class."""

S = TypeVar("S", bound=type[Sink])


def register_sink(cls: S) -> S:
    """Class decorator: register ``cls`` under its ``type_name`` (which must be unique)."""
    name = cls.type_name
    if not name:
        raise ValueError(f"{cls.__name__} needs a non-empty 'type_name' to be registered")
    existing = SINK_TYPES.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"sink type {name!r} is already registered by {existing.__name__}")
    SINK_TYPES[name] = cls
    return cls


def secret_from_env(config: SinkConfig, environ: Mapping[str, str]) -> Secret:
    """Read the sink's HMAC secret from ``environ[config.secret_env]``.

    Raises :class:`ConfigError` naming the sink and the variable (never its value) when the
    variable is not configured, not set, or empty.
    """
    var = config.secret_env
    if not var:
        raise ConfigError(f"sink {config.name!r} needs 'secret_env': the name of the environment "
                          "variable holding its secret")
    value = environ.get(var)
    if value is None:
        raise ConfigError(f"sink {config.name!r}: environment variable {var} (its secret) "
                          "is not set")
    if not value.strip():
        raise ConfigError(f"sink {config.name!r}: environment variable {var} (its secret) "
                          "is empty")
    return Secret(value.encode("utf-8"))


def build_sinks(configs: list[SinkConfig], environ: Mapping[str, str],
                context: SinkContext | None = None) -> list[Sink]:
    """Build one sink per configuration entry, in order; ConfigError names what is wrong.

    Each sink gets its entry's filters and is bound to ``context`` (default: no explorer
    links, no worker broker).
    """
    context = context if context is not None else SinkContext()
    sinks: list[Sink] = []
    for config in configs:
        cls = SINK_TYPES.get(config.type)
        if cls is None:
            known = ", ".join(sorted(SINK_TYPES)) or "(none)"
            raise ConfigError(f"sink {config.name!r}: unknown type {config.type!r}; "
                              f"known types: {known}")
        sink = cls.from_config(config, environ)
        sink.alert_filter = AlertFilter.from_config(config.filters)
        sink.bind(context)
        sinks.append(sink)
    return sinks

