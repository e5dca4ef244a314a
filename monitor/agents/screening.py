"""Screening agent: reads block events, screens every transfer, follows the money, alerts.

Per block: read the stored activity of the addresses that matter and the node's facts about
them, run the :class:`monitor.screening.Screener`, then write back in this order: activity,
new taint entries to the replica (at once, so the next block sees them) and to the watchlist
topic (acknowledged), alerts to the alerts topic (acknowledged), and last the chain's lifecycle
state with the block's position. Activity and lifecycle state share one table, so one changelog
partition holds them in the order written: a lifecycle state that survived a crash implies the
activity written before it did too, and activity can be at most one block ahead (which
``rewind_block`` undoes on the replay).

Events are taken in small batches; before a batch is acknowledged (and its offsets can be
committed) every table write of it is acknowledged by the broker (:mod:`monitor.agents.durable`),
so a worker killed at any point resumes with state at least as new as its committed offset.
The lifecycle state of a quiet block (nothing written, nothing emitted) is held back until the
batch ends or the next block writes: replaying quiet blocks recomputes the same state.
Every event must follow the screened tip of its chain (a block: the next number, its parent the
tip; a revert: the tip itself). Before one that does not (a consumer that skipped events,
whatever the cause), the agent reads the records between the tip and it from the broker and
screens them first (:mod:`monitor.agents.sequence`), so no block is ever silently skipped. Only
when nothing lies in between (the topic itself has a break) is the event screened as it is,
with an error logged and ``chainwatch_rereads_total{kind="break"}`` counted.
Broker errors are retried until the broker is back (the partition waits: nothing can be emitted
meanwhile); anything else about a message sends it to the dead-letter topic and consumption
goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import faust
import msgspec
from aiokafka.errors import KafkaError

from monitor.agents.durable import durable_table, settle_while_broker_away
from monitor.agents.sequence import Record, read_between, report_fill
from monitor.deadletter import dead_letter
from monitor.lifecycle import (
    LifecycleState,
    decode_state,
    encode_state,
    is_applied,
    mark_applied,
    on_block,
    on_revert,
)
from monitor.metrics import (
    ALERT_EVENTS,
    ALERT_LATENCY,
    ALERTS_RAISED,
    BLOCKS_SCREENED,
    DEAD_LETTERS,
    TRANSFERS_SCREENED,
)
from monitor.records import BLOCK_DECODER, Alert, Block, encode
from monitor.runtime import WorkerRuntime
from monitor.screening import ChainPolicy, activity_key
from rules.state import ACTIVITY_DECODER, AddressActivity

log = logging.getLogger(__name__)

RETRY_CAP_SECONDS = 30.0
BATCH_MAX_EVENTS = 64
"""Block events taken at once; their table writes are settled together."""
BATCH_WAIT_SECONDS = 0.02
"""How long a partial batch waits for more events (adds at most this to alert latency)."""


def lifecycle_key(chain: str) -> bytes:
    """Key of a chain's lifecycle state in the screening table (never an activity key)."""
    return f"@lifecycle:{chain}".encode()


