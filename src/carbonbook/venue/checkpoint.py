"""A venue's replay checkpoint: how far its registry went through the order log, and how.

:class:`Checkpoint` is one part of a :class:`~carbonbook.venue.Venue`. It keeps, in the
registry's own ``checkpoint`` table and in the same transactions as the registry's effects:

- the **position**: the ``seq`` of the last event whose effects the registry holds, and the
  **digest** of the commands up to it (row ``-1``: ``(position, "digest", digest)``);
- the **outcome** of every event that needs one to be replayed without running again (row
  ``seq``: ``(txid, reason, detail)``): a registry command's, an allocation's, a refused
  hold's, and each sell order an expiry cancelled (reason ``units_expired``);
- the **settings** of the venue that went through it (row 0, which no event has:
  ``(0, "venue_settings", "CURRENCY LAG")``).

A venue opened on a registry at position ``P`` replays events up to ``P`` from these rows
without touching the registry (:attr:`replaying`); where the replay passes ``P`` the digest
of its commands must be the stored one (:class:`LogMismatch` otherwise).

The digest is CRC-32 and Adler-32 (one 64-bit signed integer) of the commands' JSON Lines
(msgspec's deterministic encoding): both can be resumed from their value, so folding a batch
at once (one C call over its encoded lines) gives what folding command by command gives,
whatever the batching. Costs: a batch's fold is one encoding and two checksum passes, all in
C (about 3,000 instructions per command: 2,000 of msgspec's encoding, 1,100 of zlib's checksums;
the compiled part, :func:`carbonbook._cvenue.fold_lines`, writes the lines of new orders and cancels
and runs both checksums over them in about 1,000 in all); a row lookup
is one dict get; a row written is one undo-log entry of the registry's transaction.
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


def fold_lines(digest: int, commands: Sequence[Command | Undecodable]) -> int:
    """``digest`` with the commands' JSON Lines folded in: CRC-32 (its high half) and Adler-32 (its
    low half), each resumed from its value, as a signed 64-bit integer."""
    blob = _encode_lines(commands)
    crc, adler = divmod(digest % 2**64, 2**32)
    value = zlib.crc32(blob, crc) << 32 | zlib.adler32(blob, adler)
    return value - 2**64 if value >= 2**63 else value


_fold: Callable[[int, Sequence[Command | Undecodable]], int] = fold_lines
""":func:`fold_lines`; the same value from :func:`carbonbook._cvenue.fold_lines` (the lines of new orders
and cancels written and both checksums run in C) when the compiled core runs and it was built."""
if core.NAME == "compiled" and find_spec("carbonbook._cvenue") is not None:
    from carbonbook._cvenue import fold_lines as _fold_in_c

    _fold = partial(_fold_in_c, encode_lines=_encode_lines)
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
        self.replayed = self.position
        self.replaying = self.replayed > 0
        self.digest = 1  # CRC-32 0 and Adler-32 1: nothing folded yet

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
        if seq > self.position:
            if store.checkpoint_row(_SETTINGS_ROW) is None:
                store.put_checkpoint_row(_SETTINGS_ROW, (0, _SETTINGS, f"{settings[0]} {settings[1]}"))
            store.put_checkpoint_row(_POSITION, (seq, "digest", str(self.digest)))

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
        """Fold ``commands`` into the running digest (one C pass over their JSON Lines)."""
        self.digest = _fold(self.digest, commands)

    def fold_one(self, command: Command | Undecodable, last_seq: int) -> None:
        """Fold one command whose last event is ``last_seq`` while :attr:`replaying`; where the
        events reach the position, the digest must be the stored one (LogMismatch)."""
        self.fold((command,))
        if self.replaying and last_seq >= self.replayed:
            if self.digest != self.position_digest:
                raise LogMismatch(f"the commands up to event {self.replayed} differ from those the registry "
                                  "went through: it holds another log")
            self.replaying = False
