"""The ``carbonbook`` command line. The only module that prints or picks exit codes."""

from __future__ import annotations

import argparse
import io
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, BinaryIO

import msgspec

from carbonbook import core as cores
from carbonbook._types import UnitType
from carbonbook.codec import json_encoder, wants_msgpack
from carbonbook.core.engine import Engine
from carbonbook.errors import CarbonbookError, RegistryError
from carbonbook.operations.progress import Progress
from carbonbook.operations.replay import ReplayTally, replay

if TYPE_CHECKING:
    import asyncio

    from nats.js import JetStreamContext

    from carbonbook.cluster.wire import Names
    from carbonbook.commands import Command, Undecodable
    from carbonbook.operations.journal import Applier, FsyncPolicy
    from carbonbook.registry import Registry
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
    parser = argparse.ArgumentParser(
        prog="carbonbook", description="Replay, journal, recover and report on carbon-market order logs.")
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
    _add_progress(p)
    _add_registry_options(p, "run the session against a registry: holds, registry commands, settlement")
    p.add_argument("--group", type=_non_negative, default=0, metavar="N",
                   help="group commit: one registry transaction per N commands or more (default 0: "
                        "one per input batch, about 4 MiB of the log); a crash loses at most the last "
                        "group's registry effects, which replaying the log again carries out")
    p.add_argument("--shared", action="store_true",
                   help="the venue as one of the registry's many writers (PostgreSQL): administrators and a "
                        "settlement consumer may write it meanwhile (default: its only writer)")
    _add_journal(commands)
    _add_import_lobster(commands)
    _add_report(commands)
    _add_bench(commands)
    _add_registry_reports(commands)
    _add_cluster(commands)
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
        if args.command == "journal":
            return _journal(args)
        if args.command == "registry":
            return _registry_report(args)
        if args.command in _CLUSTER:
            return _cluster(args)
        if args.command == "recover":
            return _on_registry(args, lambda registry: _recover(args, registry))
        return _on_registry(args, lambda registry: _replay_on(args, registry), shared=args.shared)
    except OSError as exc:
        print(f"carbonbook: {exc}", file=sys.stderr)
        return EXIT_IO


def _add_registry_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--registry", metavar="URL",
                   help=f"{what} (sqlite:///PATH.db, postgresql://..., memory:); a registry takes one "
                        "writer at a time")
    p.add_argument("--currency",
                   help="cash of instruments listed without a currency (default: the registry's, "
                        "for a registry a replay went into; else JPY)")
    p.add_argument("--settle-lag", type=_non_negative, metavar="DAYS",
                   help="settle trades T+DAYS, on business_day commands (default: the registry's, "
                        "for a registry a replay went into; else 0: at once)")


def _on_registry(args: argparse.Namespace, run: Callable[[Registry | None], int],
                 claim: bool = True, shared: bool = False) -> int:
    """``run`` with the registry ``--registry`` names (None without one; claimed as its only
    writer, or with ``shared`` as one of many writers, unless ``claim`` is false: a reader),
    closed afterwards. What the registry, the journal or the venue refuses is one line on
    standard error, exit 1 (a URL that names no registry: exit 2)."""
    try:
        if args.registry is None:
            registry = None
        elif claim:
            registry = _open_registry(args.registry, shared)
        else:
            from carbonbook.registry import open_registry

            registry = open_registry(args.registry)
    except ValueError as exc:  # not a registry URL
        print(f"carbonbook: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RegistryError as exc:
        print(f"carbonbook: registry {args.registry}: {exc}", file=sys.stderr)
        return EXIT_IO
    try:
        return run(registry)
    except CarbonbookError as exc:
        where = "" if registry is None else f"registry {args.registry}: "
        print(f"carbonbook: {where}{exc}", file=sys.stderr)
        return EXIT_IO
    finally:
        if registry is not None:
            registry.close()


def _open_registry(url: str, shared: bool = False) -> Registry:
    """The registry at ``url``, claimed as its only writer (``shared``: as one of many), RegistryInUse
    if another has it so."""
    from carbonbook.registry import open_registry  # sqlite3 and the registry: only when asked for

    registry = open_registry(url)
    try:
        if shared:
            registry.share_writer()
        else:
            registry.claim_writer()
    except BaseException:
        registry.close()
        raise
    return registry


# -- registry reports ----------------------------------------------------------------------


def _add_registry_reports(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "registry", help="read a registry: audit trail, statement, cancellation certificate",
        description="Print what a registry holds (see carbonbook.registry.report); it reads and "
                    "changes nothing, so it needs no writer's claim.")
    reports = p.add_subparsers(dest="report", required=True)
    q = reports.add_parser("audit", help="the journal of an account, or who held a serial range and when")
    q.add_argument("url", metavar="URL", help="the registry (sqlite:///PATH.db, postgresql://...)")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--account", help="every journal row by or towards ACCOUNT: txid, business day, "
                                         "kind, what moved, actor, approver")
    which.add_argument("--serials", metavar="ORIGIN:FIRST-LAST",
                       help="who held these serials and when, from the issuance on")
    q = reports.add_parser("statement", help="an account's holdings by unit, vintage, project and serial block")
    q.add_argument("url", metavar="URL", help="the registry")
    q.add_argument("account", help="the account")
    q = reports.add_parser("certificate", help="a voluntary cancellation's certificate")
    q.add_argument("url", metavar="URL", help="the registry")
    q.add_argument("id", type=int, help="the certificate id (the txid of the cancellation)")


