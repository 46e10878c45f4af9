"""The order book of one instrument: price levels, price-time matching, self-trade prevention.

This is the pure-Python core and the reference: :mod:`carbonbook.core._cbook` is the same book
compiled (same classes, containers, rules and events; :mod:`carbonbook.core` picks one), and
the slow paths both share (a refusal's detail, :func:`check`) live here.

Layout
    Each side is a :class:`BookSide`: a dict from *key* to :class:`PriceLevel` and a
    sorted list of those keys whose **last** element is the best level. The key is
    ``price`` on the bid side and ``-price`` on the ask side, so on both sides a larger
    key is a better price and one code path serves both. An incoming order with limit
    price ``p`` crosses the opposite side while ``best key >= opposite.sign * p``.

Priority
    A level is a FIFO deque of :class:`Order`. Orders trade at the maker's (level's)
    price, best level first, oldest order first. Partial fills keep priority.

Cancels
    A cancelled order is not searched for in its deque: its ``qty`` becomes 0 and it
    stays there, *dead*, until matching pops it or the level is compacted (when dead
    entries outnumber live ones). ``PriceLevel.qty`` counts live
    orders only, and a level whose quantity reaches 0 is removed at once.

Index
    One :class:`Index` (here a dict), shared by all books of an engine, maps every accepted
    order id to its resting :class:`Order`, or to :data:`FILLED` / :data:`CANCELLED` once it
    has left the book, so ids stay unique for the life of the engine.

Interface
    What the phase books, snapshots, the venue and the queries use of a book, on either core:
    ``bids``/``asks`` (:class:`BookSide`: ``levels`` by key, ``keys``, ``best()``,
    ``in_priority()``), a level's ``price``, ``qty`` and ``live()``, the order fields, and the
    book's ``_rest``, ``_take_off`` and ``_resize``. The compiled core stores levels' queues
    and the index differently (:mod:`carbonbook.core._cbook`) behind the same interface.

Commands
    ``submit`` refuses, the first that applies: malformed, bad_price, bad_qty,
    duplicate_id, post_only; otherwise ``accepted``, the trades, and a ``cancelled``
    for a remainder that may not rest (``ioc``, ``fok``, ``market``, ``self_trade``).
    A FOK order first checks, without touching the book, that enough lies within its
    limit ahead of its own account's first order. ``cancel`` takes the open remainder
    off. ``modify`` keeps priority for a lower (or equal) quantity at the same price;
    otherwise the order is re-queued at the back of its new level, trading first as
    the taker if it crosses.

Self-trade prevention
    Matching stops at a resting order of the taker's own account. The taker's ``stp``
    decides: ``cancel_incoming`` cancels the taker's remainder, ``cancel_resting``
    cancels the resting order and goes on, ``cancel_both`` does both.

Cost
    Resting an order: a dict lookup, plus ``bisect.insort`` into the key list when it
    opens a level. Cancel: O(1) amortised, plus a bisect and a list deletion when it
    empties a level. Each fill: O(1). The key list keeps the best level at its end, so
    opening or closing a level near the touch moves only a few pointers (0.2-0.6 us
    with 25 to 100,000 levels here, where ``sortedcontainers.SortedList`` takes 1.0-1.3
    us); a level far from the touch of a very deep side costs a memmove of the whole
    list (2.5 us at 5,000 levels, 49 us at 100,000, against SortedList's 1.6 us).

Phases
    This class is the continuous, unbanded book. Other phases and price bands are
    mixins in :mod:`carbonbook.core.phases` over each core's ``OrderBook`` that a book switches
    to by changing its class; they share these slots (phase, band, reference, the market orders of a
    call) and leave this hot path as it was, but for one store per fill that keeps
    ``reference``, the last trade price.

Determinism
    No clocks, no randomness, no iteration over unordered containers: the same
    commands give the same events.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import count
from typing import Protocol

import msgspec

from carbonbook._types import (
    INT64_MAX,
    NAME_MAX,
    CancelReason,
    OrderType,
    Phase,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    UnitType,
    is_order_id,
)
from carbonbook.commands import CancelOrder, NewOrder, new_order_fault
from carbonbook.errors import BookIntegrityError
from carbonbook.events import Accepted, Cancelled, Event, Modified, Rejected, Trade

COMPILED = False
"""This is the pure-Python core (:mod:`carbonbook.core`)."""

FILLED = "filled"
"""Index status of an order that left the book fully executed."""
CANCELLED = "cancelled"
"""Index status of an order whose remainder was cancelled (by the user, its time in force or STP)."""

_NO_LIMIT = -(2**64)  # a key below every real key: a market order crosses any level
_COMPACT_MIN = 32  # a level is compacted only when it holds more dead entries than this...

_BUY = Side.BUY
_CANCEL_INCOMING = SelfTradePrevention.CANCEL_INCOMING
_CANCEL_RESTING = SelfTradePrevention.CANCEL_RESTING
_CANCEL_BOTH = SelfTradePrevention.CANCEL_BOTH
_SELL = Side.SELL
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
_SELF_TRADE = CancelReason.SELF_TRADE
_USER = CancelReason.USER
_FOK_REASON = CancelReason.FOK
_BAD_PRICE = RejectReason.BAD_PRICE
_BAD_QTY = RejectReason.BAD_QTY
_MALFORMED = RejectReason.MALFORMED


class Order(msgspec.Struct, gc=False):
    """A resting order. ``qty`` is its open quantity; 0 marks a dead entry in a level's deque."""

    id: int
    account: str
    symbol: str
    side: Side
    price: int
    qty: int
    post_only: bool
    stp: SelfTradePrevention


