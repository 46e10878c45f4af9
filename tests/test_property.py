"""Property tests: the engine against the naive reference, and the book's invariants.

Each example is a random command stream (see ``strategies.py``). After every command
the engine's events must equal the reference's (class, seq and every field but the
free-text ``detail`` of a rejection), ``Engine.check()`` must pass, and the books must
equal the reference's. Independently of the reference, a ledger built from the events
alone checks gapless seq, quantity conservation per order, trade prices within both
limits, price-time priority of the makers hit, and the queries ``snapshot``, ``queue``,
``depth`` and ``order`` against each other.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from unittest import mock

import msgspec
import pytest
from hypothesis import HealthCheck, given, note, settings

import carbonbook.core.book
from carbonbook import (
    Accepted,
    Cancelled,
    CancelOrder,
    CancelReason,
    Command,
    Engine,
    Event,
    InstrumentListed,
    ListInstrument,
    Modified,
    ModifyOrder,
    NewOrder,
    OrderType,
    Rejected,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
)
from reference import Reference
from strategies import command_streams, crowded_streams

EXAMPLES = 250
CROWDED_EXAMPLES = 25  # per variant; each stream has 200-400 commands
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Snapshot = dict[str, dict[str, list[list[int]]]]


def snapshot(engine: Engine) -> Snapshot:
    """``engine.snapshot()``, checked to hold only priced orders (no call-phase market orders)."""
    out: Snapshot = {}
    for symbol, sides in engine.snapshot().items():  # the engine's own view
        out[symbol] = {}
        for key, rows in sides.items():
            out[symbol][key] = []
            for row in rows:
                price, oid, qty = row
                assert price is not None and oid is not None and qty is not None
                out[symbol][key].append([price, oid, qty])
    return out


def comparable(events: list[Event]) -> list[tuple[str, dict[str, Any]]]:
    """Events as (class name, fields), with a rejection's free-text detail left out."""
    out = []
    for e in events:
        fields = msgspec.structs.asdict(e)
        if isinstance(e, Rejected):
            assert isinstance(e.detail, str) and e.detail
            del fields["detail"]
        out.append((type(e).__name__, fields))
    return out


# -- the reference ---------------------------------------------------------------------


def check_against_reference(commands: list[Command]) -> None:
    """Apply ``commands`` to an engine and to the reference; compare after each command."""
    engine = Engine()
    ref = Reference()
    for i, cmd in enumerate(commands):
        got = engine.apply(cmd)
        want = ref.apply(cmd)
        note(f"command {i}: {cmd!r}")
        assert comparable(got) == comparable(want), f"command {i}: {cmd!r}"
        engine.check()
        assert snapshot(engine) == ref.snapshot(), f"books differ after command {i}: {cmd!r}"


@SETTINGS
@given(command_streams())
def test_engine_matches_reference(commands: list[Command]) -> None:
    check_against_reference(commands)


# -- invariants, from the engine's events alone ------------------------------------------


@dataclass
class Tracked:
    """What the events say about one accepted order."""

    symbol: str
    account: str
    side: Side
    price: int | None  # the limit (None: market); a modify may change it
    stp: SelfTradePrevention
    defined: int  # accepted qty, redefined by every modify
    open: int
    traded: int = 0
    cancelled: int = 0
    rank: int = 0  # arrival rank for time priority; a priority-losing modify renews it
    status: str = "open"  # open, filled or cancelled


def crosses(taker_side: Side, limit: int | None, maker_price: int) -> bool:
    if limit is None:
        return True
    return maker_price <= limit if taker_side is Side.BUY else maker_price >= limit


def opposite_key(side: Side) -> str:
    return "asks" if side is Side.BUY else "bids"


def own_key(side: Side) -> str:
    return "bids" if side is Side.BUY else "asks"


