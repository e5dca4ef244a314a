"""Chain-agnostic streaming loop: confirmed batches out, reorgs as reverts, topic as checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from connectors.publisher import BlockSink
from connectors.retry import RetryPolicy
from monitor.errors import ConnectorError
from monitor.metrics import (
    BLOCKS_INGESTED,
    HEAD_LAG_BLOCKS,
    HEAD_LAG_SECONDS,
    LAST_PUBLISHED_BLOCK,
    REORGS,
    REVERTED_BLOCKS,
    TRANSFERS_INGESTED,
)
from monitor.records import Block

log = logging.getLogger(__name__)

FAILURE_POLICY = RetryPolicy(base_seconds=1.0, cap_seconds=30.0, max_attempts=6)


class BlockSource(Protocol):
    """A chain's blocks, as the streamer needs them (see ``connectors.evm.extract``)."""

    async def head(self) -> int:
        """Latest block number."""

    async def fetch(self, numbers: list[int], head: int) -> list[Block]:
        """Return mapped blocks for ``numbers`` (ascending), each stamped with ``head``."""

    async def block_header(self, number: int) -> tuple[str, str]:
        """``(hash, parent_hash)`` of the canonical block at ``number``."""


class HeadFeed(Protocol):
    """New-head signals (see ``connectors.evm.heads.HeadTracker``)."""

    latest: int

    async def poll(self) -> int:
        """Ask the node for its head now."""

    async def wait_for_head(self, known: int) -> int:
        """Return the head once above ``known``, or after one poll interval."""


class ReorgTooDeep(ConnectorError):
    """A reorg reaches below the window of known blocks: an operator must intervene."""


class PublishFailed(ConnectorError):
    """The broker did not acknowledge (or the checkpoint could not be read)."""


