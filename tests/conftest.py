"""Shared pytest configuration: the real-service fixtures live in tests/plugins/."""

pytest_plugins = ["tests.plugins.services", "tests.plugins.cluster"]
