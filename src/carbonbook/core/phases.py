"""Trading phases, call-auction uncrossing and price bands.

A plain ``OrderBook`` (of either core, :mod:`carbonbook.core`) trades continuously and
has no band; its hot path knows nothing of phases. Every other state is a mixin over the
core's ``OrderBook`` with the same slots that overrides ``submit``, ``cancel`` and
``modify`` (:data:`FAMILIES` has each core's four classes), and a phase change swaps the
book's class within its core (``book.__class__ = CallBook``), so a continuous, unbanded
book pays nothing for the features below.

Phases
    ``continuous`` (:class:`OrderBook`, or :class:`BandedBook` with a band): orders
    match on arrival. ``call`` (:class:`CallBook`): orders are collected and nothing
    matches; every accepted order, cancel and modify is followed by an
    ``indicative`` event (the price, volume and surplus the book would uncross at
    now). ``closed`` and ``halted`` (:class:`ClosedBook`): new orders and modifies
    are refused (``phase``), cancels are accepted, as exchanges do in a halt.
    A ``call_only`` instrument refuses the continuous phase and market orders.

Uncrossing
    Leaving a call for ``continuous`` or ``closed`` (directly, or after a halt that
    interrupted the call) uncrosses the book at one price ``P``, chosen among the
    limit prices of the book by, in order: the largest executable volume
    ``min(D(P), S(P))`` (``D``: market buys plus bids at ``P`` or above; ``S``:
    market sells plus asks at ``P`` or below); the least surplus ``|D - S|``;
    market pressure (surplus on the buy side at every remaining price: the highest;
    on the sell side: the lowest); then the reference price (the last trade or
    uncross price, or the one given by an ``instrument`` or ``phase`` command) when
    it lies within the remaining prices, else the remaining price nearest it; with
    no reference, the middle of the remaining range rounded down to the tick.
    With market orders on both sides and no limit price at all, ``P`` is the
    reference (nothing trades without one).

    Buy orders are filled in priority order (market orders first, then best price,
    then time) against sell orders in the same order, all at ``P``. The maker of
    each trade is the order that entered the book first (orders resting from the
    continuous phase before any order of the call). Self-trade prevention: when the
    next buy and sell belong to one account, the later of the two applies its
    ``stp`` (``cancel_incoming`` cancels itself, ``cancel_resting`` the earlier
    order, ``cancel_both`` both, reason ``self_trade``) and the price is chosen
    again. A FOK order that the allocation would not fill entirely is cancelled
    (``fok``) and the price chosen again, so FOK is all-or-nothing at the uncross.
    Afterwards the unexecuted remainders of market, IOC and FOK orders are
    cancelled (``market``, ``ioc``, ``fok``); GTC limit remainders rest. With the
    largest volume traded in price priority, what rests is never crossed.

Bands
    ``band`` is in basis points around the reference price ``R``: a limit price
    ``p`` is inside when ``|p - R| * 10000 <= R * band`` (exact integers). ``R``
    follows every trade and uncross (JPX's base price is the last execution price).
    No band applies before there is a reference. Market orders have no price and
    are never outside the band.

Cost
    ``D`` falls and ``S`` rises with the price, so ``min(D, S)`` rises then falls:
    the largest volume lies where ``D - S`` changes sign, and the prices tied on it
    are the limit prices next to that point. The price choice walks there from a
    known ``(price, D, S)``, one limit price at a time (a bisect of each side's keys
    per step), then over the tied prices. A call book keeps ``D`` and ``S`` at the
    last crossing point (its *tally*), moved by every accepted order, cancel
    and modify in O(1), so ``indicative`` costs O((steps + tied prices) log L): a few
    steps when the crossing barely moves, however deep the book. The tally is the
    book's ``call_row`` (None until the first ``indicative`` of a call, and again
    after every phase change); ``auction_price`` and the uncross build theirs from
    scratch, O(L log L) for L levels. The uncross is
    O(levels + orders filled), times one per self-trade or FOK re-choice.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from carbonbook import core as cores
from carbonbook._types import (
    CancelReason,
    Phase,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from carbonbook.commands import NewOrder
from carbonbook.core.book import CANCELLED, FILLED, Order, OrderBook, order_rejection
from carbonbook.events import (
    Accepted,
    Cancelled,
    Event,
    Indicative,
    Modified,
    PhaseChanged,
    Rejected,
    Trade,
    Uncrossed,
)

_BUY = Side.BUY
_SELL = Side.SELL
_PHASE = RejectReason.PHASE
_BAND = RejectReason.PRICE_BAND
_CALL = Phase.CALL
_HALTED = Phase.HALTED
_CLOSED = Phase.CLOSED
_EXPIRY = {TimeInForce.IOC: CancelReason.IOC, TimeInForce.FOK: CancelReason.FOK}


# -- checks shared by the phase books ---------------------------------------------


def _modify_refusal(book: OrderBook, oid: int, price: int | None, qty: int | None) -> Rejected | None:
    """The rejection of a modify for bad_price or bad_qty, or None."""
    if price is not None and (price <= 0 or price % book.tick):
        return Rejected(next(book._seq), oid, RejectReason.BAD_PRICE,
                        f"price {price} is not positive or not a multiple of the tick {book.tick}")
    if qty is not None and (qty <= 0 or qty % book.lot):
        return Rejected(next(book._seq), oid, RejectReason.BAD_QTY,
                        f"qty {qty} is not positive or not a multiple of the lot {book.lot}")
    return None


def outside_band(book: OrderBook, price: int) -> bool:
    """Is ``price`` outside the book's band around its reference? False without a band or reference."""
    band, ref = book.band, book.reference
    return band is not None and ref is not None and abs(price - ref) * 10000 > ref * band


