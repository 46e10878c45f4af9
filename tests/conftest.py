"""Shared fixtures for the worked-example tests.

``eng`` is an engine with one instrument (``SYM``, tick 1, lot 1) already listed as
seq 1, so every test's first command gets seq 2. Every engine made through the
fixtures is checked at teardown: ``engine.check()`` passes, the events its
subscriber saw are numbered 1, 2, 3, ... without a gap, and every ``rejected``
event carries a non-empty ``detail``.

``Mirror`` lets one scenario run for a buy taker against asks and for a sell taker
against bids. ``m.px(k)`` is the price ``k`` ticks *into* the maker side from the
reference price ``BASE`` (``k = 0`` is the touch, larger ``k`` is a worse price for
the taker, ``k = -1`` is one tick on the taker's side of it).

``backend`` gives a factory of fresh registries of each backend (memory, SQLite,
PostgreSQL) and a way to open one again, for tests that must hold on all three.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from carbonbook import (
    Engine,
    Event,
    InstrumentListed,
    ListInstrument,
    NewOrder,
    Rejected,
    Side,
    Trade,
    UnitType,
)
from carbonbook import core as cores
from carbonbook.registry import MemoryRegistry, Registry, SQLiteRegistry

SYM = "JPA-2030"
BASE = 1000

Row = list[int]
"""One snapshot row: [price, id, qty]."""
Snapshot = dict[str, dict[str, list[list[int]]]]


class Recorder:
    """A subscriber that keeps every events list it is given."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    def __call__(self, events: list[Event]) -> None:
        self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


def _verify(engine: Engine, recorder: Recorder) -> None:
    engine.check()
    events = recorder.events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for e in events:
        if isinstance(e, Rejected):
            assert isinstance(e.detail, str) and e.detail


CORES = sorted(cores.CORES) if cores.NAME == "compiled" else ["pure"]
"""The cores the fixtures run on: both, unless the pure one is forced (CARBONBOOK_PURE=1), when
.ci/run runs the whole suite again on it."""


