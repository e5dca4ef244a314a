"""Alert sinks: where alerts go (console, signed webhooks) and the registry that builds them."""

from monitor.sinks.base import (
    SINK_TYPES,
    Secret,
    Sink,
    build_sinks,
    register_sink,
    secret_from_env,
)
from monitor.sinks.console import ConsoleSink, format_alert, format_amount
from monitor.sinks.webhook import WebhookSink

__all__ = [
    "SINK_TYPES",
    "ConsoleSink",
    "Secret",
    "Sink",
    "WebhookSink",
    "build_sinks",
    "format_alert",
    "format_amount",
    "register_sink",
    "secret_from_env",
]
