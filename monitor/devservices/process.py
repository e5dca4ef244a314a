"""Child processes for local services: die with their parent, stop politely, show their log."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path

from monitor.errors import ServiceError

_PR_SET_PDEATHSIG = 1
_live: set[subprocess.Popen[bytes]] = set()

_Job = tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]


class _Forker:
    """A daemon thread that starts every child, so that "parent died" means the process died.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits. Forking from a thread
    that lives as long as the interpreter keeps a broker started from, say, ``asyncio.to_thread``
    alive after that worker thread ends.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="chainwatch-forker", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            start, result = self._jobs.get()
            try:
                result.set_result(start())
            except BaseException as exc:  # handed back to the caller
                result.set_exception(exc)

    def run(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        """Run ``start`` on the forker thread and return the process it started."""
        result: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((start, result))
        return result.result()


_forker: _Forker | None = None
_forker_lock = threading.Lock()


def _get_forker() -> _Forker:
    """Return the process-wide forker thread, starting it on first use."""
    global _forker
    with _forker_lock:
        if _forker is None:
            _forker = _Forker()
        return _forker


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """Build a preexec_fn that has the kernel SIGKILL the child when its parent dies (Linux)."""

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def spawn(argv: Sequence[str], *, log_path: Path, cwd: Path | None = None,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log_path``.

    The child runs in its own session (a Ctrl-C in the terminal reaches only the parent, which
    then stops it in order) and, on Linux, is killed by the kernel when this process dies, even
    by SIGKILL, so a crashed test runner leaves no broker behind.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    preexec = _die_with_parent(os.getpid()) if sys.platform == "linux" else None

    def start() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(  # noqa: S603 - argv is built by the caller, no shell
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=cwd, env=dict(env) if env is not None else None,
                start_new_session=True, preexec_fn=preexec,
            )

    proc = _get_forker().run(start) if preexec is not None else start()
    _live.add(proc)
    return proc


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM ``proc``, wait up to ``timeout`` seconds, then SIGKILL; return its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return kill(proc)
    _live.discard(proc)
    return proc.returncode


def kill(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL ``proc`` and reap it; return its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
    _live.discard(proc)
    return proc.returncode


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(empty log at {path})"


@atexit.register
def _stop_all() -> None:
    """Stop children still running when the interpreter exits normally."""
    for proc in list(_live):
        terminate(proc, timeout=10.0)


def run_in_foreground(start: Callable[[], None], ready: Callable[[], str],
                      wait: Callable[[], int], stop: Callable[[], None]) -> int:
    """Start a local service, print ``ready()``, wait until it ends or Ctrl-C, then stop it.

    The exit status is ``wait()``'s, 0 after Ctrl-C, and 1 (with the error on stderr) when the
    service cannot start.
    """
    try:
        start()
        print(ready(), flush=True)
        return wait()
    except KeyboardInterrupt:
        return 0
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop()
