"""The venue (:mod:`carbonbook.venue`): an engine with a registry behind it.

Worked examples with the exact events: pre-trade holds (taken on acceptance, released as
orders end, consumed by settlement), refusals and their precedence, registry commands
through the order log, settlement now or T+N, replay into the same registry (memory,
SQLite and PostgreSQL), and ``carbonbook replay --registry``.

Every scenario starts from ``SETUP`` (events 1..11): scheme JVETS (JPA allowances, JCR
credits up to 10 %), accounts tepco and marubeni (operators of JVETS), mitsui (a plain
holding account) and retired (a retirement account); tepco holds 1000 JPA, mitsui 500 JPA;
marubeni has 1,000,000 JPY, mitsui 500,000 JPY; ``SYM`` trades JPA in JPY.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
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
    OrderType,
    Phase,
    Rejected,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
    UnitType,
)
from carbonbook._types import NAME_MAX
from carbonbook.codec import command_batches, json_encoder
from carbonbook.commands import (
    AddAdministrator,
    AddRepresentative,
    Allocate,
    ApproveTransfer,
    ApproveTrusted,
    BusinessDay,
    CancelTransfer,
    CarryOver,
    CorrectEmissions,
    Deposit,
    Expire,
    Issue,
    OpenAccount,
    OpenScheme,
    ProposeTrusted,
    RecordEmissions,
    RemoveTrusted,
    Retire,
    ReturnAllocation,
    SetAccountStatus,
    SetCap,
    SetControls,
    SetDeadline,
    SetPhase,
    Surrender,
    Transfer,
    TrueUp,
)
from carbonbook.errors import RegistryUnavailable
from carbonbook.events import Indicative, PhaseChanged, Recorded, SettlementFailure, TradeSettled, Uncrossed
from carbonbook.operations.cli import EXIT_IO, EXIT_OK, EXIT_USAGE, main
from carbonbook.registry import MemoryRegistry, OffsetLimit, Registry, SQLiteRegistry
from carbonbook.venue import LogMismatch, Venue, VenueFailed, VenueState, checkpoint
from carbonbook.venue.checkpoint import Checkpoint
from conftest import RegistryFactory, Reopen

SYM = "JPA-2010"
JPA = UnitType.JPA
JCR = UnitType.JCR
BUY = Side.BUY
SELL = Side.SELL
MARKET = OrderType.MARKET
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
SELF_TRADE = CancelReason.SELF_TRADE
ACCOUNTS = ("tepco", "marubeni", "mitsui", "retired")
UNITS = (JPA, JCR)
MAX_HOLD_ID = 60  # order ids in these tests stay below this

SETUP: list[Command] = [
    OpenScheme(name="JVETS", allowances=frozenset({JPA}), credits=frozenset({JCR}), offset_percent=10),
    SetCap(scheme="JVETS", period=2010, cap=10_000),
    OpenAccount(account="tepco", scheme="JVETS"),
    OpenAccount(account="marubeni", scheme="JVETS"),
    OpenAccount(account="mitsui"),
    OpenAccount(account="retired", kind="retirement"),
    Issue(account="tepco", unit=JPA, qty=1000, scheme="JVETS", period=2010),
    Issue(account="mitsui", unit=JPA, qty=500, scheme="JVETS", period=2010),
    Deposit(account="marubeni", currency="JPY", amount=1_000_000),
    Deposit(account="mitsui", currency="JPY", amount=500_000),
    ListInstrument(SYM, JPA),
]
S0 = len(SETUP) + 1  # the seq of a scenario's first event
TX0 = 10  # the last txid of SETUP (the instrument needs none)


def make_venue(reg: Registry | None = None, *, lag: int = 0) -> Venue:
    """A venue on ``reg`` (a new MemoryRegistry by default) with SETUP applied."""
    venue = Venue(MemoryRegistry() if reg is None else reg, lag=lag)
    events = venue.apply_all(SETUP)
    assert [e.seq for e in events] == list(range(1, S0))
    assert not [e for e in events if isinstance(e, Rejected)]
    return venue


def fingerprint(reg: Registry) -> Any:
    """Everything observable of ``reg`` but its order-log position and recorded outcomes."""
    return (
        list(reg.journal()),
        [(b.origin, b.unit, b.start, b.end, b.holder, b.state, b.period) for b in reg.blocks()],
        [(a, u, reg.holding(a, u), reg.available(a, u)) for a in ACCOUNTS for u in UNITS],
        [(a, reg.balance(a, "JPY"), reg.available_cash(a, "JPY")) for a in ACCOUNTS],
        [reg.hold(i) for i in range(MAX_HOLD_ID)],
        [reg.account(a) for a in ACCOUNTS],
    )


def holds(reg: Registry) -> dict[int, int]:
    """The holds left, by id."""
    return {i: reg.hold(i) for i in range(MAX_HOLD_ID) if reg.hold(i)}


def no_hold_rows(reg: Registry) -> bool:
    """No hold is stored at all (the registry's cache of its hold table is empty)."""
    table: dict[int, Any] = getattr(reg, "_holds")  # noqa: B009 - a private table, read on purpose
    return table == {}


def verified(venue: Venue) -> None:
    venue.check()
    venue.registry.check()


def cash(account: str) -> tuple[str, str]:
    return account, "JPY"


def sell(oid: int, qty: int, price: int | None, account: str = "tepco", **kw: Any) -> NewOrder:
    return NewOrder(oid, account, SYM, SELL, qty, price=price, **kw)


def buy(oid: int, qty: int, price: int | None, account: str = "marubeni", **kw: Any) -> NewOrder:
    return NewOrder(oid, account, SYM, BUY, qty, price=price, **kw)


def trade(seq: int, price: int, qty: int, maker: int, taker: int, buy_id: int, sell_id: int,
          buyer: str = "marubeni", seller: str = "tepco", symbol: str = SYM) -> Trade:
    return Trade(seq, symbol, price, qty, maker, taker, buy_id, sell_id, buyer, seller)


def units_short(seq: int, oid: int, account: str, free: int, qty: int) -> Rejected:
    return Rejected(seq, oid, "insufficient_units",
                    f"account {account!r} has {free} unreserved JPA; {qty} needed")


def funds_short(seq: int, oid: int, account: str, free: int, amount: int) -> Rejected:
    return Rejected(seq, oid, "insufficient_funds",
                    f"account {account!r} has {free} unreserved JPY; {amount} needed")


def settled_txid(reg: Registry, trade_id: int) -> int:
    record = reg.settlement(trade_id)
    assert record is not None and record.__struct_config__.tag == "settled"
    return record.txid  # type: ignore[union-attr]


# -- sells need unreserved units -------------------------------------------------------


def test_sell_accepted_only_with_enough_unreserved_units() -> None:
    v = make_venue()
    reg = v.registry
    before, book = fingerprint(reg), v.snapshot()
    assert v.apply(sell(1, 1001, 1500)) == [units_short(S0, 1, "tepco", 1000, 1001)]
    assert fingerprint(reg) == before and v.snapshot() == book and v.order(1) is None
    assert v.apply(sell(2, 600, 1500)) == [Accepted(S0 + 1, 2, SYM)]
    assert reg.hold(2) == 600
    assert (reg.holding("tepco", JPA), reg.available("tepco", JPA)) == (1000, 400)
    before, book = fingerprint(reg), v.snapshot()
    assert v.apply(sell(3, 401, 1500)) == [units_short(S0 + 2, 3, "tepco", 400, 401)]
    assert fingerprint(reg) == before and v.snapshot() == book
    assert v.apply(sell(4, 400, 1600)) == [Accepted(S0 + 3, 4, SYM)]
    assert reg.available("tepco", JPA) == 0 and holds(reg) == {2: 600, 4: 400}
    verified(v)


def test_units_held_by_a_sell_cannot_be_transferred() -> None:
    v = make_venue()
    v.apply(sell(1, 900, 1500))
    [rej] = v.apply(Transfer(sender="tepco", receiver="mitsui", unit=JPA, qty=101))
    assert isinstance(rej, Rejected) and rej.reason == "insufficient_units" and rej.id is None
    [ok] = v.apply(Transfer(sender="tepco", receiver="mitsui", unit=JPA, qty=100))
    assert isinstance(ok, Recorded) and ok.command == "transfer"
    assert v.registry.available("tepco", JPA) == 0 and v.registry.hold(1) == 900
    verified(v)


# -- buys need unreserved cash -----------------------------------------------------------


def test_buy_needs_price_times_qty_of_unreserved_cash() -> None:
    v = make_venue()
    reg = v.registry
    before, book = fingerprint(reg), v.snapshot()
    assert v.apply(buy(1, 1000, 1001)) == [funds_short(S0, 1, "marubeni", 1_000_000, 1_001_000)]
    assert fingerprint(reg) == before and v.snapshot() == book
    assert v.apply(buy(2, 500, 1500)) == [Accepted(S0 + 1, 2, SYM)]
    assert reg.hold(2) == 750_000
    assert (reg.balance("marubeni", "JPY"), reg.available_cash("marubeni", "JPY")) == (1_000_000, 250_000)
    before = fingerprint(reg)
    assert v.apply(buy(3, 251, 1000)) == [funds_short(S0 + 2, 3, "marubeni", 250_000, 251_000)]
    assert fingerprint(reg) == before
    assert v.apply(buy(4, 250, 1000)) == [Accepted(S0 + 3, 4, SYM)]
    assert reg.available_cash("marubeni", "JPY") == 0
    verified(v)


def test_a_hold_past_2_63_is_insufficient_funds() -> None:
    v = make_venue()
    before = fingerprint(v.registry)
    assert v.apply(buy(1, 2**40, 2**40)) == [Rejected(
        S0, 1, "insufficient_funds", "the order would hold 1208925819614629174706176, past 2**63 - 1")]
    assert fingerprint(v.registry) == before
    verified(v)


def test_market_buy_without_a_cap_is_refused() -> None:
    v = make_venue()
    v.apply(sell(1, 10, 1500))
    before, book = fingerprint(v.registry), v.snapshot()
    assert v.apply(buy(2, 10, None, order_type=MARKET)) == [Rejected(
        S0 + 1, 2, "insufficient_funds", "a market buy must state a cap (the most it may spend)")]
    assert fingerprint(v.registry) == before and v.snapshot() == book
    verified(v)


def test_market_buy_with_a_cap_trades_what_it_pays_for_and_releases_the_rest() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    v.apply(sell(2, 10, 1600))
    # 10 at 1500 cost 15,000; the 5,000 left pays for 3 at 1600 (4,800); 200 goes back
    events = v.apply(buy(3, 30, None, order_type=MARKET, cap=20_000))
    s = S0 + 2
    assert events == [
        Accepted(s, 3, SYM),
        trade(s + 1, 1500, 10, 1, 3, 3, 1),
        trade(s + 2, 1600, 3, 2, 3, 3, 2),
        Cancelled(s + 3, 3, 17, CancelReason.MARKET),
        TradeSettled(s + 4, s + 1, settled_txid(reg, s + 1)),
        TradeSettled(s + 5, s + 2, settled_txid(reg, s + 2)),
    ]
    assert reg.hold(3) == 0 and holds(reg) == {2: 7}
    assert reg.balance("marubeni", "JPY") == reg.available_cash("marubeni", "JPY") == 1_000_000 - 19_800
    assert reg.holding("marubeni", JPA) == 13 and reg.balance("tepco", "JPY") == 19_800
    verified(v)


def test_market_buy_cap_must_be_covered_by_cash() -> None:
    v = make_venue()
    v.apply(sell(1, 10, 1500))
    assert v.apply(buy(2, 10, None, account="mitsui", order_type=MARKET, cap=500_001)) == [
        funds_short(S0 + 1, 2, "mitsui", 500_000, 500_001)]
    verified(v)


def test_market_buy_hold_is_the_cap_until_it_is_released() -> None:
    """Seen from inside the transaction: the reserve of the cap precedes the trades."""
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    start = max(e.txid for e in reg.journal())
    v.apply(buy(2, 10, None, order_type=MARKET, cap=100_000))
    kinds = [(e.kind, e.account, e.amount, e.ref) for e in reg.journal(start)]
    assert kinds[0] == ("reserve", "marubeni", 100_000, 2)
    assert ("release", "marubeni", 85_000, 2) in kinds
    assert reg.hold(2) == 0 and no_hold_rows(reg)
    verified(v)


def test_market_sell_holds_its_qty_and_releases_the_remainder() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(buy(1, 10, 1500))
    s = S0 + 1
    assert v.apply(sell(2, 25, None, order_type=MARKET)) == [
        Accepted(s, 2, SYM),
        trade(s + 1, 1500, 10, 1, 2, 1, 2),
        Cancelled(s + 2, 2, 15, CancelReason.MARKET),
        TradeSettled(s + 3, s + 1, settled_txid(reg, s + 1)),
    ]
    assert reg.available("tepco", JPA) == reg.holding("tepco", JPA) == 990 and no_hold_rows(reg)
    verified(v)


# -- holds are released as orders end ------------------------------------------------------


def test_user_cancel_releases_the_hold() -> None:
    v = make_venue()
    reg = v.registry
    v.apply_all([sell(1, 300, 1500), buy(2, 100, 1400)])
    assert holds(reg) == {1: 300, 2: 140_000}
    assert v.apply(CancelOrder(1)) == [Cancelled(S0 + 2, 1, 300, CancelReason.USER)]
    assert holds(reg) == {2: 140_000} and reg.available("tepco", JPA) == 1000
    assert v.apply(CancelOrder(2)) == [Cancelled(S0 + 3, 2, 100, CancelReason.USER)]
    assert reg.available_cash("marubeni", "JPY") == 1_000_000 and no_hold_rows(reg)
    verified(v)


def test_partly_filled_sell_cancel_releases_only_its_open_remainder() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 300, 1500))
    v.apply(buy(2, 100, 1500))
    assert reg.hold(1) == 200 and reg.holding("tepco", JPA) == 900
    v.apply(CancelOrder(1))
    assert no_hold_rows(reg) and reg.available("tepco", JPA) == 900
    verified(v)


