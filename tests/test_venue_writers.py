"""A venue as one of many writers of a PostgreSQL registry (``Venue(..., shared=True)``).

An administrator's moves between the venue's batches are seen by its holds and refusals (no
double spend either way); a venue process replaying a log while an administrator process
transfers and deposits on the same accounts gives the events of a run without the
administrator (their txids aside), settles every trade once, and leaves the registry whole.
PostgreSQL uses ``CARBONBOOK_PG_DSN`` (default the test server) and FAILS when it is unreachable
unless ``CARBONBOOK_PG_SKIP=1``.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from pathlib import Path

import msgspec
import pytest

from carbonbook import CancelOrder, ListInstrument, NewOrder, Side, UnitType
from carbonbook.commands import Command
from carbonbook.errors import InsufficientUnits, OperationRefused, RegistryInUse, RetriesExhausted
from carbonbook.events import Event, Rejected, Trade, TradeSettled
from carbonbook.operations.cli import main
from carbonbook.operations.journal import FsyncPolicy, Journal
from carbonbook.registry import MemoryRegistry, Scheme, SQLiteRegistry
from carbonbook.registry.base import Registry
from carbonbook.registry.writers import retrying
from carbonbook.venue import Venue

DSN = os.environ.get("CARBONBOOK_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TRADERS = [f"v{i}" for i in range(4)]
UNITS, CASH = 100_000, 10**9
JPA = UnitType.JPA


def postgres(schema: str) -> Registry:
    from carbonbook.registry.postgres import PostgresRegistry

    return PostgresRegistry(DSN, schema=schema)


def fund(schema: str | Registry, units: int = UNITS, cash: int = CASH) -> None:
    """Open the traders' accounts (and the administrator's, ``x``) with ``units`` and ``cash``
    each, in ``schema`` (or a registry)."""
    reg = postgres(schema) if isinstance(schema, str) else schema
    with reg.transaction():
        reg.create_scheme(Scheme("S", frozenset({JPA})))
        reg.set_cap("S", 2010, units * len(TRADERS))
        reg.open_account("x")  # the administrator's
        for a in TRADERS:
            reg.open_account(a)
            reg.issue(a, JPA, units, scheme="S", period=2010)
            reg.deposit(a, "JPY", cash)
    if isinstance(schema, str):
        reg.close()


def shared(schema: str) -> Registry:
    reg = postgres(schema)
    reg.share_writer()
    return reg


def tags(events: list[Event]) -> list[str]:
    return [str(e.__struct_config__.tag) + (f":{e.reason}" if isinstance(e, Rejected) else "") for e in events]


def test_a_shared_venue_sees_an_administrators_moves_between_its_batches(pg_schema: str) -> None:
    fund(pg_schema, units=100, cash=1_000_000)
    reg, admin = shared(pg_schema), shared(pg_schema)
    venue = Venue(reg, shared=True)
    venue.apply(ListInstrument("JPA-2010", JPA))
    assert tags(venue.apply(NewOrder(1, "v0", "JPA-2010", Side.SELL, 60, price=1000))) == ["accepted"]
    with pytest.raises(InsufficientUnits):  # the venue's hold is the administrator's too
        retrying(admin, lambda: admin.transfer("v0", "x", JPA, 41))
    retrying(admin, lambda: admin.transfer("v0", "x", JPA, 40))
    assert tags(venue.apply(NewOrder(2, "v0", "JPA-2010", Side.SELL, 1, price=1000))) == [
        "rejected:insufficient_units"]  # on the reloaded registry: 40 of 100 left, all held
    retrying(admin, lambda: admin.reserve_cash(999, "v1", "JPY", 970_000))  # 30,000 free
    assert tags(venue.apply(NewOrder(3, "v1", "JPA-2010", Side.BUY, 40, price=1000))) == [
        "rejected:insufficient_funds"]
    retrying(admin, lambda: admin.release(999))
    assert tags(venue.apply(NewOrder(4, "v1", "JPA-2010", Side.BUY, 50, price=1000))) == [
        "accepted", "trade", "trade_settled"]
    assert tags(venue.apply(CancelOrder(1))) == ["cancelled"]
    retrying(admin, lambda: admin.transfer("v0", "x", JPA, 10))  # the cancelled order's hold was released
    for r in (reg, admin):
        r.reload()
        r.check()
        assert (r.holding("v0", JPA), r.holding("v1", JPA), r.holding("x", JPA)) == (0, 150, 50)
        assert (r.balance("v0", "JPY"), r.balance("v1", "JPY")) == (1_050_000, 950_000)
        assert r.hold(1) == r.hold(4) == 0
    reg.close()
    admin.close()


def test_a_shared_venue_waits_its_turn_and_gives_a_clear_error_when_it_never_comes(pg_schema: str) -> None:
    import psycopg

    fund(pg_schema)
    reg = shared(pg_schema)
    reg.lock_timeout = 0.02  # type: ignore[attr-defined]
    venue = Venue(reg, shared=True)
    venue.apply(ListInstrument("JPA-2010", JPA))
    with psycopg.connect(DSN) as holder:  # another writer holds the turn throughout
        holder.execute(psycopg.sql.SQL("SELECT v FROM {}.meta WHERE k = 'version' FOR UPDATE").format(
            psycopg.sql.Identifier(pg_schema)))
        with pytest.raises(RetriesExhausted, match="under each of 20 attempts"):
            venue.apply(NewOrder(1, "v0", "JPA-2010", Side.SELL, 5, price=1000))
    assert venue.next_seq == 2 and reg.hold(1) == 0  # nothing ran: the venue goes on
    assert tags(venue.apply(NewOrder(1, "v0", "JPA-2010", Side.SELL, 5, price=1000))) == ["accepted"]
    reg.check()
    reg.close()


def test_a_journal_whose_venue_never_gets_its_turn_goes_on_afterwards(pg_schema: str, tmp_path: Path) -> None:
    import psycopg

    fund(pg_schema)
    reg = shared(pg_schema)
    reg.lock_timeout = 0.02  # type: ignore[attr-defined]
    journal = Journal.open(tmp_path, FsyncPolicy("never"), engine=Venue(reg, shared=True))
    journal.apply(ListInstrument("JPA-2010", JPA))
    records = journal.records
    with psycopg.connect(DSN) as holder:  # another writer holds the turn throughout
        holder.execute(psycopg.sql.SQL("SELECT v FROM {}.meta WHERE k = 'version' FOR UPDATE").format(
            psycopg.sql.Identifier(pg_schema)))
        with pytest.raises(RetriesExhausted):
            journal.apply(NewOrder(1, "v0", "JPA-2010", Side.SELL, 5, price=1000))
    assert journal.records == records  # nothing journaled, nothing applied
    assert tags(journal.apply(NewOrder(1, "v0", "JPA-2010", Side.SELL, 5, price=1000))) == ["accepted"]
    journal.close()
    reg.close()


def test_a_shared_group_commit_holds_the_turn_until_it_commits(pg_schema: str) -> None:
    fund(pg_schema)
    reg, admin = shared(pg_schema), shared(pg_schema)
    admin.lock_timeout = 0.02  # type: ignore[attr-defined]
    venue = Venue(reg, shared=True, group=10)
    venue.apply(ListInstrument("JPA-2010", JPA))
    venue.apply(NewOrder(1, "v0", "JPA-2010", Side.SELL, 5, price=1000))
    with pytest.raises(RetriesExhausted):  # the venue's open group holds the turn
        retrying(admin, lambda: admin.deposit("v0", "JPY", 1), attempts=2)
    venue.commit()
    retrying(admin, lambda: admin.deposit("v0", "JPY", 1))
    assert tags(venue.apply(NewOrder(2, "v1", "JPA-2010", Side.BUY, 5, price=1000))) == [
        "accepted", "trade", "trade_settled"]
    venue.commit()
    reg.check()
    assert reg.balance("v0", "JPY") == CASH + 5_001
    reg.close()
    admin.close()


def test_a_registry_keeps_one_shared_venue(pg_schema: str) -> None:
    fund(pg_schema)
    first, second = shared(pg_schema), shared(pg_schema)
    Venue(first, shared=True)
    with pytest.raises(RegistryInUse, match="another venue writes it"):
        Venue(second, shared=True)
    first.close()
    Venue(second, shared=True)
    second.close()


def test_a_journal_writes_a_shared_venues_batches_in_its_turn(pg_schema: str, tmp_path: Path) -> None:
    fund(pg_schema)
    reg, admin = shared(pg_schema), shared(pg_schema)
    journal = Journal.open(tmp_path, FsyncPolicy("never"), engine=Venue(reg, shared=True))
    journal.apply(ListInstrument("JPA-2010", JPA))
    journal.apply(NewOrder(1, "v0", "JPA-2010", Side.SELL, 5, price=1000))
    retrying(admin, lambda: admin.deposit("v1", "JPY", 7))
    assert tags(journal.apply(NewOrder(2, "v1", "JPA-2010", Side.BUY, 5, price=1000))) == [
        "accepted", "trade", "trade_settled"]
    journal.close()
    reg.reload()
    reg.check()
    assert reg.balance("v1", "JPY") == CASH + 7 - 5_000
    reg.close()
    admin.close()


def test_a_venue_shares_only_a_registry_that_queues_its_writers(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    for reg in (MemoryRegistry(), SQLiteRegistry(str(tmp_path / "r.db"))):
        with pytest.raises(OperationRefused, match="a venue shares only a PostgreSQL registry"):
            Venue(reg, shared=True)
        reg.close()
    log = tmp_path / "log.jsonl"
    log.write_bytes(msgspec.json.encode(ListInstrument("JPA-2010", JPA)) + b"\n")
    url = f"sqlite:///{tmp_path}/r.db"
    assert main(["replay", str(log), "--registry", url, "--shared", "--quiet"]) == 1
    assert capsys.readouterr().err == (f"carbonbook: registry {url}: SQLiteRegistry cannot queue its writers: "
                                       "a venue shares only a PostgreSQL registry\n")


# -- a venue process and an administrator process on the same accounts ---------------------


def order_log(seed: int = 7, orders: int = 300) -> list[Command]:
    rng = random.Random(seed)
    log: list[Command] = [ListInstrument("JPA-2010", JPA)]
    for oid in range(1, orders + 1):
        if oid > 10 and rng.random() < 0.15:
            log.append(CancelOrder(rng.randrange(1, oid)))
        log.append(NewOrder(oid, rng.choice(TRADERS), "JPA-2010", rng.choice((Side.BUY, Side.SELL)),
                            rng.randint(1, 20), price=rng.randint(995, 1005)))
    return log


def batches(log: list[Command], size: int = 5) -> list[list[Command]]:
    return [log[i:i + size] for i in range(0, len(log), size)]


def run_venue(schema: str, started: multiprocessing.synchronize.Event, moved: multiprocessing.synchronize.Event,
              out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Apply the order log in batches; halfway, wait until the administrator has deposited once
    (so the two interleave however fast either runs)."""
    reg = shared(schema)
    venue = Venue(reg, shared=True)
    events: list[Event] = []
    todo = batches(order_log())
    for i, batch in enumerate(todo):
        if i == len(todo) // 2:
            assert moved.wait(60)
        events += venue.apply_all(batch)
        started.set()
    reg.close()
    out.put(("venue", msgspec.json.encode(events)))


