"""The registry's state and its undo log, shared by every rule family and backend.

State lives in plain dicts (the holds, reserved totals, holdings, cash balances and counters in
what the registry's ledger makes: dicts, or the compiled ledger's C records read as dicts).
Every mutation goes through an undo log of ``(container, key, old value)`` triples (the
registry's hot path, its ledger, logs a compact record instead: a hold transaction or a run of
settlements, see ``_ledger.Ledger``; the compiled ledger keeps its hold changes' records in C,
each marked in the log by ``(ledger, _LEDGER, None)`` and undone by ``ledger.undo()``), so a
refused operation, a failed settlement inside a batch, or any exception rolls back exactly what
it changed. At the end of the outermost transaction a backend's ``_commit(log)`` hook sees the
same log and writes the touched keys (the SQL backends write them in one database
transaction; memory does nothing). The persisted containers are listed in ``_persisted()``;
the others are indexes derived from them by ``_derive()``.

``Store`` holds that state, the undo log, the checks every family shares (accounts,
schemes, free units and cash) and the one way units move (``_take``: oldest block first,
or named serials). The rule families build on it, one module each: ``_issuance``
(accounts, schemes, caps, issuance, expiry), ``_transfers`` (transfers, retirement,
holds), ``_cash`` (deposits, delivery-versus-payment settlement), ``_allocation`` (free
allocation, true-up, return of excess), ``_compliance`` (emissions, surrender and its
eligibility, limits and links, carry-over, deadlines), ``_controls`` (actors, trusted lists,
controlled and pending transfers), ``_projects`` (crediting programmes, verification, the
issuance bound) and ``_linking`` (a registry's side of transfers between linked registries).
``_state.StateRegistry`` is the facade that joins them. The journal rows written through
``_append`` carry the acting person (``_actor``) and, in the ``moves`` table, the serials the
transaction moved (``_moving``; see ``_audit``); the fast settlement path writes neither.
"""

from __future__ import annotations

from abc import abstractmethod
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, pairwise
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec
from msgspec.structs import astuple, replace

from carbonbook._types import INT64_MAX, UnitType, name_fault
from carbonbook.errors import (
    AccountBlocked,
    AccountClosed,
    InsufficientUnits,
    InvalidQuantity,
    OperationRefused,
    RegistryIntegrityError,
    TerminalUnits,
    UnitNotAllowed,
    UnknownAccount,
    UnknownScheme,
)
from carbonbook.registry._audit import serial_history
from carbonbook.registry.base import (
    Account,
    AccountKind,
    AccountStatus,
    Block,
    BlockState,
    Entry,
    Holding,
    Registry,
    Scheme,
    Serials,
    Settled,
    SettlementRecord,
)

_MOVES = msgspec.json.Encoder()
if TYPE_CHECKING:
    from carbonbook.registry._ledger import Ledger

_MISSING: Any = object()
_APPEND: Any = object()
_POPLEFT: Any = object()
_PUSH: Any = object()
_REMOVE: Any = object()
_FAST: Any = object()
_HOLD: Any = object()
_LEDGER: Any = object()
PAGE = 5
"""The SQL backends store blocks in pages of 2**PAGE ids, a block in page ``id >> PAGE`` (see
``_sql``, where the size is measured)."""
_ACTIVE = BlockState.ACTIVE
_OPEN = AccountStatus.OPEN
_TERMINAL_KINDS = (AccountKind.RETIREMENT, AccountKind.CANCELLATION)
_STAY = (BlockState.EXPIRED, BlockState.EXPORTED)
"""Inactive states whose blocks stay with the account that held them (not in a terminal account)."""
_UNIT_NAMES = frozenset(str(u) for u in UnitType)