@pytest.mark.parametrize("tif", [IOC, FOK])
def test_ioc_and_fok_remainders_release_their_holds(tif: TimeInForce) -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    s = S0 + 1
    events = v.apply(buy(2, 30, 1500, tif=tif))
    if tif is IOC:
        assert events == [Accepted(s, 2, SYM), trade(s + 1, 1500, 10, 1, 2, 2, 1),
                          Cancelled(s + 2, 2, 20, CancelReason.IOC),
                          TradeSettled(s + 3, s + 1, settled_txid(reg, s + 1))]
        assert reg.available_cash("marubeni", "JPY") == 1_000_000 - 15_000
    else:
        assert events == [Accepted(s, 2, SYM), Cancelled(s + 1, 2, 30, CancelReason.FOK)]
        assert reg.available_cash("marubeni", "JPY") == 1_000_000
    assert reg.hold(2) == 0
    # and on the sell side
    events = v.apply(sell(3, 50, 1500, account="mitsui", tif=tif))
    s = v.next_seq - len(events)
    assert events[-1] == Cancelled(s + 1, 3, 50, CancelReason(str(tif)))
    assert reg.hold(3) == 0 and reg.available("mitsui", JPA) == 500
    verified(v)


def test_self_trade_cancel_resting_releases_the_resting_hold() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500, account="mitsui"))
    s = S0 + 1
    assert v.apply(buy(2, 10, 1500, account="mitsui", stp=SelfTradePrevention.CANCEL_RESTING)) == [
        Accepted(s, 2, SYM), Cancelled(s + 1, 1, 10, SELF_TRADE)]
    assert holds(reg) == {2: 15_000} and reg.available("mitsui", JPA) == 500
    verified(v)


def test_self_trade_cancel_both_releases_both_holds() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500, account="mitsui"))
    s = S0 + 1
    assert v.apply(buy(2, 10, 1500, account="mitsui", stp=SelfTradePrevention.CANCEL_BOTH)) == [
        Accepted(s, 2, SYM), Cancelled(s + 1, 1, 10, SELF_TRADE), Cancelled(s + 2, 2, 10, SELF_TRADE)]
    assert no_hold_rows(reg)
    assert reg.available("mitsui", JPA) == 500 and reg.available_cash("mitsui", "JPY") == 500_000
    verified(v)


def test_self_trade_cancel_incoming_releases_the_incoming_hold() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500, account="mitsui"))
    v.apply(sell(2, 5, 1500))
    s = S0 + 2
    # mitsui's own ask is first at 1500: the incoming buy stops there, before tepco's
    assert v.apply(buy(3, 10, 1500, account="mitsui")) == [
        Accepted(s, 3, SYM), Cancelled(s + 1, 3, 10, SELF_TRADE)]
    assert holds(reg) == {1: 10, 2: 5}
    assert reg.available_cash("mitsui", "JPY") == 500_000
    verified(v)


def test_price_improvement_is_released_at_once() -> None:
    v = make_venue(lag=2)  # nothing settles: what is released is the improvement alone
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    s = S0 + 1
    assert v.apply(buy(2, 20, 1600)) == [Accepted(s, 2, SYM), trade(s + 1, 1500, 10, 1, 2, 2, 1)]
    # 32,000 held; 100 per tonne of the 10 traded at 1500 given back at once
    assert reg.hold(2) == 31_000
    assert reg.available_cash("marubeni", "JPY") == 1_000_000 - 31_000
    assert reg.hold(1) == 10  # the seller's units wait for settlement
    verified(v)


def test_price_improvement_with_immediate_settlement_leaves_the_open_need() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    v.apply(buy(2, 20, 1600))
    assert reg.hold(2) == 1600 * 10 and holds(reg) == {2: 16_000}
    assert reg.balance("marubeni", "JPY") == 1_000_000 - 15_000
    verified(v)


def test_full_fill_and_settlement_leave_no_hold() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    s = S0 + 1
    events = v.apply(buy(2, 10, 1600))
    txid = settled_txid(reg, s + 1)
    assert events == [Accepted(s, 2, SYM), trade(s + 1, 1500, 10, 1, 2, 2, 1), TradeSettled(s + 2, s + 1, txid)]
    assert holds(reg) == {} and no_hold_rows(reg)
    assert (reg.holding("marubeni", JPA), reg.balance("marubeni", "JPY")) == (10, 985_000)
    assert (reg.holding("tepco", JPA), reg.balance("tepco", "JPY")) == (990, 15_000)
    assert reg.available_cash("marubeni", "JPY") == 985_000 and reg.available("tepco", JPA) == 990
    verified(v)


def test_price_improvement_is_released_on_every_trade_of_a_filled_buy() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    v.apply(sell(2, 10, 1550, account="mitsui"))
    s = S0 + 2
    events = v.apply(buy(3, 20, 1600))
    assert events[:3] == [Accepted(s, 3, SYM), trade(s + 1, 1500, 10, 1, 3, 3, 1),
                          trade(s + 2, 1550, 10, 2, 3, 3, 2, seller="mitsui")]
    assert reg.balance("marubeni", "JPY") == 1_000_000 - 30_500
    # the order is filled and settled: nothing may stay held (got: 500, 50 per tonne of the
    # second trade)
    assert reg.hold(3) == 0 and no_hold_rows(reg)
    assert reg.available_cash("marubeni", "JPY") == 1_000_000 - 30_500


def test_price_improvement_of_a_modify_filling_across_two_makers() -> None:
    v = make_venue()
    reg = v.registry
    v.apply_all([sell(1, 10, 1500), sell(2, 10, 1550, account="mitsui"), buy(3, 20, 1400)])
    events = v.apply(ModifyOrder(3, price=1600))
    assert [e.__struct_config__.tag for e in events] == ["modified", "trade", "trade", "trade_settled",
                                                         "trade_settled"]
    assert reg.hold(3) == 0 and no_hold_rows(reg)


# -- modify ------------------------------------------------------------------------------


def test_modify_growing_a_buy_takes_more_or_is_refused() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(buy(1, 500, 1000))  # holds 500,000
    v.apply(buy(2, 100, 1000, account="mitsui"))
    before, book = fingerprint(reg), v.snapshot()
    s = S0 + 2
    assert v.apply(ModifyOrder(1, price=1000, qty=1001)) == [
        funds_short(s, 1, "marubeni", 1_000_000, 1_001_000)]
    assert fingerprint(reg) == before and v.snapshot() == book
    assert v.order(1) is not None and (v.order(1).price, v.order(1).qty) == (1000, 500)  # type: ignore[union-attr]
    assert v.apply(ModifyOrder(1, price=2001)) == [funds_short(s + 1, 1, "marubeni", 1_000_000, 1_000_500)]
    assert fingerprint(reg) == before and v.snapshot() == book and reg.hold(1) == 500_000
    assert v.apply(ModifyOrder(1, price=1900)) == [Modified(s + 2, 1, 1900, 500)]
    assert reg.hold(1) == 950_000 and reg.available_cash("marubeni", "JPY") == 50_000
    # the modified order lost priority but is alone at its price
    assert v.snapshot()[SYM]["bids"] == [[1900, 1, 500], [1000, 2, 100]]
    verified(v)


def test_modify_shrinking_a_buy_releases_the_difference() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(buy(1, 500, 1000))
    s = S0 + 1
    assert v.apply(ModifyOrder(1, qty=200)) == [Modified(s, 1, 1000, 200)]
    assert reg.hold(1) == 200_000 and reg.available_cash("marubeni", "JPY") == 800_000
    assert v.apply(ModifyOrder(1, price=900)) == [Modified(s + 1, 1, 900, 200)]
    assert reg.hold(1) == 180_000
    assert v.apply(ModifyOrder(1, price=1200, qty=100)) == [Modified(s + 2, 1, 1200, 100)]
    assert reg.hold(1) == 120_000 and holds(reg) == {1: 120_000}
    verified(v)


def test_modify_of_a_sell_grows_or_shrinks_its_units_hold() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 600, 1500))
    v.apply(sell(2, 300, 1500))
    s = S0 + 2
    before, book = fingerprint(reg), v.snapshot()
    assert v.apply(ModifyOrder(1, qty=701)) == [units_short(s, 1, "tepco", 100 + 600, 701)]
    assert fingerprint(reg) == before and v.snapshot() == book
    assert v.apply(ModifyOrder(1, qty=700)) == [Modified(s + 1, 1, 1500, 700)]
    assert reg.hold(1) == 700 and reg.available("tepco", JPA) == 0
    assert v.snapshot()[SYM]["asks"] == [[1500, 2, 300], [1500, 1, 700]]  # a higher qty loses priority
    assert v.apply(ModifyOrder(1, qty=100)) == [Modified(s + 2, 1, 1500, 100)]
    assert reg.hold(1) == 100 and reg.available("tepco", JPA) == 600
    assert v.apply(ModifyOrder(2, price=1600)) == [Modified(s + 3, 2, 1600, 300)]
    assert reg.hold(2) == 300  # a price change does not touch a sell's hold
    verified(v)


def test_modify_that_crosses_trades_and_settles_against_the_hold() -> None:
    v = make_venue()
    reg = v.registry
    v.apply_all([sell(1, 10, 1500), buy(2, 10, 1400)])
    s = S0 + 2
    events = v.apply(ModifyOrder(2, price=1500))
    assert events == [Modified(s, 2, 1500, 10), trade(s + 1, 1500, 10, 1, 2, 2, 1),
                      TradeSettled(s + 2, s + 1, settled_txid(reg, s + 1))]
    assert no_hold_rows(reg) and reg.balance("marubeni", "JPY") == 985_000
    verified(v)


