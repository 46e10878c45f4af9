"""Worked examples of every matching rule, with the exact events and the resting book.

Most scenarios are run twice through the ``m`` fixture (see ``conftest.py``): once
with a buying taker against asks and once, mirrored, with a selling taker against
bids. ``m.px(0)`` is the touch of the maker side, ``m.px(1)`` one tick worse for the
taker, ``m.px(-1)`` one tick on the taker's side of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

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
    OrderState,
    OrderType,
    Rejected,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
    UnitType,
)
from conftest import SYM, Mirror, book

MARKET = OrderType.MARKET
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
CANCEL_INCOMING = SelfTradePrevention.CANCEL_INCOMING
CANCEL_RESTING = SelfTradePrevention.CANCEL_RESTING
CANCEL_BOTH = SelfTradePrevention.CANCEL_BOTH
SELF_TRADE = CancelReason.SELF_TRADE


def setup(eng: Engine, *commands: NewOrder) -> None:
    """Apply orders that must each be accepted and rest without trading."""
    for cmd in commands:
        events = eng.apply(cmd)
        assert len(events) == 1
        assert isinstance(events[0], Accepted) and events[0].id == cmd.id


def filled(oid: int) -> OrderState:
    return OrderState(oid, "filled")


def cancelled(oid: int) -> OrderState:
    return OrderState(oid, "cancelled")


# -- resting -----------------------------------------------------------------------


def test_limit_order_rests_on_empty_book(eng: Engine, m: Mirror) -> None:
    assert eng.apply(m.taker(1, 10, 0)) == [Accepted(2, 1, SYM)]
    assert eng.snapshot() == m.book(taker=[(0, 1, 10)])
    assert eng.order(1) == OrderState(1, "open", SYM, "tak", m.side, m.px(0), 10)
    eng.check()


def test_non_crossing_orders_rest_in_price_time_priority(eng: Engine, m: Mirror) -> None:
    setup(
        eng,
        m.taker(1, 10, -1),
        m.taker(2, 20, -3),
        m.taker(3, 30, -1),
        m.maker(4, 40, 0),
        m.maker(5, 50, 2),
        m.maker(6, 60, 1),
        m.maker(7, 70, 0),
    )
    assert eng.snapshot() == m.book(
        taker=[(-1, 1, 10), (-1, 3, 30), (-3, 2, 20)],
        maker=[(0, 4, 40), (0, 7, 70), (1, 6, 60), (2, 5, 50)],
    )
    eng.check()


# -- fills -------------------------------------------------------------------------


def test_full_fill_empties_the_book(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 10, 0))
    assert eng.apply(m.taker(2, 10, 0)) == [Accepted(3, 2, SYM), m.trade(4, 0, 10, 1, 2)]
    assert eng.snapshot() == m.book()
    assert eng.order(1) == filled(1)
    assert eng.order(2) == filled(2)
    eng.check()


def test_partial_fill_of_maker_keeps_its_priority(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 10, 0), m.maker(2, 5, 0, account="mak2"))
    assert eng.apply(m.taker(3, 4, 0)) == [Accepted(4, 3, SYM), m.trade(5, 0, 4, 1, 3)]
    assert eng.snapshot() == m.book(maker=[(0, 1, 6), (0, 2, 5)])
    assert eng.order(1) == OrderState(1, "open", SYM, "mak", m.other, m.px(0), 6)
    assert eng.order(3) == filled(3)
    # the partly filled maker is still first in its level
    assert eng.apply(m.taker(4, 8, 0)) == [
        Accepted(6, 4, SYM),
        m.trade(7, 0, 6, 1, 4),
        m.trade(8, 0, 2, 2, 4, maker_account="mak2"),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 2, 3)])
    assert eng.order(1) == filled(1)
    eng.check()


def test_partial_fill_of_taker_rests_the_remainder(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 4, 0))
    assert eng.apply(m.taker(2, 10, 0)) == [Accepted(3, 2, SYM), m.trade(4, 0, 4, 1, 2)]
    assert eng.snapshot() == m.book(taker=[(0, 2, 6)])
    assert eng.order(2) == OrderState(2, "open", SYM, "tak", m.side, m.px(0), 6)
    eng.check()


def test_sweep_of_several_levels_in_price_then_time_priority(eng: Engine, m: Mirror) -> None:
    setup(
        eng,
        m.maker(1, 5, 1, account="m1"),
        m.maker(2, 3, 0, account="m2"),
        m.maker(3, 4, 0, account="m3"),
        m.maker(4, 6, 2, account="m4"),
        m.maker(5, 2, 1, account="m5"),
    )
    assert eng.apply(m.taker(6, 13, 1)) == [
        Accepted(7, 6, SYM),
        m.trade(8, 0, 3, 2, 6, maker_account="m2"),
        m.trade(9, 0, 4, 3, 6, maker_account="m3"),
        m.trade(10, 1, 5, 1, 6, maker_account="m1"),
        m.trade(11, 1, 1, 5, 6, maker_account="m5"),
    ]
    # the limit stopped the sweep before px(2)
    assert eng.snapshot() == m.book(maker=[(1, 5, 1), (2, 4, 6)])
    assert eng.order(6) == filled(6)
    eng.check()


def test_trade_is_at_the_maker_price(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0), m.maker(2, 5, 2))
    # the taker would pay up to px(3) but trades at each maker's price; the rest rests at px(3)
    assert eng.apply(m.taker(3, 12, 3)) == [
        Accepted(4, 3, SYM),
        m.trade(5, 0, 5, 1, 3),
        m.trade(6, 2, 5, 2, 3),
    ]
    assert eng.snapshot() == m.book(taker=[(3, 3, 2)])
    eng.check()


def test_trade_fields_name_buyer_and_seller(eng: Engine) -> None:
    """Spelled out once without the mirror helper: buy_id/sell_id follow the sides."""
    setup(eng, NewOrder(1, "alice", SYM, Side.SELL, 10, price=1500))
    assert eng.apply(NewOrder(2, "bob", SYM, Side.BUY, 4, price=1600)) == [
        Accepted(3, 2, SYM),
        Trade(4, SYM, 1500, 4, maker_id=1, taker_id=2, buy_id=2, sell_id=1,
              buy_account="bob", sell_account="alice"),
    ]
    setup(eng, NewOrder(3, "carol", SYM, Side.BUY, 10, price=1400))
    assert eng.apply(NewOrder(4, "dave", SYM, Side.SELL, 2, price=1300)) == [
        Accepted(6, 4, SYM),
        Trade(7, SYM, 1400, 2, maker_id=3, taker_id=4, buy_id=3, sell_id=4,
              buy_account="carol", sell_account="dave"),
    ]
    assert eng.snapshot() == book(bids=[[1400, 3, 8]], asks=[[1500, 1, 6]])
    eng.check()


def test_cancelled_head_of_queue_is_skipped_by_matching(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0, account="m1"), m.maker(2, 5, 0, account="m2"),
          m.maker(3, 5, 0, account="m3"))
    assert eng.apply(CancelOrder(1)) == [Cancelled(5, 1, 5, CancelReason.USER)]
    assert eng.apply(m.taker(4, 7, 0)) == [
        Accepted(6, 4, SYM),
        m.trade(7, 0, 5, 2, 4, maker_account="m2"),
        m.trade(8, 0, 2, 3, 4, maker_account="m3"),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 3, 3)])
    eng.check()


def test_level_with_many_cancelled_orders_is_compacted(eng: Engine, m: Mirror) -> None:
    setup(eng, *(m.maker(i, 1, 0) for i in range(1, 41)))  # seq 2..41
    for n, i in enumerate(range(2, 37)):  # seq 42..76
        assert eng.apply(CancelOrder(i)) == [Cancelled(42 + n, i, 1, CancelReason.USER)]
    assert eng.snapshot() == m.book(maker=[(0, i, 1) for i in (1, 37, 38, 39, 40)])
    eng.check()
    assert eng.apply(m.taker(100, 6, 0)) == [
        Accepted(77, 100, SYM),
        *(m.trade(78 + n, 0, 1, i, 100) for n, i in enumerate((1, 37, 38, 39, 40))),
    ]
    assert eng.snapshot() == m.book(taker=[(0, 100, 1)])
    eng.check()


# -- market orders -----------------------------------------------------------------


def test_market_order_partial_fill_cancels_the_rest(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0), m.maker(2, 5, 2))
    assert eng.apply(m.taker(3, 15, None, order_type=MARKET)) == [
        Accepted(4, 3, SYM),
        m.trade(5, 0, 5, 1, 3),
        m.trade(6, 2, 5, 2, 3),
        Cancelled(7, 3, 5, CancelReason.MARKET),
    ]
    assert eng.snapshot() == m.book()
    assert eng.order(3) == cancelled(3)
    eng.check()


def test_market_order_full_fill_at_any_price(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0), m.maker(2, 5, 2))
    assert eng.apply(m.taker(3, 7, None, order_type=MARKET)) == [
        Accepted(4, 3, SYM),
        m.trade(5, 0, 5, 1, 3),
        m.trade(6, 2, 2, 2, 3),
    ]
    assert eng.snapshot() == m.book(maker=[(2, 2, 3)])
    assert eng.order(3) == filled(3)
    eng.check()


@pytest.mark.parametrize("tif", [TimeInForce.GTC, IOC])
def test_market_order_on_empty_opposite_side_never_rests(
    eng: Engine, m: Mirror, tif: TimeInForce
) -> None:
    setup(eng, m.taker(1, 5, -1, account="other"))  # only the taker's own side has orders
    assert eng.apply(m.taker(2, 10, None, order_type=MARKET, tif=tif)) == [
        Accepted(3, 2, SYM),
        Cancelled(4, 2, 10, CancelReason.MARKET),
    ]
    assert eng.snapshot() == m.book(taker=[(-1, 1, 5)])
    assert eng.order(2) == cancelled(2)
    eng.check()


def test_market_order_on_empty_book(eng: Engine, m: Mirror) -> None:
    assert eng.apply(m.taker(1, 10, None, order_type=MARKET)) == [
        Accepted(2, 1, SYM),
        Cancelled(3, 1, 10, CancelReason.MARKET),
    ]
    assert eng.snapshot() == m.book()
    eng.check()


# -- IOC ---------------------------------------------------------------------------


def test_ioc_partial_fill_cancels_the_rest(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0), m.maker(2, 5, 2))
    assert eng.apply(m.taker(3, 8, 1, tif=IOC)) == [
        Accepted(4, 3, SYM),
        m.trade(5, 0, 5, 1, 3),
        Cancelled(6, 3, 3, CancelReason.IOC),
    ]
    assert eng.snapshot() == m.book(maker=[(2, 2, 5)])
    assert eng.order(3) == cancelled(3)
    eng.check()


def test_ioc_full_fill(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0))
    assert eng.apply(m.taker(2, 5, 0, tif=IOC)) == [Accepted(3, 2, SYM), m.trade(4, 0, 5, 1, 2)]
    assert eng.snapshot() == m.book()
    assert eng.order(2) == filled(2)
    eng.check()


def test_ioc_that_does_not_cross_is_cancelled_whole(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0))
    assert eng.apply(m.taker(2, 5, -1, tif=IOC)) == [
        Accepted(3, 2, SYM),
        Cancelled(4, 2, 5, CancelReason.IOC),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 1, 5)])
    eng.check()


# -- FOK ---------------------------------------------------------------------------


def test_fok_fills_across_levels(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0), m.maker(2, 5, 1))
    assert eng.apply(m.taker(3, 8, 1, tif=FOK)) == [
        Accepted(4, 3, SYM),
        m.trade(5, 0, 5, 1, 3),
        m.trade(6, 1, 3, 2, 3),
    ]
    assert eng.snapshot() == m.book(maker=[(1, 2, 2)])
    assert eng.order(3) == filled(3)
    eng.check()


def test_fok_takes_exactly_all_that_is_available(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0), m.maker(2, 5, 1))
    assert eng.apply(m.taker(3, 10, 1, tif=FOK)) == [
        Accepted(4, 3, SYM),
        m.trade(5, 0, 5, 1, 3),
        m.trade(6, 1, 5, 2, 3),
    ]
    assert eng.snapshot() == m.book()
    eng.check()


@pytest.mark.parametrize(
    ("qty", "k"),
    [
        (8, 0),  # enough on the book, but not within the limit
        (11, 1),  # more than the whole crossing side
        (5, -1),  # does not cross at all
    ],
)
def test_fok_that_cannot_fill_entirely_trades_nothing(
    eng: Engine, m: Mirror, qty: int, k: int
) -> None:
    setup(eng, m.maker(1, 5, 0), m.maker(2, 5, 1))
    assert eng.apply(m.taker(3, qty, k, tif=FOK)) == [
        Accepted(4, 3, SYM),
        Cancelled(5, 3, qty, CancelReason.FOK),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 1, 5), (1, 2, 5)])
    assert eng.order(3) == cancelled(3)
    eng.check()


def test_market_fok_fills(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0), m.maker(2, 5, 7))
    assert eng.apply(m.taker(3, 10, None, order_type=MARKET, tif=FOK)) == [
        Accepted(4, 3, SYM),
        m.trade(5, 0, 5, 1, 3),
        m.trade(6, 7, 5, 2, 3),
    ]
    assert eng.snapshot() == m.book()
    eng.check()


@pytest.mark.parametrize("with_book", [True, False])
def test_market_fok_kill(eng: Engine, m: Mirror, with_book: bool) -> None:
    if with_book:
        setup(eng, m.maker(1, 5, 0), m.maker(2, 5, 7))
    seq = 4 if with_book else 2
    assert eng.apply(m.taker(3, 11, None, order_type=MARKET, tif=FOK)) == [
        Accepted(seq, 3, SYM),
        Cancelled(seq + 1, 3, 11, CancelReason.FOK),
    ]
    assert eng.snapshot() == (m.book(maker=[(0, 1, 5), (7, 2, 5)]) if with_book else m.book())
    eng.check()


def _own_order_in_the_way(eng: Engine, m: Mirror) -> None:
    """Makers (seq 2..4): 5 of m1, then 5 of the taker's own account at px(0); 5 of m3 at px(1)."""
    setup(
        eng,
        m.maker(1, 5, 0, account="m1"),
        m.maker(2, 5, 0, account="tak"),
        m.maker(3, 5, 1, account="m3"),
    )


