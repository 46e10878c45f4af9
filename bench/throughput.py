"""Throughput as multiples of the yardstick, per core and workload, in one run.

    python bench/throughput.py [--workload busy|deep|auction|all] [--core pure|compiled|all]
                               [--messages N] [--resting R] [--seed S] [--runs K]
                               [--replay N] [--json FILE] [--profile]

The measurements are :mod:`carbonbook.operations.benchmark`'s (``carbonbook bench`` prints the same
table): the yardstick (``../shared/bench/yardstick.py``) and each core timed in this process
on the same workload, ``Engine.apply`` and ``Engine.apply_all`` rates as multiples of the
yardstick's, latency percentiles, and for ``deep`` the bytes per resting order. This script
adds:

* ``--replay N``: ``carbonbook replay`` of an N-message busy log as a whole process (start-up,
  decoding, matching, encoding, writing to /dev/null), each core, best of ``--runs``, as a
  multiple of the yardstick on the same log;
* the RSS growth per resting order of the deep book (a fresh process per core);
* ``--profile``: one busy pass under cProfile on the default core instead.

Defaults are the issue's sizes: busy 1,000,000 messages, deep 1,000,000 resting orders and a
200,000-message mix, auction 1,000,000.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import msgspec

from carbonbook import Engine
from carbonbook import core as cores
from carbonbook.operations import benchmark, workload


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_per_order(n_resting: int, seed: int, core: str) -> float:
    """The growth of RSS per resting order while a fresh engine of ``core`` takes the deep
    resting phase, in a new process (this one's heap already holds freed engines)."""
    probe = [sys.executable, __file__, "--rss-probe", "--resting", str(n_resting), "--seed", str(seed),
             "--core", core]
    grown, resting = map(int, subprocess.run(probe, check=True, capture_output=True, text=True).stdout.split())
    return grown / resting


def _rss_probe(n_resting: int, seed: int, core: str) -> None:
    commands = workload.deep_resting(n_resting, seed)
    gc.collect()
    before = _rss_bytes()
    engine = Engine(core=core)
    engine.apply_all(commands)
    gc.collect()
    print(_rss_bytes() - before, sum(len(o) for b in engine.snapshot().values() for o in b.values()))


def replay_seconds(log: str, core: str, runs: int) -> float:
    """The best wall time of ``carbonbook replay LOG --out /dev/null`` on ``core``."""
    env = dict(os.environ, CARBONBOOK_PURE="1" if core == "pure" else "0")
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "carbonbook", "replay", log, "--out", os.devnull, "--quiet"],
                       check=True, env=env)
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=(*benchmark.WORKLOADS, "all"), default="all")
    parser.add_argument("--core", choices=("pure", "compiled", "all"), default="all")
    parser.add_argument("--messages", type=int, help="messages of each mix (default: busy and auction "
                                                     "1,000,000, deep 200,000)")
    parser.add_argument("--resting", type=int, default=1_000_000,
                        help="deep: resting orders (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="throughput runs (default %(default)s)")
    parser.add_argument("--replay", type=int, metavar="N",
                        help="also time `carbonbook replay` on N busy messages")
    parser.add_argument("--yardstick", help="the yardstick module (default ../shared/bench/yardstick.py)")
    parser.add_argument("--json", metavar="FILE", help="also write the machine and the results as JSON")
    parser.add_argument("--profile", action="store_true", help="profile one busy pass instead")
    parser.add_argument("--rss-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_probe:
        _rss_probe(args.resting, args.seed, args.core)
        return 0
    if args.profile:
        commands = workload.busy(args.messages or 200_000, args.seed)
        profiler = cProfile.Profile()
        profiler.runcall(Engine().apply_all, commands)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return 0
    yardstick = benchmark.find_yardstick(args.yardstick)
    names = benchmark.WORKLOADS if args.workload == "all" else (args.workload,)
    core_names = sorted(cores.CORES) if args.core == "all" else [args.core]
    machine = benchmark.machine()
    print(f"{machine['cpu']} x{machine['cpus']}, Python {machine['python']}, msgspec {machine['msgspec']}; "
          f"yardstick {'found' if yardstick else 'NOT found (rates only)'}")
    results: list[benchmark.Result] = []
    for name in names:
        messages = args.messages or (200_000 if name == "deep" else 1_000_000)
        results += benchmark.measure([name], core_names, messages, args.resting, args.seed, args.runs,
                                     yardstick, say=lambda line: print(line, file=sys.stderr, flush=True))
    for line in benchmark.table(results):
        print(line)
    extra: dict[str, object] = {}
    if "deep" in names:
        rss = {core: rss_per_order(args.resting, args.seed, core) for core in core_names}
        extra["rss_per_resting"] = rss
        print("RSS growth per resting order: " + ", ".join(f"{c} {b:.0f} B" for c, b in rss.items()))
    if args.replay:
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "busy.jsonl")
            commands = workload.busy(args.replay, args.seed)
            with open(log, "wb") as f:
                f.write(msgspec.json.Encoder().encode_lines(commands))
            ys = [benchmark.yardstick_rate(yardstick, commands)] if yardstick else []
            seconds = {core: replay_seconds(log, core, args.runs) for core in core_names}
            if yardstick:
                ys.append(benchmark.yardstick_rate(yardstick, commands))
            extra["replay"] = {"messages": len(commands), "seconds": seconds,
                               "yardstick": max(ys) if ys else None}
            for core, s in seconds.items():
                ratio = f"{len(commands) / s / max(ys):.2f}x the yardstick" if ys else "no yardstick"
                print(f"replay   {core:<9} {len(commands):>10,} messages in {s:.2f} s, whole process: "
                      f"{len(commands) / s:,.0f}/s, {ratio}")
    print("x: rate as a multiple of the yardstick's on the same log, timed in this run")
    if args.json:
        with open(args.json, "wb") as f:
            f.write(benchmark.to_json(results, {"args": vars(args), **extra}))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
