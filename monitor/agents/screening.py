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
tip; a revert: the tip itself). One that does not (a consumer that skipped or re-ordered events,
whatever the cause) is not screened: the agent seeks the partition back to the event after the
last applied one and reads again, so no block is ever silently skipped. Only when the re-read
finds nothing in between (the topic itself has a break) is the event screened anyway, with an
error logged and ``chainwatch_block_rereads_total{kind="break"}`` counted.
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
    BLOCK_REREADS,
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

    # Per chain: the offset of the out-of-sequence event that made the agent read again.
    rereading: dict[str, int] = {}
    resumed: set[str] = set()

    def follows_tip(state: LifecycleState, block: Block) -> bool:
        """Whether ``block`` is the next event of its chain after the screened tip."""
        if state.tip_number < 0:
            return True  # nothing screened yet: the consumer's start is the start
        if block.kind == "revert":
            return block.number == state.tip_number and block.hash == state.tip_hash
        return block.number == state.tip_number + 1 and (
            not state.tip_hash or block.parent_hash == state.tip_hash)

    async def in_sequence(block: Block, position: int, event: faust.EventT) -> bool:
        """Whether to screen ``block`` now; if it does not follow the tip, read again."""
        state = lifecycle_state(lifecycle_key(block.chain))
        if block.chain not in resumed:
            resumed.add(block.chain)
            log.info("screening %s from offset %s: applied through offset %s, tip block %s",
                     block.chain, position, state.position, state.tip_number)
        if follows_tip(state, block):
            rereading.pop(block.chain, None)
            return True
        trigger = rereading.get(block.chain)
        if trigger == position:  # read again from the tip: nothing in between
            del rereading[block.chain]
            BLOCK_REREADS.labels(block.chain, "break").inc()
            log.error("%s %s %s (offset %s) does not follow the screened tip %s %s (offset %s) "
                      "and nothing lies between them in the topic; screening it anyway",
                      block.chain, block.kind, block.number, position, state.tip_number,
                      state.tip_hash, state.position)
            return True
        if trigger is not None and position > trigger:
            return False  # read before the seek; it comes again in order
        rereading[block.chain] = position
        BLOCK_REREADS.labels(block.chain, "reread").inc()
        log.warning("%s %s %s (offset %s) does not follow the screened tip %s (offset %s); "
                    "reading the topic again from offset %s", block.chain, block.kind,
                    block.number, position, state.tip_number, state.position,
                    state.position + 1)
        try:
            await app.consumer.seek(event.message.tp, state.position + 1)
        except Exception as exc:  # e.g. the partition was just revoked: its new owner reads it
            log.warning("%s: cannot seek %s to offset %s: %r", block.chain, event.message.tp,
                        state.position + 1, exc)
        return False

    def set_aside(chain: str, position: int) -> None:
        """Count a dead-lettered event as applied, so later ones are not held back."""
        key = lifecycle_key(chain)
        save_state(key, mark_applied(lifecycle_state(key), position))

    async def process(block: Block, position: int, event: faust.EventT) -> None:
        if already_applied(block, position):
            return  # a replay after a restart: its events were sent and acknowledged
        if not await in_sequence(block, position, event):
            return
        if block.kind == "revert":
            log.warning("block %s %s on %s was reorged out", block.number, block.hash,
                        block.chain)
            await advance(block, position, [], time.time())
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

    async def screen_event(event: faust.EventT) -> None:
        raw: bytes = event.value
        try:
            block = BLOCK_DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await _to_deadletter(deadletter_topic, "screening", exc, event)
            chain = chain_of_topic.get(event.message.topic)
            if chain is not None:
                set_aside(chain, event.message.offset)
            return
        BLOCKS_SCREENED.labels(block.chain).inc()
        delay = 0.5
        while True:
            try:
                await process(block, event.message.offset, event)
                return
            except KafkaError as exc:  # the broker is away: wait for it, lose nothing
                log.warning("block %s on %s: broker error %r; retrying in %.1f s",
                            block.number, block.chain, exc, delay)
                await asyncio.sleep(delay)
                delay = min(RETRY_CAP_SECONDS, delay * 2)
            except Exception as exc:  # a poison message must never stall the partition
                log.exception("screening block %s failed; sent to the dead-letter topic",
                              block.number)
                await _to_deadletter(deadletter_topic, "screening", exc, event)
                set_aside(block.chain, event.message.offset)
                return

    @app.agent(block_topics, name="screen-blocks")
    async def screen(stream: faust.StreamT[bytes]) -> None:
        await runtime.replica.ready.wait()
        batches = cast(Any, stream).take_events(BATCH_MAX_EVENTS, within=BATCH_WAIT_SECONDS)
        async for events in batches:
            for event in events:
                await screen_event(event)
            save_deferred()
            await settle_while_broker_away(state_table)  # before the batch is acknowledged

    return screen


async def _to_deadletter(topic: faust.TopicT, stage: str, exc: BaseException,
                         event: faust.EventT) -> None:
    message = event.message
    sent = await topic.send(key=message.key, value=dead_letter(
        stage, exc, event.value, topic=message.topic, partition=message.partition,
        offset=message.offset))
    await sent  # acknowledged before the event can be
    DEAD_LETTERS.labels(stage).inc()