class Ledger:
    """Replays the engine's events, checking each command's events as they come."""

    def __init__(self) -> None:
        self.seq = 0
        self.orders: dict[int, Tracked] = {}
        self.ranks = 0

    def next_rank(self) -> int:
        self.ranks += 1
        return self.ranks

    def command(self, engine: Engine, cmd: Command, events: list[Event],
                before: Snapshot) -> None:
        assert events, f"no event for {cmd!r}"
        for e in events:
            self.seq += 1
            assert e.seq == self.seq, "seq must be gapless from 1"
        after = snapshot(engine)
        first = events[0]
        if isinstance(first, Rejected):
            assert len(events) == 1
            assert after == before, "a rejected command changes nothing"
            if isinstance(cmd, NewOrder) and first.id is not None:
                assert first.id == cmd.id
                if cmd.id not in self.orders:
                    assert engine.order(cmd.id) is None, "a rejected id is not recorded"
        elif isinstance(cmd, ListInstrument):
            assert len(events) == 1 and isinstance(first, InstrumentListed)
            assert first.symbol == cmd.symbol and after[cmd.symbol] == {"bids": [], "asks": []}
        elif isinstance(cmd, CancelOrder):
            self.cancel(cmd, events)
        elif isinstance(cmd, NewOrder):
            self.new(cmd, events, before, after)
        else:
            assert isinstance(cmd, ModifyOrder)
            self.modify(cmd, events, before, after)
        self.check_books(engine, after)

    def cancel(self, cmd: CancelOrder, events: list[Event]) -> None:
        (e,) = events
        assert isinstance(e, Cancelled) and e.id == cmd.id and e.reason is CancelReason.USER
        order = self.orders[cmd.id]
        assert order.status == "open" and e.qty == order.open
        order.cancelled += e.qty
        order.open = 0
        order.status = "cancelled"

    def new(self, cmd: NewOrder, events: list[Event], before: Snapshot,
            after: Snapshot) -> None:
        accepted = events[0]
        assert isinstance(accepted, Accepted)
        assert (accepted.id, accepted.symbol) == (cmd.id, cmd.symbol)
        assert cmd.id not in self.orders, "ids are unique among accepted orders"
        assert cmd.price is None or crosses(cmd.side, cmd.price, cmd.price)
        taker = Tracked(cmd.symbol, cmd.account, cmd.side, cmd.price, cmd.stp, cmd.qty, cmd.qty)
        self.orders[cmd.id] = taker
        self.take(cmd.id, taker, events[1:], before, after, cmd.tif, cmd.order_type, cmd.cap)

    def modify(self, cmd: ModifyOrder, events: list[Event], before: Snapshot,
               after: Snapshot) -> None:
        modified = events[0]
        assert isinstance(modified, Modified) and modified.id == cmd.id
        order = self.orders[cmd.id]
        assert order.status == "open" and order.price is not None
        assert modified.price == (order.price if cmd.price is None else cmd.price)
        assert modified.qty == (order.open if cmd.qty is None else cmd.qty)
        in_place = modified.price == order.price and modified.qty <= order.open
        order.defined += modified.qty - order.open
        order.open = modified.qty
        order.price = modified.price
        if in_place:
            assert len(events) == 1, "a modify that keeps priority cannot trade"
            return
        self.take(cmd.id, order, events[1:], before, after, TimeInForce.GTC, OrderType.LIMIT)

    def take(self, taker_id: int, taker: Tracked, events: list[Event], before: Snapshot,
             after: Snapshot, tif: TimeInForce, order_type: OrderType, cap: int | None = None) -> None:
        """Check the trades and cancels of an incoming order (a new one or a modified one)."""
        opp = opposite_key(taker.side)
        spent = 0
        touched: list[int] = []
        taker_cancel: Cancelled | None = None
        for e in events:
            assert taker_cancel is None, "the taker's cancel is the last event"
            if isinstance(e, Trade):
                maker = self.orders[e.maker_id]
                assert e.taker_id == taker_id and e.symbol == taker.symbol == maker.symbol
                assert maker.side is not taker.side and maker.status == "open"
                assert maker.account != taker.account, "no self-trade"
                assert 0 < e.qty <= min(maker.open, taker.open)
                assert e.price == maker.price, "trades at the maker's price"
                assert crosses(taker.side, taker.price, e.price), "within the taker's limit"
                spent += e.price * e.qty
                buy, sell = (taker, maker) if taker.side is Side.BUY else (maker, taker)
                buy_id, sell_id = ((taker_id, e.maker_id) if taker.side is Side.BUY
                                   else (e.maker_id, taker_id))
                assert (e.buy_id, e.sell_id) == (buy_id, sell_id)
                assert (e.buy_account, e.sell_account) == (buy.account, sell.account)
                for o in (maker, taker):
                    o.traded += e.qty
                    o.open -= e.qty
                if not maker.open:
                    maker.status = "filled"
                if not touched or touched[-1] != e.maker_id:
                    assert e.maker_id not in touched
                    touched.append(e.maker_id)
            else:
                assert isinstance(e, Cancelled), f"unexpected event {e!r}"
                if e.id == taker_id:
                    taker_cancel = e
                    continue
                resting = self.orders[e.id]
                assert e.reason is CancelReason.SELF_TRADE and taker.stp in (
                    SelfTradePrevention.CANCEL_RESTING, SelfTradePrevention.CANCEL_BOTH)
                assert resting.account == taker.account and resting.side is not taker.side
                assert resting.status == "open" and e.qty == resting.open
                assert resting.price is not None
                assert crosses(taker.side, taker.price, resting.price)
                resting.cancelled += e.qty
                resting.open = 0
                resting.status = "cancelled"
                assert e.id not in touched
                touched.append(e.id)

        # priority: the makers hit are the head of the opposite side, in order
        queue = [oid for _, oid, _ in before[taker.symbol][opp]]
        assert touched == queue[: len(touched)], "makers hit out of priority"
        assert all(self.orders[oid].open == 0 for oid in touched[:-1])

        if tif is TimeInForce.FOK:
            assert taker.traded == 0 or taker.open == 0, "a FOK order fills entirely or not at all"
        if taker_cancel is not None:
            assert taker_cancel.qty == taker.open > 0
            reason = taker_cancel.reason
            if reason is CancelReason.FOK:
                assert tif is TimeInForce.FOK and not touched and taker.traded == 0
            elif reason is CancelReason.SELF_TRADE:
                if taker.stp is SelfTradePrevention.CANCEL_INCOMING:
                    head = after[taker.symbol][opp][0][1]
                    assert self.orders[head].account == taker.account
                else:
                    assert taker.stp is SelfTradePrevention.CANCEL_BOTH
                    assert self.orders[touched[-1]].status == "cancelled"
            else:
                if order_type is OrderType.MARKET:
                    assert reason is CancelReason.MARKET
                else:
                    assert reason is CancelReason.IOC and tif is TimeInForce.IOC
                rest = after[taker.symbol][opp]
                if cap is None:
                    assert not rest or not crosses(taker.side, taker.price, rest[0][0]), (
                        "an unfilled remainder left a crossing order behind")
                else:  # a capped market buy stops where the cap cannot pay for the next order
                    others = [(p, q) for p, oid, q in rest if self.orders[oid].account != taker.account]
                    assert not others or cap - spent < others[0][0] * others[0][1]
            taker.cancelled += taker.open
            taker.open = 0
            taker.status = "cancelled"
        elif taker.open:
            assert tif is TimeInForce.GTC and order_type is OrderType.LIMIT, "only GTC limits rest"
            taker.rank = self.next_rank()
        else:
            taker.status = "filled"
        assert cap is None or spent <= cap, "a market buy spent more than its cap"

    def check_books(self, engine: Engine, snap: Snapshot) -> None:
        resting: dict[int, tuple[str, str, int, int]] = {}
        for symbol, sides in snap.items():
            for key, side in (("bids", Side.BUY), ("asks", Side.SELL)):
                rows = sides[key]
                for (p1, id1, _), (p2, id2, _) in pairwise(rows):
                    if p1 == p2:
                        assert self.orders[id1].rank < self.orders[id2].rank, "time priority"
                    else:
                        assert (p1 > p2) if side is Side.BUY else (p1 < p2), "price priority"
                for price, oid, qty in rows:
                    resting[oid] = (symbol, key, price, qty)
                levels = sorted({p for p, _, _ in rows}, reverse=side is Side.BUY)
                for price in levels:
                    queue = engine.queue(symbol, side, price)
                    assert [(q.id, q.qty) for q in queue] == [
                        (oid, qty) for p, oid, qty in rows if p == price]
                depth = engine.depth(symbol, levels=len(levels) + 1)
                got = depth.bids if side is Side.BUY else depth.asks
                assert [(lv.price, lv.qty, lv.count) for lv in got] == [
                    (p, sum(q for pp, _, q in rows if pp == p),
                     sum(1 for pp, _, _ in rows if pp == p)) for p in levels]
            bids, asks = sides["bids"], sides["asks"]
            assert not bids or not asks or bids[0][0] < asks[0][0], "crossed at rest"
            best_bid = engine.best_bid(symbol)
            best_ask = engine.best_ask(symbol)
            assert best_bid == (bids[0][0] if bids else None)
            assert best_ask == (asks[0][0] if asks else None)
        for oid, order in self.orders.items():
            assert order.open >= 0
            assert order.defined == order.traded + order.cancelled + order.open, (
                f"quantity of order {oid} not conserved")
            state = engine.order(oid)
            assert state is not None and state.status == order.status
            if order.status == "open":
                assert order.open > 0
                assert resting.pop(oid) == (order.symbol, own_key(order.side), order.price,
                                            order.open)
                assert (state.qty, state.price, state.account) == (
                    order.open, order.price, order.account)
            else:
                assert order.open == 0 and oid not in resting
        assert not resting, f"orders rest that were never accepted: {sorted(resting)}"


