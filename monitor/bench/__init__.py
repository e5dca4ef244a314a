"""``chainwatch bench``: measure ingest, screening, latency and memory on local services.

Every figure is printed next to a baseline measured in the same run (the node's raw fetch
rate, ethereum-etl, ``screen_block`` in-process, a Kafka round trip, the RSS with nothing
watched), so that ratios hold on any machine. See ``monitor.bench.runner``.
"""
