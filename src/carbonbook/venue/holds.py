"""The hold gate: a venue's pre-trade risk, holding units or cash in the registry before trading.

:class:`HoldGate` is set as every book's ``risk`` and as the engine's ``admit_bid``, which
the book (interpreted or compiled) and the auction code call just before they accept:

- ``admit(book, cmd)``: a sell (limit or market) holds ``qty`` unreserved units of the book's
  unit type; a limit buy ``price * qty`` of unreserved cash in the book's currency; a market
  buy its ``cap`` (without one: ``insufficient_funds``); a primary-auction bid ``price * qty``;
- ``amend(book, order, price, qty)``: a modify that needs more takes it (the hold is taken
  again, whole, in one transaction) or is refused; one that needs less releases the rest;
- ``released(command, events, start)``, after each command: a cancelled remainder releases its
  share, a fill below a buy's limit the difference, a market buy what its cap did not spend.
  Settlement consumes the rest of a hold (:mod:`carbonbook.venue.settler`).

Holds are keyed by order id. A refusal is ``(reason, detail)`` (``insufficient_units``,
``insufficient_funds`` or the registry's code) and is recorded in the checkpoint under the
seq of its ``rejected``, so a replay into the same registry gives it again without asking
the registry. Costs: one registry call per hold taken or released, O(1) each.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import TypeVarTuple

from carbonbook._types import INT64_MAX, RejectReason, Side
from carbonbook.commands import Command, NewOrder, OpenAuction, PlaceBid, Undecodable
from carbonbook.core.book import Order, OrderBook
from carbonbook.core.engine import Engine
from carbonbook.errors import InsufficientFunds, InsufficientUnits, RegistryError
from carbonbook.events import AuctionCleared, Cancelled, Event, Trade
from carbonbook.registry.base import Registry
from carbonbook.venue.checkpoint import Checkpoint, Outcome

__all__ = ["HoldGate", "Refused"]

_BUY = Side.BUY
_MARKET = 0  # the limit recorded for a market buy
_NO_FUNDS = RejectReason.INSUFFICIENT_FUNDS
Ts = TypeVarTuple("Ts")


class Refused(RegistryError):
    """A refusal of the venue's own (or a registry record's, raised to roll back): ``code`` and detail."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def refusal(e: RegistryError) -> tuple[str, str]:
    """A registry refusal as the ``(reason, detail)`` of a ``rejected``."""
    if isinstance(e, InsufficientUnits):
        return RejectReason.INSUFFICIENT_UNITS, str(e)
    if isinstance(e, InsufficientFunds):
        return RejectReason.INSUFFICIENT_FUNDS, str(e)
    return e.code, str(e)


