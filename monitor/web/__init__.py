"""The worker's HTTP API: alert index, audit trail, cases, exports, SSE, watchlist, OpenAPI."""