def test_modify_of_a_partly_filled_buy_after_improvement() -> None:
    v = make_venue()
    reg = v.registry
    v.apply_all([sell(1, 10, 1500), buy(2, 30, 1600)])  # 20 open at 1600: 32,000 held
    assert reg.hold(2) == 32_000
    assert v.apply(ModifyOrder(2, qty=5)) == [Modified(S0 + 4, 2, 1600, 5)]
    assert reg.hold(2) == 8_000
    v.apply(CancelOrder(2))
    assert no_hold_rows(reg) and reg.available_cash("marubeni", "JPY") == 985_000
    verified(v)


# -- accounts ---------------------------------------------------------------------------


def test_orders_of_unknown_or_blocked_accounts_are_refused_with_the_registrys_code() -> None:
    v = make_venue()
    reg = v.registry
    before = fingerprint(reg)
    assert v.apply(buy(1, 10, 5, account="nobody")) == [
        Rejected(S0, 1, "unknown_account", "account 'nobody' does not exist")]
    assert v.apply(sell(2, 10, 5, account="nobody")) == [
        Rejected(S0 + 1, 2, "unknown_account", "account 'nobody' does not exist")]
    assert fingerprint(reg) == before
    assert v.apply(SetAccountStatus(account="tepco", status="blocked")) == [
        Recorded(S0 + 2, "account_status", TX0 + 1)]
    before = fingerprint(reg)
    assert v.apply(sell(3, 10, 1500)) == [
        Rejected(S0 + 3, 3, "account_blocked", "reserving account 'tepco' is blocked")]
    assert v.apply(SetAccountStatus(account="tepco", status="closed")) == [
        Recorded(S0 + 4, "account_status", TX0 + 2)]
    [closed] = v.apply(buy(4, 1, 5, account="tepco"))
    assert isinstance(closed, Rejected) and closed.reason == "account_closed" and closed.id == 4
    assert v.snapshot() == {SYM: {"bids": [], "asks": []}}
    assert [e.txid for e in reg.journal(before[0][-1].txid)] == [TX0 + 2]
    verified(v)


def test_an_account_that_held_before_is_checked_again_at_each_hold() -> None:
    # the compiled ledger remembers the accounts it held for (``Ledger._known``): a change of
    # status since still decides, whichever str object names the account
    v = make_venue()
    mitsui = "".join(["mit", "sui"])
    assert [e.__struct_config__.tag for e in v.apply_all([sell(1, 10, 1500, account="mitsui"),
                                                          sell(2, 10, 1500, account=mitsui),
                                                          buy(3, 10, 5, account=mitsui)])] == ["accepted"] * 3
    v.apply(SetAccountStatus(account="mitsui", status="blocked"))
    for cmd in (sell(4, 10, 1500, account="mitsui"), buy(5, 10, 5, account=mitsui)):
        [rej] = v.apply(cmd)
        assert isinstance(rej, Rejected) and rej.reason == "account_blocked"
    v.apply(SetAccountStatus(account=mitsui, status="open"))
    assert [e.__struct_config__.tag for e in v.apply(buy(6, 10, 5, account="mitsui"))] == ["accepted"]
    assert holds(v.registry) == {1: 10, 2: 10, 3: 50, 6: 50}
    verified(v)


# -- precedence -------------------------------------------------------------------------


def test_the_books_own_refusals_come_before_insufficient() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500, account="mitsui"))
    before = fingerprint(reg)
    s = S0 + 1
    # "nobody" could not pay for anything: the book's own codes still win
    cases: list[tuple[NewOrder, str]] = [
        (NewOrder(10, "nobody", SYM, BUY, 10, price=None), "malformed"),  # a limit without a price
        (NewOrder(11, "nobody", SYM, BUY, 10, price=1500, cap=5), "malformed"),  # a cap on a limit
        (NewOrder(12, "nobody", "EUA-NONE", BUY, 10, price=1500), "unknown_symbol"),
        (NewOrder(13, "nobody", SYM, BUY, 10, price=0), "bad_price"),
        (NewOrder(14, "nobody", SYM, SELL, 0, price=1500), "bad_qty"),
        (NewOrder(1, "nobody", SYM, BUY, 10, price=1500), "duplicate_id"),
        (NewOrder(15, "nobody", SYM, BUY, 10, price=1500, post_only=True), "post_only"),
        (NewOrder(16, "tepco", SYM, BUY, 10, price=1500, post_only=True), "post_only"),
        (NewOrder(17, "tepco", SYM, SELL, 1001, price=1400, post_only=True), "insufficient_units"),
        (NewOrder(18, "nobody", SYM, SELL, 10, price=1400), "unknown_account"),
    ]
    for i, (cmd, reason) in enumerate(cases):
        [rej] = v.apply(cmd)
        assert isinstance(rej, Rejected) and (rej.seq, rej.reason) == (s + i, reason), cmd
        assert rej.detail
    assert fingerprint(reg) == before and reg.hold(1) == 10
    # modify: unknown_order, bad_price, bad_qty, post_only before insufficient
    v.apply(buy(20, 10, 1000, account="mitsui", post_only=True))
    s = v.next_seq
    mods: list[tuple[ModifyOrder, str]] = [
        (ModifyOrder(99, qty=10**6), "unknown_order"),
        (ModifyOrder(20, price=0, qty=10**6), "bad_price"),
        (ModifyOrder(20, qty=0), "bad_qty"),
        (ModifyOrder(20, price=1500, qty=10**6), "post_only"),
        (ModifyOrder(20, qty=10**6), "insufficient_funds"),
    ]
    before = fingerprint(reg)
    for i, (mod, reason) in enumerate(mods):
        [rej] = v.apply(mod)
        assert isinstance(rej, Rejected) and (rej.seq, rej.reason) == (s + i, reason), mod
    assert fingerprint(reg) == before
    verified(v)


# -- a call phase -----------------------------------------------------------------------


CALL = "JPA-CALL"


def test_call_phase_uncross_releases_improvement_and_expiring_orders_holds() -> None:
    v = make_venue()
    reg = v.registry
    s = S0
    assert v.apply(ListInstrument(CALL, JPA, phase=Phase.CALL)) == [
        InstrumentListed(s, CALL, JPA, 1, 1, Phase.CALL)]
    v.apply(NewOrder(1, "tepco", CALL, SELL, 10, price=1400))
    v.apply(NewOrder(2, "marubeni", CALL, BUY, 10, price=1600))
    v.apply(NewOrder(3, "mitsui", CALL, BUY, 5, price=1300, tif=IOC))
    v.apply(NewOrder(4, "mitsui", CALL, SELL, 7, price=1700, tif=IOC))
    assert holds(reg) == {1: 10, 2: 16_000, 3: 6_500, 4: 7}
    s = v.next_seq
    # 10 trade anywhere from 1400 to 1600 with no surplus and no reference: the middle, 1500
    events = v.apply(SetPhase(symbol=CALL, phase=Phase.CONTINUOUS))
    assert events == [
        PhaseChanged(s, CALL, Phase.CONTINUOUS, None),
        Uncrossed(s + 1, CALL, 1500, 10),
        trade(s + 2, 1500, 10, 1, 2, 2, 1, symbol=CALL),
        Cancelled(s + 3, 3, 5, CancelReason.IOC),
        Cancelled(s + 4, 4, 7, CancelReason.IOC),
        TradeSettled(s + 5, s + 2, settled_txid(reg, s + 2)),
    ]
    # the improvement (100 per tonne) and the expiring orders' holds are given back
    assert holds(reg) == {} and no_hold_rows(reg)
    assert reg.balance("marubeni", "JPY") == reg.available_cash("marubeni", "JPY") == 1_000_000 - 15_000
    assert reg.available("mitsui", JPA) == 500 and reg.available_cash("mitsui", "JPY") == 500_000
    verified(v)


def test_call_phase_market_sell_remainder_is_released_at_the_uncross() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(ListInstrument(CALL, JPA, phase=Phase.CALL))
    v.apply(NewOrder(1, "marubeni", CALL, BUY, 2, price=1600))
    v.apply(NewOrder(2, "mitsui", CALL, SELL, 5, price=None, order_type=MARKET))
    assert holds(reg) == {1: 3200, 2: 5}
    s = v.next_seq
    assert v.apply(SetPhase(symbol=CALL, phase=Phase.CALL)) == [
        PhaseChanged(s, CALL, Phase.CALL, None), Indicative(s + 1, CALL, 1600, 2, 3, SELL)]
    s += 2
    events = v.apply(SetPhase(symbol=CALL, phase=Phase.CLOSED))
    assert events == [
        PhaseChanged(s, CALL, Phase.CLOSED, None),
        Uncrossed(s + 1, CALL, 1600, 2),
        trade(s + 2, 1600, 2, 1, 2, 1, 2, seller="mitsui", symbol=CALL),
        Cancelled(s + 3, 2, 3, CancelReason.MARKET),
        TradeSettled(s + 4, s + 2, settled_txid(reg, s + 2)),
    ]
    assert no_hold_rows(reg) and reg.available("mitsui", JPA) == 498
    verified(v)


def test_call_phase_market_buy_is_refused_with_or_without_a_cap() -> None:
    v = make_venue()
    v.apply(ListInstrument(CALL, JPA, phase=Phase.CALL))
    s = S0 + 1
    assert v.apply(NewOrder(1, "marubeni", CALL, BUY, 5, order_type=MARKET)) == [Rejected(
        s, 1, "insufficient_funds", "a market buy must state a cap (the most it may spend)")]
    [rej] = v.apply(NewOrder(2, "marubeni", CALL, BUY, 5, order_type=MARKET, cap=10_000))
    assert isinstance(rej, Rejected) and rej.reason == "phase"
    assert holds(v.registry) == {}
    verified(v)


def test_call_phase_refusals_and_indicative_with_holds() -> None:
    v = make_venue()
    v.apply(ListInstrument(CALL, JPA, phase=Phase.CALL))
    s = S0 + 1
    assert v.apply(NewOrder(1, "mitsui", CALL, SELL, 501, price=1500)) == [
        units_short(s, 1, "mitsui", 500, 501)]
    assert v.apply(NewOrder(2, "mitsui", CALL, SELL, 500, price=1500)) == [
        Accepted(s + 1, 2, CALL), Indicative(s + 2, CALL, None, 0, 0, None)]
    assert v.apply(ModifyOrder(2, qty=501)) == [units_short(s + 3, 2, "mitsui", 500, 501)]
    assert v.apply(ModifyOrder(2, qty=100)) == [Modified(s + 4, 2, 1500, 100),
                                                 Indicative(s + 5, CALL, None, 0, 0, None)]
    assert v.registry.hold(2) == 100
    assert v.apply(CancelOrder(2)) == [Cancelled(s + 6, 2, 100, CancelReason.USER),
                                       Indicative(s + 7, CALL, None, 0, 0, None)]
    assert holds(v.registry) == {}
    verified(v)


def test_call_uncross_buy_filled_by_two_sells_releases_all_improvement() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(ListInstrument(CALL, JPA, phase=Phase.CALL))
    v.apply(NewOrder(1, "tepco", CALL, SELL, 10, price=1400))
    v.apply(NewOrder(2, "mitsui", CALL, SELL, 10, price=1450))
    v.apply(NewOrder(3, "marubeni", CALL, BUY, 20, price=1600))
    events = v.apply(SetPhase(symbol=CALL, phase=Phase.CONTINUOUS))
    [uncrossed] = [e for e in events if isinstance(e, Uncrossed)]
    assert (uncrossed.price, uncrossed.volume) == (1525, 20)
    assert reg.balance("marubeni", "JPY") == 1_000_000 - 30_500
    assert reg.hold(3) == 0 and no_hold_rows(reg)  # got: 750 left held


# -- registry commands through the log ------------------------------------------------------


