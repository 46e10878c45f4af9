"""In-process throughput and latency of carbonbook's engine on the bench workloads.

The workloads and the measurements live in :mod:`carbonbook.workload` (``carbonbook
bench`` runs the same throughput and latency measurements); this script adds the
deep book's memory, the CPU-time rates, the event tally and ``--profile``.

    python bench/throughput.py [--workload busy|deep|all] [--messages N] [--seed S]
                               [--resting R] [--runs K] [--profile]

The workload is built first (not timed). Then, for each workload:

* throughput: every command goes through ``Engine().apply`` (its events are built as
  usual and dropped), timed as a whole with ``time.perf_counter_ns``; the best of
  ``--runs`` runs, each on a fresh Engine (also by the process's CPU time, which a
  busy machine inflates less); then the same in batches through ``Engine.apply_all``,
  as ``carbonbook replay`` applies its input;
* latency: one more pass on a fresh Engine with ``perf_counter_ns`` read before and
  after each ``apply``; p50/p99/p99.9 include the timer's own overhead, printed too;
* a tally pass (untimed): events by type and the average number of resting orders
  after each message;
* deep only: memory per resting order once the resting phase is in (tracemalloc's
  traced bytes, and separately the growth of the process's RSS, divided by the
  resting orders), and the resting and mix phases timed separately, so the mix's
  rate can be set against the busy workload's (the same flow on a ~70-order book).

``--profile`` instead runs one pass under cProfile (for deep, of the mix phase on
the deep book) and prints the top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import subprocess
import sys
import tracemalloc
from collections.abc import Sequence
from time import perf_counter

from carbonbook import Command, Engine
from carbonbook import workload as workloads
from carbonbook.workload import (
    BATCH,
    Phase,
    Tally,
    best_times,
    latencies,
    percentile,
    tally,
    timer_overhead_ns,
)

BUSY_MESSAGES = 1_000_000
DEEP_RESTING = 1_000_000
DEEP_MIX = 200_000


# -- measurements -----------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def traced_per_order(commands: Sequence[Command]) -> tuple[float, int]:
    """tracemalloc's traced bytes after replaying ``commands`` into a fresh Engine, per
    resting order; and the number of resting orders.

    The commands exist before tracing starts, so objects an order shares with its
    command (the id int, the account and symbol strings) are not counted.
    """
    gc.collect()
    tracemalloc.start()
    engine = Engine()
    for command in commands:
        engine.apply(command)
    gc.collect()
    traced, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    resting = _resting(engine)
    return traced / resting, resting


def rss_per_order(n_resting: int, seed: int) -> float:
    """The growth of RSS per resting order while a fresh Engine takes the deep resting
    phase, measured in a new process (this one's heap already holds freed engines)."""
    probe = [sys.executable, __file__, "--rss-probe", "--resting", str(n_resting),
             "--seed", str(seed)]
    grown, resting = map(int, subprocess.run(probe, check=True, capture_output=True,
                                             text=True).stdout.split())
    return grown / resting


def _rss_probe(n_resting: int, seed: int) -> None:
    commands = workloads.deep_resting(n_resting, seed)
    gc.collect()
    before = _rss_bytes()
    engine = Engine()
    for command in commands:
        engine.apply(command)
    gc.collect()
    print(_rss_bytes() - before, _resting(engine))


def _resting(engine: Engine) -> int:
    return sum(len(orders) for book in engine.snapshot().values() for orders in book.values())


def profile(before: Sequence[Command], commands: Sequence[Command], top: int) -> None:
    """Apply ``before`` (not profiled), then ``commands`` under cProfile; print the ``top``
    functions by own time."""
    engine = Engine()
    for command in before:
        engine.apply(command)
    profiler = cProfile.Profile()
    profiler.enable()
    for command in commands:
        engine.apply(command)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


# -- reporting ----------------------------------------------------------------------


def _rate(count: int, ns: int) -> str:
    return f"{count / ns * 1e9:>12,.0f} msgs/s  ({count:,} messages in {ns / 1e9:.3f} s)"


def _print_latency(name: str, lat: Sequence[int], overhead: int) -> None:
    p50, p99, p999 = (percentile(lat, q) for q in (50, 99, 99.9))
    print(f"  latency {name:<5} p50 {p50 / 1e3:7.2f} us   p99 {p99 / 1e3:7.2f} us   "
          f"p99.9 {p999 / 1e3:7.2f} us   max {lat[-1] / 1e3:9.1f} us  "
          f"(timer overhead ~{overhead} ns included)")


def _print_tally(name: str, t: Tally) -> None:
    counts = "  ".join(f"{k} {v:,}" for k, v in sorted(t.events.items()))
    print(f"  events  {name:<5} {counts}")
    print(f"  resting {name:<5} average {t.resting_avg:,.1f} orders after each message, "
          f"{t.resting_end:,} at the end")


def run(name: str, phases: Sequence[Phase], runs: int) -> dict[str, float]:
    """Measure and print one workload; return msgs/s by phase."""
    print(f"\n== {name}: " + ", ".join(f"{p.name} {len(p.commands):,}" for p in phases)
          + f" commands; throughput best of {runs}, each on a fresh Engine")
    rates = {}
    for phase, (ns, cpu) in zip(phases, best_times(phases, runs), strict=True):
        rates[phase.name] = len(phase.commands) / ns * 1e9
        print(f"  throughput {phase.name:<5} {_rate(len(phase.commands), ns)}; "
              f"by CPU time {len(phase.commands) / cpu * 1e9:,.0f} msgs/s")
    for phase, (ns, cpu) in zip(phases, best_times(phases, runs, batch=True), strict=True):
        print(f"  batched    {phase.name:<5} {_rate(len(phase.commands), ns)}; "
              f"by CPU time {len(phase.commands) / cpu * 1e9:,.0f} msgs/s "
              f"(apply_all, {BATCH:,} commands a call)")
    if len(phases) > 1:
        total = sum(len(p.commands) for p in phases)
        total_ns = sum(len(p.commands) / rates[p.name] * 1e9 for p in phases)
        print(f"  throughput all   {_rate(total, int(total_ns))}")
    overhead = timer_overhead_ns()
    for phase, lat in zip(phases, latencies(phases), strict=True):
        _print_latency(phase.name, lat, overhead)
    for phase, t in zip(phases, tally(phases), strict=True):
        _print_tally(phase.name, t)
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=("busy", "deep", "all"), default="all")
    parser.add_argument("--messages", type=int,
                        help=f"busy messages (default {BUSY_MESSAGES:,}) "
                             f"and deep mix messages (default {DEEP_MIX:,})")
    parser.add_argument("--resting", type=int, default=DEEP_RESTING,
                        help="deep: resting orders before the mix (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="throughput runs (default 3)")
    parser.add_argument("--profile", action="store_true",
                        help="profile one pass instead (busy, or deep's mix with --workload deep)")
    parser.add_argument("--rss-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_probe:
        _rss_probe(args.resting, args.seed)
        return 0

    import carbonbook

    where = os.path.dirname(carbonbook.__file__)
    print(f"carbonbook from {where}, Python {sys.version.split()[0]}")
    rates: dict[str, float] = {}
    if args.workload in ("busy", "all"):
        n = args.messages or BUSY_MESSAGES
        started = perf_counter()
        commands, avg = workloads.busy_with_stats(n, args.seed)
        print(f"built busy({n:,}, seed={args.seed}) in {perf_counter() - started:.1f} s "
              f"(untimed; average resting orders while generating {avg:.1f})")
        if args.profile:
            profile([], commands, 15)
            return 0
        rates["busy"] = run("busy", [Phase("mix", commands)], args.runs)["mix"]
        del commands
        gc.collect()
    if args.workload in ("deep", "all"):
        n = args.messages or DEEP_MIX
        started = perf_counter()
        commands = workloads.deep(args.resting, n, args.seed)
        print(f"\nbuilt deep({args.resting:,}, {n:,}, seed={args.seed}) "
              f"in {perf_counter() - started:.1f} s (untimed)")
        gc.collect()
        rest = Phase("rest", commands[: 1 + args.resting])
        mix = Phase("mix", commands[1 + args.resting:])
        if args.profile:
            profile(rest.commands, mix.commands, 15)
            return 0
        traced, resting = traced_per_order(rest.commands)
        rss = rss_per_order(args.resting, args.seed)
        print(f"  memory  at {resting:,} resting orders: {traced:.0f} B/order by tracemalloc "
              f"(bytes traced after the rest phase / resting orders; excludes the id ints "
              f"and strings shared with the commands); {rss:.0f} B/order by RSS growth "
              f"(/proc/self/statm before and after the rest phase, fresh process and Engine)")
        rates.update({f"deep {k}": v for k, v in run("deep", [rest, mix], args.runs).items()})
    if "busy" in rates and "deep mix" in rates:
        print(f"\nthe same mix: {rates['busy']:,.0f} msgs/s on the busy ~70-order book, "
              f"{rates['deep mix']:,.0f} msgs/s on the deep book "
              f"(deep/busy {rates['deep mix'] / rates['busy']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