class PreTradeRisk(Protocol):
    """A pre-trade check, such as a registry-backed venue's holds (:mod:`carbonbook.venue`).

    The book calls it after every check of its own, just before an order is accepted
    (``admit``) or a modify that re-queues an order takes effect (``amend``, with the new
    price and open quantity). A ``(reason, detail)`` refuses the command; None lets it through.
    """

    def admit(self, book: OrderBook, cmd: NewOrder) -> tuple[str, str] | None:
        """Check (and reserve for) a new order about to be accepted."""

    def amend(self, book: OrderBook, order: Order, price: int, qty: int) -> tuple[str, str] | None:
        """Check (and reserve for) a resting order about to become ``qty`` at ``price``."""


class Index(Protocol):
    """Order id -> resting order, or its final status (:data:`FILLED`, :data:`CANCELLED`, a
    primary-auction bid's ``BID``), for every id ever accepted, in the order first set.

    What the engine, the phase books and snapshots use of a core's index (:func:`new_index`):
    a dict here, the compiled core's C hash table there. Ids are never removed. Each
    operation is O(1) expected but for ``items`` and ``values``, O(ids).
    """

    def get(self, oid: int, /) -> Order | str | None: ...
    def __contains__(self, oid: object, /) -> bool: ...
    def __getitem__(self, oid: int, /) -> Order | str: ...
    def __setitem__(self, oid: int, entry: Order | str, /) -> None: ...
    def __len__(self) -> int: ...
    def items(self) -> Iterable[tuple[int, Order | str]]: ...
    def values(self) -> Iterable[Order | str]: ...


def new_index() -> Index:
    """An empty id index of this core: a dict."""
    index: dict[int, Order | str] = {}
    return index


def open_order(index: Index, oid: object) -> Order | None:
    """The resting order ``oid`` of ``index`` (its entry while it rests), or None. O(1)."""
    entry = index.get(oid)  # type: ignore[arg-type]
    return None if entry is None or entry.__class__ is str else entry  # type: ignore[return-value]


class PriceLevel:
    """The orders resting at one price, oldest first, and their live total quantity.

    ``dead`` counts the cancelled entries (qty 0) still in ``orders``; the level is
    compacted when they outnumber the live ones (and exceed ``_COMPACT_MIN``), which
    keeps cancels O(1) amortised.
    """

    __slots__ = ("dead", "orders", "price", "qty")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.qty = 0
        self.dead = 0

    def live(self) -> Iterator[Order]:
        """The live orders in priority order. O(entries)."""
        return (o for o in self.orders if o.qty)


