"""One active connector per chain, elected through Kafka; the others stand by.

Every connector instance of a chain joins the chain's consumer group on a single-partition
control topic. The group coordinator assigns that partition to exactly one member: that member
is the active connector, the others are standbys. When the active one stops (it leaves the
group) or dies or hangs (its session times out), the coordinator hands the partition to a
standby. A member whose partition is revoked stops publishing before the group moves on
(Kafka waits for the revocation callback), and a member that lost its session without noticing
(a paused process) is fenced by the new active one's transactional producer
(:mod:`connectors.publisher`): the group gives liveness, the fence gives safety.

:class:`ActiveStandby` holds the rules (start a term when elected, end it at once when
deposed, after a fence take over again only if the group still says so); :class:`KafkaElection`
is the group membership it runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from connectors.publisher import is_fenced
from monitor.metrics import CONNECTOR_ACTIVE, CONNECTOR_TAKEOVERS

log = logging.getLogger(__name__)

CONTROL_PARTITION = 0
GRACEFUL_STOP_SECONDS = 30.0
CANCEL_WAIT_SECONDS = 5.0
RETAKE_DELAY_SECONDS = 1.0  # after a fence while still elected: let a zombie notice first

Term = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""One term as the active connector: runs until its stop event is set, or until cancelled."""


def control_topic(prefix: str) -> str:
    """The single-partition topic whose partition 0 makes a connector instance active."""
    return f"{prefix}connectors.control"


def election_group(prefix: str, chain: str) -> str:
    """The consumer group of the connector instances of ``chain``."""
    return f"{prefix}connector.{chain}"


def chain_transactional_id(prefix: str, chain: str) -> str:
    """The transactional id every connector instance of ``chain`` shares (for fencing)."""
    return f"{prefix}connector.{chain}"


class ElectionListener(Protocol):
    """What an election tells: this member was given the active role, or lost it."""

    async def elected(self) -> None:
        """Called when the control partition is ours now."""

    async def deposed(self) -> None:
        """Called when the control partition was revoked: stop publishing before returning."""

    async def standby(self) -> None:
        """An assignment without the control partition: another member is active."""


class Election(Protocol):
    """Membership in the chain's election (see :class:`KafkaElection`)."""

    async def join(self, listener: ElectionListener) -> None:
        """Join the group; ``listener`` hears about every change of role."""

    async def keep_alive(self) -> None:
        """Take part in the group for a moment (call continuously)."""

    async def confirm(self) -> bool:
        """Ask the coordinator whether this member still holds the control partition now."""

    async def leave(self) -> None:
        """Leave the group, so a standby takes over at once."""


