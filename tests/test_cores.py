"""The two cores against each other: the same commands give byte-identical events, snapshots
and ``state_hash()`` on the pure and the compiled core, one command at a time or in batches,
and either core restores the other's state and carries on identically.

The streams are :mod:`strategies`' (every order type, time in force, post-only flag and
self-trade mode, caps, cancels and modifies of live, dead and unknown ids, bad commands),
with phase changes (calls, halts, closes, back to continuous), price bands and undecodable
lines mixed in, and the benchmark workloads (busy, deep).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib.util import find_spec

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonbook import (
    CancelOrder,
    Command,
    Engine,
    ListInstrument,
    ModifyOrder,
    NewOrder,
    OrderType,
    Phase,
    SetPhase,
    Side,
    Undecodable,
    UnitType,
)
from carbonbook import core as cores
from carbonbook.events import Event
from carbonbook.operations import workload
from carbonbook.operations.replay import ReplayTally
from strategies import SYMBOLS, command_streams, crowded_streams

pytestmark = pytest.mark.skipif("compiled" not in cores.CORES,
                                reason="the compiled core is not built here (.ci/run requires it)")

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_encode = msgspec.json.Encoder().encode

Input = Command | Undecodable


def run(core: str, commands: list[Input], batch: int | None) -> tuple[list[bytes], Engine]:
    """The JSON lines of the events of ``commands`` on ``core`` (``batch`` commands per
    ``apply_all``, or None: one ``apply`` each), and the engine."""
    engine = Engine(core=core)
    events: list[Event] = []
    if batch is None:
        for command in commands:
            events += engine.apply(command)
    else:
        for i in range(0, len(commands), batch):
            events += engine.apply_all(commands[i:i + batch])
    engine.check()
    return [_encode(e) for e in events], engine


def assert_same(commands: list[Input], batch: int | None = None) -> None:
    pure_events, pure = run("pure", commands, batch)
    fast_events, fast = run("compiled", commands, batch)
    assert fast_events == pure_events
    assert fast.snapshot() == pure.snapshot()
    assert _encode(fast.export_state()) == _encode(pure.export_state())
    assert fast.state_hash() == pure.state_hash()


_PHASES = st.sampled_from([Phase.CALL, Phase.CALL, Phase.CONTINUOUS, Phase.CONTINUOUS, Phase.HALTED,
                           Phase.CLOSED])
_JUNK: list[Input] = [Undecodable(line=7, detail="invalid character (byte 3)"),
                      Undecodable(line=9, detail="missing field", id=12)]


@st.composite
def phased_streams(draw: st.DrawFn) -> list[Input]:
    """A command stream with phase changes (some with a reference price), a banded listing
    and undecodable lines inserted at random places."""
    commands: list[Input] = list(draw(command_streams()))
    inserts = draw(st.lists(st.tuples(st.integers(0, len(commands)), st.sampled_from(SYMBOLS), _PHASES,
                                       st.sampled_from([None, None, 10, 11, 9])), max_size=8))
    for at, symbol, phase, reference in sorted(inserts, key=lambda i: i[0], reverse=True):
        commands.insert(at, SetPhase(symbol, phase, reference))
    if draw(st.booleans()):
        commands.insert(0, ListInstrument("BAND-1", UnitType.EUA, band=draw(st.sampled_from([0, 500, 2000])),
                                          reference=10))
    for junk in draw(st.lists(st.sampled_from(_JUNK), max_size=2)):
        commands.insert(draw(st.integers(0, len(commands))), junk)
    return commands


@SETTINGS
@given(commands=phased_streams(), batch=st.sampled_from([None, 1, 7, 1000]))
def test_phased_streams_are_identical_on_both_cores(commands: list[Input], batch: int | None) -> None:
    assert_same(commands, batch)


@settings(SETTINGS, max_examples=30)
@given(commands=crowded_streams())
def test_crowded_levels_are_identical_on_both_cores(commands: list[Command]) -> None:
    assert_same(commands, batch=64)


@pytest.mark.parametrize("commands", [workload.busy(20_000, seed=3), workload.deep(5_000, 5_000, seed=4),
                                      workload.auction(20_000, seed=5)],
                         ids=["busy", "deep", "auction"])
def test_workloads_are_identical_on_both_cores(commands: list[Command]) -> None:
    assert_same(list(commands), batch=4096)


@st.composite
def call_books(draw: st.DrawFn) -> list[Input]:
    """A call on a ticked instrument with few prices, so that volumes and surpluses tie:
    limit and market orders, cancels, modifies, references in and out of the tied range, then
    the uncross. Every order's ``indicative`` is the price choice from the book's tally."""
    tick = draw(st.sampled_from([1, 5]))
    commands: list[Input] = [ListInstrument("CALL-1", UnitType.EUA, tick=tick),
                             SetPhase("CALL-1", Phase.CALL, draw(st.sampled_from([None, 5, 50, 100, 200])))]
    prices = st.integers(18, 22).map(lambda p: p * tick * 5)
    kinds = draw(st.sampled_from([["limit", "limit", "limit", "market", "cancel", "modify"],
                                  ["market", "cancel"]]))
    for oid in range(1, draw(st.integers(1, 40)) + 1):
        kind = draw(st.sampled_from(kinds))
        if kind == "cancel":
            commands.append(CancelOrder(draw(st.integers(1, oid))))
        elif kind == "modify":
            commands.append(ModifyOrder(draw(st.integers(1, oid)), price=draw(prices),
                                        qty=draw(st.integers(1, 4))))
        else:
            commands.append(NewOrder(oid, draw(st.sampled_from(["a", "b", "c"])), "CALL-1",
                                     draw(st.sampled_from([Side.BUY, Side.SELL])), draw(st.integers(1, 4)),
                                     price=None if kind == "market" else draw(prices),
                                     order_type=OrderType.MARKET if kind == "market" else OrderType.LIMIT))
    commands.append(SetPhase("CALL-1", draw(st.sampled_from([Phase.CONTINUOUS, Phase.CLOSED])),
                             draw(st.sampled_from([None, 90, 100, 110]))))
    return commands


@SETTINGS
@given(commands=call_books(), batch=st.sampled_from([None, 1000]))
def test_call_auction_prices_are_identical_on_both_cores(commands: list[Input], batch: int | None) -> None:
    assert_same(commands, batch)


@pytest.mark.parametrize("core", ["pure", "compiled"])
def test_a_tie_without_a_reference_prices_at_the_middle_rounded_down_to_the_tick(core: str) -> None:
    """Tied at 100 and 125 (volume 1, no surplus), no reference: the middle 112 rounds down to
    110 on a tick of 5, a price between the tied rows."""
    engine = Engine(core=core)
    engine.apply_all([ListInstrument("CALL-1", UnitType.EUA, tick=5), SetPhase("CALL-1", Phase.CALL),
                      NewOrder(1, "a", "CALL-1", Side.BUY, 1, price=125)])
    indicative = engine.apply(NewOrder(2, "b", "CALL-1", Side.SELL, 1, price=100))[-1]
    assert (indicative.price, indicative.volume, indicative.surplus) == (110, 1, 0)


@SETTINGS
@given(commands=phased_streams(), cut=st.floats(0, 1), restore_on=st.sampled_from(["pure", "compiled"]))
def test_either_core_restores_the_others_state(commands: list[Input], cut: float, restore_on: str) -> None:
    """Export after a prefix on one core, restore on the other (or the same), apply the rest:
    the events and the state are those of an uninterrupted run."""
    at = int(len(commands) * cut)
    whole_events, whole = run("pure", commands, batch=None)
    other = "compiled" if restore_on == "pure" else "pure"
    first_events, first = run(other, commands[:at], batch=None)
    resumed = Engine.from_state(first.export_state(), core=restore_on)
    assert resumed.core == restore_on
    rest = [_encode(e) for c in commands[at:] for e in resumed.apply(c)]
    resumed.check()
    assert first_events + rest == whole_events
    assert resumed.state_hash() == whole.state_hash()


@SETTINGS
@given(commands=phased_streams(), batch=st.sampled_from([1, 5, 1000]))
def test_the_json_path_writes_msgspecs_bytes_and_tally(commands: list[Input], batch: int) -> None:
    """``apply_all_json`` (what replay runs on the compiled core) writes exactly the JSON Lines
    of the pure core's events, and its tally is theirs."""
    pure = Engine(core="pure")
    fast = Engine(core="compiled")
    out = fast.json_out()
    assert out is not None
    written, want = ReplayTally(), ReplayTally()
    data = b""
    for i in range(0, len(commands), batch):
        events = pure.apply_all(commands[i:i + batch])
        want.add(events)
        fast.apply_all_json(commands[i:i + batch], out)
        chunk = out.take()
        written.add_json(out)
        assert chunk == msgspec.json.Encoder().encode_lines(events)
        data += chunk
    assert written == want
    assert fast.state_hash() == pure.state_hash()


