"""Alert sinks: where alerts go (console, webhooks, chat, email, Kafka) and their registry."""

from monitor.sinks.base import (
    SINK_TYPES,
    Secret,
    Sink,
    SinkContext,
    build_sinks,
    register_sink,
    secret_from_env,
)
from monitor.sinks.chat import DiscordSink, SlackSink, TelegramSink
from monitor.sinks.console import ConsoleSink, format_alert, format_amount
from monitor.sinks.email import EmailSink
from monitor.sinks.filters import AlertFilter
from monitor.sinks.kafka_topic import KafkaTopicSink
from monitor.sinks.webhook import WebhookSink

__all__ = [
    "SINK_TYPES",
    "AlertFilter",
    "ConsoleSink",
    "DiscordSink",
    "EmailSink",
    "KafkaTopicSink",
    "Secret",
    "Sink",
    "SinkContext",
    "SlackSink",
    "TelegramSink",
    "WebhookSink",
    "build_sinks",
    "format_alert",
    "format_amount",
    "register_sink",
    "secret_from_env",
]
