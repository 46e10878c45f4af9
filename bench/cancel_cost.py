"""What a cancel costs by where its order is: CPU nanoseconds per ``CancelOrder``, per mode.

    python bench/cancel_cost.py [--rounds K] [--cancels N] [--core pure|compiled]

Issue 12's deep mix / busy ratio is bounded by memory: the busy mix cancels orders placed a
few messages before (in cache), the deep mix cancels random orders of a book of a million.
This times cancels of distinct random resting orders on fresh books (built untimed):

``recent``
    9,000 of the last 10,000 orders placed on a book of 1,000,000 on 20 levels: order, index
    pair and slot, and level in cache (as the busy mix's cancels find them);
``1M near``
    random orders of the same book: the order and its index slot and pair are reads from
    memory, the level (one of 20) is in cache;
``1M deep``
    :func:`carbonbook.operations.workload.deep_resting` (the deep mix's book): 1,000,000 orders
    on 10,000 levels, so the level is a second read, after the order's (from the last-level
    cache on session 18's Xeon).

Each book is applied to a fresh engine once the last one is freed (an engine is a reference
cycle: dropped, it lives until the garbage collector runs, and a book built meanwhile would take
the old one's scattered blocks, which defeat the index's hint). No level empties or compacts.
The differences between rows are the cost of those reads as the engine sees them; compare them
with the machine's memory latency (a pointer chase over 128 MiB). Best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
from collections.abc import Sequence
from time import process_time_ns

from carbonbook import Engine
from carbonbook.commands import CancelOrder, Command
from carbonbook.operations import workload


def per_cancel(book: list[Command], ids: range, cancels: int, batch: bool, seed: int,
               core: str | None) -> float:
    """CPU ns per cancel of ``cancels`` distinct random orders among ``ids`` of ``book``, applied afresh."""
    gc.collect()  # the last engine freed first (see above)
    engine = Engine(core=core)
    engine.apply_all(book)
    # each id an int of its own, as decoded from a log (see workload._own_int)
    commands = [CancelOrder(int(str(oid))) for oid in random.Random(seed).sample(ids, cancels)]
    gc.collect()
    start = process_time_ns()
    if batch:
        engine.apply_all(commands)
    else:
        apply = engine.apply
        for command in commands:
            apply(command)
    return (process_time_ns() - start) / cancels


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cancels", type=int, default=100_000, help="cancels timed on each 1M book")
    parser.add_argument("--core", choices=("pure", "compiled"), default=None, help="default: the installed one")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    near = workload.deep_resting(1_000_000, args.seed, levels=10)
    deep = workload.deep_resting(1_000_000, args.seed)
    every = range(1, 1_000_001)
    rows = {"recent": (near, range(990_001, 1_000_001), 9_000), "1M near": (near, every, args.cancels),
            "1M deep": (deep, every, args.cancels)}
    for mode in ("apply", "apply_all"):
        best = {name: min(per_cancel(book, ids, n, mode == "apply_all", args.seed + r, args.core)
                          for r in range(args.rounds)) for name, (book, ids, n) in rows.items()}
        print(f"{mode:<9} " + ", ".join(f"{name} {ns:,.0f}" for name, ns in best.items())
              + f" ns a cancel; 1M near - recent {best['1M near'] - best['recent']:+,.0f}, "
              f"1M deep - 1M near {best['1M deep'] - best['1M near']:+,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
