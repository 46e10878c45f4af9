"""What a sharded venue keeps in NATS JetStream, and how a command travels.

For a venue named ``S`` (the ``--stream``, default ``CARBONBOOK``):

- stream ``S`` holds the commands, subject ``S.cmd.K`` for shard ``K``; a message is one
  command as JSON (an undecodable record as ``{"type": "undecodable", "line", "detail", "id"}``,
  so it is refused ``malformed`` with its line, as a replay refuses it) or, with the header
  ``Carbonbook-Commands: N``, a run of ``N`` commands as JSON Lines, applied in their order; the
  header ``Nats-Msg-Id`` makes a client's retry a duplicate (de-duplicated within the stream's
  window, one hour here);
- stream ``S_EVENTS`` holds the events, subject ``S.evt.K``: one message per published run of
  a shard's events ``FIRST..LAST`` (their JSON Lines, byte for byte a replay's lines, at most
  :data:`MESSAGE_BYTES` a message), message id ``S.K.FIRST.LAST``; header ``Carbonbook-Command``
  is the stream ``S`` sequence of the command of its last event. A shard publishes its runs
  one at a time, each from the event after the last one it knows the stream holds, so the
  stream never skips an event of a shard but may hold one twice (a restarted or new leader's
  runs can start inside one the old leader published, under another id);
  :class:`EventRuns` gives each event once;
- object store ``S_SNAPSHOTS`` holds each shard's newest snapshot (object ``shard-K-of-N``)
  and the venue's layout (object ``layout``: the number of shards);
- key-value bucket ``S_LEASES`` holds each shard's leadership lease (key ``shard-K``, its TTL
  the bucket's).

The streams keep everything (no limits) on file storage with ``replicas`` copies. What JetStream
acknowledges is on disk only as the server's ``sync_interval`` says (see the README).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from carbonbook.commands import Command, Undecodable, names_fault
from carbonbook.errors import CarbonbookError

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["COMMAND_HEADER", "MESSAGE_BYTES", "MSG_ID", "RUN_HEADER", "EventRuns", "MissingEvents", "Names",
           "decode_command", "decode_commands", "encode_command", "ensure", "event_range", "ordered_consumer"]

MSG_ID = "Nats-Msg-Id"
RUN_HEADER = "Carbonbook-Commands"
COMMAND_HEADER = "Carbonbook-Command"
COMMAND_DEDUP_WINDOW = 3600.0
"""Seconds within which a command published again with the same message id is a duplicate."""
MESSAGE_BYTES = 256 * 1024
"""The most event bytes a shard puts in one events message (NATS refuses more than 1 MiB by default)."""


class MissingEvents(CarbonbookError):
    """The events stream skips events of a shard (it holds other messages than a shard publishes)."""


class _Undecodable(msgspec.Struct, tag_field="type", tag="undecodable", frozen=True):
    """An undecodable record on the wire."""

    line: int
    detail: str
    id: int | None = None


_decoder: msgspec.json.Decoder[Command | _Undecodable] = msgspec.json.Decoder(Command | _Undecodable)


def encode_command(command: Command | Undecodable) -> bytes:
    """A command's message payload."""
    if isinstance(command, Undecodable):
        return msgspec.json.encode(_Undecodable(command.line, command.detail, command.id))
    return msgspec.json.encode(command)


def decode_command(data: bytes, where: int) -> Command | Undecodable:
    """The command of a payload; one that does not decode (a client that did not use
    :func:`encode_command`) is an :class:`Undecodable` with ``where`` (its stream sequence) as line."""
    try:
        command = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Undecodable(where, f"not a command: {exc}")
    if isinstance(command, _Undecodable):
        return Undecodable(command.line, command.detail, command.id)
    fault = names_fault(command)
    return command if fault is None else Undecodable(where, fault, getattr(command, "id", None))


def decode_commands(data: bytes, headers: dict[str, str] | None, where: int) -> list[Command | Undecodable]:
    """The commands of a message: one, or a run's (header ``Carbonbook-Commands``)."""
    if headers is None or RUN_HEADER not in headers:
        return [decode_command(data, where)]
    return [decode_command(line, where) for line in data.split(b"\n") if line]


