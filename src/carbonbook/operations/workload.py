"""Seeded, deterministic benchmark workloads (lists of commands) and the measurements on them.

Used by ``carbonbook bench`` and the scripts in ``bench/``.

Every workload starts with one :class:`~carbonbook.ListInstrument` and then holds
new orders and cancels for that instrument. The same arguments always give the same
commands (``random.Random(seed)``, no clocks, no hashing of unordered containers).

``busy(n, seed)``
    A near-touch order flow on one instrument: 55 % GTC limit orders on a random side
    priced within 12 ticks of a drifting mid (the mid takes a random walk, so some
    orders cross and trade), 35 % cancels of orders that are resting at that moment
    (the id an int object of its own, as decoded from a log: :func:`_own_int`),
    10 % market orders; sizes 1..100, 20 accounts. The book hovers around 70 resting
    orders.

``auction(n, seed)``
    The busy mix with a call auction every 2,000 messages: a ``phase`` command opens a
    call, 199 messages of the mix are collected, and the next ``phase`` command uncrosses
    the book back to continuous trading.

``venue_session(n, seed)``
    The registry setup a :class:`~carbonbook.venue.Venue` needs for the busy mix (a scheme,
    and per account an operator account, 10,000,000 EUA and ample EUR), then ``busy(n,
    seed)`` with every market buy given a cap (a venue refuses market buys without one).

``deep(n_resting, n_mix, seed)``
    ``n_resting`` non-crossing GTC limit orders spread over thousands of price levels
    on both sides (they all rest), then ``n_mix`` messages of the busy mix around the
    same mid, so the same flow runs against a book of about ``n_resting`` orders.

To pick cancels of orders that really rest, the generator replays every command it
emits through a :class:`carbonbook.Engine` and follows its events (:class:`Live`).

Measurements (:func:`best_times`, :func:`latencies`, :func:`tally`) time a
:class:`Phase`, a named run of commands; phases of one workload share an engine.
Only they read the clock (``time.perf_counter_ns``, ``process_time_ns``); the
engine never does.
"""

from __future__ import annotations

import gc
import random
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from time import perf_counter_ns, process_time_ns
from typing import TYPE_CHECKING

from carbonbook._types import OrderType, Side, UnitType
from carbonbook._types import Phase as TradingPhase
from carbonbook.commands import (
    CancelOrder,
    Command,
    Deposit,
    Issue,
    ListInstrument,
    NewOrder,
    OpenAccount,
    OpenScheme,
    SetCap,
    SetPhase,
)
from carbonbook.core.engine import Engine
from carbonbook.events import Cancelled, Event, Rejected, Trade

if TYPE_CHECKING:
    from carbonbook.venue import Venue

SYMBOL = "EUA-DEC26"
"""The one instrument of every workload (EU allowances, prices in euro cents per tonne)."""
ACCOUNTS: tuple[str, ...] = tuple(f"acct-{i:02d}" for i in range(20))
"""The accounts that send orders."""
MID = 8_000
"""The mid price where every workload starts (EUR 80.00 per tonne, tick 1 cent)."""

LIMIT_SHARE = 0.55
CANCEL_SHARE = 0.35
MARKET_SHARE = 0.10
MAX_QTY = 100
BAND = 12
"""A limit order is priced at most this many ticks from the mid, on its passive side."""
CROSS = 1
"""...or up to this many ticks through the mid, so some limit orders are marketable."""
DRIFT = 0.25
"""Chance per message that the mid moves one tick up or down."""

AUCTION_EVERY = 2_000
"""The auction workload opens a call every this many messages..."""
AUCTION_CALL = 200
"""...and uncrosses it this many messages later."""

DEEP_LEVELS = 5_000
"""Price levels per side of the deep book's resting phase."""

_BUY, _SELL = Side.BUY, Side.SELL
_SIDES = (_BUY, _SELL)


