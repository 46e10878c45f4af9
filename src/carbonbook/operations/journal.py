"""The journal: every command an engine applied, on disk, and recovery from it.

A :class:`Journal` wraps an :class:`~carbonbook.core.engine.Engine`: its ``apply`` and
``apply_all`` apply commands as the engine's do, write them to an append-only file,
and only then hand the events to the engine's subscribers, so nothing downstream
sees an event whose command is not in the journal. An engine with no journal attached
runs exactly as before: the journal is a wrapper, not a hook in the engine's hot path.

What is journaled
    Every command applied (registry commands included), accepted or rejected, and every
    :class:`Undecodable` record (and, for a plain engine, any other object, which the engine
    answers with a ``malformed`` rejection): each takes at least one ``seq``, so replaying
    the journal gives the same sequence and the same events. A record carries its command's
    ``seq``, the number of its first event (every command has at least one), which recovery
    checks against the engine as it replays.

File format (``journal.cbj`` in the journal directory)
    The file starts with the 8 bytes ``CBJRNL01`` (``CBJVEN01`` for a venue's). Then records, each::

        <I length> <I body_crc> <I head_crc>   little-endian; head_crc = CRC-32 of the first 8 bytes
        body: <Q seq> payload                   length bytes; body_crc = CRC-32 of the body

    The payload is the command as one MessagePack map of the order log (``type`` and the
    command's fields; an ``Undecodable`` record is ``{"type": "undecodable", "line", "detail",
    "id"}``, anything else ``{"type": "not_a_command", "detail": repr}``). A hand-built
    command's value that MessagePack cannot hold (an integer outside -2**63 .. 2**64-1)
    is written as extension type 1 holding its decimal digits, and values the order log
    would refuse are kept as they were, so the engine sees the same command again.

Reading
    A record that runs past the end of the file (the writer was killed mid-write), or whose
    body checksum fails while it ends exactly at the end of the file (a torn write after a
    power loss), or a tail of zero bytes, is *torn*: it is dropped with a
    :class:`~carbonbook.errors.TornRecordWarning`, and the file is truncated there before
    new records are appended. A damaged header, or a body checksum that fails with more
    records after it, is corruption: :class:`~carbonbook.errors.JournalCorrupted` names the
    byte offset and recovery stops.

Flushing
    Each ``apply`` or ``apply_all`` call is one batch, written with one ``write``. The
    :class:`FsyncPolicy` says when ``fsync`` follows: never (the OS decides), after every
    batch, or once at least N bytes or N records were written since the last one.
    A snapshot always fsyncs the journal first, so a snapshot never covers records that
    are not durable.

Snapshots and recovery
    ``Journal.snapshot()`` writes ``snapshot-<records>.cbs`` (see :mod:`carbonbook.core.snapshot`):
    the engine state after the first ``records`` commands, and the byte offset where they
    end. :func:`recover` loads the latest valid snapshot whose offset lies within the
    journal (skipping damaged ones with a warning), then replays the journal from that
    offset. The result has the same state hash as an engine that applied the same
    commands without interruption, and gives the same events from then on.

Journaling a venue
    A :class:`~carbonbook.venue.Venue` is journaled like an engine, its registry commands
    included: ``Journal.open(directory, engine=venue)`` for a new directory, and
    ``Journal.open(directory, venue=lambda: Venue(registry, currency=..., lag=...))`` (or
    :func:`recover` with the same ``venue``) afterwards, with the registry the commands went
    into and the settings they ran with; either kind of journal refuses to be opened as the
    other (:class:`~carbonbook.errors.JournalMismatch`). Its snapshots hold the venue's state
    (:class:`VenueSnapshotFile`, magic ``CBSNPV01``), never the registry's. The journal is
    written ahead of the registry: each batch is written (and fsynced as the policy says)
    inside the venue's registry transaction, after the venue applied it and before the
    registry commits, so the registry never holds a command the journal lacks. A crash, or a
    failed commit, leaves the journal at or ahead of the registry; recovery replays what the
    registry holds without touching it and carries out the rest (see "Atomicity and replay" in
    :mod:`carbonbook.venue`). A snapshot the registry has not reached (a new memory registry)
    is passed over for an older one, or the journal's start, and the registry is rebuilt. A
    registry ahead of the journal (records lost to a power loss without fsync) is refused.

Command line
    ``carbonbook journal LOG DIR`` replays an order log through a journaled engine, resuming
    after the commands DIR already holds; ``carbonbook recover DIR`` prints what recovery
    finds (:mod:`carbonbook.operations.cli`; ``python -m carbonbook.operations.journal
    replay|recover`` runs the same).
"""