def test_every_registry_command_is_recorded() -> None:
    v = make_venue()
    reg = v.registry
    s = S0
    commands: list[Command] = [
        OpenScheme(name="JCM", allowances=frozenset({UnitType.EUA})),
        SetCap(scheme="JCM", period=2011, cap=100),
        OpenAccount(account="itochu", units=frozenset({JPA})),
        SetAccountStatus(account="itochu", status="blocked"),
        SetAccountStatus(account="itochu", status="open"),
        Transfer(sender="tepco", receiver="itochu", unit=JPA, qty=100),
        Deposit(account="itochu", currency="JPY", amount=5),
        RecordEmissions(account="tepco", period=2010, tonnes=300),
        Surrender(account="tepco", period=2010, unit=JPA, qty=200, to="retired"),
        Retire(account="mitsui", unit=JPA, qty=50, to="retired"),
    ]
    events = v.apply_all(commands)
    tx = TX0
    assert events == [
        Recorded(s, "scheme", tx + 1),
        Recorded(s + 1, "cap", tx + 2),
        Recorded(s + 2, "account", tx + 3),
        Recorded(s + 3, "account_status", tx + 4),
        Recorded(s + 4, "account_status", tx + 5),
        Recorded(s + 5, "transfer", tx + 6),
        Recorded(s + 6, "deposit", tx + 7),
        Recorded(s + 7, "emissions", tx + 8),
        Recorded(s + 8, "surrender", tx + 9, "200 of 300 surrendered for 2010: status B"),
        Recorded(s + 9, "retire", tx + 10),
    ]
    assert [(e.txid, e.kind) for e in reg.journal(TX0)] == [
        (tx + 1, "scheme"), (tx + 2, "cap"), (tx + 3, "open"), (tx + 4, "status"), (tx + 5, "status"),
        (tx + 6, "transfer"), (tx + 7, "deposit"), (tx + 8, "emissions"), (tx + 9, "surrender"),
        (tx + 10, "retire")]
    assert reg.holding("itochu", JPA) == 100 and reg.balance("itochu", "JPY") == 5
    assert reg.holding("retired", JPA) == 0 and reg.holding("tepco", JPA) == 700
    verified(v)


def test_issue_carry_over_and_expire_are_recorded() -> None:
    v = make_venue()
    s = S0
    events = v.apply_all([
        Issue(account="tepco", unit=JPA, qty=5, scheme="JVETS", period=2010),
        CarryOver(account="mitsui", unit=JPA, period=2010),
        Expire(unit=JPA, period=2009),
    ])
    assert [(e.seq, e.__struct_config__.tag, getattr(e, "command", None)) for e in events] == [
        (s, "recorded", "issue"), (s + 1, "recorded", "carry_over"), (s + 2, "recorded", "expire")]
    assert isinstance(events[0], Recorded) and events[0].detail == "serials JP 1501-1505"
    assert isinstance(events[2], Recorded) and events[2] == Recorded(s + 2, "expire", None, "0 units expired")
    assert [b.period for b in v.registry.blocks("mitsui", JPA)] == [2011]
    verified(v)


def _journal_txids_of(v: Venue, command: Command) -> tuple[Recorded, list[int]]:
    last = max(e.txid for e in v.registry.journal())
    [event] = v.apply(command)
    assert isinstance(event, Recorded), event
    return event, [e.txid for e in v.registry.journal(last)]


@pytest.mark.parametrize("command", [
    pytest.param(Transfer(sender="tepco", receiver="mitsui", unit=JPA, qty=1), id="transfer"),
    pytest.param(Deposit(account="tepco", currency="JPY", amount=1), id="deposit"),
    pytest.param(Retire(account="tepco", unit=JPA, qty=1, to="retired"), id="retire"),
    pytest.param(SetCap(scheme="JVETS", period=2011, cap=1), id="cap"),
    pytest.param(Issue(account="tepco", unit=JPA, qty=5, scheme="JVETS", period=2010), id="issue"),
    pytest.param(CarryOver(account="tepco", unit=JPA, period=2010), id="carry_over"),
    pytest.param(Expire(unit=JPA, period=2010), id="expire"),
])
def test_recorded_txid_is_the_journal_transaction(command: Command) -> None:
    v = make_venue()
    event, txids = _journal_txids_of(v, command)
    assert txids and event.txid == txids[-1]


def test_compliance_through_the_log() -> None:
    v = make_venue()
    s = S0
    events = v.apply_all([
        RecordEmissions(account="marubeni", period=2010, tonnes=100),
        Transfer(sender="tepco", receiver="marubeni", unit=JPA, qty=150),
        Issue(account="marubeni", unit=JCR, qty=20, scheme="JVETS", period=2010, project="JCM-1"),
        Surrender(account="marubeni", period=2010, unit=JPA, qty=60, to="retired"),
        Surrender(account="marubeni", period=2010, unit=JCR, qty=11, to="retired"),
        Surrender(account="marubeni", period=2010, unit=JCR, qty=10, to="retired"),
        Surrender(account="marubeni", period=2010, unit=JPA, qty=30, to="retired"),
    ])
    tx = TX0
    assert events[:2] == [Recorded(s, "emissions", tx + 1), Recorded(s + 1, "transfer", tx + 2)]
    assert isinstance(events[2], Recorded) and events[2].command == "issue"
    assert events[3] == Recorded(s + 3, "surrender", tx + 4, "60 of 100 surrendered for 2010: status B")
    # credits cover at most 10 % of the obligation
    assert events[4] == Rejected(s + 4, None, "offset_limit", "scheme 'JVETS' allows 10 credits for "
                                 "'marubeni' in 2010 (10% of the obligation); 0 used, 11 more asked")
    assert events[5:] == [
        Recorded(s + 5, "surrender", tx + 5, "70 of 100 surrendered for 2010: status B"),
        Recorded(s + 6, "surrender", tx + 6, "100 of 100 surrendered for 2010: status A"),
    ]
    comp = v.registry.compliance("marubeni", 2010)
    assert (comp.surrendered, comp.obligation, str(comp.status)) == (100, 100, "A")
    assert v.registry.compliance("tepco", 2010).status == "C"
    verified(v)


def test_surrender_eligibility_through_the_log() -> None:
    """Serials, a vintage and the order-log's not_eligible; a surplus is said in the detail."""
    v = make_venue()
    s = S0
    events = v.apply_all([
        RecordEmissions(account="tepco", period=2010, tonnes=10),
        Surrender(account="tepco", period=2010, unit=JPA, qty=5, to="retired", vintage=2011),
        Surrender(account="tepco", period=2010, unit=JPA, qty=5, to="retired", start=1, end=5),
        Surrender(account="tepco", period=2010, unit=JPA, qty=45, to="retired", vintage=2010),
        Surrender(account="tepco", period=2010, unit=JPA, qty=5, to="retired", start=7),
    ])
    assert isinstance(events[1], Rejected) and events[1].reason == "not_eligible"
    assert "not the named vintage 2011" in events[1].detail
    assert [e.detail for e in events[2:4] if isinstance(e, Recorded)] == [
        "5 of 10 surrendered for 2010: status B",
        "50 of 10 surrendered for 2010: status A, 40 above the obligation "
        "(spent; not carried to a later period)",
    ]
    assert isinstance(events[4], Rejected) and events[4].reason == "bad_qty"
    assert events[4].seq == s + 4
    assert v.registry.compliance("tepco", 2010).surrendered == 50
    verified(v)


def test_borrowing_through_the_log() -> None:
    """A scheme that lends next period's vintage within a phase: the borrowing is said."""
    v = make_venue()
    uka = UnitType.UKA
    events = v.apply_all([
        OpenScheme(name="LEND", allowances=frozenset({uka}), phases=frozenset({2008, 2013}), borrowing=True),
        OpenScheme(name="BAD", allowances=frozenset({uka}), phases=frozenset({-1})),
        SetCap(scheme="LEND", period=2011, cap=100),
        OpenAccount(account="op", scheme="LEND"),
        Issue(account="op", unit=uka, qty=8, scheme="LEND", period=2011),
        RecordEmissions(account="op", period=2010, tonnes=5),
        Surrender(account="op", period=2010, unit=uka, qty=5, to="retired"),
    ])
    assert isinstance(events[1], Rejected) and events[1].reason == "refused"
    assert isinstance(events[-1], Recorded)
    assert events[-1].detail == "5 of 5 surrendered for 2010: status A, 5 borrowed from 2011"
    assert v.registry.compliance("op", 2010).borrowed == 5
    verified(v)


@pytest.mark.parametrize(("command", "code"), [
    (SetCap(scheme="JVETS", period=2010, cap=1), None),  # below what was issued: the registry decides
    (Issue(account="tepco", unit=JPA, qty=9000, scheme="JVETS", period=2010), "cap_exceeded"),
    (OpenAccount(account="tepco"), "duplicate_account"),
    (OpenScheme(name="JVETS", allowances=frozenset({JPA})), "duplicate_scheme"),
    (SetCap(scheme="NOPE", period=2010, cap=5), "unknown_scheme"),
    (OpenAccount(account="x", scheme="NOPE"), "unknown_scheme"),
    (Deposit(account="nobody", currency="JPY", amount=5), "unknown_account"),
    (Transfer(sender="tepco", receiver="tepco", unit=JPA, qty=5), "same_account"),
    (Transfer(sender="tepco", receiver="mitsui", unit=JPA, qty=1001), "insufficient_units"),
    (Transfer(sender="tepco", receiver="mitsui", unit=JPA, qty=0), "bad_qty"),
    (Surrender(account="mitsui", period=2010, unit=JPA, qty=5, to="retired"), "refused"),
    (Surrender(account="tepco", period=2010, unit=JCR, qty=1, to="retired"), "offset_limit"),
    (Retire(account="tepco", unit=JPA, qty=5, to="mitsui"), "unit_not_allowed"),
    (RecordEmissions(account="nobody", period=2010, tonnes=5), "unknown_account"),
    (Allocate(account="tepco", period=2010, method="benchmark", activity=1, per=2), "bad_qty"),
    (Allocate(account="tepco", period=2010, method="benchmark", activity=9001), "cap_exceeded"),
    (Allocate(account="mitsui", period=2010, method="grandfathering", base=(5,)), "refused"),
    (Allocate(account="tepco", period=2010, method="grandfathering", base=(5,), reduction=5), "bad_qty"),
    (Allocate(account="tepco", period=2010, method="grandfathering"), "bad_qty"),
    (Allocate(account="tepco", period=2010, method="benchmark", activity=5, unit=JCR), "unit_not_allowed"),
    (TrueUp(account="tepco", period=2010, production=5), "refused"),
    (TrueUp(account="nobody", period=2010, production=5), "unknown_account"),
    (ReturnAllocation(account="tepco", period=2010, qty=5, to="mitsui"), "refused"),
    (ReturnAllocation(account="tepco", period=2010, qty=0, to="mitsui"), "bad_qty"),
    (OpenScheme(name="X", allowances=frozenset({UnitType.EUA}), borrow_limit=10_001), "bad_qty"),
    (OpenScheme(name="X", allowances=frozenset({UnitType.EUA}), links=frozenset({"X"})), "refused"),
    (OpenScheme(name="X", allowances=frozenset({UnitType.EUA}), excluded={"HFC-23": -1}), "refused"),
    (OpenScheme(name="X", allowances=frozenset({UnitType.EUA}),
                offset_limits=(OffsetLimit(UnitType.CER, 100),)), "refused"),
    (Issue(account="tepco", unit=JPA, qty=5, scheme="JVETS", period=2010, project_type="HFC-23"), "refused"),
    (OpenScheme(name="X", allowances=frozenset({UnitType.RGA}), control_periods=((2011, 2009),)), "refused"),
    (OpenScheme(name="X", allowances=frozenset({UnitType.RGA}), control_periods=((2009, 2011), (2010, 2012))),
     "refused"),
    (SetDeadline(scheme="JVETS", period=2010, day=5, report=6), "refused"),
    (OpenScheme(name="X", allowances=frozenset({UnitType.EUA}), phases=frozenset({2008}),
                phase_banking=frozenset({2013})), "refused"),
])
def test_registry_refusals_are_rejected_with_the_registrys_code(command: Command,
                                                                code: str | None) -> None:
    v = make_venue()
    before = fingerprint(v.registry)
    [event] = v.apply(command)
    if code is None:
        assert isinstance(event, Rejected) and event.reason and event.id is None
    else:
        assert isinstance(event, Rejected) and (event.seq, event.id, event.reason) == (S0, None, code)
        assert event.detail
    assert fingerprint(v.registry) == before
    assert v.checkpoint.outcome(S0) is not None and v.checkpoint.position == S0
    verified(v)