def _serial_range(text: str) -> tuple[str, int, int]:
    """``ORIGIN:FIRST-LAST`` as its parts (ValueError otherwise)."""
    origin, _, span = text.rpartition(":")
    first, _, last = span.partition("-")
    if not origin or not first.isdigit() or not last.isdigit() or int(first) > int(last):
        raise ValueError(f"--serials {text!r}: give ORIGIN:FIRST-LAST, e.g. JP:1-500")
    return origin, int(first), int(last)


def _registry_report(args: argparse.Namespace) -> int:
    args.registry = args.url
    return _on_registry(args, lambda registry: _print_report(args, registry), claim=False)


def _print_report(args: argparse.Namespace, registry: Registry | None) -> int:
    from carbonbook.registry import report

    assert registry is not None
    if args.report == "statement":
        lines = report.statement(registry, args.account)
    elif args.report == "certificate":
        found = report.certificate_text(registry, args.id)
        if found is None:
            print(f"carbonbook: registry {args.url}: no cancellation certificate {args.id}", file=sys.stderr)
            return EXIT_IO
        lines = found
    elif args.account is not None:
        lines = report.account_audit(registry, args.account)
    else:
        try:
            origin, first, last = _serial_range(args.serials)
        except ValueError as exc:
            print(f"carbonbook: {exc}", file=sys.stderr)
            return EXIT_USAGE
        lines = report.serial_audit(registry, origin, first, last) or [
            f"no serials {origin} {first}-{last} were ever issued here"]
    print("\n".join(lines))
    return EXIT_OK


def _venue_maker(args: argparse.Namespace, registry: Registry | None, group: int = 0,
                 shared: bool = False) -> Callable[[], Venue] | None:
    """What makes the venue on ``registry`` (settings as given, else the registry's; ``group``:
    its group commit; ``shared``: one of the registry's many writers), or None."""
    if registry is None:
        return None
    from carbonbook.venue import Venue

    currency, lag = Venue.settings_for(registry, args.currency, args.settle_lag)
    return lambda: Venue(registry, currency=currency, lag=lag, group=group, shared=shared)


def _replay_on(args: argparse.Namespace, registry: Registry | None) -> int:
    """Replay into an engine, or a venue on ``registry`` (whose open group it commits at the end)."""
    make = _venue_maker(args, registry, args.group, args.shared)
    if make is None:
        return _replay_into(args, Engine())
    venue = make()
    code = _replay_into(args, venue)
    venue.commit()
    return code


def _replay_into(args: argparse.Namespace, engine: Engine | Venue) -> int:
    started = time.perf_counter()
    with _open_in(args.log) as source:
        msgpack = wants_msgpack(args.format, args.log, source)
        with _progress("never" if args.quiet else args.progress, source) as hook:
            if args.out is None:
                tally = replay(source, engine, sys.stdout.buffer.write, msgpack, hook)
                sys.stdout.buffer.flush()
            else:
                with open(args.out, "wb") as out:
                    tally = replay(source, engine, out.write, msgpack, hook)
    elapsed = time.perf_counter() - started
    if args.snapshot:
        with open(args.snapshot, "wb") as f:
            f.write(msgspec.json.encode(engine.snapshot()))
            f.write(b"\n")
    if not args.quiet:
        print(_summary(tally, engine, elapsed), file=sys.stderr)
    return EXIT_OK


