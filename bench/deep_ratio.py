"""The deep book's mix rate over the busy rate, per core and mode, timed alternately in one process.

    python bench/deep_ratio.py [--rounds K] [--core pure|compiled|all] [--modes apply,apply_all]
                               [--busy N] [--mix N] [--resting R] [--seed S] [--no-gc]
                               [--build TREE ...]

Issue 12's ratio (:mod:`carbonbook.operations.benchmark`'s ``deep/busy``) from a single pass
of each swings by a fifth on a shared 2-core machine, since the busy and the deep runs are
seconds apart and other processes come and go. Here each round times, per core and mode, the
busy workload on a fresh engine and right after it the deep mix (``--mix`` messages on a
fresh book of ``--resting`` orders, its resting phase applied the same way but untimed), so
the two rates of a round share the load. It prints each round's ratio as it goes, then per
core and mode: the best busy and deep rates (CPU time of this process, which leaves out
waiting for a core but not what other processes do to the caches), the ratio of those bests
and the median and best of the rounds' ratios. ``--no-gc`` disables the garbage collector
during the timed runs.

Timings only rank what the counts say: compare two versions of the code by callgrind's
instructions and last-level misses per message first (``bench/instructions.py --workload
deep --cache`` and the same on ``busy``). Callgrind cannot see misses that overlap, though
(a fetch started early, two reads at once): for such a change, ``--build TREE`` adds the
compiled core built in another checkout (``TREE/src/carbonbook/core/_cbook*.so``, same
Python sources) as a core of its own, loaded beside this one, so that two versions run in
one process, each round in turn (the first core of a round rotates), and share the load;
it also prints the median rates.
"""

from __future__ import annotations

import argparse
import gc
import importlib.machinery
import importlib.util
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from carbonbook import Engine
from carbonbook import core as cores
from carbonbook.commands import Command
from carbonbook.core import phases
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


def load_build(tree: str) -> str:
    """Load the compiled core built in checkout ``tree`` as a core named after it; its name."""
    so = next(Path(tree, "src/carbonbook/core").glob("_cbook.*.so"))
    loader = importlib.machinery.ExtensionFileLoader("carbonbook.core._cbook", str(so))
    spec = importlib.util.spec_from_file_location("carbonbook.core._cbook", so, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    name = Path(tree).resolve().name
    cores.CORES[name] = module
    family = phases._family(module.OrderBook)  # its phase books, as for the cores of this checkout
    phases.FAMILIES.update(dict.fromkeys(family.values(), family))
    return name


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
    parser.add_argument("--build", action="append", default=[], metavar="TREE",
                        help="also the compiled core built in checkout TREE (repeatable)")
    args = parser.parse_args(argv)
    builds = [load_build(tree) for tree in args.build]
    busy = workload.busy(args.busy, args.seed)
    deep = workload.deep(args.resting, args.mix, args.seed)
    rest, mix = deep[:1 + args.resting], deep[1 + args.resting:]
    core_names = (sorted(set(cores.CORES) - set(builds)) if args.core == "all" else [args.core]) + builds
    modes = args.modes.split(",")
    rates: dict[tuple[str, str], list[tuple[float, float]]] = {(c, m): [] for c in core_names for m in modes}
    for r in range(args.rounds):
        turn = r % len(core_names) if builds else 0
        for core in core_names[turn:] + core_names[:turn]:
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
        medians = (f" (medians {statistics.median(b for b, _ in got) / 1e6:.2f}, "
                   f"{statistics.median(d for _, d in got) / 1e6:.2f})") if builds else ""
        print(f"{core:<8} {mode:<9} busy {best_busy / 1e6:5.2f} M/s, "
              f"deep mix {best_deep / 1e6:5.2f} M/s{medians}; deep/busy {best_deep / best_busy:.3f} (bests), "
              f"rounds median {statistics.median(ratios):.3f}, "
              f"best {max(ratios):.3f} ({len(got)} rounds{', no gc' if args.no_gc else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