def _band_rejection(book: OrderBook, oid: int, price: int) -> Rejected:
    return Rejected(next(book._seq), oid, _BAND,
                    f"price {price} is outside the band of {book.band} bp around {book.reference}")


def _risk_rejection(book: OrderBook, oid: int, refusal: tuple[str, str] | None) -> Rejected | None:
    return None if refusal is None else Rejected(next(book._seq), oid, refusal[0], refusal[1])


def _phase_rejection(book: OrderBook, oid: int | None, detail: str) -> Rejected:
    return Rejected(next(book._seq), oid, _PHASE, detail)


def _remove(book: OrderBook, order: Order, reason: CancelReason, events: list[Event],
            dequeue: bool = True) -> None:
    """Cancel an open order of a book in any phase (market orders of a call included;
    ``dequeue=False`` leaves a market order in its queue for the caller to clear)."""
    events.append(Cancelled(next(book._seq), order.id, order.qty, reason))
    _drop(book, order, dequeue)


def _drop(book: OrderBook, order: Order, dequeue: bool = True) -> None:
    if order.price:
        book._take_off(order)
    else:
        if dequeue:
            (book.market_bids if order.side == _BUY else book.market_asks).remove(order)
        order.qty = 0
    book._index[order.id] = CANCELLED
    book._expiring.pop(order.id, None)


# -- the phase books ----------------------------------------------------------------
#
# Each phase is a mixin; every core gets its four book classes, the mixins over the core's
# OrderBook (:data:`FAMILIES`), so a phase change swaps classes within one core.

if TYPE_CHECKING:
    _Phase = OrderBook
else:
    _Phase = object


class BandedPhase(_Phase):
    """A continuous book with a price band: refuses limit prices outside it (``price_band``)."""

    __slots__ = ()

    def submit(self, cmd: NewOrder, events: list[Event], decoded: bool = False) -> None:
        price = cmd.price
        if price.__class__ is int and outside_band(self, price):
            refusal = order_rejection(self, cmd)
            events.append(refusal if refusal is not None
                          else _band_rejection(self, cmd.id, price))
            return
        super().submit(cmd, events, decoded)

    def modify(self, order: Order, price: int | None, qty: int | None, events: list[Event]) -> None:
        if price is not None and outside_band(self, price):
            refusal = _modify_refusal(self, order.id, price, qty)
            events.append(refusal if refusal is not None else _band_rejection(self, order.id, price))
            return
        super().modify(order, price, qty, events)


