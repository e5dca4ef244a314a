"""chainwatch's test suite."""
