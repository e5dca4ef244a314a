"""Faust's RocksDB table store, able to write tables whose partition comes from the key.

faust's own RocksDB store files every write under the partition of the *current event*, and
asserts there is one. A table declared with ``use_partitioner=True`` (the screening table,
written for a whole batch of events at once) has no current event when it is written and its
changelog partition is chosen by the producer's partitioner from the key. This store files such
a write under that same partition (Kafka's murmur2 partitioner, as aiokafka's producer and so
faust use it), so the local database and the changelog agree; every other write is filed as
faust files it. Registered with faust as the store URL ``chainwatch-rocksdb://``.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2
from faust import stores
from faust.stores import rocksdb

STORE_SCHEME = "chainwatch-rocksdb"
"""URL scheme of :class:`KeyPartitionedRocksStore` in faust's store registry."""


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key`` among ``partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitionedRocksStore(rocksdb.Store):
    """RocksDB store that files writes of ``use_partitioner`` tables by their key's partition."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        if not self.table.use_partitioner:
            super()._set(key, value)
            return
        partition = key_partition(key, self.table.partitions or self.app.conf.topic_partitions)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)


def register() -> str:
    """Make ``chainwatch-rocksdb://`` known to faust (idempotent); returns the store URL."""
    stores.STORES.aliases.setdefault(STORE_SCHEME, f"{__name__}:KeyPartitionedRocksStore")
    return f"{STORE_SCHEME}://"