@pytest.mark.parametrize("stp", [None, CANCEL_INCOMING, CANCEL_BOTH])
def test_fok_counts_only_what_lies_before_an_own_order(
    eng: Engine, m: Mirror, stp: SelfTradePrevention | None
) -> None:
    _own_order_in_the_way(eng, m)
    kw: dict[str, Any] = {} if stp is None else {"stp": stp}
    # 15 cross in all, 10 are others', but only 5 lie before the own order: killed
    assert eng.apply(m.taker(4, 10, 1, tif=FOK, **kw)) == [
        Accepted(5, 4, SYM),
        Cancelled(6, 4, 10, CancelReason.FOK),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 1, 5), (0, 2, 5), (1, 3, 5)])
    assert eng.order(2) == OrderState(2, "open", SYM, "tak", m.other, m.px(0), 5)
    eng.check()


def test_fok_filled_before_reaching_an_own_order(eng: Engine, m: Mirror) -> None:
    _own_order_in_the_way(eng, m)
    assert eng.apply(m.taker(4, 5, 1, tif=FOK)) == [
        Accepted(5, 4, SYM),
        m.trade(6, 0, 5, 1, 4, maker_account="m1"),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 2, 5), (1, 3, 5)])
    eng.check()


def test_fok_with_cancel_resting_skips_own_orders(eng: Engine, m: Mirror) -> None:
    _own_order_in_the_way(eng, m)
    assert eng.apply(m.taker(4, 10, 1, tif=FOK, stp=CANCEL_RESTING)) == [
        Accepted(5, 4, SYM),
        m.trade(6, 0, 5, 1, 4, maker_account="m1"),
        Cancelled(7, 2, 5, SELF_TRADE),
        m.trade(8, 1, 5, 3, 4, maker_account="m3"),
    ]
    assert eng.snapshot() == m.book()
    assert eng.order(2) == cancelled(2)
    assert eng.order(4) == filled(4)
    eng.check()