class ClosedPhase(_Phase):
    """A closed or halted book: new orders and modifies are refused (``phase``), cancels accepted."""

    __slots__ = ()

    def submit(self, cmd: NewOrder, events: list[Event], decoded: bool = False) -> None:
        refusal = order_rejection(self, cmd)
        events.append(refusal if refusal is not None else _phase_rejection(
            self, cmd.id, f"{self.symbol} is {self.phase}: no new orders"))

    def cancel(self, order: Order, events: list[Event], reason: CancelReason = CancelReason.USER) -> None:
        _remove(self, order, reason, events)

    def modify(self, order: Order, price: int | None, qty: int | None, events: list[Event]) -> None:
        refusal = _modify_refusal(self, order.id, price, qty)
        events.append(refusal if refusal is not None else _phase_rejection(
            self, order.id, f"{self.symbol} is {self.phase}: no modifies"))


class CallPhase(_Phase):
    """A book in the call phase: orders rest without matching; each change publishes ``indicative``."""

    __slots__ = ()

    def submit(self, cmd: NewOrder, events: list[Event], decoded: bool = False) -> None:
        refusal = order_rejection(self, cmd)
        price = cmd.price
        if refusal is None:
            if price is None and self.call_only:
                refusal = _phase_rejection(self, cmd.id, f"{self.symbol} is call-only: limit orders only")
            elif price is not None and outside_band(self, price):
                refusal = _band_rejection(self, cmd.id, price)
            elif cmd.post_only:
                refusal = Rejected(next(self._seq), cmd.id, RejectReason.POST_ONLY,
                                   "post-only orders are refused in a call")
            elif cmd.cap is not None:
                refusal = _phase_rejection(self, cmd.id, "a market buy with a cap cannot enter a call")
            elif self.risk is not None:
                refusal = _risk_rejection(self, cmd.id, self.risk.admit(self, cmd))
        if refusal is not None:
            events.append(refusal)
            return
        oid = cmd.id
        events.append(Accepted(next(self._seq), oid, self.symbol))
        self._arrival[oid] = next(self._clock)
        if price is None:
            order = self.order_class(oid, cmd.account, self.symbol, cmd.side, 0, cmd.qty, False, cmd.stp)
            (self.market_bids if cmd.side == _BUY else self.market_asks).append(order)
            self._index[oid] = order
            self._expiring[oid] = CancelReason.MARKET
        else:
            self._index[oid] = self._rest(oid, cmd.account, cmd.side, price, cmd.qty, False,
                                          cmd.stp, cmd.side == _BUY)
            if cmd.tif in _EXPIRY:
                self._expiring[oid] = _EXPIRY[cmd.tif]
        _count(self, cmd.side == _BUY, price or 0, cmd.qty)
        events.append(indicative(self))

    def cancel(self, order: Order, events: list[Event], reason: CancelReason = CancelReason.USER) -> None:
        _count(self, order.side == _BUY, order.price, -order.qty)
        _remove(self, order, reason, events)
        events.append(indicative(self))

    def modify(self, order: Order, price: int | None, qty: int | None, events: list[Event]) -> None:
        oid = order.id
        refusal = _modify_refusal(self, oid, price, qty)
        if refusal is None:
            if not order.price:
                refusal = _phase_rejection(self, oid, "a market order in a call can only be cancelled")
            elif price is not None and outside_band(self, price):
                refusal = _band_rejection(self, oid, price)
        new_price = order.price if price is None else price
        new_qty = order.qty if qty is None else qty
        if refusal is None and self.risk is not None:
            refusal = _risk_rejection(self, oid, self.risk.amend(self, order, new_price, new_qty))
        if refusal is not None:
            events.append(refusal)
            return
        events.append(Modified(next(self._seq), oid, new_price, new_qty))
        is_buy = order.side == _BUY
        _count(self, is_buy, order.price, -order.qty)
        _count(self, is_buy, new_price, new_qty)
        if new_price == order.price and new_qty <= order.qty:
            self._resize(order, new_qty)
        else:
            self._take_off(order)
            self._arrival[oid] = next(self._clock)
            self._index[oid] = self._rest(oid, order.account, order.side, new_price, new_qty,
                                          order.post_only, order.stp, is_buy)
        events.append(indicative(self))


