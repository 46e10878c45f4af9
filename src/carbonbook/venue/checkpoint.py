"""A venue's replay checkpoint: how far its registry went through the order log, and how.

:class:`Checkpoint` is one part of a :class:`~carbonbook.venue.Venue`. It keeps, in the
registry's own ``checkpoint`` table and in the same transactions as the registry's effects:

- the **position**: the ``seq`` of the last event whose effects the registry holds, and the
  **digest** of the commands up to it (row ``-1``: ``(position, TAG, digest)``, TAG naming the
  digest's version, below);
- the **outcome** of every event that needs one to be replayed without running again (row
  ``seq``: ``(txid, reason, detail)``): a registry command's, an allocation's, a refused
  hold's, and each sell order an expiry cancelled (reason ``units_expired``);
- the **settings** of the venue that went through it (row 0, which no event has:
  ``(0, "venue_settings", "CURRENCY LAG")``).

A venue opened on a registry at position ``P`` replays events up to ``P`` from these rows
without touching the registry (:attr:`replaying`); where the replay passes ``P`` the digest
of its commands must be the stored one (:class:`LogMismatch` otherwise).

The digest is CRC-32 and Adler-32 (one 64-bit signed integer) of the commands' bytes: both can be
resumed from their value, so folding a batch at once gives what folding command by command gives,
whatever the batching. Its version is the registry's: a registry keeps the version it started with
(the position row's tag says which), so one written by an older carbonbook resumes as before.

- version 2 (``digest/2``, every new registry): the commands in msgspec's deterministic MessagePack
  (:func:`fold_packed`, one encoding of a batch: a busy command is about 100 bytes, its JSON line
  140). The compiled part, :func:`carbonbook._cvenue.fold_packed`, writes new orders and cancels
  and runs both checksums in C: about 460 instructions per command of the busy workload (99
  bytes: the order's fields and the loop ~360, CRC-32 ~50, Adler-32 ~45 in AVX2, ~120 in SSE2;
  callgrind_annotate of bench/venue.py --instructions; version 1 in C cost 1,330);
- version 1 (``digest``, registries of carbonbook before it): the commands' JSON Lines
  (:func:`fold_lines`, msgspec's and zlib's: about 3,000 instructions per command).

A row lookup is one dict get; a row written is one undo-log entry of the registry's transaction.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from functools import partial
from importlib.util import find_spec
from typing import Protocol, runtime_checkable

import msgspec

from carbonbook import core
from carbonbook.commands import Command, Undecodable
from carbonbook.errors import CarbonbookError, OperationRefused, RegistryError
from carbonbook.registry.base import Registry

__all__ = ["Checkpoint", "CheckpointStore", "LogMismatch", "Outcome"]

_encode_lines = msgspec.json.Encoder(order="deterministic").encode_lines  # sets sorted, whatever the hash seed
_pack = msgspec.msgpack.Encoder(order="deterministic").encode


def _checksums(digest: int, blob: bytes | memoryview) -> int:
    """``digest`` with ``blob`` folded in: CRC-32 (its high half) and Adler-32 (its low half), each
    resumed from its value, as a signed 64-bit integer."""
    crc, adler = divmod(digest % 2**64, 2**32)
    value = zlib.crc32(blob, crc) << 32 | zlib.adler32(blob, adler)
    return value - 2**64 if value >= 2**63 else value


def fold_lines(digest: int, commands: Sequence[Command | Undecodable]) -> int:
    """Version 1: ``digest`` with the commands' JSON Lines folded in."""
    return _checksums(digest, _encode_lines(commands))


def fold_packed(digest: int, commands: Sequence[Command | Undecodable]) -> int:
    """Version 2: ``digest`` with the commands in msgspec's deterministic MessagePack folded in (one
    encoding of them all, its array header left out: each command's map, one after the other)."""
    n = len(commands)
    blob = _pack(commands if isinstance(commands, list | tuple) else list(commands))
    return _checksums(digest, memoryview(blob)[1 if n < 16 else 3 if n < 0x10000 else 5:])


_FOLDS: dict[int, Callable[[int, Sequence[Command | Undecodable]], int]] = {1: fold_lines, 2: fold_packed}
"""The fold of each version; version 2's is :func:`carbonbook._cvenue.fold_packed` (the same value, new
orders and cancels written and both checksums run in C) when the compiled core runs and it was built."""
if core.NAME == "compiled" and find_spec("carbonbook._cvenue") is not None:
    from carbonbook._cvenue import fold_packed as _fold_in_c

    _FOLDS[2] = partial(_fold_in_c, encode=_pack)
_TAGS = {"digest": 1, "digest/2": 2}
"""The position row's tag of each version."""
_TAG = {v: k for k, v in _TAGS.items()}
_VERSION = 2
"""The version a new registry's digest takes."""
_POSITION = -1
_SETTINGS_ROW = 0
_SETTINGS = "venue_settings"
Row = tuple[int, str, str]


class Outcome(msgspec.Struct, frozen=True, gc=False):
    """What the order-log command answered by event ``seq`` did to a registry: transaction
    ``txid``, or, when refused (``txid`` 0), the refusal's ``reason`` code and ``detail``
    (a venue also records each sell order an expiry cancelled: reason ``units_expired``,
    the order id as ``detail``)."""

    txid: int
    reason: str = ""
    detail: str = ""


class LogMismatch(CarbonbookError):
    """Raised when a log replayed into a registry is not the log the registry went through."""


