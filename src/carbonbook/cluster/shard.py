"""A shard's venue process: the command stream in, the events stream out.

:class:`ShardVenue` runs one shard ``K`` of ``N`` (see :mod:`carbonbook.cluster.routing`) around a
*host*: an :class:`~carbonbook.core.engine.Engine`, or a :class:`~carbonbook.venue.Venue` on a registry.
The command stream is the sequencer: the process reads subject ``S.cmd.K`` in stream order from
the position after its snapshot's, applies what has arrived in batches (up to ``batch``
commands per host call: one registry transaction on a venue), and publishes the events of
what it applied to ``S.evt.K`` as runs (one message each, at most
:data:`~carbonbook.cluster.wire.MESSAGE_BYTES`, id ``S.K.FIRST.LAST``), one at a time. Every
``snapshot_every`` commands, and when it stops, the leader stores its snapshot (the host's
state and the position: the stream sequence of the last command applied) in the object store,
after its events were acknowledged.

Recovery is the snapshot plus the stream from its position: the host is deterministic, so it
gives the same events again; the process publishes only those past the last event the stream
holds for the shard (read at start and at each takeover, and checked byte for byte against
the one it computes). A run it publishes again with the same bounds (a retry) is dropped by
message-id de-duplication; a run with other bounds that overlaps one the stream holds (a
leader that raced the one before it) is stored, and readers drop the events they had
(:class:`~carbonbook.cluster.wire.EventRuns`). Since each run starts right after the last
event its publisher knows the stream holds, the stream never skips one. So a process killed
at any point and started again, or a standby that takes over, gives each event exactly once.

Every process of a shard is a candidate (:class:`~carbonbook.cluster.lease.Lease`). On an
engine, all apply the same commands and keep the same ``state_hash()``; the one holding the
lease publishes and snapshots, the others keep the events the stream does not hold yet
(trimmed at each lease try), and take over when the lease is free. A venue on a registry
(``open_host``) has one writer: a standby only waits for the lease; holding it, it makes its
host (claiming the registry as its only writer, retried while the last holder's process still
has the claim), restores the snapshot and applies the stream from its position, the registry
skipping the effects it already holds (its checkpoint, as a replay into the same registry
does). A holder that loses the lease stops (:class:`LeaseLost`) before it publishes again, and
its claim ends with its process: the claim, not the lease, fences the registry, so a leader
that was paused past its lease writes at most one batch the registry's checkpoint then skips.

Costs per command: one JSON decode, the host's apply and one JSON encode per event; one
JetStream publish (a round trip) per run, so the runs grow with the load: what arrives while
one is acknowledged goes in the next batch.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from carbonbook.cluster.lease import Lease
from carbonbook.cluster.wire import (
    COMMAND_HEADER,
    MESSAGE_BYTES,
    MSG_ID,
    RUN_HEADER,
    Names,
    decode_commands,
    event_range,
    ordered_consumer,
)
from carbonbook.codec import json_encoder
from carbonbook.commands import Command, Undecodable
from carbonbook.core.snapshot import EngineState
from carbonbook.errors import CarbonbookError, RegistryInUse
from carbonbook.events import Event
from carbonbook.venue import VenueState

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.object_store import ObjectStore

__all__ = ["EventsDiverge", "Host", "LeaseLost", "ShardSnapshot", "ShardVenue"]


class EventsDiverge(CarbonbookError):
    """The events stream holds, for this shard, an event other than the one its commands give."""


class LeaseLost(CarbonbookError):
    """A shard on a registry lost its lease: the process stops so that its registry claim ends."""


class Host(Protocol):
    """What a shard runs: an :class:`~carbonbook.core.engine.Engine` or a :class:`~carbonbook.venue.Venue`."""

    def dispatch_marked(self, commands: Sequence[Command | Undecodable], starts: list[int]) -> list[Event]:
        """Apply ``commands``; mark where each one's events start."""

    def export_state(self) -> EngineState | VenueState:
        """The host's state as data."""

    def restore(self, state: Any) -> Host:  # an Engine takes an EngineState, a Venue a VenueState
        """A new host from ``state``."""

    def state_hash(self) -> str:
        """The engine's state hash."""


