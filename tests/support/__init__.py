"""Test helpers shared by unit and integration tests: real local receivers for sinks."""
