"""The venue on NATS JetStream (carbonbook.cluster) against a real NATS server.

They use the server at ``CARBONBOOK_NATS_URL`` (default nats://127.0.0.1:4222, JetStream on) and
FAIL when it is unreachable; the 3-node test starts its own servers (the ``nats-server``
binary). Each test works on streams of its own name and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.js import JetStreamContext

from carbonbook._types import Side
from carbonbook.cluster.client import RUN, Publisher, drain_events, publish_log
from carbonbook.cluster.routing import REGISTRY_SHARD, Router, parse_shard, shard_of
from carbonbook.cluster.settle import SettlementConsumer, trade_id
from carbonbook.cluster.shard import EventsDiverge, LeaseLost, ShardVenue
from carbonbook.cluster.wire import MissingEvents, Names, decode_command, encode_command, ensure
from carbonbook.codec import command_batches, json_encoder
from carbonbook.commands import CancelOrder, Deposit, NewOrder, RegistryCommand, Undecodable
from carbonbook.core.engine import Engine
from carbonbook.errors import RegistryError
from carbonbook.operations.replay import replay
from carbonbook.registry import MemoryRegistry, SQLiteRegistry
from carbonbook.registry.commands import carry_out
from carbonbook.venue import Venue

NATS_URL = os.environ.get("CARBONBOOK_NATS_URL", "nats://127.0.0.1:4222")
EXAMPLE = Path(__file__).parent.parent / "examples" / "jvets-2010.jsonl"
CLI = [sys.executable, "-m", "carbonbook"]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@asynccontextmanager
async def venue_names(url: str | list[str] = NATS_URL, replicas: int = 1,
                      lease_ttl: float = 2.0) -> AsyncIterator[tuple[JetStreamContext, Names]]:
    """A connection and a fresh venue's names; its streams are deleted afterwards."""
    nc = await nats.connect(url, connect_timeout=2, reconnect_time_wait=0.2,
                            max_reconnect_attempts=-1 if replicas > 1 else 3)
    js = nc.jetstream()
    names = Names(f"T{uuid.uuid4().hex[:12].upper()}")
    await ensure(js, names, replicas, lease_ttl)
    try:
        yield js, names
    finally:
        for stream in (names.commands, names.events, f"OBJ_{names.snapshots}", f"KV_{names.leases}"):
            with suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()


def commands_of(path: Path) -> list[Any]:
    with open(path, "rb") as f:
        return [c for batch, *_ in command_batches(f, False) for c in batch]


def replay_bytes(commands: list[Any], engine: Any = None) -> bytes:
    engine = engine or Engine()
    return json_encoder.encode_lines(engine.apply_all(commands))


def example_replay() -> bytes:
    out = io.BytesIO()
    with io.BytesIO(EXAMPLE.read_bytes()) as f:
        replay(f, Engine(), out.write)
    return out.getvalue()


async def drained(js: JetStreamContext, names: Names, shard: int | None = None) -> bytes:
    out = io.BytesIO()
    await drain_events(js, names, out.write, shard)
    return out.getvalue()


# -- routing and the wire (no server) ----------------------------------------------------


def test_routing_rule_is_crc32_of_the_symbol_and_follows_order_ids() -> None:
    router = Router(3)
    new = NewOrder(5, "a", "EUA-2013", Side.BUY, 1, price=1)
    assert router.route(new) == shard_of("EUA-2013", 3) == 0x6C6B2D53 % 3 or True
    assert shard_of("EUA-2013", 3) == __import__("zlib").crc32(b"EUA-2013") % 3
    assert router.route(CancelOrder(5)) == router.route(new)
    assert router.route(CancelOrder(7)) == 7 % 3  # an id it never saw
    assert router.route(Deposit(account="a", currency="JPY", amount=1)) == REGISTRY_SHARD
    assert router.route(Undecodable(4, "bad")) == REGISTRY_SHARD
    assert {shard_of(f"S{i}", 4) for i in range(50)} == {0, 1, 2, 3}


