"""Hypothesis strategies for carbonbook command streams.

Streams run over 1-3 instruments (varied tick and lot) and 3-5 accounts, with prices
drawn from a few ticks around one mid price so that orders cross often. Every order
type, time in force, post-only flag and self-trade mode appears, as do cancels and
modifies of live, dead and unknown ids, duplicate ids, and faulty commands (bad
prices and quantities, unknown symbols, malformed combinations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from hypothesis import strategies as st

from carbonbook import (
    CancelOrder,
    Command,
    ListInstrument,
    ModifyOrder,
    NewOrder,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    UnitType,
)
from reference import Reference, RefOrder, best_of, opposite

SYMBOLS = ("JPA-2010", "EUA-DEC25", "JCR-2030")
UNITS = (UnitType.JPA, UnitType.EUA, UnitType.JCR)
UNKNOWN_SYMBOL = "CER-NONE"
ACCOUNTS = ("alice", "bob", "carol", "dave", "erin")
MAX_ID = 40  # "any" ids are drawn from 0..MAX_ID, so they are often stale or unknown
BAD_IDS = (-1, 2**63)  # outside 0 .. 2**63 - 1: malformed
MID = 10  # prices are tick * (MID + k) for a small k

T = TypeVar("T")


@dataclass(frozen=True)
class Grid:
    """The tick and lot of a listed symbol, as the stream generator knows them."""

    tick: int
    lot: int


def weighted(**weights: int) -> st.SearchStrategy[str]:
    """One of the keyword names, drawn in proportion to its (integer, maybe 0) weight.

    ``sampled_from`` over a list with repeats draws close to uniformly, unlike
    ``one_of`` or small ``integers``, which Hypothesis skews towards edge cases.
    The first name is the one Hypothesis shrinks towards.
    """
    return st.sampled_from([name for name, w in weights.items() for _ in range(w)])


# Strategies are built once: building them on every draw costs more than drawing.
_TICKS = st.sampled_from((1, 5, 2, 100))
_LOTS = st.sampled_from((1, 10, 3))
_LATE_TICKS = st.sampled_from((1, 2, 1, 2, 0, -5))  # 0 and -5: malformed
_LATE_LOTS = st.sampled_from((1, 5, 1, 5, 0))
_GOOD_OR_BAD = weighted(good=24, bad=1)
_PRICE_STEPS = st.sampled_from(range(MID - 2, MID + 3))
_LOT_COUNTS = st.sampled_from(range(1, 7))
_ANY_ID = st.integers(0, MAX_ID)
_BAD_ID = st.sampled_from(BAD_IDS)
_KIND = weighted(new=16, cancel=2, modify=4, list=1)
_ORDER_TYPE = weighted(limit=7, market=1)
_TIF = st.sampled_from([TimeInForce.GTC] * 6 + [TimeInForce.IOC] * 2 + [TimeInForce.FOK] * 2)
_IOC_OR_FOK = st.sampled_from((TimeInForce.IOC, TimeInForce.FOK))
_FLAVOUR = weighted(plain=40, post_only=6, bad_post_only=1, bad_price=1, bad_cap=1)
_ACCOUNT_OK = weighted(ok=60, empty=1)
_SIDE = st.sampled_from(tuple(Side))
_SIDE_SIGN = st.sampled_from((1, -1))
_STP = st.sampled_from(tuple(SelfTradePrevention))
_MODIFY_WHAT = weighted(price=6, qty=6, both=4, neither=1)
_TARGET_IDS = {
    (has_live, has_known): weighted(live=16 * has_live, known=3 * has_known, any=2, bad=1)
    for has_live in (0, 1)
    for has_known in (0, 1)
}
_NEW_ID_KIND = weighted(fresh=40, known=3, any=1, bad=1)
_PRICE_KIND = weighted(near_mid=6, at_touch=2, through=1)
_SYMBOL_INDEX = st.integers(0, len(SYMBOLS) - 1)


@cache
def _index(n: int) -> st.SearchStrategy[int]:
    return st.integers(0, n - 1)


def pick(draw: st.DrawFn, items: Sequence[T]) -> T:
    """One of ``items`` (non-empty), uniformly."""
    return items[draw(_index(len(items)))]


def instruments(draw: st.DrawFn) -> list[ListInstrument]:
    """1-3 listings with varied tick and lot."""
    n = draw(_index(3)) + 1
    return [ListInstrument(SYMBOLS[i], UNITS[i], tick=draw(_TICKS), lot=draw(_LOTS))
            for i in range(n)]


def price(draw: st.DrawFn, grid: Grid | None, touch: int | None = None) -> int:
    """Mostly a valid price, near the mid or (given the opposite ``touch``, the best price
    on the other side) at the touch or one tick through it, so that it trades; sometimes
    off-grid, zero, negative or huge."""
    tick = grid.tick if grid else 1
    if draw(_GOOD_OR_BAD) == "bad":
        return pick(draw, (0, -tick, tick * MID + 1, 2**63, -(2**63), -(2**63) - 1))
    kind = draw(_PRICE_KIND) if touch is not None else "near_mid"
    if kind == "at_touch":
        return touch  # type: ignore[return-value]
    if kind == "through":
        return touch + tick * draw(_SIDE_SIGN)  # type: ignore[operator]
    return draw(_PRICE_STEPS) * tick


def quantity(draw: st.DrawFn, grid: Grid | None) -> int:
    """Mostly a valid quantity of 1-6 lots, sometimes off-lot, zero, negative or huge."""
    lot = grid.lot if grid else 1
    if draw(_GOOD_OR_BAD) == "good":
        return draw(_LOT_COUNTS) * lot
    return pick(draw, (0, -lot, lot + 1 if lot > 1 else 0, 2**63, -(2**63) - 1))


def live_orders(ref: Reference) -> list[RefOrder]:
    """The orders resting in the generator's own reference, by id."""
    return sorted((o for book in ref.books.values() for o in book.orders), key=lambda o: o.id)


