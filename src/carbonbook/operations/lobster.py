"""Import LOBSTER data (NASDAQ order flow, https://lobsterdata.com) as a carbonbook order log.

A LOBSTER sample is a *message* file (``Time,Type,OrderID,Size,Price,Direction``, one
event per line) and an *orderbook* file whose row ``k`` is the top ``L`` price levels
(``AskPrice1,AskSize1,BidPrice1,BidSize1,...``) after message ``k``. :func:`convert`
turns them into commands so that replaying the commands through an
:class:`~carbonbook.core.engine.Engine` gives, after every message, the top levels of the
orderbook file.

Mapping
    The log starts with an ``instrument`` (tick 1 and lot 1, so every LOBSTER price and
    size is accepted as given; prices stay in USD * 10,000, sizes in shares). Its unit
    is :data:`DEFAULT_UNIT` (EUA) unless told otherwise: the engine's units are carbon
    units and none is an equity, so the unit is only a label here.

    ====  ==========================  ==========================================================
    type  LOBSTER                     order log
    ====  ==========================  ==========================================================
    1     new limit order             ``new`` GTC limit order with the LOBSTER id, account
                                      ``lobster-<id>``
    2     partial cancellation        ``modify`` to the lower open quantity (keeps priority)
    3     deletion                    ``cancel`` (or a ``modify`` down, see *Identities*)
    4     visible execution           an IOC limit order of ``size`` on the other side at the
                                      resting order's price, from account ``lobster-taker``,
                                      with a fresh id at or above :data:`TAKER_BASE`
    5     hidden execution            nothing (the visible book does not change)
    6     cross trade                 nothing
    7     trading halt / quote /      nothing, counted: LOBSTER's row for it repeats the previous
          resume                      book, and the log's ``phase halted`` would refuse the new
                                      orders and modifies LOBSTER reports during a halt
    ====  ==========================  ==========================================================

    Every resting order has an account of its own, so self-trade prevention never
    applies; the taker account never rests (its orders are IOC). ``ts`` is nanoseconds
    since the epoch: ``midnight`` (the trading day's New York midnight, see
    :func:`midnight_ns`) plus LOBSTER's seconds after midnight, parsed from the decimal
    text without floats (LOBSTER sometimes prints digits beyond nanoseconds, float noise
    such as ``43002.632812672004``; they are rounded to the nearest nanosecond).

The visible window
    LOBSTER's message file holds only the messages inside the requested levels: no
    message of the AMZN sample lies beyond the previous row's 5th level on its side. So
    the book beyond the window is never described, neither what rests there when the
    file starts nor what is added, cancelled or reduced there later; it shows only when
    its levels come into the top ``L`` (for example when the best level empties and the
    6th becomes the 5th). With the orderbook file, the importer therefore *synchronises
    levels as they enter the window*: after each message's own commands, every price
    level inside the row's window that was outside the previous row's window (all of
    them before the first message) and whose size differs from the row gets synthetic
    commands: a ``new`` GTC order for a missing quantity (id at or above
    :data:`SYNTHETIC_BASE`, account ``lobster-<id>``), or a ``modify``/``cancel`` of
    resting orders for a quantity that is no longer there. Levels that were already
    visible are never touched, so every change to them must follow from the messages;
    when one does not, it is counted as ``unexplained`` and left for the verification to
    find. The orders resting before the file starts are the first case of this: they are
    seeded from the first row, with the first message's own change taken out.

Identities
    The messages name LOBSTER orders; the engine matches price-time. Inside one price
    level the importer treats the quantity as exchangeable: the level totals are what the
    orderbook file checks, and the synchronised levels have only made-up orders whose
    place in the queue LOBSTER does not tell. An execution's IOC order takes the head of
    the engine's queue at that price, which is usually the LOBSTER order but can be an
    older order (a seeded or synchronised one). So the importer keeps the engine's queues
    (:class:`_Side`) and, for every LOBSTER order, the open quantity LOBSTER gives it. A
    reduction of ``size`` on order X at price P is taken from the engine's order X as far
    as it has it, then from orders at P that hold more than LOBSTER's figure for them
    (made-up orders hold only such quantity), then from orders at P never named again in
    the file, then from any order at P. Messages naming an id never submitted in the
    file (an order that was beyond the window when it arrived) are handled the same way
    without an own order. These choices change which ids the events name, never a
    level's total. :attr:`LobsterImport.stats` counts how often each case happens.
"""

from __future__ import annotations

