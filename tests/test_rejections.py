"""Bad input: every rejection code, the order in which faults are checked, and the
guarantee that a rejected command changes nothing (and leaves its id free).

``detail`` is free text, so it is matched with ``ANY`` (the fixtures check that it is
a non-empty string); ``seq``, ``id`` and ``reason`` are exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from unittest.mock import ANY

import pytest

from carbonbook import (
    Accepted,
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
    SelfTradePrevention,
    Side,
    TimeInForce,
    Undecodable,
    UnitType,
)
from carbonbook._types import NAME_MAX
from conftest import SYM, book

MALFORMED = RejectReason.MALFORMED
UNKNOWN_SYMBOL = RejectReason.UNKNOWN_SYMBOL
DUPLICATE_SYMBOL = RejectReason.DUPLICATE_SYMBOL
BAD_PRICE = RejectReason.BAD_PRICE
BAD_QTY = RejectReason.BAD_QTY
DUPLICATE_ID = RejectReason.DUPLICATE_ID
UNKNOWN_ORDER = RejectReason.UNKNOWN_ORDER
POST_ONLY = RejectReason.POST_ONLY
TICKED = "EUA-TICK5-LOT10"
BIG = 2**63

State = tuple[Any, ...]


def state(eng: Engine) -> State:
    """Everything a rejected command must leave alone, as far as the queries can see."""
    return (
        eng.snapshot(),
        eng.symbols,
        [eng.order(i) for i in range(0, 12)],
        [eng.depth(s, 100) for s in eng.symbols],
    )


def rejected(seq: int, oid: int | None, reason: RejectReason) -> Rejected:
    return Rejected(seq, oid, reason, ANY)


def assert_rejected(
    eng: Engine, cmd: Any, seq: int, oid: int | None, reason: RejectReason
) -> None:
    """``cmd`` gets exactly one ``rejected`` event and changes nothing."""
    before = state(eng)
    events = eng.apply(cast(Command, cmd))
    assert events == [rejected(seq, oid, reason)]
    assert state(eng) == before
    eng.check()


def new(**overrides: Any) -> NewOrder:
    """A valid resting buy of 10 at 100 (id 7), with fields overridden (possibly badly)."""
    fields: dict[str, Any] = {
        "id": 7, "account": "acc", "symbol": SYM, "side": Side.BUY, "qty": 10, "price": 100,
    }
    fields.update(overrides)
    return NewOrder(**fields)


def list_ticked(eng: Engine, seq: int) -> None:
    assert eng.apply(ListInstrument(TICKED, UnitType.EUA, tick=5, lot=10)) == [
        InstrumentListed(seq, TICKED, UnitType.EUA, 5, 10)
    ]


# -- instruments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tick": 0}, MALFORMED),
        ({"tick": -5}, MALFORMED),
        ({"lot": 0}, MALFORMED),
        ({"lot": -1}, MALFORMED),
        ({"tick": 1.0}, MALFORMED),
        ({"lot": True}, MALFORMED),
        ({"tick": BIG}, MALFORMED),
        ({"unit": "XYZ"}, MALFORMED),
        ({"symbol": ""}, MALFORMED),
        ({"symbol": 5}, MALFORMED),
        ({"symbol": SYM}, DUPLICATE_SYMBOL),
        ({"symbol": SYM, "unit": UnitType.EUA, "tick": 5}, DUPLICATE_SYMBOL),
        ({"symbol": SYM, "tick": 0}, MALFORMED),  # malformed wins over duplicate_symbol
    ],
)
def test_bad_instrument(eng: Engine, overrides: dict[str, Any], reason: RejectReason) -> None:
    fields: dict[str, Any] = {"symbol": "NEW", "unit": UnitType.CER}
    fields.update(overrides)
    assert_rejected(eng, ListInstrument(**fields), 2, None, reason)
    assert eng.symbols == [SYM]
    assert eng.apply(ListInstrument("NEW", UnitType.CER)) == [
        InstrumentListed(3, "NEW", UnitType.CER, 1, 1)
    ]


def test_duplicate_symbol_keeps_the_first_book(eng: Engine) -> None:
    assert eng.apply(new(id=1)) == [Accepted(2, 1, SYM)]
    assert_rejected(eng, ListInstrument(SYM, UnitType.JPA), 3, None, DUPLICATE_SYMBOL)
    assert eng.snapshot() == book(bids=[[100, 1, 10]])


# -- new orders: malformed ---------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "oid"),
    [
        ({"price": None}, 7),  # limit without a price
        ({"order_type": OrderType.MARKET}, 7),  # market with a price
        ({"order_type": OrderType.MARKET, "price": None, "post_only": True}, 7),
        ({"post_only": True, "tif": TimeInForce.IOC}, 7),
        ({"post_only": True, "tif": TimeInForce.FOK}, 7),
        ({"price": 100.0}, 7),
        ({"price": "100"}, 7),
        ({"price": True}, 7),
        ({"price": BIG}, 7),
        ({"price": -BIG - 1}, 7),
        ({"qty": 10.0}, 7),
        ({"qty": True}, 7),
        ({"qty": "10"}, 7),
        ({"qty": BIG}, 7),
        ({"id": "7"}, None),
        ({"id": 7.0}, None),
        ({"id": True}, None),
        ({"id": BIG}, None),
        ({"id": -1}, None),
        ({"account": ""}, 7),
        ({"account": None}, 7),
        ({"symbol": ""}, 7),
        ({"symbol": None}, 7),
        ({"side": "up"}, 7),
        ({"tif": "day"}, 7),
        ({"stp": "none"}, 7),
        ({"order_type": "stop"}, 7),
        ({"post_only": None}, 7),
    ],
    ids=repr,
)
def test_malformed_new_order(eng: Engine, overrides: dict[str, Any], oid: int | None) -> None:
    assert_rejected(eng, new(**overrides), 2, oid, MALFORMED)
    # nothing was recorded under id 7
    assert eng.apply(new()) == [Accepted(3, 7, SYM)]


@pytest.mark.parametrize(
    "overrides",
    [{"side": "buy"}, {"tif": "gtc"}, {"stp": "cancel_resting"}, {"order_type": "limit"},
     {"post_only": 0}],
    ids=repr,
)
def test_values_equal_to_the_enum_members_are_accepted(
    eng: Engine, overrides: dict[str, Any]
) -> None:
    """The enums are StrEnums: a plain value equal to a member is that member."""
    assert eng.apply(new(**overrides)) == [Accepted(2, 7, SYM)]
    assert eng.snapshot() == book(bids=[[100, 7, 10]])  # a resting buy, as the value says
    assert eng.order(7) == OrderState(7, "open", SYM, "acc", Side.BUY, 100, 10)
    eng.check()


def test_not_a_command(eng: Engine) -> None:
    assert_rejected(eng, "hello", 2, None, MALFORMED)
    assert_rejected(eng, Accepted(1, 1, SYM), 3, None, MALFORMED)


def test_undecodable_record_takes_a_seq(eng: Engine) -> None:
    assert eng.apply(Undecodable(3, "not JSON")) == [Rejected(2, None, MALFORMED, "not JSON", 3)]
    assert eng.apply(Undecodable(4, "missing qty", 9)) == [Rejected(3, 9, MALFORMED, "missing qty", 4)]
    assert eng.apply(new()) == [Accepted(4, 7, SYM)]
    assert eng.order(9) is None


# -- new orders: the other codes and their order -----------------------------------


@pytest.fixture
def crossable(eng: Engine) -> Engine:
    """SYM with order 1 (sell 5 at 100, seq 2); TICKED (tick 5, lot 10) listed as seq 3."""
    assert eng.apply(NewOrder(1, "s", SYM, Side.SELL, 5, price=100)) == [Accepted(2, 1, SYM)]
    list_ticked(eng, 3)
    return eng


@pytest.mark.parametrize(
    ("cmd", "oid", "reason"),
    [
        # every fault at once, then one fewer each time
        (NewOrder(1, "", "NOPE", Side.BUY, 0, price=0, post_only=True), 1, MALFORMED),
        (NewOrder(1, "b", "NOPE", Side.BUY, 0, price=0, post_only=True), 1, UNKNOWN_SYMBOL),
        (NewOrder(1, "b", SYM, Side.BUY, 0, price=0, post_only=True), 1, BAD_PRICE),
        (NewOrder(1, "b", SYM, Side.BUY, 0, price=100, post_only=True), 1, BAD_QTY),
        (NewOrder(1, "b", SYM, Side.BUY, 5, price=100, post_only=True), 1, DUPLICATE_ID),
        (NewOrder(2, "b", SYM, Side.BUY, 5, price=100, post_only=True), 2, POST_ONLY),
        # pairs
        (NewOrder(2, "b", "NOPE", Side.BUY, 5, price=100), 2, UNKNOWN_SYMBOL),
        (NewOrder(1, "b", "NOPE", Side.BUY, 5, price=100), 1, UNKNOWN_SYMBOL),
        (NewOrder(1, "b", SYM, Side.BUY, 5, price=-1), 1, BAD_PRICE),
        (NewOrder(1, "b", SYM, Side.BUY, -5, price=100), 1, BAD_QTY),
        (NewOrder(2, "b", TICKED, Side.BUY, 15, price=1003), 2, BAD_PRICE),
        (NewOrder(1, "b", TICKED, Side.BUY, 15, price=1005), 1, BAD_QTY),
        (NewOrder(1, "b", TICKED, Side.BUY, 20, price=1005), 1, DUPLICATE_ID),
        (NewOrder(2, "b", SYM, Side.BUY, 0, order_type=OrderType.MARKET), 2, BAD_QTY),
        (NewOrder(1, "b", SYM, Side.BUY, 5, order_type=OrderType.MARKET), 1, DUPLICATE_ID),
    ],
    ids=repr,
)
def test_new_order_fault_order(
    crossable: Engine, cmd: NewOrder, oid: int, reason: RejectReason
) -> None:
    assert_rejected(crossable, cmd, 4, oid, reason)


@pytest.mark.parametrize("price", [0, -5, -BIG, 1, 4, 1003, 1004])
def test_bad_price(crossable: Engine, price: int) -> None:
    cmd = NewOrder(2, "b", TICKED, Side.BUY, 10, price=price)
    assert_rejected(crossable, cmd, 4, 2, BAD_PRICE)


@pytest.mark.parametrize("qty", [0, -10, -BIG, 1, 5, 15, 99])
@pytest.mark.parametrize("order_type", [OrderType.LIMIT, OrderType.MARKET])
def test_bad_qty(crossable: Engine, qty: int, order_type: OrderType) -> None:
    price = 1005 if order_type is OrderType.LIMIT else None
    cmd = NewOrder(2, "b", TICKED, Side.SELL, qty, price=price, order_type=order_type)
    assert_rejected(crossable, cmd, 4, 2, BAD_QTY)


def test_multiples_of_tick_and_lot_are_accepted(crossable: Engine) -> None:
    assert crossable.apply(NewOrder(2, "b", TICKED, Side.BUY, 20, price=5)) == [
        Accepted(4, 2, TICKED)
    ]
    assert crossable.apply(NewOrder(3, "b", TICKED, Side.BUY, 10, price=1005)) == [
        Accepted(5, 3, TICKED)
    ]
    assert crossable.snapshot()[TICKED] == {"bids": [[1005, 3, 10], [5, 2, 20]], "asks": []}


# -- duplicate ids: every way an id gets used --------------------------------------

MKT = OrderType.MARKET
HISTORIES: dict[str, list[Command]] = {
    "resting": [NewOrder(1, "s", SYM, Side.SELL, 5, price=100)],
    "filled": [
        NewOrder(2, "s", SYM, Side.SELL, 5, price=100),
        NewOrder(1, "b", SYM, Side.BUY, 5, price=100),
    ],
    "filled-maker": [
        NewOrder(1, "s", SYM, Side.SELL, 5, price=100),
        NewOrder(2, "b", SYM, Side.BUY, 5, price=100),
    ],
    "user-cancelled": [NewOrder(1, "s", SYM, Side.SELL, 5, price=100), CancelOrder(1)],
    "ioc": [NewOrder(1, "b", SYM, Side.BUY, 5, price=100, tif=TimeInForce.IOC)],
    "market": [NewOrder(1, "b", SYM, Side.BUY, 5, order_type=MKT)],
    "fok": [NewOrder(1, "b", SYM, Side.BUY, 5, price=100, tif=TimeInForce.FOK)],
    "self-trade": [
        NewOrder(2, "b", SYM, Side.SELL, 5, price=100),
        NewOrder(1, "b", SYM, Side.BUY, 5, price=100),
    ],
    "cancelled-resting": [
        NewOrder(1, "b", SYM, Side.SELL, 5, price=100),
        NewOrder(2, "b", SYM, Side.BUY, 5, price=100,
                 stp=SelfTradePrevention.CANCEL_RESTING),
    ],
    "other-instrument": [
        ListInstrument("OTHER", UnitType.JCR),
        NewOrder(1, "s", "OTHER", Side.SELL, 5, price=100),
    ],
    "modified": [NewOrder(1, "s", SYM, Side.SELL, 5, price=100), ModifyOrder(1, price=200)],
}


@pytest.mark.parametrize("history", HISTORIES.values(), ids=HISTORIES.keys())
def test_ids_are_unique_among_all_accepted_orders(eng: Engine, history: list[Command]) -> None:
    events = eng.apply_all(history)
    assert not any(isinstance(e, Rejected) for e in events)
    assert_rejected(eng, new(id=1, price=1), events[-1].seq + 1, 1, DUPLICATE_ID)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (new(id=3, price=None), MALFORMED),
        (new(id=3, symbol="NOPE"), UNKNOWN_SYMBOL),
        (new(id=3, price=0), BAD_PRICE),
        (new(id=3, qty=0), BAD_QTY),
        (new(id=3, price=100, side=Side.SELL, post_only=True), POST_ONLY),
    ],
    ids=["malformed", "unknown_symbol", "bad_price", "bad_qty", "post_only"],
)
def test_a_rejected_id_stays_free(eng: Engine, bad: NewOrder, reason: RejectReason) -> None:
    assert eng.apply(new(id=1, price=100)) == [Accepted(2, 1, SYM)]
    assert_rejected(eng, bad, 3, 3, reason)
    assert eng.order(3) is None
    assert eng.apply(new(id=3, price=50)) == [Accepted(4, 3, SYM)]
    assert eng.snapshot() == book(bids=[[100, 1, 10], [50, 3, 10]])


# -- cancel ------------------------------------------------------------------------


@pytest.mark.parametrize("oid", [-1, BIG, "1", True, 1.0, None])
def test_malformed_cancel(eng: Engine, oid: Any) -> None:
    assert eng.apply(new(id=1)) == [Accepted(2, 1, SYM)]
    assert_rejected(eng, CancelOrder(oid), 3, None, MALFORMED)


CANCEL_HISTORIES: dict[str, list[Command]] = {
    "never-seen": [],
    "rejected": [new(id=1, qty=0)],
    "filled": HISTORIES["filled"],
    "filled-maker": HISTORIES["filled-maker"],
    "user-cancelled": HISTORIES["user-cancelled"],
    "ioc": HISTORIES["ioc"],
    "market": HISTORIES["market"],
    "fok": HISTORIES["fok"],
    "self-trade": HISTORIES["self-trade"],
    "cancelled-resting": HISTORIES["cancelled-resting"],
}


@pytest.mark.parametrize("history", CANCEL_HISTORIES.values(), ids=CANCEL_HISTORIES.keys())
@pytest.mark.parametrize("kind", ["cancel", "modify"])
def test_cancel_or_modify_of_an_order_that_is_not_open(
    eng: Engine, history: list[Command], kind: str
) -> None:
    events = eng.apply_all(history)
    seq = events[-1].seq + 1 if events else 2
    cmd = CancelOrder(1) if kind == "cancel" else ModifyOrder(1, price=0, qty=0)
    assert_rejected(eng, cmd, seq, 1, UNKNOWN_ORDER)


def test_cancel_twice(eng: Engine) -> None:
    assert eng.apply(new(id=1)) == [Accepted(2, 1, SYM)]
    assert eng.apply(CancelOrder(1)) == [Cancelled(3, 1, 10, CancelReason.USER)]
    assert_rejected(eng, CancelOrder(1), 4, 1, UNKNOWN_ORDER)
    assert eng.order(1) == OrderState(1, "cancelled")


# -- modify ------------------------------------------------------------------------


@pytest.fixture
def modifiable(eng: Engine) -> Engine:
    """TICKED (tick 5, lot 10, seq 2); order 1 a post-only buy 10 at 1000 (seq 3), order 2 a
    sell 10 at 1010 (seq 4), order 3 a buy 10 at 1000 (seq 5), behind order 1."""
    list_ticked(eng, 2)
    assert eng.apply_all([
        NewOrder(1, "b", TICKED, Side.BUY, 10, price=1000, post_only=True),
        NewOrder(2, "s", TICKED, Side.SELL, 10, price=1010),
        NewOrder(3, "c", TICKED, Side.BUY, 10, price=1000),
    ]) == [Accepted(3, 1, TICKED), Accepted(4, 2, TICKED), Accepted(5, 3, TICKED)]
    return eng


@pytest.mark.parametrize(
    ("cmd", "oid", "reason"),
    [
        (ModifyOrder(1), 1, MALFORMED),  # neither price nor qty
        (ModifyOrder(99), 99, MALFORMED),  # malformed wins over unknown_order
        (ModifyOrder(cast(Any, -1), qty=10), None, MALFORMED),
        (ModifyOrder(cast(Any, BIG), qty=10), None, MALFORMED),
        (ModifyOrder(cast(Any, "1"), qty=10), None, MALFORMED),
        (ModifyOrder(cast(Any, True), qty=10), None, MALFORMED),
        (ModifyOrder(1, price=cast(Any, 1005.0)), 1, MALFORMED),
        (ModifyOrder(1, price=cast(Any, "1005")), 1, MALFORMED),
        (ModifyOrder(1, price=BIG), 1, MALFORMED),
        (ModifyOrder(1, qty=cast(Any, True)), 1, MALFORMED),
        (ModifyOrder(1, qty=cast(Any, 20.0)), 1, MALFORMED),
        (ModifyOrder(1, qty=-BIG - 1), 1, MALFORMED),
        (ModifyOrder(99, price=0, qty=0), 99, UNKNOWN_ORDER),
        (ModifyOrder(1, price=0), 1, BAD_PRICE),
        (ModifyOrder(1, price=-5), 1, BAD_PRICE),
        (ModifyOrder(1, price=1003), 1, BAD_PRICE),
        (ModifyOrder(1, price=1003, qty=15), 1, BAD_PRICE),  # wins over bad_qty
        (ModifyOrder(1, price=1013), 1, BAD_PRICE),  # wins over post_only
        (ModifyOrder(1, qty=0), 1, BAD_QTY),
        (ModifyOrder(1, qty=-10), 1, BAD_QTY),
        (ModifyOrder(1, qty=15), 1, BAD_QTY),
        (ModifyOrder(1, price=1010, qty=15), 1, BAD_QTY),  # wins over post_only
        (ModifyOrder(1, price=1010), 1, POST_ONLY),
        (ModifyOrder(1, price=1015, qty=20), 1, POST_ONLY),
    ],
    ids=repr,
)
def test_modify_fault_order(
    modifiable: Engine, cmd: ModifyOrder, oid: int | None, reason: RejectReason
) -> None:
    assert_rejected(modifiable, cmd, 6, oid, reason)
    # order 1 kept its price, qty and place in the queue
    assert modifiable.snapshot()[TICKED] == {
        "bids": [[1000, 1, 10], [1000, 3, 10]],
        "asks": [[1010, 2, 10]],
    }
    assert modifiable.depth(TICKED) == Depth(TICKED, [Level(1000, 20, 2)], [Level(1010, 10, 1)])
    assert modifiable.order(1) == OrderState(1, "open", TICKED, "b", Side.BUY, 1000, 10)


def test_modify_of_a_post_only_order_that_does_not_cross(modifiable: Engine) -> None:
    assert modifiable.apply(ModifyOrder(1, price=1005, qty=20)) == [Modified(6, 1, 1005, 20)]
    events: list[Event] = modifiable.apply(ModifyOrder(1, qty=10))
    assert events == [Modified(7, 1, 1005, 10)]
    assert modifiable.snapshot()[TICKED] == {
        "bids": [[1005, 1, 10], [1000, 3, 10]],
        "asks": [[1010, 2, 10]],
    }


def test_engine_without_instruments_rejects_orders(make_engine: Callable[[], Engine]) -> None:
    eng = make_engine()
    assert eng.apply(new(id=1)) == [rejected(1, 1, UNKNOWN_SYMBOL)]
    assert eng.apply(CancelOrder(1)) == [rejected(2, 1, UNKNOWN_ORDER)]
    assert eng.snapshot() == {}


def _watched() -> tuple[Engine, list[tuple[Command | Undecodable, list[Event]]]]:
    """An engine whose stage records every command with the events it gave."""
    engine = Engine()
    seen: list[tuple[Command | Undecodable, list[Event]]] = []
    engine.stage = lambda command, events, start: seen.append((command, events[start:]))
    return engine, seen


def test_the_stage_sees_every_command_with_its_events() -> None:
    """apply, apply_all and dispatch_marked call the stage after each command, the new orders
    and cancels that apply_all takes to their book directly included."""
    commands: list[Command] = [
        ListInstrument(SYM, UnitType.EUA),
        NewOrder(1, "a", SYM, Side.SELL, 10, price=100),
        NewOrder(2, "b", SYM, Side.BUY, 4, price=100),
        CancelOrder(1),
        CancelOrder(1),
    ]
    (batched, in_batch), (single, one_by_one), (marked, in_marked) = _watched(), _watched(), _watched()
    plain = Engine()
    expected = [plain.apply(c) for c in commands]
    assert batched.apply_all(commands) == [e for es in expected for e in es]
    assert [single.apply(c) for c in commands] == expected
    assert marked.dispatch_marked(commands, []) == [e for es in expected for e in es]
    assert in_batch == one_by_one == in_marked == list(zip(commands, expected, strict=True))


@pytest.mark.parametrize(("account", "fault"), [
    ("x" * NAME_MAX, None), ("東京電力\u00a0株式会社", None),
    ("x" * (NAME_MAX + 1), f"1 to {NAME_MAX} characters"), ("x" * 10_000_000, "10,000,000 characters"),
    ("a\u0000b", "U+0000"), ("a\u0085b", "U+0085")])
def test_hand_built_orders_follow_the_rule_of_names(make_engine: Callable[[], Engine], account: str,
                                                    fault: str | None) -> None:
    """A command built in Python skips the decoder's checks: the book's own quick test sends an
    account over the limit or with a control character to the full test, which refuses it."""
    eng = make_engine()
    eng.apply(ListInstrument(SYM, UnitType.JPA))
    (event,) = eng.apply(NewOrder(1, account, SYM, Side.BUY, 5, price=10))
    if fault is None:
        assert event == Accepted(2, 1, SYM)
    else:
        assert isinstance(event, Rejected) and (event.id, event.reason) == (1, RejectReason.MALFORMED)
        assert fault in event.detail and event.detail.startswith("account ")


@pytest.mark.parametrize("command", [
    NewOrder(1, "a", ["X"], Side.BUY, 5, price=5), NewOrder(1, "a", {"X": 1}, Side.BUY, 5, price=5),  # type: ignore[arg-type]
    NewOrder(1, None, SYM, Side.BUY, 5, price=5), NewOrder(1, "a", SYM, "up", 5, price=5),  # type: ignore[arg-type]
    NewOrder(1, "a", SYM, Side.BUY, 5.0, price=5), NewOrder(1, "a", SYM, Side.BUY, True, price=5),  # type: ignore[arg-type]
    NewOrder(1, "a", SYM, Side.BUY, 5, price=2**70), NewOrder(2**64, "a", SYM, Side.BUY, 5, price=5),
    NewOrder(1, "a", SYM, Side.BUY, 5, cap=2**80, order_type=OrderType.MARKET),
    CancelOrder([1]), CancelOrder(2**70), ModifyOrder([3], price=5), "junk", None,  # type: ignore[arg-type]
], ids=lambda c: repr(c)[:40])
def test_hostile_hand_built_commands_are_malformed_on_every_core(make_engine: Callable[[], Engine],
                                                                 command: Command) -> None:
    """Wrong types, unhashable names and out-of-range numbers built in Python: one ``malformed``
    rejection each, never an exception, and the book unchanged."""
    eng = make_engine()
    eng.apply(ListInstrument(SYM, UnitType.JPA))
    (event,) = eng.apply(command)
    assert isinstance(event, Rejected) and event.reason == RejectReason.MALFORMED
    assert eng.snapshot() == book()