class HoldGate:
    """Pre-trade holds in ``registry`` for the books of ``engine`` (see the module docstring).
    ``currency`` is the cash of books listed without one; ``buys`` (empty) keeps the buy orders
    that may still hold cash: id -> limit price (0 for a market buy), a dict unless given (the
    compiled gate's :class:`carbonbook._cvenue.Limits`)."""

    def __init__(self, registry: Registry, engine: Engine, checkpoint: Checkpoint, currency: str,
                 buys: MutableMapping[int, int] | None = None) -> None:
        self.registry = registry
        self.engine = engine
        self.checkpoint = checkpoint
        self.currency = currency
        self.buys: MutableMapping[int, int] = {} if buys is None else buys

    def currency_of(self, book: OrderBook) -> str:
        """The cash ``book``'s prices are in."""
        return book.currency or self.currency

    def rebuild(self) -> None:
        """Find the resting buys again (after the engine's state was restored). O(resting buys)."""
        engine = self.engine
        for symbol in engine.symbols:
            for level in engine.book(symbol).bids.levels.values():
                for order in level.live():
                    self.buys[order.id] = order.price

    # -- the book-facing interface (PreTradeRisk) ----------------------------------------

    def admit(self, book: OrderBook, cmd: NewOrder) -> tuple[str, str] | None:
        """Take the hold of a new order about to be accepted, or say why it cannot be (as
        ``_once`` does, inline: this runs for every order)."""
        if self.checkpoint.replaying:  # a buy the registry admitted before is resting here too
            refused = self._once(self._admit, book, cmd)
            if refused is None and cmd.side == _BUY:
                self.buys[cmd.id] = cmd.price or _MARKET
            return refused
        try:
            self._admit(book, cmd)
            return None
        except RegistryError as e:
            return self._refused(e)

    def _admit(self, book: OrderBook, cmd: NewOrder) -> None:
        if cmd.side != _BUY:
            self.registry.reserve(cmd.id, cmd.account, book.unit, cmd.qty)
            return
        amount = cmd.cap if cmd.price is None else cmd.price * cmd.qty
        self._reserve_cash(cmd.id, cmd.account, book.currency or self.currency, amount)
        self.buys[cmd.id] = cmd.price or _MARKET

    def amend(self, book: OrderBook, order: Order, price: int, qty: int) -> tuple[str, str] | None:
        """Resize the hold of a resting order about to become ``qty`` at ``price``, or say why not."""
        is_buy = order.side == _BUY
        delta = price * qty - order.price * order.qty if is_buy else qty - order.qty
        refused = self._once(self._resize, book, order, delta)
        if refused is None and is_buy:
            self.buys[order.id] = price
        return refused

    def admit_bid(self, bid: PlaceBid, auction: OpenAuction) -> tuple[str, str] | None:
        """Hold ``price * qty`` of the bidder's cash for a bid about to be accepted, or say why not."""
        currency = auction.currency or self.currency
        return self._once(self._reserve_cash, bid.id, bid.account, currency, bid.price * bid.qty)

    def _resize(self, book: OrderBook, order: Order, delta: int) -> None:
        """Grow or shrink the hold of ``order`` by ``delta`` (units; cash for a buy order)."""
        reg = self.registry
        oid = order.id
        if delta > 0:  # a hold grows by being taken again, whole, in one transaction
            with reg.transaction():
                total = reg.hold(oid) + delta
                reg.release(oid)
                if order.side == _BUY:
                    self._reserve_cash(oid, order.account, self.currency_of(book), total)
                else:
                    reg.reserve(oid, order.account, book.unit, total)
        elif delta < 0:
            reg.release(oid, -delta)

    def _once(self, act: Callable[[*Ts], object], *args: *Ts) -> tuple[str, str] | None:
        """Run a hold change ``act(*args)`` (atomic: one registry call, or a resize in its own
        transaction) for the command whose answer takes the next seq; a refusal is recorded
        under that seq and returned. While replaying, nothing runs: the recorded refusal, if any,
        is returned."""
        checkpoint = self.checkpoint
        if checkpoint.replaying and (seq := self.engine.next_seq) <= checkpoint.replayed:
            outcome = checkpoint.outcome(seq)
            return None if outcome is None else (outcome.reason, outcome.detail)
        try:
            act(*args)
            return None
        except RegistryError as e:
            return self._refused(e)

    def _refused(self, e: RegistryError) -> tuple[str, str]:
        """Record the refusal ``e`` of the command whose answer takes the next seq, and return it."""
        refused = refusal(e)
        self.checkpoint.record(self.engine.next_seq, Outcome(0, *refused))
        return refused

    def _reserve_cash(self, hold: int, account: str, currency: str, amount: int | None) -> None:
        """Hold ``amount`` of cash (None: a market buy that states no cap)."""
        if amount is None:
            raise Refused(_NO_FUNDS, "a market buy must state a cap (the most it may spend)")
        if amount > INT64_MAX:
            raise Refused(_NO_FUNDS, f"the order would hold {amount}, past 2**63 - 1")
        self.registry.reserve_cash(hold, account, currency, amount)

    # -- releases --------------------------------------------------------------------------

    def release(self, hold: int, amount: int) -> None:
        """Give back ``amount`` of a hold, or what is left of it (settlement may have taken it)."""
        left = self.registry.hold(hold)
        if amount > left:
            amount = left
        if amount > 0:
            self.registry.release(hold, amount)

    def released(self, command: Command | Undecodable, events: list[Event], start: int) -> list[Trade]:
        """Release what the events of one command (``events[start:]``) free; return its trades.
        An ``auction_cleared`` releases every bid's hold. Events up to the checkpoint's
        ``replayed`` change nothing (the registry holds their effects)."""
        replayed = self.checkpoint.replayed
        buys = self.buys
        trades: list[Trade] = []
        spent = 0
        for e in events[start:]:  # by exact type: isinstance is slow when it fails on msgspec types
            if type(e) is Trade:
                trades.append(e)
                limit = buys.get(e.buy_id)
                if limit == _MARKET:
                    spent += e.price * e.qty
                elif limit is not None and limit > e.price and e.seq > replayed:
                    self.release(e.buy_id, (limit - e.price) * e.qty)
            elif type(e) is Cancelled:
                limit = buys.get(e.id)
                if limit == _MARKET:
                    continue  # a market buy gives back what its cap did not spend, below
                if limit is not None:
                    del buys[e.id]
                if e.seq > replayed:
                    self.release(e.id, e.qty if limit is None else limit * e.qty)
            elif type(e) is AuctionCleared and e.seq > replayed:
                for bid_id in e.tie_order:
                    self.release(bid_id, self.registry.hold(bid_id))
        if (type(command) is NewOrder and command.cap is not None
                and buys.pop(command.id, None) == _MARKET and events[start].seq > replayed):
            self.release(command.id, command.cap - spent)
        if trades:
            open_order = self.engine.open_order
            for t in trades:  # filled buys hold nothing more to give back at a better price
                if t.buy_id in buys and open_order(t.buy_id) is None:
                    del buys[t.buy_id]
        return trades