@pytest.fixture(params=CORES)
def core(request: pytest.FixtureRequest) -> str:
    """The name of a core (carbonbook.core): every test that takes it runs on each."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make_engine(core: str) -> Iterator[Callable[[], Engine]]:
    """A factory of empty engines on ``core``, each verified at teardown."""
    made: list[tuple[Engine, Recorder]] = []

    def make() -> Engine:
        engine = Engine(core=core)
        recorder = Recorder()
        engine.subscribe(recorder)
        made.append((engine, recorder))
        return engine

    yield make
    for engine, recorder in made:
        _verify(engine, recorder)


@pytest.fixture
def eng(make_engine: Callable[[], Engine]) -> Engine:
    """An engine with ``SYM`` (JPA, tick 1, lot 1) listed as event seq 1."""
    engine = make_engine()
    assert engine.apply(ListInstrument(SYM, UnitType.JPA)) == [
        InstrumentListed(1, SYM, UnitType.JPA, 1, 1)
    ]
    return engine


def book(bids: Sequence[Row] = (), asks: Sequence[Row] = (), symbol: str = SYM) -> Snapshot:
    """The snapshot of an engine holding one instrument."""
    return {symbol: {"bids": [list(r) for r in bids], "asks": [list(r) for r in asks]}}


@dataclass(frozen=True)
class Mirror:
    """One side of a mirrored scenario: ``side`` is the incoming (taker) side."""

    side: Side

    def __str__(self) -> str:
        return str(self.side)

    @property
    def other(self) -> Side:
        return Side.SELL if self.side is Side.BUY else Side.BUY

    def px(self, k: int) -> int:
        """The price ``k`` ticks into the maker side (worse for the taker as ``k`` grows)."""
        return BASE + k if self.side is Side.BUY else BASE - k

    def taker(self, oid: int, qty: int, k: int | None, account: str = "tak", **kw: Any) -> NewOrder:
        """An order on the taker side at ``px(k)`` (market when ``k`` is None)."""
        price = None if k is None else self.px(k)
        return NewOrder(oid, account, SYM, self.side, qty, price=price, **kw)

    def maker(self, oid: int, qty: int, k: int, account: str = "mak", **kw: Any) -> NewOrder:
        """An order on the maker side at ``px(k)``."""
        return NewOrder(oid, account, SYM, self.other, qty, price=self.px(k), **kw)

    def trade(
        self,
        seq: int,
        k: int,
        qty: int,
        maker_id: int,
        taker_id: int,
        maker_account: str = "mak",
        taker_account: str = "tak",
    ) -> Trade:
        """The trade of a taker on this side with a maker resting at ``px(k)``."""
        if self.side is Side.BUY:
            return Trade(seq, SYM, self.px(k), qty, maker_id, taker_id,
                         taker_id, maker_id, taker_account, maker_account)
        return Trade(seq, SYM, self.px(k), qty, maker_id, taker_id,
                     maker_id, taker_id, maker_account, taker_account)

    def book(self, taker: Sequence[tuple[int, int, int]] = (),
             maker: Sequence[tuple[int, int, int]] = ()) -> Snapshot:
        """The snapshot from rows ``(k, id, qty)`` per side, each given in priority order."""
        t = [[self.px(k), oid, qty] for k, oid, qty in taker]
        m = [[self.px(k), oid, qty] for k, oid, qty in maker]
        return book(bids=t, asks=m) if self.side is Side.BUY else book(bids=m, asks=t)


@pytest.fixture(params=[Side.BUY, Side.SELL], ids=["buy", "sell"])
def m(request: pytest.FixtureRequest) -> Mirror:
    """The taker side of a mirrored scenario."""
    return Mirror(request.param)


RegistryFactory = Callable[[], Registry]
Reopen = Callable[[Registry], Registry]


def _pg_dsn() -> str:
    return os.environ.get("CARBONBOOK_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name on the test server, dropped afterwards (skipped with
    ``CARBONBOOK_PG_SKIP=1``)."""
    if os.environ.get("CARBONBOOK_PG_SKIP") == "1":
        pytest.skip("CARBONBOOK_PG_SKIP=1")
    schema = f"cbmany_{uuid.uuid4().hex[:8]}"
    yield schema
    import psycopg

    with psycopg.connect(_pg_dsn(), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RegistryFactory, Reopen]]:
    """A factory of fresh registries of one backend, and how to open one again (memory: the
    same object). PostgreSQL uses CARBONBOOK_PG_DSN, one schema per registry, dropped after;
    an unreachable server fails the test unless CARBONBOOK_PG_SKIP=1."""
    counter = itertools.count()
    made: list[Registry] = []
    if request.param == "memory":
        def fresh() -> Registry:
            return MemoryRegistry()

        yield fresh, lambda reg: reg
        return
    if request.param == "sqlite":
        def fresh_sqlite() -> Registry:
            reg = SQLiteRegistry(tmp_path / f"venue{next(counter)}.db")
            made.append(reg)
            return reg

        def reopen_sqlite(reg: Registry) -> Registry:
            assert isinstance(reg, SQLiteRegistry)
            reg.close()
            again = SQLiteRegistry(reg.path)
            made.append(again)
            return again

        yield fresh_sqlite, reopen_sqlite
        for reg in made:
            reg.close()
        return
    if os.environ.get("CARBONBOOK_PG_SKIP") == "1":
        pytest.skip("CARBONBOOK_PG_SKIP=1")
    import psycopg
    from psycopg import sql

    from carbonbook.registry.postgres import PostgresRegistry

    dsn = _pg_dsn()
    run = uuid.uuid4().hex[:8]
    schemas: list[str] = []

    def fresh_pg() -> Registry:
        schema = f"cbvenue_{run}_{next(counter)}"
        schemas.append(schema)
        reg = PostgresRegistry(dsn, schema=schema)
        made.append(reg)
        return reg

    def reopen_pg(reg: Registry) -> Registry:
        assert isinstance(reg, PostgresRegistry)
        reg.close()
        again = PostgresRegistry(dsn, schema=reg.schema)
        made.append(again)
        return again

    try:
        yield fresh_pg, reopen_pg
    finally:
        for reg in made:
            reg.close()
        if schemas:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
