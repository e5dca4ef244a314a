"""Every Prometheus metric chainwatch exports, in one place, named with units.

Connector processes and worker processes import the metrics they update from here; each
process serves its own registry on ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Connector
BLOCKS_INGESTED = Counter(
    "chainwatch_blocks_ingested_total",
    "Blocks published to Kafka by the connector (acknowledged by the broker).",
    ["chain"],
)
TRANSFERS_INGESTED = Counter(
    "chainwatch_transfers_ingested_total",
    "Normalized transfers published, by kind (native, erc20, internal).",
    ["chain", "kind"],
)
REORGS = Counter(
    "chainwatch_reorgs_total", "Reorgs detected by parent-hash mismatch.", ["chain"]
)
REVERTED_BLOCKS = Counter(
    "chainwatch_reverted_blocks_total", "Blocks announced as reverted after a reorg.", ["chain"]
)
HEAD_BLOCK = Gauge("chainwatch_head_block", "Latest chain head seen by the connector.", ["chain"])
LAST_PUBLISHED_BLOCK = Gauge(
    "chainwatch_last_published_block", "Highest block acknowledged by the broker.", ["chain"]
)
HEAD_LAG_BLOCKS = Gauge(
    "chainwatch_head_lag_blocks",
    "Chain head minus the last published block (includes the confirmation depth).",
    ["chain"],
)
HEAD_LAG_SECONDS = Gauge(
    "chainwatch_head_lag_seconds",
    "Wall clock minus the timestamp of the last published block.",
    ["chain"],
)
RPC_REQUESTS = Counter(
    "chainwatch_rpc_requests_total", "JSON-RPC calls (a batch counts once).", ["chain", "endpoint"]
)
RPC_ERRORS = Counter(
    "chainwatch_rpc_errors_total",
    "Failed JSON-RPC calls by reason (timeout, http, rpc, malformed).",
    ["chain", "endpoint", "reason"],
)
RPC_LATENCY = Histogram(
    "chainwatch_rpc_latency_seconds",
    "JSON-RPC round-trip time.",
    ["chain", "endpoint"],
    buckets=_LATENCY_BUCKETS,
)

# Worker
TRANSFERS_SCREENED = Counter(
    "chainwatch_transfers_screened_total", "Transfers screened against the watchlist.", ["chain"]
)
BLOCKS_SCREENED = Counter(
    "chainwatch_blocks_screened_total", "Block events consumed by the screening agent.", ["chain"]
)
ALERTS_RAISED = Counter(
    "chainwatch_alerts_raised_total", "Alerts emitted, by rule and severity.", ["rule", "severity"]
)
WATCHLIST_ENTRIES = Gauge(
    "chainwatch_watchlist_entries", "Watch entries held by this worker's replica."
)
DEAD_LETTERS = Counter(
    "chainwatch_dead_letters_total",
    "Messages that could not be processed and went to the dead-letter topic.",
    ["stage"],
)
REREADS = Counter(
    "chainwatch_rereads_total",
    "Events that arrived out of order (a block not following the screened tip, an alert offset "
    "after a gap), so the worker read the partition again (kind: reread), or, when the re-read "
    "found nothing in between, handled them anyway (kind: break).",
    ["topic", "kind"],
)
SINK_DELIVERIES = Counter(
    "chainwatch_sink_deliveries_total", "Alerts delivered, by sink.", ["sink"]
)
SINK_FAILURES = Counter(
    "chainwatch_sink_failures_total",
    "Failed delivery attempts, by sink and reason.",
    ["sink", "reason"],
)
SINK_LATENCY = Histogram(
    "chainwatch_sink_delivery_seconds",
    "Time to deliver one alert, retries included.",
    ["sink"],
    buckets=_LATENCY_BUCKETS,
)
ALERT_LATENCY = Histogram(
    "chainwatch_alert_latency_seconds",
    "Wall clock at alert time minus block timestamp.",
    ["chain"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
ALERT_EVENTS = Counter(
    "chainwatch_alert_events_total",
    "Alert lifecycle events emitted, by status (provisional, confirmed, retracted).",
    ["chain", "rule", "status"],
)
CONSUMER_LAG = Gauge(
    "chainwatch_consumer_lag_messages",
    "Messages in a partition this worker reads that its group has not committed yet (end "
    "offset minus committed offset), for the block topics and the alerts topic.",
    ["topic", "partition"],
)

# Connector high availability
CONNECTOR_ACTIVE = Gauge(
    "chainwatch_connector_active",
    "1 while this connector instance is the chain's active one (elected through Kafka), else 0.",
    ["chain"],
)
CONNECTOR_TAKEOVERS = Counter(
    "chainwatch_connector_takeovers_total",
    "Times this connector instance became the chain's active one.",
    ["chain"],
)
