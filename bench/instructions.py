"""Machine instructions per message on the busy workload, counted by valgrind's callgrind.

    python bench/instructions.py [--messages N] [--seed S]

Wall-clock rates on a shared 2-core machine swing by a factor of two with the load;
instruction counts do not: the same code and input give the same count to within a
few parts in a thousand, whatever else runs. Each mode replays the first 4,000 and then
the first 4,000 + N busy messages in a fresh process under callgrind; the difference
divided by N is the cost of one message, free of start-up and import costs. Compare
two versions of the engine by these numbers, then confirm with bench/throughput.py.

Each core (``--core``) is counted in each mode. Modes: ``apply`` (one ``Engine.apply``
per command), ``batch`` (``Engine.apply_all`` on 4,096 commands at a time) and ``decoded``
(the same batches of the commands that :mod:`carbonbook.codec` decodes from the workload's
JSON Lines, applied with ``decoded=True`` as ``carbonbook replay`` applies them; every run decodes the whole
workload, so the decoding cancels out of the difference).
"""

from __future__ import annotations

import argparse
import pickle
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from carbonbook import Engine
from carbonbook import core as cores
from carbonbook import workload as workloads
from carbonbook.codec import json_decoder, json_encoder

BASE = 4_000
BATCH = 4_096


def _replay(path: str, n: int, mode: str, core: str) -> None:
    with open(path, "rb") as f:
        commands = pickle.load(f)
    if mode == "decoded":
        commands = [json_decoder.decode(line) for line in json_encoder.encode_lines(commands).splitlines()]
    commands = commands[:n]
    engine = Engine(core=core)
    if mode == "apply":
        apply = engine.apply
        for command in commands:
            apply(command)
    else:
        for i in range(0, len(commands), BATCH):
            engine.apply_all(commands[i:i + BATCH], decoded=mode == "decoded")


def _count(path: str, n: int, mode: str, core: str) -> int:
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, "--replay", path, str(n), mode, core],
        capture_output=True, text=True, check=True,
    )
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise RuntimeError(proc.stderr)
    return int(match.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--core", choices=("pure", "compiled", "all"), default="all")
    parser.add_argument("--replay", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replay:
        path, n, mode, core = args.replay
        _replay(path, int(n), mode, core)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "busy.pickle")
        with open(path, "wb") as f:
            pickle.dump(workloads.busy(BASE + args.messages, args.seed), f)
        for core in sorted(cores.CORES) if args.core == "all" else [args.core]:
            for mode in ("apply", "batch", "decoded"):
                extra = _count(path, BASE + args.messages, mode, core) - _count(path, BASE, mode, core)
                print(f"{core:<8} {mode:<7} {extra / args.messages:,.0f} instructions per message "
                      f"(busy, messages {BASE:,}..{BASE + args.messages:,}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
