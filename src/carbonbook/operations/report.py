"""Market reports from a replay's events: trades, OHLC, VWAP, spreads, rejections, plots.

:func:`build` reads an events file (JSON Lines, as ``carbonbook replay`` writes it) and
gives a :class:`Report` with, per instrument, the trade count, volume, notional (so
VWAP = notional / volume exactly, as a fraction; :func:`vwap_text` rounds it for
display), open, high, low and close.

The events do not carry the book (an ``accepted`` event names only the order and the
symbol), so the spread and the book at the end need the order log the events came
from: with ``log``, :func:`build` replays it through a fresh :class:`Engine` (or the
:class:`~carbonbook.venue.Venue` it is given, for a replay with a registry; replay is
deterministic), checks that the replay writes exactly the bytes of the events file
(or refuses with :class:`ReportError`, naming the first line that differs), and after
every command on an instrument that was not rejected, in continuous trading, samples that book's best bid
and ask. A book with both sides gives a spread sample (ask - bid); a one-sided or
empty book is counted apart. Calls are left out, as their books may be crossed.
With the log the rejections are also attributed to instruments (the command's
symbol, or the open order's for a cancel or modify); the rest (malformed lines,
unknown symbols or orders) are reported without an instrument. Trades then also get
the ``ts`` of their command when it has one, so plots can use time instead of ``seq``.

Everything is integers; only the display of VWAP and the mean spread rounds.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO

import msgspec

from carbonbook._types import Phase
from carbonbook.codec import jsonl_records
from carbonbook.commands import CancelOrder, Command, ModifyOrder, Undecodable
from carbonbook.core.engine import Engine
from carbonbook.events import RENAMED, Event, InstrumentListed, ReadableEvent, Rejected, Trade, current
from carbonbook.operations.replay import replay

if TYPE_CHECKING:
    from carbonbook.venue import Venue

_DECODER = msgspec.json.Decoder(ReadableEvent)
"""Events, also under the tags they had before their renaming (:data:`~carbonbook.events.RENAMED`)."""
NO_INSTRUMENT = "-"
"""The key of rejections that belong to no listed instrument."""


class ReportError(Exception):
    """Raised when an events file cannot be read as events, or does not match the log."""


@dataclass
class SpreadStats:
    """Spreads sampled after each book-changing command in continuous trading."""

    samples: int = 0
    """Samples with a bid and an ask."""
    one_sided: int = 0
    """Samples with a side (or both) empty."""
    total: int = 0
    low: int | None = None
    high: int | None = None
    last: int | None = None
    """The spread at the last sample (None when that book was one-sided)."""

    def add(self, bid: int | None, ask: int | None) -> None:
        """Record one sample of the best bid and ask."""
        if bid is None or ask is None:
            self.one_sided += 1
            self.last = None
            return
        spread = ask - bid
        self.samples += 1
        self.total += spread
        if self.low is None or spread < self.low:
            self.low = spread
        if self.high is None or spread > self.high:
            self.high = spread
        self.last = spread


@dataclass
class InstrumentReport:
    """One instrument's figures. Prices are the events' integers."""

    symbol: str
    trades: int = 0
    volume: int = 0
    notional: int = 0
    """Sum of price * qty over the trades."""
    open: int | None = None
    high: int | None = None
    low: int | None = None
    close: int | None = None
    spread: SpreadStats | None = None
    """Set when the book was rebuilt from the log."""
    rejections: Counter[str] = field(default_factory=Counter)
    """By reason; filled only when the book was rebuilt from the log."""
    trade_seq: list[int] = field(default_factory=list)
    trade_ts: list[int | None] = field(default_factory=list)
    trade_price: list[int] = field(default_factory=list)
    trade_qty: list[int] = field(default_factory=list)
    bids: list[tuple[int, int]] = field(default_factory=list)
    """The book at the end (price, quantity) per level, best first; only with the log."""
    asks: list[tuple[int, int]] = field(default_factory=list)

    def trade(self, event: Trade, ts: int | None) -> None:
        price, qty = event.price, event.qty
        if self.open is None:
            self.open = self.high = self.low = price
        elif price > self.high:  # type: ignore[operator]
            self.high = price
        elif price < self.low:  # type: ignore[operator]
            self.low = price
        self.close = price
        self.trades += 1
        self.volume += qty
        self.notional += price * qty
        self.trade_seq.append(event.seq)
        self.trade_ts.append(ts)
        self.trade_price.append(price)
        self.trade_qty.append(qty)


@dataclass
class Report:
    """What :func:`build` found."""

    events: int = 0
    instruments: dict[str, InstrumentReport] = field(default_factory=dict)
    rejections: Counter[str] = field(default_factory=Counter)
    """All rejections by reason."""
    unattributed: Counter[str] = field(default_factory=Counter)
    """With the log: rejections that name no listed instrument, by reason."""
    book: bool = False
    """Whether the book was rebuilt from the order log."""

    def instrument(self, symbol: str) -> InstrumentReport:
        found = self.instruments.get(symbol)
        if found is None:
            found = self.instruments[symbol] = InstrumentReport(symbol, spread=SpreadStats() if self.book
                                                                else None)
        return found

    def add(self, events: list[Event], ts: int | None = None) -> None:
        """Count events (``ts``: the time of the command that made them, when known)."""
        self.events += len(events)
        for e in events:
            cls = e.__class__
            if cls is Trade:
                self.instrument(e.symbol).trade(e, ts)  # type: ignore[union-attr, arg-type]
            elif cls is Rejected:
                self.rejections[e.reason] += 1  # type: ignore[union-attr]
            elif cls is InstrumentListed:
                self.instrument(e.symbol)  # type: ignore[union-attr]


def vwap_text(notional: int, volume: int, places: int = 2) -> str:
    """``notional / volume`` rounded half up to ``places`` decimals, by integer arithmetic.

    >>> vwap_text(165_100, 110)
    '1,500.91'
    >>> vwap_text(0, 0)
    '-'
    """
    if volume <= 0:
        return "-"
    return _decimal(notional, volume, places)


def _decimal(num: int, den: int, places: int) -> str:
    scale = 10**places
    scaled = (2 * num * scale + den) // (2 * den)  # round half up (num, den >= 0)
    whole, frac = divmod(scaled, scale)
    return f"{whole:,}.{frac:0{places}d}" if places else f"{whole:,}"


# -- building ------------------------------------------------------------------------


def read_events(source: BinaryIO) -> Iterator[tuple[list[Event], int]]:
    """The events of a JSON Lines file, a chunk of lines at a time (blank lines skipped), each
    chunk with the number of lines it came from. An event under a tag it had before its renaming
    is read as the event it is now."""
    line = 0
    decode = _DECODER.decode
    for batch in jsonl_records(source):
        events: list[Event] = []
        for record in batch:
            line += 1
            if not record.strip():
                continue
            try:
                event = decode(record)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ReportError(f"line {line} is not an event: {exc}") from None
            events.append(current(event) if event.__class__ in RENAMED else event)
        yield events, len(batch)


def build(events: BinaryIO, log: BinaryIO | None = None, msgpack: bool = False,
          depth: int = 50, engine: Engine | Venue | None = None,
          progress: Callable[[int, int], object] | None = None) -> Report:
    """The report of the events in ``events``; with ``log`` (the order log they came from)
    also spreads, per-instrument rejections and the book at the end (``depth`` levels).
    ``engine`` replays the log (default: a fresh :class:`Engine`; for events written with a
    registry, a :class:`~carbonbook.venue.Venue` set up as that replay was). ``progress``, for
    display only, is called after each batch with the records and bytes read so far (of the
    log when given, else of the events)."""
    if log is None:
        report = Report()
        lines = 0
        for batch, read in read_events(events):
            report.add(batch)
            lines += read
            if progress is not None:
                progress(lines, events.tell())
        return report
    report = Report(book=True)
    engine = Engine() if engine is None else engine
    replayed = hashlib.sha256()
    replay(log, _Sampler(engine, report), replayed.update, msgpack, progress)
    given = hashlib.sha256()
    while chunk := events.read(1 << 20):
        given.update(chunk)
    if given.digest() != replayed.digest():
        raise ReportError("the events file is not what the log replays to "
                          "(compare it with: carbonbook replay LOG, with the same --registry options)")
    for symbol in engine.symbols:
        r = report.instrument(symbol)
        d = engine.depth(symbol, depth)
        r.bids = [(level.price, level.qty) for level in d.bids]
        r.asks = [(level.price, level.qty) for level in d.asks]
    return report


class _Sampler:
    """Applies a batch to ``engine`` one command at a time and reports after each."""

    def __init__(self, engine: Engine | Venue, report: Report) -> None:
        self._engine = engine
        self._report = report

    def apply_all(self, commands: Iterable[Command | Undecodable], decoded: bool = False) -> list[Event]:
        out: list[Event] = []
        engine = self._engine
        apply, order, best_bid, best_ask, phase = (engine.apply, engine.order, engine.best_bid,
                                                   engine.best_ask, engine.phase)
        report = self._report
        add, listed, unattributed = report.add, report.instruments, report.unattributed
        continuous = Phase.CONTINUOUS
        for command in commands:
            cls = command.__class__
            if cls is CancelOrder or cls is ModifyOrder:
                oid = command.id  # type: ignore[union-attr]
                state = order(oid) if oid.__class__ is int else None
                symbol = state.symbol if state is not None else None
            else:
                symbol = getattr(command, "symbol", None)
            events = apply(command)  # one at a time (cheaper than apply_all of one, on both cores)
            add(events, getattr(command, "ts", None))
            r = listed.get(symbol) if symbol.__class__ is str else None
            if r is not None:
                first = events[0] if events else None
                if first.__class__ is Rejected:
                    r.rejections[first.reason] += 1
                elif r.spread is not None and phase(symbol) is continuous:  # type: ignore[arg-type]
                    r.spread.add(best_bid(symbol), best_ask(symbol))  # type: ignore[arg-type]
            else:
                for e in events:
                    if e.__class__ is Rejected:
                        unattributed[e.reason] += 1
            out += events
        return out


# -- output --------------------------------------------------------------------------


def _price(p: int | None) -> str:
    return "-" if p is None else f"{p:,}"


def format_text(report: Report) -> str:
    """The report as text, an instrument at a time, then rejections by reason."""
    lines = [f"{report.events:,} events, {len(report.instruments)} instruments"
             + ("; book rebuilt from the order log" if report.book else
                "; spreads and per-instrument rejections need --log")]
    for symbol, r in report.instruments.items():
        lines.append(symbol)
        lines.append(f"  trades       {r.trades:,}")
        lines.append(f"  volume       {r.volume:,}")
        lines.append(f"  vwap         {vwap_text(r.notional, r.volume)}"
                     + (f"  (notional {r.notional:,} / volume {r.volume:,})" if r.volume else ""))
        lines.append(f"  ohlc         {_price(r.open)} / {_price(r.high)} / {_price(r.low)} / "
                     f"{_price(r.close)}")
        s = r.spread
        if s is not None:
            if s.samples:
                mean = _decimal(s.total, s.samples, 2)
                lines.append(f"  spread       min {s.low:,}  mean {mean}  max {s.high:,}  "
                             f"last {_price(s.last)}  ({s.samples:,} two-sided samples, "
                             f"{s.one_sided:,} one-sided)")
            else:
                lines.append(f"  spread       -  (0 two-sided samples, {s.one_sided:,} one-sided)")
            bid = f"{r.bids[0][0]:,} x {r.bids[0][1]:,}" if r.bids else "-"
            ask = f"{r.asks[0][0]:,} x {r.asks[0][1]:,}" if r.asks else "-"
            lines.append(f"  book at end  bid {bid} / ask {ask}")
            lines.append("  rejections   " + _reasons(r.rejections))
    lines.append("rejections by reason: " + _reasons(report.rejections))
    if report.book:
        lines.append("  without an instrument: " + _reasons(report.unattributed))
    return "\n".join(lines)


def _reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items())) or "none"


PLOT_BUCKETS = 200
"""Time buckets across an instrument's trading in a plot: its prices and volumes are drawn per
bucket, so a plot of millions of trades stays readable (and quick to draw)."""


@dataclass
class Buckets:
    """An instrument's trades in equal buckets of ``width`` (nanoseconds of ``ts``, or ``seq``)
    from ``start``: per bucket the lowest, highest and last price and the volume (None and 0
    for a bucket without trades)."""

    start: int
    width: int
    by_ts: bool
    low: list[int | None]
    high: list[int | None]
    last: list[int | None]
    volume: list[int]


def buckets(r: InstrumentReport, n: int = PLOT_BUCKETS) -> Buckets | None:
    """``r``'s trades in at most ``n`` equal buckets of ``ts`` when every trade has one, else
    of ``seq``; None without trades.

    >>> r = InstrumentReport("A")
    >>> for seq, price, qty in ((10, 100, 5), (11, 102, 1), (40, 99, 2)):
    ...     r.trade(Trade(seq, "A", price, qty, 1, 2, 1, 2, "a", "b"), None)
    >>> b = buckets(r, 3)
    >>> (b.start, b.width, b.by_ts, b.low, b.high, b.last, b.volume)
    (10, 11, False, [100, None, 99], [102, None, 99], [102, None, 99], [6, 0, 2])
    """
    if not r.trades:
        return None
    by_ts = None not in r.trade_ts
    xs: list[int] = r.trade_ts if by_ts else r.trade_seq  # type: ignore[assignment]
    start = xs[0]
    width = -(-(xs[-1] - start + 1) // n)  # ceiling: the last trade falls in bucket n - 1 at most
    count = (xs[-1] - start) // width + 1
    low: list[int | None] = [None] * count
    high: list[int | None] = [None] * count
    last: list[int | None] = [None] * count
    volume = [0] * count
    for x, price, qty in zip(xs, r.trade_price, r.trade_qty, strict=True):
        i = (x - start) // width
        lo = low[i]
        if lo is None:
            low[i] = high[i] = price
        elif price < lo:
            low[i] = price
        elif price > high[i]:  # type: ignore[operator]
            high[i] = price
        last[i] = price
        volume[i] += qty
    return Buckets(start, width, by_ts, low, high, last, volume)


def plot(report: Report, path: str) -> None:
    """Draw each instrument's trade prices (the low-high range and the last price of each of
    :data:`PLOT_BUCKETS` time buckets) and volume per bucket (by ``ts`` when every trade has
    one, else by ``seq``) and, when the book was rebuilt, its depth at the end; write a PNG.

    Needs matplotlib (``pip install 'carbonbook[plot]'``); raises :class:`ReportError`
    without it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReportError("--plot needs matplotlib: pip install 'carbonbook[plot]'") from None
    rows = list(report.instruments.values()) or [InstrumentReport("(no instruments)")]
    fig, axes = plt.subplots(len(rows), 3, figsize=(15, 3.6 * len(rows)), squeeze=False)
    for (ax_price, ax_volume, ax_depth), r in zip(axes, rows, strict=True):
        ax_price.set_title(f"{r.symbol}: trade price (range and last per bucket)")
        b = buckets(r)
        if b is not None:
            scale = 1e9 if b.by_ts else 1.0
            xs = [i * b.width / scale for i in range(len(b.volume))]
            if b.by_ts:
                first = datetime.fromtimestamp(b.start // 10**9, UTC).isoformat(sep=" ")
                label, unit = f"seconds after {first} (ts)", f"{b.width / 1e9:,.3g} s"
            else:
                label, unit = f"seq after {b.start:,}", f"{b.width:,} seq"
            lows = [math.nan if p is None else p for p in b.low]
            highs = [math.nan if p is None else p for p in b.high]
            lasts = [math.nan if p is None else p for p in b.last]
            ax_price.fill_between(xs, lows, highs, step="post", color="tab:blue", alpha=0.25, linewidth=0)
            ax_price.step(xs, lasts, where="post", color="tab:blue")
            ax_price.set_xlabel(label)
            ax_volume.bar(xs, b.volume, width=b.width / scale, align="edge", color="tab:gray")
            ax_volume.set_xlabel(label)
            ax_volume.set_title(f"{r.symbol}: volume per {unit}")
        else:
            ax_volume.set_title(f"{r.symbol}: volume")
        _draw_depth(ax_depth, r, report.book)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _draw_depth(ax: object, r: InstrumentReport, book: bool) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    ax.set_title(f"{r.symbol}: depth at the end")
    if not book:
        ax.text(0.5, 0.5, "needs --log", ha="center", va="center", transform=ax.transAxes)
        return
    for levels, color, name in ((r.bids, "tab:green", "bids"), (r.asks, "tab:red", "asks")):
        if levels:
            prices = [p for p, _ in levels]
            cumulative = []
            total = 0
            for _, qty in levels:
                total += qty
                cumulative.append(total)
            ax.step(prices, cumulative, where="post", color=color, label=name)
    ax.set_xlabel("price")
    ax.set_ylabel("cumulative quantity")
    if r.bids or r.asks:
        ax.legend()