class ActiveStandby:
    """Runs a :data:`Term` exactly while this instance is the chain's elected connector."""

    def __init__(self, chain: str, election: Election, term: Term, instance: str = "") -> None:
        self.chain = chain
        self.election = election
        self.term = term
        self.instance = instance
        self.takeovers = 0
        self._elected = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._term_stop = asyncio.Event()

    @property
    def active(self) -> bool:
        """Tell whether a term runs now (this instance publishes)."""
        return self._task is not None and not self._task.done()

    async def elected(self) -> None:
        """Election callback: the control partition is ours; a term starts in :meth:`run`."""
        self._elected = True
        self._wake.set()

    async def standby(self) -> None:
        """Election callback: another member is active."""
        self._elected = False
        log.info("chain %s: connector %s is standing by (another instance is active)",
                 self.chain, self.instance)

    async def deposed(self) -> None:
        """Election callback: stop publishing now, before the group hands the role on."""
        self._elected = False
        if self._task is not None:
            await self._end_term(graceful=False)
            log.warning("chain %s: connector %s lost the active role; stopped publishing",
                        self.chain, self.instance)

    async def run(self, stop: asyncio.Event) -> None:
        """Take part in the election until ``stop``; raises what a term fails with (not fences)."""
        await self.election.join(self)
        keeper = asyncio.create_task(self._keep_alive(), name=f"election-{self.chain}")
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                waker = asyncio.create_task(self._wake.wait())
                waiting: set[asyncio.Future[Any]] = {keeper, stopper, waker}
                if self._task is not None:
                    waiting.add(self._task)
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                self._wake.clear()
                if keeper.done():
                    keeper.result()  # the election itself failed: re-raise
                if self._task is not None and self._task.done():
                    await self._term_ended()
                if self._elected and self._task is None and not stop.is_set():
                    self._start_term()
        finally:
            stopper.cancel()
            await self._end_term(graceful=True)
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await keeper
            await self.election.leave()

    async def _keep_alive(self) -> None:
        while True:
            await self.election.keep_alive()

    def _start_term(self) -> None:
        self.takeovers += 1
        self._term_stop = asyncio.Event()
        self._task = asyncio.create_task(self.term(self._term_stop),
                                         name=f"connector-term-{self.chain}")
        CONNECTOR_ACTIVE.labels(self.chain).set(1)
        CONNECTOR_TAKEOVERS.labels(self.chain).inc()
        log.warning("chain %s: connector %s is now the active instance (term %d); resuming "
                    "from the checkpoint in the block topic", self.chain, self.instance,
                    self.takeovers)

    async def _term_ended(self) -> None:
        """A term ended by itself: a fence is survivable, anything else is fatal."""
        task, self._task = self._task, None
        CONNECTOR_ACTIVE.labels(self.chain).set(0)
        if task is None or task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if not is_fenced(exc):
            raise exc
        if await self.election.confirm():
            log.warning("chain %s: connector %s was fenced by another instance but is still "
                        "the elected one; taking over again", self.chain, self.instance)
            await asyncio.sleep(RETAKE_DELAY_SECONDS)
        else:
            self._elected = False
            log.warning("chain %s: connector %s was fenced: another instance is active; "
                        "standing by", self.chain, self.instance)

    async def _end_term(self, graceful: bool) -> None:
        """Stop the running term: let it finish its batch (graceful) or cancel it now."""
        task, self._task = self._task, None
        if task is None:
            return
        CONNECTOR_ACTIVE.labels(self.chain).set(0)
        if graceful and not task.done():
            self._term_stop.set()
            await asyncio.wait({task}, timeout=GRACEFUL_STOP_SECONDS)
        task.cancel()
        # Bounded: the group waits for a revocation; a term cleaning up against a dead broker
        # must not hold it. Once cancelled the term publishes nothing new, and anything still
        # in flight is in a transaction the next active instance's fence aborts.
        await asyncio.wait({task}, timeout=CANCEL_WAIT_SECONDS)
        if task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()  # already reported or a fence: retrieved, not raised
        elif not task.done():
            log.warning("chain %s: connector %s: the stopped term is still cleaning up",
                        self.chain, self.instance)


class _Rebalance(ConsumerRebalanceListener):
    """Turns the group's partition moves into :class:`ElectionListener` calls."""

    def __init__(self, listener: ElectionListener, control: TopicPartition) -> None:
        self.listener = listener
        self.control = control

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Kafka waits for this before it reassigns: the active member stops here."""
        if self.control in revoked:
            await self.listener.deposed()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """The new assignment: the control partition makes this member active."""
        if self.control in assigned:
            await self.listener.elected()
        else:
            await self.listener.standby()


class KafkaElection:
    """Membership in a chain's connector group on the single-partition control topic."""

    def __init__(self, bootstrap: str, topic: str, group_id: str, client_id: str,
                 session_timeout_ms: int = 10_000) -> None:
        self.topic = topic
        self.group_id = group_id
        self.control = TopicPartition(topic, CONTROL_PARTITION)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, client_id=client_id,
            enable_auto_commit=False, auto_offset_reset="latest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 5),
            rebalance_timeout_ms=max(session_timeout_ms, 30_000),
            # a control topic that appears later is noticed within this time (default: 5 min)
            metadata_max_age_ms=10_000,
        )

    async def join(self, listener: ElectionListener, visible_within: float = 30.0) -> None:
        """Start the consumer and subscribe to the control topic once its metadata is visible.

        A group leader assigns only partitions it knows of: joining before a just-created
        control topic shows up in the metadata would leave every member unassigned until the
        next metadata refresh.
        """
        await self._consumer.start()
        deadline = asyncio.get_running_loop().time() + visible_within
        while asyncio.get_running_loop().time() < deadline:
            if self.topic in await self._consumer.topics():
                break
            await asyncio.sleep(0.2)
        self._consumer.subscribe([self.topic], listener=_Rebalance(listener, self.control))

    async def keep_alive(self) -> None:
        """Poll the (empty) control topic: a member that stops polling is dropped."""
        await self._consumer.getmany(timeout_ms=500)

    async def confirm(self) -> bool:
        """Commit an offset with this member's generation; only the current holder succeeds."""
        if self.control not in self._consumer.assignment():
            return False
        try:
            await self._consumer.commit({self.control: 0})
        except KafkaError as exc:
            log.info("group %s: not the elected member any more (%r)", self.group_id, exc)
            return False
        return True

    async def leave(self) -> None:
        """Stop the consumer; it leaves the group, which rebalances at once."""
        with contextlib.suppress(KafkaError):
            await self._consumer.stop()
