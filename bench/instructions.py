"""Machine instructions per message on the busy workload, counted by valgrind's callgrind.

    python bench/instructions.py [--messages N] [--seed S] [--core C] [--cache]
                                 [--workload auction|deep [--resting R]]

Wall-clock rates on a shared 2-core machine swing by a factor of two with the load;
instruction counts do not: the same code and input give the same count to within a
few parts in a thousand, whatever else runs (string hashing fixed: each run gets
PYTHONHASHSEED=0; a random seed moves the count of ``apply`` by up to 2 %). Each mode
replays the first 4,000 and then the first 4,000 + N busy messages in a fresh process
under callgrind; the difference
divided by N is the cost of one message, free of start-up and import costs. Compare
two versions of the engine by these numbers, then confirm with bench/throughput.py.

Each core (``--core``) is counted in each mode. Modes: ``apply`` (one ``Engine.apply``
per command), ``batch`` (``Engine.apply_all`` on 4,096 commands at a time) and ``decoded``
(the same batches of the commands that :mod:`carbonbook.codec` decodes from the workload's
JSON Lines, applied with ``decoded=True`` as ``carbonbook replay`` applies them; every run decodes the whole
workload, so the decoding cancels out of the difference).

``--workload auction`` counts the busy mix with a call every 2,000 messages.
``--workload deep`` counts the same mix on a book of ``--resting`` orders (the resting phase is
in both runs, so it cancels out too). ``--cache`` adds callgrind's cache simulation and prints
the first-level and last-level data cache misses per message as well. Callgrind simulates two
levels; the last is set to ``--l2`` MiB (default 4 MiB, the L2 of the Xeon these counts were first
taken on; the AMD EPYC machines since have 512 KiB per core and a 32 MiB L3), so its misses are
the reads that wait on L3 or memory: the deep book's cost. It is a setting, not a reading, so
counts compare across machines.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from carbonbook import Engine
from carbonbook import core as cores
from carbonbook.codec import json_decoder, json_encoder
from carbonbook.operations import workload as workloads

BASE = 4_000
BATCH = 4_096
FLOWS = {"busy": workloads.busy, "auction": workloads.auction}


def _replay(path: str, n: int, mode: str, core: str, resting: int) -> None:
    with open(path, "rb") as f:
        commands = pickle.load(f)
    if mode == "decoded":
        commands = [json_decoder.decode(line) for line in json_encoder.encode_lines(commands).splitlines()]
    engine = Engine(core=core)
    engine.apply_all(commands[:resting])
    commands = commands[resting:n]
    if mode == "apply":
        apply = engine.apply
        for command in commands:
            apply(command)
    else:
        for i in range(0, len(commands), BATCH):
            engine.apply_all(commands[i:i + BATCH], decoded=mode == "decoded")


def _count(path: str, n: int, mode: str, core: str, resting: int, l2: int) -> dict[str, int]:
    """Callgrind's totals for one run: instructions ``Ir`` and, with an ``l2`` size (MiB), the misses."""
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         *(["--cache-sim=yes", f"--LL={l2 << 20},16,64"] if l2 else []),
         sys.executable, __file__, "--replay", path, str(n), mode, core, str(resting)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    events = re.search(r"Events *: ([\w ]+)", proc.stderr)
    collected = re.search(r"Collected : ([\d ]+)", proc.stderr)
    if events is None or collected is None:
        raise RuntimeError(proc.stderr)
    return dict(zip(events.group(1).split(), map(int, collected.group(1).split()), strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--core", choices=("pure", "compiled", "all"), default="all")
    parser.add_argument("--workload", choices=("busy", "deep", "auction"), default="busy")
    parser.add_argument("--resting", type=int, default=1_000_000, help="resting orders of the deep book")
    parser.add_argument("--modes", default="apply,batch,decoded")
    parser.add_argument("--cache", action="store_true", help="simulate the caches; print misses too")
    parser.add_argument("--l2", type=int, default=4, help="MiB of the last cache level simulated")
    parser.add_argument("--replay", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replay:
        path, n, mode, core, resting = args.replay
        _replay(path, int(n), mode, core, int(resting))
        return 0
    resting = 1 + args.resting if args.workload == "deep" else 0  # the listing and the resting orders
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "log.pickle")
        with open(path, "wb") as f:
            pickle.dump(workloads.deep(args.resting, BASE + args.messages, args.seed) if resting
                        else FLOWS[args.workload](BASE + args.messages, args.seed), f)
        for core in sorted(cores.CORES) if args.core == "all" else [args.core]:
            for mode in args.modes.split(","):
                base, more = (_count(path, resting + n, mode, core, resting, args.l2 if args.cache else 0)
                              for n in (BASE, BASE + args.messages))
                per = {k: (more[k] - base[k]) / args.messages for k in more}
                misses = f", {per['D1mr'] + per['D1mw']:,.1f} D1 and {per['DLmr'] + per['DLmw']:,.1f} " \
                    f"L2 ({args.l2} MiB) data misses" if args.cache else ""
                print(f"{core:<8} {mode:<7} {per['Ir']:,.0f} instructions{misses} per message "
                      f"({args.workload}, messages {BASE:,}..{BASE + args.messages:,}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