def test_json_out_is_none_where_events_must_be_structs() -> None:
    assert Engine(core="pure").json_out() is None
    engine = Engine(core="compiled")
    engine.subscribe(lambda events: None)
    assert engine.json_out() is None


def test_a_64_bit_overflow_of_a_level_total_is_exact_on_both_cores() -> None:
    """Two orders of 2**62 + 2**61 at one price: the level holds more than 2**63 - 1."""
    from carbonbook import NewOrder, Side

    big = 2**62 + 2**61
    commands: list[Input] = [ListInstrument("X", UnitType.EUA)]
    commands += [NewOrder(i, f"a{i}", "X", Side.SELL, big, price=5) for i in range(3)]
    commands += [NewOrder(9, "b", "X", Side.BUY, 2**63 - 1, price=5)]
    assert_same(commands)
    _, engine = run("compiled", commands, batch=None)
    assert engine.book("X").asks.best().qty == 3 * big - (2**63 - 1)


_EDGES = [b + d for b in (0, 2**5, 2**7, 2**8, 2**15, 2**16, 2**31, 2**32, 2**63, 2**64) for d in (-1, 0)]
_ODD_INTS = st.one_of(st.none(), st.integers(), st.booleans(), st.just(1.5),
                      st.sampled_from(_EDGES + [-1 - e for e in _EDGES]))  # MessagePack's int forms' edges
