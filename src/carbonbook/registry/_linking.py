"""A registry's side of transfers between linked registries (see :mod:`carbonbook.registry.linking`).

An external transfer is recorded in both registries' ``external`` table under the
transaction log's id, with its state written down at each step: ``proposed``, then
``completed``, ``rejected`` (nothing moved) or, on the sending side, ``compensated`` (the units
went out and came back when the receiving side failed). Units that leave are kept as
``exported`` blocks of the account that sent them (terminal here, so ``check()`` still
balances); units that arrive revive those blocks when they come back, or else are recorded
as an **import** of their serials (beside the issuances, so the serials tile and count).
Costs: O(blocks of the origin) per piece moved.
"""

from __future__ import annotations

import msgspec

from carbonbook._types import UnitType
from carbonbook.errors import (
    InsufficientUnits,
    NotAccepted,
    OperationRefused,
    SameAccount,
    TerminalUnits,
    UnknownTransfer,
)
from carbonbook.registry._store import _ACTIVE, _TERMINAL_KINDS, ExternalRow, Store, _name, _qty, _unit
from carbonbook.registry.base import Block, BlockState, Entry, ExternalTransfer, Serials

_EXPORTED = BlockState.EXPORTED
_BLOCKS = msgspec.json.Encoder()
_PIECES = msgspec.json.Decoder(list[Block])