from __future__ import annotations

import os
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal, Protocol, get_args

import msgspec

from carbonbook._types import OffsetLimit, OrderType, Phase, SelfTradePrevention, Side, TimeInForce, UnitType
from carbonbook.auction import CapRule, CostContainmentReserve, TieRule
from carbonbook.codec import command_batches
from carbonbook.commands import Command, Undecodable
from carbonbook.core.engine import Engine
from carbonbook.core.snapshot import MAGIC as SNAPSHOT_MAGIC
from carbonbook.core.snapshot import EngineState, SnapshotFile, decode_file, fsync_dir, write_snapshot
from carbonbook.errors import (
    JournalCorrupted,
    JournalMismatch,
    SnapshotError,
    TornRecordWarning,
)
from carbonbook.events import Event
from carbonbook.venue import LogMismatch, Venue, VenueState

MAGIC = b"CBJRNL01"
VENUE_MAGIC = b"CBJVEN01"
"""The first bytes of a venue's journal (:data:`MAGIC` starts a plain engine's); the records are alike."""
VENUE_SNAPSHOT_MAGIC = b"CBSNPV01"
"""The first bytes of a venue's snapshot file (see :mod:`carbonbook.core.snapshot` for the frame)."""
JOURNAL_NAME = "journal.cbj"
_HEAD = struct.Struct("<II")
_HEAD_CRC = struct.Struct("<I")
_SEQ = struct.Struct("<Q")
HEADER_SIZE = _HEAD.size + _HEAD_CRC.size
"""Bytes before each record's body."""
MAX_RECORD = 1 << 24
"""The largest body a record may declare (16 MiB); a larger length is a damaged header."""
_BIGINT = 1  # MessagePack extension type of an integer MessagePack cannot hold
_REPLAY_BATCH = 4096

Applied = Command | Undecodable | object
"""What a journal accepts: what ``Engine.apply_all`` accepts."""


class Applier(Protocol):
    """What a journal wraps: anything that applies commands in marked batches and exports its
    state (an :class:`~carbonbook.core.engine.Engine`, a :class:`~carbonbook.venue.Venue`)."""

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next event will take."""

    def dispatch_marked(self, commands: Sequence[Command | Undecodable], starts: list[int]) -> list[Event]:
        """Apply ``commands`` without publishing; append each one's first event's index to ``starts``."""

    def publish(self, events: list[Event]) -> None:
        """Hand ``events`` to the subscribers."""

    def state_hash(self) -> str:
        """A hash of the state, equal for equal states."""

    def export_state(self) -> EngineState | VenueState:
        """The whole state as data (what a snapshot holds; its type says which kind of journal)."""

    def restore(self, state: Any) -> Applier:
        """A new applier like this one from ``state`` (LogMismatch if its store is behind it)."""

    def transaction(self) -> AbstractContextManager[None]:
        """What a batch is written in, before it commits (write-ahead)."""

    def store_ahead(self) -> int:
        """Events its store holds past it (0: none)."""


@dataclass(frozen=True)
class _Format:
    """What the state an applier exports says about its journal's files."""

    magic: bytes
    snapshot_magic: bytes
    snapshot: type[SnapshotFile] | type[VenueSnapshotFile]
    records: frozenset[type] | None  # the classes its batches may hold (None: any object)