Hold = tuple[str, str, str, int]
"""(account, "units" or "cash", unit type or currency, amount)."""
Issuance = tuple[int, str, str, int]
"""(last serial, unit type, scheme, period), keyed by (origin, first serial)."""
Deadline = tuple[int, int, str | None, int, int, int | None, int]
"""(surrender deadline business day, penalty per tonne in minor units, currency, 1 once passed,
multiple of the shortfall carried into the next obligation, reporting deadline business day or
None, 1 once the reporting deadline passed), keyed by (scheme, period)."""
MissedRow = tuple[int, int]
"""(reporting deadline business day, txid) of an account without verified emissions at its
scheme's reporting deadline for a period, keyed by (account, period)."""
FinalRow = tuple[str, int, int, int, int, int, int]
"""(status, obligation, surrendered, shortfall, penalty, txid, carried into the next period) of a
period whose deadline passed, keyed by (account, period)."""
CompRow = tuple[int | None, int, int, int]
"""(verified emissions or None, surrendered, offsets surrendered, borrowed), keyed by (account, period)."""
AllocRow = tuple[str, str, int, str, str, int, int, int, int, str, int]
"""(account, scheme, period, method, unit type, qty, activity, rate, per, base years' emissions as
comma-separated text, reduction) of an allocation record (``base.Allocation``), keyed by txid."""
ControlRow = tuple[int, int, int, int | None, int]
"""(trusted_delay, outside_delay, bar_outside, limit, four_eyes) of an account (``Controls``)."""
TrustRow = tuple[str | None, str | None, int | None]
"""(proposer, approver, effective day or None), keyed by (account, trusted account)."""
PendingRow = tuple[str, str, str, int, str | None, str | None, str, int | None, int, int | None, int | None,
                   str]
"""(sender, receiver, unit, qty, proposer, approver, state, due, outside, done txid, done day, reason) of
a pending transfer, keyed by the txid that proposed it (``PendingTransfer``)."""
CertRow = tuple[str, str, str, int, str, str | None, str | None, int, str | None]
"""(account, cancellation account, unit, qty, serials as ``ORIGIN START-END`` joined by ``,``,
beneficiary, purpose, day, actor) of a voluntary cancellation, keyed by its txid (``Certificate``)."""
MonitoringRow = tuple[int, int | None, str | None, int | None]
"""(reported, verified or None, verifier, credits issued or None), keyed by (project, monitoring period)."""
ExternalRow = tuple[str, str, str, str, str, str, int, str, str]
"""(state, direction ``out``/``in``, this registry's account, the other registry, its account, unit, qty,
serial blocks as JSON, reason) of an external transfer, keyed by the transaction log's id."""
Log = list[tuple[Any, Any, Any]]
"""The undo log: ``(container, key, before)`` entries, read by unpacking (the compiled ledger's
run of settlements is an object of its own that unpacks as ``(None, _FAST, run)``)."""


class JournalRows(Protocol):
    """The registry's journal as it uses it: a list (the reference ledger's), or the compiled
    ledger's ``_cvenue.Journal``, which stores its hold rows compactly."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Entry | Settled]: ...

    def __getitem__(self, index: slice) -> list[Entry | Settled]: ...

    def __delitem__(self, index: slice) -> None: ...

    def append(self, row: Entry | Settled) -> None: ...


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


_ENTRY_DEFAULTS = tuple(f.default for f in msgspec.structs.fields(Entry))


def _stored(e: Entry | Settled) -> tuple[Any, ...]:
    """A journal row as an SQL run stores it: its Entry's fields up to the last that is not that
    field's default (msgspec reads the missing ones back as their defaults): a hold's row and a
    settlement's, 9 of the 13 (``detail``, ``actor``, ``approver`` and ``day`` dropped, 4 bytes)."""
    values = astuple(_entry(e))
    n = len(values)
    while n and _is_default(values[n - 1], _ENTRY_DEFAULTS[n - 1]):
        n -= 1
    return values[:n]


def _is_default(value: Any, default: Any) -> bool:
    return value is default or (type(value) is type(default) and value == default)


