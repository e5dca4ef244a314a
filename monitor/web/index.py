"""The alert index: the latest event of every alert id, its audit trail, queries and changes.

Fed by following the alerts topic (every partition, from the beginning) and the audit topic,
so every worker's API answers the same. Memory is bounded: at most ``max_alerts`` alerts are
held (``api.alert_index_max`` in the YAML file, default 50,000); beyond it the alerts first
detected longest ago are dropped (``evicted`` counts them; they stay in Kafka). Audit records
of an alert not (yet) held wait in a bounded pending map and are attached when it arrives.

Sort order is newest first by ``(first_detected_at, id)``: the ``detected_at`` of the first
event seen of the alert id, which later lifecycle events do not change, so pages stay stable.
Every change (an alert event, an audit record) is offered to live subscribers (the SSE
stream) together with the stream cursor after it.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec
from aiokafka import ConsumerRecord

from monitor.records import ALERT_DECODER, Alert
from monitor.web.audit import AUDIT_DECODER, DISPOSITION_OF, AuditRecord, Disposition
from monitor.web.cursors import encode_page_cursor
from monitor.web.query import AlertFilter, AlertQuery

log = logging.getLogger(__name__)

DEFAULT_MAX_ALERTS: Final = 50_000
MAX_AUDIT_PER_ALERT: Final = 1_000
MAX_PENDING_AUDIT: Final = 10_000
SUBSCRIBER_QUEUE: Final = 1_000
ChangeKind = Literal["alert", "audit"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit record with where it was read from (audit topic partition and offset)."""

    record: AuditRecord
    partition: int
    offset: int
    seq: int


@dataclass(slots=True)
class IndexedAlert:
    """The latest event of one alert id, where it was read, and the alert's audit trail."""

    alert: Alert
    first_detected_at: float
    partition: int
    offset: int
    seq: int
    audit: list[AuditEntry] = field(default_factory=list)

    @property
    def key(self) -> tuple[float, str]:
        """Sort key (newest first = descending)."""
        return (self.first_detected_at, self.alert.id)

    @property
    def disposition(self) -> Disposition:
        """What the analysts decided: the latest action, or ``open``."""
        return DISPOSITION_OF[self.audit[-1].record.action] if self.audit else "open"

    def view(self) -> dict[str, Any]:
        """The AlertView: the alert's JSON plus ``disposition``, ``audit`` and sort time."""
        data: dict[str, Any] = msgspec.to_builtins(self.alert)
        data["disposition"] = self.disposition
        data["audit"] = [msgspec.to_builtins(a.record) for a in self.audit]
        data["first_detected_at"] = self.first_detected_at
        return data


@dataclass(frozen=True, slots=True)
class Change:
    """One change of the index, with the stream cursor (next offsets) after it."""

    kind: ChangeKind
    alert_id: str
    seq: int
    positions: dict[str, int]


class Subscription:
    """A live consumer of changes (one SSE connection)."""

    def __init__(self, size: int = SUBSCRIBER_QUEUE) -> None:
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(size)
        self.overflowed = False  # the consumer fell behind: it must reconnect and replay

    def offer(self, change: Change | None) -> None:
        """Queue a change (``None`` = the index is closing); mark overflow when full."""
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.overflowed = True


def matches(item: IndexedAlert, f: AlertFilter) -> bool:
    """Whether an indexed alert passes filter ``f``."""
    alert = item.alert
    if not f.fields.matches(alert):  # severities, rules, cases, chains
        return False
    if f.statuses and alert.status not in f.statuses:
        return False
    if f.dispositions and item.disposition not in f.dispositions:
        return False
    if f.since is not None or f.until is not None:
        at = item.first_detected_at if f.time_field == "detected_at" else alert.block_time
        if f.since is not None and at < f.since:
            return False
        if f.until is not None and at >= f.until:
            return False
    return True


