"""What a registry behind the engine costs: the busy workload through a plain Engine and
through a Venue (pre-trade holds, immediate DvP settlement of every trade) on each backend.

Every account of the busy workload gets an operator account, 10,000,000 EUA and ample cash
first, and market buys get a cap (a venue refuses market buys without one):
``carbonbook.operations.workload.venue_session``. Commands go in
batches of 4,096 per ``apply_all``: one registry (database) transaction per batch, as
``carbonbook replay --registry`` does. The run goes in ``--repeat`` rounds, each timing every
backend once, back to back, on a fresh engine and registry; rates are messages (commands) per
second, the best of the rounds; the CPU-time rate is the one the machine's load disturbs less.

Every rate is also given as a ratio to the first backend of the run (``engine``: the bare
engine on the default core; ``engine-pure``: on the pure-Python core): the ratio of the bests,
and the median (and range) of the rounds' own ratios, each of two runs seconds apart, which a
load that comes and goes between a backend's best and the first's moves less. ``sqlite-group`` and
``postgres-group`` run the venue with group commit (``Venue(group=GROUP)``: one database
transaction per GROUP commands, default 65,536, instead of one per batch);
``postgres-shared`` as one of the registry's many writers (``Venue(shared=True)``: each
transaction first takes the registry's turn to write), with no other writer.

``--instructions`` counts instead, with valgrind's callgrind, the machine instructions per
message, which do not depend on the load (see bench/instructions.py), of the Venue on each
``--backend`` (``memory``, the default; ``sqlite``: a file, one transaction per batch; the
``-group`` kinds commit per ``--group``) and of the bare engine on the same messages: the setup
and the first 4,000 messages, then the setup and the first 4,000 + N, each in a fresh process;
the difference divided by N (default 20,000). Each process ends with ``os._exit`` right after
its last batch (a group commit's last commit included), so neither count includes freeing the
commands, the engine or the registry at exit (the venue's registry keeps every settlement and
journal row: at a4a8367 their teardown added about 800 instructions per message). Each runs
with ``PYTHONHASHSEED=0``: with a random seed the same code's count moves by up to 100 per
message from run to run (dict layouts, and when the garbage collector runs).

``--settle-instructions`` counts the instructions of one settled trade on a MemoryRegistry:
bench/settlement.py's accounts and trades, each trade's holds taken first as a venue takes
them (units under the sell id, cash under the buy id), then either nothing or the settlement
of every trade (``SettlementAdapter.settle_trades``, ``use_holds``, in calls of 2 trades, as a
venue settles a command's trades, and of 1,000); the difference divided by the trades. It runs
on whatever ``carbonbook`` is importable, so ``PYTHONPATH=OLD/src`` counts an older tree.

    .venv/bin/python bench/venue.py [--messages N] [--backend engine memory sqlite sqlite-group postgres]
    .venv/bin/python bench/venue.py --instructions [--messages N] [--backend memory sqlite sqlite-group]
    .venv/bin/python bench/venue.py --settle-instructions [--trades N]
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial

import msgspec

from carbonbook import Engine, UnitType
from carbonbook.commands import Command
from carbonbook.operations.workload import venue_session as session
from carbonbook.registry import MemoryRegistry, Registry, SQLiteRegistry
from carbonbook.venue import Venue

DSN = os.environ.get("CARBONBOOK_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 4096
BASE = 4_000  # --instructions: messages applied before the ones counted


def run(make: Callable[[], Engine | Venue], setup: list[Command],
        orders: list[Command]) -> tuple[float, float, int]:
    """Wall and CPU seconds for ``orders`` (after ``setup``; a group commit's last commit
    included), and the events they gave."""
    engine = make()
    engine.apply_all(setup)
    if isinstance(engine, Venue):
        engine.commit()
    wall, cpu = time.perf_counter(), time.process_time()
    events = 0
    for i in range(0, len(orders), BATCH):
        events += len(engine.apply_all(orders[i:i + BATCH]))
    if isinstance(engine, Venue):
        engine.commit()
    return time.perf_counter() - wall, time.process_time() - cpu, events


def replay(path: str, n: int, kind: str, group: int) -> None:
    """Apply the pickled session's first ``n`` orders to ``kind`` (``engine``: the bare engine;
    else a Venue on that backend, after the setup), then end the process without its teardown."""
    with open(path, "rb") as f:
        setup, orders = pickle.load(f)
    orders = orders[:n]
    tmp = tempfile.mkdtemp()
    if kind == "engine":
        engine: Engine | Venue = Engine()
    else:
        registry = MemoryRegistry() if kind == "memory" else SQLiteRegistry(os.path.join(tmp, "venue.db"))
        engine = Venue(registry, currency="EUR", group=group if kind.endswith("-group") else 0)
        engine.apply_all(setup)
    for i in range(0, n, BATCH):
        engine.apply_all(orders[i:i + BATCH])
    if isinstance(engine, Venue):
        engine.commit()
    shutil.rmtree(tmp)
    os._exit(0)


def held_trades(n: int, settle: int) -> None:
    """Take the holds of bench/settlement.py's first ``n`` trades on a MemoryRegistry, then settle
    them in calls of ``settle`` trades (0: not at all)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from carbonbook.venue.settlement import Instrument, SettlementAdapter
    from settlement import SYM, setup, trades

    reg = MemoryRegistry()
    setup(reg)
    stream = [msgspec.structs.replace(t, sell_id=2 * t.seq, buy_id=2 * t.seq + 1) for t in trades(n)]
    with reg.transaction():
        for t in stream:
            reg.reserve(t.sell_id, t.sell_account, UnitType.JPA, t.qty)
            reg.reserve_cash(t.buy_id, t.buy_account, "JPY", t.price * t.qty)
    if settle:
        adapter = SettlementAdapter(reg, {SYM: Instrument(UnitType.JPA, "JPY")}, batch=1000, use_holds=True,
                                    keep_results=False)
        with reg.transaction():
            for i in range(0, n, settle):
                adapter.settle_trades(stream[i:i + settle])
        assert not any(reg.hold(t.sell_id) or reg.hold(t.buy_id) for t in stream), "every trade must settle"