def test_a_hand_built_command_of_the_wrong_kind_is_malformed() -> None:
    v = make_venue()
    [event] = v.apply(SetAccountStatus(account="tepco", status="frozen"))  # type: ignore[arg-type]
    assert isinstance(event, Rejected) and event.reason == "malformed"
    assert v.registry.account("tepco").status == "open"


ALL_REGISTRY_COMMANDS: list[Command] = [
    OpenScheme(name="JVETS", allowances=frozenset({JPA})),
    SetCap(scheme="JVETS", period=2010, cap=10),
    OpenAccount(account="a"),
    SetAccountStatus(account="a", status="blocked"),
    Issue(account="a", unit=JPA, qty=1, scheme="JVETS", period=2010),
    Transfer(sender="a", receiver="b", unit=JPA, qty=1),
    Deposit(account="a", currency="JPY", amount=1),
    RecordEmissions(account="a", period=2010, tonnes=1),
    Surrender(account="a", period=2010, unit=JPA, qty=1, to="r"),
    Retire(account="a", unit=JPA, qty=1, to="r"),
    CarryOver(account="a", unit=JPA, period=2010),
    Expire(unit=JPA, period=2010),
    OpenScheme(name="EU", allowances=frozenset({UnitType.EUA}), credits=frozenset({UnitType.CER}),
               borrow_limit=2000, offset_limits=(OffsetLimit(UnitType.CER, 1100, "allocation", "phase"),),
               excluded={"HFC-23": 2013}, links=frozenset({"CH"}), import_limit=500),
    OpenScheme(name="RGGI", allowances=frozenset({UnitType.RGA}), phases=frozenset({2009, 2012}),
               phase_banking=frozenset({2012}), control_periods=((2009, 2011), (2012, 2014))),
    SetDeadline(scheme="RGGI", period=2011, day=5, report=3),
    Issue(account="a", unit=UnitType.CER, qty=1, scheme="CDM", period=2008, project="P", project_type="hydro"),
    Allocate(account="a", period=2010, method="grandfathering", base=(3, 4), reduction=1),
    TrueUp(account="a", period=2010, production=5, to="iss"),
    ReturnAllocation(account="a", period=2010, qty=1, to="iss"),
    AddAdministrator(person="admin"),
    AddRepresentative(account="a", person="alice", actor="admin"),
    SetControls(account="a", trusted_delay=4, outside_delay=1, bar_outside=False, limit=2, four_eyes=True),
    ProposeTrusted(account="a", trusted="b", actor="alice"),
    ApproveTrusted(account="a", trusted="b", actor="bob"),
    RemoveTrusted(account="a", trusted="b", actor="alice"),
    ApproveTransfer(transfer=1, actor="bob"),
    CancelTransfer(transfer=1, actor="alice"),
    BusinessDay(day=1),
]


def test_the_plain_engine_rejects_registry_commands_with_no_registry() -> None:
    eng = Engine()
    events = eng.apply_all(ALL_REGISTRY_COMMANDS)
    assert events == [
        Rejected(i + 1, None, "no_registry", f"{c.__struct_config__.tag} needs a venue with a registry")
        for i, c in enumerate(ALL_REGISTRY_COMMANDS)
    ]


# -- settlement --------------------------------------------------------------------------


def test_lag_0_settles_right_after_the_trades_events() -> None:
    v = make_venue()
    reg = v.registry
    v.apply_all([sell(1, 10, 1500), sell(2, 10, 1500, account="mitsui")])
    s = S0 + 2
    events = v.apply(buy(3, 25, 1500, tif=IOC))
    assert events == [
        Accepted(s, 3, SYM),
        trade(s + 1, 1500, 10, 1, 3, 3, 1),
        trade(s + 2, 1500, 10, 2, 3, 3, 2, seller="mitsui"),
        Cancelled(s + 3, 3, 5, CancelReason.IOC),
        TradeSettled(s + 4, s + 1, settled_txid(reg, s + 1)),
        TradeSettled(s + 5, s + 2, settled_txid(reg, s + 2)),
    ]
    assert settled_txid(reg, s + 2) == settled_txid(reg, s + 1) + 1
    assert no_hold_rows(reg)
    verified(v)


def test_lag_2_settles_on_the_business_day_that_makes_trades_due() -> None:
    v = make_venue(lag=2)
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    s = S0 + 1
    assert v.apply(buy(2, 4, 1500)) == [Accepted(s, 2, SYM), trade(s + 1, 1500, 4, 1, 2, 2, 1)]
    assert [t.seq for t in v.settlement.pending] == [s + 1]
    assert v.apply(BusinessDay(day=1)) == [Recorded(s + 2, "business_day", None, "day 1: 0 trades due")]
    assert v.apply(buy(3, 6, 1500)) == [Accepted(s + 3, 3, SYM), trade(s + 4, 1500, 6, 1, 3, 3, 1)]
    assert reg.holding("marubeni", JPA) == 0 and holds(reg) == {1: 10, 2: 6000, 3: 9000}
    events = v.apply(BusinessDay(day=2))
    assert events == [Recorded(s + 5, "business_day", None, "day 2: 1 trades due"),
                      TradeSettled(s + 6, s + 1, settled_txid(reg, s + 1))]
    assert holds(reg) == {1: 6, 3: 9000} and reg.holding("marubeni", JPA) == 4
    events = v.apply(BusinessDay(day=5))
    assert events == [Recorded(s + 7, "business_day", None, "day 5: 1 trades due"),
                      TradeSettled(s + 8, s + 4, settled_txid(reg, s + 4))]
    assert no_hold_rows(reg) and reg.holding("marubeni", JPA) == 10
    assert reg.balance("tepco", "JPY") == 15_000
    [back] = v.apply(BusinessDay(day=4))
    assert isinstance(back, Rejected) and (back.reason, back.id) == ("malformed", None)
    verified(v)


def test_settlement_failure_moves_nothing_and_releases_the_trades_holds() -> None:
    v = make_venue(lag=2)
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    v.apply(buy(2, 20, 1600))  # 10 at 1500; 10 more rest at 1600
    s = S0 + 3
    assert holds(reg) == {1: 10, 2: 31_000}
    assert v.apply(SetAccountStatus(account="marubeni", status="blocked")) == [
        Recorded(s, "account_status", max(e.txid for e in reg.journal()))]
    before = fingerprint(reg)
    events = v.apply(BusinessDay(day=2))
    assert events[0] == Recorded(s + 1, "business_day", None, "day 2: 1 trades due")
    [failed] = events[1:]
    assert isinstance(failed, SettlementFailure) and (failed.seq, failed.trade_id) == (s + 2, S0 + 2)
    assert failed.reason == "account_blocked" and "marubeni" in failed.detail
    after = fingerprint(reg)
    # nothing moved: only the holds of the trade were given back
    assert [(a, u, h) for a, u, h, _ in after[2]] == [(a, u, h) for a, u, h, _ in before[2]]
    assert [(a, b) for a, b, _ in after[3]] == [(a, b) for a, b, _ in before[3]]
    assert holds(reg) == {2: 16_000}  # the open 10 at 1600 still hold; the trade's 15,000 are free
    assert reg.available("tepco", JPA) == 1000 and reg.balance("tepco", "JPY") == 0
    assert {e.kind for e in reg.journal(before[0][-1].txid)} == {"release"}
    verified(v)


def test_settlement_failure_at_lag_0_after_the_maker_is_blocked() -> None:
    v = make_venue()
    reg = v.registry
    v.apply(sell(1, 10, 1500))
    v.apply(SetAccountStatus(account="tepco", status="blocked"))
    s = S0 + 2
    events = v.apply(buy(2, 4, 1500))
    assert events[:2] == [Accepted(s, 2, SYM), trade(s + 1, 1500, 4, 1, 2, 2, 1)]
    [failed] = events[2:]
    assert isinstance(failed, SettlementFailure) and failed.reason == "account_blocked"
    assert holds(reg) == {1: 6} and reg.holding("marubeni", JPA) == 0
    assert reg.available_cash("marubeni", "JPY") == 1_000_000
    verified(v)


# -- an expiry takes the sells it leaves uncovered off the book ------------------------------


EXPIRED = CancelReason.UNITS_EXPIRED
LATER: list[Command] = [  # units of 2011, which an expiry of 2010 leaves alone
    SetCap(scheme="JVETS", period=2011, cap=10_000),
    Issue(account="tepco", unit=JPA, qty=200, scheme="JVETS", period=2011),
    Issue(account="mitsui", unit=JPA, qty=100, scheme="JVETS", period=2011),
]


def last_txid(reg: Registry) -> int:
    return max(e.txid for e in reg.journal())


def test_a_sell_resting_on_expired_units_is_cancelled_and_its_hold_is_gone() -> None:
    v = make_venue()
    reg = v.registry
    s = S0
    assert v.apply(sell(1, 300, 1500)) == [Accepted(s, 1, SYM)]
    events = v.apply(Expire(unit=JPA, period=2010))
    assert events == [
        Recorded(s + 1, "expire", last_txid(reg), "1500 units expired"),
        Cancelled(s + 2, 1, 300, EXPIRED),
    ]
    assert v.order(1) is not None and v.order(1).status == "cancelled"  # type: ignore[union-attr]
    assert v.snapshot() == {SYM: {"bids": [], "asks": []}}
    assert reg.hold(1) == 0 and no_hold_rows(reg) and reg.holding("tepco", JPA) == 0
    # nothing is left to trade against: a buy rests, and no settlement fails
    assert v.apply(buy(2, 100, 1500)) == [Accepted(s + 3, 2, SYM)]
    verified(v)


def test_a_sell_partly_covered_by_later_units_is_cancelled_one_fully_covered_stays_and_trades() -> None:
    v = make_venue()
    reg = v.registry
    v.apply_all([*LATER, sell(1, 150, 1500), sell(2, 300, 1600, account="mitsui"), buy(3, 10, 1400)])
    assert holds(reg) == {1: 150, 2: 300, 3: 14_000}
    s = v.next_seq
    expired = last_txid(reg) + 1
    events = v.apply(Expire(unit=JPA, period=2010))
    # mitsui keeps 100 units of 2011: its hold was cut to them, and the cancellation releases those
    assert events == [
        Recorded(s, "expire", expired, "1500 units expired"),
        Cancelled(s + 1, 2, 300, EXPIRED),
    ]
    assert [(e.kind, e.account, e.qty, e.ref) for e in reg.journal(expired)] == [("release", "mitsui", 100, 2)]
    # tepco keeps 200 units of 2011, which still cover its 150; the buy holds cash, untouched
    assert holds(reg) == {1: 150, 3: 14_000}
    assert (reg.holding("mitsui", JPA), reg.available("mitsui", JPA)) == (100, 100)
    assert (reg.holding("tepco", JPA), reg.available("tepco", JPA)) == (200, 50)
    assert v.snapshot() == {SYM: {"bids": [[1400, 3, 10]], "asks": [[1500, 1, 150]]}}
    s += 2
    events = v.apply(buy(4, 150, 1600))
    assert events == [Accepted(s, 4, SYM), trade(s + 1, 1500, 150, 1, 4, 4, 1),
                      TradeSettled(s + 2, s + 1, settled_txid(reg, s + 1))]
    assert holds(reg) == {3: 14_000}
    assert reg.holding("marubeni", JPA) == 150 and reg.holding("tepco", JPA) == 50
    assert reg.balance("tepco", "JPY") == 225_000
    verified(v)