class AlertIndex:
    """Latest event per alert id plus audit trails, bounded, queryable, observable."""

    def __init__(self, max_alerts: int = DEFAULT_MAX_ALERTS,
                 max_pending_audit: int = MAX_PENDING_AUDIT) -> None:
        self.max_alerts = max_alerts
        self.max_pending_audit = max_pending_audit
        self.positions: dict[str, int] = {}
        self.evicted = 0
        self._alerts: dict[str, IndexedAlert] = {}
        self._order: list[tuple[float, str]] = []
        self._by_case: dict[str, set[str]] = {}
        self._pending: OrderedDict[str, list[AuditEntry]] = OrderedDict()
        self._seq = 0
        self._subscribers: set[Subscription] = set()
        self._waiters: list[tuple[str, int, asyncio.Future[None]]] = []

    # --- feeding ------------------------------------------------------------------------------

    def _advance(self, key: str, offset: int) -> None:
        self.positions[key] = max(self.positions.get(key, 0), offset + 1)
        if self._waiters:
            still = []
            for wkey, woffset, future in self._waiters:
                if wkey == key and woffset < self.positions[key]:
                    if not future.done():
                        future.set_result(None)
                else:
                    still.append((wkey, woffset, future))
            self._waiters = still

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _notify(self, kind: ChangeKind, alert_id: str, seq: int) -> None:
        if not self._subscribers:
            return
        change = Change(kind, alert_id, seq, dict(self.positions))
        for sub in list(self._subscribers):
            sub.offer(change)
            if sub.overflowed:
                self._subscribers.discard(sub)

    def apply_alert(self, alert: Alert, partition: int, offset: int) -> IndexedAlert | None:
        """Take an alert event read at ``partition``/``offset``; None if it changed nothing."""
        self._advance(f"a{partition}", offset)
        known = self._alerts.get(alert.id)
        if known is not None:
            if alert.revision < known.alert.revision or known.alert == alert:
                return None  # an older event read late, or a redelivery
            known.alert = alert
            known.partition, known.offset = partition, offset
            known.seq = self._next_seq()
            self._notify("alert", alert.id, known.seq)
            return known
        item = IndexedAlert(alert=alert, first_detected_at=alert.detected_at,
                            partition=partition, offset=offset, seq=self._next_seq())
        for entry in self._pending.pop(alert.id, ()):
            item.audit.append(entry)
        self._alerts[alert.id] = item
        bisect.insort(self._order, item.key)
        self._by_case.setdefault(alert.watch.case_id, set()).add(alert.id)
        self._evict()
        if alert.id in self._alerts:
            self._notify("alert", alert.id, item.seq)
            return item
        return None

    def _evict(self) -> None:
        while len(self._order) > self.max_alerts:
            _, alert_id = self._order.pop(0)
            item = self._alerts.pop(alert_id)
            case = self._by_case.get(item.alert.watch.case_id)
            if case is not None:
                case.discard(alert_id)
                if not case:
                    del self._by_case[item.alert.watch.case_id]
            self.evicted += 1
            if self.evicted in (1, 10, 100) or self.evicted % 1000 == 0:
                log.warning("alert index holds its maximum of %d alerts: %d oldest dropped "
                            "(still in Kafka; raise api.alert_index_max to keep more)",
                            self.max_alerts, self.evicted)

    def apply_audit(self, record: AuditRecord, partition: int, offset: int) -> IndexedAlert | None:
        """Take an audit record read at ``partition``/``offset``; None if not attached yet."""
        self._advance(f"u{partition}", offset)
        entry = AuditEntry(record, partition, offset, self._next_seq())
        item = self._alerts.get(record.alert_id)
        if item is None:
            pending = self._pending.setdefault(record.alert_id, [])
            if all(e.record.id != record.id for e in pending):
                pending.append(entry)
            while len(self._pending) > self.max_pending_audit:
                self._pending.popitem(last=False)
            return None
        if any(e.record.id == record.id for e in item.audit):
            return None  # the same record read twice
        if len(item.audit) >= MAX_AUDIT_PER_ALERT:
            log.warning("alert %s has %d audit records; further ones are only in Kafka",
                        record.alert_id, MAX_AUDIT_PER_ALERT)
            return None
        item.audit.append(entry)
        self._notify("audit", record.alert_id, entry.seq)
        return item

    def apply_alert_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """TopicFollower handler for the alerts topic."""
        if record.value is not None:
            self.apply_alert(ALERT_DECODER.decode(record.value), record.partition, record.offset)
        else:
            self._advance(f"a{record.partition}", record.offset)

    def apply_audit_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """TopicFollower handler for the audit topic."""
        if record.value is not None:
            self.apply_audit(AUDIT_DECODER.decode(record.value), record.partition, record.offset)
        else:
            self._advance(f"u{record.partition}", record.offset)

    async def wait_for(self, key: str, offset: int, timeout: float) -> bool:
        """Wait until the record at ``offset`` of ``key`` (``u0``, ``a1``) has been applied."""
        if self.positions.get(key, 0) > offset:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((key, offset, future))
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            self._waiters = [w for w in self._waiters if w[2] is not future]
            return False

    # --- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._alerts)

    def get(self, alert_id: str) -> IndexedAlert | None:
        """The indexed alert with this id, if held."""
        return self._alerts.get(alert_id)

    def newest(self) -> Iterator[IndexedAlert]:
        """Every alert held, newest first."""
        for _, alert_id in reversed(self._order):
            yield self._alerts[alert_id]

    def query(self, query: AlertQuery) -> tuple[list[IndexedAlert], str | None]:
        """One page of matching alerts, newest first, and the cursor of the next page."""
        f = query.filter
        if len(f.case_ids) == 1:
            (case_id,) = f.case_ids
            keys = sorted(self._alerts[i].key for i in self._by_case.get(case_id, ()))
        else:
            keys = self._order
        end = bisect.bisect_left(keys, query.after) if query.after else len(keys)
        page: list[IndexedAlert] = []
        for i in range(end - 1, -1, -1):
            item = self._alerts[keys[i][1]]
            if matches(item, f):
                page.append(item)
                if len(page) > query.limit:
                    break
        if len(page) > query.limit:
            page = page[:query.limit]
            return page, encode_page_cursor(page[-1].key)
        return page, None

    def case_ids(self) -> list[str]:
        """Case ids with at least one alert held."""
        return sorted(self._by_case)

    def case_alerts(self, case_id: str) -> list[IndexedAlert]:
        """Alerts of one case, newest first."""
        items = [self._alerts[i] for i in self._by_case.get(case_id, ())]
        return sorted(items, key=lambda i: i.key, reverse=True)

    # --- live changes -------------------------------------------------------------------------

    def subscribe(self, size: int = SUBSCRIBER_QUEUE) -> Subscription:
        """Register a live consumer of changes."""
        sub = Subscription(size)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a live consumer."""
        self._subscribers.discard(sub)

    def close(self) -> None:
        """Tell every live consumer that the index is closing."""
        for sub in list(self._subscribers):
            sub.offer(None)
        self._subscribers.clear()

    def changes_since(self, positions: dict[str, int]) -> list[Change]:
        """Changes at or after the next offsets in ``positions``, in the order applied.

        Each change carries the cursor after it: ``positions`` advanced past every change
        returned before and including it. Only the latest event of each alert is held, so an
        alert changed twice since then is returned once, with its latest state.
        """
        found: list[tuple[int, ChangeKind, str, str, int]] = []
        for item in self._alerts.values():
            if item.offset >= positions.get(f"a{item.partition}", 0):
                found.append((item.seq, "alert", item.alert.id, f"a{item.partition}",
                              item.offset))
            for entry in item.audit:
                if entry.offset >= positions.get(f"u{entry.partition}", 0):
                    found.append((entry.seq, "audit", item.alert.id, f"u{entry.partition}",
                                  entry.offset))
        found.sort()
        cursor = dict(positions)
        changes = []
        for seq, kind, alert_id, key, offset in found:
            cursor[key] = max(cursor.get(key, 0), offset + 1)
            changes.append(Change(kind, alert_id, seq, dict(cursor)))
        return changes

    def items(self) -> Iterable[IndexedAlert]:
        """Every alert held, in no particular order."""
        return self._alerts.values()