_NAMES = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=130),
                   st.sampled_from(["acct-1", 'a"b', "a\\b", "tab\there", "é", "\x7f", "x" * 128, "x" * 129,
                                    "x" * 31, "x" * 32, "x" * 250, "x" * 251, "x" * 256]),
                   st.sampled_from(list(Side)))


@st.composite
def _odd_orders(draw: st.DrawFn) -> Input:
    """New orders and cancels built by hand with values of any kind (msgspec does not check them)."""
    from carbonbook import CancelOrder, NewOrder, OrderType, SelfTradePrevention, Side, TimeInForce

    if draw(st.booleans()):
        oid = draw(st.one_of(st.integers(), st.booleans(), st.text(max_size=3)))
        return CancelOrder(oid, ts=draw(_ODD_INTS))

    def member(cls: type) -> object:
        return draw(st.one_of(st.sampled_from(list(cls)), st.sampled_from([str(next(iter(cls))), 1])))

    return NewOrder(draw(st.one_of(st.integers(), st.booleans())), draw(_NAMES), draw(_NAMES), member(Side),  # type: ignore[arg-type]
                    draw(st.integers()), price=draw(_ODD_INTS), order_type=member(OrderType),  # type: ignore[arg-type]
                    tif=member(TimeInForce), post_only=draw(st.sampled_from([True, False, 0, 1, None])),  # type: ignore[arg-type]
                    stp=member(SelfTradePrevention), cap=draw(_ODD_INTS), ts=draw(_ODD_INTS))  # type: ignore[arg-type]


