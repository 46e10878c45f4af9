"""Transfers and holds: moving units between accounts, retiring them, reserving units and cash.

A transfer needs two distinct open accounts, a receiver that may hold the unit type and
enough active, unreserved units (oldest blocks first, or named serials); retirement moves
them into a retirement or cancellation account for good. A hold reserves units or cash
for a venue's order (checked before anything changes, so it needs no savepoint) and is
one compact undo record (``_ledger.Ledger._hold_tx``). Cost: O(blocks touched) per move, O(1) per hold.
"""

from __future__ import annotations

from typing import Any

import msgspec

from carbonbook._types import UnitType
from carbonbook.errors import (
    OperationRefused,
    SameAccount,
    TerminalUnits,
)
from carbonbook.registry._store import (
    _ACTIVE,
    _MISSING,
    _TERMINAL_KINDS,
    Store,
    _name,
    _qty,
    _unit,
)
from carbonbook.registry.base import (
    AccountKind,
    BlockState,
    Certificate,
    Entry,
    Serials,
)


class TransferRules(Store):
    """Transfers and retirements (oldest block first, or named serials) and holds."""

    def transfer(self, sender: str, receiver: str, unit: UnitType, qty: int, *,
                 serials: Serials | None = None) -> int:
        with self.transaction():
            _qty(qty)
            unit = _unit(unit)
            src = self._open(sender, "sending")
            dst = self._open(receiver, "receiving")
            if sender == receiver:
                raise SameAccount(f"cannot transfer from {sender!r} to itself")
            if src.kind in _TERMINAL_KINDS:
                raise TerminalUnits(f"units in {src.kind} account {sender!r} never move again")
            self._may_hold(dst, unit)
            if self._controlled(sender):
                return self._controlled_transfer(sender, receiver, unit, qty, serials)
            self._take(sender, unit, qty, receiver, _ACTIVE, serials)
            txid = self._txid()
            self._append(Entry(txid, "transfer", sender, receiver, unit, qty))
            return txid

    def retire(self, account: str, unit: UnitType, qty: int, *, to: str,
               serials: Serials | None = None, beneficiary: str | None = None,
               purpose: str | None = None) -> int:
        with self.transaction():
            _qty(qty)
            unit = _unit(unit)
            src = self._open(account, "retiring")
            if src.kind in _TERMINAL_KINDS:
                raise TerminalUnits(f"units in {src.kind} account {account!r} never move again")
            if account == to:
                raise SameAccount(f"cannot retire from {account!r} into itself")
            dst = self._terminal_target(to, _TERMINAL_KINDS)
            state = BlockState.RETIRED if dst.kind is AccountKind.RETIREMENT else BlockState.CANCELLED
            for what, value in (("beneficiary", beneficiary), ("purpose", purpose)):
                if value is not None:
                    _name(value, what)
                    if state is BlockState.RETIRED:
                        raise OperationRefused(f"a retirement takes no {what}: cancel into a cancellation "
                                               "account for a certificate")
            first = self._meta["block"] + 1
            self._take(account, unit, qty, to, state, serials)
            txid = self._txid()
            if state is BlockState.RETIRED:
                self._append(Entry(txid, "retire", account, to, unit, qty))
                return txid
            made = sorted((self._blocks[b] for b in range(first, self._meta["block"] + 1)
                           if b in self._blocks and self._blocks[b].holder == to),
                          key=lambda b: (b.origin, b.start))
            spans = msgspec.json.encode([(b.origin, b.start, b.end) for b in made]).decode()
            self._put(self._ledgers.certificates, txid, (account, to, str(unit), qty, spans, beneficiary,
                                                         purpose,
                                                 self._meta.get("day", 0), self._actor))
            self._append(Entry(txid, "cancel", account, to, unit, qty,
                               detail=", ".join(f"{b.origin} {b.start}-{b.end}" for b in made)))
            return txid

    def certificate(self, certificate: int) -> Certificate | None:
        row = self._ledgers.certificates.get(certificate) if type(certificate) is int else None
        if row is None:
            return None
        serials = [Serials(*span) for span in msgspec.json.decode(row[4])]
        return Certificate(certificate, row[0], row[1], UnitType(row[2]), row[3], serials, *row[5:])

    # -- holds ---------------------------------------------------------------------

    # A venue makes one or two hold changes per order: each is one call of the registry's
    # ledger (``_ledger.Ledger``), one compact undo record, undone here (``_undo_hold``; the
    # compiled ledger's records are its own, in C).

    def reserve(self, hold: int, account: str, unit: UnitType, qty: int) -> int:
        return self._ledger.reserve(hold, account, "units", unit, qty)

    def reserve_cash(self, hold: int, account: str, currency: str, amount: int) -> int:
        return self._ledger.reserve(hold, account, "cash", currency, amount)

    def release(self, hold: int, amount: int | None = None) -> int:
        return self._ledger.release(hold, amount)

    def _undo_hold(self, hold: int, old: Any, total: Any, txid: int, jlen: int) -> None:
        """Undo a hold transaction from its undo record (see ``_ledger.Ledger._hold_tx``)."""
        holds = self._holds
        h = holds[hold] if old is _MISSING else old
        reserved = self._ureserved if h[1] == "units" else self._creserved
        if old is _MISSING:
            del holds[hold]
        else:
            holds[hold] = old
        if total is _MISSING:
            del reserved[h[0], h[2]]
        else:
            reserved[h[0], h[2]] = total
        self._meta["txid"] = txid
        del self._journal[jlen:]

    def hold(self, hold: int) -> int:
        entry = self._holds.get(hold)
        return 0 if entry is None else entry[3]