def test_the_newest_hold_is_cut_first_and_only_the_orders_left_short_are_cancelled() -> None:
    v = make_venue()
    reg = v.registry
    v.apply_all([*LATER, sell(1, 80, 1500, account="mitsui"), sell(2, 50, 1600, account="mitsui")])
    s = v.next_seq
    # 130 held on 100 units: the expiry cuts the newest hold (2) by 30, leaving order 1 whole
    assert v.apply(Expire(unit=JPA, period=2010)) == [
        Recorded(s, "expire", last_txid(reg) - 1, "1500 units expired"),
        Cancelled(s + 1, 2, 50, EXPIRED),
    ]
    assert holds(reg) == {1: 80} and reg.available("mitsui", JPA) == 20
    verified(v)


def test_buys_and_sells_of_other_unit_types_are_untouched_by_an_expiry() -> None:
    v = make_venue()
    reg = v.registry
    v.apply_all([
        Issue(account="mitsui", unit=JCR, qty=40, scheme="JVETS", period=2010, project="JCR-0001"),
        ListInstrument("JCR-2010", JCR),
        buy(1, 100, 1400),
        buy(2, 10, 1500, account="mitsui"),
        NewOrder(3, "mitsui", "JCR-2010", SELL, 40, price=900),
    ])
    book, before = v.snapshot(), holds(reg)
    assert before == {1: 140_000, 2: 15_000, 3: 40}
    s = v.next_seq
    assert v.apply(Expire(unit=JPA, period=2010)) == [
        Recorded(s, "expire", last_txid(reg), "1500 units expired")]
    assert v.snapshot() == book and holds(reg) == before
    # the JCR instrument's sell goes when JCR expires
    assert v.apply(Expire(unit=JCR, period=2010)) == [
        Recorded(s + 1, "expire", last_txid(reg), "40 units expired"),
        Cancelled(s + 2, 3, 40, EXPIRED),
    ]
    assert holds(reg) == {1: 140_000, 2: 15_000}
    verified(v)


def test_sells_resting_in_a_call_are_cancelled_each_followed_by_its_indicative() -> None:
    v = make_venue()
    reg = v.registry
    v.apply_all([
        ListInstrument(CALL, JPA, phase=Phase.CALL),
        NewOrder(1, "tepco", CALL, SELL, 10, price=1400),
        sell(2, 20, 1500, account="mitsui"),
        NewOrder(3, "mitsui", CALL, SELL, 5, price=None, order_type=MARKET),
        NewOrder(4, "marubeni", CALL, BUY, 20, price=1300),
    ])
    assert holds(reg) == {1: 10, 2: 20, 3: 5, 4: 26_000}
    s = v.next_seq
    # one pass over the books of the unit type, by order id; a call's cancel is followed by its indicative
    assert v.apply(Expire(unit=JPA, period=2010)) == [
        Recorded(s, "expire", last_txid(reg), "1500 units expired"),
        Cancelled(s + 1, 1, 10, EXPIRED),
        Indicative(s + 2, CALL, 1300, 5, 15, BUY),
        Cancelled(s + 3, 2, 20, EXPIRED),
        Cancelled(s + 4, 3, 5, EXPIRED),
        Indicative(s + 5, CALL, None, 0, 0, None),
    ]
    assert holds(reg) == {4: 26_000}
    assert v.snapshot()[CALL] == {"bids": [[1300, 4, 20]], "asks": []}
    # the uncross finds nothing to trade
    assert v.apply(SetPhase(symbol=CALL, phase=Phase.CONTINUOUS)) == [
        PhaseChanged(s + 6, CALL, Phase.CONTINUOUS, None), Uncrossed(s + 7, CALL, None, 0)]
    verified(v)


def test_a_sell_whose_hold_still_owes_a_trade_awaiting_settlement_is_cancelled() -> None:
    """T+1: a partly filled sell's hold covers its open quantity and the trade not yet settled.
    After the expiry the hold covers the open 200 but not the trade's 100 as well: the order
    goes, its share of the hold is released, and the trade settles from the units left."""
    v = make_venue(lag=1)
    reg = v.registry
    v.apply_all([*LATER, sell(1, 300, 1500)])
    s = v.next_seq
    assert v.apply(buy(2, 100, 1500)) == [Accepted(s, 2, SYM), trade(s + 1, 1500, 100, 1, 2, 2, 1)]
    assert holds(reg) == {1: 300, 2: 150_000}
    assert v.apply(Expire(unit=JPA, period=2010)) == [
        Recorded(s + 2, "expire", last_txid(reg) - 1, "1500 units expired"),
        Cancelled(s + 3, 1, 200, EXPIRED),
    ]
    assert holds(reg) == {2: 150_000} and reg.available("tepco", JPA) == 200
    events = v.apply(BusinessDay(day=1))
    assert events == [Recorded(s + 4, "business_day", None, "day 1: 1 trades due"),
                      TradeSettled(s + 5, s + 1, settled_txid(reg, s + 1))]
    assert reg.holding("tepco", JPA) == 100 and reg.holding("marubeni", JPA) == 100 and no_hold_rows(reg)
    verified(v)


# -- replay into the same registry ---------------------------------------------------------


def session_log() -> list[Command]:
    """A whole session: registry commands, orders of every kind, T+1 settlement on business days."""
    return [
        *SETUP,
        BusinessDay(day=1),
        sell(1, 100, 1500),
        sell(2, 50, 1550, account="mitsui"),
        buy(3, 30, 1600),
        buy(4, 400, 1000, account="mitsui"),
        buy(5, 10, 1500, account="nobody"),
        sell(6, 2000, 1500),
        ModifyOrder(4, qty=500),
        ModifyOrder(4, qty=1000),
        CancelOrder(2),
        buy(7, 100, None, order_type=MARKET, cap=120_000),
        BusinessDay(day=2),
        Transfer(sender="tepco", receiver="mitsui", unit=JPA, qty=10),
        Transfer(sender="tepco", receiver="tepco", unit=JPA, qty=10),
        RecordEmissions(account="marubeni", period=2010, tonnes=50),
        sell(8, 20, 1000, account="marubeni", tif=IOC),
        Surrender(account="marubeni", period=2010, unit=JPA, qty=40, to="retired"),
        BusinessDay(day=3),
    ]


def more_commands() -> list[Command]:
    return [
        sell(9, 30, 990),
        buy(10, 40, 1200, account="marubeni"),
        SetAccountStatus(account="mitsui", status="blocked"),
        BusinessDay(day=4),
        Deposit(account="mitsui", currency="JPY", amount=7),
        CancelOrder(4),
        BusinessDay(day=5),
    ]


def encode(events: Sequence[Event]) -> bytes:
    return json_encoder.encode_lines(list(events))


def state(reg: Registry) -> Any:
    return fingerprint(reg), Checkpoint(reg).position


def run_log(reg: Registry, commands: Sequence[Command], *, lag: int = 1,
            batch: int | None = None) -> list[Event]:
    """Apply ``commands`` to a new venue on ``reg``: in one apply_all, or ``batch`` at a time."""
    venue = Venue(reg, lag=lag)
    if batch is None:
        events = venue.apply_all(commands)
    else:
        events = []
        for i in range(0, len(commands), batch):
            events.extend(venue.apply_all(commands[i:i + batch]))
    venue.check()
    reg.check()
    return events


def test_session_log_exercises_holds_settlement_and_refusals() -> None:
    reg = MemoryRegistry()
    events = run_log(reg, session_log())
    tags = [e.__struct_config__.tag for e in events]
    assert tags.count("trade_settled") >= 3 and "settlement_failure" not in tags
    reasons = {e.reason for e in events if isinstance(e, Rejected)}
    assert reasons == {"unknown_account", "insufficient_units", "insufficient_funds", "same_account"}
    assert Checkpoint(reg).position == events[-1].seq
    assert reg.compliance("marubeni", 2010).status == "B" or reg.compliance("marubeni", 2010).status == "A"


def test_group_commit_keeps_the_events_and_a_crash_loses_only_the_open_group(
        backend: tuple[RegistryFactory, Reopen]) -> None:
    """With group=N the batches join one registry transaction until N commands went in: the
    events are those of a venue without it; a venue dropped with a group open (a crash) leaves
    the registry at the last commit, and replaying the log into it gives the same events and
    the same registry as the uninterrupted run."""
    fresh, reopen = backend
    log = session_log()
    group = 9 if len(log) % 9 else 6  # the last group stays open
    straight = fresh()
    expected = run_log(straight, log, batch=3)
    reg = fresh()
    venue = Venue(reg, lag=1, group=group)
    events = [e for i in range(0, len(log), 3) for e in venue.apply_all(log[i:i + 3])]
    assert encode(events) == encode(expected)
    del venue  # a crash: the open group is never committed
    if isinstance(reg, MemoryRegistry):
        return  # a memory registry is gone with the process
    reg = reopen(reg)
    assert 0 < Checkpoint(reg).position < events[-1].seq
    again = run_log(reg, log, batch=3)
    assert encode(again) == encode(expected)
    assert state(reg) == state(straight)


def test_replay_into_the_same_registry_changes_nothing(backend: tuple[RegistryFactory, Reopen]) -> None:
    fresh, reopen = backend
    reg = fresh()
    log = session_log()
    first = run_log(reg, log)
    before = state(reg)
    reg = reopen(reg)
    assert state(reg) == before
    again = run_log(reg, log)
    assert encode(again) == encode(first)
    assert state(reg) == before
    # and once more, in another batching
    reg = reopen(reg)
    assert encode(run_log(reg, log, batch=3)) == encode(first)
    assert state(reg) == before


def test_a_longer_log_continues_where_the_registry_stopped(backend: tuple[RegistryFactory, Reopen]) -> None:
    fresh, reopen = backend
    log, longer = session_log(), session_log() + more_commands()
    one = fresh()
    straight = run_log(one, longer)
    two = fresh()
    run_log(two, log)
    two = reopen(two)
    caught_up = run_log(two, longer)
    assert encode(caught_up) == encode(straight)
    assert state(two) == state(one)
    # a log cut in the middle of the session, continued
    three = fresh()
    run_log(three, longer[:25])
    three = reopen(three)
    assert encode(run_log(three, longer, batch=4)) == encode(straight)
    assert state(three) == state(one)


def test_a_batch_that_fails_part_way_stops_the_venue() -> None:
    """The registry's commit fails: it rolls the batch back while the engine has gone on, so the
    venue refuses further batches; a new venue on the registry replays the log and catches up."""
    log = session_log()
    expected = run_log(MemoryRegistry(), log)
    reg = MemoryRegistry()
    venue = Venue(reg, lag=1)
    half = len(log) // 2
    venue.apply_all(log[:half])
    before = state(reg)

    def gone(log: Any) -> None:
        raise RegistryUnavailable("the database is gone")

    reg._commit = gone  # type: ignore[method-assign]
    with pytest.raises(RegistryUnavailable):
        venue.apply_all(log[half:])
    del reg._commit
    assert state(reg) == before
    with pytest.raises(VenueFailed, match="replay the log"):
        venue.apply(log[half])
    with pytest.raises(VenueFailed):
        venue.dispatch_marked([log[half]], [])
    assert state(reg) == before
    assert Venue(reg, lag=1).apply_all(log) == expected


def test_a_different_log_into_a_used_registry_is_a_log_mismatch(
        backend: tuple[RegistryFactory, Reopen]) -> None:
    fresh, reopen = backend
    reg = fresh()
    log = session_log()
    run_log(reg, log)
    reg = reopen(reg)
    before = state(reg)
    # an order where the registry went through a registry command: the business day (seq 12)
    # is replaced by an order, so the transfer further on finds no outcome of its own
    other = [*SETUP, sell(1, 100, 1500), *log[len(SETUP):]]
    with pytest.raises(LogMismatch, match="another log"):
        run_log(reg, other)
    assert state(reg) == before


