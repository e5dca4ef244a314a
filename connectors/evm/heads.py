"""New-head signals: a WebSocket ``newHeads`` subscription when configured, HTTP polling always."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from web3 import AsyncWeb3, WebSocketProvider
from web3.utils.subscriptions import NewHeadsSubscription, NewHeadsSubscriptionContext

from connectors.retry import RetryPolicy
from connectors.rpc import QUIET_LOGGER, redact_url
from monitor.metrics import HEAD_BLOCK

log = logging.getLogger(__name__)

RECONNECT_POLICY = RetryPolicy(base_seconds=0.5, cap_seconds=30.0, max_attempts=1)


class HeadTracker:
    """Wakes the streamer on a new head; a missed WebSocket message costs one poll interval."""

    def __init__(
        self,
        chain: str,
        poll: Callable[[], Awaitable[int]],
        poll_interval: float,
        ws_url: str | None = None,
        reconnect: RetryPolicy = RECONNECT_POLICY,
    ) -> None:
        self.chain = chain
        self.poll_interval = poll_interval
        self.ws_url = ws_url
        self.latest = -1
        self.latest_hash: str | None = None
        self.ws_connected = False
        self.ws_heads = 0
        self._poll = poll
        self._reconnect = reconnect
        self._signal = asyncio.Event()
        self._ws_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the WebSocket subscription task if a ``ws_url`` is configured."""
        if self.ws_url and self._ws_task is None:
            self._ws_task = asyncio.create_task(self._follow_ws(self.ws_url),
                                                name=f"heads-ws-{self.chain}")

    async def stop(self) -> None:
        """Stop the WebSocket task."""
        task, self._ws_task = self._ws_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def note(self, number: int, block_hash: str | None = None) -> None:
        """Record a head announced by any source and wake the waiter."""
        if number > self.latest:
            self.latest = number
            HEAD_BLOCK.labels(self.chain).set(number)
        if number >= self.latest:
            self.latest_hash = block_hash
        self._signal.set()

    async def poll(self) -> int:
        """Ask the node for its head over HTTP and record it."""
        self.note(await self._poll())
        return self.latest

    async def wait_for_head(self, known: int) -> int:
        """Return the latest head once it is above ``known`` or a WS head arrived.

        Waits at most ``poll_interval``, then polls over HTTP: polling is the safety net, so a
        silent or dead socket never stalls the connector. The result may equal ``known``
        (no new block; the caller may then check the tip for a same-height reorg).
        """
        if self.latest > known:
            return self.latest
        self._signal.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._signal.wait(), self.poll_interval)
        if self.latest <= known:
            await self.poll()
        return self.latest

    async def _on_head(self, context: NewHeadsSubscriptionContext) -> None:
        result: Any = context.result
        number = result.get("number")
        block_hash = result.get("hash")
        if isinstance(number, int):
            self.ws_heads += 1
            text = block_hash.to_0x_hex() if hasattr(block_hash, "to_0x_hex") else None
            self.note(number, text)

    async def _follow_ws(self, url: str) -> None:
        where = redact_url(url)
        attempt = 0
        while True:
            try:
                provider = WebSocketProvider(url, max_connection_retries=1)
                provider.logger = QUIET_LOGGER
                async with AsyncWeb3(provider) as w3:
                    await w3.subscription_manager.subscribe(
                        NewHeadsSubscription(handler=self._on_head, label="chainwatch-heads")
                    )
                    self.ws_connected = True
                    attempt = 0
                    log.info("chain %s: subscribed to newHeads on %s", self.chain, where)
                    await w3.subscription_manager.handle_subscriptions(run_forever=True)
                log.warning("chain %s: newHeads socket %s closed", self.chain, where)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("chain %s: newHeads on %s failed (%s); polling meanwhile",
                            self.chain, where, type(exc).__name__)
            finally:
                self.ws_connected = False
            await asyncio.sleep(self._reconnect.delay(min(attempt, 16)))
            attempt += 1
