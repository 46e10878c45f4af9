"""Throughput as a multiple of the yardstick, per core and workload, measured in one run.

Absolute rates on shared machines swing 2x between runs; the rate of a careful bare Python
book timed in the same process on the same log does not swing apart from ours. That book is
the *yardstick* (``refbook_rate(log)`` of ``shared/bench/yardstick.py``: no accounts, no
validation, no self-trade prevention, trades as tuples). :func:`measure` runs, per workload:

- the yardstick on the workload's log, before and after the cores; the faster of its two
  rates is the one divided by, so a ratio errs low;
- on each core: ``Engine.apply`` one message at a time and ``Engine.apply_all`` in batches of
  :data:`~carbonbook.operations.workload.BATCH` (best of ``runs``, each on a fresh engine), and the
  latency of each ``apply`` (p50, p99, p99.9; timer overhead included);
- for ``deep``, also the bytes per resting order (tracemalloc, after the resting phase) and
  the mix alone, to set against ``busy`` (the same flow on a ~70-order book).

Workloads (:mod:`carbonbook.operations.workload`): ``busy`` (near-touch flow), ``deep`` (the same flow
on a book of ``resting`` orders), ``auction`` (the same flow with a call auction every 2,000
messages), ``venue`` (the busy flow through a :class:`~carbonbook.venue.Venue` on a
:class:`~carbonbook.registry.MemoryRegistry`: pre-trade holds and DvP settlement of every
trade; its registry setup is applied untimed, and the table also gives its rates as a
multiple of the bare engine's on ``busy``, same core, same run). The engine never reads the
clock; only this module and the workload timers do.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import platform
import sys
import tempfile
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

import msgspec

from carbonbook import core as cores
from carbonbook.commands import Command
from carbonbook.core.engine import Engine
from carbonbook.operations import workload
from carbonbook.operations.workload import Phase
from carbonbook.registry import MemoryRegistry
from carbonbook.venue import Venue

WORKLOADS = ("busy", "deep", "auction", "venue")
YARDSTICK = Path("shared") / "bench" / "yardstick.py"
"""Where the yardstick lies next to a checkout: ``../shared/bench/yardstick.py``."""


@dataclass
class Result:
    """One core on one workload. Rates are messages per second; ratios are rate / yardstick."""

    workload: str
    core: str
    messages: int
    apply: float
    apply_all: float
    yardstick: float | None
    p50_ns: int
    p99_ns: int
    p999_ns: int
    bytes_per_resting: float | None = None
    mix_apply: float | None = None
    mix_apply_all: float | None = None

    @property
    def ratios(self) -> dict[str, float]:
        """``apply`` and ``apply_all`` as multiples of the yardstick (empty without one)."""
        if not self.yardstick:
            return {}
        return {"apply": self.apply / self.yardstick, "apply_all": self.apply_all / self.yardstick}


def find_yardstick(path: str | None = None) -> ModuleType | None:
    """The yardstick module: ``path``, else ``$CARBONBOOK_YARDSTICK``, else ``shared/bench/yardstick.py``
    in the working directory or a parent of it or of this package; None when there is none."""
    path = path or os.environ.get("CARBONBOOK_YARDSTICK")
    if path is None:
        here = [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]
        found = next((d / YARDSTICK for d in here if (d / YARDSTICK).is_file()), None)
        if found is None:
            return None
        path = str(found)
    spec = importlib.util.spec_from_file_location("yardstick", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no yardstick at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def phases(name: str, messages: int, resting: int, seed: int) -> list[Phase]:
    """The phases of workload ``name``: one ``mix``, or ``rest`` then ``mix`` for ``deep``."""
    if name == "busy":
        return [Phase("mix", workload.busy(messages, seed))]
    if name == "auction":
        return [Phase("mix", workload.auction(messages, seed))]
    if name == "venue":
        setup, orders = workload.venue_session(messages, seed)
        return [Phase("setup", setup), Phase("mix", orders)]
    commands = workload.deep(resting, messages, seed)
    return [Phase("rest", commands[:1 + resting]), Phase("mix", commands[1 + resting:])]


def yardstick_rate(yardstick: ModuleType, commands: Sequence[Command]) -> float:
    """The yardstick's rate on ``commands`` (written to a temporary log, as it reads logs)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        with open(log, "wb") as f:
            f.write(msgspec.json.Encoder().encode_lines(commands))
        rate: float = yardstick.refbook_rate(log)[0]
        return rate