def register(app: faust.App, runtime: WorkerRuntime) -> Any:
    """Define the screening agent and its ``activity`` table on ``app``; returns the agent."""
    block_topics = app.topic(*(runtime.topics.blocks(c) for c in runtime.topics.chains),
                             value_serializer="raw", key_serializer="raw")
    alerts_topic = app.topic(runtime.topics.alerts, value_serializer="raw",
                             key_serializer="raw")
    deadletter_topic = app.topic(runtime.topics.deadletter, value_serializer="raw",
                                 key_serializer="raw")
    # Per-address activity in block time and per-chain lifecycle state, in one table so that
    # their changelog keeps them in write order (see the module docstring). One partition, as
    # the block topics; the partitioner (not the current event) picks it, so batches can write.
    state_table = durable_table(app, "screening", partitions=1, key_type=bytes,
                                value_type=bytes, use_partitioner=True)

    def stored_activity(block: Block, addresses: set[str]) -> dict[str, AddressActivity]:
        found: dict[str, AddressActivity] = {}
        for address in addresses:
            key = activity_key(block.chain, address)
            raw = state_table.get(key.encode())
            if raw is not None:
                found[key] = ACTIVITY_DECODER.decode(raw)
        return found

    chain_of_topic = {runtime.topics.blocks(c): c for c in runtime.topics.chains}

    decoded: dict[bytes, tuple[bytes | None, LifecycleState]] = {}
    # Lifecycle states of quiet blocks (no activity, no taint, no alert events), written once
    # at the end of the batch or with the next block that writes anything: replaying a quiet
    # block after a crash recomputes the same state, and the next write carries its position.
    deferred: dict[bytes, LifecycleState] = {}

    def lifecycle_state(key: bytes) -> LifecycleState:
        """The chain's lifecycle state, decoded once per stored value (it is read per block)."""
        if key in deferred:
            return deferred[key]
        raw = state_table.get(key)
        cached = decoded.get(key)
        if cached is not None and cached[0] == raw:  # RocksDB returns a new bytes object
            return cached[1]
        state = decode_state(raw)
        decoded[key] = (raw, state)
        return state

    def save_state(key: bytes, state: LifecycleState) -> None:
        deferred.pop(key, None)
        raw = encode_state(state)
        state_table[key] = raw
        decoded[key] = (state_table.get(key), state)

    def save_deferred() -> None:
        """Write the lifecycle states held back for quiet blocks (before a batch settles)."""
        for key, state in list(deferred.items()):
            save_state(key, state)

    async def advance(block: Block, position: int, candidates: list[Alert],
                      now: float, quiet: bool = False) -> None:
        """Run the lifecycle; send its events, acknowledged, before saving its state."""
        key = lifecycle_key(block.chain)
        state = lifecycle_state(key)
        policy = runtime.lifecycle[block.chain]
        if block.kind == "revert":
            state, events = on_revert(state, block, policy, position=position)
        else:
            state, events = on_block(state, block, candidates, policy, position=position)
        acks = []
        for alert in events:
            acks.append(await alerts_topic.send(key=alert.id.encode(), value=encode(alert)))
            ALERT_EVENTS.labels(alert.chain, alert.rule, alert.status).inc()
            if alert.revision == 0:
                ALERTS_RAISED.labels(alert.rule, alert.severity).inc()
                ALERT_LATENCY.labels(alert.chain).observe(max(0.0, now - alert.block_time))
        await asyncio.gather(*acks)
        if quiet and not events:
            deferred[key] = state
        else:
            save_state(key, state)

    def already_applied(block: Block, position: int) -> bool:
        # At or below the last applied offset (events are applied in topic order: see
        # in_sequence), or one of the out-of-order offsets a state of an earlier version kept.
        return is_applied(lifecycle_state(lifecycle_key(block.chain)), position)

    resumed: set[str] = set()

    def follows_tip(state: LifecycleState, block: Block) -> bool:
        """Whether ``block`` is the next event of its chain after the screened tip."""
        if state.tip_number < 0:
            return True  # nothing screened yet: the consumer's start is the start
        if block.kind == "revert":
            return block.number == state.tip_number and block.hash == state.tip_hash
        return block.number == state.tip_number + 1 and (
            not state.tip_hash or block.parent_hash == state.tip_hash)

    async def fill_gap(block: Block, record: Record) -> None:
        """Screen the records a consumer skipped between the screened tip and ``record``."""
        state = lifecycle_state(lifecycle_key(block.chain))
        if block.chain not in resumed:
            resumed.add(block.chain)
            log.info("screening %s from offset %s: applied through offset %s, tip block %s",
                     block.chain, record.offset, state.position, state.tip_number)
        if follows_tip(state, block):
            return
        start = state.position + 1
        skipped = await read_between(runtime.bootstrap, record.topic, record.partition, start,
                                     record.offset)
        report_fill("screening", record.topic,
                    f"{block.chain} {block.kind} {block.number} (offset {record.offset}) does "
                    f"not follow the screened tip {state.tip_number} (offset {state.position})",
                    start, record.offset, len(skipped))
        for found in skipped:  # each in turn follows the tip, or is a break of its own
            await screen_record(Record.of_consumer(found))

    def set_aside(chain: str, position: int) -> None:
        """Count a dead-lettered event as applied, so later ones are not held back."""
        key = lifecycle_key(chain)
        save_state(key, mark_applied(lifecycle_state(key), position))

    def decode(raw: bytes) -> tuple[Block, int | None]:
        """The block event; only its header and transfer count when nothing in it is watched.

        The digest (header and the ends of each transfer) tells whether screening could find
        anything (``Screener.needs_screening``); only then is the message decoded in full.
        """
        digest = runtime.screener.digest(raw)
        if runtime.screener.needs_screening(digest, runtime.replica):
            return BLOCK_DECODER.decode(raw), None
        return digest.header(), len(digest.transfers)

    async def process(block: Block, record: Record, settled: int | None) -> None:
        position = record.offset
        if already_applied(block, position):
            return  # a replay after a restart: its events were sent and acknowledged
        await fill_gap(block, record)
        if block.kind == "revert":
            log.warning("block %s %s on %s was reorged out", block.number, block.hash,
                        block.chain)
            await advance(block, position, [], time.time())
            return
        if settled is not None:  # nothing watched or listed: screening would find nothing
            await advance(block, position, [], time.time(), quiet=True)
            TRANSFERS_SCREENED.labels(block.chain).inc(settled)
            return
        policy = runtime.policies.get(block.chain, ChainPolicy(confirmations=0))
        screener = runtime.screener
        relevant = screener.relevant_addresses(block, runtime.replica)
        activity = stored_activity(block, relevant) if relevant else {}
        facts = {}
        contracts_matter = screener.taint is not None and screener.taint.stop_at_contracts
        unknown = [a for a in relevant
                   if contracts_matter or activity_key(block.chain, a) not in activity]
        if unknown:
            oracle = runtime.address_facts(block.chain)
            if oracle is not None:
                facts = await oracle.before_block(sorted(unknown), block.number)
        now = time.time()
        outcome = screener.screen(block, runtime.replica, policy, now, activity, facts)
        for key, value in outcome.activity.items():
            state_table[key.encode()] = encode(value)
        if outcome.new_entries:
            for entry in outcome.new_entries:
                runtime.replica.put(entry)
            await runtime.writer.put_many(outcome.new_entries)
        quiet = not outcome.activity and not outcome.new_entries
        await advance(block, position, outcome.alerts, now, quiet=quiet)
        TRANSFERS_SCREENED.labels(block.chain).inc(len(block.transfers))

    async def screen_record(record: Record) -> None:
        """Screen one block message (first the ones a consumer skipped before it, if any)."""
        try:
            block, settled = decode(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await _to_deadletter(deadletter_topic, "screening", exc, record)
            chain = chain_of_topic.get(record.topic)
            if chain is not None:
                set_aside(chain, record.offset)
            return
        BLOCKS_SCREENED.labels(block.chain).inc()
        delay = 0.5
        while True:
            try:
                await process(block, record, settled)
                return
            except KafkaError as exc:  # the broker is away: wait for it, lose nothing
                log.warning("block %s on %s: broker error %r; retrying in %.1f s",
                            block.number, block.chain, exc, delay)
                await asyncio.sleep(delay)
                delay = min(RETRY_CAP_SECONDS, delay * 2)
            except Exception as exc:  # a poison message must never stall the partition
                log.exception("screening block %s failed; sent to the dead-letter topic",
                              block.number)
                await _to_deadletter(deadletter_topic, "screening", exc, record)
                set_aside(block.chain, record.offset)
                return

    @app.agent(block_topics, name="screen-blocks")
    async def screen(stream: faust.StreamT[bytes]) -> None:
        await runtime.replica.ready.wait()
        batches = cast(Any, stream).take_events(BATCH_MAX_EVENTS, within=BATCH_WAIT_SECONDS)
        async for events in batches:
            for event in events:
                await screen_record(Record.of_event(event))
            save_deferred()
            await settle_while_broker_away(state_table)  # before the batch is acknowledged

    return screen


async def _to_deadletter(topic: faust.TopicT, stage: str, exc: BaseException,
                         record: Record) -> None:
    sent = await topic.send(key=record.key, value=dead_letter(
        stage, exc, record.value, topic=record.topic, partition=record.partition,
        offset=record.offset))
    await sent  # acknowledged before the event can be
    DEAD_LETTERS.labels(stage).inc()
