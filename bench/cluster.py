#!/usr/bin/env python3
"""The venue on NATS JetStream, end to end, as ratios to the in-process engine (issue 16, item 6).

    .venv/bin/python bench/cluster.py [--messages 40000] [--nats URL] [--three-nodes] [--registry]

In one run, on the busy workload (:func:`carbonbook.operations.workload.busy`, one instrument; for two
shards a second copy of it on an instrument of the other shard, ids offset):

- the in-process rate: ``Engine.apply_all`` over the same commands, best of 3;
- throughput through JetStream, 1 and 2 shards: the commands are published first (as
  ``carbonbook publish`` does: runs of up to 256 of a shard's commands a message), then each
  shard runs in its own process (``ShardVenue``, batches of 1,000) and times from its first
  command applied to its last event acknowledged; the rate is all commands over the slowest
  shard's time;
- added latency, 1 shard: commands published at ``--latency-rate`` a second (500) while the shard
  runs (in the same process);
  for each command, the time from the moment it was handed to the client to the moment the
  run of events holding its first event reached a subscriber (p50 / p99);
- failover: a leader and a standby (``carbonbook serve``, lease TTL 1 s and 2 s); the leader is
  killed (SIGKILL) while a command is published every 10 ms: the time from the kill to the
  first event after it.

- ``--three-nodes``: the rates and latency again on a 3-node cluster it starts on loopback
  (``nats-server`` on free ports, streams with 3 replicas);
- ``--registry``: one shard running a venue on a SQLite registry (the busy mix with its
  accounts, :func:`carbonbook.operations.workload.venue_session`), against the in-process venue on SQLite.

Each run uses streams of its own and deletes them. Absolute rates swing 2x on these machines;
the ratios within a run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import msgspec
import nats

from carbonbook.cluster.client import Publisher, publish_runs
from carbonbook.cluster.routing import shard_of
from carbonbook.cluster.shard import ShardVenue
from carbonbook.cluster.wire import COMMAND_HEADER, Names, ensure
from carbonbook.commands import CancelOrder, ListInstrument, NewOrder
from carbonbook.core.engine import Engine
from carbonbook.operations import workload
from carbonbook.registry import SQLiteRegistry
from carbonbook.venue import Venue

REPLICAS = [1]
"""Copies of each stream the run creates (3 on the 3-node cluster)."""


def two_instruments(commands: list) -> list:
    """The workload and a copy on an instrument of the other shard (ids + 10**12), interleaved."""
    symbol = commands[0].symbol
    other = next(f"EUA-{i}" for i in range(100) if shard_of(f"EUA-{i}", 2) != shard_of(symbol, 2))
    out = []
    for c in commands:
        out.append(c)
        if isinstance(c, ListInstrument | NewOrder):
            c = msgspec.structs.replace(c, symbol=other)
        if isinstance(c, NewOrder | CancelOrder):
            c = msgspec.structs.replace(c, id=c.id + 10**12)
        out.append(c)
    return out


def in_process_rate(commands: list) -> float:
    best = float("inf")
    for _ in range(3):
        engine = Engine()
        start = time.perf_counter()
        for i in range(0, len(commands), 1000):
            engine.apply_all(commands[i:i + 1000])
        best = min(best, time.perf_counter() - start)
    return len(commands) / best


async def publish(url: str, names: Names, shards: int, commands: list, tag: str) -> None:
    nc = await nats.connect(url.split(","))
    js = nc.jetstream()
    await ensure(js, names, REPLICAS[0])
    await publish_runs(js, names, shards, commands, tag)
    await nc.close()


def serve_shard(url: str, stream: str, shard: int, shards: int, expect: int,
                out: multiprocessing.Queue, registry: str | None = None) -> None:
    async def go() -> None:
        nc = await nats.connect(url.split(","))
        host = Engine() if registry is None else venue_on(registry)
        venue = ShardVenue(nc.jetstream(), Names(stream), shard, shards, host, snapshot_every=10**9)
        first: list[float] = []
        stop = asyncio.Event()

        def batch(v: ShardVenue) -> None:
            if not first:
                first.append(time.perf_counter())
            if v.commands >= expect:
                stop.set()

        await venue.run(stop, on_batch=batch)
        out.put(time.perf_counter() - first[0])
        await nc.close()

    asyncio.run(go())


def venue_on(path: str) -> Venue:
    """A venue on a new SQLite registry at ``path`` (the busy mix's settings, as bench/venue.py)."""
    registry = SQLiteRegistry(path)
    registry.claim_writer()
    return Venue(registry, currency="EUR")


def in_process_venue_rate(commands: list) -> float:
    """A venue on SQLite applying ``commands`` (setup and orders) in batches of 1,000, best of 3."""
    best = float("inf")
    for _ in range(3):
        venue = venue_on(os.path.join(tempfile.mkdtemp(), "v.db"))
        start = time.perf_counter()
        for i in range(0, len(commands), 1000):
            venue.apply_all(commands[i:i + 1000])
        best = min(best, time.perf_counter() - start)
        venue.registry.close()
    return len(commands) / best


def through_jetstream(url: str, commands: list, shards: int, registry: bool = False) -> float:
    names = Names(f"B{uuid.uuid4().hex[:10].upper()}")
    asyncio.run(publish(url, names, shards, commands, "t"))
    counts = [len(commands)] if shards == 1 else [0] * shards
    for c in commands if shards > 1 else ():
        counts[shard_of(c.symbol, shards) if hasattr(c, "symbol") else (1 if c.id >= 10**12 else 0)] += 1
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    path = os.path.join(tempfile.mkdtemp(), "shard.db") if registry else None
    procs = [ctx.Process(target=serve_shard, args=(url, names.commands, k, shards, counts[k], out, path))
             for k in range(shards)]
    for p in procs:
        p.start()
    times = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    asyncio.run(delete(url, names))
    return len(commands) / max(times)


async def latency(url: str, commands: list, rate: float) -> tuple[float, float]:
    names = Names(f"B{uuid.uuid4().hex[:10].upper()}")
    nc = await nats.connect(url.split(","))
    js = nc.jetstream()
    await ensure(js, names, REPLICAS[0])
    venue = ShardVenue(js, names, 0, 1, Engine(), batch=1000, snapshot_every=10**9)
    stop = asyncio.Event()
    task = asyncio.create_task(venue.run(stop))
    runs: list[tuple[int, float]] = []  # (command sequence of a run's last event, arrival)

    async def on_event(msg: nats.aio.msg.Msg) -> None:
        runs.append((int(msg.headers[COMMAND_HEADER]), time.perf_counter()))

    sub = await nc.subscribe(names.event_subject(0), cb=on_event)
    publisher = Publisher(js, names, 1)
    sent: list[tuple[float, asyncio.Future]] = []
    start = time.perf_counter()
    for i, c in enumerate(commands):
        while time.perf_counter() - start < i / rate:
            await asyncio.sleep(0.0005)
        sent.append((time.perf_counter(), await publisher.publish(c, f"l:{i}")))
    acks = await asyncio.gather(*(f for _, f in sent))
    while not runs or runs[-1][0] < acks[-1].seq:
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await sub.unsubscribe()
    reached = [where for where, _ in runs]  # a command's first event came with the first run reaching it
    lat = sorted(runs[bisect.bisect_left(reached, a.seq)][1] - t for (t, _), a in zip(sent, acks, strict=True))
    await nc.close()
    await delete(url, names)
    return lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3


def failover(url: str, commands: list, ttl: float) -> float:
    names = Names(f"B{uuid.uuid4().hex[:10].upper()}")
    common = ["--nats", url, "--stream", names.commands]
    serve = [sys.executable, "-m", "carbonbook", "serve", "--shard", "0/1", *common, "--lease-ttl", str(ttl)]
    asyncio.run(publish(url, names, 1, commands[:100], "a"))
    leader = subprocess.Popen(serve, stderr=subprocess.DEVNULL)
    time.sleep(3)
    standby = subprocess.Popen(serve, stderr=subprocess.DEVNULL)
    time.sleep(3)

    async def go() -> float:
        nc = await nats.connect(url)
        js = nc.jetstream()
        arrived: list[float] = []
        async def on_event(msg: nats.aio.msg.Msg) -> None:
            arrived.append(time.perf_counter())

        sub = await nc.subscribe(names.event_subject(0), cb=on_event)
        await asyncio.sleep(0.2)
        publisher = Publisher(js, names, 1)
        leader.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        arrived.clear()
        i = 100
        while not [t for t in arrived if t > killed] and time.perf_counter() - killed < 30:
            await publisher.confirm([await publisher.publish(commands[i], f"f:{i}")])
            i += 1
            await asyncio.sleep(0.01)
        await sub.unsubscribe()
        await nc.close()
        return min(t for t in arrived if t > killed) - killed

    try:
        return asyncio.run(go())
    finally:
        for p in (leader, standby):
            p.kill()
            p.wait()
        asyncio.run(delete(url, names))


async def delete(url: str, names: Names) -> None:
    nc = await nats.connect(url.split(","))
    js = nc.jetstream()
    for name in (names.commands, names.events, f"OBJ_{names.snapshots}", f"KV_{names.leases}"):
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
    await nc.close()


@contextlib.contextmanager
def three_nodes() -> Iterator[str]:
    """A 3-node NATS cluster on loopback (its URLs, comma-separated), stopped afterwards."""
    ports = []
    for _ in range(6):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    tmp = tempfile.mkdtemp()
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in ports[3:])
    servers = []
    for i in range(3):
        conf = os.path.join(tmp, f"n{i}.conf")
        with open(conf, "w") as f:
            f.write(f"server_name: n{i}\nlisten: 127.0.0.1:{ports[i]}\n"
                    f"jetstream {{ store_dir: '{tmp}/js{i}' }}\n"
                    f"cluster {{ name: bench, listen: 127.0.0.1:{ports[3 + i]}, routes: [{routes}] }}\n")
        servers.append(subprocess.Popen(["nats-server", "-c", conf], stderr=subprocess.DEVNULL))
    urls = ",".join(f"nats://127.0.0.1:{p}" for p in ports[:3])

    async def ready() -> None:
        nc = await nats.connect(urls.split(","), max_reconnect_attempts=-1)
        js = nc.jetstream()
        for _ in range(150):  # the meta leader is elected, then 3 replicas can be placed
            try:
                await js.add_stream(name="PROBE", subjects=["probe"], num_replicas=3)
                await js.delete_stream("PROBE")
                break
            except (TimeoutError, nats.errors.Error):
                await asyncio.sleep(0.2)
        await nc.close()

    try:
        asyncio.run(ready())
        yield urls
    finally:
        for server in servers:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--latency-rate", type=float, default=500.0, help="commands a second (default 500)")
    parser.add_argument("--three-nodes", action="store_true",
                        help="also run the rates and latency on a 3-node cluster it starts (3 replicas)")
    parser.add_argument("--registry", action="store_true",
                        help="also run one shard on a SQLite registry, against the in-process venue on SQLite")
    args = parser.parse_args()
    one = workload.busy(args.messages)
    two = two_instruments(one)
    base = in_process_rate(one)
    print(f"in-process Engine.apply_all (batches of 1,000): {base:,.0f} msg/s ({len(one):,} messages)")
    rates(args.nats, one, two, base, args.latency_rate, "one node")
    for ttl in (1.0, 2.0):
        took = failover(args.nats, one, ttl)
        print(f"failover, lease TTL {ttl:g} s: first event {took:.2f} s after the leader was killed")
    if args.three_nodes:
        REPLICAS[0] = 3
        with three_nodes() as urls:
            rates(urls, one, two, base, args.latency_rate, "3-node cluster, 3 replicas")
        REPLICAS[0] = 1
    if args.registry:
        setup, orders = workload.venue_session(args.messages)
        session = setup + orders
        venue_base = in_process_venue_rate(session)
        print(f"in-process Venue on SQLite (batches of 1,000): {venue_base:,.0f} msg/s "
              f"({len(session):,} messages)")
        rate = through_jetstream(args.nats, session, 1, registry=True)
        print(f"through JetStream, 1 shard on SQLite: {rate:,.0f} msg/s = {rate / venue_base:.3f}x the "
              f"in-process venue, {rate / base:.3f}x the in-process engine")


def rates(url: str, one: list, two: list, base: float, latency_rate: float, where: str) -> None:
    for shards, commands in ((1, one), (2, two)):
        rate = through_jetstream(url, commands, shards)
        print(f"through JetStream ({where}), {shards} shard(s): {rate:,.0f} msg/s = {rate / base:.3f}x "
              f"in-process ({len(commands):,} messages)")
    p50, p99 = asyncio.run(latency(url, one[:3000], latency_rate))
    print(f"added latency ({where}), publish to first event, 1 shard at {latency_rate:,.0f} msg/s: "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