Row = tuple[int, int, int]
"""``(p, D(p), S(p))``: a price, the demand and the supply there."""

Chooser = Callable[[OrderBook, Row], tuple[tuple[int | None, int, int], Row]]
"""A core's uncrossing price from a row: :func:`choose`."""

Family = dict[str, type[OrderBook]]
"""A core's four book classes by name: ``OrderBook``, ``BandedBook``, ``CallBook``, ``ClosedBook``."""


def _family(base: type[OrderBook]) -> Family:
    family: Family = {"OrderBook": base}
    for phase in (BandedPhase, CallPhase, ClosedPhase):
        name = phase.__name__.replace("Phase", "Book")
        family[name] = type(name, (phase, base), {"__slots__": (), "__doc__": phase.__doc__,
                                                   "__module__": __name__})
    return family


FAMILIES: dict[type, Family] = {}
"""Every book class of every core, to its core's family."""
for _core in cores.CORES.values():
    _classes = _family(_core.OrderBook)
    FAMILIES.update(dict.fromkeys(_classes.values(), _classes))

_PURE = FAMILIES[OrderBook]
BandedBook, CallBook, ClosedBook = _PURE["BandedBook"], _PURE["CallBook"], _PURE["ClosedBook"]
"""The pure core's phase books."""


# -- phase changes --------------------------------------------------------------------


def enter(book: OrderBook, phase: Phase) -> None:
    """Put ``book`` in ``phase`` without events (a newly listed book)."""
    book.phase = phase
    book.call_row = None
    family = FAMILIES[book.__class__]
    if phase is _CALL:
        book.pending = True
        book.__class__ = family["CallBook"]
    elif phase is _HALTED or phase is _CLOSED:
        book.__class__ = family["ClosedBook"]
    else:
        book.__class__ = family["OrderBook" if book.band is None else "BandedBook"]


def switch(book: OrderBook, phase: Phase, reference: int | None, events: list[Event]) -> None:
    """Switch ``book`` to ``phase`` (checked by the caller), uncrossing a pending call when
    the new phase is ``continuous`` or ``closed``; appends ``phase_changed`` and what follows."""
    if reference is not None:
        book.reference = reference
    events.append(PhaseChanged(next(book._seq), book.symbol, phase, book.reference))
    if book.pending and phase is not _CALL and phase is not _HALTED:
        uncross(book, events)
    enter(book, phase)
    if phase is _CALL:
        events.append(indicative(book))


# -- the uncross ----------------------------------------------------------------------


def indicative(book: OrderBook) -> Indicative:
    """The ``indicative`` event of a call book as it stands."""
    row = book.call_row
    if row is None:
        row = _fresh_row(book)
    (price, volume, surplus), book.call_row = CHOOSE[book.__class__](book, row)
    side = _BUY if surplus > 0 else _SELL if surplus < 0 else None
    return Indicative(next(book._seq), book.symbol, price, volume, abs(surplus), side)


def auction_price(book: OrderBook) -> tuple[int | None, int, int]:
    """The uncrossing price, the volume it executes and the surplus ``D - S`` there
    (positive: on the buy side); ``(None, 0, 0)`` when nothing would trade."""
    return CHOOSE[book.__class__](book, _fresh_row(book))[0]


def _fresh_row(book: OrderBook) -> Row:
    """The row at price 0, below every limit price: all the demand, only market supply. O(L)."""
    demand = sum(o.qty for o in book.market_bids) + sum(lv.qty for lv in book.bids.levels.values())
    return 0, demand, sum(o.qty for o in book.market_asks)


def _up(book: OrderBook, row: Row) -> Row | None:
    """The row of the lowest limit price above ``row``'s, or None. O(log L)."""
    p, demand, supply = row
    bk, ak = book.bids.keys, book.asks.keys  # bid keys are prices; ask keys are -price
    i, j = bisect_right(bk, p), bisect_left(ak, -p)  # ak[j - 1] is the lowest ask above p
    above = ([bk[i]] if i < len(bk) else []) + ([-ak[j - 1]] if j else [])
    if not above:
        return None
    nxt = min(above)
    bid, ask = book.bids.levels.get(p), book.asks.levels.get(-nxt)
    return (nxt, demand - bid.qty if bid is not None else demand,
            supply + ask.qty if ask is not None else supply)


