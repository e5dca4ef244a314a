"""The active/standby rules of connector high availability, with a scripted election."""

from __future__ import annotations

import asyncio

import pytest

from connectors.leadership import (
    ActiveStandby,
    ElectionListener,
    chain_transactional_id,
    control_topic,
    election_group,
)
from connectors.publisher import ConnectorFenced, is_fenced
from monitor.errors import ConnectorError
from monitor.metrics import CONNECTOR_ACTIVE


class ScriptedElection:
    """An election the test drives: it calls the listener as a group coordinator would."""

    def __init__(self, confirms: bool = True) -> None:
        self.listener: ElectionListener | None = None
        self.confirms = confirms
        self.confirm_calls = 0
        self.left = False
        self.joined = asyncio.Event()

    async def join(self, listener: ElectionListener) -> None:
        self.listener = listener
        self.joined.set()

    async def keep_alive(self) -> None:
        await asyncio.sleep(0.01)

    async def confirm(self) -> bool:
        self.confirm_calls += 1
        return self.confirms

    async def leave(self) -> None:
        self.left = True


class RecordingTerm:
    """A term that records how it started and ended; it can be made to fail."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0
        self.graceful = 0
        self.running = asyncio.Event()
        self.fail_with: BaseException | None = None

    async def __call__(self, stop: asyncio.Event) -> None:
        self.started += 1
        self.running.set()
        try:
            while not stop.is_set():
                if self.fail_with is not None:
                    exc, self.fail_with = self.fail_with, None
                    raise exc
                await asyncio.sleep(0.01)
            self.graceful += 1
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running.clear()


async def _until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def _start(election: ScriptedElection, term: RecordingTerm
                 ) -> tuple[ActiveStandby, asyncio.Event, asyncio.Task[None]]:
    node = ActiveStandby("devnet", election, term, instance="test:1")
    stop = asyncio.Event()
    task = asyncio.create_task(node.run(stop))
    await election.joined.wait()
    return node, stop, task


def _active_gauge() -> float:
    return CONNECTOR_ACTIVE.labels("devnet")._value.get()


async def test_a_standby_never_runs_a_term() -> None:
    election, term = ScriptedElection(), RecordingTerm()
    node, stop, task = await _start(election, term)
    assert election.listener is not None
    await election.listener.standby()
    await asyncio.sleep(0.1)
    assert term.started == 0 and not node.active
    stop.set()
    await task
    assert election.left


async def test_elected_starts_a_term_and_deposed_cancels_it_before_returning() -> None:
    election, term = ScriptedElection(), RecordingTerm()
    node, stop, task = await _start(election, term)
    assert election.listener is not None
    await election.listener.elected()
    await _until(lambda: term.running.is_set())
    assert node.active and _active_gauge() == 1
    await election.listener.deposed()
    # the revocation callback returns only once the term stopped: no publish after it
    assert term.cancelled == 1 and not term.running.is_set() and not node.active
    assert _active_gauge() == 0
    await election.listener.elected()  # handed back: a new term, reading the checkpoint again
    await _until(lambda: term.started == 2 and term.running.is_set())
    assert node.takeovers == 2
    stop.set()
    await task
    assert term.graceful == 1 and election.left


async def test_fenced_but_still_elected_takes_over_again() -> None:
    election, term = ScriptedElection(confirms=True), RecordingTerm()
    _node, stop, task = await _start(election, term)
    assert election.listener is not None
    await election.listener.elected()
    await _until(lambda: term.running.is_set())
    term.fail_with = ConnectorFenced("fenced")
    await _until(lambda: term.started == 2, timeout=10)
    assert election.confirm_calls == 1
    stop.set()
    await task


async def test_fenced_and_no_longer_elected_stands_by() -> None:
    election, term = ScriptedElection(confirms=False), RecordingTerm()
    node, stop, task = await _start(election, term)
    assert election.listener is not None
    await election.listener.elected()
    await _until(lambda: term.running.is_set())
    term.fail_with = ConnectorFenced("fenced")
    await _until(lambda: election.confirm_calls == 1)
    await asyncio.sleep(0.2)
    assert term.started == 1 and not node.active and _active_gauge() == 0
    stop.set()
    await task


async def test_a_fence_wrapped_by_the_streamer_is_still_a_fence() -> None:
    try:
        try:
            raise ConnectorFenced("fenced")
        except ConnectorFenced as inner:
            raise ConnectorError("publishing 3 block event(s) failed") from inner
    except ConnectorError as outer:
        assert is_fenced(outer)
    assert not is_fenced(ConnectorError("timeout"))


async def test_a_failing_term_ends_the_instance_and_leaves_the_group() -> None:
    election, term = ScriptedElection(), RecordingTerm()
    _node, _stop, task = await _start(election, term)
    assert election.listener is not None
    await election.listener.elected()
    await _until(lambda: term.running.is_set())
    term.fail_with = ConnectorError("reorg deeper than reorg_window")
    with pytest.raises(ConnectorError, match="reorg deeper"):
        await task
    assert election.left and election.confirm_calls == 0


def test_names_are_per_chain_and_prefix() -> None:
    assert control_topic("cw.") == "cw.connectors.control"
    assert election_group("cw.", "eth") == "cw.connector.eth"
    assert chain_transactional_id("cw.", "eth") != chain_transactional_id("cw.", "bsc")
