"""Generate ``examples/jvets-2010.jsonl``: one JVETS-style trading day as a carbonbook order log.

The session is an invented trading day, Friday 1 October 2010 (JST), in the style of
JVETS, Japan's voluntary emissions trading scheme. Four instruments are listed at 08:45,
then fourteen registry accounts trade through a morning (09:00-11:30) and an afternoon
(12:30-15:00) session:

* ``JPA-2010``    JVETS allowances of the 2010 vintage, yen per t-CO2, tick 1, lot 1
* ``CER-CP1``     Kyoto CERs for the first commitment period, tick 1, lot 100
* ``JVER-FOREST`` forest-absorption J-VER offset credits, tick 10, lot 1
* ``JCR-2010``    domestic credits (国内クレジット) of 2010, tick 1, lot 1

Target holders (utilities, steel, cars, glass, beer) mostly buy allowances and credits
to surrender (償却) against their targets, a forestry company sells J-VERs, and
trading houses and brokers quote both sides. The order flow mixes GTC limits around a drifting mid,
crossing limits, IOC, FOK and market orders, post-only quotes (some rejected for
crossing), self-trade prevention, cancels and modifies of orders that are really open
(the generator runs :class:`carbonbook.Engine` as it goes), and 35 bad lines, one of
each kind in :data:`BAD_LINES`, at seeded random positions.

Everything is drawn from one ``random.Random(SEED)``, so the output is byte-identical
on every run. Run from the repository root::

    .venv/bin/python examples/make_session.py            # writes and checks the log
    .venv/bin/python examples/make_session.py --check    # only checks the existing log
"""

from __future__ import annotations

import argparse
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
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
    UnitType,
)

SEED: Final = 20101001
N_LINES: Final = 4000
FIRST_ID: Final = 1_000_001
OUT: Final = Path(__file__).with_name("jvets-2010.jsonl")

JST: Final = timezone(timedelta(hours=9), "JST")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
DAY: Final = (2010, 10, 1)
SESSIONS: Final = ((9, 0, 11, 30), (12, 30, 15, 0))  # morning and afternoon, JST
LISTING_TIME: Final = (8, 45)

BUY, SELL = Side.BUY, Side.SELL
IOC, FOK = TimeInForce.IOC, TimeInForce.FOK
MARKET = OrderType.MARKET


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


# -- encoding -------------------------------------------------------------------------

_KEY_ORDER: Final = ("id", "account", "symbol", "side", "price", "qty", "order_type", "tif",
                     "post_only", "stp", "unit", "tick", "lot")


