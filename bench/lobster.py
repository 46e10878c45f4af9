"""Replay speed on real order flow: the LOBSTER AMZN day (155,935 messages), end to end.

    python bench/lobster.py [--data DIR] [--runs K] [--keep DIR]

Issue 5 asks for the LOBSTER AMZN day replayed end to end, decoding and writing events
included, in under one second. This script

1. imports the day with ``carbonbook import-lobster`` (a subprocess, timed once) into an
   order log in a temporary directory (or ``--keep DIR``);
2. replays that log ``--runs`` times with ``carbonbook replay LOG --out EVENTS --quiet``
   as a separate process, timing each whole process (interpreter start, imports,
   decoding, matching, encoding and writing the events) by wall clock and by the
   child's CPU time (user + system, which a loaded machine inflates less);
3. replays it ``--runs`` times in this process with :func:`carbonbook.operations.replay.replay`
   into an in-memory buffer (decoding, matching and encoding only).

Each figure is the best run, given as seconds and as LOBSTER messages per second (the
log holds more records than messages: the instrument, seeded and window orders).
Nothing is asserted; the machine is shared, so compare the CPU-time figures.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter, process_time

from carbonbook.core.engine import Engine
from carbonbook.operations.lobster import read_messages
from carbonbook.operations.replay import replay

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "lobster"
MESSAGES = "AMZN_2012-06-21_34200000_57600000_message_5.csv.gz"
ORDERBOOK = "AMZN_2012-06-21_34200000_57600000_orderbook_5.csv.gz"
CARBONBOOK = [sys.executable, "-m", "carbonbook"]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_process(args: Sequence[str]) -> tuple[float, float]:
    """Run a command; return its wall time and CPU time (user + system), in seconds."""
    cpu = _child_cpu()
    start = perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return perf_counter() - start, _child_cpu() - cpu


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory of the LOBSTER sample")
    parser.add_argument("--runs", type=int, default=5, help="replays of each kind; the best counts")
    parser.add_argument("--keep", type=Path, help="write the log and events here instead of a temp dir")
    args = parser.parse_args(argv)

    messages, orderbook = args.data / MESSAGES, args.data / ORDERBOOK
    if not messages.exists():
        print(f"no LOBSTER sample at {args.data}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        log, events = work / "amzn.jsonl", work / "amzn-events.jsonl"

        wall, cpu = timed_process([*CARBONBOOK, "import-lobster", str(messages), str(orderbook),
                                   "-o", str(log), "--quiet"])
        n_messages = len(read_messages(messages))
        records = count_lines(log)
        print(f"import-lobster: {n_messages:,} messages -> {records:,} records, {log.stat().st_size:,} "
              f"bytes; {wall:.3f} s wall, {cpu:.3f} s CPU")

        best_wall = best_cpu = float("inf")
        for _ in range(args.runs):
            wall, cpu = timed_process([*CARBONBOOK, "replay", str(log), "--out", str(events), "--quiet"])
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        print(f"carbonbook replay, whole process (best of {args.runs}): "
              f"{best_wall:.3f} s wall = {n_messages / best_wall:,.0f} msg/s; "
              f"{best_cpu:.3f} s CPU = {n_messages / best_cpu:,.0f} msg/s; "
              f"{count_lines(events):,} events")

        best_wall = best_cpu = float("inf")
        for _ in range(args.runs):
            out = io.BytesIO()
            with open(log, "rb") as source:
                cpu0, start = process_time(), perf_counter()
                replay(source, Engine(), out.write)
                wall, cpu = perf_counter() - start, process_time() - cpu0
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        print(f"replay() in process, to memory (best of {args.runs}): "
              f"{best_wall:.3f} s wall = {n_messages / best_wall:,.0f} msg/s; "
              f"{best_cpu:.3f} s CPU = {n_messages / best_cpu:,.0f} msg/s")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
