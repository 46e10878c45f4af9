"""The registry's hot path: holds and delivery-versus-payment settlement, as one part.

A :class:`Ledger` belongs to one registry (a ``Store``) and carries out what a venue asks of
it on every order and trade: ``reserve`` a hold, ``release`` one, ``settle`` a run of
trades. It works on the registry's own state and undo log (the containers are bound once,
again after each ``_reset`` or ``_derive``), so everything else (queries, undo, the SQL
commit, ``check``) sees what it did as if the rule families had done it.

This module is the reference. :mod:`carbonbook._cvenue` is the same ledger compiled
(Cython), with the same effect: the same results, registry state, queries, journal and SQL
rows, ``check`` results and state after a rollback at any point; not the same undo records
(it keeps its holds, their undo records and its unit blocks in C, see there). A registry uses it when the
compiled core runs (:mod:`carbonbook.core`), and both are run by the same tests.

Costs (pure): a hold transaction is one compact undo record and one journal row (about
120 bytecodes); a settlement about 300 bytecodes per trade, one compact undo record per run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import replace

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import (
    DuplicateHold,
    DuplicateTrade,
    InsufficientFunds,
    InsufficientUnits,
    InvalidQuantity,
    OperationRefused,
    RegistryError,
    UnknownHold,
)
from carbonbook.registry._store import (
    _FAST,
    _HOLD,
    _MISSING,
    _OPEN,
    _TERMINAL_KINDS,
    _UNIT_NAMES,
    PAGE,
    Hold,
    JournalRows,
    Log,
    Store,
    _hold_cut,
    _name,
    _named,
    _qty,
    _stored,
    _unit,
)
from carbonbook.registry.base import Block, Entry, Settled, SettlementFailed, SettlementRecord, SettleTerms

if TYPE_CHECKING:
    from carbonbook.registry._cash import CashRules

__all__ = ["Ledger"]

_encode = msgspec.msgpack.Encoder().encode  # the SQL commit's runs and pages (``_sql``)


def _named_run(rows: list[Entry | Settled] | list[SettlementRecord], encode: Callable[[Any], bytes]) -> bytes:
    """``encode`` of ``rows`` (journal rows or settlement records) as a run of named rows (see
    ``_sql``): ``[1, names, rows]``, a row as stored (``_stored``) with its txid less the previous
    row's and its names by index in ``names`` (``_named``); a SettlementFailed as it is (its map)."""
    names: dict[str, int] = {}
    out: list[Any] = []
    prev = 0
    for r in rows:
        if type(r) is SettlementFailed:
            out.append(r)
            continue
        values = _stored(r)  # type: ignore[arg-type]
        out.append(_named(values, names, prev))
        prev = values[0]
    return encode((1, list(names), out))