def test_fok_with_cancel_resting_killed_leaves_own_order(eng: Engine, m: Mirror) -> None:
    _own_order_in_the_way(eng, m)
    assert eng.apply(m.taker(4, 11, 1, tif=FOK, stp=CANCEL_RESTING)) == [
        Accepted(5, 4, SYM),
        Cancelled(6, 4, 11, CancelReason.FOK),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 1, 5), (0, 2, 5), (1, 3, 5)])
    eng.check()


# -- post-only ---------------------------------------------------------------------


def test_post_only_rests_when_it_does_not_cross(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0))
    assert eng.apply(m.taker(2, 5, -1, post_only=True)) == [Accepted(3, 2, SYM)]
    assert eng.snapshot() == m.book(taker=[(-1, 2, 5)], maker=[(0, 1, 5)])
    eng.check()


def test_post_only_rests_on_empty_book(eng: Engine, m: Mirror) -> None:
    assert eng.apply(m.taker(1, 5, 3, post_only=True)) == [Accepted(2, 1, SYM)]
    assert eng.snapshot() == m.book(taker=[(3, 1, 5)])
    eng.check()


@pytest.mark.parametrize("k", [0, 2])
@pytest.mark.parametrize("maker_account", ["mak", "tak"])
def test_post_only_that_would_cross_is_rejected(
    eng: Engine, m: Mirror, k: int, maker_account: str
) -> None:
    """Rejected at the touch or through it, even when the crossed order is the taker's own."""
    setup(eng, m.maker(1, 5, 0, account=maker_account))
    before = eng.snapshot()
    assert eng.apply(m.taker(2, 5, k, post_only=True)) == [
        Rejected(3, 2, RejectReason.POST_ONLY, "post-only order would cross")
    ]
    assert eng.snapshot() == before
    assert eng.order(2) is None
    # nothing changed: the id is still free
    assert eng.apply(m.taker(2, 5, -1)) == [Accepted(4, 2, SYM)]
    eng.check()


