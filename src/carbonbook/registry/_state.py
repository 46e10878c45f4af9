"""The registry's rules over an in-memory state, shared by every backend.

State lives in plain dicts. Every mutation goes through an undo log of ``(container,
key, old value)`` triples (two hot paths log a compact record instead: a hold
transaction, see ``_hold_tx``, and a run of settlements, see ``_settle_rows``), so a
refused operation, a failed settlement inside a batch, or any exception rolls back
exactly what it changed. At the end of the outermost transaction a backend's
``_commit(log)`` hook sees the same log and writes the touched keys (the SQL backends
write them in one database transaction; memory does nothing). The persisted containers
are listed in ``_persisted()``; the others are indexes derived from them by
``_derive()``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from itertools import pairwise
from types import TracebackType
from typing import Any

from msgspec.structs import replace

from carbonbook._types import INT64_MAX, UnitType, name_fault
from carbonbook.errors import (
    AccountBlocked,
    AccountClosed,
    CapExceeded,
    DuplicateAccount,
    DuplicateHold,
    DuplicateScheme,
    DuplicateSerial,
    DuplicateTrade,
    InsufficientFunds,
    InsufficientUnits,
    InvalidQuantity,
    OffsetLimitExceeded,
    OperationRefused,
    RegistryError,
    RegistryIntegrityError,
    SameAccount,
    TerminalUnits,
    UnitNotAllowed,
    UnknownAccount,
    UnknownHold,
    UnknownScheme,
)
from carbonbook.registry.base import (
    EXPIRING_UNITS,
    PROJECT_UNITS,
    Account,
    AccountKind,
    AccountStatus,
    Block,
    BlockState,
    Compliance,
    ComplianceStatus,
    Entry,
    Registry,
    Scheme,
    Serials,
    Settled,
    SettlementFailed,
    SettlementRecord,
    SettleTerms,
)

_MISSING: Any = object()
_APPEND: Any = object()
_POPLEFT: Any = object()
_PUSH: Any = object()
_REMOVE: Any = object()
_FAST: Any = object()
_HOLD: Any = object()
_ACTIVE = BlockState.ACTIVE
_OPEN = AccountStatus.OPEN
_TERMINAL_KINDS = (AccountKind.RETIREMENT, AccountKind.CANCELLATION)
_UNIT_NAMES = frozenset(str(u) for u in UnitType)

Hold = tuple[str, str, str, int]
"""(account, "units" or "cash", unit type or currency, amount)."""
Issuance = tuple[int, str, str, int]
"""(last serial, unit type, scheme, period), keyed by (origin, first serial)."""
CompRow = tuple[int | None, int, int]
"""(verified emissions or None, surrendered, offsets surrendered), keyed by (account, period)."""
Log = list[tuple[Any, Any, Any]]


def _qty(value: object, what: str = "quantity") -> int:
    if type(value) is not int or value <= 0 or value > INT64_MAX:
        raise InvalidQuantity(f"{what} must be a positive integer below 2**63, got {value!r}")
    return value


def _name(value: object, what: str) -> str:
    fault = name_fault(value)
    if fault is not None:
        raise OperationRefused(f"{what} {fault}, got {value!r:.80}")
    return value  # type: ignore[return-value]


def _period(value: object) -> int:
    if type(value) is not int or not 0 <= value <= 999_999:
        raise OperationRefused(f"period must be an integer in 0..999999, got {value!r}")
    return value


def _unit(value: object) -> UnitType:
    if type(value) is UnitType:
        return value
    try:
        return UnitType(str(value)) if isinstance(value, str) else UnitType("")
    except ValueError:
        raise UnitNotAllowed(f"unknown unit type {value!r}") from None


def _hold_cut(hold: Hold | None, account: str, kind: str, asset: str, need: int) -> int:
    """How much of ``need`` a settlement takes from ``hold``, its trade's own hold: up to the
    hold's amount when it is ``account``'s ``kind`` hold of ``asset``, else nothing."""
    if hold is None or hold[0] != account or hold[1] != kind or hold[2] != asset:
        return 0
    return need if need < hold[3] else hold[3]


def _entry(e: Entry | Settled) -> Entry:
    """A journal row as an Entry (the fast path journals a settlement as its Settled record)."""
    if isinstance(e, Settled):
        return Entry(e.txid, "settle", e.seller, e.buyer, e.unit, e.qty, e.currency, e.amount, e.trade_id)
    return e


class _Tx:
    __slots__ = ("mark", "reg")

    def __init__(self, reg: StateRegistry) -> None:
        self.reg = reg
        self.mark = -1

    def __enter__(self) -> None:
        reg = self.reg
        if reg._log is None:
            reg._log = []
            reg._journal_mark = len(reg._journal)
            self.mark = -1
        else:
            self.mark = len(reg._log)

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        reg = self.reg
        log = reg._log
        assert log is not None
        if self.mark >= 0:
            if et is not None:
                reg._undo(log, self.mark)
            return
        try:
            if et is None and log:
                try:
                    reg._commit(log)
                except BaseException:
                    reg._undo(log, 0)
                    raise
            elif et is not None:
                reg._undo(log, 0)
        finally:
            reg._log = None


class StateRegistry(Registry):
    """The registry rules over dicts with an undo log; backends add persistence."""

    def __init__(self) -> None:
        self._log: Log | None = None
        self._journal_mark = 0
        self._reset()

    # -- state -------------------------------------------------------------------

    def _reset(self) -> None:
        self._accounts: dict[str, Account] = {}
        self._schemes: dict[str, Scheme] = {}
        self._caps: dict[tuple[str, int], tuple[int, int]] = {}
        self._issuances: dict[tuple[str, int], Issuance] = {}
        self._blocks: dict[int, Block] = {}
        self._cash: dict[tuple[str, str], int] = {}
        self._holds: dict[int, Hold] = {}
        self._comp: dict[tuple[str, int], CompRow] = {}
        self._settlements: dict[int, SettlementRecord] = {}
        self._checkpoint: dict[int, tuple[int, str, str]] = {}  # a venue's (carbonbook.checkpoint)
        self._meta: dict[str, int] = {"txid": 0, "block": 0}
        self._journal: list[Entry | Settled] = []  # a fast-path settlement's row is its Settled record
        # derived
        self._issued: dict[UnitType, int] = {}
        self._top: dict[str, int] = {}
        self._index: dict[tuple[str, UnitType], deque[int]] = {}
        self._held: dict[tuple[str, UnitType], int] = {}
        self._ureserved: dict[tuple[str, str], int] = {}
        self._creserved: dict[tuple[str, str], int] = {}

    def _persisted(self) -> dict[str, dict[Any, Any]]:
        return {"accounts": self._accounts, "schemes": self._schemes, "caps": self._caps,
                "issuances": self._issuances, "blocks": self._blocks, "cash": self._cash,
                "holds": self._holds, "compliance": self._comp, "settlements": self._settlements,
                "checkpoint": self._checkpoint, "meta": self._meta}

    def _derive(self) -> None:
        self._issued = {}
        self._top = {}
        for (origin, _start), (last, unit, _s, _p) in self._issuances.items():
            u = UnitType(unit)
            self._issued[u] = self._issued.get(u, 0) + last - _start + 1
            if last > self._top.get(origin, 0):
                self._top[origin] = last
        self._index = {}
        self._held = {}
        for bid in sorted(self._blocks):
            b = self._blocks[bid]
            if b.state is _ACTIVE:
                key = (b.holder, b.unit)
                self._inner_of(key).append(bid)
                self._held[key] = self._held.get(key, 0) + b.end - b.start + 1
        self._ureserved = {}
        self._creserved = {}
        for account, kind, asset, amount in self._holds.values():
            target = self._ureserved if kind == "units" else self._creserved
            target[account, asset] = target.get((account, asset), 0) + amount

    def _inner_of(self, key: tuple[str, UnitType]) -> deque[int]:
        """The active block ids of a holder and unit type, oldest (lowest id) first."""
        inner = self._index.get(key)
        if inner is None:
            inner = self._index[key] = deque()
        return inner

    def _q_push(self, q: deque[int], bid: int) -> None:
        assert self._log is not None
        self._log.append((q, _PUSH, None))
        q.append(bid)

    def _q_popleft(self, q: deque[int]) -> None:
        assert self._log is not None
        self._log.append((q, _POPLEFT, q.popleft()))

    def _q_remove(self, q: deque[int], bid: int) -> None:
        assert self._log is not None
        i = q.index(bid)
        del q[i]
        self._log.append((q, _REMOVE, (i, bid)))

    # -- undo log ----------------------------------------------------------------

    def _put(self, d: dict[Any, Any], k: Any, v: Any) -> None:
        assert self._log is not None
        self._log.append((d, k, d.get(k, _MISSING)))
        d[k] = v

    def _del(self, d: dict[Any, Any], k: Any) -> None:
        assert self._log is not None
        self._log.append((d, k, d.pop(k)))

    def _add(self, d: dict[Any, int], k: Any, delta: int) -> None:
        assert self._log is not None
        old = d.get(k, _MISSING)
        self._log.append((d, k, old))
        d[k] = (0 if old is _MISSING else old) + delta

    def _append(self, entry: Entry) -> None:
        assert self._log is not None
        self._log.append((self._journal, _APPEND, len(self._journal)))
        self._journal.append(entry)

    def _undo(self, log: Log, mark: int) -> None:
        for i in range(len(log) - 1, mark - 1, -1):
            d, k, old = log[i]
            if k is _FAST:
                self._undo_fast(old, 0)
            elif k is _HOLD:
                self._undo_hold(*old)
            elif k is _APPEND:
                del d[old:]
            elif k is _PUSH:
                d.pop()
            elif k is _POPLEFT:
                d.appendleft(old)
            elif k is _REMOVE:
                d.insert(*old)
            elif old is _MISSING:
                d.pop(k, None)
            else:
                d[k] = old
        del log[mark:]

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

    def _commit(self, log: Log) -> None:
        """Persist a finished outermost transaction (backends override)."""

    def transaction(self) -> _Tx:
        return _Tx(self)

    def _txid(self) -> int:
        txid = self._meta["txid"] + 1
        self._put(self._meta, "txid", txid)
        return txid

    def _new_block_id(self) -> int:
        bid = self._meta["block"] + 1
        self._put(self._meta, "block", bid)
        return bid

    # -- validation --------------------------------------------------------------

    def _acct(self, account: object) -> Account:
        acc = self._accounts.get(account) if type(account) is str else None
        if acc is None:
            raise UnknownAccount(f"account {account!r} does not exist")
        return acc

    def _open(self, account: object, role: str) -> Account:
        acc = self._acct(account)
        if acc.status is not _OPEN:
            if acc.status is AccountStatus.BLOCKED:
                raise AccountBlocked(f"{role} account {account!r} is blocked")
            raise AccountClosed(f"{role} account {account!r} is closed")
        return acc

    @staticmethod
    def _may_hold(acc: Account, unit: UnitType) -> None:
        if acc.kind in _TERMINAL_KINDS:
            raise UnitNotAllowed(f"{acc.kind} account {acc.id!r} cannot hold transferable units")
        if acc.units is not None and unit not in acc.units:
            raise UnitNotAllowed(f"account {acc.id!r} may not hold {unit} units")

    def _scheme(self, name: object) -> Scheme:
        scheme = self._schemes.get(name) if type(name) is str else None
        if scheme is None:
            raise UnknownScheme(f"scheme {name!r} does not exist")
        return scheme

    def _free_units(self, account: str, unit: UnitType) -> int:
        return max(0, self._held.get((account, unit), 0) - self._ureserved.get((account, unit), 0))

    def _free_cash(self, account: str, currency: str) -> int:
        return self._cash.get((account, currency), 0) - self._creserved.get((account, currency), 0)

    # -- moving units --------------------------------------------------------------

    def _take(self, sender: str, unit: UnitType, qty: int, receiver: str, state: BlockState,
              serials: Serials | None, extra_free: int = 0) -> None:
        """Move ``qty`` units of ``sender`` to ``receiver`` in ``state`` (validated here)."""
        free = self._free_units(sender, unit) + extra_free
        if serials is not None:
            self._take_serials(sender, unit, qty, receiver, state, serials, free)
            return
        if free < qty:
            held = self._held.get((sender, unit), 0)
            if held >= qty:
                raise InsufficientUnits(
                    f"account {sender!r} holds {held} {unit} but {held - free} are reserved; {qty} needed")
            raise InsufficientUnits(f"account {sender!r} holds {held} active {unit}; {qty} needed")
        inner = self._index[sender, unit]
        need = qty
        blocks = self._blocks
        while need:
            bid = inner[0]
            b = blocks[bid]
            n = b.end - b.start + 1
            if n <= need:
                self._q_popleft(inner)
                self._del(blocks, bid)
                self._place(b, b.start, b.end, receiver, state)
                need -= n
            else:
                self._put(blocks, bid, Block(bid, b.origin, b.unit, b.start + need, b.end, b.holder,
                                             b.state, b.period, b.scheme, b.project, b.expiry))
                self._place(b, b.start, b.start + need - 1, receiver, state)
                need = 0
        self._add(self._held, (sender, unit), -qty)
        if state is _ACTIVE:
            self._add(self._held, (receiver, unit), qty)

    def _place(self, b: Block, start: int, end: int, holder: str, state: BlockState) -> None:
        bid = self._new_block_id()
        self._put(self._blocks, bid, Block(bid, b.origin, b.unit, start, end, holder, state, b.period,
                                           b.scheme, b.project, b.expiry))
        if state is _ACTIVE:
            self._q_push(self._inner_of((holder, b.unit)), bid)

    def _take_serials(self, sender: str, unit: UnitType, qty: int, receiver: str, state: BlockState,
                      serials: Serials, free: int) -> None:
        if type(serials) is not Serials:
            raise OperationRefused(f"serials must be a Serials (origin, start, end), got {serials!r}")
        origin, start, end = serials.origin, serials.start, serials.end
        if type(start) is not int or type(end) is not int or start > end or end - start + 1 != qty:
            raise InvalidQuantity(f"serials {start}..{end} do not make {qty} units")
        cover = sorted((b for b in self._blocks.values()
                        if b.origin == origin and b.start <= end and b.end >= start),
                       key=lambda b: b.start)
        if sum(min(b.end, end) - max(b.start, start) + 1 for b in cover) != qty:
            raise InsufficientUnits(f"serials {origin} {start}..{end} were not all issued")
        for b in cover:
            if b.state is not _ACTIVE:
                raise TerminalUnits(f"serials {origin} {b.start}..{b.end} are {b.state}: they never move again")
            if b.holder != sender or b.unit is not unit:
                raise InsufficientUnits(f"serials {origin} {max(b.start, start)}..{min(b.end, end)} "
                                        f"are not {unit} held by {sender!r}")
        if free < qty:
            raise InsufficientUnits(f"account {sender!r} has {free} unreserved {unit}; {qty} needed")
        inner = self._index[sender, unit]
        for b in cover:
            self._q_remove(inner, b.id)
            self._del(self._blocks, b.id)
            lo, hi = max(b.start, start), min(b.end, end)
            if b.start < lo:
                self._place(b, b.start, lo - 1, sender, _ACTIVE)
            self._place(b, lo, hi, receiver, state)
            if hi < b.end:
                self._place(b, hi + 1, b.end, sender, _ACTIVE)
        self._add(self._held, (sender, unit), -qty)
        if state is _ACTIVE:
            self._add(self._held, (receiver, unit), qty)

    # -- accounts and schemes ------------------------------------------------------

    def open_account(self, account: str, kind: AccountKind = AccountKind.HOLDING, *,
                     units: Iterable[UnitType] | None = None, scheme: str | None = None) -> int:
        with self.transaction():
            _name(account, "account id")
            if account in self._accounts:
                raise DuplicateAccount(f"account {account!r} already exists")
            try:
                kind = AccountKind(kind)
            except ValueError:
                raise OperationRefused(f"unknown account kind {kind!r}") from None
            allowed = None if units is None else frozenset(_unit(u) for u in units)
            if scheme is not None:
                self._scheme(scheme)
            self._put(self._accounts, account, Account(account, kind, _OPEN, allowed, scheme))
            txid = self._txid()
            self._append(Entry(txid, "open", account, detail=str(kind)))
            return txid

    def set_status(self, account: str, status: AccountStatus) -> int:
        with self.transaction():
            acc = self._acct(account)
            try:
                status = AccountStatus(status)
            except ValueError:
                raise OperationRefused(f"unknown account status {status!r}") from None
            if acc.status is AccountStatus.CLOSED:
                raise AccountClosed(f"account {account!r} is closed: closing is final")
            self._put(self._accounts, account, Account(acc.id, acc.kind, status, acc.units, acc.scheme))
            txid = self._txid()
            self._append(Entry(txid, "status", account, detail=str(status)))
            return txid

    def account(self, account: str) -> Account:
        return self._acct(account)

    def create_scheme(self, scheme: Scheme) -> int:
        with self.transaction():
            _name(scheme.name, "scheme name")
            if scheme.name in self._schemes:
                raise DuplicateScheme(f"scheme {scheme.name!r} already exists")
            if type(scheme.offset_percent) is not int or not 0 <= scheme.offset_percent <= 100:
                raise InvalidQuantity(
                    f"offset_percent must be an integer in 0..100, got {scheme.offset_percent!r}")
            if not scheme.allowances:
                raise OperationRefused(f"scheme {scheme.name!r} issues no unit type")
            clean = Scheme(scheme.name, frozenset(_unit(u) for u in scheme.allowances),
                           frozenset(_unit(u) for u in scheme.credits), scheme.offset_percent,
                           bool(scheme.banking))
            if clean.allowances & clean.credits:
                raise OperationRefused("a unit type cannot be both an allowance and a credit")
            self._put(self._schemes, scheme.name, clean)
            txid = self._txid()
            self._append(Entry(txid, "scheme", "", detail=scheme.name))
            return txid

    def set_cap(self, scheme: str, period: int, cap: int) -> int:
        with self.transaction():
            self._scheme(scheme)
            _period(period)
            _qty(cap, "cap")
            issued = self._caps.get((scheme, period), (0, 0))[1]
            if cap < issued:
                raise CapExceeded(f"scheme {scheme!r} already issued {issued} for {period}; cap {cap} is below")
            self._put(self._caps, (scheme, period), (cap, issued))
            txid = self._txid()
            self._append(Entry(txid, "cap", "", qty=cap, ref=period, detail=scheme))
            return txid

    # -- units ---------------------------------------------------------------------

    def issue(self, account: str, unit: UnitType, qty: int, *, scheme: str, period: int,
              origin: str = "JP", start: int | None = None, project: str | None = None,
              expiry: int | None = None) -> Block:
        with self.transaction():
            _qty(qty)
            unit = _unit(unit)
            acc = self._open(account, "issuing")
            if acc.kind not in (AccountKind.ISSUANCE, AccountKind.HOLDING):
                raise UnitNotAllowed(f"cannot issue into {acc.kind} account {account!r}")
            self._may_hold(acc, unit)
            sch = self._scheme(scheme)
            if unit not in sch.allowances and unit not in sch.credits:
                raise UnitNotAllowed(f"scheme {scheme!r} does not issue {unit}")
            _period(period)
            _name(origin, "origin")
            if unit in PROJECT_UNITS and (type(project) is not str or not project):
                raise OperationRefused(f"{unit} units need a project id")
            if unit in EXPIRING_UNITS and type(expiry) is not int:
                raise OperationRefused(f"{unit} units need an expiry period")
            if expiry is not None and _period(expiry) < period:
                raise OperationRefused(f"expiry {expiry} is before the units' period {period}")
            cap, issued = self._caps.get((scheme, period), (0, 0))
            if issued + qty > cap:
                raise CapExceeded(f"scheme {scheme!r} may issue {cap - issued} more for {period}; {qty} asked")
            if start is None:
                start = self._top.get(origin, 0) + 1
            elif type(start) is not int or start < 1:
                raise InvalidQuantity(f"first serial must be a positive integer, got {start!r}")
            end = start + qty - 1
            if end > INT64_MAX:
                raise InvalidQuantity(f"serials {start}..{end} go past 2**63 - 1")
            for (o, s), (e, *_rest) in self._issuances.items():
                if o == origin and s <= end and e >= start:
                    raise DuplicateSerial(f"serials {origin} {start}..{end} overlap issued {s}..{e}")
            self._put(self._caps, (scheme, period), (cap, issued + qty))
            self._put(self._issuances, (origin, start), (end, str(unit), scheme, period))
            self._add(self._issued, unit, qty)
            if end > self._top.get(origin, 0):
                self._put(self._top, origin, end)
            bid = self._new_block_id()
            block = Block(bid, origin, unit, start, end, account, _ACTIVE, period, scheme, project, expiry)
            self._put(self._blocks, bid, block)
            self._q_push(self._inner_of((account, unit)), bid)
            self._add(self._held, (account, unit), qty)
            txid = self._txid()
            self._append(Entry(txid, "issue", account, unit=unit, qty=qty, ref=period,
                               detail=f"{scheme} {origin} {start}..{end}"))
            return block

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
            self._take(sender, unit, qty, receiver, _ACTIVE, serials)
            txid = self._txid()
            self._append(Entry(txid, "transfer", sender, receiver, unit, qty))
            return txid

    def _terminal_target(self, to: str, kinds: tuple[AccountKind, ...]) -> Account:
        dst = self._open(to, "receiving")
        if dst.kind not in kinds:
            raise UnitNotAllowed(f"account {to!r} is a {dst.kind} account, not {'/'.join(kinds)}")
        return dst

    def surrender(self, account: str, period: int, unit: UnitType, qty: int, *, to: str) -> int:
        with self.transaction():
            _qty(qty)
            unit = _unit(unit)
            _period(period)
            acc = self._open(account, "surrendering")
            if acc.scheme is None:
                raise OperationRefused(f"account {account!r} has no compliance scheme")
            self._terminal_target(to, (AccountKind.RETIREMENT,))
            sch = self._schemes[acc.scheme]
            verified, surrendered, offsets = self._comp.get((account, period), (None, 0, 0))
            credit = unit in sch.credits
            if credit:
                limit = sch.offset_percent * self._obligation(account, period) // 100
                if offsets + qty > limit:
                    raise OffsetLimitExceeded(
                        f"scheme {sch.name!r} allows {limit} credits for {account!r} in {period} "
                        f"({sch.offset_percent}% of the obligation); {offsets} used, {qty} more asked")
            elif unit not in sch.allowances:
                raise UnitNotAllowed(f"scheme {sch.name!r} does not accept {unit}")
            self._take(account, unit, qty, to, BlockState.SURRENDERED, None)
            self._put(self._comp, (account, period),
                      (verified, surrendered + qty, offsets + (qty if credit else 0)))
            txid = self._txid()
            self._append(Entry(txid, "surrender", account, to, unit, qty, ref=period))
            return txid

    def retire(self, account: str, unit: UnitType, qty: int, *, to: str,
               serials: Serials | None = None) -> int:
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
            self._take(account, unit, qty, to, state, serials)
            txid = self._txid()
            self._append(Entry(txid, "retire" if state is BlockState.RETIRED else "cancel",
                               account, to, unit, qty))
            return txid

    def carry_over(self, account: str, unit: UnitType, period: int) -> int:
        with self.transaction():
            unit = _unit(unit)
            _period(period)
            self._open(account, "banking")
            if unit in EXPIRING_UNITS or unit is UnitType.RMU:
                raise OperationRefused(f"{unit} units cannot be carried over")
            inner = self._index.get((account, unit), deque())
            moving = [self._blocks[bid] for bid in inner if self._blocks[bid].period == period]
            for b in moving:
                if not self._schemes[b.scheme].banking:
                    raise OperationRefused(f"scheme {b.scheme!r} does not allow banking")
                if b.expiry is not None and b.expiry <= period:
                    raise OperationRefused(f"serials {b.origin} {b.start}..{b.end} expire in {b.expiry}")
            total = 0
            for b in moving:
                self._put(self._blocks, b.id, Block(b.id, b.origin, b.unit, b.start, b.end, b.holder,
                                                    b.state, period + 1, b.scheme, b.project, b.expiry))
                total += b.end - b.start + 1
            if total:
                txid = self._txid()
                self._append(Entry(txid, "carry_over", account, unit=unit, qty=total, ref=period))
            return total

    def expire(self, unit: UnitType, period: int) -> int:
        with self.transaction():
            unit = _unit(unit)
            _period(period)
            dying = [b for b in self._blocks.values()
                     if b.state is _ACTIVE and b.unit is unit
                     and (b.period if b.expiry is None else b.expiry) <= period]
            total = 0
            touched: set[str] = set()
            for b in dying:
                n = b.end - b.start + 1
                self._q_remove(self._index[b.holder, unit], b.id)
                self._put(self._blocks, b.id, Block(b.id, b.origin, unit, b.start, b.end, b.holder,
                                                    BlockState.EXPIRED, b.period, b.scheme, b.project,
                                                    b.expiry))
                self._add(self._held, (b.holder, unit), -n)
                touched.add(b.holder)
                total += n
            for holder in sorted(touched):  # shrink holds the expiry left uncovered, newest first
                excess = self._ureserved.get((holder, unit), 0) - self._held[holder, unit]
                for hid in sorted(self._holds, reverse=True):
                    if excess <= 0:
                        break
                    account, kind, asset, amount = self._holds[hid]
                    if account == holder and kind == "units" and asset == unit:
                        cut = min(excess, amount)
                        self._shrink_hold(hid, cut)
                        excess -= cut
            if total:
                txid = self._txid()
                self._append(Entry(txid, "expire", "", unit=unit, qty=total, ref=period))
            return total

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

    def _shrink_hold(self, hold: int, cut: int) -> None:
        account, kind, asset, amount = self._holds[hold]
        if cut >= amount:
            self._del(self._holds, hold)
        else:
            self._put(self._holds, hold, (account, kind, asset, amount - cut))
        self._add(self._ureserved if kind == "units" else self._creserved, (account, asset), -min(cut, amount))

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

    @property
    def last_txid(self) -> int:
        return self._meta["txid"]

    def hold(self, hold: int) -> int:
        entry = self._holds.get(hold)
        return 0 if entry is None else entry[3]

    # -- a venue's checkpoint table (carbonbook.checkpoint) ---------------------------

    def checkpoint_row(self, key: int) -> tuple[int, str, str] | None:
        return self._checkpoint.get(key)

    def put_checkpoint_row(self, key: int, row: tuple[int, str, str]) -> None:
        with self.transaction():
            self._put(self._checkpoint, key, row)

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

    # -- compliance ----------------------------------------------------------------

    def record_emissions(self, account: str, period: int, tonnes: int) -> int:
        with self.transaction():
            acc = self._acct(account)
            if acc.scheme is None:
                raise OperationRefused(f"account {account!r} has no compliance scheme")
            _period(period)
            if type(tonnes) is not int or not 0 <= tonnes <= INT64_MAX:
                raise InvalidQuantity(f"emissions must be a non-negative integer, got {tonnes!r}")
            verified, surrendered, offsets = self._comp.get((account, period), (None, 0, 0))
            if verified is not None:
                raise OperationRefused(f"emissions of {account!r} for {period} are already recorded")
            self._put(self._comp, (account, period), (tonnes, surrendered, offsets))
            txid = self._txid()
            self._append(Entry(txid, "emissions", account, qty=tonnes, ref=period))
            return txid

    def _obligation(self, account: str, period: int) -> int:
        periods = [p for (a, p) in self._comp if a == account and p <= period]
        carry = 0
        obligation = 0
        for p in range(min(periods), period + 1) if periods else ():
            verified, surrendered, _ = self._comp.get((account, p), (None, 0, 0))
            obligation = (verified or 0) + carry
            carry = max(0, obligation - surrendered)
        return obligation

    def compliance(self, account: str, period: int) -> Compliance:
        self._acct(account)
        verified, surrendered, offsets = self._comp.get((account, period), (None, 0, 0))
        obligation = self._obligation(account, period)
        shortfall = max(0, obligation - surrendered)
        if verified is None:
            status = ComplianceStatus.C
        else:
            status = ComplianceStatus.A if surrendered >= obligation else ComplianceStatus.B
        return Compliance(account, period, verified, obligation, surrendered, offsets, shortfall, status)

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
            if getattr(hook, "__func__", None) is StateRegistry._between_legs:
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

    # -- queries -------------------------------------------------------------------

    def holding(self, account: str, unit: UnitType) -> int:
        return self._held.get((account, unit), 0)

    def available(self, account: str, unit: UnitType) -> int:
        return self._free_units(account, unit)

    def balance(self, account: str, currency: str) -> int:
        return self._cash.get((account, currency), 0)

    def available_cash(self, account: str, currency: str) -> int:
        return self._free_cash(account, currency)

    def blocks(self, account: str | None = None, unit: UnitType | None = None) -> list[Block]:
        return sorted((b for b in self._blocks.values()
                       if (account is None or b.holder == account) and (unit is None or b.unit == unit)),
                      key=lambda b: (b.origin, b.start))

    def issued(self, unit: UnitType) -> int:
        return self._issued.get(unit, 0)

    def journal(self, since: int = 0) -> Iterator[Entry]:
        return (_entry(e) for e in self._journal if e.txid > since)

    # -- invariants ----------------------------------------------------------------

    def check(self) -> None:
        self._check_state(self)
        derived = (dict(self._issued), dict(self._top), {k: list(v) for k, v in self._index.items() if v},
                   {k: v for k, v in self._held.items() if v},
                   {k: v for k, v in self._ureserved.items() if v},
                   {k: v for k, v in self._creserved.items() if v})
        self._derive()
        again = (self._issued, self._top, {k: list(v) for k, v in self._index.items() if v},
                 {k: v for k, v in self._held.items() if v},
                 {k: v for k, v in self._ureserved.items() if v},
                 {k: v for k, v in self._creserved.items() if v})
        if derived != again:
            raise RegistryIntegrityError("derived indexes differ from the stored state")

    @staticmethod
    def _check_state(s: StateRegistry) -> None:
        def fail(msg: str) -> None:
            raise RegistryIntegrityError(msg)

        issued: dict[str, int] = {}
        terminal: dict[str, int] = {}
        active: dict[str, int] = {}
        by_origin: dict[str, list[tuple[int, int, str]]] = {}
        cap_use: dict[tuple[str, int], int] = {}
        for (origin, start), (end, unit, scheme, period) in s._issuances.items():
            if end < start:
                fail(f"issuance {origin} {start}..{end} is empty")
            issued[unit] = issued.get(unit, 0) + end - start + 1
            by_origin.setdefault(origin, []).append((start, end, unit))
            cap_use[scheme, period] = cap_use.get((scheme, period), 0) + end - start + 1
        for key, (cap, used) in s._caps.items():
            if used != cap_use.get(key, 0) or used > cap:
                fail(f"cap {key}: {used} recorded, {cap_use.get(key, 0)} issued, cap {cap}")
        for origin, ranges in by_origin.items():
            ranges.sort()
            for (_s0, e0, _u0), (s1, _e1, _u1) in pairwise(ranges):
                if s1 <= e0:
                    fail(f"issued serials overlap in {origin} at {s1}")
        spans: dict[str, list[tuple[int, int, str]]] = {}
        holdings: dict[tuple[str, str], int] = {}
        for bid, b in s._blocks.items():
            n = b.end - b.start + 1
            if bid != b.id or n <= 0:
                fail(f"block {bid} is malformed: {b}")
            spans.setdefault(b.origin, []).append((b.start, b.end, str(b.unit)))
            holder = s._accounts.get(b.holder)
            if holder is None:
                fail(f"block {bid} is held by missing account {b.holder!r}")
                continue
            if b.state is _ACTIVE:
                active[b.unit] = active.get(b.unit, 0) + n
                holdings[b.holder, b.unit] = holdings.get((b.holder, b.unit), 0) + n
                if holder.kind in _TERMINAL_KINDS:
                    fail(f"active block {bid} sits in {holder.kind} account {b.holder!r}")
            else:
                terminal[b.unit] = terminal.get(b.unit, 0) + n
                if b.state is not BlockState.EXPIRED and holder.kind not in _TERMINAL_KINDS:
                    fail(f"{b.state} block {bid} sits in {holder.kind} account {b.holder!r}")
        for origin, blocks in spans.items():
            blocks.sort()
            ranges = sorted(by_origin.get(origin, []))
            # blocks must tile the issued ranges exactly, unit type by unit type
            i = 0
            for start, end, unit in ranges:
                pos = start
                while pos <= end:
                    if i >= len(blocks) or blocks[i][0] != pos or blocks[i][1] > end or blocks[i][2] != unit:
                        fail(f"blocks do not tile issued serials {origin} {start}..{end} at {pos}")
                    pos = blocks[i][1] + 1
                    i += 1
            if i != len(blocks):
                fail(f"blocks of {origin} lie outside every issuance")
        if set(spans) - set(by_origin) or set(by_origin) - set(spans):
            fail("issued origins and block origins differ")
        for unit in set(issued) | set(active) | set(terminal):
            if issued.get(unit, 0) - terminal.get(unit, 0) != active.get(unit, 0):
                fail(f"{unit}: issued {issued.get(unit, 0)} - terminal {terminal.get(unit, 0)} "
                     f"!= active {active.get(unit, 0)}")
        for cash_key, amount in s._cash.items():
            if amount < 0:
                fail(f"negative cash {cash_key}: {amount}")
        reserved: dict[tuple[str, str, str], int] = {}
        for hid, (account, kind, asset, amount) in s._holds.items():
            if amount <= 0:
                fail(f"hold {hid} is not positive")
            reserved[account, kind, asset] = reserved.get((account, kind, asset), 0) + amount
        for (account, kind, asset), amount in reserved.items():
            have = (holdings.get((account, asset), 0) if kind == "units"
                    else s._cash.get((account, asset), 0))
            if amount > have:
                fail(f"holds of {account!r} on {asset} ({amount}) exceed what it has ({have})")
        last = 0
        for e in s._journal:
            if e.txid <= last:
                fail(f"journal txid {e.txid} after {last}")
            last = e.txid
        if last > s._meta["txid"]:
            fail("journal is ahead of the txid counter")
        if any(b > s._meta["block"] for b in s._blocks):
            fail("a block id is ahead of the block counter")