def target_id(draw: st.DrawFn, known: list[int], live: list[RefOrder]) -> int:
    """For a cancel or modify: mostly a resting order, sometimes another id used before
    (often dead), any small id (often unknown), or an invalid one."""
    kind = draw(_TARGET_IDS[(int(bool(live)), int(bool(known)))])
    if kind == "live":
        return pick(draw, live).id
    if kind == "known":
        return pick(draw, known)
    if kind == "any":
        return draw(_ANY_ID)
    return draw(_BAD_ID)


def new_id(draw: st.DrawFn, known: list[int]) -> int:
    """For a new order: mostly an unused id, sometimes a used one (duplicate) or an invalid one."""
    kind = draw(_NEW_ID_KIND) if known else "fresh"
    if kind == "fresh":
        return max(known, default=-1) + 1
    if kind == "known":
        return pick(draw, known)
    if kind == "any":
        return draw(_ANY_ID)
    return draw(_BAD_ID)


def touch(ref: Reference, symbol: str, side: Side) -> int | None:
    """The best price opposite an order on ``side`` in the generator's reference, if any."""
    book = ref.books.get(symbol)
    best = best_of(book.orders, opposite(side)) if book else None
    return None if best is None else best.price


def new_order(draw: st.DrawFn, ref: Reference, grids: dict[str, Grid], accounts: list[str],
              known: list[int]) -> NewOrder:
    """A new order, usually well formed, over a listed (or sometimes an unknown) symbol."""
    symbol = pick(draw, [*list(grids) * 16, UNKNOWN_SYMBOL, *SYMBOLS, ""])
    grid = grids.get(symbol)
    side = draw(_SIDE)
    order_type = OrderType.MARKET if draw(_ORDER_TYPE) == "market" else OrderType.LIMIT
    tif = draw(_TIF)
    limit: int | None = price(draw, grid, touch(ref, symbol, side))
    post_only = False
    flavour = draw(_FLAVOUR)
    if flavour == "post_only":
        order_type, tif, post_only = OrderType.LIMIT, TimeInForce.GTC, True
    elif flavour == "bad_post_only":  # malformed: post-only with ioc/fok or market
        post_only = True
        if order_type is OrderType.LIMIT:
            tif = draw(_IOC_OR_FOK)
    if order_type is OrderType.MARKET:
        limit = None
    if flavour == "bad_price":  # malformed: a limit order without price, a market with one
        limit = price(draw, grid) if order_type is OrderType.MARKET else None
    account = pick(draw, accounts) if draw(_ACCOUNT_OK) == "ok" else ""
    cap = None
    if flavour == "bad_cap":  # malformed: a cap on anything but a market buy, or not positive
        cap = draw(st.sampled_from([0, -5, 1000]))
        if cap == 1000:
            side, order_type, limit = Side.SELL, OrderType.MARKET, None
    elif order_type is OrderType.MARKET and side is Side.BUY and draw(st.booleans()):
        tick, lot = (grid.tick, grid.lot) if grid else (1, 1)
        cap = draw(st.integers(1, MID * tick * 8 * lot))  # from nothing to about several lots' worth
    return NewOrder(
        id=new_id(draw, known),
        account=account,
        symbol=symbol,
        side=side,
        qty=quantity(draw, grid),
        price=limit,
        order_type=order_type,
        tif=tif,
        post_only=post_only,
        stp=draw(_STP),
        cap=cap,
    )


def modify(draw: st.DrawFn, ref: Reference, grids: dict[str, Grid],
           known: list[int]) -> ModifyOrder:
    """A modify, mostly of a resting order: new price (often one that trades), new qty,
    both, or (malformed) neither."""
    live = live_orders(ref)
    oid = target_id(draw, known, live)
    found = ref.find_open(oid) if 0 <= oid < 2**63 else None
    grid = opposite_touch = None
    if found is not None:
        book, order = found
        grid = grids[book.symbol]
        opposite_touch = touch(ref, book.symbol, order.side)
    what = draw(_MODIFY_WHAT)
    new_price = price(draw, grid, opposite_touch) if what in ("price", "both") else None
    new_qty = quantity(draw, grid) if what in ("qty", "both") else None
    return ModifyOrder(oid, price=new_price, qty=new_qty)