_PACK = msgspec.msgpack.Encoder(order="deterministic").encode


def _folded(fold: Callable[[int, list[Input]], int], digest: int,
            commands: list[Input]) -> int | type[BaseException]:
    try:
        return fold(digest, commands)
    except Exception as e:  # what msgspec cannot encode
        return type(e)


@pytest.mark.skipif(find_spec("carbonbook._cvenue") is None, reason="the compiled venue is not built here")
@given(st.one_of(command_streams(), st.lists(_odd_orders(), max_size=8)),
       st.integers(-2**63, 2**63 - 1) | st.just(1))
@SETTINGS
def test_the_digest_folded_in_c_is_zlibs_over_msgspecs_messagepack(commands: list[Input], digest: int) -> None:
    """A venue's digest (version 2: its checkpoint's CRC-32 and Adler-32 of the commands in
    MessagePack, resumed from any value): new orders and cancels of plain values written in C, the
    rest by msgspec, both checksums in C, the value zlib gives over what msgspec writes."""
    from carbonbook._cvenue import fold_packed as fold_in_c
    from carbonbook.venue.checkpoint import fold_packed

    assert (_folded(partial(fold_in_c, encode=_PACK), digest, commands)
            == _folded(fold_packed, digest, commands))
    one_by_one = fold_packed(digest, [])  # (Adler-32 reduced, as zlib does: a state past its base is not one)
    for command in commands:  # a batch at once folds what the commands one by one fold
        one_by_one = _folded(fold_packed, one_by_one, [command])  # type: ignore[arg-type]
        if not isinstance(one_by_one, int):
            return
    assert fold_packed(digest, commands) == one_by_one


@pytest.mark.skipif(find_spec("carbonbook._cvenue") is None, reason="the compiled venue is not built here")
def test_the_digests_adler32_is_zlibs_in_sse2_and_in_avx2() -> None:
    """The digest's Adler-32, 16 bytes at a time (SSE2) and 32 (AVX2, where the processor has it),
    is zlib's: every length up to 300 and across a reduction's round (5,536 and 5,552 bytes), from
    a fresh state, a late one and one past the base (which zlib reduces)."""
    import random
    import zlib

    from carbonbook._cvenue import adler32

    data = random.Random(7).randbytes(12_000)
    data = b"\xff" * 6_000 + data  # the largest sums
    for start in (1, 0xFFF0FFF0, 0xFFFFFFFF):
        for n in [*range(301), 5_535, 5_536, 5_537, 5_551, 5_552, 5_553, 11_104, 18_000]:
            expected = zlib.adler32(data[:n], start)
            assert adler32(start, data[:n], False) == expected, (start, n)
            assert adler32(start, data[:n], True) == expected, (start, n)


@pytest.mark.skipif(find_spec("carbonbook._cvenue") is None, reason="the compiled venue is not built here")
def test_the_digest_folded_in_c_over_long_batches_is_zlibs() -> None:
    """Batches of every size up to a venue's and past 65,535 commands (the widest MessagePack array
    header), each resumed from the digest of the ones before, give the digest zlib gives: many of
    Adler-32's 5,552-byte rounds and of CRC-32's 64-byte folds, with every tail."""
    from carbonbook._cvenue import fold_packed as fold_in_c
    from carbonbook.venue.checkpoint import fold_packed

    commands = workload.busy(80_000, 3)
    mine = zlibs = 1
    start = 0
    for size in (0, 1, 2, 3, 5, 8, 15, 16, 40, 100, 333, 1000, 4096, 6000, 66_000):
        batch = commands[start:start + size]
        start += size
        mine, zlibs = fold_in_c(mine, batch, _PACK), fold_packed(zlibs, batch)
        assert mine == zlibs