class ShardSnapshot(msgspec.Struct, frozen=True):
    """A shard's snapshot: ``position`` (stream sequence of the last command applied), the
    host's state (one of the two) and ``applied``, the highest command number applied per
    published log (see :meth:`ShardVenue._fresh`)."""

    shard: int
    shards: int
    position: int
    engine: EngineState | None = None
    venue: VenueState | None = None
    applied: dict[str, int] = {}


class ShardVenue:
    """Shard ``shard`` of ``shards`` of venue ``names`` on ``js``, running ``host`` (fresh; it is
    replaced by the snapshot's state when there is one), or with ``open_host`` the host it makes
    once it holds the lease (a venue claiming its registry; RegistryInUse: not yet)."""

    def __init__(self, js: JetStreamContext, names: Names, shard: int, shards: int, host: Host | None = None, *,
                 batch: int = 1000, snapshot_every: int = 10_000, lease_ttl: float = 2.0,
                 holder: str | None = None, open_host: Callable[[], Host] | None = None) -> None:
        if (host is None) == (open_host is None):
            raise ValueError("a shard runs a host, or opens one when it leads: one of the two")
        self.open_host = open_host
        self.js, self.names, self.shard, self.shards = js, names, shard, shards
        self.host: Host = host  # type: ignore[assignment]  # with open_host: made when it leads
        self.batch = batch
        self.snapshot_every = snapshot_every
        self.lease_ttl = lease_ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.position = 0  # stream sequence of the last command applied
        self.applied: dict[str, int] = {}  # log digest -> highest command number applied
        self.published = 0  # seq of the last event the stream holds for this shard
        self._last_published = b""  # its bytes, to check the recomputed one against
        self._pending: list[tuple[int, bytes, int]] = []  # (seq, JSON, command sequence), unpublished
        self._since_snapshot = 0
        self.lease: Lease | None = None
        self._store: ObjectStore | None = None
        self.commands = 0  # applied by this process
        self.ack_timeout = 5.0  # seconds to wait for a run's acknowledgement before publishing it again

    @property
    def object_name(self) -> str:
        """The snapshot's object name."""
        return f"shard-{self.shard}-of-{self.shards}"

    # -- start -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Join the lease; restore the newest snapshot (if any) and read how far the events stream
        got (with ``open_host``: once it leads, :meth:`_take_over`)."""
        await check_layout(self.js, self.names, self.shards)
        self._store = await self.js.object_store(self.names.snapshots)
        kv = await self.js.key_value(self.names.leases)
        self.lease = Lease(kv, f"shard-{self.shard}", self.holder, self.lease_ttl)
        if self.open_host is None:
            await self._restore()

    async def _take_over(self, stop: asyncio.Event) -> bool:
        """Wait for the lease, make the host and restore it (False: stopped first)."""
        assert self.lease is not None and self.open_host is not None
        while not stop.is_set():
            if await self.lease.keep():
                try:
                    self.host = self.open_host()
                except RegistryInUse:  # the last holder's process has not ended yet
                    await asyncio.sleep(0.05)
                    continue
                await self._restore()
                return True
            await asyncio.sleep(self.lease_ttl / 8)
        return False

    async def _restore(self) -> None:
        from nats.js.errors import NotFoundError, ObjectNotFoundError

        store = self._store
        assert store is not None
        try:
            data = (await store.get(self.object_name)).data
        except (ObjectNotFoundError, NotFoundError):
            data = None
        if data:
            snap = msgspec.msgpack.decode(data, type=ShardSnapshot)
            state = snap.venue if snap.venue is not None else snap.engine
            assert state is not None
            self.host = self.host.restore(state)
            self.position = snap.position
            self.applied = dict(snap.applied)
        await self._read_published()

    async def _read_published(self) -> None:
        from nats.js.errors import NotFoundError

        try:
            last = await self.js.get_last_msg(self.names.events, self.names.event_subject(self.shard))
        except NotFoundError:
            self.published, self._last_published = 0, b""
        else:
            self._last_published = (last.data or b"").rstrip(b"\n").rpartition(b"\n")[2]
            self.published = event_range((last.headers or {})[MSG_ID])[2]
        self._trim()

    def _trim(self) -> None:
        published = self.published
        pending = self._pending
        if pending and pending[0][0] <= published:
            for seq, data, _ in pending:
                if seq == published and data != self._last_published:
                    raise EventsDiverge(f"event {seq} of shard {self.shard} in {self.names.events} is not the "
                                        f"one its commands give: another log went into the stream")
            self._pending = [p for p in pending if p[0] > published]

    # -- run -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, idle_exit: float | None = None,
                  on_batch: Callable[[ShardVenue], object] | None = None) -> None:
        """Serve until ``stop`` is set (or, with ``idle_exit``, until no command came for that
        many seconds); then apply what has arrived, publish, snapshot and give the lease up."""
        if self.lease is None:
            await self.load()
        assert self.lease is not None
        if self.open_host is not None and not await self._take_over(stop):
            await self.lease.release()
            return
        sub = await ordered_consumer(self.js, self.names.command_subject(self.shard), self.names.commands,
                                     self.position + 1)
        idle = 0.0
        try:
            while not stop.is_set():
                got = await self._take(sub, 0.05)
                idle = 0.0 if got else idle + 0.05
                await self._lead()
                if on_batch is not None and got:
                    on_batch(self)
                if idle_exit is not None and idle >= idle_exit and not self._pending:
                    break
            while await self._take(sub, 0.0):
                pass
            await self._final()
        finally:
            await sub.unsubscribe()
            await self.lease.release()

    async def _final(self, tries: int = 50) -> None:
        """As leader, publish what is pending and snapshot. Retried, 0.2 s apart, while NATS is
        unreachable (a stream electing a leader) and, with events the stream does not hold, while
        the lease is not held (its own entry, not renewed while the bucket elected a leader, has
        yet to expire; or another leader has yet to publish them); give up after ``tries``
        (nothing is lost: a restart publishes the rest from the last snapshot)."""
        from nats.errors import Error as NatsError

        assert self.lease is not None
        for _ in range(tries):
            try:
                if self.lease.held() or await self.lease.keep():
                    await self._publish()
                    await self.snapshot()
                    return
                await self._read_published()
                if not self._pending:
                    return
            except (NatsError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
        raise TimeoutError(f"shard {self.shard}: NATS did not take the last events and snapshot")

    async def _take(self, sub: JetStreamContext.PushSubscription, timeout: float) -> int:
        """Apply the commands that have arrived (waiting up to ``timeout`` for the first), up to
        ``batch`` (or the run that passes it); return how many."""
        if not timeout and not sub.pending_msgs:
            return 0
        try:
            first = await sub.next_msg(timeout or None)
        except TimeoutError:  # nats-py's TimeoutError is one too
            return 0
        msgs = [first]
        count = _count(first)
        while count < self.batch and sub.pending_msgs > 0:
            msgs.append(msg := await sub.next_msg())
            count += _count(msg)
        self._apply(msgs)
        return count

    def _fresh(self, msg: Msg) -> bool:
        """Whether ``msg`` is a command not applied before. A client's command ids are
        ``DIGEST:NUMBER``, numbered in the order it publishes them; JetStream drops a repeated id
        within its duplicate window, but a retry across a stream leader change was seen stored
        twice (a 3-node cluster on nats-server 2.9), so the shard drops it too. O(1)."""
        digest, _, number = ((msg.headers or {}).get(MSG_ID) or "").rpartition(":")
        if not digest or not number.isdigit():
            return True  # not a carbonbook client's id: nothing to compare
        n = int(number)
        if n <= self.applied.get(digest, -1):
            return False
        self.applied[digest] = n
        return True

    def _apply(self, msgs: list[Msg]) -> None:
        position = msgs[-1].metadata.sequence.stream
        msgs = [m for m in msgs if self._fresh(m)]
        if not msgs:
            self.position = position
            return
        where: list[int] = []
        commands: list[Command | Undecodable] = []
        for m in msgs:
            stream_seq = m.metadata.sequence.stream
            run = decode_commands(m.data, m.headers, stream_seq)
            commands += run
            where += [stream_seq] * len(run)
        starts: list[int] = []
        events: list[Event] = []
        for i in range(0, len(commands), self.batch):  # a run may be longer than a batch
            base = len(events)
            marks: list[int] = []
            events += self.host.dispatch_marked(commands[i:i + self.batch], marks)
            starts += [base + m for m in marks] if base else marks
        starts.append(len(events))
        encode = json_encoder.encode
        pending = self._pending
        published = self.published
        for i, stream_seq in enumerate(where):
            for e in events[starts[i]:starts[i + 1]]:
                if e.seq > published:
                    pending.append((e.seq, encode(e), stream_seq))
                elif e.seq == published and encode(e) != self._last_published:
                    raise EventsDiverge(f"event {e.seq} of shard {self.shard} in {self.names.events} is not "
                                        f"the one its commands give: another log went into the stream")
        self.position = position
        self.commands += len(commands)
        self._since_snapshot += len(commands)

    async def _lead(self) -> None:
        """Keep (or seek) the lease; as leader publish, and snapshot when due; as standby trim
        what the leader published."""
        from nats.errors import Error as NatsError

        assert self.lease is not None
        was = self.lease.held()
        try:
            held = await self.lease.keep()
            if not held and self.open_host is not None:
                raise LeaseLost(f"shard {self.shard}: the lease went to another process; stopping, which ends "
                                f"this process's registry claim")
            if held:
                if not was:  # a takeover: what did the last leader publish?
                    await self._read_published()
                await self._publish()
                if self._since_snapshot >= self.snapshot_every:
                    await self.snapshot()
            elif self._pending and not was:
                await self._read_published()
        except (NatsError, TimeoutError):  # NATS unreachable for now: the events wait, under the same ids
            await asyncio.sleep(0.1)

    async def _publish(self) -> None:
        """Publish the pending events as runs, each acknowledged before the next is sent."""
        subject = self.names.event_subject(self.shard)
        pending = self._pending
        while pending:
            size = n = 0
            while n < len(pending) and (not n or size + len(pending[n][1]) < MESSAGE_BYTES):
                size += len(pending[n][1]) + 1
                n += 1
            run = pending[:n]
            data = b"\n".join([e[1] for e in run]) + b"\n"
            headers = {MSG_ID: self.names.event_id(self.shard, run[0][0], run[-1][0]),
                       COMMAND_HEADER: str(run[-1][2])}
            await self.js.publish(subject, data, timeout=self.ack_timeout, headers=headers)
            self.published, self._last_published = run[-1][0], run[-1][1]
            del pending[:n]

    async def snapshot(self) -> None:
        """Store the snapshot (only once every event up to it is published)."""
        if self._pending:
            return
        state = self.host.export_state()
        snap = ShardSnapshot(self.shard, self.shards, self.position,
                             venue=state if isinstance(state, VenueState) else None,
                             engine=state if isinstance(state, EngineState) else None,
                             applied=dict(self.applied))
        if self._store is None:
            self._store = await self.js.object_store(self.names.snapshots)
        await self._store.put(self.object_name, msgspec.msgpack.encode(snap))
        self._since_snapshot = 0


def _count(msg: Msg) -> int:
    """The number of commands in a command message."""
    headers = msg.headers
    return int(headers[RUN_HEADER]) if headers and RUN_HEADER in headers else 1


async def stored_layout(js: JetStreamContext, names: Names) -> int | None:
    """The venue's number of shards as recorded (object ``layout`` of the snapshot store), or None."""
    from nats.js.errors import NotFoundError, ObjectNotFoundError

    store = await js.object_store(names.snapshots)
    try:
        return int((await store.get("layout")).data or b"0") or None
    except (ObjectNotFoundError, NotFoundError):
        return None


async def check_layout(js: JetStreamContext, names: Names, shards: int) -> None:
    """Record the venue's number of shards on first use; refuse another one afterwards (its
    commands were routed for that many)."""
    stored = await stored_layout(js, names)
    if stored is None:
        await (await js.object_store(names.snapshots)).put("layout", str(shards).encode())
    elif stored != shards:
        raise CarbonbookError(f"venue {names.commands} has {stored} shards, not {shards}: its commands were "
                              f"routed for {stored}")