class Live:
    """The ids of the orders resting in an engine, kept in step with its events.

    Supports O(1) add, discard and uniform random choice (a list plus positions).
    """

    __slots__ = ("_engine", "_ids", "_pos")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ids: list[int] = []
        self._pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, oid: int) -> bool:
        return oid in self._pos

    def add(self, oid: int) -> None:
        if oid not in self._pos:
            self._pos[oid] = len(self._ids)
            self._ids.append(oid)

    def discard(self, oid: int) -> None:
        pos = self._pos.pop(oid, None)
        if pos is None:
            return
        last = self._ids.pop()
        if last != oid:
            self._ids[pos] = last
            self._pos[last] = pos

    def choice(self, rng: random.Random) -> int:
        return self._ids[rng.randrange(len(self._ids))]

    def follow(self, command: Command, events: Iterable[Event]) -> None:
        """Update the set after ``command`` was applied and produced ``events``."""
        order = self._engine.order
        for event in events:
            if isinstance(event, Trade):  # an uncross's taker rested too
                for oid in (event.maker_id, event.taker_id):
                    state = order(oid)
                    if state is None or state.status != "open":
                        self.discard(oid)
            elif isinstance(event, Cancelled):
                self.discard(event.id)
            elif isinstance(event, Rejected):
                raise AssertionError(f"workload command rejected: {command!r} -> {event!r}")
        if isinstance(command, NewOrder):
            state = order(command.id)
            if state is not None and state.status == "open":
                self.add(command.id)


@dataclass
class _Flow:
    """The generator's state: the engine it replays into, the live ids and the mid."""

    rng: random.Random
    engine: Engine
    live: Live
    commands: list[Command]
    mid: int = MID
    next_id: int = 1
    resting_total: int = 0  # sum over mix messages of the resting count after each

    def emit(self, command: Command) -> None:
        self.commands.append(command)
        self.live.follow(command, self.engine.apply(command))

    def account(self) -> str:
        return ACCOUNTS[self.rng.randrange(len(ACCOUNTS))]

    def new_id(self) -> int:
        oid = self.next_id
        self.next_id += 1
        return oid

    def limit(self, side: Side, price: int) -> NewOrder:
        qty = self.rng.randint(1, MAX_QTY)
        return NewOrder(self.new_id(), self.account(), SYMBOL, side, qty, price=price)

    def mix_step(self) -> None:
        """One message of the busy mix."""
        rng = self.rng
        if rng.random() < DRIFT:
            self.mid = max(self.mid + (1 if rng.random() < 0.5 else -1), BAND + CROSS + 1)
        r = rng.random()
        if r < LIMIT_SHARE or (r < LIMIT_SHARE + CANCEL_SHARE and not self.live):
            side = _SIDES[rng.randrange(2)]
            depth = rng.randint(-CROSS, BAND)  # ticks away from the mid on the passive side
            price = self.mid - depth if side is _BUY else self.mid + depth
            self.emit(self.limit(side, price))
        elif r < LIMIT_SHARE + CANCEL_SHARE:
            self.emit(CancelOrder(_own_int(self.live.choice(rng))))
        else:
            side = _SIDES[rng.randrange(2)]
            qty = rng.randint(1, MAX_QTY)
            self.emit(NewOrder(self.new_id(), self.account(), SYMBOL, side, qty,
                               order_type=OrderType.MARKET))
        self.resting_total += len(self.live)


def _own_int(oid: int) -> int:
    """``oid`` as an int object of its own, as a cancel decoded from a log or sent by a client
    carries it. Sharing the object of the order's NewOrder would have a cancel on the deep book
    read memory last touched a million orders earlier (a cache and TLB miss: 16 % of the compiled
    core's time on the deep mix, by perf), which no real caller pays and busy, whose cancels hit
    recent orders, hardly does."""
    return int(str(oid))


def _start(seed: int) -> _Flow:
    engine = Engine()
    flow = _Flow(random.Random(seed), engine, Live(engine), [])
    flow.emit(ListInstrument(SYMBOL, UnitType.EUA))
    return flow


def busy(n: int, seed: int = 1) -> list[Command]:
    """The instrument, then ``n`` messages of the busy near-touch mix."""
    return busy_with_stats(n, seed)[0]


def busy_with_stats(n: int, seed: int = 1) -> tuple[list[Command], float]:
    """:func:`busy` and the average number of resting orders after each message."""
    flow = _start(seed)
    for _ in range(n):
        flow.mix_step()
    return flow.commands, flow.resting_total / max(n, 1)