# -- self-trade prevention ---------------------------------------------------------


def _own_order_in_the_middle(eng: Engine, m: Mirror) -> None:
    """Makers (seq 2..4) at px(0): 5 of m1, 5 of the taker's own account, 5 of m3."""
    setup(
        eng,
        m.maker(1, 5, 0, account="m1"),
        m.maker(2, 5, 0, account="tak"),
        m.maker(3, 5, 0, account="m3"),
    )


@pytest.mark.parametrize("stp", [None, CANCEL_INCOMING])
def test_stp_cancel_incoming(eng: Engine, m: Mirror, stp: SelfTradePrevention | None) -> None:
    _own_order_in_the_middle(eng, m)
    kw: dict[str, Any] = {} if stp is None else {"stp": stp}
    assert eng.apply(m.taker(4, 15, 0, **kw)) == [
        Accepted(5, 4, SYM),
        m.trade(6, 0, 5, 1, 4, maker_account="m1"),
        Cancelled(7, 4, 10, SELF_TRADE),
    ]
    # the own resting order and the one behind it are untouched
    assert eng.snapshot() == m.book(maker=[(0, 2, 5), (0, 3, 5)])
    assert eng.order(4) == cancelled(4)
    eng.check()


def test_stp_cancel_resting(eng: Engine, m: Mirror) -> None:
    _own_order_in_the_middle(eng, m)
    assert eng.apply(m.taker(4, 12, 0, stp=CANCEL_RESTING)) == [
        Accepted(5, 4, SYM),
        m.trade(6, 0, 5, 1, 4, maker_account="m1"),
        Cancelled(7, 2, 5, SELF_TRADE),
        m.trade(8, 0, 5, 3, 4, maker_account="m3"),
    ]
    assert eng.snapshot() == m.book(taker=[(0, 4, 2)])
    assert eng.order(2) == cancelled(2)
    assert eng.order(4) == OrderState(4, "open", SYM, "tak", m.side, m.px(0), 2)
    eng.check()


