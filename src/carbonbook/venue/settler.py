"""The settler: a venue's trades and auction allocations become DvP registry transfers.

:class:`Settler` consumes the engine's events after each command (the venue's stage) and
appends the outcomes to them, each with the next seq:

- **trades**: with ``lag=0`` each trade settles right after the command that made it
  (``trade_settled`` or ``settlement_failure``); with ``lag=N`` it waits in the
  :class:`~carbonbook.venue.settlement.SettlementAdapter`'s queue for the ``business_day`` that
  makes it due. Settlement consumes the trade's holds; a failure moved nothing and gives the
  trade's share of the holds back (:class:`~carbonbook.venue.holds.HoldGate`). Idempotent by trade id;
- **auction allocations**: each in its own transaction, the units issued to the seller (when
  the auction names a scheme and period) and delivered against ``price * qty``
  (``allocation_settled`` or ``allocation_failed``), its outcome in the checkpoint;
- **business days** (``business_day``): ``recorded``, then the delayed transfers it executes
  (``recorded`` ``transfer_executed`` or ``transfer_failed``, see
  :meth:`~carbonbook.registry.base.Registry.start_day`), the compliance finals, and the
  outcomes of the trades due.

Events up to the checkpoint's ``replayed`` change nothing: their trades must have settled
then (:class:`~carbonbook.venue.checkpoint.LogMismatch` otherwise). Costs: one registry
transaction per command with trades (``SettlementAdapter.settle_trades``, the registry's one
settlement path, its ledger's ``settle``), about 13,600 instructions per trade on the
compiled ledger when a command makes two (46,000 on the reference ledger; bench/venue.py
``--settle-instructions``), and one event per trade. Over the compiled ledger a venue settles
the common case (``lag=0``, every trade settled) in :class:`carbonbook._cvenue.Gate` instead,
the same rows in one ledger call (a venue message costs about 7,100 instructions in all,
the bare engine 2,450 on the same messages; bench/venue.py ``--instructions``).
"""

from __future__ import annotations

from functools import partial

from carbonbook._types import RejectReason
from carbonbook.auction import BidAllocation
from carbonbook.commands import BusinessDay
from carbonbook.core.engine import Engine
from carbonbook.events import (
    AllocationFailed,
    AllocationSettled,
    AuctionCleared,
    Event,
    Recorded,
    Rejected,
    SettlementFailure,
    Trade,
    TradeSettled,
)
from carbonbook.registry.base import Final, Registry, ReportMissed, Settled, SettlementRecord
from carbonbook.venue.checkpoint import Checkpoint, LogMismatch
from carbonbook.venue.holds import HoldGate, Refused
from carbonbook.venue.settlement import SettlementAdapter

__all__ = ["Settler"]