import gzip
import re
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple
from zoneinfo import ZoneInfo

import msgspec

from carbonbook._types import Side, TimeInForce, UnitType
from carbonbook.commands import CancelOrder, Command, ListInstrument, ModifyOrder, NewOrder

DEFAULT_UNIT = UnitType.EUA
"""The unit of an imported instrument: any unit would be a stand-in for shares; EUA is the most traded."""
SYNTHETIC_BASE = 10**15
"""The first id of a resting order the importer makes up (seeded or synchronised); LOBSTER ids
(NASDAQ's order reference numbers of one day, below 10**9 in the sample) must be lower."""
TAKER_BASE = 2 * 10**15
"""The first id of the IOC orders that play a LOBSTER execution's aggressor."""
TAKER_ACCOUNT = "lobster-taker"
"""The account of every IOC order that plays an execution's aggressor; it never rests."""
DUMMY_ASK = 9999999999
DUMMY_BID = -9999999999
"""LOBSTER's prices of the empty levels of a side with fewer levels than requested (size 0)."""
EXCHANGE_TZ = "America/New_York"
"""LOBSTER times are seconds after midnight, NASDAQ time."""

_NAME = re.compile(r"(?P<ticker>[^_/\\]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_"
                   r"(?:message|orderbook)_\d+\.csv(?:\.gz)?")
_SCALE: list[int] = [10 ** (9 - places) for places in range(10)]
_BEYOND = -(1 << 64)  # a window limit below every key: the whole side is visible
_EXECUTION = 4


class LobsterFormatError(ValueError):
    """A LOBSTER file that cannot be read as one; the message names the file and line."""


class Message(NamedTuple):
    """One line of a LOBSTER message file; ``ts`` in nanoseconds after midnight."""

    ts: int
    type: int
    id: int
    size: int
    price: int
    direction: int


@dataclass
class LobsterImport:
    """The commands for a LOBSTER message file, grouped by message.

    ``commands[:ends[k]]`` is the instrument, the seeded orders and the commands of
    messages ``0..k`` (each message's synchronisation included): after applying them, the
    engine's book should show the orderbook file's row ``k``.
    """

    commands: list[Command]
    ends: list[int]
    stats: Counter[str] = field(default_factory=Counter)


# -- reading ------------------------------------------------------------------------


def _read(path: str | Path) -> bytes:
    """A file's bytes, gunzipped when they are gzip's, with the trailing line ends dropped."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.rstrip()


def _as_json(data: bytes) -> bytes:
    """CSV rows of numbers as one JSON array of arrays, which msgspec decodes in C."""
    return b"[[" + data.replace(b"\n", b"],[") + b"]]"


def _blame(path: str | Path, data: bytes, kind: str, check: Callable[[str], object]) -> LobsterFormatError:
    """The error for the first line of ``data`` that ``check`` refuses."""
    for n, line in enumerate(data.decode("ascii", "replace").splitlines(), 1):
        try:
            check(line)
        except ValueError as exc:
            return LobsterFormatError(f"{path}:{n}: not a LOBSTER {kind} ({exc}): {line[:80]!r}")
    return LobsterFormatError(f"{path}: not a LOBSTER {kind} file")


def parse_time(text: str) -> int:
    """LOBSTER's decimal seconds as integer nanoseconds, exactly; digits beyond nanoseconds are
    rounded to the nearest (half up).

    >>> parse_time("34200.18960767"), parse_time("43002.632812672004"), parse_time("57600")
    (34200189607670, 43002632812672, 57600000000000)
    """
    whole, dot, frac = text.partition(".")
    digits = whole + frac
    if not (whole and (frac or not dot) and digits.isdecimal() and digits.isascii()):
        raise ValueError(f"bad time {text!r}")
    places = len(frac)
    if places <= 9:
        return int(digits) * _SCALE[places]
    unit: int = 10 ** (places - 9)
    ns, rest = divmod(int(digits), unit)
    return ns + (2 * rest >= unit)


def _message_line(line: str) -> Message:
    t, kind, oid, size, price, direction = line.split(",")
    return Message(parse_time(t.strip()), int(kind), int(oid), int(size), int(price), int(direction))


_MESSAGES = msgspec.json.Decoder(list[tuple[Any, int, int, int, int, int]], float_hook=str)
_ROWS = msgspec.json.Decoder(list[list[int]])


def read_messages(path: str | Path) -> list[Message]:
    """Read a LOBSTER message file (.csv, or gzip-compressed)."""
    data = _read(path)
    if not data:
        return []
    try:
        times, *columns = zip(*_MESSAGES.decode(_as_json(data)), strict=True)
        ts = [parse_time(t if t.__class__ is str else str(t)) for t in times]
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        raise _blame(path, data, "message", _message_line) from None
    return list(map(Message, ts, *columns))


def _row_line(line: str) -> None:
    if len(line.split(",")) % 4:
        raise ValueError("not 4 columns per level")
    for x in line.split(","):
        int(x)


def read_orderbook(path: str | Path) -> list[list[int]]:
    """Read a LOBSTER orderbook file (.csv, or gzip-compressed) as rows of integers, 4 per level."""
    data = _read(path)
    if not data:
        return []
    try:
        rows = _ROWS.decode(_as_json(data))
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise _blame(path, data, "orderbook row", _row_line) from None
    width = len(rows[0])
    if not width or width % 4:
        raise LobsterFormatError(f"{path}:1: {width} columns, not 4 per level")
    for n, row in enumerate(rows, 1):
        if len(row) != width:
            raise LobsterFormatError(f"{path}:{n}: {len(row)} columns, the first row has {width}")
    return rows


class FileName(NamedTuple):
    """What a LOBSTER file name tells: ``TICKER_YYYY-MM-DD_START_END_{message,orderbook}_LEVELS.csv``."""

    ticker: str
    day: date


def parse_name(path: str | Path) -> FileName | None:
    """The ticker and trading day in a LOBSTER file name, or None when the name is not LOBSTER's."""
    m = _NAME.fullmatch(Path(path).name)
    if m is None:
        return None
    try:
        return FileName(m["ticker"], date.fromisoformat(m["date"]))
    except ValueError:
        return None


