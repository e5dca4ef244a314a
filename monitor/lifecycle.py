"""Alert lifecycle: provisional, confirmed or retracted alerts, reorg moves and aggregation.

A pure state machine per chain. The screening agent keeps one :class:`LifecycleState` per
chain in a plain Faust table (keyed by chain name, value :func:`encode_state` bytes) and calls
:func:`on_block` for every canonical block (with the candidate alerts screening produced for
it) and :func:`on_revert` for every ``revert`` event, in topic order, then stores the new
state and publishes the returned events (key = alert id). No wall clock is read: depth comes
from block numbers and the ``head`` the connector saw, cooldowns from block time.

Semantics, in short:

- An alert in a block shallower than ``confirm_depth`` (``head - number < confirm_depth``) is
  emitted ``provisional``; when a later block shows it ``confirm_depth`` deep it is emitted
  again as ``confirmed`` with the same id. With ``confirm_depth == 0`` it is confirmed at once.
- A ``revert`` of a block emits ``retracted`` (same id) for every alert anchored in it. If the
  same transfer reappears in a new canonical block it is emitted again under the same id with
  the new block's number and hash and ``moved_from`` = the orphaned block's hash; it is
  confirmed once, from its new block. A revert of an already confirmed alert (deeper than
  ``confirm_depth``) still emits ``retracted`` and logs an error; once a confirmed alert has
  been dropped from the state a deep revert can only be logged.
- Within ``cooldown_seconds`` of block time after an alert (inclusive), further alerts for the
  same rule, watched address and case are folded into it: one update (same id) with ``count``
  and ``aggregated_transfer_ids``. A folded transfer reorged out is removed again (an update
  with a lower count). ``status`` describes the alert's own (first) transfer; transfers folded
  in later mature on their own and are only reported again if they are reorged out.
- Every emitted event carries ``revision`` (0, 1, 2, ... per alert id): deliver each
  ``(id, revision)`` once (:func:`delivery_key`).
- Idempotent: every call takes the ``position`` of its event in the chain's block topic (the
  Kafka offset; one partition per chain). An event at or below the last applied position is
  a replay and changes nothing, emits nothing, so ``count`` is never counted twice.
- Bounded: alerts leave the state once confirmed and out of their cooldown window, or once
  retracted; beyond ``max_members`` held transfers the oldest alerts are evicted (logged and
  counted in ``evicted``), and the memory of retracted ids lasts ``retain_blocks`` blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import msgspec

from monitor.records import Alert, AlertStatus, Block

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """How one chain's alerts mature and aggregate, and how much state may be held."""

    confirm_depth: int = 12
    cooldown_seconds: int = 0  # 0 = no aggregation
    rule_cooldowns: Mapping[str, int] = field(default_factory=dict)  # per rule override
    max_members: int = 500  # transfers held across all alerts of the chain (table value size)
    max_group_size: int = 200  # transfers folded into one alert before a new one starts
    retain_blocks: int = 256  # how long a retracted id is remembered (moves, revisions)
    max_retired: int = 1_000

    def cooldown(self, rule: str) -> int:
        """Aggregation window of ``rule`` in seconds of block time."""
        return self.rule_cooldowns.get(rule, self.cooldown_seconds)


class Member(msgspec.Struct, frozen=True, array_like=True):
    """One transfer held in an alert: its own alert id, its block, and whether it is deep."""

    alert_id: str
    transfer_id: str
    block_number: int
    block_hash: str
    block_time: int
    confirmed: bool = False


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """One alert held by the lifecycle, with the transfers aggregated into it (anchor first)."""

    key: str  # aggregation key: rule, watched address and case (or the alert id)
    alert: Alert  # the anchor's alert as screened; lifecycle fields are stamped on emission
    members: tuple[Member, ...]
    status: AlertStatus = "provisional"
    revision: int = -1  # last emitted revision
    window_end: int = -1  # block time up to which (inclusive) alerts fold in; -1 = never
    moved_from: str | None = None