def _format(applier: Applier) -> _Format:
    """The journal format of ``applier``, by the type of the state it exports: O(its state), so
    it is asked of a new applier (or of one about to be snapshotted anyway)."""
    return _FORMATS[type(applier.export_state())]


# -- payloads ---------------------------------------------------------------------------


class UndecodableRecord(msgspec.Struct, tag_field="type", tag="undecodable", frozen=True):
    """The journal's form of an :class:`Undecodable` record."""

    line: int
    detail: str
    id: int | None = None


class OpaqueRecord(msgspec.Struct, tag_field="type", tag="not_a_command", frozen=True):
    """The journal's form of an object that is not a command: ``detail`` is its ``repr``."""

    detail: str


class _Opaque:
    """Stands in for a journaled non-command: the engine rejects it with the same detail."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_COMMAND_CLASSES: frozenset[type[msgspec.Struct]] = frozenset(get_args(Command))
"""Every command of the order log, the registry's included."""
_COMMANDS: dict[str, type[Any]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in _COMMAND_CLASSES | {UndecodableRecord, OpaqueRecord}
}
_ENUM_FIELDS: dict[str, Any] = {
    "side": Side, "order_type": OrderType, "tif": TimeInForce, "stp": SelfTradePrevention,
    "unit": UnitType, "phase": Phase, "tie_rule": TieRule, "cap_rule": CapRule,
}
_SET_FIELDS = frozenset(("allowances", "credits", "units", "phases", "links", "phase_banking"))
"""Fields that hold frozensets of unit types, periods or names (``phase_banking`` when not a bool)."""
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Command | UndecodableRecord | OpaqueRecord)


def _wide(value: object) -> object:
    if isinstance(value, int) and value.__class__ is int and not -(2**63) <= value < 2**64:
        return msgspec.msgpack.Ext(_BIGINT, str(value).encode())
    if isinstance(value, CostContainmentReserve):  # nested in an auction command
        return {f: _wide(getattr(value, f)) for f in value.__struct_fields__}
    return value


def encode_command(command: Applied) -> bytes:
    """The MessagePack payload of one journaled command (see the module docstring)."""
    record: msgspec.Struct
    if isinstance(command, msgspec.Struct) and command.__class__ in _COMMAND_CLASSES:
        record = command
    elif isinstance(command, Undecodable) and command.__class__ is Undecodable:
        record = UndecodableRecord(command.line, command.detail, command.id)
    else:
        record = OpaqueRecord(repr(command))
    try:
        return _encoder.encode(record)
    except OverflowError:
        raw: dict[str, object] = {"type": record.__struct_config__.tag}
        raw.update((f, _wide(getattr(record, f))) for f in record.__struct_fields__)
        return _encoder.encode(raw)


def _ext(code: int, data: memoryview) -> object:
    if code == _BIGINT:
        return int(bytes(data).decode())
    return msgspec.msgpack.Ext(code, bytes(data))


def _member(enum: Any, value: object) -> object:
    """``value`` as a member of ``enum`` when it names one, else as it is."""
    if value.__class__ is str and value in enum._value2member_map_:
        return enum(value)
    return value


def _revive(obj: object) -> Command | Undecodable | _Opaque:
    if isinstance(obj, UndecodableRecord):
        return Undecodable(obj.line, obj.detail, obj.id)
    if isinstance(obj, OpaqueRecord):
        return _Opaque(obj.detail)
    return obj  # type: ignore[return-value]


