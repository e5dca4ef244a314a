"""Alert lifecycle: provisional -> confirmed / retracted, reorg moves, cooldown aggregation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.lifecycle import (
    LifecycleInfo,
    LifecyclePolicy,
    LifecycleState,
    decode_state,
    delivery_key,
    encode_state,
    lifecycle_of,
    on_block,
    on_revert,
)
from monitor.records import Alert, Asset, Block, WatchEntry, alert_id, native_transfer_id

CHAIN = "devnet"
T0 = 1_700_000_000
RULE = "watched-address"
CASE = "CASE-1"
ETH = Asset(kind="native", symbol="ETH", decimals=18)


def addr(n: int) -> str:
    return "0x" + f"{n + 0x1000:040x}"


def block_hash(number: int, fork: int = 0) -> str:
    return "0x" + f"{fork:032x}{number:032x}"


def make_block(number: int, *, fork: int = 0, time: int | None = None, head: int | None = None,
               parent_fork: int | None = None) -> Block:
    return Block(chain=CHAIN, number=number, hash=block_hash(number, fork),
                 parent_hash=block_hash(number - 1, fork if parent_fork is None else parent_fork),
                 timestamp=time if time is not None else T0 + 12 * (number - 100),
                 head=head if head is not None else number)


def revert_of(block: Block) -> Block:
    return msgspec.structs.replace(block, kind="revert", head=0, transfers=())


def candidate(tx: int, block: Block, *, watched: int = 0, case: str = CASE,
              rule: str = RULE) -> Alert:
    """The alert screening would raise for transfer ``tx`` (a fresh tx hash per number)."""
    tx_hash = "0x" + f"{tx:064x}"
    tid = native_transfer_id(CHAIN, tx_hash)
    return Alert(id=alert_id(rule, tid, case), rule=rule, severity="high", status="provisional",
                 chain=CHAIN, block_number=block.number, block_hash=block.hash,
                 block_time=block.timestamp, tx_hash=tx_hash, transfer_id=tid,
                 transfer_kind="native", from_address=addr(watched), to_address=addr(99),
                 asset=ETH, amount="1000", direction="out",
                 watch=WatchEntry(chain=CHAIN, address=addr(watched), case_id=case),
                 confirmations=0, detected_at=1.5)


class Feed:
    """Feeds events to the lifecycle like the agent does: in order, with topic positions."""

    def __init__(self, policy: LifecyclePolicy) -> None:
        self.policy = policy
        self.state = LifecycleState()
        self.position = -1
        self.events: list[Alert] = []
        self.history: list[tuple[Block, tuple[Alert, ...], int]] = []

    def apply(self, event: Block, alerts: Sequence[Alert], position: int) -> list[Alert]:
        """Apply one event at ``position`` through an encode/decode round trip of the state."""
        state = decode_state(encode_state(self.state))
        if event.kind == "block":
            state, out = on_block(state, event, alerts, self.policy, position=position)
        else:
            state, out = on_revert(state, event, self.policy, position=position)
        self.state = state
        self.events.extend(out)
        return out

    def send(self, event: Block, alerts: Iterable[Alert] = ()) -> list[Alert]:
        self.position += 1
        batch = tuple(alerts)
        self.history.append((event, batch, self.position))
        return self.apply(event, batch, self.position)

    def blocks(self, first: int, last: int, **kw: int) -> list[Alert]:
        out: list[Alert] = []
        for number in range(first, last + 1):
            out += self.send(make_block(number, **kw))
        return out


def statuses(events: Iterable[Alert]) -> list[tuple[str, str, int]]:
    return [(e.id, e.status, lifecycle_of(e).revision) for e in events]


def held(state: LifecycleState) -> int:
    return sum(len(g.members) for g in state.groups.values())


# --- provisional -> confirmed ------------------------------------------------------------


def test_provisional_then_confirmed_exactly_at_depth() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=3))
    b = make_block(100)
    a = candidate(1, b)
    (first,) = feed.send(b, [a])
    assert (first.id, first.status, first.confirmations) == (a.id, "provisional", 0)
    assert lifecycle_of(first) == LifecycleInfo(revision=0, count=1)
    assert feed.blocks(101, 102) == []  # depth 2 = confirm_depth - 1: still provisional
    (second,) = feed.send(make_block(103))
    assert (second.id, second.status, second.confirmations) == (a.id, "confirmed", 3)
    assert lifecycle_of(second).revision == 1
    assert second.block_hash == b.hash and second.transfer_id == a.transfer_id
    assert feed.state.groups == {}  # settled and dropped
    assert feed.blocks(104, 120) == []


def test_head_ahead_of_the_block_counts_towards_depth() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=3))
    b = make_block(100, head=102)
    assert statuses(feed.send(b, [candidate(1, b)]))[0][1] == "provisional"
    assert [e.status for e in feed.send(make_block(101, head=103))] == ["confirmed"]


def test_depth_zero_confirms_at_once() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=0))
    b = make_block(100)
    (event,) = feed.send(b, [candidate(1, b)])
    assert event.status == "confirmed" and lifecycle_of(event).revision == 0
    assert feed.state.groups == {}


def test_block_published_already_deep_is_confirmed_at_once() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=12))
    b = make_block(100, head=112)  # the connector runs with confirmations = 12
    (event,) = feed.send(b, [candidate(1, b)])
    assert (event.status, event.confirmations) == ("confirmed", 12)


def test_screening_status_is_ignored_and_duplicates_in_a_block_fold() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=2))
    b = make_block(100)
    a = msgspec.structs.replace(candidate(1, b), status="confirmed", confirmations=9)
    out = feed.send(b, [a, a])
    assert [(e.status, e.confirmations) for e in out] == [("provisional", 0)]


# --- reverts and moves -------------------------------------------------------------------


def test_revert_retracts_with_the_same_id() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=3))
    b = make_block(100)
    a = candidate(1, b)
    feed.send(b, [a])
    (event,) = feed.send(revert_of(b))
    assert (event.id, event.status, event.block_hash) == (a.id, "retracted", b.hash)
    assert lifecycle_of(event).revision == 1
    assert feed.state.groups == {}
    assert feed.state.tip_number == 99 and feed.state.tip_hash == b.parent_hash


def test_revert_of_a_block_without_alerts_emits_nothing() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=3))
    b = make_block(100)
    a = candidate(1, b)
    feed.send(b, [a])
    c = make_block(101)
    feed.send(c)
    assert feed.send(revert_of(c)) == []
    assert a.id in feed.state.groups


def test_transfer_moved_to_another_block_is_confirmed_once() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=3))
    old = make_block(100)
    a = candidate(7, old)
    feed.send(old, [a])
    orphan = make_block(101)
    feed.send(orphan)
    feed.send(revert_of(orphan))
    feed.send(revert_of(old))
    feed.send(make_block(100, fork=1, parent_fork=0))
    new = make_block(101, fork=1)
    moved = candidate(7, new)
    assert moved.id == a.id
    (again,) = feed.send(new, [moved])
    assert (again.status, again.block_number, again.block_hash) == ("provisional", 101, new.hash)
    assert lifecycle_of(again).moved_from == old.hash
    feed.blocks(102, 110, fork=1)
    assert statuses(feed.events) == [(a.id, "provisional", 0), (a.id, "retracted", 1),
                                     (a.id, "provisional", 2), (a.id, "confirmed", 3)]
    confirmed = feed.events[-1]
    assert confirmed.block_hash == new.hash and lifecycle_of(confirmed).moved_from == old.hash
    assert len({delivery_key(e) for e in feed.events}) == 4


def test_deep_revert_of_a_held_confirmed_alert_retracts_and_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=1, cooldown_seconds=1_000))
    b = make_block(100)
    a = candidate(1, b)
    feed.send(b, [a])
    c = make_block(101)
    assert [e.status for e in feed.send(c)] == ["confirmed"]  # held: its window is open
    feed.send(revert_of(c))
    with caplog.at_level(logging.ERROR, logger="monitor.lifecycle"):
        (event,) = feed.send(revert_of(b))
    assert (event.id, event.status) == (a.id, "retracted")
    assert "reorged out although" in caplog.text


def test_deep_revert_of_a_settled_alert_is_only_logged() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=1))
    b = make_block(100)
    feed.send(b, [candidate(1, b)])
    feed.blocks(101, 101)
    assert feed.state.groups == {}
    feed.send(revert_of(make_block(101)))
    assert feed.send(revert_of(b)) == []


# --- cooldown aggregation ----------------------------------------------------------------


def test_three_transfers_within_the_cooldown_make_one_alert_with_count_three() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=50, cooldown_seconds=60))
    blocks = [make_block(100, time=T0), make_block(101, time=T0 + 30),
              make_block(102, time=T0 + 60)]  # exactly at the cooldown: still inside
    alerts = [candidate(i, b) for i, b in enumerate(blocks)]
    out = [e for b, a in zip(blocks, alerts, strict=True) for e in feed.send(b, [a])]
    assert {e.id for e in out} == {alerts[0].id}
    assert [lifecycle_of(e).count for e in out] == [1, 2, 3]
    last = lifecycle_of(out[-1])
    assert last.aggregated_transfer_ids == tuple(a.transfer_id for a in alerts)
    assert (last.first_block, last.last_block) == (100, 102)
    assert out[-1].transfer_id == alerts[0].transfer_id  # the alert's own facts: the first
    late = make_block(103, time=T0 + 61)  # one second past the cooldown: a new alert
    (fresh,) = feed.send(late, [candidate(9, late)])
    assert fresh.id == candidate(9, late).id and lifecycle_of(fresh).count == 1


def test_aggregation_key_is_rule_watched_address_and_case() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=50, cooldown_seconds=60))
    b = make_block(100)
    out = feed.send(b, [candidate(1, b), candidate(2, b, watched=1), candidate(3, b, case="C2"),
                        candidate(4, b, rule="large-value"), candidate(5, b)])
    assert [lifecycle_of(e).count for e in out] == [2, 1, 1, 1]


def test_cooldown_zero_disables_aggregation() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=50, cooldown_seconds=0))
    b = make_block(100)
    out = feed.send(b, [candidate(1, b), candidate(2, b), candidate(3, b)])
    assert len({e.id for e in out}) == 3
    assert all(lifecycle_of(e).count == 1 for e in out)


def test_per_rule_cooldown_overrides_the_default() -> None:
    policy = LifecyclePolicy(confirm_depth=50, cooldown_seconds=0,
                             rule_cooldowns={"large-value": 60})
    feed = Feed(policy)
    b = make_block(100)
    out = feed.send(b, [candidate(i, b, rule="large-value") for i in range(3)]
                    + [candidate(i, b) for i in range(3, 5)])
    assert [lifecycle_of(e).count for e in out] == [3, 1, 1]


def test_retracting_aggregated_transfers_decrements_then_retracts() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=50, cooldown_seconds=60))
    blocks = [make_block(n) for n in (100, 101, 102)]
    alerts = [candidate(i, b) for i, b in enumerate(blocks)]
    for b, a in zip(blocks, alerts, strict=True):
        feed.send(b, [a])
    (two,) = feed.send(revert_of(blocks[2]))
    assert (two.status, lifecycle_of(two).count) == ("provisional", 2)
    assert lifecycle_of(two).aggregated_transfer_ids == (alerts[0].transfer_id,
                                                         alerts[1].transfer_id)
    (one,) = feed.send(revert_of(blocks[1]))
    assert (one.status, lifecycle_of(one).count, lifecycle_of(one).aggregated_transfer_ids) \
        == ("provisional", 1, ())
    (gone,) = feed.send(revert_of(blocks[0]))
    assert (gone.id, gone.status) == (alerts[0].id, "retracted")
    assert [lifecycle_of(e).revision for e in (two, one, gone)] == [3, 4, 5]


def test_aggregated_alert_confirms_with_its_first_transfer() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=2, cooldown_seconds=600))
    b = make_block(100)
    a = candidate(1, b)
    feed.send(b, [a])
    feed.send(make_block(101))
    (confirmed,) = feed.send(make_block(102))
    assert confirmed.status == "confirmed"
    late = make_block(103)
    (grown,) = feed.send(late, [candidate(2, late)])
    assert (grown.id, grown.status, lifecycle_of(grown).count) == (a.id, "confirmed", 2)
    (shrunk,) = feed.send(revert_of(late))  # the shallow member goes; the alert stays confirmed
    assert (shrunk.status, lifecycle_of(shrunk).count) == ("confirmed", 1)
    assert [e.status for e in feed.events].count("confirmed") == 3
    assert len({delivery_key(e) for e in feed.events}) == len(feed.events)


# --- idempotence and determinism ---------------------------------------------------------


def test_replaying_a_block_emits_nothing_and_does_not_count_twice() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=5, cooldown_seconds=60))
    b = make_block(100)
    c = make_block(101)
    feed.send(b, [candidate(1, b)])
    feed.send(c, [candidate(2, c)])
    before = encode_state(feed.state)
    for event, alerts, position in list(feed.history):
        assert feed.apply(event, alerts, position) == []
    assert encode_state(feed.state) == before
    assert lifecycle_of(feed.events[-1]).count == 2


def test_replay_across_a_reorg_is_a_no_op() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=5))
    old = make_block(100)
    feed.send(old, [candidate(1, old)])
    feed.send(revert_of(old))
    new = make_block(100, fork=1)
    feed.send(new, [candidate(1, new)])
    before, emitted = encode_state(feed.state), len(feed.events)
    for event, alerts, position in list(feed.history):
        assert feed.apply(event, alerts, position) == []
    assert encode_state(feed.state) == before and len(feed.events) == emitted


def test_same_history_gives_the_same_events() -> None:
    def run() -> list[bytes]:
        feed = Feed(LifecyclePolicy(confirm_depth=2, cooldown_seconds=30))
        for n in range(100, 106):
            b = make_block(n)
            feed.send(b, [candidate(n, b), candidate(n + 1000, b, watched=1)])
        feed.send(revert_of(make_block(105)))
        feed.blocks(105, 108, fork=1)
        return [msgspec.json.encode(e) for e in feed.events]

    assert run() == run()


def test_events_of_the_wrong_kind_are_refused() -> None:
    b = make_block(100)
    with pytest.raises(ValueError):
        on_block(LifecycleState(), revert_of(b), [], LifecyclePolicy(), position=0)
    with pytest.raises(ValueError):
        on_revert(LifecycleState(), b, LifecyclePolicy(), position=0)


# --- bounds ------------------------------------------------------------------------------


def test_state_is_capped_and_evictions_are_counted() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=1_000, max_members=5))
    for n in range(100, 120):
        b = make_block(n)
        feed.send(b, [candidate(n, b)])
        assert held(feed.state) <= 5
    assert feed.state.evicted == 15
    assert list(feed.state.groups) == [candidate(n, make_block(n)).id for n in range(115, 120)]


def test_group_size_is_capped() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=50, cooldown_seconds=600, max_group_size=2))
    b = make_block(100)
    out = feed.send(b, [candidate(i, b) for i in range(5)])
    assert [lifecycle_of(e).count for e in out] == [2, 2, 1]


def test_memory_of_retracted_ids_expires() -> None:
    feed = Feed(LifecyclePolicy(confirm_depth=5, retain_blocks=10))
    b = make_block(100)
    feed.send(b, [candidate(1, b)])
    feed.send(revert_of(b))
    assert len(feed.state.retired) == 1
    feed.blocks(100, 110, fork=1)
    assert len(feed.state.retired) == 1  # still within retain_blocks of block 100
    feed.blocks(111, 111, fork=1)
    assert feed.state.retired == {}


# --- property: random histories ----------------------------------------------------------


class Chain:
    """A chain that grows and reorgs like the connector reports it, feeding a lifecycle."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.canonical: list[tuple[Block, list[tuple[int, int]]]] = []
        self.mempool: list[tuple[int, int]] = []
        self.fork = 0
        self.next_tx = 1

    def publish(self, txs: list[tuple[int, int]], gap: int) -> None:
        if self.canonical:
            parent = self.canonical[-1][0]
            number, time, parent_hash = parent.number + 1, parent.timestamp + gap, parent.hash
        else:
            number, time, parent_hash = 100, T0, block_hash(99, 0)
        b = Block(chain=CHAIN, number=number, hash=block_hash(number, self.fork),
                  parent_hash=parent_hash, timestamp=time, head=number)
        self.canonical.append((b, txs))
        self.feed.send(b, [candidate(tx, b, watched=w) for tx, w in txs])

    def fresh(self, watched: Sequence[int]) -> list[tuple[int, int]]:
        out = [(self.next_tx + i, w) for i, w in enumerate(watched)]
        self.next_tx += len(out)
        return out

    def revert(self) -> None:
        b, txs = self.canonical.pop()
        self.mempool.extend(txs)
        self.feed.send(revert_of(b))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), depth=st.integers(0, 4), cooldown=st.sampled_from([0, 5, 30]),
       cap=st.sampled_from([4, 10_000]))
