"""The ``carbonbook`` command line. The only module that prints or picks exit codes."""

from __future__ import annotations

import argparse
import io
import os
import stat
import sys
import time
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

import msgspec

from carbonbook import core as cores
from carbonbook._types import UnitType
from carbonbook.codec import wants_msgpack
from carbonbook.engine import Engine
from carbonbook.errors import RegistryError
from carbonbook.progress import Progress
from carbonbook.replay import ReplayTally, replay

if TYPE_CHECKING:
    from carbonbook.venue import Venue

EXIT_OK = 0
EXIT_IO = 1
EXIT_USAGE = 2


class _Version(argparse.Action):
    """``--version``: the package version and the core (importlib.metadata is loaded only here:
    it costs every start-up of replay tens of milliseconds)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from importlib.metadata import version

        print(f"carbonbook {version('carbonbook')} (core: {cores.describe()})")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(prog="carbonbook", description=__doc__)
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="print the version and the core that runs, and exit")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("replay", help="replay an order log and write its events")
    p.add_argument("log", help="order log (JSON Lines or MessagePack); '-' for standard input")
    p.add_argument("--out", help="events file (JSON Lines); standard output when absent")
    p.add_argument("--snapshot", help="write the books that remain to this JSON file")
    p.add_argument("--format", choices=("auto", "jsonl", "msgpack"), default="auto",
                   help="input format; auto looks at the extension, then the first byte")
    p.add_argument("--quiet", action="store_true", help="no summary or progress on standard error")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="a progress line on standard error; auto: when it is a terminal "
                        "(never with --quiet)")
    p.add_argument("--registry", metavar="URL",
                   help="run the session against a registry: holds, registry commands, settlement "
                        "(sqlite:///PATH.db, postgresql://..., memory:)")
    p.add_argument("--currency",
                   help="cash of instruments listed without a currency (default: the registry's, "
                        "for a registry a replay went into; else JPY)")
    p.add_argument("--settle-lag", type=_non_negative, metavar="DAYS",
                   help="settle trades T+DAYS, on business_day commands (default: the registry's, "
                        "for a registry a replay went into; else 0: at once)")
    p.add_argument("--group", type=_non_negative, default=0, metavar="N",
                   help="group commit: one registry transaction per N commands or more (default 0: "
                        "one per input batch, about 4 MiB of the log); a crash loses at most the last "
                        "group's registry effects, which replaying the log again carries out")
    _add_import_lobster(commands)
    _add_report(commands)
    _add_bench(commands)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    try:
        if args.command == "import-lobster":
            return _import_lobster(args)
        if args.command == "report":
            return _report(args)
        if args.command == "bench":
            return _bench(args)
        return _replay(args)
    except OSError as exc:
        print(f"carbonbook: {exc}", file=sys.stderr)
        return EXIT_IO


def _replay(args: argparse.Namespace) -> int:
    if args.registry is None:
        return _replay_into(args, Engine())
    from carbonbook.registry import open_registry  # sqlite3 and the registry: only when asked for
    from carbonbook.venue import LogMismatch, Venue

    try:
        registry = open_registry(args.registry)
    except (ValueError, RegistryError) as exc:
        print(f"carbonbook: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_IO
    try:
        currency, lag = Venue.settings_for(registry, args.currency, args.settle_lag)
        venue = Venue(registry, currency=currency, lag=lag, group=args.group)
        code = _replay_into(args, venue)
        venue.commit()
        return code
    except (RegistryError, LogMismatch) as exc:
        print(f"carbonbook: registry {args.registry}: {exc}", file=sys.stderr)
        return EXIT_IO
    finally:
        registry.close()


def _replay_into(args: argparse.Namespace, engine: Engine | Venue) -> int:
    started = time.perf_counter()
    with _open_in(args.log) as source:
        msgpack = wants_msgpack(args.format, args.log, source)
        progress = _progress(args, source)
        hook = None if progress is None else progress.update
        try:
            if args.out is None:
                tally = replay(source, engine, sys.stdout.buffer.write, msgpack, hook)
                sys.stdout.buffer.flush()
            else:
                with open(args.out, "wb") as out:
                    tally = replay(source, engine, out.write, msgpack, hook)
        finally:
            if progress is not None:
                progress.close()
    elapsed = time.perf_counter() - started
    if args.snapshot:
        with open(args.snapshot, "wb") as f:
            f.write(msgspec.json.encode(engine.snapshot()))
            f.write(b"\n")
    if not args.quiet:
        print(_summary(tally, engine, elapsed), file=sys.stderr)
    return EXIT_OK


def _progress(args: argparse.Namespace, source: io.BufferedReader) -> Progress | None:
    """A progress line when asked for (``auto``: standard error is a terminal), not ``--quiet``.

    The ETA needs the input's size: known for a regular file, not for a pipe.
    """
    if args.quiet or args.progress == "never":
        return None
    if args.progress == "auto" and not sys.stderr.isatty():
        return None
    st = os.fstat(source.fileno())
    size = st.st_size if stat.S_ISREG(st.st_mode) and source.seekable() and source.tell() == 0 else None
    return Progress(sys.stderr, size)


def _open_in(path: str) -> io.BufferedReader:
    if path == "-":
        return open(sys.stdin.fileno(), "rb", closefd=False)
    return open(path, "rb")


def _summary(tally: ReplayTally, engine: Engine | Venue, elapsed: float) -> str:
    events = sum(tally.events.values())
    rate = tally.records / elapsed if elapsed > 0 else 0.0
    lines = [
        f"replayed {tally.records:,} records into {events:,} events in {elapsed:.3f} s "
        f"({rate:,.0f} records/s)",
        "  " + ", ".join(f"{name} {n:,}" for name, n in sorted(tally.events.items())),
    ]
    if tally.rejections:
        lines.append("  rejections: " + ", ".join(
            f"{reason} {n:,}" for reason, n in sorted(tally.rejections.items())))
    for symbol in engine.symbols:
        t = tally.symbols.get(symbol)
        depth = engine.depth(symbol, 1)
        bid = depth.bids[0].price if depth.bids else "-"
        ask = depth.asks[0].price if depth.asks else "-"
        if t is None:
            lines.append(f"  {symbol:<14} no trades; bid {bid} / ask {ask}")
        else:
            lines.append(f"  {symbol:<14} {t.trades:,} trades, {t.volume:,} t, vwap {t.vwap:,}, "
                         f"last {t.last:,}; bid {bid} / ask {ask}")
    return "\n".join(lines)


# -- import-lobster ------------------------------------------------------------------


def _add_import_lobster(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "import-lobster", help="turn LOBSTER message (and orderbook) files into an order log",
        description="Turn a LOBSTER message file, and its orderbook file, into an order log that "
                    "replays to the orderbook file's levels (see carbonbook.lobster).")
    p.add_argument("messages", help="LOBSTER message file (.csv or .csv.gz)")
    p.add_argument("orderbook", nargs="?",
                   help="its orderbook file: seeds the orders resting at the start and the levels "
                        "that come into view later; without it only the messages are converted")
    p.add_argument("-o", "--out", required=True, help="the order log to write; '-' for standard output")
    p.add_argument("--symbol", help="instrument symbol (default: the ticker in the file name)")
    p.add_argument("--date", type=date.fromisoformat,
                   help="trading day YYYY-MM-DD for ts (default: the date in the file name)")
    p.add_argument("--unit", choices=[u.value for u in UnitType],
                   help="the instrument's unit, a label only (default EUA, carbonbook.lobster.DEFAULT_UNIT)")
    p.add_argument("--format", choices=("auto", "jsonl", "msgpack"), default="auto",
                   help="log format; auto: msgpack for a .msgpack or .mpk name, else JSON Lines")
    p.add_argument("--quiet", action="store_true", help="no summary on standard error")


def _import_lobster(args: argparse.Namespace) -> int:
    from carbonbook import lobster  # imported here: replay's start-up does not need it

    started = time.perf_counter()
    name = lobster.parse_name(args.messages)
    symbol = args.symbol or (name.ticker if name else None)
    day = args.date or (name.day if name else None)
    if symbol is None or day is None:
        print(f"carbonbook: {args.messages} is not named as LOBSTER names its files; "
              "pass --symbol and --date", file=sys.stderr)
        return EXIT_USAGE
    try:
        messages = lobster.read_messages(args.messages)
        orderbook = lobster.read_orderbook(args.orderbook) if args.orderbook else None
        unit = UnitType(args.unit) if args.unit else lobster.DEFAULT_UNIT
        result = lobster.convert(messages, orderbook, symbol=symbol, unit=unit,
                                 midnight=lobster.midnight_ns(day))
    except lobster.LobsterFormatError as exc:
        print(f"carbonbook: {exc}", file=sys.stderr)
        return EXIT_IO
    msgpack = args.format == "msgpack" or (
        args.format == "auto" and args.out.endswith((".msgpack", ".mpk")))
    if args.out == "-":
        lobster.write_log(result.commands, sys.stdout.buffer, msgpack)
        sys.stdout.buffer.flush()
    else:
        with open(args.out, "wb") as out:
            lobster.write_log(result.commands, out, msgpack)
    if not args.quiet:
        elapsed = time.perf_counter() - started
        print(f"imported {len(messages):,} LOBSTER messages into {len(result.commands):,} commands "
              f"in {elapsed:.3f} s", file=sys.stderr)
        for what, n in result.stats.items():
            print(f"  {what}: {n:,}", file=sys.stderr)
    return EXIT_OK


# -- report --------------------------------------------------------------------------


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "report", help="trades, VWAP, OHLC, spreads and rejections per instrument from events",
        description="Report per instrument from an events file written by replay: trade count, "
                    "volume, VWAP, open/high/low/close, and rejections by reason; with --log (the "
                    "order log the events came from) also spread statistics, rejections per "
                    "instrument and the book at the end (see carbonbook.report).")
    p.add_argument("events", help="events file (JSON Lines, as carbonbook replay writes it)")
    p.add_argument("--log", help="the order log the events came from: rebuilds the books by "
                                 "replaying it, and checks that it gives exactly these events")
    p.add_argument("--format", choices=("auto", "jsonl", "msgpack"), default="auto",
                   help="the log's format; auto looks at the extension, then the first byte")
    p.add_argument("--plot", metavar="OUT.png",
                   help="draw price and volume over time and the depth at the end (needs matplotlib)")
    p.add_argument("--registry", nargs="?", const="", metavar="URL",
                   help="the events came from replay --registry: rebuild on a registry in memory, "
                        "with the currency and settlement lag recorded in the registry at URL when "
                        "given, else those of --currency and --settle-lag")
    p.add_argument("--currency", help="as replay's (default: the registry's, else JPY)")
    p.add_argument("--settle-lag", type=_non_negative, metavar="DAYS",
                   help="as replay's (default: the registry's, else 0)")


def _report_engine(args: argparse.Namespace) -> Engine | Venue:
    """The engine that rebuilds the books: a venue on a registry in memory for a registry run
    (RegistryError if the registry named for its settings cannot be read)."""
    if args.registry is None:
        return Engine()
    from carbonbook.registry import MemoryRegistry, open_registry
    from carbonbook.venue import Venue

    used = open_registry(args.registry) if args.registry else None
    try:
        currency, lag = Venue.settings_for(used, args.currency, args.settle_lag)
    finally:
        if used is not None:
            used.close()
    return Venue(MemoryRegistry(), currency=currency, lag=lag)


def _report(args: argparse.Namespace) -> int:
    from carbonbook import report  # imported here: replay's start-up does not need it

    try:
        engine = _report_engine(args)
    except (ValueError, RegistryError) as exc:  # not a registry URL, or a registry that cannot be read
        print(f"carbonbook: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_IO
    try:
        with open(args.events, "rb") as events:
            if args.log is None:
                result = report.build(events)
            else:
                with _open_in(args.log) as log:
                    result = report.build(events, log, wants_msgpack(args.format, args.log, log), engine=engine)
        print(report.format_text(result))
        if args.plot:
            report.plot(result, args.plot)
    except report.ReportError as exc:
        print(f"carbonbook: {exc}", file=sys.stderr)
        return EXIT_IO
    return EXIT_OK


# -- bench ---------------------------------------------------------------------------


def _add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "bench", help="measure throughput as a multiple of the yardstick, per core and workload",
        description="Build seeded workloads (untimed), then time the yardstick (a bare Python book, "
                    "shared/bench/yardstick.py) and each core on them in this one process: "
                    "Engine.apply per message and Engine.apply_all in batches (best of --runs), "
                    "latency p50/p99/p99.9, and for deep the bytes per resting order. Rates are "
                    "printed as multiples of the yardstick's (carbonbook.benchmark).")
    p.add_argument("--workload", choices=("busy", "deep", "auction", "all"), default="busy",
                   help="busy: a near-touch flow on a ~70-order book; deep: the same flow on a "
                        "book of --resting orders; auction: the flow with a call every 2,000 "
                        "messages (default %(default)s)")
    p.add_argument("--core", choices=("pure", "compiled", "all"), default="all",
                   help="which core(s) to measure (default: every core this installation has)")
    p.add_argument("--messages", type=_positive, default=200_000,
                   help="messages of the mix (default %(default)s)")
    p.add_argument("--resting", type=_positive, default=100_000,
                   help="deep: resting orders before the mix (default %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=_positive, default=3, help="throughput runs (default %(default)s)")
    p.add_argument("--yardstick", metavar="PATH",
                   help="the yardstick module (default: $CARBONBOOK_YARDSTICK, else "
                        "shared/bench/yardstick.py here or in a parent directory)")
    p.add_argument("--json", metavar="FILE", help="also write the machine and the results as JSON")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text}")
    return value


def _bench(args: argparse.Namespace) -> int:
    from carbonbook import benchmark  # imported here: replay's start-up does not need it

    yardstick = benchmark.find_yardstick(args.yardstick)
    names = benchmark.WORKLOADS if args.workload == "all" else (args.workload,)
    core_names = sorted(cores.CORES) if args.core == "all" else [args.core]
    if args.core != "all" and args.core not in cores.CORES:
        print(f"carbonbook: no {args.core} core here ({cores.describe()})", file=sys.stderr)
        return EXIT_USAGE
    print(f"machine    {benchmark.machine()['cpu']}, Python {sys.version.split()[0]}; "
          f"yardstick {'found' if yardstick else 'not found: rates only, no ratios'}")
    results = benchmark.measure(names, core_names, args.messages, args.resting, args.seed, args.runs,
                                yardstick, say=lambda line: print(line, file=sys.stderr))
    for line in benchmark.table(results):
        print(line)
    if results and results[0].yardstick:
        print("x: the rate as a multiple of the yardstick's on the same log, timed in this run")
    if args.json:
        with open(args.json, "wb") as f:
            f.write(benchmark.to_json(results, {"args": vars(args)}))
        print(f"wrote {args.json}")
    return EXIT_OK