@pytest.mark.parametrize("change", ["price", "qty", "dropped", "lag"])
def test_a_changed_order_into_a_used_registry_is_a_log_mismatch(
        backend: tuple[RegistryFactory, Reopen], change: str) -> None:
    """No registry command moves, yet the events differ: the digest stored with the position
    catches it when the replay reaches the position, before anything is written."""
    fresh, reopen = backend
    reg = fresh()
    log = session_log()
    run_log(reg, log)
    reg = reopen(reg)
    before = state(reg)
    i = log.index(sell(6, 2000, 1500))
    other = list(log)
    lag = 1
    if change == "price":
        other[i] = sell(6, 2000, 1499)
    elif change == "qty":
        other[i] = sell(6, 1999, 1500)
    elif change == "dropped":
        other[i] = CancelOrder(999)
    else:
        lag = 2
    with pytest.raises(LogMismatch, match="not JPY and 2" if change == "lag" else "another log"):
        run_log(reg, [*other, *more_commands()], lag=lag)
    assert state(reg) == before
    # the log the registry went through still replays, and continues
    events = run_log(reg, [*log, *more_commands()])
    assert Checkpoint(reg).position == events[-1].seq > before[1]


@pytest.mark.parametrize("version", [1, 2])
def test_a_registry_keeps_the_digest_version_it_started_with(
        backend: tuple[RegistryFactory, Reopen], version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry an older carbonbook went through (digest version 1: the commands' JSON Lines,
    tagged ``digest``) resumes under it: the log it went through replays into it and continues,
    a changed one is refused. A new registry takes version 2 (the commands in MessagePack)."""
    fresh, reopen = backend
    reg = fresh()
    if version == 1:  # what the older carbonbook wrote
        monkeypatch.setattr(checkpoint, "_VERSION", 1)
    log = session_log()
    run_log(reg, log, batch=7)
    monkeypatch.undo()
    reg = reopen(reg)
    cp = Checkpoint(reg)
    fold = checkpoint.fold_lines if version == 1 else checkpoint.fold_packed
    assert cp.version == version and cp.position_digest == fold(1, log)
    assert reg.checkpoint_row(-1)[1] == ("digest" if version == 1 else "digest/2")  # type: ignore[attr-defined]
    before = state(reg)
    other = list(log)
    i = log.index(sell(6, 2000, 1500))
    other[i] = sell(6, 2000, 1499)
    with pytest.raises(LogMismatch, match="another log"):
        run_log(reg, [*other, *more_commands()])
    assert state(reg) == before
    events = run_log(reg, [*log, *more_commands()], batch=5)
    cp = Checkpoint(reopen(reg))
    assert cp.version == version and cp.position == events[-1].seq > before[1]
    assert cp.position_digest == fold(1, [*log, *more_commands()])


def test_a_registry_of_an_unknown_digest_version_is_refused() -> None:
    reg = MemoryRegistry()
    with reg.transaction():
        reg.put_checkpoint_row(-1, (4, "digest/9", "17"))
    with pytest.raises(LogMismatch, match="version 'digest/9'"):
        Venue(reg)


def expiry_log() -> list[Command]:
    """A session through an expiry at T+1: it cancels mitsui's two sells (one in a call) and
    leaves tepco's, one of which owes a trade awaiting settlement."""
    return [
        *SETUP,
        *LATER,
        ListInstrument(CALL, JPA, phase=Phase.CALL),
        sell(1, 150, 1500),
        sell(2, 300, 1600, account="mitsui"),
        buy(3, 10, 1400),
        NewOrder(4, "mitsui", CALL, SELL, 50, price=1450),
        NewOrder(5, "tepco", CALL, SELL, 40, price=None, order_type=MARKET),
        buy(6, 100, 1500),
        Expire(unit=JPA, period=2010),
        BusinessDay(day=1),
        buy(7, 50, 1500),
        SetPhase(symbol=CALL, phase=Phase.CONTINUOUS),
        BusinessDay(day=2),
    ]


def test_replay_through_an_expiry_gives_the_same_cancellations(backend: tuple[RegistryFactory, Reopen]) -> None:
    """The cancellations are the engine's, re-derived on replay from what the registry recorded
    (its holds are no longer those of the expiry): the same events, the registry unchanged."""
    fresh, reopen = backend
    reg = fresh()
    log = expiry_log()
    first = run_log(reg, log)
    assert [(e.id, e.qty) for e in first if isinstance(e, Cancelled) and e.reason == EXPIRED] == [
        (2, 300), (4, 50)]
    assert not [e for e in first if isinstance(e, SettlementFailure | Rejected)]
    before = state(reg)
    for batch in (None, 1, 5):
        reg = reopen(reg)
        assert encode(run_log(reg, log, batch=batch)) == encode(first)
        assert state(reg) == before
    # a registry that stopped before the expiry, or right after it, continues as if uninterrupted
    i = log.index(Expire(unit=JPA, period=2010))
    for cut in (i, i + 1):
        other = fresh()
        run_log(other, log[:cut])
        other = reopen(other)
        assert encode(run_log(other, log, batch=3)) == encode(first)
        assert state(other) == before


def test_a_replayed_expiry_cancels_only_a_resting_sell_of_its_unit_type() -> None:
    """A recorded cancellation naming an order that is not open here means another log."""
    reg = MemoryRegistry()
    log = [*SETUP, sell(1, 300, 1500), Expire(unit=JPA, period=2010)]
    run_log(reg, log)
    before = state(reg)
    other = [*SETUP, buy(1, 300, 1500), Expire(unit=JPA, period=2010)]
    with pytest.raises(LogMismatch, match="cancelled order 1, not a resting sell of JPA"):
        Venue(reg, lag=1).apply_all(other)
    assert state(reg) == before


def test_apply_and_apply_all_give_the_same_events_and_state() -> None:
    log = session_log() + more_commands()
    results = []
    for batch in (None, 1, 2, 7):
        reg = MemoryRegistry()
        events = run_log(reg, log, batch=batch)
        results.append((encode(events), state(reg)))
    reg = MemoryRegistry()
    venue = Venue(reg, lag=1)
    one_by_one = [e for c in log for e in venue.apply(c)]
    results.append((encode(one_by_one), state(reg)))
    assert all(r == results[0] for r in results[1:])


# -- the command line -----------------------------------------------------------------------


def write_log(path: Path, commands: Sequence[Command]) -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(c) + b"\n" for c in commands))
    return path


def test_cli_replay_into_sqlite_twice_writes_the_same_events(tmp_path: Path) -> None:
    log = write_log(tmp_path / "session.jsonl", session_log())
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    out1, out2 = tmp_path / "e1.jsonl", tmp_path / "e2.jsonl"
    assert main(["replay", str(log), "--registry", url, "--settle-lag", "1", "--out", str(out1),
                 "--quiet"]) == EXIT_OK
    reg = SQLiteRegistry(tmp_path / "reg.db")
    before = state(reg)
    reg.close()
    assert main(["replay", str(log), "--registry", url, "--settle-lag", "1", "--out", str(out2),
                 "--quiet"]) == EXIT_OK
    assert out1.read_bytes() == out2.read_bytes()
    assert out1.read_bytes() == encode(run_log(MemoryRegistry(), session_log()))
    reg = SQLiteRegistry(tmp_path / "reg.db")
    assert state(reg) == before
    reg.close()


def test_cli_replay_into_memory(tmp_path: Path) -> None:
    log = write_log(tmp_path / "session.jsonl", session_log())
    out = tmp_path / "e.jsonl"
    assert main(["replay", str(log), "--registry", "memory:", "--settle-lag", "1", "--out", str(out),
                 "--quiet"]) == EXIT_OK
    assert out.read_bytes() == encode(run_log(MemoryRegistry(), session_log()))


def test_cli_settle_lag_settles_on_business_days(tmp_path: Path) -> None:
    commands: list[Command] = [*SETUP, sell(1, 10, 1500), buy(2, 10, 1500), BusinessDay(day=1)]
    log = write_log(tmp_path / "lag.jsonl", commands)
    out = tmp_path / "e.jsonl"
    assert main(["replay", str(log), "--registry", "memory:", "--settle-lag", "1", "--out", str(out),
                 "--quiet"]) == EXIT_OK
    lines = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    assert [e["type"] for e in lines[len(SETUP):]] == ["accepted", "accepted", "trade", "recorded",
                                                       "trade_settled"]
    assert lines[-2] == {"type": "recorded", "seq": S0 + 3, "command": "business_day",
                         "detail": "day 1: 1 trades due"}
    assert lines[-1]["trade_id"] == S0 + 2
    # without a lag the trade settles at once and the business day finds nothing due
    assert main(["replay", str(log), "--registry", "memory:", "--out", str(out), "--quiet"]) == EXIT_OK
    tags = [msgspec.json.decode(line)["type"] for line in out.read_bytes().splitlines()][len(SETUP):]
    assert tags == ["accepted", "accepted", "trade", "trade_settled", "recorded"]


def test_cli_plain_replay_rejects_registry_commands(tmp_path: Path) -> None:
    log = write_log(tmp_path / "plain.jsonl", SETUP[:2])
    out = tmp_path / "e.jsonl"
    assert main(["replay", str(log), "--out", str(out), "--quiet"]) == EXIT_OK
    assert [msgspec.json.decode(line)["reason"] for line in out.read_bytes().splitlines()] == [
        "no_registry", "no_registry"]


