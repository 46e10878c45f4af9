"""A venue: an :class:`~carbonbook.engine.Engine` with a carbon registry behind it.

:class:`Venue` is an engine that also

- **holds before it trades** (pre-trade risk, :class:`~carbonbook.book.PreTradeRisk`): a
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
  :class:`~carbonbook.settlement.SettlementAdapter` consuming the holds: right after the
  command that made it (``lag=0``), or on the ``business_day`` that makes it due (T+``lag``).
  Each outcome is an event, ``trade_settled`` or ``settlement_failure``, in the one sequence;
- **runs primary auctions against cash**: a bid is accepted only if the bidder can hold
  ``price * qty`` (``insufficient_funds`` otherwise); when the auction clears every bid's
  hold is released and each allocation settles in its own transaction: the units are
  issued to the seller (when the auction names a ``scheme`` and ``period``; otherwise the
  seller must hold them) and delivered to the bidder against the clearing price times
  the quantity: ``allocation_settled`` or ``allocation_failed``.

Atomicity and replay
    Each ``apply`` or ``apply_all`` call is one registry transaction, which also stores
    the registry's :attr:`~carbonbook.registry.base.Registry.position`: the ``seq`` of the
    last event whose effects it holds. A venue opened on a registry at position ``P``
    replays the first ``P`` events without touching the registry: registry commands and
    pre-trade refusals give their recorded outcomes, as do an expiry's cancellations (each
    recorded under its event's seq: the holds that decided them have changed since),
    and settlement is idempotent by trade id. So replaying a log into the database it
    already went into changes nothing and writes the same events, and a longer log (the
    same log, continued) picks up where the registry stopped. The position is stored with
    a digest of every command up to it: a log that differs (another log, or this one
    changed) is refused with :class:`LogMismatch` when the replay reaches ``P``, or earlier
    when a registry command or a trade finds no recorded outcome (or an expiry's recorded
    cancellation names no resting sell), before it has changed anything. If the registry
    fails mid-batch (the database is gone), the batch's registry effects are rolled back
    and the error propagates: the engine is then ahead of the registry, so the venue
    refuses further batches (:class:`VenueFailed`), and replaying the log into a new venue
    on that registry catches up.

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
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from hashlib import blake2b
from itertools import chain
from operator import attrgetter
from typing import Any, TypeVarTuple

import msgspec

from carbonbook._types import INT64_MAX, CancelReason, RejectReason, Side, UnitType
from carbonbook.auction import BidAllocation
from carbonbook.book import FILLED, Order, OrderBook
from carbonbook.commands import (
    BusinessDay,
    CancelOrder,
    CarryOver,
    Command,
    Deposit,
    Expire,
    Issue,
    ListInstrument,
    NewOrder,
    OpenAccount,
    OpenAuction,
    OpenScheme,
    PlaceBid,
    RecordEmissions,
    RegistryCommand,
    Retire,
    SetAccountStatus,
    SetCap,
    Surrender,
    Transfer,
    Undecodable,
    names_fault,
)
from carbonbook.engine import Engine
from carbonbook.errors import CarbonbookError, InsufficientFunds, InsufficientUnits, RegistryError
from carbonbook.events import (
    AllocationFailed,
    AllocationSettled,
    AuctionCleared,
    Cancelled,
    Event,
    Recorded,
    Rejected,
    SettlementFailure,
    Trade,
    TradeSettled,
)
from carbonbook.registry.base import (
    AccountKind,
    AccountStatus,
    Outcome,
    Registry,
    Scheme,
    Settled,
    SettlementRecord,
)
from carbonbook.settlement import Instrument, SettlementAdapter
from carbonbook.snapshot import EngineState

__all__ = ["LogMismatch", "Venue", "VenueFailed", "VenueState"]

_BUY = Side.BUY
_encode = msgspec.json.Encoder(order="deterministic").encode  # sets sorted, whatever the hash seed
_MARKET = 0  # the limit recorded for a market buy
_UNITS_EXPIRED = CancelReason.UNITS_EXPIRED
_SETTINGS = "venue_settings"  # the reason of the outcome under seq 0: "CURRENCY LAG"
_NO_FUNDS = RejectReason.INSUFFICIENT_FUNDS
Ts = TypeVarTuple("Ts")


class LogMismatch(CarbonbookError):
    """Raised when a log replayed into a registry is not the log the registry went through."""


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


class Venue(Engine):
    """An engine with ``registry`` behind it: pre-trade holds, registry commands and settlement
    (see the module docstring).

    ``currency`` is the cash of instruments listed without one; ``lag`` the settlement lag
    in business days (0: at once; JPX's T+5 is 5); ``batch`` the trades per settlement
    transaction. On a registry a venue already went through, ``currency`` and ``lag`` must
    be that venue's (:meth:`settings_of`), or :class:`LogMismatch`: they change the events.
    """

    def __init__(self, registry: Registry, *, currency: str = "JPY", lag: int = 0, batch: int = 1000) -> None:
        super().__init__()
        self.registry = registry
        self.currency = currency
        self.settlement = SettlementAdapter(registry, {}, lag=lag, batch=batch, use_holds=True,
                                            keep_results=False)
        self._replayed = registry.position
        settings = Venue.settings_of(registry)
        if settings is not None and settings != (currency, lag):
            raise LogMismatch(f"the registry went through a venue with currency {settings[0]} and settlement "
                              f"lag {settings[1]}, not {currency} and {lag}: its log would give other events")
        self._failed = False  # a batch failed part way: refuse the next (VenueFailed)
        self._digest = bytes(8)  # a running hash of every command so far (see _fold)
        self._catching_up = self._replayed > 0  # until the events pass the registry's position
        # buy orders that may still hold cash: id -> limit price (_MARKET for a market buy)
        self._buys: dict[int, int] = {}
        self._handlers: dict[type, Callable[[Any], str]] = {
            OpenScheme: self._open_scheme, SetCap: self._set_cap, OpenAccount: self._open_account,
            SetAccountStatus: self._set_status, Issue: self._issue, Transfer: self._transfer,
            Deposit: self._deposit, RecordEmissions: self._emissions, Surrender: self._surrender,
            Retire: self._retire, CarryOver: self._carry_over, Expire: self._expire,
        }

    @staticmethod
    def settings_of(registry: Registry) -> tuple[str, int] | None:
        """The ``(currency, lag)`` of the venue whose log ``registry`` went through (recorded
        with its first batch as the outcome of seq 0, which no event has); None for a new one."""
        stored = registry.outcome(0)
        if stored is None or stored.reason != _SETTINGS:
            return None
        currency, lag = stored.detail.rsplit(" ", 1)
        return currency, int(lag)

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
        return VenueState(self.export_state(), int.from_bytes(self._digest, "big", signed=True),
                          self.settlement.day, self.settlement.queue)

    @classmethod
    def from_venue_state(cls, registry: Registry, state: VenueState, *, currency: str = "JPY", lag: int = 0,
                         batch: int = 1000) -> Venue:
        """A venue equal to the one ``state`` was exported from, on ``registry``, which must hold
        at least the events up to the state (it may hold more: the venue then catches up, as
        one opened on it would). :class:`LogMismatch` if the registry is behind the state."""
        venue = cls(registry, currency=currency, lag=lag, batch=batch)
        venue._restore(state.engine)
        if venue._replayed < state.engine.seq - 1:
            raise LogMismatch(f"the registry holds events up to {venue._replayed}, "
                              f"behind the venue state's {state.engine.seq - 1}")
        venue._catching_up = venue._replayed > state.engine.seq - 1
        venue._digest = state.digest.to_bytes(8, "big", signed=True)
        venue.settlement.requeue(state.pending, state.day)
        for book in venue._books.values():
            venue._attach(book)
            for level in book.bids.levels.values():
                for order in level.live():
                    venue._buys[order.id] = order.price
        return venue

    # -- commands ------------------------------------------------------------------

    def apply(self, command: Command | Undecodable) -> list[Event]:
        """Apply one command in one registry transaction; return its events."""
        return self.apply_all((command,))

    def apply_all(self, commands: Iterable[Command | Undecodable], decoded: bool = False) -> list[Event]:
        """Apply commands in order, in one registry transaction; return their events
        (``decoded`` as for :meth:`Engine.apply_all`)."""
        self._usable()
        events: list[Event] = []
        try:
            with self.registry.transaction():
                dispatch = self._dispatch
                for command in commands:
                    dispatch(command, events, decoded)
                self._advance(events)
        except BaseException:
            self._failed = True
            raise
        self.publish(events)
        return events

    def dispatch_marked(self, commands: Sequence[Command | Undecodable], starts: list[int]) -> list[Event]:
        """As :meth:`Engine.dispatch_marked`, in one registry transaction."""
        self._usable()
        try:
            with self.registry.transaction():
                events = super().dispatch_marked(commands, starts)
                self._advance(events)
        except BaseException:
            self._failed = True
            raise
        return events

    def _usable(self) -> None:
        """Refuse a batch once one failed part way (:class:`VenueFailed`)."""
        if self._failed:
            raise VenueFailed("an earlier batch failed part way and its registry rolled it back: open a new "
                              "venue on the registry and replay the log")

    def _advance(self, events: list[Event]) -> None:
        """Store the position (the batch's last event) and the digest so far (and, with the
        first batch, the venue's settings: see :meth:`settings_of`)."""
        reg = self.registry
        if events and events[-1].seq > reg.position:
            if reg.position == 0 and reg.outcome(0) is None:
                reg.record_outcome(0, Outcome(0, _SETTINGS, f"{self.currency} {self.settlement.lag}"))
            reg.set_position(events[-1].seq, int.from_bytes(self._digest, "big", signed=True))

    def _fold(self, command: Command | Undecodable, events: list[Event], start: int) -> None:
        """Fold a command into the running digest; where the registry's position is reached
        again, the digest must be the one stored with it. (Commands suffice: their events
        follow from them and from registry outcomes, which are recorded and checked.)"""
        self._digest = digest = blake2b(self._digest + _encode(command), digest_size=8).digest()
        replayed = self._replayed
        if self._catching_up and start < len(events) and events[-1].seq >= replayed:
            if int.from_bytes(digest, "big", signed=True) != self.registry.position_digest:
                raise LogMismatch(f"the commands up to event {replayed} differ from those the registry "
                                  "went through: it holds another log")
            self._catching_up = False

    def _dispatch(self, command: Command | Undecodable, events: list[Event], decoded: bool = False) -> None:
        cls = command.__class__
        start = len(events)
        # orders and cancels skip the isinstance test: one that fails is slow on msgspec types
        if cls is not NewOrder and cls is not CancelOrder and isinstance(command, RegistryCommand):
            if cls is BusinessDay:
                self._business_day(command, events)  # type: ignore[arg-type]
            else:
                self._registry_command(command, events)
        else:
            super()._dispatch(command, events, decoded)
            if cls is ListInstrument:
                book = self._books.get(command.symbol)  # type: ignore[union-attr]
                if book is not None:
                    self._attach(book)
            self._after(command, events, start)
        self._fold(command, events, start)

    # -- pre-trade holds (PreTradeRisk) ----------------------------------------------

    def admit(self, book: OrderBook, cmd: NewOrder) -> tuple[str, str] | None:
        """Take the hold of a new order about to be accepted, or say why it cannot be."""
        if cmd.side != _BUY:
            return self._hold_once(self.registry.reserve, cmd.id, cmd.account, book.unit, cmd.qty)
        amount = cmd.cap if cmd.price is None else cmd.price * cmd.qty
        refusal = self._hold_once(self._reserve_cash, cmd.id, cmd.account, self._currency(book), amount)
        if refusal is None:
            self._buys[cmd.id] = cmd.price or _MARKET
        return refusal

    def amend(self, book: OrderBook, order: Order, price: int, qty: int) -> tuple[str, str] | None:
        """Resize the hold of a resting order about to become ``qty`` at ``price``, or say why not."""
        is_buy = order.side == _BUY
        delta = price * qty - order.price * order.qty if is_buy else qty - order.qty
        refusal = self._hold_once(self._resize, book, order, delta)
        if refusal is None and is_buy:
            self._buys[order.id] = price
        return refusal

    def _resize(self, book: OrderBook, order: Order, delta: int) -> None:
        """Grow or shrink the hold of ``order`` by ``delta`` (units; cash for a buy order)."""
        reg = self.registry
        oid = order.id
        if delta > 0:  # a hold grows by being taken again, whole, in one transaction
            with reg.transaction():
                total = reg.hold(oid) + delta
                reg.release(oid)
                if order.side == _BUY:
                    self._reserve_cash(oid, order.account, self._currency(book), total)
                else:
                    reg.reserve(oid, order.account, book.unit, total)
        elif delta < 0:
            reg.release(oid, -delta)

    def _admit_bid(self, bid: PlaceBid, auction: OpenAuction) -> tuple[str, str] | None:
        """Hold ``price * qty`` of the bidder's cash for a bid about to be accepted, or say why not."""
        currency = auction.currency or self.currency
        return self._hold_once(self._reserve_cash, bid.id, bid.account, currency, bid.price * bid.qty)

    def _hold_once(self, act: Callable[[*Ts], object], *args: *Ts) -> tuple[str, str] | None:
        """Run a hold change ``act(*args)`` (atomic: one registry call, or a resize in its own
        transaction) for the command whose answer takes the next seq; a refusal (the registry's,
        or a :class:`_Refused`) is recorded under that seq and returned. While catching up,
        nothing runs: the recorded refusal, if any, is returned."""
        if self._catching_up and (seq := self.next_seq) <= self._replayed:
            outcome = self.registry.outcome(seq)
            return None if outcome is None else (outcome.reason, outcome.detail)
        try:
            act(*args)
            return None
        except RegistryError as e:
            refusal = _refusal(e)
        self.registry.record_outcome(self.next_seq, Outcome(0, *refusal))
        return refusal

    def _reserve_cash(self, hold: int, account: str, currency: str, amount: int | None) -> None:
        """Hold ``amount`` of cash (None: a market buy that states no cap)."""
        if amount is None:
            raise _Refused(_NO_FUNDS, "a market buy must state a cap (the most it may spend)")
        if amount > INT64_MAX:
            raise _Refused(_NO_FUNDS, f"the order would hold {amount}, past 2**63 - 1")
        self.registry.reserve_cash(hold, account, currency, amount)

    def _release(self, hold: int, amount: int) -> None:
        """Give back ``amount`` of a hold, or what is left of it (settlement may have taken it)."""
        left = self.registry.hold(hold)
        if amount > left:
            amount = left
        if amount > 0:
            self.registry.release(hold, amount)

    def _after(self, command: Command | Undecodable, events: list[Event], start: int) -> None:
        """Release what the events of one trading command free, then settle (or queue) its trades."""
        replayed = self._replayed
        buys = self._buys
        trades: list[Trade] = []
        spent = 0
        for e in events[start:]:  # by exact type: isinstance is slow when it fails on msgspec types
            if type(e) is Trade:
                trades.append(e)
                limit = buys.get(e.buy_id)
                if limit == _MARKET:
                    spent += e.price * e.qty
                elif limit is not None and limit > e.price and e.seq > replayed:
                    self._release(e.buy_id, (limit - e.price) * e.qty)
            elif type(e) is Cancelled:
                limit = buys.get(e.id)
                if limit == _MARKET:
                    continue  # a market buy gives back what its cap did not spend, below
                if limit is not None:
                    del buys[e.id]
                if e.seq > replayed:
                    self._release(e.id, e.qty if limit is None else limit * e.qty)
            elif type(e) is AuctionCleared:
                self._settle_auction(e, events)
        if (type(command) is NewOrder and command.cap is not None
                and buys.pop(command.id, None) == _MARKET and events[start].seq > replayed):
            self._release(command.id, command.cap - spent)
        if trades:
            index = self._index
            for t in trades:  # filled buys hold nothing more to give back at a better price
                if index.get(t.buy_id) is FILLED:
                    buys.pop(t.buy_id, None)
            self._settle(trades, events)

    # -- settlement ----------------------------------------------------------------------

    def _attach(self, book: OrderBook) -> None:
        """Put a book under the venue's holds, and tell settlement what its trades move."""
        book.risk = self
        self.settlement.instruments[book.symbol] = Instrument(book.unit, self._currency(book))

    def _settle(self, trades: list[Trade], events: list[Event]) -> None:
        adapter = self.settlement
        if adapter.lag:
            adapter(trades)
        else:
            self._check_settled(trades)
            self._settlement_events(adapter.settle_trades(trades), trades, events)

    def _check_settled(self, trades: list[Trade]) -> None:
        """While replaying what the registry holds, every trade settling now settled then."""
        for t in trades:
            if t.seq <= self._replayed and self.registry.settlement(t.seq) is None:
                raise LogMismatch(f"trade {t.seq} was never settled in this registry: it holds another log")

    def _settlement_events(self, records: list[SettlementRecord], trades: list[Trade],
                           events: list[Event]) -> None:
        by_id = {t.seq: t for t in trades}
        for r in records:
            seq = next(self._seq)
            if isinstance(r, Settled):
                events.append(TradeSettled(seq, r.trade_id, r.txid))
                continue
            events.append(SettlementFailure(seq, r.trade_id, r.reason, r.detail))
            trade = by_id[r.trade_id]
            if seq > self._replayed:  # nothing moved: give the trade's share of the holds back
                self._release(trade.sell_id, trade.qty)
                self._release(trade.buy_id, trade.price * trade.qty)

    def _settle_auction(self, result: AuctionCleared, events: list[Event]) -> None:
        """Release every bid's hold, then settle each allocation in its own transaction:
        issue the units to the seller (when the auction names a scheme and period) and move
        them to the bidder against ``price * qty``. Outcomes are recorded by event seq."""
        reg = self.registry
        if result.seq > self._replayed:
            for bid_id in result.tie_order:
                self._release(bid_id, reg.hold(bid_id))
        for a in result.allocations:
            seq = next(self._seq)
            outcome = self._once(seq, "allocation", partial(self._allocate, result, a, seq))
            if outcome.reason:
                events.append(AllocationFailed(seq, result.auction, a.id, outcome.reason, outcome.detail))
            else:
                events.append(AllocationSettled(seq, result.auction, a.id, outcome.txid))

    def _allocate(self, result: AuctionCleared, a: BidAllocation, trade_id: int) -> str:
        reg = self.registry
        if result.scheme is not None and result.period is not None:
            reg.issue(result.seller, result.unit, a.qty, scheme=result.scheme, period=result.period)
        record = reg.settle(trade_id, seller=result.seller, buyer=a.account, unit=result.unit, qty=a.qty,
                            currency=result.currency or self.currency, amount=(result.price or 0) * a.qty)
        if not isinstance(record, Settled):
            raise _Refused(record.reason, record.detail)
        return ""

    def _once(self, seq: int, what: str, act: Callable[[], str]) -> Outcome:
        """Carry out ``act`` (it returns a detail) for event ``seq`` in one registry transaction
        and record its outcome: the transaction's txid (0 if it journaled none), or the refusal.
        For an event the registry already holds, nothing runs: the recorded outcome is returned."""
        if seq <= self._replayed:
            return self._recorded(seq, what)
        reg = self.registry
        before = reg.last_txid
        try:
            with reg.transaction():
                detail = act()
            outcome = Outcome(reg.last_txid if reg.last_txid != before else 0, "", detail)
        except RegistryError as e:
            outcome = Outcome(0, e.code, str(e))
        reg.record_outcome(seq, outcome)
        return outcome

    def _recorded(self, seq: int, what: str) -> Outcome:
        outcome = self.registry.outcome(seq)
        if outcome is None:
            raise LogMismatch(f"the registry holds events up to {self._replayed} but has no outcome "
                              f"for event {seq} ({what}): it went through another log")
        return outcome

    def _business_day(self, cmd: BusinessDay, events: list[Event]) -> None:
        adapter = self.settlement
        day = cmd.day
        if day.__class__ is not int or day < adapter.day:
            events.append(Rejected(next(self._seq), None, RejectReason.MALFORMED,
                                   f"business day must be an integer not before {adapter.day}"))
            return
        due = [t for when, t in adapter.queue if when <= day]
        if self.next_seq <= self._replayed:
            self._check_settled(due)
        records = adapter.settle_due(day)
        events.append(Recorded(next(self._seq), "business_day", None,
                               f"day {day}: {len(records)} trades due"))
        self._settlement_events(records, due, events)

    def _currency(self, book: OrderBook) -> str:
        return book.currency or self.currency

    # -- registry commands ---------------------------------------------------------------

    def _registry_command(self, cmd: RegistryCommand, events: list[Event]) -> None:
        seq = next(self._seq)
        tag = str(cmd.__struct_config__.tag)

        def carry_out() -> str:
            fault = names_fault(cmd)  # a hand-built command's names (decoding checked the log's)
            if fault is not None:
                raise _Refused(RejectReason.MALFORMED, f"{tag}: {fault}")
            try:
                return self._handlers[cmd.__class__](cmd)
            except RegistryError:  # some are ValueErrors too (bad_qty): they keep their own code
                raise
            except (TypeError, ValueError) as e:  # a hand-built command with values of the wrong kind
                raise _Refused(RejectReason.MALFORMED, f"{tag}: {e}") from None

        outcome = self._once(seq, tag, carry_out)
        if outcome.reason:
            events.append(Rejected(seq, None, outcome.reason, outcome.detail))
        else:
            events.append(Recorded(seq, tag, outcome.txid or None, outcome.detail))
            if isinstance(cmd, Expire):
                self._cancel_uncovered(cmd, events)

    def _cancel_uncovered(self, cmd: Expire, events: list[Event]) -> None:
        """After an expiry of ``cmd.unit``: cancel (``units_expired``), in order id order, every
        resting sell of an instrument of that unit type whose hold no longer covers what it still
        needs (its open quantity plus its trades awaiting settlement); the cancellations release
        what is left of their holds as any cancellation does (:meth:`_after`).

        Each cancellation is recorded under its event's seq (the order id as detail), in the
        batch's transaction like the expiry: a replay cannot tell from the registry's holds,
        which are those of a later event, which orders were short then, so it cancels the
        recorded ones. O(resting sells of the unit type)."""
        reg = self.registry
        start = len(events)
        if self.next_seq <= self._replayed:
            while (outcome := reg.outcome(self.next_seq)) is not None and outcome.reason == _UNITS_EXPIRED:
                order = self._index.get(int(outcome.detail)) if outcome.detail.isdigit() else None
                if (order is None or isinstance(order, str) or order.side == _BUY
                        or self._books[order.symbol].unit != cmd.unit):
                    raise LogMismatch(f"event {self.next_seq} cancelled order {outcome.detail}, not a resting "
                                      f"sell of {cmd.unit} here: the registry went through another log")
                self._books[order.symbol].cancel(order, events, _UNITS_EXPIRED)
            self._after(cmd, events, start)
            return
        with reg.transaction():
            for order in self._uncovered(cmd.unit):
                seq = self.next_seq
                self._books[order.symbol].cancel(order, events, _UNITS_EXPIRED)
                reg.record_outcome(seq, Outcome(0, _UNITS_EXPIRED, str(order.id)))
            self._after(cmd, events, start)

    def _uncovered(self, unit: UnitType) -> list[Order]:
        """The resting sells of ``unit``'s instruments whose hold is short of their open quantity
        plus their trades awaiting settlement, by order id."""
        waiting: Counter[int] = Counter()
        for t in self.settlement.pending:  # lag > 0: a trade's units leave the hold when it settles
            waiting[t.sell_id] += t.qty
        hold = self.registry.hold
        short = []
        for book in self._books.values():
            if book.unit != unit:
                continue
            for order in chain(book.market_asks, *(level.live() for level in book.asks.levels.values())):
                if order.qty and hold(order.id) < order.qty + waiting[order.id]:
                    short.append(order)
        short.sort(key=attrgetter("id"))
        return short

    def _open_scheme(self, c: OpenScheme) -> str:
        self.registry.create_scheme(Scheme(c.name, c.allowances, c.credits, c.offset_percent, c.banking))
        return ""

    def _set_cap(self, c: SetCap) -> str:
        self.registry.set_cap(c.scheme, c.period, c.cap)
        return ""

    def _open_account(self, c: OpenAccount) -> str:
        self.registry.open_account(c.account, AccountKind(c.kind), units=c.units, scheme=c.scheme)
        return ""

    def _set_status(self, c: SetAccountStatus) -> str:
        self.registry.set_status(c.account, AccountStatus(c.status))
        return ""

    def _issue(self, c: Issue) -> str:
        b = self.registry.issue(c.account, c.unit, c.qty, scheme=c.scheme, period=c.period, origin=c.origin,
                                start=c.start, project=c.project, expiry=c.expiry)
        return f"serials {b.origin} {b.start}-{b.end}"

    def _transfer(self, c: Transfer) -> str:
        self.registry.transfer(c.sender, c.receiver, c.unit, c.qty)
        return ""

    def _deposit(self, c: Deposit) -> str:
        self.registry.deposit(c.account, c.currency, c.amount)
        return ""

    def _emissions(self, c: RecordEmissions) -> str:
        self.registry.record_emissions(c.account, c.period, c.tonnes)
        return ""

    def _surrender(self, c: Surrender) -> str:
        self.registry.surrender(c.account, c.period, c.unit, c.qty, to=c.to)
        comp = self.registry.compliance(c.account, c.period)
        return f"{comp.surrendered} of {comp.obligation} surrendered for {c.period}: status {comp.status}"

    def _retire(self, c: Retire) -> str:
        self.registry.retire(c.account, c.unit, c.qty, to=c.to)
        return ""

    def _carry_over(self, c: CarryOver) -> str:
        return f"{self.registry.carry_over(c.account, c.unit, c.period)} units carried over"

    def _expire(self, c: Expire) -> str:
        return f"{self.registry.expire(c.unit, c.period)} units expired"


class _Refused(RegistryError):
    """A refusal of the venue's own (or a registry record's, raised to roll back): ``code`` and detail."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def _refusal(e: RegistryError) -> tuple[str, str]:
    if isinstance(e, InsufficientUnits):
        return RejectReason.INSUFFICIENT_UNITS, str(e)
    if isinstance(e, InsufficientFunds):
        return RejectReason.INSUFFICIENT_FUNDS, str(e)
    return e.code, str(e)