def midnight_ns(day: date) -> int:
    """Nanoseconds since the epoch at the start of ``day`` in New York (NASDAQ's clock)."""
    start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(EXCHANGE_TZ))
    return int(start.timestamp()) * 1_000_000_000


# -- the importer's copy of the engine's book ------------------------------------------


class _Side:
    """One side of the book as the engine will hold it: FIFO queues of ``{order id: open qty}``
    per price (dicts keep insertion order; lowering a quantity keeps the place), level totals,
    and the keys ``sign * price`` sorted with the best last, as in :mod:`carbonbook.core.book`."""

    __slots__ = ("keys", "queues", "sign", "totals")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.queues: dict[int, dict[int, int]] = {}
        self.totals: dict[int, int] = {}
        self.keys: list[int] = []

    def add(self, price: int, oid: int, qty: int) -> None:
        queue = self.queues.get(price)
        if queue is None:
            queue = self.queues[price] = {}
            self.totals[price] = 0
            insort(self.keys, self.sign * price)
        queue[oid] = qty
        self.totals[price] += qty

    def take(self, price: int, oid: int, qty: int) -> int:
        """Lower an order by ``qty``; return its new open quantity (0: it left the book)."""
        queue = self.queues[price]
        left = queue[oid] - qty
        if left:
            queue[oid] = left
        else:
            del queue[oid]
        total = self.totals[price] - qty
        if total:
            self.totals[price] = total
        else:
            del self.queues[price], self.totals[price]
            key = self.sign * price
            keys = self.keys
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect_left(keys, key)]
        return left

    def shows(self, row: Sequence[int], offset: int, levels: int) -> bool:
        """Are the top ``levels`` of this side those of the orderbook ``row`` (side at ``offset``)?"""
        top = self.keys[:-levels - 1:-1]
        prices = top if self.sign == 1 else [-key for key in top]
        sizes = list(map(self.totals.__getitem__, prices))
        if len(prices) < levels:
            prices = prices + [DUMMY_BID if self.sign == 1 else DUMMY_ASK] * (levels - len(prices))
            sizes += [0] * (levels - len(sizes))
        return row[offset::4] == prices and row[offset + 1::4] == sizes

    def visible(self, limit: int) -> list[int]:
        """The prices of the levels whose key is at least ``limit``, best first."""
        keys, sign = self.keys, self.sign
        out = []
        for i in range(len(keys) - 1, -1, -1):
            if keys[i] < limit:
                break
            out.append(sign * keys[i])
        return out


