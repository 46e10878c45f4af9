"""The deep book's mix rate over the busy rate, per core and mode, timed alternately in one process.

    python bench/deep_ratio.py [--rounds K] [--core pure|compiled|all] [--modes apply,apply_all]
                               [--busy N] [--mix N] [--resting R] [--seed S] [--no-gc]

Issue 12's ratio (:mod:`carbonbook.operations.benchmark`'s ``deep/busy``) from a single pass
of each swings by a fifth on a shared 2-core machine, since the busy and the deep runs are
seconds apart and other processes come and go. Here each round times, per core and mode, the
busy workload on a fresh engine and right after it the deep mix (``--mix`` messages on a
fresh book of ``--resting`` orders, its resting phase applied the same way but untimed), so
the two rates of a round share the load. It prints each round's ratio as it goes, then per
core and mode: the best busy and deep rates (CPU time of this process, which leaves out
waiting for a core but not what other processes do to the caches), the ratio of those bests
and the median and best of the rounds' ratios. ``--no-gc`` disables the garbage collector during the timed runs.

Timings only rank what the counts say: compare two versions of the code by callgrind's
instructions and last-level misses per message first (``bench/instructions.py --workload
deep --cache`` and the same on ``busy``).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from collections.abc import Sequence

from carbonbook import Engine
from carbonbook import core as cores
from carbonbook.commands import Command
from carbonbook.operations import workload


def rate(engine: Engine, commands: Sequence[Command], batch: bool, no_gc: bool) -> float:
    """Messages per CPU second of ``commands`` on ``engine``."""
    gc.collect()
    if no_gc:
        gc.disable()
    try:
        _wall, cpu = workload.replay_ns(engine, commands, batch)
    finally:
        gc.enable()
    return len(commands) / cpu * 1e9


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--core", choices=("pure", "compiled", "all"), default="all")
    parser.add_argument("--modes", default="apply,apply_all")
    parser.add_argument("--busy", type=int, default=1_000_000, help="busy messages (default %(default)s)")
    parser.add_argument("--mix", type=int, default=200_000, help="deep mix messages (default %(default)s)")
    parser.add_argument("--resting", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-gc", action="store_true", help="no garbage collection while timed")
    args = parser.parse_args(argv)
    busy = workload.busy(args.busy, args.seed)
    deep = workload.deep(args.resting, args.mix, args.seed)
    rest, mix = deep[:1 + args.resting], deep[1 + args.resting:]
    core_names = sorted(cores.CORES) if args.core == "all" else [args.core]
    modes = args.modes.split(",")
    rates: dict[tuple[str, str], list[tuple[float, float]]] = {(c, m): [] for c in core_names for m in modes}
    for r in range(args.rounds):
        for core in core_names:
            for mode in modes:
                batch = mode == "apply_all"
                b = rate(Engine(core=core), busy, batch, args.no_gc)
                engine = Engine(core=core)
                workload.replay_ns(engine, rest, batch)
                d = rate(engine, mix, batch, args.no_gc)
                del engine
                rates[core, mode].append((b, d))
                print(f"round {r + 1} {core:<8} {mode:<9} busy {b / 1e6:5.2f} M/s, "
                      f"deep mix {d / 1e6:5.2f} M/s, ratio {d / b:.3f}", file=sys.stderr, flush=True)
    for (core, mode), got in rates.items():
        best_busy, best_deep = max(b for b, _ in got), max(d for _, d in got)
        ratios = [d / b for b, d in got]
        print(f"{core:<8} {mode:<9} busy {best_busy / 1e6:5.2f} M/s, deep mix {best_deep / 1e6:5.2f} M/s; "
              f"deep/busy {best_deep / best_busy:.3f} (bests), rounds median {statistics.median(ratios):.3f}, "
              f"best {max(ratios):.3f} ({len(got)} rounds{', no gc' if args.no_gc else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
