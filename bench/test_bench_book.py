"""Micro-benchmarks of the engine's hot paths (pytest-benchmark).

    .venv/bin/pytest bench --benchmark-only

Each single-command benchmark times one ``Engine.apply`` on a fresh copy of the same
~70-order book (:func:`workloads.small_book`, rebuilt by an untimed setup before
every round), then checks the events and the book it left. Nothing here asserts on
time: the numbers are for reading, not for passing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from carbonbook import (
    Accepted,
    Cancelled,
    CancelOrder,
    CancelReason,
    Command,
    Engine,
    Event,
    NewOrder,
    Side,
    Trade,
)
from carbonbook.operations import workload as workloads
from carbonbook.operations.workload import SYMBOL

TAKER = "taker"  # an account with no resting order, so self-trade prevention never fires
ROUNDS = 2_000
WARMUP = 100


@pytest.fixture(scope="module")
def book() -> list[Command]:
    commands = workloads.small_book(70)
    snapshot = _engine(commands).snapshot()[SYMBOL]
    assert len(snapshot["bids"]) + len(snapshot["asks"]) == 70
    return commands


def _engine(commands: Sequence[Command]) -> Engine:
    engine = Engine()
    for command in commands:
        engine.apply(command)
    return engine


def _bench_one(
    benchmark: BenchmarkFixture, book: Sequence[Command], command: Command
) -> tuple[list[Event], Engine]:
    """Time ``apply(command)`` on fresh engines holding ``book``; return the last round's
    events and engine."""
    engines: list[Engine] = []

    def setup() -> tuple[tuple[Engine, Command], dict[str, Any]]:
        engines[:] = [_engine(book)]
        return (engines[0], command), {}

    events: list[Event] = benchmark.pedantic(  # type: ignore[no-untyped-call]
        Engine.apply, setup=setup, rounds=ROUNDS, warmup_rounds=WARMUP
    )
    engine = engines[-1]
    engine.check()
    return events, engine


def _types(events: Sequence[Event]) -> list[type]:
    return [e.__class__ for e in events]


def test_rest_one_order(benchmark: BenchmarkFixture, book: list[Command]) -> None:
    engine = _engine(book)
    bid = engine.best_bid(SYMBOL)
    assert bid is not None
    price = bid - 3  # an existing or new level behind the touch; never crosses
    command = NewOrder(1_000, TAKER, SYMBOL, Side.BUY, 25, price=price)

    events, engine = _bench_one(benchmark, book, command)

    assert _types(events) == [Accepted]
    state = engine.order(1_000)
    assert state is not None and state.status == "open" and state.price == price


def test_cancel_one_order(benchmark: BenchmarkFixture, book: list[Command]) -> None:
    victim = book[35]  # in the middle of the book
    assert isinstance(victim, NewOrder)

    events, engine = _bench_one(benchmark, book, CancelOrder(victim.id))

    assert _types(events) == [Cancelled]
    cancelled = events[0]
    assert isinstance(cancelled, Cancelled)
    assert (cancelled.id, cancelled.qty, cancelled.reason) == (
        victim.id, victim.qty, CancelReason.USER)
    state = engine.order(victim.id)
    assert state is not None and state.status == "cancelled"


def test_match_one(benchmark: BenchmarkFixture, book: list[Command]) -> None:
    engine = _engine(book)
    ask = engine.best_ask(SYMBOL)
    assert ask is not None
    maker = engine.queue(SYMBOL, Side.SELL, ask)[0]
    assert maker.qty is not None
    command = NewOrder(1_000, TAKER, SYMBOL, Side.BUY, maker.qty, price=ask)

    events, engine = _bench_one(benchmark, book, command)

    assert _types(events) == [Accepted, Trade]
    trade = events[1]
    assert isinstance(trade, Trade)
    assert (trade.price, trade.qty, trade.maker_id, trade.buy_id) == (
        ask, maker.qty, maker.id, 1_000)
    filled = engine.order(maker.id)
    assert filled is not None and filled.status == "filled"


def test_sweep_five_levels(benchmark: BenchmarkFixture, book: list[Command]) -> None:
    engine = _engine(book)
    levels = engine.depth(SYMBOL, levels=5).asks
    assert len(levels) == 5
    qty = sum(level.qty for level in levels)
    command = NewOrder(1_000, TAKER, SYMBOL, Side.BUY, qty, price=levels[-1].price)

    events, engine = _bench_one(benchmark, book, command)

    trades = [e for e in events if isinstance(e, Trade)]
    assert _types(events) == [Accepted] + [Trade] * len(trades)
    assert sorted({t.price for t in trades}) == [level.price for level in levels]
    assert sum(t.qty for t in trades) == qty
    assert len(trades) == sum(level.count for level in levels)
    best = engine.best_ask(SYMBOL)
    assert best is None or best > levels[-1].price


BUSY_PREFIX = 10_000


@pytest.fixture(scope="module")
def busy_prefix() -> list[Command]:
    return workloads.busy(BUSY_PREFIX - 1)  # the instrument and the first 9,999 messages


def _replay(engine: Engine, commands: Sequence[Command]) -> int:
    """Apply every command; return how many events they made."""
    apply = engine.apply
    made = 0
    for command in commands:
        made += len(apply(command))
    return made


def test_busy_first_10k(benchmark: BenchmarkFixture, busy_prefix: list[Command]) -> None:
    reference = Engine()
    expected = sum(len(reference.apply(c)) for c in busy_prefix)
    engines: list[Engine] = []

    def setup() -> tuple[tuple[Engine, list[Command]], dict[str, Any]]:
        engines[:] = [Engine()]
        return (engines[0], busy_prefix), {}

    made = benchmark.pedantic(  # type: ignore[no-untyped-call]
        _replay, setup=setup, rounds=20, warmup_rounds=2
    )

    assert len(busy_prefix) == BUSY_PREFIX
    assert made == expected
    engines[0].check()
    assert engines[0].snapshot() == reference.snapshot()
