"""Local services chainwatch starts and stops itself: an Apache Kafka broker and an anvil node."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.devservices.anvil import LocalAnvil, find_anvil
    from monitor.devservices.kafka import LocalKafka, resolve_jars
    from monitor.devservices.ports import free_port, free_ports

__all__ = ["LocalAnvil", "LocalKafka", "find_anvil", "free_port", "free_ports", "resolve_jars"]

_HOMES = {
    "LocalAnvil": "anvil", "find_anvil": "anvil",
    "LocalKafka": "kafka", "resolve_jars": "kafka",
    "free_port": "ports", "free_ports": "ports",
}


def __getattr__(name: str) -> Any:
    """Import the public names lazily, so ``python -m monitor.devservices.kafka`` runs cleanly."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