def _window(row: Sequence[int], offset: int, levels: int, sign: int) -> tuple[dict[int, int], int]:
    """A row's levels of one side (``{price: size}``) and the window's limit key: the key of its
    last level, or :data:`_BEYOND` when the side shows fewer levels than requested."""
    shown: dict[int, int] = {}
    last = 0
    for i in range(offset, 4 * levels, 4):
        size = row[i + 1]
        if size:
            last = row[i]
            shown[last] = size
    return shown, (sign * last if len(shown) == levels else _BEYOND)


class _Converter:
    """The state of one import; see the module docstring for the rules."""

    def __init__(self, messages: Sequence[Message], symbol: str, midnight: int) -> None:
        self.messages = messages
        self.symbol = symbol
        self.midnight = midnight
        self.bids = _Side(1)
        self.asks = _Side(-1)
        self.side_of: dict[int, bool] = {}  # resting order id -> is a bid
        self.price_of: dict[int, int] = {}  # resting order id -> price
        self.lobster_qty: dict[int, int] = {}  # engine id of a LOBSTER order -> its open qty by LOBSTER
        self.alias: dict[int, int] = {}  # LOBSTER id -> engine id, for a LOBSTER id used twice
        self.used: set[int] = set()  # LOBSTER ids submitted so far
        self.last_ref: dict[int, int] = {}
        for k, m in enumerate(messages):
            if m.id >= SYNTHETIC_BASE or m.id < 0:
                raise LobsterFormatError(f"message {k + 1}: order id {m.id} outside 0..{SYNTHETIC_BASE - 1}")
            self.last_ref[m.id] = k
        self.next_synthetic = SYNTHETIC_BASE
        self.next_taker = TAKER_BASE
        self.out: list[Command] = []
        self.stats: Counter[str] = Counter()
        self.k = 0  # the message being converted
        self.crossed = False  # did an order of this message cross the book?
        self.ts = 0

    # -- commands (each one also applied to the copy of the book) --

    def rest(self, oid: int, is_bid: bool, price: int, qty: int) -> None:
        """A GTC limit order; it trades first if it crosses (which a book in step never does)."""
        self.out.append(NewOrder(oid, f"lobster-{oid}", self.symbol, Side.BUY if is_bid else Side.SELL,
                                 qty, price, ts=self.ts))
        own, opp = (self.bids, self.asks) if is_bid else (self.asks, self.bids)
        if opp.keys and opp.keys[-1] >= opp.sign * price:
            self.stats["new order crossed the book"] += 1
            self.crossed = True
            qty = self._match(opp, opp.sign * price, qty)
        if qty:
            own.add(price, oid, qty)
            self.side_of[oid] = is_bid
            self.price_of[oid] = price

    def reduce(self, oid: int, qty: int) -> None:
        """Lower resting order ``oid`` by ``qty`` with a ``modify``, or ``cancel`` it all."""
        is_bid = self.side_of[oid]
        price = self.price_of[oid]
        left = (self.bids if is_bid else self.asks).take(price, oid, qty)
        if left:
            self.out.append(ModifyOrder(oid, qty=left, ts=self.ts))
        else:
            self.out.append(CancelOrder(oid, ts=self.ts))
            del self.side_of[oid], self.price_of[oid]

    def execute(self, resting_is_bid: bool, price: int, qty: int) -> list[int]:
        """An IOC order against the resting side at ``price``; return the engine ids it trades with."""
        oid = self.next_taker
        self.next_taker += 1
        self.out.append(NewOrder(oid, TAKER_ACCOUNT, self.symbol,
                                 Side.SELL if resting_is_bid else Side.BUY, qty, price,
                                 tif=TimeInForce.IOC, ts=self.ts))
        opp = self.bids if resting_is_bid else self.asks
        makers: list[int] = []
        if self._match(opp, opp.sign * price, qty, makers):
            self.stats["execution larger than the book"] += 1
        return makers

    def _match(self, opp: _Side, limit: int, qty: int, makers: list[int] | None = None) -> int:
        """Price-time matching on the copy, as the engine does it; return the unfilled quantity."""
        while qty and opp.keys and opp.keys[-1] >= limit:
            price = opp.sign * opp.keys[-1]
            queue = opp.queues[price]
            maker = next(iter(queue))
            fill = min(qty, queue[maker])
            if makers is not None:
                makers.append(maker)
            if not opp.take(price, maker, fill):
                del self.side_of[maker], self.price_of[maker]
            qty -= fill
        return qty

    # -- messages --

    def synthetic(self, is_bid: bool, price: int, qty: int) -> None:
        oid = self.next_synthetic
        self.next_synthetic += 1
        self.rest(oid, is_bid, price, qty)

    def lower_level(self, lobster_id: int | None, is_bid: bool, price: int, qty: int) -> None:
        """Take ``qty`` off the level at ``price`` for LOBSTER order ``lobster_id`` (None: an
        order not in the file), in the order the module docstring gives."""
        side = self.bids if is_bid else self.asks
        queue = side.queues.get(price)
        if queue is None:
            self.stats["reduction at a price with no orders"] += 1
            return
        own = None if lobster_id is None else self.alias.get(lobster_id, lobster_id)
        if own is not None and queue.get(own, 0) >= qty:  # the usual case
            self.reduce(own, qty)
            return
        left = dict(queue)  # what each order still has to give
        plan: dict[int, int] = {}

        def give(oid: int, most: int) -> None:
            nonlocal qty
            part = min(qty, most, left[oid])
            if part > 0:
                plan[oid] = plan.get(oid, 0) + part
                left[oid] -= part
                qty -= part

        if own is not None and own in left:
            give(own, qty)
        if qty:
            if own is not None:
                self.stats["reduction of a LOBSTER order taken from other orders at its price"] += 1
            lobster_qty = self.lobster_qty
            for oid, open_qty in queue.items():  # quantity beyond LOBSTER's figure, oldest first
                give(oid, open_qty - lobster_qty.get(oid, 0))
            later, k = self.last_ref, self.k
            for oid in sorted(queue, key=lambda o: later.get(o, -1) > k):  # never named again first
                give(oid, qty)
            if qty:
                self.stats["reduction larger than its level"] += 1
        for oid, part in plan.items():
            self.reduce(oid, part)

    def message(self, m: Message) -> None:
        kind = m.type
        if 1 <= kind <= 4 and not (m.direction in (1, -1) and m.size > 0 and m.price > 0):
            raise LobsterFormatError(f"message {self.k + 1}: type {kind} needs a direction of 1 or -1 "
                                     f"and a positive size and price: {tuple(m)}")
        if kind == 1:
            oid = m.id
            if oid in self.used:  # a LOBSTER id seen twice: the engine needs a fresh one
                self.stats["LOBSTER id used twice"] += 1
                self.alias[oid] = self.next_synthetic
                self.next_synthetic += 1
                oid = self.alias[oid]
            self.used.add(m.id)
            self.lobster_qty[oid] = m.size
            self.rest(oid, m.direction == 1, m.price, m.size)
        elif kind in (2, 3, 4):
            is_bid = m.direction == 1
            own = self.alias.get(m.id, m.id) if m.id in self.used else None
            if own is None:
                self.stats["reference to an order not in the file"] += 1
            if kind == _EXECUTION:
                makers = self.execute(is_bid, m.price, m.size)
                if own is not None:
                    self.stats["execution traded with the LOBSTER order" if makers == [own] else
                               "execution traded with another order at its price"] += 1
            else:
                self.lower_level(own, is_bid, m.price, m.size)
            if own is not None:
                left = self.lobster_qty.get(own, 0) - m.size
                if kind == 3 or left <= 0:
                    self.lobster_qty.pop(own, None)
                else:
                    self.lobster_qty[own] = left
        elif kind == 7:
            self.stats["trading halt messages skipped"] += 1
        elif kind not in (5, 6):
            raise LobsterFormatError(f"message {self.k + 1}: unknown type {kind}")

    # -- the window --

    def seed(self, m: Message, row: Sequence[int], levels: int) -> None:
        """Rest the orders the first row shows, less what the first message itself changed."""
        pre = {True: _window(row, 2, levels, 1)[0], False: _window(row, 0, levels, -1)[0]}
        if m.type in (1, 2, 3, 4) and m.direction in (1, -1):
            shown = pre[m.direction == 1]
            qty = shown.get(m.price, 0) + (-m.size if m.type == 1 else m.size)
            if qty > 0:
                shown[m.price] = qty
            else:
                shown.pop(m.price, None)
        for is_bid in (False, True):
            for price, qty in pre[is_bid].items():
                self.stats["seeded orders"] += 1
                self.synthetic(is_bid, price, qty)

    def sync(self, prev: Sequence[int], row: Sequence[int], levels: int, touched: int) -> None:
        """Bring the levels that entered the window into line with the row (module docstring).

        ``touched`` is the side the message changed (1 bids, -1 asks, 0 none); the other side
        is looked at only when its row changed or an order crossed.
        """
        for is_bid, side, offset in ((False, self.asks, 0), (True, self.bids, 2)):
            if side.sign != touched and not self.crossed and (
                    row[offset::4] == prev[offset::4] and row[offset + 1::4] == prev[offset + 1::4]):
                continue
            if side.shows(row, offset, levels):
                continue
            sign = side.sign
            shown, limit = _window(row, offset, levels, sign)
            before = _window(prev, offset, levels, sign)[1]
            totals = side.totals
            prices = side.visible(limit)
            for price in sorted(set(prices) | set(shown), key=lambda p: -sign * p):
                want, have = shown.get(price, 0), totals.get(price, 0)
                if want == have:
                    continue
                if sign * price >= before:
                    self.stats["unexplained level differences"] += 1
                elif want > have:
                    self.stats["window: orders added"] += 1
                    self.synthetic(is_bid, price, want - have)
                else:
                    self.stats["window: levels lowered"] += 1
                    self.lower_level(None, is_bid, price, have - want)

    def run(self, orderbook: Sequence[Sequence[int]] | None, unit: UnitType,
            window_sync: bool) -> LobsterImport:
        messages = self.messages
        if orderbook is not None and len(orderbook) != len(messages):
            raise LobsterFormatError(f"{len(messages)} messages but {len(orderbook)} orderbook rows")
        levels = len(orderbook[0]) // 4 if orderbook else 0
        self.ts = self.midnight + (messages[0].ts if messages else 0)
        self.out.append(ListInstrument(self.symbol, unit, 1, 1, ts=self.ts))
        ends: list[int] = []
        self.stats.update({f"type {kind}": n for kind, n in sorted(Counter(m.type for m in messages).items())})
        for k, m in enumerate(messages):
            self.k = k
            self.ts = self.midnight + m.ts
            if k == 0 and orderbook:
                self.seed(m, orderbook[0], levels)
            self.crossed = False
            self.message(m)
            if orderbook and window_sync:
                touched = m.direction if 1 <= m.type <= 4 else 0
                self.sync(orderbook[k - 1] if k else orderbook[0], orderbook[k], levels, touched)
            ends.append(len(self.out))
        return LobsterImport(self.out, ends, self.stats)