@contextmanager
def _progress(mode: str, source: BinaryIO, label: str = "replay",
              ) -> Iterator[Callable[[int, int], None] | None]:
    """The update hook of a progress line on standard error when ``mode`` (``--progress``) asks
    for one (``auto``: when standard error is a terminal), else None; the line is erased on
    exit. The ETA needs the input's size: known for a regular file, not for a pipe."""
    if mode == "never" or (mode == "auto" and not sys.stderr.isatty()):
        yield None
        return
    st = os.fstat(source.fileno())
    size = st.st_size if stat.S_ISREG(st.st_mode) and source.seekable() and source.tell() == 0 else None
    progress = Progress(sys.stderr, size, label=label)
    try:
        yield progress.update
    finally:
        progress.close()


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="a progress line on standard error; auto: when it is a terminal")


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
    if tally.ignored:
        names = ", ".join(f"{name} {n:,}" for name, n in sorted(tally.ignored.items()))
        lines.append(f"  {sum(tally.ignored.values()):,} records carried fields the order log ignores: {names}")
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


# -- a venue on NATS JetStream (carbonbook.cluster) -------------------------------------

_CLUSTER = ("publish", "serve", "events", "settle")


def _add_cluster(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--nats", default="nats://127.0.0.1:4222", metavar="URL",
                       help="the NATS server (default %(default)s; several: comma-separated)")
        p.add_argument("--stream", default="CARBONBOOK", metavar="S",
                       help="the venue's command stream (default %(default)s); its events go to S_EVENTS")

    p = commands.add_parser("publish", help="publish an order log's commands to a venue's shards on NATS")
    p.add_argument("log", help="order log (JSON Lines or MessagePack); '-' for standard input")
    common(p)
    p.add_argument("--shards", type=_positive, default=None, metavar="N",
                   help="the venue's number of shards (default: the one recorded, else 1)")
    p.add_argument("--replicas", type=_positive, default=1, metavar="R",
                   help="copies of each stream when it is created (default 1; 3 on a 3-node cluster)")
    p.add_argument("--format", choices=("auto", "jsonl", "msgpack"), default="auto",
                   help="input format; auto looks at the extension, then the first byte")
    p = commands.add_parser("serve", help="run one shard of a venue on NATS (SIGTERM drains and snapshots)")
    common(p)
    p.add_argument("--shard", required=True, metavar="K/N", help="serve shard K of N (0/1: the whole venue)")
    p.add_argument("--batch", type=_positive, default=1000, help="commands per apply (default %(default)s)")
    p.add_argument("--snapshot-every", type=_positive, default=10_000, metavar="N",
                   help="store a snapshot every N commands (default %(default)s) and when stopping")
    p.add_argument("--lease-ttl", type=float, default=2.0, metavar="SECONDS",
                   help="the leadership lease (default %(default)s s; set when the bucket is created)")
    p.add_argument("--replicas", type=_positive, default=1, metavar="R",
                   help="copies of each stream when it is created (default 1)")
    p.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="stop (draining and snapshotting) once no command came for SECONDS")
    _add_registry_options(p, "a one-shard venue's registry: holds, registry commands, settlement")
    p = commands.add_parser("events", help="write a venue's events stream as JSON Lines, in stream order")
    common(p)
    p.add_argument("--out", required=True, metavar="FILE", help="the events file ('-': standard output)")
    p.add_argument("--shard", type=_non_negative, default=None, metavar="K", help="only shard K's events")
    p.add_argument("--follow", action="store_true", help="keep writing new events until interrupted")
    p = commands.add_parser("settle", help="settle every shard's trades into a registry, each once")
    common(p)
    p.add_argument("--registry", required=True, metavar="URL",
                   help="the registry (written as one of many writers: not while a venue claims it)")
    p.add_argument("--currency", default="JPY", help="cash of instruments listed without one (default JPY)")
    p.add_argument("--follow", action="store_true", help="keep settling new trades until interrupted")


