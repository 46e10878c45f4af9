"""A venue: an :class:`~carbonbook.core.engine.Engine` with a carbon registry behind it.

:class:`Venue` is a composition, not a subclass: it holds an engine and four parts with one
job each, all working in one registry transaction per batch of commands:

- the **hold gate** (:class:`~carbonbook.venue.holds.HoldGate`): every book's ``risk`` and the
  engine's ``admit_bid``, called by the book just before it accepts, and after each command
  for the releases;
- the **settler** (:class:`~carbonbook.venue.settler.Settler`): trades and auction allocations to
  DvP transfers, consuming the engine's events after each command (the engine's ``stage``);
- the **checkpoint** (:class:`~carbonbook.venue.checkpoint.Checkpoint`): log position, digest and
  recorded outcomes, in the registry's ``checkpoint`` table;
- the **registry commands** (:func:`~carbonbook.registry.commands.carry_out`).

Over a registry whose ledger is the compiled one, every book's ``risk`` and the engine's
``stage`` are :class:`carbonbook._cvenue.Gate`: the common case of the hold gate and the stage
(holds taken and released, settlement with ``lag=0``) in C, with the same events and registry
state, which hands every other case to the parts above.

The venue feeds registry commands to the registry and runs of the others to
``engine.apply_all``. Together they

- **holds before it trades** (pre-trade risk, :class:`~carbonbook.core.book.PreTradeRisk`): a
  sell order is accepted only if its account has that many unreserved units of the
  instrument's unit type, a buy order only if it has the unreserved cash for
  ``price * qty`` (a market buy: its ``cap``, which it must state). The hold is taken
  under the order's id when the order is accepted (after every check of the book's own)
  and given back as the order ends: a cancelled remainder releases its share, a fill
  below a buy order's limit releases the difference at once, a market buy releases what
  its cap did not spend, and settlement consumes the rest. A modify that needs more
  takes it or is refused; one that needs less releases it. Refusals are ``rejected``
  with reason ``insufficient_units`` or ``insufficient_funds`` (or the registry's code,
  such as ``unknown_account``). There is no short selling and no overspending, even
  after an ``expire``: each resting sell whose hold it cut below what the order still
  needs (its open quantity plus its trades awaiting settlement) is cancelled after the
  ``recorded``, reason ``units_expired``, in order id order (in a call each ``cancelled``
  is followed by its ``indicative``), which releases what is left of its share of the hold;
- **carries out registry commands** of the order log (:class:`~carbonbook.commands.RegistryCommand`:
  schemes, caps, accounts, issuance, transfers, cash, emissions, surrender, retirement,
  carry-over, expiry), answering each with ``recorded`` (its transaction) or ``rejected``
  (the registry's refusal code);
- **settles every trade** delivery versus payment through a
  :class:`~carbonbook.venue.settlement.SettlementAdapter` consuming the holds: right after the
  command that made it (``lag=0``), or on the ``business_day`` that makes it due (T+``lag``).
  Each outcome is an event, ``trade_settled`` or ``settlement_failure``, in the one sequence;
- **runs primary auctions against cash**: a bid is accepted only if the bidder can hold
  ``price * qty`` (``insufficient_funds`` otherwise); when the auction clears every bid's
  hold is released and each allocation settles in its own transaction: the units are
  issued to the seller (when the auction names a ``scheme`` and ``period``; otherwise the
  seller must hold them) and delivered to the bidder against the clearing price times
  the quantity: ``allocation_settled`` or ``allocation_failed``.

Atomicity and replay
    Each ``apply`` or ``apply_all`` call is one registry transaction (or, with ``group=N``,
    one transaction spans the calls until N commands have gone in: see
    :meth:`Venue.commit`), which also stores the checkpoint's
    :attr:`~carbonbook.venue.checkpoint.Checkpoint.position`: the ``seq`` of the last event whose
    effects the registry holds. A venue opened on a registry at position ``P`` replays the
    first ``P`` events without touching the registry: registry commands and pre-trade
    refusals give their recorded outcomes, as do an expiry's cancellations (each recorded
    under its event's seq: the holds that decided them have changed since), and settlement
    is idempotent by trade id. So replaying a log into the database it already went into
    changes nothing and writes the same events, and a longer log (the same log, continued)
    picks up where the registry stopped. The position is stored with a digest of every
    command up to it: a log that differs (another log, or this one changed) is refused with
    :class:`LogMismatch` when the replay reaches ``P``, or earlier when a registry command
    or a trade finds no recorded outcome (or an expiry's recorded cancellation names no
    resting sell), before it has changed anything. If the registry fails mid-batch (the
    database is gone), the batch's registry effects are rolled back and the error
    propagates: the engine is then ahead of the registry, so the venue refuses further
    batches (:class:`VenueFailed`), and replaying the log into a new venue on that registry
    catches up.

One of many writers
    By default a venue is its registry's only writer (the command line claims it:
    ``claim_writer``). With ``shared=True`` (PostgreSQL; the registry taken with
    ``share_writer``) administrators and a settlement consumer may write the registry while
    the venue runs: each of the venue's registry transactions (each batch, or each group)
    first takes the registry's turn to write (:func:`~carbonbook.registry.writers.take_turn`:
    the ``version`` row lock, held to its commit, so nobody commits under it and the batch,
    which the engine cannot run again, never conflicts), with the registry loaded again if
    another writer committed since. Every part of the venue reads the registry through it
    (the hold gate, the settler, the checkpoint, the registry's ledger, which binds the
    reloaded state), so holds, refusals and settlements are decided on the latest committed
    state: no double spend, no lost update. A turn not had within the registry's
    ``lock_timeout`` is waited for again, up to 20 times, then
    :class:`~carbonbook.errors.RetriesExhausted`, having changed nothing (the venue goes on).
    Costs: one more database round trip per transaction, and a reload of the whole registry
    after each other writer's commit. The registry keeps one venue's checkpoint: a second
    shared venue on it is refused (``claim_venue``: RegistryInUse).

Nothing here reads the clock; business days are numbers given by the log.

>>> from carbonbook import ListInstrument, NewOrder, Side, UnitType
>>> from carbonbook.commands import Deposit, Issue, OpenAccount, OpenScheme, SetCap
>>> from carbonbook.registry import MemoryRegistry
>>> venue = Venue(MemoryRegistry())
>>> _ = venue.apply_all([OpenScheme(name="JVETS", allowances=frozenset({UnitType.JPA})),
...                      SetCap(scheme="JVETS", period=2010, cap=10_000),
...                      OpenAccount(account="tepco"), OpenAccount(account="marubeni"),
...                      Issue(account="tepco", unit=UnitType.JPA, qty=500, scheme="JVETS", period=2010),
...                      Deposit(account="marubeni", currency="JPY", amount=1_000_000),
...                      ListInstrument("JPA-2010", UnitType.JPA)])
>>> print(*[e.reason for e in venue.apply(NewOrder(1, "tepco", "JPA-2010", Side.SELL, 600, price=1450))])
insufficient_units
>>> _ = venue.apply(NewOrder(2, "tepco", "JPA-2010", Side.SELL, 500, price=1450))
>>> [e.__struct_config__.tag for e in venue.apply(NewOrder(3, "marubeni", "JPA-2010", Side.BUY, 200,
...                                                       price=1500))]
['accepted', 'trade', 'trade_settled']
>>> venue.registry.holding("marubeni", UnitType.JPA), venue.registry.balance("marubeni", "JPY")
(200, 710000)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from importlib.util import find_spec
from itertools import chain
from operator import attrgetter

import msgspec

from carbonbook._types import CancelReason, Phase, RejectReason, Side, UnitType
from carbonbook.commands import (
    BusinessDay,
    Command,
    Expire,
    ListInstrument,
    RegistryCommand,
    Undecodable,
    names_fault,
)
from carbonbook.core.book import Order, OrderBook
from carbonbook.core.engine import Depth, Engine, OrderState, Subscriber
from carbonbook.core.snapshot import EngineState
from carbonbook.errors import CarbonbookError, OperationRefused, RegistryError
from carbonbook.events import AuctionCleared, Cancelled, Event, InstrumentListed, Recorded, Rejected, Trade
from carbonbook.registry.base import Registry
from carbonbook.registry.commands import carry_out
from carbonbook.registry.writers import take_turn
from carbonbook.venue.checkpoint import Checkpoint, LogMismatch, Outcome
from carbonbook.venue.holds import HoldGate, Refused
from carbonbook.venue.settlement import Instrument, SettlementAdapter
from carbonbook.venue.settler import Settler

_GATES: dict[type, type[_cvenue.Gate]] = {}
"""The compiled gate (:class:`carbonbook._cvenue.Gate`: the hold gate's and the stage's common
case in C) for a registry whose ledger is the compiled one, when it was built."""
if find_spec("carbonbook._cvenue") is not None:
    from carbonbook import _cvenue

    _GATES[_cvenue.Ledger] = _cvenue.Gate

__all__ = ["LogMismatch", "Venue", "VenueFailed", "VenueState"]

_BUY = Side.BUY
_UNITS_EXPIRED = CancelReason.UNITS_EXPIRED
_FREEING = frozenset((Cancelled, AuctionCleared, InstrumentListed))
"""The events that may free a hold or need the venue (a command with one other event needs nothing)."""
_REGISTRY_COMMANDS = frozenset(RegistryCommand.__subclasses__())
"""Every registry command class: a set lookup, where an isinstance that fails is slow on msgspec types."""


def _disjoint(batch: Sequence[Command | Undecodable], classes: frozenset[type]) -> bool:
    """Whether no command of ``batch`` is of one of ``classes``."""
    return classes.isdisjoint(map(type, batch))


_engine_only: Callable[[Sequence[Command | Undecodable], frozenset[type]], bool] = _disjoint
"""``_disjoint``, in C where it was built (:func:`carbonbook._cvenue.engine_only`)."""
if _GATES:
    _engine_only = _cvenue.engine_only


class VenueFailed(CarbonbookError):
    """Raised by a venue one of whose batches failed part way: its engine went on ahead of
    its registry, which rolled the batch back. Open a new venue on the registry and replay
    the log (it catches up), or recover it from its journal."""


class VenueState(msgspec.Struct, frozen=True):
    """A venue's state: its engine's, the running digest of its commands, the settlement
    business day and the trades awaiting settlement with their due days."""

    engine: EngineState
    digest: int
    day: int
    pending: list[tuple[int, Trade]]


class Venue:
    """An engine with ``registry`` behind it: pre-trade holds, registry commands and settlement
    (see the module docstring).

    ``currency`` is the cash of instruments listed without one; ``lag`` the settlement lag
    in business days (0: at once; JPX's T+5 is 5); ``batch`` the trades per settlement
    transaction; ``group`` the commands per registry transaction (group commit: 0, the
    default, commits every ``apply_all``; see :meth:`commit`); ``core`` the engine's order-book
    core (:mod:`carbonbook.core`; None: the default); ``shared`` makes the venue one of the
    registry's many writers (see the module docstring). On a registry a venue already
    went through, ``currency`` and ``lag`` must be that venue's (:meth:`settings_of`), or
    :class:`LogMismatch`: they change the events.
    """

    def __init__(self, registry: Registry, *, currency: str = "JPY", lag: int = 0, batch: int = 1000,
                 group: int = 0, core: str | None = None, shared: bool = False) -> None:
        if shared:
            if not hasattr(registry, "writing"):
                raise OperationRefused(f"{type(registry).__name__} cannot queue its writers: a venue shares "
                                       "only a PostgreSQL registry")
            registry.claim_venue()  # type: ignore[attr-defined]
        self.registry = registry
        self.currency = currency
        self.group = group
        self.shared = shared
        self.checkpoint = Checkpoint(registry)
        settings = self.checkpoint.settings()
        if settings is not None and settings != (currency, lag):
            raise LogMismatch(f"the registry went through a venue with currency {settings[0]} and settlement "
                              f"lag {settings[1]}, not {currency} and {lag}: its log would give other events")
        self.settlement = SettlementAdapter(registry, {}, lag=lag, batch=batch, use_holds=True,
                                            keep_results=False)
        self._subscribers: list[Subscriber] = []
        self._failed = False  # a batch failed part way: refuse the next (VenueFailed)
        self._fold_each = False  # this batch folds its commands one by one (while replaying)
        self._open: ExitStack | None = None  # the transaction a group commit keeps open
        self._turn = False  # a shared venue holds the registry's turn to write
        self._grouped = 0  # commands in it
        self._wire(Engine(core))

    def _wire(self, engine: Engine) -> None:
        """Put ``engine`` (new, or restored) under the venue's parts."""
        self.engine = engine
        ledger = getattr(self.registry, "_ledger", None)
        gate = _GATES.get(type(ledger))
        self.holds = HoldGate(self.registry, engine, self.checkpoint, self.currency,
                              None if gate is None else gate.new_buys())
        self.settler = Settler(self.registry, engine, self.checkpoint, self.holds, self.settlement)
        if gate is not None:  # the same events and registry state, the common case in C
            self._gate: HoldGate | _cvenue.Gate = gate(ledger, self.holds, self.settler, self, self._stage)
            engine.stage = self._gate
        else:
            self._gate = self.holds
            engine.stage = self._stage
        engine.admit_bid = self.holds.admit_bid
        for symbol in engine.symbols:
            self._attach(engine.book(symbol))
        self.holds.rebuild()

    @staticmethod
    def settings_of(registry: Registry) -> tuple[str, int] | None:
        """The ``(currency, lag)`` of the venue whose log ``registry`` went through (recorded
        with its first batch in its checkpoint); None for a new one."""
        return Checkpoint(registry).settings()

    @staticmethod
    def settings_for(registry: Registry | None, currency: str | None = None,
                     lag: int | None = None) -> tuple[str, int]:
        """``(currency, lag)`` for a venue on ``registry``: those given, else those it recorded
        (:meth:`settings_of`), else the defaults JPY and 0."""
        stored = (None if registry is None else Venue.settings_of(registry)) or ("JPY", 0)
        return stored[0] if currency is None else currency, stored[1] if lag is None else lag

    # -- state ---------------------------------------------------------------------

    def export_venue_state(self) -> VenueState:
        """The venue's whole state as data (its registry is not part of it). O(orders + ids)."""
        return VenueState(self.engine.export_state(), self.checkpoint.digest, self.settlement.day,
                          self.settlement.queue)

    @classmethod
    def from_venue_state(cls, registry: Registry, state: VenueState, *, currency: str = "JPY", lag: int = 0,
                         batch: int = 1000, group: int = 0, core: str | None = None,
                         shared: bool = False) -> Venue:
        """A venue equal to the one ``state`` was exported from, on ``registry``, which must hold
        at least the events up to the state (it may hold more: the venue then catches up, as
        one opened on it would). :class:`LogMismatch` if the registry is behind the state."""
        venue = cls(registry, currency=currency, lag=lag, batch=batch, group=group, core=core, shared=shared)
        checkpoint = venue.checkpoint
        if checkpoint.replayed < state.engine.seq - 1:
            raise LogMismatch(f"the registry holds events up to {checkpoint.replayed}, "
                              f"behind the venue state's {state.engine.seq - 1}")
        checkpoint.replaying = checkpoint.replayed > state.engine.seq - 1
        checkpoint.digest = state.digest
        venue.settlement.requeue(state.pending, state.day)
        venue._wire(Engine.from_state(state.engine, venue.engine.core))
        return venue

    # -- commands ------------------------------------------------------------------

    def apply(self, command: Command | Undecodable) -> list[Event]:
        """Apply one command in one registry transaction; return its events."""
        return self.apply_all((command,))

    def apply_all(self, commands: Iterable[Command | Undecodable], decoded: bool = False) -> list[Event]:
        """Apply commands in order, in one registry transaction; return their events
        (``decoded`` as for :meth:`Engine.apply_all`), which subscribers also get as one list."""
        events = self._batch(commands, decoded, None)
        self.publish(events)
        return events

    def dispatch_marked(self, commands: Sequence[Command | Undecodable], starts: list[int]) -> list[Event]:
        """As :meth:`Engine.dispatch_marked`, in one registry transaction."""
        return self._batch(commands, False, starts)

    def _batch(self, commands: Iterable[Command | Undecodable], decoded: bool,
               starts: list[int] | None) -> list[Event]:
        """Apply a batch in the registry's transaction and advance the checkpoint; a failure
        part way marks the venue failed (:class:`VenueFailed`)."""
        if self._failed:
            raise VenueFailed("an earlier batch failed part way and its registry rolled it back: open a new "
                              "venue on the registry and replay the log")
        batch = commands if isinstance(commands, (list, tuple)) else list(commands)
        checkpoint = self.checkpoint
        events: list[Event] = []
        if self.group and self._open is None:
            self._open = self._begin()
        # the batch's own transaction (a shared venue's takes the registry's turn first), or one
        # nested in a group's
        scope = self._begin() if self.shared and self._open is None else self.registry.transaction()
        try:
            with scope:
                self._fold_each = checkpoint.replaying
                if not self._fold_each:  # folded first, while the commands are in the cache (a busy
                    checkpoint.fold(batch)  # memory venue about 3 % faster than after the run: timed A/B)
                events = self._run(batch, events, decoded, starts)
                if events:
                    checkpoint.advance(events[-1].seq, (self.currency, self.settlement.lag))
            if self._open is not None:
                self._grouped += len(batch)
                if self._grouped >= self.group:
                    self.commit()
        except BaseException as e:
            self._failed = True
            if self._open is not None:  # the whole group rolls back
                opened, self._open = self._open, None
                opened.__exit__(type(e), e, e.__traceback__)
            raise
        return events

    def _begin(self) -> ExitStack:
        """Enter a registry transaction (a batch's, a group's or a journal's); a shared venue first
        takes the registry's turn to write unless it holds it, for as long as the transaction.
        Raises (RetriesExhausted: no turn) having changed nothing."""
        stack = ExitStack()
        if self.shared and not self._turn:
            take_turn(self.registry, stack)
            self._turn = True
            stack.callback(setattr, self, "_turn", False)
        try:
            stack.enter_context(self.registry.transaction())
        except BaseException:
            stack.close()
            raise
        return stack

    def _run(self, batch: Sequence[Command | Undecodable], events: list[Event], decoded: bool,
             starts: list[int] | None) -> list[Event]:
        """Registry commands to the registry, runs of the others to the engine: ``events`` with
        theirs appended, or the engine's list itself for a batch with none (the common case, found
        in one scan in C; the events not copied into ``events``)."""
        if _engine_only(batch, _REGISTRY_COMMANDS):
            if batch and starts is None and not events:
                return self.engine.apply_all(batch, decoded)
            if batch:
                self._engine_run(batch, events, decoded, starts)
            return events
        run = 0
        for i, command in enumerate(batch):
            if command.__class__ in _REGISTRY_COMMANDS:
                if run < i:
                    self._engine_run(batch[run:i], events, decoded, starts)
                if starts is not None:
                    starts.append(len(events))
                self._registry_command(command, events)
                run = i + 1
        if run < len(batch):
            self._engine_run(batch[run:] if run else batch, events, decoded, starts)
        return events

    def _engine_run(self, run: Sequence[Command | Undecodable], events: list[Event], decoded: bool,
                    starts: list[int] | None) -> None:
        if starts is None:
            events += self.engine.apply_all(run, decoded)
        else:
            base = len(events)
            marks: list[int] = []
            events += self.engine.dispatch_marked(run, marks)
            starts += [base + m for m in marks]

    def _stage(self, command: Command | Undecodable, events: list[Event], start: int) -> None:
        """After each engine command: the books it listed go under the hold gate, the holds its
        events free are released, its trades and allocations settle. A command with one event
        that frees nothing (an order accepted to rest, a refusal) costs one test."""
        if len(events) - start == 1 and events[start].__class__ not in _FREEING:
            if self._fold_each:
                self.checkpoint.fold_one(command, events[-1].seq)
            return
        trades = self.holds.released(command, events, start)
        if trades:
            self.settler.settle(trades, events)
        elif command.__class__ is ListInstrument and events[start].__class__ is InstrumentListed:
            self._attach(self.engine.book(command.symbol))
        elif events[-1].__class__ is AuctionCleared:
            self.settler.allocate(events[-1], events)
        if self._fold_each:
            self.checkpoint.fold_one(command, events[-1].seq)

    def _attach(self, book: OrderBook) -> None:
        """Put a book under the hold gate, and tell settlement what its trades move."""
        book.risk = self._gate
        self.settlement.instruments[book.symbol] = Instrument(book.unit, self.holds.currency_of(book))

    # -- group commit ----------------------------------------------------------------

    def commit(self) -> None:
        """Commit the registry transaction a group commit keeps open (a no-op without one).

        With ``group=N`` the batches join one registry transaction until N commands went in;
        their events are returned (and published) before it commits, so a crash loses the
        registry effects of at most the last N commands (and never part of a batch): the
        checkpoint's position is that of the last commit, and replaying the log (or recovering
        the journal, which is written ahead) into a venue on the registry carries out exactly
        the rest. Call it before closing the registry."""
        opened, self._open = self._open, None
        self._grouped = 0
        if opened is not None:
            try:
                opened.__exit__(None, None, None)
            except BaseException:
                self._failed = True
                raise

    # -- registry commands ---------------------------------------------------------------

    def _registry_command(self, cmd: Command, events: list[Event]) -> None:
        if cmd.__class__ is BusinessDay:
            self.settler.business_day(cmd, events)
        else:
            seq = self.engine.take_seq()
            tag = str(cmd.__struct_config__.tag)
            outcome = self.checkpoint.once(seq, tag, partial(self._carry_out, cmd, tag))
            if outcome.reason:
                events.append(Rejected(seq, None, outcome.reason, outcome.detail))
            else:
                events.append(Recorded(seq, tag, outcome.txid or None, outcome.detail))
                if cmd.__class__ is Expire:
                    self._cancel_uncovered(cmd, events)
        if self._fold_each:
            self.checkpoint.fold_one(cmd, events[-1].seq)

    def _carry_out(self, cmd: Command, tag: str) -> str:
        fault = names_fault(cmd)  # a hand-built command's names (decoding checked the log's)
        if fault is not None:
            raise Refused(RejectReason.MALFORMED, f"{tag}: {fault}")
        try:
            return carry_out(self.registry, cmd)  # type: ignore[arg-type]
        except RegistryError:  # some are ValueErrors too (bad_qty): they keep their own code
            raise
        except (TypeError, ValueError) as e:  # a hand-built command with values of the wrong kind
            raise Refused(RejectReason.MALFORMED, f"{tag}: {e}") from None

    def _cancel_uncovered(self, cmd: Expire, events: list[Event]) -> None:
        """After an expiry of ``cmd.unit``: cancel (``units_expired``), in order id order, every
        resting sell of an instrument of that unit type whose hold no longer covers what it still
        needs (its open quantity plus its trades awaiting settlement); the cancellations release
        what is left of their holds as any cancellation does.

        Each cancellation is recorded under its event's seq (the order id as detail), in the
        batch's transaction like the expiry: a replay cannot tell from the registry's holds,
        which are those of a later event, which orders were short then, so it cancels the
        recorded ones. O(resting sells of the unit type)."""
        engine = self.engine
        checkpoint = self.checkpoint
        start = len(events)
        if engine.next_seq <= checkpoint.replayed:
            while (done := checkpoint.outcome(engine.next_seq)) is not None and done.reason == _UNITS_EXPIRED:
                order = engine.open_order(int(done.detail)) if done.detail.isdigit() else None
                if order is None or order.side == _BUY or engine.book(order.symbol).unit != cmd.unit:
                    raise LogMismatch(f"event {engine.next_seq} cancelled order {done.detail}, not a resting "
                                      f"sell of {cmd.unit} here: the registry went through another log")
                engine.book(order.symbol).cancel(order, events, _UNITS_EXPIRED)
        else:
            for order in self._uncovered(cmd.unit):
                seq = engine.next_seq
                engine.book(order.symbol).cancel(order, events, _UNITS_EXPIRED)
                checkpoint.record(seq, Outcome(0, _UNITS_EXPIRED, str(order.id)))
        self.holds.released(cmd, events, start)

    def _uncovered(self, unit: UnitType) -> list[Order]:
        """The resting sells of ``unit``'s instruments whose hold is short of their open quantity
        plus their trades awaiting settlement, by order id."""
        waiting: Counter[int] = Counter()
        for t in self.settlement.pending:  # lag > 0: a trade's units leave the hold when it settles
            waiting[t.sell_id] += t.qty
        hold = self.registry.hold
        short = []
        for symbol in self.engine.symbols:
            book = self.engine.book(symbol)
            if book.unit != unit:
                continue
            for order in chain(book.market_asks, *(level.live() for level in book.asks.levels.values())):
                if order.qty and hold(order.id) < order.qty + waiting[order.id]:
                    short.append(order)
        short.sort(key=attrgetter("id"))
        return short

    # -- the engine's interface ------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next event will take. O(1)."""
        return self.engine.next_seq

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` with the events of every later ``apply`` or ``apply_all``."""
        self._subscribers.append(subscriber)

    def publish(self, events: list[Event]) -> None:
        """Hand ``events`` to every subscriber, as :meth:`apply_all` does once applied."""
        for subscriber in self._subscribers:
            subscriber(events)

    def export_state(self) -> VenueState:
        """:meth:`export_venue_state` (the name a journal calls, see :mod:`carbonbook.operations.journal`)."""
        return self.export_venue_state()

    def restore(self, state: VenueState) -> Venue:
        """A new venue from ``state`` on this venue's registry, with its settings
        (:meth:`from_venue_state`): what a journal calls."""
        return Venue.from_venue_state(self.registry, state, currency=self.currency, lag=self.settlement.lag,
                                      batch=self.settlement.batch, group=self.group, core=self.engine.core,
                                      shared=self.shared)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The registry's transaction (shared: in the registry's turn to write), which a journal
        writes each batch in before it commits."""
        with self._begin() if self.shared else self.registry.transaction():
            yield

    def store_ahead(self) -> int:
        """Events the registry holds past this venue's (0: none): commands it never applied."""
        return max(0, self.checkpoint.position - (self.engine.next_seq - 1))

    def state_hash(self) -> str:
        """The engine's :meth:`~carbonbook.core.engine.Engine.state_hash`."""
        return self.engine.state_hash()

    @property
    def symbols(self) -> list[str]:
        """The listed instruments, in listing order."""
        return self.engine.symbols

    def book(self, symbol: str) -> OrderBook:
        """The book of ``symbol``; KeyError if it is not listed."""
        return self.engine.book(symbol)

    def best_bid(self, symbol: str) -> int | None:
        """As :meth:`Engine.best_bid`."""
        return self.engine.best_bid(symbol)

    def best_ask(self, symbol: str) -> int | None:
        """As :meth:`Engine.best_ask`."""
        return self.engine.best_ask(symbol)

    def phase(self, symbol: str) -> Phase:
        """As :meth:`Engine.phase`."""
        return self.engine.phase(symbol)

    def depth(self, symbol: str, levels: int = 5) -> Depth:
        """As :meth:`Engine.depth`."""
        return self.engine.depth(symbol, levels)

    def indicative(self, symbol: str) -> tuple[int | None, int, int]:
        """As :meth:`Engine.indicative`."""
        return self.engine.indicative(symbol)

    def queue(self, symbol: str, side: Side, price: int) -> list[OrderState]:
        """As :meth:`Engine.queue`."""
        return self.engine.queue(symbol, side, price)

    def order(self, oid: int) -> OrderState | None:
        """As :meth:`Engine.order`."""
        return self.engine.order(oid)

    def snapshot(self) -> dict[str, dict[str, list[list[int | None]]]]:
        """As :meth:`Engine.snapshot`."""
        return self.engine.snapshot()

    def check(self) -> None:
        """As :meth:`Engine.check`."""
        self.engine.check()
