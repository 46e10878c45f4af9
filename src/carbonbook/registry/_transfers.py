"""Transfers and holds: moving units between accounts, retiring them, reserving units and cash.

A transfer needs two distinct open accounts, a receiver that may hold the unit type and
enough active, unreserved units (oldest blocks first, or named serials); retirement moves
them into a retirement or cancellation account for good. A hold reserves units or cash
for a venue's order (checked before anything changes, so it needs no savepoint) and is
one compact undo record (``_hold_tx``). Cost: O(blocks touched) per move, O(1) per hold.
"""

from __future__ import annotations

from typing import Any

import msgspec

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import (
    DuplicateHold,
    InsufficientFunds,
    InsufficientUnits,
    OperationRefused,
    SameAccount,
    TerminalUnits,
    UnknownHold,
)
from carbonbook.registry._store import (
    _ACTIVE,
    _HOLD,
    _MISSING,
    _OPEN,
    _TERMINAL_KINDS,
    Hold,
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

    # Hold changes check everything before they change anything, so inside a transaction they
    # need no savepoint of their own (a refusal has changed nothing); outside one they open it.
    # A venue makes one or two per order: each is one call here plus ``_hold_tx``.

    def reserve(self, hold: int, account: str, unit: UnitType, qty: int) -> int:
        return self._reserve(hold, account, "units", unit, qty)

    def reserve_cash(self, hold: int, account: str, currency: str, amount: int) -> int:
        return self._reserve(hold, account, "cash", currency, amount)

    def _reserve(self, hold: int, account: str, kind: str, asset: Any, amount: int) -> int:
        """Hold ``amount`` of ``account``'s unreserved ``asset`` (a unit type for ``kind``
        ``units``, a currency for ``cash``) under hold id ``hold``, in one transaction."""
        if self._log is None:
            with self.transaction():
                return self._reserve(hold, account, kind, asset, amount)
        units = kind == "units"
        if type(amount) is not int or amount <= 0 or amount > INT64_MAX:
            _qty(amount, "quantity" if units else "amount")
        have: dict[Any, int]
        reserved: dict[Any, int]
        if units:
            if type(asset) is not UnitType:
                asset = _unit(asset)
            have, reserved = self._held, self._ureserved
        else:
            if type(asset) is not str or not asset:
                _name(asset, "currency")
            have, reserved = self._cash, self._creserved
        if type(hold) is not int or hold < 0 or hold > INT64_MAX:
            raise OperationRefused(f"hold id must be an integer in 0..2**63-1, got {hold!r}")
        if hold in self._holds:
            raise DuplicateHold(f"hold {hold} already exists")
        acc = self._accounts.get(account) if type(account) is str else None
        if acc is None or acc.status is not _OPEN:
            self._open(account, "reserving")
        key = (account, asset)
        free = have.get(key, 0) - reserved.get(key, 0)
        if free < amount:
            if units:
                raise InsufficientUnits(f"account {account!r} has {max(free, 0)} unreserved {asset}; "
                                        f"{amount} needed")
            raise InsufficientFunds(f"account {account!r} has {free} unreserved {asset}; {amount} needed")
        txid = self._meta["txid"] + 1
        name = str(asset)
        return self._hold_tx(hold, _MISSING, (account, kind, name, amount), reserved, key, amount,
                             Entry(txid, "reserve", account, None, name, amount, None, 0, hold) if units
                             else Entry(txid, "reserve", account, None, None, 0, name, amount, hold))

    def release(self, hold: int, amount: int | None = None) -> int:
        if self._log is None:
            with self.transaction():
                return self.release(hold, amount)
        h = self._holds.get(hold) if type(hold) is int else None
        if h is None:
            raise UnknownHold(f"hold {hold!r} does not exist")
        account, kind, asset, left = h
        if amount is None:
            amount = left
        else:
            if type(amount) is not int or amount <= 0 or amount > INT64_MAX:
                _qty(amount, "amount")
            if amount > left:
                raise OperationRefused(f"hold {hold} has {left} left; cannot release {amount}")
        txid = self._meta["txid"] + 1
        units = kind == "units"
        return self._hold_tx(hold, h, None if amount == left else (account, kind, asset, left - amount),
                             self._ureserved if units else self._creserved, (account, asset), -amount,
                             Entry(txid, "release", account, None, asset, amount, None, 0, hold) if units
                             else Entry(txid, "release", account, None, None, 0, asset, amount, hold))

    def _hold_tx(self, hold: int, before: Any, after: Hold | None, reserved: dict[Any, int],
                 key: tuple[str, str], delta: int, entry: Entry) -> int:
        """Carry out the hold transaction journaled as ``entry`` (its txid is the next one): hold
        ``hold`` goes from ``before`` (``_MISSING``: absent) to ``after`` (None: gone) and the
        reserved total at ``key`` (the hold's account and asset) changes by ``delta``. Returns
        the txid.

        A venue makes about one of these per order or cancel, so its undo record is one log
        entry, ``(None, _HOLD, (hold, the hold before, the total before, the txid before, the
        journal length before))`` (``_MISSING``: absent), instead of four (``_undo_hold``)."""
        total = reserved.get(key, _MISSING)
        txid = entry.txid
        self._log.append((None, _HOLD, (hold, before, total, txid - 1, len(self._journal))))  # type: ignore[union-attr]
        if after is None:
            del self._holds[hold]
        else:
            self._holds[hold] = after
        reserved[key] = delta if total is _MISSING else total + delta
        self._meta["txid"] = txid
        self._journal.append(entry)
        return txid

    def _undo_hold(self, hold: int, old: Any, total: Any, txid: int, jlen: int) -> None:
        """Undo a hold transaction from its undo record (see ``_hold_tx``)."""
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
