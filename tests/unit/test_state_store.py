"""worker.store / worker.state_dir: validation, resolution, the state directory's lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.settings import ChainwatchConfig, EnvSettings, WorkerConfig, load_config_text
from monitor.statestore import (
    LOCK_NAME,
    prepare_state_store,
    release_state_dir,
    resolve_state_store,
)
from monitor.tablestore import key_partition

BASE = """
chains:
  - name: devnet
    chain_id: 31337
    rpc_urls: ["http://127.0.0.1:8545"]
"""


def config(worker_yaml: str) -> ChainwatchConfig:
    return load_config_text(BASE + worker_yaml, "chainwatch.yaml")


def test_default_is_the_memory_store_under_the_state_dir(tmp_path: Path) -> None:
    cfg = config("")
    assert cfg.worker == WorkerConfig(store="memory", state_dir=None)
    store = resolve_state_store(cfg.worker, EnvSettings(state_dir=tmp_path), "cw")
    assert (store.url, store.datadir) == ("memory://", tmp_path / "worker" / "cw")


def test_rocksdb_store_and_its_directory(tmp_path: Path) -> None:
    cfg = config(f"worker: {{store: rocksdb, state_dir: {tmp_path / 'state'}}}\n")
    store = resolve_state_store(cfg.worker, EnvSettings(), "cw")
    assert store.url == "chainwatch-rocksdb://"
    assert store.datadir == tmp_path / "state"


@pytest.mark.parametrize(("worker_yaml", "expected"), [
    ("worker: {store: redis}", "chainwatch.yaml: worker.store: Input should be 'memory' or "
                               "'rocksdb'"),
    ("worker: {store: rocksdb, state_dir: ''}", "chainwatch.yaml: worker.state_dir:"),
    ("worker: {state_dir: '/var/lib/{conf}'}", "worker.state_dir: Value error, must be a plain "
                                               "directory path"),
    ("worker: {stores: rocksdb}", "worker.stores: Extra inputs are not permitted"),
    ("worker: rocksdb", "worker: Input should be a valid dictionary"),
])
def test_bad_worker_settings_name_the_key(worker_yaml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(worker_yaml + "\n")
    assert expected in str(err.value)


def test_state_dir_that_is_a_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    worker = WorkerConfig(store="rocksdb", state_dir=str(blocker / "state"))
    with pytest.raises(ConfigError, match=r"^worker.state_dir: cannot create the worker's "):
        prepare_state_store(worker, EnvSettings(), "cw")


def test_rocksdb_state_dir_is_locked_against_a_second_worker(tmp_path: Path) -> None:
    worker = WorkerConfig(store="rocksdb", state_dir=str(tmp_path / "state"))
    store = prepare_state_store(worker, EnvSettings(), "cw")
    try:
        assert (store.datadir / LOCK_NAME).read_text().strip().isdigit()
        other = subprocess.run(
            [sys.executable, "-c",
             "from monitor.settings import EnvSettings, WorkerConfig\n"
             "from monitor.statestore import prepare_state_store\n"
             f"prepare_state_store(WorkerConfig(store='rocksdb', state_dir={str(store.datadir)!r}),"
             " EnvSettings(), 'cw')"],
            capture_output=True, text=True, timeout=60, check=False)
        assert other.returncode != 0
        assert "worker.state_dir" in other.stderr and "in use by another worker" in other.stderr
    finally:
        release_state_dir(store.datadir)
    # released (as at the end of a process, kill -9 included): the next worker gets it
    prepare_state_store(worker, EnvSettings(), "cw")
    release_state_dir(store.datadir)


def test_memory_store_takes_no_lock(tmp_path: Path) -> None:
    store = prepare_state_store(WorkerConfig(state_dir=str(tmp_path / "m")), EnvSettings(), "cw")
    assert store.datadir.is_dir() and not (store.datadir / LOCK_NAME).exists()


def test_key_partition_is_the_producers_partitioner() -> None:
    # the local RocksDB partition of a use_partitioner table write = its changelog partition
    from aiokafka.partitioner import DefaultPartitioner

    for key in (b"@lifecycle:devnet", b"a:devnet:0x" + b"12" * 20, b""):
        for n in (1, 2, 3, 8):
            assert key_partition(key, n) == DefaultPartitioner()(key, list(range(n)), [])