@pytest.mark.parametrize(
    ("kw", "reason"),
    [({"tif": IOC}, CancelReason.IOC), ({"order_type": MARKET}, CancelReason.MARKET)],
    ids=["ioc", "market"],
)
def test_stp_cancel_resting_then_ioc_or_market_remainder(
    eng: Engine, m: Mirror, kw: dict[str, Any], reason: CancelReason
) -> None:
    """Once own orders are cleared away the remainder is cancelled for its own reason."""
    _own_order_in_the_middle(eng, m)
    k = None if kw.get("order_type") is MARKET else 0
    assert eng.apply(m.taker(4, 12, k, stp=CANCEL_RESTING, **kw)) == [
        Accepted(5, 4, SYM),
        m.trade(6, 0, 5, 1, 4, maker_account="m1"),
        Cancelled(7, 2, 5, SELF_TRADE),
        m.trade(8, 0, 5, 3, 4, maker_account="m3"),
        Cancelled(9, 4, 2, reason),
    ]
    assert eng.snapshot() == m.book()
    eng.check()


@pytest.mark.parametrize("tif", [TimeInForce.GTC, FOK])
@pytest.mark.parametrize("stp", [CANCEL_INCOMING, CANCEL_RESTING, CANCEL_BOTH])
def test_own_order_beyond_the_limit_plays_no_part(
    eng: Engine, m: Mirror, tif: TimeInForce, stp: SelfTradePrevention
) -> None:
    setup(eng, m.maker(1, 5, 0, account="m1"), m.maker(2, 5, 2, account="tak"))
    qty = 10 if tif is TimeInForce.GTC else 5
    expected: list[Event] = [Accepted(4, 3, SYM), m.trade(5, 0, 5, 1, 3, maker_account="m1")]
    assert eng.apply(m.taker(3, qty, 1, tif=tif, stp=stp)) == expected
    rest = [(1, 3, 5)] if tif is TimeInForce.GTC else []
    assert eng.snapshot() == m.book(taker=rest, maker=[(2, 2, 5)])
    eng.check()


def test_stp_cancel_both(eng: Engine, m: Mirror) -> None:
    _own_order_in_the_middle(eng, m)
    assert eng.apply(m.taker(4, 15, 0, stp=CANCEL_BOTH)) == [
        Accepted(5, 4, SYM),
        m.trade(6, 0, 5, 1, 4, maker_account="m1"),
        Cancelled(7, 2, 5, SELF_TRADE),
        Cancelled(8, 4, 10, SELF_TRADE),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 3, 5)])
    assert eng.order(2) == cancelled(2)
    assert eng.order(4) == cancelled(4)
    eng.check()


def test_stp_cancel_both_emptying_a_level(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0, account="m1"), m.maker(2, 5, 0, account="tak"),
          m.maker(3, 5, 1, account="m3"))
    assert eng.apply(m.taker(4, 20, 1, stp=CANCEL_BOTH)) == [
        Accepted(5, 4, SYM),
        m.trade(6, 0, 5, 1, 4, maker_account="m1"),
        Cancelled(7, 2, 5, SELF_TRADE),
        Cancelled(8, 4, 15, SELF_TRADE),
    ]
    assert eng.snapshot() == m.book(maker=[(1, 3, 5)])
    eng.check()


def test_stp_cancel_resting_clears_own_orders_and_rests(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 5, 0, account="tak"), m.maker(2, 3, 1, account="tak"),
          m.maker(3, 4, 2, account="m3"))
    assert eng.apply(m.taker(4, 10, 1, stp=CANCEL_RESTING)) == [
        Accepted(5, 4, SYM),
        Cancelled(6, 1, 5, SELF_TRADE),
        Cancelled(7, 2, 3, SELF_TRADE),
    ]
    assert eng.snapshot() == m.book(taker=[(1, 4, 10)], maker=[(2, 3, 4)])
    eng.check()


def test_stp_own_order_at_the_touch_stops_before_any_trade(eng: Engine, m: Mirror) -> None:
    """The resting order's own STP mode plays no part: the incoming order's mode decides."""
    setup(eng, m.maker(1, 5, 0, account="tak", stp=CANCEL_RESTING), m.maker(2, 5, 0, account="m2"))
    assert eng.apply(m.taker(3, 5, 0)) == [Accepted(4, 3, SYM), Cancelled(5, 3, 5, SELF_TRADE)]
    assert eng.snapshot() == m.book(maker=[(0, 1, 5), (0, 2, 5)])
    eng.check()


@pytest.mark.parametrize(
    "kw",
    [{"tif": IOC}, {"order_type": MARKET}],
    ids=["ioc", "market"],
)
def test_stp_reason_wins_over_ioc_and_market(eng: Engine, m: Mirror, kw: dict[str, Any]) -> None:
    _own_order_in_the_middle(eng, m)
    k = None if kw.get("order_type") is MARKET else 0
    assert eng.apply(m.taker(4, 15, k, **kw)) == [
        Accepted(5, 4, SYM),
        m.trade(6, 0, 5, 1, 4, maker_account="m1"),
        Cancelled(7, 4, 10, SELF_TRADE),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 2, 5), (0, 3, 5)])
    eng.check()


# -- cancel ------------------------------------------------------------------------


def test_cancel_takes_the_open_quantity_off(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 10, 0), m.maker(2, 5, 0), m.maker(3, 7, 1))
    assert eng.apply(CancelOrder(2)) == [Cancelled(5, 2, 5, CancelReason.USER)]
    assert eng.snapshot() == m.book(maker=[(0, 1, 10), (1, 3, 7)])
    assert eng.order(2) == cancelled(2)
    assert eng.apply(CancelOrder(1)) == [Cancelled(6, 1, 10, CancelReason.USER)]
    assert eng.snapshot() == m.book(maker=[(1, 3, 7)])
    eng.check()