def auction(n: int, seed: int = 1) -> list[Command]:
    """The instrument, then ``n`` messages of the busy mix of which every :data:`AUCTION_EVERY`-th
    opens a call and the :data:`AUCTION_CALL`-th after it uncrosses it (back to continuous)."""
    flow = _start(seed)
    for i in range(n):
        if i % AUCTION_EVERY == 0:
            flow.emit(SetPhase(SYMBOL, TradingPhase.CALL))
        elif i % AUCTION_EVERY == AUCTION_CALL:
            flow.emit(SetPhase(SYMBOL, TradingPhase.CONTINUOUS))
        else:
            flow.mix_step()
    return flow.commands


def venue_session(n: int, seed: int = 1) -> tuple[list[Command], list[Command]]:
    """The registry setup for the busy mix's accounts, and ``busy(n, seed)`` with market buys
    capped (see the module docstring)."""
    flow = busy(n, seed)
    accounts = sorted({c.account for c in flow if isinstance(c, NewOrder)})
    setup: list[Command] = [OpenScheme(name="EUETS", allowances=frozenset({UnitType.EUA})),
                            SetCap(scheme="EUETS", period=2026, cap=10**15)]
    for a in accounts:
        setup += [OpenAccount(account=a),
                  Issue(account=a, unit=UnitType.EUA, qty=10_000_000, scheme="EUETS", period=2026),
                  Deposit(account=a, currency="EUR", amount=10**15)]
    orders = [NewOrder(c.id, c.account, c.symbol, c.side, c.qty, order_type=OrderType.MARKET, cap=10**12)
              if isinstance(c, NewOrder) and c.price is None and c.side is _BUY else c for c in flow]
    return setup, orders


def deep(n_resting: int, n_mix: int, seed: int = 1) -> list[Command]:
    """The instrument, ``n_resting`` orders that all rest, then ``n_mix`` busy messages.

    ``commands[:1 + n_resting]`` is :func:`deep_resting` (the same seed gives the same
    orders) and ``commands[1 + n_resting:]`` the mix.
    """
    flow = _start(seed)
    for order in _deep_orders(flow.rng, n_resting):
        flow.emit(order)
    flow.next_id = n_resting + 1
    for _ in range(n_mix):
        flow.mix_step()
    return flow.commands


def deep_resting(n_resting: int, seed: int = 1, levels: int = DEEP_LEVELS) -> list[Command]:
    """The resting phase of :func:`deep` alone, built without an engine.

    Each order picks a side and one of ``levels`` levels per side at random (bids below the
    mid, asks above it, one tick apart; none crosses), so the levels hold about
    ``n_resting / (2 * levels)`` orders each.
    """
    rng = random.Random(seed)
    return [ListInstrument(SYMBOL, UnitType.EUA), *_deep_orders(rng, n_resting, levels)]


def _deep_orders(rng: random.Random, n: int, levels: int = DEEP_LEVELS) -> list[NewOrder]:
    orders = []
    for oid in range(1, n + 1):
        depth = 1 + rng.randrange(levels)
        side, price = (_BUY, MID - depth) if rng.random() < 0.5 else (_SELL, MID + depth)
        account = ACCOUNTS[rng.randrange(len(ACCOUNTS))]
        orders.append(NewOrder(oid, account, SYMBOL, side, rng.randint(1, MAX_QTY), price=price))
    return orders


def small_book(n: int = 70, seed: int = 7) -> list[Command]:
    """The instrument and ``n`` non-crossing orders within :data:`BAND` ticks of the mid.

    Bids sit at ``MID - 1 .. MID - BAND`` and asks at ``MID + 1 .. MID + BAND``, half
    of the orders on each side: a book like the busy workload's usual one.
    """
    rng = random.Random(seed)
    commands: list[Command] = [ListInstrument(SYMBOL, UnitType.EUA)]
    for oid in range(1, n + 1):
        side = _BUY if oid % 2 else _SELL
        depth = 1 + rng.randrange(BAND)
        price = MID - depth if side is _BUY else MID + depth
        commands.append(NewOrder(oid, ACCOUNTS[rng.randrange(len(ACCOUNTS))], SYMBOL, side,
                                 rng.randint(1, MAX_QTY), price=price))
    return commands


