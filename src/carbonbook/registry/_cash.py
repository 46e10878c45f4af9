"""Cash: deposits and delivery-versus-payment settlement of trades.

A settlement moves the units seller to buyer and the cash buyer to seller in one
transaction, or nothing (``SettlementFailed``), at most once per trade id; the registry's
ledger (``_ledger.Ledger.settle``) is its only path, with one compact undo record per run of
settlements, undone here (``_undo_fast``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import (
    InsufficientFunds,
    InsufficientUnits,
    InvalidQuantity,
    SameAccount,
    TerminalUnits,
    UnitNotAllowed,
)
from carbonbook.registry._store import (
    _MISSING,
    _TERMINAL_KINDS,
    Hold,
    Store,
    _hold_cut,
    _name,
    _qty,
    _unit,
)
from carbonbook.registry.base import (
    Entry,
    SettlementRecord,
    SettleTerms,
)


class CashRules(Store):
    """Deposits and settlements (units and cash move together or not at all)."""

    # -- cash ----------------------------------------------------------------------

    def deposit(self, account: str, currency: str, amount: int) -> int:
        with self.transaction():
            _qty(amount, "amount")
            _name(currency, "currency")
            acc = self._open(account, "receiving")
            if acc.kind in _TERMINAL_KINDS:
                raise UnitNotAllowed(f"{acc.kind} account {account!r} holds no cash")
            if self._cash.get((account, currency), 0) + amount > INT64_MAX:
                raise InvalidQuantity(f"balance of {account!r} would pass 2**63 - 1")
            self._add(self._cash, (account, currency), amount)
            txid = self._txid()
            self._append(Entry(txid, "deposit", account, currency=currency, amount=amount))
            return txid

    # -- settlement ----------------------------------------------------------------

    def settle(self, trade_id: int, *, seller: str, buyer: str, unit: UnitType, qty: int,
               currency: str, amount: int, unit_hold: int | None = None,
               cash_hold: int | None = None) -> SettlementRecord:
        row = (trade_id, seller, buyer, unit, qty, currency, amount, unit_hold, cash_hold)
        return self._ledger.settle((row,), True)[0]

    def settle_batch(self, trades: Iterable[SettleTerms]) -> list[SettlementRecord]:
        return self._ledger.settle(trades, False)

    def _undo_fast(self, seg: list[Any], stop: int) -> None:
        """Undo the fast-path settlements recorded in ``seg`` after index ``stop``, newest first.

        Each settlement is recorded once it has applied, as ``(block id, old block, removed
        from the queue)`` for each block it consumed or split (the compiled ledger records the
        block's first serial before instead of the block; the ledger's ``put_back`` undoes
        either), then 10 values: its Settled record, the block counter, the buyer's holding
        and the seller's cash as they were (``_MISSING`` if absent), the journal length before
        it, the units hold id and the hold as it was (None if it consumed none, or if the
        compiled ledger settled it: what that takes of a hold is an undo record of its own), the
        same for the cash hold, and the number of block triples. The seller's holding, the
        buyer's cash and the reserved totals before it are the current ones plus its quantity,
        amount and what it took of each hold (the newer settlements are undone first). The compiled
        ledger's run of them is made into this list first (``run_values``)."""
        seg = self._ledger.run_values(seg)
        held = self._held
        cash = self._cash
        while len(seg) > stop:
            top = len(seg)
            r, first, b_held, s_cash, jlen, unit_hold, uh, cash_hold, ch, n = seg[top - 10:top]
            lo = top - 10 - 3 * n
            self._undo_fast_one(r.seller, r.buyer, r.unit, r.currency, r.trade_id, first,
                                held[r.seller, r.unit] + r.qty, b_held, cash[r.buyer, r.currency] + r.amount,
                                s_cash, r.txid - 1, jlen, seg, lo, n)
            if uh is not None:
                self._restore_hold(unit_hold, uh, self._ureserved[uh[0], uh[2]] + min(r.qty, uh[3]))
            if ch is not None:
                self._restore_hold(cash_hold, ch, self._creserved[ch[0], ch[2]] + min(r.amount, ch[3]))
            del seg[lo:]

    def _restore_hold(self, hold: int, old: Hold, reserved: int) -> None:
        """Put back a hold a fast-path settlement consumed from: its value ``old`` and its
        account's reserved total of that asset, ``reserved``."""
        self._holds[hold] = old
        (self._ureserved if old[1] == "units" else self._creserved)[old[0], old[2]] = reserved

    def _undo_fast_one(self, seller: str, buyer: str, unit: UnitType, currency: str, trade_id: int, first: int,
                       s_held: int, b_held: Any, b_cash: int, s_cash: Any, txid: int, jlen: int,
                       seg: list[Any], lo: int, n: int) -> None:
        """Restore one fast-path settlement from its values before it and its ``n`` block
        triples at ``seg[lo:]``. Every step is idempotent, so a settlement cut short by an
        exception is restored exactly too."""
        self._settlements.pop(trade_id, None)
        del self._journal[jlen:]
        meta = self._meta
        meta["txid"] = txid
        cash = self._cash
        cash[buyer, currency] = b_cash
        if s_cash is _MISSING:
            cash.pop((seller, currency), None)
        else:
            cash[seller, currency] = s_cash
        held = self._held
        held[seller, unit] = s_held
        if b_held is _MISSING:
            held.pop((buyer, unit), None)
        else:
            held[buyer, unit] = b_held
        binner = self._index[buyer, unit]
        while binner and binner[-1] > first:
            binner.pop()
        blocks = self._blocks
        for bid in range(first + 1, first + n + 1):
            blocks.pop(bid, None)
        inner = self._index[seller, unit]
        put_back = self._ledger.put_back
        for i in range(lo + 3 * (n - 1), lo - 1, -3):
            bid, b, popped = seg[i], seg[i + 1], seg[i + 2]
            put_back(blocks, bid, b)
            if popped and (not inner or inner[0] != bid):
                inner.appendleft(bid)
        meta["block"] = first

    def _refuse_settlement(self, trade_id: int, seller: str, buyer: str, unit: UnitType, qty: int,
                           currency: str, amount: int, unit_hold: int | None, cash_hold: int | None) -> None:
        """Raise the refusal of a settlement that the ledger (``_ledger.Ledger.settle``) could not
        carry out, the first that applies (it changes nothing)."""
        unit = _unit(unit)
        _name(currency, "currency")
        src = self._open(seller, "selling")
        dst = self._open(buyer, "buying")
        if seller == buyer:
            raise SameAccount(f"trade {trade_id}: seller and buyer are both {seller!r}")
        if src.kind in _TERMINAL_KINDS:
            raise TerminalUnits(f"units in {src.kind} account {seller!r} never move again")
        self._may_hold(dst, unit)
        if dst.kind in _TERMINAL_KINDS:
            raise UnitNotAllowed(f"{dst.kind} account {buyer!r} holds no cash")
        holds = self._holds
        unit_cut = _hold_cut(holds.get(unit_hold), seller, "units", unit, qty)  # type: ignore[arg-type]
        cash_cut = _hold_cut(holds.get(cash_hold), buyer, "cash", currency, amount)  # type: ignore[arg-type]
        free_cash = self._free_cash(buyer, currency) + cash_cut
        if free_cash < amount:
            raise InsufficientFunds(f"buyer {buyer!r} has {free_cash} unreserved {currency}; {amount} needed")
        if self._cash.get((seller, currency), 0) + amount > INT64_MAX:
            raise InvalidQuantity(f"balance of {seller!r} would pass 2**63 - 1")
        held = self._held.get((seller, unit), 0)
        free = held - self._ureserved.get((seller, unit), 0) + unit_cut
        if held >= qty:
            raise InsufficientUnits(
                f"account {seller!r} holds {held} {unit} but {held - free} are reserved; {qty} needed")
        raise InsufficientUnits(f"account {seller!r} holds {held} active {unit}; {qty} needed")

    def settlement(self, trade_id: int) -> SettlementRecord | None:
        return self._settlements.get(trade_id)