@pytest.mark.parametrize("url", ["sqlite:///", "mysql://x", "memory", "nonsense"])
def test_cli_bad_registry_url_is_a_usage_error(tmp_path: Path, url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    log = write_log(tmp_path / "x.jsonl", SETUP)
    assert main(["replay", str(log), "--registry", url, "--out", str(tmp_path / "e.jsonl")]) == EXIT_USAGE
    assert "not a registry URL" in capsys.readouterr().err


def test_cli_negative_settle_lag_is_a_usage_error(tmp_path: Path) -> None:
    log = write_log(tmp_path / "x.jsonl", SETUP)
    assert main(["replay", str(log), "--registry", "memory:", "--settle-lag", "-1"]) == EXIT_USAGE


def test_cli_different_log_into_a_used_registry_fails(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    log = write_log(tmp_path / "a.jsonl", session_log())
    other = write_log(tmp_path / "b.jsonl", [*SETUP, sell(1, 100, 1500), *session_log()[len(SETUP):]])
    assert main(["replay", str(log), "--registry", url, "--out", str(tmp_path / "e.jsonl"),
                 "--quiet"]) == EXIT_OK
    assert main(["replay", str(other), "--registry", url, "--out", str(tmp_path / "f.jsonl"),
                 "--quiet"]) == EXIT_IO
    assert "another log" in capsys.readouterr().err


def test_cli_replay_into_a_used_registry_takes_its_settings(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A registry records the currency and settlement lag of the venue that went through it:
    a replay into it needs neither flag again, and other ones are refused before anything runs."""
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    log = write_log(tmp_path / "a.jsonl", session_log())
    first, again = tmp_path / "e.jsonl", tmp_path / "f.jsonl"
    assert main(["replay", str(log), "--registry", url, "--settle-lag", "1", "--currency", "JPY",
                 "--out", str(first), "--quiet"]) == EXIT_OK
    reg = SQLiteRegistry(tmp_path / "reg.db")
    assert Venue.settings_of(reg) == ("JPY", 1)
    before = state(reg)
    reg.close()
    assert main(["replay", str(log), "--registry", url, "--out", str(again), "--quiet"]) == EXIT_OK
    assert again.read_bytes() == first.read_bytes()
    for flags, said in ((["--currency", "EUR"], "not EUR and 1"), (["--settle-lag", "0"], "not JPY and 0")):
        assert main(["replay", str(log), "--registry", url, *flags, "--quiet"]) == EXIT_IO
        assert said in capsys.readouterr().err
    reg = SQLiteRegistry(tmp_path / "reg.db")
    assert state(reg) == before
    reg.close()


def test_a_venue_with_other_settings_on_a_used_registry_is_a_log_mismatch() -> None:
    reg = MemoryRegistry()
    events = run_log(reg, session_log())  # lag 1, JPY
    assert Venue.settings_of(reg) == ("JPY", 1) and Venue.settings_of(MemoryRegistry()) is None
    before = state(reg)
    with pytest.raises(LogMismatch, match="currency JPY and settlement lag 1, not EUR and 1"):
        Venue(reg, currency="EUR", lag=1)
    assert state(reg) == before
    assert run_log(reg, session_log()) == events


# -- saving and restoring a venue ------------------------------------------------------------


def _restored(reg: Registry, state: VenueState) -> Venue:
    """A venue rebuilt from ``state`` after a trip through JSON, as a snapshot file would make."""
    again = msgspec.json.decode(msgspec.json.encode(state), type=VenueState)
    return Venue.from_venue_state(reg, again, lag=1)


@pytest.mark.parametrize("cut", [12, 20, 27])
def test_a_restored_venue_continues_as_if_uninterrupted(backend: tuple[RegistryFactory, Reopen],
                                                         cut: int) -> None:
    """Save a venue mid-session (trades still awaiting settlement, T+1), reopen the registry,
    restore, continue: the same events and registry as one uninterrupted run."""
    fresh, reopen = backend
    log = session_log() + more_commands()
    one = fresh()
    straight = run_log(one, log)
    two = fresh()
    venue = Venue(two, lag=1)
    first = venue.apply_all(log[:cut])
    state = venue.export_venue_state()
    two = reopen(two)
    restored = _restored(two, state)
    assert restored.state_hash() == venue.state_hash()
    rest = restored.apply_all(log[cut:])
    assert encode(first + rest) == encode(straight)
    assert fingerprint(two) == fingerprint(one)
    restored.check()
    two.check()


def test_a_restored_venue_catches_up_a_registry_that_went_further(
        backend: tuple[RegistryFactory, Reopen]) -> None:
    fresh, reopen = backend
    log = session_log() + more_commands()
    one = fresh()
    straight = run_log(one, log)
    two = fresh()
    venue = Venue(two, lag=1)
    first = venue.apply_all(log[:15])
    saved = venue.export_venue_state()
    venue.apply_all(log[15:25])  # the registry moves on; the saved state does not
    two = reopen(two)
    restored = _restored(two, saved)
    rest = restored.apply_all(log[15:])  # replays 15..25 without touching the registry, then goes on
    assert encode(first + rest) == encode(straight)
    assert fingerprint(two) == fingerprint(one)


def test_a_buy_that_rests_while_a_restored_venue_catches_up_gives_its_whole_hold_back() -> None:
    """A buy admitted in the stretch the registry already holds keeps its limit price here, so
    its cancellation releases ``price * qty`` as in a straight run (it released ``qty`` before)."""
    with open(Path(__file__).parent.parent / "examples" / "jvets-2010.jsonl", "rb") as f:
        log = [c for batch, *_ in command_batches(f, False) for c in batch]
    one = MemoryRegistry()
    Venue(one).apply_all(log)
    two = MemoryRegistry()
    venue = Venue(two)
    venue.apply_all(log[:400])
    saved = msgspec.msgpack.encode(venue.export_venue_state())
    venue.apply_all(log[400:800])  # the registry moves on; the saved state does not
    restored = Venue.from_venue_state(two, msgspec.msgpack.decode(saved, type=VenueState))
    restored.apply_all(log[400:])
    assert list(two.journal()) == list(one.journal())


def test_a_registry_behind_the_saved_state_is_refused() -> None:
    venue = Venue(MemoryRegistry(), lag=1)
    venue.apply_all(session_log()[:15])
    with pytest.raises(LogMismatch, match="behind"):
        _restored(MemoryRegistry(), venue.export_venue_state())


@pytest.mark.parametrize("name", ["x" * (NAME_MAX + 1), "a\nb", "a\x9fb"])
def test_hand_built_registry_commands_keep_the_rule_of_names(name: str) -> None:
    """A registry command built in Python with a name over the limit or with a control character is
    malformed (as the same line of a log would be), and the registry is not touched."""
    venue = make_venue()
    before = fingerprint(venue.registry)
    for command in (OpenAccount(account=name), Transfer(sender="tepco", receiver=name, unit=JPA, qty=1),
                    Deposit(account="tepco", currency=name, amount=1)):
        [rejected] = venue.apply(command)
        assert isinstance(rejected, Rejected) and rejected.reason == "malformed"
        assert f"1 to {NAME_MAX} characters" in rejected.detail
    assert fingerprint(venue.registry) == before


@pytest.mark.parametrize("name", ["x" * (NAME_MAX + 1), "a\x00b"])
def test_hand_built_orders_and_listings_keep_the_rule_of_names(name: str) -> None:
    engine = Engine()
    engine.apply(ListInstrument(SYM, JPA))
    for command in (NewOrder(1, name, SYM, Side.BUY, 1, price=1), ListInstrument(name, JPA)):
        [rejected] = engine.apply(command)
        assert isinstance(rejected, Rejected) and rejected.reason == "malformed"


# -- compliance calendar in the order log (issue 14, item 3) -------------------------------

DEADLINE_LOG: list[Command] = [
    *SETUP,
    SetDeadline(scheme="JVETS", period=2010, day=3, penalty=1_000, currency="JPY"),
    RecordEmissions(account="tepco", period=2010, tonnes=1200),
    Surrender(account="tepco", period=2010, unit=JPA, qty=900, to="retired"),
    CorrectEmissions(account="tepco", period=2010, tonnes=1250),
    BusinessDay(day=3),
    BusinessDay(day=4),
    Surrender(account="tepco", period=2010, unit=JPA, qty=100, to="retired"),
    RecordEmissions(account="marubeni", period=2010, tonnes=5),
    CorrectEmissions(account="tepco", period=2010, tonnes=900),
    SetDeadline(scheme="JVETS", period=2011, day=2),
    SetDeadline(scheme="JVETS", period=2010, day=9),
    SetDeadline(scheme="NOPE", period=2010, day=9),
    SetDeadline(scheme="JVETS", period=2012, day=9, penalty=-1, currency="JPY"),
    SetDeadline(scheme="JVETS", period=2012, day=9, multiple=0),
    BusinessDay(day=5),
]


def test_deadline_in_the_order_log_makes_compliance_final_with_a_penalty() -> None:
    v = make_venue()
    reg = v.registry
    events = v.apply_all(DEADLINE_LOG[len(SETUP):])
    s = S0
    assert events[0] == Recorded(s, "deadline", events[0].txid, "JVETS 2010: surrender by day 3")  # type: ignore[union-attr]
    assert events[2] == Recorded(s + 2, "surrender", events[2].txid,  # type: ignore[union-attr]
                                 "900 of 1200 surrendered for 2010: status B")
    assert events[3] == Recorded(s + 3, "emissions_correction", events[3].txid,  # type: ignore[union-attr]
                                 "2010 emissions corrected from 1200 to 1250: 900 of 1250 surrendered, "
                                 "status B")
    assert events[4] == Recorded(s + 4, "business_day", None, "day 3: 0 trades due")
    finals = [e for e in events if isinstance(e, Recorded) and e.command == "compliance_final"]
    assert [(e.seq, e.detail) for e in finals] == [
        (s + 6, "marubeni 2010: status C final at the deadline (day 3), 0 of 0 surrendered, 0 short"),
        (s + 7, "tepco 2010: status B final at the deadline (day 3), 900 of 1250 surrendered, 350 short, "
                "penalty 350000 JPY")]
    rejected = [(e.seq, e.reason) for e in events if isinstance(e, Rejected)]
    assert rejected == [(s + 8, "deadline_passed"), (s + 9, "deadline_passed"), (s + 10, "deadline_passed"),
                        (s + 11, "refused"), (s + 12, "refused"), (s + 13, "unknown_scheme"),
                        (s + 14, "bad_qty"), (s + 15, "bad_qty")]
    assert events[-1] == Recorded(s + 16, "business_day", None, "day 5: 0 trades due")
    c = reg.compliance("tepco", 2010)
    assert (c.status, c.shortfall, c.final, c.penalty) == ("B", 350, True, 350_000)
    assert reg.holding("tepco", JPA) == 100 and reg.balance("tepco", "JPY") == 0
    verified(v)


def test_deadline_log_replays_into_sqlite_with_the_same_events(tmp_path: Path) -> None:
    log = write_log(tmp_path / "deadline.jsonl", DEADLINE_LOG)
    db = f"sqlite:///{tmp_path / 'reg.db'}"
    outs = []
    for i in range(2):
        out = tmp_path / f"e{i}.jsonl"
        assert main(["replay", str(log), "--registry", db, "--out", str(out), "--quiet"]) == EXIT_OK
        outs.append(out.read_bytes())
    assert main(["replay", str(log), "--registry", "memory:", "--out", str(tmp_path / "m.jsonl"),
                 "--quiet"]) == EXIT_OK
    assert outs[0] == outs[1] == (tmp_path / "m.jsonl").read_bytes()
    assert outs[0].count(b'"command":"compliance_final"') == 2


def test_deadline_with_a_multiple_says_what_it_adds_to_the_next_obligation() -> None:
    v = make_venue()
    v.apply_all([SetDeadline(scheme="JVETS", period=2010, day=1, multiple=3),
                 RecordEmissions(account="tepco", period=2010, tonnes=1010),
                 Surrender(account="tepco", period=2010, unit=JPA, qty=1000, to="retired")])
    events = v.apply(BusinessDay(day=2))
    assert [e.detail for e in events if isinstance(e, Recorded) and e.command == "compliance_final"] == [
        "marubeni 2010: status C final at the deadline (day 1), 0 of 0 surrendered, 0 short",
        "tepco 2010: status B final at the deadline (day 1), 1000 of 1010 surrendered, 10 short, "
        "30 added to 2011's obligation"]
    v.apply(RecordEmissions(account="tepco", period=2011, tonnes=5))
    assert v.registry.compliance("tepco", 2011).obligation == 35
    verified(v)


def test_reporting_deadline_in_the_order_log_records_status_c_before_the_finals() -> None:
    v = make_venue()
    events = v.apply_all([SetDeadline(scheme="JVETS", period=2010, day=3, report=1),
                          RecordEmissions(account="tepco", period=2010, tonnes=10),
                          SetDeadline(scheme="JVETS", period=2011, day=3, report=4),
                          BusinessDay(day=2),
                          RecordEmissions(account="marubeni", period=2010, tonnes=5),
                          BusinessDay(day=4)])
    assert events[0].detail == "JVETS 2010: report by day 1, surrender by day 3"  # type: ignore[union-attr]
    assert [type(e).__name__ for e in events[2:]] == ["Rejected", "Recorded", "Recorded", "Recorded",
                                                      "Recorded", "Recorded", "Recorded"]
    assert [(e.command, e.detail) for e in events[3:] if isinstance(e, Recorded)] == [
        ("business_day", "day 2: 0 trades due"),
        ("report_missed", "marubeni 2010: status C at the reporting deadline (day 1), no verified emissions; "
                          "emissions entered by the surrender deadline (day 3) still count"),
        ("emissions", ""),
        ("business_day", "day 4: 0 trades due"),
        ("compliance_final", "marubeni 2010: status B final at the deadline (day 3), 0 of 5 surrendered, "
                             "5 short"),
        ("compliance_final", "tepco 2010: status B final at the deadline (day 3), 0 of 10 surrendered, "
                             "10 short")]
    assert events[2].reason == "refused"  # type: ignore[union-attr]  # a reporting day after the deadline
    assert v.registry.compliance("marubeni", 2010).report_missed == 1
    verified(v)


def test_removals_through_the_log() -> None:
    """A scheme with removals takes negative emissions; one without refuses them (bad_qty)."""
    v = make_venue()
    nzu = UnitType.NZU
    events = v.apply_all([
        OpenScheme(name="NZ", allowances=frozenset({nzu}), removals=True),
        OpenAccount(account="forest", scheme="NZ"),
        RecordEmissions(account="forest", period=2010, tonnes=-40),
        RecordEmissions(account="tepco", period=2010, tonnes=-40),
    ])
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in events] == [
        ("Recorded", None), ("Recorded", None), ("Recorded", None), ("Rejected", "bad_qty")]
    c = v.registry.compliance("forest", 2010)
    assert (c.verified, c.obligation, c.status) == (-40, 0, "A")
    verified(v)
