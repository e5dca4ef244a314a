"""Streamer against a scripted in-memory chain with forks and an in-memory topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from connectors.retry import RetryPolicy
from connectors.streamer import ReorgTooDeep, Streamer
from monitor.errors import ConnectorError
from monitor.records import Asset, Block, Transfer

CHAIN = "testnet"
FAST = RetryPolicy(base_seconds=0.001, cap_seconds=0.01, max_attempts=6)


def block_hash(fork: int, number: int) -> str:
    return f"0x{fork:04x}{number:060x}"


class FakeChain:
    """Canonical chain whose last blocks can be replaced (a fork gets a new id)."""

    def __init__(self, length: int) -> None:
        self.hashes: list[str] = []
        self.next_fork = 1
        self.extend(length, fork=0)
        self.fetches: list[list[int]] = []
        self.fail_fetches = 0

    @property
    def tip(self) -> int:
        return len(self.hashes) - 1

    def extend(self, count: int, fork: int | None = None) -> None:
        fork = self.next_fork - 1 if fork is None else fork
        for _ in range(count):
            self.hashes.append(block_hash(fork, len(self.hashes)))

    def reorg(self, depth: int, new_blocks: int | None = None) -> None:
        """Replace the last ``depth`` blocks by ``new_blocks`` (default: as many) of a new fork."""
        del self.hashes[len(self.hashes) - depth:]
        self.next_fork += 1
        self.extend(depth if new_blocks is None else new_blocks)

    def block(self, number: int, head: int) -> Block:
        parent = self.hashes[number - 1] if number else "0x" + "00" * 32
        h = self.hashes[number]
        transfers = (Transfer(
            id=f"{CHAIN}:{h}:tx", chain=CHAIN, block_number=number, block_hash=h,
            block_time=1_700_000_000 + number, tx_hash=h, tx_index=0, kind="native",
            from_address="0x" + "11" * 20, to_address="0x" + "22" * 20,
            asset=Asset(kind="native", symbol="ETH", decimals=18), amount=number + 1,
        ),) if number % 3 == 0 else ()
        return Block(chain=CHAIN, number=number, hash=h, parent_hash=parent,
                     timestamp=1_700_000_000 + number, head=head, transfers=transfers)


class FakeSource:
    def __init__(self, chain: FakeChain) -> None:
        self.chain = chain

    async def head(self) -> int:
        return self.chain.tip

    async def fetch(self, numbers: list[int], head: int) -> list[Block]:
        await asyncio.sleep(0)
        if self.chain.fail_fetches:
            self.chain.fail_fetches -= 1
            raise ConnectorError("node down", chain=CHAIN)
        self.chain.fetches.append(numbers)
        assert numbers[-1] <= self.chain.tip, "streamer asked beyond the head"
        return [self.chain.block(n, head) for n in numbers]

    async def block_header(self, number: int) -> tuple[str, str]:
        b = self.chain.block(number, 0)
        return b.hash, b.parent_hash


class FakeHeads:
    def __init__(self, chain: FakeChain) -> None:
        self.chain = chain
        self.latest = -1

    async def poll(self) -> int:
        self.latest = max(self.latest, self.chain.tip)
        return self.chain.tip

    async def wait_for_head(self, known: int) -> int:
        await asyncio.sleep(0.001)
        return await self.poll()


class FakeTopic:
    """In-memory block topic; ``accept``: the next publish lands that many events, then fails."""

    def __init__(self) -> None:
        self.events: list[Block] = []
        self.accept: int | None = None
        self.publish_calls = 0

    async def publish(self, blocks: Sequence[Block]) -> None:
        self.publish_calls += 1
        await asyncio.sleep(0)
        if self.accept is None:
            self.events.extend(blocks)
            return
        self.events.extend(blocks[:self.accept])  # these landed; the ack never came back
        self.accept = None
        raise RuntimeError("broker went away before acking")

    async def read_tail(self, max_messages: int) -> list[Block]:
        return list(self.events[-max_messages:]) if max_messages else []


def make(chain: FakeChain, topic: FakeTopic, *, confirmations: int = 0, batch: int = 4,
         window: int = 16, start: int | str = 0) -> Streamer:
    return Streamer(CHAIN, FakeSource(chain), topic, confirmations=confirmations,
                    start_block=start, batch_size=batch, reorg_window=window,  # type: ignore[arg-type]
                    heads=FakeHeads(chain), failure_policy=FAST)


async def run_until(streamer: Streamer, done: Callable[[], bool], seconds: float = 5) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while not done():
            if task.done():
                task.result()
                raise AssertionError("streamer stopped early")
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.02)  # let it settle: nothing more may be published
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def replay(events: list[Block]) -> dict[int, str]:
    chain: dict[int, str] = {}
    for e in events:
        if e.kind == "block":
            assert e.number not in chain, f"block {e.number} published twice"
            assert not chain or chain.get(e.number - 1) == e.parent_hash, "gap or bad link"
            chain[e.number] = e.hash
        else:
            assert max(chain) == e.number, "revert not from the top"
            assert chain.pop(e.number) == e.hash
    return chain


def published_to(topic: FakeTopic, number: int) -> Callable[[], bool]:
    return lambda: bool(topic.events) and max(replay(topic.events)) >= number


def matches_node(topic: FakeTopic, chain: FakeChain, upto: int | None = None) -> bool:
    upto = chain.tip if upto is None else upto
    return replay(topic.events) == {n: chain.hashes[n] for n in range(upto + 1)}


async def test_backfill_from_start_block_in_batches() -> None:
    chain, topic = FakeChain(30), FakeTopic()
    await run_until(make(chain, topic, batch=7), published_to(topic, 29))
    assert [e.number for e in topic.events] == list(range(30))
    assert all(e.kind == "block" for e in topic.events)
    assert matches_node(topic, chain)
    assert max(len(f) for f in chain.fetches) == 7


async def test_backfill_from_a_later_start_block() -> None:
    chain, topic = FakeChain(30), FakeTopic()
    await run_until(make(chain, topic, start=12), published_to(topic, 29))
    assert [e.number for e in topic.events] == list(range(12, 30))


async def test_latest_starts_at_head_minus_confirmations() -> None:
    chain, topic = FakeChain(50), FakeTopic()
    await run_until(make(chain, topic, confirmations=3, start="latest"), published_to(topic, 46))
    assert [e.number for e in topic.events] == [46]


async def test_confirmations_hold_back_the_tip_then_follow() -> None:
    chain, topic = FakeChain(20), FakeTopic()
    streamer = make(chain, topic, confirmations=5)
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    try:
        for _ in range(500):
            if topic.events and topic.events[-1].number == 14:
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        assert topic.events[-1].number == 14  # head 19 - 5
        chain.extend(3)
        for _ in range(500):
            if topic.events[-1].number == 17:
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        assert [e.number for e in topic.events] == list(range(18))
        assert topic.events[-1].head == 22
    finally:
        stop.set()
        await task


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("grow", [0, 2], ids=["same-height", "longer-fork"])
async def test_reorg_publishes_reverts_then_new_canonical_blocks(depth: int, grow: int) -> None:
    chain, topic = FakeChain(21), FakeTopic()
    streamer = make(chain, topic, batch=3)
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    try:
        while not (topic.events and topic.events[-1].number == 20):
            await asyncio.sleep(0.002)
        old = list(chain.hashes)
        chain.reorg(depth, new_blocks=depth + grow)
        for _ in range(2000):
            if matches_node(topic, chain):
                break
            await asyncio.sleep(0.002)
    finally:
        stop.set()
        await task
    assert matches_node(topic, chain)
    after = topic.events[21:]
    reverts = [(e.kind, e.number, e.hash) for e in after[:depth]]
    assert reverts == [("revert", n, old[n]) for n in range(20, 20 - depth, -1)]
    assert all(not e.transfers for e in after[:depth])
    assert [(e.kind, e.number) for e in after[depth:]] == [
        ("block", n) for n in range(21 - depth, 21 + grow)]


async def test_reorg_with_confirmations_detected_by_parent_hash() -> None:
    chain, topic = FakeChain(30), FakeTopic()
    streamer = make(chain, topic, confirmations=3, batch=5)
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    try:
        while not (topic.events and topic.events[-1].number == 26):
            await asyncio.sleep(0.002)
        chain.reorg(6, new_blocks=8)  # deeper than the confirmations: 24..26 were published
        for _ in range(2000):
            if matches_node(topic, chain, chain.tip - 3):
                break
            await asyncio.sleep(0.002)
    finally:
        stop.set()
        await task
    assert matches_node(topic, chain, chain.tip - 3)
    assert [e.number for e in topic.events if e.kind == "revert"] == [26, 25, 24]


async def test_reorg_deeper_than_window_stops_for_an_operator() -> None:
    chain, topic = FakeChain(30), FakeTopic()
    streamer = make(chain, topic, window=8)
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    while not (topic.events and topic.events[-1].number == 29):
        await asyncio.sleep(0.002)
    chain.reorg(12)
    with pytest.raises(ReorgTooDeep) as info:
        await asyncio.wait_for(task, 5)
    assert "testnet" in str(info.value)
    assert all(e.kind == "block" for e in topic.events)  # nothing half-reverted


async def test_resume_from_tail_no_gap_no_duplicate() -> None:
    chain, topic = FakeChain(15), FakeTopic()
    await run_until(make(chain, topic), published_to(topic, 14))
    chain.extend(10)
    await run_until(make(chain, topic), published_to(topic, 24))
    assert [e.number for e in topic.events] == list(range(25))
    assert matches_node(topic, chain)


async def test_resume_after_a_reorg_while_down() -> None:
    chain, topic = FakeChain(15), FakeTopic()
    await run_until(make(chain, topic), published_to(topic, 14))
    old = list(chain.hashes)
    chain.reorg(3, new_blocks=5)
    await run_until(make(chain, topic), lambda: matches_node(topic, chain))
    assert [(e.kind, e.number, e.hash) for e in topic.events[15:18]] == [
        ("revert", n, old[n]) for n in (14, 13, 12)]


async def test_resume_when_the_tail_ends_with_reverts() -> None:
    chain, topic = FakeChain(15), FakeTopic()
    await run_until(make(chain, topic), published_to(topic, 14))
    chain.reorg(3)
    # the connector died after publishing two of the three reverts
    topic.events += [Block(chain=CHAIN, number=n, hash=h, parent_hash=p, timestamp=0,
                           kind="revert")
                     for n, h, p in ((14, block_hash(0, 14), block_hash(0, 13)),
                                     (13, block_hash(0, 13), block_hash(0, 12)))]
    await run_until(make(chain, topic), lambda: matches_node(topic, chain))
    assert [(e.kind, e.number) for e in topic.events[15:]] == [
        ("revert", 14), ("revert", 13), ("revert", 12),
        ("block", 12), ("block", 13), ("block", 14)]


@pytest.mark.parametrize("landed", [0, 1, 3, 4])
async def test_crash_between_publish_and_ack_resends_only_unacked(landed: int) -> None:
    chain, topic = FakeChain(20), FakeTopic()
    await run_until(make(chain, topic, batch=4), published_to(topic, 7))
    topic.accept = landed  # the next batch (8..11): only `landed` events reach the topic
    await run_until(make(chain, topic, batch=4), published_to(topic, 19))
    assert [e.number for e in topic.events] == list(range(20))
    assert matches_node(topic, chain)


async def test_crash_while_publishing_reverts() -> None:
    chain, topic = FakeChain(20), FakeTopic()
    streamer = make(chain, topic)
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    try:
        while not (topic.events and topic.events[-1].number == 19):
            await asyncio.sleep(0.002)
        topic.accept = 1  # one of three reverts lands, then the broker fails
        chain.reorg(3)
        for _ in range(2000):
            if matches_node(topic, chain):
                break
            await asyncio.sleep(0.002)
    finally:
        stop.set()
        await task
    assert matches_node(topic, chain)
    assert [e.number for e in topic.events if e.kind == "revert"] == [19, 18, 17]


async def test_rpc_outage_is_retried_then_resumes() -> None:
    chain, topic = FakeChain(10), FakeTopic()
    chain.fail_fetches = 3
    await run_until(make(chain, topic), published_to(topic, 9))
    assert [e.number for e in topic.events] == list(range(10))


async def test_persistent_outage_raises_connector_error() -> None:
    chain, topic = FakeChain(10), FakeTopic()
    chain.fail_fetches = 100
    with pytest.raises(ConnectorError, match="node down"):
        await asyncio.wait_for(make(chain, topic).run(asyncio.Event()), 5)
    assert topic.events == []


async def test_stop_is_prompt_when_idle() -> None:
    chain, topic = FakeChain(3), FakeTopic()
    streamer = make(chain, topic)
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    while not (topic.events and topic.events[-1].number == 2):
        await asyncio.sleep(0.002)
    stop.set()
    await asyncio.wait_for(task, 1)
