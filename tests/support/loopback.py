"""An asyncio event loop in a background thread, for loopback servers used by synchronous tests.

The webhook receiver, the JSON-RPC replay server and the RPC fault proxy are aiohttp servers
that a test (or a subprocess it starts) talks to while the test itself blocks; each serves
from one of these threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class LoopThread:
    """Run coroutines on a private event loop in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread and its loop are up."""
        return self._loop is not None

    def start(self) -> None:
        """Start the thread; returns once its loop runs."""
        if self._loop is not None:
            raise RuntimeError(f"{self.name} is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
        """Run the coroutine ``make()`` on the loop and wait for its result."""
        if self._loop is None:
            raise RuntimeError(f"{self.name} is not running")

        async def call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=timeout)

    def stop(self, close: Callable[[], Awaitable[object]] | None = None) -> None:
        """Await ``close()`` on the loop if given, then stop the loop and the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if close is not None:
                self.run(close)
        finally:
            self._loop = self._thread = None
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)


def serve_in_thread(name: str, start: Callable[[], Awaitable[object]]) -> LoopThread:
    """Start a :class:`LoopThread` and run the server's ``start()`` on it."""
    thread = LoopThread(name)
    thread.start()
    try:
        thread.run(start)
    except BaseException:
        thread.stop()
        raise
    return thread
