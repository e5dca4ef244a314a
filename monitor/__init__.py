"""chainwatch monitor: the Faust worker, its agents, API, sinks, CLI and local services."""

__version__ = "0.1.0"
