"""Faust agents: one module per agent, each with a ``register(app, runtime)`` function."""