def decode_command(payload: bytes | memoryview) -> Command | Undecodable | object:
    """The command a payload holds, equal to the one :func:`encode_command` was given.

    Valid commands decode with the order log's own validating decoder; a hand-built
    command with values the order log refuses is rebuilt field by field, enum fields
    becoming enum members when they name one and the array of a set field a frozenset.
    Raises ``msgspec.DecodeError`` or ``ValueError`` for a payload that is not a journaled command.
    """
    try:
        return _revive(_decoder.decode(payload))
    except msgspec.ValidationError:
        pass
    raw = msgspec.msgpack.decode(payload, ext_hook=_ext)
    if not isinstance(raw, dict) or raw.get("type") not in _COMMANDS:
        raise ValueError(f"not a journaled command: {raw!r}")
    cls = _COMMANDS[raw.pop("type")]
    kwargs = {}
    for name, value in raw.items():
        enum = _ENUM_FIELDS.get(name)
        if enum is not None:
            value = _member(enum, value)
        elif name in _SET_FIELDS and isinstance(value, list):
            members = [_member(UnitType, v) for v in value]
            try:
                value = frozenset(members)
            except TypeError:  # unhashable items: it was never a set
                value = members
        elif name == "ccr" and isinstance(value, dict):  # a hand-built auction's reserve
            value = CostContainmentReserve(**value)
        elif name == "offset_limits" and isinstance(value, list):  # a hand-built scheme's offset table
            value = tuple(OffsetLimit(**row) if isinstance(row, dict) else row for row in value)
        elif name == "base" and isinstance(value, list):  # a hand-built allocation's base years
            value = tuple(value)
        elif name == "control_periods" and isinstance(value, list):  # a hand-built scheme's (first, last)s
            value = tuple(tuple(span) if isinstance(span, list) else span for span in value)
        kwargs[name] = value
    return _revive(cls(**kwargs))


def frame(seq: int, payload: bytes) -> bytes:
    """One journal record: header, then ``seq`` and the payload."""
    body = _SEQ.pack(seq) + payload
    head = _HEAD.pack(len(body), zlib.crc32(body))
    return head + _HEAD_CRC.pack(zlib.crc32(head)) + body


# -- reading ----------------------------------------------------------------------------


class Entry(msgspec.Struct, frozen=True):
    """One record read back: its byte ``offset`` in the file, its ``seq`` and its command."""

    offset: int
    seq: int
    command: Any


@dataclass
class Scan:
    """What reading a journal from an offset found: the records, and where the valid part ends."""

    entries: list[Entry]
    end: int
    """Offset just past the last whole record (where the next record goes)."""
    torn: int = 0
    """Bytes dropped after ``end`` (a torn last record), 0 when none."""


def scan(data: bytes | memoryview, start: int, path: str = JOURNAL_NAME) -> Scan:
    """Read the records of a journal's bytes ``data`` from ``start`` (a record boundary).

    A torn last record is left out (``torn`` says how many bytes); a damaged record with
    more after it raises :class:`JournalCorrupted` naming its offset.
    """
    view = memoryview(data)
    size = len(view)
    entries: list[Entry] = []
    pos = start
    append = entries.append
    unpack_head, unpack_crc, unpack_seq = _HEAD.unpack_from, _HEAD_CRC.unpack_from, _SEQ.unpack_from
    crc32 = zlib.crc32
    while pos < size:
        rest = size - pos
        if rest < HEADER_SIZE:
            return Scan(entries, pos, rest)
        length, body_crc = unpack_head(view, pos)
        (head_crc,) = unpack_crc(view, pos + _HEAD.size)
        if crc32(view[pos:pos + _HEAD.size]) != head_crc or not _SEQ.size <= length <= MAX_RECORD:
            if not any(view[pos:]):
                return Scan(entries, pos, rest)
            raise JournalCorrupted(path, pos, "record header checksum mismatch or bad length")
        stop = pos + HEADER_SIZE + length
        if stop > size:
            return Scan(entries, pos, rest)
        body = view[pos + HEADER_SIZE:stop]
        if crc32(body) != body_crc:
            if stop == size or not any(view[stop:]):
                return Scan(entries, pos, rest)
            raise JournalCorrupted(path, pos, "record body checksum mismatch")
        (seq,) = unpack_seq(body)
        try:
            command = decode_command(body[_SEQ.size:])
        except (msgspec.DecodeError, ValueError, TypeError) as exc:
            raise JournalCorrupted(path, pos, f"undecodable payload ({exc})") from exc
        append(Entry(pos, seq, command))
        pos = stop
    return Scan(entries, pos, 0)