@runtime_checkable
class CheckpointStore(Protocol):
    """Where a checkpoint's rows live: a table of the registry, written in its transactions."""

    def checkpoint_row(self, key: int) -> Row | None:
        """The row under ``key``, or None."""

    def put_checkpoint_row(self, key: int, row: Row) -> None:
        """Write the row under ``key`` (in the current transaction, or its own)."""


class Checkpoint:
    """The replay checkpoint of a venue on ``registry`` (see the module docstring).

    ``replayed`` is the registry's position when the venue opened on it; :attr:`replaying`
    stays true until the events pass it. ``digest`` is the running digest of the commands
    applied so far."""

    def __init__(self, registry: Registry) -> None:
        if not isinstance(registry, CheckpointStore):
            raise TypeError(f"{registry!r} keeps no checkpoint table: a venue needs one")
        self.registry = registry
        self._store: CheckpointStore = registry
        row = self._store.checkpoint_row(_POSITION)
        tag = _TAG[_VERSION] if row is None else row[1]
        if tag not in _TAGS:
            raise LogMismatch(f"the registry's digest is of version {tag!r} (a later carbonbook's?): this "
                              f"one knows {', '.join(_TAGS)}")
        self.version = _TAGS[tag]
        """The version of the digest (see the module docstring): the registry's, 2 for a new one."""
        self._fold = _FOLDS[self.version]
        self.replayed = self.position
        self.replaying = self.replayed > 0
        self.digest = 1  # CRC-32 0 and Adler-32 1: nothing folded yet
        # the position and whether the settings row is stored, as this checkpoint last found or
        # stored them (``advance`` reads no row: a venue whose transaction rolled back is failed,
        # so no later advance of it sees rows other than these)
        self._stored = self.replayed
        self._settings_stored = self._store.checkpoint_row(_SETTINGS_ROW) is not None

    # -- stored rows ---------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The ``seq`` of the last event whose effects the registry holds (0: none)."""
        row = self._store.checkpoint_row(_POSITION)
        return 0 if row is None else row[0]

    @property
    def position_digest(self) -> int:
        """The digest stored with :attr:`position`."""
        row = self._store.checkpoint_row(_POSITION)
        return 0 if row is None else int(row[2])

    def settings(self) -> tuple[str, int] | None:
        """The ``(currency, lag)`` of the venue whose log the registry went through; None for a new one."""
        row = self._store.checkpoint_row(_SETTINGS_ROW)
        if row is None or row[1] != _SETTINGS:
            return None
        currency, lag = row[2].rsplit(" ", 1)
        return currency, int(lag)

    def outcome(self, seq: int) -> Outcome | None:
        """The recorded outcome of event ``seq``, if any."""
        row = self._store.checkpoint_row(seq)
        return None if row is None else Outcome(*row)

    def record(self, seq: int, outcome: Outcome) -> None:
        """Record what the command answered by event ``seq`` did (once per ``seq``)."""
        if type(seq) is not int or seq <= 0 or self._store.checkpoint_row(seq) is not None:
            raise OperationRefused(f"outcome seq must be a new positive integer, got {seq!r}")
        self._store.put_checkpoint_row(seq, (outcome.txid, outcome.reason, outcome.detail))

    def recorded(self, seq: int, what: str) -> Outcome:
        """The recorded outcome of event ``seq`` while replaying; LogMismatch if there is none."""
        outcome = self.outcome(seq)
        if outcome is None:
            raise LogMismatch(f"the registry holds events up to {self.replayed} but has no outcome "
                              f"for event {seq} ({what}): it went through another log")
        return outcome

    def advance(self, seq: int, settings: tuple[str, int]) -> None:
        """Store ``seq`` as the position with the digest so far (and, the first time, ``settings``)."""
        store = self._store
        if seq > self._stored:
            if not self._settings_stored:
                store.put_checkpoint_row(_SETTINGS_ROW, (0, _SETTINGS, f"{settings[0]} {settings[1]}"))
                self._settings_stored = True
            store.put_checkpoint_row(_POSITION, (seq, _TAG[self.version], str(self.digest)))
            self._stored = seq

    def once(self, seq: int, what: str, act: Callable[[], str]) -> Outcome:
        """Carry out ``act`` (it returns a detail) for event ``seq`` in one registry transaction
        and record its outcome: the transaction's txid (0 if it journaled none), or the refusal.
        For an event the registry already holds, nothing runs: the recorded outcome is returned."""
        if seq <= self.replayed:
            return self.recorded(seq, what)
        reg = self.registry
        before = reg.last_txid
        try:
            with reg.transaction():
                detail = act()
            outcome = Outcome(reg.last_txid if reg.last_txid != before else 0, "", detail)
        except RegistryError as e:
            outcome = Outcome(0, e.code, str(e))
        self.record(seq, outcome)
        return outcome

    # -- the digest ----------------------------------------------------------------------

    def fold(self, commands: Sequence[Command | Undecodable]) -> None:
        """Fold ``commands`` into the running digest (its version's fold: one C pass over them)."""
        self.digest = self._fold(self.digest, commands)

    def fold_one(self, command: Command | Undecodable, last_seq: int) -> None:
        """Fold one command whose last event is ``last_seq`` while :attr:`replaying`; where the
        events reach the position, the digest must be the stored one (LogMismatch)."""
        self.fold((command,))
        if self.replaying and last_seq >= self.replayed:
            if self.digest != self.position_digest:
                raise LogMismatch(f"the commands up to event {self.replayed} differ from those the registry "
                                  "went through: it holds another log")
            self.replaying = False
