"""The settlement adapter: engine trades settle delivery versus payment, idempotently, now or at T+N."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from carbonbook import Engine, ListInstrument, NewOrder, Side, Trade, UnitType
from carbonbook.errors import UnknownTrade
from carbonbook.registry import MemoryRegistry, Registry, Scheme, Settled, SettlementFailed, SQLiteRegistry
from carbonbook.venue.settlement import Instrument, SettlementAdapter

SYM = "JPA-2010"
INSTRUMENTS = {SYM: Instrument(UnitType.JPA, "JPY")}


def market(reg: Registry) -> Registry:
    reg.create_scheme(Scheme("JVETS", frozenset({UnitType.JPA})))
    reg.set_cap("JVETS", 2010, 10_000)
    for name in ("tepco", "marubeni", "mitsui"):
        reg.open_account(name, scheme="JVETS")
    reg.issue("tepco", UnitType.JPA, 1000, scheme="JVETS", period=2010)
    reg.deposit("marubeni", "JPY", 1_000_000)
    return reg


def trade(seq: int, qty: int = 100, price: int = 1450, buyer: str = "marubeni", seller: str = "tepco") -> Trade:
    return Trade(seq, SYM, price, qty, 1, 2, 2, 1, buyer, seller)


def crash_at(n: int) -> Callable[[], None]:
    """A between-legs hook that raises on its ``n``-th call (the ``n``-th settlement's units leg done)."""
    calls: list[int] = []

    def boom() -> None:
        calls.append(1)
        if len(calls) == n:
            raise RuntimeError("crash between legs")

    return boom


def run_engine(adapter: SettlementAdapter) -> Engine:
    engine = Engine()
    engine.subscribe(adapter)
    engine.apply(ListInstrument(SYM, UnitType.JPA))
    engine.apply(NewOrder(1, "tepco", SYM, Side.SELL, 500, price=1450))
    engine.apply(NewOrder(2, "marubeni", SYM, Side.BUY, 200, price=1460))  # trade seq 4
    engine.apply(NewOrder(3, "mitsui", SYM, Side.BUY, 100, price=1450))  # trade seq 6: mitsui has no cash
    return engine


def test_engine_trades_settle_immediately() -> None:
    reg = market(MemoryRegistry())
    adapter = SettlementAdapter(reg, INSTRUMENTS)
    run_engine(adapter)
    ok, failed = adapter.results
    assert isinstance(ok, Settled) and (ok.trade_id, ok.qty, ok.amount) == (4, 200, 290_000)
    assert isinstance(failed, SettlementFailed) and failed.trade_id == 6
    assert failed.reason == "insufficient_funds" and "mitsui" in failed.detail
    assert reg.holding("marubeni", UnitType.JPA) == 200 and reg.holding("mitsui", UnitType.JPA) == 0
    assert reg.balance("tepco", "JPY") == 290_000
    reg.check()


def test_replay_into_the_same_database_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "reg.db"
    reg = market(SQLiteRegistry(path))
    first = SettlementAdapter(reg, INSTRUMENTS)
    run_engine(first)
    journal = list(reg.journal())
    reg.close()
    again = SQLiteRegistry(path)
    second = SettlementAdapter(again, INSTRUMENTS)
    run_engine(second)
    assert second.results == first.results
    assert list(again.journal()) == journal
    again.check()


def test_deferred_settlement_t_plus_n() -> None:
    reg = market(MemoryRegistry())
    adapter = SettlementAdapter(reg, INSTRUMENTS, lag=5)
    adapter([trade(10)])
    assert [t.seq for t in adapter.pending] == [10] and reg.holding("marubeni", UnitType.JPA) == 0
    adapter.settle_due(1)
    adapter([trade(11)])  # received on day 1: due on day 6
    assert adapter.settle_due(4) == []
    assert [r.trade_id for r in adapter.settle_due(5)] == [10]
    assert [t.seq for t in adapter.pending] == [11]
    assert [r.trade_id for r in adapter.settle_due(6)] == [11]
    assert reg.holding("marubeni", UnitType.JPA) == 200
    with pytest.raises(ValueError, match="not before"):
        adapter.settle_due(5)


def test_settle_unknown_trade() -> None:
    reg = market(MemoryRegistry())
    adapter = SettlementAdapter(reg, INSTRUMENTS, lag=1)
    before = list(reg.journal())
    with pytest.raises(UnknownTrade, match="never received"):
        adapter.settle(999)
    assert list(reg.journal()) == before
    adapter([trade(3)])
    assert isinstance(adapter.settle(3), Settled)  # early settlement on request
    assert adapter.settle(3) == reg.settlement(3)  # already recorded


def test_duplicate_trade_id_with_other_terms_fails_alone() -> None:
    reg = market(MemoryRegistry())
    adapter = SettlementAdapter(reg, INSTRUMENTS)
    adapter([trade(7), trade(7, qty=5), trade(8)])
    ok, dup, ok2 = adapter.results
    assert isinstance(ok, Settled) and isinstance(ok2, Settled)
    assert isinstance(dup, SettlementFailed) and dup.reason == "duplicate_trade"
    assert reg.holding("marubeni", UnitType.JPA) == 200
    reg.check()


def test_unknown_instrument_and_overflow_fail_with_a_reason() -> None:
    reg = market(MemoryRegistry())
    adapter = SettlementAdapter(reg, INSTRUMENTS)
    odd = Trade(5, "EUA-25", 100, 1, 1, 2, 2, 1, "marubeni", "tepco")
    huge = trade(6, qty=2**40, price=2**40)
    adapter([odd, huge])
    assert [r.reason for r in adapter.results if isinstance(r, SettlementFailed)] == [
        "unknown_instrument", "bad_qty"]


def test_batches_and_injected_failure_roll_back_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = market(MemoryRegistry())
    adapter = SettlementAdapter(reg, INSTRUMENTS, lag=1, batch=3)
    adapter([trade(i, qty=1, price=10) for i in range(1, 8)])
    monkeypatch.setattr(reg, "_between_legs", crash_at(5))
    with pytest.raises(RuntimeError):
        adapter.settle_due(1)
    # the first batch of 3 committed; the second was rolled back whole and stays pending
    assert [r.trade_id for r in adapter.results] == [1, 2, 3]
    assert [t.seq for t in adapter.pending] == [4, 5, 6, 7]
    assert reg.holding("marubeni", UnitType.JPA) == 3 and reg.balance("tepco", "JPY") == 30
    reg.check()
    monkeypatch.undo()
    adapter.settle_due(1)
    assert reg.holding("marubeni", UnitType.JPA) == 7 and adapter.pending == []


def test_holds_are_consumed() -> None:
    reg = market(MemoryRegistry())
    reg.reserve(1, "tepco", UnitType.JPA, 500)  # hold ids = order ids
    reg.reserve_cash(2, "marubeni", "JPY", 292_000)
    adapter = SettlementAdapter(reg, INSTRUMENTS, use_holds=True)
    run_engine(adapter)
    assert reg.available("tepco", UnitType.JPA) == 500
    assert reg.available_cash("marubeni", "JPY") == 1_000_000 - 292_000
    reg.check()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_failure_mid_batch_restores_split_and_consumed_blocks(backend: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    reg = market(MemoryRegistry() if backend == "memory" else SQLiteRegistry(str(tmp_path / "r.db")))
    for _ in range(3):  # tepco holds blocks of 1000, 7 and 7 units
        reg.issue("tepco", UnitType.JPA, 7, scheme="JVETS", period=2010)
    adapter = SettlementAdapter(reg, INSTRUMENTS, batch=10)
    adapter([trade(1, qty=995, price=1)])  # leaves 5 of the first block

    def state() -> tuple[object, ...]:
        return (reg.blocks(), reg.holding("tepco", UnitType.JPA), reg.holding("marubeni", UnitType.JPA),
                reg.balance("tepco", "JPY"), reg.balance("marubeni", "JPY"), list(reg.journal()),
                [reg.settlement(i) for i in range(1, 6)])

    before = state()
    for fail_at in (1, 2, 3):
        monkeypatch.setattr(reg, "_between_legs", crash_at(fail_at))
        with pytest.raises(RuntimeError):
            # 2: the rest of block 1 and a split of block 2; 3: splits block 2 again, consumes block 3
            adapter([trade(2, qty=8, price=1), trade(3, qty=9, price=1), trade(4, qty=1, price=1)])
        monkeypatch.undo()
        assert state() == before
        reg.check()
    adapter([trade(2, qty=8, price=1), trade(3, qty=9, price=1), trade(4, qty=1, price=1)])
    assert reg.holding("marubeni", UnitType.JPA) == 1013
    reg.check()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_failure_mid_batch_restores_consumed_holds(backend: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.db"
    reg = market(MemoryRegistry() if backend == "memory" else SQLiteRegistry(path))
    reg.reserve(1, "tepco", UnitType.JPA, 30)  # hold ids = order ids: trade() sells order 1, buys order 2
    reg.reserve_cash(2, "marubeni", "JPY", 300)
    adapter = SettlementAdapter(reg, INSTRUMENTS, use_holds=True, batch=10)
    # the third trade uses up both holds and takes the rest from free units and cash
    trades = [trade(3, qty=10, price=10), trade(4, qty=15, price=10), trade(5, qty=10, price=10)]

    def state(r: Registry) -> tuple[object, ...]:
        return (r.hold(1), r.hold(2), r.available("tepco", UnitType.JPA), r.available_cash("marubeni", "JPY"),
                r.blocks(), list(r.journal()), [r.settlement(i) for i in range(3, 6)])

    before = state(reg)
    for fail_at in (1, 2, 3):
        monkeypatch.setattr(reg, "_between_legs", crash_at(fail_at))
        with pytest.raises(RuntimeError):
            adapter(trades)
        monkeypatch.undo()
        assert state(reg) == before
        reg.check()
    adapter(trades)
    after = state(reg)
    assert after[:4] == (0, 0, 1000 - 35, 1_000_000 - 350)
    reg.check()
    if backend == "sqlite":
        assert state(SQLiteRegistry(path)) == after