class LinkRules(Store):
    """Exports, imports and the recorded states of external transfers (see the module)."""

    def external_pieces(self, account: str, unit: UnitType, qty: int,
                        serials: Serials | None = None) -> list[Block]:
        """The blocks (clipped) an export of ``qty`` ``unit`` from ``account`` would send: the named
        serials, or its oldest blocks. Refuses as a transfer would; changes nothing."""
        _qty(qty)
        unit = _unit(unit)
        src = self._open(account, "sending")
        if src.kind in _TERMINAL_KINDS:
            raise TerminalUnits(f"units in {src.kind} account {account!r} never move again")
        free = self._free_units(account, unit)
        if free < qty:
            raise InsufficientUnits(f"account {account!r} has {free} unreserved {unit}; {qty} needed")
        if serials is not None:
            return [msgspec.structs.replace(b, start=max(b.start, serials.start), end=min(b.end, serials.end))
                    for b in self._cover(account, unit, qty, serials)]
        out = []
        need = qty
        for bid in self._index[account, unit]:
            b = self._blocks[bid]
            n = min(need, b.end - b.start + 1)
            out.append(msgspec.structs.replace(b, end=b.start + n - 1))
            need -= n
            if not need:
                break
        return out

    def external_acceptance(self, account: str, unit: UnitType, schemes: set[str]) -> None:
        """Refuse unless ``account`` may receive ``unit`` issued under ``schemes``: it is open and
        may hold it, every issuing scheme is known here (the link mirrors it) and a scheme here
        takes the unit type (the receiving scheme's acceptance)."""
        unit = _unit(unit)
        dst = self._open(account, "receiving")
        self._may_hold(dst, unit)
        unknown = sorted(s for s in schemes if s not in self._schemes)
        if unknown:
            raise NotAccepted(f"this registry does not know scheme {unknown[0]!r}: the link does not cover it")
        if not any(unit in s.allowances or unit in s.credits for s in self._schemes.values()):
            raise NotAccepted(f"no scheme here accepts {unit}")

    def external_propose(self, ext: int, direction: str, account: str, other: str, other_account: str,
                         unit: UnitType, qty: int, pieces: list[Block]) -> int:
        """Write down external transfer ``ext`` as ``proposed`` (``direction`` ``out`` or ``in``)."""
        with self.transaction():
            if type(ext) is not int or ext <= 0 or ext in self._ledgers.external:
                raise OperationRefused(f"external transfer id must be a new positive integer, got {ext!r}")
            _name(other, "registry")
            txid = self._txid()
            self._put(self._ledgers.external, ext, ("proposed", direction, account, other, other_account,
                                                    str(unit),
                                            qty, _BLOCKS.encode(pieces).decode(), ""))
            self._append(Entry(txid, "external_proposed", account, f"{other}:{other_account}", str(unit), qty,
                               ref=ext, detail=direction))
            return txid

    def _row(self, ext: int, direction: str, states: tuple[str, ...] = ("proposed",)) -> ExternalRow:
        row = self._ledgers.external.get(ext) if type(ext) is int else None
        if row is None or row[1] != direction or row[0] not in states:
            raise UnknownTransfer(f"no {direction} external transfer {ext!r} is {' or '.join(states)}")
        return row

    def _mark(self, ext: int, row: ExternalRow, state: str, reason: str, kind: str) -> int:
        txid = self._txid()
        self._put(self._ledgers.external, ext, (state, *row[1:8], reason))
        self._append(Entry(txid, kind, row[2], f"{row[3]}:{row[4]}", row[5], row[6], ref=ext, detail=reason))
        return txid

    def export_complete(self, ext: int) -> int:
        """Send the units of ``ext``: its pieces become ``exported`` blocks of the account."""
        with self.transaction():
            row = self._row(ext, "out")
            unit = UnitType(row[5])
            for p in _PIECES.decode(row[7]):
                self._take(row[2], unit, p.end - p.start + 1, row[2], _EXPORTED,
                           Serials(p.origin, p.start, p.end))
            return self._mark(ext, row, "completed", "", "external_out")

    def import_complete(self, ext: int) -> int:
        """Receive the units of ``ext`` into the account (reviving blocks that once left here)."""
        with self.transaction():
            row = self._row(ext, "in")
            pieces = _PIECES.decode(row[7])
            for p in pieces:
                self._arrive(p, row[2])
            self._moving = ("import", [(p.origin, p.start, p.end) for p in pieces])
            return self._mark(ext, row, "completed", "", "external_in")

    def export_compensate(self, ext: int, reason: str) -> int:
        """Take back the units of a completed export whose other side failed: state ``compensated``."""
        with self.transaction():
            row = self._row(ext, "out", ("completed",))
            pieces = _PIECES.decode(row[7])
            for p in pieces:
                self._arrive(p, row[2])
            self._moving = ("import", [(p.origin, p.start, p.end) for p in pieces])
            return self._mark(ext, row, "compensated", reason, "external_compensated")

    def external_reject(self, ext: int, reason: str) -> int:
        """Write down that proposed ``ext`` was refused (``reason``): nothing moved."""
        with self.transaction():
            row = self._ledgers.external.get(ext) if type(ext) is int else None
            if row is None or row[0] != "proposed":
                raise UnknownTransfer(f"no external transfer {ext!r} is proposed")
            return self._mark(ext, row, "rejected", reason, "external_rejected")

    def external(self, ext: int) -> ExternalTransfer | None:
        """External transfer ``ext`` as this registry wrote it down, if any."""
        row = self._ledgers.external.get(ext) if type(ext) is int else None
        if row is None:
            return None
        return ExternalTransfer(ext, row[0], row[1], row[2], row[3], row[4], UnitType(row[5]), row[6],
                                _PIECES.decode(row[7]), row[8])

    def serial_states(self, origin: str, start: int, end: int) -> list[BlockState]:
        """The states of the blocks here that hold any of serials ``start``..``end`` of ``origin``."""
        return [b.state for b in self._blocks.values()
                if b.origin == origin and b.start <= end and b.end >= start]

    def issued_overlap(self, origin: str, start: int, end: int) -> bool:
        """Whether any serial ``start``..``end`` of ``origin`` was ever issued or imported here: O(1)
        past the origin's top serial, else O(issuances + imports)."""
        return start <= self._top.get(origin, 0) and any(o == origin and s <= end and row[0] >= start
                   for (o, s), row in (*self._issuances.items(), *self._ledgers.imports.items()))

    def _arrive(self, piece: Block, holder: str) -> None:
        """Put serials ``piece`` into ``holder``: revive the exported blocks that hold them (their
        other serials stay exported), import the serials never here."""
        if holder == "":
            raise SameAccount("no account to receive")
        lo, hi = piece.start, piece.end
        cover = sorted((b for b in self._blocks.values() if b.origin == piece.origin and b.start <= hi
                        and b.end >= lo), key=lambda b: b.start)
        pos = lo
        for b in cover:
            if b.state is not _EXPORTED:
                raise TerminalUnits(f"serials {b.origin} {b.start}..{b.end} are {b.state} here: they cannot "
                                    "arrive again")
            if pos < b.start:
                self._import(piece, pos, b.start - 1, holder)
            a, z = max(b.start, pos), min(b.end, hi)
            self._del(self._blocks, b.id)
            if b.start < a:
                self._place(b, b.start, a - 1, b.holder, _EXPORTED)
            self._place(b, a, z, holder, _ACTIVE)
            self._add(self._held, (holder, b.unit), z - a + 1)
            if z < b.end:
                self._place(b, z + 1, b.end, b.holder, _EXPORTED)
            pos = z + 1
        if pos <= hi:
            self._import(piece, pos, hi, holder)

    def _import(self, piece: Block, lo: int, hi: int, holder: str) -> None:
        self._put(self._ledgers.imports, (piece.origin, lo), (hi, str(piece.unit), piece.scheme, piece.period))
        if hi > self._top.get(piece.origin, 0):
            self._put(self._top, piece.origin, hi)
        self._place(piece, lo, hi, holder, _ACTIVE)
        self._add(self._held, (holder, piece.unit), hi - lo + 1)