class Retired(msgspec.Struct, frozen=True, array_like=True):
    """A transfer reorged out: the orphaned block and the last revision emitted for its id."""

    block_hash: str
    block_number: int
    revision: int  # -1 when its id was never emitted (it was folded into another alert)


class LifecycleState(msgspec.Struct, kw_only=True):
    """One chain's lifecycle state: the value of the ``lifecycle`` table, keyed by chain."""

    # The offset of the last applied event in the chain's block topic. Events are applied in
    # topic order: the screening agent screens only an event that follows the tip (and reads
    # the topic again otherwise), so every offset up to ``position`` was applied or is not an
    # event (Kafka's transaction markers take offsets too). ``ahead`` is read for states
    # written by earlier versions (out-of-order positions above the mark) and never written.
    position: int = -1
    ahead: tuple[int, ...] = ()
    tip_number: int = -1
    tip_hash: str = ""
    head: int = 0
    block_time: int = 0  # block time of the latest applied block
    groups: dict[str, Group] = msgspec.field(default_factory=dict)  # anchor alert id -> group
    retired: dict[str, Retired] = msgspec.field(default_factory=dict)  # alert id -> memory
    evicted: int = 0  # alerts dropped by the size cap before they were settled


class LifecycleInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The lifecycle fields of an emitted alert (see :data:`LIFECYCLE_FIELDS`)."""

    revision: int = 0
    count: int = 1
    aggregated_transfer_ids: tuple[str, ...] = ()
    first_block: int | None = None
    last_block: int | None = None
    moved_from: str | None = None


LIFECYCLE_FIELDS = tuple(LifecycleInfo.__struct_fields__)
"""Fields the lifecycle sets on every event it emits."""

_STATE_DECODER = msgspec.json.Decoder(LifecycleState)
_ENCODER = msgspec.json.Encoder()


def is_applied(state: LifecycleState, position: int) -> bool:
    """Whether the event at ``position`` was applied already (a replay)."""
    return position <= state.position or position in state.ahead


def applied_through(state: LifecycleState, position: int) -> tuple[int, tuple[int, ...]]:
    """The last applied position and the (legacy) positions above it once ``position`` is.

    Offsets in a topic written in transactions are not contiguous (each commit marker takes
    one), so the mark is the highest applied offset, not the end of a contiguous run.
    """
    mark = max(position, state.position)
    return mark, tuple(p for p in state.ahead if p > mark)


def mark_applied(state: LifecycleState, position: int) -> LifecycleState:
    """The same state with ``position`` applied (for events set aside as dead letters)."""
    mark, ahead = applied_through(state, position)
    return msgspec.structs.replace(state, position=mark, ahead=ahead)


def encode_state(state: LifecycleState) -> bytes:
    """Serialize a chain's state for the Faust table."""
    return _ENCODER.encode(state)


def decode_state(raw: bytes | None) -> LifecycleState:
    """Deserialize a chain's state; ``None`` (no entry yet) gives the empty state."""
    return LifecycleState() if raw is None else _STATE_DECODER.decode(raw)


def lifecycle_of(alert: Alert) -> LifecycleInfo:
    """Read the lifecycle fields of an emitted alert."""
    return LifecycleInfo(**{name: getattr(alert, name) for name in LIFECYCLE_FIELDS})


def delivery_key(alert: Alert) -> str:
    """Dedup key of one event of an alert: ``<id>:<revision>:<status>``, delivered once each."""
    return f"{alert.id}:{lifecycle_of(alert).revision}:{alert.status}"


def aggregation_key(alert: Alert, policy: LifecyclePolicy) -> str:
    """Alerts with the same key within the cooldown fold into one; the id when disabled."""
    if policy.cooldown(alert.rule) <= 0:
        return alert.id
    watch = alert.watch
    return f"{alert.rule}|{watch.chain}|{watch.address}|{watch.case_id}"


def _stamp(alert: Alert, info: LifecycleInfo) -> Alert:
    return msgspec.structs.replace(alert, **msgspec.structs.asdict(info))


