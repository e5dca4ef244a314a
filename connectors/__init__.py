"""Chain connectors: JSON-RPC in, one Kafka message per block out."""