class BookSide:
    """One side of a book: levels by key (``sign * price``) and the sorted keys, best last."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.levels: dict[int, PriceLevel] = {}
        self.keys: list[int] = []

    def best(self) -> PriceLevel | None:
        """The best level, or None when the side is empty. O(1)."""
        return self.levels[self.keys[-1]] if self.keys else None

    def in_priority(self) -> Iterator[PriceLevel]:
        """The levels, best first. O(levels)."""
        levels = self.levels
        return (levels[k] for k in reversed(self.keys))


class OrderBook:
    """The book of one instrument.

    ``index`` and ``seq`` are shared with the engine: every accepted id is recorded in
    ``index``, and every event takes the next number from ``seq``. Methods append
    events to the list they are given and return nothing; a refused command appends
    one :class:`Rejected` and changes nothing else.
    """

    __slots__ = ("_arrival", "_clock", "_expiring", "_index", "_seq", "asks", "band", "bids",
                 "call_only", "call_row", "currency", "lot", "market_asks", "market_bids", "pending", "phase",
                 "reference", "risk", "symbol", "tick", "unit")

    order_class = Order
    """The class of this core's resting orders (phases create market orders of a call with it)."""

    def __init__(
        self,
        symbol: str,
        unit: UnitType,
        tick: int,
        lot: int,
        index: Index,
        seq: count[int],
    ) -> None:
        self.symbol = symbol
        self.unit = unit
        self.tick = tick
        self.lot = lot
        self.bids = BookSide(1)
        self.asks = BookSide(-1)
        self._index = index
        self._seq = seq
        # Phases and bands (see carbonbook.core.phases); a plain OrderBook is continuous, unbanded.
        self.phase = Phase.CONTINUOUS
        self.call_only = False
        self.band: int | None = None
        # the last trade or uncross price, or the reference most recently given
        self.reference: int | None = None
        # True while orders of a call await the uncross (the book may be crossed)
        self.pending = False
        # market orders entered in a call (price 0), in time priority; empty otherwise
        self.market_bids: deque[Order] = deque()
        self.market_asks: deque[Order] = deque()
        self._arrival: dict[int, int] = {}
        self._clock = count(1)
        self._expiring: dict[int, CancelReason] = {}
        # (price, demand, supply) at the last crossing point of a call: see carbonbook.core.phases
        self.call_row: tuple[int, int, int] | None = None
        # what prices are in (a venue settles in it); None: the venue's currency
        self.currency: str | None = None
        # the pre-trade check of a registry-backed venue, or None
        self.risk: PreTradeRisk | None = None

    # -- commands ---------------------------------------------------------------

    def submit(self, cmd: NewOrder, events: list[Event], decoded: bool = False) -> None:
        """Enter a new order for this book.

        Refusals, first that applies: malformed, bad_price, bad_qty, duplicate_id,
        post_only, then the ``risk`` check's. Then appends ``accepted``, the trades, and a
        ``cancelled`` for a remainder that may not rest. ``decoded`` says that ``cmd`` comes
        from :mod:`carbonbook.codec`'s decoders, which have checked every field's type and
        64-bit bounds (and the enum fields' and the names'), so those tests are skipped.
        """
        seq = self._seq
        index = self._index
        oid = cmd.id
        price = cmd.price
        qty = cmd.qty
        side = cmd.side
        tif = cmd.tif
        stp = cmd.stp
        cap = cmd.cap
        account = cmd.account
        is_buy = side is _BUY
        if not (  # one pass over every refusal but post_only; order_rejection() finds which one
            (decoded or (
                oid.__class__ is int and 0 <= oid <= INT64_MAX
                and qty.__class__ is int and qty <= INT64_MAX
                and account.__class__ is str and 0 < len(account) <= NAME_MAX and account.isprintable()
                # enum fields by identity with the members: a plain value equal to a member
                # (or post_only 0) takes order_rejection()'s full test, which lets it through
                and (is_buy or side is _SELL)
                and (tif is _GTC or tif is _IOC or tif is _FOK)
                and (stp is _CANCEL_INCOMING or stp is _CANCEL_RESTING or stp is _CANCEL_BOTH)))
            and qty > 0 and not qty % self.lot
            and (cmd.order_type is _LIMIT and (decoded or (price.__class__ is int and price <= INT64_MAX))
                 and price > 0 and not price % self.tick if price is not None else cmd.order_type is _MARKET)
            and (cmd.post_only is False or (cmd.post_only is True and tif is _GTC and price is not None))
            and (cap is None or ((decoded or (cap.__class__ is int and cap <= INT64_MAX))
                                 and cap > 0 and is_buy and price is None))
            and oid not in index
        ):
            rejected = order_rejection(self, cmd)
            if rejected is not None:
                events.append(rejected)
                return
            is_buy = side == _BUY  # a plain "buy" is a buy
        if is_buy:
            opp = self.asks
            limit_key = _NO_LIMIT if price is None else -price
        else:
            opp = self.bids
            limit_key = _NO_LIMIT if price is None else price
        keys = opp.keys
        crosses = keys and keys[-1] >= limit_key
        if crosses and cmd.post_only:
            events.append(Rejected(next(seq), oid, RejectReason.POST_ONLY, "post-only order would cross"))
            return
        if self.risk is not None:
            refusal = self.risk.admit(self, cmd)
            if refusal is not None:
                events.append(Rejected(next(seq), oid, refusal[0], refusal[1]))
                return
        events.append(Accepted(next(seq), oid, self.symbol))
        if crosses:
            if tif == _FOK and self._executable(opp, account, limit_key, qty, stp, cap) < qty:
                index[oid] = CANCELLED
                events.append(Cancelled(next(seq), oid, qty, _FOK_REASON))
                return
            if cap is None:
                qty = self._match(opp, oid, account, is_buy, limit_key, qty, stp, events)
            else:  # trade only what the cap pays for; the rest is cancelled with the remainder
                held_back = qty - self._executable(opp, account, limit_key, qty, _CANCEL_RESTING, cap)
                qty = self._match(opp, oid, account, is_buy, limit_key, qty - held_back, stp, events) \
                    if qty > held_back else 0
                qty = qty - held_back if qty < 0 else qty + held_back
            if not qty:
                index[oid] = FILLED
                return
            if qty < 0:
                index[oid] = CANCELLED
                events.append(Cancelled(next(seq), oid, -qty, _SELF_TRADE))
                return
        if tif == _GTC and price is not None:
            index[oid] = self._rest(oid, account, side, price, qty, cmd.post_only, stp, is_buy)
        else:
            index[oid] = CANCELLED
            events.append(Cancelled(next(seq), oid, qty, _unfilled_reason(cmd)))

    def cancel(self, order: Order, events: list[Event], reason: CancelReason = _USER) -> None:
        """Cancel a resting order's open remainder (reason ``user`` unless the caller, such as
        a venue taking off a sell whose units expired, gives another). O(1) amortised."""
        events.append(Cancelled(next(self._seq), order.id, order.qty, reason))
        self._take_off(order)
        self._index[order.id] = CANCELLED

    def modify(self, order: Order, price: int | None, qty: int | None, events: list[Event]) -> None:
        """Change a resting order's price and/or open quantity.

        Checks, in order: bad_price, bad_qty, post_only, then the ``risk`` check's.
        A lower quantity at the same
        price keeps time priority; anything else re-queues the order at the back of its
        (new) level, trading first as the taker if the new price crosses.
        """
        seq = self._seq
        oid = order.id
        if price is None:
            price = order.price
        elif price <= 0 or price % self.tick:
            events.append(Rejected(next(seq), oid, _BAD_PRICE, bad_price(price, self.tick)))
            return
        if qty is None:
            qty = order.qty
        elif qty <= 0 or qty % self.lot:
            events.append(Rejected(next(seq), oid, _BAD_QTY, bad_qty(qty, self.lot)))
            return
        is_buy = order.side == _BUY
        if price == order.price and qty <= order.qty:
            if self.risk is not None:
                refusal = self.risk.amend(self, order, price, qty)
                if refusal is not None:
                    events.append(Rejected(next(seq), oid, refusal[0], refusal[1]))
                    return
            events.append(Modified(next(seq), oid, price, qty))
            self._resize(order, qty)
            return
        opp = self.asks if is_buy else self.bids
        limit_key = opp.sign * price
        keys = opp.keys
        crosses = bool(keys) and keys[-1] >= limit_key
        if crosses and order.post_only:
            events.append(Rejected(next(seq), oid, RejectReason.POST_ONLY,
                                   "post-only order would cross"))
            return
        if self.risk is not None:
            refusal = self.risk.amend(self, order, price, qty)
            if refusal is not None:
                events.append(Rejected(next(seq), oid, refusal[0], refusal[1]))
                return
        events.append(Modified(next(seq), oid, price, qty))
        self._take_off(order)
        if crosses:
            qty = self._match(opp, oid, order.account, is_buy, limit_key, qty, order.stp, events)
            if not qty:
                self._index[oid] = FILLED
                return
            if qty < 0:
                self._index[oid] = CANCELLED
                events.append(Cancelled(next(seq), oid, -qty, _SELF_TRADE))
                return
        self._index[oid] = self._rest(oid, order.account, order.side, price, qty,
                                      order.post_only, order.stp, is_buy)

    # -- internals -------------------------------------------------------------

    def _rest(
        self,
        oid: int,
        account: str,
        side: Side,
        price: int,
        qty: int,
        post_only: bool,
        stp: SelfTradePrevention,
        is_buy: bool,
    ) -> Order:
        own = self.bids if is_buy else self.asks
        key = price if is_buy else -price
        level = own.levels.get(key)
        if level is None:
            level = own.levels[key] = PriceLevel(price)
            insort(own.keys, key)
        else:
            price = level.price  # one int object per level, not one per order
        order = Order(oid, account, self.symbol, side, price, qty, post_only, stp)
        level.orders.append(order)
        level.qty += qty
        return order

    def _resize(self, order: Order, qty: int) -> None:
        """Set a resting order's open quantity to ``qty`` (0 < qty <= its open quantity) in place,
        keeping its priority; its level's total follows. O(1)."""
        own = self.bids if order.side == _BUY else self.asks
        own.levels[own.sign * order.price].qty -= order.qty - qty
        order.qty = qty

    def _take_off(self, order: Order) -> None:
        """Mark a resting order dead; drop its level if it empties, compact it if it is mostly dead."""
        own = self.bids if order.side == _BUY else self.asks
        key = own.sign * order.price
        level = own.levels[key]
        level.qty -= order.qty
        order.qty = 0
        if not level.qty:
            keys = own.keys
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect_left(keys, key)]
            del own.levels[key]
        else:
            dead = level.dead + 1
            if dead > _COMPACT_MIN and 2 * dead > len(level.orders):  # ...and than live ones
                level.orders = deque(level.live())
                dead = 0
            level.dead = dead

    def _executable(
        self, opp: BookSide, account: str, limit_key: int, qty: int, stp: SelfTradePrevention,
        cap: int | None = None,
    ) -> int:
        """How much of ``qty`` would trade at once (and, with a ``cap``, cost at most ``cap``),
        without touching the book. Counts only what lies before an own order, unless STP
        cancels resting orders, in which case own orders are skipped. A partial take at the
        cap is rounded down to the lot."""
        skip_own = stp == _CANCEL_RESTING
        levels = opp.levels
        left = qty
        for key in reversed(opp.keys):
            if key < limit_key:
                break
            level = levels[key]
            for o in level.orders:
                if not o.qty:
                    continue
                if o.account == account:
                    if skip_own:
                        continue
                    return qty - left
                take = min(o.qty, left)
                if cap is not None:
                    if take * level.price > cap:
                        take = cap // level.price // self.lot * self.lot
                        return qty - left + take
                    cap -= take * level.price
                left -= take
                if not left:
                    return qty
        return qty - left

    def _match(
        self,
        opp: BookSide,
        taker_id: int,
        account: str,
        is_buy: bool,
        limit_key: int,
        qty: int,
        stp: SelfTradePrevention,
        events: list[Event],
    ) -> int:
        """Trade ``qty`` against ``opp`` down to ``limit_key``.

        Returns the unexecuted quantity, negated when self-trade prevention stopped the
        order (its remainder must then be cancelled).
        """
        keys = opp.keys
        levels = opp.levels
        index = self._index
        seq = self._seq
        symbol = self.symbol
        append = events.append
        while keys:
            key = keys[-1]
            if key < limit_key:
                break
            level = levels[key]
            orders = level.orders
            price = level.price
            while True:
                maker = orders[0]
                mq = maker.qty
                if not mq:
                    orders.popleft()
                    level.dead -= 1
                    continue
                if maker.account == account:
                    if stp == _CANCEL_INCOMING:
                        return -qty
                    orders.popleft()
                    maker.qty = 0
                    level.qty -= mq
                    index[maker.id] = CANCELLED
                    append(Cancelled(next(seq), maker.id, mq, _SELF_TRADE))
                    if stp == _CANCEL_BOTH:
                        if not level.qty:
                            keys.pop()
                            del levels[key]
                        return -qty
                else:
                    if mq <= qty:
                        fill = mq
                        orders.popleft()
                        maker.qty = 0
                        index[maker.id] = FILLED
                    else:
                        fill = qty
                        maker.qty = mq - qty
                    level.qty -= fill
                    qty -= fill
                    self.reference = price
                    if is_buy:
                        append(Trade(next(seq), symbol, price, fill, maker.id, taker_id,
                                     taker_id, maker.id, account, maker.account))
                    else:
                        append(Trade(next(seq), symbol, price, fill, maker.id, taker_id,
                                     maker.id, taker_id, maker.account, account))
                if not level.qty:
                    keys.pop()
                    del levels[key]
                    break
                if not qty:
                    return 0
            if not qty:
                return 0
        return qty

    # -- inspection ------------------------------------------------------------

    def check(self) -> None:
        """Assert every invariant of the book: :func:`check`. O(orders)."""
        check(self)