def bytes_per_resting(commands: Sequence[Command], core: str) -> float:
    """tracemalloc's traced bytes per resting order after ``commands`` on a fresh engine of
    ``core``. The commands exist before tracing starts, so what an order shares with its
    command (the id int, the account and symbol strings) is not counted."""
    gc.collect()
    tracemalloc.start()
    engine = Engine(core=core)
    engine.apply_all(commands)
    gc.collect()
    traced, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    resting = sum(len(orders) for book in engine.snapshot().values() for orders in book.values())
    return traced / resting


def measure(names: Sequence[str], core_names: Sequence[str], messages: int, resting: int, seed: int,
            runs: int, yardstick: ModuleType | None,
            say: Callable[[str], object] = lambda line: None) -> list[Result]:
    """Measure every core on every workload (see the module docstring); ``say`` hears progress."""
    results = []
    for name in names:
        say(f"building {name} ...")
        parts = phases(name, messages, resting, seed)
        timed = parts[-1:] if name == "venue" else parts  # a venue's registry setup is untimed
        everything = [c for p in timed for c in p.commands]
        before = yardstick_rate(yardstick, everything) if yardstick else None
        measured = []
        for core in core_names:
            say(f"{name} on the {core} core ...")
            n = len(everything)
            make = partial(_venue, core) if name == "venue" else None
            walls = workload.best_times(parts, runs, core=core, make=make)[-len(timed):]
            batches = workload.best_times(parts, runs, batch=True, core=core, make=make)[-len(timed):]
            lat = workload.latencies(parts, core=core, make=make)[-1]
            p50, p99, p999 = (workload.percentile(lat, q) for q in (50, 99, 99.9))
            result = Result(name, core, n, n / sum(w for w, _ in walls) * 1e9,
                            n / sum(w for w, _ in batches) * 1e9, None, p50, p99, p999)
            if name == "deep":
                mix = len(parts[-1].commands)
                result.bytes_per_resting = bytes_per_resting(parts[0].commands, core)
                result.mix_apply = mix / walls[-1][0] * 1e9
                result.mix_apply_all = mix / batches[-1][0] * 1e9
            measured.append(result)
        after = yardstick_rate(yardstick, everything) if yardstick else None
        for result in measured:
            if before and after:
                result.yardstick = max(before, after)
            results.append(result)
    return results


def _venue(core: str) -> Venue:
    """A venue on a fresh memory registry, its engine on ``core`` (the venue workload's prices are in EUR)."""
    return Venue(MemoryRegistry(), currency="EUR", core=core)


def machine() -> dict[str, str]:
    """What the numbers were measured on: CPU model, Python, msgspec, platform."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpus": str(os.cpu_count()), "python": sys.version.split()[0],
            "msgspec": msgspec.__version__, "platform": platform.platform(), "default_core": cores.describe()}


def to_json(results: Sequence[Result], extra: dict[str, object] | None = None) -> bytes:
    """The machine and the results as JSON, so two runs can be compared."""
    rows = [{**asdict(r), "ratios": r.ratios} for r in results]
    return msgspec.json.format(msgspec.json.encode({"machine": machine(), **(extra or {}), "results": rows}))


def table(results: Sequence[Result]) -> list[str]:
    """The results as the lines of a text table."""
    lines = [f"{'workload':<8} {'core':<9} {'messages':>10} {'apply/s':>11} {'x':>5} {'apply_all/s':>12} "
             f"{'x':>5} {'p50 us':>7} {'p99 us':>7} {'p99.9 us':>8}  other"]
    for r in results:
        x = r.ratios
        other = []
        if r.bytes_per_resting is not None:
            other.append(f"{r.bytes_per_resting:.0f} B/resting order")
        if r.mix_apply is not None:
            busy = next((b for b in results if b.workload == "busy" and b.core == r.core), None)
            mix = f"mix alone {r.mix_apply:,.0f}/s apply, {r.mix_apply_all:,.0f}/s apply_all"
            if busy is not None:
                mix += (f" (deep/busy {r.mix_apply / busy.apply:.2f} apply, "
                        f"{(r.mix_apply_all or 0) / busy.apply_all:.2f} apply_all)")
            other.append(mix)
        if r.workload == "venue":
            busy = next((b for b in results if b.workload == "busy" and b.core == r.core), None)
            if busy is not None:
                other.append(f"venue/engine {r.apply / busy.apply:.3f} apply, "
                             f"{r.apply_all / busy.apply_all:.3f} apply_all")
        lines.append(f"{r.workload:<8} {r.core:<9} {r.messages:>10,} {r.apply:>11,.0f} "
                     f"{x.get('apply', 0):>5.2f} {r.apply_all:>12,.0f} {x.get('apply_all', 0):>5.2f} "
                     f"{r.p50_ns / 1e3:>7.2f} {r.p99_ns / 1e3:>7.2f} {r.p999_ns / 1e3:>8.2f}  "
                     + "; ".join(other))
    return lines
