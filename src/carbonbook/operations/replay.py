"""Replay an order log through an :class:`~carbonbook.core.engine.Engine`, writing its events.

Every record gives events: a decodable command is applied, an undecodable one is a
``rejected`` event with reason ``malformed`` and its 1-based ``line`` (blank JSON
lines are counted but give nothing). Records are applied and their events written
as JSON Lines a batch at a time.
Nothing here reads the clock, so the same log always gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from carbonbook.codec import command_batches, json_encoder
from carbonbook.commands import Command, Undecodable
from carbonbook.events import Event, Rejected, Trade


@dataclass
class SymbolTally:
    """Trading figures of one instrument over a replay."""

    trades: int = 0
    volume: int = 0
    notional: int = 0
    last: int | None = None
    last_seq: int = 0

    @property
    def vwap(self) -> int | None:
        """Volume-weighted average price, rounded down to an integer."""
        return self.notional // self.volume if self.volume else None


@dataclass
class ReplayTally:
    """What a replay read and wrote."""

    records: int = 0
    events: Counter[str] = field(default_factory=Counter)
    """Events written, by ``type``."""
    rejections: Counter[str] = field(default_factory=Counter)
    symbols: dict[str, SymbolTally] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)
    """Records that carried fields the order log ignores, by the first such field's name."""

    def add(self, events: list[Event]) -> None:
        """Count a batch of events."""
        kinds = Counter(map(type, events))
        for cls, n in kinds.items():
            self.events[cls.__struct_config__.tag] += n  # type: ignore[attr-defined]
        if Trade in kinds:  # a pass over the events only for the kinds the batch has
            symbols = self.symbols
            for e in [e for e in events if e.__class__ is Trade]:
                tally = symbols.get(e.symbol)
                if tally is None:
                    tally = symbols[e.symbol] = SymbolTally()
                tally.trades += 1
                tally.volume += e.qty
                tally.notional += e.qty * e.price
                tally.last, tally.last_seq = e.price, e.seq
        if Rejected in kinds:
            self.rejections.update(e.reason for e in events if e.__class__ is Rejected)

    def add_json(self, out: Any) -> None:
        """Count what a JSON ``Out`` (:meth:`~carbonbook.core.engine.Engine.json_out`) wrote since the
        last call: its own counts and trades, and the Structs it encoded."""
        counts, trades, structs = out.tally()
        self.add(structs)
        self.events.update(counts)
        for symbol, written in trades.items():
            tally = self.symbols.get(symbol)
            if tally is None:
                tally = self.symbols[symbol] = SymbolTally()
            tally.trades += written.trades
            tally.volume += written.volume
            tally.notional += written.notional
            if written.last_seq > tally.last_seq:
                tally.last, tally.last_seq = written.last, written.last_seq


class Applier(Protocol):
    """What replay drives: an :class:`~carbonbook.core.engine.Engine` (or anything with its ``apply_all``)."""

    def apply_all(self, commands: Iterable[Command | Undecodable], decoded: bool = False) -> list[Event]:
        """Apply commands in order and return their events (``decoded``: they come from
        :mod:`carbonbook.codec`'s decoders)."""


def replay(
    source: BinaryIO,
    engine: Applier,
    write: Callable[[bytes], object],
    msgpack: bool = False,
    progress: Callable[[int, int], object] | None = None,
) -> ReplayTally:
    """Apply every record of ``source`` to ``engine``; pass the events' JSON Lines to ``write``.

    Records are decoded a batch at a time (:func:`~carbonbook.codec.command_batches`),
    each batch applied with ``Engine.apply_all`` (as decoded commands) and its events encoded
    and written in one go; with the compiled core, ``Engine.apply_all_json`` writes the JSON
    Lines of the commonest events itself, without building their Structs. After each batch, ``progress`` (when
    given) is called with the records and the input bytes read so far; it is for display
    only and can change nothing that is written.
    """
    tally = ReplayTally()
    records = consumed = 0
    json_out = getattr(engine, "json_out", lambda: None)()
    for commands, count, size, ignored in command_batches(source, msgpack):
        records += count
        tally.ignored.update(ignored)
        consumed += size
        if json_out is not None:
            engine.apply_all_json(commands, json_out, decoded=True)  # type: ignore[attr-defined]
            write(json_out.take())
            tally.add_json(json_out)
        else:
            events = engine.apply_all(commands, decoded=True)
            tally.add(events)
            write(json_encoder.encode_lines(events))
        if progress is not None:
            progress(records, consumed)
    tally.records = records
    return tally
