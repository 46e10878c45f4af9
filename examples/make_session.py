"""Generate ``examples/jvets-2010.jsonl``: one JVETS-style market year as a carbonbook order log.

The log is an invented compliance year of JVETS, Japan's voluntary emissions trading
scheme, run against a registry (``carbonbook replay examples/jvets-2010.jsonl --registry
sqlite:///jvets.db``). It has three parts, 4,000 lines in all:

**Setup** (April-September 2010). Four schemes: ``JVETS`` (allowances JPA; credits JVER
and CER for at most 10 % of an obligation; banking allowed), ``CDM`` (Kyoto CERs of the
first commitment period, period 2008, originating registry ``CN``; banking allowed, as a CP1
CER counts throughout 2008-12), ``J-VER`` (forest offset credits) and ``JCDM``
(国内クレジット, domestic credits). A cap per scheme, an issuance account, a retirement
account (償却) and a cancellation account (無効化), and
fourteen holding accounts, eight of them JVETS target holders (``scheme: JVETS``). Each
target holder is allocated JPA from the issuance account: its verified base-year
emissions minus its committed reduction (the numbers are in :data:`TARGETS`). Three over-
achievers sold part of their allocation forward to trading houses and brokers, delivered
by ``transfer`` before the session. The J-VER project developer gets the J-VERs of its
forest project, trading houses and utilities CERs of two Chinese CDM projects, trading
houses domestic credits, and everyone yen (``deposit``).

**Trading** (Friday 1 October 2010, JST). Four instruments are listed at 08:45, then the
accounts trade through a morning (09:00-11:30) and an afternoon (12:30-15:00) session:

* ``JPA-2010``    JVETS allowances of the 2010 vintage, yen per t-CO2, tick 1, lot 1
* ``CER-CP1``     Kyoto CERs for the first commitment period, tick 1, lot 100
* ``JVER-FOREST`` forest-absorption J-VER offset credits, tick 10, lot 1
* ``JCR-2010``    domestic credits (国内クレジット) of 2010, tick 1, lot 1

Target holders mostly buy to cover their targets, the forestry company sells J-VERs, and
trading houses and brokers quote both sides. The flow mixes GTC limits around a drifting
mid, crossing limits, IOC, FOK and market orders (market buys state a ``cap``), post-only
quotes (some rejected for crossing), self-trade prevention, and cancels and modifies of
orders that are really open. The generator runs a :class:`carbonbook.venue.Venue` on a
memory registry as it goes, so it knows what each account holds: an order is normally cut
to what the account can back, but now and then (:data:`OVERREACH`) a trader over-reaches
and the venue refuses the order (``insufficient_units`` or ``insufficient_funds``). One
broker forgets the cap on a market buy. There are also :data:`BAD_LINES`: one of each kind
at seeded random positions (undecodable lines, unknown symbols, registry commands the
registry refuses, ...). Business day 1 starts the session and business day 6 (Friday
8 October) follows it, so a replay with ``--settle-lag 5`` (JPX's T+5) settles every trade
before the true-up; the default (lag 0) settles each trade at once.

**True-up** (2011, the adjustment period). Verified 2010 emissions per target holder
(``emissions``), then surrenders (``surrender``, 償却) into the retirement account: credits
first, within the 10 % limit (one utility first asks for too many: ``offset_limit``), then
JPA. ``jfe-steel`` ends short (status B); the others comply (status A). ``kirin-brewery``
offsets a beer line voluntarily with J-VERs (``retire`` into the cancellation account,
無効化) and ``asahi-glass`` banks its surplus JPA into 2011 (``carry_over``).

Everything is drawn from one ``random.Random(SEED)``, so the output is byte-identical
on every run. Run from the repository root::

    .venv/bin/python examples/make_session.py            # writes the log and prints its figures
    .venv/bin/python examples/make_session.py --check    # checks the shipped log is what it writes
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

import msgspec

from carbonbook import (
    Accepted,
    Cancelled,
    CancelOrder,
    Command,
    Engine,
    Event,
    ListInstrument,
    ModifyOrder,
    NewOrder,
    OrderType,
    Rejected,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
    Undecodable,
    UnitType,
)
from carbonbook.codec import DecodeFailure, describe_fault, json_decoder
from carbonbook.commands import (
    BusinessDay,
    CarryOver,
    Deposit,
    Issue,
    OpenAccount,
    OpenScheme,
    RecordEmissions,
    RegistryCommand,
    Retire,
    SetCap,
    Surrender,
    Transfer,
)
from carbonbook.events import Recorded, TradeSettled
from carbonbook.operations.replay import replay as replay_log
from carbonbook.registry import MemoryRegistry, Registry
from carbonbook.venue import Venue

SEED: Final = 20101001
N_LINES: Final = 4000
FIRST_ID: Final = 1_000_001
OUT: Final = Path(__file__).with_name("jvets-2010.jsonl")
OVERREACH: Final = 0.12  # chance that a trader sends an order the account cannot back
YEN: Final = "JPY"

JST: Final = timezone(timedelta(hours=9), "JST")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
DAY: Final = (2010, 10, 1)
SESSIONS: Final = ((9, 0, 11, 30), (12, 30, 15, 0))  # morning and afternoon, JST
LISTING_TIME: Final = (8, 45)
SETUP_DAY: Final = (2010, 4, 1)  # start of FY2010: schemes, accounts, allocation
TRUE_UP_DAY: Final = (2011, 6, 30)  # adjustment period: verified emissions, then surrender

BUY, SELL = Side.BUY, Side.SELL
IOC, FOK = TimeInForce.IOC, TimeInForce.FOK
MARKET = OrderType.MARKET

# -- the registry side ------------------------------------------------------------------

ISSUANCE: Final = "jvets-issuance"  # the scheme's issuance (allocation) account
RETIREMENT: Final = "jvets-retirement"  # surrendered JPA and credits (償却)
CANCELLATION: Final = "jcredit-cancellation"  # voluntary cancellation (無効化)
PERIOD: Final = 2010  # the target year
CP1: Final = 2008  # the period of the CERs: Kyoto's first commitment period, 2008-12
OFFSET_PERCENT: Final = 10


@dataclass(frozen=True)
class Target:
    """A JVETS target holder: verified base-year emissions, the committed reduction, and the
    verified emissions of the target year 2010 (t-CO2). Allocation = base - reduction."""

    base: int
    reduction: int
    verified: int

    @property
    def allocation(self) -> int:
        return self.base - self.reduction


TARGETS: Final = {
    # Allocation (base - committed reduction) and what the true-up makes of it; 2010's hot
    # summer drove the utilities' output up, the glass and beer makers cut theirs.
    #                       base year  committed  verified 2010    allocation, true-up
    "tepco-01": Target(412_560, 20_630, 429_870),  # 391,930; buys JPA, covers 9,861 t with CERs
    "kansai-epco": Target(318_440, 15_920, 317_650),  # 302,520; buys JPA, 5,823 t of CERs
    "chubu-epco": Target(254_310, 12_720, 236_880),  # 241,590; below its allocation, sells the rest
    "nippon-steel": Target(386_900, 19_350, 384_920),  # 367,550; buys JPA, 5,762 t of CERs
    "jfe-steel": Target(291_770, 14_590, 309_770),  # 277,180; short of cash and units: status B
    "toyota-motor": Target(168_250, 16_830, 127_860),  # 151,420; 22,000 t sold forward, CERs and J-VERs
    "asahi-glass": Target(96_480, 9_650, 51_240),  # 86,830; 4,000 t sold forward, banks what is left
    "kirin-brewery": Target(52_930, 5_290, 30_850),  # 47,640; 3,000 t sold forward
}
CAPS: Final = {"JVETS": 2_000_000, "CDM": 400_000, "J-VER": 20_000, "JCDM": 150_000}

# JPA sold forward by over-achievers and delivered before the session: (from, to, t-CO2)
FORWARDS: Final = (
    ("toyota-motor", "mitsubishi-corp", 12_000), ("toyota-motor", "mitsui-co", 10_000),
    ("asahi-glass", "marubeni", 4_000), ("kirin-brewery", "natsource-japan", 3_000),
)
# credits issued at the start: (account, unit, qty, scheme, period, origin, project)
CREDITS: Final = (
    ("sumitomo-forestry", UnitType.JVER, 9_000, "J-VER", PERIOD, "JP", "JVER-R043-shimokawa-forest"),
    ("mitsubishi-corp", UnitType.CER, 60_000, "CDM", CP1, "CN", "CDM-2307-ningxia-wind"),
    ("marubeni", UnitType.CER, 40_000, "CDM", CP1, "CN", "CDM-2307-ningxia-wind"),
    ("mitsui-co", UnitType.CER, 40_000, "CDM", CP1, "CN", "CDM-1851-hubei-hydro"),
    ("natsource-japan", UnitType.CER, 30_000, "CDM", CP1, "CN", "CDM-1851-hubei-hydro"),
    ("tepco-01", UnitType.CER, 20_000, "CDM", CP1, "CN", "CDM-1851-hubei-hydro"),
    ("kansai-epco", UnitType.CER, 15_000, "CDM", CP1, "CN", "CDM-2307-ningxia-wind"),
    ("mitsubishi-corp", UnitType.JCR, 30_000, "JCDM", PERIOD, "JP", "JCDM-0112-boiler-fuel-switch"),
    ("marubeni", UnitType.JCR, 20_000, "JCDM", PERIOD, "JP", "JCDM-0087-heat-pump"),
    ("mitsui-co", UnitType.JCR, 20_000, "JCDM", PERIOD, "JP", "JCDM-0112-boiler-fuel-switch"),
    ("sumitomo-forestry", UnitType.JCR, 15_000, "JCDM", PERIOD, "JP", "JCDM-0140-wood-biomass"),
    ("natsource-japan", UnitType.JCR, 10_000, "JCDM", PERIOD, "JP", "JCDM-0087-heat-pump"),
)
# JVER sold forward by the project developer to trading houses (delivered before the session)
JVER_FORWARDS: Final = (("sumitomo-forestry", "mitsubishi-corp", 1_500),
                        ("sumitomo-forestry", "marubeni", 1_000), ("sumitomo-forestry", "kirin-brewery", 1_500))
CASH: Final = {  # yen deposited before the session
    "tepco-01": 900_000_000, "kansai-epco": 600_000_000, "chubu-epco": 400_000_000,
    "nippon-steel": 700_000_000, "jfe-steel": 30_000_000, "toyota-motor": 300_000_000,
    "asahi-glass": 20_000_000, "kirin-brewery": 25_000_000, "sumitomo-forestry": 10_000_000,
    "mitsubishi-corp": 800_000_000, "marubeni": 600_000_000, "mitsui-co": 500_000_000,
    "natsource-japan": 40_000_000, "nomura-sec": 30_000_000,
}
VOLUNTARY_OFFSET: Final = ("kirin-brewery", 1_000)  # J-VERs cancelled for a carbon-offset beer
BANKER: Final = "asahi-glass"  # carries its JPA left after the surrender into 2011
TOO_MANY_CREDITS: Final = "tepco-01"  # first asks to surrender CERs over the 10 % limit


# -- the market -----------------------------------------------------------------------


@dataclass(frozen=True)
class Instrument:
    """One listed instrument and how its order flow looks."""

    symbol: str
    unit: UnitType
    tick: int
    lot: int
    open_mid: int  # yen per t-CO2 at the open
    vol: float  # standard deviation of the mid's step, in yen
    half_spread: float  # typical distance of a passive quote from the mid, in ticks
    sizes: tuple[int, ...]  # typical order sizes, in t-CO2 (multiples of lot)
    weight: float  # share of the order flow
    target_depth: int  # open orders at which cancels run at their usual rate


INSTRUMENTS: Final = (
    Instrument("JPA-2010", UnitType.JPA, 1, 1, 1_380, 2.5, 3.0,
               (100, 200, 300, 500, 500, 1_000, 1_000, 2_000, 3_000, 5_000), 0.38, 50),
    Instrument("CER-CP1", UnitType.CER, 1, 100, 1_520, 2.5, 3.5,
               (100, 200, 500, 500, 1_000, 1_000, 2_000, 5_000, 10_000), 0.29, 45),
    Instrument("JVER-FOREST", UnitType.JVER, 10, 1, 12_800, 20.0, 2.5,
               (5, 10, 10, 20, 30, 50, 50, 100, 200), 0.15, 30),
    Instrument("JCR-2010", UnitType.JCR, 1, 1, 2_650, 3.5, 4.0,
               (50, 100, 100, 200, 300, 500, 1_000), 0.18, 35),
)
BY_SYMBOL: Final = {i.symbol: i for i in INSTRUMENTS}


@dataclass(frozen=True)
class Account:
    """A registry account: how often it trades, which way it leans, how it trades."""

    name: str
    kind: str  # "target" (JVETS target holder), "house" (trading house), "broker", "seller"
    activity: float
    buy_bias: dict[str, float]  # probability of buying, per symbol (absent: does not trade it)
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_INCOMING


def _bias(*buy: float | None) -> dict[str, float]:
    """Buy probabilities for JPA-2010, CER-CP1, JVER-FOREST and JCR-2010 (None: not traded)."""
    pairs = zip(BY_SYMBOL, buy, strict=True)
    return {symbol: p for symbol, p in pairs if p is not None}


ACCOUNTS: Final = (
    Account("tepco-01", "target", 1.4, _bias(0.70, 0.72, 0.60, 0.70)),
    Account("kansai-epco", "target", 1.0, _bias(0.66, 0.70, None, 0.65)),
    Account("chubu-epco", "target", 0.8, _bias(0.64, 0.68, None, 0.62)),
    Account("nippon-steel", "target", 1.2, _bias(0.68, 0.66, None, 0.60)),
    Account("jfe-steel", "target", 0.8, _bias(0.62, 0.64, None, 0.58)),
    Account("toyota-motor", "target", 0.9, _bias(0.58, 0.60, 0.75, 0.64)),
    Account("asahi-glass", "target", 0.6, _bias(0.30, 0.45, None, 0.50)),
    Account("kirin-brewery", "target", 0.5, _bias(0.35, None, 0.70, 0.55)),
    Account("sumitomo-forestry", "seller", 0.6, _bias(None, None, 0.12, 0.30)),
    Account("mitsubishi-corp", "house", 1.6, _bias(0.48, 0.45, 0.50, 0.48),
            SelfTradePrevention.CANCEL_RESTING),
    Account("marubeni", "house", 1.3, _bias(0.50, 0.44, 0.45, 0.50),
            SelfTradePrevention.CANCEL_BOTH),
    Account("mitsui-co", "house", 1.1, _bias(0.50, 0.46, 0.48, 0.46)),
    Account("natsource-japan", "broker", 1.0, _bias(0.50, 0.50, 0.50, 0.50)),
    Account("nomura-sec", "broker", 0.7, _bias(0.52, 0.50, None, 0.50),
            SelfTradePrevention.CANCEL_RESTING),
)
QUOTERS: Final = tuple(a for a in ACCOUNTS if a.kind in ("house", "broker"))
ACCOUNT_BY_NAME: Final = {a.name: a for a in ACCOUNTS}
assert set(TARGETS) == {a.name for a in ACCOUNTS if a.kind == "target"}
assert set(CASH) == set(ACCOUNT_BY_NAME)


# -- encoding -------------------------------------------------------------------------

_KEY_ORDER: Final = ("id", "account", "symbol", "side", "price", "qty", "cap", "order_type", "tif",
                     "post_only", "stp", "unit", "tick", "lot", "currency")


def to_record(cmd: Command) -> dict[str, Any]:
    """The order-log object of ``cmd``: ``type`` and ``ts`` first. A trading command has the
    contract's fields in the contract's order, those at their default left out (a limit order
    has no ``cap``), except an instrument's ``tick`` and ``lot``; a registry command has its
    fields in declaration order, those at their default left out, sets as sorted lists."""
    record: dict[str, Any] = {"type": cmd.__struct_config__.tag}
    if cmd.ts is not None:
        record["ts"] = cmd.ts
    fields = msgspec.structs.fields(cmd)
    values = {f.name: (getattr(cmd, f.name), f.default if f.default_factory is msgspec.NODEFAULT
                       else f.default_factory()) for f in fields}
    if isinstance(cmd, RegistryCommand):
        for f in fields:
            value, default = values[f.name]
            if f.name != "ts" and value != default:
                record[f.name] = sorted(value) if isinstance(value, frozenset) else value
        return record
    keep = ("tick", "lot") if isinstance(cmd, ListInstrument) else ()
    for key in _KEY_ORDER:
        if key in values:
            value, default = values[key]
            if value != default or key in keep:
                record[key] = value
    return record


def encode(record: dict[str, Any]) -> bytes:
    return msgspec.json.encode(record)


# -- the generator ----------------------------------------------------------------------


def _ns(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1) * 1_000


def _at(day: tuple[int, int, int], hour: int, minute: int = 0) -> int:
    return _ns(datetime(*day, hour, minute, tzinfo=JST))


def timestamps(rng: random.Random, n: int) -> list[int]:
    """``n`` strictly increasing times in the two sessions, busier near each open and close."""
    spans = []
    for h0, m0, h1, m1 in SESSIONS:
        start = datetime(*DAY, h0, m0, tzinfo=JST)
        end = datetime(*DAY, h1, m1, tzinfo=JST)
        spans.append((_ns(start), _ns(end) - _ns(start)))
    raw = sorted(
        spans[s][0] + int(rng.betavariate(0.8, 0.8) * spans[s][1])
        for s in (rng.randrange(2) for _ in range(n))
    )
    out: list[int] = []
    for t in raw:
        out.append(max(t, out[-1] + 1) if out else t)
    return out


@dataclass
class Resting:
    """What the generator remembers of an order it entered and may later cancel or modify."""

    id: int
    account: Account
    side: Side
    price: int


class Session:
    """Builds the log line by line, applying each line to a live venue (on a memory registry),
    decoded exactly as ``carbonbook replay`` decodes it."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.engine = Venue(MemoryRegistry())
        self.registry: Registry = self.engine.registry
        self.lines: list[bytes] = []
        self.kinds: list[str] = []  # "ok" or the name of the bad line
        self.mid = {i.symbol: float(i.open_mid) for i in INSTRUMENTS}
        self.open: dict[str, list[Resting]] = {i.symbol: [] for i in INSTRUMENTS}
        self.done: list[int] = []  # accepted ids that have left the book
        self.next_id = FIRST_ID
        self.clock: list[int] = []  # the times of the trading lines
        self.first_trading_line = 0
        self.capless = False  # has the broker's market buy without a cap been sent

    # -- plumbing ------------------------------------------------------------------

    def ts(self) -> int:
        return self.clock[len(self.lines) - self.first_trading_line]

    def apply_line(self, line: bytes) -> list[Event]:
        """Apply one log line as replay does: decoded, or an Undecodable (blank: nothing)."""
        try:
            cmd = json_decoder.decode(line)
        except DecodeFailure as exc:
            if not line.strip():
                return []
            oid, detail = describe_fault(line, exc, False)
            return self.engine.apply(Undecodable(len(self.lines), detail, oid))
        return self.engine.apply(cmd)

    def emit(self, cmd: Command, extra: dict[str, Any] | None = None) -> list[Event]:
        record = to_record(cmd)
        if extra:
            record.update(extra)
        self.lines.append(encode(record))
        self.kinds.append("ok")
        events = self.apply_line(self.lines[-1])
        if isinstance(cmd, NewOrder) and isinstance(events[0], Accepted):
            state = self.engine.order(cmd.id)
            if state is not None and state.status == "open":
                assert cmd.price is not None
                self.open[cmd.symbol].append(
                    Resting(cmd.id, ACCOUNT_BY_NAME[cmd.account], cmd.side, cmd.price))
            else:
                self.done.append(cmd.id)
        return events

    def record(self, cmd: RegistryCommand, expect: str = "") -> str:
        """Emit a registry command; assert its outcome (``expect``: the refusal's reason)."""
        (event,) = self.emit(cmd)  # type: ignore[arg-type]
        if expect:
            assert isinstance(event, Rejected) and event.reason == expect, (cmd, event)
            return event.detail
        assert isinstance(event, Recorded), (cmd, event)
        return event.detail

    def emit_bad(self, kind: str, record: dict[str, Any] | bytes) -> None:
        """A line meant to be refused: raw bytes, or an object."""
        line = record if isinstance(record, bytes) else encode(record)
        self.lines.append(line)
        self.kinds.append(kind)
        events = self.apply_line(line)
        assert not events or isinstance(events[0], Rejected), (kind, events)

    def new_id(self) -> int:
        oid = self.next_id
        self.next_id += 1
        return oid

    def live(self, symbol: str) -> list[Resting]:
        """The generator's open orders on ``symbol`` (pruned of those filled or cancelled)."""
        kept: list[Resting] = []
        for r in self.open[symbol]:
            state = self.engine.order(r.id)
            if state is not None and state.status == "open":
                assert state.price is not None
                r.price = state.price
                kept.append(r)
            else:
                self.done.append(r.id)
        self.open[symbol] = kept
        return kept

    def price(self, inst: Instrument, value: float) -> int:
        return max(inst.tick, round(value / inst.tick) * inst.tick)

    def size(self, inst: Instrument, scale: float = 1.0) -> int:
        rng = self.rng
        if rng.random() < 0.2:  # an odd size, still a whole number of lots
            base = rng.choice(inst.sizes)
            qty = rng.randint(1, max(1, base * 2 // inst.lot)) * inst.lot
        else:
            qty = rng.choice(inst.sizes)
        return max(inst.lot, int(qty * scale) // inst.lot * inst.lot)

    def backed(self, acct: Account, inst: Instrument, side: Side, qty: int, price: int) -> int | None:
        """The quantity to send: ``qty`` when the account can back it; when it cannot, usually
        what it can back (None: not even a lot), and now and then (:data:`OVERREACH`) ``qty``
        all the same, for the venue to refuse."""
        if side is SELL:
            can = self.registry.available(acct.name, inst.unit)
        else:
            can = self.registry.available_cash(acct.name, YEN) // price
        can = can // inst.lot * inst.lot
        if qty <= can:
            return qty
        if self.rng.random() < OVERREACH:
            return qty
        return can if can >= inst.lot else None

    def pick_instrument(self) -> Instrument:
        return self.rng.choices(INSTRUMENTS, weights=[i.weight for i in INSTRUMENTS])[0]

    def pick_account(self, symbol: str, pool: tuple[Account, ...] = ACCOUNTS) -> Account:
        cands = [a for a in pool if symbol in a.buy_bias]
        return self.rng.choices(cands, weights=[a.activity for a in cands])[0]

    def pick_side(self, account: Account, symbol: str) -> Side:
        return BUY if self.rng.random() < account.buy_bias[symbol] else SELL

    def drift(self, inst: Instrument) -> None:
        """Move the mid: a random walk with a slight upward drift, pulled toward the book's own
        mid and, weakly, toward the opening price."""
        mid = self.mid[inst.symbol]
        pull = 0.0008 * (inst.open_mid - mid)
        bid, ask = self.engine.best_bid(inst.symbol), self.engine.best_ask(inst.symbol)
        if bid is not None and ask is not None:  # quotes follow the book as much as the news
            pull += 0.1 * ((bid + ask) / 2 - mid)
        self.mid[inst.symbol] = mid + pull + self.rng.gauss(0.05 * inst.vol, inst.vol)

    def taker(self, inst: Instrument, pool: tuple[Account, ...] = ACCOUNTS) -> tuple[Account, Side]:
        """An account and side for an order that takes liquidity. A trader does not usually
        hit their own quote, so an account with an order near the other touch is passed over
        (self-trades come from :meth:`self_cross` and the odd slip)."""
        for _ in range(4):
            acct = self.pick_account(inst.symbol, pool)
            side = self.pick_side(acct, inst.symbol)
            opp = self.best(inst.symbol, _other(side))
            if opp is None or not any(
                r.account is acct and r.side is not side and abs(r.price - opp) <= 5 * inst.tick
                for r in self.open[inst.symbol]
            ):
                break
        return acct, side

    def best(self, symbol: str, side: Side) -> int | None:
        return self.engine.best_bid(symbol) if side is BUY else self.engine.best_ask(symbol)

    # -- setup and true-up ------------------------------------------------------------

    def setup(self) -> None:
        """Schemes, caps, accounts, allocation, forward deliveries, credits and cash (FY2010)."""
        t = iter(range(_at(SETUP_DAY, 9), _at(SETUP_DAY, 18), 60_000_000_000))  # a minute apart
        r = self.record
        r(OpenScheme(name="JVETS", allowances=frozenset({UnitType.JPA}),
                     credits=frozenset({UnitType.JVER, UnitType.CER}), offset_percent=OFFSET_PERCENT,
                     ts=next(t)))
        r(OpenScheme(name="CDM", allowances=frozenset({UnitType.CER}), ts=next(t)))
        r(OpenScheme(name="J-VER", allowances=frozenset({UnitType.JVER}), ts=next(t)))
        r(OpenScheme(name="JCDM", allowances=frozenset({UnitType.JCR}), ts=next(t)))
        for scheme, cap in CAPS.items():
            r(SetCap(scheme=scheme, period=CP1 if scheme == "CDM" else PERIOD, cap=cap, ts=next(t)))
        r(OpenAccount(account=ISSUANCE, kind="issuance", units=frozenset({UnitType.JPA}), ts=next(t)))
        r(OpenAccount(account=RETIREMENT, kind="retirement", ts=next(t)))
        r(OpenAccount(account=CANCELLATION, kind="cancellation", ts=next(t)))
        for a in ACCOUNTS:
            r(OpenAccount(account=a.name, scheme="JVETS" if a.name in TARGETS else None, ts=next(t)))
        total = sum(x.allocation for x in TARGETS.values())
        r(Issue(account=ISSUANCE, unit=UnitType.JPA, qty=total, scheme="JVETS", period=PERIOD,
                ts=next(t)))
        for name, target in TARGETS.items():
            r(Transfer(sender=ISSUANCE, receiver=name, unit=UnitType.JPA, qty=target.allocation,
                       ts=next(t)))
        for sender, receiver, qty in FORWARDS:
            r(Transfer(sender=sender, receiver=receiver, unit=UnitType.JPA, qty=qty, ts=next(t)))
        for account, unit, qty, scheme, period, origin, project in CREDITS:
            r(Issue(account=account, unit=unit, qty=qty, scheme=scheme, period=period, origin=origin,
                    project=project, ts=next(t)))
        for sender, receiver, qty in JVER_FORWARDS:
            r(Transfer(sender=sender, receiver=receiver, unit=UnitType.JVER, qty=qty, ts=next(t)))
        for account, amount in CASH.items():
            r(Deposit(account=account, currency=YEN, amount=amount, ts=next(t)))

    def true_up_plan(self) -> list[tuple[RegistryCommand, str]]:
        """The true-up's commands, from what the accounts hold now, each with the refusal it
        meets ("" for none): verified emissions, then per target holder credits within the
        offset limit (CER, then J-VER) and JPA for the rest of the obligation, as far as its
        free units go; a voluntary J-VER offset; banking."""
        reg = self.registry
        plan: list[tuple[RegistryCommand, str]] = [
            (RecordEmissions(account=name, period=PERIOD, tonnes=target.verified), "")
            for name, target in TARGETS.items()]
        for name, target in TARGETS.items():
            jpa = min(reg.available(name, UnitType.JPA), target.verified)
            if jpa > 0:
                plan.append((Surrender(account=name, period=PERIOD, unit=UnitType.JPA, qty=jpa,
                                       to=RETIREMENT), ""))
            limit = target.verified * OFFSET_PERCENT // 100
            used = 0
            for unit in (UnitType.CER, UnitType.JVER):
                qty = min(reg.available(name, unit), limit - used, target.verified - jpa - used)
                if name == TOO_MANY_CREDITS and unit is UnitType.CER:  # asks for 12 %: refused
                    plan.append((Surrender(account=name, period=PERIOD, unit=unit, qty=limit * 12 // 10,
                                           to=RETIREMENT), "offset_limit"))
                if qty > 0:
                    plan.append((Surrender(account=name, period=PERIOD, unit=unit, qty=qty, to=RETIREMENT), ""))
                    used += qty
        who, qty = VOLUNTARY_OFFSET
        plan.append((Retire(account=who, unit=UnitType.JVER, qty=qty, to=CANCELLATION), ""))
        plan.append((CarryOver(account=BANKER, unit=UnitType.JPA, period=PERIOD), ""))
        return plan

    def true_up(self) -> None:
        """Emit the true-up (2011), a minute apart."""
        t = iter(range(_at(TRUE_UP_DAY, 9), _at(TRUE_UP_DAY, 18), 60_000_000_000))
        for cmd, expect in self.true_up_plan():
            self.record(msgspec.structs.replace(cmd, ts=next(t)), expect)

    # -- order flow ------------------------------------------------------------------

    def order(self, acct: Account, inst: Instrument, side: Side, qty: int, price: int,
              **kw: Any) -> None:
        """Emit a limit order for what the account can back (or an over-reach)."""
        sent = self.backed(acct, inst, side, qty, price)
        if sent is None:
            return
        extra = kw.pop("extra", None)
        self.emit(NewOrder(self.new_id(), acct.name, inst.symbol, side, sent, price=price,
                           ts=self.ts(), **kw), extra)

    def passive(self, inst: Instrument) -> None:
        """A GTC limit near the mid; one in seven leans across it and may trade at once."""
        rng = self.rng
        acct = self.pick_account(inst.symbol)
        side = self.pick_side(acct, inst.symbol)
        if rng.random() < 1 / 7:
            offset = -rng.uniform(0.0, 2.5 * inst.half_spread)
        else:
            offset = rng.expovariate(1 / inst.half_spread)
        sign = -1 if side is BUY else 1
        px = self.price(inst, self.mid[inst.symbol] + sign * offset * inst.tick)
        opp = self.best(inst.symbol, _other(side))
        if opp is not None and sign * (opp - px) >= 0 and any(  # it crosses: not into my own order
            r.account is acct and r.side is not side and sign * (r.price - px) >= 0
            for r in self.open[inst.symbol]
        ):
            px = opp + sign * inst.tick
        extra = {"desk": "tokyo-env"} if acct.kind == "house" and rng.random() < 0.03 else None
        self.order(acct, inst, side, self.size(inst), px, stp=acct.stp, extra=extra)

    def quote(self, inst: Instrument) -> None:
        """A trading house or broker posts a post-only bid or offer at or inside the touch;
        one in twelve is priced through the other side by a stale screen and is rejected."""
        rng = self.rng
        acct = self.pick_account(inst.symbol, QUOTERS)
        side = self.pick_side(acct, inst.symbol)
        mid = self.mid[inst.symbol]
        own, opp = self.best(inst.symbol, side), self.best(inst.symbol, _other(side))
        sign = 1 if side is BUY else -1
        if opp is not None and rng.random() < 1 / 12:
            px = opp + sign * inst.tick * rng.randint(0, 2)
        elif own is not None and rng.random() < 0.6:
            px = own + sign * inst.tick * rng.randint(0, 1)
            if opp is not None and sign * (px - opp) >= 0:
                px = own
        else:
            away = 1 + rng.expovariate(1 / inst.half_spread)
            px = self.price(inst, mid - sign * inst.tick * away)
            if opp is not None and sign * (px - opp) >= 0:
                px = opp - sign * inst.tick
        px = max(px, inst.tick)
        self.order(acct, inst, side, self.size(inst), px, post_only=True, stp=acct.stp)

    def take(self, inst: Instrument, tif: TimeInForce) -> None:
        """An IOC or FOK limit at or around the opposite touch."""
        rng = self.rng
        acct, side = self.taker(inst)
        opp = self.best(inst.symbol, _other(side))
        sign = 1 if side is BUY else -1
        ref = opp if opp is not None else self.price(inst, self.mid[inst.symbol])
        px = max(inst.tick, ref + sign * inst.tick * rng.randint(-1, 4))
        scale = 2.0 if tif is FOK and rng.random() < 0.3 else 1.0
        self.order(acct, inst, side, self.size(inst, scale), px, tif=tif, stp=acct.stp)

    def market(self, inst: Instrument) -> None:
        """A market order, usually small; now and then an FOK or IOC market order, and now
        and then one larger than the whole other side, whose remainder is cancelled. A market
        buy states a cap: 3 % over the best offer (or the mid) for the whole quantity, cut to
        the account's free cash. The first market buy of ``nomura-sec`` forgets it."""
        rng = self.rng
        acct, side = self.taker(inst, tuple(a for a in ACCOUNTS if a.kind != "house"))
        tif = rng.choice((TimeInForce.GTC,) * 6 + (IOC, FOK))
        qty = self.size(inst, 0.5)
        if rng.random() < 0.06:
            depth = self.engine.depth(inst.symbol, 10_000)
            qty += sum(lvl.qty for lvl in (depth.asks if side is BUY else depth.bids))
        cap: int | None = None
        if side is SELL:
            sent = self.backed(acct, inst, side, qty, 0)
            if sent is None:
                return
            qty = sent
        elif acct.name == "nomura-sec" and not self.capless:
            self.capless = True  # refused: a market buy must state a cap
        else:
            ref = self.best(inst.symbol, SELL) or self.price(inst, self.mid[inst.symbol])
            cap = qty * ref * 103 // 100
            free = self.registry.available_cash(acct.name, YEN)
            if cap > free and rng.random() >= OVERREACH:
                cap = free
                if cap < ref * inst.lot:
                    return
        self.emit(NewOrder(self.new_id(), acct.name, inst.symbol, side, qty, cap=cap,
                           order_type=MARKET, tif=tif, stp=acct.stp, ts=self.ts()))

    def self_cross(self, inst: Instrument) -> bool:
        """An account with an order at the touch sends an order that crosses it, with each of
        the three self-trade policies in turn."""
        rng = self.rng
        touch = [r for r in self.live(inst.symbol) if r.price == self.best(inst.symbol, r.side)]
        if not touch:
            return False
        own = rng.choice(touch)
        side = _other(own.side)
        stp = rng.choice(tuple(SelfTradePrevention))
        sign = 1 if side is BUY else -1
        tif = rng.choice((TimeInForce.GTC, IOC))
        self.order(own.account, inst, side, self.size(inst),
                   own.price + sign * inst.tick * rng.randint(0, 2), tif=tif, stp=stp)
        return True

    def stale(self, inst: Instrument) -> Resting | None:
        """An open order, most likely one far from the mid (the one a trader would tidy)."""
        rng = self.rng
        live = self.live(inst.symbol)
        if not live:
            return None
        sample = rng.sample(live, min(len(live), 4))
        if rng.random() < 0.7:
            mid = self.mid[inst.symbol]
            return max(sample, key=lambda r: (abs(r.price - mid), r.id))
        return sample[0]

    def cancel(self, inst: Instrument) -> bool:
        order = self.stale(inst)
        if order is None:
            return False
        self.emit(CancelOrder(order.id, ts=self.ts()))
        return True

    def modify(self, inst: Instrument) -> bool:
        """Cut the open qty (keeps priority), re-price toward the mid, raise the qty, or
        re-price through the other side (trades, or post_only for a post-only quote). A modify
        that needs a bigger hold than the account has free is usually not sent."""
        rng = self.rng
        order = self.stale(inst)
        if order is None:
            return False
        state = self.engine.order(order.id)
        assert state is not None and state.qty is not None
        qty = state.qty
        sign = 1 if order.side is BUY else -1
        roll = rng.random()
        new_px: int | None = None
        new_qty: int | None = None
        if roll < 0.40 and qty > inst.lot:
            new_qty = max(inst.lot, qty // 2 // inst.lot * inst.lot)
        elif roll < 0.75:
            away = rng.expovariate(1 / inst.half_spread)
            new_px = self.price(inst, self.mid[inst.symbol] - sign * inst.tick * away)
            if new_px == order.price:
                new_px += -sign * inst.tick
            if rng.random() < 0.3:
                new_qty = self.size(inst)
        elif roll < 0.85:
            new_qty = qty + self.size(inst)
        else:
            opp = self.best(inst.symbol, _other(order.side))
            if opp is None:
                return False
            new_px = max(inst.tick, opp + sign * inst.tick * rng.randint(0, 2))
        px, q = new_px or order.price, new_qty or qty
        if order.side is BUY:
            more = px * q - order.price * qty
            free = self.registry.available_cash(order.account.name, YEN)
        else:
            more = q - qty
            free = self.registry.available(order.account.name, inst.unit)
        if more > free and rng.random() >= OVERREACH:
            return False
        self.emit(ModifyOrder(order.id, price=new_px, qty=new_qty, ts=self.ts()))
        return True

    # -- bad lines -------------------------------------------------------------------

    def bad(self, kind: str) -> None:
        """One of the bad lines (see :data:`BAD_LINES`)."""
        ts = self.ts()
        acct = self.rng.choice(ACCOUNTS).name
        good: dict[str, Any] = {"type": "new", "ts": ts, "id": self.new_id(), "account": acct,
                                "symbol": "JPA-2010", "side": "buy", "price": 1_380, "qty": 500}
        BAD_LINES[kind](self, good, ts)


def _other(side: Side) -> Side:
    return SELL if side is BUY else BUY


def _with(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = dict(record)
    for key, value in changes.items():
        if value is _DROP:
            del out[key]
        else:
            out[key] = value
    return out


_DROP: Final = object()

BadLine = Callable[[Session, dict[str, Any], int], None]

BAD_LINES: Final[dict[str, BadLine]] = {
    # undecodable: rejected as malformed with their line number
    "garbage": lambda s, g, ts: s.emit_bad("garbage", b"ORDER BUY JPA-2010 500 @ 1380 tepco-01"),
    "truncated": lambda s, g, ts: s.emit_bad("truncated", encode(g)[:37]),
    "blank": lambda s, g, ts: s.emit_bad("blank", b""),
    "array": lambda s, g, ts: s.emit_bad(
        "array", msgspec.json.encode([g["type"], g["id"], g["symbol"], g["side"], g["price"]])),
    "scalar": lambda s, g, ts: s.emit_bad("scalar", msgspec.json.encode("cancel 1000042")),
    "unknown_type": lambda s, g, ts: s.emit_bad(
        "unknown_type", {"type": "quote", "ts": ts, "symbol": "JPA-2010", "bid": 1_370,
                         "ask": 1_390}),
    "type_not_string": lambda s, g, ts: s.emit_bad("type_not_string", _with(g, type=1)),
    "float_price": lambda s, g, ts: s.emit_bad("float_price", _with(g, price=1_381.5)),
    "float_integral_qty": lambda s, g, ts: s.emit_bad("float_integral_qty", _with(g, qty=500.0)),
    "string_qty": lambda s, g, ts: s.emit_bad("string_qty", _with(g, qty="500")),
    "bool_price": lambda s, g, ts: s.emit_bad("bool_price", _with(g, price=True)),
    "string_post_only": lambda s, g, ts: s.emit_bad("string_post_only", _with(g, post_only="yes")),
    "huge_id": lambda s, g, ts: s.emit_bad("huge_id", _with(g, id=2**64 + 7)),
    "id_2_63": lambda s, g, ts: s.emit_bad("id_2_63", {"type": "cancel", "ts": ts, "id": 2**63}),
    "huge_qty": lambda s, g, ts: s.emit_bad("huge_qty", _with(g, qty=10**20)),
    "negative_id": lambda s, g, ts: s.emit_bad("negative_id", _with(g, id=-5)),
    "missing_side": lambda s, g, ts: s.emit_bad("missing_side", _with(g, side=_DROP)),
    "missing_id": lambda s, g, ts: s.emit_bad("missing_id", {"type": "cancel", "ts": ts}),
    "bad_side": lambda s, g, ts: s.emit_bad("bad_side", _with(g, side="short")),
    "bad_tif": lambda s, g, ts: s.emit_bad("bad_tif", _with(g, tif="day")),
    "empty_account": lambda s, g, ts: s.emit_bad("empty_account", _with(g, account="")),
    "unknown_unit": lambda s, g, ts: s.emit_bad(
        "unknown_unit", {"type": "instrument", "ts": ts, "symbol": "VER-GOLD", "unit": "VER",
                         "tick": 1, "lot": 1}),
    "float_emissions": lambda s, g, ts: s.emit_bad(
        "float_emissions", {"type": "emissions", "ts": ts, "account": "tepco-01", "period": 2010,
                            "tonnes": 397_020.5}),
    "deposit_no_currency": lambda s, g, ts: s.emit_bad(
        "deposit_no_currency", {"type": "deposit", "ts": ts, "account": "marubeni",
                                "amount": 50_000_000}),
    # decodable, refused by the engine
    "unknown_symbol": lambda s, g, ts: s.emit_bad(
        "unknown_symbol", _with(g, symbol="EUA-2010", price=1_650)),
    "off_tick": lambda s, g, ts: s.emit_bad(
        "off_tick", _with(g, symbol="JVER-FOREST", price=12_805, qty=20)),
    "non_lot": lambda s, g, ts: s.emit_bad(
        "non_lot", _with(g, symbol="CER-CP1", price=1_520, qty=250)),
    "zero_qty": lambda s, g, ts: s.emit_bad("zero_qty", _with(g, qty=0)),
    "negative_price": lambda s, g, ts: s.emit_bad("negative_price", _with(g, price=-1_380)),
    "market_with_price": lambda s, g, ts: s.emit_bad(
        "market_with_price", _with(g, order_type="market")),
    "post_only_ioc": lambda s, g, ts: s.emit_bad(
        "post_only_ioc", _with(g, post_only=True, tif="ioc")),
    "cap_on_limit": lambda s, g, ts: s.emit_bad("cap_on_limit", _with(g, cap=700_000)),
    "duplicate_id": lambda s, g, ts: s.emit_bad(
        "duplicate_id", _with(g, id=s.rng.choice(s.done))),
    "duplicate_symbol": lambda s, g, ts: s.emit_bad(
        "duplicate_symbol", {"type": "instrument", "ts": ts, "symbol": "JPA-2010", "unit": "JPA",
                             "tick": 1, "lot": 1}),
    "cancel_unknown": lambda s, g, ts: s.emit_bad(
        "cancel_unknown", {"type": "cancel", "ts": ts, "id": 999_999}),
    "cancel_done": lambda s, g, ts: s.emit_bad(
        "cancel_done", {"type": "cancel", "ts": ts, "id": s.rng.choice(s.done)}),
    "modify_unknown": lambda s, g, ts: s.emit_bad(
        "modify_unknown", {"type": "modify", "ts": ts, "id": 42, "qty": 100}),
    "modify_nothing": lambda s, g, ts: s.emit_bad(
        "modify_nothing", {"type": "modify", "ts": ts, "id": s.rng.choice(s.done)}),
    # decodable registry commands the registry refuses (without a registry: no_registry)
    "issue_over_cap": lambda s, g, ts: s.emit_bad(
        "issue_over_cap", {"type": "issue", "ts": ts, "account": ISSUANCE, "unit": "JPA",
                           "qty": 1_000_000, "scheme": "JVETS", "period": 2010}),
    "jver_without_project": lambda s, g, ts: s.emit_bad(
        "jver_without_project", {"type": "issue", "ts": ts, "account": "sumitomo-forestry",
                                 "unit": "JVER", "qty": 500, "scheme": "J-VER", "period": 2010}),
    "transfer_unknown_account": lambda s, g, ts: s.emit_bad(
        "transfer_unknown_account", {"type": "transfer", "ts": ts, "sender": "mitsui-co",
                                     "receiver": "mitsui-co-ltd", "unit": "CER", "qty": 1_000}),
    "transfer_to_self": lambda s, g, ts: s.emit_bad(
        "transfer_to_self", {"type": "transfer", "ts": ts, "sender": "marubeni",
                             "receiver": "marubeni", "unit": "JPA", "qty": 100}),
    "surrender_to_holding": lambda s, g, ts: s.emit_bad(
        "surrender_to_holding", {"type": "surrender", "ts": ts, "account": "nippon-steel",
                                 "period": 2010, "unit": "JPA", "qty": 1_000, "to": "marubeni"}),
    "transfer_out_of_retirement": lambda s, g, ts: s.emit_bad(
        "transfer_out_of_retirement", {"type": "transfer", "ts": ts, "sender": RETIREMENT,
                                       "receiver": "marubeni", "unit": "JPA", "qty": 100}),
}
REGISTRY_BAD: Final = {  # the registry's refusal code of each bad registry command
    "issue_over_cap": "cap_exceeded", "jver_without_project": "refused",
    "transfer_unknown_account": "unknown_account", "transfer_to_self": "same_account",
    "surrender_to_holding": "unit_not_allowed", "transfer_out_of_retirement": "terminal_units",
}


def generate(seed: int = SEED, n_lines: int = N_LINES) -> tuple[list[bytes], list[str]]:
    """The log's lines (without newlines) and, for each, ``"ok"`` or the name of its bad kind.

    The trading runs until the true-up it leaves (see :meth:`Session.true_up_plan`) fills
    the log to ``n_lines`` lines."""
    s = Session(seed)
    rng = s.rng
    s.setup()
    s.first_trading_line = first = len(s.lines)
    s.clock = timestamps(rng, n_lines - first - 2 * len(TARGETS))  # the true-up takes more
    listing = _ns(datetime(*DAY, *LISTING_TIME, tzinfo=JST))
    s.clock[: len(INSTRUMENTS) + 1] = [listing + k * 1_000_000 for k in range(len(INSTRUMENTS) + 1)]
    for inst in INSTRUMENTS:
        s.emit(ListInstrument(inst.symbol, inst.unit, inst.tick, inst.lot, currency=YEN, ts=s.ts()))
    s.record(BusinessDay(day=1, ts=s.ts()))
    kinds = list(BAD_LINES)
    rng.shuffle(kinds)
    at = dict(zip(sorted(rng.sample(range(first + 150, n_lines - 60), len(kinds))), kinds, strict=True))

    actions: list[tuple[str, float]] = [
        ("passive", 44), ("quote", 10), ("ioc", 6), ("fok", 3), ("market", 3), ("self", 1.0),
        ("cancel", 18), ("modify", 12),
    ]
    while len(s.lines) + 1 + len(s.true_up_plan()) < n_lines:
        if len(s.lines) in at:
            s.bad(at[len(s.lines)])
            continue
        inst = s.pick_instrument()
        s.drift(inst)
        # traders tidy a deep book and leave a thin one alone
        fill = min(3.0, max(0.1, len(s.live(inst.symbol)) / inst.target_depth))
        weights = [w * (fill if name == "cancel" else 1) for name, w in actions]
        action = rng.choices([name for name, _ in actions], weights=weights)[0]
        if action == "passive" or len(s.lines) < first + 40:
            s.passive(inst)
        elif action == "quote":
            s.quote(inst)
        elif action in ("ioc", "fok"):
            s.take(inst, IOC if action == "ioc" else FOK)
        elif action == "market":
            s.market(inst)
        elif action == "self":
            if not s.self_cross(inst):
                s.passive(inst)
        elif action == "cancel":
            if not s.cancel(inst):
                s.passive(inst)
        elif not s.modify(inst):
            s.passive(inst)
    assert not set(at) - set(range(len(s.lines))), "every bad line was placed"
    s.record(BusinessDay(day=6, ts=_at((2010, 10, 8), 9)))  # Friday 8 October: T+5 of the session
    s.true_up()
    s.engine.check()
    s.registry.check()
    assert len(s.lines) == n_lines, len(s.lines)
    return s.lines, s.kinds


# -- the check --------------------------------------------------------------------------

EVENT_DECODER: Final = msgspec.json.Decoder(Event)


def replay(data: bytes, registry: Registry | None = None) -> tuple[Engine, list[Event]]:
    """Replay a log as ``carbonbook replay`` does (into a venue on ``registry`` when given);
    return the engine and the events."""
    engine = Engine() if registry is None else Venue(registry)
    out: list[bytes] = []
    replay_log(io.BytesIO(data), engine, out.append)
    engine.check()
    return engine, [EVENT_DECODER.decode(line) for line in b"".join(out).splitlines()]


def _counts(events: list[Event]) -> list[str]:
    by_type = Counter(_tag(e) for e in events)
    out = ["events: " + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items()))]
    for name, cls in (("rejected", Rejected), ("cancelled", Cancelled)):
        c = Counter(str(e.reason) for e in events if isinstance(e, cls))
        out.append(f"  {name} by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    return out


def summarize(data: bytes, kinds: list[str] | None = None) -> str:
    lines = data.split(b"\n")[:-1]
    undecodable = 0
    for n, line in enumerate(lines, 1):
        try:
            json_decoder.decode(line)
            decodes = True
        except DecodeFailure:
            decodes = False
            undecodable += 1
        if kinds is not None:  # every good line decodes, and each bad line as intended
            kind = kinds[n - 1]
            assert decodes == (kind == "ok" or kind in _DECODABLE_BAD), f"line {n} ({kind})"
    expected = len(BAD_LINES) - len(_DECODABLE_BAD)
    assert undecodable == expected, f"{undecodable} lines do not decode, expected {expected}"
    registry = MemoryRegistry()
    engine, events = replay(data, registry)
    registry.check()
    trades = [e for e in events if isinstance(e, Trade)]
    settled = {e.trade_id for e in events if isinstance(e, TradeSettled)}
    assert settled == {t.seq for t in trades}, "every trade settles"
    out = [f"{len(data):,} bytes, {len(lines):,} lines, {undecodable} undecodable",
           "with a registry (carbonbook replay --registry ...):", *_counts(events)]
    commands = Counter(_command_kind(line) for line in lines)
    out.append("commands: " + ", ".join(f"{k} {v}" for k, v in sorted(commands.items())))
    for symbol in engine.symbols:
        ts = [t for t in trades if t.symbol == symbol]
        vol = sum(t.qty for t in ts)
        vwap = sum(t.qty * t.price for t in ts) / vol if vol else 0.0
        lo = min((t.price for t in ts), default=0)
        hi = max((t.price for t in ts), default=0)
        snap = engine.snapshot()[symbol]
        out.append(f"{symbol}: {len(ts)} trades, {vol:,} t, VWAP {vwap:,.1f}, range {lo:,}-{hi:,},"
                   f" {len(snap['bids'])} bids / {len(snap['asks'])} asks left")
    for name in TARGETS:
        c = registry.compliance(name, PERIOD)
        out.append(f"{name}: verified {c.verified:,}, surrendered {c.surrendered:,} "
                   f"(credits {c.offsets:,}), shortfall {c.shortfall:,}: status {c.status}")
    _, plain = replay(data)
    out += ["without a registry (carbonbook replay):", *_counts(plain)]
    return "\n".join(out)


_DECODABLE_BAD: Final = frozenset({
    "unknown_symbol", "off_tick", "non_lot", "zero_qty", "negative_price", "market_with_price",
    "post_only_ioc", "cap_on_limit", "duplicate_id", "duplicate_symbol", "cancel_unknown", "cancel_done",
    "modify_unknown", "modify_nothing", *REGISTRY_BAD,
})


def _tag(obj: msgspec.Struct) -> str:
    return str(obj.__struct_config__.tag)


def _command_kind(line: bytes) -> str:
    try:
        cmd = json_decoder.decode(line)
    except DecodeFailure:
        return "undecodable"
    if isinstance(cmd, NewOrder):
        if cmd.post_only:
            return "new post_only"
        if cmd.order_type is MARKET:
            return "new market"
        return f"new {cmd.tif}"
    return _tag(cmd)


def render(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the log")
    parser.add_argument("--check", action="store_true",
                        help="only check that the existing log is what this script writes")
    args = parser.parse_args(argv)
    lines, kinds = generate()
    data = render(lines)
    if args.check:
        if args.out.read_bytes() != data:
            print(f"{args.out} differs from what {Path(__file__).name} writes", file=sys.stderr)
            return 1
    else:
        args.out.write_bytes(data)
    print(summarize(data, kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
