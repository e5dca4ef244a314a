"""Fault scenarios on the real broker, node and processes, each judged against a backtest.

Every scenario scripts fund movements on an anvil devnet (:class:`Workload`), runs the real
``chainwatch connector`` and ``chainwatch worker`` processes (:class:`FaultPipeline`) with a
signing webhook receiver, injects its faults, and returns an :class:`Outcome`. The expected
alerts do not come from chainwatch: :func:`backtest` asks the node for the final canonical
receipt, transaction and call trace of every transaction the workload sent, derives the
transfers (native value, ERC-20 ``Transfer`` logs, internal calls with value) and their ids,
and :func:`expected_alerts` recomputes each alert id from the README's formula
(``sha256("v1|<rule>|<transfer id>|<case>")[:32]``) for every watch entry on either side.

An :class:`Outcome` compares that with the final state of every alert id the receiver
accepted: expected, delivered, missing (never delivered, or finally retracted), duplicated
(the same id, revision and status again), the same facts under two different ids,
unexpected, retracted, and left on a non-canonical block. The pytest suite
(``test_faults_short.py``) runs each scenario with CI-sized counts; ``tests.faults.soak``
runs them with the issue's counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from monitor.demo.devnet import DevnetDriver, SentTransfer
from monitor.devservices import LocalAnvil, LocalKafka
from monitor.settings import ChainConfig, ChainwatchConfig
from monitor.topics import block_topic
from tests.faults.rpc_proxy import FAULT_KINDS, RpcFaultProxy
from tests.integration.harness import WEBHOOK_SECRET_ENV, Pipeline, read_topic
from tests.support.receivers import ReceivedAlert, ThreadedWebhookReceiver, WebhookReceiver

CHAIN = "devnet"
RULE = "watched-address"
SECRET = "whsec-test-secret"
ETHER = 10**18
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
CASE = "CASE-FAULT-1"
CASE_B = "CASE-FAULT-2"
# A SIGKILLed worker stays a group member until its Kafka session times out; faust's default
# is 60 s, during which the restarted worker gets no partitions and screens nothing. Operators
# can shorten it (faust reads BROKER_SESSION_TIMEOUT); the suite does, to stay CI-sized.
WORKER_ENV = {"BROKER_SESSION_TIMEOUT": "10"}


@dataclass
class Services:
    """What a scenario needs from its environment: a shared broker, node and broker makers."""

    bootstrap: str
    workdir: Path
    new_anvil: Callable[..., LocalAnvil]
    new_kafka: Callable[..., LocalKafka]
    seed: int = 1
    say: Callable[[str], None] = print

    def dir(self, name: str) -> Path:
        """A fresh work directory for one pipeline."""
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


# -- expected alerts, independently of chainwatch ---------------------------------------------

@dataclass(frozen=True)
class Fact:
    """One transfer of the final canonical chain, derived straight from the node."""

    transfer_id: str
    kind: str
    tx_hash: str
    block_number: int
    block_hash: str
    from_address: str
    to_address: str
    amount: int
    token: str | None


@dataclass(frozen=True)
class ExpectedAlert:
    """An alert the rule must raise: its recomputed id, the fact and the case."""

    id: str
    fact: Fact
    case_id: str


def recompute_alert_id(transfer_id: str, case_id: str, rule: str = RULE) -> str:
    """The README's alert id formula, written out here rather than imported."""
    return hashlib.sha256(f"v1|{rule}|{transfer_id}|{case_id}".encode()).hexdigest()[:32]


def backtest(driver: DevnetDriver, tx_hashes: list[str], chain: str = CHAIN) -> list[Fact]:
    """Transfers of the given transactions as the node's canonical chain holds them now.

    A transaction that is no longer in the chain (dropped by a reorg) or that failed moves
    nothing. Internal transfers are ``call`` frames with value below the top level, outside
    any failed frame.
    """
    facts: list[Fact] = []
    for tx in dict.fromkeys(h.lower() for h in tx_hashes):
        receipt = driver.rpc("eth_getTransactionReceipt", [tx])
        if receipt is None or int(receipt["status"], 16) != 1:
            continue
        block_number, block_hash = int(receipt["blockNumber"], 16), receipt["blockHash"].lower()
        transaction = driver.rpc("eth_getTransactionByHash", [tx])

        def fact(kind: str, transfer_id: str, frm: str, to: str, amount: int,
                 token: str | None = None) -> Fact:
            return Fact(transfer_id, kind, tx, block_number, block_hash,  # noqa: B023
                        frm.lower(), to.lower(), amount, token)

        value = int(transaction["value"], 16)
        if value and transaction.get("to"):
            facts.append(fact("native", f"{chain}:{tx}:tx", transaction["from"],
                              transaction["to"], value))
        for log in receipt["logs"]:
            topics = [t.lower() for t in log["topics"]]
            if len(topics) == 3 and topics[0] == TRANSFER_TOPIC:
                facts.append(fact("erc20", f"{chain}:{tx}:log:{int(log['logIndex'], 16)}",
                                  "0x" + topics[1][-40:], "0x" + topics[2][-40:],
                                  int(log["data"], 16), log["address"].lower()))
        traces = driver.rpc("trace_transaction", [tx]) or []
        failed = [tuple(t["traceAddress"]) for t in traces if t.get("error")]
        for trace in traces:
            address = tuple(trace["traceAddress"])
            action = trace.get("action", {})
            if not address or trace.get("type") != "call" or action.get("callType") != "call":
                continue
            if any(address[:len(f)] == f for f in failed):
                continue
            amount = int(action.get("value", "0x0"), 16)
            if amount:
                facts.append(fact("internal",
                                  f"{chain}:{tx}:trace:{'_'.join(str(i) for i in address)}",
                                  action["from"], action["to"], amount))
    return facts