class Settler:
    """Settles the trades and allocations of ``engine`` into ``registry`` (see the module docstring)."""

    def __init__(self, registry: Registry, engine: Engine, checkpoint: Checkpoint, holds: HoldGate,
                 adapter: SettlementAdapter) -> None:
        self.registry = registry
        self.engine = engine
        self.checkpoint = checkpoint
        self.holds = holds
        self.adapter = adapter

    def settle(self, trades: list[Trade], events: list[Event]) -> None:
        """Settle one command's trades now (appending their outcomes), or queue them (lag > 0)."""
        adapter = self.adapter
        if adapter.lag:
            adapter(trades)
        else:
            self._check_settled(trades)
            self._outcomes(adapter.settle_trades(trades), trades, events)

    def business_day(self, cmd: BusinessDay, events: list[Event]) -> None:
        """Start business day ``cmd.day``: ``recorded``, then the outcomes of the trades due."""
        adapter = self.adapter
        day = cmd.day
        take = self.engine.take_seq
        if day.__class__ is not int or day < adapter.day:
            events.append(Rejected(take(), None, RejectReason.MALFORMED,
                                   f"business day must be an integer not before {adapter.day}"))
            return
        due = [t for when, t in adapter.queue if when <= day]
        if self.engine.next_seq <= self.checkpoint.replayed:
            self._check_settled(due)
        since = adapter.day
        done = self.registry.start_day(since, day) if day > since else []
        records = adapter.settle_due(day)
        events.append(Recorded(take(), "business_day", None, f"day {day}: {len(records)} trades due"))
        for p in done:
            said = f"transfer {p.id}: {p.qty} {p.unit} {p.sender} -> {p.receiver}"
            if p.state == "executed":
                events.append(Recorded(take(), "transfer_executed", p.done_txid, said))
            else:
                events.append(Recorded(take(), "transfer_failed", p.done_txid, f"{said} failed: {p.reason}"))
        for f in self.registry.pass_days(since, day) if day > since else ():
            if type(f) is ReportMissed:
                events.append(Recorded(take(), "report_missed", f.txid, (
                    f"{f.account} {f.period}: status C at the reporting deadline (day {f.day}), no verified "
                    f"emissions; emissions entered by the surrender deadline (day {f.deadline}) still count")))
                continue
            assert type(f) is Final
            said = (f"{f.account} {f.period}: status {f.status} final at the deadline (day {f.day}), "
                    f"{f.surrendered} of {f.obligation} surrendered, {f.shortfall} short")
            if f.penalty:
                said += f", penalty {f.penalty} {f.currency}"
            if f.carried != f.shortfall:
                said += f", {f.carried} added to {f.period + 1}'s obligation"
            events.append(Recorded(take(), "compliance_final", f.txid, said))
        self._outcomes(records, due, events)

    def _check_settled(self, trades: list[Trade]) -> None:
        """While replaying what the registry holds, every trade settling now settled then."""
        replayed = self.checkpoint.replayed
        if not trades or trades[0].seq > replayed:  # trades come in seq order
            return
        for t in trades:
            if t.seq <= replayed and self.registry.settlement(t.seq) is None:
                raise LogMismatch(f"trade {t.seq} was never settled in this registry: it holds another log")

    def _outcomes(self, records: list[SettlementRecord], trades: list[Trade], events: list[Event]) -> None:
        take = self.engine.take_seq
        replayed = self.checkpoint.replayed
        by_id = None
        for r in records:
            seq = take()
            if type(r) is Settled:
                events.append(TradeSettled(seq, r.trade_id, r.txid))
                continue
            events.append(SettlementFailure(seq, r.trade_id, r.reason, r.detail))  # type: ignore[union-attr]
            if by_id is None:
                by_id = {t.seq: t for t in trades}
            trade = by_id[r.trade_id]
            if seq > replayed:  # nothing moved: give the trade's share of the holds back
                self.holds.release(trade.sell_id, trade.qty)
                self.holds.release(trade.buy_id, trade.price * trade.qty)

    # -- primary auctions ------------------------------------------------------------------

    def allocate(self, result: AuctionCleared, events: list[Event]) -> None:
        """Settle each allocation of ``result`` in its own transaction (the bids' holds are
        released already); outcomes are recorded under their events' seqs."""
        take = self.engine.take_seq
        for a in result.allocations:
            seq = take()
            outcome = self.checkpoint.once(seq, "allocation", partial(self._allocate, result, a, seq))
            if outcome.reason:
                events.append(AllocationFailed(seq, result.auction, a.id, outcome.reason, outcome.detail))
            else:
                events.append(AllocationSettled(seq, result.auction, a.id, outcome.txid))

    def _allocate(self, result: AuctionCleared, a: BidAllocation, trade_id: int) -> str:
        reg = self.registry
        if result.scheme is not None and result.period is not None:
            reg.issue(result.seller, result.unit, a.qty, scheme=result.scheme, period=result.period)
        record = reg.settle(trade_id, seller=result.seller, buyer=a.account, unit=result.unit, qty=a.qty,
                            currency=result.currency or self.holds.currency,
                            amount=(result.price or 0) * a.qty)
        if type(record) is not Settled:
            raise Refused(record.reason, record.detail)  # type: ignore[union-attr]
        return ""