def _cluster(args: argparse.Namespace) -> int:
    """``publish``, ``serve``, ``events`` and ``settle``: one line and exit 1 for what NATS, the
    venue or the registry refuses; exit 2 without nats-py."""
    import asyncio
    import signal

    try:
        import nats
    except ImportError:
        print("carbonbook: this command needs nats-py: pip install 'carbonbook[nats]'", file=sys.stderr)
        return EXIT_USAGE
    from carbonbook.cluster.wire import Names

    try:
        names = Names(args.stream)
        if args.command == "serve":
            from carbonbook.cluster.routing import parse_shard

            args.shard_of = parse_shard(args.shard)
            if args.registry is not None and args.shard_of[1] > 1:
                raise ValueError("--registry is for a venue of one shard; the trades of more shards settle "
                                 "through `carbonbook settle --registry URL` (holds are upstream)")
    except ValueError as exc:
        print(f"carbonbook: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def run(registry: Registry | None) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        nc = await nats.connect(args.nats.split(","), max_reconnect_attempts=-1)
        try:
            return await _cluster_run(args, nc.jetstream(), names, registry, stop)
        finally:
            await nc.close()

    def on(registry: Registry | None) -> int:
        try:
            return asyncio.run(run(registry))
        except (nats.errors.Error, TimeoutError) as exc:
            print(f"carbonbook: NATS {args.nats}: {exc!r}", file=sys.stderr)
            return EXIT_IO

    if args.command == "settle":
        return _on_registry(args, on, shared=True)
    if args.command == "serve":  # a shard claims its registry once it leads (ShardVenue's open_host)
        return _on_registry(args, on, claim=False)
    return on(None)


async def _cluster_run(args: argparse.Namespace, js: JetStreamContext, names: Names, registry: Registry | None,
                       stop: asyncio.Event) -> int:
    from carbonbook.cluster import client, settle, shard, wire

    if args.command == "publish":
        await wire.ensure(js, names, args.replicas)
        with _open_in(args.log) as source:
            shards = args.shards or await shard.stored_layout(js, names) or 1
            publisher = await client.publish_log(js, names, shards, source,
                                                 wants_msgpack(args.format, args.log, source))
        print(f"published {publisher.published:,} commands to {shards} shard(s) of {args.stream} "
              f"({publisher.duplicates:,} duplicates of commands published before)", file=sys.stderr)
        return EXIT_OK
    if args.command == "serve":
        await wire.ensure(js, names, args.replicas, args.lease_ttl)
        k, n = args.shard_of

        def open_venue() -> Venue:
            assert registry is not None
            registry.claim_writer()
            make = _venue_maker(args, registry)
            assert make is not None
            return make()

        venue = shard.ShardVenue(js, names, k, n, Engine() if registry is None else None, batch=args.batch,
                                 snapshot_every=args.snapshot_every, lease_ttl=args.lease_ttl,
                                 open_host=None if registry is None else open_venue)
        await venue.run(stop, args.idle_exit)
        state = "never led" if venue.host is None else f"state {venue.host.state_hash()[:16]}"
        print(f"shard {k}/{n}: applied {venue.commands:,} commands, events up to {venue.published:,} "
              f"published, position {venue.position:,}, {state}", file=sys.stderr)
        return EXIT_OK
    if args.command == "events":
        out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115
        try:
            written = await client.drain_events(js, names, out.write, args.shard, args.follow, stop)
        finally:
            out.flush()
            if out is not sys.stdout.buffer:
                out.close()
        print(f"wrote {written:,} events", file=sys.stderr)
        return EXIT_OK
    assert registry is not None
    consumer = settle.SettlementConsumer(registry, names, args.currency)
    await consumer.run(js, stop, args.follow)
    print(f"settled {consumer.settled:,} trades ({consumer.failed:,} failed) up to event "
          f"{consumer.position:,} of {names.events}", file=sys.stderr)
    return EXIT_OK


# -- journal and recover --------------------------------------------------------------


def _add_journal(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "journal", help="replay an order log through a journaled engine: crash-safe and resumable",
        description="Replay LOG through an engine (with --registry, a venue) that writes every command "
                    "to the append-only journal in DIR before its events go anywhere. Run it again "
                    "after a crash: it resumes after the commands DIR holds. Prints a JSON summary "
                    "(records, seq, state hash) on standard output (see carbonbook.operations.journal).")
    p.add_argument("log", help="order log (JSON Lines or MessagePack); '-' for standard input")
    p.add_argument("directory", metavar="DIR", help="the journal directory (created if missing)")
    p.add_argument("--out", metavar="EVENTS",
                   help="write the events of the commands this run applies as JSON Lines (a resumed "
                        "run: those after the journal's end; carbonbook replay LOG gives them all)")
    p.add_argument("--format", choices=("auto", "jsonl", "msgpack"), default="auto",
                   help="input format; auto looks at the extension, then the first byte")
    p.add_argument("--batch", type=_positive, default=4096,
                   help="commands per journal batch (default %(default)s)")
    p.add_argument("--snapshot-every", type=_non_negative, default=0, metavar="N",
                   help="write a snapshot every N commands (default 0: none)")
    p.add_argument("--fsync", default="batch",
                   help="when to fsync the journal: never, batch (default), bytes:N or records:N")
    p.add_argument("--delay", type=float, default=0.0,  # seconds to sleep after each batch (tests)
                   help=argparse.SUPPRESS)
    _add_registry_options(p, "journal a venue on this registry")
    p = commands.add_parser(
        "recover", help="recover a journal directory and print its position and state hash",
        description="Load the newest valid snapshot in DIR, replay the journal after it and print a "
                    "JSON summary (records, seq, state hash, the snapshot used, torn bytes dropped). "
                    "A venue's journal needs --registry: the registry its commands went into.")
    p.add_argument("directory", metavar="DIR", help="a directory written by carbonbook journal")
    _add_registry_options(p, "the journal is a venue's on this registry")


def _journal(args: argparse.Namespace) -> int:
    from carbonbook.operations.journal import FsyncPolicy, log_commands

    try:
        fsync = FsyncPolicy.parse(args.fsync)
    except ValueError as exc:
        print(f"carbonbook: --fsync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with _open_in(args.log) as source:
        commands = list(log_commands(source, wants_msgpack(args.format, args.log, source)))
    return _on_registry(args, lambda registry: _journal_into(args, registry, commands, fsync))


def _journal_into(args: argparse.Namespace, registry: Registry | None, commands: list[Command | Undecodable],
                  fsync: FsyncPolicy) -> int:
    from carbonbook.operations.journal import Journal

    _check_journal_kind(args.directory, registry, missing_ok=True)
    with Journal.open(args.directory, fsync, venue=_venue_maker(args, registry)) as journal:
        done = journal.records
        if done > len(commands):
            print(f"carbonbook: {args.directory} holds {done:,} commands, {args.log} only "
                  f"{len(commands):,}: it is another log's journal", file=sys.stderr)
            return EXIT_IO
        with open(os.devnull if args.out is None else args.out, "wb") as out:
            since = 0
            for i in range(done, len(commands), args.batch):
                batch = commands[i:i + args.batch]
                out.write(json_encoder.encode_lines(journal.apply_all(batch)))
                since += len(batch)
                if args.snapshot_every and since >= args.snapshot_every:
                    journal.snapshot()
                    since = 0
                if args.delay:
                    time.sleep(args.delay)
        summary = _journal_summary(journal.engine, registry, records=journal.records, resumed_at=done)
    print(summary)
    return EXIT_OK


def _recover(args: argparse.Namespace, registry: Registry | None) -> int:
    from carbonbook.operations.journal import recover

    _check_journal_kind(args.directory, registry, missing_ok=False)
    result = recover(args.directory, _venue_maker(args, registry))
    print(_journal_summary(result.engine, registry, records=result.records, offset=result.offset,
                           replayed=result.replayed, torn=result.torn,
                           snapshot=None if result.snapshot is None else str(result.snapshot)))
    return EXIT_OK


def _check_journal_kind(directory: str, registry: Registry | None, missing_ok: bool) -> None:
    """Refuse, in an operator's words, a directory without a journal (unless ``missing_ok``) and a
    journal of the other kind: a venue's without ``--registry``, a plain engine's with it."""
    from carbonbook.errors import JournalMismatch
    from carbonbook.operations.journal import JOURNAL_NAME, MAGIC, VENUE_MAGIC

    path = os.path.join(directory, JOURNAL_NAME)
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except FileNotFoundError:
        if missing_ok:
            return
        raise JournalMismatch(f"{directory} holds no journal ({JOURNAL_NAME}): check the directory; "
                              "carbonbook journal LOG DIR writes one") from None
    if head == VENUE_MAGIC and registry is None:
        raise JournalMismatch(f"{directory} holds a venue's journal: add --registry URL, the registry "
                              "its commands went into")
    if head == MAGIC and registry is not None:
        raise JournalMismatch(f"{directory} holds the journal of an engine without a registry: "
                              "leave out --registry")


def _journal_summary(engine: Applier, registry: Registry | None, **fields: object) -> str:
    import json  # not at the top: replay's start-up does not need it

    from carbonbook.venue.checkpoint import Checkpoint

    if registry is not None:
        fields["registry_position"] = Checkpoint(registry).position
    return json.dumps({**fields, "seq": engine.next_seq, "state_hash": engine.state_hash()})


# -- import-lobster ------------------------------------------------------------------


def _add_import_lobster(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "import-lobster", help="turn LOBSTER message (and orderbook) files into an order log",
        description="Turn a LOBSTER message file, and its orderbook file, into an order log that "
                    "replays to the orderbook file's levels (see carbonbook.operations.lobster).")
    p.add_argument("messages", help="LOBSTER message file (.csv or .csv.gz)")
    p.add_argument("orderbook", nargs="?",
                   help="its orderbook file: seeds the orders resting at the start and the levels "
                        "that come into view later; without it only the messages are converted")
    p.add_argument("-o", "--out", required=True, help="the order log to write; '-' for standard output")
    p.add_argument("--symbol", help="instrument symbol (default: the ticker in the file name)")
    p.add_argument("--date", type=date.fromisoformat,
                   help="trading day YYYY-MM-DD for ts (default: the date in the file name)")
    p.add_argument("--unit", choices=[u.value for u in UnitType],
                   help="the instrument's unit, a label only (default EUA, lobster.DEFAULT_UNIT)")
    p.add_argument("--format", choices=("auto", "jsonl", "msgpack"), default="auto",
                   help="log format; auto: msgpack for a .msgpack or .mpk name, else JSON Lines")
    p.add_argument("--quiet", action="store_true", help="no summary on standard error")


def _import_lobster(args: argparse.Namespace) -> int:
    from carbonbook.operations import lobster  # imported here: replay's start-up does not need it

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
                    "instrument and the book at the end (see carbonbook.operations.report).")
    p.add_argument("events", help="events file (JSON Lines, as carbonbook replay writes it)")
    p.add_argument("--log", help="the order log the events came from: rebuilds the books by "
                                 "replaying it, and checks that it gives exactly these events")
    p.add_argument("--format", choices=("auto", "jsonl", "msgpack"), default="auto",
                   help="the log's format; auto looks at the extension, then the first byte")
    p.add_argument("--plot", metavar="OUT.png",
                   help="draw price and volume over time, per time bucket, and the depth at the end "
                        "(needs matplotlib)")
    _add_progress(p)
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
    from carbonbook.operations import report  # imported here: replay's start-up does not need it

    try:
        engine = _report_engine(args)
    except (ValueError, RegistryError) as exc:  # not a registry URL, or a registry that cannot be read
        print(f"carbonbook: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_IO
    try:
        with open(args.events, "rb") as events:
            if args.log is None:
                with _progress(args.progress, events, "report") as hook:
                    result = report.build(events, progress=hook)
            else:
                with _open_in(args.log) as log, _progress(args.progress, log, "report") as hook:
                    result = report.build(events, log, wants_msgpack(args.format, args.log, log), engine=engine,
                                          progress=hook)
        print(report.format_text(result))
        if args.plot:
            report.plot(result, args.plot)
            print(f"plot written to {os.path.abspath(args.plot)}", file=sys.stderr)
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
                    "printed as multiples of the yardstick's (carbonbook.operations.benchmark).")
    p.add_argument("--workload", choices=("busy", "deep", "auction", "venue", "all"), default="busy",
                   help="busy: a near-touch flow on a ~70-order book; deep: the same flow on a "
                        "book of --resting orders; auction: the flow with a call every 2,000 "
                        "messages; venue: busy, then the busy flow through a venue on a memory "
                        "registry (holds and DvP settlement), also as a multiple of the bare "
                        "engine (default %(default)s)")
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
    from carbonbook.operations import benchmark  # imported here: replay's start-up does not need it

    yardstick = benchmark.find_yardstick(args.yardstick)
    names = {"all": benchmark.WORKLOADS, "venue": ("busy", "venue")}.get(args.workload, (args.workload,))
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
