"""A naive reference matcher for carbonbook, written from the order-log contract.

It is an oracle for the property tests, not an implementation to be proud of: every
book is a plain list of resting orders in arrival order, and every lookup is a list
scan. "Best" means best price, then earliest position in the list; an order that
loses priority is removed and appended to the end of the list.

It gives the same events (classes, seq numbers and fields) as ``carbonbook.Engine``,
except that the free-text ``detail`` of a ``rejected`` event is only a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carbonbook import (
    Accepted,
    Cancelled,
    CancelOrder,
    CancelReason,
    Event,
    InstrumentListed,
    ListInstrument,
    Modified,
    ModifyOrder,
    NewOrder,
    OrderType,
    Rejected,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
    UnitType,
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def is_int64(value: object) -> bool:
    """An int (not a bool) that fits in 64 signed bits."""
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def is_order_id(value: object) -> bool:
    """An int in 0 .. 2**63 - 1."""
    return type(value) is int and 0 <= value <= INT64_MAX


def is_name(value: object) -> bool:
    """A non-empty str."""
    return type(value) is str and value != ""


def is_member(value: object, enum: type[Any]) -> bool:
    """One of ``enum``'s values: a member, or (for a hand-built command) the plain string
    that spells one, as decoding would turn it into that member."""
    return any(value == member and type(value) in (enum, str) for member in enum)


@dataclass
class RefOrder:
    """A resting order: ``qty`` is its open quantity."""

    id: int
    account: str
    side: Side
    price: int
    qty: int
    post_only: bool
    stp: SelfTradePrevention


@dataclass
class RefBook:
    """One instrument: its grid and its resting orders, oldest first (both sides mixed)."""

    symbol: str
    unit: UnitType
    tick: int
    lot: int
    orders: list[RefOrder] = field(default_factory=list)

    def side(self, side: Side) -> list[RefOrder]:
        """The resting orders of one side, in priority order: best price first, then
        oldest first (``sorted`` is stable, and the list is in arrival order)."""
        mine = [o for o in self.orders if o.side == side]
        return sorted(mine, key=lambda o: -o.price if side == Side.BUY else o.price)


def better(side: Side, a: int, b: int) -> bool:
    """Is price ``a`` strictly better than ``b`` for a resting order on ``side``?"""
    return a > b if side == Side.BUY else a < b


def best_of(orders: list[RefOrder], side: Side) -> RefOrder | None:
    """The first order of ``side`` with the best price (a plain scan)."""
    best: RefOrder | None = None
    for o in orders:
        if o.side == side and (best is None or better(side, o.price, best.price)):
            best = o
    return best


def crosses(taker_side: Side, limit: int | None, maker_price: int) -> bool:
    """Would a taker on ``taker_side`` with ``limit`` (None: market) trade at ``maker_price``?"""
    if limit is None:
        return True
    return maker_price <= limit if taker_side == Side.BUY else maker_price >= limit


def opposite(side: Side) -> Side:
    return Side.SELL if side == Side.BUY else Side.BUY


class Reference:
    """The naive engine: ``apply(command)`` returns the command's events."""

    def __init__(self) -> None:
        self.seq = 0
        self.books: dict[str, RefBook] = {}
        self.used_ids: set[int] = set()  # every id ever accepted
        self.order_symbol: dict[int, str] = {}  # accepted id -> its symbol

    # -- helpers --------------------------------------------------------------------

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def reject(self, oid: int | None, reason: RejectReason, detail: str) -> list[Event]:
        return [Rejected(self.next_seq(), oid, reason, detail)]

    def find_open(self, oid: int) -> tuple[RefBook, RefOrder] | None:
        for book in self.books.values():
            for o in book.orders:
                if o.id == oid:
                    return book, o
        return None

    def snapshot(self) -> dict[str, dict[str, list[list[int]]]]:
        """The same shape as ``Engine.snapshot()``."""
        return {
            symbol: {
                "bids": [[o.price, o.id, o.qty] for o in book.side(Side.BUY)],
                "asks": [[o.price, o.id, o.qty] for o in book.side(Side.SELL)],
            }
            for symbol, book in self.books.items()
        }

    # -- commands -------------------------------------------------------------------

    def apply(self, cmd: object) -> list[Event]:
        if isinstance(cmd, ListInstrument):
            return self.list_instrument(cmd)
        if isinstance(cmd, NewOrder):
            return self.new_order(cmd)
        if isinstance(cmd, CancelOrder):
            return self.cancel(cmd)
        if isinstance(cmd, ModifyOrder):
            return self.modify(cmd)
        return self.reject(None, RejectReason.MALFORMED, "not a command")

    def list_instrument(self, cmd: ListInstrument) -> list[Event]:
        if (
            not is_name(cmd.symbol)
            or not is_member(cmd.unit, UnitType)
            or not is_int64(cmd.tick)
            or not is_int64(cmd.lot)
            or cmd.tick <= 0
            or cmd.lot <= 0
        ):
            return self.reject(None, RejectReason.MALFORMED, "bad instrument")
        if cmd.symbol in self.books:
            return self.reject(None, RejectReason.DUPLICATE_SYMBOL, "already listed")
        self.books[cmd.symbol] = RefBook(cmd.symbol, cmd.unit, cmd.tick, cmd.lot)
        return [InstrumentListed(self.next_seq(), cmd.symbol, cmd.unit, cmd.tick, cmd.lot)]

    def new_order_malformed(self, cmd: NewOrder) -> bool:
        if not is_order_id(cmd.id) or not is_name(cmd.account) or not is_name(cmd.symbol):
            return True
        if not (
            is_member(cmd.side, Side)
            and is_member(cmd.order_type, OrderType)
            and is_member(cmd.tif, TimeInForce)
            and is_member(cmd.stp, SelfTradePrevention)
        ):
            return True
        if not is_int64(cmd.qty) or not (cmd.price is None or is_int64(cmd.price)):
            return True
        if type(cmd.post_only) is not bool:
            return True
        if cmd.cap is not None and not (is_int64(cmd.cap) and cmd.cap > 0 and cmd.side == Side.BUY
                                        and cmd.order_type == OrderType.MARKET):
            return True
        if cmd.order_type == OrderType.LIMIT and cmd.price is None:
            return True
        if cmd.order_type == OrderType.MARKET and (cmd.price is not None or cmd.post_only):
            return True
        return cmd.post_only and cmd.tif != TimeInForce.GTC

    def new_order(self, cmd: NewOrder) -> list[Event]:
        if self.new_order_malformed(cmd):
            return self.reject(cmd.id if is_order_id(cmd.id) else None,
                               RejectReason.MALFORMED, "malformed")
        book = self.books.get(cmd.symbol)
        if book is None:
            return self.reject(cmd.id, RejectReason.UNKNOWN_SYMBOL, "unknown symbol")
        price, qty = cmd.price, cmd.qty
        if price is not None and (price <= 0 or price % book.tick != 0):
            return self.reject(cmd.id, RejectReason.BAD_PRICE, "bad price")
        if qty <= 0 or qty % book.lot != 0:
            return self.reject(cmd.id, RejectReason.BAD_QTY, "bad qty")
        if cmd.id in self.used_ids:
            return self.reject(cmd.id, RejectReason.DUPLICATE_ID, "duplicate id")
        if cmd.post_only and self.would_cross(book, cmd.side, price):
            return self.reject(cmd.id, RejectReason.POST_ONLY, "post-only would cross")

        self.used_ids.add(cmd.id)
        self.order_symbol[cmd.id] = cmd.symbol
        events: list[Event] = [Accepted(self.next_seq(), cmd.id, cmd.symbol)]

        if cmd.tif == TimeInForce.FOK and self.fillable(book, cmd.side, cmd.account, price,
                                                         cmd.stp, cmd.cap) < qty:
            events.append(Cancelled(self.next_seq(), cmd.id, qty, CancelReason.FOK))
            return events

        held_back = 0  # a capped market buy trades as a market buy of what the cap pays for
        if cmd.cap is not None:
            held_back = qty - min(qty, self.fillable(book, cmd.side, cmd.account, price,
                                                     SelfTradePrevention.CANCEL_RESTING, cmd.cap))
        remaining, stopped = self.match(book, cmd.id, cmd.account, cmd.side, price, qty - held_back,
                                        cmd.stp, events)
        remaining += held_back
        if remaining == 0:
            return events
        if stopped:
            reason = CancelReason.SELF_TRADE
        elif cmd.order_type == OrderType.MARKET:
            reason = CancelReason.FOK if cmd.tif == TimeInForce.FOK else CancelReason.MARKET
        elif cmd.tif == TimeInForce.IOC:
            reason = CancelReason.IOC
        elif cmd.tif == TimeInForce.FOK:
            reason = CancelReason.FOK  # only reachable if fillable() lied; kept for safety
        else:
            assert price is not None
            book.orders.append(RefOrder(cmd.id, cmd.account, cmd.side, price, remaining,
                                        cmd.post_only, cmd.stp))
            return events
        events.append(Cancelled(self.next_seq(), cmd.id, remaining, reason))
        return events

    def cancel(self, cmd: CancelOrder) -> list[Event]:
        if not is_order_id(cmd.id):
            return self.reject(None, RejectReason.MALFORMED, "bad id")
        found = self.find_open(cmd.id)
        if found is None:
            return self.reject(cmd.id, RejectReason.UNKNOWN_ORDER, "not open")
        book, order = found
        book.orders.remove(order)
        return [Cancelled(self.next_seq(), order.id, order.qty, CancelReason.USER)]

    def modify(self, cmd: ModifyOrder) -> list[Event]:
        oid = cmd.id
        if not is_order_id(oid):
            return self.reject(None, RejectReason.MALFORMED, "bad id")
        if cmd.price is None and cmd.qty is None:
            return self.reject(oid, RejectReason.MALFORMED, "nothing to modify")
        if not (cmd.price is None or is_int64(cmd.price)) or not (
            cmd.qty is None or is_int64(cmd.qty)
        ):
            return self.reject(oid, RejectReason.MALFORMED, "not int64")
        found = self.find_open(oid)
        if found is None:
            return self.reject(oid, RejectReason.UNKNOWN_ORDER, "not open")
        book, order = found
        price = order.price if cmd.price is None else cmd.price
        qty = order.qty if cmd.qty is None else cmd.qty
        if price <= 0 or price % book.tick != 0:
            return self.reject(oid, RejectReason.BAD_PRICE, "bad price")
        if qty <= 0 or qty % book.lot != 0:
            return self.reject(oid, RejectReason.BAD_QTY, "bad qty")

        if price == order.price and qty <= order.qty:
            order.qty = qty  # keeps its place in the list
            return [Modified(self.next_seq(), oid, price, qty)]

        # loses priority: it may trade as a taker first, then rests at the back
        if order.post_only and self.would_cross(book, order.side, price):
            return self.reject(oid, RejectReason.POST_ONLY, "post-only would cross")
        events: list[Event] = [Modified(self.next_seq(), oid, price, qty)]
        book.orders.remove(order)
        remaining, stopped = self.match(book, oid, order.account, order.side, price, qty,
                                        order.stp, events)
        if remaining == 0:
            return events
        if stopped:
            events.append(Cancelled(self.next_seq(), oid, remaining, CancelReason.SELF_TRADE))
            return events
        book.orders.append(RefOrder(oid, order.account, order.side, price, remaining,
                                    order.post_only, order.stp))
        return events

    # -- matching ---------------------------------------------------------------------

    def would_cross(self, book: RefBook, side: Side, price: int | None) -> bool:
        best = best_of(book.orders, opposite(side))
        return best is not None and crosses(side, price, best.price)

    def fillable(self, book: RefBook, side: Side, account: str, price: int | None,
                 stp: SelfTradePrevention, cap: int | None = None) -> int:
        """How much a FOK order could trade: open qty in priority order within its limit (and
        its cap), up to the first own order (own orders skipped under cancel_resting)."""
        total = 0
        for o in book.side(opposite(side)):
            if not crosses(side, price, o.price):
                break
            if o.account == account:
                if stp == SelfTradePrevention.CANCEL_RESTING:
                    continue
                break
            take = o.qty if cap is None else min(o.qty, cap // o.price // book.lot * book.lot)
            total += take
            if cap is not None:
                cap -= take * o.price
                if take < o.qty:
                    break
        return total

    def match(self, book: RefBook, taker_id: int, account: str, side: Side,
              price: int | None, qty: int, stp: SelfTradePrevention,
              events: list[Event]) -> tuple[int, bool]:
        """Trade ``qty`` against the opposite side; return (unexecuted qty, stopped by STP)."""
        while qty > 0:
            maker = best_of(book.orders, opposite(side))
            if maker is None or not crosses(side, price, maker.price):
                return qty, False
            if maker.account == account:
                if stp == SelfTradePrevention.CANCEL_INCOMING:
                    return qty, True
                book.orders.remove(maker)
                events.append(Cancelled(self.next_seq(), maker.id, maker.qty,
                                        CancelReason.SELF_TRADE))
                if stp == SelfTradePrevention.CANCEL_BOTH:
                    return qty, True
                continue
            fill = min(qty, maker.qty)
            if side == Side.BUY:
                buy_id, sell_id, buy_acct, sell_acct = taker_id, maker.id, account, maker.account
            else:
                buy_id, sell_id, buy_acct, sell_acct = maker.id, taker_id, maker.account, account
            events.append(Trade(self.next_seq(), book.symbol, maker.price, fill, maker.id,
                                taker_id, buy_id, sell_id, buy_acct, sell_acct))
            maker.qty -= fill
            qty -= fill
            if maker.qty == 0:
                book.orders.remove(maker)
        return 0, False