@dataclass(frozen=True)
class BlockRef:
    """What the streamer remembers of a published block: enough to verify and to revert it."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int

    @classmethod
    def of(cls, block: Block) -> BlockRef:
        """Return the reference of a published block."""
        return cls(block.number, block.hash.lower(), block.parent_hash.lower(), block.timestamp)


@dataclass
class _Prefetch:
    """A fetch of the next batch, started while the current one is mapped and published."""

    numbers: list[int]
    task: asyncio.Future[list[Block]]


def _discard(task: asyncio.Future[list[Block]]) -> None:
    """Cancel an unused fetch; its outcome (even a failure) is of no interest any more."""
    task.cancel()
    task.add_done_callback(lambda t: None if t.cancelled() else t.exception())


class Streamer:
    """Follow one chain: fetch confirmed blocks in batches, verify links, publish, then remember.

    The node is kept busy: when a batch is due, the fetch of the batch after it starts at once
    (one batch ahead), so the node serves it while this one is mapped and published. The
    prefetched blocks go through the same checks when their turn comes (parent hash against
    the block published below them), and are dropped on a reorg, a failure or a different
    next block; publishing stays strictly in order, one acknowledged batch after another.
    """

    def __init__(
        self,
        chain: str,
        source: BlockSource,
        publisher: BlockSink,
        confirmations: int,
        start_block: int | Literal["latest"],
        batch_size: int,
        reorg_window: int,
        heads: HeadFeed,
        failure_policy: RetryPolicy = FAILURE_POLICY,
    ) -> None:
        self.chain = chain
        self.source = source
        self.publisher = publisher
        self.confirmations = confirmations
        self.start_block = start_block
        self.batch_size = max(1, batch_size)
        self.reorg_window = reorg_window
        self.heads = heads
        self.failure_policy = failure_policy
        self.window: OrderedDict[int, BlockRef] = OrderedDict()
        self.next_block: int | None = None
        self._history_complete = False  # the window reaches back to the first event ever sent
        self._synced = False
        self._ahead: _Prefetch | None = None

    @property
    def tail_size(self) -> int:
        """Events read back on resume: the reorg window plus room for interleaved reverts."""
        return 2 * self.reorg_window + self.batch_size

    async def resume(self) -> None:
        """Rebuild the window and the next block number from the tail of the topic."""
        try:
            tail = await self.publisher.read_tail(self.tail_size)
        except ConnectorError:
            raise
        except Exception as exc:
            raise PublishFailed(f"cannot read the checkpoint: {exc!r}", chain=self.chain) from exc
        self._drop_ahead()
        self.window.clear()
        self.next_block = None
        self._history_complete = len(tail) < self.tail_size
        for event in tail:
            if event.kind == "block":
                for number in [n for n in self.window if n >= event.number]:
                    del self.window[number]
                self.window[event.number] = BlockRef.of(event)
                self.next_block = event.number + 1
            else:
                stored = self.window.get(event.number)
                if stored is not None and stored.hash == event.hash.lower():
                    del self.window[event.number]
                self.next_block = event.number
        self._trim()
        self._synced = True
        if self.next_block is not None:
            log.info("chain %s: resuming at block %d (%d known blocks)",
                     self.chain, self.next_block, len(self.window))

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Stream until ``stop`` is set; raises ConnectorError after repeated failures."""
        stop = stop or asyncio.Event()
        try:
            await self._run(stop)
        finally:
            ahead, self._ahead = self._ahead, None
            if ahead is not None:
                ahead.task.cancel()
                await asyncio.gather(ahead.task, return_exceptions=True)

    async def _run(self, stop: asyncio.Event) -> None:
        failures = 0
        head = -1
        polled = True
        while not stop.is_set():
            try:
                if not self._synced:
                    await self.resume()
                if head < 0:
                    head = await self.heads.poll()
                if self.next_block is None:
                    self.next_block = self._first_block(head)
                if await self.step(head):
                    head = max(head, self.heads.latest)
                    failures = 0
                    polled = False
                    continue
                if not polled:  # caught up with a head seen before the batches: ask again now
                    polled = True
                    head = max(head, await self.heads.poll())
                    continue
                new_head = await self._wait_for_head(head, stop)
                if new_head is None:
                    break
                if new_head <= head:
                    await self.check_tip()
                head = max(head, new_head)
                failures = 0
            except ReorgTooDeep:
                raise
            except ConnectorError as exc:
                self._drop_ahead()
                failures += 1
                if failures >= self.failure_policy.max_attempts:
                    raise
                log.error("chain %s: %s; retrying (%d/%d)", self.chain, exc, failures,
                          self.failure_policy.max_attempts - 1)
                await _sleep_unless(stop, self.failure_policy.delay(failures - 1))

    def _first_block(self, head: int) -> int:
        if self.start_block == "latest":
            return max(0, head - self.confirmations)
        return self.start_block

    async def _wait_for_head(self, known: int, stop: asyncio.Event) -> int | None:
        waiter = asyncio.ensure_future(self.heads.wait_for_head(known))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stopper):
                task.cancel()
            await asyncio.gather(waiter, stopper, return_exceptions=True)
        if stop.is_set() or waiter.cancelled():
            return None
        return waiter.result()  # re-raises a failed poll (ConnectorError)

    async def step(self, head: int) -> bool:
        """Publish the next confirmed batch (or handle a reorg); False if nothing is due."""
        assert self.next_block is not None
        target = head - self.confirmations
        first = self.next_block
        if first > target:
            return False
        numbers = list(range(first, min(target, first + self.batch_size - 1) + 1))
        current = self._claim_ahead(first, target)
        if current is None:
            current = _Prefetch(numbers, asyncio.ensure_future(self.source.fetch(numbers, head)))
        following = current.numbers[-1] + 1
        if following <= target:  # the node serves the next batch while this one is handled
            later = list(range(following, min(target, following + self.batch_size - 1) + 1))
            self._ahead = _Prefetch(later, asyncio.ensure_future(self.source.fetch(later, head)))
        try:
            blocks = await current.task
        except BaseException:
            self._drop_ahead()
            raise
        if not blocks:
            self._drop_ahead()
            return False
        stored = self.window.get(first - 1)
        if stored is not None and blocks[0].parent_hash.lower() != stored.hash:
            self._drop_ahead()
            await self.handle_reorg(first - 1, head)
            return True
        linked = [blocks[0]]
        for block in blocks[1:]:
            if block.parent_hash.lower() != linked[-1].hash.lower():
                log.warning("chain %s: batch torn at block %d (reorg while fetching)",
                            self.chain, block.number)
                break
            linked.append(block)
        await self._publish(linked)
        self._remember(linked, head)
        return True

    def _claim_ahead(self, first: int, target: int) -> _Prefetch | None:
        """The prefetched fetch if it is the batch due now; otherwise drop it."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        if ahead.numbers[0] == first and ahead.numbers[-1] <= target:
            return ahead
        _discard(ahead.task)
        return None

    def _drop_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            _discard(ahead.task)

    async def check_tip(self) -> None:
        """Compare our last block with the node's; a same-height reorg shows up here."""
        if self.next_block is None or (self.next_block - 1) not in self.window:
            return
        number = self.next_block - 1
        node_hash, _ = await self.source.block_header(number)
        if node_hash.lower() != self.window[number].hash:
            await self.handle_reorg(number, self.heads.latest)

    async def handle_reorg(self, top: int, head: int) -> None:
        """Walk back from ``top`` to the common ancestor, publish reverts, continue above it."""
        self._drop_ahead()
        REORGS.labels(self.chain).inc()
        ancestor = top
        while True:
            if top - ancestor >= self.reorg_window:
                raise ReorgTooDeep(f"reorg deeper than reorg_window={self.reorg_window}",
                                   chain=self.chain, block=top)
            stored = self.window.get(ancestor)
            if stored is None:
                if self._history_complete and (not self.window or ancestor < min(self.window)):
                    break  # nothing was ever published this low
                raise ReorgTooDeep("reorg below the blocks known to the connector",
                                   chain=self.chain, block=ancestor)
            node_hash, _ = await self.source.block_header(ancestor)
            if node_hash.lower() == stored.hash:
                break
            ancestor -= 1
        gone = sorted((n for n in self.window if n > ancestor), reverse=True)
        reverts = [
            Block(chain=self.chain, number=ref.number, hash=ref.hash,
                  parent_hash=ref.parent_hash, timestamp=ref.timestamp, kind="revert",
                  head=head)
            for ref in (self.window[n] for n in gone)
        ]
        log.warning("chain %s: reorg below block %d: reverting %d block(s) above %d",
                    self.chain, top + 1, len(reverts), ancestor)
        await self._publish(reverts)
        for number in gone:
            del self.window[number]
        REVERTED_BLOCKS.labels(self.chain).inc(len(reverts))
        self.next_block = ancestor + 1

    async def _publish(self, blocks: Sequence[Block]) -> None:
        try:
            await self.publisher.publish(blocks)
        except Exception as exc:
            self._synced = False  # what landed is known only from the topic now
            raise PublishFailed(f"publishing {len(blocks)} block event(s) failed: {exc!r}",
                                chain=self.chain, block=blocks[0].number if blocks else None
                                ) from exc

    def _remember(self, blocks: Sequence[Block], head: int) -> None:
        for block in blocks:
            self.window[block.number] = BlockRef.of(block)
        self._trim()
        last = blocks[-1]
        self.next_block = last.number + 1
        BLOCKS_INGESTED.labels(self.chain).inc(len(blocks))
        kinds = Counter(t.kind for block in blocks for t in block.transfers)
        for kind, count in kinds.items():
            TRANSFERS_INGESTED.labels(self.chain, kind).inc(count)
        LAST_PUBLISHED_BLOCK.labels(self.chain).set(last.number)
        HEAD_LAG_BLOCKS.labels(self.chain).set(max(0, head - last.number))
        HEAD_LAG_SECONDS.labels(self.chain).set(max(0.0, time.time() - last.timestamp))

    def _trim(self) -> None:
        while len(self.window) > self.reorg_window:
            self.window.popitem(last=False)
            self._history_complete = False


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
