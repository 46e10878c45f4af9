"""Settled trades per second for each registry backend (issue 3 targets: memory >= 200,000/s,
SQLite >= 20,000/s, PostgreSQL >= 5,000/s).

A seeded stream of trades between 200 accounts that each hold 10,000,000 JPA (one block)
and enough yen; every trade moves 1..100 units (splitting the seller's oldest block) and
price * qty yen, through ``SettlementAdapter.settle_trades`` in batches of ``--batch``
trades per registry (database) transaction. The time covers settlement only (setup and
the trade list are built first); the best of ``--repeat`` runs is reported, each on a
fresh registry.

    .venv/bin/python bench/settlement.py [--backend memory sqlite postgres] [--trades N] [--batch B]

Latest figures, the instruction counts per trade (callgrind) and their history are in
bench/RESULTS.md ("Other components").
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable

from carbonbook import Trade, UnitType
from carbonbook.registry import MemoryRegistry, Registry, Scheme, Settled, SQLiteRegistry
from carbonbook.venue.settlement import Instrument, SettlementAdapter

SYM = "JPA-2010"
ACCOUNTS = [f"acct{i:03d}" for i in range(200)]
DSN = os.environ.get("CARBONBOOK_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def setup(reg: Registry) -> None:
    reg.create_scheme(Scheme("JVETS", frozenset({UnitType.JPA})))
    reg.set_cap("JVETS", 2010, 10**12)
    with reg.transaction():
        for name in ACCOUNTS:
            reg.open_account(name, scheme="JVETS")
            reg.issue(name, UnitType.JPA, 10_000_000, scheme="JVETS", period=2010)
            reg.deposit(name, "JPY", 10**15)


def trades(n: int, seed: int = 7) -> list[Trade]:
    rng = random.Random(seed)
    out = []
    for seq in range(1, n + 1):
        buyer, seller = rng.sample(ACCOUNTS, 2)
        out.append(Trade(seq, SYM, rng.randint(1400, 1500), rng.randint(1, 100), seq, seq, seq, seq,
                         buyer, seller))
    return out


def run(make: Callable[[], Registry], n: int, batch: int, repeat: int) -> tuple[float, float]:
    """The best rates of ``repeat`` runs: by wall-clock time and by the process's CPU time
    (which other jobs on the machine disturb less; for a database the server's time is not in it)."""
    stream = trades(n)
    best_wall = best_cpu = 0.0
    for _ in range(repeat):
        reg = make()
        setup(reg)
        adapter = SettlementAdapter(reg, {SYM: Instrument(UnitType.JPA, "JPY")}, batch=batch,
                                    keep_results=False)
        wall, cpu = time.perf_counter(), time.process_time()
        out = adapter.settle_trades(stream)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert all(type(r) is Settled for r in out), "every bench trade must settle"
        reg.check()
        reg.close()
        best_wall = max(best_wall, n / wall)
        best_cpu = max(best_cpu, n / cpu)
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", nargs="+", default=["memory", "sqlite", "postgres"])
    ap.add_argument("--trades", type=int, default=0, help="trades per run (default: per backend)")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="cb-bench-")
    schemas: list[str] = []

    def make_sqlite() -> Registry:
        return SQLiteRegistry(os.path.join(tmp, f"{uuid.uuid4().hex}.db"))

    def make_pg() -> Registry:
        from carbonbook.registry.postgres import PostgresRegistry

        schema = f"cbbench_{uuid.uuid4().hex[:8]}"
        schemas.append(schema)
        return PostgresRegistry(DSN, schema=schema)

    backends: dict[str, tuple[Callable[[], Registry], int]] = {
        "memory": (MemoryRegistry, 200_000), "sqlite": (make_sqlite, 100_000), "postgres": (make_pg, 50_000)}
    try:
        for name in args.backend:
            make, default_n = backends[name]
            n = args.trades or default_n
            wall, cpu = run(make, n, args.batch, args.repeat)
            print(f"{name:9s} {wall:>10,.0f} settled trades/s wall, {cpu:>10,.0f} by CPU time  ({n:,} trades, "
                  f"batch {args.batch}, best of {args.repeat})", flush=True)
    finally:
        if schemas:
            import psycopg

            with psycopg.connect(DSN, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        psycopg.sql.Identifier(schema)))


if __name__ == "__main__":
    main()
