"""Property tests of the venue's holds: random sessions against a MemoryRegistry.

A session issues units and deposits cash to five accounts, then sends random orders (limit
orders of every time in force and self-trade mode, market sells, market buys with a cap,
post-only orders), cancels, modifies, phase switches and expiries over two instruments:
``CONT`` (JPA, always continuous) and ``AUCT`` (EUA, switching between call and
continuous). Units are issued for 2020 and 2021, and an expiry of 2020 (or of 2019, which
expires nothing) cancels the sells it leaves uncovered. With ``lag=0`` settlement is
immediate, so after every command each open order's hold is its open need (a sell: its
open quantity; a limit buy: its limit times its open quantity) and there is no other hold.
Units and cash are conserved (but for the units an expiry destroys), nothing is negative,
and cancelling every open order at the end leaves no hold.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from unittest.mock import patch

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from carbonbook import (
    CancelOrder,
    Command,
    ListInstrument,
    ModifyOrder,
    NewOrder,
    OrderType,
    Phase,
    SelfTradePrevention,
    Side,
    TimeInForce,
    UnitType,
)
from carbonbook.commands import Deposit, Expire, Issue, OpenAccount, OpenScheme, SetCap, SetPhase
from carbonbook.core.book import Order
from carbonbook.events import Cancelled, Event, Indicative, Recorded, Rejected
from carbonbook.registry import MemoryRegistry
from carbonbook.venue import Venue
from carbonbook.venue import venue as venue_module

CONT, AUCT = "CONT", "AUCT"
UNIT = {CONT: UnitType.JPA, AUCT: UnitType.EUA}
ACCOUNTS = ("a0", "a1", "a2", "a3", "a4")
CURRENCY = "JPY"
MAX_ID = 60

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SETUP: list[Command] = [
    OpenScheme(name="S", allowances=frozenset(UNIT.values())),
    SetCap(scheme="S", period=2020, cap=10**9),
    SetCap(scheme="S", period=2021, cap=10**9),
    *[OpenAccount(account=a) for a in ACCOUNTS],
    ListInstrument(CONT, UnitType.JPA),
    ListInstrument(AUCT, UnitType.EUA, phase=Phase.CALL),
]

_ACCOUNT = st.sampled_from(ACCOUNTS)
_SYMBOL = st.sampled_from((CONT, CONT, AUCT))
_PRICE = st.integers(98, 102)
_QTY = st.integers(1, 20)
_TIF = st.sampled_from([TimeInForce.GTC] * 4 + [TimeInForce.IOC, TimeInForce.FOK])
_STP = st.sampled_from(tuple(SelfTradePrevention))
_UNITS_ISSUED = st.sampled_from((0, 5, 30, 80, 150))
_LATER_ISSUED = st.sampled_from((0, 0, 10, 40))  # of 2021, which outlive an expiry of 2020
_CASH = st.sampled_from((0, 1_000, 10_000, 40_000))


@st.composite
def funding(draw: st.DrawFn) -> list[Command]:
    out: list[Command] = []
    for a in ACCOUNTS:
        for unit in UNIT.values():
            for period, issued in ((2020, _UNITS_ISSUED), (2021, _LATER_ISSUED)):
                qty = draw(issued)
                if qty:
                    out.append(Issue(account=a, unit=unit, qty=qty, scheme="S", period=period))
        amount = draw(_CASH)
        if amount:
            out.append(Deposit(account=a, currency=CURRENCY, amount=amount))
    return out


@st.composite
def order_commands(draw: st.DrawFn) -> list[Command]:
    out: list[Command] = []
    next_id = 1
    for _ in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from(["limit"] * 8 + ["market_sell", "market_buy", "cancel", "cancel",
                                                     "modify", "modify", "modify", "phase", "expire"]))
        if kind == "cancel":
            out.append(CancelOrder(draw(st.integers(max(1, next_id - 6), next_id))))
        elif kind == "modify":
            price = draw(st.none() | _PRICE)
            qty = draw(st.none() | _QTY) if price is not None else draw(_QTY)
            out.append(ModifyOrder(draw(st.integers(max(1, next_id - 6), next_id)), price=price, qty=qty))
        elif kind == "phase":
            out.append(SetPhase(symbol=AUCT, phase=draw(st.sampled_from((Phase.CALL, Phase.CONTINUOUS)))))
        elif kind == "expire":
            out.append(Expire(unit=UNIT[draw(_SYMBOL)], period=draw(st.sampled_from((2019, 2020, 2020)))))
        elif next_id <= MAX_ID:
            account, symbol, qty = draw(_ACCOUNT), draw(_SYMBOL), draw(_QTY)
            if kind == "limit":
                side = draw(st.sampled_from(tuple(Side)))
                tif = draw(_TIF)
                post_only = tif is TimeInForce.GTC and draw(st.integers(0, 5)) == 0
                out.append(NewOrder(next_id, account, symbol, side, qty, price=draw(_PRICE), tif=tif,
                                    post_only=post_only, stp=draw(_STP)))
            elif kind == "market_sell":
                out.append(NewOrder(next_id, account, symbol, Side.SELL, qty, order_type=OrderType.MARKET,
                                    stp=draw(_STP)))
            else:
                out.append(NewOrder(next_id, account, symbol, Side.BUY, qty, order_type=OrderType.MARKET,
                                    cap=draw(st.integers(1, 3000)), stp=draw(_STP)))
            next_id += 1
    return out


@dataclass
class Totals:
    units: dict[UnitType, int]
    cash: int


def totals(reg: MemoryRegistry) -> Totals:
    return Totals({u: sum(reg.holding(a, u) for a in ACCOUNTS) for u in UNIT.values()},
                  sum(reg.balance(a, CURRENCY) for a in ACCOUNTS))


def open_orders(venue: Venue) -> dict[int, Order]:
    return {oid: o for oid in range(MAX_ID + 1) if (o := venue.engine.open_order(oid)) is not None}


def need(venue: Venue, order: Order) -> tuple[str, str, int]:
    """The asset an open order must hold and how much of it."""
    if order.side is Side.SELL:
        return order.account, str(venue.book(order.symbol).unit), order.qty
    assert order.price, "a market buy never rests (it needs a cap, which a call refuses)"
    return order.account, CURRENCY, order.price * order.qty


def check(venue: Venue, reg: MemoryRegistry, issued: Totals, exact: bool) -> None:
    """Every invariant after a command. ``exact``: each hold is exactly its order's open need
    and there is no other hold; otherwise only that no open order holds less than it needs."""
    reg.check()
    venue.check()
    held: dict[tuple[str, str], int] = defaultdict(int)
    orders = open_orders(venue)
    for oid in range(MAX_ID + 1):
        hold = reg.hold(oid)
        order = orders.get(oid)
        if order is None:
            if exact:
                assert hold == 0, f"hold {oid} of {hold} left after its order ended"
            continue
        account, asset, amount = need(venue, order)
        if exact or asset != CURRENCY:
            assert hold == amount, f"order {oid} holds {hold}, needs {amount}"
        else:
            assert hold >= amount, f"order {oid} holds {hold}, needs {amount}"
        held[account, asset] += hold
    for a in ACCOUNTS:
        for unit in UNIT.values():
            holding, available = reg.holding(a, unit), reg.available(a, unit)
            assert 0 <= available <= holding
            assert held[a, str(unit)] == holding - available
        balance, free = reg.balance(a, CURRENCY), reg.available_cash(a, CURRENCY)
        assert 0 <= free <= balance
        if exact:
            assert held[a, CURRENCY] == balance - free
        else:
            assert held[a, CURRENCY] <= balance - free
    now = totals(reg)
    assert now == issued, "units or cash created or destroyed by trading"


def expired(cmd: Expire, events: list[Event], sells: dict[int, tuple[str, int]], reg: MemoryRegistry,
            issued: Totals) -> None:
    """An expiry's events: ``recorded``, then, by order id, a ``units_expired`` cancellation of
    the whole open quantity of sells of its unit type (``sells``: account and open quantity
    before), each of an account whose units left no longer cover its sells. Takes the expired
    units off ``issued``."""
    recorded, *cancelled = [e for e in events if not isinstance(e, Indicative)]
    assert isinstance(recorded, Recorded) and recorded.command == "expire", recorded
    issued.units[cmd.unit] -= int(recorded.detail.split()[0])  # "N units expired"
    ids = []
    for e in cancelled:
        assert isinstance(e, Cancelled) and e.reason == "units_expired" and e.id in sells, e
        account, qty = sells[e.id]
        assert e.qty == qty
        assert reg.holding(account, cmd.unit) < sum(q for a, q in sells.values() if a == account)
        ids.append(e.id)
    assert ids == sorted(ids)


def run_session(funds: list[Command], orders: list[Command], exact: bool) -> None:
    reg = MemoryRegistry()
    venue = Venue(reg, currency=CURRENCY)
    events = venue.apply_all([*SETUP, *funds])
    assert not [e for e in events if isinstance(e, Rejected)]
    issued = totals(reg)
    for cmd in orders:
        note(repr(cmd))
        sells = {oid: (o.account, o.qty) for oid, o in open_orders(venue).items()
                 if o.side is Side.SELL and isinstance(cmd, Expire) and venue.book(o.symbol).unit == cmd.unit}
        events = venue.apply(cmd)
        for e in events:
            note(f"  {e!r}")
            assert e.__struct_config__.tag != "settlement_failure", e
        if isinstance(cmd, Expire):
            expired(cmd, events, sells, reg, issued)
        check(venue, reg, issued, exact)
    venue.apply(SetPhase(symbol=AUCT, phase=Phase.CONTINUOUS))  # uncross what waits in a call
    check(venue, reg, issued, exact)
    for oid in sorted(open_orders(venue)):
        venue.apply(CancelOrder(oid))
        check(venue, reg, issued, exact)
    assert not open_orders(venue)
    units_held = sum(reg.holding(a, u) - reg.available(a, u) for a in ACCOUNTS for u in UNIT.values())
    assert units_held == 0
    if exact:
        assert all(reg.hold(oid) == 0 for oid in range(MAX_ID + 1))
        assert all(reg.balance(a, CURRENCY) == reg.available_cash(a, CURRENCY) for a in ACCOUNTS)


@SETTINGS
@given(funds=funding(), orders=order_commands())
def test_holds_conservation_and_no_overspending(funds: list[Command], orders: list[Command]) -> None:
    """Holds cover every open order; no sell holds more than it needs; units are held by open
    sells only; nothing negative; units and cash conserved; no unit hold left at the end."""
    run_session(funds, orders, exact=False)


# A buy filled across two makers at better prices than its limit: see test_venue.py.
_TWO_MAKERS_FUNDS: list[Command] = [
    Issue(account="a0", unit=UnitType.JPA, qty=10, scheme="S", period=2020),
    Issue(account="a1", unit=UnitType.JPA, qty=10, scheme="S", period=2020),
    Deposit(account="a2", currency=CURRENCY, amount=10_000),
]
_TWO_MAKERS_ORDERS: list[Command] = [
    NewOrder(1, "a0", CONT, Side.SELL, 5, price=96),
    NewOrder(2, "a1", CONT, Side.SELL, 5, price=97),
    NewOrder(3, "a2", CONT, Side.BUY, 10, price=100),
]


@SETTINGS
@example(funds=_TWO_MAKERS_FUNDS, orders=_TWO_MAKERS_ORDERS)
@given(funds=funding(), orders=order_commands())
def test_each_hold_is_exactly_its_open_need(funds: list[Command], orders: list[Command]) -> None:
    """After every command each open order's hold equals its open need and nothing else is
    held; at the end no hold is left."""
    run_session(funds, orders, exact=True)


def gated_session(funds: list[Command], orders: list[Command], gates: dict[type, type]) -> tuple[bytes, bytes]:
    """The events and the registry (journal, blocks, holds, cash) of a session on a venue made
    with ``gates`` as its compiled gates (``{}``: the reference hold gate and stage): the
    first half of the orders one ``apply`` each, the rest in one ``apply_all``, then the call
    book uncrossed and every open order cancelled."""
    reg = MemoryRegistry()
    with patch.object(venue_module, "_GATES", gates):
        venue = Venue(reg, currency=CURRENCY)
    half = len(orders) // 2
    events = venue.apply_all([*SETUP, *funds])
    for cmd in orders[:half]:
        events += venue.apply(cmd)
    events += venue.apply_all(orders[half:])
    events += venue.apply(SetPhase(symbol=AUCT, phase=Phase.CONTINUOUS))
    events += venue.apply_all([CancelOrder(oid) for oid in sorted(open_orders(venue))])
    state = [list(reg.journal()), reg.blocks(), [reg.hold(oid) for oid in range(MAX_ID + 1)],
             [reg.balance(a, CURRENCY) for a in ACCOUNTS]]
    return msgspec.json.encode(events), msgspec.json.encode(state)


@pytest.mark.skipif(type(MemoryRegistry()._ledger) not in venue_module._GATES,
                    reason="no compiled gate: the pure core, or the compiled parts not built")
@SETTINGS
@given(funds=funding(), orders=order_commands())
def test_the_compiled_gate_gives_the_reference_venue(funds: list[Command], orders: list[Command]) -> None:
    """The compiled gate (carbonbook._cvenue.Gate: holds, releases and settlement in C, every
    other case handed to the reference parts) gives the reference venue's events and registry
    byte for byte, refusals and settlement failures included."""
    assert gated_session(funds, orders, venue_module._GATES) == gated_session(funds, orders, {})
