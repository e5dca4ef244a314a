"""The streamer fetches one batch ahead while it publishes, without changing what lands."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from monitor.records import Block
from tests.unit.test_streamer import (
    FakeChain,
    FakeTopic,
    make,
    matches_node,
    published_to,
    run_until,
)


class GatedTopic(FakeTopic):
    """A topic whose acknowledgements wait for ``gate``; notes the fetches seen meanwhile."""

    def __init__(self, chain: FakeChain) -> None:
        super().__init__()
        self.chain = chain
        self.gate = asyncio.Event()
        self.gate.set()
        self.fetched_while_publishing: list[list[int]] = []

    async def publish(self, blocks: Sequence[Block]) -> None:
        before = len(self.chain.fetches)
        await self.gate.wait()
        for _ in range(5):
            await asyncio.sleep(0)
        self.fetched_while_publishing.extend(self.chain.fetches[before:])
        await super().publish(blocks)


async def test_next_batch_is_fetched_while_the_current_one_is_published() -> None:
    chain = FakeChain(40)
    topic = GatedTopic(chain)
    await run_until(make(chain, topic, batch=5), published_to(topic, 39))
    assert [e.number for e in topic.events] == list(range(40))
    assert matches_node(topic, chain)
    # the node serves batch k + 1 while batch k is published (batch 1 arrived together with
    # batch 0, before the first publish)
    assert [f[0] for f in topic.fetched_while_publishing] == list(range(10, 40, 5))
    assert all(len(f) == 5 for f in chain.fetches)


async def test_a_prefetched_batch_of_an_orphaned_fork_is_reverted_like_any_other() -> None:
    chain = FakeChain(20)
    topic = GatedTopic(chain)
    topic.gate.clear()  # hold the first acknowledgement back
    streamer = make(chain, topic, batch=4, window=16)
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    try:
        while len(chain.fetches) < 2:  # batch 0..3 fetched, 4..7 prefetched
            await asyncio.sleep(0.001)
        chain.reorg(18)  # blocks 2..19 replaced after they were fetched
        topic.gate.set()
        deadline = asyncio.get_running_loop().time() + 5
        while not matches_node(topic, chain):
            assert asyncio.get_running_loop().time() < deadline, "did not converge"
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert matches_node(topic, chain)
    assert any(e.kind == "revert" for e in topic.events)


async def test_a_failed_prefetch_is_retried_and_nothing_is_skipped() -> None:
    chain = FakeChain(30)
    topic = FakeTopic()
    streamer = make(chain, topic, batch=4)
    original = streamer.source.fetch
    calls = 0

    async def flaky(numbers: list[int], head: int) -> list[Block]:
        nonlocal calls
        calls += 1
        if calls in (2, 5):  # prefetches of the next batch fail now and then
            from monitor.errors import ConnectorError
            raise ConnectorError("node down", chain="testnet")
        return await original(numbers, head)

    streamer.source.fetch = flaky  # type: ignore[method-assign]
    await run_until(streamer, published_to(topic, 29))
    assert [e.number for e in topic.events] == list(range(30))
    assert matches_node(topic, chain)


async def test_stopping_cancels_the_prefetch() -> None:
    chain = FakeChain(200)
    topic = FakeTopic()
    streamer = make(chain, topic, batch=10)
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    while len(topic.events) < 20:
        await asyncio.sleep(0.001)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert streamer._ahead is None
    await asyncio.sleep(0.01)
    numbers = [e.number for e in topic.events]
    assert numbers == list(range(len(numbers)))
