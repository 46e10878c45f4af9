"""What a registry behind the engine costs: the busy workload through a plain Engine and
through a Venue (pre-trade holds, immediate DvP settlement of every trade) on each backend.

Every account of the busy workload gets an operator account, 10,000,000 EUA and ample cash
first, and market buys get a cap (a venue refuses market buys without one). Commands go in
batches of 4,096 per ``apply_all``: one registry (database) transaction per batch, as
``carbonbook replay --registry`` does. Rates are messages (commands) per second, best of
``--repeat`` runs, each on a fresh engine and registry; the CPU-time rate is the one the
machine's load disturbs less.

``--instructions`` counts instead, with valgrind's callgrind, the machine instructions per
message of the Venue on a MemoryRegistry, which do not depend on the load (see
bench/instructions.py): the setup and the first 4,000 messages, then the setup and the
first 4,000 + N, each in a fresh process; the difference divided by N (default 20,000).

    .venv/bin/python bench/venue.py [--messages N] [--backend engine memory sqlite postgres]
    .venv/bin/python bench/venue.py --instructions [--messages N]
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
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
BASE = 4_000  # --instructions: messages applied before the ones counted
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


def replay(path: str, n: int) -> None:
    """Apply the pickled session's setup, then its first ``n`` orders, to a Venue on a MemoryRegistry."""
    with open(path, "rb") as f:
        setup, orders = pickle.load(f)
    venue = Venue(MemoryRegistry(), currency="EUR")
    venue.apply_all(setup)
    orders = orders[:n]
    for i in range(0, n, BATCH):
        venue.apply_all(orders[i:i + BATCH])


def instructions(messages: int) -> float:
    """Callgrind instructions per Venue message on memory, for messages BASE..BASE + ``messages``."""
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "session.pickle")
        with open(path, "wb") as f:
            pickle.dump(session(BASE + messages), f)
        for n in (BASE, BASE + messages):
            proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                   sys.executable, __file__, "--replay", path, str(n)],
                                  capture_output=True, text=True, check=True)
            match = re.search(r"Collected : (\d+)", proc.stderr)
            if match is None:
                raise RuntimeError(proc.stderr)
            counts.append(int(match.group(1)))
    return (counts[1] - counts[0]) / messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", nargs="+", default=["engine", "memory", "sqlite"],
                        choices=["engine", "memory", "sqlite", "postgres"])
    parser.add_argument("--instructions", action="store_true",
                        help="count callgrind instructions per message on memory instead of timing")
    parser.add_argument("--replay", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        replay(args.replay[0], int(args.replay[1]))
        return
    if args.instructions:
        messages = args.messages or 20_000
        print(f"{instructions(messages):,.0f} instructions per venue message on memory "
              f"(busy, messages {BASE:,}..{BASE + messages:,}, batch {BATCH})")
        return
    setup, orders = session(args.messages or 100_000)
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