def _event(group: Group, head: int) -> Alert:
    """The event announcing ``group`` as it stands (status, revision, members)."""
    members = group.members
    depth = 0 if group.status == "retracted" else max(0, head - group.alert.block_number)
    many = len(members) > 1
    info = LifecycleInfo(
        revision=group.revision, count=len(members),
        aggregated_transfer_ids=tuple(m.transfer_id for m in members) if many else (),
        first_block=members[0].block_number if many else None,
        last_block=max(m.block_number for m in members) if many else None,
        moved_from=group.moved_from)
    base = msgspec.structs.replace(group.alert, status=group.status, confirmations=depth)
    return _stamp(base, info)


def _emit(groups: dict[str, Group], changed: Iterable[str], head: int,
          out: list[Alert]) -> None:
    for gid in changed:
        group = groups.get(gid)
        if group is None:
            continue
        group = msgspec.structs.replace(group, revision=group.revision + 1)
        groups[gid] = group
        out.append(_event(group, head))


def on_block(state: LifecycleState, block: Block, alerts: Iterable[Alert],
             policy: LifecyclePolicy, *, position: int) -> tuple[LifecycleState, list[Alert]]:
    """Apply a canonical block and its candidate alerts; return the new state and events.

    ``alerts`` are what screening produced for ``block`` (their status is ignored). Events
    come out in a deterministic order: alerts that matured or grew first (oldest first), then
    the block's new alerts; one event per alert and call.
    """
    if block.kind != "block":
        raise ValueError(f"on_block needs a block event, got kind={block.kind!r}")
    if is_applied(state, position):
        return state, []
    if 0 <= block.number <= state.tip_number:
        log.warning("block %s %s on %s does not extend the tip %s without a revert first",
                    block.number, block.hash, block.chain, state.tip_number)
    groups = dict(state.groups)
    retired = dict(state.retired)
    head = max(block.head, block.number)
    changed: dict[str, None] = {}
    held = {m.alert_id for g in groups.values() for m in g.members}
    open_by_key = {g.key: gid for gid, g in groups.items()
                   if g.window_end >= block.timestamp and g.status != "retracted"
                   and len(g.members) < policy.max_group_size}

    for alert in alerts:
        if alert.id in held:
            log.warning("alert %s already held for transfer %s; ignored in block %s %s",
                        alert.id, alert.transfer_id, block.number, block.hash)
            continue
        held.add(alert.id)
        member = Member(alert.id, alert.transfer_id, block.number, block.hash, block.timestamp)
        key = aggregation_key(alert, policy)
        gid = open_by_key.get(key)
        if gid is not None:
            group = groups[gid]
            group = msgspec.structs.replace(group, members=(*group.members, member))
            groups[gid] = group
            changed[gid] = None
            if len(group.members) >= policy.max_group_size:
                del open_by_key[key]
            continue
        prior = retired.pop(alert.id, None)
        cooldown = policy.cooldown(alert.rule)
        groups[alert.id] = Group(
            key=key, alert=alert, members=(member,),
            revision=prior.revision if prior is not None else -1,
            window_end=block.timestamp + cooldown if cooldown > 0 else -1,
            moved_from=prior.block_hash if prior and prior.block_hash != block.hash else None)
        changed[alert.id] = None
        if cooldown > 0 and policy.max_group_size > 1:
            open_by_key[key] = alert.id

    deep_until = head - policy.confirm_depth
    for gid, group in list(groups.items()):
        if all(m.confirmed or m.block_number > deep_until for m in group.members):
            continue
        members = tuple(m if m.confirmed or m.block_number > deep_until
                        else msgspec.structs.replace(m, confirmed=True) for m in group.members)
        group = msgspec.structs.replace(group, members=members)
        if members[0].confirmed and group.status == "provisional":
            group = msgspec.structs.replace(group, status="confirmed")
            changed[gid] = None
        groups[gid] = group

    ordered = [gid for gid in groups if gid in changed]  # creation order
    events: list[Alert] = []
    _emit(groups, ordered, head, events)

    for gid, group in list(groups.items()):
        if group.window_end < block.timestamp and all(m.confirmed for m in group.members):
            del groups[gid]  # settled: deep and no longer aggregating
    evicted = _enforce_caps(groups, retired, block.number, policy)
    mark, ahead = applied_through(state, position)
    new_state = LifecycleState(
        position=mark, ahead=ahead, tip_number=block.number, tip_hash=block.hash, head=head,
        block_time=block.timestamp, groups=groups, retired=retired,
        evicted=state.evicted + evicted)
    return new_state, events