def test_cancel_of_partly_filled_order_cancels_its_remainder(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 10, 0))
    assert eng.apply(m.taker(2, 14, 0)) == [Accepted(3, 2, SYM), m.trade(4, 0, 10, 1, 2)]
    assert eng.apply(CancelOrder(2)) == [Cancelled(5, 2, 4, CancelReason.USER)]
    assert eng.snapshot() == m.book()
    assert eng.order(2) == cancelled(2)
    eng.check()


# -- modify ------------------------------------------------------------------------


def _three_at_the_touch(eng: Engine, m: Mirror) -> None:
    """Makers (seq 2..4) at px(0), 10 each, of accounts a, b, c."""
    setup(eng, m.maker(1, 10, 0, account="a"), m.maker(2, 10, 0, account="b"),
          m.maker(3, 10, 0, account="c"))


@pytest.mark.parametrize(
    ("qty", "same_price"),
    [(4, False), (4, True), (10, False), (10, True), (None, True)],
)
def test_modify_lower_or_equal_qty_keeps_priority(
    eng: Engine, m: Mirror, qty: int | None, same_price: bool
) -> None:
    _three_at_the_touch(eng, m)
    price = m.px(0) if same_price else None
    new_qty = 10 if qty is None else qty
    assert eng.apply(ModifyOrder(1, price=price, qty=qty)) == [Modified(5, 1, m.px(0), new_qty)]
    assert eng.snapshot() == m.book(maker=[(0, 1, new_qty), (0, 2, 10), (0, 3, 10)])
    assert eng.apply(m.taker(4, new_qty + 2, 0)) == [
        Accepted(6, 4, SYM),
        m.trade(7, 0, new_qty, 1, 4, maker_account="a"),
        m.trade(8, 0, 2, 2, 4, maker_account="b"),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 2, 8), (0, 3, 10)])
    eng.check()


@pytest.mark.parametrize("kw", [{"qty": 12}, {"price": 1}, {"price": 1, "qty": 3}])
def test_modify_of_the_only_order_of_a_level(eng: Engine, m: Mirror, kw: dict[str, int]) -> None:
    setup(eng, m.maker(1, 10, 0), m.maker(2, 10, 1))
    k = kw.get("price", 0)
    qty = kw.get("qty", 10)
    price = None if "price" not in kw else m.px(k)
    assert eng.apply(ModifyOrder(1, price=price, qty=kw.get("qty"))) == [
        Modified(4, 1, m.px(k), qty)
    ]
    rows = [(0, 1, qty), (1, 2, 10)] if k == 0 else [(1, 2, 10), (1, 1, qty)]
    assert eng.snapshot() == m.book(maker=rows)
    eng.check()


def test_modify_higher_qty_loses_priority(eng: Engine, m: Mirror) -> None:
    _three_at_the_touch(eng, m)
    assert eng.apply(ModifyOrder(1, qty=12)) == [Modified(5, 1, m.px(0), 12)]
    assert eng.snapshot() == m.book(maker=[(0, 2, 10), (0, 3, 10), (0, 1, 12)])
    assert eng.apply(m.taker(4, 25, 0)) == [
        Accepted(6, 4, SYM),
        m.trade(7, 0, 10, 2, 4, maker_account="b"),
        m.trade(8, 0, 10, 3, 4, maker_account="c"),
        m.trade(9, 0, 5, 1, 4, maker_account="a"),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 1, 7)])
    eng.check()


def test_modify_new_price_goes_to_the_back_of_the_new_level(eng: Engine, m: Mirror) -> None:
    _three_at_the_touch(eng, m)
    assert eng.apply(ModifyOrder(1, price=m.px(1))) == [Modified(5, 1, m.px(1), 10)]
    assert eng.snapshot() == m.book(maker=[(0, 2, 10), (0, 3, 10), (1, 1, 10)])
    # back to the old price: behind the orders that were there
    assert eng.apply(ModifyOrder(1, price=m.px(0), qty=6)) == [Modified(6, 1, m.px(0), 6)]
    assert eng.snapshot() == m.book(maker=[(0, 2, 10), (0, 3, 10), (0, 1, 6)])
    # a better (not crossing) price opens a new best level
    assert eng.apply(ModifyOrder(3, price=m.px(-1), qty=5)) == [Modified(7, 3, m.px(-1), 5)]
    assert eng.snapshot() == m.book(maker=[(-1, 3, 5), (0, 2, 10), (0, 1, 6)])
    assert eng.order(3) == OrderState(3, "open", SYM, "c", m.other, m.px(-1), 5)
    eng.check()


def test_modify_qty_is_the_new_open_quantity(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 10, 0, account="a"), m.maker(2, 10, 0, account="b"))
    assert eng.apply(m.taker(3, 4, 0)) == [
        Accepted(4, 3, SYM),
        m.trade(5, 0, 4, 1, 3, maker_account="a"),
    ]
    # open qty is 6: modifying to 6 is no increase and keeps priority
    assert eng.apply(ModifyOrder(1, qty=6)) == [Modified(6, 1, m.px(0), 6)]
    assert eng.snapshot() == m.book(maker=[(0, 1, 6), (0, 2, 10)])
    # 7 is more than is open: priority lost
    assert eng.apply(ModifyOrder(1, qty=7)) == [Modified(7, 1, m.px(0), 7)]
    assert eng.snapshot() == m.book(maker=[(0, 2, 10), (0, 1, 7)])
    eng.check()