def late_listing(draw: st.DrawFn) -> ListInstrument:
    """A late listing: new, duplicate, or malformed (tick or lot not positive)."""
    i = draw(_SYMBOL_INDEX)
    return ListInstrument(SYMBOLS[i], UNITS[i], tick=draw(_LATE_TICKS), lot=draw(_LATE_LOTS))


@st.composite
def command_streams(draw: st.DrawFn, max_commands: int = 70) -> list[Command]:
    """A stream: listings first, then a mix of orders, cancels, modifies and late listings.

    The generator runs its own :class:`Reference` only to aim: cancels and modifies
    mostly target resting orders, and prices are often drawn at or through the touch.
    """
    ref = Reference()
    listed = instruments(draw)
    for listing in listed:
        ref.apply(listing)
    grids = {cmd.symbol: Grid(cmd.tick, cmd.lot) for cmd in listed}
    accounts = list(ACCOUNTS[: draw(_index(3)) + 3])
    commands: list[Command] = list(listed)
    known: list[int] = []  # ids of new orders generated so far
    n = draw(st.sampled_from(range(1, max_commands + 1)))  # uniform: integers() favours few
    for _ in range(n):
        kind = draw(_KIND)
        cmd: Command
        if kind == "new":
            cmd = new_order(draw, ref, grids, accounts, known)
            if 0 <= cmd.id < 2**63 and cmd.id not in known:
                known.append(cmd.id)
        elif kind == "cancel":
            cmd = CancelOrder(target_id(draw, known, live_orders(ref)))
        elif kind == "modify":
            cmd = modify(draw, ref, grids, known)
        else:
            cmd = late_listing(draw)
            if cmd.tick > 0 and cmd.lot > 0 and cmd.symbol not in grids:
                grids[cmd.symbol] = Grid(cmd.tick, cmd.lot)
        ref.apply(cmd)
        commands.append(cmd)
    return commands


_CROWDED_BUILD = weighted(rest=12, cancel=4, modify=3, take=1)  # levels fill up
_CROWDED_DRAIN = weighted(rest=1, cancel=14, modify=2, take=1)  # ...then mostly die
_CROWDED_MODIFY = weighted(smaller=3, same=1, larger=2, move=2)
_MOSTLY_BUY = st.sampled_from([Side.BUY] * 4 + [Side.SELL])


@st.composite
def crowded_streams(draw: st.DrawFn, min_commands: int = 200,
                    max_commands: int = 400) -> list[Command]:
    """One instrument whose orders crowd two levels (most at a bid of MID, the rest at an
    ask of MID + 1): the first half of the stream mostly adds orders, the second mostly
    cancels them, so that levels fill with dead entries (and get compacted); orders are
    modified throughout, and now and then one takes liquidity from a crowded level."""
    ref = Reference()
    symbol = SYMBOLS[0]
    commands: list[Command] = [ListInstrument(symbol, UNITS[0])]
    ref.apply(commands[0])
    accounts = ACCOUNTS[:4]
    next_id = 0
    n = draw(st.integers(min_commands, max_commands))
    for i in range(n):
        kind = draw(_CROWDED_BUILD if i < n // 2 else _CROWDED_DRAIN)
        live = live_orders(ref)
        cmd: Command
        if kind in ("cancel", "modify") and live:
            order = pick(draw, live)
            if kind == "cancel":
                cmd = CancelOrder(order.id)
            else:
                how = draw(_CROWDED_MODIFY)
                if how == "smaller":
                    cmd = ModifyOrder(order.id, qty=max(1, order.qty - draw(_LOT_COUNTS)))
                elif how == "same":
                    cmd = ModifyOrder(order.id, qty=order.qty)
                elif how == "larger":
                    cmd = ModifyOrder(order.id, qty=order.qty + draw(_LOT_COUNTS))
                else:
                    cmd = ModifyOrder(order.id, price=MID + pick(draw, (-1, 0, 1, 2)))
        else:
            take = kind == "take"
            side = draw(_SIDE) if take else draw(_MOSTLY_BUY)
            base = MID if side is Side.BUY else MID + 1
            limit: int | None = (MID + 1 if side is Side.BUY else MID) if take else base
            if take and draw(_ORDER_TYPE) == "market":
                limit = None
            cmd = NewOrder(
                id=next_id,
                account=pick(draw, accounts),
                symbol=symbol,
                side=side,
                qty=draw(_LOT_COUNTS) * (3 if take else 1),
                price=limit,
                order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
                tif=draw(_TIF) if take else TimeInForce.GTC,
                stp=draw(_STP),
            )
            next_id += 1
        ref.apply(cmd)
        commands.append(cmd)
    return commands