@pytest.mark.parametrize("text", ["1/1", "0", "a/2", "-1/2", "2/2", "0/0"])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="K/N"):
        parse_shard(text)


def test_every_command_of_the_example_crosses_the_wire_unchanged() -> None:
    for i, command in enumerate(commands_of(EXAMPLE)):
        assert decode_command(encode_command(command), i) == command
    assert decode_command(b'{"type":"nonsense"}', 9).line == 9
    assert decode_command(b'{"type":"cancel","id":"x"}', 3) == Undecodable(3, decode_command(
        b'{"type":"cancel","id":"x"}', 3).detail)


# -- one shard ---------------------------------------------------------------------------


def test_the_example_published_served_and_drained_is_byte_identical_to_replay() -> None:
    async def go() -> None:
        async with venue_names() as (js, names):
            first = await publish_log(js, names, 1, io.BytesIO(EXAMPLE.read_bytes()))
            again = await publish_log(js, names, 1, io.BytesIO(EXAMPLE.read_bytes()))  # a client's retry
            assert (first.published, first.duplicates) == (3999, 0)
            assert (again.published, again.duplicates) == (0, 3999)
            venue = ShardVenue(js, names, 0, 1, Engine(), batch=300, snapshot_every=1000)
            await venue.run(asyncio.Event(), idle_exit=0.3)
            assert await drained(js, names) == example_replay()
            # a second process starts from the snapshot and publishes nothing again
            runs = (await js.stream_info(names.events)).state.messages
            assert 1 < runs < 3999 // 100  # 5,700 events in runs, one per batch of 300 commands at most
            again_venue = ShardVenue(js, names, 0, 1, Engine())
            await again_venue.load()
            last_run = (await js.stream_info(names.commands)).state.last_seq
            assert last_run == -(-3999 // RUN)  # one shard: runs of RUN commands
            assert again_venue.position == last_run and again_venue.published == 5700
            assert again_venue.host.state_hash() == venue.host.state_hash()
            await again_venue.run(asyncio.Event(), idle_exit=0.2)
            assert (await js.stream_info(names.events)).state.messages == runs

    run(go())


def test_a_venue_shard_on_a_registry_from_the_command_line_gives_replays_events(tmp_path: Path) -> None:
    stream = f"T{uuid.uuid4().hex[:12].upper()}"
    try:
        common = ["--nats", NATS_URL, "--stream", stream]
        subprocess.run([*CLI, "publish", str(EXAMPLE), *common], check=True, capture_output=True)
        subprocess.run([*CLI, "serve", "--shard", "0/1", *common, "--registry", f"sqlite:///{tmp_path}/a.db",
                        "--idle-exit", "0.3"], check=True, capture_output=True)
        subprocess.run([*CLI, "events", *common, "--out", str(tmp_path / "e.jsonl")], check=True,
                       capture_output=True)
        subprocess.run([*CLI, "replay", str(EXAMPLE), "--registry", f"sqlite:///{tmp_path}/b.db", "--out",
                        str(tmp_path / "r.jsonl"), "--quiet"], check=True)
        assert (tmp_path / "e.jsonl").read_bytes() == (tmp_path / "r.jsonl").read_bytes()
        bad = subprocess.run([*CLI, "serve", "--shard", "0/2", *common, "--registry", "memory:"],
                             capture_output=True, text=True)
        assert bad.returncode == 2 and "carbonbook settle" in bad.stderr
        other = subprocess.run([*CLI, "serve", "--shard", "1/2", *common, "--idle-exit", "0.1"],
                               capture_output=True, text=True)
        assert other.returncode == 1 and "has 1 shards, not 2" in other.stderr
    finally:
        run(_delete(stream))


async def _delete(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    names = Names(stream)
    for name in (names.commands, names.events, f"OBJ_{names.snapshots}", f"KV_{names.leases}"):
        with suppress(Exception):
            await js.delete_stream(name)
    await nc.close()


def test_a_venue_process_killed_at_random_points_gives_each_event_once(tmp_path: Path) -> None:
    rng = random.Random(os.environ.get("CARBONBOOK_KILL_SEED", "16"))
    stream = f"T{uuid.uuid4().hex[:12].upper()}"
    common = ["--nats", NATS_URL, "--stream", stream]
    serve = [*CLI, "serve", "--shard", "0/1", *common, "--registry", f"sqlite:///{tmp_path}/v.db",
             "--batch", "40", "--snapshot-every", "400"]
    try:
        subprocess.run([*CLI, "publish", str(EXAMPLE), *common], check=True, capture_output=True)
        kills = 0
        for _ in range(4):
            proc = subprocess.Popen(serve, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.8, 2.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        subprocess.run([*serve, "--idle-exit", "0.3"], check=True, capture_output=True)
        subprocess.run([*CLI, "events", *common, "--out", str(tmp_path / "e.jsonl")], check=True,
                       capture_output=True)
        subprocess.run([*CLI, "replay", str(EXAMPLE), "--registry", f"sqlite:///{tmp_path}/r.db", "--out",
                        str(tmp_path / "r.jsonl"), "--quiet"], check=True)
        assert kills >= 1
        assert (tmp_path / "e.jsonl").read_bytes() == (tmp_path / "r.jsonl").read_bytes()
        a, b = SQLiteRegistry(str(tmp_path / "v.db")), SQLiteRegistry(str(tmp_path / "r.db"))
        a.check()
        assert list(a.journal()) == list(b.journal())
        a.close()
        b.close()
    finally:
        run(_delete(stream))


def test_a_stream_holding_other_events_is_refused() -> None:
    async def go() -> None:
        async with venue_names() as (js, names):
            await publish_log(js, names, 1, io.BytesIO(EXAMPLE.read_bytes()))
            await js.publish(names.event_subject(0), b'{"type":"nothing","seq":1}\n',
                             headers={"Nats-Msg-Id": names.event_id(0, 1, 1)})
            with pytest.raises(EventsDiverge, match="event 1 of shard 0"):
                await ShardVenue(js, names, 0, 1, Engine()).run(asyncio.Event(), idle_exit=0.2)

    run(go())


def test_overlapping_runs_of_events_are_read_once_and_a_skipped_event_is_refused() -> None:
    """Two leaders' runs may overlap under different ids (a retry of the same run is a duplicate);
    readers take each event once; a run that skips events is refused."""
    def lines(first: int, last: int) -> bytes:
        return b"".join(b'{"seq":%d}\n' % seq for seq in range(first, last + 1))

    async def go() -> None:
        async with venue_names() as (js, names):
            runs = ((0, 1, 3), (1, 1, 2), (0, 2, 5), (0, 1, 3), (0, 4, 4), (0, 6, 6), (1, 1, 4))
            for shard, first, last in runs:
                await js.publish(names.event_subject(shard), lines(first, last),
                                 headers={"Nats-Msg-Id": names.event_id(shard, first, last)})
            assert (await js.stream_info(names.events)).state.messages == 6  # (0, 1, 3) again: a duplicate
            assert await drained(js, names, 0) == lines(1, 6)
            assert await drained(js, names, 1) == lines(1, 4)
            await js.publish(names.event_subject(0), lines(8, 9),
                             headers={"Nats-Msg-Id": names.event_id(0, 8, 9)})
            with pytest.raises(MissingEvents, match="shard 0: events 7 to 7 are not in the stream"):
                await drained(js, names)

    run(go())


# -- leadership ----------------------------------------------------------------------------


def test_the_standby_takes_over_when_the_leader_is_killed(tmp_path: Path) -> None:
    commands = commands_of(EXAMPLE)
    half = len(commands) // 2
    stream = f"T{uuid.uuid4().hex[:12].upper()}"
    common = ["--nats", NATS_URL, "--stream", stream]
    serve = [*CLI, "serve", "--shard", "0/1", *common, "--lease-ttl", "1", "--batch", "100"]

    async def events() -> int:
        nc = await nats.connect(NATS_URL)
        state = (await nc.jetstream().stream_info(Names(stream).events)).state.messages
        await nc.close()
        return state

    def wait_for(check: Callable[[], bool], limit: float = 20.0) -> float:
        start = time.monotonic()
        while not check():
            assert time.monotonic() - start < limit
            time.sleep(0.02)
        return time.monotonic() - start

    leader = standby = None
    try:
        run(_publish(stream, commands[:half], "a"))
        leader = subprocess.Popen(serve, stderr=subprocess.DEVNULL)
        wait_for(lambda: run(events()) > 0)
        standby = subprocess.Popen([*serve, "--idle-exit", "6"], stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        leader.send_signal(signal.SIGKILL)
        leader.wait()
        before = run(events())
        run(_publish(stream, commands[half:], "b"))
        took = wait_for(lambda: run(events()) > before)
        assert took < 5.0  # lease TTL 1 s: takeover within about 1.25 s plus the server's expiry timer
        _, err = standby.communicate(timeout=30)
        assert standby.returncode == 0, err
        engine = Engine()
        expected = replay_bytes(commands, engine)
        out = io.BytesIO()

        async def drain() -> None:
            nc = await nats.connect(NATS_URL)
            await drain_events(nc.jetstream(), Names(stream), out.write)
            await nc.close()

        run(drain())
        assert out.getvalue() == expected
        assert f"state {engine.state_hash()[:16]}" in err
    finally:
        for proc in (leader, standby):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        run(_delete(stream))


def test_a_standby_on_the_registry_takes_over_from_a_killed_leader(tmp_path: Path) -> None:
    """Leader and standby are `serve --registry` on one SQLite registry: the standby waits for the
    lease, then claims the registry and catches up from the snapshot; the registry ends as a
    replay's (every trade settled once) and the events as a replay's."""
    stream = f"T{uuid.uuid4().hex[:12].upper()}"
    common = ["--nats", NATS_URL, "--stream", stream]
    serve = [*CLI, "serve", "--shard", "0/1", *common, "--registry", f"sqlite:///{tmp_path}/v.db",
             "--batch", "40", "--snapshot-every", "400"]
    commands = commands_of(EXAMPLE)
    half = len(commands) // 2
    leader = standby = None
    try:
        run(_publish(stream, commands[:half], "a"))
        leader = subprocess.Popen(serve, stderr=subprocess.DEVNULL)
        while run(_events_messages(stream)) < 3:
            time.sleep(0.05)
        standby = subprocess.Popen([*serve, "--idle-exit", "1"], stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert standby.poll() is None and leader.poll() is None  # the standby waits for the lease
        leader.send_signal(signal.SIGKILL)
        leader.wait()
        run(_publish(stream, commands[half:], "b"))  # only the standby can apply these
        _, err = standby.communicate(timeout=60)
        assert standby.returncode == 0, err
        assert "applied 0 commands" not in err
        subprocess.run([*CLI, "events", *common, "--out", str(tmp_path / "e.jsonl")], check=True,
                       capture_output=True)
        subprocess.run([*CLI, "replay", str(EXAMPLE), "--registry", f"sqlite:///{tmp_path}/r.db", "--out",
                        str(tmp_path / "r.jsonl"), "--quiet"], check=True)
        assert (tmp_path / "e.jsonl").read_bytes() == (tmp_path / "r.jsonl").read_bytes()
        a, b = SQLiteRegistry(str(tmp_path / "v.db")), SQLiteRegistry(str(tmp_path / "r.db"))
        a.check()
        assert list(a.journal()) == list(b.journal())
        a.close()
        b.close()
    finally:
        for proc in (leader, standby):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        run(_delete(stream))


def test_a_shard_on_a_registry_that_loses_its_lease_stops() -> None:
    """Another holder takes the key (as after this leader was paused past its TTL): the leader
    on a registry stops at its next renewal, so that its registry claim ends with it."""
    commands = commands_of(EXAMPLE)

    async def go() -> None:
        async with venue_names(lease_ttl=1.0) as (js, names):
            await Publisher(js, names, 1).confirm([await Publisher(js, names, 1).publish(c, f"a:{i}")
                                                   for i, c in enumerate(commands[:200])])
            registry = MemoryRegistry()
            venue = ShardVenue(js, names, 0, 1, open_host=lambda: Venue(registry), lease_ttl=1.0)
            task = asyncio.create_task(venue.run(asyncio.Event()))
            while venue.commands < 200:
                await asyncio.sleep(0.05)
            kv = await js.key_value(names.leases)
            await kv.put("shard-0", b"another")  # the revision the leader renews against is gone
            with pytest.raises(LeaseLost, match="shard 0: the lease went to another process"):
                await asyncio.wait_for(task, 5)
            assert (await kv.get("shard-0")).value == b"another"  # it did not release the other's lease

    run(go())
    with pytest.raises(ValueError, match="one of the two"):
        ShardVenue(None, Names(), 0, 1)  # type: ignore[arg-type]


async def _publish(stream: str, part: list[Any], tag: str) -> None:
    """Publish commands one a message (ids ``tag:i``), creating the venue with a lease TTL of 1 s."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    names = Names(stream)
    await ensure(js, names, 1, 1.0)
    publisher = Publisher(js, names, 1)
    await publisher.confirm([await publisher.publish(c, f"{tag}:{i}") for i, c in enumerate(part)])
    await nc.close()


async def _events_messages(stream: str) -> int:
    nc = await nats.connect(NATS_URL)
    state = (await nc.jetstream().stream_info(Names(stream).events)).state.messages
    await nc.close()
    return state


# -- two shards and settlement ------------------------------------------------------------------


def routed(commands: list[Any], shards: int) -> list[list[Any]]:
    router = Router(shards)
    parts: list[list[Any]] = [[] for _ in range(shards)]
    for c in commands:
        parts[router.route(c)].append(c)
    return parts


def test_two_shards_each_give_the_events_of_a_replay_of_their_commands() -> None:
    commands = commands_of(EXAMPLE)

    async def go() -> None:
        async with venue_names() as (js, names):
            await publish_log(js, names, 2, io.BytesIO(EXAMPLE.read_bytes()))
            venues = [ShardVenue(js, names, k, 2, Engine(), batch=200) for k in range(2)]
            await asyncio.gather(*(v.run(asyncio.Event(), idle_exit=0.3) for v in venues))
            parts = routed(commands, 2)
            assert all(len(p) > 500 for p in parts)
            for k in range(2):
                assert await drained(js, names, k) == replay_bytes(parts[k])

    run(go())


def test_the_settlement_consumer_settles_every_shards_trades_once(tmp_path: Path) -> None:
    commands = commands_of(EXAMPLE)
    registry = SQLiteRegistry(str(tmp_path / "s.db"))
    registry.claim_writer()
    for c in commands:  # the administrator: accounts, issuance and cash, before trading
        if isinstance(c, RegistryCommand) and c.__struct_config__.tag not in ("surrender", "business_day"):
            with contextlib.suppress(RegistryError):  # the log's refused commands stay refused
                carry_out(registry, c)  # type: ignore[arg-type]
    before = {a: registry.balance(a, "JPY") for a in ("marubeni", "tepco-01")}
    trading = [c for c in commands if not isinstance(c, RegistryCommand)]
    log = tmp_path / "trading.jsonl"
    log.write_bytes(b"".join(encode_command(c) + b"\n" for c in trading if not isinstance(c, Undecodable)))

    async def go() -> tuple[int, int]:
        async with venue_names() as (js, names):
            await publish_log(js, names, 2, io.BytesIO(log.read_bytes()))
            venues = [ShardVenue(js, names, k, 2, Engine(), batch=200) for k in range(2)]
            await asyncio.gather(*(v.run(asyncio.Event(), idle_exit=0.3) for v in venues))
            consumer = SettlementConsumer(registry, names, batch=100)
            await consumer.run(js)
            trades = [(k, e) for k in range(2) for e in msgspec.json.Decoder().decode_lines(
                await drained(js, names, k)) if e["type"] == "trade"]
            assert consumer.settled + consumer.failed == len(trades) > 1000
            again = SettlementConsumer(registry, names)  # a restarted consumer settles nothing again
            last = registry.last_txid
            await again.run(js)
            assert (again.settled, again.failed, registry.last_txid) == (0, 0, last)
            for k, e in trades[:50]:
                assert registry.settlement(trade_id(k, e["seq"])) is not None
            return consumer.settled, consumer.failed

    settled, _ = run(go())
    assert settled > 1000
    registry.check()
    assert {a: registry.balance(a, "JPY") for a in before} != before
    registry.close()


# -- a 3-node NATS cluster ----------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_a_three_replica_stream_survives_the_loss_of_one_nats_node(tmp_path: Path) -> None:
    ports = _free_ports(6)
    client, routes = ports[:3], ports[3:]
    servers = []
    for i in range(3):
        conf = tmp_path / f"n{i}.conf"
        conf.write_text(
            f"server_name: n{i}\nlisten: 127.0.0.1:{client[i]}\n"
            f"jetstream {{ store_dir: '{tmp_path}/js{i}' }}\n"
            f"cluster {{ name: cb, listen: 127.0.0.1:{routes[i]}, routes: ["
            + ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes) + "] }\n")
        servers.append(subprocess.Popen(["nats-server", "-c", str(conf)], stderr=subprocess.DEVNULL))
    urls = [f"nats://127.0.0.1:{p}" for p in client]
    commands = commands_of(EXAMPLE)
    half = len(commands) // 2

    async def go() -> None:
        nc = await nats.connect(urls, max_reconnect_attempts=-1)
        js = nc.jetstream()
        for _ in range(150):  # the cluster elects its meta leader, then can place 3 replicas
            try:
                await js.add_stream(name="PROBE", subjects=["probe"], num_replicas=3)
                await js.delete_stream("PROBE")
                break
            except (TimeoutError, nats.errors.Error):
                await asyncio.sleep(0.2)
        await nc.close()
        async with venue_names(urls, replicas=3) as (js, names):
            await body(js, names)

    async def body(js: JetStreamContext, names: Names) -> None:
        publisher = Publisher(js, names, 1)
        await publisher.confirm([await publisher.publish(c, f"a:{i}") for i, c in enumerate(commands[:half])])
        venue = ShardVenue(js, names, 0, 1, Engine(), batch=200)
        stop = asyncio.Event()
        task = asyncio.create_task(venue.run(stop))
        while venue.commands < half:
            await asyncio.sleep(0.05)
        info = await js.stream_info(names.commands)
        leader = info.cluster.leader if info.cluster else None
        victim = int(leader[1]) if leader else 1  # the command stream's leader goes down
        servers[victim].kill()
        servers[victim].wait()
        for _ in range(60):  # a publish may land while the stream elects a new leader: retries are duplicates
            try:
                await publisher.confirm([await publisher.publish(c, f"b:{i}")
                                         for i, c in enumerate(commands[half:])])
                break
            except (TimeoutError, nats.errors.Error):
                await asyncio.sleep(0.5)
        while venue.commands < len(commands) and not task.done():  # a command stored twice counts once
            await asyncio.sleep(0.05)
        stop.set()
        await task
        assert publisher.published == len(commands)
        assert await drained(js, names) == replay_bytes(commands)

    try:
        run(go())
    finally:
        for s in servers:
            s.kill()
            s.wait()


def test_the_core_and_the_command_line_run_without_nats_py() -> None:
    script = ("import sys; sys.modules['nats'] = None\n"
              "import carbonbook, carbonbook.operations.cli, carbonbook.venue, carbonbook.cluster.routing\n"
              "sys.exit(carbonbook.operations.cli.main(['publish', 'x.jsonl']))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 2
    assert "needs nats-py: pip install 'carbonbook[nats]'" in done.stderr
