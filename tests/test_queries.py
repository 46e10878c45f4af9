"""Market-data queries: best bid/ask, depth, queue, order state, snapshot, check, and
the subscriber feed."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from carbonbook import (
    Accepted,
    BookIntegrityError,
    Cancelled,
    CancelOrder,
    CancelReason,
    Command,
    Depth,
    Engine,
    Event,
    InstrumentListed,
    Level,
    ListInstrument,
    Modified,
    ModifyOrder,
    NewOrder,
    OrderState,
    OrderType,
    Rejected,
    RejectReason,
    Side,
    Trade,
    Undecodable,
    UnitType,
)
from carbonbook import core as cores
from conftest import SYM, Recorder, book

BUY, SELL = Side.BUY, Side.SELL


@pytest.fixture
def ladder(eng: Engine) -> Engine:
    """Bids 100 (ids 1, 2), 99, 97, 95, 94, 90; asks 101 (id 8), 103 (ids 9, 10). Seq 2..11."""
    orders = [
        NewOrder(1, "b1", SYM, BUY, 5, price=100),
        NewOrder(2, "b2", SYM, BUY, 7, price=100),
        NewOrder(3, "b3", SYM, BUY, 4, price=99),
        NewOrder(4, "b4", SYM, BUY, 1, price=97),
        NewOrder(5, "b5", SYM, BUY, 2, price=95),
        NewOrder(6, "b6", SYM, BUY, 3, price=94),
        NewOrder(7, "b7", SYM, BUY, 1, price=90),
        NewOrder(8, "s8", SYM, SELL, 3, price=101),
        NewOrder(9, "s9", SYM, SELL, 2, price=103),
        NewOrder(10, "s10", SYM, SELL, 6, price=103),
    ]
    assert eng.apply_all(orders) == [Accepted(i + 1, i, SYM) for i in range(1, 11)]
    return eng


def open_state(oid: int, account: str, side: Side, price: int, qty: int) -> OrderState:
    return OrderState(oid, "open", SYM, account, side, price, qty)


# -- best bid / ask ----------------------------------------------------------------


def test_best_prices_of_an_empty_book(eng: Engine) -> None:
    assert eng.best_bid(SYM) is None
    assert eng.best_ask(SYM) is None
    eng.check()


def test_best_prices_follow_the_book(ladder: Engine) -> None:
    eng = ladder
    assert (eng.best_bid(SYM), eng.best_ask(SYM)) == (100, 101)
    # a partial fill leaves the level; a full fill of the level removes it
    assert eng.apply(NewOrder(11, "t", SYM, SELL, 6, price=100)) == [
        Accepted(12, 11, SYM),
        Trade(13, SYM, 100, 5, 1, 11, 1, 11, "b1", "t"),
        Trade(14, SYM, 100, 1, 2, 11, 2, 11, "b2", "t"),
    ]
    assert eng.best_bid(SYM) == 100
    assert eng.apply(CancelOrder(2)) == [Cancelled(15, 2, 6, CancelReason.USER)]
    assert eng.best_bid(SYM) == 99
    assert eng.apply(ModifyOrder(8, price=102)) == [Modified(16, 8, 102, 3)]
    assert eng.best_ask(SYM) == 102
    assert eng.apply(NewOrder(12, "t", SYM, BUY, 11, order_type=OrderType.MARKET)) == [
        Accepted(17, 12, SYM),
        Trade(18, SYM, 102, 3, 8, 12, 12, 8, "t", "s8"),
        Trade(19, SYM, 103, 2, 9, 12, 12, 9, "t", "s9"),
        Trade(20, SYM, 103, 6, 10, 12, 12, 10, "t", "s10"),
    ]
    assert eng.best_ask(SYM) is None
    assert eng.best_bid(SYM) == 99
    eng.check()


def test_queries_of_an_unknown_symbol_raise_key_error(eng: Engine) -> None:
    for query in (eng.best_bid, eng.best_ask, eng.depth, eng.book):
        with pytest.raises(KeyError):
            query("NOPE")
    with pytest.raises(KeyError):
        eng.queue("NOPE", BUY, 100)


# -- depth -------------------------------------------------------------------------


def test_depth_aggregates_levels_best_first(ladder: Engine) -> None:
    assert ladder.depth(SYM) == Depth(
        SYM,
        bids=[Level(100, 12, 2), Level(99, 4, 1), Level(97, 1, 1), Level(95, 2, 1),
              Level(94, 3, 1)],
        asks=[Level(101, 3, 1), Level(103, 8, 2)],
    )
    assert ladder.depth(SYM, 2) == Depth(
        SYM, bids=[Level(100, 12, 2), Level(99, 4, 1)], asks=[Level(101, 3, 1), Level(103, 8, 2)]
    )
    assert ladder.depth(SYM, 1) == Depth(SYM, bids=[Level(100, 12, 2)], asks=[Level(101, 3, 1)])
    assert ladder.depth(SYM, 0) == Depth(SYM, bids=[], asks=[])
    assert ladder.depth(SYM, 100).bids[5:] == [Level(90, 1, 1)]
    ladder.check()


def test_depth_counts_only_open_quantity(ladder: Engine) -> None:
    eng = ladder
    assert eng.apply(CancelOrder(1)) == [Cancelled(12, 1, 5, CancelReason.USER)]
    assert eng.apply(NewOrder(11, "t", SYM, BUY, 2, price=103)) == [
        Accepted(13, 11, SYM),
        Trade(14, SYM, 101, 2, 8, 11, 11, 8, "t", "s8"),
    ]
    assert eng.apply(ModifyOrder(10, qty=1)) == [Modified(15, 10, 103, 1)]
    assert eng.depth(SYM, 2) == Depth(
        SYM, bids=[Level(100, 7, 1), Level(99, 4, 1)], asks=[Level(101, 1, 1), Level(103, 3, 2)]
    )
    eng.check()


def test_depth_of_an_empty_book_and_its_encoding(eng: Engine) -> None:
    assert eng.depth(SYM) == Depth(SYM, [], [])
    assert eng.apply(NewOrder(1, "a", SYM, SELL, 4, price=250)) == [Accepted(2, 1, SYM)]
    assert msgspec.to_builtins(eng.depth(SYM)) == {
        "symbol": SYM,
        "bids": [],
        "asks": [{"price": 250, "qty": 4, "count": 1}],
    }
    eng.check()


# -- queue -------------------------------------------------------------------------


def test_queue_lists_a_level_in_time_priority(ladder: Engine) -> None:
    eng = ladder
    assert eng.queue(SYM, BUY, 100) == [open_state(1, "b1", BUY, 100, 5),
                                        open_state(2, "b2", BUY, 100, 7)]
    assert eng.queue(SYM, SELL, 103) == [open_state(9, "s9", SELL, 103, 2),
                                         open_state(10, "s10", SELL, 103, 6)]
    assert eng.queue(SYM, BUY, 98) == []  # no such level
    assert eng.queue(SYM, SELL, 100) == []  # a bid price asked of the ask side
    assert eng.queue(SYM, BUY, 103) == []
    eng.check()


def test_queue_after_fills_cancels_and_modifies(ladder: Engine) -> None:
    eng = ladder
    assert eng.apply(NewOrder(11, "b11", SYM, BUY, 1, price=100)) == [Accepted(12, 11, SYM)]
    assert eng.apply(NewOrder(12, "t", SYM, SELL, 2, price=100)) == [
        Accepted(13, 12, SYM),
        Trade(14, SYM, 100, 2, 1, 12, 1, 12, "b1", "t"),
    ]
    assert [s.id for s in eng.queue(SYM, BUY, 100)] == [1, 2, 11]
    assert eng.queue(SYM, BUY, 100)[0] == open_state(1, "b1", BUY, 100, 3)
    assert eng.apply(ModifyOrder(1, qty=2)) == [Modified(15, 1, 100, 2)]  # keeps its place
    assert [s.id for s in eng.queue(SYM, BUY, 100)] == [1, 2, 11]
    assert eng.apply(ModifyOrder(2, qty=8)) == [Modified(16, 2, 100, 8)]  # to the back
    assert [s.id for s in eng.queue(SYM, BUY, 100)] == [1, 11, 2]
    assert eng.apply(CancelOrder(11)) == [Cancelled(17, 11, 1, CancelReason.USER)]
    assert eng.queue(SYM, BUY, 100) == [open_state(1, "b1", BUY, 100, 2),
                                        open_state(2, "b2", BUY, 100, 8)]
    assert eng.apply(ModifyOrder(3, price=100)) == [Modified(18, 3, 100, 4)]
    assert [s.id for s in eng.queue(SYM, BUY, 100)] == [1, 2, 3]
    assert eng.queue(SYM, BUY, 99) == []
    eng.check()


# -- order -------------------------------------------------------------------------


def test_order_state_through_its_life(eng: Engine) -> None:
    assert eng.order(1) is None
    assert eng.apply(NewOrder(1, "a", SYM, SELL, 10, price=500)) == [Accepted(2, 1, SYM)]
    assert eng.order(1) == OrderState(1, "open", SYM, "a", SELL, 500, 10)
    assert eng.apply(NewOrder(2, "b", SYM, BUY, 4, price=500)) == [
        Accepted(3, 2, SYM),
        Trade(4, SYM, 500, 4, 1, 2, 2, 1, "b", "a"),
    ]
    assert eng.order(1) == OrderState(1, "open", SYM, "a", SELL, 500, 6)
    assert eng.order(2) == OrderState(2, "filled")
    assert eng.apply(ModifyOrder(1, price=510, qty=8)) == [Modified(5, 1, 510, 8)]
    assert eng.order(1) == OrderState(1, "open", SYM, "a", SELL, 510, 8)
    assert eng.apply(CancelOrder(1)) == [Cancelled(6, 1, 8, CancelReason.USER)]
    assert eng.order(1) == OrderState(1, "cancelled")
    eng.check()


def test_order_state_of_ids_never_accepted(eng: Engine) -> None:
    assert eng.apply(NewOrder(5, "a", SYM, SELL, 0, price=500)) == [
        Rejected(2, 5, RejectReason.BAD_QTY, "qty 0 is not positive")
    ]
    assert eng.order(5) is None
    assert eng.order(0) is None
    assert eng.order(2**63 - 1) is None
    eng.check()


def test_order_state_of_orders_that_never_rested(eng: Engine) -> None:
    assert eng.apply_all([
        NewOrder(1, "a", SYM, SELL, 5, price=500),
        NewOrder(2, "b", SYM, BUY, 5, order_type=OrderType.MARKET),  # filled
        NewOrder(3, "b", SYM, BUY, 5, order_type=OrderType.MARKET),  # cancelled
    ]) == [
        Accepted(2, 1, SYM),
        Accepted(3, 2, SYM),
        Trade(4, SYM, 500, 5, 1, 2, 2, 1, "b", "a"),
        Accepted(5, 3, SYM),
        Cancelled(6, 3, 5, CancelReason.MARKET),
    ]
    assert [eng.order(i) for i in (1, 2, 3)] == [
        OrderState(1, "filled"), OrderState(2, "filled"), OrderState(3, "cancelled"),
    ]
    eng.check()


# -- snapshot ----------------------------------------------------------------------


def test_snapshot_of_no_instruments_and_of_empty_books(make_engine: Callable[[], Engine]) -> None:
    eng = make_engine()
    assert eng.snapshot() == {}
    assert eng.symbols == []
    eng.apply_all([ListInstrument("B", UnitType.EUA), ListInstrument("A", UnitType.JPA)])
    assert eng.snapshot() == {"B": {"bids": [], "asks": []}, "A": {"bids": [], "asks": []}}
    assert list(eng.snapshot()) == ["B", "A"]  # listing order
    assert eng.symbols == ["B", "A"]
    eng.check()


def test_snapshot_is_in_priority_order_and_encodes_as_the_contract_says(ladder: Engine) -> None:
    snap = ladder.snapshot()
    assert snap == book(
        bids=[[100, 1, 5], [100, 2, 7], [99, 3, 4], [97, 4, 1], [95, 5, 2], [94, 6, 3], [90, 7, 1]],
        asks=[[101, 8, 3], [103, 9, 2], [103, 10, 6]],
    )
    assert msgspec.json.decode(msgspec.json.encode(snap)) == snap
    assert msgspec.json.encode(ladder.snapshot()).startswith(
        b'{"JPA-2030":{"bids":[[100,1,5],[100,2,7],'
    )
    ladder.check()


def test_book_accessor(make_engine: Callable[[], Engine]) -> None:
    eng = make_engine()
    eng.apply(ListInstrument("T", UnitType.JCR, tick=5, lot=10))
    ob = eng.book("T")
    assert isinstance(ob, cores.get(eng.core).OrderBook)
    assert (ob.symbol, ob.unit, ob.tick, ob.lot) == ("T", UnitType.JCR, 5, 10)
    eng.check()


# -- check -------------------------------------------------------------------------


def _corruptible() -> Engine:
    """An engine outside the fixtures (so teardown does not re-check it) with a small book."""
    eng = Engine()
    eng.apply_all([
        ListInstrument(SYM, UnitType.JPA),
        NewOrder(1, "a", SYM, BUY, 5, price=100),
        NewOrder(2, "b", SYM, BUY, 5, price=100),
        NewOrder(3, "c", SYM, SELL, 5, price=110),
    ])
    eng.check()
    return eng


def test_check_detects_wrong_level_totals() -> None:
    eng = _corruptible()
    eng.book(SYM).bids.levels[100].qty += 1
    with pytest.raises(BookIntegrityError):
        eng.check()


def test_check_detects_a_misplaced_order() -> None:
    eng = _corruptible()
    eng.book(SYM).bids.levels[100].orders[1].price = 99
    with pytest.raises(BookIntegrityError):
        eng.check()


def test_check_detects_a_level_with_no_live_order() -> None:
    eng = _corruptible()
    level = eng.book(SYM).asks.levels[-110]
    level.orders[0].qty = 0
    level.qty = 0
    with pytest.raises(BookIntegrityError):
        eng.check()


def test_check_detects_a_crossed_book() -> None:
    eng = _corruptible()
    ob = eng.book(SYM)
    level = ob.asks.levels.pop(-110)
    level.price = 100
    for o in level.orders:
        o.price = 100
    ob.asks.levels[-100] = level
    ob.asks.keys[:] = [-100]
    with pytest.raises(BookIntegrityError):
        eng.check()


def test_check_detects_an_index_out_of_step() -> None:
    eng = _corruptible()
    eng._index[1] = "filled"
    with pytest.raises(BookIntegrityError):
        eng.check()


def test_check_is_an_assertion_error() -> None:
    assert issubclass(BookIntegrityError, AssertionError)


# -- subscribers -------------------------------------------------------------------


def test_subscribers_receive_each_commands_events(make_engine: Callable[[], Engine]) -> None:
    eng = make_engine()
    first, second = Recorder(), Recorder()
    eng.subscribe(first)
    commands: list[Command] = [
        ListInstrument(SYM, UnitType.JPA),
        NewOrder(1, "a", SYM, SELL, 5, price=100),
        NewOrder(1, "a", SYM, SELL, 5, price=100),
        CancelOrder(9),
    ]
    returned = [eng.apply(c) for c in commands[:2]]
    eng.subscribe(second)  # sees only later commands
    returned += [eng.apply(c) for c in commands[2:]]
    returned.append(eng.apply(Undecodable(7, "bad line")))
    returned.append(eng.apply_all([
        NewOrder(2, "b", SYM, BUY, 5, price=100, order_type=OrderType.LIMIT),
        ModifyOrder(2, qty=1),
    ]))
    expected: list[list[Event]] = [
        [InstrumentListed(1, SYM, UnitType.JPA, 1, 1)],
        [Accepted(2, 1, SYM)],
        [Rejected(3, 1, RejectReason.DUPLICATE_ID, "order id 1 already used")],
        [Rejected(4, 9, RejectReason.UNKNOWN_ORDER, "order 9 is not open")],
        [Rejected(5, None, RejectReason.MALFORMED, "bad line", 7)],
        [Accepted(6, 2, SYM), Trade(7, SYM, 100, 5, 1, 2, 2, 1, "b", "a"),
         Rejected(8, 2, RejectReason.UNKNOWN_ORDER, "order 2 is not open")],
    ]
    # subscribers get one list per apply or apply_all call, the same list the caller gets
    assert returned == expected
    assert first.batches == expected
    assert second.batches == expected[2:]
    eng.check()


def test_subscriber_sees_the_same_list_the_caller_gets(eng: Engine) -> None:
    seen: list[list[Event]] = []
    eng.subscribe(seen.append)
    events = eng.apply(NewOrder(1, "a", SYM, BUY, 5, price=100))
    assert seen == [events] == [[Accepted(2, 1, SYM)]]
    eng.check()