def run_admin(schema: str, started: multiprocessing.synchronize.Event, moved: multiprocessing.synchronize.Event,
              done: multiprocessing.synchronize.Event, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    rng = random.Random(1)
    reg = shared(schema)
    deposited = moves = over = 0
    started.wait(60)
    while not done.is_set() or moves < 20:
        a = rng.choice(TRADERS)
        try:  # one unit more than is free (held units are not): always refused
            retrying(reg, lambda a=a: reg.transfer(a, "x", JPA, reg.available(a, JPA) + 1))
            over = -10**9
        except InsufficientUnits:
            over += 1
        qty = rng.randint(1, 30)
        retrying(reg, lambda a=a, qty=qty: reg.transfer(a, "x", JPA, qty))  # out and back: the venue's
        retrying(reg, lambda a=a, qty=qty: reg.transfer("x", a, JPA, qty))  # traders keep plenty
        amount = rng.randint(1, 1000)
        retrying(reg, lambda a=a, amount=amount: reg.deposit(a, "JPY", amount))
        deposited += amount
        moves += 1
        moved.set()
    reg.close()
    out.put(("admin", (deposited, moves, over)))


def masked(events: list[Event]) -> list[Event]:
    """The events with their txids (the registry's transaction numbers: the administrator's
    come between the venue's) set to 0."""
    return [msgspec.structs.replace(e, txid=0) if hasattr(e, "txid") else e for e in events]


def test_a_venue_process_and_an_administrator_process_on_the_same_accounts(pg_schema: str) -> None:
    fund(pg_schema)
    ctx = multiprocessing.get_context("spawn")
    out, started, moved, done = ctx.Queue(), ctx.Event(), ctx.Event(), ctx.Event()
    admin = ctx.Process(target=run_admin, args=(pg_schema, started, moved, done, out))
    venue = ctx.Process(target=run_venue, args=(pg_schema, started, moved, out))
    admin.start()
    venue.start()
    results = dict([out.get(timeout=300)])
    done.set()
    results.update([out.get(timeout=300)])
    for p in (admin, venue):
        p.join(timeout=60)
        assert p.exitcode == 0
    events = msgspec.json.decode(results["venue"], type=list[Event])
    deposited, moves, over = results["admin"]
    assert over == moves >= 20  # every attempt to move held units was refused

    alone = MemoryRegistry()
    fund(alone)
    quiet = Venue(alone)
    expected = [e for batch in batches(order_log()) for e in quiet.apply_all(batch)]
    assert masked(events) == masked(expected)  # the administrator changed no outcome
    assert any(isinstance(e, Trade) for e in events)

    reg = postgres(pg_schema)
    reg.check()
    assert sum(reg.holding(a, JPA) for a in [*TRADERS, "x"]) == UNITS * len(TRADERS)
    assert sum(reg.balance(a, "JPY") for a in TRADERS) == CASH * len(TRADERS) + deposited
    trades = {e.seq for e in events if isinstance(e, Trade)}
    journal = list(reg.journal())
    settles = [e for e in journal if e.kind == "settle"]
    assert sorted(e.ref for e in settles) == sorted(trades)  # every trade settled, once
    settled = {e.trade_id: e.txid for e in events if isinstance(e, TradeSettled)}
    assert {e.ref: e.txid for e in settles} == settled
    first, last = min(settled.values()), max(settled.values())
    assert any(e.kind == "deposit" and first < e.txid < last for e in journal)  # the two interleaved
    reg.close()