def check_invariants(commands: list[Command]) -> None:
    """Apply ``commands`` to an engine, checking its events and books after each command."""
    engine = Engine()
    ledger = Ledger()
    for i, cmd in enumerate(commands):
        before = snapshot(engine)
        events = engine.apply(cmd)
        note(f"command {i}: {cmd!r} -> {events!r}")
        engine.check()
        ledger.command(engine, cmd, events, before)


@SETTINGS
@given(command_streams())
def test_invariants(commands: list[Command]) -> None:
    check_invariants(commands)


# -- crowded levels -----------------------------------------------------------------------


@pytest.mark.parametrize("compact_min", [None, 1], ids=["default", "compact_often"])
@settings(SETTINGS, max_examples=CROWDED_EXAMPLES)
@given(commands=crowded_streams())
def test_crowded_levels(compact_min: int | None, commands: list[Command]) -> None:
    """Long streams over two crowded levels, cancel-heavy so that levels fill with dead
    entries. With ``compact_often`` the book's private compaction threshold (if it still
    has one) is lowered so that nearly every cancel compacts its level."""
    patch: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if compact_min is not None and hasattr(carbonbook.core.book, "_COMPACT_MIN"):
        patch = mock.patch.object(carbonbook.core.book, "_COMPACT_MIN", compact_min)
    with patch:
        check_against_reference(commands)
        check_invariants(commands)
