"""What a registry behind the engine costs: the busy workload through a plain Engine and
through a Venue (pre-trade holds, immediate DvP settlement of every trade) on each backend.

Every account of the busy workload gets an operator account, 10,000,000 EUA and ample cash
first, and market buys get a cap (a venue refuses market buys without one). Commands go in
batches of 4,096 per ``apply_all``: one registry (database) transaction per batch, as
``carbonbook replay --registry`` does. Rates are messages (commands) per second, best of
``--repeat`` runs, each on a fresh engine and registry; the CPU-time rate is the one the
machine's load disturbs less.

    .venv/bin/python bench/venue.py [--messages N] [--backend engine memory sqlite postgres]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable

from carbonbook import Engine, NewOrder, OrderType, Side, UnitType
from carbonbook.commands import Command, Deposit, Issue, OpenAccount, OpenScheme, SetCap
from carbonbook.registry import MemoryRegistry, Registry, SQLiteRegistry
from carbonbook.venue import Venue
from carbonbook.workload import busy

DSN = os.environ.get("CARBONBOOK_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 4096
EUA = UnitType.EUA


def session(n: int) -> tuple[list[Command], list[Command]]:
    """The registry setup for the busy workload's accounts, and the workload (market buys capped)."""
    flow = busy(n)
    accounts = sorted({c.account for c in flow if isinstance(c, NewOrder)})
    setup: list[Command] = [OpenScheme(name="EUETS", allowances=frozenset({EUA})),
                            SetCap(scheme="EUETS", period=2026, cap=10**15)]
    for a in accounts:
        setup += [OpenAccount(account=a),
                  Issue(account=a, unit=EUA, qty=10_000_000, scheme="EUETS", period=2026),
                  Deposit(account=a, currency="EUR", amount=10**15)]
    orders = [NewOrder(c.id, c.account, c.symbol, c.side, c.qty, order_type=OrderType.MARKET, cap=10**12)
              if isinstance(c, NewOrder) and c.price is None and c.side is Side.BUY else c for c in flow]
    return setup, orders


def run(make: Callable[[], Engine], setup: list[Command], orders: list[Command]) -> tuple[float, float, int]:
    """Wall and CPU seconds for ``orders`` (after ``setup``), and the events they gave."""
    engine = make()
    engine.apply_all(setup)
    wall, cpu = time.perf_counter(), time.process_time()
    events = 0
    for i in range(0, len(orders), BATCH):
        events += len(engine.apply_all(orders[i:i + BATCH]))
    return time.perf_counter() - wall, time.process_time() - cpu, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", nargs="+", default=["engine", "memory", "sqlite"],
                        choices=["engine", "memory", "sqlite", "postgres"])
    args = parser.parse_args()
    setup, orders = session(args.messages)
    tmp = tempfile.mkdtemp()

    def registry(kind: str) -> Registry:
        if kind == "memory":
            return MemoryRegistry()
        if kind == "sqlite":
            return SQLiteRegistry(os.path.join(tmp, f"{uuid.uuid4().hex}.db"))
        from carbonbook.registry.postgres import PostgresRegistry
        return PostgresRegistry(DSN, schema=f"bench_{uuid.uuid4().hex[:12]}")

    for kind in args.backend:
        def make(kind: str = kind) -> Engine:
            return Engine() if kind == "engine" else Venue(registry(kind), currency="EUR")
        best = min((run(make, setup if kind != "engine" else setup[:0], orders)
                    for _ in range(args.repeat)), key=lambda r: r[1])
        wall, cpu, events = best
        print(f"{kind:<8} {len(orders) / wall:>10,.0f} msg/s wall, {len(orders) / cpu:>10,.0f} msg/s CPU "
              f"({len(orders):,} messages, {events:,} events, batch {BATCH})")


if __name__ == "__main__":
    main()
