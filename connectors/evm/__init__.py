"""EVM chains: extract over JSON-RPC, map raw answers to Transfer records."""