# -- measurements -------------------------------------------------------------------


BATCH = 4096
"""Commands per ``Engine.apply_all`` call in the batched measurement (as replay applies its input)."""


@dataclass
class Phase:
    """A named run of commands, timed on its own; phases of one workload share an engine."""

    name: str
    commands: Sequence[Command]


Make = Callable[[], "Engine | Venue"]
"""What a measurement runs on: a fresh engine (or venue) per run."""


def replay_ns(engine: Engine | Venue, commands: Sequence[Command], batch: bool) -> tuple[int, int]:
    """Apply ``commands`` one ``apply`` at a time, or :data:`BATCH` per ``apply_all`` (as
    ``carbonbook replay`` does); return the wall time and this process's CPU time (ns)."""
    cpu = process_time_ns()
    start = perf_counter_ns()
    if batch:
        apply_all = engine.apply_all
        for i in range(0, len(commands), BATCH):
            apply_all(commands[i:i + BATCH])
    else:
        apply = engine.apply
        for command in commands:
            apply(command)
    return perf_counter_ns() - start, process_time_ns() - cpu


def best_times(phases: Sequence[Phase], runs: int, batch: bool = False,
               core: str | None = None, make: Make | None = None) -> list[tuple[int, int]]:
    """The best wall time and the best CPU time (ns) of each phase over ``runs`` runs,
    each on a fresh Engine of ``core`` (or what ``make`` makes). On a busy machine the CPU
    time leaves out the time the process waited for a core (but not the cache misses other
    processes cause)."""
    best = [(sys.maxsize, sys.maxsize)] * len(phases)
    for _ in range(runs):
        engine = Engine(core=core) if make is None else make()
        for i, phase in enumerate(phases):
            wall, cpu = replay_ns(engine, phase.commands, batch)
            best[i] = (min(best[i][0], wall), min(best[i][1], cpu))
        del engine
        gc.collect()
    return best


def latencies(phases: Sequence[Phase], core: str | None = None, make: Make | None = None) -> list[array[int]]:
    """Per-apply latency (ns, timer overhead included) of each phase, sorted; one fresh Engine
    of ``core`` (or what ``make`` makes)."""
    engine = Engine(core=core) if make is None else make()
    apply = engine.apply
    now = perf_counter_ns
    out = []
    for phase in phases:
        lat = array("q", bytes(8 * len(phase.commands)))
        for i, command in enumerate(phase.commands):
            t0 = now()
            apply(command)
            t1 = now()
            lat[i] = t1 - t0
        out.append(array("q", sorted(lat)))
    return out


def timer_overhead_ns(samples: int = 100_000) -> int:
    """The median of two back-to-back ``perf_counter_ns`` reads."""
    now = perf_counter_ns
    lat = []
    for _ in range(samples):
        t0 = now()
        t1 = now()
        lat.append(t1 - t0)
    lat.sort()
    return lat[samples // 2]


def percentile(ordered: Sequence[int], q: float) -> int:
    """Nearest-rank percentile ``q`` (0..100) of a non-empty sorted sequence.

    >>> percentile([10, 20, 30, 40], 50), percentile([10, 20, 30, 40], 99.9)
    (20, 40)
    """
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass
class Tally:
    """What a phase did: events by type (cancels by reason), resting orders at its end and
    on average after each message."""

    events: Counter[str]
    resting_avg: float
    resting_end: int


def tally(phases: Sequence[Phase]) -> list[Tally]:
    """Replay once more (untimed), counting events and the resting orders after each message."""
    engine = Engine()
    live = Live(engine)
    out = []
    for phase in phases:
        counts: Counter[str] = Counter()
        resting_sum = 0
        for command in phase.commands:
            events = engine.apply(command)
            for event in events:
                tag = event.__struct_config__.tag
                counts[f"{tag}/{event.reason}" if isinstance(event, Cancelled) else str(tag)] += 1
            live.follow(command, events)
            resting_sum += len(live)
        out.append(Tally(counts, resting_sum / max(len(phase.commands), 1), len(live)))
    return out