class Ledger:
    """Holds and settlement over ``reg``'s state (see the module docstring)."""

    def __init__(self, reg: CashRules) -> None:
        self.reg = reg

    @staticmethod
    def new_journal() -> JournalRows:
        """An empty journal for the registry: a list."""
        return []

    @staticmethod
    def new_meta() -> dict[str, int]:
        """The registry's counters (``_meta``), at 0: a dict."""
        return {"txid": 0, "block": 0}

    @staticmethod
    def new_holds() -> dict[int, Hold]:
        """An empty hold table for the registry (``_holds``): a dict."""
        return {}

    @staticmethod
    def new_blocks() -> dict[int, Block]:
        """The registry's blocks (``_blocks``), none: a dict."""
        return {}

    @staticmethod
    def new_settlements() -> dict[int, SettlementRecord]:
        """The registry's settlement records (``_settlements``), none: a dict."""
        return {}

    @staticmethod
    def put_back(blocks: dict[int, Block], bid: int, old: Block) -> None:
        """Undo what a settlement did to block ``bid``: ``old`` is the block as it was."""
        blocks[bid] = old

    @staticmethod
    def new_cash(holds: dict[int, Hold]) -> dict[tuple[str, str], int]:
        """The registry's cash balances (``_cash``), none: a dict."""
        return {}

    @staticmethod
    def holdings(holds: dict[int, Hold]) -> dict[tuple[str, UnitType], int]:
        """The registry's holdings of units (``_held``), none (``_derive`` counts them): a dict."""
        return {}

    @staticmethod
    def reserved(holds: dict[int, Hold]) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """The reserved totals of ``holds`` by (account, asset): of units, of cash. O(holds)."""
        units: dict[tuple[str, str], int] = {}
        cash: dict[tuple[str, str], int] = {}
        for account, kind, asset, amount in holds.values():
            target = units if kind == "units" else cash
            target[account, asset] = target.get((account, asset), 0) + amount
        return units, cash

    @staticmethod
    def wire(journal: JournalRows, start: int, run: int,
             encode: Callable[[Any], bytes]) -> list[tuple[int, bytes]]:
        """``journal``'s rows from ``start`` on as an SQL commit stores them (see ``_sql``): per
        ``run`` rows, the last one's txid and the run of named rows of them (``_named_run``: on the
        busy flow a hold's row about 14 bytes and a settlement's 20, against 35 and 46 with its names
        and txid in each row). The compiled ledger writes the same bytes without making the Entries."""
        out = []
        for lo in range(start, len(journal), run):
            rows = journal[lo:lo + run]
            out.append((rows[-1].txid, _named_run(rows, encode)))
        return out

    @staticmethod
    def pack(records: list[SettlementRecord]) -> bytes:
        """Settlement records as an SQL commit stores them (see ``_sql``): a run of named rows
        (``_named_run``), a Settled record as its journal row (about 20 bytes on the busy flow,
        against 40 as the array of its fields and 101 as its map), a SettlementFailed as its map. The
        compiled ledger writes Settled records itself, the same bytes."""
        return _named_run(records, _encode)

    @staticmethod
    def touched(log: Log, pages: set[int], records: list[SettlementRecord]) -> tuple[dict[int, Any], Log]:
        """The holds the open transaction changed that the SQL commit need not find in ``log`` (its
        undo log), each with ``_MISSING`` (absent before) or None (present), and the log left to
        walk: here none and the whole log, whose hold changes and runs of settlements are its own
        entries (``_HOLD``, ``_FAST``); the compiled ledger gives its own changes (but holds absent
        before and after: nothing to write) and the log without their marks and its runs, whose keys
        it puts in ``pages`` and ``records`` as ``settled_keys``."""
        return {}, log

    @staticmethod
    def settled_keys(seg: list[Any], pages: set[int], holds: dict[Any, Any],
                     records: list[SettlementRecord]) -> None:
        """The keys a run of fast-path settlements changed, for the SQL commit (``seg``: its
        undo values, see ``CashRules._undo_fast``): the page (``PAGE``) of each block it split,
        moved or may have made into ``pages``, each hold it consumed into ``holds`` (None), a
        key's first change kept; its records appended to ``records``, newest first (their cash
        keys: ``cash_keys``). The compiled ledger's does the same in C."""
        top = len(seg)
        if not top:
            return
        new = seg[top - 9] + seg[top - 1]  # the newest one's block counter before it and its triples
        first = new
        while top > 0:
            r, first, n = seg[top - 10], seg[top - 9], seg[top - 1]
            lo = top - 10 - 3 * n
            for i in range(lo, top - 10, 3):
                pages.add(seg[i] >> PAGE)
            records.append(r)
            if seg[top - 4] is not None:  # the holds it consumed
                holds.setdefault(seg[top - 5], None)
            if seg[top - 2] is not None:
                holds.setdefault(seg[top - 3], None)
            top = lo
        pages.update(range((first + 1) >> PAGE, (new >> PAGE) + 1) if new > first else ())  # blocks it made

    @staticmethod
    def cash_keys(records: list[SettlementRecord], cash: dict[Any, Any]) -> None:
        """Each (account, currency) whose cash the settlements ``records`` moved into ``cash``
        (None: present or unknown before, see ``settled_keys``). The compiled ledger's makes a
        key once per account and currency object (about 500 instructions fewer per venue
        message on SQLite: bench/venue.py --instructions)."""
        for r in records:
            cash[r.buyer, r.currency] = cash[r.seller, r.currency] = None

    @staticmethod
    def run_values(seg: list[Any]) -> list[Any]:
        """The undo values of a run of fast-path settlements, as ``CashRules._undo_fast`` reads them:
        here its segment itself (the compiled ledger makes them from its C records)."""
        return seg

    @staticmethod
    def page(blocks: dict[int, Block], lo: int, hi: int) -> bytes | None:
        """The MessagePack array of the blocks with ids ``lo``..``hi - 1``, by id (a page the SQL
        commit writes), or None when there are none. O(hi - lo)."""
        live = [b for b in map(blocks.get, range(lo, hi)) if b is not None]
        return _encode(live) if live else None

    @staticmethod
    def begin() -> Log:
        """An outermost transaction begins: its undo log (the compiled ledger keeps it too)."""
        return []

    def end(self) -> None:
        """The outermost transaction ended: here nothing to do (the compiled ledger forgets the
        log and the undo records it keeps in C)."""

    def bind(self) -> None:
        """Take the registry's containers again (they are new after a reset or a derive)."""
        reg = self.reg
        self.accounts = reg._accounts
        self.holds = reg._holds
        self.held = reg._held
        self.ureserved = reg._ureserved
        self.creserved = reg._creserved
        self.cash = reg._cash
        self.blocks = reg._blocks
        self.index = reg._index
        self.meta = reg._meta
        self.journal = reg._journal
        self.settlements = reg._settlements

    # -- holds -------------------------------------------------------------------------

    # Hold changes check everything before they change anything, so inside a transaction they
    # need no savepoint of their own (a refusal has changed nothing); outside one they open it.

    def reserve(self, hold: int, account: str, kind: str, asset: Any, amount: int) -> int:
        """Hold ``amount`` of ``account``'s unreserved ``asset`` (a unit type for ``kind``
        ``units``, a currency for ``cash``) under hold id ``hold``, in one transaction."""
        reg = self.reg
        if reg._log is None:
            with reg.transaction():
                return self.reserve(hold, account, kind, asset, amount)
        units = kind == "units"
        if type(amount) is not int or amount <= 0 or amount > INT64_MAX:
            _qty(amount, "quantity" if units else "amount")
        have: dict[Any, int]
        reserved: dict[Any, int]
        if units:
            if type(asset) is not UnitType:
                asset = _unit(asset)
            have, reserved = self.held, self.ureserved
        else:
            if type(asset) is not str or not asset:
                _name(asset, "currency")
            have, reserved = self.cash, self.creserved
        if type(hold) is not int or hold < 0 or hold > INT64_MAX:
            raise OperationRefused(f"hold id must be an integer in 0..2**63-1, got {hold!r}")
        if hold in self.holds:
            raise DuplicateHold(f"hold {hold} already exists")
        acc = self.accounts.get(account) if type(account) is str else None
        if acc is None or acc.status is not _OPEN:
            reg._open(account, "reserving")
        key = (account, asset)
        free = have.get(key, 0) - reserved.get(key, 0)
        if free < amount:
            if units:
                raise InsufficientUnits(f"account {account!r} has {max(free, 0)} unreserved {asset}; "
                                        f"{amount} needed")
            raise InsufficientFunds(f"account {account!r} has {free} unreserved {asset}; {amount} needed")
        txid = self.meta["txid"] + 1
        name = str(asset)
        return self._hold_tx(hold, _MISSING, (account, kind, name, amount), reserved, key, amount,
                             Entry(txid, "reserve", account, None, name, amount, None, 0, hold) if units
                             else Entry(txid, "reserve", account, None, None, 0, name, amount, hold))

    def release(self, hold: int, amount: int | None = None) -> int:
        """Give back ``amount`` of hold ``hold`` (None: all of it), in one transaction."""
        reg = self.reg
        if reg._log is None:
            with reg.transaction():
                return self.release(hold, amount)
        h = self.holds.get(hold) if type(hold) is int else None
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
        txid = self.meta["txid"] + 1
        units = kind == "units"
        return self._hold_tx(hold, h, None if amount == left else (account, kind, asset, left - amount),
                             self.ureserved if units else self.creserved, (account, asset), -amount,
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
        journal length before))`` (``_MISSING``: absent), instead of four (``Store._undo_hold``)."""
        total = reserved.get(key, _MISSING)
        txid = entry.txid
        journal = self.journal
        self.reg._log.append((None, _HOLD, (hold, before, total, txid - 1, len(journal))))  # type: ignore[union-attr]
        if after is None:
            del self.holds[hold]
        else:
            self.holds[hold] = after
        reserved[key] = delta if total is _MISSING else total + delta
        self.meta["txid"] = txid
        journal.append(entry)
        return txid

    # -- settlement ----------------------------------------------------------------------

    def settle(self, rows: Iterable[SettleTerms], dup_raises: bool) -> list[SettlementRecord]:
        """Settle each row in one transaction (``Registry.settle`` and ``settle_batch``): the
        only settlement path.

        A trade settles when both accounts are open and allowed and there are enough free
        units and cash once the trade's own holds are counted (which it consumes: up to
        ``qty`` of the seller's units hold, up to ``amount`` of the buyer's cash hold). Its
        undo information is recorded as flat values in a segment list (one
        ``(None, _FAST, segment)`` log entry for a run of settlements; see
        ``CashRules._undo_fast``): no tuple or list per trade outlives it, which keeps the
        cyclic garbage collector from promoting and rescanning thousands of log objects per
        batch. A trade the checks refuse changes nothing; ``_refuse_settlement`` names the
        refusal. Cost: about 300 bytecodes per trade (oldest block split, two cash moves,
        holds, journal row and record)."""
        reg = self.reg
        out: list[SettlementRecord] = []
        record: SettlementRecord
        with reg.transaction():
            log = reg._log
            assert log is not None
            append = log.append
            settlements = self.settlements
            accounts = self.accounts
            held = self.held
            ureserved = self.ureserved
            creserved = self.creserved
            holds: dict[Any, Hold] = self.holds  # indexed by a row's hold ids (int | None) once found
            cash = self.cash
            blocks = self.blocks
            meta = self.meta
            index = self.index
            journal = self.journal
            hook: Any = reg._between_legs  # called only when a test replaced it
            if getattr(hook, "__func__", None) is Store._between_legs:
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
                                binner = reg._inner_of(bkey)
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
                        reg._refuse_settlement(trade_id, seller, buyer, unit, qty, currency, amount,
                                               unit_hold, cash_hold)
                    except RegistryError as e:
                        record = SettlementFailed(trade_id, e.code, str(e), str(seller), str(buyer), str(unit),
                                                  qty, str(currency), amount)
                    append((settlements, trade_id, _MISSING))
                    settlements[trade_id] = record
                    out.append(record)
                    continue
                # every check above passed, so nothing below can refuse
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
                    journal.append(record)  # its journal row (see _store._entry)
                    settlements[trade_id] = record
                    out.append(record)
                except BaseException:  # undo this half-applied settlement, then the batch's
                    reg._undo_fast_one(seller, buyer, unit, currency, trade_id, first, s_held, b_held, b_cash,
                                       s_cash, txid0, jlen, seg, pos, (len(seg) - pos) // 3)
                    if uh is not None:
                        reg._restore_hold(unit_hold, uh, u_res)  # type: ignore[arg-type]
                    if ch is not None:
                        reg._restore_hold(cash_hold, ch, c_res)  # type: ignore[arg-type]
                    del seg[pos:]
                    raise
                seg += (record, first, b_held, s_cash, jlen, unit_hold, uh, cash_hold, ch, nid - first)
        return out
