"""The exception tree of chainwatch: one root, a child per layer, each carrying its context."""

from __future__ import annotations


class ChainwatchError(Exception):
    """Root of every error chainwatch raises on purpose."""

    def __init__(self, message: str, **context: object) -> None:
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if not self.context:
            return self.message
        where = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} ({where})"


class ConfigError(ChainwatchError):
    """Configuration that cannot be used: names the file and the key."""


class ConnectorError(ChainwatchError):
    """A chain node answered wrongly or not at all (carries chain, endpoint, block)."""


class RpcResponseError(ConnectorError):
    """A JSON-RPC answer that is malformed, null where a value is due, or an error object."""


class RuleError(ChainwatchError):
    """A rule is unknown, misconfigured or failed on a record (carries rule, transfer)."""


class SinkError(ChainwatchError):
    """A subscriber could not be reached or refused an alert (carries sink, alert)."""


class InputError(ChainwatchError):
    """Outside data (a watchlist file, an API body) that cannot be read: names what and where."""


class ServiceError(ChainwatchError):
    """A local service (Kafka broker, anvil devnet) could not be prepared or started."""