def to_record(cmd: Command) -> dict[str, Any]:
    """The order-log object of ``cmd``: ``type`` and ``ts`` first, then the contract's fields
    in the contract's order; fields at their default are left out (a market order has no
    ``price``), except an instrument's ``tick`` and ``lot``."""
    record: dict[str, Any] = {"type": cmd.__struct_config__.tag}
    if cmd.ts is not None:
        record["ts"] = cmd.ts
    keep = ("tick", "lot") if isinstance(cmd, ListInstrument) else ()
    values = {f.name: (getattr(cmd, f.name), f.default) for f in msgspec.structs.fields(cmd)}
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
    """Builds the log line by line, applying each command to a live engine."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.engine = Engine()
        self.lines: list[bytes] = []
        self.kinds: list[str] = []  # "ok" or the name of the bad line
        self.mid = {i.symbol: float(i.open_mid) for i in INSTRUMENTS}
        self.open: dict[str, list[Resting]] = {i.symbol: [] for i in INSTRUMENTS}
        self.done: list[int] = []  # accepted ids that have left the book
        self.next_id = FIRST_ID
        self.clock: list[int] = []

    # -- plumbing ------------------------------------------------------------------

    def ts(self) -> int:
        return self.clock[len(self.lines)]

    def emit(self, cmd: Command, extra: dict[str, Any] | None = None) -> list[Event]:
        record = to_record(cmd)
        if extra:
            record.update(extra)
        self.lines.append(encode(record))
        self.kinds.append("ok")
        events = self.engine.apply(cmd)
        if isinstance(cmd, NewOrder) and isinstance(events[0], Accepted):
            state = self.engine.order(cmd.id)
            if state is not None and state.status == "open":
                assert cmd.price is not None
                self.open[cmd.symbol].append(
                    Resting(cmd.id, ACCOUNT_BY_NAME[cmd.account], cmd.side, cmd.price))
            else:
                self.done.append(cmd.id)
        return events

    def emit_bad(self, kind: str, record: dict[str, Any] | bytes) -> None:
        """A line meant to be refused: raw bytes, or an object applied if it decodes."""
        line = record if isinstance(record, bytes) else encode(record)
        self.lines.append(line)
        self.kinds.append(kind)
        try:
            cmd = DECODER.decode(line)
        except msgspec.DecodeError:
            if line.strip():  # a blank line is counted but gives no event
                self.engine.reject(RejectReason.MALFORMED, kind, line=len(self.lines))
        else:
            events = self.engine.apply(cmd)
            assert isinstance(events[0], Rejected), (kind, events)

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

    # -- order flow ------------------------------------------------------------------

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
        self.emit(NewOrder(self.new_id(), acct.name, inst.symbol, side, self.size(inst), price=px,
                           stp=acct.stp, ts=self.ts()), extra)

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
        self.emit(NewOrder(self.new_id(), acct.name, inst.symbol, side, self.size(inst), price=px,
                           post_only=True, stp=acct.stp, ts=self.ts()))

    def take(self, inst: Instrument, tif: TimeInForce) -> None:
        """An IOC or FOK limit at or around the opposite touch."""
        rng = self.rng
        acct, side = self.taker(inst)
        opp = self.best(inst.symbol, _other(side))
        sign = 1 if side is BUY else -1
        ref = opp if opp is not None else self.price(inst, self.mid[inst.symbol])
        px = max(inst.tick, ref + sign * inst.tick * rng.randint(-1, 4))
        scale = 2.0 if tif is FOK and rng.random() < 0.3 else 1.0
        self.emit(NewOrder(self.new_id(), acct.name, inst.symbol, side, self.size(inst, scale),
                           price=px, tif=tif, stp=acct.stp, ts=self.ts()))

    def market(self, inst: Instrument) -> None:
        """A market order, usually small; now and then an FOK or IOC market order, and now
        and then one larger than the whole other side, whose remainder is cancelled."""
        rng = self.rng
        acct, side = self.taker(inst, tuple(a for a in ACCOUNTS if a.kind != "house"))
        tif = rng.choice((TimeInForce.GTC,) * 6 + (IOC, FOK))
        qty = self.size(inst, 0.5)
        if rng.random() < 0.06:
            depth = self.engine.depth(inst.symbol, 10_000)
            qty += sum(lvl.qty for lvl in (depth.asks if side is BUY else depth.bids))
        self.emit(NewOrder(self.new_id(), acct.name, inst.symbol, side, qty,
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
        self.emit(NewOrder(self.new_id(), own.account.name, inst.symbol, side, self.size(inst),
                           price=own.price + sign * inst.tick * rng.randint(0, 2), tif=tif,
                           stp=stp, ts=self.ts()))
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
        re-price through the other side (trades, or post_only for a post-only quote)."""
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
}