def on_revert(state: LifecycleState, revert: Block, policy: LifecyclePolicy, *,
              position: int) -> tuple[LifecycleState, list[Alert]]:
    """Apply a ``revert`` event: retract the alerts anchored in the orphaned block.

    Transfers of the block that were folded into an older alert are removed from it (an update
    with a lower count). A block without held alerts, or a replay, emits nothing.
    """
    if revert.kind != "revert":
        raise ValueError(f"on_revert needs a revert event, got kind={revert.kind!r}")
    if is_applied(state, position):
        return state, []
    groups = dict(state.groups)
    retired = dict(state.retired)
    changed: list[str] = []
    events: list[Alert] = []
    for gid, group in list(groups.items()):
        gone = [m for m in group.members if m.block_hash == revert.hash]
        if not gone:
            continue
        if any(m.confirmed for m in gone):
            log.error("block %s %s on %s was reorged out although %d deep: retracting "
                      "confirmed alert %s", revert.number, revert.hash, revert.chain,
                      state.head - revert.number, gid)
        for m in gone:
            before = retired.get(m.alert_id)
            retired[m.alert_id] = Retired(revert.hash, revert.number,
                                          before.revision if before is not None else -1)
        keep = tuple(m for m in group.members if m.block_hash != revert.hash)
        if group.members[0].block_hash != revert.hash:
            groups[gid] = msgspec.structs.replace(group, members=keep)
            changed.append(gid)
            continue
        if keep:  # cannot happen when reverts come newest first, as the connector sends them
            log.error("revert of %s %s out of order: transfers %s of alert %s dropped",
                      revert.number, revert.hash, [m.transfer_id for m in keep], gid)
        group = msgspec.structs.replace(group, status="retracted", revision=group.revision + 1)
        events.append(_event(group, state.head))
        retired[gid] = Retired(revert.hash, revert.number, group.revision)
        del groups[gid]
    _emit(groups, changed, state.head, events)
    tip_number, tip_hash = state.tip_number, state.tip_hash
    if revert.number <= tip_number:
        tip_number, tip_hash = revert.number - 1, revert.parent_hash
    evicted = _enforce_caps(groups, retired, tip_number, policy)
    mark, ahead = applied_through(state, position)
    new_state = LifecycleState(
        position=mark, ahead=ahead, tip_number=tip_number, tip_hash=tip_hash, head=state.head,
        block_time=state.block_time, groups=groups, retired=retired,
        evicted=state.evicted + evicted)
    return new_state, events


def _enforce_caps(groups: dict[str, Group], retired: dict[str, Retired], number: int,
                  policy: LifecyclePolicy) -> int:
    """Trim the state to its caps in place; return how many unsettled alerts were evicted."""
    evicted = 0
    total = sum(len(g.members) for g in groups.values())
    while total > policy.max_members and groups:
        gid = next(iter(groups))  # oldest first
        group = groups.pop(gid)
        total -= len(group.members)
        evicted += 1
        anchor = group.members[0]  # remember its revision, so its next event counts on
        retired[gid] = Retired(anchor.block_hash, anchor.block_number, group.revision)
        log.error("lifecycle state full (%d transfers): alert %s (%s) evicted unsettled",
                  policy.max_members, gid, group.status)
    horizon = number - policy.retain_blocks
    for aid in [aid for aid, r in retired.items() if r.block_number < horizon]:
        del retired[aid]
    while len(retired) > policy.max_retired:
        del retired[next(iter(retired))]
    return evicted
