"""Replay an order log through an :class:`~carbonbook.engine.Engine`, writing its events.

Every record gives events: a decodable command is applied, an undecodable one is a
``rejected`` event with reason ``malformed`` and its 1-based ``line`` (blank JSON
lines are counted but give nothing). Records are applied and their events written
as JSON Lines a batch at a time.
Nothing here reads the clock, so the same log always gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import BinaryIO

from carbonbook.codec import (
    DecodeFailure,
    describe_fault,
    json_decoder,
    json_encoder,
    jsonl_records,
    msgpack_decoder,
    msgpack_records,
)
from carbonbook.commands import Command, Undecodable
from carbonbook.engine import Engine
from carbonbook.events import Event, Rejected, Trade

_BATCH = 16384  # MessagePack records per batch


@dataclass
class SymbolTally:
    """Trading figures of one instrument over a replay."""

    trades: int = 0
    volume: int = 0
    notional: int = 0
    last: int | None = None

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

    def add(self, events: list[Event]) -> None:
        """Count a batch of events."""
        for cls, n in Counter(map(type, events)).items():
            self.events[cls.__struct_config__.tag] += n  # type: ignore[attr-defined]
        symbols = self.symbols
        for e in [e for e in events if e.__class__ is Trade]:
            tally = symbols.get(e.symbol)
            if tally is None:
                tally = symbols[e.symbol] = SymbolTally()
            tally.trades += 1
            tally.volume += e.qty
            tally.notional += e.qty * e.price
            tally.last = e.price
        self.rejections.update(e.reason for e in events if e.__class__ is Rejected)


def replay(
    source: BinaryIO,
    engine: Engine,
    write: Callable[[bytes], object],
    msgpack: bool = False,
    progress: Callable[[int, int], object] | None = None,
) -> ReplayTally:
    """Apply every record of ``source`` to ``engine``; pass the events' JSON Lines to ``write``.

    Records are decoded a batch at a time (a 4 MiB chunk of JSON Lines, or
    :data:`_BATCH` MessagePack objects), each batch applied with ``Engine.apply_all``
    and its events encoded and written in one go. After each batch, ``progress`` (when
    given) is called with the records and the input bytes read so far; it is for display
    only and can change nothing that is written.
    """
    tally = ReplayTally()
    line = 0
    consumed = 0
    newline = 0 if msgpack else 1
    if msgpack:
        decode = msgpack_decoder.decode
        records = msgpack_records(source.read())
        batches: Iterator[list[bytes]] = iter(lambda: list(islice(records, _BATCH)), [])
    else:
        decode = json_decoder.decode
        batches = jsonl_records(source)
    for batch in batches:
        commands: list[Command | Undecodable] = []
        for record in batch:
            line += 1
            try:
                if not msgpack and not record.isascii():
                    record.decode()  # msgspec skips unknown fields unread: invalid UTF-8 is malformed
                commands.append(decode(record))
            except DecodeFailure as exc:
                if msgpack or record.strip():
                    oid, detail = describe_fault(record, exc, msgpack)
                    commands.append(Undecodable(line, detail, oid))
        events = engine.apply_all(commands)
        tally.add(events)
        write(json_encoder.encode_lines(events))
        if progress is not None:
            consumed += sum(map(len, batch)) + newline * len(batch)
            progress(line, consumed)
    tally.records = line
    return tally