def _down(book: OrderBook, row: Row) -> Row | None:
    """The row of the highest limit price below ``row``'s, or None. O(log L)."""
    p, demand, supply = row
    bk, ak = book.bids.keys, book.asks.keys
    i, j = bisect_left(bk, p), bisect_right(ak, -p)  # ak[j] is the highest ask below p
    below = ([bk[i - 1]] if i else []) + ([-ak[j]] if j < len(ak) else [])
    if not below:
        return None
    nxt = max(below)
    bid, ask = book.bids.levels.get(nxt), book.asks.levels.get(-p)
    return (nxt, demand + bid.qty if bid is not None else demand,
            supply - ask.qty if ask is not None else supply)


def choose(book: OrderBook, row: Row) -> tuple[tuple[int | None, int, int], Row]:
    """The uncrossing ``(price, volume, surplus)``, found by walking from ``row`` (at any
    price), and the row where ``D - S`` changes sign, to start from next time."""
    if not book.bids.keys and not book.asks.keys:  # D and S are the market orders
        _, mb, ms = row
        ref = book.reference
        if mb and ms and ref is not None:
            return (ref, min(mb, ms), mb - ms), row
        return (None, 0, 0), row
    if row[0] not in book.bids.levels and -row[0] not in book.asks.levels:
        row = _up(book, row) or _down(book, row)  # type: ignore[assignment]  # a price exists
    # left: the highest limit price with D > S; right: the lowest with D <= S
    left: Row | None
    right: Row | None
    if row[1] > row[2]:
        left, right = row, _up(book, row)
        while right is not None and right[1] > right[2]:
            left, right = right, _up(book, right)
    else:
        left, right = _down(book, row), row
        while left is not None and left[1] <= left[2]:
            left, right = _down(book, left), left
    here = right or left or row
    # min(D, S) is S up to left and D from right on: the largest volume is at one of
    # them, and the prices tied on it are next to it
    volume = max(0 if left is None else left[2], 0 if right is None else right[1])
    if not volume:
        return (None, 0, 0), here
    rows: list[Row] = []
    while left is not None and left[2] == volume:
        rows.append(left)
        left = _down(book, left)
    rows.reverse()
    while right is not None and right[1] == volume:
        rows.append(right)
        right = _up(book, right)
    tied = [(p, d - s) for p, d, s in rows]
    least = min(abs(r[1]) for r in tied)
    tied = [r for r in tied if abs(r[1]) == least]
    if least and all(r[1] > 0 for r in tied):
        return (tied[-1][0], volume, tied[-1][1]), here
    if least and all(r[1] < 0 for r in tied):
        return (tied[0][0], volume, tied[0][1]), here
    low, high = tied[0][0], tied[-1][0]
    ref = book.reference
    if ref is None:
        price = (low + high) // 2
        price -= (price - low) % book.tick
    else:
        price = low if ref < low else high if ref > high else ref
    for p, surplus in tied:
        if p == price:
            return (price, volume, surplus), here
    # between two tied prices, or at one that has more surplus: from the row at or below it
    p, demand, supply = next(r for r in reversed(rows) if r[0] <= price)
    if p < price:
        bid = book.bids.levels.get(p)
        demand -= bid.qty if bid is not None else 0
    return (price, min(demand, supply), demand - supply), here


CHOOSE: dict[type, Chooser] = {cls: _core.choose if _core.COMPILED else choose
                                for _core in cores.CORES.values() for cls in FAMILIES[_core.OrderBook].values()}
"""Every book class of every core, to its core's :func:`choose` (the compiled core's has the
same rules in C integers; this module's is the reference)."""


def _count(book: OrderBook, is_buy: bool, price: int, qty: int) -> None:
    """Add ``qty`` (negative: take it off) at ``price`` (0: a market order) to a call
    book's tally, if it has one."""
    row = book.call_row
    if row is None:
        return
    at, demand, supply = row
    if is_buy:
        if not price or price >= at:
            book.call_row = at, demand + qty, supply
    elif price <= at:
        book.call_row = at, demand, supply + qty


