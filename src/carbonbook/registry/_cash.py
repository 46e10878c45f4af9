"""Cash: deposits and delivery-versus-payment settlement of trades.

A settlement moves the units seller to buyer and the cash buyer to seller in one
transaction, or nothing (``SettlementFailed``), at most once per trade id; ``_settle_rows``
is its only path (about 300 bytecodes per trade, one compact undo record per batch).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from msgspec.structs import replace

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import (
    DuplicateTrade,
    InsufficientFunds,
    InsufficientUnits,
    InvalidQuantity,
    RegistryError,
    SameAccount,
    TerminalUnits,
    UnitNotAllowed,
)
from carbonbook.registry._store import (
    _FAST,
    _MISSING,
    _OPEN,
    _TERMINAL_KINDS,
    _UNIT_NAMES,
    Hold,
    Store,
    _hold_cut,
    _name,
    _qty,
    _unit,
)
from carbonbook.registry.base import (
    Entry,
    Settled,
    SettlementFailed,
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

    def _between_legs(self) -> None:
        """Called between the units leg and the cash leg of a settlement (a test hook)."""

    def settle(self, trade_id: int, *, seller: str, buyer: str, unit: UnitType, qty: int,
               currency: str, amount: int, unit_hold: int | None = None,
               cash_hold: int | None = None) -> SettlementRecord:
        row = (trade_id, seller, buyer, unit, qty, currency, amount, unit_hold, cash_hold)
        return self._settle_rows((row,), True)[0]

    def settle_batch(self, trades: Iterable[SettleTerms]) -> list[SettlementRecord]:
        return self._settle_rows(trades, False)

    def _settle_rows(self, rows: Iterable[SettleTerms], dup_raises: bool) -> list[SettlementRecord]:
        """Settle each row in one transaction (see ``settle`` and ``settle_batch``): the only
        settlement path.

        A trade settles when both accounts are open and allowed and there are enough free
        units and cash once the trade's own holds are counted (which it consumes: up to
        ``qty`` of the seller's units hold, up to ``amount`` of the buyer's cash hold). Its
        undo information is recorded as flat values in a segment list (one
        ``(None, _FAST, segment)`` log entry for a run of settlements; see ``_undo_fast``): no
        tuple or list per trade outlives it, which keeps the cyclic garbage collector from
        promoting and rescanning thousands of log objects per batch. A trade the checks refuse
        changes nothing; ``_refuse_settlement`` names the refusal. Cost: about 300 bytecodes
        per trade (oldest block split, two cash moves, holds, journal row and record)."""
        out: list[SettlementRecord] = []
        record: SettlementRecord
        with self.transaction():
            log = self._log
            assert log is not None
            append = log.append
            settlements = self._settlements
            accounts = self._accounts
            held = self._held
            ureserved = self._ureserved
            creserved = self._creserved
            holds: dict[Any, Hold] = self._holds  # indexed by a row's hold ids (int | None) once found
            cash = self._cash
            blocks = self._blocks
            meta = self._meta
            index = self._index
            journal = self._journal
            hook: Any = self._between_legs  # called only when a test replaced it
            if getattr(hook, "__func__", None) is CashRules._between_legs:
                hook = None
            seg: list[Any] = []
            seg_end = -1
            nid = txid = 0
            # accounts found open and allowed since the last non-fast log entry (no account
            # can change without logging): sellers, and buyers with the unit type checked and
            # their holding key and block queue
            ok_src: set[str] = set()
            ok_dst: dict[str, tuple[Any, Any, Any]] = {}
            no_acc = (None, None, None)
            for trade_id, seller, buyer, unit, qty, currency, amount, unit_hold, cash_hold in rows:
                if (type(trade_id) is not int or type(qty) is not int or type(amount) is not int
                        or trade_id < 0 or trade_id > 0x3FFFFFFF or qty <= 0 or qty > 0x3FFFFFFF
                        or amount <= 0 or amount > 0x3FFFFFFF):  # not all below 2**30: the exact checks
                    if type(trade_id) is not int or not 0 <= trade_id <= INT64_MAX:
                        raise InvalidQuantity(f"trade id must be an integer in 0..2**63-1, got {trade_id!r}")
                    if type(qty) is not int or not 0 < qty <= INT64_MAX:
                        _qty(qty)
                    if type(amount) is not int or not 0 < amount <= INT64_MAX:
                        _qty(amount, "amount")
                done = settlements.get(trade_id)
                if done is not None:
                    if (done.seller, done.buyer, done.unit, done.qty, done.currency, done.amount) != (
                            seller, buyer, unit, qty, currency, amount):
                        err = DuplicateTrade(f"trade {trade_id} was already recorded with other terms")
                        if dup_raises:
                            raise err
                        out.append(SettlementFailed(trade_id, err.code, str(err), seller, buyer, unit, qty,
                                                    currency, amount))
                    else:
                        out.append(done)
                    continue
                fast = False
                if type(unit) is not UnitType and type(unit) is str and unit in _UNIT_NAMES:
                    unit = UnitType(unit)
                if seller != buyer and type(currency) is str and currency:
                    if len(log) != seg_end:  # something else was logged since: recheck, open a new segment
                        ok_src.clear()
                        ok_dst.clear()
                        seg = []
                        append((None, _FAST, seg))
                        seg_end = len(log)
                        nid = meta["block"]  # within a segment, only the fast path moves the counters
                        txid = meta["txid"]
                    if seller in ok_src:
                        fast = True
                    else:
                        src = accounts.get(seller)
                        fast = src is not None and src.status is _OPEN and src.kind not in _TERMINAL_KINDS
                        if fast:
                            ok_src.add(seller)
                    if fast:
                        dunit, bkey, binner = ok_dst.get(buyer, no_acc)
                        if dunit is not unit:
                            dst = accounts.get(buyer)
                            fast = (dst is not None and dst.status is _OPEN and type(unit) is UnitType
                                    and dst.kind not in _TERMINAL_KINDS
                                    and (dst.units is None or unit in dst.units))
                            if fast:
                                bkey = (buyer, unit)
                                binner = self._inner_of(bkey)
                                ok_dst[buyer] = (unit, bkey, binner)
                    if fast:
                        skey = (seller, unit)
                        s_held = held.get(skey, 0)
                        bcash = (buyer, currency)
                        b_cash = cash.get(bcash, 0)
                        scash = (seller, currency)
                        s_cash = cash.get(scash, _MISSING)
                        u_free = s_held - ureserved.get(skey, 0) if ureserved else s_held
                        c_free = b_cash - creserved.get(bcash, 0) if creserved else b_cash
                        uh = ch = None
                        if unit_hold is not None or cash_hold is not None:
                            # the holds the trade consumes, which count as free for it: up to qty of
                            # the seller's units hold, up to amount of the buyer's cash hold
                            uh = holds.get(unit_hold)
                            u_cut = _hold_cut(uh, seller, "units", unit, qty)
                            if u_cut:
                                u_res = ureserved[skey]
                                u_free += u_cut
                            else:
                                uh = None
                            ch = holds.get(cash_hold)
                            c_cut = _hold_cut(ch, buyer, "cash", currency, amount)
                            if c_cut:
                                c_res = creserved[bcash]
                                c_free += c_cut
                            else:
                                ch = None
                        fast = (u_free >= qty and c_free >= amount
                                and (s_cash2 := amount if s_cash is _MISSING else s_cash + amount) <= INT64_MAX)
                if not fast:  # the trade is refused: say why (nothing has changed)
                    try:
                        self._refuse_settlement(trade_id, seller, buyer, unit, qty, currency, amount,
                                                unit_hold, cash_hold)
                    except RegistryError as e:
                        record = SettlementFailed(trade_id, e.code, str(e), str(seller), str(buyer), str(unit),
                                                  qty, str(currency), amount)
                    append((settlements, trade_id, _MISSING))
                    settlements[trade_id] = record
                    out.append(record)
                    continue
                # the fast path: every check above passed, so nothing below can refuse
                inner = index[skey]
                first = nid
                txid0 = txid
                jlen = len(journal)
                b_held = held.get(bkey, _MISSING)
                pos = len(seg)
                try:
                    # units leg: the seller's oldest blocks, the last one split if need be (b is the
                    # seller's, active and of this unit type: it is in the queue)
                    bid = inner[0]
                    b = blocks[bid]
                    start = b.start
                    if b.end - start >= qty:  # the common case: the oldest block is split
                        nid += 1
                        seg += (bid, b, False)
                        blocks[bid] = replace(b, start=start + qty)
                        blocks[nid] = replace(b, id=nid, end=start + qty - 1, holder=buyer)
                        binner.append(nid)
                    else:
                        need = qty
                        while need:
                            bid = inner[0]
                            b = blocks[bid]
                            start = b.start
                            end = b.end
                            nid += 1
                            if end - start + 1 <= need:
                                seg += (bid, b, True)
                                inner.popleft()
                                del blocks[bid]
                                need -= end - start + 1
                                blocks[nid] = replace(b, id=nid, holder=buyer)
                            else:
                                seg += (bid, b, False)
                                blocks[bid] = replace(b, start=start + need)
                                blocks[nid] = replace(b, id=nid, end=start + need - 1, holder=buyer)
                                need = 0
                            binner.append(nid)
                    meta["block"] = nid
                    held[skey] = s_held - qty
                    held[bkey] = qty if b_held is _MISSING else b_held + qty
                    if hook is not None:
                        hook()
                    # cash leg, journal row and the settlement record
                    cash[bcash] = b_cash - amount
                    cash[scash] = s_cash2
                    if uh is not None:  # the holds it consumes (one used up is gone), as _shrink_hold
                        ureserved[skey] = u_res - u_cut
                        if u_cut < uh[3]:
                            holds[unit_hold] = (uh[0], uh[1], uh[2], uh[3] - u_cut)
                        else:
                            del holds[unit_hold]
                    if ch is not None:
                        creserved[bcash] = c_res - c_cut
                        if c_cut < ch[3]:
                            holds[cash_hold] = (ch[0], ch[1], ch[2], ch[3] - c_cut)
                        else:
                            del holds[cash_hold]
                    txid = txid0 + 1
                    meta["txid"] = txid
                    record = Settled(trade_id, txid, seller, buyer, unit, qty, currency, amount)
                    journal.append(record)  # its journal row (see _entry)
                    settlements[trade_id] = record
                    out.append(record)
                except BaseException:  # undo this half-applied settlement, then the batch's
                    self._undo_fast_one(seller, buyer, unit, currency, trade_id, first, s_held, b_held, b_cash,
                                        s_cash, txid0, jlen, seg, pos, (len(seg) - pos) // 3)
                    if uh is not None:
                        self._restore_hold(unit_hold, uh, u_res)  # type: ignore[arg-type]
                    if ch is not None:
                        self._restore_hold(cash_hold, ch, c_res)  # type: ignore[arg-type]
                    del seg[pos:]
                    raise
                seg += (record, first, b_held, s_cash, jlen, unit_hold, uh, cash_hold, ch, nid - first)
        return out

    def _undo_fast(self, seg: list[Any], stop: int) -> None:
        """Undo the fast-path settlements recorded in ``seg`` after index ``stop``, newest first.

        Each settlement is recorded once it has applied, as ``(block id, old block, removed
        from the queue)`` for each block it consumed or split, then 10 values: its Settled
        record, the block counter, the buyer's holding and the seller's cash as they were
        (``_MISSING`` if absent), the journal length before it, the units hold id and the
        hold as it was (None if it consumed none), the same for the cash hold, and the number
        of block triples. The seller's holding, the buyer's cash and the reserved totals
        before it are the current ones plus its quantity, amount and what it took of each
        hold (the newer settlements are undone first)."""
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
        for i in range(lo + 3 * (n - 1), lo - 1, -3):
            bid, b, popped = seg[i], seg[i + 1], seg[i + 2]
            blocks[bid] = b
            if popped and (not inner or inner[0] != bid):
                inner.appendleft(bid)
        meta["block"] = first

    def _refuse_settlement(self, trade_id: int, seller: str, buyer: str, unit: UnitType, qty: int,
                           currency: str, amount: int, unit_hold: int | None, cash_hold: int | None) -> None:
        """Raise the refusal of a settlement that ``_settle_rows`` could not carry out, the
        first that applies (it changes nothing)."""
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