def _taker_behind_spread(eng: Engine, m: Mirror) -> None:
    """Makers (seq 2..4): 3 of m1 at px(0), 4 of m2 at px(1), 5 of m3 at px(2);
    then order 4 of tak, 2 at px(-1) on the other side (seq 5)."""
    setup(
        eng,
        m.maker(1, 3, 0, account="m1"),
        m.maker(2, 4, 1, account="m2"),
        m.maker(3, 5, 2, account="m3"),
        m.taker(4, 2, -1),
    )


def test_crossing_modify_trades_as_taker_then_rests(eng: Engine, m: Mirror) -> None:
    _taker_behind_spread(eng, m)
    assert eng.apply(ModifyOrder(4, price=m.px(1), qty=10)) == [
        Modified(6, 4, m.px(1), 10),
        m.trade(7, 0, 3, 1, 4, maker_account="m1"),
        m.trade(8, 1, 4, 2, 4, maker_account="m2"),
    ]
    assert eng.snapshot() == m.book(taker=[(1, 4, 3)], maker=[(2, 3, 5)])
    assert eng.order(4) == OrderState(4, "open", SYM, "tak", m.side, m.px(1), 3)
    eng.check()


def test_crossing_modify_fully_filled(eng: Engine, m: Mirror) -> None:
    _taker_behind_spread(eng, m)
    assert eng.apply(ModifyOrder(4, price=m.px(1), qty=5)) == [
        Modified(6, 4, m.px(1), 5),
        m.trade(7, 0, 3, 1, 4, maker_account="m1"),
        m.trade(8, 1, 2, 2, 4, maker_account="m2"),
    ]
    assert eng.snapshot() == m.book(maker=[(1, 2, 2), (2, 3, 5)])
    assert eng.order(4) == filled(4)
    eng.check()


def test_crossing_modify_of_price_only_keeps_the_qty(eng: Engine, m: Mirror) -> None:
    _taker_behind_spread(eng, m)
    assert eng.apply(ModifyOrder(4, price=m.px(0))) == [
        Modified(6, 4, m.px(0), 2),
        m.trade(7, 0, 2, 1, 4, maker_account="m1"),
    ]
    assert eng.snapshot() == m.book(maker=[(0, 1, 1), (1, 2, 4), (2, 3, 5)])
    eng.check()


@pytest.mark.parametrize("stp", [CANCEL_INCOMING, CANCEL_RESTING, CANCEL_BOTH])
def test_crossing_modify_uses_the_orders_own_stp(
    eng: Engine, m: Mirror, stp: SelfTradePrevention
) -> None:
    setup(
        eng,
        m.maker(1, 3, 0, account="m1"),
        m.maker(2, 3, 0, account="tak"),
        m.maker(3, 3, 0, account="m3"),
        m.taker(4, 5, -1, stp=stp),
    )
    head: list[Event] = [Modified(6, 4, m.px(0), 5), m.trade(7, 0, 3, 1, 4, maker_account="m1")]
    if stp is CANCEL_INCOMING:
        tail: list[Event] = [Cancelled(8, 4, 2, SELF_TRADE)]
        after = m.book(maker=[(0, 2, 3), (0, 3, 3)])
        state = cancelled(4)
    elif stp is CANCEL_RESTING:
        tail = [Cancelled(8, 2, 3, SELF_TRADE), m.trade(9, 0, 2, 3, 4, maker_account="m3")]
        after = m.book(maker=[(0, 3, 1)])
        state = filled(4)
    else:
        tail = [Cancelled(8, 2, 3, SELF_TRADE), Cancelled(9, 4, 2, SELF_TRADE)]
        after = m.book(maker=[(0, 3, 3)])
        state = cancelled(4)
    assert eng.apply(ModifyOrder(4, price=m.px(0))) == head + tail
    assert eng.snapshot() == after
    assert eng.order(4) == state
    eng.check()


@pytest.mark.parametrize("qty", [None, 3, 8])
def test_post_only_crossing_modify_is_rejected_and_order_unchanged(
    eng: Engine, m: Mirror, qty: int | None
) -> None:
    setup(eng, m.maker(1, 5, 0), m.taker(2, 5, -1, post_only=True), m.taker(3, 5, -1, account="t3"))
    before = eng.snapshot()
    assert before == m.book(taker=[(-1, 2, 5), (-1, 3, 5)], maker=[(0, 1, 5)])
    assert eng.apply(ModifyOrder(2, price=m.px(0), qty=qty)) == [
        Rejected(5, 2, RejectReason.POST_ONLY, "post-only order would cross")
    ]
    assert eng.snapshot() == before
    assert eng.order(2) == OrderState(2, "open", SYM, "tak", m.side, m.px(-1), 5)
    # a non-crossing modify of the post-only order is fine
    assert eng.apply(ModifyOrder(2, price=m.px(-2), qty=4)) == [Modified(6, 2, m.px(-2), 4)]
    assert eng.snapshot() == m.book(taker=[(-1, 3, 5), (-2, 2, 4)], maker=[(0, 1, 5)])
    # ... and it is still post-only after moving
    assert eng.apply(ModifyOrder(2, price=m.px(1))) == [
        Rejected(7, 2, RejectReason.POST_ONLY, "post-only order would cross")
    ]
    assert eng.snapshot() == m.book(taker=[(-1, 3, 5), (-2, 2, 4)], maker=[(0, 1, 5)])
    eng.check()