def expected_alerts(facts: list[Fact], entries: list[dict[str, str]]) -> dict[str, ExpectedAlert]:
    """One alert per (transfer, case) where a watched address of the case is on either side."""
    out: dict[str, ExpectedAlert] = {}
    for fact in facts:
        for entry in entries:
            if entry["chain"] == CHAIN and entry["address"] in (fact.from_address,
                                                                 fact.to_address):
                alert = ExpectedAlert(recompute_alert_id(fact.transfer_id, entry["case_id"]),
                                      fact, entry["case_id"])
                out[alert.id] = alert
    return out


# -- outcome --------------------------------------------------------------------------------

def facts_key(received: ReceivedAlert) -> tuple[Any, ...]:
    """The facts an alert states, without its id, block position or detection time."""
    a = received.alert
    return (a.rule, a.chain, a.tx_hash.lower(), a.transfer_kind, a.log_index,
            tuple(a.trace_address or ()), a.from_address, a.to_address,
            a.asset.address, a.amount, a.watch.case_id)


def revision(received: ReceivedAlert) -> int:
    """The lifecycle revision of a delivered event (0 for the first)."""
    return int(getattr(received.alert, "revision", 0) or 0)


@dataclass
class Outcome:
    """What a scenario injected, expected and got; ``problems()`` lists what must not happen.

    With the alert lifecycle one id can be delivered several times as distinct events
    (``revision`` 0, 1, ...: provisional, confirmed, moved, retracted). The *final* state of an
    id is its highest revision. A duplicate is the same ``(id, revision, status)`` delivered
    again. An expected id is missing when it never arrived or its final state is retracted.
    """

    scenario: str
    faults: Counter[str]
    expected: dict[str, ExpectedAlert]
    received: list[ReceivedAlert]
    allow_retractable: bool = False  # 0 confirmations: alerts for orphaned transfers allowed
    checks: dict[str, int] = field(default_factory=dict)  # further counts that must be 0
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def final(self) -> dict[str, ReceivedAlert]:
        """The last state of every delivered id (highest revision, then latest arrival)."""
        out: dict[str, ReceivedAlert] = {}
        for r in self.received:
            held = out.get(r.alert.id)
            if held is None or revision(r) >= revision(held):
                out[r.alert.id] = r
        return out

    @property
    def delivered(self) -> int:
        """Expected alerts whose final state stands (not retracted)."""
        return len(set(self.expected) - set(self.missing))

    @property
    def missing(self) -> list[str]:
        """Expected ids never delivered, or finally retracted."""
        final = self.final
        return sorted(i for i in self.expected
                      if i not in final or final[i].alert.status == "retracted")

    @property
    def duplicated(self) -> int:
        """Extra deliveries of an event already delivered (same id, revision, status)."""
        events = Counter((r.alert.id, revision(r), r.alert.status) for r in self.received)
        return sum(n - 1 for n in events.values() if n > 1)

    @property
    def updates(self) -> int:
        """Lifecycle events beyond the first of an id (confirmations, moves, retractions)."""
        return len({(r.alert.id, revision(r)) for r in self.received}) - len(self.final)

    @property
    def same_facts_different_id(self) -> int:
        """Groups of deliveries that state the same facts under more than one id."""
        groups: dict[tuple[Any, ...], set[str]] = {}
        for r in self.received:
            groups.setdefault(facts_key(r), set()).add(r.alert.id)
        return sum(1 for ids in groups.values() if len(ids) > 1)

    @property
    def unexpected(self) -> list[str]:
        """Delivered ids the backtest does not expect and that were not retracted."""
        return sorted(i for i, r in self.final.items()
                      if i not in self.expected and r.alert.status != "retracted")

    @property
    def retracted(self) -> int:
        """Delivered ids the backtest does not expect, finally retracted (orphaned transfers)."""
        return sum(1 for i, r in self.final.items()
                   if i not in self.expected and r.alert.status == "retracted")

    @property
    def unconfirmed(self) -> int:
        """Expected ids whose final state is still provisional."""
        final = self.final
        return sum(1 for i in self.expected if i in final
                   and final[i].alert.status == "provisional")

    @property
    def stale(self) -> int:
        """Expected ids whose final state names a non-canonical block."""
        final = self.final
        return sum(1 for i, e in self.expected.items() if i in final
                   and final[i].alert.status != "retracted"
                   and final[i].alert.block_hash.lower() != e.fact.block_hash)

    def problems(self) -> list[str]:
        """Every violated guarantee, in words (empty when the scenario passed)."""
        found = []
        if self.missing:
            found.append(f"{len(self.missing)} missing alert(s): {self.missing[:5]}")
        if self.same_facts_different_id:
            found.append(f"{self.same_facts_different_id} fact(s) under two different ids")
        if self.unexpected and not self.allow_retractable:
            found.append(f"{len(self.unexpected)} unexpected alert(s): {self.unexpected[:5]}")
        if self.stale and not self.allow_retractable:
            found.append(f"{self.stale} alert(s) left with a non-canonical block")
        found += [f"{name}: {count}" for name, count in self.checks.items() if count]
        return found

    def table(self) -> str:
        """The scenario's report: faults injected and the alert accounting."""
        faults = ", ".join(f"{k} x{v}" for k, v in sorted(self.faults.items())) or "none"
        rows: list[tuple[str, Any]] = [
            ("faults injected", faults),
            ("alerts expected", len(self.expected)),
            ("delivered", self.delivered),
            ("missing", len(self.missing)),
            ("duplicated (by id)", self.duplicated),
            ("same facts, different id", self.same_facts_different_id),
            ("unexpected, not retracted" + (" (0-conf)" if self.allow_retractable else ""),
             len(self.unexpected)),
            ("orphaned and retracted", self.retracted),
            ("left on a non-canonical block" + (" (0-conf)" if self.allow_retractable else ""),
             self.stale),
            ("lifecycle updates (same id, new revision)", self.updates),
        ]
        rows += list(self.checks.items())
        rows += list(self.info.items())
        rows.append(("seconds", f"{self.seconds:.1f}"))
        verdict = "PASS" if not self.problems() else "FAIL: " + "; ".join(self.problems())
        width = max(len(k) for k, _ in rows)
        lines = [f"== {self.scenario}: {verdict}"]
        lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
        return "\n".join(lines)


