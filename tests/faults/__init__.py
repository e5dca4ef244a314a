"""Fault-injection suite: kill -9, reorgs, RPC faults, broker and sink outages (issue 7)."""