def convert(
    messages: Sequence[Message],
    orderbook: Sequence[Sequence[int]] | None = None,
    *,
    symbol: str = "AMZN",
    unit: UnitType = DEFAULT_UNIT,
    midnight: int = 0,
    window_sync: bool = True,
) -> LobsterImport:
    """The order-log commands for LOBSTER ``messages`` (and their ``orderbook`` rows).

    ``midnight`` is added to every time (nanoseconds; :func:`midnight_ns` gives the
    trading day's). Without ``orderbook`` nothing is seeded and messages about orders
    the file never submitted change nothing. ``window_sync=False`` seeds from the first
    row only and never synchronises later levels (to see what the window costs).
    """
    return _Converter(messages, symbol, midnight).run(orderbook, unit, window_sync)


# -- writing ---------------------------------------------------------------------------

_FIELDS: dict[type, tuple[tuple[str, object], ...]] = {}  # command class -> (name, default) per field


def compact(command: Command) -> dict[str, object]:
    """A command as the order log's object, leaving out the fields at their defaults."""
    cls = command.__class__
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = tuple(
            (f.encode_name, msgspec.NODEFAULT if f.required else f.default)
            for f in msgspec.structs.fields(cls))
    out: dict[str, object] = {"type": cls.__struct_config__.tag}
    for (name, default), value in zip(fields, msgspec.structs.astuple(command), strict=True):
        if value is not default and value != default:
            out[name] = value
    return out


def write_log(commands: Iterable[Command], out: BinaryIO, msgpack: bool = False) -> None:
    """Write ``commands`` as an order log: JSON Lines, or a stream of MessagePack maps."""
    encoder = msgspec.msgpack.Encoder() if msgpack else msgspec.json.Encoder()
    batch: list[dict[str, object]] = []
    for command in commands:
        batch.append(compact(command))
        if len(batch) == 65536:
            out.write(_encode(encoder, batch))
            batch.clear()
    out.write(_encode(encoder, batch))


def _encode(encoder: msgspec.json.Encoder | msgspec.msgpack.Encoder, batch: list[dict[str, object]]) -> bytes:
    if isinstance(encoder, msgspec.json.Encoder):
        return encoder.encode_lines(batch)
    return b"".join(encoder.encode(item) for item in batch)
