"""The settlement consumer of a sharded venue: every shard's trades into one registry, once.

A venue of more than one shard matches on each shard and settles here (the clearing-member
model): pre-trade holds are upstream, with the clearing members whose accounts trade (a
shard holds nothing: an account's cash and units are not split across shards, and no shard
waits for another); :class:`SettlementConsumer` reads the events stream (every shard's
subject, in stream order) and settles each trade delivery versus payment in the registry,
with :class:`~carbonbook.venue.settlement.SettlementAdapter` (no holds). A trade the registry cannot
settle (units or cash short, an account blocked) is recorded there as a settlement failure,
under its trade id, and moves nothing: the clearing member's default, settled outside.

- **Trade ids.** Shard ``K``'s trade ``seq`` settles as trade id ``(K + 1) << 40 | seq`` (shards
  below 2**22, ``seq`` below 2**40): unique across the venue, and apart from the ids (``seq``) of
  a venue that settled into the same registry (the administrator's ``carbonbook replay`` of the
  registry commands that open accounts and fund them).
- **Exactly once.** Up to ``batch`` events messages are settled per registry transaction (run as one of
  many writers, :func:`~carbonbook.registry.writers.retrying`), which also stores the consumer's
  position (the events stream's sequence of the last event it went through, checkpoint row -2).
  A consumer that dies loses nothing: its successor starts after the stored position, and the
  registry's settlement is idempotent by trade id besides. An event the stream holds twice
  (two leaders' overlapping runs) is settled once: :class:`~carbonbook.cluster.wire.EventRuns`.
- **Instruments.** Each trade settles in the unit of its instrument's ``instrument_listed``
  event and in its currency (the consumer's ``currency`` when it names none); a restarted
  consumer reads the stream from the start for them, settling nothing before its position.

Do not point it at the registry of a one-shard venue served with ``--registry``: that venue
settles its own trades, and they would settle twice.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec

from carbonbook.cluster.wire import EventRuns, Names, ordered_consumer
from carbonbook.events import Event, InstrumentListed, Trade
from carbonbook.registry.base import Registry, Settled, SettlementRecord
from carbonbook.registry.writers import retrying
from carbonbook.venue.checkpoint import Checkpoint
from carbonbook.venue.settlement import Instrument, SettlementAdapter

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["SHARD_BITS", "SettlementConsumer", "trade_id"]

SHARD_BITS = 40
_POSITION_ROW = -2
_event = msgspec.json.Decoder(Event)


def trade_id(shard: int, seq: int) -> int:
    """The registry trade id of shard ``shard``'s trade ``seq``."""
    return (shard + 1) << SHARD_BITS | seq


class SettlementConsumer:
    """Settles the trades of venue ``names`` into ``registry`` (see the module docstring)."""

    def __init__(self, registry: Registry, names: Names, currency: str = "JPY", batch: int = 1000) -> None:
        checkpoint = Checkpoint(registry)
        self.registry = registry
        self.names = names
        self.currency = currency
        self.batch = batch
        self._store = checkpoint._store
        row = self._store.checkpoint_row(_POSITION_ROW)
        self.position = 0 if row is None else row[0]
        self._adapter = SettlementAdapter(registry, {}, use_holds=False, keep_results=False)
        self.settled = self.failed = 0
        self._runs = EventRuns()

    async def run(self, js: JetStreamContext, stop: asyncio.Event | None = None, follow: bool = False) -> None:
        """Settle every trade the events stream holds (``follow``: and those to come, until ``stop``)."""
        last = (await js.stream_info(self.names.events)).state.last_seq
        if not last and not follow:
            return
        sub = await ordered_consumer(js, self.names.event_subject(), self.names.events)
        try:
            done = False
            while not done:
                try:
                    msgs = [await sub.next_msg(0.2)]
                except TimeoutError:
                    if not follow or (stop is not None and stop.is_set()):
                        break
                    continue
                while len(msgs) < self.batch and sub.pending_msgs > 0:
                    msgs.append(await sub.next_msg())
                self.take(msgs)
                done = not follow and msgs[-1].metadata.sequence.stream >= last
        finally:
            await sub.unsubscribe()

    def take(self, msgs: list[Msg]) -> None:
        """Settle the trades of ``msgs`` past the position, in one registry transaction with the new
        position (the messages up to the position only tell the instruments and each shard's last
        event taken)."""
        instruments = self._adapter.instruments
        assert isinstance(instruments, dict)
        trades: list[Trade] = []
        for msg in msgs:
            shard, lines = self._runs.take(msg)
            settle = msg.metadata.sequence.stream > self.position
            for event in _event.decode_lines(lines):
                if isinstance(event, InstrumentListed):
                    instruments[event.symbol] = Instrument(event.unit, event.currency or self.currency)
                elif isinstance(event, Trade) and settle:
                    trades.append(msgspec.structs.replace(event, seq=trade_id(shard, event.seq)))
        where = msgs[-1].metadata.sequence.stream
        if where <= self.position:
            return

        def work() -> list[SettlementRecord]:
            records = self._adapter.settle_trades(trades)
            self._store.put_checkpoint_row(_POSITION_ROW, (where, "settled_events", self.names.events))
            return records

        records = retrying(self.registry, work)
        settled = sum(1 for r in records if isinstance(r, Settled))
        self.settled += settled
        self.failed += len(records) - settled
        self.position = where
