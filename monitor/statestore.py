"""The worker's table store: faust's ``store`` URL and data directory from ``worker:`` settings.

With ``store: rocksdb`` every table partition is a RocksDB database (through rocksdict) under
``<state_dir>/v1/tables`` that also keeps the offset of the last changelog record it holds; a
restarted worker seeks its changelog there and reads only the tail. Two worker processes must
never share a state directory: the directory is locked for the life of the process, and a
second worker gets a clear error at once instead of faust's 30 s of retries on RocksDB's lock.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import ConfigError
from monitor.settings import EnvSettings, WorkerConfig

LOCK_NAME = "chainwatch-worker.lock"
"""File in the state directory that a running worker holds an exclusive lock on."""

_held_locks: dict[Path, int] = {}  # state directory -> open descriptor, for the process's life


@dataclass(frozen=True)
class StateStore:
    """Resolved table store of one worker: faust's ``store`` URL and ``datadir``."""

    kind: str
    url: str
    datadir: Path


def resolve_state_store(worker: WorkerConfig, env: EnvSettings, app_id: str) -> StateStore:
    """The store URL and absolute data directory for ``worker`` (no I/O)."""
    if worker.state_dir is not None:
        datadir = Path(worker.state_dir)
    else:
        datadir = env.state_dir / "worker" / app_id
    return StateStore(kind=worker.store, url=store_url(worker.store),
                      datadir=datadir.expanduser().absolute())


def store_url(kind: str) -> str:
    """Faust's ``store`` setting for a ``worker.store`` value."""
    if kind == "rocksdb":
        from monitor import tablestore  # imports faust's RocksDB store module

        return tablestore.register()
    return "memory://"


def prepare_state_store(worker: WorkerConfig, env: EnvSettings, app_id: str) -> StateStore:
    """Resolve the store, create its directory and, for RocksDB, lock it for this process.

    Raises :class:`ConfigError` naming ``worker.state_dir`` or ``worker.store`` when the
    directory cannot be used, another worker holds it, or rocksdict is not installed.
    """
    store = resolve_state_store(worker, env, app_id)
    where = "worker.state_dir" if worker.state_dir is not None else "CHAINWATCH_STATE_DIR"
    try:
        store.datadir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot create the worker's state directory "
                          f"{store.datadir}: {exc.strerror}") from None
    if not os.access(store.datadir, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: the worker's state directory {store.datadir} is not "
                          "writable by this user")
    if store.kind == "rocksdb":
        if importlib.util.find_spec("rocksdict") is None:
            raise ConfigError("worker.store: 'rocksdb' needs the rocksdict package "
                              "(pip install 'chainwatch' installs it); or use 'memory'")
        lock_state_dir(store.datadir, where)
    return store


def lock_state_dir(datadir: Path, where: str = "worker.state_dir") -> None:
    """Hold an exclusive lock on ``datadir`` until the process ends (kill -9 releases it)."""
    datadir = datadir.absolute()
    if datadir in _held_locks:
        return
    path = datadir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(f"{where}: the state directory {datadir} is in use by another "
                          f"worker (pid {holder}); give each worker its own state_dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held_locks[datadir] = fd


def release_state_dir(datadir: Path) -> None:
    """Give up this process's lock on ``datadir`` (tests; a worker keeps it until it exits)."""
    fd = _held_locks.pop(datadir.absolute(), None)
    if fd is not None:
        os.close(fd)