def test_rested_remainder_keeps_its_stp_mode(eng: Engine, m: Mirror) -> None:
    """An order that traded, rested and is later modified across still uses its own STP mode."""
    setup(eng, m.maker(1, 2, 0, account="m1"))
    assert eng.apply(m.taker(2, 6, 0, stp=CANCEL_RESTING)) == [
        Accepted(3, 2, SYM),
        m.trade(4, 0, 2, 1, 2, maker_account="m1"),
    ]
    setup(eng, m.maker(3, 3, 1, account="tak"), m.maker(4, 3, 1, account="m4"))
    assert eng.apply(ModifyOrder(2, price=m.px(1))) == [
        Modified(7, 2, m.px(1), 4),
        Cancelled(8, 3, 3, SELF_TRADE),
        m.trade(9, 1, 3, 4, 2, maker_account="m4"),
    ]
    assert eng.snapshot() == m.book(taker=[(1, 2, 1)])
    eng.check()


def test_modify_then_cancel_uses_the_new_quantity(eng: Engine, m: Mirror) -> None:
    setup(eng, m.maker(1, 10, 0), m.maker(2, 10, 0))
    assert eng.apply(ModifyOrder(1, price=m.px(3), qty=15)) == [Modified(4, 1, m.px(3), 15)]
    assert eng.apply(CancelOrder(1)) == [Cancelled(5, 1, 15, CancelReason.USER)]
    assert eng.snapshot() == m.book(maker=[(0, 2, 10)])
    eng.check()


# -- tick, lot, many instruments ---------------------------------------------------


def test_tick_and_lot_multiples_trade(make_engine: Callable[[], Engine]) -> None:
    eng = make_engine()
    assert eng.apply(ListInstrument("EUA-DEC", UnitType.EUA, tick=5, lot=100)) == [
        InstrumentListed(1, "EUA-DEC", UnitType.EUA, 5, 100)
    ]
    assert eng.apply(NewOrder(1, "s", "EUA-DEC", Side.SELL, 200, price=1005)) == [
        Accepted(2, 1, "EUA-DEC")
    ]
    assert eng.apply(NewOrder(2, "b", "EUA-DEC", Side.BUY, 300, price=1010)) == [
        Accepted(3, 2, "EUA-DEC"),
        Trade(4, "EUA-DEC", 1005, 200, 1, 2, 2, 1, "b", "s"),
    ]
    assert eng.apply(ModifyOrder(2, price=1000, qty=400)) == [Modified(5, 2, 1000, 400)]
    assert eng.snapshot() == book(bids=[[1000, 2, 400]], symbol="EUA-DEC")
    eng.check()


def test_many_instruments_share_one_gapless_sequence_and_id_space(
    make_engine: Callable[[], Engine],
) -> None:
    eng = make_engine()
    commands: list[Command] = [
        ListInstrument("A", UnitType.JPA),
        ListInstrument("B", UnitType.EUA, tick=5),
        NewOrder(1, "x", "A", Side.SELL, 10, price=100),
        ListInstrument("C", UnitType.JCR, lot=10),
        NewOrder(2, "x", "B", Side.SELL, 10, price=500),
        NewOrder(3, "y", "C", Side.BUY, 20, price=50),
        NewOrder(4, "y", "A", Side.BUY, 4, price=100),
        NewOrder(1, "y", "B", Side.BUY, 10, price=500),  # id 1 is taken (in A)
        NewOrder(5, "x", "C", Side.SELL, 30, price=50),
        CancelOrder(2),
        NewOrder(6, "z", "B", Side.BUY, 5, order_type=MARKET),
    ]
    assert eng.apply_all(commands) == [
        InstrumentListed(1, "A", UnitType.JPA, 1, 1),
        InstrumentListed(2, "B", UnitType.EUA, 5, 1),
        Accepted(3, 1, "A"),
        InstrumentListed(4, "C", UnitType.JCR, 1, 10),
        Accepted(5, 2, "B"),
        Accepted(6, 3, "C"),
        Accepted(7, 4, "A"),
        Trade(8, "A", 100, 4, 1, 4, 4, 1, "y", "x"),
        Rejected(9, 1, RejectReason.DUPLICATE_ID, "order id 1 already used"),
        Accepted(10, 5, "C"),
        Trade(11, "C", 50, 20, 3, 5, 3, 5, "y", "x"),
        Cancelled(12, 2, 10, CancelReason.USER),
        Accepted(13, 6, "B"),
        Cancelled(14, 6, 5, CancelReason.MARKET),
    ]
    assert eng.snapshot() == {
        "A": {"bids": [], "asks": [[100, 1, 6]]},
        "B": {"bids": [], "asks": []},
        "C": {"bids": [], "asks": [[50, 5, 10]]},
    }
    assert eng.symbols == ["A", "B", "C"]
    eng.check()