class Names:
    """The JetStream names of venue ``stream`` (see the module docstring)."""

    def __init__(self, stream: str = "CARBONBOOK") -> None:
        if not stream or not all(c.isalnum() or c in "_-" for c in stream):
            raise ValueError(f"a stream name is letters, digits, '_' and '-', not {stream!r}")
        self.commands = stream
        self.events = f"{stream}_EVENTS"
        self.snapshots = f"{stream}_SNAPSHOTS"
        self.leases = f"{stream}_LEASES"
        self._prefix = stream

    def command_subject(self, shard: int) -> str:
        """The subject of shard ``shard``'s commands."""
        return f"{self._prefix}.cmd.{shard}"

    def event_subject(self, shard: int | None = None) -> str:
        """The subject of shard ``shard``'s events (None: every shard's)."""
        return f"{self._prefix}.evt.{'*' if shard is None else shard}"

    def event_id(self, shard: int, first: int, last: int) -> str:
        """The message id of shard ``shard``'s events ``first`` to ``last``."""
        return f"{self._prefix}.{shard}.{first}.{last}"


def event_range(msg_id: str) -> tuple[int, int, int]:
    """``(shard, first, last)`` of the events message of id ``msg_id``."""
    _, shard, first, last = msg_id.split(".")
    return int(shard), int(first), int(last)


class EventRuns:
    """Each shard's events once and in order, from the events messages in stream order: a
    message's events up to the last one already taken of its shard are dropped. O(1) per
    message, plus a split of its lines when it overlaps."""

    def __init__(self) -> None:
        self.taken: dict[int, int] = {}  # shard -> seq of its last event taken

    def take(self, msg: Msg) -> tuple[int, bytes]:
        """``(shard, the JSON Lines of msg's events not taken before)`` (``b""``: none);
        MissingEvents when the message starts past the event after the shard's last."""
        shard, first, last = event_range((msg.headers or {})[MSG_ID])
        taken = self.taken.get(shard, 0)
        if last <= taken:
            return shard, b""
        if first > taken + 1:
            raise MissingEvents(f"shard {shard}: events {taken + 1} to {first - 1} are not in the stream "
                                f"before message {msg.metadata.sequence.stream}")
        self.taken[shard] = last
        data = msg.data
        return shard, data if first == taken + 1 else data.split(b"\n", taken + 1 - first)[-1]


async def ordered_consumer(js: JetStreamContext, subject: str, stream: str, start: int = 1,
                 tries: int = 20) -> JetStreamContext.PushSubscription:
    """An ordered consumer of ``subject`` in ``stream`` from stream sequence ``start`` (it survives
    reconnections and leader changes by itself). Creating it is retried while the stream has no
    leader (a node just lost): up to ``tries`` times, half a second apart."""
    import asyncio

    from nats.errors import Error as NatsError
    from nats.js.api import ConsumerConfig, DeliverPolicy

    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
    for attempt in range(tries):
        try:
            return await js.subscribe(subject, stream=stream, ordered_consumer=True, config=config)
        except (NatsError, TimeoutError):
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def ensure(js: JetStreamContext, names: Names, replicas: int = 1, lease_ttl: float = 2.0) -> None:
    """Create the venue's streams, object store and lease bucket unless they exist (an existing one
    is left as it is)."""
    from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    for name, subjects, window in ((names.commands, [f"{names.commands}.cmd.*"], COMMAND_DEDUP_WINDOW),
                                   (names.events, [names.event_subject()], 120.0)):
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=name, subjects=subjects, storage=StorageType.FILE,
                                             num_replicas=replicas, duplicate_window=window))
    try:
        await js.object_store(names.snapshots)
    except NotFoundError:
        await js.create_object_store(names.snapshots, ObjectStoreConfig(replicas=replicas,
                                                              storage=StorageType.FILE))
    try:
        await js.key_value(names.leases)
    except NotFoundError:
        await js.create_key_value(KeyValueConfig(bucket=names.leases, ttl=lease_ttl, replicas=replicas,
                                                 storage=StorageType.FILE))