_KINDS = {MAGIC: "a plain engine's journal: open or recover it without venue=",
          VENUE_MAGIC: "a venue's journal: open or recover it with venue="}


def read_journal(path: Path, start: int = len(MAGIC), magic: bytes = MAGIC) -> Scan:
    """Check that the journal at ``path`` is of the kind ``magic`` names (:data:`MAGIC` or
    :data:`VENUE_MAGIC`) and :func:`scan` it from ``start``. An empty or shorter-than-magic
    file (killed as it was created) has no records."""
    data = path.read_bytes()
    _check_magic(data, magic, path)
    return _scan_from(data, start, path)


def _check_magic(data: bytes, magic: bytes, path: Path) -> None:
    head = data[:len(MAGIC)]
    if len(head) < len(MAGIC):
        if not any(m.startswith(head) for m in _KINDS):
            raise JournalMismatch(f"{path}: not a carbonbook journal")
    elif head != magic:
        raise JournalMismatch(f"{path}: {_KINDS[head]}" if head in _KINDS
                              else f"{path}: not a carbonbook journal (magic {head!r})")


def _scan_from(data: bytes, start: int, path: Path) -> Scan:
    if len(data) < len(MAGIC):
        return Scan([], len(MAGIC), 0)
    if start > len(data):
        raise JournalMismatch(f"{path}: offset {start} is past the end ({len(data)} bytes)")
    return scan(data, start, str(path))


# -- recovery ---------------------------------------------------------------------------


@dataclass
class Recovery:
    """The outcome of :func:`recover`."""

    engine: Applier
    """The recovered engine (a :class:`~carbonbook.venue.Venue` for a venue's journal)."""
    records: int
    """Commands the engine has applied (snapshot plus journal tail)."""
    offset: int
    """Offset just past the last valid record: where appending resumes."""
    snapshot: Path | None
    """The snapshot it started from, or None (from an empty engine)."""
    replayed: int
    """Records replayed from the journal after the snapshot."""
    torn: int
    """Bytes of a torn last record dropped (0 when none)."""


class VenueSnapshotFile(msgspec.Struct, frozen=True):
    """A venue's snapshot: its state after the first ``records`` journaled commands, which end at
    byte ``offset`` of the journal (its registry is not part of it)."""

    records: int
    offset: int
    state: VenueState


_FORMATS: dict[type, _Format] = {
    EngineState: _Format(MAGIC, SNAPSHOT_MAGIC, SnapshotFile, None),
    VenueState: _Format(VENUE_MAGIC, VENUE_SNAPSHOT_MAGIC, VenueSnapshotFile, _COMMAND_CLASSES | {Undecodable}),
}


def _snapshots(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob("snapshot-*.cbs"):
        digits = path.stem.removeprefix("snapshot-")
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found, reverse=True)


def replay_entries(engine: Applier, entries: Sequence[Entry], path: str = JOURNAL_NAME) -> None:
    """Apply journal entries to ``engine``, checking each record's ``seq``; raise
    :class:`JournalMismatch` when the journal does not continue the engine. Nothing is published."""
    for i in range(0, len(entries), _REPLAY_BATCH):
        batch = entries[i:i + _REPLAY_BATCH]
        base = engine.next_seq
        starts: list[int] = []
        engine.dispatch_marked([e.command for e in batch], starts)
        for entry, start in zip(batch, starts, strict=True):
            if entry.seq != base + start:
                raise JournalMismatch(f"{path}: the record at byte offset {entry.offset} has seq {entry.seq}"
                                      f" but the engine gave it {base + start}")