NAMED = (1, 2, 3, 4, 6, 9, 10, 11)
"""The fields of an :class:`~carbonbook.registry.base.Entry` that hold a name (kind, account,
counterparty, unit, currency, detail, actor, approver): a run of named rows stores each by its
index in the run's names (``_named``)."""


def _named(values: tuple[Any, ...], names: dict[str, int], prev: int) -> tuple[Any, ...]:
    """A journal row as stored (``_stored``) as a run of named rows stores it (see ``_sql``): its
    txid less ``prev`` (the run's previous row's txid, 0 for the first), each name (``NAMED``, None
    kept) as its index in ``names`` (the run's names by first appearance, a new one added)."""
    row = list(values)
    row[0] -= prev
    for i in NAMED:
        if i >= len(row):
            break
        v = row[i]
        if v is not None:
            v = str(v)  # a unit type as its value
            row[i] = names.setdefault(v, len(names))
    return tuple(row)


class Ledgers:
    """The registry's books beyond units and cash, in one attribute of the registry so that its
    own attributes stay few (CPython keeps an instance's attributes inline, fast to read on the
    hot paths, only up to 30 of them). Persisted like the rest (``Store._persisted``)."""

    __slots__ = ("admins", "certificates", "controls", "days", "external", "imports", "monitoring", "moves",
                 "pending", "programmes", "projects", "reps", "trusted", "verifiers")

    def __init__(self) -> None:
        # access and controls (``_controls``)
        self.admins: dict[str, int] = {}  # person -> txid that made them an administrator
        self.reps: dict[tuple[str, str], int] = {}  # (account, person) -> txid
        self.controls: dict[str, ControlRow] = {}
        self.trusted: dict[tuple[str, str], TrustRow] = {}
        self.pending: dict[int, PendingRow] = {}
        self.days: dict[int, int] = {}  # business day -> the first txid made on it
        self.certificates: dict[int, CertRow] = {}  # cancellation txid -> its certificate
        self.moves: dict[int, tuple[str, str]] = {}  # txid -> (how, JSON [[origin, first, last], ...])
        # crediting programmes (``_projects``)
        self.programmes: dict[str, str] = {}  # scheme -> JSON {methodology: project type}
        self.verifiers: dict[tuple[str, str], int] = {}  # (programme, person) -> txid
        self.projects: dict[str, tuple[str, str, str]] = {}  # project -> (programme, methodology, account)
        self.monitoring: dict[tuple[str, int], MonitoringRow] = {}
        # linked registries (``_linking``)
        self.imports: dict[tuple[str, int], Issuance] = {}  # serials that came from a linked registry
        self.external: dict[int, ExternalRow] = {}  # the transaction log's id -> this side of the transfer


_LEDGERS = {"administrators": "admins", "representatives": "reps", "controls": "controls", "trusted": "trusted",
            "pending": "pending", "days": "days", "certificates": "certificates", "moves": "moves",
            "programmes": "programmes", "verifiers": "verifiers", "projects": "projects",
            "monitoring": "monitoring", "imports": "imports", "external": "external"}
"""The persisted table of each of the ``Ledgers``."""


class _Tx:
    __slots__ = ("mark", "reg")

    def __init__(self, reg: Store) -> None:
        self.reg = reg
        self.mark = -1

    def __enter__(self) -> None:
        reg = self.reg
        if reg._log is None:
            reg._log = reg._ledger.begin()
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
            reg._moving = None
            reg._ledger.end()