def generate(seed: int = SEED, n_lines: int = N_LINES) -> tuple[list[bytes], list[str]]:
    """The log's lines (without newlines) and, for each, ``"ok"`` or the name of its bad kind."""
    s = Session(seed)
    rng = s.rng
    s.clock = timestamps(rng, n_lines)
    listing = _ns(datetime(*DAY, *LISTING_TIME, tzinfo=JST))
    s.clock[: len(INSTRUMENTS)] = [listing + k * 1_000_000 for k in range(len(INSTRUMENTS))]
    for inst in INSTRUMENTS:
        s.emit(ListInstrument(inst.symbol, inst.unit, inst.tick, inst.lot, ts=s.ts()))
    kinds = list(BAD_LINES)
    rng.shuffle(kinds)
    at = dict(zip(sorted(rng.sample(range(150, n_lines - 5), len(kinds))), kinds, strict=True))

    actions: list[tuple[str, float]] = [
        ("passive", 44), ("quote", 10), ("ioc", 6), ("fok", 3), ("market", 3), ("self", 1.0),
        ("cancel", 18), ("modify", 12),
    ]
    while len(s.lines) < n_lines:
        if len(s.lines) in at:
            s.bad(at[len(s.lines)])
            continue
        inst = s.pick_instrument()
        s.drift(inst)
        # traders tidy a deep book and leave a thin one alone
        fill = min(3.0, max(0.1, len(s.live(inst.symbol)) / inst.target_depth))
        weights = [w * (fill if name == "cancel" else 1) for name, w in actions]
        action = rng.choices([name for name, _ in actions], weights=weights)[0]
        if action == "passive" or len(s.lines) < 40:
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
    s.engine.check()
    return s.lines, s.kinds


# -- the check --------------------------------------------------------------------------

DECODER: Final = msgspec.json.Decoder(Command)


def replay(data: bytes) -> tuple[Engine, list[Event], int]:
    """Replay a log as ``carbonbook replay`` does; return the engine, the events and the
    number of lines that did not decode (a blank line is counted but gives no event)."""
    engine = Engine()
    events: list[Event] = []
    undecodable = 0
    for n, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            cmd = DECODER.decode(line)
        except msgspec.DecodeError as exc:
            undecodable += 1
            if line.strip():
                events += engine.reject(RejectReason.MALFORMED, str(exc), line=n)
        else:
            events += engine.apply(cmd)
    engine.check()
    return engine, events, undecodable


def summarize(data: bytes, kinds: list[str] | None = None) -> str:
    engine, events, undecodable = replay(data)
    lines = data.split(b"\n")[:-1]
    expected = len(BAD_LINES) - len(_DECODABLE_BAD)
    assert undecodable == expected, f"{undecodable} lines do not decode, expected {expected}"
    if kinds is not None:  # every good line decodes, and each bad line as intended
        for n, (line, kind) in enumerate(zip(lines, kinds, strict=True), 1):
            try:
                DECODER.decode(line)
                decodes = True
            except msgspec.DecodeError:
                decodes = False
            assert decodes == (kind == "ok" or kind in _DECODABLE_BAD), f"line {n} ({kind})"
    by_type = Counter(_tag(e) for e in events)
    trades = [e for e in events if isinstance(e, Trade)]
    out = [f"{len(data):,} bytes, {len(lines):,} lines, {undecodable} undecodable"]
    out.append("events: " + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())))
    for name, cls in (("rejected", Rejected), ("cancelled", Cancelled)):
        c = Counter(str(e.reason) for e in events if isinstance(e, cls))
        out.append(f"{name} by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
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
    return "\n".join(out)


_DECODABLE_BAD: Final = frozenset({
    "unknown_symbol", "off_tick", "non_lot", "zero_qty", "negative_price", "market_with_price",
    "post_only_ioc", "duplicate_id", "duplicate_symbol", "cancel_unknown", "cancel_done",
    "modify_unknown", "modify_nothing",
})


def _tag(obj: msgspec.Struct) -> str:
    return str(obj.__struct_config__.tag)


def _command_kind(line: bytes) -> str:
    try:
        cmd = DECODER.decode(line)
    except msgspec.DecodeError:
        return "undecodable"
    if isinstance(cmd, NewOrder):
        if cmd.post_only:
            return "new post_only"
        if cmd.order_type is MARKET:
            return "new market"
        return f"new {cmd.tif}"
    return _tag(cmd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the log")
    parser.add_argument("--check", action="store_true", help="only check the existing log")
    args = parser.parse_args(argv)
    kinds: list[str] | None = None
    if not args.check:
        lines, kinds = generate()
        args.out.write_bytes(b"".join(line + b"\n" for line in lines))
    print(summarize(args.out.read_bytes(), kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
