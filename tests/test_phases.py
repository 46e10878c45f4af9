"""Trading phases, call-auction uncrossing and price bands (issue 4, items 1-3).

The uncross scenarios have hand-checked numbers: ``D(p)`` is the demand at ``p``
(market buys plus bids at ``p`` or above), ``S(p)`` the supply (market sells plus
asks at ``p`` or below), the volume ``min(D, S)`` and the surplus ``D - S``.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonbook import (
    Accepted,
    Cancelled,
    CancelOrder,
    CancelReason,
    Engine,
    Event,
    Indicative,
    InstrumentListed,
    ListInstrument,
    Modified,
    ModifyOrder,
    NewOrder,
    OrderType,
    Phase,
    PhaseChanged,
    Rejected,
    RejectReason,
    SelfTradePrevention,
    SetPhase,
    Side,
    TimeInForce,
    Trade,
    Uncrossed,
    UnitType,
)
from carbonbook.operations.replay import replay
from conftest import SYM, book

BUY, SELL = Side.BUY, Side.SELL
MakeEngine = Callable[[], Engine]


def in_call(make_engine: MakeEngine, **kw: Any) -> Engine:
    """An engine with ``SYM`` listed in the call phase (seq 1)."""
    engine = make_engine()
    engine.apply(ListInstrument(SYM, UnitType.JCR, phase=Phase.CALL, **kw))
    return engine


def order(oid: int, side: Side, qty: int, price: int | None = None, account: str | None = None,
          **kw: Any) -> NewOrder:
    if price is None:
        kw.setdefault("order_type", OrderType.MARKET)
    return NewOrder(oid, account or f"acct{oid}", SYM, side, qty, price=price, **kw)


def fills(events: list[Event]) -> list[tuple[int, int, int, int]]:
    """(buy_id, sell_id, price, qty) of each trade."""
    return [(e.buy_id, e.sell_id, e.price, e.qty) for e in events if isinstance(e, Trade)]


def uncross(engine: Engine, to: Phase = Phase.CONTINUOUS, reference: int | None = None) -> list[Event]:
    events = engine.apply(SetPhase(SYM, to, reference))
    assert isinstance(events[0], PhaseChanged) and isinstance(events[1], Uncrossed)
    return events


def uncrossed(events: list[Event]) -> Uncrossed:
    return next(e for e in events if isinstance(e, Uncrossed))


# -- tie-break levels ------------------------------------------------------------------


def test_level1_maximum_volume(make_engine: MakeEngine) -> None:
    # bids 1020x5, 1010x5, 1000x5; asks 990x4, 1000x8, 1010x10
    # p:     990  1000  1010  1020
    # D:      15    15    10     5
    # S:       4    12    22    22
    # vol:     4    12    10     5   -> 1000, although the reference (1020) is elsewhere
    eng = in_call(make_engine, reference=1020)
    for cmd in (order(1, BUY, 5, 1020), order(2, BUY, 5, 1010), order(3, BUY, 5, 1000),
                order(4, SELL, 4, 990), order(5, SELL, 8, 1000), order(6, SELL, 10, 1010)):
        eng.apply(cmd)
    assert eng.indicative(SYM) == (1000, 12, 3)
    events = uncross(eng)
    assert uncrossed(events) == Uncrossed(events[1].seq, SYM, 1000, 12)
    assert fills(events) == [(1, 4, 1000, 4), (1, 5, 1000, 1), (2, 5, 1000, 5), (3, 5, 1000, 2)]
    assert eng.snapshot() == book(bids=[[1000, 3, 3]], asks=[[1010, 6, 10]])
    assert eng.phase(SYM) is Phase.CONTINUOUS


def test_level2_least_surplus(make_engine: MakeEngine) -> None:
    # bids 1010x6, 1000x4; asks 1000x6, 1010x3
    # p:     1000  1010
    # D:       10     6
    # S:        6     9
    # vol:      6     6
    # surplus: +4    -3   -> 1010 (least surplus), though the reference is 1000
    eng = in_call(make_engine, reference=1000)
    for cmd in (order(1, BUY, 6, 1010), order(2, BUY, 4, 1000),
                order(3, SELL, 6, 1000), order(4, SELL, 3, 1010)):
        eng.apply(cmd)
    events = uncross(eng)
    assert uncrossed(events).price == 1010
    assert fills(events) == [(1, 3, 1010, 6)]
    assert eng.snapshot() == book(bids=[[1000, 2, 4]], asks=[[1010, 4, 3]])


@pytest.mark.parametrize(("side", "expected"), [(BUY, 1020), (SELL, 980)])
def test_level3_market_pressure(make_engine: MakeEngine, side: Side, expected: int) -> None:
    # buy pressure: bid 1020x10, ask 1000x5 -> at 1000 and 1020: vol 5, surplus +5 -> highest, 1020
    # sell pressure: bid 1000x5, ask 980x10 -> at 980 and 1000: vol 5, surplus -5 -> lowest, 980
    eng = in_call(make_engine, reference=1000)
    if side is BUY:
        eng.apply(order(1, BUY, 10, 1020))
        eng.apply(order(2, SELL, 5, 1000))
    else:
        eng.apply(order(1, BUY, 5, 1000))
        eng.apply(order(2, SELL, 10, 980))
    events = uncross(eng)
    assert uncrossed(events).price == expected
    assert fills(events) == [(1, 2, expected, 5)]
    rest = [[expected, 1, 5]] if side is BUY else []
    assert eng.snapshot() == book(bids=rest, asks=[] if side is BUY else [[980, 2, 5]])


@pytest.mark.parametrize(("reference", "expected"),
                         [(1000, 1000), (1050, 1020), (900, 980), (None, 1000)])
def test_level4_reference_price(make_engine: MakeEngine, reference: int | None, expected: int) -> None:
    # bid 1020x5, ask 980x5: at 980 and 1020 vol 5, surplus 0 -> the reference when it lies
    # between them, else the nearer end; without one the middle, (980 + 1020) // 2
    eng = in_call(make_engine)
    eng.apply(order(1, BUY, 5, 1020))
    eng.apply(order(2, SELL, 5, 980))
    events = uncross(eng, reference=reference)
    assert events[0] == PhaseChanged(events[0].seq, SYM, Phase.CONTINUOUS, reference)
    assert fills(events) == [(1, 2, expected, 5)]


def test_level4_surplus_on_both_sides(make_engine: MakeEngine) -> None:
    # bids 1010x5, 990x2; asks 990x5, 1010x2
    # p:     990  1010
    # D:       7     5
    # S:       5     7
    # vol:     5     5, surplus +2 and -2: both sides -> the reference 1000
    eng = in_call(make_engine, reference=1000)
    for cmd in (order(1, BUY, 5, 1010), order(2, BUY, 2, 990),
                order(3, SELL, 5, 990), order(4, SELL, 2, 1010)):
        eng.apply(cmd)
    events = uncross(eng)
    assert fills(events) == [(1, 3, 1000, 5)]
    assert eng.snapshot() == book(bids=[[990, 2, 2]], asks=[[1010, 4, 2]])


def test_reference_is_the_last_trade(make_engine: MakeEngine) -> None:
    eng = make_engine()
    eng.apply(ListInstrument(SYM, UnitType.JPA))
    eng.apply(order(1, SELL, 1, 1010))
    eng.apply(order(2, BUY, 1, 1010))  # trades at 1010
    eng.apply(SetPhase(SYM, Phase.CALL))
    eng.apply(order(3, BUY, 5, 1020))
    eng.apply(order(4, SELL, 5, 980))
    assert fills(uncross(eng)) == [(3, 4, 1010, 5)]


# -- priority, remainders, STP, FOK ----------------------------------------------------


def test_market_orders_have_priority_and_their_remainder_is_cancelled(make_engine: MakeEngine) -> None:
    # bid 1100x5 (first), market buy 7; ask 1000x5 -> vol 5 at 1000 and 1100, surplus +7: 1100
    eng = in_call(make_engine)
    eng.apply(order(1, BUY, 5, 1100))
    eng.apply(order(2, BUY, 7))
    eng.apply(order(3, SELL, 5, 1000))
    assert eng.snapshot() == book(bids=[[None, 2, 7], [1100, 1, 5]], asks=[[1000, 3, 5]])  # type: ignore[list-item]
    events = uncross(eng)
    assert fills(events) == [(2, 3, 1100, 5)]
    assert events[-1] == Cancelled(events[-1].seq, 2, 2, CancelReason.MARKET)
    assert eng.snapshot() == book(bids=[[1100, 1, 5]])


def test_ioc_remainder_cancelled_gtc_rests(make_engine: MakeEngine) -> None:
    eng = in_call(make_engine)
    eng.apply(order(1, BUY, 10, 1000, tif=TimeInForce.IOC))
    eng.apply(order(2, BUY, 10, 1000))
    eng.apply(order(3, SELL, 12, 1000))
    events = uncross(eng)
    assert fills(events) == [(1, 3, 1000, 10), (2, 3, 1000, 2)]
    assert not any(isinstance(e, Cancelled) for e in events)
    assert eng.snapshot() == book(bids=[[1000, 2, 8]])
    eng2 = in_call(make_engine)
    eng2.apply(order(1, BUY, 10, 1000, tif=TimeInForce.IOC))
    eng2.apply(order(3, SELL, 4, 1000))
    events = uncross(eng2)
    assert fills(events) == [(1, 3, 1000, 4)]
    assert events[-1] == Cancelled(events[-1].seq, 1, 6, CancelReason.IOC)


def test_fok_is_all_or_nothing(make_engine: MakeEngine) -> None:
    # FOK bid 1000x10 cannot fill against 6: cancelled, then nothing crosses
    eng = in_call(make_engine)
    eng.apply(order(1, BUY, 10, 1000, tif=TimeInForce.FOK))
    eng.apply(order(2, SELL, 6, 1000))
    events = uncross(eng)
    assert events[1] == Uncrossed(events[1].seq, SYM, None, 0)
    assert events[2] == Cancelled(events[2].seq, 1, 10, CancelReason.FOK)
    assert eng.snapshot() == book(asks=[[1000, 2, 6]])
    # a second bid fills the rest: the FOK trades entirely
    eng = in_call(make_engine)
    eng.apply(order(1, BUY, 10, 1000, tif=TimeInForce.FOK))
    eng.apply(order(2, SELL, 6, 1000))
    eng.apply(order(3, SELL, 6, 990))
    events = uncross(eng)
    assert uncrossed(events) == Uncrossed(events[1].seq, SYM, 1000, 10)
    assert fills(events) == [(1, 3, 1000, 6), (1, 2, 1000, 4)]


def test_self_trade_prevention_in_the_uncross(make_engine: MakeEngine) -> None:
    # A bids 1010x10, then A offers 1000x10 (cancel_incoming), B offers 1005x10.
    # First choice 1000 (vol 10, surplus 0) pairs A with A: A's later order is cancelled.
    # Then bid 1010x10 against ask 1005x10: vol 10, surplus 0 at both: the middle, 1007.
    eng = in_call(make_engine)
    eng.apply(order(1, BUY, 10, 1010, account="A"))
    eng.apply(order(2, SELL, 10, 1000, account="A"))
    eng.apply(order(3, SELL, 10, 1005, account="B"))
    events = uncross(eng)
    assert events[1] == Uncrossed(events[1].seq, SYM, 1007, 10)
    assert events[2] == Cancelled(events[2].seq, 2, 10, CancelReason.SELF_TRADE)
    assert events[3] == Trade(events[3].seq, SYM, 1007, 10, 1, 3, 1, 3, "A", "B")
    assert eng.snapshot() == book()


@pytest.mark.parametrize(("stp", "cancelled"), [(SelfTradePrevention.CANCEL_RESTING, [1]),
                                                (SelfTradePrevention.CANCEL_BOTH, [1, 2])])
def test_self_trade_modes_of_the_later_order(make_engine: MakeEngine, stp: SelfTradePrevention,
                                             cancelled: list[int]) -> None:
    eng = in_call(make_engine)
    eng.apply(order(1, BUY, 10, 1010, account="A"))
    eng.apply(order(2, SELL, 10, 1000, account="A", stp=stp))
    events = uncross(eng)
    assert [e.id for e in events if isinstance(e, Cancelled)] == cancelled
    assert not fills(events)


def test_maker_is_the_earlier_order(make_engine: MakeEngine) -> None:
    eng = make_engine()
    eng.apply(ListInstrument(SYM, UnitType.JPA))
    eng.apply(order(1, SELL, 5, 1000))  # rests in continuous trading
    eng.apply(SetPhase(SYM, Phase.CALL))
    eng.apply(order(2, BUY, 3, 1000))
    eng.apply(order(3, SELL, 3, 990))
    events = uncross(eng)
    trades = [e for e in events if isinstance(e, Trade)]
    # price: at 990 vol 3 surplus 0; at 1000 vol 3, surplus -5 -> 990
    assert [(t.maker_id, t.taker_id, t.price) for t in trades] == [(2, 3, 990)]
    eng.apply(SetPhase(SYM, Phase.CALL))
    eng.apply(order(4, BUY, 5, 1000))
    events = uncross(eng)
    assert [(t.maker_id, t.taker_id, t.price) for t in events if isinstance(t, Trade)] == [(1, 4, 1000)]


# -- phases ----------------------------------------------------------------------------


def test_call_publishes_indicative_after_each_change(make_engine: MakeEngine) -> None:
    eng = in_call(make_engine)
    events = eng.apply(order(1, BUY, 10, 1010))
    assert events == [Accepted(2, 1, SYM), Indicative(3, SYM, None, 0, 0, None)]
    events = eng.apply(order(2, SELL, 6, 990))
    # at 990 and 1010: vol 6, surplus +4 -> 1010
    assert events[1] == Indicative(5, SYM, 1010, 6, 4, BUY)
    events = eng.apply(ModifyOrder(2, qty=10))
    # at 990 and 1010: vol 10, surplus 0, no reference -> the middle, 1000
    assert events == [Modified(6, 2, 990, 10), Indicative(7, SYM, 1000, 10, 0, None)]
    events = eng.apply(CancelOrder(1))
    assert events == [Cancelled(8, 1, 10, CancelReason.USER), Indicative(9, SYM, None, 0, 0, None)]
    assert eng.apply(SetPhase(SYM, Phase.CALL))[1] == Indicative(11, SYM, None, 0, 0, None)


def test_nothing_matches_in_a_call(make_engine: MakeEngine) -> None:
    eng = in_call(make_engine)
    eng.apply(order(1, SELL, 5, 990))
    events = eng.apply(order(2, BUY, 5, 1010))
    assert not fills(events)
    assert eng.snapshot() == book(bids=[[1010, 2, 5]], asks=[[990, 1, 5]])


@pytest.mark.parametrize("phase", [Phase.CLOSED, Phase.HALTED])
def test_closed_and_halted_refuse_orders_and_modifies_accept_cancels(
        make_engine: MakeEngine, phase: Phase) -> None:
    eng = make_engine()
    eng.apply(ListInstrument(SYM, UnitType.JPA))
    eng.apply(order(1, SELL, 5, 1000))
    assert eng.apply(SetPhase(SYM, phase)) == [PhaseChanged(3, SYM, phase, None)]
    events = eng.apply(order(2, BUY, 5, 1000))
    assert isinstance(events[0], Rejected) and events[0].reason is RejectReason.PHASE
    assert eng.apply(order(2, BUY, 0, 1000))[0].reason is RejectReason.BAD_QTY  # type: ignore[union-attr]
    assert eng.apply(ModifyOrder(1, price=990))[0].reason is RejectReason.PHASE  # type: ignore[union-attr]
    assert eng.apply(ModifyOrder(1, price=-1))[0].reason is RejectReason.BAD_PRICE  # type: ignore[union-attr]
    assert eng.apply(CancelOrder(1)) == [Cancelled(8, 1, 5, CancelReason.USER)]
    eng.apply(SetPhase(SYM, Phase.CONTINUOUS))
    assert eng.apply(order(2, BUY, 5, 1000))[0] == Accepted(10, 2, SYM)


def test_halt_during_a_call_uncrosses_on_resumption(make_engine: MakeEngine) -> None:
    eng = in_call(make_engine, reference=1000)
    eng.apply(order(1, BUY, 5, 1010))
    eng.apply(order(2, SELL, 5, 990))
    eng.apply(order(3, BUY, 2))
    assert eng.apply(SetPhase(SYM, Phase.HALTED)) == [PhaseChanged(8, SYM, Phase.HALTED, 1000)]
    assert eng.apply(CancelOrder(3)) == [Cancelled(9, 3, 2, CancelReason.USER)]
    events = uncross(eng)
    assert fills(events) == [(1, 2, 1000, 5)]


def test_call_only_instrument(make_engine: MakeEngine) -> None:
    eng = make_engine()
    events = eng.apply(ListInstrument(SYM, UnitType.JCR, call_only=True, band=9000, reference=1000))
    assert events == [InstrumentListed(1, SYM, UnitType.JCR, 1, 1, Phase.CALL, True, 9000, 1000)]
    assert eng.phase(SYM) is Phase.CALL
    refused = eng.apply(order(1, BUY, 5))[0]
    assert isinstance(refused, Rejected) and refused.reason is RejectReason.PHASE
    refused = eng.apply(SetPhase(SYM, Phase.CONTINUOUS))[0]
    assert isinstance(refused, Rejected) and refused.reason is RejectReason.PHASE
    eng.apply(order(1, BUY, 5, 1010))
    eng.apply(order(2, SELL, 5, 990))
    events = uncross(eng, Phase.CLOSED)
    assert fills(events) == [(1, 2, 1000, 5)]
    assert eng.phase(SYM) is Phase.CLOSED
    bad = eng.apply(ListInstrument("X", UnitType.JCR, call_only=True, phase=Phase.CONTINUOUS))[0]
    assert isinstance(bad, Rejected) and bad.reason is RejectReason.MALFORMED


def test_phase_command_refusals(make_engine: MakeEngine) -> None:
    eng = in_call(make_engine, tick=10)
    assert eng.apply(SetPhase("nope", Phase.CALL))[0].reason is RejectReason.UNKNOWN_SYMBOL  # type: ignore[union-attr]
    assert eng.apply(SetPhase(SYM, Phase.CALL, 1005))[0].reason is RejectReason.BAD_PRICE  # type: ignore[union-attr]
    assert eng.apply(SetPhase(SYM, "lunch"))[0].reason is RejectReason.MALFORMED  # type: ignore[arg-type,union-attr]


def test_post_only_refused_in_a_call(make_engine: MakeEngine) -> None:
    eng = in_call(make_engine)
    refused = eng.apply(order(1, BUY, 5, 1000, post_only=True))[0]
    assert isinstance(refused, Rejected) and refused.reason is RejectReason.POST_ONLY


# -- price bands -----------------------------------------------------------------------


def test_price_band_around_reference_then_last_trade(make_engine: MakeEngine) -> None:
    eng = make_engine()
    eng.apply(ListInstrument(SYM, UnitType.JCR, band=1000, reference=1000))  # +-10%
    assert eng.apply(order(1, SELL, 5, 1101))[0].reason is RejectReason.PRICE_BAND  # type: ignore[union-attr]
    assert eng.apply(order(1, SELL, 5, 1100))[0] == Accepted(3, 1, SYM)
    assert eng.apply(order(2, BUY, 5, 899))[0].reason is RejectReason.PRICE_BAND  # type: ignore[union-attr]
    # faults that come first still win
    assert eng.apply(order(1, BUY, 5, 5000))[0].reason is RejectReason.DUPLICATE_ID  # type: ignore[union-attr]
    assert eng.apply(order(2, BUY, 5, 1100))[1] == Trade(7, SYM, 1100, 5, 1, 2, 2, 1, "acct2", "acct1")
    # the band now centres on 1100: 1210 is inside, 989 outside
    assert eng.apply(order(3, SELL, 5, 1210))[0] == Accepted(8, 3, SYM)
    assert eng.apply(order(4, BUY, 5, 989))[0].reason is RejectReason.PRICE_BAND  # type: ignore[union-attr]
    assert eng.apply(ModifyOrder(3, price=1211))[0].reason is RejectReason.PRICE_BAND  # type: ignore[union-attr]
    assert eng.apply(order(5, BUY, 1))[1].price == 1210  # type: ignore[union-attr]  # market: no band


def test_price_band_in_a_call_follows_the_uncross(make_engine: MakeEngine) -> None:
    eng = in_call(make_engine, band=9000, reference=1000)  # JPX: +-90%
    assert eng.apply(order(1, BUY, 5, 1901))[0].reason is RejectReason.PRICE_BAND  # type: ignore[union-attr]
    assert eng.apply(order(1, BUY, 5, 1900))[0] == Accepted(3, 1, SYM)
    assert eng.apply(order(2, SELL, 5, 100))[0] == Accepted(5, 2, SYM)
    eng.apply(SetPhase(SYM, Phase.CLOSED, reference=1000))  # uncross at 1000
    eng.apply(SetPhase(SYM, Phase.CALL))
    assert eng.apply(order(3, SELL, 5, 99))[0].reason is RejectReason.PRICE_BAND  # type: ignore[union-attr]


# -- the order log -----------------------------------------------------------------------


def test_phases_through_the_order_log() -> None:
    lines = [
        {"type": "instrument", "symbol": "JCR-RE", "unit": "JCR", "call_only": True, "band": 9000,
         "reference": 3000},
        {"type": "new", "id": 1, "account": "a", "symbol": "JCR-RE", "side": "buy", "qty": 10,
         "price": 3100},
        {"type": "new", "id": 2, "account": "b", "symbol": "JCR-RE", "side": "sell", "qty": 4,
         "price": 2900},
        {"type": "phase", "symbol": "JCR-RE", "phase": "closed"},
        {"type": "phase", "symbol": "JCR-RE", "phase": "lunch"},
    ]
    log = b"".join(msgspec.json.encode(x) + b"\n" for x in lines)
    out = io.BytesIO()
    tally = replay(io.BytesIO(log), Engine(), out.write)
    events = [msgspec.json.decode(x) for x in out.getvalue().splitlines()]
    assert [e["type"] for e in events] == ["instrument_listed", "accepted", "indicative", "accepted",
                                           "indicative", "phase_changed", "uncrossed", "trade", "rejected"]
    assert events[0] == {"type": "instrument_listed", "seq": 1, "symbol": "JCR-RE", "unit": "JCR", "tick": 1,
                         "lot": 1, "phase": "call", "call_only": True, "band": 9000, "reference": 3000}
    assert events[4] == {"type": "indicative", "seq": 5, "symbol": "JCR-RE", "price": 3100,
                         "volume": 4, "surplus": 6, "side": "buy"}
    assert events[5] == {"type": "phase_changed", "seq": 6, "symbol": "JCR-RE", "phase": "closed",
                         "reference": 3000}
    assert events[6] == {"type": "uncrossed", "seq": 7, "symbol": "JCR-RE", "price": 3100, "volume": 4}
    assert events[8]["reason"] == "malformed" and events[8]["line"] == 5
    assert tally.events["trade"] == 1


# -- properties ------------------------------------------------------------------------


@st.composite
def call_books(draw: st.DrawFn) -> tuple[int | None, list[NewOrder]]:
    n = draw(st.integers(1, 40))
    orders = []
    for oid in range(1, n + 1):
        side = draw(st.sampled_from([BUY, SELL]))
        market = draw(st.integers(0, 9)) == 0
        price = None if market else draw(st.integers(95, 105)) * 10
        tif = TimeInForce.GTC if market else draw(st.sampled_from(list(TimeInForce)))
        orders.append(NewOrder(oid, draw(st.sampled_from("ABCDE")), SYM, side,
                               draw(st.integers(1, 20)), price=price,
                               order_type=OrderType.MARKET if market else OrderType.LIMIT, tif=tif,
                               stp=draw(st.sampled_from(list(SelfTradePrevention)))))
    reference = draw(st.none() | st.integers(90, 110).map(lambda k: k * 10))
    return reference, orders


def check_uncross(reference: int | None, orders: list[NewOrder], to: Phase) -> None:
    eng = Engine()
    eng.apply(ListInstrument(SYM, UnitType.JPA, tick=10, phase=Phase.CALL))
    for o in orders:
        assert isinstance(eng.apply(o)[0], Accepted)
    eng.check()
    events = eng.apply(SetPhase(SYM, to, reference))
    eng.check()  # never crossed after the uncross
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))
    mark = next(e for e in events if isinstance(e, Uncrossed))
    trades = [e for e in events if isinstance(e, Trade)]
    assert sum(t.qty for t in trades) == mark.volume
    by_id = {o.id: o for o in orders}
    done: Counter[int] = Counter()
    for t in trades:
        assert t.price == mark.price
        assert t.buy_account != t.sell_account
        buy, sell = by_id[t.buy_id], by_id[t.sell_id]
        assert buy.side is BUY and sell.side is SELL
        assert buy.price is None or t.price <= buy.price
        assert sell.price is None or t.price >= sell.price
        done[t.buy_id] += t.qty
        done[t.sell_id] += t.qty
    for e in events:
        if isinstance(e, Cancelled):
            done[e.id] += e.qty
    snap = eng.snapshot()[SYM]
    for row in snap["bids"] + snap["asks"]:
        done[row[1]] += row[2]  # type: ignore[index]
        assert by_id[row[1]].tif is TimeInForce.GTC and by_id[row[1]].price is not None  # type: ignore[index]
    for o in orders:
        assert done[o.id] == o.qty  # quantities conserved
        if o.tif is TimeInForce.FOK:
            assert sum(t.qty for t in trades if o.id in (t.buy_id, t.sell_id)) in (0, o.qty)
    if len({o.account for o in orders}) == len(orders) and all(o.tif != TimeInForce.FOK for o in orders):
        assert mark.volume == max_volume(orders, reference)


def max_volume(orders: list[NewOrder], reference: int | None) -> int:
    """The largest min(D, S) over every limit price (or the reference when there are none)."""
    prices = {o.price for o in orders if o.price is not None} or ({reference} - {None})
    best = 0
    for p in prices:
        assert p is not None
        d = sum(o.qty for o in orders if o.side is BUY and (o.price is None or o.price >= p))
        s = sum(o.qty for o in orders if o.side is SELL and (o.price is None or o.price <= p))
        best = max(best, min(d, s))
    return best


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call_books(), st.sampled_from([Phase.CONTINUOUS, Phase.CLOSED]))
def test_uncross_properties(book_: tuple[int | None, list[NewOrder]], to: Phase) -> None:
    check_uncross(*book_, to)


@settings(max_examples=100, deadline=None)
@given(call_books(), st.lists(st.tuples(st.integers(1, 40), st.integers(0, 2), st.integers(95, 105))))
def test_call_changes_then_uncross(book_: tuple[int | None, list[NewOrder]],
                                   changes: list[tuple[int, int, int]]) -> None:
    """Cancels and modifies during the call keep the book consistent and the uncross sound."""
    reference, orders = book_
    eng = Engine()
    eng.apply(ListInstrument(SYM, UnitType.JPA, tick=10, phase=Phase.CALL))
    for o in orders:
        eng.apply(o)
    for oid, what, k in changes:
        if what == 0:
            eng.apply(CancelOrder(oid))
        else:
            eng.apply(ModifyOrder(oid, price=k * 10 if what == 1 else None, qty=k))
        eng.check()
    eng.apply(SetPhase(SYM, Phase.CONTINUOUS, reference))
    eng.check()


# -- the indicative price against the plain computation ------------------------------------


def slow_auction_price(book_: Any) -> tuple[int | None, int, int]:
    """The price choice as first written (a rescan of every level that can cross at each
    change), slowly: ``D`` and ``S`` summed afresh at every candidate price."""
    mb = sum(o.qty for o in book_.market_bids)
    ms = sum(o.qty for o in book_.market_asks)
    bids = {level.price: level.qty for level in book_.bids.levels.values()}
    asks = {level.price: level.qty for level in book_.asks.levels.values()}
    ref = book_.reference

    def demand(p: int) -> int:
        return mb + sum(q for b, q in bids.items() if b >= p)

    def supply(p: int) -> int:
        return ms + sum(q for a, q in asks.items() if a <= p)

    prices = set(bids) | set(asks)
    if not prices:
        return (ref, min(mb, ms), mb - ms) if mb and ms and ref is not None else (None, 0, 0)
    hi = max(prices) if mb else max(bids, default=None)
    lo = min(prices) if ms else min(asks, default=None)
    if hi is None or lo is None or lo > hi:
        return None, 0, 0
    cands = sorted({b for b in bids if b >= lo} | {a for a in asks if a <= hi})
    rows = [(p, min(demand(p), supply(p)), demand(p) - supply(p)) for p in cands]
    volume = max(r[1] for r in rows)
    if not volume:
        return None, 0, 0
    tied = [r for r in rows if r[1] == volume]
    least = min(abs(r[2]) for r in tied)
    tied = [r for r in tied if abs(r[2]) == least]
    if least and all(r[2] > 0 for r in tied):
        return tied[-1][0], volume, tied[-1][2]
    if least and all(r[2] < 0 for r in tied):
        return tied[0][0], volume, tied[0][2]
    low, high = tied[0][0], tied[-1][0]
    if ref is None:
        price = (low + high) // 2
        price -= (price - low) % book_.tick
    else:
        price = low if ref < low else high if ref > high else ref
    for r in tied:
        if r[0] == price:
            return price, volume, r[2]
    return price, min(demand(price), supply(price)), demand(price) - supply(price)


@st.composite
def call_sessions(draw: st.DrawFn) -> tuple[int, list[Any]]:
    """A tick and a list of steps: new orders, cancels, modifies, phase changes and
    snapshot round trips (``"restore"``), mostly in the call phase."""
    tick = draw(st.sampled_from([1, 10]))
    wide = draw(st.booleans())
    prices = st.integers(90, 110) if wide else st.integers(97, 103)
    steps: list[Any] = []
    oid = 0
    for _ in range(draw(st.integers(1, 60))):
        kind = draw(st.integers(0, 19))
        if kind < 12 or not oid:
            oid += 1
            market = draw(st.integers(0, 7)) == 0
            steps.append(NewOrder(
                oid, draw(st.sampled_from("ABC")), SYM, draw(st.sampled_from([BUY, SELL])),
                draw(st.integers(1, 20)), price=None if market else draw(prices) * 10,
                order_type=OrderType.MARKET if market else OrderType.LIMIT,
                tif=TimeInForce.GTC if market else draw(st.sampled_from(list(TimeInForce)))))
        elif kind < 15:
            steps.append(CancelOrder(draw(st.integers(1, oid))))
        elif kind < 18:
            price = draw(st.none() | prices.map(lambda k: k * 10))
            qty = draw(st.none() | st.integers(1, 20)) if price is not None else draw(st.integers(1, 20))
            steps.append(ModifyOrder(draw(st.integers(1, oid)), price=price, qty=qty))
        elif kind == 18:
            phase = draw(st.sampled_from([Phase.CALL, Phase.CALL, Phase.HALTED, Phase.CONTINUOUS]))
            steps.append(SetPhase(SYM, phase, draw(st.none() | prices.map(lambda k: k * 10))))
        else:
            steps.append("restore")
    return tick, steps


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call_sessions(), st.none() | st.sampled_from([990, 1000, 1010]))
def test_indicative_matches_the_plain_computation(session: tuple[int, list[Any]],
                                                  reference: int | None) -> None:
    """Every ``indicative`` event, and the price choice asked at any time, equal the old
    computation on the book as it stands."""
    tick, steps = session
    eng = Engine()
    eng.apply(ListInstrument(SYM, UnitType.JPA, tick=tick, phase=Phase.CALL, reference=reference))
    for step in steps:
        if step == "restore":
            eng = Engine.from_state(eng.export_state())
            continue
        for event in eng.apply(step):
            if isinstance(event, Indicative):
                price, volume, surplus = slow_auction_price(eng.book(SYM))
                side = BUY if surplus > 0 else SELL if surplus < 0 else None
                assert event == Indicative(event.seq, SYM, price, volume, abs(surplus), side)
        assert eng.indicative(SYM) == slow_auction_price(eng.book(SYM))
        eng.check()


@pytest.mark.parametrize("reference", [None, 1000, 995])
def test_indicative_between_two_tied_prices(make_engine: MakeEngine, reference: int | None) -> None:
    # bids 1010x5, 990x2; asks 990x5, 1010x2: tied at 990 (+2) and 1010 (-2), so the price is
    # the reference (or the middle, 1000), where D = S = 5 - not the row at 990 (D 7, S 5)
    eng = in_call(make_engine, reference=reference)
    for cmd in (order(1, BUY, 5, 1010), order(2, BUY, 2, 990),
                order(3, SELL, 5, 990)):
        eng.apply(cmd)
    event = eng.apply(order(4, SELL, 2, 1010))[-1]
    price = 1000 if reference is None else reference
    assert event == Indicative(event.seq, SYM, price, 5, 0, None)
    assert eng.indicative(SYM) == (price, 5, 0) == slow_auction_price(eng.book(SYM))