def test_random_histories_stay_bounded_and_end_confirmed(data: st.DataObject, depth: int,
                                                         cooldown: int, cap: int) -> None:
    policy = LifecyclePolicy(confirm_depth=depth, cooldown_seconds=cooldown, max_members=cap)
    feed = Feed(policy)
    chain = Chain(feed)
    for _ in range(data.draw(st.integers(0, 30), label="steps")):
        step = data.draw(st.sampled_from(["block", "block", "block", "reorg", "replay"]))
        if step == "block":
            watched = data.draw(st.lists(st.integers(0, 1), max_size=3), label="alerts")
            chain.publish(chain.fresh(watched), data.draw(st.integers(1, 20), label="gap"))
        elif step == "reorg" and depth > 0 and chain.canonical:
            k = data.draw(st.integers(1, min(depth, len(chain.canonical))), label="reorg")
            for _ in range(k):
                chain.revert()
            chain.fork += 1
            for _ in range(data.draw(st.integers(k, k + 2), label="new blocks")):
                back = [tx for tx in chain.mempool if data.draw(st.booleans(), label="back")]
                chain.mempool = [tx for tx in chain.mempool if tx not in back]
                chain.publish(back, data.draw(st.integers(1, 20), label="gap"))
        elif step == "replay" and feed.history:
            event, alerts, position = data.draw(st.sampled_from(feed.history), label="replay")
            before = encode_state(feed.state)
            assert feed.apply(event, alerts, position) == []
            assert encode_state(feed.state) == before
        assert held(feed.state) <= cap
        assert len(feed.state.retired) <= policy.max_retired
    for _ in range(depth + 1):  # let everything settle: deep enough, windows closed
        chain.publish([], cooldown + 1)
        assert held(feed.state) <= cap

    last: dict[str, Alert] = {}
    revisions: dict[str, list[int]] = {}
    runs: dict[str, list[str]] = {}
    for e in feed.events:
        last[e.id] = e
        revisions.setdefault(e.id, []).append(lifecycle_of(e).revision)
        seq = runs.setdefault(e.id, [])
        if not seq or seq[-1] != e.status:
            seq.append(e.status)
    for aid, seq in runs.items():
        assert seq.count("confirmed") <= 1, (aid, seq)  # confirmed once, never undone
        assert "confirmed" not in seq or seq[-1] == "confirmed", (aid, seq)
        assert revisions[aid] == list(range(len(revisions[aid]))), (aid, revisions[aid])
    if feed.state.evicted:
        return
    assert feed.state.groups == {}

    def covered(e: Alert) -> tuple[str, ...]:
        info = lifecycle_of(e)
        return info.aggregated_transfer_ids if info.count > 1 else (e.transfer_id,)

    canonical = {candidate(tx, b, watched=w).transfer_id
                 for b, txs in chain.canonical for tx, w in txs}
    confirmed = [t for e in last.values() if e.status == "confirmed" for t in covered(e)]
    assert sorted(confirmed) == sorted(canonical)  # each canonical transfer exactly once
    assert all(e.status in ("confirmed", "retracted") for e in last.values())
    hashes = {b.hash for b, _ in chain.canonical}
    assert all(e.block_hash in hashes for e in last.values() if e.status == "confirmed")