def summary(outcomes: list[Outcome]) -> str:
    """One line per scenario, for the end of a run."""
    head = ("scenario", "faults", "expected", "delivered", "missing", "dup(id)",
            "same-facts", "unexpected", "result")
    rows = [head] + [
        (o.scenario, str(sum(o.faults.values())), str(len(o.expected)), str(o.delivered),
         str(len(o.missing)), str(o.duplicated), str(o.same_facts_different_id),
         str(len(o.unexpected)), "PASS" if not o.problems() else "FAIL")
        for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
                     for r in rows)


# -- the devnet workload ----------------------------------------------------------------------

class Workload:
    """Wallets, a token and a splitter on one devnet, and random transfers between them.

    Watched: the seized wallet (case 1) and the mule (cases 1 and 2). Every transaction hash is
    kept for the backtest; noise transfers between unwatched wallets must raise nothing.
    """

    def __init__(self, driver: DevnetDriver, rng: random.Random) -> None:
        self.driver = driver
        self.rng = rng
        self.tx_hashes: list[str] = []
        self.sent: list[SentTransfer] = []
        self._labels = 0
        self.deployer = driver.new_wallet("fault-deployer")
        self.seized = driver.new_wallet("fault-seized")
        self.mule = driver.new_wallet("fault-mule")
        for wallet in (self.deployer, self.seized, self.mule):
            driver.fund(wallet, 10_000 * ETHER)
        self.token = driver.deploy_token(self.deployer, symbol="tUSD", decimals=6)
        self.splitter = driver.deploy_splitter(self.deployer)
        self._note(driver.send_token(self.token, self.deployer, self.seized, 10**12))

    def entries(self) -> list[dict[str, str]]:
        """The watch entries (two cases, one address in both)."""
        return [
            {"chain": CHAIN, "address": self.seized, "case_id": CASE,
             "label": "wallet seized by court order", "category": "seized"},
            {"chain": CHAIN, "address": self.mule, "case_id": CASE,
             "label": "suspected money mule", "category": "suspect"},
            {"chain": CHAIN, "address": self.mule, "case_id": CASE_B,
             "label": "mule in a second case", "category": "suspect"},
        ]

    def fresh(self, prefix: str = "fault-other") -> str:
        """A new, unwatched wallet."""
        self._labels += 1
        return self.driver.new_wallet(f"{prefix}-{self._labels}")

    def _note(self, *transfers: SentTransfer | None) -> None:
        for t in transfers:
            if t is not None:
                self.sent.append(t)
                if t.tx_hash not in self.tx_hashes:
                    self.tx_hashes.append(t.tx_hash)

    KINDS = {"native-out": 3, "native-in": 2, "erc20-out": 3, "erc20-in": 2, "split": 2,
             "mule-out": 1, "noise": 2}

    def random_transfer(self, kinds: tuple[str, ...] = tuple(KINDS)) -> None:
        """One random movement: mostly touching a watched wallet, sometimes pure noise."""
        d, rng = self.driver, self.rng
        amount = rng.randint(1, 1000) * 10**14
        kind = rng.choices(kinds, weights=[self.KINDS[k] for k in kinds])[0]
        if kind == "native-out":
            self._note(d.send_native(self.seized, self.fresh(), amount))
        elif kind == "native-in":
            sender = self.fresh("fault-sender")
            d.fund(sender, ETHER)
            self._note(d.send_native(sender, self.seized, amount // 100))
        elif kind == "erc20-out":
            self._note(d.send_token(self.token, self.seized, self.fresh(), amount // 10**10))
        elif kind == "erc20-in":
            self._note(d.send_token(self.token, self.deployer, self.seized, amount // 10**10))
        elif kind == "split":
            payouts = d.split(self.splitter, self.seized, [self.fresh(), self.mule], 2 * amount)
            self._note(*payouts, d.tx_value_transfer(payouts[0].tx_hash))
        elif kind == "mule-out":
            self._note(d.send_native(self.mule, self.fresh(), amount // 10))
        else:
            self._note(d.send_native(self.deployer, self.fresh(), amount))

    def expected(self) -> dict[str, ExpectedAlert]:
        """The alerts the final canonical chain calls for (see :func:`backtest`)."""
        facts = backtest(self.driver, self.tx_hashes)
        return expected_alerts(facts, self.entries())

    def driver_disagreements(self) -> int:
        """Transfers the driver reported that the backtest does not find (0 without reorgs)."""
        found = {f.transfer_id for f in backtest(self.driver, self.tx_hashes)}
        return sum(1 for t in self.sent if t.record_id(CHAIN) not in found)


# -- the pipeline under test ------------------------------------------------------------------

@dataclass
class FaultPipeline(Pipeline):
    """The harness's pipeline, plus extra sinks and options, and a supervisor for exits."""

    hook_options: dict[str, Any] = field(default_factory=dict)
    extra_sinks: list[dict[str, Any]] = field(default_factory=list)
    exits: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        super().__post_init__()
        config = yaml.safe_load(self.config_path.read_text())
        for sink in config["sinks"]:
            if sink["name"] == "hook":
                sink.update(self.hook_options)
        config["sinks"] += [{"secret_env": WEBHOOK_SECRET_ENV, **s} for s in self.extra_sinks]
        # Follow-the-money would watch new addresses (hops) that this backtest does not model.
        if "taint" in ChainwatchConfig.model_fields:
            config["taint"] = {"enabled": False}
        self.config_path.write_text(yaml.safe_dump(config))

    def env(self) -> dict[str, str]:
        """The harness's environment plus the worker's Kafka session timeout."""
        return {**super().env(), **WORKER_ENV}

    def supervise(self) -> None:
        """Restart a process that exited on its own, as ``chainwatch up`` would; count it."""
        for name, proc in list(self.processes.items()):
            if proc.poll() is not None:
                self.exits[f"{name} exited"] += 1
                self.start(name)

    def connector_progress(self) -> int:
        """Last block the running connector published (-1 while it is down, 0 before any)."""
        return _metric(self.metrics_port, r'chainwatch_last_published_block\{chain="devnet"\}')


def _metric(port: int, pattern: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return -1
    match = re.search(pattern + r" ([0-9.e+]+)", text)
    return int(float(match.group(1))) if match else 0


def await_until(pipelines: list[FaultPipeline], done: Callable[[], bool], timeout: float,
                settle: float = 2.0) -> None:
    """Wait until ``done()`` (restarting processes that exit), then a little more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        for pipeline in pipelines:
            pipeline.supervise()
        time.sleep(0.25)
    time.sleep(settle)  # a duplicate or a late update would arrive now


def await_alerts(pipelines: list[FaultPipeline], receiver: ThreadedWebhookReceiver,
                 want: set[str], timeout: float, settle: float = 2.0) -> None:
    """Wait until every wanted id arrived at ``receiver``."""
    await_until(pipelines, lambda: want <= set(receiver.ids()), timeout, settle)


@contextlib.contextmanager
def running(pipelines: FaultPipeline | list[FaultPipeline],
            prepare: Callable[[], Workload]) -> Iterator[Workload]:
    """Start the workers, build the workload meanwhile, watch it, start the connectors.

    The workers start first so their start-up overlaps the devnet set-up in ``prepare``. Every
    process is stopped at the end, also when the set-up fails.
    """
    group = pipelines if isinstance(pipelines, list) else [pipelines]
    try:
        for pipeline in group:
            pipeline.start("worker")
        work = prepare()
        for pipeline in group:
            pipeline.wait_ready()
            pipeline.watch(work.entries())
        for pipeline in group:
            pipeline.start("connector")
        yield work
    finally:
        for pipeline in group:
            pipeline.stop()


def _finish(outcome: Outcome, pipeline: FaultPipeline, started: float,
            services: Services) -> Outcome:
    """Time, process exits, evidence files; print the table."""
    outcome.seconds = time.monotonic() - started
    if pipeline.exits:
        outcome.info["processes that exited (restarted)"] = ", ".join(
            f"{k} x{v}" for k, v in sorted(pipeline.exits.items()))
    logs = [path.read_text(errors="replace") for path in pipeline.workdir.glob("worker-*.log")]
    outcome.info["skipped records read again by workers (fills)"] = sum(
        text.count("that were skipped") for text in logs)
    statuses = Counter(str(r.payload.get("status")) for r in outcome.received)
    outcome.info["statuses received"] = ", ".join(f"{k} x{v}" for k, v in sorted(
        statuses.items())) or "none"
    evidence = {
        "expected": {i: {"case": e.case_id, **vars(e.fact)} for i, e in outcome.expected.items()},
        "received": [r.payload for r in outcome.received],
    }
    (pipeline.workdir / "outcome.json").write_text(json.dumps(evidence, indent=1))
    if outcome.problems():
        explain_missing(outcome, [pipeline])
    services.say(outcome.table())
    return outcome


def explain_missing(outcome: Outcome, pipelines: list[FaultPipeline],
                    logs: str = "worker-*.log") -> None:
    """Add to a failed outcome where its missing alerts stopped, and the logs' telling lines."""
    first = pipelines[0]
    with contextlib.suppress(Exception):  # diagnosis only: where did the missing ones stop?
        raised = {json.loads(v)["id"] for v in read_topic(
            first.bootstrap, f"{first.prefix}alerts", timeout=20)}
        outcome.info["missing, but in the alerts topic"] = (
            f"{len(set(outcome.missing) & raised)} (of {len(raised)} ids in the topic)")
    outcome.info["blocks of the missing"] = " ".join(str(n) for n in sorted(
        {outcome.expected[i].fact.block_number for i in outcome.missing
         if i in outcome.expected}))
    for pipeline in pipelines:
        name = pipeline.workdir.name if len(pipelines) > 1 else "worker"
        outcome.info[f"logs ({name})"] = str(pipeline.workdir)
        outcome.info[f"{name} log"] = _log_digest(pipeline.workdir, logs)


_DIGEST = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|screening \S+ from offset|Worker ready|"
                     r"partitions assigned to this worker|delivering \S+ from offset|"
                     r"Signal received|active instance|standing by|resuming at block|"
                     r"earlier holders fenced")


def _log_digest(workdir: Path, logs: str = "worker-*.log", limit: int = 40) -> str:
    """The telling lines of the logs matching ``logs`` (a failing run's tmp dir is gone in CI)."""
    lines: list[str] = []
    for path in sorted(workdir.glob(logs), key=lambda p: (p.stem.split("-")[0],
                                                          int(p.stem.split("-")[1]))):
        picked = [line.strip()[:240] for line in path.read_text(errors="replace").splitlines()
                  if _DIGEST.search(line)]
        lines += [f"[{path.stem}] {line}" for line in picked[-limit:]]
    return "\n    ".join(lines) or "none"


# -- a receiver that can be down --------------------------------------------------------------

class _PinnedReceiver(WebhookReceiver):
    """A WebhookReceiver that binds the same port again after :meth:`close`."""

    async def start(self) -> None:
        """Bind 127.0.0.1 (the earlier port once there was one) and serve."""
        self._event = asyncio.Event()
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port or 0).start()
        self._port = int(self._runner.addresses[0][1])


class OutageReceiver(ThreadedWebhookReceiver):
    """A threaded receiver that can answer 500s, refuse connections, and come back."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.receiver = _PinnedReceiver(secret)

    def fail_with_500(self) -> None:
        """Answer every request with HTTP 500."""
        self.receiver.always_fail = 500

    def refuse(self) -> None:
        """Stop listening: connections are refused."""
        self.run(self.receiver.close)

    def recover(self) -> None:
        """Listen again on the same port and accept alerts."""
        self.receiver.always_fail = None
        self.run(self.receiver.start)


# -- scenario 1: kill -9 of connector and worker during a replay ------------------------------

def kill_points(services: Services, *, blocks: int = 300, transfers: int = 30,
                kills: int = 4, batch_size: int = 5, seconds: float | None = None) -> Outcome:
    """SIGKILL the connector and the worker at random moments while ``blocks`` blocks stream.

    A third of the chain exists before the pipeline starts (a backfill in batches); the rest is
    mined while the kills happen, over ``seconds`` (default 6 s per kill point), so every kill
    lands mid-stream: during the backfill, while following the head, or while a process starts.
    Half the kills hit the connector, half the worker, in random order.
    """
    started = time.monotonic()
    rng = random.Random(services.seed)
    node = services.new_anvil()
    driver = DevnetDriver(node.http_url)
    window = seconds or max(20.0, 6.0 * kills)
    faults: Counter[str] = Counter()
    at: list[str] = []
    with ThreadedWebhookReceiver(SECRET) as receiver:
        pipeline = FaultPipeline(services.dir("kill"), services.bootstrap, _prefix(rng),
                                 node.http_url, webhook_url=receiver.url,
                                 chain={"batch_size": batch_size, "confirmations": 2})
        with running(pipeline, lambda: _replay_chain(driver, rng, blocks // 3,
                                                     transfers // 3)) as work:
            live = transfers - transfers // 3
            gap = max(1, (blocks - driver.head()) // max(1, live))
            who = ["connector", "worker"] * kills
            offset = rng.randint(0, 1)
            plan = sorted(zip((rng.uniform(0.02, 0.98) * window for _ in range(kills)),
                              who[offset:offset + kills], strict=True))

            def progress(name: str) -> int:
                if name == "connector":
                    return pipeline.connector_progress()
                return max((r.alert.block_number for r in receiver.alerts), default=-1)

            t0 = time.monotonic()
            with _LiveTraffic(work, window / max(1, live), live, gap=gap, rng=rng):
                for when, name in plan:
                    while time.monotonic() - t0 < when:
                        pipeline.supervise()
                        time.sleep(0.05)
                    at.append(f"{name}@{progress(name)}")
                    pipeline.kill(name)
                    faults[f"{name} kill -9"] += 1
                    pipeline.start(name)
            driver.mine(max(3, blocks - driver.head()))  # the last transfer 2 deep too
            head = driver.head()
            expected = work.expected()
            await_alerts([pipeline], receiver, set(expected), timeout=120)
            topic = _topic_check(services.bootstrap, pipeline.prefix, head)
        outcome = Outcome("kill -9", faults, expected, receiver.alerts,
                          checks={"driver/backtest disagreements": work.driver_disagreements(),
                                  **topic},
                          info={"blocks": head, "transfers sent": len(work.sent),
                                "kill points (process@block reached)": " ".join(at)})
    return _finish(outcome, pipeline, started, services)


def _replay_chain(driver: DevnetDriver, rng: random.Random, blocks: int,
                  transfers: int) -> Workload:
    """A chain of ``blocks`` blocks with ``transfers`` random transfers spread over it."""
    work = Workload(driver, rng)
    gap = max(0, blocks // transfers - 2)
    for _ in range(transfers):
        work.random_transfer()
        driver.mine(rng.randint(0, 2 * gap))
    if driver.head() < blocks:
        driver.mine(blocks - driver.head())
    return work


def _topic_check(bootstrap: str, prefix: str, head: int) -> dict[str, int]:
    """Gaps and duplicates in the block topic after the kills (no reorgs in this scenario)."""
    numbers = [json.loads(v)["number"] for v in read_topic(bootstrap, block_topic(prefix, CHAIN))]
    return {"block topic gaps": len(set(range(0, max(numbers, default=-1) + 1)) - set(numbers)),
            "block topic duplicates": len(numbers) - len(set(numbers)),
            "block topic short of head-2": max(0, head - 2 - max(numbers, default=-1))}


def _prefix(rng: random.Random) -> str:
    return f"f{rng.getrandbits(32):08x}."


# -- scenario 2: reorgs of depth 1-5 while streaming ------------------------------------------

def reorgs(services: Services, *, count: int = 4, max_depth: int = 5,
           deep_confirmations: int = 6) -> list[Outcome]:
    """Reorgs at the tip while three pipelines stream the same chain.

    Each reorg (``anvil_reorg``) replaces the last 1..``max_depth`` blocks: transactions of
    nonce-chained senders are put back (possibly into another block), transactions of one-shot
    senders are kept or dropped at random, and sometimes a brand-new transaction appears only
    on the new branch. The pipelines:

    * ``deep``: the connector waits ``deep_confirmations`` (> ``max_depth``) blocks, so it
      never sees a reorg: the alerts must equal the final canonical chain;
    * ``lifecycle``: 0 confirmations at the connector, alerts ``provisional`` until
      ``alert_confirmations`` = ``deep_confirmations``; the final state of every alert
      (retracted, moved, confirmed) must equal the final canonical chain;
    * ``zero``: 0 confirmations everywhere: what happens is reported, not asserted (alerts
      for orphaned transfers are retractable).
    """
    started = time.monotonic()
    rng = random.Random(services.seed + 1)
    node = services.new_anvil()
    driver = DevnetDriver(node.http_url)
    variants = _reorg_variants(deep_confirmations)
    senders = [f"fault-oneshot-{i}" for i in range(8 * count + 8)]
    token_senders = senders[: len(senders) // 2]
    oneshot: set[str] = set()

    def prepare() -> Workload:
        work = Workload(driver, rng)
        for label in senders:
            driver.fund(driver.new_wallet(label), ETHER)
        for label in token_senders:
            work._note(driver.send_token(work.token, work.deployer, driver.new_wallet(label),
                                         10**9))
        driver.mine(max_depth + 1)  # every fork point lies above the set-up
        return work

    spare = iter(senders)

    def inbound(work: Workload) -> None:
        label = next(spare)
        sender = driver.new_wallet(label)
        oneshot.add(sender)
        amount = rng.randint(1, 1000)
        if label in token_senders and rng.random() < 0.5:
            work._note(driver.send_token(work.token, sender, work.seized, amount))
        else:
            work._note(driver.send_native(sender, work.seized, amount * 10**12))

    faults: Counter[str] = Counter()
    with contextlib.ExitStack() as stack:
        receivers = [stack.enter_context(ThreadedWebhookReceiver(SECRET)) for _ in variants]
        pipelines = [FaultPipeline(services.dir(f"reorg-{i}"), services.bootstrap,
                                   _prefix(rng), node.http_url, webhook_url=rx.url, chain=chain)
                     for i, ((_, chain, _), rx) in enumerate(zip(variants, receivers,
                                                                  strict=True))]
        work = stack.enter_context(running(pipelines, prepare))
        for _ in range(count):
            for _ in range(rng.randint(2, 4)):
                if rng.random() < 0.6:
                    inbound(work)
                else:  # nonce-chained senders only: their transactions are put back
                    work.random_transfer(("native-out", "erc20-out", "split"))
                if rng.random() < 0.3:
                    driver.mine(1)
            time.sleep(1.0)  # the 0-confirmation pipelines publish the tip
            depth = rng.randint(1, max_depth)
            work.tx_hashes += _reorg(driver, rng, depth, oneshot, next(spare), work.seized)
            faults[f"reorg depth {depth}"] += 1
            time.sleep(1.0)
        driver.mine(deep_confirmations + 2)
        expected = work.expected()
        outcomes = []
        for (name, _, report_only), pipeline, rx in zip(variants, pipelines, receivers,
                                                         strict=True):
            def settled(rx: ThreadedWebhookReceiver = rx, strict: bool = not report_only
                        ) -> bool:
                now = Outcome("", Counter(), expected, rx.alerts)
                return not now.missing and (not strict or not (
                    now.unexpected or now.stale or now.unconfirmed))
            await_until([pipeline], settled, timeout=90)
            reorgs_seen = _metric(pipeline.metrics_port,
                                  r'chainwatch_reorgs_total\{chain="devnet"\}')
            outcome = Outcome(name, Counter(faults), expected, rx.alerts,
                              allow_retractable=report_only,
                              info={"reorgs seen by the connector": reorgs_seen})
            if not report_only:
                outcome.checks["final state provisional"] = outcome.unconfirmed
            outcomes.append(outcome)
    return [_finish(o, p, started, services) for o, p in zip(outcomes, pipelines, strict=True)]


def _reorg_variants(deep: int) -> list[tuple[str, dict[str, Any], bool]]:
    """(name, chain options, report only) of the pipelines of the reorg scenario."""
    has_lifecycle = "alert_confirmations" in ChainConfig.model_fields
    variants: list[tuple[str, dict[str, Any], bool]] = [
        (f"reorgs, {deep} confirmations", {"confirmations": deep}, False)]
    if has_lifecycle:
        variants.append((f"reorgs, 0 confirmations, alerts confirmed at {deep}",
                         {"confirmations": 0, "alert_confirmations": deep}, False))
    variants.append(("reorgs, 0 confirmations (report only)",
                     {"confirmations": 0, **({"alert_confirmations": 0} if has_lifecycle
                                              else {})}, True))
    return variants


def _reorg(driver: DevnetDriver, rng: random.Random, depth: int, oneshot: set[str],
           new_sender: str, to: str) -> list[str]:
    """Replace the last ``depth`` blocks; return the hashes of brand-new transactions."""
    head = driver.head()
    old: list[dict[str, Any]] = []
    for number in range(head - depth + 1, head + 1):
        old += driver.rpc("eth_getBlockByNumber", [hex(number), True])["transactions"]
    keep = [tx for tx in old if tx["from"].lower() not in oneshot or rng.random() < 0.6]
    raws: list[str] = [driver.rpc("eth_getRawTransactionByHash", [tx["hash"]]) for tx in keep]
    new: list[str] = []
    if rng.random() < 0.5:  # a transaction that only exists on the new branch
        account = Account.from_key(keccak(text=new_sender))
        base_fee = int(driver.rpc("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
        signed = account.sign_transaction({
            "to": to_checksum_address(to),
            "value": rng.randint(1, 1000) * 10**12, "gas": 21_000, "nonce": 0,
            "maxFeePerGas": 4 * base_fee + 10**9, "maxPriorityFeePerGas": 10**9,
            "chainId": driver.chain_id, "type": 2})
        raws.insert(rng.randint(0, len(raws)), signed.raw_transaction.to_0x_hex())
        new.append(signed.hash.to_0x_hex())
    offsets = sorted(rng.randint(0, depth - 1) for _ in raws)  # order kept: nonces stay valid
    driver.rpc("anvil_reorg", [depth, [[raw, off] for raw, off in
                                       zip(raws, offsets, strict=True)]])
    return new


# -- scenario 3: a faulty RPC node, with failover ----------------------------------------------

def rpc_faults(services: Services, *, rate: float = 0.2, transfers: int = 24,
               kinds: tuple[str, ...] = FAULT_KINDS) -> Outcome:
    """Two fault proxies (``rate`` faults each) as the connector's two RPC URLs."""
    started = time.monotonic()
    rng = random.Random(services.seed + 2)
    node = services.new_anvil()
    driver = DevnetDriver(node.http_url)
    with (RpcFaultProxy(node.http_url, rate, kinds=kinds, seed=services.seed,
                        timeout_seconds=2.5) as first,
          RpcFaultProxy(node.http_url, rate, kinds=kinds, seed=services.seed + 1,
                        timeout_seconds=2.5) as second,
          ThreadedWebhookReceiver(SECRET) as receiver):
        pipeline = FaultPipeline(services.dir("rpc"), services.bootstrap, _prefix(rng),
                                 first.url, webhook_url=receiver.url,
                                 chain={"rpc_urls": [first.url, second.url], "batch_size": 5,
                                        "confirmations": 2, "request_timeout_seconds": 1.0})

        def prepare() -> Workload:
            work = Workload(driver, rng)
            for _ in range(transfers // 2):  # half of it replayed, half live
                work.random_transfer()
                driver.mine(rng.randint(0, 4))
            return work

        with running(pipeline, prepare) as work:
            for _ in range(transfers - transfers // 2):
                work.random_transfer()
                driver.mine(rng.randint(0, 4))
                pipeline.supervise()
                time.sleep(rng.uniform(0.0, 0.3))
            driver.mine(3)
            expected = work.expected()
            await_alerts([pipeline], receiver, set(expected), timeout=120)
        faults = first.injected + second.injected
        requests = first.requests + second.requests
    outcome = Outcome(f"RPC faults {rate:.0%} x2 endpoints", faults, expected, receiver.alerts,
                      checks={"driver/backtest disagreements": work.driver_disagreements()},
                      info={"RPC requests": requests,
                            "fault share": f"{sum(faults.values()) / max(1, requests):.0%}"})
    return _finish(outcome, pipeline, started, services)


# -- scenario 4: the broker stopped and restarted ---------------------------------------------

class _LiveTraffic:
    """Sends ``limit`` random transfers from a background thread, one per ``interval``.

    After each transfer it mines ``gap`` blocks on average (at least one), so blocks keep
    coming; leaving the ``with`` block waits for the last transfer unless stopped earlier.
    """

    def __init__(self, work: Workload, interval: float, limit: int, *, gap: int = 1,
                 rng: random.Random | None = None) -> None:
        self.work, self.interval, self.limit, self.gap = work, interval, limit, gap
        self.rng = rng or random.Random(0)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-traffic", daemon=True)

    def _run(self) -> None:
        try:
            began = time.monotonic()
            for i in range(self.limit):
                if self._stop.wait(max(0.0, began + i * self.interval - time.monotonic())):
                    return
                self.work.random_transfer()
                self.work.driver.mine(self.rng.randint(1, max(1, 2 * self.gap - 1)))
        except BaseException as exc:  # reported when the traffic ends
            self.error = exc

    def __enter__(self) -> _LiveTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=self.limit * (self.interval + 30))
        self.stop()

    def stop(self) -> None:
        """Stop sending and re-raise what the thread failed with."""
        self._stop.set()
        self._thread.join(timeout=60)
        if self.error is not None:
            raise self.error


def broker_outage(services: Services, *, outage_seconds: float = 10.0,
                  transfers: int = 30) -> Outcome:
    """Stop a private broker for ``outage_seconds`` while blocks keep coming, then restart it."""
    started = time.monotonic()
    rng = random.Random(services.seed + 3)
    broker = services.new_kafka()
    node = services.new_anvil()
    driver = DevnetDriver(node.http_url)
    faults: Counter[str] = Counter()
    with ThreadedWebhookReceiver(SECRET) as receiver:
        pipeline = FaultPipeline(services.dir("broker"), broker.bootstrap, _prefix(rng),
                                 node.http_url, webhook_url=receiver.url,
                                 chain={"confirmations": 1})
        with running(pipeline, lambda: Workload(driver, rng)) as work:
            interval = max(0.2, (outage_seconds + 10) / transfers)
            with _LiveTraffic(work, interval, transfers) as traffic:
                receiver.wait_for(2, timeout=60)
                broker.stop()
                faults[f"broker down {outage_seconds:g}s"] += 1
                down_until = time.monotonic() + outage_seconds
                while time.monotonic() < down_until:
                    time.sleep(0.5)  # no supervision: a process that exits now stays down
                broker.start()
                back = time.monotonic()
                time.sleep(5.0)
                traffic.stop()
            driver.mine(2)
            expected = work.expected()
            await_alerts([pipeline], receiver, set(expected), timeout=150, settle=0)
            caught_up = time.monotonic() - back
            time.sleep(2.0)
    outcome = Outcome(f"broker outage {outage_seconds:g}s", faults, expected, receiver.alerts,
                      checks={"driver/backtest disagreements": work.driver_disagreements()},
                      info={"transfers sent": len(work.sent),
                            "all alerts delivered, s after the broker was back":
                                f"{caught_up:.1f}"})
    return _finish(outcome, pipeline, started, services)


# -- scenario 5: a webhook sink that is down ---------------------------------------------------

def sink_outage(services: Services, *, error_seconds: float = 10.0,
                refused_seconds: float = 10.0, transfers: int = 8,
                max_attempts: int = 10) -> Outcome:
    """The webhook answers 500, then refuses connections, then recovers; a second never does.

    Every alert must reach the recovering receiver exactly once by id; every alert must reach
    the dead-letter topic for the receiver that never recovers.
    """
    started = time.monotonic()
    rng = random.Random(services.seed + 4)
    node = services.new_anvil()
    driver = DevnetDriver(node.http_url)
    faults: Counter[str] = Counter()
    with (OutageReceiver(SECRET) as receiver,
          ThreadedWebhookReceiver(SECRET, always_fail=503) as never):
        pipeline = FaultPipeline(
            services.dir("sink"), services.bootstrap, _prefix(rng), node.http_url,
            webhook_url=receiver.url, chain={"confirmations": 0},
            hook_options={"max_attempts": max_attempts},
            extra_sinks=[{"name": "never", "type": "webhook", "url": never.url,
                          "max_attempts": 2, "timeout_seconds": 2}])
        with running(pipeline, lambda: Workload(driver, rng)) as work:
            receiver.wait_for(1, timeout=60)  # the set-up's token transfer
            receiver.fail_with_500()
            faults[f"sink HTTP 500 for {error_seconds:g}s"] += 1
            for _ in range(transfers // 2):
                work.random_transfer()
            time.sleep(error_seconds)
            receiver.refuse()
            faults[f"sink refusing connections for {refused_seconds:g}s"] += 1
            for _ in range(transfers - transfers // 2):
                work.random_transfer()
            time.sleep(refused_seconds)
            receiver.recover()
            back = time.monotonic()
            expected = work.expected()
            await_alerts([pipeline], receiver, set(expected), timeout=150, settle=0)
            caught_up = time.monotonic() - back
            time.sleep(2.0)
            dead = [json.loads(v) for v in read_topic(services.bootstrap,
                                                      f"{pipeline.prefix}deadletter")]
        dead_ids = Counter(d.get("key") for d in dead if d.get("sink") == "never")
        refused_attempts = sum(1 for a in receiver.attempts if a.status == 500)
    outcome = Outcome(f"sink outage {error_seconds + refused_seconds:g}s", faults, expected,
                      receiver.alerts,
                      checks={"duplicated after recovery": Outcome(
                                  "", Counter(), expected, receiver.alerts).duplicated,
                              "not in the dead-letter topic (dead sink)":
                                  len(set(expected) - set(dead_ids))},
                      info={"all alerts delivered, s after the sink was back":
                                f"{caught_up:.1f}",
                            "HTTP 500 answers": refused_attempts,
                            "dead letters (dead sink)": sum(dead_ids.values())})
    return _finish(outcome, pipeline, started, services)