class Store(Registry):
    """The state, the undo log and the shared checks and unit moves (see the module)."""

    def __init__(self) -> None:
        self._log: Log | None = None
        self._journal_mark = 0
        self._actor: str | None = None  # the person acting (``ControlRules.acting``), stamped on journal rows
        self._moving: tuple[str, list[tuple[str, int, int]]] | None = None  # serials moved, for the next row
        self.linked: Callable[[str, int, int], None] | None = None  # a transaction log's issuance check
        self._ledger = self._ledger_type(self)  # type: ignore[arg-type]  # a Store is always a whole registry
        self._reset()

    _ledger_type: ClassVar[type[Ledger]]
    """The registry's ledger, its hot path (``_ledger.Ledger`` or its compiled twin)."""

    # -- state -------------------------------------------------------------------

    def _reset(self) -> None:
        self._accounts: dict[str, Account] = {}
        self._schemes: dict[str, Scheme] = {}
        self._caps: dict[tuple[str, int], tuple[int, int]] = {}
        self._issuances: dict[tuple[str, int], Issuance] = {}
        self._blocks: dict[int, Block] = self._ledger.new_blocks()
        self._holds: dict[int, Hold] = self._ledger.new_holds()  # the compiled ledger's read as dicts
        self._cash: dict[tuple[str, str], int] = self._ledger.new_cash(self._holds)
        self._comp: dict[tuple[str, int], CompRow] = {}
        self._deadlines: dict[tuple[str, int], Deadline] = {}
        self._finals: dict[tuple[str, int], FinalRow] = {}
        self._missed: dict[tuple[str, int], MissedRow] = {}
        self._allocations: dict[int, AllocRow] = {}
        self._credit_use: dict[tuple[str, int, str], int] = {}
        self._settlements: dict[int, SettlementRecord] = self._ledger.new_settlements()
        self._checkpoint: dict[int, tuple[int, str, str]] = {}  # a venue's (carbonbook.venue.checkpoint)
        self._meta: dict[str, int] = self._ledger.new_meta()
        self._journal: JournalRows = self._ledger.new_journal()  # a settlement's row is its Settled record
        self._ledgers = Ledgers()
        # derived
        self._issued: dict[UnitType, int] = {}
        self._top: dict[str, int] = {}
        self._index: dict[tuple[str, UnitType], deque[int]] = {}
        self._held: dict[tuple[str, UnitType], int] = self._ledger.holdings(self._holds)
        self._ureserved, self._creserved = self._ledger.reserved(self._holds)
        self._ledger.bind()

    def _persisted(self) -> dict[str, dict[Any, Any]]:
        return {"accounts": self._accounts, "schemes": self._schemes, "caps": self._caps,
                "issuances": self._issuances, "blocks": self._blocks, "cash": self._cash,
                "holds": self._holds, "compliance": self._comp,
                "deadlines": self._deadlines, "finals": self._finals, "missed": self._missed,
                "allocations": self._allocations,
                "credit_use": self._credit_use, "settlements": self._settlements,
                "checkpoint": self._checkpoint, "meta": self._meta,
                **{table: getattr(self._ledgers, name) for table, name in _LEDGERS.items()}}

    def _derive(self) -> None:
        self._issued = {}
        self._top = {}
        for (origin, _start), (last, unit, _s, _p) in self._issuances.items():
            u = UnitType(unit)
            self._issued[u] = self._issued.get(u, 0) + last - _start + 1
            if last > self._top.get(origin, 0):
                self._top[origin] = last
        for (origin, _start), (last, *_rest) in self._ledgers.imports.items():
            if last > self._top.get(origin, 0):
                self._top[origin] = last
        self._index = {}
        self._held = self._ledger.holdings(self._holds)
        for bid in sorted(self._blocks):
            b = self._blocks[bid]
            if b.state is _ACTIVE:
                key = (b.holder, b.unit)
                self._inner_of(key).append(bid)
                self._held[key] = self._held.get(key, 0) + b.end - b.start + 1
        self._ureserved, self._creserved = self._ledger.reserved(self._holds)
        self._ledger.bind()

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
        if self._actor is not None and entry.actor is None:
            entry = replace(entry, actor=self._actor)
        if self._moving is not None:  # the serials the transaction moved (``_audit``)
            mode, ranges = self._moving
            self._moving = None
            self._put(self._ledgers.moves, entry.txid, (mode, _MOVES.encode(ranges).decode()))
        self._log.append((self._journal, _APPEND, len(self._journal)))
        self._journal.append(entry)

    def _undo(self, log: Log, mark: int) -> None:
        self._moving = None
        for i in range(len(log) - 1, mark - 1, -1):
            d, k, old = log[i]
            if k is _FAST:
                self._undo_fast(old, 0)
            elif k is _HOLD:
                self._undo_hold(*old)
            elif k is _LEDGER:
                d.undo()
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
    def _between_legs(self) -> None:
        """Called between the units leg and the cash leg of a settlement (a test hook)."""

    @abstractmethod
    def _undo_hold(self, hold: int, old: Any, total: Any, txid: int, jlen: int) -> None:
        """Undo a hold transaction from its undo record (``TransferRules``)."""

    @abstractmethod
    def _undo_fast(self, seg: list[Any], stop: int) -> None:
        """Undo a run of fast-path settlements (``CashRules``)."""

    @abstractmethod
    def _controlled(self, sender: str) -> bool:
        """Whether transfers out of ``sender`` go through its controls (``ControlRules``)."""

    @abstractmethod
    def _controlled_transfer(self, sender: str, receiver: str, unit: UnitType, qty: int,
                             serials: Serials | None) -> int:
        """A checked transfer out of a controlled account, at once or pending (``ControlRules``)."""

    @abstractmethod
    def _credit_issuance(self, scheme: str, unit: UnitType, qty: int, project: str | None,
                         monitoring: int | None) -> str | None:
        """Refuse an issuance a crediting programme forbids; the project's type (``ProjectRules``)."""

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
              serials: Serials | None, extra_free: int = 0, picks: Iterable[int] | None = None,
              admit: Callable[[Block], None] | None = None) -> None:
        """Move ``qty`` units of ``sender`` to ``receiver`` in ``state`` (validated here): the
        named ``serials`` (each block they touch passed to ``admit``, which may refuse it),
        else the blocks ``picks`` (ids, in order; the caller checked they cover ``qty``), else
        the oldest blocks first. A block taken in part keeps its id and
        place and gives its first serials. Cost: O(blocks touched), plus O(held blocks) per
        block a pick removes from inside the holder's queue."""
        free = self._free_units(sender, unit) + extra_free
        if serials is not None:
            self._take_serials(sender, unit, qty, receiver, state, serials, free, admit)
            named = (serials.origin, serials.start, serials.end)
            if self._moving is not None and self._moving[0] == "serials":  # several ranges in one row
                self._moving[1].append(named)
            else:
                self._moving = ("serials", [named])
            return
        if free < qty:
            held = self._held.get((sender, unit), 0)
            if held >= qty:
                raise InsufficientUnits(
                    f"account {sender!r} holds {held} {unit} but {held - free} are reserved; {qty} needed")
            raise InsufficientUnits(f"account {sender!r} holds {held} active {unit}; {qty} needed")
        inner = self._index[sender, unit]
        chosen = None if picks is None else iter(picks)
        need = qty
        blocks = self._blocks
        moved: list[tuple[str, int, int]] = []
        self._moving = ("take", moved)
        while need:
            bid = inner[0] if chosen is None else next(chosen)
            b = blocks[bid]
            n = b.end - b.start + 1
            if n <= need:
                if chosen is None:
                    self._q_popleft(inner)
                else:
                    self._q_remove(inner, bid)
                self._del(blocks, bid)
                self._place(b, b.start, b.end, receiver, state)
                moved.append((b.origin, b.start, b.end))
                need -= n
            else:
                self._put(blocks, bid, replace(b, start=b.start + need))
                self._place(b, b.start, b.start + need - 1, receiver, state)
                moved.append((b.origin, b.start, b.start + need - 1))
                need = 0
        self._add(self._held, (sender, unit), -qty)
        if state is _ACTIVE:
            self._add(self._held, (receiver, unit), qty)

    def _place(self, b: Block, start: int, end: int, holder: str, state: BlockState) -> None:
        bid = self._new_block_id()
        self._put(self._blocks, bid, replace(b, id=bid, start=start, end=end, holder=holder, state=state))
        if state is _ACTIVE:
            self._q_push(self._inner_of((holder, b.unit)), bid)

    def _take_serials(self, sender: str, unit: UnitType, qty: int, receiver: str, state: BlockState,
                      serials: Serials, free: int, admit: Callable[[Block], None] | None) -> None:
        cover = self._cover(sender, unit, qty, serials, admit)
        start, end = serials.start, serials.end
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

    def _cover(self, sender: str, unit: UnitType, qty: int, serials: Serials,
               admit: Callable[[Block], None] | None = None) -> list[Block]:
        """The blocks that hold ``serials`` (``qty`` of them), by first serial, each checked active,
        ``sender``'s, of ``unit`` and passed to ``admit``. O(blocks)."""
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
            if admit is not None:
                admit(b)
        return cover
    def _terminal_target(self, to: str, kinds: tuple[AccountKind, ...]) -> Account:
        dst = self._open(to, "receiving")
        if dst.kind not in kinds:
            raise UnitNotAllowed(f"account {to!r} is a {dst.kind} account, not {'/'.join(kinds)}")
        return dst
    def _shrink_hold(self, hold: int, cut: int) -> None:
        account, kind, asset, amount = self._holds[hold]
        if cut >= amount:
            self._del(self._holds, hold)
        else:
            self._put(self._holds, hold, (account, kind, asset, amount - cut))
        self._add(self._ureserved if kind == "units" else self._creserved, (account, asset), -min(cut, amount))
    @property
    def last_txid(self) -> int:
        return self._meta["txid"]
    # -- a venue's checkpoint table (carbonbook.venue.checkpoint) ---------------------------

    def checkpoint_row(self, key: int) -> tuple[int, str, str] | None:
        return self._checkpoint.get(key)

    def put_checkpoint_row(self, key: int, row: tuple[int, str, str]) -> None:
        if self._log is not None:  # in the caller's transaction (a venue's batch: about 0.5 us fewer)
            self._put(self._checkpoint, key, row)
            return
        with self.transaction():
            self._put(self._checkpoint, key, row)
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
        return self._dated(_entry(e) for e in self._journal if e.txid > since)

    def serial_history(self, origin: str, start: int, end: int) -> list[Holding]:
        if type(start) is not int or type(end) is not int or start > end:
            raise InvalidQuantity(f"serials {start!r}..{end!r} are not a range")
        return serial_history(self.journal(), self._ledgers.moves, origin, start, end)

    def _dated(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        """``entries`` with the business day each was made on (``Entry.day``). O(log days) each."""
        marks = sorted((txid, day) for day, txid in self._ledgers.days.items())
        firsts = [txid for txid, _ in marks]
        for e in entries:
            i = bisect_right(firsts, e.txid)
            yield replace(e, day=marks[i - 1][1] if i else 0)
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
    def _check_state(s: Store) -> None:
        def fail(msg: str) -> None:
            raise RegistryIntegrityError(msg)

        issued: dict[str, int] = {}
        terminal: dict[str, int] = {}
        active: dict[str, int] = {}
        by_origin: dict[str, list[tuple[int, int, str]]] = {}
        cap_use: dict[tuple[str, int], int] = {}
        for (origin, start), (end, unit, scheme, period) in chain(s._issuances.items(),
                                                                  s._ledgers.imports.items()):
            if end < start:
                fail(f"issuance {origin} {start}..{end} is empty")
            issued[unit] = issued.get(unit, 0) + end - start + 1
            by_origin.setdefault(origin, []).append((start, end, unit))
            if (origin, start) in s._issuances:  # imported units count against their issuer's cap
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
                if b.state not in _STAY and holder.kind not in _TERMINAL_KINDS:
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
