"""The engine: one book per instrument, one gapless event sequence, one id space.

:class:`Engine` routes each command to its book, refuses malformed commands, returns
the events of each command and hands them to subscribers (a settlement adapter, a
market-data feed). It also answers market-data queries. It never reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from itertools import count
from typing import TYPE_CHECKING, Any

import msgspec

from carbonbook import core as cores
from carbonbook._types import (
    Phase,
    RejectReason,
    Side,
    UnitType,
    is_int64,
    is_order_id,
    name_fault,
)
from carbonbook.commands import (
    CancelOrder,
    CloseAuction,
    Command,
    ListInstrument,
    ModifyOrder,
    NewOrder,
    OpenAuction,
    PlaceBid,
    RegistryCommand,
    SetPhase,
    Undecodable,
    new_order_fault,
)
from carbonbook.core import phases, primary
from carbonbook.core.book import Index, Order, OrderBook
from carbonbook.core.snapshot import EngineState, export_state, peek, restore_parts, state_hash
from carbonbook.errors import BookIntegrityError
from carbonbook.events import Event, InstrumentListed, Rejected

if TYPE_CHECKING:  # the compiled core may not be built
    from carbonbook.core import _cbook

Subscriber = Callable[[list[Event]], None]
"""Called with the events of each ``apply`` (or ``apply_all``) call, in order, once applied."""

Stage = Callable[["Command | Undecodable", list[Event], int], None]
"""A stage after matching: called with each command, the batch's event list and the index of
the command's first event in it, right after the command is applied; it may append events,
numbered by :attr:`Engine.take_seq` (a venue's settler appends ``trade_settled``).

A stage may have a ``quiet`` attribute, a tuple of event classes: the compiled core's
``apply_all`` then skips its call after a command that made one event of those classes
(the stage must do nothing then; the other paths call it anyway)."""

AdmitBid = primary.Admit
"""A primary-auction bid's pre-trade check: see :attr:`Engine.admit_bid`."""

_MALFORMED = RejectReason.MALFORMED
_UNITS = frozenset(UnitType)
_PHASES = frozenset(Phase)


class Level(msgspec.Struct, frozen=True):
    """One aggregated price level: total open quantity and number of orders."""

    price: int
    qty: int
    count: int


class Depth(msgspec.Struct, frozen=True):
    """The top levels of a book, best first on each side."""

    symbol: str
    bids: list[Level]
    asks: list[Level]


class OrderState(msgspec.Struct, frozen=True):
    """What the engine knows of an order: ``status`` is ``open``, ``filled`` or ``cancelled``
    (``bid`` for the id of a primary-auction bid).

    The other fields are set only while the order is open.
    """

    id: int
    status: str
    symbol: str | None = None
    account: str | None = None
    side: Side | None = None
    price: int | None = None
    qty: int | None = None


class Engine:
    """A matching engine for any number of instruments.

    >>> from carbonbook import Engine, ListInstrument, NewOrder, Side, UnitType
    >>> eng = Engine()
    >>> _ = eng.apply(ListInstrument("JPA-2010", UnitType.JPA))
    >>> _ = eng.apply(NewOrder(1, "alice", "JPA-2010", Side.SELL, 100, price=1500))
    >>> accepted, trade = eng.apply(NewOrder(2, "bob", "JPA-2010", Side.BUY, 60, price=1600))
    >>> trade.price, trade.qty
    (1500, 60)
    >>> eng.best_ask("JPA-2010"), eng.depth("JPA-2010").asks
    (1500, [Level(price=1500, qty=40, count=1)])
    """

    def __init__(self, core: str | None = None) -> None:
        self._core = cores.get(core)
        self._seq = count(1)
        self._index: Index = self._core.new_index()
        self._books: dict[str, OrderBook] = {}
        self._subscribers: list[Subscriber] = []
        self._auctions: primary.Auctions = {}
        self._stage: Stage | None = None
        self.admit_bid: AdmitBid | None = None
        """The pre-trade check of primary-auction bids: None to accept ``bid``, or a
        ``(reason, detail)`` refusal, which becomes its ``rejected`` event.

        Called once per bid, after every check of the engine's own (the bid is well formed,
        its auction is open, its price and quantity fit the tick and lot, its id is new)
        and just before the bid is accepted: returning None always means ``accepted``
        follows, so the check may hold the bidder's cash here (``bid.price * bid.qty`` in
        ``auction.currency``) and release it after the ``auction_cleared``. ``auction`` is
        the auction's opening command. ``reason`` should be a stable code; a refusal changes
        nothing in the engine. It must not apply commands. None (the default) admits every bid."""
        self._bind()

    def _bind(self) -> None:
        """Bind the compiled core's router to the books and index (again after a restore); the
        pure core and a subclass with its own ``_dispatch`` (which sees every command) have none.
        ``apply`` calls the router alone while there is no stage and no subscriber."""
        self.take_seq: Callable[[], int] = self._seq.__next__
        """Take the next ``seq``, for an event a :data:`Stage` appends (a C call). O(1)."""
        self.open_order: Callable[[int], Order | None] = partial(self._core.open_order, self._index)
        """The book's own record of open order ``oid`` (to cancel it through its book), or None
        (a C call on the compiled core). O(1)."""
        fast = self._core.COMPILED and self.__class__._dispatch is Engine._dispatch
        self._router: _cbook.Router | None = (
            self._core.Router(self._books, self._index, self._dispatch) if fast else None)
        alone = self._router is not None and self._stage is None and not self._subscribers
        self._one: Callable[[Command | Undecodable], list[Event]] | None = (
            self._router.one if alone else None)  # type: ignore[union-attr]

    @property
    def stage(self) -> Stage | None:
        """Called after each command (see :data:`Stage`); None: nothing runs after matching."""
        return self._stage

    @stage.setter
    def stage(self, stage: Stage | None) -> None:
        self._stage = stage
        self._bind()

    # -- commands ---------------------------------------------------------------

    @property
    def core(self) -> str:
        """The name of the core whose books this engine runs (:mod:`carbonbook.core`)."""
        return "compiled" if self._core.COMPILED else "pure"

    def apply(self, command: Command | Undecodable) -> list[Event]:
        """Apply one command; return its events (also given to every subscriber)."""
        one = self._one
        if one is not None:  # the compiled core, no stage, no subscriber
            return one(command)
        if self._router is not None:
            events = self._router.one(command)
        else:
            events = []
            self._dispatch(command, events)
        if self._stage is not None:
            self._stage(command, events, 0)
        if self._subscribers:
            self.publish(events)
        return events

    def apply_all(self, commands: Iterable[Command | Undecodable], decoded: bool = False) -> list[Event]:
        """Apply commands in order; return their events, which subscribers also get as one list.

        An :class:`Undecodable` record (or any object that is not a command) becomes a
        ``rejected`` event with reason ``malformed`` in its place in the sequence.
        ``decoded=True`` promises that every command comes from :mod:`carbonbook.codec`'s
        decoders (as in ``carbonbook replay``), whose validation makes the books skip their
        own tests of types and 64-bit bounds; the events are the same either way.
        """
        events: list[Event] = []
        dispatch = self._dispatch
        stage = self.stage
        if self._router is not None:  # the compiled core, which runs the stage after each command
            self._router.batch(commands, events, decoded, stage, getattr(stage, "quiet", ()))
        elif stage is not None or self.__class__._dispatch is not Engine._dispatch:
            for command in commands:  # a subclass's own dispatch sees every command
                start = len(events)
                dispatch(command, events, decoded)
                if stage is not None:
                    stage(command, events, start)
        else:
            self._core.route(self._books, self._index, commands, events, decoded, dispatch)
        self.publish(events)
        return events

    def json_out(self) -> Any:
        """Where :meth:`apply_all_json` writes: the compiled core's JSON ``Out``, or None when this
        engine gives its events only as Structs (the pure core, subscribers, a subclass's
        ``_dispatch`` or ``apply_all``, a stage)."""
        if (self._router is not None and self._core.JSON_OK and not self._subscribers and self.stage is None
                and self.__class__.apply_all is Engine.apply_all):
            return self._core.Out()
        return None

    def apply_all_json(self, commands: Iterable[Command | Undecodable], out: Any,
                       decoded: bool = False) -> None:
        """:meth:`apply_all`, the events written into ``out`` (from :meth:`json_out`) as JSON Lines,
        the bytes msgspec writes for them, without building the Structs of the commonest ones
        (accepted, trade, cancelled, modified). What ``carbonbook replay`` runs."""
        assert self._router is not None, "json_out gave no Out: this engine gives Structs"
        self._router.json(commands, out, decoded)

    def _dispatch(self, command: Command | Undecodable, events: list[Event], decoded: bool = False) -> None:
        cls = command.__class__
        if cls is NewOrder:
            symbol = command.symbol  # type: ignore[union-attr]
            book = self._books.get(symbol) if symbol.__class__ is str else None  # a list is unhashable
            if book is None:
                self._unlisted(command, events)  # type: ignore[arg-type]
            else:
                book.submit(command, events, decoded)  # type: ignore[arg-type]
        elif cls is CancelOrder:
            oid = command.id  # type: ignore[union-attr]
            order = self._index.get(oid) if oid.__class__ is int else None
            if order is not None and order.__class__ is not str:
                self._books[order.symbol].cancel(order, events)  # type: ignore[union-attr, arg-type]
            else:
                self._cancel_refused(command, events)  # type: ignore[arg-type]
        elif cls is ModifyOrder:
            self._modify(command, events)  # type: ignore[arg-type]
        elif cls is ListInstrument:
            self._list(command, events)  # type: ignore[arg-type]
        elif cls is SetPhase:
            self._set_phase(command, events)  # type: ignore[arg-type]
        elif cls is Undecodable:
            events.append(Rejected(next(self._seq), command.id, _MALFORMED,  # type: ignore[union-attr]
                                   command.detail, command.line))  # type: ignore[union-attr]
        elif isinstance(command, RegistryCommand):
            events.append(Rejected(next(self._seq), None, RejectReason.NO_REGISTRY,
                                   f"{command.__struct_config__.tag} needs a venue with a registry"))
        else:
            handler = _RARE_COMMANDS.get(cls)
            if handler is not None:
                handler(self, command, events)
            else:
                events.append(Rejected(next(self._seq), None, _MALFORMED, f"not a command: {command!r}"))

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` with the events of every later ``apply`` or ``apply_all``."""
        self._subscribers.append(subscriber)
        self._bind()

    # -- primary auctions (carbonbook.core.primary) ------------------------------------------

    def _open_auction(self, cmd: OpenAuction, events: list[Event]) -> None:
        primary.open_auction(self._auctions, cmd, self._seq.__next__, events)

    def _place_bid(self, cmd: PlaceBid, events: list[Event]) -> None:
        primary.place_bid(self._auctions, self._index, cmd, self._seq.__next__, events, self.admit_bid)

    def _close_auction(self, cmd: CloseAuction, events: list[Event]) -> None:
        primary.close_auction(self._auctions, cmd, self._seq.__next__, events)

    def _list(self, cmd: ListInstrument, events: list[Event]) -> None:
        fault = _instrument_fault(cmd)
        if fault is not None:
            events.append(Rejected(next(self._seq), None, _MALFORMED, fault))
        elif cmd.symbol in self._books:
            events.append(Rejected(next(self._seq), None, RejectReason.DUPLICATE_SYMBOL,
                                   f"instrument {cmd.symbol} is already listed"))
        else:
            book = self._core.OrderBook(cmd.symbol, cmd.unit, cmd.tick, cmd.lot, self._index, self._seq)
            book.call_only = cmd.call_only
            book.band = cmd.band
            book.reference = cmd.reference
            book.currency = cmd.currency
            phase = cmd.phase
            if phase is None:
                phase = Phase.CALL if cmd.call_only else Phase.CONTINUOUS
            phase = Phase(phase)
            phases.enter(book, phase)
            self._books[cmd.symbol] = book
            events.append(InstrumentListed(next(self._seq), cmd.symbol, cmd.unit, cmd.tick, cmd.lot,
                                           phase, cmd.call_only, cmd.band, cmd.reference, cmd.currency))

    def _set_phase(self, cmd: SetPhase, events: list[Event]) -> None:
        symbol, phase, ref = cmd.symbol, cmd.phase, cmd.reference
        if name_fault(symbol) is not None or phase not in _PHASES or not (ref is None or is_int64(ref)):
            events.append(Rejected(next(self._seq), None, _MALFORMED,
                                   "phase needs a symbol, a known phase and an integer reference"))
            return
        book = self._books.get(symbol)
        if book is None:
            events.append(Rejected(next(self._seq), None, RejectReason.UNKNOWN_SYMBOL,
                                   f"no instrument {symbol}"))
        elif phase == Phase.CONTINUOUS and book.call_only:
            events.append(Rejected(next(self._seq), None, RejectReason.PHASE,
                                   f"{symbol} is call-only: no continuous phase"))
        elif ref is not None and (ref <= 0 or ref % book.tick):
            events.append(Rejected(next(self._seq), None, RejectReason.BAD_PRICE,
                                   f"reference {ref} is not positive or not a multiple of the tick"))
        else:
            phases.switch(book, Phase(phase), ref, events)

    def _unlisted(self, cmd: NewOrder, events: list[Event]) -> None:
        fault = new_order_fault(cmd)
        if fault is not None:
            oid = cmd.id if is_order_id(cmd.id) else None
            events.append(Rejected(next(self._seq), oid, _MALFORMED, fault))
        else:
            events.append(Rejected(next(self._seq), cmd.id, RejectReason.UNKNOWN_SYMBOL,
                                   f"no instrument {cmd.symbol}"))

    def _cancel_refused(self, cmd: CancelOrder, events: list[Event]) -> None:
        oid = cmd.id
        if is_order_id(oid):
            events.append(Rejected(next(self._seq), oid, RejectReason.UNKNOWN_ORDER,
                                   f"order {oid} is not open"))
        else:
            events.append(Rejected(next(self._seq), None, _MALFORMED, f"bad order id {oid!r}"))

    def _modify(self, cmd: ModifyOrder, events: list[Event]) -> None:
        oid, price, qty = cmd.id, cmd.price, cmd.qty
        fault = None
        if not is_order_id(oid):
            fault = f"bad order id {oid!r}"
        elif price is None and qty is None:
            fault = "modify needs a price or a qty"
        elif not (price is None or is_int64(price)) or not (qty is None or is_int64(qty)):
            fault = "price and qty must be 64-bit integers"
        if fault is not None:
            events.append(Rejected(next(self._seq), oid if is_order_id(oid) else None, _MALFORMED, fault))
            return
        order = self._index.get(oid)
        if order is None or order.__class__ is str:
            events.append(Rejected(next(self._seq), oid, RejectReason.UNKNOWN_ORDER,
                                   f"order {oid} is not open"))
            return
        self._books[order.symbol].modify(order, price, qty, events)  # type: ignore[union-attr, arg-type]

    # -- state, snapshots and journaling (carbonbook.core.snapshot, carbonbook.operations.journal) -----

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next event will take. O(1)."""
        return peek(self._seq)

    def export_state(self) -> EngineState:
        """The whole state of the engine as data (see :mod:`carbonbook.core.snapshot`). O(orders + ids)."""
        return export_state(self._seq, self._books, self._index, self._auctions)

    def state_hash(self) -> str:
        """SHA-256 (hex) of the canonical encoding of :meth:`export_state`: equal for engines that
        applied the same commands, and for an engine and its restored copy. O(orders + ids)."""
        return state_hash(self.export_state())

    @classmethod
    def from_state(cls, state: EngineState, core: str | None = None) -> Engine:
        """An engine equal to the one ``state`` was exported from (without its subscribers), on
        ``core`` (any core restores any core's state); raises
        :class:`~carbonbook.errors.SnapshotError` if ``state`` is inconsistent."""
        engine = cls(core=core) if core is not None else cls()
        engine._restore(state)
        return engine

    def restore(self, state: EngineState) -> Engine:
        """A new engine of this engine's class and core from ``state``, as :meth:`from_state`
        (what a journal calls on whatever it wraps, see :mod:`carbonbook.operations.journal`)."""
        return type(self).from_state(state, core=self.core)

    def transaction(self) -> AbstractContextManager[None]:
        """What a journal writes each batch in (see :mod:`carbonbook.operations.journal`): an engine has
        nothing to commit, so nothing."""
        return nullcontext()

    def store_ahead(self) -> int:
        """Events a store behind this engine holds past it: an engine has no store, so 0."""
        return 0

    def _restore(self, state: EngineState) -> None:
        self._seq, self._books, self._index = restore_parts(state, self._core)
        self._auctions = primary.restore_auctions(state.auctions, self._index)
        self._bind()

    def dispatch_marked(self, commands: Sequence[Command | Undecodable], starts: list[int]) -> list[Event]:
        """Apply ``commands`` as :meth:`apply_all` does but without calling subscribers, and append
        to ``starts`` the position in the result of each command's first event (every command
        has at least one). The journal calls this, writes, then :meth:`publish`."""
        events: list[Event] = []
        dispatch = self._dispatch
        mark = starts.append
        stage = self.stage
        for command in commands:
            start = len(events)
            mark(start)
            dispatch(command, events)
            if stage is not None:
                stage(command, events, start)
        return events

    def publish(self, events: list[Event]) -> None:
        """Hand ``events`` to every subscriber, as :meth:`apply_all` does once applied."""
        for subscriber in self._subscribers:
            subscriber(events)

    # -- queries -----------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        """The listed instruments, in listing order."""
        return list(self._books)

    def book(self, symbol: str) -> OrderBook:
        """The book of ``symbol``; KeyError if it is not listed."""
        return self._books[symbol]

    def best_bid(self, symbol: str) -> int | None:
        """The best bid price of ``symbol``, or None. O(1)."""
        level = self._books[symbol].bids.best()
        return None if level is None else level.price

    def best_ask(self, symbol: str) -> int | None:
        """The best ask price of ``symbol``, or None. O(1)."""
        level = self._books[symbol].asks.best()
        return None if level is None else level.price

    def depth(self, symbol: str, levels: int = 5) -> Depth:
        """The top ``levels`` price levels per side, aggregated. O(levels)."""
        book = self._books[symbol]
        sides = []
        for side in (book.bids, book.asks):
            out: list[Level] = []
            for level in side.in_priority():
                if len(out) == levels:
                    break
                out.append(Level(level.price, level.qty, sum(1 for _ in level.live())))
            sides.append(out)
        return Depth(symbol, sides[0], sides[1])

    def phase(self, symbol: str) -> Phase:
        """The trading phase of ``symbol``. O(1)."""
        return self._books[symbol].phase

    def indicative(self, symbol: str) -> tuple[int | None, int, int]:
        """Where ``symbol`` would uncross now: price (None when nothing trades), volume, and
        surplus (positive on the buy side). O(levels that cross)."""
        return phases.auction_price(self._books[symbol])

    def queue(self, symbol: str, side: Side, price: int) -> list[OrderState]:
        """The open orders at one price level, in time priority. O(orders at the level)."""
        book = self._books[symbol]
        book_side = book.bids if side == Side.BUY else book.asks
        level = book_side.levels.get(book_side.sign * price)
        return [] if level is None else [_open_state(o) for o in level.live()]

    def order(self, oid: int) -> OrderState | None:
        """The state of order ``oid``, or None if no order with that id was accepted. O(1)."""
        entry = self._index.get(oid)
        if entry is None:
            return None
        if isinstance(entry, str):
            return OrderState(oid, entry)
        return _open_state(entry)

    def snapshot(self) -> dict[str, dict[str, list[list[int | None]]]]:
        """Every book's resting orders as ``{symbol: {"bids": [[price, id, qty], ...], "asks": ...}}``,
        each side in priority order (market orders of a call first, price None). O(orders)."""
        return {
            symbol: {
                name: [[None, o.id, o.qty] for o in market]
                + [[o.price, o.id, o.qty] for lvl in side.in_priority() for o in lvl.live()]
                for name, side, market in (("bids", book.bids, book.market_bids),
                                           ("asks", book.asks, book.market_asks))
            }
            for symbol, book in self._books.items()
        }

    def check(self) -> None:
        """Assert every book's invariants and the id index; raise BookIntegrityError."""
        for book in self._books.values():
            book.check()
        resting = sum(1 for b in self._books.values() for s in (b.bids, b.asks)
                      for lvl in s.levels.values() for _ in lvl.live())
        resting += sum(len(b.market_bids) + len(b.market_asks) for b in self._books.values())
        live = sum(1 for v in self._index.values() if not isinstance(v, str))
        if resting != live:
            raise BookIntegrityError(f"index holds {live} open orders, the books {resting}")
        primary.check_auctions(self._auctions, self._index)


_RARE_COMMANDS: dict[type, Callable[[Engine, object, list[Event]], None]] = {
    OpenAuction: Engine._open_auction,  # type: ignore[dict-item]
    PlaceBid: Engine._place_bid,  # type: ignore[dict-item]
    CloseAuction: Engine._close_auction,  # type: ignore[dict-item]
}
"""Command classes dispatched by one dict lookup, after the order commands' branches."""


def _open_state(order: Order) -> OrderState:
    return OrderState(order.id, "open", order.symbol, order.account, order.side,
                      order.price or None, order.qty)




def _instrument_fault(cmd: ListInstrument) -> str | None:
    if (fault := name_fault(cmd.symbol)) is not None:
        return f"symbol {fault}"
    if cmd.unit not in _UNITS:
        return "instrument needs a known unit"
    if not (is_int64(cmd.tick) and is_int64(cmd.lot)) or cmd.tick <= 0 or cmd.lot <= 0:
        return "tick and lot must be positive integers"
    if (cmd.phase is not None and cmd.phase not in _PHASES) or cmd.call_only not in (False, True):
        return "phase outside its set or call_only not a boolean"
    if cmd.currency is not None and (fault := name_fault(cmd.currency)) is not None:
        return f"currency {fault}"
    if cmd.call_only and cmd.phase == Phase.CONTINUOUS:
        return "a call-only instrument cannot start continuous"
    if cmd.band is not None and not (is_int64(cmd.band) and cmd.band >= 0):
        return "band must be a non-negative integer (basis points)"
    ref = cmd.reference
    if ref is not None and not (is_int64(ref) and ref > 0 and not ref % cmd.tick):
        return "reference must be a positive multiple of the tick"
    return None