def _callgrind(*args: str) -> int:
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           sys.executable, __file__, *args], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise RuntimeError(proc.stderr)
    return int(match.group(1))


def settle_instructions(trades: int, per_call: int) -> float:
    """Callgrind instructions per settled trade (holds consumed), ``per_call`` trades per call."""
    held = _callgrind("--held", str(trades), "0")
    return (_callgrind("--held", str(trades), str(per_call)) - held) / trades


def instructions(messages: int, kinds: list[str], group: int) -> dict[str, float]:
    """Callgrind instructions per message of each of ``kinds`` (``engine`` or a venue's backend),
    for messages BASE..BASE + ``messages``."""
    per = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "session.pickle")
        with open(path, "wb") as f:
            pickle.dump(session(BASE + messages), f)
        for kind in kinds:
            counts = [_callgrind("--replay", path, str(n), kind, str(group)) for n in (BASE, BASE + messages)]
            per[kind] = (counts[1] - counts[0]) / messages
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (each times every backend once)")
    parser.add_argument("--backend", nargs="+",
                        choices=["engine", "engine-pure", "memory", "sqlite", "sqlite-group", "postgres",
                                 "postgres-group", "postgres-shared"])
    parser.add_argument("--group", type=int, default=65_536, help="commands per transaction for *-group")
    parser.add_argument("--settle-instructions", action="store_true",
                        help="count callgrind instructions per settled trade on memory")
    parser.add_argument("--trades", type=int, default=5_000)
    parser.add_argument("--held", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--instructions", action="store_true",
                        help="count callgrind instructions per message on memory instead of timing")
    parser.add_argument("--replay", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        replay(args.replay[0], int(args.replay[1]), args.replay[2], int(args.replay[3]))
        return
    if args.held:
        held_trades(int(args.held[0]), int(args.held[1]))
        return
    if args.settle_instructions:
        for per_call in (2, 1000):
            print(f"{settle_instructions(args.trades, per_call):,.0f} instructions per settled trade on memory "
                  f"(holds consumed, {per_call} trades per call, {args.trades:,} trades)", flush=True)
        return
    if args.instructions:
        messages = args.messages or 20_000
        kinds = [k for k in args.backend or ["memory"] if k != "engine"]
        if not set(kinds) <= {"memory", "sqlite", "sqlite-group"}:
            parser.error("--instructions counts the engine and the venue on memory, sqlite or sqlite-group")
        per = instructions(messages, ["engine", *kinds], args.group)
        for kind, count in per.items():
            print(f"{kind:<14} {count:>8,.0f} instructions per message = {per['engine'] / count:.3f}x the "
                  f"engine (busy, messages {BASE:,}..{BASE + messages:,}, batch {BATCH}, no exit teardown)")
        return
    args.backend = args.backend or ["engine", "memory", "sqlite", "sqlite-group"]
    setup, orders = session(args.messages or 100_000)
    tmp = tempfile.mkdtemp()
    schemas: list[str] = []

    def registry(kind: str) -> Registry:
        if kind == "memory":
            return MemoryRegistry()
        if kind.startswith("sqlite"):
            return SQLiteRegistry(os.path.join(tmp, f"{uuid.uuid4().hex}.db"))
        from carbonbook.registry.postgres import PostgresRegistry
        schemas.append(f"bench_{uuid.uuid4().hex[:12]}")
        return PostgresRegistry(DSN, schema=schemas[-1])

    def make(kind: str) -> Engine | Venue:
        if kind.startswith("engine"):
            return Engine(core="pure" if kind == "engine-pure" else None)
        return Venue(registry(kind), currency="EUR", group=args.group if kind.endswith("-group") else 0,
                     shared=kind.endswith("-shared"))

    rates: dict[str, list[tuple[float, float]]] = {kind: [] for kind in args.backend}  # (wall, CPU) per round
    events: dict[str, int] = {}
    try:
        for _ in range(args.repeat):  # a round: every backend once, back to back (they share the load)
            for kind in args.backend:
                commands = setup[:0] if kind.startswith("engine") else setup
                wall, cpu, events[kind] = run(partial(make, kind), commands, orders)
                rates[kind].append((len(orders) / wall, len(orders) / cpu))
        first = args.backend[0]
        for kind in args.backend:
            ratios = sorted(r[1] / f[1] for r, f in zip(rates[kind], rates[first], strict=True))
            best = max(r[1] for r in rates[kind])
            print(f"{kind:<14} {max(r[0] for r in rates[kind]):>10,.0f} msg/s wall, {best:>10,.0f} msg/s CPU = "
                  f"{best / max(r[1] for r in rates[first]):.3f}x the {first} (bests; rounds' ratios median "
                  f"{statistics.median(ratios):.3f}, {ratios[0]:.3f}..{ratios[-1]:.3f}; "
                  f"{len(orders):,} messages, {events[kind]:,} events, batch {BATCH})", flush=True)
    finally:
        if schemas:
            import psycopg

            with psycopg.connect(DSN, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        psycopg.sql.Identifier(schema)))

if __name__ == "__main__":
    main()