def recover(directory: Path | str, venue: Callable[[], Venue] | None = None) -> Recovery:
    """Rebuild the engine a journal directory describes: the latest valid snapshot within the
    journal, then the journal from the snapshot's offset. Warns (:class:`TornRecordWarning`)
    about a torn last record; raises :class:`JournalCorrupted` for a damaged one before it.

    ``venue`` recovers a venue's journal: it makes a new :class:`~carbonbook.venue.Venue`
    (nothing applied yet) on the registry the journaled commands went into, with the
    settings they ran with. A snapshot is restored on that registry with those settings;
    one the registry has not reached is passed over for an older one (or the journal's
    start). Records the registry already holds are replayed without touching it, the rest
    are carried out. :class:`JournalMismatch` if the journal is not of the kind asked for,
    or if the registry holds events the journal does not."""
    return _recover_into(Path(directory), Engine() if venue is None else _new(venue))


def _new(make: Callable[[], Applier]) -> Applier:
    """What ``venue=`` makes: a new applier whose state is a venue's."""
    applier = make()
    if applier.next_seq != 1 or _format(applier) is not _FORMATS[VenueState]:
        raise TypeError(f"venue= must make a new Venue with nothing applied yet, not {applier!r}")
    return applier


def _recover_into(directory: Path, base: Applier) -> Recovery:
    """:func:`recover` into ``base``: a new engine, or a new venue on its registry."""
    path = directory / JOURNAL_NAME
    data = path.read_bytes() if path.exists() else b""
    form = _format(base)
    _check_magic(data, form.magic, path)
    engine, records, start, chosen = base, 0, len(MAGIC), None
    for _, snap_path in _snapshots(directory):
        try:
            loaded = _load_snapshot(snap_path, len(data), base, form)
        except SnapshotError as exc:
            warnings.warn(f"skipping snapshot: {exc}", TornRecordWarning, stacklevel=3)
            continue
        if loaded is not None:
            engine, records, start = loaded
            chosen = snap_path
            break
    result = _scan_from(data, start, path)
    if result.torn:
        warnings.warn(f"{path}: dropping a torn last record ({result.torn} bytes at byte offset "
                      f"{result.end})", TornRecordWarning, stacklevel=3)
    replay_entries(engine, result.entries, str(path))
    _check_store(engine, path)
    return Recovery(engine, records + len(result.entries), result.end, chosen,
                    len(result.entries), result.torn)


def _load_snapshot(path: Path, size: int, base: Applier, form: _Format) -> tuple[Applier, int, int] | None:
    """The applier a snapshot holds (restored by ``base``: a venue on its registry, with its
    settings), its records and offset; None for a snapshot its store has not reached.
    SnapshotError if unusable."""
    decoder = msgspec.msgpack.Decoder(form.snapshot)
    snap = decode_file(path.read_bytes(), str(path), form.snapshot_magic, decoder)
    if snap.offset > max(size, len(MAGIC)):
        raise SnapshotError(f"{path}: ends at journal offset {snap.offset}, past the journal's {size} bytes")
    try:
        return base.restore(snap.state), snap.records, snap.offset
    except LogMismatch:  # its store is behind the snapshot
        return None


def _check_store(applier: Applier, where: object) -> None:
    """Refuse an applier whose store holds events past its own: commands the journal lacks."""
    ahead = applier.store_ahead()
    if ahead:
        last = applier.next_seq - 1
        raise JournalMismatch(f"{where}: the registry holds events up to {last + ahead}, the journal's venue "
                              f"only up to {last}: it went through commands that are not in the journal "
                              "(records lost without fsync, or another log)")


# -- writing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FsyncPolicy:
    """When the journal calls ``fsync`` after writing a batch: ``never``, after every ``batch``,
    or once at least ``every`` ``bytes`` or ``records`` were written since the last fsync."""

    mode: Literal["never", "batch", "bytes", "records"] = "batch"
    every: int = 1

    @classmethod
    def parse(cls, text: str) -> FsyncPolicy:
        """``never``, ``batch``, ``bytes:N`` or ``records:N``."""
        mode, _, every = text.partition(":")
        if mode in ("never", "batch") and not every:
            return cls(mode)  # type: ignore[arg-type]
        if mode in ("bytes", "records") and every.isdigit() and int(every) > 0:
            return cls(mode, int(every))  # type: ignore[arg-type]
        raise ValueError(f"fsync policy {text!r}: never, batch, bytes:N or records:N")


