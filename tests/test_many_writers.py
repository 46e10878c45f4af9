"""Many processes writing one SQL registry at once (carbonbook.registry.writers).

Four processes hammer the same four accounts with unit transfers, deposits and DvP
settlements (and all of them settle the same twenty shared trades); then ``check()`` passes,
units and cash are conserved, and each shared trade settled exactly once. PostgreSQL uses
``CARBONBOOK_PG_DSN`` (default the test server) and FAILS when it is unreachable unless
``CARBONBOOK_PG_SKIP=1``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbonbook._types import UnitType
from carbonbook.errors import RegistryError, RegistryInUse, RetriesExhausted
from carbonbook.registry import Scheme, SQLiteRegistry
from carbonbook.registry.base import Registry, Settled
from carbonbook.registry.writers import retrying

DSN = os.environ.get("CARBONBOOK_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ACCOUNTS = [f"a{i}" for i in range(4)]
UNITS, CASH = 1000, 1_000_000
SHARED = range(1, 21)


def open_registry(where: str) -> Registry:
    if where.startswith("sqlite:"):
        return SQLiteRegistry(where[len("sqlite:"):])
    from carbonbook.registry.postgres import PostgresRegistry

    return PostgresRegistry(DSN, schema=where)


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path}/many.db"
        return
    yield request.getfixturevalue("pg_schema")


def setup(where: str) -> None:
    reg = open_registry(where)
    with reg.transaction():
        reg.create_scheme(Scheme("S", frozenset({UnitType.JPA})))
        reg.set_cap("S", 2010, UNITS * len(ACCOUNTS))
        for a in ACCOUNTS:
            reg.open_account(a)
            reg.issue(a, UnitType.JPA, UNITS, scheme="S", period=2010)
            reg.deposit(a, "JPY", CASH)
    reg.close()


def hammer(where: str, worker: int, ops: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    rng = random.Random(worker)
    reg = open_registry(where)
    reg.share_writer()
    deposited = 0
    trades = [*SHARED, *(worker * 10**6 + i for i in range(ops))]
    rng.shuffle(trades)
    for i in range(ops):
        a, b = rng.sample(ACCOUNTS, 2)
        kind = i % 3
        try:
            if kind == 0:
                retrying(reg, lambda a=a, b=b: reg.transfer(a, b, UnitType.JPA, rng.randint(1, 60)))
            elif kind == 1:
                amount = rng.randint(1, 1000)
                retrying(reg, lambda a=a, amount=amount: reg.deposit(a, "JPY", amount))
                deposited += amount
            else:
                tid = trades.pop()
                qty = rng.randint(1, 40)
                retrying(reg, lambda a=a, b=b, tid=tid, qty=qty: reg.settle(
                    tid, seller=a, buyer=b, unit=UnitType.JPA, qty=qty, currency="JPY", amount=qty * 1500))
        except RetriesExhausted:
            out.put(("exhausted", worker))
            raise
        except RegistryError:
            pass  # refused (units or cash short): nothing moved
    for tid in SHARED:  # every worker settles every shared trade: each once in all
        with contextlib.suppress(RegistryError):
            retrying(reg, lambda tid=tid: reg.settle(tid, seller="a0", buyer="a1", unit=UnitType.JPA, qty=1,
                                                     currency="JPY", amount=1500))
    reg.close()
    out.put(("deposited", deposited))


def test_four_processes_on_the_same_accounts_keep_the_registry_whole(where: str) -> None:
    setup(where)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=hammer, args=(where, w, 90, out)) for w in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(kind == "deposited" for kind, _ in results), results
    assert all(p.exitcode == 0 for p in procs)
    reg = open_registry(where)
    reg.check()
    assert sum(reg.holding(a, UnitType.JPA) for a in ACCOUNTS) == UNITS * len(ACCOUNTS)
    assert sum(reg.balance(a, "JPY") for a in ACCOUNTS) == CASH * len(ACCOUNTS) + sum(n for _, n in results)
    settles = [e for e in reg.journal() if e.kind == "settle"]
    assert len(settles) == len({e.ref for e in settles}) > 20  # no trade settled twice
    for tid in SHARED:  # recorded once: settled (one journal row) or failed (none)
        record = reg.settlement(tid)
        assert record is not None
        assert sum(1 for e in settles if e.ref == tid) == (1 if isinstance(record, Settled) else 0)
    reg.close()


def test_a_writer_whose_every_attempt_is_overtaken_gets_a_clear_error(where: str) -> None:
    setup(where)
    mine, other = open_registry(where), open_registry(where)
    calls = []

    def work() -> int:
        calls.append(1)
        if where.startswith("sqlite:"):
            other.deposit("a1", "JPY", 1)  # another writer commits first, every time
        return mine.deposit("a0", "JPY", 1)

    if where.startswith("sqlite:"):
        with pytest.raises(RetriesExhausted, match="under each of 3 attempts"):
            retrying(mine, work, attempts=3)
        assert len(calls) == 3
    else:  # another session holds the turn to write throughout: each attempt waits lock_timeout
        import psycopg

        mine.lock_timeout = 0.2  # type: ignore[attr-defined]
        with psycopg.connect(DSN) as holder:
            holder.execute(psycopg.sql.SQL("SELECT v FROM {}.meta WHERE k = 'version' FOR UPDATE").format(
                psycopg.sql.Identifier(where)))
            with pytest.raises(RetriesExhausted, match="under each of 3 attempts"):
                retrying(mine, work, attempts=3)
        assert calls == []
    mine.reload()
    assert mine.balance("a0", "JPY") == CASH
    mine.check()
    mine.close()
    other.close()


def test_shared_writers_and_the_one_writer_claim_exclude_each_other(where: str) -> None:
    setup(where)
    shared, venue = open_registry(where), open_registry(where)
    shared.share_writer()
    with pytest.raises(RegistryInUse):
        venue.claim_writer()
    shared.close()
    venue.claim_writer()
    late = open_registry(where)
    with pytest.raises(RegistryInUse):
        late.share_writer()
    late.close()
    venue.close()