def check(book: OrderBook) -> None:
    """Assert every invariant of the book; raise :class:`BookIntegrityError` on the first broken one.

    Keys sorted and matching their levels, no empty level, level totals equal
    to their live orders, each live order indexed and on its level's side and
    price, and the book not crossed. O(orders).
    """
    for side, is_buy in ((book.bids, True), (book.asks, False)):
        if side.keys != sorted(side.levels) or len(set(side.keys)) != len(side.keys):
            raise BookIntegrityError(f"{book.symbol}: keys out of order or out of step with levels")
        for key, level in side.levels.items():
            live = list(level.live())
            if (not live or level.qty != sum(o.qty for o in live)
                    or level.dead != len(level.orders) - len(live)):
                raise BookIntegrityError(f"{book.symbol}: level {level.price} totals are wrong")
            if key != side.sign * level.price:
                raise BookIntegrityError(f"{book.symbol}: level {level.price} under key {key}")
            for o in live:
                if (book._index.get(o.id) is not o or (o.side == _BUY) != is_buy
                        or o.price != level.price or o.symbol != book.symbol):
                    raise BookIntegrityError(f"{book.symbol}: order {o.id} misplaced or not indexed")
    for queue, is_buy in ((book.market_bids, True), (book.market_asks, False)):
        for o in queue:
            if (not o.qty or o.price or book._index.get(o.id) is not o
                    or (o.side == _BUY) != is_buy or not book.pending):
                raise BookIntegrityError(f"{book.symbol}: market order {o.id} misplaced")
    bid, ask = book.bids.best(), book.asks.best()
    if book.pending:
        return
    if bid is not None and ask is not None and bid.price >= ask.price:
        raise BookIntegrityError(f"{book.symbol}: crossed at rest, bid {bid.price} >= ask {ask.price}")