def _executable(book: OrderBook, is_buy: bool, price: int) -> Iterator[Order]:
    """The open orders of one side that can trade at ``price``, in priority order."""
    yield from (o for o in (book.market_bids if is_buy else book.market_asks) if o.qty)
    for level in (book.bids if is_buy else book.asks).in_priority():
        if (level.price < price) if is_buy else (level.price > price):
            return
        yield from level.live()


Fill = tuple[Order, Order, int]


def _allocate(book: OrderBook, price: int, volume: int
              ) -> tuple[list[Fill], list[Order], CancelReason]:
    """Pair ``volume`` of buys and sells in priority order at ``price``.

    Returns the fills and no orders to cancel, or stops at the first obstacle and
    returns the orders to cancel first: the self-trade prevention victims of a
    same-account pair, or a FOK order the fills would not fill entirely.
    """
    buys, sells = _executable(book, True, price), _executable(book, False, price)
    fills: list[Fill] = []
    b, s = next(buys), next(sells)
    bq, sq = b.qty, s.qty
    while True:
        if b.account == s.account:
            return fills, _stp_victims(book, b, s), CancelReason.SELF_TRADE
        q = min(bq, sq, volume)
        fills.append((b, s, q))
        volume -= q
        if not volume:
            break
        bq -= q
        sq -= q
        if not bq:
            b = next(buys)
            bq = b.qty
        if not sq:
            s = next(sells)
            sq = s.qty
    fok = [oid for oid, reason in book._expiring.items() if reason is CancelReason.FOK]
    if fok:
        filled: Counter[int] = Counter()
        for b, s, q in fills:
            filled[b.id] += q
            filled[s.id] += q
        for oid in fok:
            entry = book._index[oid]
            if not isinstance(entry, str) and filled[oid] < entry.qty:
                return fills, [entry], CancelReason.FOK
    return fills, [], CancelReason.FOK


def _stp_victims(book: OrderBook, b: Order, s: Order) -> list[Order]:
    arrival = book._arrival
    earlier, later = (b, s) if arrival.get(b.id, 0) <= arrival.get(s.id, 0) else (s, b)
    stp = later.stp
    if stp is SelfTradePrevention.CANCEL_INCOMING:
        return [later]
    if stp is SelfTradePrevention.CANCEL_RESTING:
        return [earlier]
    return [earlier, later]


def uncross(book: OrderBook, events: list[Event]) -> None:
    """End a call: trade at one price, cancel the remainders that may not rest."""
    seq, symbol, index, arrival = book._seq, book.symbol, book._index, book._arrival
    dropped: list[tuple[int, int, CancelReason]] = []
    while True:
        price, volume, _ = auction_price(book)
        if price is None or not volume:
            fills: list[Fill] = []
            break
        fills, victims, reason = _allocate(book, price, volume)
        if not victims:
            break
        for order in victims:
            dropped.append((order.id, order.qty, reason))
            _drop(book, order)
    events.append(Uncrossed(next(seq), symbol, price if fills else None, volume if fills else 0))
    for oid, qty, reason in dropped:
        events.append(Cancelled(next(seq), oid, qty, reason))
    for b, s, q in fills:
        if arrival.get(b.id, 0) <= arrival.get(s.id, 0):
            maker, taker = b, s
        else:
            maker, taker = s, b
        events.append(Trade(next(seq), symbol, price, q, maker.id, taker.id,  # type: ignore[arg-type]
                            b.id, s.id, b.account, s.account))
        for o in (b, s):
            if not o.price:  # a market order of the call: its queue is cleared below
                o.qty -= q
            elif o.qty > q:
                book._resize(o, o.qty - q)
            else:
                book._take_off(o)
            if not o.qty:
                index[o.id] = FILLED
    if fills:
        book.reference = price
    for oid, reason in list(book._expiring.items()):
        entry = index[oid]
        if not isinstance(entry, str):
            _remove(book, entry, reason, events, dequeue=False)
    book.market_bids.clear()
    book.market_asks.clear()
    book._expiring.clear()
    arrival.clear()
    book.pending = False
