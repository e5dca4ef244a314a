"""Shared pytest configuration: the real-service fixtures live in tests/plugins/services.py."""

pytest_plugins = ["tests.plugins.services"]