def route(books: dict[str, OrderBook], index: Index, commands: Iterable[object], events: list[Event],
          decoded: bool, dispatch: Callable[[object, list[Event], bool], None]) -> None:
    """Apply ``commands`` in order: new orders and cancels of a listed book go straight to it
    (a call less per command), every other command to ``dispatch(command, events, decoded)``."""
    for command in commands:
        cls = command.__class__
        if cls is NewOrder:
            symbol = command.symbol  # type: ignore[attr-defined]
            book = books.get(symbol) if symbol.__class__ is str else None  # a list is unhashable
            if book is not None:
                book.submit(command, events, decoded)  # type: ignore[arg-type]
                continue
        elif cls is CancelOrder:
            oid = command.id  # type: ignore[attr-defined]
            order = index.get(oid) if oid.__class__ is int else None
            if order.__class__ is Order:
                books[order.symbol].cancel(order, events)
                continue
        dispatch(command, events, decoded)


def order_rejection(book: OrderBook, cmd: NewOrder) -> Rejected | None:
    """The rejection of a new order by the contract's order (malformed, bad_price, bad_qty,
    duplicate_id), or None when it has none: values equal to the enum members are well
    formed, though submit's quick test takes only the members themselves. Both cores call it."""
    oid = cmd.id
    fault = new_order_fault(cmd)
    if fault is not None:
        return Rejected(next(book._seq), oid if is_order_id(oid) else None, _MALFORMED, fault)
    if cmd.price is not None and (cmd.price <= 0 or cmd.price % book.tick):
        return Rejected(next(book._seq), oid, _BAD_PRICE, bad_price(cmd.price, book.tick))
    if cmd.qty <= 0 or cmd.qty % book.lot:
        return Rejected(next(book._seq), oid, _BAD_QTY, bad_qty(cmd.qty, book.lot))
    if oid in book._index:
        return Rejected(next(book._seq), oid, RejectReason.DUPLICATE_ID, f"order id {oid} already used")
    return None


def _unfilled_reason(cmd: NewOrder) -> CancelReason:
    """Why the remainder of an order that may not rest is cancelled."""
    if cmd.tif == _FOK:
        return _FOK_REASON
    return CancelReason.MARKET if cmd.price is None else CancelReason.IOC


def bad_price(price: int, tick: int) -> str:
    if price <= 0:
        return f"price {price} is not positive"
    return f"price {price} is not a multiple of the tick {tick}"


def bad_qty(qty: int, lot: int) -> str:
    if qty <= 0:
        return f"qty {qty} is not positive"
    return f"qty {qty} is not a multiple of the lot {lot}"
