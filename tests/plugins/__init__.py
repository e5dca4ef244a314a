"""pytest plugins of the chainwatch test suite."""