class Journal:
    """An engine whose commands are journaled in ``directory`` (see the module docstring).

    Open one with :meth:`open`, which recovers what the directory holds (or starts an
    empty engine, or journals ``engine`` from its current state through a first snapshot).
    Apply commands through the journal, not the engine, and close it (or use ``with``).
    If a batch fails once the engine has begun applying it, the journal refuses further
    batches and snapshots: the engine may be ahead of the journal (a venue's registry
    behind both); open the directory again to recover.
    """

    def __init__(self, engine: Applier, directory: Path, file: BinaryIO, records: int, offset: int,
                 fsync: FsyncPolicy, keep: int, form: _Format | None = None) -> None:
        self.engine = engine
        self.directory = directory
        self.fsync = fsync
        self.keep = keep
        self.records = records
        """Commands journaled so far (including those before the latest snapshot)."""
        self.offset = offset
        """The journal's size: where the next record goes."""
        self._file = file
        self._seq = engine.next_seq
        self._unsynced_bytes = 0
        self._unsynced_records = 0
        self._format = _format(engine) if form is None else form
        self._failed = False

    @classmethod
    def open(cls, directory: Path | str, fsync: FsyncPolicy | None = None, engine: Applier | None = None,
             keep: int = 2, venue: Callable[[], Venue] | None = None) -> Journal:
        """Open (creating it if need be) the journal in ``directory`` and recover its engine.

        ``engine``, only for a directory with no journal yet, is the engine (or venue) to journal
        from its current state on (a first snapshot records that state). ``venue``, for a venue's
        journal, makes a new venue on its registry, as for :func:`recover`; with a directory that
        holds no journal yet, that venue is journaled. A torn last record is dropped and the file
        truncated before it. ``keep`` is how many snapshots to keep.
        """
        if engine is not None and venue is not None:
            raise TypeError("give engine (to journal it in a new directory) or venue, not both")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / JOURNAL_NAME
        fresh = not path.exists() or path.stat().st_size < len(MAGIC)
        if fresh and engine is not None and _snapshots(directory):
            raise JournalMismatch(f"{directory}: snapshots but no journal; refusing to journal another engine")
        if not fresh and engine is not None:
            raise JournalMismatch(f"{directory} already holds a journal; open it without an engine")
        if fresh and path.exists():
            _check_magic(path.read_bytes(), MAGIC, path)  # the start of a magic, or refused
        if fresh and engine is not None:
            _check_store(engine, directory)
            journaled, records, offset = engine, 0, len(MAGIC)
            form = _format(engine)
        else:
            base = Engine() if venue is None else _new(venue)
            form = _format(base)
            recovery = _recover_into(directory, base)
            journaled, records, offset = recovery.engine, recovery.records, recovery.offset
        if fresh:
            with open(path, "wb") as f:
                f.write(form.magic)
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(directory)
        for stale in directory.glob("snapshot-*.cbs.tmp"):  # a snapshot killed while written
            stale.unlink(missing_ok=True)
        file = open(path, "r+b")  # noqa: SIM115 - the journal owns it until close()
        if file.seek(0, os.SEEK_END) != offset:
            file.truncate(offset)
            os.fsync(file.fileno())
        file.seek(offset)
        journal = cls(journaled, directory, file, records, offset, fsync or FsyncPolicy(), keep, form)
        if engine is not None and engine.next_seq != 1:
            journal.snapshot()
        return journal

    # -- commands -----------------------------------------------------------------------

    def apply(self, command: Applied) -> list[Event]:
        """Apply one command, journal it, then publish its events; return them."""
        return self.apply_all((command,))

    def apply_all(self, commands: Iterable[Applied]) -> list[Event]:
        """Apply commands in order as ``Engine.apply_all`` does, journal them as one batch
        (and fsync as the policy says), then publish the events; return them. For a venue
        the batch is written inside its registry transaction, before the registry commits.

        A command the journal cannot encode (for a venue, anything but a command or an
        :class:`Undecodable`: TypeError) raises before anything is applied."""
        if self._failed:
            raise JournalMismatch(f"{self.directory}: an earlier batch failed part way; open the journal "
                                  "again to recover")
        batch = commands if isinstance(commands, (list, tuple)) else list(commands)
        payloads = [encode_command(c) for c in batch]
        allowed = self._format.records
        if allowed is not None:
            for c in batch:
                if c.__class__ not in allowed:
                    raise TypeError(f"a venue's journal takes commands and Undecodable records, not {c!r}")
        opened = False
        try:
            with self.engine.transaction():  # write-ahead: the records are written before it commits
                opened = True
                events = self._dispatch_and_write(batch, payloads)
        except BaseException:
            self._failed = opened  # a transaction that never opened (no turn to write) changed nothing
            raise
        self.engine.publish(events)
        return events

    def _dispatch_and_write(self, batch: Sequence[Applied], payloads: list[bytes]) -> list[Event]:
        starts: list[int] = []
        events = self.engine.dispatch_marked(batch, starts)  # type: ignore[arg-type]
        base = self._seq
        data = b"".join([frame(base + start, p) for start, p in zip(starts, payloads, strict=True)])
        self._seq = base + len(events)
        self._write(data, len(batch))
        return events

    def _write(self, data: bytes, records: int) -> None:
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            view = view[n:]
        self._file.flush()
        self.offset += len(data)
        self.records += records
        self._unsynced_bytes += len(data)
        self._unsynced_records += records
        mode, every = self.fsync.mode, self.fsync.every
        if (mode == "batch" or (mode == "bytes" and self._unsynced_bytes >= every)
                or (mode == "records" and self._unsynced_records >= every)):
            self.sync()

    def sync(self) -> None:
        """Flush and fsync the journal."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._unsynced_bytes = self._unsynced_records = 0

    def snapshot(self) -> Path:
        """fsync the journal, then write a snapshot of the engine at this position; keep the
        latest ``keep`` snapshots. Returns the snapshot's path."""
        if self._failed:
            raise JournalMismatch(f"{self.directory}: an earlier batch failed part way; no snapshot of "
                                  "the engine")
        self.sync()
        path = self.directory / f"snapshot-{self.records:016d}.cbs"
        form = self._format
        write_snapshot(path, form.snapshot(self.records, self.offset, self.engine.export_state()),  # type: ignore[arg-type]
                       form.snapshot_magic)
        for _, old in _snapshots(self.directory)[max(self.keep, 1):]:
            old.unlink(missing_ok=True)
        return path

    def close(self) -> None:
        """fsync and close the journal file."""
        if not self._file.closed:
            self.sync()
            self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# -- the replay entry point ---------------------------------------------------------------


def log_commands(source: BinaryIO, msgpack: bool) -> Iterator[Command | Undecodable]:
    """The commands of an order log in order, as ``carbonbook replay`` reads them: a bad record
    becomes an :class:`Undecodable` with its 1-based line; blank JSON lines give nothing."""
    for commands, _records, _size, _ignored in command_batches(source, msgpack):
        yield from commands


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m carbonbook.operations.journal replay LOG DIR ...`` and ``... recover DIR ...``: the same as
    ``carbonbook journal LOG DIR ...`` and ``carbonbook recover DIR ...``."""
    from carbonbook.operations.cli import main as cli

    args = list(sys.argv[1:] if argv is None else argv)
    return cli(["journal", *args[1:]] if args[:1] == ["replay"] else args)


if __name__ == "__main__":
    sys.exit(main())
