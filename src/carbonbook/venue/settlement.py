"""Settlement: trades from the engine become delivery-versus-payment registry transactions.

:class:`SettlementAdapter` is an engine subscriber (``engine.subscribe(adapter)``). For each
:class:`~carbonbook.events.Trade` it moves ``qty`` units of the instrument's unit type
from the sell account to the buy account and ``price * qty`` minor units of the
instrument's currency from the buy account to the sell account, both legs in one
registry transaction (:meth:`Registry.settle <carbonbook.registry.base.Registry.settle>`).

- **Idempotent by trade id** (the Trade's ``seq``): the registry records each trade id's
  outcome once, so delivering the same trade again, or replaying a log into the same
  database, changes nothing and yields the recorded outcome again.
- **Immediate or deferred.** With ``lag=0`` trades settle as they arrive. With ``lag=N``
  a trade received on business day ``d`` (the adapter's ``day``, advanced only by
  :meth:`SettlementAdapter.settle_due`) is due on day ``d + N``: JPX's T+5 is ``lag=5``.
  Days are integers chosen by the caller; there are no clocks or calendars here.
- **Failures are records, never losses.** A trade that cannot settle (units or cash
  short, an account blocked, ...) yields a :class:`SettlementFailed` with the reason code and
  detail; the registry records it under the trade id and nothing moves.
- **Batches.** Up to ``batch`` trades settle per registry (database) transaction; a failed
  trade inside a batch is rolled back alone.

>>> from carbonbook import Engine, ListInstrument, NewOrder, Side, UnitType
>>> from carbonbook.registry import MemoryRegistry, Scheme
>>> reg = MemoryRegistry()
>>> _ = reg.create_scheme(Scheme("JVETS", frozenset({UnitType.JPA})))
>>> _ = reg.set_cap("JVETS", 2010, 1000)
>>> _ = reg.open_account("tepco"), reg.open_account("marubeni")
>>> _ = reg.issue("tepco", UnitType.JPA, 500, scheme="JVETS", period=2010)
>>> _ = reg.deposit("marubeni", "JPY", 1_000_000)
>>> adapter = SettlementAdapter(reg, {"JPA-2010": Instrument(UnitType.JPA, "JPY")})
>>> engine = Engine()
>>> engine.subscribe(adapter)
>>> _ = engine.apply(ListInstrument("JPA-2010", UnitType.JPA))
>>> _ = engine.apply(NewOrder(1, "tepco", "JPA-2010", Side.SELL, 500, price=1450))
>>> _ = engine.apply(NewOrder(2, "marubeni", "JPA-2010", Side.BUY, 200, price=1460))
>>> [(r.trade_id, r.seller, r.buyer, r.qty, r.amount) for r in adapter.results]
[(4, 'tepco', 'marubeni', 200, 290000)]
>>> reg.holding("marubeni", UnitType.JPA), reg.balance("tepco", "JPY")
(200, 290000)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import msgspec

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import UnknownTrade
from carbonbook.events import Trade
from carbonbook.registry.base import Registry, Settled, SettlementFailed, SettlementRecord, SettleTerms

__all__ = ["Instrument", "Settled", "SettlementAdapter", "SettlementFailed", "SettlementRecord"]


class Instrument(msgspec.Struct, frozen=True):
    """What an instrument settles in: its registry ``unit`` type and cash ``currency``."""

    unit: UnitType
    currency: str


class SettlementAdapter:
    """Settles trade events against ``registry`` (see the module docstring).

    ``instruments`` maps a symbol to its :class:`Instrument`. ``use_holds`` makes each
    settlement consume the seller's units hold keyed by the sell order id and the buyer's
    cash hold keyed by the buy order id, where such holds exist. ``on_result`` is called
    with each batch of outcomes; they are also appended to ``results`` unless
    ``keep_results`` is false.
    """

    def __init__(self, registry: Registry, instruments: Mapping[str, Instrument], *, lag: int = 0,
                 batch: int = 1000, use_holds: bool = False,
                 on_result: Callable[[list[SettlementRecord]], None] | None = None,
                 keep_results: bool = True) -> None:
        if type(lag) is not int or lag < 0:
            raise ValueError(f"lag must be a non-negative integer, got {lag!r}")
        if type(batch) is not int or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        self.registry = registry
        self.instruments = dict(instruments)
        self.lag = lag
        self.batch = batch
        self.use_holds = use_holds
        self.on_result = on_result
        self.keep_results = keep_results
        self.day = 0
        self.results: list[SettlementRecord] = []
        self._pending: dict[int, tuple[int, Trade]] = {}

    # -- input ---------------------------------------------------------------------

    def __call__(self, events: Sequence[object]) -> None:
        """Take an engine's events: trades settle now (``lag=0``) or wait until they are due."""
        trades = [e for e in events if type(e) is Trade]
        if not trades:
            return
        if self.lag == 0:
            self.settle_trades(trades)
            return
        due = self.day + self.lag
        for t in trades:
            self._pending.setdefault(t.seq, (due, t))

    @property
    def pending(self) -> list[Trade]:
        """Trades received and not yet settled, in trade id order."""
        return [t for _, (_, t) in sorted(self._pending.items())]

    @property
    def queue(self) -> list[tuple[int, Trade]]:
        """``(due day, trade)`` of every trade received and not yet settled, in trade id order."""
        return [item for _, item in sorted(self._pending.items())]

    def requeue(self, queue: Iterable[tuple[int, Trade]], day: int) -> None:
        """Restore a :attr:`queue` and the business ``day`` (to rebuild an adapter from saved state)."""
        self._pending = {t.seq: (due, t) for due, t in queue}
        self.day = day

    def settle_due(self, day: int) -> list[SettlementRecord]:
        """Make ``day`` the current business day and settle every trade due by then."""
        if type(day) is not int or day < self.day:
            raise ValueError(f"day must be an integer not before {self.day}, got {day!r}")
        self.day = day
        due = [t for tid, (d, t) in sorted(self._pending.items()) if d <= day]
        return self.settle_trades(due)

    def settle(self, trade_id: int) -> SettlementRecord:
        """Settle one received trade now, due or not; :class:`~carbonbook.errors.UnknownTrade`
        if the id was never received (a recorded id returns its outcome)."""
        item = self._pending.get(trade_id)
        if item is None:
            done = self.registry.settlement(trade_id)
            if done is None:
                raise UnknownTrade(f"trade {trade_id!r} was never received")
            return done
        return self.settle_trades([item[1]])[0]

    # -- settlement ----------------------------------------------------------------

    def _unsettleable(self, t: Trade) -> SettlementFailed:
        """Why a trade cannot settle at all: its symbol has no instrument, or price * qty passes 2**63 - 1."""
        inst = self.instruments.get(t.symbol)
        if inst is None:
            return SettlementFailed(t.seq, "unknown_instrument",
                                    f"no unit type and currency for symbol {t.symbol!r}",
                                    t.sell_account, t.buy_account, "", t.qty, "", 0)
        return SettlementFailed(t.seq, "bad_qty", f"price * qty = {t.price * t.qty} passes 2**63 - 1",
                                t.sell_account, t.buy_account, inst.unit, t.qty, inst.currency, 0)

    def settle_trades(self, trades: Iterable[Trade]) -> list[SettlementRecord]:
        """Settle ``trades`` now, ``batch`` per registry transaction, and return their outcomes.
        O(1) Python per trade besides the registry's work (a venue calls it once per command)."""
        todo = trades if isinstance(trades, list) else list(trades)
        batch = self.batch
        if len(todo) <= batch:
            return self._settle_chunk(todo)
        out: list[SettlementRecord] = []
        for i in range(0, len(todo), batch):
            out += self._settle_chunk(todo[i:i + batch])
        return out

    def _settle_chunk(self, chunk: list[Trade]) -> list[SettlementRecord]:
        """Settle up to ``batch`` trades in one registry transaction."""
        instruments = self.instruments
        use_holds = self.use_holds
        rows: list[SettleTerms] = []
        refused: list[tuple[int, SettlementFailed]] = []  # (position in chunk, outcome)
        sym: object = None  # the last symbol seen, its instrument, unit type and currency
        inst: Instrument | None = None
        unit = UnitType.JPA
        currency = ""
        for t in chunk:
            if t.symbol is not sym:
                sym = t.symbol
                inst = instruments.get(t.symbol)
                if inst is not None:
                    unit = inst.unit
                    currency = inst.currency
            amount = t.price * t.qty
            if inst is None or (amount > 0x3FFFFFFF and amount > INT64_MAX):
                refused.append((len(rows) + len(refused), self._unsettleable(t)))
            elif use_holds:
                rows.append((t.seq, t.sell_account, t.buy_account, unit, t.qty, currency, amount, t.sell_id,
                             t.buy_id))
            else:
                rows.append((t.seq, t.sell_account, t.buy_account, unit, t.qty, currency, amount, None, None))
        records = self.registry.settle_batch(rows)  # one registry transaction
        if refused:  # merge the registry's outcomes with the trades refused here, in order
            records = list(records)
            for pos, failed in refused:
                records.insert(pos, failed)
        pending = self._pending
        if pending:
            for t in chunk:
                pending.pop(t.seq, None)
        if self.keep_results:
            self.results.extend(records)
        if self.on_result is not None:
            self.on_result(records)
        return records
